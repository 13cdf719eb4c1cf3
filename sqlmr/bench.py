"""``sqlmr bench``: the AMPLab Big Data Benchmark table, reproduced.

Generates (or reuses) AMPLab data at a scale factor under
``$SQLMR_HOME/data/amplab-sf<SF>/``, runs the benchmark's queries
(``queries/1a.sql`` ... ``3c.sql`` and ``4.sql``) over it ``--runs`` times in a
session whose ``rankings`` / ``uservisits`` / ``documents`` point there (the
user's default dataset and catalog are left alone), checks every answer's row
count against the generator's model, and prints one table per query with:

- **published**: the benchmark's 5nodes response times of Redshift, Impala,
  Shark, Hive and Tez, and the 2016 Lambda MapReduce reference architecture's
  time and cost (:mod:`sqlmr.bench_published`); blank where a system did not
  run the query;
- **measured**: sqlmr here at that scale: median wall time, tasks, bytes read,
  the Lambda cost of the measured task seconds and Athena's price for the same
  bytes;
- **modeled**: sqlmr projected to the 5nodes data on Lambda
  (:mod:`sqlmr.bench_model`, every parameter a flag), from each phase's
  task CPU seconds in its fastest run (:func:`_least_phases`).

In a terminal the table keeps the columns that fit the screen
(:mod:`sqlmr.bench_table`); ``--wide`` and the markdown, CSV and JSON formats
have every column; ``--plot`` is :mod:`sqlmr.bench_plot`.

A query whose SQL file is missing or does not compile yet ("not supported
yet") is listed as not yet supported, never dropped; the check runs every time,
so the row fills in when the compiler learns the query.

A query file of several statements (query 4: two CREATE TABLE … AS SELECT,
each after a DROP TABLE IF EXISTS) runs as a script: its time is all of its
statements', its tables live in a scratch warehouse for the run only, and the
row count checked is the last table's.  Its projection chains the statements:
a statement reading an earlier one's table reads what that one wrote, scaled.

Exit status: 0 when every query that ran gave the expected row count, 1 when a
count was wrong or a query failed, 2 on a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from compiler.errors import SqlError, UnsupportedError
from runtime import storage
from sqlmr import bench_model as bm
from sqlmr import bench_published as pub
from sqlmr import cost as costs
from sqlmr import prices
from sqlmr import shuffle_plan, splits
from sqlmr.catalog import Catalog, builtin_tables
from sqlmr.config import Settings, home, load_settings
from sqlmr.render import size_text, table_text, write_rows
from sqlmr.session import Session, StatementResult
from sqlmr.transform import NAME_PREFIX as TRANSFORM_TABLE

AMPLAB_QUERIES = pub.QUERIES
TABLES = ("rankings", "uservisits")
#: tables a query needs besides TABLES
QUERY_TABLES = {"4": ("documents",)}


def data_tables(names: list[str]) -> tuple[str, ...]:
    """The tables the queries ``names`` read (documents only for query 4, being
    the largest).

    >>> data_tables(["1a"]), data_tables(["1a", "4"])
    (('rankings', 'uservisits'), ('rankings', 'uservisits', 'documents'))
    """
    extra = [t for q in names for t in QUERY_TABLES.get(q, ())]
    return TABLES + tuple(dict.fromkeys(extra))

# (LambdaModel field, flag, type, help) -- the model's parameters as flags
MODEL_FLAGS: list[tuple[str, str, type, str]] = [
    ("functions", "--functions", int, "concurrent Lambda functions (default 1000: the "
                                      "default regional concurrency limit)"),
    ("memory_mb", "--memory", int, "function memory in MB (default 1769 = 1 vCPU); also the "
                                   "memory the measured Lambda cost assumes"),
    ("architecture", "--arch", str, "arm64 or x86_64 (default arm64)"),
    ("s3_mbps", "--s3-mbps", float, "S3 read/write MB/s per function (default 90; an "
                                    "assumption, not measured here)"),
    ("request_latency_s", "--request-latency", float,
     "seconds per S3 request or invoke (default 0.03; an assumption)"),
    ("cold_start_s", "--cold-start", float, "cold start of a new environment, s (default 0.5; "
                                            "an assumption)"),
    ("burst", "--burst", int, "environments Lambda starts at once (default 1000)"),
    ("scale_per_10s", "--scale-rate", int, "new environments per 10 s after the burst "
                                           "(default 1000, Lambda's scaling rate)"),
    ("cpu_factor", "--cpu-factor", float, "Lambda vCPU seconds per CPU second measured here "
                                          "(default 1.0; an assumption)"),
    ("split_mb", "--model-split-mb", float, "map split on Lambda, MiB, as SET split_mb "
                                            "(default 0: chosen per stage, as sqlmr plans)"),
    ("shuffle", "--shuffle", str, "auto, direct or combine, as SET shuffle (default auto)"),
    ("get_rate", "--get-rate", float, "S3 GETs per second per prefix (default 5500)"),
    ("put_rate", "--put-rate", float, "S3 PUTs per second per prefix (default 3500)"),
]

METAVARS = {"memory_mb": "MB", "architecture": "ARCH", "s3_mbps": "MB/S",
            "request_latency_s": "S", "cold_start_s": "S", "cpu_factor": "X",
            "split_mb": "MIB", "shuffle": "auto|direct|combine"}


# ------------------------------------------------------------------ arguments

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``sqlmr bench``."""
    p.add_argument("--scale", type=float, default=0.001, metavar="SF",
                   help="scale factor of the data (default 0.001, ~27 MB; 1 = the benchmark's "
                        "1node size, 26.7 GB)")
    p.add_argument("--queries", metavar="1a,2a,…",
                   help="queries to run (default: all of 1a-3c and 4)")
    p.add_argument("--backend", choices=["local", "lambda"],
                   help="where tasks run (default local)")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="runs per query; the table shows the median (default 3)")
    p.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table",
                   help="output format (table: as many columns as fit the terminal; "
                        "markdown, csv, json: every column; csv/json: only data on stdout)")
    p.add_argument("--wide", action="store_true",
                   help="table: every column and each query's modeled phases, however wide "
                        "(through the pager on a terminal)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw time and cost per query on the 5nodes data, published vs "
                        "sqlmr modeled, and the measured times apart (needs: pip install "
                        "'sqlmr[plot]')")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: one per core)")
    p.add_argument("--data", metavar="DIR|s3://…",
                   help="where the data of that scale lives or is generated (default "
                        "$SQLMR_HOME/data/amplab-sf<SF>; the lambda backend needs s3://)")
    g = p.add_argument_group("model", "the projection to the 5nodes data on Lambda "
                                      "(see sqlmr/bench_model.py)")
    for name, flag, typ, text in MODEL_FLAGS:
        g.add_argument(flag, dest=f"model_{name}", type=typ, default=None,
                       metavar=METAVARS.get(name, "N"), help=text)


