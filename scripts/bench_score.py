"""Benchmark scoring on the same reviews: HF pipeline defaults, our torch path, ONNX fp32 and int8.

    python scripts/bench_score.py                          # models/default, or the base model
    python scripts/bench_score.py --model models/absa --n 20000
    python scripts/bench_score.py --input reviews.parquet  # real texts instead of generated ones

Speed and label agreement are measured in one process, with the reviews split into rounds and
every path scoring each round in turn (in a rotating order): when other processes share the
cores, all paths suffer alike and the ratios stay meaningful. Peak memory is measured in a fresh
process per path, since a process's peak includes every model it has loaded.

Without a trained model (no ``--model`` and no ``models/default``) the base model gets a random
head: speed is representative, but its probabilities cluster at the 0.5 threshold, which makes
label agreement a much harder test than on a trained model.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

PATHS = ("pipeline", "torch", "onnx", "onnx-int8")
DEFAULT_MODEL = Path("models/default")


def generate_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` review texts from the team's scale generator (:mod:`wordofclick.synthetic`)."""
    from wordofclick.synthetic import generate_reviews

    return [text for batch in generate_reviews(n, seed=seed) for text in batch["text"].to_pylist()]


def read_texts(path: str, n: int) -> list[str]:
    from wordofclick.reviews import ReviewReader

    texts: list[str] = []
    for chunk in ReviewReader(path):
        texts += chunk.reviews.column("text").to_pylist()
        if len(texts) >= n:
            break
    return texts[:n]


def prepare_model(model: Path | None, workdir: Path) -> tuple[Path, bool]:
    """A model folder with both ONNX exports; returns it and whether its head is random."""
    from wordofclick.labels import LabelSet
    from wordofclick.model import new_classifier
    from wordofclick.onnx_backend import FILES, ONNX_DIR, export_onnx, pick_auto

    random_head = False
    if model is None and DEFAULT_MODEL.is_dir():
        model = DEFAULT_MODEL
    if model is None:
        random_head = True
        model = workdir / "base-random-head"
        classifier = new_classifier("all-MiniLM-L6-v2", LabelSet.default(), max_length=128)
        classifier.meta.name, classifier.meta.version = "base-random-head", "untrained"
        classifier.save_pretrained(model)
    if pick_auto(model) != "onnx-int8" or not (model / ONNX_DIR / FILES["onnx"]).is_file():
        # Agreement is reported below whatever it is, so the benchmark keeps an int8 file that
        # `woc export-onnx` would refuse: it must do so in a copy, never in the user's folder,
        # where `--backend auto` would then pick it.
        if not random_head:
            copy = workdir / "model"
            shutil.copytree(model, copy, ignore=shutil.ignore_patterns(ONNX_DIR))
            model = copy
        for check in export_onnx(model, quantize="int8", min_agreement=0.0):
            print(f"exported {check.summary()}", file=sys.stderr)
    return model, random_head


def scorers(model: Path, paths: Sequence[str]) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """One function per path mapping texts to an (n, labels) probability matrix."""
    from wordofclick.model import ComplaintClassifier

    out: dict[str, Callable[[list[str]], np.ndarray]] = {}
    for name in paths:
        if name == "pipeline":
            out[name] = pipeline_scorer(model)
        else:
            out[name] = ComplaintClassifier.from_pretrained(model, backend=name).predict_proba
    return out


def pipeline_scorer(model: Path) -> Callable[[list[str]], np.ndarray]:
    """``pipeline("text-classification")`` with its defaults (batch size 1, no truncation).

    ``top_k=None`` asks for every label's score instead of the top one, which a multi-label
    model needs, and ``function_to_apply="none"`` for the raw logits, to which the model's own
    calibration is applied as our paths do: both change post-processing, not inference.
    """
    from transformers import pipeline

    from wordofclick.model import ModelMeta

    meta = ModelMeta.read(model)
    pipe = pipeline("text-classification", model=str(model), device=-1)

    def score(texts: list[str]) -> np.ndarray:
        results = pipe(texts, top_k=None, function_to_apply="none")
        logits = np.array(
            [[{r["label"]: r["score"] for r in row}[label] for label in meta.labels]
             for row in results],
            dtype=np.float32,
        )
        return meta.calibrate(logits)

    return score


