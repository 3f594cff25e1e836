"""The word-of-click score: properties of the formula, the documented worked example, I/O, CLI."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from wordofclick.aggregate import (
    AggregateSettings,
    ChannelReach,
    aggregate_companies,
    aggregate_file,
    as_of_instant,
    explain_company,
)
from wordofclick.cli import main
from wordofclick.errors import ConfigError, DataError
from wordofclick.labels import DEFAULT_LABELS
from wordofclick.reviews import TableWriter
from wordofclick.schema import CHANNELS, REVIEW_SCHEMA, prob_column, scored_fields
from wordofclick.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-20"
END = datetime(2026, 11, 21, tzinfo=timezone.utc)
PROBS = tuple(prob_column(label) for label in DEFAULT_LABELS)
SC, PC, SP, PP = PROBS
TOL = 1e-9

properties = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def table_of(rows: list[dict]) -> pa.Table:
    """Scored rows from dicts with ``age_days`` (before the end of the as-of day), not dates."""
    columns = {
        "review_id": [row.get("review_id", f"r{i}") for i, row in enumerate(rows)],
        "company": [row["company"] for row in rows],
        "created_at": pa.array(
            [None if row.get("age_days") is None else END - timedelta(days=row["age_days"])
             for row in rows],
            type=pa.timestamp("us", tz="UTC"),
        ),
        "channel": pa.array([row.get("channel") for row in rows], type=pa.string()),
        "shares": pa.array([row.get("shares") for row in rows], type=pa.int64()),
        "likes": pa.array([row.get("likes") for row in rows], type=pa.int64()),
    }
    for name in PROBS:
        columns[name] = pa.array([float(row.get(name, 0.0)) for row in rows], type=pa.float64())
    return pa.table(columns)


def by_company(table: pa.Table) -> dict[str, dict]:
    return {row["company"]: row for row in table.to_pylist()}


def close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# Strategies ----------------------------------------------------------------------------------

probability = st.floats(0.0, 1.0, allow_nan=False)
review = st.fixed_dictionaries(
    {
        "channel": st.sampled_from((*CHANNELS, None)),
        "age_days": st.floats(0.5, 60.0),
        "shares": st.one_of(st.none(), st.integers(0, 20)),
        "likes": st.one_of(st.none(), st.integers(0, 300)),
        SC: probability,
        PC: probability,
        SP: probability,
        PP: probability,
    }
)


@st.composite
def population(draw, min_companies: int = 2) -> list[dict]:
    companies = draw(st.integers(min_companies, 6))
    rows = []
    for c in range(companies):
        for r in draw(st.lists(review, min_size=1, max_size=6)):
            rows.append({**r, "company": f"co{c}", "review_id": f"co{c}-{len(rows)}"})
    return rows


@st.composite
def population_and_target(draw) -> tuple[list[dict], int]:
    rows = draw(population())
    return rows, draw(st.integers(0, len(rows) - 1))


# Properties of the formula --------------------------------------------------------------------


@properties
@given(case=population_and_target(), label=st.sampled_from((SC, PC)), bump=st.floats(0.01, 1.0))
def test_more_complaint_never_lowers_the_index(case, label, bump):
    rows, target = case
    company = rows[target]["company"]
    before = by_company(aggregate_companies(table_of(rows), AS_OF))[company]
    rows[target] = {**rows[target], label: min(1.0, rows[target][label] + bump)}
    after = by_company(aggregate_companies(table_of(rows), AS_OF))[company]
    assert after["index"] >= before["index"] - TOL
    assert after["index_lower"] >= before["index_lower"] - TOL
    assert after["negative_woc"] >= before["negative_woc"]


@properties
@given(case=population_and_target(), label=st.sampled_from((SP, PP)), bump=st.floats(0.01, 1.0))
def test_more_praise_never_raises_the_index(case, label, bump):
    rows, target = case
    company = rows[target]["company"]
    before = by_company(aggregate_companies(table_of(rows), AS_OF))[company]
    rows[target] = {**rows[target], label: min(1.0, rows[target][label] + bump)}
    after = by_company(aggregate_companies(table_of(rows), AS_OF))[company]
    assert after["index"] <= before["index"] + TOL
    assert after["index_upper"] <= before["index_upper"] + TOL


def test_service_complaint_outweighs_product_complaint():
    rows = [{"company": "x", "age_days": 1, SC: 0.5}, {"company": "y", "age_days": 1, PC: 0.5},
            {"company": "z", "age_days": 1, SP: 0.5}]
    out = by_company(aggregate_companies(table_of(rows), AS_OF))
    assert out["x"]["negative_woc"] == pytest.approx(1.6 * out["y"]["negative_woc"])
    assert out["x"]["service_share"] == 1.0 and out["y"]["service_share"] == 0.0


@properties
@given(rows=population(), shift=st.floats(1.0, 29.0), pick=st.integers(0, 5))
def test_the_same_reviews_older_count_less(rows, shift, pick):
    company = rows[pick % len(rows)]["company"]
    before = by_company(aggregate_companies(table_of(rows), AS_OF))[company]
    older = [{**r, "age_days": r["age_days"] + shift} if r["company"] == company else r
             for r in rows]
    after = by_company(aggregate_companies(table_of(older), AS_OF))[company]
    decay = 0.5 ** (shift / AggregateSettings().half_life_days)
    assert after["negative_woc"] == pytest.approx(before["negative_woc"] * decay, rel=1e-9)
    assert after["positive_woc"] == pytest.approx(before["positive_woc"] * decay, rel=1e-9)
    if before["negative_woc"] > 0:
        assert after["negative_woc"] < before["negative_woc"]


@properties
@given(rows=population(), order=st.randoms(use_true_random=False))
def test_reordering_rows_changes_nothing(rows, order):
    shuffled = list(rows)
    order.shuffle(shuffled)
    first = by_company(aggregate_companies(table_of(rows), AS_OF))
    second = by_company(aggregate_companies(table_of(shuffled), AS_OF))
    assert first.keys() == second.keys()
    for company, row in first.items():
        for name, value in row.items():
            other = second[company][name]
            assert close(value, other) if isinstance(value, float) else value == other, name


@properties
@given(factor=st.floats(0.01, 100.0), rows=population())
def test_scaling_all_reach_leaves_the_index_unchanged(factor, rows):
    base = AggregateSettings()
    scaled = base.model_copy(
        update={"channel_reach": ChannelReach(**{
            c: getattr(base.channel_reach, c) * factor for c in CHANNELS
        })}
    )
    first = by_company(aggregate_companies(table_of(rows), AS_OF, base))
    second = by_company(aggregate_companies(table_of(rows), AS_OF, scaled))
    for company, row in first.items():
        for name in ("index", "index_lower", "index_upper", "prior_index", "prior_strength"):
            assert close(row[name], second[company][name], rel=1e-7), name
        assert row["rank"] == second[company]["rank"]
        assert second[company]["negative_woc"] == pytest.approx(row["negative_woc"] * factor)


background_review = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(CHANNELS),
        "age_days": st.floats(0.5, 60.0),
        SC: st.floats(0.0, 0.2),
        PC: st.floats(0.0, 0.2),
        SP: st.floats(0.5, 1.0),
        PP: st.floats(0.5, 1.0),
    }
)


@properties
@given(
    background=st.lists(st.lists(background_review, min_size=1, max_size=8), max_size=6),
    viral=review,
    channel=st.sampled_from(CHANNELS),
    age=st.floats(0.5, 60.0),
)
def test_one_complaint_in_one_review_ranks_below_sixty_in_a_hundred(background, viral, channel,
                                                                    age):
    rows = [{**r, "company": f"bg{c}"} for c, reviews in enumerate(background) for r in reviews]
    # The single review may be as viral as it likes: it is still one review of evidence.
    rows.append({**viral, "company": "one", SC: 1.0, PC: 0.0, SP: 0.0, PP: 0.0})
    for i in range(100):
        probs = {SC: 1.0} if i < 60 else {SP: 1.0}
        rows.append({"company": "hundred", "channel": channel, "age_days": age, **probs})
    out = by_company(aggregate_companies(table_of(rows), AS_OF))
    assert out["hundred"]["rank"] < out["one"]["rank"]


def test_alike_small_companies_cannot_outweigh_a_large_one_that_differs():
    # Hypothesis found this: four near-identical companies of one review each put the estimated
    # prior strength at its ceiling of 1000, so the hundred reviews (60 complaints) were shrunk
    # to an index of 40 and one complaint in one review ranked above them.
    rows = [{"company": f"bg{c}", "channel": "review_site", "age_days": 1.0, SC: complaint,
             SP: 0.5, PP: 0.5} for c, complaint in enumerate((0.0, 0.125, 0.125, 0.1875))]
    rows.append({"company": "one", "channel": "review_site", "age_days": 1.0, SC: 1.0})
    rows += [{"company": "hundred", "channel": "review_site", "age_days": 1.0,
              **({SC: 1.0} if i < 60 else {SP: 1.0})} for i in range(100)]
    out = by_company(aggregate_companies(table_of(rows), AS_OF))
    # the prior of "hundred" weighs exactly the other companies' effective reviews
    others = sum(row["effective_complaints"] + row["effective_praise"]
                 for company, row in out.items() if company != "hundred")
    assert out["hundred"]["prior_strength"] == pytest.approx(others)
    assert out["hundred"]["index"] > 60
    assert out["hundred"]["rank"] < out["one"]["rank"]


@properties
@given(channel=st.sampled_from(CHANNELS), age=st.floats(0.5, 89.0), sc=probability,
       shares=st.integers(1, 50))
def test_missing_engagement_falls_back_to_the_channel_default(channel, age, sc, shares):
    rows = [
        {"review_id": "empty", "company": "a", "channel": channel, "age_days": age, SC: sc},
        {"review_id": "zero", "company": "a", "channel": channel, "age_days": age, SC: sc,
         "shares": 0, "likes": 0},
        {"review_id": "shared", "company": "a", "channel": channel, "age_days": age, SC: sc,
         "shares": shares},
    ]
    defaults = AggregateSettings()
    expected = getattr(defaults.channel_reach, channel) * 0.5 ** (age / defaults.half_life_days)
    top = explain_company(table_of(rows), "a", AS_OF).top_reviews
    reach = dict(zip(top["review_id"].to_pylist(), top["reach"].to_pylist(), strict=True))
    assert reach["empty"] == pytest.approx(expected, rel=1e-9)
    assert reach["zero"] == pytest.approx(expected, rel=1e-9)
    assert reach["shared"] == pytest.approx(expected * (1 + shares * defaults.share_weight),
                                            rel=1e-9)


def test_unknown_channel_is_an_error_naming_the_value_and_the_options():
    rows = [{"company": "a", "channel": "tiktok", "age_days": 3, SC: 0.9}]
    with pytest.raises(DataError, match=r"'tiktok'.*review_site, facebook, twitter, instagram"):
        aggregate_companies(table_of(rows), AS_OF)


def test_unknown_channel_other_counts_with_the_other_reach_never_zero():
    unknown = [{"company": "a", "channel": "tiktok", "age_days": 3, SC: 0.9}]
    other = [{"company": "a", "channel": "other", "age_days": 3, SC: 0.9}]
    lenient = AggregateSettings(unknown_channel="other")
    got = by_company(aggregate_companies(table_of(unknown), AS_OF, lenient))["a"]
    want = by_company(aggregate_companies(table_of(other), AS_OF))["a"]
    assert got["negative_woc"] == pytest.approx(want["negative_woc"]) and got["negative_woc"] > 0
    assert got["negative_woc_other"] == got["negative_woc"]


def test_channel_case_and_spaces_are_normalised_and_missing_channel_is_other():
    rows = [{"company": "a", "channel": " Facebook ", "age_days": 3, SC: 0.9},
            {"company": "b", "channel": None, "age_days": 3, SC: 0.9}]
    out = by_company(aggregate_companies(table_of(rows), AS_OF))
    assert out["a"]["negative_woc_facebook"] == out["a"]["negative_woc"] > 0
    assert out["b"]["negative_woc_other"] == out["b"]["negative_woc"] > 0


# Which rows count ------------------------------------------------------------------------------


def test_undated_and_future_rows_are_left_out_and_counted():
    rows = [{"company": "a", "age_days": 3, SC: 0.5}, {"company": "a", "age_days": None, SC: 1.0},
            {"company": "a", "age_days": -2, SC: 1.0}, {"company": "b", "age_days": None, SC: 1}]
    out = aggregate_companies(table_of(rows), AS_OF)
    assert out["company"].to_pylist() == ["a"]
    assert out["review_count"].to_pylist() == [1]
    assert out.schema.metadata[b"wordofclick.undated_rows"] == b"2"
    assert out.schema.metadata[b"wordofclick.future_rows"] == b"1"


def test_as_of_date_includes_that_day_and_window_bounds():
    rows = [{"company": "a", "age_days": 0.1}, {"company": "b", "age_days": 29.9},
            {"company": "c", "age_days": 30.1}]
    out = aggregate_companies(table_of(rows), AS_OF, window="30d")
    assert sorted(out["company"].to_pylist()) == ["a", "b"]
    assert by_company(out)["a"]["previous_index"] is None


@pytest.mark.parametrize(
    ("change", "match"),
    [({SC: 1.5}, "prob_service_complaint missing or outside"),
     ({"shares": -1}, "negative shares or likes"),
     ({"company": None}, "no company")],
)
def test_bad_rows_are_errors(change, match):
    rows = [{"company": "a", "age_days": 1, SC: 0.2}]
    rows[0].update(change)
    table = table_of(rows)
    if change.get("company", "x") is None:
        table = table.set_column(1, "company", pa.array([None], pa.string()))
    with pytest.raises(DataError, match=match):
        aggregate_companies(table, AS_OF)


def test_missing_columns_are_named():
    with pytest.raises(DataError, match="created_at"):
        aggregate_companies({"review_id": ["r"], "company": ["a"], SC: [0.1]}, AS_OF)
    with pytest.raises(DataError, match="no complaint probability"):
        aggregate_companies(table_of([{"company": "a", "age_days": 1}]).drop([SC, PC]), AS_OF)


def test_empty_window_gives_an_empty_table_with_the_columns():
    out = aggregate_companies(table_of([{"company": "a", "age_days": 400, SC: 0.3}]), AS_OF)
    assert out.num_rows == 0 and "index_lower" in out.column_names


# Worked example in docs/word_of_click.md -------------------------------------------------------


def doc_table(marker: str) -> list[dict[str, str]]:
    text = (ROOT / "docs" / "word_of_click.md").read_text(encoding="utf-8")
    after = text.split(f"<!-- worked-example: {marker} -->", 1)[1].lstrip("\n").splitlines()
    lines = []
    for line in after:
        if not line.startswith("|"):
            break
        lines.append(line)
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def shown(text: str) -> tuple[float, float]:
    """A number as printed in the doc and half a unit of its last printed digit."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), 0.5 * 10**-decimals + 1e-12


