"""The negative word-of-click score: one row per company, explainable, with intervals and trends.

``docs/word_of_click.md`` explains the model and the survey figure behind every constant. In short:

* reach of a review = channel default x (1 + share_weight x shares + like_weight x likes)
  x 0.5 ** (age in days / half-life);
* negative word of click = sum over reviews of reach x (service_weight x P(service complaint)
  + P(product complaint)); praise counts the same way, scaled down by how much less often good
  experiences are shared on that channel;
* the index (0-100) is the negative share of a company's word of click, shrunk towards the other
  companies' mean (empirical Bayes, beta-binomial) with a 90% interval; companies are ranked by
  the interval's lower bound; the same index over the previous window gives the trend and alert.

The computation runs in DuckDB over an Arrow table or the scored files themselves; Python only
touches one value per company.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator
from scipy.special import betaincinv

from wordofclick.errors import DataError
from wordofclick.exports import csv_safe_table, csv_unsafe_sql
from wordofclick.labels import ASPECTS, Label, parse_label
from wordofclick.schema import CHANNELS, prob_column
from wordofclick.settings import ConfigError, Settings

log = logging.getLogger(__name__)

REQUIRED_SCORED_COLUMNS = ("review_id", "company", "created_at")
OUTPUT_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl")
INPUT_SUFFIXES = (".parquet", ".pq", ".csv", ".json", ".jsonl", ".ndjson")
_US_PER_DAY = 86_400_000_000
# A population with (almost) no complaints must still leave a prior that a complaint can move.
_PRIOR_MEAN_BOUNDS = (0.01, 0.99)
# Lower bounds closer than this are a tie (floating-point sums differ with row order).
_RANK_DECIMALS = 9
_WINDOW_PATTERN = re.compile(r"^\s*(\d+)\s*([dw])\s*$")
# Where each scored row comes from, added to the relation ``scored``: the file's path (NULL for a
# table) and the row's position (in the file, or in the table). A review_id seen more than once
# keeps the copy from the path that sorts last, and within it the last row (as ``woc nightly``).
_SOURCE_FILE = "__woc_source_file"
_SOURCE_ROW = "__woc_source_row"
_SOURCE_COLUMNS = (_SOURCE_FILE, _SOURCE_ROW)


class ChannelReach(Settings):
    """People one review reaches on each channel, before engagement and ageing."""

    review_site: float = Field(
        10.0, gt=0, description="'An unhappy customer tells about ten people'; a review is that "
        "telling, in writing."
    )
    facebook: float = Field(
        250.0, gt=0, description="Ten people x 25: 'social media multiplies that by about 25'."
    )
    twitter: float = Field(
        250.0, gt=0, description="Ten people x 25: 'social media multiplies that by about 25'."
    )
    instagram: float = Field(
        250.0, gt=0, description="Ten people x 25: 'social media multiplies that by about 25'."
    )
    other: float = Field(
        10.0, gt=0, description="'Tells about ten people': person-to-person word of mouth; also "
        "used for rows without a channel."
    )


class ComplaintSharing(Settings):
    """Share of customers who pass on a bad experience, by channel (Dimensional Research)."""

    review_site: float = Field(0.35, gt=0, le=1, description="Review sites: 35% share bad.")
    facebook: float = Field(0.45, gt=0, le=1, description="Online friends: 45% share bad.")
    twitter: float = Field(0.45, gt=0, le=1, description="Online friends: 45% share bad.")
    instagram: float = Field(0.45, gt=0, le=1, description="Online friends: 45% share bad.")
    other: float = Field(0.80, gt=0, le=1, description="Friends and family: 80% share bad.")


class PraiseSharing(Settings):
    """Share of customers who pass on a good experience, by channel (Dimensional Research)."""

    review_site: float = Field(
        0.25, ge=0, le=1, description="Review sites: under 25% share good (upper bound used)."
    )
    facebook: float = Field(0.30, ge=0, le=1, description="Online friends: 30% share good.")
    twitter: float = Field(0.30, ge=0, le=1, description="Online friends: 30% share good.")
    instagram: float = Field(0.30, ge=0, le=1, description="Online friends: 30% share good.")
    other: float = Field(0.70, ge=0, le=1, description="Friends and family: 70% share good.")


class AggregateSettings(Settings):
    """Everything ``woc aggregate`` reads from ``configs/aggregate.yaml`` (docs/word_of_click.md).

    >>> AggregateSettings().channel_reach.facebook
    250.0
    """

    window: str = Field(
        "90d", description="Length of the scoring window ('90d', '12w'); the previous window of "
        "the same length gives the trend."
    )
    channel_reach: ChannelReach = Field(default_factory=ChannelReach)
    complaint_sharing: ComplaintSharing = Field(default_factory=ComplaintSharing)
    praise_sharing: PraiseSharing = Field(default_factory=PraiseSharing)
    share_weight: float = Field(
        1.0, ge=0, description="Each share re-broadcasts the review to an audience like the "
        "original's (the 'x 25' of social media applies again); assumption."
    )
    like_weight: float = Field(
        0.1, ge=0, description="A like surfaces the review in some followers' feeds; counted as "
        "a tenth of a share; assumption, no survey figure."
    )
    half_life_days: float = Field(
        180.0, gt=0, description="Age at which a review counts half; assumption. '60% won't "
        "return even if a trusted friend says service has improved' argues for a long memory."
    )
    service_weight: float = Field(
        1.6, ge=1, description="A service-attitude complaint counts this many product complaints: "
        "1 + 0.60 ('60% won't return even if ... service has improved'); the associate's attitude "
        "decides how an experience is remembered."
    )
    unknown_channel: Literal["error", "other"] = Field(
        "error", description="A channel outside review_site, facebook, twitter, instagram, "
        "other: 'error' stops with the value; 'other' counts it with the 'other' reach."
    )
    interval_level: float = Field(0.90, gt=0, lt=1, description="Credible interval (issue 5).")
    prior_strength: float | None = Field(
        None, gt=0, description="Weight of the population mean, in effective reviews; empty: "
        "estimated from the companies (method of moments)."
    )
    prior_strength_min: float = Field(
        2.0, gt=0, description="Floor of the estimated prior strength; also used when too few "
        "companies exist to estimate it."
    )
    prior_strength_max: float = Field(
        1000.0, gt=0, description="Ceiling of the estimated prior strength (no spread between "
        "companies would otherwise give an infinite one); it is also never above the other "
        "companies' effective reviews."
    )
    min_companies_for_prior: int = Field(
        3, ge=2, description="Other companies with opinions needed to estimate the prior strength."
    )
    alert_rule: Literal["outside_interval", "no_overlap"] = Field(
        "outside_interval", description="outside_interval: the previous index lies outside this "
        "window's interval; no_overlap: the two intervals do not overlap."
    )
    alert_on: Literal["worse", "both"] = Field(
        "worse", description="Alert only when the index rose (worse), or on any change."
    )

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        parse_window(value)
        return value

    @model_validator(mode="after")
    def _strength_bounds_ordered(self) -> AggregateSettings:
        if self.prior_strength_min > self.prior_strength_max:
            raise ValueError(
                f"prior_strength_min ({self.prior_strength_min}) must not exceed "
                f"prior_strength_max ({self.prior_strength_max})"
            )
        return self

    def praise_ratio(self, channel: str) -> float:
        """How much less often praise is passed on than a complaint on ``channel``."""
        return getattr(self.praise_sharing, channel) / getattr(self.complaint_sharing, channel)

    def aspect_weight(self, aspect: str) -> float:
        return self.service_weight if aspect == "service" else 1.0


def parse_window(window: str | timedelta) -> timedelta:
    """Turn ``"90d"`` or ``"12w"`` into a :class:`~datetime.timedelta`.

    >>> parse_window("12w").days
    84
    """
    if isinstance(window, timedelta):
        length = window
    else:
        match = _WINDOW_PATTERN.match(str(window))
        if match is None:
            raise ValueError(
                f"window {window!r}: expected a number of days or weeks such as '90d' or '12w'"
            )
        number, unit = int(match.group(1)), match.group(2)
        length = timedelta(days=number) if unit == "d" else timedelta(weeks=number)
    if length <= timedelta(0):
        raise ValueError(f"window {window!r}: must be longer than zero")
    return length


def as_of_instant(as_of: date | datetime | str) -> datetime:
    """The end of the scoring window in UTC. A date means the end of that day (it is included),
    in any ISO form (``2026-11-20``, ``20261120``); a date-time is that instant.

    >>> as_of_instant("2026-11-20").isoformat()
    '2026-11-21T00:00:00+00:00'
    >>> as_of_instant("20261120").isoformat()
    '2026-11-21T00:00:00+00:00'
    """
    if isinstance(as_of, str):
        text = as_of.strip()
        try:
            as_of = date.fromisoformat(text)
        except ValueError:
            try:
                as_of = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"as_of {text!r}: expected an ISO date (2026-11-20) or date-time"
                ) from None
    if isinstance(as_of, datetime):
        return as_of.replace(tzinfo=timezone.utc) if as_of.tzinfo is None else as_of
    return datetime.combine(as_of + timedelta(days=1), time(), tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Frame:
    """The scored rows' columns and labels and the window bounds (UTC microseconds)."""

    columns: tuple[str, ...]
    labels: tuple[Label, ...]
    end_us: int
    window_us: int


