"""Scale-out scoring: the same :class:`~wordofclick.scoring.ReviewScorer` in a Ray Data actor pool.

``woc score --engine ray`` and ``woc nightly --engine ray`` give the same rows, rejects and counts
as the local engine; only where the model runs changes. The pipeline::

    chunk source (one actor on the driver's node, 0 CPUs): ReviewReader -> numbered chunks,
        rejects written as they appear, read statistics kept
    -> fetch tasks (0 CPUs): chunk i, one block per chunk
    -> map_batches(ReviewScorer, compute=ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor)
    -> the driver writes the output file as the scored chunks arrive, in input order

Why this shape and not ``ray.data.read_csv``/``read_parquet``: every row must be validated,
rejected or deduplicated exactly as the local engine does, and Arrow's readers accept, drop or
fail on other rows than :class:`~wordofclick.reviews.ReviewReader`; duplicates are found across
the whole input, in input order. Reading and validating takes about 1% of the CPU that scoring
takes (some 20,000-35,000 rows/s against 100-170 rows/s per model CPU), so one reader keeps
over a hundred model CPUs busy. Each chunk is scored in one actor call, as in the local loop,
so the scores are the same to the bit when the thread counts match.

Nothing in the pipeline but the scoring actors reserves a CPU, so the actors may take every CPU
without starving the read side (Ray Data hangs when its read tasks cannot be scheduled,
ray-project/ray issue 44687). Ray is an optional extra: ``pip install 'wordofclick[ray]'``.

>>> summary = score_file("models/default", "exports/*.csv", "scored.parquet",
...                      ray=RaySettings(address="auto", actors=8))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from tqdm.auto import tqdm

from wordofclick.errors import ConfigError, DataError, ModelFolderError
from wordofclick.model import ModelMeta
from wordofclick.reviews import (
    DEFAULT_CHUNK_ROWS,
    MAX_TEXT_CHARS,
    REJECT_SCHEMA,
    ReadStats,
    ReviewReader,
    TableWriter,
    count_lines,
    input_format,
    parse_columns,
)
from wordofclick.schema import scored_fields
from wordofclick.scoring import DEFAULT_BACKEND, ReviewScorer, ScoreSummary, open_scoring_run
from wordofclick.settings import Settings, build_settings

if TYPE_CHECKING:
    from wordofclick.nightly import NightlySettings

INSTALL_HINT = "pip install 'wordofclick[ray]'"
# Fetch tasks only wait for the chunk source, which makes chunks one at a time: a few in flight
# keep the next chunks ready without starting a worker process per chunk.
FETCH_TASKS = 4
CONNECT_TIMEOUT_S = 5.0
_USER_ERRORS = (ConfigError, DataError, ModelFolderError)


class RayEngineError(ConfigError):
    """Ray is not installed, the cluster cannot be reached, or it cannot hold the actors asked."""


class RaySettings(Settings):
    """Where and how wide the Ray engine runs; every field has a default that fits any cluster.

    ``cpus_per_actor`` is what Ray reserves for each actor and also the model's thread count in it
    (rounded down, at least one). Left empty, the actors share the free CPUs: one actor of one
    CPU per free CPU, or ``actors`` actors splitting them. ``batch_size`` is the rows read per
    actor call (one chunk); empty, the caller's chunk size, so each call scores the same batch as
    the local engine does.

    >>> RaySettings(address="auto", actors=4).cpus_per_actor is None
    True
    """

    address: str | None = Field(
        None,
        description="Ray cluster: 'auto' (the one this machine joined with `ray start`), "
        "'host:6379' or 'ray://host:10001'; empty or 'local': start Ray here for the run.",
    )
    actors: int | None = Field(None, ge=1, description="Scoring actors; empty: fill the CPUs.")
    cpus_per_actor: float | None = Field(
        None, gt=0, description="CPUs per actor, also its model threads; empty: share the CPUs."
    )
    batch_size: int | None = Field(
        None, ge=1, description="Rows read per actor call; empty: the chunk size of the run."
    )


@dataclass(frozen=True)
class ActorPlan:
    """How many scoring actors, the CPUs Ray reserves for each, and each model's threads."""

    actors: int
    cpus_per_actor: float
    threads: int

    def describe(self) -> str:
        cpus = f"{self.cpus_per_actor:g} CPU" + ("" if self.cpus_per_actor == 1 else "s")
        threads = f"{self.threads} thread" + ("" if self.threads == 1 else "s")
        return f"{self.actors} actor{'' if self.actors == 1 else 's'} x {cpus}, {threads} each"