def doc_example() -> pa.Table:
    rows = []
    for row in doc_table("reviews"):
        rows.append({
            "review_id": row["review_id"], "company": row["company"],
            "channel": row["channel"] or None,
            "age_days": float(row["age_days"]) if row["age_days"] else None,
            "shares": int(row["shares"]) if row["shares"] else None,
            "likes": int(row["likes"]) if row["likes"] else None,
            **{name: float(row[name]) for name in PROBS},
        })
    return table_of(rows)


def test_worked_example_reach_table_recomputed_by_hand():
    s = AggregateSettings()
    reviews = {row["review_id"]: row for row in doc_table("reviews")}
    for row in doc_table("reach"):
        review = reviews[row["review_id"]]
        channel = review["channel"] or "other"
        age = float(review["age_days"])
        in_window = age if age < 90 else age - 90
        engagement = (1 + s.share_weight * float(review["shares"] or 0)
                      + s.like_weight * float(review["likes"] or 0))
        reach = (getattr(s.channel_reach, channel) * engagement
                 * 0.5 ** (in_window / s.half_life_days))
        complaint = s.service_weight * float(review[SC]) + float(review[PC])
        praise = s.service_weight * float(review[SP]) + float(review[PP])
        ratio = getattr(s.praise_sharing, channel) / getattr(s.complaint_sharing, channel)
        expected = {"engagement": engagement, "decay": reach / engagement
                    / getattr(s.channel_reach, channel), "reach": reach,
                    "complaint weight": complaint, "negative": reach * complaint,
                    "praise ratio": ratio, "praise weight": praise,
                    "positive": reach * ratio * praise}
        assert row["channel used"] == channel
        assert row["window"] == ("current" if age < 90 else "previous")
        for name, value in expected.items():
            number, tolerance = shown(row[name])
            assert abs(number - value) <= tolerance, (row["review_id"], name, value)