def aggregate_companies(
    scored: Any,
    as_of: date | datetime | str,
    settings: AggregateSettings | None = None,
    window: str | timedelta | None = None,
) -> pa.Table:
    """One row per company with reviews in the window ending at ``as_of``: the word-of-click score.

    ``scored`` is a pyarrow Table (or anything ``pyarrow.table`` accepts) with review_id, company,
    created_at, optional channel/shares/likes and one ``prob_<label>`` column per label. Rows
    without ``created_at`` cannot be placed in a window and are left out (counted in the schema
    metadata ``wordofclick.undated_rows``); rows after ``as_of`` are left out too. A review_id
    seen more than once counts once, its last row (``wordofclick.duplicate_rows`` counts the
    copies left out). See docs/word_of_click.md for the columns.

    >>> import datetime as dt
    >>> rows = {"review_id": ["r1"], "company": ["Acme"], "channel": ["facebook"],
    ...         "created_at": [dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)],
    ...         "prob_service_complaint": [0.9], "prob_service_praise": [0.0]}
    >>> aggregate_companies(rows, as_of="2026-11-20").column("rank").to_pylist()
    [1]
    """
    settings = settings or AggregateSettings()
    with _connect() as con:
        _register_table(con, scored)
        frame = _frame(con, "scored input", as_of, settings, window)
        return _aggregate(con, frame, settings, "scored input")


