"""Build the packaged corpus from the hand-written reviews and their two independent labelings.

Inputs (all under scripts/corpus/, written by the team):
  authored/<industry>.jsonl      reviews as written, with the writer's labels (annotator A);
                                 a company written after the first build carries its `split`
  annotations/<industry>.jsonl   a second annotator's blind labels (annotator B), by key
  adjudication/<industry>.jsonl  the reconciled labels for every review where A and B differ

Outputs (inside the package, src/wordofclick/datasets/):
  corpus.jsonl        one review per line: ids, company, industry, text, date, rating, channel,
                      engagement, the four final labels and the split
  annotations.jsonl   per review: labels A, labels B, final labels, the adjudication note
  corpus_card.json    counts, label balance and Cohen's kappa per label (quoted by DATASHEET.md)

Everything random (dates, engagement) comes from one seed, and a company pinned to a split
draws from a stream of that seed and its name, so the build is reproducible: `python
scripts/build_corpus.py` rewrites identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "scripts" / "corpus"
TARGET = ROOT / "src" / "wordofclick" / "datasets"
LABELS = ("service_complaint", "product_complaint", "service_praise", "product_praise")
SEED = 20261123
START = datetime(2025, 11, 1, tzinfo=timezone.utc)
DAYS = 365
# Companies whose service complaints rise over the year (the trend demo): their service
# complaints are dated late in the year, their other reviews early.
RISING = {"telecom": "service_heavy", "delivery": "service_heavy"}
# Held-out profiles rotate over industries, so test and dev see every kind of company.
ROTATION = ("mixed_a", "service_heavy", "praised", "product_heavy", "mixed_b")
# Median engagement by channel (likes); shares are a fraction of likes. Review sites carry
# "helpful" votes as likes and no shares; "other" (letters, forums) has no counts.
MEDIAN_LIKES = {"facebook": 12, "twitter": 9, "instagram": 25, "review_site": 3}
SHARE_RATE = {"facebook": 0.25, "twitter": 0.4, "instagram": 0.1}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def key_of(industry: str, index: int) -> str:
    return f"{industry}-{index:04d}"


def load_industry(industry: str) -> list[dict]:
    authored = read_jsonl(SOURCE / "authored" / f"{industry}.jsonl")
    annotated = read_jsonl(SOURCE / "annotations" / f"{industry}.jsonl")
    second = {r["key"]: r["labels"] for r in annotated}
    adjudication_path = SOURCE / "adjudication" / f"{industry}.jsonl"
    adjudicated = (
        {r["key"]: r for r in read_jsonl(adjudication_path)} if adjudication_path.exists() else {}
    )
    rows = []
    missing = []
    for index, review in enumerate(authored):
        key = key_of(industry, index)
        labels_a = sorted(review["labels"], key=LABELS.index)
        if key not in second:
            sys.exit(f"{industry}: no second annotation for {key}; finish annotations/ first")
        labels_b = sorted(second[key], key=LABELS.index)
        note = ""
        if labels_a == labels_b:
            final = labels_a
        elif key in adjudicated:
            final = sorted(adjudicated[key]["labels"], key=LABELS.index)
            note = adjudicated[key].get("note", "")
        else:
            missing.append(key)
            continue
        rows.append({**review, "key": key, "labels_a": labels_a, "labels_b": labels_b,
                     "final": final, "note": note})
    if missing:
        sys.exit(f"{industry}: {len(missing)} disagreements not adjudicated, e.g. {missing[:5]}")
    return rows


def pinned_splits(rows: list[dict], industry: str) -> dict[str, str]:
    """Companies written after the first build carry their split (train, dev or test)."""
    pinned: dict[str, set[str]] = {}
    for row in rows:
        if "split" in row:
            pinned.setdefault(row["company"], set()).add(row["split"])
    rotated = {r["company"] for r in rows if "split" not in r}
    for company, splits in pinned.items():
        if len(splits) != 1 or not splits <= {"train", "dev", "test"}:
            sys.exit(f"{industry}: {company} is pinned to {sorted(splits)}; pin every review of "
                     "a company to one split: train, dev or test")
        if company in rotated:
            sys.exit(f"{industry}: {company} has reviews with and without a pinned split")
    return {company: splits.pop() for company, splits in pinned.items()}


def assign_splits(rows: list[dict], industry_number: int, industry: str) -> dict[str, str]:
    # The original six companies per industry are assigned by the profile rotation.
    fixed = pinned_splits(rows, industry)
    profiles = {r["profile"]: r["company"] for r in rows if "split" not in r}
    test_profile = ROTATION[industry_number % len(ROTATION)]
    dev_profile = ROTATION[(industry_number + 2) % len(ROTATION)]
    split = {company: "train" for company in profiles.values()}
    split[profiles[test_profile]] = "test"
    split[profiles[dev_profile]] = "dev"
    return split | fixed


def created_at(rng: np.random.Generator, rising: bool, service_complaint: bool) -> datetime:
    if rising:
        fraction = rng.beta(3.0, 1.0) if service_complaint else rng.beta(1.0, 2.0)
    else:
        fraction = rng.random()
    moment = START + timedelta(days=fraction * (DAYS - 1), seconds=int(rng.integers(0, 86400)))
    return moment.replace(microsecond=0)


def engagement(rng: np.random.Generator, channel: str, negative: bool) -> tuple[int | None, ...]:
    if channel not in MEDIAN_LIKES:
        return None, None
    # Bad experiences are shared more (docs/word_of_click.md): complaints get more engagement.
    median = MEDIAN_LIKES[channel] * (1.6 if negative else 1.0)
    likes = int(rng.lognormal(np.log(median), 1.0))
    shares = int(rng.binomial(likes, SHARE_RATE[channel])) if channel in SHARE_RATE else None
    return shares, likes


def kappa_table(rows: list[dict]) -> dict[str, float]:
    table = {}
    for label in LABELS:
        a = [int(label in r["labels_a"]) for r in rows]
        b = [int(label in r["labels_b"]) for r in rows]
        table[label] = round(float(cohen_kappa_score(a, b)), 4)
    return table


def build() -> dict:
    industries = sorted(p.stem for p in (SOURCE / "authored").glob("*.jsonl"))
    rng = np.random.default_rng(SEED)
    # Each company pinned to a split later draws dates and engagement from a stream of its own,
    # seeded by its name, so adding one leaves every other review as it was (and, for a dev or
    # test company, the training data and the order the trainer reads it in).
    pinned_rng: dict[str, np.random.Generator] = {}
    corpus, annotations, everything = [], [], []
    for number, industry in enumerate(industries):
        rows = load_industry(industry)
        splits = assign_splits(rows, number, industry)
        for row in rows:
            draws = rng
            if "split" in row:
                if row["company"] not in pinned_rng:
                    name_seed = int(hashlib.sha1(row["company"].encode()).hexdigest()[:8], 16)
                    pinned_rng[row["company"]] = np.random.default_rng([SEED, name_seed])
                draws = pinned_rng[row["company"]]
            # Only the original rotation's profiles are the trend demo's rising companies.
            rising = "split" not in row and RISING.get(industry) == row["profile"]
            service_complaint = "service_complaint" in row["final"]
            negative = service_complaint or "product_complaint" in row["final"]
            shares, likes = engagement(draws, row["channel"], negative)
            digest = hashlib.sha1(row["key"].encode()).hexdigest()[:10]
            review = {
                "review_id": f"woc-{digest}",
                "company": row["company"],
                "industry": industry,
                "text": row["text"],
                "created_at": created_at(draws, rising, service_complaint).isoformat(),
                "rating": int(row["rating"]),
                "channel": row["channel"],
                "shares": shares,
                "likes": likes,
                **{label: int(label in row["final"]) for label in LABELS},
                "labels": row["final"],
                "split": splits[row["company"]],
            }
            corpus.append(review)
            annotations.append({
                "review_id": review["review_id"], "labels_a": row["labels_a"],
                "labels_b": row["labels_b"], "final": row["final"], "note": row["note"],
                "hard_case": row.get("hard_case"), "profile": row["profile"],
            })
            everything.append(row)
    corpus.sort(key=lambda r: (r["created_at"], r["review_id"]))
    order = {r["review_id"]: i for i, r in enumerate(corpus)}
    annotations.sort(key=lambda r: order[r["review_id"]])
    n = len(corpus)
    card = {
        "reviews": n,
        "industries": len(industries),
        "companies": len({r["company"] for r in corpus}),
        "splits": {s: sum(r["split"] == s for r in corpus) for s in ("train", "dev", "test")},
        "label_share": {lab: round(sum(r[lab] for r in corpus) / n, 4) for lab in LABELS},
        "no_label_share": round(sum(not r["labels"] for r in corpus) / n, 4),
        "service_and_product_share": round(sum(
            any(lab.startswith("service") for lab in r["labels"])
            and any(lab.startswith("product") for lab in r["labels"]) for r in corpus) / n, 4),
        "agreement_exact_share": round(
            sum(r["labels_a"] == r["labels_b"] for r in everything) / n, 4),
        "cohen_kappa": kappa_table(everything),
        "adjudicated": sum(r["labels_a"] != r["labels_b"] for r in everything),
        "hard_cases": {h: sum(r.get("hard_case") == h for r in everything) for h in sorted(
            {r.get("hard_case") for r in everything if r.get("hard_case")})},
        "rising_companies": sorted({r["company"] for r in everything if "split" not in r
                                    and RISING.get(r["industry"]) == r["profile"]}),
    }
    return {"corpus": corpus, "annotations": annotations, "card": card}


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args()
    built = build()
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "corpus.jsonl", built["corpus"])
    write_jsonl(args.out / "annotations.jsonl", built["annotations"])
    (args.out / "corpus_card.json").write_text(json.dumps(built["card"], indent=2) + "\n")
    print(json.dumps(built["card"], indent=2))


if __name__ == "__main__":
    main()