def test_worked_example_company_and_trend_tables_match_the_implementation():
    out = aggregate_companies(doc_example(), AS_OF, AggregateSettings(prior_strength=4))
    got = by_company(out)
    assert out.schema.metadata[b"wordofclick.undated_rows"] == b"1"
    reach = {row["review_id"]: float(row["reach"]) for row in doc_table("reach")}
    for row in doc_table("companies"):
        actual = got[row["company"]]
        for name, text in row.items():
            if name in actual and name != "company":
                number, tolerance = shown(text)
                assert abs(number - actual[name]) <= tolerance, (row["company"], name)
        members = [r["review_id"] for r in doc_table("reviews")
                   if r["company"] == row["company"] and r["age_days"]
                   and float(r["age_days"]) < 90]
        mean_reach = sum(reach[m] for m in members) / len(members)
        prior = actual["prior_index"] / 100
        for name, value in (("mean reach", mean_reach),
                            ("a", prior * 4 + actual["effective_complaints"]),
                            ("b", (1 - prior) * 4 + actual["effective_praise"])):
            number, tolerance = shown(row[name])
            assert abs(number - value) <= tolerance + 1e-4 * abs(value), (row["company"], name)
        assert actual["index"] == pytest.approx(100 * (prior * 4 + actual["effective_complaints"])
                                                / (4 + actual["effective_complaints"]
                                                   + actual["effective_praise"]))
    for row in doc_table("trend"):
        actual = got[row["company"]]
        assert str(actual["alert"]).lower() == row["alert"]
        for name in ("previous_review_count", "previous_index", "previous_index_lower",
                     "previous_index_upper", "change"):
            if not row[name]:
                assert actual[name] is None
            else:
                number, tolerance = shown(row[name])
                assert abs(number - actual[name]) <= tolerance, (row["company"], name)


