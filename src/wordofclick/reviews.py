"""Streaming review readers and writers: every input row becomes a valid review or a reject.

Inputs are CSV, JSONL or Parquet files (CSV and JSONL may be gzipped), named as a file, a folder
or a glob. :class:`ReviewReader` reads them in chunks of ``chunk_rows`` rows, so memory does not
grow with the input. Each :class:`ReviewChunk` holds the valid reviews, in
:data:`~wordofclick.schema.REVIEW_SCHEMA` followed by any extra input columns, and the rejected
rows in :data:`REJECT_SCHEMA`: file, row, line, reason, detail and the raw content.

Reasons a row is rejected: ``missing review_id``, ``missing company``, ``missing text``,
``non-text content``, ``invalid created_at``, ``invalid rating``, ``invalid channel``,
``invalid shares``, ``invalid likes``, ``invalid UTF-8``, ``NUL byte``, ``unparseable line``
(JSONL), ``malformed CSV``, ``wrong number of fields`` (CSV) and ``duplicate review_id`` (the first
valid occurrence is kept). Texts longer than ``max_text_chars`` are cut and counted, not rejected.
The whole input is refused with a :class:`~wordofclick.errors.DataError` only when it cannot be
read at all: a missing file, an unsupported format, a required column that is absent.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import json
import math
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from wordofclick.errors import ConfigError, DataError
from wordofclick.exports import csv_safe_table
from wordofclick.schema import REQUIRED_COLUMNS, REVIEW_COLUMNS, REVIEW_SCHEMA

DEFAULT_CHUNK_ROWS = 1024
# The model reads a few hundred tokens at most (about 2,000 characters); a pasted 1 MB text only
# bloats the output, so texts are cut well beyond what the model could use.
MAX_TEXT_CHARS = 20_000
RAW_MAX_CHARS = 1_000
# A CSV record longer than this is a quote that never closes, not a review: its lines are read
# again one by one. It also bounds what a runaway quote can hold in memory.
MAX_RECORD_CHARS = 16 * 2**20

INPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),  # 1-based data row within the file
        pa.field("line", pa.int64()),  # 1-based line where the row starts; null for Parquet
        pa.field("review_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

_UTF8_BOM = b"\xef\xbb\xbf"


def parse_columns(columns: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse a column mapping ``review column=input column`` into a dict.

    >>> parse_columns("text=review_body,company=business_id")
    {'text': 'review_body', 'company': 'business_id'}
    """
    if columns is None:
        return {}
    if isinstance(columns, Mapping):
        pairs = list(columns.items())
    else:
        pairs = []
        for part in filter(None, (p.strip() for p in columns.split(","))):
            target, sep, source = part.partition("=")
            if not sep or not target.strip() or not source.strip():
                raise ConfigError(
                    f"--columns: {part!r} is not of the form column=input_column "
                    "(for example text=review_body)"
                )
            pairs.append((target.strip(), source.strip()))
    mapping: dict[str, str] = {}
    for target, source in pairs:
        if target not in REVIEW_COLUMNS:
            raise ConfigError(
                f"--columns: unknown review column {target!r}; "
                f"expected one of {', '.join(REVIEW_COLUMNS)}"
            )
        if target in mapping:
            raise ConfigError(f"--columns: {target!r} is mapped twice")
        mapping[target] = source
    return mapping


def input_format(path: Path) -> str | None:
    """``"csv"``, ``"jsonl"`` or ``"parquet"`` from the file's suffix (``.gz`` allowed for text)."""
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes.pop()
    fmt = INPUT_FORMATS.get(suffixes[-1]) if suffixes else None
    return None if gzipped and fmt == "parquet" else fmt


