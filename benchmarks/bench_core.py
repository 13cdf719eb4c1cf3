"""Core engine benchmark: sqlmr local vs DuckDB, and sqlmr's map loop vs a naive
per-line mapper, measured in one run on the same files.

    python benchmarks/bench_core.py [--scale 0.02] [--data DIR] [--workers 2]

Generates AMPLab data with ``sqlmr gen`` (SF 0.02 is about 530 MB of text, 3 M
visits) unless it is already there, then prints:
- 2a (GROUP BY SUBSTR(sourceIP, 1, 8) … SUM) and 1a-style scans: sqlmr local
  with N worker processes vs DuckDB with N threads, best of 5 alternating runs each;
- per-core map throughput on one uservisits file: sqlmr's generated 2a map task
  vs a mapper written like the 2016 Lambda MapReduce reference architecture's
  (``line.split(',')``, dict update);
- 2a whole-process to a file: ``sqlmr -f queries/2a.sql --format csv --output
  FILE`` vs a process running DuckDB's ``COPY (2a) TO 'FILE'`` (process start,
  planning and writing every row included), best of N alternating runs;
- the wall time of a tiny query through ``sqlmr -e`` (process start included).
Targets: 2a ≤ 3x DuckDB in process and whole-process to a file; map
throughput ≥ 1.2x naive; tiny query ≤ 1 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


QUERIES = {
    "2a": "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uservisits GROUP BY SUBSTR(sourceIP, 1, 8)",
    "1a-style scan (uservisits)": "SELECT sourceIP, adRevenue FROM uservisits WHERE adRevenue > 0.999",
    "1a (rankings)": "SELECT pageURL, pageRank FROM rankings WHERE pageRank > 1000",
}


def best(fn, runs: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def naive_map(path: str, out_path: str) -> dict:
    """The 2016 AWS Lambda MapReduce reference architecture's mapper for
    query 2a (its ``mapper.py``), ported to Python 3 line for line: read the
    whole object, split every line on ',', update a dict, write it as JSON."""
    import json
    output: dict = {}
    line_count = 0
    with open(path) as f:
        contents = f.read()
    for line in contents.split("\n")[:-1]:
        line_count += 1
        try:
            data = line.split(",")
            src_ip = data[0][:8]
            if src_ip not in output:
                output[src_ip] = 0
            output[src_ip] += float(data[3])
        except Exception as e:  # noqa: BLE001 — as the original
            print(e)
    with open(out_path, "w") as f:
        f.write(json.dumps(output))
    return output


def best_cpu(fn, runs: int = 5) -> float:
    """Least CPU time of this process over ``runs`` (less noisy than wall time
    on a shared machine; both mappers run in this one process)."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def phases(workers: int, sql: str, runs: int = 3) -> None:
    """Where one query's wall time goes: each phase from its first progress
    report to its last, then reading the result rows (fastest of ``runs``)."""
    from sqlmr.config import Settings
    from sqlmr.session import Session

    marks: dict[str, list[float]] = {}

    def clock():
        def report(label: str, done: int, total: int, nbytes: int) -> None:
            marks.setdefault(label, [time.perf_counter(), 0.0])[1] = time.perf_counter()
        return report

    session = Session(Settings(workers=workers, timing=False), progress=clock)
    best_run: tuple | None = None
    for _ in range(runs + 1):  # the first run warms the pool
        marks.clear()
        t0 = time.perf_counter()
        res = list(session.execute(sql))[0]
        t1 = time.perf_counter()
        try:
            rows = len(list(res.rows))
        finally:
            res.close()
        t2 = time.perf_counter()
        run = (t2 - t0, [(k, b - a) for k, (a, b) in marks.items()], t2 - t1, res.stats, rows)
        if best_run is None or run[0] < best_run[0]:
            best_run = run
    session.close()
    total, spans, read, stats, rows = best_run
    parts = ", ".join(f"{label} {secs:.2f} s" for label, secs in spans)
    print(f"2a phases (fastest of {runs}): {total:.2f} s = {parts}, reading {rows:,} rows {read:.2f} s; "
          f"{stats.map_tasks} map + {stats.reduce_tasks} reduce tasks, {stats.task_seconds:.2f} task-s, "
          f"{stats.counters.get('rows_passed_through', 0):,} rows passed through map-side aggregation\n")