def test_alert_rules_on_the_worked_example():
    example = doc_example()
    strict = AggregateSettings(prior_strength=4, alert_rule="no_overlap")
    assert not by_company(aggregate_companies(example, AS_OF, strict))["Acme"]["alert"]
    better = AggregateSettings(prior_strength=4, alert_on="both")
    assert by_company(aggregate_companies(example, AS_OF, better))["Acme"]["alert"]


def test_explain_company_decomposes_the_negative_word_of_click():
    why = explain_company(doc_example(), "Acme", AS_OF, AggregateSettings(prior_strength=4),
                          top=2)
    total = why.summary["negative_woc"]
    assert sum(why.by_aspect["negative_woc"].to_pylist()) == pytest.approx(total)
    assert sum(why.by_channel["negative_woc"].to_pylist()) == pytest.approx(total)
    assert sum(why.by_channel["review_count"].to_pylist()) == why.summary["review_count"]
    assert why.top_reviews["review_id"].to_pylist() == ["a1", "a2"]
    assert why.top_reviews["share"][0].as_py() == pytest.approx(1530.1741 / 1537.6608, abs=1e-6)
    with pytest.raises(DataError, match="'Nobody'"):
        explain_company(doc_example(), "Nobody", AS_OF)


# Files, formats, settings, CLI -----------------------------------------------------------------

