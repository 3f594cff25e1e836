"""wordofclick: how much negative word of click a company's customer service generates.

>>> from wordofclick import ComplaintClassifier  # doctest: +SKIP
>>> clf = ComplaintClassifier.from_pretrained("./models/default")  # doctest: +SKIP
>>> clf.predict(["Rude staff."])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wordofclick.labels import DEFAULT_LABELS, LabelSet

if TYPE_CHECKING:
    from wordofclick.aggregate import aggregate_companies
    from wordofclick.model import ComplaintClassifier

__all__ = [
    "DEFAULT_LABELS", "ComplaintClassifier", "LabelSet", "__version__", "aggregate_companies"
]
__version__ = "0.1.0"

# Imported on first use: torch and transformers take seconds to import, and `woc --help` or a
# DuckDB-only user should not pay for them.
_LAZY = {
    "ComplaintClassifier": "wordofclick.model",
    "aggregate_companies": "wordofclick.aggregate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wordofclick' has no attribute {name!r}")