def plan_actors(
    settings: RaySettings,
    free_cpus: float,
    total_cpus: float | None = None,
    largest_node_cpus: float | None = None,
) -> ActorPlan:
    """Size the actor pool from the settings and the cluster's CPUs.

    Defaults fill the CPUs that are free now; explicit values are checked against what the
    cluster could ever schedule, since Ray Data would otherwise wait forever for the actors.

    >>> plan_actors(RaySettings(), free_cpus=2)
    ActorPlan(actors=2, cpus_per_actor=1.0, threads=1)
    >>> plan_actors(RaySettings(actors=3), free_cpus=2)
    ActorPlan(actors=3, cpus_per_actor=0.66, threads=1)
    """
    total = total_cpus if total_cpus is not None else free_cpus
    largest = largest_node_cpus if largest_node_cpus is not None else total
    if total <= 0:
        raise RayEngineError("the Ray cluster has no CPUs: start its nodes with --num-cpus N")
    actors, cpus = settings.actors, settings.cpus_per_actor
    free = free_cpus if free_cpus > 0 else total
    if actors is None and cpus is None:
        cpus = min(1.0, largest)
        actors = max(1, math.floor(free / cpus + 1e-9))
    elif actors is None:
        assert cpus is not None
        actors = max(1, math.floor(free / cpus + 1e-9))
    elif cpus is None:
        # Round down to a hundredth so that the actors always fit in what is free.
        cpus = max(0.01, math.floor(100 * min(free, largest * actors) / actors) / 100)
    if cpus > largest + 1e-9:
        raise RayEngineError(
            f"--ray-cpus-per-actor {cpus:g} is more than the largest Ray node has ({largest:g} "
            "CPUs): an actor runs on one node; lower it"
        )
    if actors * cpus > total + 1e-9:
        raise RayEngineError(
            f"{actors} actors of {cpus:g} CPU each need {actors * cpus:g} CPUs but the Ray cluster "
            f"has {total:g}: lower --ray-actors or --ray-cpus-per-actor, or add nodes"
        )
    return ActorPlan(actors, cpus, max(1, math.floor(cpus + 1e-9)))


# --- the Ray session ---------------------------------------------------------------------------