EVIL = '=HYPERLINK("http://evil.example","click")'


def evil_rows() -> pa.Table:
    return table_of([{"company": EVIL, "age_days": 2, "channel": "facebook", SC: 0.8},
                     {"company": "Fine Co", "age_days": 5, SP: 0.9},
                     {"company": "123", "age_days": 5, PC: 0.4}])


def test_csv_output_is_safe_against_formula_injection(tmp_path):
    scores = tmp_path / "scored.parquet"
    pq.write_table(evil_rows(), scores)
    aggregate_file(scores, tmp_path / "companies.csv", AS_OF)
    with (tmp_path / "companies.csv").open(newline="", encoding="utf-8") as handle:
        companies = [row["company"] for row in csv.DictReader(handle)]
    assert "'" + EVIL in companies and EVIL not in companies
    assert "Fine Co" in companies


def as_woc_score_output(table: pa.Table) -> pa.Table:
    """``table`` in the exact schema ``woc score`` writes: review columns, probabilities, flags."""
    schema = pa.schema(
        [f.with_nullable(True) for f in (*REVIEW_SCHEMA, *scored_fields(DEFAULT_LABELS))]
    )
    columns = {}
    for field in schema:
        if field.name in table.column_names:
            columns[field.name] = table[field.name].cast(field.type)
        elif field.name.startswith("pred_"):
            columns[field.name] = pa.array([False] * table.num_rows)
        elif pa.types.is_string(field.type):
            columns[field.name] = pa.array(["x"] * table.num_rows)
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    return pa.Table.from_pydict(columns, schema=schema)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reads_what_woc_score_writes_in_every_format(tmp_path, suffix):
    scored = as_woc_score_output(doc_example())
    with TableWriter(tmp_path / f"part-1{suffix}", scored.schema) as writer:
        writer.write(scored)
    fixed = AggregateSettings(prior_strength=4)
    got = by_company(aggregate_file(tmp_path / f"part-*{suffix}", tmp_path / "o.parquet", AS_OF,
                                    fixed))
    want = by_company(aggregate_companies(scored, AS_OF, fixed))
    assert got.keys() == want.keys() == {"Acme", "Bolt", "Cove"}
    for company in want:
        # CSV prints float32 probabilities in their shortest form: equal to about 1e-7.
        assert got[company]["index"] == pytest.approx(want[company]["index"], rel=1e-6)


