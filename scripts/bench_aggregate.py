"""Benchmark ``aggregate_file`` on synthetic scored reviews: 10,000,000 rows, 5,000 companies.

    python scripts/bench_aggregate.py                      # 10M rows, Parquet in, CSV out
    python scripts/bench_aggregate.py --rows 1000000 --out-format parquet

The rows are generated in chunks with numpy and written to a temporary Parquet file; the
aggregation then runs in a fresh Python process so that its peak RSS is its own, not the
generator's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

AS_OF = "2026-11-20"
END = datetime(2026, 11, 21, tzinfo=timezone.utc)
CHANNELS = np.array(["review_site", "facebook", "twitter", "instagram", "other"])
LABELS = ("service_complaint", "product_complaint", "service_praise", "product_praise")
CHUNK = 1_000_000


def generate(path: Path, rows: int, companies: int, seed: int = 0) -> None:
    """Write ``rows`` scored reviews over 200 days, company sizes skewed as in real review sites."""
    rng = np.random.default_rng(seed)
    names = pa.array([f"company {i:05d}" for i in range(companies)])
    popularity = rng.lognormal(0.0, 1.0, companies)
    popularity /= popularity.sum()
    end_us = int(END.timestamp() * 1_000_000)
    schema = None
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        ids = pc.cast(pa.array(np.arange(start, start + n)), pa.string())
        channel = rng.integers(0, len(CHANNELS), n)
        social = (channel >= 1) & (channel <= 3)
        columns = {
            "review_id": pc.binary_join_element_wise("r", ids, ""),
            "company": names.take(pa.array(rng.choice(companies, n, p=popularity))),
            "created_at": pa.array(
                end_us - rng.integers(0, 200 * 86_400_000_000, n),
                type=pa.timestamp("us", tz="UTC"),
                mask=rng.random(n) < 0.01,
            ),
            "channel": pa.array(CHANNELS[channel], mask=rng.random(n) < 0.05),
            "shares": pa.array(rng.poisson(2, n), mask=~social),
            "likes": pa.array(rng.poisson(20, n), mask=~social),
        }
        for label in LABELS:
            columns[f"prob_{label}"] = pa.array(rng.beta(0.5, 2.0, n).astype(np.float32))
        batch = pa.table(columns)
        if writer is None:
            schema = batch.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(batch.cast(schema))
    assert writer is not None
    writer.close()


def run_aggregation(scores: str, out: str, window: str) -> None:
    """Child process: aggregate and print elapsed seconds and this process's peak RSS as JSON."""
    from wordofclick.aggregate import aggregate_file

    started = time.perf_counter()
    table = aggregate_file(scores, out, as_of=AS_OF, window=window)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "peak_rss_mib": peak_kib / 1024,
                      "companies": table.num_rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--companies", type=int, default=5_000)
    parser.add_argument("--window", default="90d")
    parser.add_argument("--out-format", choices=["csv", "parquet", "json"], default="csv")
    parser.add_argument("--child", nargs=2, metavar=("SCORES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_aggregation(*args.child, window=args.window)
        return

    with tempfile.TemporaryDirectory() as folder:
        scores = Path(folder) / "scored.parquet"
        started = time.perf_counter()
        generate(scores, args.rows, args.companies)
        generated = time.perf_counter() - started
        out = Path(folder) / f"companies.{args.out_format}"
        child = subprocess.run(
            [sys.executable, __file__, "--window", args.window, "--child", str(scores), str(out)],
            check=True, capture_output=True, text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{args.rows:,} rows, {args.companies:,} companies "
            f"({scores.stat().st_size / 2**20:.0f} MiB Parquet, generated in {generated:.1f} s)\n"
            f"aggregate_file -> {out.name}: {result['seconds']:.2f} s, "
            f"peak RSS {result['peak_rss_mib']:.0f} MiB, {result['companies']:,} companies ranked"
        )


if __name__ == "__main__":
    main()