def model_from_args(args: argparse.Namespace) -> bm.LambdaModel:
    changes = {name: getattr(args, f"model_{name}") for name, *_ in MODEL_FLAGS
               if getattr(args, f"model_{name}", None) is not None}
    return replace(bm.LambdaModel(), **changes)


# --------------------------------------------------------------------- data

def data_location(scale: float, data: str | None) -> str:
    """Where the data of ``scale`` lives: ``data`` or ``$SQLMR_HOME/data/amplab-sf<SF>``."""
    if data:
        return data if storage.is_s3(data) else str(Path(data).expanduser().resolve())
    return str(home() / "data" / f"amplab-sf{scale:g}")


def ensure_data(location: str, scale: float, err: IO[str],
                tables: tuple[str, ...] = TABLES) -> bool:
    """Generate the ``tables`` at ``location`` unless they are there; True if generated."""
    from sqlmr.gen import amplab
    if amplab.has_data(location, tables):
        return False
    if storage.is_s3(location):
        missing = [t for t in tables if not amplab.has_data(location, (t,))]
        print(f"sqlmr bench: generating AMPLab {', '.join(missing)} (scale {scale:g}) at "
              f"{location}", file=err, flush=True)
        amplab.generate(location, scale, seed=0, tables=missing)
        return True
    return amplab.ensure_default(location, scale, tables)


