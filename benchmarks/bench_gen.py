"""Throughput of ``sqlmr gen amplab``: generate a scale into a temporary folder, print MB/s.

    python benchmarks/bench_gen.py                      # SF 0.1 (~2.7 GB), one worker per core
    python benchmarks/bench_gen.py --scale 1 --workers 2 --dir /big/disk
    python benchmarks/bench_gen.py --scale 0.02 --per-table   # also single-core rate per table

MB are 10**6 bytes of uncompressed text.  The data is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmr.gen import amplab  # noqa: E402


def single_core(scale: float, seconds: float = 3.0) -> dict[str, float]:
    """MB/s of one process generating each table in memory (no I/O)."""
    pages, visits = amplab.scale_counts(scale)
    model = amplab.Model(0, pages, visits)
    amplab._tables()
    amplab._heads()
    if pages <= amplab.URL_CACHE_MAX:
        list(model.urls_of(range(0)))
    out = {}
    for table in amplab.TABLES:
        rows = model.rows(table)
        n = nbytes = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds and n < rows:
            end = min(rows, n + amplab.BLOCK_ROWS)
            nbytes += len(model.text(table, n, end))
            n = end
        out[table] = nbytes / 1e6 / (time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--dir", default=None, help="parent folder for the temporary output")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--per-table", action="store_true",
                    help="also measure one core per table, in memory")
    args = ap.parse_args(argv)

    out = tempfile.mkdtemp(prefix="sqlmr-bench-gen-", dir=args.dir)
    try:
        stats = amplab.generate(out, args.scale, files=args.files, gzip=args.gzip,
                                workers=args.workers)
        print(amplab.summary(stats))
        stored = sum(stats[t]["stored_bytes"] for t in amplab.TABLES)
        print(f"scale {args.scale:g}: {stats['bytes'] / 1e6:,.1f} MB text"
              + (f" ({stored / 1e6:,.1f} MB gzip)" if args.gzip else "")
              + f", {stats['workers']} workers on {os.cpu_count()} cores: "
              f"{stats['mb_per_s']:,.1f} MB/s")
    finally:
        if args.keep:
            print(f"kept in {out}")
        else:
            shutil.rmtree(out, ignore_errors=True)
    if args.per_table:
        for table, rate in single_core(args.scale).items():
            print(f"one core, in memory, {table}: {rate:,.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
