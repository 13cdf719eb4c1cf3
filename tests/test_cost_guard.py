"""The cost guard (max_cost: refused on the estimate before anything runs,
stopped once the finished tasks cost more) and --dry-run (plans, lists the
splits, prints the estimate, runs and deploys nothing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: F401
from compiler.errors import SqlError
from sqlmr.config import Settings
from sqlmr.cost_guard import CostLimitError
from sqlmr.driver import estimate, plan_job
from sqlmr.session import Session

REPO = Path(__file__).resolve().parents[1]
FILES = 6
QUERY = "SELECT k, SUM(n) FROM t GROUP BY k"


class CountingBackend:
    """The real backend, counting the phases it is asked to run."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.runs = 0
        self.tasks = 0

    def run(self, events, progress=None):
        self.runs += 1
        self.tasks += len(events)
        return self.inner.run(events, progress)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def data(tmp_path) -> Path:
    """A table's folder: FILES files of 100 bytes, one row each (an extra
    field pads it), so each is a map task of its own at split_mb 0.0001."""
    folder = tmp_path / "t"
    folder.mkdir()
    for i in range(FILES):
        row = f"k{i % 2},{i},"
        (folder / f"part-{i:05d}").write_text(row + "x" * (99 - len(row)) + "\n")
    return folder


def make_session(data: Path, **settings) -> tuple[Session, CountingBackend]:
    s = Session(Settings(workers=1, split_mb=0.0001, **settings))
    counting = CountingBackend(s.backend())
    s._backend = counting  # the session's key still matches: it keeps using it
    list(s.execute(f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}'"))
    return s, counting


def job_folders(home: Path) -> list[str]:
    jobs = home / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


def estimate_of(s: Session, sql: str) -> float:
    return estimate(plan_job(s.compile(sql), s.settings), s.settings)[1].total


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "sqlmr", *args], capture_output=True,
                          text=True, env=env, timeout=300)


# ------------------------------------------------------------- refused before

def test_over_budget_query_is_refused_before_any_task(data, sqlmr_home):
    s, counting = make_session(data)
    try:
        est = estimate_of(s, QUERY)
        s.settings.max_cost = est / 2
        with pytest.raises(CostLimitError) as e:
            list(s.execute(QUERY))
        assert e.value.refused
        assert counting.runs == 0 and counting.tasks == 0
        assert not (sqlmr_home / "jobs").exists()   # no scratch was even made
        msg = str(e.value)
        # the estimate, the limit and the basis: bytes, tasks, the price basis
        assert "refused" in msg and "nothing was run" in msg
        assert f"{FILES} map tasks" in msg and "600 B read" in msg
        assert "Lambda GB-s" in msg and "local backend" in msg
        # the same query within the limit runs, on the same session
        s.settings.max_cost = est * 2
        rows = sorted(tuple(r) for r in next(s.execute(QUERY)).rows)
        assert rows == [("k0", 6), ("k1", 9)]
        assert counting.runs == 2   # its map and reduce phase
    finally:
        s.close()


def test_ctas_over_budget_writes_nothing_and_registers_nothing(data, sqlmr_home):
    s, counting = make_session(data)
    try:
        s.settings.max_cost = estimate_of(s, QUERY) / 2
        with pytest.raises(CostLimitError):
            list(s.execute(f"CREATE TABLE made AS {QUERY}"))
        assert counting.runs == 0
        assert "made" not in s.catalog.tables()
        assert not (sqlmr_home / "warehouse" / "made").exists()
    finally:
        s.close()


def test_cli_exit_status_and_message_for_a_refused_query(data, sqlmr_home):
    create = f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}'"
    r = run_cli("--max-cost", "0.0000001", "--split-mb", "0.0001", "-e", f"{create}; {QUERY}")
    assert r.returncode == 3, r.stderr
    assert "sqlmr: max_cost: refused: the estimate $" in r.stderr
    assert "over max_cost $0.000000100" in r.stderr and r.stdout == ""
    assert job_folders(sqlmr_home) == []
    # SET max_cost in the script, and the config file's max_cost, do the same
    r = run_cli("-e", f"SET max_cost = $0.0000001; {QUERY}")   # t was created above
    assert r.returncode == 3 and "refused" in r.stderr
    (sqlmr_home / "config").write_text("max_cost = 0.0000001\n")
    r = run_cli("-e", QUERY)
    assert r.returncode == 3 and "refused" in r.stderr
    # a flag that is not a price is a usage error
    r = run_cli("--max-cost", "lots", "-e", QUERY)
    assert r.returncode == 2 and "max_cost needs a number" in r.stderr


def test_explain_says_whether_a_run_would_be_refused(data):
    s, _ = make_session(data)
    try:
        s.settings.max_cost = estimate_of(s, QUERY) / 2
        text = next(s.execute("EXPLAIN " + QUERY)).message
        assert "the estimate is over it, a run would be refused" in text
    finally:
        s.close()