def table_sizes(location: str, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    out = {}
    for t in tables:
        out[t] = sum(n for _, n in storage.list_files(_join(location, t)))
    return out


def _join(location: str, name: str) -> str:
    return storage.join(location, name) if storage.is_s3(location) else \
        storage.to_uri(os.path.join(location, name))


class BenchCatalog(Catalog):
    """The built-in tables at the benchmark's data, and the tables a query's
    statements create, in memory: the user's catalog is neither read nor written."""

    def __init__(self, location: str) -> None:
        super().__init__(Path(os.devnull))
        self.location = location
        self.created: dict[str, Any] = {}

    def create(self, table, if_not_exists: bool = False, replace: bool = False) -> bool:
        from sqlmr.catalog import check_table_name
        key = check_table_name(table.name).lower()
        if key in builtin_tables():
            raise SqlError(f"'{table.name}' is a table of the benchmark; choose another name")
        if key in self.created and not replace:
            if if_not_exists:
                return False
            raise SqlError(f"table '{table.name}' already exists")
        self.created[key] = table
        return True

    def drop(self, name: str, if_exists: bool = False):
        key = name.lower()
        if key in self.created:
            return self.created.pop(key)
        if key in builtin_tables():
            raise SqlError(f"'{name}' is a table of the benchmark and cannot be dropped")
        if if_exists:
            return None
        raise SqlError(f"table '{name}' does not exist")

    def _load_user(self) -> dict:
        return {}

    def _save_user(self, tables: dict) -> None:
        raise SqlError("sqlmr bench does not change the catalog")

    def _locked(self):  # no lock file beside os.devnull: every change is refused
        raise SqlError("sqlmr bench does not change the catalog")

    def tables(self) -> dict:
        out = {name: replace(t, location=_join(self.location, name), builtin=False)
               for name, t in builtin_tables().items()}
        out.update(self.created)
        return out


class _Recorder:
    """A backend that reports every phase it runs (events and results)."""

    def __init__(self, inner: Any, sink) -> None:
        self.inner = inner
        self.sink = sink

    def run(self, events: list[dict], progress=None) -> list[dict]:
        results = self.inner.run(events, progress)
        self.sink(events, results)
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BenchSession(Session):
    """A session over the benchmark's data that records each phase's tasks."""

    def __init__(self, settings: Settings, location: str) -> None:
        super().__init__(settings, BenchCatalog(location))
        self.phases: list[bm.Measured] = []
        self._recorder: _Recorder | None = None

    def backend(self):
        inner = super().backend()
        if self._recorder is None or self._recorder.inner is not inner:
            self._recorder = _Recorder(inner, self._record)
        return self._recorder

    def _record(self, events: list[dict], results: list[dict]) -> None:
        groups: dict[str, bm.Measured] = {}
        for ev, r in zip(events, results):
            inp = ev.get("input", {})
            sub = ("table" if "splits" in inp else "rows" if "rows" in inp
                   else ("add" if inp.get("merge") else "combine") if ev["kind"] == "combine"
                   else "shuffle")
            m = groups.get(sub)
            if m is None:
                m = groups[sub] = bm.Measured(ev["stage"], ev["kind"], 0, 0.0, 0, 0,
                                              adds=sub == "add")
            if (ev.get("params") or {}).get("broadcast"):
                m.broadcast = True
            m.tasks += 1
            # CPU seconds when the runtime reports them (not inflated by other load on
            # this machine), else the task's wall seconds
            m.seconds += float(r.get("cpu_seconds", r.get("seconds", 0.0)))
            m.bytes_in += int(r.get("bytes_in", 0))
            m.bytes_out += int(r.get("bytes_out", 0))
            m.rows_out += int(r.get("rows_out", 0))
            m.shuffle_bytes += int((r.get("counters") or {}).get("shuffle_bytes_in", 0))
            for s in inp.get("splits", []):
                t = str(s.get("table", "?")).lower()
                if t.startswith(TRANSFORM_TABLE):   # a new name each run: one key for all
                    t = TRANSFORM_TABLE
                m.table_bytes[t] = m.table_bytes.get(t, 0) + int(s["end"]) - int(s["start"])
        for sub in ("table", "rows", "combine", "add", "shuffle"):
            if sub in groups:
                self.phases.append(groups[sub])


# ------------------------------------------------------------------- queries

def queries_dir() -> Path:
    here = Path(__file__).resolve()
    for d in (here.parents[1] / "queries", here.parent / "queries"):
        if d.is_dir():
            return d
    return here.parents[1] / "queries"


def query_names(spec: str | None) -> list[str]:
    """The queries to run: AMPLab's 1a-3c and 4 by default, else the listed names."""
    if not spec:
        return list(AMPLAB_QUERIES)
    names = [q.strip().lower() for q in spec.split(",") if q.strip()]
    bad = [q for q in names if q not in AMPLAB_QUERIES and not (queries_dir() / f"{q}.sql").is_file()]
    if bad:
        raise ValueError(f"unknown quer{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)} "
                         f"(known: {', '.join(AMPLAB_QUERIES)})")
    return names


def query_statements(name: str) -> list[str] | None:
    """The statements of ``queries/<name>.sql`` (comments dropped), or None if absent."""
    from compiler.statements import split_statements
    path = queries_dir() / f"{name}.sql"
    if not path.is_file():
        return None
    return [s.text.rstrip().rstrip(";") for s in
            split_statements(path.read_text(encoding="utf-8"))]


def query_sql(name: str) -> str | None:
    """The statement of ``queries/<name>.sql`` (comments dropped), or None if absent;
    a file of several statements is the script of them."""
    stmts = query_statements(name)
    return ";\n".join(stmts) if stmts else None


def expected_rows(query: str, scale: float) -> tuple[float, float] | None:
    """(expected rows, tolerance) of a benchmark query at ``scale`` from the generator's
    model; Q3 returns one row (ORDER BY … LIMIT 1) whenever its join is not empty.

    >>> e, tol = expected_rows("1b", 1); round(e), 0 < tol < 5000
    (666516, True)
    >>> expected_rows("3a", 0.001), expected_rows("x", 1)
    ((1.0, 0.0), None)

    Query 4's url_counts_total has a row per page linked or crawled: at tiny scale
    the crawl has more pages than rankings, so every one of its 1,200 pages.

    >>> expected_rows("4", 1200 / 18e6)
    (1200.0, 0.0)
    """
    from sqlmr.gen import amplab
    if query == "4":
        return _q4_rows(*amplab.scale_counts(scale)[:1], scale)
    counts = amplab.expected_counts(scale)
    if query in ("1a", "1b", "1c", "2a", "2b", "2c"):
        return counts[query], amplab.tolerance(query, scale)
    if query in ("3a", "3b", "3c"):
        return (1.0 if counts["join_" + query] >= 1 else 0.0), 0.0
    return None


def target_rows(query: str) -> float | None:
    """Rows of a benchmark query's result on the 5nodes data, from the generator's model.

    >>> round(target_rows("2a") / 1e6, 2), target_rows("3a"), target_rows("x")
    (2.07, 1.0, None)
    """
    if query in ("3a", "3b", "3c"):
        return 1.0
    if query == "4":
        return _q4_rows(bm.FIVENODES_ROWS["rankings"], 5.0)[0]
    if query not in ("1a", "1b", "1c", "2a", "2b", "2c"):
        return None
    return _fivenodes_counts()[query]


@lru_cache(maxsize=8)
def _q4_rows(pages: int, scale: float) -> tuple[float, float]:
    """(expected rows, tolerance: 5 sd + 1) of query 4's url_counts_total."""
    from sqlmr.gen import amplab_documents as docs
    mean, var = docs.model_rows(pages, docs.page_count(scale))
    return mean, (5 * math.sqrt(var) + 1 if var > 0 else 0.0)


@lru_cache(maxsize=1)
def _fivenodes_counts() -> dict[str, float]:
    from sqlmr.gen import amplab
    return amplab.model_counts(bm.FIVENODES_ROWS["rankings"], bm.FIVENODES_ROWS["uservisits"])


def check_count(rows: int, expected: tuple[float, float] | None) -> bool | None:
    """True/False when ``rows`` is within expected ± tolerance; None without a model.

    >>> check_count(45, (45.3, 9.0)), check_count(60, (45.3, 9.0)), check_count(3, None)
    (True, False, None)
    """
    if expected is None:
        return None
    e, tol = expected
    return abs(rows - e) <= tol


# ------------------------------------------------------------------ results

@dataclass
class QueryRun:
    query: str
    status: str = "ok"                 # ok | wrong | not yet supported | error
    reason: str = ""
    sql: str = ""
    tables: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    rows: int | None = None
    expected: tuple[float, float] | None = None
    ok: bool | None = None
    map_tasks: int = 0
    reduce_tasks: int = 0
    bytes_read: int = 0
    bytes_shuffled: int = 0
    task_seconds: float = 0.0
    lambda_usd: float | None = None
    athena_usd: float | None = None
    projection: bm.Projection | None = None
    projected_bytes: float = 0.0
    measured_partitions: int = 0       # partitions the measured maps wrote when set (0: driver's)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def _crawl_text(ctx: dict) -> str:
    """`` + N documents pages`` when the run generated the crawl, else nothing."""
    pages = ctx.get("documents_pages")
    return f" + {pages:,} documents pages" if pages else ""


def _unsupported(e: SqlError) -> bool:
    """Whether an error says "not supported yet" (the compiler re-raises some
    UnsupportedErrors as plain SqlErrors when it places them in the statement)."""
    return isinstance(e, UnsupportedError) or e.message.startswith("not supported yet:")


def _single_phases(job) -> tuple[set[int], set[int]]:
    """Stages whose rows-map is one task by design, and stages with one reducer."""
    one_map, one_reduce = set(), set()
    for st in getattr(job, "stages", []) or []:
        sid = getattr(st, "id", None)
        if getattr(st, "reducers", None) == "one":
            one_reduce.add(sid)
        for ph in getattr(st, "maps", []) or []:
            inp = getattr(ph, "input", None)
            if getattr(inp, "merge", False) or getattr(inp, "limit", None) is not None:
                one_map.add(sid)
    return one_map, one_reduce


def adding_stages(stages: list, result_rows: float | None) -> dict[int, float | None]:
    """The stages whose combiners add each key's numbers (a SUM or COUNT by
    one key), with their groups at the target: the result's rows for the
    last stage (2a-2c: the GROUP BY is the result), unknown for the others."""
    out: dict[int, float | None] = {}
    for i, st in enumerate(stages):
        if getattr(st, "adds_partial_numbers", False):
            out[st.id] = result_rows if i == len(stages) - 1 else None
    return out


def _least_phases(runs: list[list[bm.Measured]]) -> list[bm.Measured]:
    """One phase list: the first run's shape, each phase's task seconds the
    least over the runs of that shape.  Task seconds are CPU seconds; on a
    shared machine other work only ever adds to them (caches, a sibling
    hyperthread), so the least is the closest to what the code costs, as
    ``timeit`` and ``benchmarks/bench_core.py`` take the best run.

    >>> a = bm.Measured(stage=1, kind="map", tasks=2, seconds=3.0, bytes_in=10, bytes_out=1)
    >>> [m.seconds for m in _least_phases([[a], [replace(a, seconds=2.5)], [replace(a, seconds=4.0)]])]
    [2.5]
    """
    first = runs[0]
    same = [r for r in runs if len(r) == len(first)]
    out = []
    for i, m in enumerate(first):
        secs = min(r[i].seconds for r in same)
        out.append(replace(m, seconds=secs, table_bytes=dict(m.table_bytes)))
    return out


def measured_partitions(tables: Iterable[str], data_bytes: dict[str, int], workers: int,
                        model: bm.LambdaModel, target: dict[str, float] | None = None,
                        backend: str = "local") -> int:
    """The fine partitions the measured maps write so that each holds about
    as many of a map's rows as on Lambda at the target scale (5nodes), where
    a split of ``split_t`` bytes fills ``fine_t`` partitions: ``fine_t x
    split_here / split_t``, a power of two.  Their batches (and a join's
    sorted runs) are then as big as there, so the measured CPU per byte
    includes partitioning and encoding at about the 5nodes cost.  0: the
    driver's own choice on ``backend`` is already at least that (never fewer).

    2a at SF 0.01 (254 MB of uservisits, 2 workers): 32 MB splits here, 256 MiB
    at 5nodes into 2,048 partitions: 256 here.

    >>> measured_partitions(["uservisits"], {"uservisits": 254_000_000}, 2, bm.LambdaModel())
    256
    """
    target = bm.FIVENODES_BYTES if target is None else target
    size_t = sum(target.get(t, 0.0) for t in tables)
    size_h = sum(data_bytes.get(t, 0) for t in tables)
    if not size_t or not size_h:
        return 0
    planned_t = bm.reducers(size_t)
    fine_t = shuffle_plan.fine_partitions(planned_t, "lambda")
    split_t = bm.split_and_memory(size_t, planned_t, model)[0]
    split_h = splits.choose_split_size(int(size_h), workers)
    fine = 1 << max(0, round(math.log2(max(1.0, fine_t * min(1.0, split_h / split_t)))))
    own = shuffle_plan.fine_partitions(
        splits.choose_reducers(int(size_h), workers, backend), backend)
    return fine if fine > own else 0


@contextmanager
def lambda_partitions(session: Session, fine: int) -> Iterator[None]:
    """Run the measured statements with the maps writing ``fine`` partitions
    (:func:`measured_partitions`; 0: the driver's choice)."""
    before = getattr(session.settings, "fine_partitions", 0)
    session.settings.fine_partitions = before or fine
    try:
        yield
    finally:
        session.settings.fine_partitions = before


@contextmanager
def measured_combiners(session: Session, job: Any, model: bm.LambdaModel) -> Iterator[None]:
    """Run a query whose stage adds each key's numbers in combiners on Lambda
    (a SUM or COUNT by one key: 2a-2c) with its shuffle through combiners
    here too, each as large as the driver allows, so the model gets their
    CPU per byte measured, not borrowed from the reducers.  Other queries,
    a session whose shuffle is set, or a model told ``--shuffle direct``,
    run as they are."""
    settings = session.settings
    adds = any(getattr(st, "adds_partial_numbers", False) for st in getattr(job, "stages", []))
    if not adds or settings.shuffle != "auto" or model.shuffle == "direct":
        yield
        return
    group = getattr(settings, "combine_group", 0)
    settings.shuffle, settings.combine_group = "combine", group or 1 << 20
    try:
        yield
    finally:
        settings.shuffle, settings.combine_group = "auto", group


def run_query(session: BenchSession, name: str, scale: float, runs: int,
              data_bytes: dict[str, int], model: bm.LambdaModel,
              target: dict[str, float] | None = None) -> QueryRun:
    """Compile, run ``runs`` times, check, project one query."""
    q = QueryRun(name, expected=expected_rows(name, scale))
    stmts = query_statements(name)
    if not stmts:
        q.status, q.reason = "not yet supported", f"queries/{name}.sql not written yet"
        return q
    if len(stmts) > 1:
        return _run_script(session, q, stmts, runs, data_bytes, model, target)
    sql = stmts[0]
    q.sql = sql
    try:
        job = session.compile(sql)
    except Exception as e:  # noqa: BLE001 -- reported in the table
        if isinstance(e, SqlError) and _unsupported(e):
            q.status, q.reason = "not yet supported", e.message
        else:
            q.status, q.reason = "error", f"{type(e).__name__}: {e}" if not isinstance(
                e, SqlError) else e.message
        return q
    q.tables = sorted(getattr(job, "tables", {}) or {})
    one_map, one_reduce = _single_phases(job)
    measured: list[list[bm.Measured]] = []
    stats_runs = []
    try:
        q.measured_partitions = measured_partitions(
            q.tables, data_bytes, session.settings.effective_workers(), model, target,
            session.settings.backend)
        with lambda_partitions(session, q.measured_partitions), \
                measured_combiners(session, job, model):
            for _ in range(max(1, runs)):
                session.phases = []
                res = session.execute_one(sql)
                try:
                    # rows are read lazily: reading every one (the driver's final merge
                    # included) is part of the query's time
                    rows = sum(1 for _ in res.rows)
                    seconds = res.elapsed()
                finally:
                    res.close()
                q.times.append(seconds)
                q.rows = rows
                stats_runs.append(res)
                measured.append(list(session.phases))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 -- a failed query is a row of the table
        q.status = "error"
        q.reason = e.message if isinstance(e, SqlError) else (str(e) or type(e).__name__)
        q.reason = q.reason.splitlines()[0] if q.reason else type(e).__name__
        return q
    last = stats_runs[-1]
    st = last.stats
    if st is not None:
        q.map_tasks, q.reduce_tasks = st.map_tasks, st.reduce_tasks
        q.bytes_read, q.bytes_shuffled = st.bytes_read, st.bytes_shuffled
        q.task_seconds = statistics.fmean(r.stats.task_seconds for r in stats_runs if r.stats)
    # costs from the last run: every run has the same plan and reads the same bytes
    q.lambda_usd = last.lambda_cost.total if last.lambda_cost is not None else None
    q.athena_usd = last.athena_cost
    q.ok = check_count(q.rows or 0, q.expected)
    if q.ok is False:
        q.status = "wrong"
        e, tol = q.expected  # type: ignore[misc]
        q.reason = f"{q.rows:,} rows, the model expects {e:,.0f} ± {tol:,.0f}"
    phases = _least_phases(measured)
    for m in phases:
        m.single = (m.kind == "map" and not m.table_bytes and m.stage in one_map) or \
                   (m.kind == "reduce" and m.stage in one_reduce)
    if phases:
        ratio = None
        at_target = target_rows(name)
        if at_target is not None and q.rows:
            ratio = at_target / q.rows
        stages = getattr(job, "stages", []) or []
        stage_tables = {getattr(st, "id", None): list(getattr(st, "tables", []) or [])
                        for st in stages}
        scaled = bm.scale_phases(phases, data_bytes, model, target, ratio, stage_tables,
                                 adding_stages(stages, at_target))
        q.projection = bm.project(scaled, model)
        tgt = bm.FIVENODES_BYTES if target is None else target
        q.projected_bytes = sum(tgt[t] for t in q.tables if t in tgt)
    return q


def _run_script(session: BenchSession, q: QueryRun, stmts: list[str], runs: int,
                data_bytes: dict[str, int], model: bm.LambdaModel,
                target: dict[str, float] | None) -> QueryRun:
    """Run a query of several statements ``runs`` times (see the module's doc)."""
    q.sql = ";\n".join(stmts)
    q.measured_partitions = measured_partitions(
        QUERY_TABLES.get(q.query, TABLES), data_bytes, session.settings.effective_workers(),
        model, target, session.settings.backend)
    with lambda_partitions(session, q.measured_partitions):
        return _run_script_at(session, q, stmts, runs, data_bytes, model, target)


def _run_script_at(session: BenchSession, q: QueryRun, stmts: list[str], runs: int,
                   data_bytes: dict[str, int], model: bm.LambdaModel,
                   target: dict[str, float] | None) -> QueryRun:
    import tempfile
    from sqlmr import config
    work = tempfile.mkdtemp(prefix="sqlmr-bench-")
    catalog: BenchCatalog = session.catalog  # type: ignore[assignment]
    base_dir = session.base_dir
    session.base_dir = str(queries_dir())   # as `sqlmr -f`: files it names are beside it
    try:
        with config.home_at(work):  # CREATE TABLE AS writes into <work>/warehouse
            return _script_runs(session, q, stmts, runs, data_bytes, model, target)
    finally:
        session.base_dir = base_dir
        catalog.created.clear()
        shutil.rmtree(work, ignore_errors=True)


def _script_runs(session: BenchSession, q: QueryRun, stmts: list[str], runs: int,
                 data_bytes: dict[str, int], model: bm.LambdaModel,
                 target: dict[str, float] | None) -> QueryRun:
    from compiler.job import parse_one
    created = []  # (statement index, table name) of each CREATE TABLE AS
    for i, text in enumerate(stmts):
        try:
            tree = parse_one(text, session.settings.dialect)
        except SqlError as e:
            q.status, q.reason = "error", e.message
            return q
        from sqlglot import exp
        if isinstance(tree, exp.Create) and tree.args.get("expression") is not None:
            created.append((i, tree.this.name))
    measured: list[list[list[bm.Measured]]] = []   # run -> statement -> phases
    results: list[StatementResult] = []
    sizes: dict[str, int] = {}
    try:
        for _ in range(max(1, runs)):
            per_stmt: list[list[bm.Measured]] = []
            results = []
            t0 = time.perf_counter()
            for text in stmts:
                session.phases = []
                res = session.execute_one(text)
                try:
                    for _row in res.rows:
                        pass
                finally:
                    res.close()
                per_stmt.append(list(session.phases))
                results.append(res)
            q.times.append(time.perf_counter() - t0)
            measured.append(per_stmt)
        if created:  # the answer: the last table's rows (not timed)
            last_name = created[-1][1]
            res = session.execute_one(f"SELECT COUNT(*) FROM {last_name}")
            try:
                q.rows = int(next(iter(res.rows))[0])
            finally:
                res.close()
            for _, name in created:
                t = session.catalog.tables()[name.lower()]
                sizes[name.lower()] = sum(n for _, n in storage.list_files(t.location))
    except KeyboardInterrupt:
        raise
    except SqlError as e:
        q.status = "not yet supported" if _unsupported(e) else "error"
        q.reason, q.times = e.message, []
        return q
    except Exception as e:  # noqa: BLE001 -- a failed query is a row of the table
        q.status, q.times = "error", []
        q.reason = e.message if isinstance(e, SqlError) else (str(e) or type(e).__name__)
        q.reason = q.reason.splitlines()[0] if q.reason else type(e).__name__
        return q
    stats = [r.stats for r in results if r.stats is not None]
    q.map_tasks = sum(st.map_tasks for st in stats)
    q.reduce_tasks = sum(st.reduce_tasks for st in stats)
    q.bytes_read = sum(st.bytes_read for st in stats)
    q.bytes_shuffled = sum(st.bytes_shuffled for st in stats)
    q.task_seconds = sum(st.task_seconds for st in stats)
    costs_ = [r.lambda_cost.total for r in results if r.lambda_cost is not None]
    q.lambda_usd = sum(costs_) if costs_ else None
    athena = [r.athena_cost for r in results if r.athena_cost is not None]
    q.athena_usd = sum(athena) if athena else None
    q.ok = check_count(q.rows or 0, q.expected)
    if q.ok is False:
        q.status = "wrong"
        e, tol = q.expected  # type: ignore[misc]
        q.reason = f"{q.rows:,} rows, the model expects {e:,.0f} ± {tol:,.0f}"
    q.projection, q.projected_bytes, q.tables = _project_script(
        q, measured, created, sizes, data_bytes, model, target)
    return q


def _project_script(q: QueryRun, measured: list[list[list[bm.Measured]]],
                    created: list[tuple[int, str]], sizes: dict[str, int],
                    data_bytes: dict[str, int], model: bm.LambdaModel,
                    target: dict[str, float] | None):
    """The statements' phases one after the other at the target sizes: a table an
    earlier statement created is as large there as that statement's scaled output."""
    tgt = dict(bm.FIVENODES_BYTES if target is None else target)
    here = {t: float(b) for t, b in data_bytes.items()}
    made = {i: name.lower() for i, name in created}
    base = sorted({t for stmt in measured[-1] for m in stmt for t in m.table_bytes
                   if t in tgt and t not in made.values()})
    phases: list[bm.Phase] = []
    n = len(measured[-1])
    for i in range(n):
        runs = [r[i] for r in measured if len(r) == n and r[i]]
        if not runs:
            continue
        least = _least_phases(runs)
        if not _size_transform_output(least, here, tgt, model):
            return None, 0.0, base
        if any(t not in tgt or t not in here for m in least for t in m.table_bytes):
            return None, 0.0, base                  # a table of unknown size: no model
        last = i == max((j for j in range(n) if measured[-1][j]), default=-1)
        ratio = None
        at_target = target_rows(q.query)
        if last and at_target is not None and q.rows:
            ratio = at_target / q.rows
        scaled = bm.scale_phases(least, here, model, tgt, ratio)
        phases += scaled
        if i in made and scaled:
            tgt[made[i]] = scaled[-1].bytes_out
            here[made[i]] = float(sizes.get(made[i], 0)) or 1.0
    if not phases:
        return None, 0.0, base
    return bm.project(phases, model), sum(tgt[t] for t in base), base


def _size_transform_output(mean: list[bm.Measured], here: dict[str, float],
                           tgt: dict[str, float], model: bm.LambdaModel) -> bool:
    """A statement with TRANSFORM runs the command's job first and then reads
    its output as a table: that table is as large at the target as the
    command's job, scaled, writes.  False when it cannot be sized."""
    readers = [k for k, m in enumerate(mean) if TRANSFORM_TABLE in m.table_bytes]
    if not readers:
        return True
    first = readers[0]
    before = bm.scale_phases(mean[:first], here, model, tgt) if first else []
    if not before or any(t not in tgt or t not in here
                         for m in mean[:first] for t in m.table_bytes):
        return False
    here[TRANSFORM_TABLE] = float(mean[first].table_bytes[TRANSFORM_TABLE]) or 1.0
    tgt[TRANSFORM_TABLE] = before[-1].bytes_out
    return True


# --------------------------------------------------------------------- output

PUBLISHED_COLUMNS = [(s, f"published_{s.lower().replace(' ', '_')}_s") for s in pub.SYSTEMS]


def record(q: QueryRun) -> dict:
    """One query as a flat dict (the CSV row; JSON adds the modeled phases)."""
    exp, tol = q.expected if q.expected else (None, None)
    ref = pub.REFERENCE_2016.get(q.query)
    d: dict[str, Any] = {"query": q.query, "status": q.status, "reason": q.reason,
                         "rows": q.rows, "expected_rows": None if exp is None else round(exp, 1),
                         "tolerance": None if tol is None else round(tol, 1),
                         "check": {True: "✓", False: "✗", None: ""}[q.ok]}
    for system, key in PUBLISHED_COLUMNS:
        d[key] = pub.PUBLISHED_SECONDS[system].get(q.query)
    d["published_ref2016_s"] = ref[0] if ref else None
    d["published_ref2016_usd"] = ref[1] if ref else None
    ran = bool(q.times)
    d.update({
        "measured_s": _r(q.median, 4) if ran else None,
        "measured_runs_s": [_r(t, 4) for t in q.times],
        "map_tasks": q.map_tasks if ran else None,
        "reduce_tasks": q.reduce_tasks if ran else None,
        "bytes_read": q.bytes_read if ran else None,
        "bytes_shuffled": q.bytes_shuffled if ran else None,
        "task_seconds": _r(q.task_seconds, 4) if ran else None,
        "measured_partitions": q.measured_partitions or None,
        "lambda_usd": _r(q.lambda_usd, 9) if ran else None,
        "athena_usd": _r(q.athena_usd, 9) if ran else None,
    })
    p = q.projection
    d.update({
        "modeled_s": _r(p.seconds, 2) if p else None,
        "modeled_usd": _r(p.dollars, 6) if p else None,
        "modeled_athena_usd": _r(costs.athena_cost(q.projected_bytes), 4) if p else None,
        "modeled_bytes": q.projected_bytes if p else None,
        "modeled_map_tasks": sum(e.phase.tasks for e in p.phases if e.phase.kind == "map")
        if p else None,
        "modeled_reduce_tasks": sum(e.phase.tasks for e in p.phases if e.phase.kind == "reduce")
        if p else None,
        "modeled_gb_s": _r(p.cost.gb_seconds, 1) if p else None,
        "modeled_combine_tasks": sum(e.phase.tasks for e in p.phases
                                     if e.phase.kind == "combine") if p else None,
        "modeled_gets": p.cost.gets if p else None,
        "modeled_puts": p.cost.puts if p else None,
        "modeled_gb_s_usd": _r(p.cost.compute, 6) if p else None,
        "modeled_s3_usd": _r(p.cost.s3_cost, 6) if p else None,
    })
    return d


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def _secs(x: float | None) -> str:
    if x is None:
        return ""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _pub(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _money(x: float | None) -> str:
    return "" if x is None else costs.money(x)


def table_columns(scale: float) -> list[str]:
    """Two-line headers; the first line names the group over its first column."""
    groups = [("published s", [pub.SYSTEM_LABELS[s].replace(" - ", " ")
                                      .replace(" (HDD)", "").split(" 0.")[0]
                                      for s in pub.SYSTEMS]),
              ("ref 2016", ["s", "$"]),
              (f"sqlmr SF {scale:g}", ["median s", "tasks", "read", "Lambda $", "Athena $"]),
              ("modeled 5nodes", ["Lambda s", "Lambda $", "Athena $"])]
    cols = ["query", "rows", "check"]
    for title, names in groups:
        cols += [(title if i == 0 else "") + "\n" + n for i, n in enumerate(names)]
    return cols


def table_row(q: QueryRun) -> list[str]:
    d = record(q)
    check = d["check"] if q.status in ("ok", "wrong") else q.status
    ran = bool(q.times)
    tasks = ""
    if ran:
        tasks = f"{q.map_tasks}" + (f"+{q.reduce_tasks}" if q.reduce_tasks else "")
    return ([q.query, f"{q.rows:,}" if q.rows is not None else "", check]
            + [_pub(d[key]) for _, key in PUBLISHED_COLUMNS]
            + [_pub(d["published_ref2016_s"]), _money(d["published_ref2016_usd"]),
               _secs(q.median), tasks, size_text(q.bytes_read) if ran else "",
               _money(q.lambda_usd) if ran else "", _money(q.athena_usd) if ran else "",
               _secs(q.projection.seconds) if q.projection else "",
               _money(q.projection.dollars) if q.projection else "",
               _money(d["modeled_athena_usd"]) if q.projection else ""])


def notes(results: list[QueryRun], ctx: dict) -> list[str]:
    """The lines under the table: sources, what was measured, the model, problems."""
    m: bm.LambdaModel = ctx["model"]
    out = [
        "published: AMPLab Big Data Benchmark, 5nodes data (Feb 2014), median response time in s; "
        "ref 2016: AWS Lambda MapReduce reference architecture (1.5 GB functions); "
        "blank: the system did not run the query.",
        f"measured: {ctx['backend']} backend"
        + (f" ({ctx['workers']} workers)" if ctx['backend'] == "local" else "")
        + f", median of {ctx['runs']} run{'s' if ctx['runs'] != 1 else ''}, on SF {ctx['scale']:g} "
        f"({ctx['rankings_rows']:,} rankings + {ctx['uservisits_rows']:,} uservisits rows"
        f"{_crawl_text(ctx)}, {size_text(ctx['data_bytes'])}) at {ctx['data']}. rows checked "
        f"against the "
        f"generator's model (expected ± 5 sd). Lambda $: measured task seconds at "
        f"{m.memory_mb} MB {m.architecture}; Athena: $5/TB scanned, 10 MB minimum.",
        f"modeled: per-byte CPU measured here (each phase's fastest run), scaled to rankings "
        f"{bm.FIVENODES_BYTES['rankings'] / 1e9:g} GB / uservisits "
        f"{bm.FIVENODES_BYTES['uservisits'] / 1e9:g} GB on Lambda (sqlmr/bench_model.py); "
        f"{m.describe()}. Prices {prices.PRICES_DATE}, us-east-1.",
    ]
    if any(q.query == "4" for q in results):
        out.append(pub.query4_note() + f" Its crawl (documents) is "
                   f"{bm.FIVENODES_BYTES['documents'] / 1e9:g} GB at 5nodes.")
    for q in results:
        p = q.projection
        if p is not None:
            parts = []
            for e in p.phases:
                parts.append(f"{e.phase.tasks:,} {e.phase.kind}"
                             + (f" ({e.phase.split // bm.MIB} MiB splits)" if e.phase.split else "")
                             + f" at {e.phase.memory_mb or ctx['model'].memory_mb:,} MB"
                             + f" x {_secs(e.task_seconds)} s -> {_secs(e.seconds)} s, "
                             f"{e.gets:,} GET"
                             + (f" ({e.bound}: {e.gets:,} GET)" if e.bound == "S3 GET rate" else "")
                             + (f" ({e.bound}: {e.puts:,} PUT)" if e.bound == "S3 PUT rate" else ""))
            out.append(f"  {q.query} modeled: " + "; ".join(parts)
                       + (f" (maps measured writing {q.measured_partitions:,} partitions: as "
                          f"many rows to a partition as at 5nodes)" if q.measured_partitions else ""))
            for e in p.phases:
                if e.phase.shuffle:
                    out.append(f"  {q.query} shuffle: {e.phase.shuffle}")
            for w in p.warnings:
                out.append(f"  {q.query} warning: {w}")
    for q in results:
        if q.status != "ok":
            out.append(f"{q.query}: {q.status}" + (f": {q.reason}" if q.reason else ""))
    return out


def write_output(results: list[QueryRun], ctx: dict, fmt: str, out: IO[str],
                 err: IO[str], width: int | None = None) -> None:
    """The results in ``fmt``; a ``table`` ``width`` columns wide, or with every
    column when ``width`` is None (``--wide``)."""
    if fmt == "json":
        doc = {
            "scale": ctx["scale"], "data": ctx["data"], "backend": ctx["backend"],
            "workers": ctx["workers"], "runs": ctx["runs"],
            "data_bytes": ctx["table_bytes"], "prices_date": prices.PRICES_DATE,
            "fivenodes_bytes": bm.FIVENODES_BYTES,
            "model": {f: getattr(ctx["model"], f) for f in
                      bm.LambdaModel.__dataclass_fields__ if f != "code"},
            "model_code": asdict(ctx["model"].code),
            "queries": [],
        }
        for q in results:
            d = record(q)
            if q.projection is not None:
                d["modeled_phases"] = [
                    {"kind": e.phase.kind, "tasks": e.phase.tasks, "bytes_in": e.phase.bytes_in,
                     "bytes_out": e.phase.bytes_out, "task_s": round(e.task_seconds, 4),
                     "seconds": round(e.seconds, 3), "bound": e.bound,
                     "gb_s": round(e.gb_seconds, 2), "gets": e.gets, "puts": e.puts,
                     "memory_mb": e.phase.memory_mb or ctx["model"].memory_mb,
                     **({"split_mb": e.phase.split // bm.MIB} if e.phase.split else {}),
                     **({"shuffle": e.phase.shuffle} if e.phase.shuffle else {})}
                    for e in q.projection.phases]
            doc["queries"].append(d)
        json.dump(doc, out, indent=1, ensure_ascii=False)
        out.write("\n")
        for line in notes(results, ctx):
            print(line, file=err)
        return
    if fmt == "csv":
        rows = [record(q) for q in results]
        cols = list(rows[0]) if rows else ["query"]
        for r in rows:
            r["measured_runs_s"] = ";".join(str(t) for t in r["measured_runs_s"])
        write_rows("csv", cols, [[r[c] for c in cols] for r in rows], out)
        for line in notes(results, ctx):
            print(line, file=err)
        return
    columns = table_columns(ctx["scale"])
    if fmt == "markdown":  # one header line (GitHub tables have no multi-line headers)
        columns = [c.strip("\n").replace("\n", "<br>") for c in columns]
        body = table_text(columns, [table_row(q) for q in results], _column_types(),
                          "markdown")
        out.write(body + "\n\n")
        for line in notes(results, ctx):
            out.write(("  - " + line.strip()) if line.startswith("  ") else "- " + line)
            out.write("\n")
        return
    if width is not None:
        from sqlmr.bench_table import terminal_text
        out.write(terminal_text(results, ctx, width))
        return
    body = table_text(columns, [table_row(q) for q in results], _column_types(), "table")
    out.write(body + "\n")
    for line in notes(results, ctx):
        out.write(line + "\n")


def _show(text: str, out: IO[str]) -> None:
    """``text`` on ``out``; through the pager (``less -S``: sideways, no wrapping)
    when ``out`` is a terminal narrower or shorter than the text."""
    lines = text.split("\n")
    size = shutil.get_terminal_size()
    if _isatty(out) and _isatty(sys.stdin) and (
            max(map(len, lines)) > size.columns or len(lines) > size.lines - 2):
        from sqlmr.repl import _pager_command, _run_pager
        cmd = _pager_command()
        if cmd and _run_pager(cmd, text):
            return
    out.write(text)


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _column_types() -> list[str | None]:
    n = len(table_columns(1))
    return ["string", "int", "string"] + ["double"] * (n - 3)


# ------------------------------------------------------------------------ run

def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``sqlmr bench``; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        names = query_names(args.queries)
        if not (args.scale > 0) or math.isinf(args.scale):
            raise ValueError(f"--scale must be a positive number, not {args.scale}")
        if args.runs < 1:
            raise ValueError("--runs must be at least 1")
        model = model_from_args(args)
        if model.architecture not in prices.LAMBDA_GB_SECOND:
            raise ValueError(f"--arch is one of {', '.join(prices.LAMBDA_GB_SECOND)}")
        if model.shuffle not in ("auto", "direct", "combine"):
            raise ValueError("--shuffle is auto, direct or combine")
        if model.functions < 1 or model.memory_mb < 128 or model.s3_mbps <= 0 or \
                model.get_rate <= 0 or model.put_rate <= 0 or \
                model.scale_per_10s <= 0 or model.split_mb < 0:
            raise ValueError("model parameters must be positive (memory at least 128 MB)")
        settings = load_settings()
    except ValueError as e:
        print(f"sqlmr bench: {e}", file=err)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("sqlmr bench: --plot needs matplotlib: pip install 'sqlmr[plot]'", file=err)
            return 2
    if args.backend:
        settings.backend = args.backend
    if args.workers is not None:
        settings.workers = args.workers
    settings.memory_mb = model.memory_mb
    settings.architecture = model.architecture
    settings.timing = False
    location = data_location(args.scale, args.data)
    if settings.backend == "lambda" and not storage.is_s3(location):
        print("sqlmr bench: the lambda backend reads tables from S3: pass --data "
              "s3://bucket/prefix (generated there when absent; let the function read it with "
              "SQLMR_TABLE_LOCATIONS)", file=err)
        return 2
    try:
        needed = data_tables(names)
        ensure_data(location, args.scale, err, needed)
        sizes = table_sizes(location, needed)
    except KeyboardInterrupt:
        print("sqlmr bench: interrupted", file=err)
        return 130
    except Exception as e:  # noqa: BLE001 -- storage and OS errors: one line
        print(f"sqlmr bench: cannot prepare the data at {location}: {e}", file=err)
        return 1
    # Plan as sqlmr would at 5nodes: a join side is broadcast here only if it
    # would be at 5nodes (the threshold scales with the data).
    ratio = max(bm.FIVENODES_BYTES[t] / max(1, sizes[t]) for t in TABLES)
    settings.broadcast_mb = settings.broadcast_mb / ratio
    from sqlmr.gen.amplab import scale_counts
    pages, visits = scale_counts(args.scale)
    ctx = {"scale": args.scale, "data": location, "backend": settings.backend,
           "workers": settings.effective_workers(), "runs": args.runs, "model": model,
           "rankings_rows": pages, "uservisits_rows": visits,
           "data_bytes": sum(sizes.values()), "table_bytes": sizes}
    if "documents" in sizes:
        from sqlmr.gen.amplab_documents import page_count
        ctx["documents_pages"] = page_count(args.scale)
    session = BenchSession(settings, location)
    results: list[QueryRun] = []
    try:
        for name in names:
            q = run_query(session, name, args.scale, args.runs, sizes, model)
            results.append(q)
            mark = {"ok": "✓", "wrong": "✗"}.get(q.status, q.status)
            print(f"sqlmr bench: {name} {mark}"
                  + (f" {_secs(q.median)} s" if q.times else "")
                  + (f" ({q.reason})" if q.reason and q.status != "ok" else ""),
                  file=err, flush=True)
    except KeyboardInterrupt:
        print("sqlmr bench: interrupted", file=err)
        return 130
    finally:
        session.close()
    if args.format == "table" and args.wide:
        buf = io.StringIO()
        write_output(results, ctx, "table", buf, err)
        _show(buf.getvalue(), out)
    else:
        write_output(results, ctx, args.format, out, err,
                     width=shutil.get_terminal_size().columns)
    if args.plot:
        try:
            from sqlmr.bench_plot import plot
            plot(results, args.plot, ctx)
            print(f"sqlmr bench: wrote {args.plot}", file=err)
        except Exception as e:  # noqa: BLE001
            print(f"sqlmr bench: could not draw {args.plot}: {e}", file=err)
            return 1
    return 1 if any(q.status in ("wrong", "error") for q in results) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sqlmr bench",
                                description="Reproduce the AMPLab Big Data Benchmark table.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
