"""The model card (``README.md``) written into every saved model folder.

Rendered from ``wordofclick.json`` alone (dev metrics, calibration, and the evaluations recorded
with ``woc evaluate --record``), so re-rendering never needs the training run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wordofclick.model import ModelMeta


def render_model_card(meta: ModelMeta) -> str:
    """Markdown with Hugging Face front matter, labels, thresholds, calibration and evaluations."""
    from wordofclick.evaluate import EvaluationReport

    training = meta.training
    scales = meta.logit_scale or [1.0] * len(meta.labels)
    biases = meta.logit_bias or [0.0] * len(meta.labels)
    thresholds = "\n".join(
        f"| {label} | {threshold:.2f} | {scale:.3f} | {bias:+.3f} |"
        for label, threshold, scale, bias in zip(
            meta.labels, meta.thresholds, scales, biases, strict=True
        )
    )
    dev = "Not evaluated (untrained head)."
    if meta.dev_metrics:
        report = EvaluationReport.from_dict(meta.dev_metrics)
        # wordofclick.json is written with sorted keys; the card lists labels in model order.
        report.per_label = {label: report.per_label[label] for label in meta.labels}
        dev = report.markdown_table()
    settings = training.get("settings", {})
    sources = ", ".join(_source(s) for s in settings.get("train", [])) or "n/a"
    student = (
        f"\n- {settings['num_layers']} transformer layers kept of the base model's"
        if settings.get("num_layers") else ""
    )
    if training.get("teacher"):
        weight = settings["teacher"]["weight"]
        student += (
            f"\n- distilled from `{training['teacher']}` (targets: {1 - weight:.2f} x label + "
            f"{weight:.2f} x teacher probability)"
        )
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [wordofclick, multi-label, reviews]
base_model: {meta.base_model}
---
# {meta.name} ({meta.version})

A [wordofclick](https://pypi.org/project/wordofclick/) review classifier: for each review, the
probability that it contains a `service_complaint` (how the company's people treated the
customer), a `product_complaint` (what was sold), `service_praise` and `product_praise`. A review
may carry none, one or several labels.

Load it with `ComplaintClassifier.from_pretrained(path)`, or with plain transformers:
`AutoModelForSequenceClassification.from_pretrained(path)`; then the probability of label `i` is
`sigmoid(logit_scale[i] * logit[i] + logit_bias[i])` and the label is on at or above its
threshold (`wordofclick.json` holds both).

## Thresholds and calibration (both fitted on dev)
| label | threshold | logit scale | logit bias |
|---|---|---|---|
{thresholds}

## Evaluation on the dev data
Dev chose the epoch, the calibration and the thresholds, so these figures are optimistic.

{dev}
{_recorded_evaluations(meta.evaluations, meta.labels)}
## Training
- base model: `{meta.base_model}`; maximum length {meta.max_length} tokens{student}
- training data: {sources} ({training.get("train_examples", "n/a")} examples, fingerprint
  `{meta.data_fingerprint or "n/a"}`), dev examples: {training.get("dev_examples", "n/a")}
- best epoch {training.get("best_epoch", "n/a")} of {training.get("epochs_run", "n/a")},
  {training.get("seconds", "n/a")} s
- libraries: {", ".join(f"{k} {v}" for k, v in meta.library_versions.items())}

## Intended use and limits
Sorting customer reviews by what they complain about, to measure how much negative word of mouth
service attitude generates. English only. Trained on restaurant, laptop and our own multi-industry
reviews; expect lower accuracy on other domains and on very long texts (truncated at
{meta.max_length} tokens). Probabilities are meant to be summed; check the calibration error (ECE)
above before relying on them.
"""


def _source(source: dict[str, Any]) -> str:
    """``path``, with how it was read when that is not the default."""
    notes = []
    if source.get("granularity") == "review":
        notes.append("whole reviews")
    if source.get("dev_fraction"):
        notes.append(f"{source['dev_fraction']:.0%} held out for dev")
    if source.get("repeat", 1) > 1:
        notes.append(f"{source['repeat']} copies per epoch")
    return source["path"] + (f" ({', '.join(notes)})" if notes else "")


