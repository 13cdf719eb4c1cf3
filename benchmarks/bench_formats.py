"""Table formats benchmark: sqlmr local vs DuckDB on quoted CSV and JSON lines.

    python benchmarks/bench_formats.py [MB] [--workers 2] [--runs 3] [--keep DIR]

Generates MB (default 200) of uservisits-like rows twice in a temporary
folder (quoted CSV with a header line, several files; and JSON lines), then
times, in one run on the same files, ``SELECT SUBSTR(sourceIP, 1, 8),
SUM(adRevenue) … GROUP BY SUBSTR(sourceIP, 1, 8)`` in sqlmr (local backend,
N workers) and in DuckDB (N threads, ``read_csv`` / ``read_json``), best of
``--runs`` alternating runs each, every result row fetched, and prints the
times and ratios.  The answers are checked to have the same row count.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLUMNS = [("sourceIP", "STRING"), ("destURL", "STRING"), ("visitDate", "DATE"),
           ("adRevenue", "DOUBLE"), ("userAgent", "STRING"), ("countryCode", "STRING"),
           ("languageCode", "STRING"), ("searchWord", "STRING"), ("duration", "INT")]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Opera/9.80 (X11; Linux, en)",
          'Bot "crawler", v2', "curl/7.1"]
WORDS = ["alpha", "beta, gamma", 'the "best"', "multi\nline", "delta"]
FILES = 8


def rows(seed: int):
    r = random.Random(seed)
    while True:
        yield [f"{r.randint(1, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}",
               f"http://{r.choice('abcdefgh')}{r.randint(0, 99999)}.com/p?q={r.randint(0, 9)},x",
               f"{r.randint(1980, 2012)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
               f"{r.uniform(0, 1000):.6f}", r.choice(AGENTS), r.choice(["USA", "DEU", "FRA"]),
               r.choice(["en-US", "de-DE"]), r.choice(WORDS), str(r.randint(1, 100))]


def generate(root: Path, megabytes: float) -> tuple[Path, Path]:
    """``root/csv`` and ``root/json``, each about ``megabytes`` MB in FILES files."""
    target = int(megabytes * 2**20 / FILES)
    csv_dir, json_dir = root / "csv", root / "json"
    csv_dir.mkdir(parents=True)
    json_dir.mkdir(parents=True)
    names = [n for n, _ in COLUMNS]
    for i in range(FILES):
        gen = rows(i)
        with open(csv_dir / f"part-{i:05d}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(names)
            while f.tell() < target:
                w.writerows(next(gen) for _ in range(1000))
        gen = rows(i)
        with open(json_dir / f"part-{i:05d}.json", "w") as f:
            while f.tell() < target:
                for _ in range(1000):
                    row = next(gen)
                    obj = dict(zip(names, row))
                    obj["adRevenue"], obj["duration"] = float(row[3]), int(row[8])
                    f.write(json.dumps(obj) + "\n")
    return csv_dir, json_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("megabytes", nargs="?", type=float, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="generate into this folder and keep it")
    args = ap.parse_args()

    import duckdb
    from sqlmr.config import Settings
    from sqlmr.session import Session

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sqlmr-bench-formats-"))
    home = tempfile.mkdtemp(prefix="sqlmr-bench-home-")
    os.environ["SQLMR_HOME"] = home   # a catalog of its own
    try:
        t0 = time.perf_counter()
        csv_dir, json_dir = generate(root, args.megabytes)
        size = {d: sum(p.stat().st_size for p in d.iterdir()) for d in (csv_dir, json_dir)}
        print(f"generated {size[csv_dir] / 2**20:.0f} MB of CSV and {size[json_dir] / 2**20:.0f} "
              f"MB of JSON lines in {time.perf_counter() - t0:.1f} s; {args.workers} workers / "
              f"threads; best of {args.runs}\n")
        session = Session(Settings(workers=args.workers, timing=False))
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        for ddl in (f"CREATE EXTERNAL TABLE uv_csv ({cols}) STORED AS CSV LOCATION '{csv_dir}' "
                    f"TBLPROPERTIES ('skip.header.line.count'='1')",
                    f"CREATE EXTERNAL TABLE uv_json ({cols}) STORED AS JSON LOCATION '{json_dir}'"):
            for r in session.execute(ddl):
                r.close()
        con = duckdb.connect()
        con.execute(f"SET threads TO {args.workers}")
        duck_types = {"STRING": "VARCHAR", "INT": "INTEGER", "DOUBLE": "DOUBLE", "DATE": "DATE"}
        spec = "{" + ", ".join(f"'{n}': '{duck_types[t]}'" for n, t in COLUMNS) + "}"
        con.execute(f"CREATE VIEW uv_csv AS SELECT * FROM read_csv('{csv_dir}/*.csv', header=true, "
                    f"quote='\"', escape='\"', columns={spec}, auto_detect=false)")
        con.execute(f"CREATE VIEW uv_json AS SELECT * FROM read_json('{json_dir}/*.json', "
                    f"format='newline_delimited', columns={spec})")

        def run_sqlmr(sql: str) -> int:
            res = list(session.execute(sql))[-1]
            try:
                return len(list(res.rows))
            finally:
                res.close()

        def run_duckdb(sql: str) -> int:
            return len(con.execute(sql).fetchall())

        run_sqlmr("SELECT COUNT(*) FROM uv_csv")   # start the worker pool
        print(f"{'table':<10}{'MB':>8}{'sqlmr s':>10}{'MB/s':>8}{'duckdb s':>10}{'ratio':>9}{'rows':>10}")
        for table, folder in (("uv_csv", csv_dir), ("uv_json", json_dir)):
            sql = (f"SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM {table} "
                   f"GROUP BY SUBSTR(sourceIP, 1, 8)")
            best = {"sqlmr": float("inf"), "duckdb": float("inf")}
            counts = {}
            for _ in range(args.runs):
                for who, fn in (("sqlmr", run_sqlmr), ("duckdb", run_duckdb)):
                    t = time.perf_counter()
                    counts[who] = fn(sql)
                    best[who] = min(best[who], time.perf_counter() - t)
            assert counts["sqlmr"] == counts["duckdb"], f"{table}: row counts differ: {counts}"
            mb = size[folder] / 2**20
            print(f"{table:<10}{mb:>8.0f}{best['sqlmr']:>10.2f}{mb / best['sqlmr']:>8.1f}"
                  f"{best['duckdb']:>10.2f}{best['sqlmr'] / best['duckdb']:>8.2f}x"
                  f"{counts['sqlmr']:>10,}")
        session.close()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
