"""Benchmark the local engine against the Ray engine on the same generated reviews.

    python scripts/bench_ray.py                       # 20,000 reviews, models/default or the base
    python scripts/bench_ray.py --n 4000 --actors 2 1 # fewer reviews; Ray with 2 actors, then 1
    python scripts/bench_ray.py --address auto        # on the cluster this machine joined

For each engine it reports when the first scored chunk was written (for Ray that includes
starting Ray, the actor processes and a model load in each, and scoring that chunk on one
thread), the steady rate after it, the overhead (total time minus rows / steady rate: start-up
plus an uneven finish) and the end-to-end rate; for Ray also the steady rate per actor, which is
what a cluster multiplies (see docs/scale-out.md). Both engines score the same Parquet file of
synthetic reviews (``wordofclick.synthetic``) with the same model, and the script checks that
they agree. Peak memory is not reported: the Ray engine's lives in other processes.

Without ``--model`` and ``models/default`` the base model (all-MiniLM-L6-v2) gets a random head:
its speed is the trained model's, its labels are meaningless.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

DEFAULT_MODEL = Path("models/default")


@dataclass
class Timing:
    """When each scored chunk came out, from the moment the engine was asked to start."""

    started: float
    chunks: list[tuple[float, int]]

    def callback(self) -> Callable[[int], None]:
        return lambda rows: self.chunks.append((time.perf_counter(), rows))

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.chunks)

    @property
    def startup(self) -> float:
        """Seconds until the first chunk was out."""
        return self.chunks[0][0] - self.started

    @property
    def total(self) -> float:
        return self.chunks[-1][0] - self.started

    @property
    def overhead(self) -> float:
        """Seconds the steady rate does not explain: start-up (and an uneven finish)."""
        return self.total - self.rows / self.steady_rate

    @property
    def steady_rate(self) -> float:
        """Rows per second after the first chunk (its rows are start-up)."""
        after = self.rows - self.chunks[0][1]
        seconds = self.chunks[-1][0] - self.chunks[0][0]
        return after / seconds if seconds > 0 else float("nan")


def prepare_model(model: Path | None, workdir: Path) -> tuple[Path, bool]:
    """The model folder to use, and whether its head is random."""
    if model is None and DEFAULT_MODEL.is_dir():
        model = DEFAULT_MODEL
    if model is not None:
        return model, False
    from wordofclick.labels import LabelSet
    from wordofclick.model import new_classifier

    folder = workdir / "base-random-head"
    classifier = new_classifier("all-MiniLM-L6-v2", LabelSet.default(), max_length=128)
    classifier.meta.name, classifier.meta.version = "base-random-head", "untrained"
    classifier.save_pretrained(folder)
    return folder, True


def run_local(
    model: Path, source: Path, out: Path, backend: str, chunk_rows: int, threads: int | None
) -> Timing:
    """The local engine as ``woc score`` runs it: one process, the model on every core."""
    from wordofclick.reviews import TableWriter
    from wordofclick.scoring import ReviewScorer, iter_scored

    timing = Timing(time.perf_counter(), [])
    scorer = ReviewScorer(model, backend=backend, num_threads=threads)
    chunks = iter_scored(scorer, source, chunk_rows=chunk_rows)
    note = timing.callback()
    with TableWriter(out, scorer.output_schema(pq.read_schema(source))) as writer:
        for chunk in chunks:
            writer.write(chunk.reviews)
            note(chunk.reviews.num_rows)
    return timing


def run_ray(
    model: Path,
    source: Path,
    out: Path,
    backend: str,
    chunk_rows: int,
    address: str | None,
    actors: int | None,
    cpus_per_actor: float | None,
) -> tuple[Timing, float, str]:
    """The Ray engine, Ray started (or joined) inside the timing; also the ``ray.init`` time."""
    import ray

    from wordofclick import ray_engine

    timing = Timing(time.perf_counter(), [])
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    init_s = time.perf_counter() - timing.started
    try:
        summary = ray_engine.score_file(
            model,
            source,
            out,
            chunk_rows=chunk_rows,
            backend=backend,
            progress=False,
            ray=ray_engine.RaySettings(actors=actors, cpus_per_actor=cpus_per_actor),
            on_chunk=timing.callback(),
        )
    finally:
        ray.shutdown()
    return timing, init_s, summary.backend


def agreement(first: Path, second: Path, labels: Sequence[str]) -> tuple[float, float, bool]:
    """Share of equal label decisions, largest probability difference, rows in the same order."""
    a, b = pq.read_table(first), pq.read_table(second)
    same_order = a.column("review_id").equals(b.column("review_id"))
    probs = [f"prob_{label}" for label in labels]
    preds = [f"pred_{label}" for label in labels]
    pa_, pb = (np.stack([t[c].to_numpy() for c in probs], axis=1) for t in (a, b))
    da, db = (np.stack([t[c].to_numpy() for c in preds], axis=1) for t in (a, b))
    return float((da == db).mean()), float(np.abs(pa_ - pb).max()), same_order


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="reviews (default 20,000)")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--chunk-rows", type=int, default=1024)
    parser.add_argument("--address", default=None, help="Ray cluster (default: start one here)")
    parser.add_argument(
        "--actors",
        type=int,
        nargs="*",
        default=[0],
        help="actor counts to run Ray with; 0 is the default sizing (default: 0)",
    )
    parser.add_argument("--cpus-per-actor", type=float, default=None)
    parser.add_argument(
        "--local-threads", type=int, default=None, help="model threads (default: every core)"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from wordofclick import ray_engine
    from wordofclick.synthetic import write_reviews

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        workdir = Path(tmp)
        model, random_head = prepare_model(args.model, workdir)
        folder, backend, labels = ray_engine.check_model(model, args.backend)
        source = workdir / "reviews.parquet"
        write_reviews(source, args.n, companies=200)
        print(
            f"{args.n:,} synthetic reviews, model {model}"
            + (" (base model, random head)" if random_head else "")
            + f", backend {backend}, chunks of {args.chunk_rows} rows",
            flush=True,
        )
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.1f} at start",
            flush=True,
        )

        results = []
        local = run_local(
            folder, source, workdir / "local.parquet", backend, args.chunk_rows, args.local_threads
        )
        threads = f"{args.local_threads} thread(s)" if args.local_threads else "all cores"
        results.append((f"local (1 process, {threads})", local, None, 1))
        print(f"local done: {local.total:.1f} s", flush=True)
        for actors in args.actors:
            out = workdir / f"ray-{actors}.parquet"
            timing, init_s, described = run_ray(
                folder,
                source,
                out,
                backend,
                args.chunk_rows,
                args.address,
                actors or None,
                args.cpus_per_actor,
            )
            plan = re.search(r"\((\d+) actors? x [^)]*\)", described)
            assert plan is not None, described
            results.append((f"ray: {plan.group(0)[1:-1]}", timing, init_s, int(plan.group(1))))
            share, gap, same_order = agreement(workdir / "local.parquet", out, labels)
            print(
                f"ray done: {timing.total:.1f} s; against local: labels agree {share:.4%}, "
                f"largest probability difference {gap:.1e}, same row order {same_order}",
                flush=True,
            )

    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (other processes share the cores)")
    header = (
        "engine",
        "first chunk out s",
        "ray.init s",
        "overhead s",
        "steady rows/s",
        "rows/s per actor",
        "total s",
        "end-to-end rows/s",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, timing, init_s, pool in results:
        cells = (
            name,
            f"{timing.startup:.1f}",
            "-" if init_s is None else f"{init_s:.1f}",
            f"{timing.overhead:.1f}",
            f"{timing.steady_rate:.1f}",
            "-" if init_s is None else f"{timing.steady_rate / pool:.1f}",
            f"{timing.total:.1f}",
            f"{timing.rows / timing.total:.1f}",
        )
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