def test_output_formats(tmp_path):
    scores = tmp_path / "scored.parquet"
    pq.write_table(doc_example(), scores)
    table = aggregate_file(scores, tmp_path / "c.parquet", AS_OF)
    assert pq.read_table(tmp_path / "c.parquet").schema.metadata[b"wordofclick.as_of"] == (
        b"2026-11-21T00:00:00+00:00"
    )
    aggregate_file(scores, tmp_path / "c.json", AS_OF)
    records = json.loads((tmp_path / "c.json").read_text())
    assert [r["company"] for r in records] == table["company"].to_pylist()
    assert records[1]["previous_index"] is None
    aggregate_file(scores, tmp_path / "c.jsonl", AS_OF)
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == table.num_rows
    with pytest.raises(ConfigError, match=r"\.xlsx.*\.csv, \.parquet, \.json"):
        aggregate_file(scores, tmp_path / "c.xlsx", AS_OF)
    with pytest.raises(DataError, match="no scored file matches"):
        aggregate_file(tmp_path / "missing-*.parquet", tmp_path / "c.csv", AS_OF)


def test_settings_reject_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'service_wieght'.*service_weight"):
        load_settings(AggregateSettings, overrides=["service_wieght=2"])
    with pytest.raises(ConfigError, match=r"channel_reach.tiktok.*facebook"):
        load_settings(AggregateSettings, overrides=["channel_reach.tiktok=5"])
    with pytest.raises(ConfigError, match="'3m'"):
        load_settings(AggregateSettings, overrides=["window=3m"])
    with pytest.raises(ConfigError, match="prior_strength_min"):
        load_settings(AggregateSettings, overrides=["prior_strength_min=50",
                                                    "prior_strength_max=10"])
    config = load_settings(AggregateSettings, ROOT / "configs" / "aggregate.yaml",
                           ["praise_sharing.facebook=0.28"])
    assert config.praise_sharing.facebook == 0.28 and config.complaint_sharing.facebook == 0.45


