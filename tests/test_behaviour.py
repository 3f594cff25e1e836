"""The behavioural test set is well formed; its scoring, the per-group metrics and the
per-company shares agree with hand computations; evaluate_model attaches them."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources

import numpy as np
import pytest
from click.testing import CliRunner

from wordofclick.behaviour import (
    BEHAVIOUR_FILE,
    CATEGORIES,
    BehaviourCase,
    load_behaviour,
    run_behaviour,
    score_behaviour,
)
from wordofclick.cli import main
from wordofclick.evaluate import (
    company_share_interval,
    company_shares,
    evaluate_model,
    format_share_errors,
    group_metrics,
    print_report,
)
from wordofclick.labels import DEFAULT_LABELS, LabelSet
from wordofclick.model import ComplaintClassifier

LABELS = LabelSet.default()
SC, PC, SP, PP = DEFAULT_LABELS


# --- the data file -------------------------------------------------------------------------------


def test_file_parses_with_the_documented_fields():
    text = resources.files("wordofclick.datasets").joinpath(BEHAVIOUR_FILE).read_text("utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert 108 <= len(records) <= 160
    for record in records:
        assert set(record) == {"id", "category", "text", "labels", "note"}
        assert isinstance(record["labels"], list)
        assert record["text"].strip() and record["note"].strip()
    assert len(load_behaviour()) == len(records)


def test_every_category_has_at_least_twelve_cases():
    counts = Counter(case.category for case in load_behaviour())
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 12, counts


def test_labels_valid_ids_unique_texts_distinct():
    cases = load_behaviour()
    for case in cases:
        assert set(case.labels) <= set(DEFAULT_LABELS), case.id
        assert len(set(case.labels)) == len(case.labels), case.id
    assert len({c.id for c in cases}) == len(cases)
    normalised = [re.sub(r"\s+", " ", c.text).strip().lower() for c in cases]
    assert len(set(normalised)) == len(cases)


def test_categories_are_what_they_say():
    cases = load_behaviour()
    by = {c: [x for x in cases if x.category == c] for c in CATEGORIES}
    assert all(1 <= len(c.text.split()) <= 4 for c in by["very_short"])
    assert all(len(c.text.split()) >= 300 for c in by["very_long"])
    assert sum("after token 128" in c.note for c in by["very_long"]) >= 4
    assert all(c.text == c.text.upper() for c in by["all_caps"])
    assert all(not c.labels for c in by["neutral"])
    # mixed reviews carry a complaint and a praise, on different aspects
    for case in by["mixed"]:
        polarities = {name.split("_")[1] for name in case.labels}
        assert polarities == {"complaint", "praise"}, case.id
    assert all(SC in c.labels for c in by["service_about_product"])
    # every label is expected somewhere, and so is "no label"
    assert {n for c in cases for n in c.labels} == set(DEFAULT_LABELS)
    assert sum(not c.labels for c in cases) >= 14


# --- scoring -------------------------------------------------------------------------------------


def test_score_behaviour_by_hand():
    cases = [
        BehaviourCase("a", "negation", "x", (SP,)),
        BehaviourCase("b", "negation", "y", (SC, PC)),
        BehaviourCase("c", "neutral", "z", ()),
        BehaviourCase("d", "mixed", "w", (SC, PP)),
    ]
    probabilities = np.array([
        [0.1, 0.1, 0.9, 0.1],   # {SP}: pass
        [0.8, 0.3, 0.1, 0.1],   # {SC} vs {SC, PC}: fail
        [0.1, 0.1, 0.1, 0.1],   # {}: pass
        [0.6, 0.1, 0.1, 0.5],   # {SC, PP} at threshold 0.5 (>=): pass
    ], dtype=np.float32)
    report = score_behaviour(cases, probabilities, [0.5] * 4, LABELS)
    assert (report.cases, report.passed, report.pass_rate) == (4, 3, 0.75)
    assert report.per_category["negation"].pass_rate == 0.5
    assert report.per_category["neutral"].pass_rate == 1.0
    assert list(report.per_category) == ["negation", "mixed", "neutral"]  # CATEGORIES order
    [failure] = report.failures
    assert (failure.id, failure.expected, failure.predicted) == ("b", [SC, PC], [SC])
    assert failure.probabilities[SC] == pytest.approx(0.8)


def test_run_behaviour_on_tiny_model_matches_hand_recomputation(tiny_model_dir):
    classifier = ComplaintClassifier.from_pretrained(tiny_model_dir)
    cases = load_behaviour()
    report = run_behaviour(classifier)

    probabilities = classifier.predict_proba([c.text for c in cases])
    names = list(LABELS)
    passed = {c.id: {names[j] for j in range(4) if probabilities[i, j] >= classifier.thresholds[j]}
              == set(c.labels) for i, c in enumerate(cases)}
    assert report.cases == len(cases)
    assert report.passed == sum(passed.values())
    assert report.pass_rate == pytest.approx(sum(passed.values()) / len(cases))
    for category in CATEGORIES:
        ids = [c.id for c in cases if c.category == category]
        expected_rate = sum(passed[i] for i in ids) / len(ids)
        assert report.per_category[category].pass_rate == pytest.approx(expected_rate)
    assert {f.id for f in report.failures} == {i for i, ok in passed.items() if not ok}
    json.dumps(report.to_dict())


# --- per-group metrics and per-company shares -----------------------------------------------------

TARGETS = np.array([
    [1, 0, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 1, 0, 1],
    [0, 0, 0, 1],
    [1, 0, 0, 0],
])
PROBS = np.array([
    [0.9, 0.1, 0.2, 0.1],
    [0.4, 0.8, 0.1, 0.1],
    [0.6, 0.2, 0.7, 0.3],
    [0.1, 0.7, 0.2, 0.8],
    [0.2, 0.6, 0.1, 0.4],
    [0.7, 0.3, 0.1, 0.2],
])
GROUPS = ["a", "a", "b", "b", "b", "b"]  # unequal sizes: shares are averaged per company


def test_group_metrics_by_hand():
    result = group_metrics(TARGETS, PROBS, [0.5] * 4, LABELS, GROUPS)
    assert set(result) == {"a", "b"}
    # a (rows 0-1): decisions SC [1,0] vs [1,1] -> F1 2/3; PC [0,1] vs [0,1] -> 1; praise: none
    a = result["a"]
    assert a["examples"] == 2
    assert a["per_label_f1"] == pytest.approx({SC: 2 / 3, PC: 1.0, SP: 0.0, PP: 0.0})
    assert a["complaint_macro_f1"] == pytest.approx(5 / 6)
    # b (rows 2-5): SC [1,0,0,1] vs [0,0,0,1] -> tp1 fp1 -> 2/3; PC [0,1,1,0] vs [0,1,0,0] -> 2/3;
    # SP [1,0,0,0] vs [1,0,0,0] -> 1; PP [0,1,0,0] vs [0,1,1,0] -> tp1 fn1 -> 2/3
    b = result["b"]
    assert b["examples"] == 4
    assert b["per_label_f1"] == pytest.approx({SC: 2 / 3, PC: 2 / 3, SP: 1.0, PP: 2 / 3})
    assert b["complaint_macro_f1"] == pytest.approx(2 / 3)


def test_company_shares_by_hand():
    result = company_shares(TARGETS, PROBS, LABELS, GROUPS)
    assert set(result) == {SC, PC}
    # SC: a mean p 0.65 vs share 1 -> 0.35; b mean p 0.40 vs share 0.25 -> 0.15; mean 0.25
    # (weighted by rows it would be 0.2167: companies count equally)
    assert result[SC] == pytest.approx(0.25)
    # PC: a 0.45 vs 0.5 -> 0.05; b 0.45 vs 0.25 -> 0.20; mean 0.125
    assert result[PC] == pytest.approx(0.125)


# --- evaluate_model and the CLI ---------------------------------------------------------------


def test_evaluate_model_attaches_behaviour_and_corpus_breakdown(tiny_model_dir, tmp_path, capsys):
    report = evaluate_model(tiny_model_dir, "corpus:test", out=tmp_path, behaviour=True)
    behaviour = report.extra["behaviour"]
    assert behaviour["cases"] == len(load_behaviour())
    assert set(behaviour["per_category"]) == set(CATEGORIES)
    assert 0.0 <= behaviour["pass_rate"] <= 1.0
    assert len(behaviour["failures"]) == behaviour["cases"] - behaviour["passed"]

    from wordofclick.datasets import load_corpus

    industries = set(load_corpus("test")["industry"].to_pylist())
    assert set(report.extra["per_industry"]) == industries
    assert sum(g["examples"] for g in report.extra["per_industry"].values()) == report.examples
    assert set(report.extra["company_share_mae"]) == {SC, PC}
    for label, (low, high) in report.extra["company_share_mae_interval"].items():
        assert low <= report.extra["company_share_mae"][label] + 1e-9
        assert high >= report.extra["company_share_mae"][label] - 1e-9

    saved = json.loads((tmp_path / "evaluation.json").read_text(encoding="utf-8"))
    assert saved["extra"]["behaviour"]["pass_rate"] == pytest.approx(behaviour["pass_rate"])
    print_report(report)
    printed = capsys.readouterr().out
    assert "behavioural tests" in printed and "sarcasm" in printed and "per industry" in printed


def test_evaluate_without_behaviour_on_a_file_adds_nothing(tiny_model_dir, tmp_path):
    data = tmp_path / "small.jsonl"
    data.write_text('{"text": "rude staff", "labels": ["service_complaint"]}\n', encoding="utf-8")
    report = evaluate_model(tiny_model_dir, data)
    assert not {"behaviour", "per_industry", "company_share_mae"} & set(report.extra)


def test_cli_behaviour_flag(tiny_model_dir, tmp_path):
    data = tmp_path / "small.jsonl"
    data.write_text('{"text": "rude staff", "labels": ["service_complaint"]}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_model_dir), "--data",
                                       str(data), "--out", str(tmp_path / "eval"), "--behaviour"])
    assert result.exit_code == 0, result.output
    assert "behavioural tests" in result.output
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    assert saved["extra"]["behaviour"]["cases"] == len(load_behaviour())


def test_cli_record_keeps_report_and_baseline_in_the_model_card(tiny_model_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = (model / "model.safetensors").read_bytes()
    args = ["evaluate", "--model", str(model), "--data", "corpus:test", "--out",
            str(tmp_path / "eval"), "--behaviour", "--baseline", str(tiny_model_dir), "--record"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "wordofclick.json").read_text(encoding="utf-8"))
    (entry,) = meta["evaluations"]
    assert entry["data"] == "corpus:test"
    assert entry["report"]["complaint_macro_f1"] == entry["baseline"]["complaint_macro_f1"]
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation on held-out data" in card
    low, high = entry["report"]["complaint_macro_f1_interval"]
    assert (f"| corpus:test | {entry['report']['examples']} | "
            f"{entry['report']['complaint_macro_f1']:.3f} ({low:.3f}-{high:.3f}) |") in card
    industry, metrics = next(iter(entry["report"]["extra"]["per_industry"].items()))
    low, high = metrics["complaint_macro_f1_interval"]
    assert f"| {industry} | {metrics['examples']} | " \
           f"{metrics['complaint_macro_f1']:.3f} ({low:.3f}-{high:.3f}) |" in card
    assert "beside the baseline" in card and "per industry" in card
    low, high = entry["report"]["extra"]["company_share_mae_interval"]["product_complaint"]
    mae = entry["report"]["extra"]["company_share_mae"]["product_complaint"]
    assert f"product_complaint {mae:.3f} ({low:.3f}-{high:.3f})" in card
    assert "Behavioural tests:" in card and "| negation |" in card
    # Recording again on the same data replaces the entry; the weights are never rewritten.
    assert CliRunner().invoke(main, [*args[:-3], "--record"]).exit_code == 0
    meta = json.loads((model / "wordofclick.json").read_text(encoding="utf-8"))
    assert len(meta["evaluations"]) == 1 and "baseline" not in meta["evaluations"][0]
    assert (model / "model.safetensors").read_bytes() == weights


def test_company_share_interval_resamples_companies():
    gaps = {SC: np.array([0.0, 0.1, 0.2, 0.3, 0.4]), PC: np.array([0.3])}
    wide = company_share_interval(gaps, resamples=20_000)
    # the mean of five resampled gaps: mean 0.2, sd 0.1414 / sqrt(5) = 0.0632, so the 95%
    # interval is close to 0.2 -+ 1.96 * 0.0632
    assert wide[SC] == pytest.approx([0.2 - 0.124, 0.2 + 0.124], abs=0.01)
    narrow = company_share_interval(gaps, level=0.5, resamples=20_000)
    assert wide[SC][0] < narrow[SC][0] < 0.2 < narrow[SC][1] < wide[SC][1]
    assert wide[PC] == []  # one company: no interval


def test_share_errors_read_with_and_without_intervals():
    extra = {"company_share_mae": {SC: 0.04, PC: 0.06},
             "company_share_mae_interval": {SC: [0.03, 0.05], PC: []}}
    assert format_share_errors(extra) == f"{SC} 0.040 (0.030-0.050), {PC} 0.060"
    assert format_share_errors({"company_share_mae": {SC: 0.04}}) == f"{SC} 0.040"
