"""How far the public data's labels are from our annotation guide, and where a model sits.

MAMS labels aspects (food, service, staff, ...) with a polarity; the shared data README maps them
onto our four labels. `../shared/data/audit/mams_acsa_val_guide_labels.jsonl` holds a second,
blind labeling of every MAMS val sentence under `ANNOTATION_GUIDE.md` (the annotator saw only the
text: no aspects, no polarity, no model output; sentence ids and labels). It annotates the
public file, so it lives beside it and is read by path, like the file itself. This script
prints, per label, Cohen's kappa between the two labelings and the F1 of one against the other;
with --model, the model's F1 against each.

    python scripts/label_agreement.py --model models/default

The point: the complaint macro-F1 that one careful annotator following our guide reaches against
the mapped MAMS labels is a ceiling on what "agreeing with MAMS" can mean for a model that follows
the same guide.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

from wordofclick.absa import iter_sentences, labels_for
from wordofclick.evaluate import complaint_macro_f1
from wordofclick.labels import LabelSet

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parents[1] / "shared/data"
DEFAULT_XML = SHARED_DATA / "absa/mams_acsa_val.xml"
DEFAULT_AUDIT = SHARED_DATA / "audit/mams_acsa_val_guide_labels.jsonl"


def label_matrix(rows: list[list[str]], labels: LabelSet) -> np.ndarray:
    return np.array([labels.encode(row) for row in rows], dtype=int)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xml", type=Path, default=DEFAULT_XML)
    parser.add_argument("--audit", type=Path, default=DEFAULT_AUDIT)
    parser.add_argument("--model", type=Path, help="a saved model folder to place beside both")
    parser.add_argument("--backend", default="torch",
                        help="torch (default), onnx, onnx-int8 or auto, as for woc score")
    args = parser.parse_args()
    for needed in (args.xml, args.audit):
        if not needed.is_file():
            raise SystemExit(f"{needed}: not found; this needs the shared data (../shared/data)")

    labels = LabelSet.default()
    sentences = iter_sentences(args.xml)
    audit = {}
    for number, line in enumerate(args.audit.read_text(encoding="utf-8").splitlines(), 1):
        record = json.loads(line)
        unknown = set(record["labels"]) - set(labels)
        if unknown:
            raise SystemExit(f"{args.audit}:{number}: unknown labels {sorted(unknown)}")
        audit[record["sentence_id"]] = record["labels"]
    missing = [s.sentence_id for s in sentences if s.sentence_id not in audit]
    if missing:
        raise SystemExit(f"{args.audit}: no labels for sentence ids {missing[:5]}...")

    mapped = label_matrix([labels_for(s.opinions) for s in sentences], labels)
    guide = label_matrix([audit[s.sentence_id] for s in sentences], labels)
    model_said = None
    if args.model:
        from wordofclick.model import ComplaintClassifier

        classifier = ComplaintClassifier.from_pretrained(args.model, backend=args.backend)
        decided = classifier.decide(classifier.predict_proba([s.text for s in sentences]))
        # the model's columns follow its own label order; the table follows ours
        model_said = decided[:, [classifier.labels.index(name) for name in labels]]

    print(f"{len(sentences)} sentences of {args.xml.name}")
    header = "| label | positives mapped / guide | kappa | guide F1 vs mapped |"
    if model_said is not None:
        header += " model F1 vs mapped | model F1 vs guide |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for j, name in enumerate(labels):
        row = (f"| {name} | {mapped[:, j].sum()} / {guide[:, j].sum()} | "
               f"{cohen_kappa_score(mapped[:, j], guide[:, j]):.3f} | "
               f"{f1_score(mapped[:, j], guide[:, j], zero_division=0):.3f} |")
        if model_said is not None:
            row += (f" {f1_score(mapped[:, j], model_said[:, j], zero_division=0):.3f} |"
                    f" {f1_score(guide[:, j], model_said[:, j], zero_division=0):.3f} |")
        print(row)
    summary = f"complaint macro-F1: guide vs mapped {complaint_macro_f1(mapped, guide, labels):.3f}"
    if model_said is not None:
        summary += (f"; model vs mapped {complaint_macro_f1(mapped, model_said, labels):.3f}"
                    f"; model vs guide {complaint_macro_f1(guide, model_said, labels):.3f}")
    print(summary)


if __name__ == "__main__":
    main()
