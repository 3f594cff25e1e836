"""The model card (``README.md``) written into every saved model folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wordofclick.evaluate import EvaluationReport
    from wordofclick.model import ModelMeta


def render_model_card(meta: ModelMeta, dev_report: EvaluationReport | None) -> str:
    """Markdown with Hugging Face front matter, the labels, thresholds and the dev evaluation."""
    training = meta.training
    thresholds = "\n".join(
        f"| {label} | {threshold:.2f} |"
        for label, threshold in zip(meta.labels, meta.thresholds, strict=True)
    )
    evaluation = (
        dev_report.markdown_table() if dev_report is not None else "Not evaluated (untrained head)."
    )
    sources = ", ".join(s["path"] for s in training.get("settings", {}).get("train", [])) or "n/a"
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
`AutoModelForSequenceClassification.from_pretrained(path)` (apply a sigmoid to the logits and the
thresholds below; `wordofclick.json` holds them).

## Thresholds (tuned per label on dev)
| label | threshold |
|---|---|
{thresholds}

## Evaluation on the dev split
{evaluation}

## Training
- base model: `{meta.base_model}`; maximum length {meta.max_length} tokens
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