# DuckDB's side of the whole-process figure: a fresh process that opens the
# same files as views and copies 2a's result to a CSV file.
DUCKDB_COPY = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from _common import duckdb_amplab
con = duckdb_amplab(Path(sys.argv[2]), int(sys.argv[3]))
con.execute("COPY (" + sys.argv[4] + ") TO '" + sys.argv[5] + "' (HEADER, DELIMITER ',')")
"""


def whole_process(data: Path, workers: int, runs: int) -> float:
    """2a from process start to the last row in a CSV file: the ``sqlmr``
    command vs a DuckDB ``COPY … TO`` process, best of ``runs`` alternating
    runs each; prints both and returns the ratio.  Uses this process's
    $SQLMR_HOME (built-in tables at ``data``)."""
    out = Path(tempfile.mkdtemp(prefix="sqlmr-bench-out-"))
    sqlmr_bin = shutil.which("sqlmr", path=str(Path(sys.executable).parent))
    cli = [sqlmr_bin] if sqlmr_bin else [sys.executable, "-m", "sqlmr"]
    sqlmr_cmd = cli + ["-f", str(REPO / "queries" / "2a.sql"), "--format", "csv",
                       "--output", str(out / "sqlmr.csv"), "--workers", str(workers)]
    duck_cmd = [sys.executable, "-c", DUCKDB_COPY, str(Path(__file__).parent), str(data),
                str(workers), QUERIES["2a"], str(out / "duckdb.csv")]

    cpu = {"sqlmr": float("inf"), "duckdb": float("inf")}

    def timed(cmd: list[str], who: str = "") -> float:
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if who:  # CPU of the process and every process it waited for (sqlmr's workers)
            used = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
            cpu[who] = min(cpu[who], used)
        return t

    t_s = t_d = float("inf")
    try:
        for _ in range(runs):
            t_s = min(t_s, timed(sqlmr_cmd, "sqlmr"))
            t_d = min(t_d, timed(duck_cmd, "duckdb"))
        with open(out / "sqlmr.csv", "rb") as a, open(out / "duckdb.csv", "rb") as b:
            rows = sum(1 for _ in a) - 1
            assert rows == sum(1 for _ in b) - 1, "sqlmr and DuckDB wrote different row counts"
        size = (out / "sqlmr.csv").stat().st_size
    finally:
        shutil.rmtree(out, ignore_errors=True)
    start = min(timed([sys.executable, "-c", "import sqlmr.cli"]) for _ in range(runs))
    bare = min(timed([sys.executable, "-c", "pass"]) for _ in range(runs))
    print(f"\n2a whole process to a CSV file ({rows:,} rows, {size / 1e6:.0f} MB; best of {runs}):")
    print(f"  {' '.join(['sqlmr'] + sqlmr_cmd[len(cli):])}: {t_s:.2f} s "
          f"(CPU {cpu['sqlmr']:.2f} s, workers included)")
    print(f"  python + DuckDB COPY (2a) TO 'FILE' (HEADER): {t_d:.2f} s (CPU {cpu['duckdb']:.2f} s)")
    print(f"  ratio: {t_s / t_d:.2f}x; of sqlmr's time, process start: python {bare:.2f} s, "
          f"import sqlmr.cli {start - bare:.2f} s")
    return t_s / t_d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--data", default=str(REPO / "bench-data"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only-whole-process", action="store_true",
                    help="measure only 2a whole-process to a file")
    args = ap.parse_args()

    from compiler.job import compile_select
    from runtime import events, storage
    from runtime.handler import handle
    from sqlmr.config import Settings
    from _common import amplab_data, duckdb_amplab, isolated_home, table_mb
    from sqlmr.session import Session

    data = amplab_data(args.data, args.scale, args.workers)
    print(f"data: uservisits {table_mb(data, 'uservisits'):.0f} MB, rankings "
          f"{table_mb(data, 'rankings'):.0f} MB; {args.workers} workers / threads; best of {args.runs}\n")
    isolated_home(data)
    if args.only_whole_process:
        print(f"target: whole process <= 3x DuckDB -> {whole_process(data, args.workers, args.runs):.2f}x")
        return 0
    session = Session(Settings(workers=args.workers, timing=False))
    con = duckdb_amplab(data, args.workers)

    def run_sqlmr(sql):
        # every result row materialised in a list, as DuckDB's fetchall() does
        res = list(session.execute(sql))[0]
        try:
            n = len(list(res.rows))
        finally:
            res.close()
        return n

    phases(args.workers, QUERIES["2a"])

    print(f"{'query':30} {'sqlmr s':>9} {'duckdb s':>9} {'ratio':>7} {'rows':>10}")
    ratios = {}
    for name, sql in QUERIES.items():
        run_sqlmr(sql)  # warm the pool and the page cache
        # runs alternate between the two engines, so a noisy spell on the
        # shared machine falls on both; each side's best run counts
        t_s = t_d = float("inf")
        for _ in range(args.runs):
            t, n_s = best(lambda: run_sqlmr(sql), 1)
            t_s = min(t_s, t)
            t, rows = best(lambda: con.execute(sql).fetchall(), 1)
            t_d = min(t_d, t)
        assert n_s == len(rows), f"{name}: sqlmr {n_s} rows vs duckdb {len(rows)}"
        ratios[name] = t_s / t_d
        print(f"{name:30} {t_s:9.2f} {t_d:9.2f} {t_s / t_d:6.2f}x {n_s:10,}")
    session.close()
    ratios["whole"] = whole_process(data, args.workers, args.runs)

    # Map throughput on one core: the generated 2a map task vs the naive mapper.
    files = sorted(p for p in (data / "uservisits").iterdir() if p.is_file())
    f0 = str(files[0])
    size = os.path.getsize(f0)
    job = compile_select(QUERIES["2a"], Session(Settings()).catalog.tables())
    scratch = tempfile.mkdtemp(prefix="sqlmr-map-")
    code_uri = "file://" + os.path.join(scratch, "job.py")
    storage.write_bytes(code_uri, job.source.encode())
    attempt = iter(range(1000))

    def sqlmr_map():
        # the whole task as a worker runs it: load code, read the split, map,
        # partition, write the shuffle file
        handle(events.map_event(job="bench", stage=1, task=0, attempt=next(attempt),
                                input={"splits": [{"uri": "file://" + f0, "start": 0, "end": size}]},
                                partitions=8, work="file://" + scratch, code={"uri": code_uri,
                                "sha256": job.sha256}, entry="s1_map"))

    t_m = best_cpu(sqlmr_map, max(5, args.runs))
    t_n = best_cpu(lambda: naive_map(f0, os.path.join(scratch, "naive.json")), max(5, args.runs))
    print(f"\nmap throughput, one core (CPU seconds, best of {max(5, args.runs)}), "
          f"{size / 1e6:.0f} MB file, both writing their output:")
    print(f"  sqlmr generated 2a map (incl. partitioned output): {size / t_m / 1e6:6.1f} MB/s")
    print(f"  2016 reference-architecture mapper (split(','), dict update): {size / t_n / 1e6:6.1f} MB/s")
    print(f"  ratio: {t_n / t_m:.2f}x")

    # A tiny query through the command line, process start included.
    tiny = REPO.parent / "shared" / "amplab-tiny" / "uservisits"
    if tiny.is_dir():
        env = dict(os.environ, SQLMR_HOME=tempfile.mkdtemp(prefix="sqlmr-tiny-"))
        cols = ("sourceIP STRING, destURL STRING, visitDate DATE, adRevenue DOUBLE, userAgent STRING, "
                "countryCode STRING, languageCode STRING, searchWord STRING, duration INT")
        subprocess.run([sys.executable, "-m", "sqlmr", "-e",
                        f"CREATE EXTERNAL TABLE uv ({cols}) LOCATION '{tiny}'"], env=env, check=True,
                       capture_output=True)

        def cli():
            subprocess.run([sys.executable, "-m", "sqlmr", "--format", "csv", "-e",
                            "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)"],
                           env=env, check=True, capture_output=True)
        t_c, _ = best(cli, args.runs)
        print(f"\ntiny 2a through `sqlmr -e` (10,000 rows, process start included): {t_c:.2f} s wall")

    print("\ntargets: 2a <= 3x DuckDB -> {:.2f}x in process, {:.2f}x whole process to a CSV file; "
          "map >= 1.2x naive -> {:.2f}x".format(ratios["2a"], ratios["whole"], t_n / t_m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
