"""Metrics, per-label thresholds, calibration and the evaluation report.

Metrics come from scikit-learn; this module only arranges them per label and adds the headline
figure, the complaint macro-F1 (mean F1 of the complaint labels), which is what the product sells.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from wordofclick.labels import LabelSet

# Thresholds are searched on this grid; a coarser grid overfits less on a small dev split.
# float32 like the model's probabilities and the saved thresholds, so a probability equal to a
# threshold is decided the same way during tuning and after loading.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2).astype(np.float32)
CALIBRATION_BINS = 10


def tune_thresholds(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per label, the threshold on :data:`THRESHOLD_GRID` with the best F1 on these examples.

    Ties go to the threshold closest to 0.5, so a flat F1 curve does not push it to an edge.

    >>> y = np.array([[1], [0], [1], [0]]); p = np.array([[0.9], [0.2], [0.35], [0.3]])
    >>> round(float(tune_thresholds(y, p)[0]), 2)
    0.31
    """
    thresholds = np.empty(targets.shape[1], dtype=np.float32)
    for j in range(targets.shape[1]):
        truth = targets[:, j].astype(bool)
        scores_j = probabilities[:, j].astype(np.float32)
        decisions = scores_j[None, :] >= THRESHOLD_GRID[:, None]
        true_pos = (decisions & truth).sum(axis=1)
        predicted = decisions.sum(axis=1)
        scores = np.where(
            predicted + truth.sum() > 0, 2 * true_pos / np.maximum(predicted + truth.sum(), 1), 0.0
        )
        best = np.flatnonzero(np.isclose(scores, scores.max()))
        thresholds[j] = THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]]
    return thresholds


def complaint_macro_f1(
    targets: np.ndarray, decisions: np.ndarray, labels: LabelSet
) -> float:
    """Mean F1 over the complaint labels: the figure early stopping and the model card use."""
    columns = [labels.index(n) for n in labels.complaints]
    return float(
        f1_score(targets[:, columns], decisions[:, columns], average="macro", zero_division=0)
    )


def expected_calibration_error(
    truth: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Expected calibration error with equal-width bins (weighted by examples per bin)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(probability[members].mean() - truth[members].mean())
    return float(error)


@dataclass
class LabelMetrics:
    precision: float
    recall: float
    f1: float
    support: int
    threshold: float
    ece: float


@dataclass
class EvaluationReport:
    """Per-label and averaged metrics for one model on one data set."""

    data: str
    model: str
    examples: int
    per_label: dict[str, LabelMetrics]
    micro_f1: float
    macro_f1: float
    complaint_macro_f1: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def markdown_table(self) -> str:
        rows = ["| label | precision | recall | F1 | support | threshold | ECE |",
                "|---|---|---|---|---|---|---|"]
        for name, m in self.per_label.items():
            rows.append(
                f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} "
                f"| {m.threshold:.2f} | {m.ece:.3f} |"
            )
        rows.append(f"| **micro F1** | | | {self.micro_f1:.3f} | | | |")
        rows.append(f"| **macro F1** | | | {self.macro_f1:.3f} | | | |")
        rows.append(f"| **complaint macro-F1** | | | {self.complaint_macro_f1:.3f} | | | |")
        return "\n".join(rows)


def compute_metrics(
    targets: np.ndarray,
    probabilities: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    labels: LabelSet,
    data: str = "",
    model: str = "",
) -> EvaluationReport:
    """All metrics for probabilities thresholded per label."""
    thresholds = np.asarray(thresholds, dtype=np.float32)
    truth = targets.astype(int)
    decisions = (probabilities.astype(np.float32) >= thresholds).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, decisions, average=None, zero_division=0, labels=list(range(len(labels)))
    )
    per_label = {
        name: LabelMetrics(
            precision=float(precision[j]),
            recall=float(recall[j]),
            f1=float(f1[j]),
            support=int(support[j]),
            threshold=float(thresholds[j]),
            ece=expected_calibration_error(truth[:, j], probabilities[:, j]),
        )
        for j, name in enumerate(labels)
    }
    return EvaluationReport(
        data=data,
        model=model,
        examples=len(truth),
        per_label=per_label,
        micro_f1=float(f1_score(truth, decisions, average="micro", zero_division=0)),
        macro_f1=float(f1_score(truth, decisions, average="macro", zero_division=0)),
        complaint_macro_f1=complaint_macro_f1(truth, decisions, labels),
    )


def reliability_plot(
    targets: np.ndarray, probabilities: np.ndarray, labels: LabelSet, path: str | os.PathLike[str]
) -> Path:
    """Save a reliability diagram (predicted probability vs observed frequency) per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    figure, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.2), squeeze=False)
    for j, (name, axis) in enumerate(zip(labels, axes[0], strict=True)):
        which = np.clip(np.digitize(probabilities[:, j], edges[1:-1]), 0, CALIBRATION_BINS - 1)
        centres, observed = [], []
        for b in range(CALIBRATION_BINS):
            members = which == b
            if members.any():
                centres.append(probabilities[members, j].mean())
                observed.append(targets[members, j].mean())
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        axis.plot(centres, observed, marker="o")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("predicted probability")
        axis.set_ylabel("observed frequency")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def evaluate_model(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    backend: str = "torch",
    granularity: str = "sentence",
) -> EvaluationReport:
    """Evaluate a saved model on a labeled file; with ``out``, write JSON and a reliability plot.

    >>> report = evaluate_model("models/default", "corpus:test")  # doctest: +SKIP
    >>> round(report.complaint_macro_f1, 2)  # doctest: +SKIP
    0.9
    """
    from wordofclick.data import load_labeled
    from wordofclick.model import ComplaintClassifier

    classifier = ComplaintClassifier.from_pretrained(model, backend=backend)
    labeled = load_labeled(data, classifier.labels, granularity=granularity)
    probabilities = classifier.predict_proba(labeled.texts)
    report = compute_metrics(
        labeled.targets, probabilities, classifier.thresholds, classifier.labels,
        data=str(data), model=f"{classifier.name} {classifier.version}",
    )
    report.extra["set_aside_rows"] = len(labeled.set_aside)
    if out is not None:
        out = Path(out)
        report.write_json(out / "evaluation.json")
        reliability_plot(labeled.targets, probabilities, classifier.labels, out / "reliability.png")
    return report


def print_report(report: EvaluationReport) -> None:
    """Print the report as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.model} on {report.data} ({report.examples} examples)")
    for column in ("label", "precision", "recall", "F1", "support", "threshold", "ECE"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for name, m in report.per_label.items():
        table.add_row(name, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f1:.3f}",
                      str(m.support), f"{m.threshold:.2f}", f"{m.ece:.3f}")
    table.add_section()
    table.add_row("micro F1", "", "", f"{report.micro_f1:.3f}", "", "", "")
    table.add_row("macro F1", "", "", f"{report.macro_f1:.3f}", "", "", "")
    table.add_row("complaint macro-F1", "", "", f"{report.complaint_macro_f1:.3f}", "", "", "")
    Console().print(table)
