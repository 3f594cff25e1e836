"""The review schema shared by scoring, aggregation and the nightly job, defined once.

Input files name their columns anything; ``--columns text=review_body`` maps them onto these
names. Scored output keeps the input columns and adds one probability and one thresholded flag per
label (``prob_<label>``, ``pred_<label>``) plus the model's name and version.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

REQUIRED_COLUMNS: tuple[str, ...] = ("review_id", "company", "text")
OPTIONAL_COLUMNS: tuple[str, ...] = ("created_at", "rating", "channel", "shares", "likes")
REVIEW_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# The channels the word-of-click reach model knows; anything else is an explicit error there.
CHANNELS: tuple[str, ...] = ("review_site", "facebook", "twitter", "instagram", "other")

REVIEW_SCHEMA = pa.schema(
    [
        pa.field("review_id", pa.string(), nullable=False),
        pa.field("company", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("rating", pa.int8()),
        pa.field("channel", pa.string()),
        pa.field("shares", pa.int64()),
        pa.field("likes", pa.int64()),
    ]
)

MODEL_NAME_COLUMN = "model_name"
MODEL_VERSION_COLUMN = "model_version"


def prob_column(label: str) -> str:
    """Column holding the model's probability for ``label``."""
    return f"prob_{label}"


def pred_column(label: str) -> str:
    """Column holding the thresholded 0/1 decision for ``label``."""
    return f"pred_{label}"


def scored_fields(labels: Sequence[str]) -> list[pa.Field]:
    """The columns scoring appends to every review, in order."""
    return (
        [pa.field(prob_column(label), pa.float32()) for label in labels]
        + [pa.field(pred_column(label), pa.bool_()) for label in labels]
        + [pa.field(MODEL_NAME_COLUMN, pa.string()), pa.field(MODEL_VERSION_COLUMN, pa.string())]
    )