# ------------------------------------------------------------ stopped while running

SLOW_UDF = '''
import os, time

def slow(x: str) -> str:
    open(os.path.join({markers!r}, "%d-%s" % (os.getpid(), x)), "w").close()
    time.sleep(1.0)
    return x
'''


def test_a_job_whose_tasks_cost_more_is_stopped_with_scratch_removed(data, tmp_path,
                                                                      sqlmr_home):
    """The estimate passes the limit; the tasks (each sleeps 1 s in a UDF, so
    each costs at least 10 GB-s at 10,240 MB) cost more than it after the
    first one: the job is stopped with the rest not run and its scratch gone."""
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "udfs.py").write_text(SLOW_UDF.format(markers=str(markers)))
    s, counting = make_session(data, memory_mb=10240)
    try:
        list(s.execute(f"CREATE TEMPORARY FUNCTION slow AS 'udfs.slow' "
                       f"USING FILE '{tmp_path / 'udfs.py'}'"))
        query = "SELECT slow(k) FROM t"
        est = estimate_of(s, query)
        one_task = 1.0 * 10240 / 1024 * 0.0000133334   # the least one finished task costs
        assert est < one_task   # so the limit below passes the estimate, not one task
        s.settings.max_cost = est * 1.05
        with pytest.raises(CostLimitError) as e:
            list(s.execute(query))
        assert not e.value.refused
        assert e.value.spent > s.settings.max_cost
        assert counting.runs == 1 and counting.tasks == FILES
        ran = os.listdir(markers)
        assert 1 <= len(ran) < FILES, ran   # pending tasks were dropped
        msg = str(e.value)
        assert "stopped: the job passed max_cost" in msg and "it spent $" in msg
        assert "estimated from task seconds at 10240 MB" in msg
        assert job_folders(sqlmr_home) == []   # the job's scratch is removed
        # the session goes on: without the limit, the same query runs
        s.settings.max_cost = 0
        assert sorted(r[0] for r in next(s.execute("SELECT k FROM t")).rows) == \
            ["k0"] * 3 + ["k1"] * 3
    finally:
        s.close()


def test_cli_exit_status_for_a_stopped_job(data, tmp_path, sqlmr_home):
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "udfs.py").write_text(SLOW_UDF.format(markers=str(markers)))
    script = f"CREATE TEMPORARY FUNCTION slow AS 'udfs.slow' USING FILE '{tmp_path / 'udfs.py'}';"
    s, _ = make_session(data, memory_mb=10240)   # creates table t in the catalog
    try:
        list(s.execute(f"CREATE TEMPORARY FUNCTION slow AS 'udfs.slow' "
                       f"USING FILE '{tmp_path / 'udfs.py'}'"))
        limit = estimate_of(s, "SELECT slow(k) FROM t") * 1.05
    finally:
        s.close()
    r = run_cli("--workers", "1", "--split-mb", "0.0001", "--memory", "10240",
                "--max-cost", f"{limit:.10f}", "-e", script + "SELECT slow(k) FROM t")
    assert r.returncode == 4, r.stderr
    assert "sqlmr: max_cost: stopped: the job passed max_cost" in r.stderr
    assert "scratch removed" in r.stderr
    assert job_folders(sqlmr_home) == []


# ------------------------------------------------------------------- dry run

def test_dry_run_lists_splits_and_estimate_and_runs_nothing(data, sqlmr_home):
    create = f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}'"
    r = run_cli("--dry-run", "--split-mb", "0.0001", "-e", f"{create}; {QUERY}")
    assert r.returncode == 0, r.stderr
    assert "dry run: would create table t (k STRING, n INT" in r.stderr
    out = r.stdout
    assert "Dry run: nothing was run" in out
    line = next(x for x in out.splitlines() if x.startswith("| t "))
    assert [c.strip() for c in line.strip("|").split("|")] == \
        ["t", "Stage-1 scan", str(FILES), "600 B", str(FILES)]
    assert f"Stage-1: {FILES} map tasks" in out and "Estimate: $" in out
    assert "Lambda GB-s" in out and "Would: print the result" in out
    assert "part-00003" not in out   # splits one by one only with -v
    assert job_folders(sqlmr_home) == []
    assert not (sqlmr_home / "catalog.json").exists()   # the CREATE changed nothing
    r = run_cli("--dry-run", "-v", "--split-mb", "0.0001", "-e", f"{create}; {QUERY}")
    assert r.returncode == 0 and sum("part-0000" in x for x in r.stdout.splitlines()) == FILES