def _with_interval(value: float, interval: list[float] | None) -> str:
    """``0.733 (0.689-0.776)``: the figure and its 95% bootstrap interval, when there is one."""
    return f"{value:.3f}" + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def _f1(report: dict[str, Any], label: str) -> str:
    metrics = report["per_label"].get(label)
    return f"{metrics['f1']:.3f}" if metrics else "n/a"


def _recorded_evaluations(entries: list[dict[str, Any]], labels: list[str]) -> str:
    """Held-out evaluations: a summary table, then each one's baseline, industries, behaviour."""
    if not entries:
        return ""
    lines = [
        "\n## Evaluation on held-out data",
        "Recorded with `woc evaluate --record`; none of this data chose anything in training.\n",
        "| data | examples | complaint macro-F1 (95% interval) | baseline | micro-F1 | "
        + " | ".join(f"{label} F1" for label in labels) + " | largest ECE |",
        "|---|---|---|---|---|" + "---|" * len(labels) + "---|",
    ]
    for entry in entries:
        report, baseline = entry["report"], entry.get("baseline")
        ece = max(m["ece"] for m in report["per_label"].values())
        lines.append(
            f"| {report['data']} | {report['examples']} | "
            + _with_interval(report["complaint_macro_f1"],
                             report.get("complaint_macro_f1_interval")) + " | "
            + (f"{baseline['complaint_macro_f1']:.3f}" if baseline else "n/a")
            + f" | {report['micro_f1']:.3f} | "
            + " | ".join(_f1(report, label) for label in labels) + f" | {ece:.3f} |"
        )
    for entry in entries:
        lines += _details(entry, labels)
    return "\n".join(lines) + "\n"


def _details(entry: dict[str, Any], labels: list[str]) -> list[str]:
    from wordofclick.evaluate import format_share_errors

    report, baseline, extra = entry["report"], entry.get("baseline"), entry["report"]["extra"]
    lines: list[str] = []
    if baseline:
        lines += [
            f"\n### {report['data']}: beside the baseline ({baseline['model']})",
            "| label | F1 | baseline F1 | ECE | baseline ECE |", "|---|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {_f1(report, label)} | {_f1(baseline, label)} | "
            f"{report['per_label'][label]['ece']:.3f} | "
            f"{baseline['per_label'][label]['ece']:.3f} |"
            for label in labels
        ]
    if "per_industry" in extra:
        complaints = [label for label in labels if label.endswith("_complaint")]
        lines += [
            f"\n### {report['data']}: per industry",
            "| industry | examples | complaint macro-F1 (95% interval) | "
            + " | ".join(f"{c} F1 (positives)" for c in complaints) + " |",
            "|---|---|---|" + "---|" * len(complaints),
        ]
        lines += [
            f"| {industry} | {m['examples']} | "
            + _with_interval(m["complaint_macro_f1"], m.get("complaint_macro_f1_interval"))
            + " | "
            + " | ".join(
                f"{m['per_label_f1'][c]:.3f} ({m.get('per_label_support', {}).get(c, '?')})"
                for c in complaints
            ) + " |"
            for industry, m in extra["per_industry"].items()
        ]
    if "company_share_mae" in extra:
        bracket = (" (in brackets: 95% interval, companies resampled)"
                   if any(extra.get("company_share_mae_interval", {}).values()) else "")
        lines.append(
            "\nPer company, mean absolute difference between the mean predicted probability and "
            f"the labeled share{bracket}: {format_share_errors(extra)}."
        )
    if "behaviour" in extra:
        behaviour = extra["behaviour"]
        lines += [
            f"\n### Behavioural tests: {behaviour['passed']} of {behaviour['cases']} pass "
            f"({behaviour['pass_rate']:.1%})",
            "| category | cases | passed | pass rate |", "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {c['cases']} | {c['passed']} | {c['pass_rate']:.1%} |"
            for name, c in behaviour["per_category"].items()
        ]
    return lines