def test_every_constant_names_its_source_and_channels_match_the_schema():
    assert tuple(ChannelReach.model_fields) == CHANNELS

    def fields(model: type[BaseModel]):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from fields(annotation)
            else:
                yield name, field

    for name, field in fields(AggregateSettings):
        assert field.description, f"{name} has no description naming its source"


def test_cli_aggregate(tmp_path):
    scores = tmp_path / "scored.parquet"
    pq.write_table(doc_example(), scores)
    out = tmp_path / "companies.csv"
    runner = CliRunner()
    result = runner.invoke(main, ["aggregate", "--scores", str(scores), "--as-of", AS_OF,
                                  "--window", "90d", "--out", str(out), "--config",
                                  str(ROOT / "configs" / "aggregate.yaml"), "prior_strength=4"])
    assert result.exit_code == 0, result.output
    assert re.search(r"3 companies ranked, 1 alert\(s\)", result.output)
    with out.open(newline="") as handle:
        assert [row["company"] for row in csv.DictReader(handle)] == ["Acme", "Bolt", "Cove"]

    result = runner.invoke(main, ["aggregate", "--scores", str(scores), "--as-of", AS_OF,
                                  "--out", str(out), "half_lfe_days=3"])
    assert result.exit_code == 2 and "unknown key 'half_lfe_days'" in result.output
    result = runner.invoke(main, ["aggregate", "--scores", str(scores), "--as-of", "20/11/2026",
                                  "--out", str(out)])
    assert result.exit_code == 2 and "--as-of" in result.output
    bad = tmp_path / "bad.parquet"
    pq.write_table(table_of([{"company": "a", "channel": "tiktok", "age_days": 1}]), bad)
    result = runner.invoke(main, ["aggregate", "--scores", str(bad), "--as-of", AS_OF,
                                  "--out", str(out)])
    assert result.exit_code == 1 and "error:" in result.output and "'tiktok'" in result.output


# Repeated review ids, CSV round trip, as-of forms ------------------------------------------


