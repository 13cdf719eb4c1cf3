"""The driver at scale: a 2,000-task job on the Lambda backend in a process
limited to 256 open descriptors (``ulimit -n 256``).

The driver runs in a subprocess with RLIMIT_NOFILE (256, 256), as a user's
shell would start it, and talks to Lambda through its real BotoInvoker (boto3,
HTTP keep-alive) against Lambda's Invoke API emulated on 127.0.0.1
(tests/lambda_emulator.py), which runs the real runtime handler on a moto S3.
The answer must be DuckDB's, no invocation may fail, and the driver's threads,
descriptors and connections must stay bounded while 2,000 tasks go through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")
duckdb = pytest.importorskip("duckdb")
resource = pytest.importorskip("resource")

import boto3  # noqa: E402

from aws_fixtures import moto_server  # noqa: E402,F401
from difftest import assert_same  # noqa: E402
from lambda_emulator import EmulatorProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
FD_LIMIT = 256
MAP_TASKS = 2000
LINE = "{k},{n}\n"

# The driver: a session on the Lambda backend as sqlmr makes it (no deploy:
# the function is addressed by the runtime's name, as after `sqlmr lambda
# deploy`), with a sampler of its threads and descriptors.
DRIVER = r"""
import json, os, resource, sys, threading, time
from sqlmr.backends.lambda_backend import LambdaBackend
from sqlmr.config import Settings
from sqlmr.session import Session

peak = {"threads": 0, "fds": 0}

def os_threads():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()

def sample():
    while True:
        peak["threads"] = max(peak["threads"], os_threads())
        try:
            peak["fds"] = max(peak["fds"], len(os.listdir("/proc/self/fd")) - 1)
        except OSError:
            pass
        time.sleep(0.005)

threading.Thread(target=sample, daemon=True).start()
args = json.loads(sys.argv[1])
settings = Settings(backend="lambda", split_mb=args["split_bytes"] / 2**20,
                    reducers=args["reducers"])
backend = LambdaBackend(settings, deploy=False)

class DriverSession(Session):
    def backend(self):
        return backend

