"""Scoring reviews: an engine-agnostic batch scorer and the local streaming loop around it.

:class:`ReviewScorer` loads a model once and maps a batch of reviews to the same rows plus one
probability and one thresholded flag per label, the model's name and its version. It knows
nothing about files or engines: :func:`score_file` streams files through it here, and Ray Data
can run it unchanged in an actor pool::

    ds.map_batches(ReviewScorer, fn_constructor_kwargs={"model": "models/default"},
                   batch_format="pyarrow", compute=ActorPoolStrategy(size=2))
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from wordofclick.model import DEFAULT_BATCH_TOKENS, ComplaintClassifier, TorchBackend
from wordofclick.reviews import (
    DEFAULT_CHUNK_ROWS,
    MAX_TEXT_CHARS,
    REJECT_SCHEMA,
    ReviewReader,
    TableWriter,
    output_format,
)
from wordofclick.schema import (
    MODEL_NAME_COLUMN,
    MODEL_VERSION_COLUMN,
    pred_column,
    prob_column,
    scored_fields,
)

DEFAULT_BACKEND = "auto"

ModelLike = str | os.PathLike[str] | ComplaintClassifier


class ReviewScorer:
    """Load a classifier once; then ``scorer(batch)`` returns the batch with its scores.

    ``batch`` is a :class:`pyarrow.Table` (returned as a table) or a mapping of column name to
    values (returned as a dict of NumPy arrays, as Ray's ``batch_format="numpy"`` expects). It
    needs a ``text`` column; every other column is passed through, except earlier score columns,
    which are replaced. ``num_threads`` caps the model's CPU threads (one per Ray actor CPU).

    >>> scorer = ReviewScorer("models/default", backend="onnx-int8")  # doctest: +SKIP
    >>> scorer(pa.table({"text": ["The agent hung up on me."]})).column_names  # doctest: +SKIP
    ['text', 'prob_service_complaint', ..., 'model_name', 'model_version']
    """

    def __init__(
        self,
        model: ModelLike,
        backend: str = DEFAULT_BACKEND,
        num_threads: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        if isinstance(model, ComplaintClassifier):
            self.classifier = model
        else:
            self.classifier = ComplaintClassifier.from_pretrained(model, backend, num_threads)
        self.batch_tokens = batch_tokens
        self.backend = _backend_name(self.classifier)
        self.fields = scored_fields(self.classifier.labels.names)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of scored batches for input batches of ``schema``."""
        replaced = {f.name for f in self.fields}
        return pa.schema([f for f in schema if f.name not in replaced] + self.fields)

    def __call__(self, batch: pa.Table | Mapping[str, Any]) -> pa.Table | dict[str, np.ndarray]:
        table = batch if isinstance(batch, pa.Table) else pa.table(dict(batch))
        scored = self.score_table(table)
        if isinstance(batch, pa.Table):
            return scored
        return {
            name: column.to_numpy(zero_copy_only=False)
            for name, column in zip(scored.column_names, scored.columns, strict=True)
        }

    def score_table(self, table: pa.Table) -> pa.Table:
        """``table`` with its score columns appended (see the class docstring)."""
        if "text" not in table.column_names:
            raise ValueError(
                f"the batch has no 'text' column (columns: {', '.join(table.column_names)})"
            )
        clf = self.classifier
        texts = table.column("text").to_pylist()
        if texts:
            probabilities = clf.predict_proba(texts, batch_tokens=self.batch_tokens)
        else:
            probabilities = np.zeros((0, len(clf.labels)), dtype=np.float32)
        decisions = clf.decide(probabilities)
        replaced = [f.name for f in self.fields if f.name in table.column_names]
        table = table.drop_columns(replaced)
        for j, label in enumerate(clf.labels.names):
            table = table.append_column(prob_column(label), pa.array(probabilities[:, j]))
        for j, label in enumerate(clf.labels.names):
            table = table.append_column(pred_column(label), pa.array(decisions[:, j]))
        rows = table.num_rows
        table = table.append_column(MODEL_NAME_COLUMN, pa.array([clf.name] * rows, pa.string()))
        return table.append_column(
            MODEL_VERSION_COLUMN, pa.array([clf.version] * rows, pa.string())
        )


def _backend_name(classifier: ComplaintClassifier) -> str:
    if isinstance(classifier.backend, TorchBackend):
        return "torch"
    return getattr(classifier.backend, "kind", type(classifier.backend).__name__)


@dataclass(frozen=True)
class ScoredChunk:
    """Scored reviews and rejected rows of one input chunk."""

    reviews: pa.Table
    rejects: pa.Table
    rows_read: int
    truncated: int


def iter_scored(
    model: ModelLike | ReviewScorer,
    inputs: str | Path | Sequence[str | Path],
    columns: str | Mapping[str, str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Iterator[ScoredChunk]:
    """Read, validate and score review files chunk by chunk (see :class:`ReviewReader`).

    The inputs are checked before this returns, so an unreadable input fails at once.

    >>> clf = ComplaintClassifier.from_pretrained("./models/default")  # doctest: +SKIP
    >>> for chunk in clf.score_file("reviews.parquet"):  # doctest: +SKIP
    ...     print(chunk.reviews.num_rows, chunk.rejects.num_rows)
    """
    scorer = model if isinstance(model, ReviewScorer) else ReviewScorer(model)
    reader = ReviewReader(inputs, columns, chunk_rows, max_text_chars)
    return _score_chunks(scorer, reader)


def _score_chunks(scorer: ReviewScorer, reader: ReviewReader) -> Iterator[ScoredChunk]:
    for chunk in reader:
        scored = scorer.score_table(chunk.reviews)
        yield ScoredChunk(scored, chunk.rejects, chunk.rows_read, chunk.truncated)


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did; ``read == scored + rejected`` (duplicates are rejects)."""

    read: int
    scored: int
    rejected: int
    duplicates: int
    truncated: int
    rejected_by_reason: dict[str, int]
    seconds: float
    backend: str
    output: Path
    rejects: Path | None
    max_text_chars: int
    max_rows_held: int = field(repr=False)

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        reasons = ", ".join(
            f"{reason} {n:,}"
            for reason, n in sorted(self.rejected_by_reason.items(), key=lambda kv: -kv[1])
        )
        lines = [
            f"read {self.read:,} rows: scored {self.scored:,}, rejected {self.rejected:,}"
            + (f" ({reasons})" if reasons else "")
        ]
        if self.truncated:
            lines.append(
                f"cut {self.truncated:,} texts longer than {self.max_text_chars:,} characters"
            )
        lines.append(f"wrote {self.output}")
        if self.rejects is not None:
            lines.append(f"wrote rejected rows to {self.rejects}")
        elif self.rejected:
            lines.append("rejected rows were not kept: pass --rejects FILE to see them")
        rate = self.read / self.seconds if self.seconds else 0.0
        lines.append(f"backend {self.backend}, {self.seconds:.1f} s, {rate:,.0f} rows/s")
        return lines


def open_scoring_run(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    rejects: str | Path | None,
    columns: str | Mapping[str, str] | None,
    chunk_rows: int,
    max_text_chars: int,
) -> ReviewReader:
    """The reader of a scoring run, once inputs and output names are known to be usable.

    Bad inputs or file names fail here, before seconds are spent loading a model (any engine).
    """
    reader = ReviewReader(inputs, columns, chunk_rows, max_text_chars)
    output_format(output)
    if rejects is not None:
        output_format(rejects)
    return reader


def score_file(
    model: ModelLike | ReviewScorer,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    rejects: str | Path | None = None,
    columns: str | Mapping[str, str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    backend: str = DEFAULT_BACKEND,
    progress: bool = True,
    max_text_chars: int = MAX_TEXT_CHARS,
    num_threads: int | None = None,
) -> ScoreSummary:
    """Score review files into ``output`` (.parquet, .csv or .jsonl), streaming in chunks.

    Rejected rows go to ``rejects`` when given (any of the same formats). Neither file appears
    unless the run completes. Raises :class:`~wordofclick.errors.DataError` when the input itself
    cannot be read.

    >>> summary = score_file("models/default", "exports/*.csv", "scored.parquet",
    ...                      rejects="rejects.csv")  # doctest: +SKIP
    >>> summary.read == summary.scored + summary.rejected  # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    reader = open_scoring_run(inputs, output, rejects, columns, chunk_rows, max_text_chars)
    scorer = (
        model
        if isinstance(model, ReviewScorer)
        else ReviewScorer(model, backend=backend, num_threads=num_threads)
    )
    total = reader.count_rows() if progress else None
    with ExitStack() as stack:
        scored_out = stack.enter_context(TableWriter(output, scorer.output_schema(reader.schema)))
        rejects_out = stack.enter_context(TableWriter(rejects, REJECT_SCHEMA)) if rejects else None
        bar = stack.enter_context(
            tqdm(
                total=total,
                unit="rows",
                desc="scoring",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        )
        for chunk in _score_chunks(scorer, reader):
            scored_out.write(chunk.reviews)
            if rejects_out is not None:
                rejects_out.write(chunk.rejects)
            bar.update(chunk.rows_read)
        if bar.total != bar.n:  # line counts over-estimate rows when a field spans lines
            bar.total = bar.n
            bar.refresh()
    stats = reader.stats
    return ScoreSummary(
        read=stats.read,
        scored=scored_out.rows,
        rejected=stats.rejected,
        duplicates=stats.duplicates,
        truncated=stats.truncated,
        rejected_by_reason=dict(stats.rejected_by_reason),
        seconds=time.perf_counter() - started,
        backend=scorer.backend,
        output=Path(output),
        rejects=Path(rejects) if rejects is not None else None,
        max_text_chars=max_text_chars,
        max_rows_held=stats.max_rows_held,
    )