def test_a_review_id_repeated_in_one_table_counts_once_and_the_last_row_wins():
    first = {"review_id": "r1", "company": "a", "channel": "facebook", "age_days": 3, SC: 0.1}
    last = {**first, SC: 0.9, "shares": 4}
    other = {"review_id": "r2", "company": "b", "age_days": 5, PC: 0.4}
    out = aggregate_companies(table_of([first, other, last]), AS_OF)
    want = aggregate_companies(table_of([other, last]), AS_OF)
    assert by_company(out) == by_company(want)
    assert by_company(out)["a"]["review_count"] == 1
    assert out.schema.metadata[b"wordofclick.duplicate_rows"] == b"1"
    assert want.schema.metadata[b"wordofclick.duplicate_rows"] == b"0"
    explained = explain_company(table_of([first, other, last]), "a", AS_OF)
    assert explained.top_reviews["review_id"].to_pylist() == ["r1"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_overlapping_daily_files_count_each_review_once_from_the_last_path(tmp_path, suffix):
    base = {"company": "a", "channel": "review_site", "age_days": 2}
    older = [{**base, "review_id": "r1", SC: 0.1}, {**base, "review_id": "r2", PC: 0.2}]
    newer = [{**base, "review_id": "r2", PC: 0.7}, {**base, "review_id": "r3", SC: 0.5},
             {**base, "review_id": "r3", SC: 0.6}]
    # The later date is written first: the path, not the writing order, decides.
    for name, rows in (("scored-2026-11-20", newer), ("scored-2026-11-19", older)):
        scored = as_woc_score_output(table_of(rows))
        with TableWriter(tmp_path / f"{name}{suffix}", scored.schema) as writer:
            writer.write(scored)
    got = aggregate_file(tmp_path / f"scored-*{suffix}", tmp_path / "o.parquet", AS_OF)
    kept = [older[0], newer[0], newer[2]]
    want = aggregate_companies(as_woc_score_output(table_of(kept)), AS_OF)
    assert got["review_count"].to_pylist() == [3]
    assert got["index"].to_pylist() == pytest.approx(want["index"].to_pylist(), rel=1e-6)
    assert got["expected_product_complaint"].to_pylist() == pytest.approx([0.7], rel=1e-6)
    assert got["expected_service_complaint"].to_pylist() == pytest.approx([0.7], rel=1e-6)
    assert pq.read_table(tmp_path / "o.parquet").schema.metadata[
        b"wordofclick.duplicate_rows"] == b"2"


def test_csv_from_woc_score_keeps_company_names_that_look_like_formulas(tmp_path):
    names = ["+Plus Mobile", EVIL, "-minus", "'Tis Co", "@home"]
    rows = [{"company": name, "age_days": 2, SC: 0.5} for name in names]
    scored = as_woc_score_output(table_of(rows))
    with TableWriter(tmp_path / "scored.csv", scored.schema) as writer:
        writer.write(scored)
    assert "'+Plus Mobile" in (tmp_path / "scored.csv").read_text(encoding="utf-8")
    got = aggregate_file(tmp_path / "scored.csv", tmp_path / "companies.csv", AS_OF)
    assert sorted(got["company"].to_pylist()) == sorted(names)
    with (tmp_path / "companies.csv").open(newline="", encoding="utf-8") as handle:
        written = sorted(row["company"] for row in csv.DictReader(handle))
    assert written == sorted(["'+Plus Mobile", "'" + EVIL, "'-minus", "'Tis Co", "'@home"])


@pytest.mark.parametrize("basic", ["20261120", " 20261120 "])
def test_as_of_basic_iso_date_means_the_end_of_that_day(basic):
    assert as_of_instant(basic) == as_of_instant(AS_OF) == END
    assert as_of_instant("2026-11-20T00:00:00") == END - timedelta(days=1)
    assert as_of_instant("20261120T12:00") == END - timedelta(hours=12)
    rows = [{"company": "a", "age_days": 0.1, SC: 0.5}]
    out = aggregate_companies(table_of(rows), basic)
    assert out["company"].to_pylist() == ["a"]
    assert out.schema.metadata[b"wordofclick.as_of"] == b"2026-11-21T00:00:00+00:00"
    with pytest.raises(ValueError, match="expected an ISO date"):
        as_of_instant("20/11/2026")
