"""The report: one static HTML page and three PNG charts, built from the store alone.

    woc report --store data/woc.duckdb --out report/

The page shows, for the latest logical date in the store: the companies ranked by negative
word-of-click index with their intervals; what changed since the previous run (alerts, moves);
each top company's index over the logical dates stored; the service vs product split; the most
shared service complaints as evidence; and which model versions produced which numbers.

Review texts and company names are untrusted. Every value goes through :func:`html.escape`, and
the page's Content-Security-Policy allows no script at all, so even a missed escape could not run
one. The charts are drawn with matplotlib's Agg renderer, without pyplot's global state.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from wordofclick.store import Store

MANIFEST = "manifest.json"
CHARTS = ("ranking.png", "trends.png", "split.png")
# Chart marks for service complaints (and the ranking) and for the product; the page's own
# styles use neither, so the browser test can tell from a screenshot that the charts loaded.
SERVICE_COLOR = "#c0392b"
PRODUCT_COLOR = "#2c7fb8"
TREND_COMPANIES = 12
EVIDENCE_ROWS = 10
EVIDENCE_CHARS = 600
RECENT_RUNS = 10
DEFAULT_WINDOW_DAYS = 90.0
# No script, no fetch, no frame: only the page's own images and inline style.
CSP = "default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; base-uri 'none'"


def build_report(store: Store | str | Path, out: str | Path, top: int = 25) -> Path:
    """Write ``index.html``, the charts and ``manifest.json`` into ``out``; return the page.

    ``store`` is an open :class:`~wordofclick.store.Store` or the path of one (opened
    read-only). ``top`` companies are listed and charted.

    >>> build_report("data/woc.duckdb", "report")  # doctest: +SKIP
    PosixPath('report/index.html')
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if isinstance(store, Store):
        data = _collect(store, top)
    else:
        with Store.open(store, read_only=True) as opened:
            data = _collect(opened, top)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    charts = _draw_charts(data, folder) if data.ranked else []
    page = folder / "index.html"
    _write_atomic(page, _render(data, charts).encode("utf-8"))
    manifest = {
        "run_id": data.latest_run.get("run_id") if data.latest_run else None,
        "logical_date": str(data.latest_date) if data.latest_date else None,
        "generated_at": data.generated_at.isoformat(timespec="seconds"),
        "charts": charts,
    }
    _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    return page


def report_run_id(out: str | Path) -> str | None:
    """The run whose results the report in ``out`` shows, or None if there is none.

    >>> report_run_id("no-such-folder")
    """
    try:
        return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class _ReportData:
    store: str
    generated_at: datetime
    latest_date: date | None
    previous_date: date | None
    window_days: float
    total_companies: int
    ranked: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    moves: list[dict[str, Any]]
    trends: dict[str, list[dict[str, Any]]]
    evidence: list[dict[str, Any]]
    models: list[dict[str, Any]]
    scores_by_date: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    latest_run: dict[str, Any] | None


