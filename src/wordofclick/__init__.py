"""wordofclick: how much negative word of click a company's customer service generates."""

from wordofclick.labels import DEFAULT_LABELS, LabelSet

__all__ = ["DEFAULT_LABELS", "LabelSet", "__version__"]
__version__ = "0.1.0"