def import_ray() -> Any:
    """The ``ray`` module with Ray Data loaded, or a :class:`RayEngineError` saying how to get it.

    >>> import_ray().data.ActorPoolStrategy  # doctest: +SKIP
    """
    try:
        import ray
        import ray.data  # the part of the extra the engine needs
    except ImportError as error:
        raise RayEngineError(
            f"the Ray engine needs Ray Data, which is not installed ({error}): {INSTALL_HINT}, "
            "or use --engine local"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (or start Ray here) for the block; yield ``ray``.

    A session that is already open (``ray.init`` called by the caller) is used as it is and left
    open; one opened here is shut down at the end.

    >>> with ray_session("auto") as ray:  # doctest: +SKIP
    ...     print(ray.cluster_resources()["CPU"])
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {
        "logging_level": logging.WARNING,
        # Worker output (library warnings from every actor) is noise unless debugging (woc -v).
        "log_to_driver": logging.getLogger().isEnabledFor(logging.DEBUG),
    }
    if address in (None, "local"):  # a private Ray on this machine, for this run
        options["include_dashboard"] = False
    else:
        _check_reachable(address)
    try:
        ray.init(address=address, **options)
    except ConnectionError as error:
        where = f"at {address!r}" if address else "on this machine"
        raise RayEngineError(
            f"cannot reach a Ray cluster {where} ({_first_line(error)}); start one with "
            "`ray start --head` or check --ray-address"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nobody listens at: ``ray.init`` retries for minutes."""
    target = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address("auto")  # RAY_ADDRESS or `ray start`'s file
        except Exception:
            return  # ray.init says itself, at once, that no cluster was found
        if not target:
            return
    target = target.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise RayEngineError(
            f"--ray-address {address!r} is not auto, host:port or ray://host:port "
            "(for example 10.0.0.5:6379)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RayEngineError(
            f"cannot reach the Ray cluster at {address!r} ({host}:{port}: {error}); is the head "
            "running (`ray start --head`) and the port open?"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's own log lines off for the block (unless debugging): errors come back raised."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.CRITICAL)  # failures come back as exceptions
    try:
        yield
    finally:
        logger.setLevel(level)


# --- what the chunk source reads ---------------------------------------------------------------


@dataclass(frozen=True)
class _ReviewFiles:
    """Review files validated by ReviewReader, as ``woc score`` reads them."""

    files: tuple[str, ...]
    columns: dict[str, str]
    chunk_rows: int
    max_text_chars: int
    rejects: str | None


@dataclass(frozen=True)
class _ParquetRows:
    """A Parquet file of rows that are already valid reviews (the nightly job's work file)."""

    path: str
    chunk_rows: int


class _ChunkSource:
    """Makes numbered chunks in input order and hands each out once (a Ray actor).

    It runs on the driver's node, so input and rejects paths are the driver's. A chunk asked for
    out of order is made along with the ones before it and held until its task asks for it.
    """

    def __init__(self, spec: _ReviewFiles | _ParquetRows) -> None:
        self._reader: ReviewReader | None = None
        self._rejects: TableWriter | None = None
        if isinstance(spec, _ReviewFiles):
            self._reader = ReviewReader(
                list(spec.files), spec.columns, spec.chunk_rows, spec.max_text_chars
            )
            if spec.rejects is not None:
                self._rejects = TableWriter(spec.rejects, REJECT_SCHEMA)
            self._chunks: Iterator[pa.Table] = self._review_chunks()
        else:
            batches = pq.ParquetFile(spec.path).iter_batches(batch_size=spec.chunk_rows)
            self._chunks = (pa.Table.from_batches([batch]) for batch in batches)
        self._made = 0
        self._held: dict[int, pa.Table] = {}
        self._given: set[int] = set()
        self._exhausted = False

    def _review_chunks(self) -> Iterator[pa.Table]:
        assert self._reader is not None
        for chunk in self._reader:
            if self._rejects is not None:
                self._rejects.write(chunk.rejects)
            yield chunk.reviews

    def _advance(self) -> bool:
        try:
            table = next(self._chunks)
        except StopIteration:
            self._exhausted = True
            return False
        self._held[self._made] = table
        self._made += 1
        return True

    def take(self, index: int, last: bool) -> list[pa.Table]:
        """Chunk ``index`` (none past the end); ``last`` also takes every chunk after it."""
        if index in self._given:
            # A retried fetch task: its chunk was handed out already, so rows would be lost.
            raise RuntimeError(f"chunk {index} was asked for twice; run the command again")
        self._given.add(index)
        while self._made <= index and self._advance():
            pass
        tables = [self._held.pop(index)] if index in self._held else []
        if last:
            while self._advance():
                tables.append(self._held.pop(self._made - 1))
        return [table for table in tables if table.num_rows]

    def finish(self) -> ReadStats | None:
        """Close the rejects file; the read statistics (None for a Parquet source)."""
        if not self._exhausted or self._held:
            raise RuntimeError(
                f"the Ray pipeline stopped with chunks unread ({len(self._held)} held); "
                "run the command again"
            )
        if self._rejects is not None:
            self._rejects.close()
        return self._reader.stats if self._reader is not None else None

    def abort(self) -> None:
        """Drop the partial rejects file."""
        if self._rejects is not None:
            self._rejects.abort()


def _fetch_chunks(batch: pa.Table, source: Any, last: int) -> Iterator[pa.Table]:
    """Ray Data map task: one numbered chunk per input row, each yielded as its own block."""
    import ray

    for index in batch.column("chunk").to_pylist():
        yield from ray.get(source.take.remote(index, index == last))


# --- the pipeline ------------------------------------------------------------------------------


class _ScoringRun:
    """One Ray Data pipeline from a chunk source through the ReviewScorer actor pool."""

    def __init__(
        self,
        ray: Any,
        spec: _ReviewFiles | _ParquetRows,
        chunks: int,
        model: Path,
        backend: str,
        settings: RaySettings,
    ) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray = ray
        plan = plan_actors(settings, *_cluster_cpus(ray))
        # More actors than chunks would only load the model to wait.
        self.plan = ActorPlan(min(plan.actors, chunks), plan.cpus_per_actor, plan.threads)
        here = ray.get_runtime_context().get_node_id()
        source_actor = ray.remote(num_cpus=0)(_ChunkSource)
        self.source = source_actor.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
        ).remote(spec)
        threads = str(self.plan.threads)
        items = [{"chunk": i} for i in range(chunks)]
        self.dataset = (
            ray.data.from_items(items, override_num_blocks=chunks)
            .map_batches(
                _fetch_chunks,
                fn_kwargs={"source": self.source, "last": chunks - 1},
                batch_size=None,
                batch_format="pyarrow",
                num_cpus=0,
                compute=ray.data.TaskPoolStrategy(size=min(FETCH_TASKS, chunks)),
            )
            .map_batches(
                ReviewScorer,
                fn_constructor_kwargs={
                    "model": str(model),
                    "backend": backend,
                    "num_threads": self.plan.threads,
                },
                batch_size=None,  # one chunk per call, as in the local loop
                batch_format="pyarrow",
                num_cpus=self.plan.cpus_per_actor,
                compute=ray.data.ActorPoolStrategy(size=self.plan.actors),
                runtime_env={
                    "env_vars": {"OMP_NUM_THREADS": threads, "RAYON_NUM_THREADS": threads}
                },
            )
        )
        # The dataset holds its own copy of the context: these settings stay with this run.
        context = self.dataset.context
        context.enable_progress_bars = False  # the caller shows one bar for the whole run
        context.execution_options.preserve_order = True  # rows come out in input order

    def batches(self) -> Iterator[pa.Table]:
        """Scored chunks in input order, as the actors finish them."""
        with _quiet_ray_data():
            yield from self.dataset.iter_batches(batch_size=None, batch_format="pyarrow")

    def finish(self) -> ReadStats | None:
        try:
            return self.ray.get(self.source.finish.remote())
        finally:
            self.ray.kill(self.source)

    def abort(self) -> None:
        # The actor may be what failed; then there is nothing left to clean.
        with suppress(Exception):
            self.ray.get(self.source.abort.remote(), timeout=30)
        self.ray.kill(self.source)


def _cluster_cpus(ray: Any) -> tuple[float, float, float]:
    """CPUs free now, CPUs in the cluster, and CPUs of its largest node."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in nodes), default=0.0)
    total = ray.cluster_resources().get("CPU", 0.0)
    return ray.available_resources().get("CPU", 0.0), total, largest or total


@contextmanager
def _user_errors(ray: Any) -> Iterator[None]:
    """Re-raise a library error raised inside Ray as itself, without Ray's wrapping traceback."""
    try:
        yield
    except Exception as error:
        found = _find_user_error(error, ray)
        if found is None:
            raise
        raise found from None


def _find_user_error(error: BaseException, ray: Any) -> BaseException | None:
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # RayTaskError keeps the original here
        if isinstance(current, ray.exceptions.RayError):
            stack += [current.__cause__, current.__context__, cause]
            continue
        if isinstance(current, _USER_ERRORS):
            return type(current)(*current.args)
        stack += [current.__cause__, current.__context__]
        if isinstance(cause, BaseException):
            stack.append(cause)
    return None


# --- public entry points -----------------------------------------------------------------------


def check_model(model: str | Path, backend: str = DEFAULT_BACKEND) -> tuple[Path, str, list[str]]:
    """The model folder as an absolute path, the concrete backend and the label names.

    Read here, on the driver, so that a wrong folder fails before the cluster is busy; the
    actors load the model themselves from the same path (shared storage on a cluster).
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "the Ray engine loads the model in every actor: pass the model folder's path, "
            f"not a {type(model).__name__}"
        )
    folder = Path(model).resolve()
    if not folder.is_dir():
        raise ModelFolderError(
            f"{model}: model folder not found; train one with `woc train` or check the path"
        )
    labels = ModelMeta.read(folder).labels
    if backend == "auto":
        from wordofclick import onnx_backend

        backend = onnx_backend.pick_auto(folder)
    return folder, backend, list(labels)


def score_file(
    model: str | Path,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    rejects: str | Path | None = None,
    columns: str | Mapping[str, str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    backend: str = DEFAULT_BACKEND,
    progress: bool = True,
    max_text_chars: int = MAX_TEXT_CHARS,
    ray: RaySettings | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> ScoreSummary:
    """:func:`wordofclick.scoring.score_file` with the model in a Ray Data actor pool.

    Same files, rows, rejects and counts as the local engine. Inputs are read, and the output and
    rejects written, on the driver's node; the actors need the package and the model folder at
    the same path. ``on_chunk(rows)`` is called after each scored chunk is written. Raises
    :class:`RayEngineError` when Ray is missing or unreachable.

    >>> settings = RaySettings(address="auto")
    >>> summary = score_file("models/default", "exports/*.csv", "scored.parquet",
    ...                      rejects="rejects.csv", ray=settings)  # doctest: +SKIP
    >>> summary.read == summary.scored + summary.rejected  # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    settings = ray or RaySettings()
    chunk_rows = settings.batch_size or chunk_rows
    reader = open_scoring_run(inputs, output, rejects, columns, chunk_rows, max_text_chars)
    folder, backend, labels = check_model(model, backend)
    spec = _ReviewFiles(
        files=tuple(str(path.resolve()) for path in reader.files),
        columns=parse_columns(columns),
        chunk_rows=chunk_rows,
        max_text_chars=max_text_chars,
        rejects=str(Path(rejects).resolve()) if rejects is not None else None,
    )
    expected = estimate_rows(reader.files)
    chunks = max(1, math.ceil(expected / chunk_rows))
    schema = _output_schema(reader.schema, labels)
    with ExitStack() as stack:
        ray_module = stack.enter_context(ray_session(settings.address))
        stack.enter_context(_user_errors(ray_module))
        run = _ScoringRun(ray_module, spec, chunks, folder, backend, settings)
        bar = stack.enter_context(
            tqdm(
                total=expected,
                unit="rows",
                desc="scoring (ray)",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        )
        try:
            with TableWriter(output, schema) as writer:
                for table in run.batches():
                    writer.write(table)
                    bar.update(table.num_rows)
                    if on_chunk is not None:
                        on_chunk(table.num_rows)
                stats = run.finish()
        except BaseException:
            run.abort()
            raise
        bar.total = bar.n  # rejected rows never reach the bar
        bar.refresh()
    assert stats is not None
    if writer.rows != stats.valid:
        raise RuntimeError(
            f"the Ray engine wrote {writer.rows:,} scored rows for {stats.valid:,} valid ones; "
            "please report this, with the input if possible"
        )
    return ScoreSummary(
        read=stats.read,
        scored=writer.rows,
        rejected=stats.rejected,
        duplicates=stats.duplicates,
        truncated=stats.truncated,
        rejected_by_reason=dict(stats.rejected_by_reason),
        seconds=time.perf_counter() - started,
        backend=f"{backend} on Ray ({run.plan.describe()})",
        output=Path(output),
        rejects=Path(rejects) if rejects is not None else None,
        max_text_chars=max_text_chars,
        max_rows_held=stats.max_rows_held,
    )


def score_nightly(
    rows: Path, out_dir: Path, settings: NightlySettings, on_chunk: Callable[[int], None]
) -> None:
    """The nightly job's ``ray`` engine (see :class:`wordofclick.nightly.ScoringEngine`).

    Scores the already validated rows in ``rows`` into ``out_dir/part-0.parquet`` with the actor
    pool; the Ray settings come from the config's ``engine_options`` (address, actors,
    cpus_per_actor, batch_size), the model threads from ``cpus_per_actor``. The driver keeps
    writing the store itself, in one transaction.

    >>> score_nightly(Path("to_score.parquet"), Path("scored"), settings, print)  # doctest: +SKIP
    """
    options = build_settings(RaySettings, settings.engine_options, "engine_options")
    folder, backend, labels = check_model(settings.model_path, settings.backend)
    chunk_rows = options.batch_size or settings.chunk_rows
    source = pq.ParquetFile(rows)
    chunks = max(1, math.ceil(source.metadata.num_rows / chunk_rows))
    schema = _output_schema(source.schema_arrow, labels)
    spec = _ParquetRows(str(Path(rows).resolve()), chunk_rows)
    with ray_session(options.address) as ray, _user_errors(ray):
        run = _ScoringRun(ray, spec, chunks, folder, backend, options)
        try:
            with pq.ParquetWriter(out_dir / "part-0.parquet", schema) as writer:
                for table in run.batches():
                    writer.write_table(table.select(schema.names).cast(schema))
                    on_chunk(table.num_rows)
            run.finish()
        except BaseException:
            run.abort()
            raise


def estimate_rows(files: Sequence[Path]) -> int:
    """Rows in the input files: exact for Parquet, lines for text (an over-estimate at worst).

    Sizes the list of chunks that the fetch tasks ask for; chunks past the end are empty, and
    the last one takes whatever is left, so a wrong estimate costs time, never rows.
    """
    total = 0
    for path in files:
        fmt = input_format(path)
        if fmt == "parquet":
            total += pq.ParquetFile(path).metadata.num_rows
            continue
        try:
            lines = count_lines(path)
        except (OSError, EOFError) as error:
            raise DataError(
                f"{path}: cannot read the file ({error}); is it truncated or corrupt?"
            ) from None
        total += max(lines - 1, 0) if fmt == "csv" else lines
    return total


def _output_schema(schema: pa.Schema, labels: Sequence[str]) -> pa.Schema:
    """What :meth:`ReviewScorer.output_schema` gives, without loading the model on the driver."""
    added = scored_fields(labels)
    replaced = {f.name for f in added}
    return pa.schema([f for f in schema if f.name not in replaced] + added)
