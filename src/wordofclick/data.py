"""Labeled review data for training and evaluation.

A labeled file is JSONL, CSV or Parquet with a ``text`` column and either a ``labels`` column (a
list of label names, or one string of names separated by ``|`` or ``,`` in CSV) or one 0/1 column
per label. ``corpus:<split>`` names a split of the bundled corpus, and an ``.xml`` file is read as
SemEval/MAMS aspect data through :mod:`wordofclick.absa`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wordofclick.errors import DataError
from wordofclick.labels import LabelSet

log = logging.getLogger(__name__)

CORPUS_PREFIX = "corpus:"
LABELED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".xml")
TABLE_READERS = {".csv": (pacsv.read_csv, "CSV"), ".parquet": (pq.read_table, "Parquet")}


@dataclass
class SetAside:
    """A row that could not be used, and why."""

    source: str
    row: int
    reason: str


@dataclass
class LabeledData:
    """Texts with a 0/1 target matrix in the order of ``labels``."""

    texts: list[str]
    targets: np.ndarray
    labels: LabelSet
    groups: list[str] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabeledData:
        return LabeledData(
            texts=[self.texts[i] for i in indices],
            targets=self.targets[np.asarray(indices, dtype=np.int64)],
            labels=self.labels,
            groups=[self.groups[i] for i in indices] if self.groups else [],
        )

    def fingerprint(self) -> str:
        """A hash of texts and targets in order: two runs on the same data share it."""
        digest = hashlib.sha256()
        for text, row in zip(self.texts, self.targets, strict=True):
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(row.astype(np.uint8).tobytes())
        return digest.hexdigest()[:16]

    def label_counts(self) -> dict[str, int]:
        return {n: int(c) for n, c in zip(self.labels, self.targets.sum(axis=0), strict=True)}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def drop_overlap(data: LabeledData, held_out: LabeledData) -> tuple[LabeledData, int]:
    """``data`` without the texts (case/space-blind) that ``held_out`` also has, and how many.

    Public review sets reuse sentences across files: a dev sentence left in train would make
    the dev score, early stopping and the thresholds optimistic.
    """
    seen = {_normalise(text) for text in held_out.texts}
    keep = [i for i, text in enumerate(data.texts) if _normalise(text) not in seen]
    kept = data.subset(keep)
    kept.set_aside = data.set_aside
    return kept, len(data) - len(keep)


def _first_occurrences(parts: Sequence[LabeledData]) -> tuple[list[list[int]], int]:
    """Per part, the rows whose text (case/space-blind) no earlier row had, and how many of the
    repeats carried different labels from the copy kept."""
    kept: list[list[int]] = []
    first: dict[str, np.ndarray] = {}
    conflicts = 0
    for part in parts:
        rows = []
        for i, text in enumerate(part.texts):
            key = _normalise(text)
            if key in first:
                conflicts += int(not np.array_equal(first[key], part.targets[i]))
                continue
            first[key] = part.targets[i]
            rows.append(i)
        kept.append(rows)
    return kept, conflicts


def combine(
    parts: Iterable[LabeledData],
    labels: LabelSet,
    dedupe: bool = True,
    repeats: Sequence[int] | None = None,
) -> LabeledData:
    """Concatenate labeled data, keeping the first copy of texts that repeat (case/space-blind).

    ``repeats[i]`` oversamples part ``i``: the rows kept from it appear that many times, the
    extra copies after all the parts (de-duplication never removes them).
    """
    parts = list(parts)
    if dedupe:
        kept, conflicts = _first_occurrences(parts)
        if conflicts:
            log.info("%d repeated texts had different labels; the first copy was kept", conflicts)
    else:
        kept = [list(range(len(part))) for part in parts]
    extra = [n - 1 for n in repeats] if repeats is not None else [0] * len(parts)
    order = [(part, i) for part, rows in zip(parts, kept, strict=True) for i in rows]
    order += [(part, i) for part, rows, n in zip(parts, kept, extra, strict=True)
              for _ in range(n) for i in rows]
    texts = [part.texts[i] for part, i in order]
    rows = [part.targets[i] for part, i in order]
    groups = [part.groups[i] if part.groups else "" for part, i in order]
    set_aside = [row for part in parts for row in part.set_aside]
    targets = np.stack(rows) if rows else np.zeros((0, len(labels)), dtype=np.float32)
    return LabeledData(texts, targets.astype(np.float32), labels, groups, set_aside)


def load_labeled(spec: str | Path, labels: LabelSet, granularity: str = "sentence") -> LabeledData:
    """Load one labeled file (or ``corpus:<split>``) into texts and a target matrix.

    >>> data = load_labeled("corpus:dev", LabelSet.default())  # doctest: +SKIP
    """
    spec_text = str(spec)
    if spec_text.startswith(CORPUS_PREFIX):
        from wordofclick.datasets import SPLITS, load_corpus

        split = spec_text.removeprefix(CORPUS_PREFIX)
        if split not in SPLITS:
            raise DataError(f"{spec_text}: unknown corpus split; expected corpus:"
                            + " or corpus:".join(SPLITS))
        table = load_corpus(split)
        return table_to_labeled(table, labels, spec_text, group_column="company")
    path = Path(spec_text)
    if not path.is_file():
        raise DataError(f"{path}: labeled data file not found; check the path")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        from wordofclick.absa import read_absa

        records = read_absa(path, by_review=granularity == "review")
        return records_to_labeled(records, labels, str(path))
    if suffix in (".jsonl", ".json"):
        return records_to_labeled(_read_jsonl(path), labels, str(path))
    if suffix in TABLE_READERS:
        read, kind = TABLE_READERS[suffix]
        try:
            table = read(path)
        except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as error:
            raise DataError(f"{path}: not a readable {kind} file ({error})") from None
        return table_to_labeled(table, labels, str(path))
    raise DataError(
        f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(LABELED_SUFFIXES)}"
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {number}: not valid JSON ({error})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}, line {number}: expected a JSON object per line")
                record["_row"] = number
                records.append(record)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}); re-save it as UTF-8") from None
    return records


def table_to_labeled(
    table: pa.Table, labels: LabelSet, source: str, group_column: str | None = None
) -> LabeledData:
    records = table.to_pylist()
    for number, record in enumerate(records, start=2 if source.endswith(".csv") else 1):
        record["_row"] = number
        if group_column:
            record["_group"] = record.get(group_column)
    return records_to_labeled(records, labels, source, columns=table.column_names)


def records_to_labeled(
    records: Sequence[dict[str, Any]],
    labels: LabelSet,
    source: str,
    columns: Sequence[str] | None = None,
) -> LabeledData:
    """Validate records with ``text`` and labels; rows with no usable text are set aside."""
    if not records:
        raise DataError(f"{source}: no rows; a labeled file needs at least one example")
    names = list(columns) if columns is not None else sorted({k for r in records for k in r})
    if "text" not in names:
        raise DataError(
            f"{source}: no 'text' column (columns: {', '.join(n for n in names if n[0] != '_')}); "
            "rename the column holding the review to 'text'"
        )
    has_list = "labels" in names
    missing = [n for n in labels if n not in names]
    if not has_list and missing:
        raise DataError(
            f"{source}: no 'labels' column and no 0/1 column for {', '.join(missing)}; "
            f"give a 'labels' list or one 0/1 column per label ({', '.join(labels)})"
        )
    texts: list[str] = []
    rows: list[list[int]] = []
    groups: list[str] = []
    set_aside: list[SetAside] = []
    for position, record in enumerate(records, start=1):
        row_number = int(record.get("_row", position))
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            set_aside.append(SetAside(source, row_number, "empty or missing text"))
            continue
        where = f"{source}, row {row_number}"
        vector = (
            _encode_label_list(record.get("labels"), labels, where)
            if has_list
            else [_binary(record.get(n), n, where) for n in labels]
        )
        texts.append(text)
        rows.append(vector)
        groups.append(str(record.get("_group") or ""))
    for item in set_aside:
        log.warning("%s, row %d set aside: %s", item.source, item.row, item.reason)
    if not texts:
        raise DataError(f"{source}: every row was set aside (no text); nothing to train on")
    targets = np.asarray(rows, dtype=np.float32)
    return LabeledData(texts, targets, labels, groups, set_aside)


def _encode_label_list(value: Any, labels: LabelSet, where: str) -> list[int]:
    if value is None:
        return [0] * len(labels)
    if isinstance(value, str):
        value = [v for v in re.split(r"[|,;]", value) if v.strip()]
    if not isinstance(value, list | tuple):
        raise DataError(f"{where}: 'labels' must be a list of label names, got {value!r}")
    try:
        return labels.encode([str(v).strip() for v in value])
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None


def _binary(value: Any, name: str, where: str) -> int:
    if value in (0, 1, True, False, "0", "1"):
        return int(value)
    raise DataError(f"{where}: column {name!r} must be 0 or 1, got {value!r}")


def write_labeled_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write records as JSONL; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
