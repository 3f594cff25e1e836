"""The nightly job: score the reviews that arrived, update the store in one transaction, report.

    woc nightly --config configs/nightly.yaml [--date D] [--since S] [--force] [--dry-run]

One run works for one logical date D (a UTC day; yesterday by default):

1. **lock**: one run at a time per store, through a lock file naming its holder (exit 75 if held;
   a lock left by a dead process is taken over).
2. **read**: each input file not read before (or changed since, or holding reviews dated after
   the date it was read for) streams through :class:`~wordofclick.reviews.ReviewReader` into the
   work area beside the store; unusable rows become rejects.
3. **plan**: reviews created before the end of D (and undated ones) are matched to the store by
   ``review_id``: new ids and edited texts are to be scored, other changed columns (likes,
   shares...) only updated; with ``--since S`` stored reviews created from S on that another
   model scored are re-scored. When an id is in several files, the file whose path sorts last
   holds its current version (name exports by date).
4. **score**: a scoring engine (``local`` here; see :data:`ENGINES`) writes scored Parquet into
   the work area. Nothing is visible yet.
5. **commit**: one DuckDB transaction replaces the predictions, the rejects of the files read,
   the company scores of D (of every date from S to D with ``--since``) and records the run.
6. **report**: the HTML page and charts are written from the store.

A run killed before the commit leaves the store as it was (the next run discards the work area);
killed after, the next run finds the date done. Either way the store ends as after an
uninterrupted run. A date that succeeded is a no-op when run again; ``--force`` redoes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from wordofclick.aggregate import (
    AggregateSettings,
    aggregate_companies,
    as_of_instant,
    parse_window,
)
from wordofclick.errors import ConfigError, DataError
from wordofclick.labels import DEFAULT_LABELS
from wordofclick.reviews import REJECT_SCHEMA, ReviewReader, resolve_inputs
from wordofclick.schema import CHANNELS, REVIEW_COLUMNS, REVIEW_SCHEMA, prob_column
from wordofclick.settings import Settings, build_settings, load_settings
from wordofclick.store import LockedError, Store

CORPUS_INPUT = "corpus:"
# Tests set this to one of: reading, planned, scoring, scored, in_transaction, committed,
# reported; the run then kills itself at that point (see _crash_point).
CRASH_ENV = "WOC_TEST_CRASH_AT"
# Seconds between two "scoring" progress events: often enough to see a long run move.
PROGRESS_EVERY_S = 30.0

__all__ = [
    "ENGINES",
    "LockedError",
    "NightlySettings",
    "RunLock",
    "RunSummary",
    "run_nightly",
]


class NightlySettings(Settings):
    """Everything ``woc nightly`` reads from ``configs/nightly.yaml``.

    Paths are relative to the working folder; ``lock`` and ``work_dir`` default to files beside
    the store, so two stores can have their nightly runs at the same time.

    >>> NightlySettings(store="woc.duckdb").lock_path
    PosixPath('woc.duckdb.lock')
    """

    input: list[str] = Field(
        default_factory=lambda: [CORPUS_INPUT],
        description="Review files: files, folders or globs (CSV, JSONL, Parquet); 'corpus:' is "
        "the bundled corpus.",
    )
    columns: dict[str, str] | None = Field(
        None, description="Review column -> input column, e.g. {text: review_body}."
    )
    store: str = Field("data/woc.duckdb", description="The DuckDB store file.")
    model: str = Field("models/default", description="Saved model folder; trained if absent.")
    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    num_threads: int | None = Field(None, ge=1, description="Model CPU threads; empty: all.")
    train_config: str | None = Field(
        "configs/train.yaml", description="Training config used when the model folder is absent."
    )
    aggregate_config: str | None = Field(
        None, description="Word-of-click settings (configs/aggregate.yaml); empty: defaults."
    )
    report: str | None = Field(
        "report", description="Folder for index.html and the charts; empty: no report."
    )
    report_top: int = Field(25, ge=1, description="Companies listed in the report.")
    chunk_rows: int = Field(2048, ge=1, description="Rows read and scored at a time.")
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of a scoring engine other than local, read by that engine "
        "(for Ray: address, actors, CPUs per actor).",
    )
    lock: str | None = Field(None, description="Lock file; empty: <store>.lock.")
    work_dir: str | None = Field(None, description="Work area; empty: <store>.work.")

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("input")
    @classmethod
    def _known_inputs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one input file, folder or glob (or corpus:)")
        for item in value:
            if item.startswith("corpus:") and item != CORPUS_INPUT:
                raise ValueError(
                    f"{item!r}: the nightly job reads the whole bundled corpus; write 'corpus:'"
                )
        return value

    @field_validator("engine_options")
    @classmethod
    def _known_engine_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked when the settings are built, not hours later when the engine starts; the
        # engine itself is never imported for an empty mapping (every option has a default).
        if not value:
            return value
        try:
            from wordofclick.ray_engine import RaySettings
        except ModuleNotFoundError as error:
            if error.name != "wordofclick.ray_engine":
                raise
            return value  # an installation without the ray engine: nothing to check against
        build_settings(RaySettings, value, "engine_options")  # ConfigError, hence ValueError
        return value

    @property
    def store_path(self) -> Path:
        return Path(self.store)

    @property
    def lock_path(self) -> Path:
        return Path(self.lock) if self.lock else Path(f"{self.store}.lock")

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(f"{self.store}.work")

    @property
    def report_path(self) -> Path | None:
        return Path(self.report) if self.report else None

    @property
    def model_path(self) -> Path:
        return Path(self.model)

    def input_paths(self) -> list[str]:
        """The inputs with ``corpus:`` replaced by the bundled corpus file."""
        from wordofclick.datasets import corpus_path

        return [str(corpus_path()) if item == CORPUS_INPUT else item for item in self.input]

    def aggregate_settings(self) -> AggregateSettings:
        """The word-of-click settings: ``aggregate_config`` or the built-in defaults."""
        return load_settings(AggregateSettings, self.aggregate_config)


@dataclass(frozen=True)
class RunSummary:
    """What one nightly run did. ``status`` is ``succeeded``, ``no-op`` or ``dry-run``.

    Every row read is rejected, left for a later date (created after the logical date), or
    counted once as new, edited, re-scored, updated or unchanged; ``reviews_rescored`` also
    counts stored reviews re-scored for ``--since`` without being read.
    """

    run_id: str
    logical_date: date
    since: date | None
    status: str
    engine: str
    model_name: str | None = None
    model_version: str | None = None
    files_read: int = 0
    files_skipped: int = 0
    reviews_read: int = 0
    reviews_rejected: int = 0
    reviews_new: int = 0
    reviews_edited: int = 0
    reviews_rescored: int = 0
    reviews_updated: int = 0
    reviews_unchanged: int = 0
    reviews_later: int = 0
    companies_updated: int = 0
    alerts: int = 0
    dates_scored: tuple[date, ...] = ()
    trained_model: bool = False
    report: Path | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def reviews_scored(self) -> int:
        return self.reviews_new + self.reviews_edited + self.reviews_rescored

    def counts(self) -> dict[str, int]:
        """The counts as a mapping, as the JSON log and the runs table hold them."""
        names = (
            "files_read", "files_skipped", "reviews_read", "reviews_rejected", "reviews_new",
            "reviews_edited", "reviews_rescored", "reviews_updated", "reviews_unchanged",
            "reviews_later", "reviews_scored", "companies_updated", "alerts",
        )
        return {name: getattr(self, name) for name in names}

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        what = {"succeeded": "done", "no-op": "already done, nothing changed",
                "dry-run": "dry run, nothing written"}[self.status]
        head = f"nightly {self.logical_date}"
        if self.since is not None:
            head += f" (since {self.since})"
        lines = [f"{head}: {what} in {self.seconds:.1f} s (run {self.run_id})"]
        if self.status == "no-op":
            if self.report is not None:
                lines.append(f"report: {self.report}")
            return lines
        if self.trained_model:
            lines.append(f"trained the model first: {self.model_name}:{self.model_version}")
        lines.append(
            f"read {self.reviews_read:,} rows from {self.files_read} file(s) "
            f"({self.files_skipped} already-read file(s) skipped); "
            f"rejected {self.reviews_rejected:,}"
        )
        lines.append(
            f"new {self.reviews_new:,}, edited {self.reviews_edited:,}, "
            f"re-scored {self.reviews_rescored:,}, updated {self.reviews_updated:,}, "
            f"unchanged {self.reviews_unchanged:,}, "
            f"dated after {self.logical_date} (left for later) {self.reviews_later:,}"
        )
        verb = "would score" if self.status == "dry-run" else "scored"
        model = f"{self.model_name}:{self.model_version}" if self.model_name else "(no model yet)"
        lines.append(f"{verb} {self.reviews_scored:,} review(s) with {model}, {self.engine} engine")
        dates = _describe_dates(self.dates_scored)
        if self.status == "dry-run":
            lines.append(f"would compute company scores for {dates}")
        else:
            lines.append(
                f"company scores for {dates}: {self.companies_updated:,} company row(s), "
                f"{self.alerts} alert(s) on {self.logical_date}"
            )
        if self.report is not None:
            lines.append(f"report: {self.report}")
        return lines


def _describe_dates(dates: tuple[date, ...]) -> str:
    if not dates:
        return "no date"
    if len(dates) == 1:
        return str(dates[0])
    return f"{len(dates)} dates ({dates[0]} to {dates[-1]})"


# --- events, lock, crash points ----------------------------------------------------------------


class EventLog:
    """One JSON object per line on stderr for each event of a run, for log collectors.

    >>> EventLog("r1", date(2026, 11, 20), stream=sys.stdout)("started")  # doctest: +ELLIPSIS
    {"time": "...", "run_id": "r1", "date": "2026-11-20", "event": "started"}
    """

    def __init__(self, run_id: str, logical_date: date, stream: TextIO | None = None) -> None:
        self.run_id = run_id
        self.logical_date = logical_date
        self.stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "run_id": self.run_id,
            "date": self.logical_date.isoformat(),
            "event": event,
            **fields,
        }
        # sys.stderr is looked up now, not at construction, so that a redirected stderr is used.
        stream = self.stream or sys.stderr
        stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        stream.flush()


class RunLock:
    """One nightly run at a time: an exclusive ``flock`` on a file that names its holder.

    The kernel drops the lock when its process dies, however it dies, so a lock left by a killed
    run never blocks: the next run takes it over and says whose it was. The file is emptied, not
    deleted, on release: deleting it would let two processes lock two different files.

    >>> with RunLock(Path("woc.duckdb.lock"), run_id="r1"):  # doctest: +SKIP
    ...     ...  # LockedError if another process holds it
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.taken_over: dict[str, Any] | None = None  # the dead holder's details, if any
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(f"{self.path}: {_describe_holder(holder)}") from None
        previous = _read_holder(fd)
        if previous:
            self.taken_over = previous
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_id": self.run_id,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    if not raw:
        return {}
    try:
        holder = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200]}
    return holder if isinstance(holder, dict) else {"unreadable": raw[:200]}