def resolve_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand files, folders (searched recursively) and globs into review files, in a stable order.

    >>> resolve_inputs("exports/*.csv")  # doctest: +SKIP
    [PosixPath('exports/a.csv'), PosixPath('exports/b.csv')]
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise DataError("no input given: pass a file, a folder or a glob such as 'exports/*.csv'")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            # Skip hidden and bookkeeping files (.crc, _SUCCESS) that Spark and friends leave.
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and input_format(p)
                and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            )
            if not found:
                raise DataError(f"{path}: the folder holds no .csv, .jsonl or .parquet file")
        elif path.is_file():
            found = [path]
        elif any(c in str(item) for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                raise DataError(f"{item}: no file matches this pattern")
        else:
            raise DataError(f"{path}: no such file or folder")
        for p in found:
            if input_format(p) is None:
                raise DataError(
                    f"{p}: not a review file; expected a name ending in .csv, .jsonl, .ndjson or "
                    ".parquet (CSV and JSONL may end in .gz)"
                )
        files.extend(found)
    return list(dict.fromkeys(files))


@dataclass(frozen=True)
class ReviewChunk:
    """One chunk of input: its valid reviews, its rejected rows, and what it accounts for."""

    reviews: pa.Table
    rejects: pa.Table
    rows_read: int
    truncated: int


@dataclass
class ReadStats:
    """Running counts; ``read == valid + rejected`` at every chunk boundary."""

    read: int = 0
    valid: int = 0
    rejected: int = 0
    duplicates: int = 0
    truncated: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    max_rows_held: int = 0  # most input rows the reader kept in memory at once


class SeenIds:
    """Remembers review ids in 8 bytes each, to report repeats across a stream of any length.

    Ids are kept as 64-bit BLAKE2 digests in a few sorted arrays that merge as they grow (so a
    lookup costs a binary search per array). With ten million distinct ids the chance that any
    two share a digest is about 3 in a million.

    >>> seen = SeenIds()
    >>> seen.mark(["a", "b", "a"]).tolist(), seen.mark(["b", "c"]).tolist()
    ([False, False, True], [True, False])
    """

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(level.size for level in self._levels)

    def mark(self, ids: Sequence[str]) -> np.ndarray:
        """Record ``ids``; return True where an id was seen before (earlier or in ``ids``)."""
        digests = np.frombuffer(
            b"".join(hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids),
            dtype=np.uint64,
        )
        seen = np.zeros(digests.size, dtype=bool)
        for level in self._levels:
            at = np.minimum(np.searchsorted(level, digests), level.size - 1)
            seen |= level[at] == digests
        _, first = np.unique(digests, return_index=True)
        repeated = np.ones(digests.size, dtype=bool)
        repeated[first] = False
        new = np.sort(digests[~(seen | repeated)])
        if new.size:
            self._levels.append(new)
            while len(self._levels) > 1 and self._levels[-2].size <= self._levels[-1].size:
                top, below = self._levels.pop(), self._levels.pop()
                self._levels.append(np.sort(np.concatenate([below, top])))
        return seen | repeated


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Record(NamedTuple):
    row: int
    line: int | None
    values: dict[str, Any] | None  # review and extra columns by output name; None when unreadable
    raw: Any  # str, list of lines, or a dict of a Parquet row: made readable only when rejected
    reason: str | None = None
    detail: str | None = None


@dataclass
class _Buffer:
    rows: int = 0  # rows a file reader holds beyond the record it just yielded


@dataclass(frozen=True)
class _FilePlan:
    path: Path
    fmt: str
    sources: dict[str, str]  # review column -> input column
    extras: dict[str, pa.DataType]


class ReviewReader:
    """Read review files chunk by chunk, validating rows into the review schema.

    ``columns`` maps review columns to input columns (``"text=review_body"`` or a dict); input
    columns that are not review columns are kept after them (as text for CSV and JSONL, with their
    types for Parquet). ``schema`` is known before the first chunk, so an empty input still gives
    an output with a header.

    >>> reader = ReviewReader("reviews.csv", columns="text=body", chunk_rows=512)  # doctest: +SKIP
    >>> for chunk in reader:  # doctest: +SKIP
    ...     print(chunk.reviews.num_rows, chunk.rejects.num_rows)
    """

    def __init__(
        self,
        inputs: str | Path | Sequence[str | Path],
        columns: str | Mapping[str, str] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        if max_text_chars < 1:
            raise ValueError(f"max_text_chars must be at least 1, got {max_text_chars}")
        self.mapping = parse_columns(columns)
        self.files = resolve_inputs(inputs)
        self.chunk_rows = chunk_rows
        self.max_text_chars = max_text_chars
        self._plans = [_plan_file(path, self.mapping) for path in self.files]
        extras: dict[str, pa.DataType] = {}
        for plan in self._plans:
            for name, dtype in plan.extras.items():
                if extras.setdefault(name, dtype) != dtype:
                    raise DataError(
                        f"{plan.path}: column {name!r} is {dtype} here but {extras[name]} in an "
                        "earlier file; give it one type in every file"
                    )
        self.schema = pa.schema(list(REVIEW_SCHEMA) + [pa.field(n, t) for n, t in extras.items()])
        self.stats = ReadStats()

    def count_rows(self) -> int | None:
        """Rows to expect, or None if unknown (gzipped input); cheap next to scoring them.

        Exact for Parquet (from its metadata); for CSV and JSONL it counts lines, which a quoted
        field running over several lines makes an over-estimate.
        """
        total = 0
        for plan in self._plans:
            if plan.fmt == "parquet":
                total += pq.ParquetFile(plan.path).metadata.num_rows
            elif plan.path.suffix.lower() == ".gz":
                return None
            else:
                lines = count_lines(plan.path)
                total += max(lines - 1, 0) if plan.fmt == "csv" else lines
        return total

    def __iter__(self) -> Iterator[ReviewChunk]:
        self.stats = ReadStats()
        seen = SeenIds()
        pending = _Pending(self.schema.names)
        buffer = _Buffer()
        for plan in self._plans:
            records = _RECORD_READERS[plan.fmt](plan, self.chunk_rows, buffer)
            row = 0
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except (OSError, EOFError, pa.ArrowException) as error:
                    raise DataError(
                        f"{plan.path}: cannot read past row {row} ({error}); "
                        "is the file truncated or corrupt?"
                    ) from error
                row = record.row
                self._add(pending, plan, record)
                held = pending.read + buffer.rows
                self.stats.max_rows_held = max(self.stats.max_rows_held, held)
                if pending.read >= self.chunk_rows:
                    yield self._emit(pending, seen)
                    pending = _Pending(self.schema.names)
        if pending.read:
            yield self._emit(pending, seen)

    def _add(self, pending: _Pending, plan: _FilePlan, record: _Record) -> None:
        pending.read += 1
        seq = pending.read
        if record.values is None:
            pending.reject(seq, plan.path, record, record.reason or "", record.detail or "", None)
            return
        try:
            review, truncated = _clean_review(record.values, self.max_text_chars)
        except _Rejected as rejected:
            review_id = record.values.get("review_id")
            review_id = str(review_id) if isinstance(review_id, (str, int)) else None
            pending.reject(seq, plan.path, record, rejected.reason, rejected.detail, review_id)
            return
        pending.truncated.append(truncated)
        pending.seqs.append(seq)
        pending.origins.append((str(plan.path), record.row, record.line))
        for name, values in pending.columns.items():
            values.append(review.get(name))

    def _emit(self, pending: _Pending, seen: SeenIds) -> ReviewChunk:
        table = pa.Table.from_pydict(pending.columns, schema=self.schema)
        repeated = seen.mark(pending.columns["review_id"])
        duplicates = int(repeated.sum())
        if duplicates:
            for i in np.flatnonzero(repeated):
                source, row, line = pending.origins[i]
                review = {k: v[i] for k, v in pending.columns.items()}
                pending.rejects.append(
                    _reject_row(
                        pending.seqs[i],
                        source,
                        row,
                        line,
                        review["review_id"],
                        "duplicate review_id",
                        f"review_id {review['review_id']!r} was read before; the first is kept",
                        review,
                    )
                )
            table = table.filter(pa.array(~repeated))
        truncated = int(np.count_nonzero(np.array(pending.truncated, dtype=bool) & ~repeated))
        pending.rejects.sort(key=lambda r: r.pop("_seq"))
        rejects = pa.Table.from_pylist(pending.rejects, schema=REJECT_SCHEMA)
        stats = self.stats
        stats.read += pending.read
        stats.valid += table.num_rows
        stats.rejected += rejects.num_rows
        stats.duplicates += duplicates
        stats.truncated += truncated
        for reason in rejects.column("reason").to_pylist():
            stats.rejected_by_reason[reason] = stats.rejected_by_reason.get(reason, 0) + 1
        return ReviewChunk(table, rejects, pending.read, truncated)


class _Pending:
    """Rows read since the last chunk was emitted."""

    def __init__(self, names: Sequence[str]) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in names}
        # Per valid row, in read order:
        self.seqs: list[int] = []
        self.truncated: list[bool] = []
        self.origins: list[tuple[str, int, int | None]] = []
        self.rejects: list[dict[str, Any]] = []
        self.read = 0

    def reject(
        self,
        seq: int,
        path: Path,
        record: _Record,
        reason: str,
        detail: str,
        review_id: str | None,
    ) -> None:
        self.rejects.append(
            _reject_row(
                seq, str(path), record.row, record.line, review_id, reason, detail, record.raw
            )
        )


def _reject_row(
    seq: int,
    source: str,
    row: int,
    line: int | None,
    review_id: str | None,
    reason: str,
    detail: str,
    raw: Any,
) -> dict[str, Any]:
    return {
        "_seq": seq,
        "source": source,
        "row": row,
        "line": line,
        "review_id": _printable(review_id[:RAW_MAX_CHARS]) if review_id is not None else None,
        "reason": reason,
        "detail": _printable(detail),
        "raw": _raw_text(raw),
    }


def _raw_text(raw: Any) -> str:
    if isinstance(raw, list):
        raw = "".join(raw)
    elif not isinstance(raw, str):
        raw = json.dumps(raw, ensure_ascii=False, default=str)
    return _printable(raw[:RAW_MAX_CHARS])


def _printable(text: str) -> str:
    """Show undecodable bytes as ``\\xff`` and NUL as ``\\x00``, so any format can hold them."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


# --- planning: what each file holds ------------------------------------------------------------


def _plan_file(path: Path, mapping: Mapping[str, str]) -> _FilePlan:
    fmt = input_format(path)
    if fmt == "csv":
        header = _csv_header(path)
        return _plan_columns(path, fmt, header, dict.fromkeys(header or [], pa.string()), mapping)
    if fmt == "jsonl":
        first = _jsonl_first_object(path)
        names = list(first or [])
        plan = _plan_columns(
            path, fmt, names if first else None, dict.fromkeys(names, pa.string()), mapping
        )
        # Keys vary from line to line: look every review column up in every object.
        sources = {name: mapping.get(name, name) for name in REVIEW_COLUMNS}
        return _FilePlan(path, fmt, sources, plan.extras)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    types = {f.name: f.type for f in schema}
    return _plan_columns(path, "parquet", schema.names, types, mapping)


def _plan_columns(
    path: Path,
    fmt: str,
    names: list[str] | None,
    types: dict[str, pa.DataType],
    mapping: Mapping[str, str],
) -> _FilePlan:
    """Match a file's columns to review columns; ``names`` is None for a file with no rows."""
    if names is None:
        return _FilePlan(path, fmt, {}, {})
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{path}: column names repeat: {', '.join(repeated)}; rename them")
    sources = {}
    for name in REVIEW_COLUMNS:
        source = mapping.get(name, name)
        if source in types:
            sources[name] = source
        elif name in REQUIRED_COLUMNS:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            hint = (
                f"--columns maps {name} to {source!r}; fix the mapping"
                if name in mapping
                else f"map one with --columns {name}=<column>"
            )
            if fmt == "csv" and len(names) == 1 and ";" in names[0]:
                hint += " (the header looks semicolon-separated; save the file with commas)"
            where = "its first JSON object" if fmt == "jsonl" else "the file"
            raise DataError(
                f"{path}: no column {source!r} for the required {name!r} "
                f"({where} has: {shown}); {hint}"
            )
    used = set(sources.values())
    extras = {n: t for n, t in types.items() if n not in used and n not in REVIEW_COLUMNS}
    return _FilePlan(path, fmt, sources, extras)


def _open_text(path: Path) -> IO[str]:
    # surrogateescape keeps undecodable bytes so that only their row is rejected; utf-8-sig drops
    # the byte-order mark spreadsheets write; newline="" is what the csv module requires.
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _csv_header(path: Path) -> list[str] | None:
    _raise_csv_field_limit()
    with _open_text(path) as handle:
        try:
            for header in csv.reader(handle, strict=True):
                if header:
                    return [name.strip() for name in header]
        except csv.Error as error:
            raise DataError(f"{path}: the header line is not readable CSV ({error})") from None
        except (OSError, EOFError) as error:
            raise DataError(f"{path}: cannot read the file ({error})") from None
    return None


def _jsonl_first_object(path: Path) -> dict[str, Any] | None:
    """The first line that parses to a JSON object; later bad lines are rejected one by one."""
    try:
        with _open_binary(path) as handle:
            for data in handle:
                try:
                    value = json.loads(data.removeprefix(_UTF8_BOM))
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read the file ({error})") from None
    return None


def count_lines(path: Path) -> int:
    """Lines in a text file (gzipped or not); a last line without a newline counts."""
    lines, last = 0, b"\n"
    with _open_binary(path) as handle:
        while block := handle.read(2**20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _raise_csv_field_limit() -> None:
    # The csv module refuses fields over 128 KiB by default; a 1 MB review must reach the
    # truncation step instead. The limit is process-wide, so it is only ever raised.
    if csv.field_size_limit() < MAX_RECORD_CHARS:
        csv.field_size_limit(MAX_RECORD_CHARS)


# --- reading rows ------------------------------------------------------------------------------


class _RunawayRecord(Exception):
    pass


class _LineSource:
    """The lines of a text file with their numbers; lines of a broken record can be given back."""

    def __init__(self, handle: IO[str], buffer: _Buffer) -> None:
        self._handle = handle
        self._buffer = buffer
        self._given_back: deque[tuple[int, str]] = deque()
        self._next_number = 1
        self._chars = 0
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        if self._given_back:
            number, line = self._given_back.popleft()
            self._buffer.rows = len(self._given_back)
        else:
            line = next(self._handle)
            number = self._next_number
            self._next_number += 1
        self.taken.append((number, line))
        self._chars += len(line)
        if self._chars > MAX_RECORD_CHARS:
            raise _RunawayRecord(f"a record runs past {MAX_RECORD_CHARS:,} characters")
        return line

    def start_record(self) -> None:
        self.taken = []
        self._chars = 0

    def give_back_all_but_first(self) -> None:
        self._given_back.extendleft(reversed(self.taken[1:]))
        self._buffer.rows = len(self._given_back)


def _csv_records(plan: _FilePlan, batch_rows: int, buffer: _Buffer) -> Iterator[_Record]:
    _raise_csv_field_limit()
    with _open_text(plan.path) as handle:
        lines = _LineSource(handle, buffer)
        reader = csv.reader(lines, strict=True)
        header = next((r for r in reader if r), None)
        if header is None:
            return
        header = [name.strip() for name in header]
        positions = [(name, header.index(source)) for name, source in plan.sources.items()]
        positions += [(name, header.index(name)) for name in plan.extras]
        row = 0
        while True:
            lines.start_record()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RunawayRecord) as error:
                # A bad quote can swallow the lines after it: reject only the line it starts on
                # and read the others again as rows of their own.
                row += 1
                number, first = lines.taken[0]
                lines.give_back_all_but_first()
                yield _Record(
                    row,
                    number,
                    None,
                    first,
                    "malformed CSV",
                    f"{error}; the lines after this one are read again",
                )
                continue
            if not fields:
                continue
            row += 1
            number = lines.taken[0][0]
            if len(fields) != len(header):
                if len(lines.taken) > 1:
                    lines.give_back_all_but_first()
                    yield _Record(
                        row,
                        number,
                        None,
                        lines.taken[0][1],
                        "malformed CSV",
                        f"a quote opened on this line spans {len(lines.taken)} lines and leaves "
                        f"{len(fields)} fields where the header has {len(header)}; the lines "
                        "after this one are read again",
                    )
                else:
                    yield _Record(
                        row,
                        number,
                        None,
                        lines.taken[0][1],
                        "wrong number of fields",
                        f"{len(fields)} fields where the header has {len(header)}",
                    )
                continue
            values = {name: fields[i] for name, i in positions}
            yield _Record(row, number, values, [line for _, line in lines.taken])


def _jsonl_records(plan: _FilePlan, batch_rows: int, buffer: _Buffer) -> Iterator[_Record]:
    with _open_binary(plan.path) as handle:
        row = 0
        for number, data in enumerate(handle, start=1):
            if number == 1:
                data = data.removeprefix(_UTF8_BOM)
            if not data.strip():
                continue
            row += 1
            try:
                line = data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raw = data.decode("utf-8", "surrogateescape")
                detail = f"byte 0x{data[error.start]:02x} at offset {error.start} is not UTF-8"
                yield _Record(row, number, None, raw, "invalid UTF-8", detail)
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield _Record(
                    row,
                    number,
                    None,
                    line,
                    "unparseable line",
                    f"not valid JSON: {error.msg} at column {error.colno}",
                )
                continue
            if not isinstance(value, dict):
                yield _Record(
                    row,
                    number,
                    None,
                    line,
                    "unparseable line",
                    f"expected a JSON object, got {_describe(value)}",
                )
                continue
            values = {name: value.get(source) for name, source in plan.sources.items()}
            for name in plan.extras:
                extra = value.get(name)
                # Extra fields become text so that every chunk has the same schema.
                values[name] = (
                    extra
                    if extra is None or isinstance(extra, str)
                    else json.dumps(extra, ensure_ascii=False)
                )
            yield _Record(row, number, values, line)


def _parquet_records(plan: _FilePlan, batch_rows: int, buffer: _Buffer) -> Iterator[_Record]:
    row = 0
    for batch in pq.ParquetFile(plan.path).iter_batches(batch_size=batch_rows):
        items = batch.to_pylist()
        for i, item in enumerate(items):
            buffer.rows = len(items) - i - 1
            row += 1
            values = {name: item[source] for name, source in plan.sources.items()}
            values.update((name, item[name]) for name in plan.extras)
            yield _Record(row, None, values, item)
    buffer.rows = 0


_RECORD_READERS = {"csv": _csv_records, "jsonl": _jsonl_records, "parquet": _parquet_records}


# --- validating one row ------------------------------------------------------------------------


def _clean_review(values: dict[str, Any], max_text_chars: int) -> tuple[dict[str, Any], bool]:
    """Validate one row into review-schema values; raise _Rejected with the reason otherwise."""
    for name, value in values.items():
        if isinstance(value, str):
            _check_characters(value, name)
    review = dict(values)
    review["review_id"] = _required_text(values.get("review_id"), "review_id").strip()
    review["company"] = _required_text(values.get("company"), "company").strip()
    text = _required_text(values.get("text"), "text")
    truncated = len(text) > max_text_chars
    review["text"] = text[:max_text_chars] if truncated else text
    review["created_at"] = _timestamp(values.get("created_at"))
    review["rating"] = _whole_number(values.get("rating"), "rating", -128, 127)
    review["channel"] = _channel(values.get("channel"))
    review["shares"] = _whole_number(values.get("shares"), "shares", 0, 2**63 - 1)
    review["likes"] = _whole_number(values.get("likes"), "likes", 0, 2**63 - 1)
    return review, truncated


def _check_characters(value: str, name: str) -> None:
    if "\x00" in value:
        at = value.index("\x00")
        raise _Rejected("NUL byte", f"{name} contains a NUL byte at character {at}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # Undecodable input bytes arrive as U+DC80..U+DCFF (surrogateescape).
        byte = ord(value[error.start]) - 0xDC00
        shown = f"byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else "a lone surrogate"
        raise _Rejected(
            "invalid UTF-8", f"{name} has {shown} at character {error.start}, which is not UTF-8"
        ) from None


def _required_text(value: Any, name: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Rejected("invalid UTF-8", f"{name} is not UTF-8 ({error.reason})") from None
        _check_characters(value, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Rejected(f"missing {name}", f"{name} is empty")
    if isinstance(value, str):
        return value
    if name != "text" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Rejected("non-text content", f"{name} is {_describe(value)}, expected text")


def _timestamp(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text[-1] in "Zz":  # Python 3.10's fromisoformat does not read a trailing Z
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Rejected(
                "invalid created_at",
                f"created_at {value[:60]!r} is not an ISO 8601 date such as 2024-05-31 or "
                "2024-05-31T14:02:00Z",
            ) from None
    else:
        raise _Rejected("invalid created_at", f"created_at is {_describe(value)}, expected a date")
    # A date without a zone is taken as UTC, the zone every stored timestamp is in.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _whole_number(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = value
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = None
    if isinstance(number, float):
        if math.isnan(number):  # how pandas writes a missing integer
            return None
        if number.is_integer():
            number = int(number)
    if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
        shown = repr(value[:60]) if isinstance(value, str) else _describe(value)
        raise _Rejected(
            f"invalid {name}", f"{name} {shown} is not a whole number from {low} to {high}"
        )
    return number


def _channel(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _Rejected("invalid channel", f"channel is {_describe(value)}, expected text")
    return value.strip().lower()


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }.get(type(value), f"a {type(value).__name__}")
    return f"{kind} ({json.dumps(value, default=str)[:60]})"


# --- writing -----------------------------------------------------------------------------------


def output_format(path: str | Path) -> str:
    """``"parquet"``, ``"csv"`` or ``"jsonl"`` from an output file's suffix.

    >>> output_format("scored.csv")
    'csv'
    """
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"{path}: cannot write this format; name the file .parquet, .csv or .jsonl"
        )
    return fmt


class TableWriter:
    """Write tables chunk by chunk to ``.parquet``, ``.csv`` or ``.jsonl``, chosen by suffix.

    Rows go to a hidden partial file that replaces ``path`` only on :meth:`close`, so a crash
    never leaves a half-written output. CSV cells go through
    :func:`~wordofclick.exports.csv_safe_table`. An empty output still has its header (CSV) or
    schema (Parquet).

    >>> with TableWriter("scored.parquet", schema) as writer:  # doctest: +SKIP
    ...     writer.write(table)
    """

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        self.schema = schema
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._csv_schema = pa.schema([f.with_nullable(True) for f in schema])
        if self.format == "parquet":
            self._sink: Any = pq.ParquetWriter(self._partial, schema)
        elif self.format == "csv":
            self._sink = pa_csv.CSVWriter(self._partial, self._csv_schema)
        else:
            # Closed in close() or abort(): the writer outlives any one with-block.
            self._sink = open(self._partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def write(self, table: pa.Table) -> None:
        """Append ``table``, whose columns must include the writer's schema."""
        table = table.select(self.schema.names).cast(self.schema)
        self.rows += table.num_rows
        if self.format == "parquet":
            self._sink.write_table(table)
        elif self.format == "csv":
            self._sink.write_table(csv_safe_table(table).cast(self._csv_schema))
        else:
            self._sink.writelines(
                json.dumps(row, ensure_ascii=False, default=_json_value) + "\n"
                for row in table.to_pylist()
            )

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._sink.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drop the partial file, leaving any earlier file at ``path`` untouched."""
        self._sink.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