def aggregate_file(
    scores_path: str | Path,
    out_path: str | Path,
    as_of: date | datetime | str,
    settings: AggregateSettings | None = None,
    window: str | timedelta | None = None,
) -> pa.Table:
    """Aggregate scored reviews from Parquet, CSV or JSONL (a file or a glob) and write the result.

    The output format follows ``out_path``'s suffix: .csv (safe against formula injection),
    .parquet, .json (an array of objects) or .jsonl. Returns the table written.
    """
    settings = settings or AggregateSettings()
    _check_output_suffix(out_path)
    with _connect() as con:
        _open_scores(con, str(scores_path))
        frame = _frame(con, str(scores_path), as_of, settings, window)
        table = _aggregate(con, frame, settings, str(scores_path))
    write_companies(table, out_path)
    return table


def write_companies(table: pa.Table, path: str | Path) -> None:
    """Write an aggregate table as .csv (formula-safe), .parquet, .json or .jsonl by suffix."""
    path = Path(path)
    suffix = _check_output_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        pacsv.write_csv(csv_safe_table(table), path)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    else:
        rows = table.to_pylist()
        with path.open("w", encoding="utf-8") as handle:
            if suffix == ".json":
                json.dump(rows, handle, ensure_ascii=False, allow_nan=False, indent=1)
            else:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")


def _check_output_suffix(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"{path}: cannot write format {suffix!r}; name the file "
            f"{', '.join(OUTPUT_SUFFIXES)}"
        )
    return suffix


@dataclass(frozen=True)
class CompanyExplanation:
    """Why a company scores what it scores: its row and where its negative word of click comes from.

    ``by_aspect``: aspect, negative_woc, share. ``by_channel``: channel, review_count,
    negative_woc, positive_woc, share (of negative). ``top_reviews``: review_id, channel,
    created_at, reach, negative_woc, share; the largest contributions first.
    """

    company: str
    summary: dict[str, Any]
    by_aspect: pa.Table
    by_channel: pa.Table
    top_reviews: pa.Table