def test_dry_run_of_writes_and_ddl_changes_nothing(data, sqlmr_home, tmp_path):
    s, counting = make_session(data)
    s.settings.dry_run = True
    try:
        out = tmp_path / "out"
        module = tmp_path / "m.py"
        module.write_text("def f(x: str) -> str:\n    return x\n")
        results = list(s.execute(
            f"CREATE TABLE made AS {QUERY}; "
            f"INSERT OVERWRITE DIRECTORY '{out}' SELECT * FROM t; DROP TABLE t; "
            f"CREATE FUNCTION f AS 'm.f' USING FILE '{module}'"))
        assert "register table made (2 columns: k STRING, _c1 BIGINT)" in results[0].message
        assert f"replace the files at file://{out}" in results[1].message
        assert results[2].message.startswith("dry run: would drop table t (its files are kept)")
        assert results[3].message.startswith("dry run: would create function f from")
        # `made` is known to the rest of the dry run, but it has no files to plan
        with pytest.raises(SqlError, match="reads made, which an earlier statement would write"):
            list(s.execute("SELECT * FROM made"))
        assert counting.runs == 0 and not out.exists()
        assert not (sqlmr_home / "warehouse" / "made").exists()
        assert set(s.catalog.tables()) - {"rankings", "uservisits", "documents"} == {"t"}
        assert "f" not in s.catalog.functions()
    finally:
        s.close()


def test_dry_run_shows_the_max_cost_verdict(data):
    s, counting = make_session(data)
    try:
        s.settings.dry_run = True
        s.settings.max_cost = estimate_of(s, QUERY) / 2
        text = next(s.execute(QUERY)).message
        assert "the estimate is over it: a run would be refused" in text
        assert counting.runs == 0
    finally:
        s.close()


# ------------------------------------------------------- on the Lambda backend

@pytest.fixture
def on_lambda(aws_reset, s3_bucket, monkeypatch):
    """Table t on S3 (FILES objects of 100 bytes); the lambda backend with the
    real package run in subprocesses, one invocation at a time."""
    import boto3
    from aws_fixtures import run_lambda_locally
    from sqlmr.aws import deploy
    c = boto3.client("s3")
    for i in range(FILES):
        row = f"k{i % 2},{i},"
        c.put_object(Bucket=s3_bucket, Key=f"data/t/part-{i:05d}",
                     Body=(row + "x" * (99 - len(row)) + "\n").encode())
    run_lambda_locally(monkeypatch, s3_bucket)
    monkeypatch.setenv("SQLMR_LAMBDA_CONCURRENCY", "1")
    yield s3_bucket
    deploy.forget_deployments()


def lambda_session(bucket: str, **settings) -> Session:
    s = Session(Settings(backend="lambda", split_mb=0.0001, reducers=2, **settings))
    list(s.execute(f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION 's3://{bucket}/data/t'"))
    return s


def deployed_functions() -> list[str]:
    import boto3
    return [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]


def scratch_keys(bucket: str) -> list[str]:
    import boto3
    resp = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="sqlmr/jobs/")
    return [o["Key"] for o in resp.get("Contents", [])]


def test_on_lambda_a_refused_query_deploys_and_invokes_nothing(on_lambda):
    s = lambda_session(on_lambda)
    try:
        s.settings.max_cost = estimate_of(s, QUERY) / 2
        with pytest.raises(CostLimitError) as e:
            list(s.execute(QUERY))
        # priced at the memory each task kind would get: maps the function's (their
        # split is set by hand), reducers 1,024-1,280 MB; no combiners, so not theirs
        assert e.value.refused and re.search(r"\(Lambda, 1(024|280)–1769 MB arm64\)",
                                             str(e.value)), str(e.value)
        s.settings.max_cost = 0
        s.settings.dry_run = True
        text = next(s.execute(QUERY)).message
        assert f"{FILES} map tasks" in text and "Estimate: $" in text
        assert deployed_functions() == [] and scratch_keys(on_lambda) == []
    finally:
        s.close()


def test_on_lambda_a_job_over_max_cost_is_stopped_and_its_scratch_removed(on_lambda, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "udfs.py").write_text(SLOW_UDF.format(markers=str(markers)))
    s = lambda_session(on_lambda, memory_mb=10240)
    try:
        list(s.execute(f"CREATE TEMPORARY FUNCTION slow AS 'udfs.slow' "
                       f"USING FILE '{tmp_path / 'udfs.py'}'"))
        query = "SELECT slow(k) FROM t"
        s.settings.max_cost = estimate_of(s, query) * 1.05
        with pytest.raises(CostLimitError) as e:
            list(s.execute(query))
        assert not e.value.refused and "it spent $" in str(e.value)
        assert 1 <= len(os.listdir(markers)) < FILES   # one invocation at a time: stopped
        assert scratch_keys(on_lambda) == []
    finally:
        s.close()