def _describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another nightly run holds the lock (it is just starting); try again later"
    if "unreadable" in holder:
        return f"another process holds the lock (its note reads {holder['unreadable']!r})"
    return (
        f"another nightly run holds the lock: pid {holder.get('pid')} on host "
        f"{holder.get('host')}, started {holder.get('started_at')} (run {holder.get('run_id')}); "
        "wait for it to finish and try again"
    )


def _crash_point(stage: str) -> None:
    # The kill-and-restart tests set WOC_TEST_CRASH_AT to a stage name; the process then dies
    # here by SIGKILL, with no clean-up at all, like a machine losing power.
    if os.environ.get(CRASH_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


# --- scoring engines ---------------------------------------------------------------------------


class ScoringEngine(Protocol):
    """Score the reviews in the Parquet file ``rows`` into Parquet files in ``out_dir``.

    Output rows keep the input columns and add :func:`~wordofclick.schema.scored_fields`. The
    engine takes the model from ``settings.model`` and its own options from
    ``settings.engine_options``, and calls ``on_chunk(rows_done)`` as it goes. It never touches
    the store: the driver commits the files in one transaction.
    """

    def __call__(
        self,
        rows: Path,
        out_dir: Path,
        settings: NightlySettings,
        on_chunk: Callable[[int], None],
    ) -> None: ...


def score_locally(
    rows: Path, out_dir: Path, settings: NightlySettings, on_chunk: Callable[[int], None]
) -> None:
    """The ``local`` engine: :class:`~wordofclick.scoring.ReviewScorer` in this process.

    >>> score_locally(Path("to_score.parquet"), Path("scored"), NightlySettings(),
    ...               print)  # doctest: +SKIP
    """
    from wordofclick.scoring import ReviewScorer

    scorer = ReviewScorer(
        settings.model_path, backend=settings.backend, num_threads=settings.num_threads
    )
    source = pq.ParquetFile(rows)
    schema = scorer.output_schema(source.schema_arrow)
    with pq.ParquetWriter(out_dir / "part-0.parquet", schema) as writer:
        for batch in source.iter_batches(batch_size=settings.chunk_rows):
            scored = scorer.score_table(pa.Table.from_batches([batch]))
            writer.write_table(scored)
            on_chunk(scored.num_rows)


def score_with_ray(
    rows: Path, out_dir: Path, settings: NightlySettings, on_chunk: Callable[[int], None]
) -> None:
    """The ``ray`` engine: Ray Data actors running the same scorer (``wordofclick.ray_engine``).

    Its settings (address, actors, CPUs per actor) come from ``settings.engine_options``.
    """
    from wordofclick.ray_engine import score_nightly  # imports Ray itself, only when it runs

    score_nightly(rows, out_dir, settings, on_chunk)


# Engine name -> engine; the engine is imported only when a run asks for it.
ENGINES: dict[str, ScoringEngine] = {"local": score_locally, "ray": score_with_ray}


# --- the run -----------------------------------------------------------------------------------


def parse_logical_date(value: date | datetime | str, name: str = "date") -> date:
    """A logical date from a date, a datetime or ``YYYY-MM-DD``.

    >>> parse_logical_date("2026-11-20")
    datetime.date(2026, 11, 20)
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"--{name} {value!r}: expected a date such as 2026-11-20 (YYYY-MM-DD, UTC)"
        ) from None


def yesterday() -> date:
    """The default logical date: yesterday in UTC."""
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def config_fingerprint(settings: AggregateSettings) -> str:
    """A short hash of the settings that change company scores (not of paths or chunk sizes)."""
    canonical = json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_nightly(
    settings: NightlySettings,
    date: date | str | None = None,
    since: date | str | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str = "local",
    events: TextIO | None = None,
) -> RunSummary:
    """Run the nightly job for one logical date (default: yesterday, UTC); see the module doc.

    ``since`` also recomputes the company scores of every date from ``since`` to ``date`` and
    re-scores stored reviews created in that range by another model. ``force`` redoes a date
    that succeeded: every file is read again and every review read is re-scored. ``dry_run``
    plans and says what would happen without writing anything. JSON events go to ``events``
    (default stderr). Raises :class:`LockedError` when another run holds the lock.

    >>> summary = run_nightly(NightlySettings(), date="2026-11-20")  # doctest: +SKIP
    >>> summary.status, summary.reviews_scored  # doctest: +SKIP
    ('succeeded', 3650)
    """
    logical = parse_logical_date(date) if date is not None else yesterday()
    first = parse_logical_date(since, "since") if since is not None else None
    if first is not None and first > logical:
        raise ConfigError(f"--since {first} is after the logical date {logical}")
    if engine not in ENGINES:
        raise ConfigError(
            f"unknown engine {engine!r}: expected one of {', '.join(sorted(ENGINES))}"
        )
    run = _NightlyRun(settings, logical, first, force, dry_run, engine, events)
    return run.execute()


@dataclass
class _FileRead:
    path: str
    size: int
    mtime_ns: int
    rows_read: int
    rows_rejected: int
    read_through: date
    max_created_at: datetime | None


@dataclass
class _Plan:
    files_read: list[_FileRead]
    files_skipped: int
    rows_read: int
    rejected: int
    later: int
    actions: dict[str, int]
    to_score: int


_WORK_SCHEMA = pa.schema([*REVIEW_SCHEMA, pa.field("source", pa.string(), nullable=False)])
_FILE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("rows_read", pa.int64()),
        ("rows_rejected", pa.int64()),
        ("read_through", pa.date32()),
        ("max_created_at", pa.timestamp("us", tz="UTC")),
    ]
)
_STORED_COLUMNS = ", ".join(
    [*REVIEW_COLUMNS, "source", "text_hash", "row_hash"]
)


class _NightlyRun:
    """The state of one run; :meth:`execute` is the whole job."""

    def __init__(
        self,
        settings: NightlySettings,
        logical: date,
        since: date | None,
        force: bool,
        dry_run: bool,
        engine: str,
        events: TextIO | None,
    ) -> None:
        self.settings = settings
        self.logical = logical
        self.since = since
        self.force = force
        self.dry_run = dry_run
        self.engine = engine
        self.aggregate = settings.aggregate_settings()
        self.fingerprint = config_fingerprint(self.aggregate)
        self.window = parse_window(self.aggregate.window)
        self.end = as_of_instant(logical)
        self.started_at = datetime.now(timezone.utc)
        self.clock = time.perf_counter()
        self.run_id = f"{self.started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        self.log = EventLog(self.run_id, logical, events)
        self.stages: dict[str, float] = {}
        self.model_name: str | None = None
        self.model_version: str | None = None
        self.trained = False
        self.committed = False
        self.work = settings.work_path

    def execute(self) -> RunSummary:
        self.log("started", engine=self.engine, since=self.since, force=self.force,
                 dry_run=self.dry_run, store=str(self.settings.store_path))
        lock = RunLock(self.settings.lock_path, self.run_id)
        try:
            # A dry run creates no folder and no file: it takes the lock only where a run made
            # the lock file already (so it never reads a store that a run is changing).
            if not self.dry_run or lock.path.is_file():
                lock.acquire()
        except LockedError as error:
            self.log("locked", message=str(error))
            raise
        try:
            if lock.taken_over:
                self.log("stale_lock_taken_over", previous_holder=lock.taken_over)
            with self._open_store() as store:
                try:
                    summary = self._run(store)
                except (Exception, KeyboardInterrupt) as error:
                    self._record_failure(store, error)
                    raise
        except (Exception, KeyboardInterrupt) as error:
            self.log("failed", error=f"{type(error).__name__}: {error}",
                     seconds=round(time.perf_counter() - self.clock, 3))
            raise
        finally:
            lock.release()
        self.log("finished", status=summary.status, seconds=round(summary.seconds, 3),
                 stages=summary.stage_seconds, **summary.counts())
        return summary

    def _open_store(self) -> Store:
        path = self.settings.store_path
        if self.dry_run:
            # A dry run writes nothing: not even a new store file or a migration.
            return Store.open(path, read_only=True) if path.is_file() else Store.open(":memory:")
        store = Store.open(path)
        if store.migrated:
            event = "store_created" if store.migrated[0] == 1 else "store_migrated"
            self.log(event, path=str(path), versions=store.migrated)
        return store

    def _timed(self, stage: str, started: float) -> None:
        self.stages[stage] = round(self.stages.get(stage, 0.0) + time.perf_counter() - started, 3)

    def _summary(self, status: str, plan: _Plan | None = None, **values: Any) -> RunSummary:
        counts: dict[str, Any] = {}
        if plan is not None:
            counts = {
                "files_read": len(plan.files_read),
                "files_skipped": plan.files_skipped,
                "reviews_read": plan.rows_read,
                "reviews_rejected": plan.rejected,
                "reviews_later": plan.later,
                **{f"reviews_{action}": n for action, n in plan.actions.items()},
            }
        return RunSummary(
            run_id=self.run_id, logical_date=self.logical, since=self.since, status=status,
            engine=self.engine, model_name=self.model_name, model_version=self.model_version,
            trained_model=self.trained, seconds=time.perf_counter() - self.clock,
            stage_seconds=dict(self.stages), **counts, **values,
        )

    # -- the stages ------------------------------------------------------------------------------

    def _run(self, store: Store) -> RunSummary:
        if self.work.exists() and not self.dry_run:
            self.log("work_area_discarded", path=str(self.work),
                     message="left by an interrupted run")
            shutil.rmtree(self.work)
        if self.since is None and not self.force and _covered(store, self.logical):
            self.log("skipped", message=f"{self.logical} already succeeded; --force redoes it")
            return self._summary("no-op", report=self._report_if_stale(store))
        self._load_model_identity()
        # With --since every date in the range is recomputed, whatever ran before: late or
        # edited reviews of earlier days change their scores; the model only decides what to
        # re-score (see _rescore_sql).
        dates = self._dates_to_score()
        if self.dry_run:
            # Not beside the store: its folder may not exist, and a dry run must not create it.
            self.work = Path(tempfile.mkdtemp(prefix="woc-nightly-dry-run-"))
        else:
            self.work.mkdir(parents=True)
        try:
            plan = self._read_and_plan(store)
            self.log("planned", dates=[str(d) for d in dates], to_score=plan.to_score,
                     files_read=len(plan.files_read), files_skipped=plan.files_skipped,
                     reviews_read=plan.rows_read, reviews_rejected=plan.rejected,
                     reviews_later=plan.later, **{f"reviews_{a}": n for a, n in
                                                  plan.actions.items()})
            _crash_point("planned")
            if self.dry_run:
                return self._summary("dry-run", plan, dates_scored=tuple(dates))
            scored_dir = self._score(plan)
            _crash_point("scored")
            companies, alerts = self._commit(store, plan, dates, scored_dir)
            _crash_point("committed")
            report = self._write_report(store)
            _crash_point("reported")
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        return self._summary("succeeded", plan, companies_updated=companies, alerts=alerts,
                             dates_scored=tuple(dates), report=report)

    def _load_model_identity(self) -> None:
        """Name and version of the model, training the default one first if it is missing."""
        from wordofclick.model import ModelMeta

        folder = self.settings.model_path
        if not folder.exists():
            if self.dry_run:
                self.log("model_missing", model=str(folder),
                         message=f"{folder} does not exist; a real run trains it first")
                return
            self._train(folder)
        meta = ModelMeta.read(folder)
        self.model_name, self.model_version = meta.name, meta.version

    def _train(self, folder: Path) -> None:
        from wordofclick.train import TrainSettings, train

        config = self.settings.train_config
        if config is not None and not Path(config).is_file():
            raise ConfigError(
                f"model folder {folder} does not exist and its training config {config} is "
                "missing too; train a model with `woc train` or set model and train_config"
            )
        self.log("training", model=str(folder), config=config,
                 message=f"model folder {folder} not found: training the default model with "
                         f"{config or 'the built-in defaults'} first (minutes on a CPU)")
        started = time.perf_counter()
        train_settings = load_settings(TrainSettings, config)
        train_settings.output_dir = str(folder)
        result = train(train_settings, progress=False)
        self._timed("train", started)
        self.trained = True
        self.log("trained", model=str(result.model_dir),
                 complaint_macro_f1=round(result.dev_report.complaint_macro_f1, 4),
                 seconds=round(result.seconds, 1))

    def _dates_to_score(self) -> list[date]:
        """The logical date, or every date from ``--since`` to it."""
        first = self.logical if self.since is None else self.since
        return [first + timedelta(days=i) for i in range((self.logical - first).days + 1)]

    def _rescore_sql(self, created_at: str, model_name: str, model_version: str) -> str:
        """SQL condition on a stored review: --since must re-score it (never without --since)."""
        if self.since is None:
            return "FALSE"
        start = datetime.combine(self.since, datetime.min.time(), tzinfo=timezone.utc)
        condition = (f"{created_at} >= {_sql_time(start)} "
                     f"AND {created_at} < {_sql_time(self.end)}")
        if self.force or self.model_name is None:
            return condition
        return (f"{condition} AND ({model_name} IS DISTINCT FROM {_sql_str(self.model_name)} "
                f"OR {model_version} IS DISTINCT FROM {_sql_str(self.model_version or '')})")

    def _stored_rescore_sql(self) -> str:
        return self._rescore_sql("created_at", "model_name", "model_version")

    def _read_and_plan(self, store: Store) -> _Plan:
        started = time.perf_counter()
        files_read, skipped = self._read_inputs(store)
        self._timed("read", started)
        started = time.perf_counter()
        plan = self._plan(store, files_read, skipped)
        self._timed("plan", started)
        return plan

    def _read_inputs(self, store: Store) -> tuple[list[_FileRead], int]:
        """Stream the files to read into the work area; return them and how many were skipped."""
        files = sorted({Path(p).resolve() for p in resolve_inputs(self.settings.input_paths())},
                       key=str)
        # Through Arrow: DuckDB's own conversion of time-zoned timestamps needs pytz.
        known = {
            row["path"]: (row["size"], row["mtime_ns"], row["read_through"], row["max_created_at"])
            for row in store.con.sql("SELECT * FROM input_files").to_arrow_table().to_pylist()
        }
        read: list[_FileRead] = []
        skipped = 0
        with pq.ParquetWriter(self.work / "candidates.parquet", _WORK_SCHEMA) as reviews, \
                pq.ParquetWriter(self.work / "rejects.parquet", REJECT_SCHEMA) as rejects:
            for path in files:
                stat = path.stat()
                previous = known.get(str(path))
                unchanged = previous is not None and previous[:2] == (stat.st_size,
                                                                      stat.st_mtime_ns)
                if unchanged and not self.force and self._file_done(previous[2], previous[3]):
                    skipped += 1
                    continue
                read_through = max(self.logical, previous[2]) if unchanged else self.logical
                read.append(self._read_file(path, stat, read_through, reviews, rejects))
        return read, skipped

    def _file_done(self, read_through: date, max_created_at: datetime | None) -> bool:
        """Whether an unchanged file read for ``read_through`` holds nothing new for this date."""
        return (
            self.logical <= read_through
            or max_created_at is None
            or max_created_at < as_of_instant(read_through)
        )

    def _read_file(
        self,
        path: Path,
        stat: os.stat_result,
        read_through: date,
        reviews: pq.ParquetWriter,
        rejects: pq.ParquetWriter,
    ) -> _FileRead:
        reader = ReviewReader(path, self.settings.columns, self.settings.chunk_rows)
        newest: datetime | None = None
        for chunk in reader:
            table = chunk.reviews.select(list(REVIEW_COLUMNS))
            table = table.append_column(
                "source", pa.array([str(path)] * table.num_rows, pa.string())
            )
            reviews.write_table(table.cast(_WORK_SCHEMA))
            rejects.write_table(chunk.rejects)
            latest = pc.max(table["created_at"]).as_py()
            if latest is not None and (newest is None or latest > newest):
                newest = latest
            _crash_point("reading")
        self.log("file_read", path=str(path), rows=reader.stats.read,
                 rejected=reader.stats.rejected)
        return _FileRead(str(path), stat.st_size, stat.st_mtime_ns, reader.stats.read,
                         reader.stats.rejected, read_through, newest)

    def _plan(self, store: Store, files_read: list[_FileRead], skipped: int) -> _Plan:
        """Sort the rows read into actions; write what to score and what to update."""
        con = store.con
        candidates = _sql_str(str(self.work / "candidates.parquet"))
        end = _sql_time(self.end)
        rescore = (
            "TRUE" if self.force
            else self._rescore_sql("c.created_at", "p.model_name", "p.model_version")
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE plan AS
            WITH cand AS (
                SELECT review_id, source, created_at, sha256(text) AS text_hash,
                       md5(to_json(struct_pack(company, created_at, rating, channel, shares,
                                               likes))) AS row_hash
                FROM read_parquet({candidates})
                WHERE created_at IS NULL OR created_at < {end}
                QUALIFY row_number() OVER (PARTITION BY review_id ORDER BY source DESC) = 1
            )
            SELECT c.review_id, c.source, c.text_hash, c.row_hash,
                CASE
                    WHEN p.review_id IS NULL THEN 'new'
                    WHEN p.source > c.source THEN 'unchanged'
                    WHEN p.text_hash <> c.text_hash THEN 'edited'
                    WHEN {rescore} THEN 'rescored'
                    WHEN p.row_hash IS DISTINCT FROM c.row_hash
                         OR p.source IS DISTINCT FROM c.source THEN 'updated'
                    ELSE 'unchanged'
                END AS action
            FROM cand c LEFT JOIN predictions p USING (review_id)
            """
        )
        self._check_channels(con, candidates)
        stored = (f"{self._stored_rescore_sql()} AND review_id NOT IN "
                  "(SELECT review_id FROM plan WHERE action <> 'unchanged')")
        joined = (f"read_parquet({candidates}) c JOIN plan pl "
                  "ON c.review_id = pl.review_id AND c.source = pl.source")
        review_columns = ", ".join(f"c.{name}" for name in REVIEW_COLUMNS)
        con.execute(
            f"""
            COPY (
                SELECT {review_columns}, c.source, pl.text_hash, pl.row_hash FROM {joined}
                WHERE pl.action IN ('new', 'edited', 'rescored')
                UNION ALL
                SELECT {_STORED_COLUMNS} FROM predictions WHERE {stored}
                ORDER BY review_id
            ) TO {_sql_str(str(self.work / "to_score.parquet"))} (FORMAT parquet)
            """
        )
        updated = ", ".join(f"c.{name}" for name in REVIEW_COLUMNS if name != "text")
        con.execute(
            f"""
            COPY (SELECT {updated}, c.source, pl.row_hash FROM {joined}
                  WHERE pl.action = 'updated' ORDER BY review_id)
            TO {_sql_str(str(self.work / "updates.parquet"))} (FORMAT parquet)
            """
        )
        actions = dict.fromkeys(("new", "edited", "rescored", "updated", "unchanged"), 0)
        counted = con.execute("SELECT action, count(*) FROM plan GROUP BY action").fetchall()
        actions.update(dict(counted))
        valid, later = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE created_at >= {end}) "
            f"FROM read_parquet({candidates})"
        ).fetchall()[0]
        # Copies of an id in files that sort earlier in the same run change nothing.
        actions["unchanged"] += valid - later - sum(actions.values())
        from_store = _count(store, stored)
        actions["rescored"] += from_store
        to_score = actions["new"] + actions["edited"] + actions["rescored"]
        rows_read = sum(f.rows_read for f in files_read)
        rejected = sum(f.rows_rejected for f in files_read)
        return _Plan(files_read, skipped, rows_read, rejected, later, actions, to_score)

    def _check_channels(self, con: duckdb.DuckDBPyConnection, candidates: str) -> None:
        """Stop before scoring when the score would refuse a channel (see unknown_channel)."""
        if self.aggregate.unknown_channel != "error":
            return
        known = ", ".join(_sql_str(c) for c in CHANNELS)
        rows = con.execute(
            f"""
            SELECT c.source, c.review_id, c.channel, count(*) OVER () AS total
            FROM read_parquet({candidates}) c JOIN plan pl
              ON c.review_id = pl.review_id AND c.source = pl.source
            WHERE pl.action <> 'unchanged' AND c.channel IS NOT NULL
              AND c.channel NOT IN ({known})
            ORDER BY c.source, c.review_id LIMIT 3
            """
        ).fetchall()
        if rows:
            examples = "; ".join(f"{src}: review {rid!r} has channel {ch!r}"
                                 for src, rid, ch, _ in rows)
            raise DataError(
                f"{rows[0][3]} review(s) name a channel the word-of-click score does not know "
                f"({examples}); expected one of {', '.join(CHANNELS)}. Fix the rows, or set "
                "unknown_channel: other in the aggregate config to count them as 'other'"
            )

    def _score(self, plan: _Plan) -> Path:
        scored_dir = self.work / "scored"
        scored_dir.mkdir()
        if plan.to_score == 0:
            return scored_dir
        started = time.perf_counter()
        done = 0
        last_event = started

        def on_chunk(rows: int) -> None:
            nonlocal done, last_event
            done += rows
            _crash_point("scoring")
            now = time.perf_counter()
            if now - last_event >= PROGRESS_EVERY_S:
                last_event = now
                rate = done / (now - started)
                self.log("scoring", done=done, total=plan.to_score,
                         rows_per_s=round(rate, 1),
                         eta_s=round((plan.to_score - done) / rate, 1) if rate else None)

        self.log("scoring_started", total=plan.to_score, engine=self.engine,
                 model=f"{self.model_name}:{self.model_version}")
        ENGINES[self.engine](self.work / "to_score.parquet", scored_dir, self.settings, on_chunk)
        self._timed("score", started)
        self.log("scored", rows=done, seconds=self.stages["score"])
        return scored_dir

    def _commit(
        self, store: Store, plan: _Plan, dates: list[date], scored_dir: Path
    ) -> tuple[int, int]:
        """Make everything visible at once; return company rows written and alerts on the date."""
        started = time.perf_counter()
        now = _sql_time(datetime.now(timezone.utc))
        run = _sql_str(self.run_id)
        companies = alerts = 0
        with store.transaction() as con:
            if any(scored_dir.glob("*.parquet")):
                con.execute(
                    f"INSERT OR REPLACE INTO predictions BY NAME "
                    f"SELECT *, {run} AS run_id, {now} AS scored_at "
                    f"FROM read_parquet({_sql_str(str(scored_dir / '*.parquet'))})"
                )
            assignments = ", ".join(
                f"{name} = u.{name}"
                for name in (*REVIEW_COLUMNS, "source", "row_hash")
                if name not in ("review_id", "text")
            )
            con.execute(
                f"UPDATE predictions SET {assignments} "
                f"FROM read_parquet({_sql_str(str(self.work / 'updates.parquet'))}) u "
                "WHERE predictions.review_id = u.review_id"
            )
            self._commit_files(con, plan, run)
            _crash_point("in_transaction")
            self._timed("store", started)
            started = time.perf_counter()
            for day in dates:
                written, raised = self._score_companies(con, day, run)
                companies += written
                if day == self.logical:
                    alerts = raised
            self._timed("aggregate", started)
            started = time.perf_counter()
            self._record_run(con, plan, dates, companies)
        self.committed = True
        self._timed("store", started)
        self.log("committed", predictions_written=plan.to_score,
                 predictions_updated=plan.actions["updated"], dates=len(dates),
                 companies_updated=companies)
        return companies, alerts

    def _commit_files(self, con: duckdb.DuckDBPyConnection, plan: _Plan, run: str) -> None:
        """Replace the rejects of the files read and remember what was read of them."""
        if not plan.files_read:
            return
        files = pa.Table.from_pylist(
            [
                {name: getattr(f, name) for name in _FILE_SCHEMA.names}
                for f in plan.files_read
            ],
            schema=_FILE_SCHEMA,
        )
        con.register("files_read", files)
        try:
            con.execute("DELETE FROM rejects WHERE source IN (SELECT path FROM files_read)")
            con.execute(
                f"INSERT INTO rejects BY NAME SELECT *, {run} AS run_id "
                f"FROM read_parquet({_sql_str(str(self.work / 'rejects.parquet'))})"
            )
            con.execute(
                f"INSERT OR REPLACE INTO input_files BY NAME "
                f"SELECT *, {run} AS run_id FROM files_read"
            )
        finally:
            con.unregister("files_read")

    def _score_companies(self, con: duckdb.DuckDBPyConnection, day: date,
                         run: str) -> tuple[int, int]:
        """Replace the company scores of ``day`` from the predictions as they now stand."""
        end = as_of_instant(day)
        window_start = _sql_time(end - self.window)
        present = con.execute(
            "SELECT " + ", ".join(f"count({prob_column(label)})" for label in DEFAULT_LABELS)
            + f" FROM predictions WHERE created_at >= {_sql_time(end - 2 * self.window)} "
            f"AND created_at < {_sql_time(end)}"
        ).fetchall()[0]
        probabilities = [prob_column(label) for label, n in zip(DEFAULT_LABELS, present,
                                                                strict=True) if n]
        rows = con.sql(
            "SELECT review_id, company, created_at, channel, shares, likes"
            + "".join(f", {name}" for name in probabilities)
            + f" FROM predictions WHERE created_at >= {_sql_time(end - 2 * self.window)} "
            f"AND created_at < {_sql_time(end)}"
            # Floating-point sums depend on row order: a fixed order makes the scores the same
            # whatever order the rows were stored in (dates run out of order, say).
            " ORDER BY review_id"
        ).to_arrow_table()
        con.execute(f"DELETE FROM company_scores WHERE logical_date = DATE '{day}'")
        if not probabilities:
            return 0, 0
        scores = aggregate_companies(rows, as_of=day, settings=self.aggregate)
        con.register("day_scores", scores)
        try:
            con.execute(
                f"""
                INSERT INTO company_scores BY NAME
                SELECT DATE '{day}' AS logical_date, s.company, s.review_count, s.negative_woc,
                       s.positive_woc, s.negative_woc_service, s.negative_woc_product,
                       s.service_share, s."index", s.index_lower, s.index_upper, s."rank",
                       s.previous_index, s.change, s.alert, v.model_versions,
                       to_json(s) AS details, {run} AS run_id
                FROM day_scores s LEFT JOIN (
                    SELECT company, array_to_string(list_sort(list_distinct(
                               list(model_name || ':' || model_version))), ', ') AS model_versions
                    FROM predictions
                    WHERE created_at >= {window_start} AND created_at < {_sql_time(end)}
                    GROUP BY company
                ) v USING (company)
                """
            )
        finally:
            con.unregister("day_scores")
        return scores.num_rows, int(pc.sum(scores["alert"]).as_py() or 0)

    def _record_run(self, con: duckdb.DuckDBPyConnection, plan: _Plan, dates: list[date],
                    companies: int) -> None:
        values = {
            "run_id": self.run_id,
            "logical_date": self.logical,
            "status": "succeeded",
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "config_fingerprint": self.fingerprint,
            "reviews_read": plan.rows_read,
            "reviews_scored": plan.to_score,
            "reviews_rejected": plan.rejected,
            "companies_updated": companies,
            "since": self.since,
            "engine": self.engine,
            "forced": self.force,
            "window_days": self.window / timedelta(days=1),
            "files_read": len(plan.files_read),
            "files_skipped": plan.files_skipped,
            "reviews_later": plan.later,
            "dates_scored": len(dates),
            **{f"reviews_{action}": n for action, n in plan.actions.items()},
        }
        _insert_run(con, values)

    def _record_failure(self, store: Store, error: BaseException) -> None:
        """Note a failed run in the store, unless it is a dry run or its results are committed."""
        if self.dry_run or self.committed:
            return
        values = {
            "run_id": self.run_id, "logical_date": self.logical, "status": "failed",
            "started_at": self.started_at, "finished_at": datetime.now(timezone.utc),
            "model_name": self.model_name, "model_version": self.model_version,
            "config_fingerprint": self.fingerprint, "since": self.since, "engine": self.engine,
            "forced": self.force, "message": f"{type(error).__name__}: {error}"[:2000],
        }
        try:
            with store.transaction() as con:
                _insert_run(con, values)
        except duckdb.Error as store_error:
            self.log("failure_not_recorded", error=str(store_error))

    def _write_report(self, store: Store) -> Path | None:
        from wordofclick.report import build_report

        folder = self.settings.report_path
        if folder is None:
            return None
        started = time.perf_counter()
        path = build_report(store, folder, top=self.settings.report_top)
        self._timed("report", started)
        self.log("report_written", path=str(path))
        return path

    def _report_if_stale(self, store: Store) -> Path | None:
        """On a no-op, (re)write the report only if it does not show the latest run."""
        from wordofclick.report import report_run_id

        folder = self.settings.report_path
        if self.dry_run or folder is None:
            return None
        latest = store.con.execute(
            "SELECT run_id FROM runs WHERE status = 'succeeded' "
            "ORDER BY finished_at DESC LIMIT 1"
        ).fetchall()
        if latest and report_run_id(folder) == latest[0][0]:
            return folder / "index.html"
        return self._write_report(store)


def _insert_run(con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(values.values()))


def _covered(store: Store, day: date) -> bool:
    """Whether a succeeded run computed ``day`` (as its date or within its --since range)."""
    (count,) = store.con.execute(
        "SELECT count(*) FROM runs WHERE status = 'succeeded' "
        "AND ? BETWEEN coalesce(since, logical_date) AND logical_date",
        [day],
    ).fetchall()[0]
    return count > 0


def _count(store: Store, where: str) -> int:
    (count,) = store.con.execute(f"SELECT count(*) FROM predictions WHERE {where}").fetchall()[0]
    return int(count)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_time(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(timezone.utc).isoformat()}'"


def with_paths(settings: NightlySettings, **paths: Any) -> NightlySettings:
    """``settings`` with the given fields replaced where the value is not None or empty.

    >>> with_paths(NightlySettings(), store="other.duckdb", model=None).store
    'other.duckdb'
    """
    updates = {key: value for key, value in paths.items() if value not in (None, (), [])}
    if not updates:
        return settings
    shown = " ".join(f"--{key} {value}" for key, value in updates.items())
    return build_settings(NightlySettings, {**settings.model_dump(), **updates}, shown)

