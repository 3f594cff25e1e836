"""The bundled review corpus, written and labeled by the wordofclick team.

See ``ANNOTATION_GUIDE.md`` and ``DATASHEET.md`` beside this file. Splits are by company: no
company appears in two splits, so test scores measure generalisation to unseen companies.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from wordofclick.labels import DEFAULT_LABELS
from wordofclick.schema import REVIEW_SCHEMA

SPLITS = ("train", "dev", "test")
# The review schema's types (timezone-aware dates, small ratings) plus the corpus's own fields.
CORPUS_SCHEMA = pa.schema(
    list(REVIEW_SCHEMA)
    + [pa.field("industry", pa.string())]
    + [pa.field(label, pa.int8()) for label in DEFAULT_LABELS]
    + [pa.field("labels", pa.list_(pa.string())), pa.field("split", pa.string())]
)
CORPUS_FILE = "corpus.jsonl"


def corpus_path() -> Path:
    """Where the corpus file lies inside the installed package."""
    return Path(str(resources.files(__package__).joinpath(CORPUS_FILE)))


def load_corpus(split: str | None = None) -> pa.Table:
    """The corpus as an Arrow table, all of it or one split (``train``, ``dev``, ``test``).

    >>> load_corpus("test").num_rows > 0
    True
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown corpus split {split!r}: expected one of {', '.join(SPLITS)}")
    table = pajson.read_json(corpus_path(), parse_options=pajson.ParseOptions(
        explicit_schema=CORPUS_SCHEMA))
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    return table