def explain_company(
    scored: Any,
    company: str,
    as_of: date | datetime | str,
    settings: AggregateSettings | None = None,
    window: str | timedelta | None = None,
    top: int = 10,
) -> CompanyExplanation:
    """Decompose one company's score: service vs product, per channel, and its top reviews.

    The whole population is needed because the index is shrunk towards the other companies.

    >>> import datetime as dt
    >>> rows = {"review_id": ["r1", "r2"], "company": ["Acme", "Acme"],
    ...         "channel": ["facebook", "review_site"],
    ...         "created_at": [dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)] * 2,
    ...         "prob_service_complaint": [0.9, 0.1], "prob_product_complaint": [0.0, 0.5]}
    >>> explain_company(rows, "Acme", as_of="2026-11-20").top_reviews["review_id"].to_pylist()
    ['r1', 'r2']
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    settings = settings or AggregateSettings()
    with _connect() as con:
        _register_table(con, scored)
        frame = _frame(con, "scored input", as_of, settings, window)
        companies = _aggregate(con, frame, settings, "scored input")
        match = companies.filter(pc.equal(companies["company"], company))
        if match.num_rows == 0:
            raise DataError(
                f"company {company!r} has no reviews in the window ending {as_of}; "
                f"{companies.num_rows} companies do"
            )
        summary = match.to_pylist()[0]
        reviews = _reviews_sql(frame, settings)
        negative = " + ".join(f"neg_{aspect}" for aspect in ASPECTS)
        by_channel = con.sql(
            f"""
            SELECT channel, count(*) AS review_count, sum({negative}) AS negative_woc,
                   sum(pos) AS positive_woc
            FROM ({reviews}) WHERE win = 0 AND company = ?
            GROUP BY channel ORDER BY negative_woc DESC, channel
            """,
            params=[company],
        ).to_arrow_table()
        top_reviews = con.sql(
            f"""
            SELECT review_id, channel, created_at, reach, {negative} AS negative_woc
            FROM ({reviews}) WHERE win = 0 AND company = ?
            ORDER BY negative_woc DESC, review_id LIMIT ?
            """,
            params=[company, top],
        ).to_arrow_table()
    total = summary["negative_woc"]
    by_aspect = pa.table(
        {
            "aspect": list(ASPECTS),
            "negative_woc": [summary[f"negative_woc_{aspect}"] for aspect in ASPECTS],
        }
    )
    return CompanyExplanation(
        company=company,
        summary=summary,
        by_aspect=_with_share(by_aspect, total),
        by_channel=_with_share(by_channel, total),
        top_reviews=_with_share(top_reviews, total),
    )


def _with_share(table: pa.Table, total: float) -> pa.Table:
    share = pc.divide(table["negative_woc"], total) if total > 0 else pa.nulls(table.num_rows)
    return table.append_column("share", pc.cast(share, pa.float64()))


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Timestamps without a zone are read as UTC.
    con.execute("SET TimeZone = 'UTC'")
    # One thread: parallel hash aggregation adds floats in a run-dependent order, and the nightly
    # job promises that a killed and restarted run ends in a byte-identical store.
    con.execute("SET threads = 1")
    return con


def _register_table(con: duckdb.DuckDBPyConnection, scored: Any) -> None:
    """Expose an Arrow table (or anything ``pyarrow.table`` accepts) as the relation ``scored``,
    with each row's position so that of two rows with one review_id the last one counts."""
    table = scored if isinstance(scored, pa.Table) else pa.table(scored)
    table = table.drop_columns([name for name in _SOURCE_COLUMNS if name in table.column_names])
    table = table.append_column(_SOURCE_FILE, pa.nulls(table.num_rows, pa.string()))
    table = table.append_column(_SOURCE_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    con.register("scored", table)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_scores(con: duckdb.DuckDBPyConnection, pattern: str) -> None:
    """Expose the scored files as the relation ``scored``, with each row's file and position."""
    if not glob.glob(pattern):
        raise DataError(f"{pattern}: no scored file matches; check the path or glob")
    suffix = Path(pattern).suffix.lower()
    quoted = "'" + pattern.replace("'", "''") + "'"
    origin = f"filename = '{_SOURCE_FILE}', union_by_name = true"
    if suffix in (".parquet", ".pq"):
        source = f"read_parquet({quoted}, {origin})"
    elif suffix == ".csv":
        # Every cell as text, cast below: a company named 123 must stay a name.
        source = f"read_csv({quoted}, header = true, all_varchar = true, {origin})"
    elif suffix in (".json", ".jsonl", ".ndjson"):
        source = f"read_json({quoted}, format = 'auto', {origin})"
    else:
        raise DataError(
            f"{pattern}: unsupported scored file type {suffix!r}; "
            f"expected one of {', '.join(INPUT_SUFFIXES)}"
        )
    try:
        cells = "*"
        if suffix == ".csv":
            # woc score's CSV guards cells a spreadsheet would run ('+Plus Mobile): undo that.
            names = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            cells = ", ".join(
                _SOURCE_FILE if name == _SOURCE_FILE
                else f"{csv_unsafe_sql(_quote_identifier(name))} AS {_quote_identifier(name)}"
                for name in names
            )
        # A window over the scan alone streams in the files' order: the row's position.
        con.execute(
            f"CREATE VIEW scored AS SELECT {cells}, row_number() OVER () AS {_SOURCE_ROW} "
            f"FROM {source}"
        )
    except duckdb.Error as error:
        raise DataError(f"{pattern}: cannot read the scored rows ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    # DuckDB appends the offending SQL on further lines; the first one says what is wrong.
    return str(error).strip().splitlines()[0]


def _frame(
    con: duckdb.DuckDBPyConnection,
    source: str,
    as_of: date | datetime | str,
    settings: AggregateSettings,
    window: str | timedelta | None,
) -> _Frame:
    columns = tuple(
        row[0] for row in con.sql("DESCRIBE scored").fetchall() if row[0] not in _SOURCE_COLUMNS
    )
    missing = [name for name in REQUIRED_SCORED_COLUMNS if name not in columns]
    if missing:
        raise DataError(
            f"{source}: no column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED_SCORED_COLUMNS)} and prob_<label> columns (woc score output)"
        )
    labels = []
    for name in columns:
        if name.startswith("prob_"):
            label = name.removeprefix("prob_")
            try:
                labels.append(parse_label(label))
            except ValueError as error:
                raise DataError(f"{source}: column {name!r}: {error}") from None
    if not any(label.polarity == "complaint" for label in labels):
        raise DataError(
            f"{source}: no complaint probability column (prob_<aspect>_complaint); "
            f"columns: {', '.join(columns)}"
        )
    end = as_of_instant(as_of)
    length = parse_window(window if window is not None else settings.window)
    return _Frame(
        columns=columns,
        labels=tuple(labels),
        end_us=_epoch_us(end),
        window_us=length // timedelta(microseconds=1),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch_us(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _from_epoch_us(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def _base_sql(frame: _Frame) -> str:
    """The scored rows with typed columns, one per review_id; absent optional columns read as
    missing.

    A review_id seen more than once (overlapping daily files) keeps the copy from the file whose
    path sorts last and, within a file or table, the last row; ``duplicates_dropped`` on the kept
    row says how many copies were left out. Rows without a review_id are all kept.
    """

    def optional(name: str, sql_type: str) -> str:
        return f"CAST({name} AS {sql_type})" if name in frame.columns else f"NULL::{sql_type}"

    probs = ", ".join(
        f"CAST({prob_column(label.name)} AS DOUBLE) AS {prob_column(label.name)}"
        for label in frame.labels
    )
    raw_channel = f"lower(trim({optional('channel', 'VARCHAR')}))"
    return f"""
        WITH typed AS (
            SELECT CAST(review_id AS VARCHAR) AS review_id, CAST(company AS VARCHAR) AS company,
                   CAST(created_at AS TIMESTAMPTZ) AS created_at,
                   epoch_us(CAST(created_at AS TIMESTAMPTZ)) AS ts,
                   {raw_channel} AS raw_channel,
                   {optional('shares', 'DOUBLE')} AS shares,
                   {optional('likes', 'DOUBLE')} AS likes,
                   {probs},
                   {_SOURCE_FILE} AS source_file, {_SOURCE_ROW} AS source_row
            FROM scored
        )
        SELECT * EXCLUDE (source_file, source_row),
               CASE WHEN review_id IS NULL THEN 0
                    ELSE count(*) OVER (PARTITION BY review_id) - 1 END AS duplicates_dropped
        FROM typed
        QUALIFY review_id IS NULL
             OR row_number() OVER (PARTITION BY review_id
                                   ORDER BY source_file DESC NULLS LAST, source_row DESC) = 1
    """


def _check_counts(sums: pa.Table, frame: _Frame, settings: AggregateSettings,
                  source: str) -> dict[str, int]:
    """Stop on anything that would make the score wrong; return the counts of rows left out."""

    def total(name: str) -> int:
        return int(pc.sum(sums[name]).as_py() or 0)

    if total("rows_without_company"):
        raise DataError(
            f"{source}: {total('rows_without_company')} row(s) have no company; "
            "every review needs one"
        )
    if total("rows_negative_engagement"):
        raise DataError(
            f"{source}: {total('rows_negative_engagement')} row(s) have negative shares or likes; "
            "counts must be 0 or more (leave them empty when unknown)"
        )
    for label in frame.labels:
        bad = total(f"rows_bad_{label.name}")
        if bad:
            raise DataError(
                f"{source}: {bad} row(s) have {prob_column(label.name)} missing or outside [0, 1]"
            )
    unknown = total("rows_unknown_channel")
    if unknown and settings.unknown_channel == "error":
        example = pc.min(sums["unknown_channel_example"]).as_py()
        raise DataError(
            f"{source}: channel {example!r} ({unknown} row(s) with unknown channels) is not one "
            f"of {', '.join(CHANNELS)}; fix the rows, or set unknown_channel=other to count them "
            "with the 'other' reach"
        )
    return {"undated_rows": total("rows_undated"), "future_rows": total("rows_future"),
            "unknown_channel_rows": unknown, "duplicate_rows": total("rows_duplicate")}


def _reviews_sql(frame: _Frame, settings: AggregateSettings) -> str:
    """One row per scored row with its reach; ``win`` is 0 in the current window, 1 in the
    previous one and NULL outside both (undated and future rows included)."""
    known = ", ".join(f"'{channel}'" for channel in CHANNELS)
    reach_case = " ".join(
        f"WHEN '{c}' THEN {float(getattr(settings.channel_reach, c))!r}" for c in CHANNELS
    )
    praise_case = " ".join(f"WHEN '{c}' THEN {settings.praise_ratio(c)!r}" for c in CHANNELS)
    start = frame.end_us - frame.window_us
    previous_start = start - frame.window_us

    def weighted(polarity: str, aspect: str | None = None) -> str:
        terms = [
            f"{settings.aspect_weight(label.aspect)!r} * {prob_column(label.name)}"
            for label in frame.labels
            if label.polarity == polarity and aspect in (None, label.aspect)
        ]
        return " + ".join(terms) if terms else "0.0"

    negatives = ", ".join(
        f"reach * ({weighted('complaint', aspect)}) AS neg_{aspect}" for aspect in ASPECTS
    )
    return f"""
        WITH windowed AS (
            SELECT *,
                   CASE WHEN ts >= {start} AND ts < {frame.end_us} THEN 0
                        WHEN ts >= {previous_start} AND ts < {start} THEN 1 END AS win,
                   CASE WHEN raw_channel IN ({known}) THEN raw_channel ELSE 'other' END AS channel
            FROM ({_base_sql(frame)})
        ), reached AS (
            SELECT *,
                   (CASE channel {reach_case} END)
                   * (1 + {settings.share_weight!r} * coalesce(shares, 0)
                        + {settings.like_weight!r} * coalesce(likes, 0))
                   * pow(0.5, ({frame.end_us} - win * {frame.window_us} - ts)
                              / {_US_PER_DAY * settings.half_life_days!r})
                   AS reach,
                   CASE channel {praise_case} END AS praise_ratio
            FROM windowed
        )
        SELECT *, {negatives}, reach * praise_ratio * ({weighted('praise')}) AS pos
        FROM reached
    """


def _company_sums(con: duckdb.DuckDBPyConnection, frame: _Frame,
                  settings: AggregateSettings) -> pa.Table:
    """Per (window, company): the sums the score needs and counts of unusable rows, in one pass."""
    negative = " + ".join(f"neg_{aspect}" for aspect in ASPECTS)
    known = ", ".join(f"'{channel}'" for channel in CHANNELS)
    unknown = f"raw_channel IS NOT NULL AND raw_channel NOT IN ({known})"
    sums = [
        f"sum({prob_column(label.name)}) AS expected_{label.name}" for label in frame.labels
    ]
    sums += [f"sum(neg_{aspect}) AS negative_woc_{aspect}" for aspect in ASPECTS]
    sums += [
        f"coalesce(sum({negative}) FILTER (WHERE channel = '{c}'), 0) AS negative_woc_{c}"
        for c in CHANNELS
    ]
    sums += [
        f"count(*) FILTER (WHERE {p} IS NULL OR isnan({p}) OR {p} < 0 OR {p} > 1) "
        f"AS rows_bad_{label.name}"
        for label, p in ((label, prob_column(label.name)) for label in frame.labels)
    ]
    return con.sql(
        f"""
        SELECT win, company, count(*) AS review_count, {", ".join(sums)},
               sum(pos) AS positive_woc, sum(reach) AS reach_sum,
               count(*) FILTER (WHERE company IS NULL) AS rows_without_company,
               count(*) FILTER (WHERE ts IS NULL) AS rows_undated,
               sum(duplicates_dropped) AS rows_duplicate,
               count(*) FILTER (WHERE ts >= {frame.end_us}) AS rows_future,
               count(*) FILTER (WHERE shares < 0 OR likes < 0) AS rows_negative_engagement,
               count(*) FILTER (WHERE {unknown}) AS rows_unknown_channel,
               min(raw_channel) FILTER (WHERE {unknown}) AS unknown_channel_example
        FROM ({_reviews_sql(frame, settings)})
        GROUP BY win, company
        ORDER BY win, company
        """
    ).to_arrow_table()


def _aggregate(con: duckdb.DuckDBPyConnection, frame: _Frame, settings: AggregateSettings,
               source: str) -> pa.Table:
    try:
        sums = _company_sums(con, frame, settings)
    except duckdb.Error as error:
        raise DataError(f"{source}: cannot read the scored rows ({_first_line(error)})") from None
    counts = _check_counts(sums, frame, settings, source)
    if counts["undated_rows"]:
        log.warning("%s: %d row(s) without created_at left out (no window to place them in)",
                    source, counts["undated_rows"])
    if counts["duplicate_rows"]:
        log.warning("%s: %d repeated row(s) of a review_id left out (the copy from the path that "
                    "sorts last, then the last row, counts)", source, counts["duplicate_rows"])
    current = _score_window(sums.filter(pc.equal(sums["win"], 0)), frame, settings)
    previous = _score_window(sums.filter(pc.equal(sums["win"], 1)), frame, settings)
    table = _with_trend(_with_rank(current), previous, settings)
    metadata = {
        "wordofclick.as_of": _from_epoch_us(frame.end_us).isoformat(),
        "wordofclick.window_days": str(frame.window_us / _US_PER_DAY),
        "wordofclick.interval_level": str(settings.interval_level),
        **{f"wordofclick.{key}": str(value) for key, value in counts.items()},
    }
    return table.replace_schema_metadata(metadata)


def _score_window(sums: pa.Table, frame: _Frame, settings: AggregateSettings) -> pa.Table:
    """Raw word of click, effective counts and the shrunk index for one window's companies."""
    negative = np.zeros(sums.num_rows)
    for aspect in ASPECTS:
        negative += sums[f"negative_woc_{aspect}"].to_numpy()
    positive = sums["positive_woc"].to_numpy()
    # Word of click in units of the company's own mean reach per review: evidence stays on the
    # scale of its review count (one review, however viral, is one review's worth) and does not
    # change when every reach is scaled.
    mean_reach = sums["reach_sum"].to_numpy() / sums["review_count"].to_numpy()
    complaints = negative / mean_reach
    praise = positive / mean_reach
    prior_mean, strength = _loo_prior(complaints, complaints + praise, settings)
    a = prior_mean * strength + complaints
    b = (1 - prior_mean) * strength + praise
    tail = (1 - settings.interval_level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        service_share = np.where(negative > 0, sums["negative_woc_service"].to_numpy() / negative,
                                 np.nan)
    floats = {
        **{f"expected_{label.name}": sums[f"expected_{label.name}"] for label in frame.labels},
        "negative_woc": negative,
        "positive_woc": positive,
        **{f"negative_woc_{aspect}": sums[f"negative_woc_{aspect}"] for aspect in ASPECTS},
        **{f"negative_woc_{c}": sums[f"negative_woc_{c}"] for c in CHANNELS},
        "service_share": _nullable(service_share),
        "effective_complaints": complaints,
        "effective_praise": praise,
        "prior_index": 100 * prior_mean,
        "prior_strength": strength,
        "index": 100 * a / (a + b),
        "index_lower": 100 * betaincinv(a, b, tail),
        "index_upper": 100 * betaincinv(a, b, 1 - tail),
    }
    return pa.table(
        {
            "company": sums["company"],
            "review_count": sums["review_count"],
            **{name: _floats(value) for name, value in floats.items()},
        }
    )


def _loo_prior(
    successes: np.ndarray, trials: np.ndarray, settings: AggregateSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Beta prior (mean, strength) for each company from all *other* companies.

    Kleinman's (1973) method of moments for beta-binomial data with unequal sizes, weighted by
    effective review counts. Leaving the company itself out keeps its own reviews from moving the
    yardstick it is measured against, so more complaints can never lower its index.
    """
    used = trials > 0
    n = np.where(used, trials, 0.0)
    k = np.where(used, successes, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        nx2 = np.where(used, k * k / n, 0.0)
        total_n = n.sum() - n
        total_k = k.sum() - k
        total_nx2 = nx2.sum() - nx2
        total_n2 = (n * n).sum() - n * n
        companies = used.sum() - used
        raw_mean = np.where(total_n > 0, total_k / total_n, 0.5)
        mean = np.clip(raw_mean, *_PRIOR_MEAN_BOUNDS)
        if settings.prior_strength is not None:
            return mean, np.full_like(mean, settings.prior_strength)
        spread = total_nx2 - total_n * raw_mean**2
        dof = companies - 1
        denominator = total_n - total_n2 / total_n - dof
        rho = (spread / (mean * (1 - mean)) - dof) / denominator
        strength = np.where(rho > 0, 1 / rho - 1, np.inf)
    estimable = (companies >= settings.min_companies_for_prior) & (denominator > 0)
    strength = np.where(estimable, strength, settings.prior_strength_min)
    # A prior cannot carry more evidence than the reviews it was estimated from: a few alike
    # companies of one review each would otherwise reach the ceiling and outweigh a large company
    # that truly differs from them.
    ceiling = np.maximum(settings.prior_strength_min,
                         np.minimum(settings.prior_strength_max, total_n))
    return mean, np.clip(strength, settings.prior_strength_min, ceiling)


def _floats(values: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, np.ndarray):
        return pa.array(values, type=pa.float64())
    return pc.cast(values, pa.float64())


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def _with_rank(table: pa.Table) -> pa.Table:
    """Rank 1 is the company whose interval's lower bound is highest: surely the worst."""
    lower = pc.round(table["index_lower"], _RANK_DECIMALS)
    index = pc.round(table["index"], _RANK_DECIMALS)
    keyed = pa.table({"lower": lower, "index": index, "company": table["company"]})
    order = pc.sort_indices(
        keyed, sort_keys=[("lower", "descending"), ("index", "descending"),
                          ("company", "ascending")]
    )
    rank = np.empty(table.num_rows, dtype=np.int64)
    rank[order.to_numpy()] = np.arange(1, table.num_rows + 1)
    return table.append_column("rank", pa.array(rank))


def _with_trend(current: pa.Table, previous: pa.Table, settings: AggregateSettings) -> pa.Table:
    """Previous window's index beside the current one, the change, and the alert flag."""
    position = pc.index_in(current["company"], value_set=previous["company"].combine_chunks())
    found = pc.is_valid(position).to_numpy(zero_copy_only=False)

    def earlier(name: str) -> np.ndarray:
        values = previous[name].take(position).to_numpy(zero_copy_only=False)
        return np.where(found, values.astype(float), np.nan)

    prev_index = earlier("index")
    prev_lower = earlier("index_lower")
    prev_upper = earlier("index_upper")
    index = current["index"].to_numpy()
    lower = current["index_lower"].to_numpy()
    upper = current["index_upper"].to_numpy()
    if settings.alert_rule == "outside_interval":
        worse, better = prev_index < lower, prev_index > upper
    else:
        worse, better = prev_upper < lower, prev_lower > upper
    alert = worse | better if settings.alert_on == "both" else worse
    prev_count = previous["review_count"].take(position)
    return (
        current.append_column("previous_review_count", prev_count)
        .append_column("previous_index", _nullable(prev_index))
        .append_column("previous_index_lower", _nullable(prev_lower))
        .append_column("previous_index_upper", _nullable(prev_upper))
        .append_column("change", _nullable(index - prev_index))
        .append_column("alert", pa.array(alert & found, type=pa.bool_()))
    )