def peak_rss_mb(model: Path, path: str, texts_file: Path) -> float:
    """Peak resident memory of a fresh process that loads ``path`` and scores the texts."""
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from bench_score import scorers, vm_hwm_mb\n"
        "texts = open(sys.argv[4], encoding='utf-8').read().split('\\x1e')\n"
        "scorers(__import__('pathlib').Path(sys.argv[2]), [sys.argv[3]])[sys.argv[3]](texts)\n"
        "print(vm_hwm_mb())\n"
    )
    args = [
        sys.executable,
        "-c",
        code,
        str(Path(__file__).parent),
        str(model),
        path,
        str(texts_file),
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def vm_hwm_mb() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries that over from the parent
    through fork and exec, so every child of a big process would report the parent's peak."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 1024


def complaint_f1(model: Path, score: Callable[[list[str]], np.ndarray]) -> float | None:
    """Complaint macro-F1 on the bundled test split, or None without a corpus."""
    from wordofclick.data import load_labeled
    from wordofclick.datasets import corpus_path
    from wordofclick.evaluate import complaint_macro_f1
    from wordofclick.labels import LabelSet
    from wordofclick.model import ModelMeta

    if not corpus_path().is_file():
        return None
    meta = ModelMeta.read(model)
    labels = LabelSet.of(meta.labels)
    data = load_labeled("corpus:test", labels)
    decisions = score(data.texts) >= np.asarray(meta.thresholds, dtype=np.float32)
    return complaint_macro_f1(data.targets, decisions, labels)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder (default: models/default, else base + random head)",
    )
    parser.add_argument("--n", type=int, default=20_000, help="reviews to score per path")
    parser.add_argument("--rounds", type=int, default=10, help="rounds the reviews are split in")
    parser.add_argument("--input", default=None, help="take texts from this review file")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument(
        "--memory-texts", type=int, default=2_000, help="texts the memory processes score"
    )
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",")]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"--paths: unknown {unknown}; expected a subset of {', '.join(PATHS)}")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        named = args.model or DEFAULT_MODEL
        model, random_head = prepare_model(args.model, workdir)
        texts = read_texts(args.input, args.n) if args.input else generate_texts(args.n)
        run = scorers(model, paths)
        from wordofclick.model import ModelMeta

        thresholds = np.asarray(ModelMeta.read(model).thresholds, dtype=np.float32)
        load_before = os.getloadavg()[0]
        for score in run.values():  # first calls pay one-off set-up costs
            score(texts[:8])
        seconds = dict.fromkeys(paths, 0.0)
        probabilities: dict[str, list[np.ndarray]] = {p: [] for p in paths}
        bounds = np.linspace(0, len(texts), args.rounds + 1).astype(int)
        for round_, (start, stop) in enumerate(itertools.pairwise(bounds)):
            order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
            for name in order:
                started = time.perf_counter()
                probabilities[name].append(run[name](texts[start:stop]))
                seconds[name] += time.perf_counter() - started
            print(
                f"round {round_ + 1}/{args.rounds}: "
                + ", ".join(f"{p} {stop / seconds[p]:.0f}/s" for p in paths),
                file=sys.stderr,
            )
        load_after = os.getloadavg()[0]

        texts_file = workdir / "texts.txt"
        texts_file.write_text("\x1e".join(texts[: args.memory_texts]), encoding="utf-8")
        reference = np.concatenate(probabilities["torch"]) if "torch" in paths else None
        rows = []
        for name in paths:
            probs = np.concatenate(probabilities[name])
            rate = len(texts) / seconds[name]
            base = len(texts) / seconds["pipeline"] if "pipeline" in paths else None
            same_texts = same_decisions = diff = None
            if reference is not None:
                same = (probs >= thresholds) == (reference >= thresholds)
                same_texts, same_decisions = float(same.all(axis=1).mean()), float(same.mean())
                diff = float(np.abs(probs - reference).max())
            f1 = complaint_f1(model, run[name])
            memory = peak_rss_mb(model, name, texts_file)
            ratio = rate / base if base else None
            rows.append((name, rate, ratio, same_texts, same_decisions, diff, f1, memory))

    head = " (base model, random head)" if random_head else ""
    print(
        f"\n{len(texts):,} reviews, model {model.name if random_head else named}{head}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before / {load_after:.1f} after"
    )
    print(
        "| path | reviews/s | vs pipeline | same labels as torch (reviews) | (decisions) "
        "| max prob diff | complaint macro-F1 (test) | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    torch_f1 = next((r[6] for r in rows if r[0] == "torch"), None)

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for name, rate, ratio, same_texts, same_decisions, diff, f1, memory in rows:
        f1_text = fmt(f1, ".3f")
        if f1 is not None and torch_f1 is not None and name != "torch":
            f1_text += f" ({(f1 - torch_f1) * 100:+.1f} pts)"
        print(
            f"| {name} | {rate:.0f} | {fmt(ratio, '.2f')}{'x' if ratio else ''} "
            f"| {fmt(same_texts, '.2%')} "
            f"| {fmt(same_decisions, '.2%')} | {fmt(diff, '.4f')} | {f1_text} | {memory:,.0f} MB |"
        )
    own = vm_hwm_mb()
    print(
        f"(peak RSS: a fresh process scoring {args.memory_texts:,} texts per path; "
        f"this process, all paths loaded: {own:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
