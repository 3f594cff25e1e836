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
# Resamples per interval: across seeds its ends moved by under half a point on 500 reviews and
# by about a point on 40 (one industry of the 12-company test split of 2026-12-04).
BOOTSTRAP_RESAMPLES = 1000


def tune_thresholds(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per label, the threshold on :data:`THRESHOLD_GRID` with the best F1 on these examples.

    Ties go to the threshold closest to 0.5, so a flat F1 curve does not push it to an edge.

    >>> y = np.array([[1], [0], [1], [0]]); p = np.array([[0.9], [0.2], [0.35], [0.3]])
    >>> round(float(tune_thresholds(y, p)[0]), 2)
    0.35
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


def complaint_f1_interval(
    targets: np.ndarray,
    decisions: np.ndarray,
    labels: LabelSet,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> list[float]:
    """Percentile bootstrap interval of the complaint macro-F1, reviews resampled with replacement.

    A few hundred held-out reviews, or one industry's forty to a hundred, pin an F1 down only to
    within several points; the interval says how many. ``[]`` when there are no reviews, or when
    fewer than half the resamples have a positive or a prediction for every complaint label.

    >>> y = np.array([[1, 1, 0, 0]] * 20 + [[0, 0, 0, 0]] * 20)
    >>> complaint_f1_interval(y, y, LabelSet.default())
    [1.0, 1.0]
    """
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: need at least one")
    if len(targets) == 0:
        return []
    columns = [labels.index(n) for n in labels.complaints]
    truth = np.asarray(targets)[:, columns].astype(bool)
    said = np.asarray(decisions)[:, columns].astype(bool)
    # A resample only changes how often each (truth, decision) pattern occurs, so drawing the
    # pattern counts from a multinomial is the same bootstrap at a cost that does not grow with
    # the number of reviews.
    patterns, counts = np.unique(np.hstack([truth, said]), axis=0, return_counts=True)
    real, predicted = patterns[:, : len(columns)], patterns[:, len(columns) :]
    draws = np.random.default_rng(seed).multinomial(len(truth), counts / len(truth), resamples)
    true_pos = draws @ (real & predicted)
    denominator = 2 * true_pos + draws @ (~real & predicted) + draws @ (real & ~predicted)
    # A resample in which a label has no positive and no prediction has no F1 for it (the
    # point figure would count 0, halving the mean): such resamples are left out, as is usual
    # for a statistic undefined on some resamples. It happens to small groups only.
    defined = (denominator > 0).all(axis=1)
    if defined.sum() < resamples / 2:
        return []
    scores = (2 * true_pos[defined] / denominator[defined]).mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(scores, [tail, 1 - tail])
    return [float(low), float(high)]


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


def fit_platt_scaling(targets: np.ndarray, logits: np.ndarray) -> tuple[list[float], list[float]]:
    """Per label, ``scale`` and ``bias`` so that ``sigmoid(scale * logit + bias)`` is calibrated.

    Platt scaling: a one-feature logistic regression on each label's logit, fitted on dev. It
    corrects both the over-confidence of fine-tuning (the scale, as temperature scaling does) and
    the upward shift that positive-class weights in the loss put on every probability (the
    bias). Monotone, so it keeps each label's ranking. A label whose dev data has one class only,
    or whose fit would invert the ranking, keeps the identity.

    >>> z = np.array([[-4.0], [-2.0], [0.0], [2.0], [4.0], [6.0]])
    >>> y = np.array([[0], [0], [0], [1], [0], [1]])
    >>> scale, bias = fit_platt_scaling(y, z)
    >>> 0 < scale[0] < 1 and bias[0] < 0
    True
    """
    from sklearn.linear_model import LogisticRegression

    scales, biases = [], []
    for j in range(targets.shape[1]):
        truth = targets[:, j].astype(int)
        scale, bias = 1.0, 0.0
        if 0 < truth.sum() < len(truth):
            # Nearly unregularised: two parameters cannot overfit a dev set of hundreds.
            fit = LogisticRegression(C=1e4).fit(logits[:, j : j + 1].astype(np.float64), truth)
            if fit.coef_[0, 0] > 0:
                scale, bias = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        scales.append(scale)
        biases.append(bias)
    return scales, biases


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
    # 95% bootstrap interval; empty in reports saved before it was computed.
    complaint_macro_f1_interval: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        """The inverse of :meth:`to_dict` (reports saved in ``wordofclick.json``)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["per_label"] = {n: LabelMetrics(**m) for n, m in data["per_label"].items()}
        return cls(**fields)

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
        complaint_macro_f1_interval=complaint_f1_interval(truth, decisions, labels),
    )


# --- Per-group breakdown, per-company shares (issue 8) ---------------------------------------


def group_metrics(
    targets: np.ndarray,
    probabilities: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    labels: LabelSet,
    groups: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per group (e.g. industry): examples, complaint macro-F1, each label's F1 and positives.

    >>> y = np.array([[1, 0, 0, 0], [0, 1, 0, 0]]); p = y * 0.9
    >>> group_metrics(y, p, [0.5] * 4, LabelSet.default(), ["a", "a"])["a"]["complaint_macro_f1"]
    1.0
    """
    truth = np.asarray(targets).astype(int)
    decisions = (np.asarray(probabilities, dtype=np.float32)
                 >= np.asarray(thresholds, dtype=np.float32)).astype(int)
    keys = np.asarray(groups, dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(set(groups)):
        rows = keys == group
        f1 = f1_score(truth[rows], decisions[rows], average=None, zero_division=0,
                      labels=list(range(len(labels))))
        out[group] = {
            "examples": int(rows.sum()),
            "complaint_macro_f1": complaint_macro_f1(truth[rows], decisions[rows], labels),
            "complaint_macro_f1_interval": complaint_f1_interval(
                truth[rows], decisions[rows], labels),
            "per_label_f1": {name: float(f1[j]) for j, name in enumerate(labels)},
            # An F1 on a handful of positives swings by tens of points on one review: say so.
            "per_label_support": {name: int(truth[rows, j].sum()) for j, name in enumerate(labels)},
        }
    return out


def company_share_gaps(
    targets: np.ndarray, probabilities: np.ndarray, labels: LabelSet, companies: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per complaint label, per company (sorted by name): |mean predicted probability - share|."""
    keys = np.asarray(companies, dtype=object)
    members = [keys == company for company in sorted(set(companies))]
    gaps: dict[str, np.ndarray] = {}
    for name in labels.complaints:
        j = labels.index(name)
        gaps[name] = np.array([abs(float(np.mean(probabilities[rows, j]))
                                   - float(np.mean(targets[rows, j]))) for rows in members])
    return gaps


def company_shares(
    targets: np.ndarray, probabilities: np.ndarray, labels: LabelSet, companies: Sequence[str]
) -> dict[str, float]:
    """Per complaint label: mean over companies of |mean predicted probability - labeled share|.

    >>> y = np.array([[1, 0, 0, 0], [0, 0, 0, 0]]); p = np.full((2, 4), 0.25)
    >>> company_shares(y, p, LabelSet.default(), ["a", "b"])["service_complaint"]
    0.5
    """
    gaps = company_share_gaps(targets, probabilities, labels, companies)
    return {name: float(np.mean(g)) for name, g in gaps.items()}


def company_share_interval(
    gaps: dict[str, np.ndarray],
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of each label's mean company gap (``company_share_gaps``),
    companies resampled with replacement: two dozen test companies pin the share error down only
    to within a few points, which matters when it sits near a target. Only the spread between
    companies is counted, not the sampling noise of each company's own labeled share. ``[]``
    for a label with fewer than two companies.

    >>> company_share_interval({"service_complaint": np.array([0.25, 0.25, 0.25])})
    {'service_complaint': [0.25, 0.25]}
    """
    tail = (1 - level) / 2
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {}
    for name, company_gaps in gaps.items():
        count = len(company_gaps)
        if count < 2:
            out[name] = []
            continue
        means = company_gaps[rng.integers(0, count, size=(resamples, count))].mean(axis=1)
        out[name] = [float(x) for x in np.quantile(means, [tail, 1 - tail])]
    return out


def _corpus_breakdown(
    spec: str, groups: Sequence[str], targets: np.ndarray, probabilities: np.ndarray,
    thresholds: np.ndarray, labels: LabelSet,
) -> dict[str, Any]:
    """For ``corpus:<split>``: per-industry metrics and per-company share error.

    ``load_labeled`` puts the company in ``groups``; each company has one industry in the corpus.
    """
    from wordofclick.data import CORPUS_PREFIX
    from wordofclick.datasets import load_corpus

    table = load_corpus(spec.removeprefix(CORPUS_PREFIX))
    industry_of = dict(zip(table["company"].to_pylist(), table["industry"].to_pylist(),
                           strict=True))
    industries = [industry_of.get(company, "unknown") for company in groups]
    gaps = company_share_gaps(targets, probabilities, labels, groups)
    return {
        "per_industry": group_metrics(targets, probabilities, thresholds, labels, industries),
        "company_share_mae": {name: float(np.mean(g)) for name, g in gaps.items()},
        "company_share_mae_interval": company_share_interval(gaps),
    }


def format_share_errors(extra: dict[str, Any]) -> str:
    """The per-company share errors of a corpus evaluation, each with its 95% interval
    (companies resampled) where one was recorded: reports written before intervals existed, and
    splits of a single company, have none."""
    intervals = extra.get("company_share_mae_interval", {})
    return ", ".join(
        f"{name} {value:.3f}" + (" ({:.3f}-{:.3f})".format(*intervals[name])
                                 if intervals.get(name) else "")
        for name, value in extra["company_share_mae"].items()
    )


def reliability_plot(
    targets: np.ndarray, probabilities: np.ndarray, labels: LabelSet, path: str | os.PathLike[str]
) -> Path:
    """Save a reliability diagram (predicted probability vs observed frequency) per label."""
    # A bare Figure draws with Agg without touching pyplot's global backend (a notebook's stays).
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    figure = Figure(figsize=(3.2 * len(labels), 3.2))
    axes = figure.subplots(1, len(labels), squeeze=False)
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
    return path


def evaluate_model(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    backend: str = "torch",
    granularity: str = "sentence",
    behaviour: bool = False,
) -> EvaluationReport:
    """Evaluate a saved model on a labeled file; with ``out``, write JSON and a reliability plot.

    On ``corpus:<split>``, ``report.extra`` also holds ``per_industry`` and ``company_share_mae``;
    with ``behaviour``, ``report.extra["behaviour"]`` holds the behavioural test pass rates.

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
    if str(data).startswith("corpus:"):
        report.extra.update(_corpus_breakdown(
            str(data), labeled.groups, labeled.targets, probabilities, classifier.thresholds,
            classifier.labels))
    if behaviour:
        from wordofclick.behaviour import run_behaviour

        report.extra["behaviour"] = run_behaviour(classifier).to_dict()
    if out is not None:
        out = Path(out)
        report.write_json(out / "evaluation.json")
        reliability_plot(labeled.targets, probabilities, classifier.labels, out / "reliability.png")
    return report


def record_evaluation(
    model: str | os.PathLike[str],
    report: EvaluationReport,
    baseline: EvaluationReport | None = None,
) -> Path:
    """Keep ``report`` (and a baseline's on the same data) in the model's ``wordofclick.json``
    and rewrite its model card, so the card shows every recorded evaluation.

    A new report on the same data replaces the older one. The weights are not touched, so ONNX
    exports stay valid. Returns the card's path.
    """
    from wordofclick.model import ModelMeta
    from wordofclick.model_card import render_model_card

    folder = Path(model)
    meta = ModelMeta.read(folder)
    entry: dict[str, Any] = {"data": report.data, "report": report.to_dict()}
    if baseline is not None:
        entry["baseline"] = baseline.to_dict()
    meta.evaluations = [e for e in meta.evaluations if e.get("data") != report.data] + [entry]
    meta.write(folder)
    card = folder / "README.md"
    card.write_text(render_model_card(meta), encoding="utf-8")
    return card


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
    if report.complaint_macro_f1_interval:
        low, high = report.complaint_macro_f1_interval
        Console().print(f"complaint macro-F1 95% bootstrap interval: {low:.3f}-{high:.3f}")
    _print_extra_tables(report)


def _print_extra_tables(report: EvaluationReport) -> None:
    """Per-industry and behavioural tables, when the report has them."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "per_industry" in report.extra:
        table = Table(title="per industry",
                      caption=f"company share MAE: {format_share_errors(report.extra)}")
        for column in ("industry", "examples", "complaint macro-F1", "95% interval"):
            table.add_column(column, justify="left" if column == "industry" else "right")
        for name, g in report.extra["per_industry"].items():
            interval = g.get("complaint_macro_f1_interval") or []
            table.add_row(name, str(g["examples"]), f"{g['complaint_macro_f1']:.3f}",
                          "-".join(f"{x:.3f}" for x in interval))
        console.print(table)
    if "behaviour" in report.extra:
        b = report.extra["behaviour"]
        table = Table(title="behavioural tests (exact label set)")
        for column in ("category", "cases", "passed", "pass rate"):
            table.add_column(column, justify="left" if column == "category" else "right")
        for name, c in b["per_category"].items():
            table.add_row(name, str(c["cases"]), str(c["passed"]), f"{c['pass_rate']:.3f}")
        table.add_section()
        table.add_row("all", str(b["cases"]), str(b["passed"]), f"{b['pass_rate']:.3f}")
        console.print(table)
