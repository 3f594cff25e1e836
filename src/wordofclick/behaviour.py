"""Behavioural tests: a small hand-written set of reviews with expected labels.

``datasets/behaviour.jsonl`` holds reviews written by the wordofclick team to probe known weak
spots (negation, a service complaint about a product, mixed reviews, very short and very long
reviews, all caps, misspellings, sarcasm, neutral text), labeled under the annotation guide. A
case passes when the set of labels above the classifier's thresholds equals the expected set.

>>> cases = load_behaviour()
>>> len({c.category for c in cases}) == len(CATEGORIES)
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Protocol

import numpy as np

from wordofclick.labels import LabelSet

BEHAVIOUR_FILE = "behaviour.jsonl"
CATEGORIES = (
    "negation",
    "service_about_product",
    "mixed",
    "very_short",
    "very_long",
    "all_caps",
    "misspellings",
    "sarcasm",
    "neutral",
)


@dataclass(frozen=True)
class BehaviourCase:
    """One review with the labels the annotation guide gives it."""

    id: str
    category: str
    text: str
    labels: tuple[str, ...]
    note: str = ""


@dataclass
class CaseResult:
    """What the classifier said about one case (kept for the failures)."""

    id: str
    category: str
    expected: list[str]
    predicted: list[str]
    probabilities: dict[str, float]


@dataclass
class CategoryResult:
    cases: int
    passed: int
    pass_rate: float


@dataclass
class BehaviourReport:
    """Pass rate overall and per category, and every failed case."""

    cases: int
    passed: int
    pass_rate: float
    per_category: dict[str, CategoryResult]
    failures: list[CaseResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Classifier(Protocol):
    labels: LabelSet
    thresholds: np.ndarray

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def load_behaviour() -> list[BehaviourCase]:
    """The packaged behavioural test set, in file order."""
    text = resources.files("wordofclick.datasets").joinpath(BEHAVIOUR_FILE).read_text("utf-8")
    cases = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            cases.append(BehaviourCase(
                id=record["id"], category=record["category"], text=record["text"],
                labels=tuple(record["labels"]), note=record.get("note", ""),
            ))
    return cases


def score_behaviour(
    cases: Sequence[BehaviourCase],
    probabilities: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    labels: LabelSet,
) -> BehaviourReport:
    """Compare thresholded probabilities (rows in the order of ``cases``) with expected labels.

    Expected labels outside ``labels`` (a model trained on a smaller label set) are ignored.
    """
    decisions = probabilities.astype(np.float32) >= np.asarray(thresholds, dtype=np.float32)
    names = labels.names
    counts: dict[str, list[int]] = {}
    failures: list[CaseResult] = []
    for case, row_p, row_on in zip(cases, probabilities, decisions, strict=True):
        expected = [n for n in names if n in case.labels]
        predicted = [n for n, on in zip(names, row_on, strict=True) if on]
        ok = expected == predicted
        tally = counts.setdefault(case.category, [0, 0])
        tally[0] += 1
        tally[1] += int(ok)
        if not ok:
            failures.append(CaseResult(
                id=case.id, category=case.category, expected=expected, predicted=predicted,
                probabilities={n: round(float(p), 4) for n, p in zip(names, row_p, strict=True)},
            ))
    order = [c for c in CATEGORIES if c in counts] + sorted(set(counts) - set(CATEGORIES))
    per_category = {
        c: CategoryResult(counts[c][0], counts[c][1], counts[c][1] / counts[c][0]) for c in order
    }
    total = len(cases)
    passed = total - len(failures)
    return BehaviourReport(
        cases=total, passed=passed, pass_rate=passed / total if total else 0.0,
        per_category=per_category, failures=failures,
    )


def run_behaviour(
    classifier: _Classifier, cases: Sequence[BehaviourCase] | None = None
) -> BehaviourReport:
    """Run the classifier on the behavioural set (or ``cases``) and score it."""
    cases = load_behaviour() if cases is None else cases
    probabilities = classifier.predict_proba([c.text for c in cases])
    return score_behaviour(cases, probabilities, classifier.thresholds, classifier.labels)
