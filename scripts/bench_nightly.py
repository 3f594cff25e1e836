"""Benchmark the nightly job: a year of reviews in one night, then a night with 1% new ones.

    python scripts/bench_nightly.py --tiny                    # the pipeline, with a tiny model
    python scripts/bench_nightly.py --model models/default    # the real model: hours on 2 cores
    python scripts/bench_nightly.py --tiny --reviews 100000   # smaller

Generates 1,000,000 synthetic reviews (``wordofclick.synthetic``) for 5,000 companies over 365
days into Parquet files, runs ``woc nightly`` for the last day in a child process, as a scheduler
would, then adds 1% new reviews dated the next day in a new file and runs that night, then runs
it again (a no-op). For each run it reports the wall time, the job's own time per stage (from its
JSON ``finished`` event: read, plan, score, store, aggregate, report) and the child's peak RSS.

``--tiny`` scores with a random two-layer BERT of hidden size 32 (the test suite's fixture): the
figures then measure everything but the model. With the real model, scoring takes what
``scripts/bench_score.py`` measures per review, times the number of reviews. The texts are
synthetic and unlabeled: these are throughput figures, nothing about quality.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wordofclick.synthetic import DEFAULT_START, company_names, generate_reviews

REPO = Path(__file__).resolve().parents[1]


def build_tiny_model(folder: Path) -> Path:
    """The test suite's tiny random model, saved under ``folder``."""
    import torch

    # The tiny base lives with the tests' fixtures; reuse it rather than copy it here.
    sys.path.insert(0, str(REPO))
    from tests.conftest import build_tiny_base

    from wordofclick.cli import quiet_transformers
    from wordofclick.labels import LabelSet
    from wordofclick.model import new_classifier

    quiet_transformers()

    base = build_tiny_base(folder / "tiny-base")
    torch.manual_seed(0)
    classifier = new_classifier(str(base), LabelSet.default(), max_length=64, name="tiny")
    classifier.meta.version = "bench"
    return classifier.save_pretrained(folder / "tiny")


def write_reviews(folder: Path, n: int, companies: int, days: int, start: datetime, seed: int,
                  prefix: str, rows_per_file: int) -> int:
    """Write ``n`` synthetic reviews as Parquet files of ``rows_per_file`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    names = company_names(companies)
    written = 0
    batches = generate_reviews(n, companies=names, days=days, start=start, seed=seed,
                               batch_rows=rows_per_file)
    for number, batch in enumerate(batches):
        pq.write_table(pa.Table.from_batches([batch]), folder / f"{prefix}-{number:04d}.parquet")
        written += batch.num_rows
    return written


def run_night(args: argparse.Namespace, model: Path, day: date, log: Path) -> dict:
    """``woc nightly`` in a child process; its summary, stages, wall time and peak RSS."""
    command = [
        sys.executable, "-c", "from wordofclick.cli import main; main()", "nightly",
        "--input", str(args.out / "input"), "--store", str(args.out / "woc.duckdb"),
        "--model", str(model), "--report", str(args.out / "report"), "--date", str(day),
        "train_config=null", f"chunk_rows={args.chunk_rows}", f"backend={args.backend}",
    ]
    if args.threads:
        command.append(f"num_threads={args.threads}")
    aggregate = REPO / "configs" / "aggregate.yaml"
    if aggregate.is_file():
        command.append(f"aggregate_config={aggregate}")
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as events, open(log.with_suffix(".out"), "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=events,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"woc nightly for {day} exited with {code}; see {log}")
    finished = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] == "finished":
                finished = event
    return {"date": str(day), "wall_s": round(wall, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux reports KiB
            "summary": log.with_suffix(".out").read_text(encoding="utf-8").strip(),
            **{k: v for k, v in finished.items() if k not in ("time", "date", "event")}}


def describe(name: str, night: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in night.get("stages", {}).items())
    return (
        f"{name} ({night['date']}, {night['status']}): wall {night['wall_s']:.1f} s, job "
        f"{night['seconds']:.1f} s, peak RSS {night['peak_rss_mb']:,} MB\n"
        f"  read {night['reviews_read']:,} rows from {night['files_read']} file(s) "
        f"({night['files_skipped']} skipped), scored {night['reviews_scored']:,}, "
        f"companies {night['companies_updated']:,}\n"
        f"  stages: {stages or '-'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--new-share", type=float, default=0.01,
                        help="new reviews on the second night, as a share of the first")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", type=Path, help="a saved model folder")
    model.add_argument("--tiny", action="store_true", help="a random tiny model (no quality)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="model threads (1 is fastest for --tiny on a busy 2-core machine)")
    parser.add_argument("--chunk-rows", type=int, default=4096)
    parser.add_argument("--rows-per-file", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "nightly")
    args = parser.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model_dir = build_tiny_model(args.out / "model") if args.tiny else args.model

    started = time.perf_counter()
    first_day = DEFAULT_START.date() + timedelta(days=args.days - 1)
    n = write_reviews(args.out / "input", args.reviews, args.companies, args.days,
                      DEFAULT_START, seed=0, prefix="year", rows_per_file=args.rows_per_file)
    print(f"generated {n:,} reviews for {args.companies:,} companies over {args.days} days "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    first = run_night(args, model_dir, first_day, args.out / "night1.log")
    print(describe("night 1", first), flush=True)

    second_day = first_day + timedelta(days=1)
    start = datetime.combine(second_day, datetime.min.time(), tzinfo=timezone.utc)
    new = write_reviews(args.out / "input", round(args.reviews * args.new_share),
                        args.companies, 1, start, seed=1, prefix="new",
                        rows_per_file=args.rows_per_file)
    print(f"added {new:,} new reviews dated {second_day}", flush=True)
    second = run_night(args, model_dir, second_day, args.out / "night2.log")
    print(describe("night 2", second), flush=True)
    rerun = run_night(args, model_dir, second_day, args.out / "rerun.log")
    print(f"rerun of night 2: {rerun['status']} in {rerun['wall_s']:.1f} s wall", flush=True)
    print(f"night 2 took {100 * second['wall_s'] / first['wall_s']:.1f}% of night 1's wall time")

    results = {
        "model": "tiny random (2 layers, hidden 32)" if args.tiny else str(args.model),
        "reviews": n, "companies": args.companies, "days": args.days, "new_reviews": new,
        "cpus": os.cpu_count(), "threads": args.threads, "chunk_rows": args.chunk_rows,
        "nights": {"first": first, "second": second, "rerun": rerun},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"results: {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