def _rows(store: Store, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    # Through Arrow: DuckDB's own conversion of time-zoned timestamps needs pytz.
    return store.con.sql(query, params=list(params)).to_arrow_table().to_pylist()


def _collect(store: Store, top: int) -> _ReportData:
    runs = _rows(
        store,
        "SELECT *, epoch(finished_at - started_at) AS seconds FROM runs "
        "ORDER BY started_at DESC LIMIT ?",
        [RECENT_RUNS],
    )
    latest_run = next((r for r in runs if r["status"] == "succeeded"), None)
    dates = [
        r["logical_date"]
        for r in _rows(store, "SELECT DISTINCT logical_date FROM company_scores ORDER BY 1 DESC")
    ]
    latest = dates[0] if dates else None
    previous = dates[1] if len(dates) > 1 else None
    window_days = (latest_run or {}).get("window_days") or DEFAULT_WINDOW_DAYS
    ranked = alerts = moves = evidence = []
    trends: dict[str, list[dict[str, Any]]] = {}
    total = 0
    if latest is not None:
        total = _rows(store, "SELECT count(*) AS n FROM company_scores WHERE logical_date = ?",
                      [latest])[0]["n"]
        ranked = _rows(
            store,
            'SELECT * FROM company_scores WHERE logical_date = ? ORDER BY "rank" LIMIT ?',
            [latest, top],
        )
        alerts = _rows(
            store,
            'SELECT * FROM company_scores WHERE logical_date = ? AND alert ORDER BY "rank" '
            "LIMIT 50",
            [latest],
        )
        moves = _moves(store, latest, previous, top) if previous is not None else []
        trends = _trends(store, [r["company"] for r in ranked[:TREND_COMPANIES]])
        evidence = _evidence(store, latest, window_days)
    models = _rows(
        store,
        "SELECT model_name, model_version, count(*) AS reviews, min(created_at) AS first_review, "
        "max(created_at) AS last_review, min(scored_at) AS first_scored, "
        "max(scored_at) AS last_scored FROM predictions GROUP BY ALL ORDER BY last_scored DESC",
    )
    scores_by_date = _rows(
        store,
        "SELECT s.logical_date, count(*) AS companies, "
        "array_to_string(list_sort(list_distinct(flatten(list(string_split(coalesce("
        "s.model_versions, 'unknown'), ', '))))), ', ') AS model_versions, "
        "any_value(r.config_fingerprint) AS config_fingerprint, any_value(s.run_id) AS run_id "
        "FROM company_scores s LEFT JOIN runs r USING (run_id) "
        "GROUP BY s.logical_date ORDER BY s.logical_date DESC LIMIT ?",
        [RECENT_RUNS],
    )
    return _ReportData(
        store=store.path,
        generated_at=datetime.now(timezone.utc),
        latest_date=latest,
        previous_date=previous,
        window_days=float(window_days),
        total_companies=total,
        ranked=ranked,
        alerts=alerts,
        moves=moves,
        trends=trends,
        evidence=evidence,
        models=models,
        scores_by_date=scores_by_date,
        runs=runs,
        latest_run=latest_run,
    )


def _moves(store: Store, latest: date, previous: date, top: int) -> list[dict[str, Any]]:
    """Companies whose index moved most since the previous logical date, alerts first."""
    return _rows(
        store,
        'SELECT n.company, n."rank" AS rank_now, o."rank" AS rank_before, n."index" AS index_now, '
        'o."index" AS index_before, n."index" - o."index" AS moved, n.alert, '
        "n.index_lower, n.index_upper "
        "FROM company_scores n LEFT JOIN company_scores o "
        "ON o.company = n.company AND o.logical_date = ? "
        'WHERE n.logical_date = ? ORDER BY n.alert DESC, abs(coalesce(n."index" - o."index", '
        '0)) DESC, n."rank" LIMIT ?',
        [previous, latest, top],
    )


def _trends(store: Store, companies: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not companies:
        return {}
    rows = _rows(
        store,
        'SELECT company, logical_date, "index", index_lower, index_upper, previous_index '
        "FROM company_scores WHERE list_contains(?, company) ORDER BY company, logical_date",
        [companies],
    )
    series: dict[str, list[dict[str, Any]]] = {company: [] for company in companies}
    for row in rows:
        series[row["company"]].append(row)
    return series


def _evidence(store: Store, latest: date, window_days: float) -> list[dict[str, Any]]:
    end = datetime.combine(latest + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    start = end - timedelta(days=window_days)
    return _rows(
        store,
        "SELECT review_id, company, channel, created_at, shares, likes, text, "
        "prob_service_complaint, model_name, model_version FROM predictions "
        "WHERE pred_service_complaint AND created_at >= ? AND created_at < ? "
        "ORDER BY coalesce(shares, 0) DESC, coalesce(likes, 0) DESC, "
        "prob_service_complaint DESC, review_id LIMIT ?",
        [start, end, EVIDENCE_ROWS],
    )


# --- charts ------------------------------------------------------------------------------------


def _label(name: str, width: int = 32) -> str:
    """A company name safe for matplotlib: no mathtext from '$', not too long."""
    short = name if len(name) <= width else name[: width - 1] + "…"
    return short.replace("$", r"\$")


def _draw_charts(data: _ReportData, folder: Path) -> list[str]:
    from matplotlib.dates import AutoDateLocator, DateFormatter
    from matplotlib.figure import Figure

    ranked = data.ranked
    names = [_label(r["company"]) for r in ranked]
    height = 1.2 + 0.32 * len(ranked)

    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.subplots()
    positions = list(range(len(ranked)))[::-1]
    index = [r["index"] for r in ranked]
    errors = [
        [r["index"] - r["index_lower"] for r in ranked],
        [r["index_upper"] - r["index"] for r in ranked],
    ]
    ax.errorbar(index, positions, xerr=errors, fmt="o", color=SERVICE_COLOR, ecolor=SERVICE_COLOR,
                elinewidth=2.5, capsize=3, markersize=6)
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("negative word-of-click index (0-100) with 90% interval")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, folder / "ranking.png")

    series = data.trends
    columns = 4
    rows = max(1, -(-len(series) // columns))
    # Fixed margins: constrained layout costs seconds on a dozen small panels.
    fig = Figure(figsize=(11, 0.6 + 2.1 * rows))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12 / rows, top=1 - 0.35 / rows,
                        wspace=0.12, hspace=0.55)
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    window = timedelta(days=data.window_days)
    for ax, (company, points) in zip(axes, series.items(), strict=False):
        days = [p["logical_date"] for p in points]
        index = [p["index"] for p in points]
        lower = [p["index_lower"] for p in points]
        upper = [p["index_upper"] for p in points]
        if len(points) > 1:
            ax.fill_between(days, lower, upper, color=SERVICE_COLOR, alpha=0.2, linewidth=0)
            ax.plot(days, index, "-", color=SERVICE_COLOR, linewidth=1.2)
        else:
            ax.errorbar(days, index, yerr=[[i - lo for i, lo in zip(index, lower, strict=True)],
                                           [up - i for i, up in zip(index, upper, strict=True)]],
                        fmt="o", color=SERVICE_COLOR, capsize=3, markersize=4)
        last = points[-1]
        if last["previous_index"] is not None:
            # The same index over the window before: the trend even after a single run.
            ax.plot([last["logical_date"] - window], [last["previous_index"]], "o",
                    markerfacecolor="none", color=SERVICE_COLOR)
        ax.set_title(_label(company, 28), fontsize=8)
        ax.set_ylim(0, 100)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(AutoDateLocator(minticks=2, maxticks=4))
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    for ax in axes[len(series):]:
        ax.set_visible(False)
    fig.suptitle("index by logical date (band or bar: 90% interval; hollow: previous window)",
                 fontsize=9)
    _save(fig, folder / "trends.png")

    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.subplots()
    service = [100 * (r["service_share"] or 0.0) for r in ranked]
    product = [100 - s if r["service_share"] is not None else 0.0
               for s, r in zip(service, ranked, strict=True)]
    ax.barh(positions, service, color=SERVICE_COLOR, label="service attitude")
    ax.barh(positions, product, left=service, color=PRODUCT_COLOR, label="product")
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of negative word of click (%)")
    fig.legend(loc="outside upper center", ncols=2, fontsize=8)
    _save(fig, folder / "split.png")
    return list(CHARTS)


def _save(fig: Any, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fig.savefig(partial, dpi=100, format="png")
    os.replace(partial, path)


def _write_atomic(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


# --- the page ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text for HTML; None shows as a dash."""
    if value is None:
        return "–"
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
           ) -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
color:#222;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#555;font-size:.85rem}.alert{color:#922b21;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee}
blockquote{margin:.4rem 0 1rem;padding:.5rem .8rem;background:#faf7f6;
border-left:4px solid #922b21;white-space:pre-wrap;overflow-wrap:anywhere}
"""


def _render(data: _ReportData, charts: list[str]) -> str:
    title = (
        f"Negative word of click as of {data.latest_date}" if data.latest_date
        else "Negative word of click: no company scores yet"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _header(data),
    ]
    if not data.ranked:
        parts.append(
            "<p>The store holds no company scores yet. Run <code>woc nightly</code> for a date "
            "with reviews in the window before it.</p>"
        )
    else:
        parts += [
            _ranking_section(data, "ranking.png" in charts),
            _changes_section(data),
            _trend_section(data),
            _split_section(data),
            _evidence_section(data),
        ]
    parts += [_models_section(data), _runs_section(data), "</body></html>"]
    return "\n".join(parts)


def _header(data: _ReportData) -> str:
    run = data.latest_run
    facts = [f"store {_e(data.store)}", f"generated {_e(_when(data.generated_at))}"]
    if run is not None:
        facts.append(
            f"last successful run {_e(run['run_id'])} for {_e(run['logical_date'])} "
            f"(model {_e(run['model_name'])}:{_e(run['model_version'])})"
        )
    if data.latest_date is not None:
        facts.append(
            f"{data.total_companies:,} companies with reviews in the {data.window_days:.0f} days "
            f"up to {_e(data.latest_date)}"
        )
    return f'<p class="meta">{" · ".join(facts)}</p>'


def _ranking_section(data: _ReportData, chart: bool) -> str:
    rows = [
        (
            _e(r["rank"]),
            _e(r["company"]),
            _num(r["index"]),
            f"{_num(r['index_lower'])} – {_num(r['index_upper'])}",
            _e(f"{r['review_count']:,}"),
            _pct(r["service_share"]),
            _num(r["change"]),
            '<span class="alert">alert</span>' if r["alert"] else "",
            _e(r["model_versions"]),
        )
        for r in data.ranked
    ]
    image = (
        '<img src="ranking.png" alt="Index and 90% interval of the top companies">'
        if chart else ""
    )
    return (
        '<section id="ranking"><h2>Companies ranked by negative word of click</h2>'
        f"<p>The index (0-100) is the negative share of a company's word of click over the last "
        f"{data.window_days:.0f} days, shrunk towards all companies' mean when it has few "
        "reviews. Companies are ranked by the lower end of the 90% interval, so one angry "
        "review does not top the list. <em>Change</em> compares with the window before; an "
        f"alert means the index rose beyond its interval.</p>{image}"
        + _table(
            ["rank", "company", "index", "90% interval", "reviews", "service share",
             "change", "", "model"],
            rows,
            numeric=(0, 2, 3, 4, 5, 6),
        )
        + "</section>"
    )


def _changes_section(data: _ReportData) -> str:
    if data.alerts:
        names = ", ".join(_e(r["company"]) for r in data.alerts)
        alerts = (
            f'<p><span class="alert">{len(data.alerts)} alert(s)</span>: the index rose beyond '
            f"its interval compared with the previous {data.window_days:.0f} days: {names}.</p>"
        )
    else:
        alerts = "<p>No alerts: no company's index rose beyond its interval.</p>"
    if data.previous_date is None:
        moves = "<p>This is the first logical date in the store; moves show from the next run.</p>"
    else:
        rows = [
            (
                _e(m["company"]),
                _e(m["rank_before"]),
                _e(m["rank_now"]),
                _num(m["index_before"]),
                _num(m["index_now"]),
                _num(m["moved"]),
                '<span class="alert">alert</span>' if m["alert"] else "",
            )
            for m in data.moves
        ]
        moves = (
            f"<p>Compared with the previous run's date, {_e(data.previous_date)}:</p>"
            + _table(["company", "rank before", "rank now", "index before", "index now",
                      "moved", ""], rows, numeric=(1, 2, 3, 4, 5))
        )
    return (f'<section id="changes"><h2>What changed since the previous run</h2>{alerts}{moves}'
            "</section>")


def _trend_section(data: _ReportData) -> str:
    return (
        '<section id="trends"><h2>Trend of the top companies</h2>'
        "<p>Each company's index at every logical date in the store, with its 90% interval; "
        "the hollow point is the index over the window before the latest one.</p>"
        '<img src="trends.png" alt="Index over time of the top companies"></section>'
    )


def _split_section(data: _ReportData) -> str:
    return (
        '<section id="split"><h2>Service attitude vs product</h2>'
        "<p>How much of each company's negative word of click comes from complaints about "
        "service attitude (weighted above product complaints, see docs/word_of_click.md) and "
        "how much from the product.</p>"
        '<img src="split.png" alt="Service vs product share per company"></section>'
    )


def _evidence_section(data: _ReportData) -> str:
    if not data.evidence:
        return (
            '<section id="evidence"><h2>Most-shared service complaints</h2>'
            "<p>No review in the window was classified as a service complaint.</p></section>"
        )
    items = []
    for r in data.evidence:
        text = r["text"]
        if len(text) > EVIDENCE_CHARS:
            text = text[:EVIDENCE_CHARS] + "…"
        items.append(
            f'<p class="meta"><strong>{_e(r["company"])}</strong> · {_e(r["channel"])} · '
            f"{_e(_when(r['created_at']))} · shares {_e(r['shares'])} · likes {_e(r['likes'])} "
            f"· P(service complaint) {_num(r['prob_service_complaint'], 2)} · review "
            f"{_e(r['review_id'])} · model {_e(r['model_name'])}:{_e(r['model_version'])}</p>"
            f"<blockquote>{_e(text)}</blockquote>"
        )
    return (
        '<section id="evidence"><h2>Most-shared service complaints</h2>'
        f"<p>The {len(items)} service complaints with the most shares (then likes) in the "
        f"last {data.window_days:.0f} days: what people are passing on.</p>"
        + "".join(items) + "</section>"
    )


def _models_section(data: _ReportData) -> str:
    predictions = _table(
        ["model", "reviews", "created from", "created to", "scored from", "scored to"],
        [
            (
                f"{_e(m['model_name'])}:{_e(m['model_version'])}",
                _e(f"{m['reviews']:,}"),
                _e(_when(m["first_review"])),
                _e(_when(m["last_review"])),
                _e(_when(m["first_scored"])),
                _e(_when(m["last_scored"])),
            )
            for m in data.models
        ],
        numeric=(1,),
    )
    scores = _table(
        ["logical date", "companies", "predictions from", "config", "run"],
        [
            (_e(s["logical_date"]), _e(s["companies"]), _e(s["model_versions"]),
             _e(s["config_fingerprint"]), _e(s["run_id"]))
            for s in data.scores_by_date
        ],
        numeric=(1,),
    )
    return (
        '<section id="models"><h2>Which model produced which numbers</h2>'
        "<p>Stored predictions by the model that scored them:</p>" + predictions
        + "<p>Company scores by logical date, with the model versions of the predictions "
        "behind them (a model change shows here until <code>woc nightly --since</code> "
        "re-scores the older reviews):</p>" + scores + "</section>"
    )


def _runs_section(data: _ReportData) -> str:
    rows = [
        (
            _e(r["logical_date"]),
            _e(r["since"]),
            _e(r["status"]),
            _e(_when(r["started_at"])),
            _num(r["seconds"]),
            _e(r["reviews_read"]),
            _e(r["reviews_scored"]),
            _e(r["reviews_rejected"]),
            _e(r["companies_updated"]),
            f"{_e(r['model_name'])}:{_e(r['model_version'])}",
            _e(r["message"]),
        )
        for r in data.runs
    ]
    return (
        '<section id="runs"><h2>Recent runs</h2>'
        + _table(["date", "since", "status", "started", "seconds", "read", "scored", "rejected",
                  "companies", "model", "message"], rows, numeric=(4, 5, 6, 7, 8))
        + "</section>"
    )
