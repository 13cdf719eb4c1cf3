"""AMPLab query 3 (join -> aggregate -> top-1) on generated data: sqlmr on the
local backend against DuckDB with the same number of threads.

    python benchmarks/bench_join.py --scale 0.1 --workers 2

Generates the AMPLab tables with ``sqlmr gen``'s model (seed 1) under
``bench-data/sf<scale>`` if they are not there yet, then runs 3a, 3b and 3c
once each: sqlmr with a broadcast join (rankings loaded into a hash table by
every map task over uservisits) and with a reduce-side sort-merge join
(``broadcast_mb = 0``), and DuckDB reading the same files.  By default sqlmr
broadcasts a side below 32 MB: rankings up to scale ~0.03.  Each answer is
checked against DuckDB's; the time ratio printed is from that one run (DuckDB
runs each query once untimed first; that also warms the page cache for both,
and sqlmr's worker pool is started before timing).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))



def query(name: str) -> str:
    return (REPO / "queries" / f"{name}.sql").read_text().split("\n", 1)[1].strip().rstrip(";")


def same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) or isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


class _SubprocessReducers:
    """A backend that runs every task in a fresh Python process (map tasks
    through a pool, each join reducer alone), so each reducer's peak RSS is its
    own."""

    name = "subprocess"

    def __init__(self) -> None:
        self.peaks: list[float] = []

    def run(self, events, progress=None):
        import json
        import subprocess
        out = []
        for e in events:
            code = ("import json, sys, resource; from runtime.handler import handle; "
                    "r = handle(json.loads(sys.stdin.read())); "
                    "r['rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
                    "print(json.dumps(r))")
            p = subprocess.run([sys.executable, "-c", code], input=json.dumps(e), text=True,
                               capture_output=True, cwd=str(REPO), check=True)
            r = json.loads(p.stdout)
            if e["kind"] == "reduce" and e["stage"] == 1:
                self.peaks.append(r["rss_mb"])
            out.append(r)
        return out

    def close(self) -> None:
        pass


def skew(rows_list: list[int]) -> int:
    """Reducer memory on a skewed key: 90% of uservisits on one page."""
    import random

    from sqlmr.config import Settings
    from sqlmr.driver import plan_job, run_job
    from sqlmr.session import Session
    sql = ("SELECT COUNT(*), SUM(u.adRevenue), MAX(r.pageRank) FROM uv u "
           "JOIN rk r ON u.destURL = r.pageURL")
    print(f"{'visits':>10} {'hot-key rows':>13} {'shuffled':>9} {'reducer peak RSS':>17} "
          f"{'max buffered':>13}")
    for n in rows_list:
        home = tempfile.mkdtemp(prefix="sqlmr-bench-skew-")
        os.environ["SQLMR_HOME"] = home
        rnd = random.Random(1)
        d = Path(home) / "skew"
        (d / "rk").mkdir(parents=True)
        (d / "uv").mkdir()
        pages = ["p%06d" % i for i in range(10_000)]
        (d / "rk" / "p0").write_text("".join(f"{p},{rnd.randint(1, 99)},1\n" for p in pages)
                                     + "hot,7,1\nhot,9,2\n")
        hot = 0
        for f in range(4):
            with open(d / "uv" / f"p{f}", "w") as out:
                for _ in range(n // 4):
                    h = rnd.random() < 0.9
                    hot += h
                    out.write(f"1.2.3.4,{'hot' if h else rnd.choice(pages)},2001-01-01,"
                              f"{rnd.random()!r},ua,USA,en,w,3\n")
        s = Session(Settings(workers=2, broadcast_mb=0, reducers=2, split_mb=256))
        list(s.execute(f"CREATE EXTERNAL TABLE rk (pageURL STRING, pageRank INT, avgDuration INT) "
                       f"LOCATION '{d / 'rk'}'; CREATE EXTERNAL TABLE uv (sourceIP STRING, "
                       f"destURL STRING, visitDate DATE, adRevenue DOUBLE, userAgent STRING, "
                       f"countryCode STRING, languageCode STRING, searchWord STRING, "
                       f"duration INT) LOCATION '{d / 'uv'}'"))
        job = s.compile(sql)
        backend = _SubprocessReducers()
        res = run_job(job, s.settings, backend, s.scratch(), plans=plan_job(job, s.settings))
        rows = list(res.rows())
        res.close()
        s.close()
        total = n // 4 * 4
        assert rows[0][0] == 2 * hot + (total - hot), rows  # 'hot' is listed twice in rk
        print(f"{n:10,} {hot:13,} {res.stats.bytes_shuffled / 1e6:8.1f}M "
              f"{max(backend.peaks):15.1f}MB {res.stats.counters.get('max_buffered', 0):13}",
              flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--data", default=str(REPO / "bench-data"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--queries", default="3a,3b,3c")
    ap.add_argument("--skew", default="",
                    help="instead: reducer peak memory of a skewed reduce-side join at these "
                         "uservisits row counts, e.g. 200000,2000000")
    ap.add_argument("--modes", default="broadcast,reduce-side",
                    help="join strategies to run: broadcast (broadcast_mb = 4096), "
                         "reduce-side (broadcast_mb = 0), auto (the default 32 MB rule)")
    args = ap.parse_args()
    if args.skew:
        return skew([int(x) for x in args.skew.split(",")])

    from _common import amplab_data, duckdb_amplab, isolated_home, table_mb
    from sqlmr.config import Settings
    from sqlmr.session import Session

    data = amplab_data(args.data, args.scale, args.workers)
    print(f"data: uservisits {table_mb(data, 'uservisits'):,.0f} MB, rankings "
          f"{table_mb(data, 'rankings'):,.0f} MB (scale {args.scale}); {args.workers} sqlmr workers / "
          f"{args.workers} DuckDB threads\n")
    isolated_home(data, "sqlmr-bench-join-")
    con = duckdb_amplab(data, args.workers)

    sessions = {}
    for mode in args.modes.split(","):
        settings = Settings(workers=args.workers, timing=False)
        if mode == "reduce-side":
            settings.broadcast_mb = 0
        elif mode == "broadcast":
            settings.broadcast_mb = 4096
        sessions[mode] = Session(settings)

    def run_sqlmr(session, sql):
        t0 = time.perf_counter()
        res = list(session.execute(sql))[0]
        try:
            rows = [list(r) for r in res.rows]
        finally:
            res.close()
        return time.perf_counter() - t0, rows, res.stats

    def join_kind(session, sql) -> str:
        text = list(session.execute("EXPLAIN " + sql))[0].message
        return "broadcast" if "Map Join Operator" in text else "reduce-side"

    # warm the page cache and the worker pools
    con.execute("SELECT COUNT(*), SUM(adRevenue) FROM uservisits").fetchall()
    for s in sessions.values():
        run_sqlmr(s, "SELECT COUNT(*) FROM rankings")

    print(f"{'query':6} {'join':12} {'sqlmr s':>8} {'duckdb s':>9} {'ratio':>7} {'MB/s':>6} "
          f"{'tasks':>6} {'shuffled':>9} {'max buffered':>13}  answer")
    ratios = []
    for name in args.queries.split(","):
        sql = query(name)
        con.execute(sql).fetchall()          # DuckDB timed warm, like sqlmr's pool
        t0 = time.perf_counter()
        want = [list(r) for r in con.execute(sql).fetchall()]
        t_duck = time.perf_counter() - t0
        for mode, session in sessions.items():
            kind = join_kind(session, sql)
            t_s, got, st = run_sqlmr(session, sql)
            ok = len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
            ratio = t_s / t_duck
            ratios.append((name, kind, ratio))
            buffered = st.counters.get("max_buffered")
            print(f"{name:6} {kind:12} {t_s:8.2f} {t_duck:9.2f} {ratio:6.1f}x "
                  f"{(table_mb(data, 'uservisits') + table_mb(data, 'rankings')) / t_s:6.0f} {st.map_tasks + st.reduce_tasks:6} "
                  f"{st.bytes_shuffled / 1e6:8.1f}M {'' if buffered is None else buffered:>13}  "
                  f"{got[0] if got else None}{'' if ok else '  != DuckDB ' + str(want)}",
                  flush=True)
            if not ok:
                return 1
    for s in sessions.values():
        s.close()
    print("\nratio = sqlmr seconds / DuckDB seconds, one timed run each, same files, "
          f"{args.workers} processes vs {args.workers} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
