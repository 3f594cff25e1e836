"""Write synthetic, unlabeled reviews for scale tests: millions of rows, bounded memory.

    python scripts/generate_reviews.py --rows 1000000 --companies 5000 --days 365 \\
        --out reviews.parquet [--seed 0] [--start 2025-11-21] [--batch-rows 50000]

The format follows the suffix: .parquet, .csv or .jsonl. The texts come from
:mod:`wordofclick.synthetic`: phrase banks put together at random, for benchmarking scoring and
the nightly job only, never for training or evaluation (the labeled corpus is
``wordofclick.datasets``). Prints the rows written, rows per second and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from wordofclick.errors import ConfigError
from wordofclick.synthetic import DEFAULT_START, write_reviews


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="reviews to write")
    parser.add_argument("--companies", type=int, default=5_000, help="number of companies")
    parser.add_argument("--days", type=int, default=365, help="days the dates spread over")
    parser.add_argument(
        "--start",
        default=DEFAULT_START.date().isoformat(),
        help="first day, ISO 8601, UTC (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same rows")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="rows per batch")
    parser.add_argument("--out", required=True, type=Path, help=".parquet, .csv or .jsonl")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    try:
        rows = write_reviews(
            args.out,
            args.rows,
            companies=args.companies,
            days=args.days,
            start=args.start,
            seed=args.seed,
            batch_rows=args.batch_rows,
        )
    except ConfigError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - began
    size = args.out.stat().st_size / 2**20
    print(
        f"wrote {rows:,} synthetic reviews ({args.companies:,} companies, {args.days} days, "
        f"seed {args.seed}) to {args.out} ({size:,.1f} MiB) in {seconds:.1f} s: "
        f"{rows / max(seconds, 1e-9):,.0f} rows/s, peak RSS {peak_rss_mib():,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