session = DriverSession(settings)
list(session.execute(args["ddl"]))
t0 = time.perf_counter()
res = list(session.execute(args["sql"]))[-1]
t1 = time.perf_counter()
rows = [list(r) for r in res.rows]
t2 = time.perf_counter()
res.close()
reports = backend.reports
print(json.dumps({
    "rows": rows, "cpu_s": time.process_time(), "run_s": t1 - t0, "read_s": t2 - t1, "cap": backend.concurrency_cap,
    "tasks": sum(r.tasks for r in reports),
    "invocations": sum(r.invocations for r in reports),
    "failures": sum(r.failures for r in reports),
    "threads_started": backend._threads.started,
    "pool_connections": backend._invoker.config.max_pool_connections,
    "soft_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    "peak_threads": peak["threads"], "peak_fds": peak["fds"],
}))
"""


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def bucket(moto_server):
    name = "sqlmr-scale-" + uuid.uuid4().hex[:8]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    return name


def test_a_2000_task_job_under_ulimit_256(bucket, moto_server, tmp_path):
    # one object cut into splits of about 5 lines: over 2,000 map tasks, each writing
    # an output the driver reads back
    lines = [LINE.format(k=f"k{i % 7}", n=i % 1000) for i in range(MAP_TASKS * 5)]
    data = "".join(lines).encode()
    split_bytes = len(data) // MAP_TASKS
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key="data/t/part-00000", Body=data)
    local = tmp_path / "t.csv"
    local.write_bytes(data)
    where = "WHERE n % 5 = 3"     # a row of every task's five
    sql = f"SELECT k, n FROM t {where}"
    want = duckdb.sql(
        f"SELECT k, n FROM read_csv('{local}', header=false, "
        f"columns={{'k': 'VARCHAR', 'n': 'BIGINT'}}) {where}").fetchall()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLMR_LAMBDA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")])
    # the emulated Lambda in a process of its own: the moto server (in this
    # process), the functions and the driver each get a core's share
    emu = EmulatorProcess(env)
    try:
        env.update({"AWS_ENDPOINT_URL_LAMBDA": emu.url, "SQLMR_BUCKET": bucket,
                    "SQLMR_LAMBDA_SPECULATION": "off"})
        args = {"split_bytes": split_bytes, "reducers": 2, "sql": sql,
                "ddl": f"CREATE EXTERNAL TABLE t (k STRING, n BIGINT) "
                       f"LOCATION 's3://{bucket}/data/t'"}
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              preexec_fn=_limit_fds)
        assert proc.returncode == 0, proc.stderr[-4000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        seen = emu.stats()
    finally:
        emu.close()
    assert_same(out["rows"], [list(r) for r in want], ordered=False)
    assert out["tasks"] >= MAP_TASKS
    # every task invoked once: no invocation failed for want of a descriptor
    assert out["failures"] == 0 and out["invocations"] == out["tasks"]
    assert seen["requests"] == out["tasks"]
    # bounded: the limit was kept (not raised past the hard limit), the in-flight
    # cap fit under it, the pool's threads and connections never exceeded the cap
    assert out["soft_limit"] == FD_LIMIT
    cap = out["cap"]
    assert 8 <= cap < FD_LIMIT // 2
    assert out["pool_connections"] == cap
    assert out["threads_started"] <= cap
    assert seen["peak_in_flight"] <= cap
    assert seen["connections"] <= cap          # keep-alive: sockets reused, not one a task
    assert out["peak_threads"] <= cap + 16
    assert out["peak_fds"] < FD_LIMIT
    # ... and it did run many at once
    assert seen["peak_in_flight"] >= 8


# --------------------------------------------------------------------------- the bounds

def _event(i: int) -> dict:
    return {"v": 1, "job": "j", "stage": 1, "kind": "map", "task": i, "attempt": 0,
            "input": {"splits": [{"uri": f"s3://b/t/part-{i}", "start": 0, "end": 10}]},
            "partitions": 0, "work": "s3://b/sqlmr/jobs/j/", "code": {}, "entry": "m"}


def test_invocations_run_on_a_pool_no_larger_than_the_descriptors_allow(monkeypatch):
    import threading
    import time

    from sqlmr.aws.invoker import InvokeResult
    from sqlmr.backends import lambda_backend
    from sqlmr.backends.lambda_backend import LambdaBackend, SchedulerOptions
    from sqlmr.config import Settings

    class Counting:
        max_concurrency = 64

        def __init__(self):
            self.lock = threading.Lock()
            self.running = self.peak = 0

        def invoke(self, event):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.005)
            with self.lock:
                self.running -= 1
            return InvokeResult({"stage": 1, "kind": "map", "task": event["task"],
                                 "attempt": event["attempt"], "output": None}, None, "", 5)

    monkeypatch.setattr(lambda_backend.fds, "connection_slots", lambda want, **kw: 5)
    monkeypatch.setenv("SQLMR_BUCKET", "b")
    inv = Counting()
    backend = LambdaBackend(Settings(backend="lambda"), invoker=inv, deploy=False,
                            options=SchedulerOptions(speculation=False))
    for _ in range(2):                               # the pool is kept across runs
        results = backend.run([_event(i) for i in range(150)])
        assert [r["task"] for r in results] == list(range(150))
    assert backend.concurrency_cap == 5
    assert 1 < inv.peak <= 5
    assert backend._threads.started <= 5
    assert len([t for t in threading.enumerate() if t.name.startswith("sqlmr-invoke")]) <= 5
    backend.close()


def test_the_soft_limit_is_raised_toward_the_hard_one():
    """Under soft 256 / hard 1024 the driver may use about 1,024 descriptors;
    under 256 / 256, about 256 (fewer in flight, as many as fit)."""
    code = ("import json, resource, sys; from sqlmr import fds; "
            "print(json.dumps([fds.connection_slots(1000), "
            "resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))")

    def run(soft: int, hard: int) -> list:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        out = subprocess.run([sys.executable, "-c", code], preexec_fn=limit, check=True,
                             capture_output=True, text=True, env={**os.environ,
                                                                  "PYTHONPATH": str(REPO)})
        return json.loads(out.stdout)

    slots, soft = run(256, 1024)
    assert soft == 1024 and 400 < slots <= (1024 - 64) // 2
    slots, soft = run(256, 256)
    assert soft == 256 and 50 < slots <= (256 - 64) // 2
    slots, soft = run(4096, 4096)
    assert soft == 4096 and slots == 1000
