"""The label set: names of the form ``<aspect>_<polarity>``.

The definitions live in the annotation guide (``wordofclick/datasets/ANNOTATION_GUIDE.md``).
Code never spells out the four names except as the
default below; everything else receives a :class:`LabelSet` built from configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_LABELS: tuple[str, ...] = (
    "service_complaint",
    "product_complaint",
    "service_praise",
    "product_praise",
)
ASPECTS = ("service", "product")
POLARITIES = ("complaint", "praise")


@dataclass(frozen=True)
class Label:
    """One label, split into the aspect it is about and its polarity."""

    name: str
    aspect: str
    polarity: str


def parse_label(name: str) -> Label:
    """Split ``"service_complaint"`` into aspect and polarity, rejecting anything else.

    >>> parse_label("service_complaint").aspect
    'service'
    """
    aspect, _, polarity = name.partition("_")
    if aspect not in ASPECTS or polarity not in POLARITIES:
        raise ValueError(
            f"label {name!r} is not of the form <aspect>_<polarity> "
            f"with aspect in {ASPECTS} and polarity in {POLARITIES}"
        )
    return Label(name=name, aspect=aspect, polarity=polarity)


@dataclass(frozen=True)
class LabelSet:
    """An ordered, validated set of labels; the order is the model's output order.

    >>> LabelSet.default().complaints
    ('service_complaint', 'product_complaint')
    """

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("the label set is empty: name at least one label")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"the label set repeats a label: {list(self.names)}")
        for name in self.names:
            parse_label(name)

    @classmethod
    def default(cls) -> LabelSet:
        return cls(DEFAULT_LABELS)

    @classmethod
    def of(cls, names: Iterable[str]) -> LabelSet:
        return cls(tuple(names))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown label {name!r}: expected one of {', '.join(self.names)}"
            ) from None

    def with_polarity(self, polarity: str) -> tuple[str, ...]:
        return tuple(n for n in self.names if parse_label(n).polarity == polarity)

    @property
    def complaints(self) -> tuple[str, ...]:
        """The labels whose macro-F1 drives early stopping and the headline metric."""
        return self.with_polarity("complaint")

    def encode(self, labels: Sequence[str]) -> list[int]:
        """Turn a list of label names into a 0/1 vector in this set's order."""
        vector = [0] * len(self.names)
        for name in labels:
            vector[self.index(name)] = 1
        return vector
