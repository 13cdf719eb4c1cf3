"""Fault injection on the Lambda backend: throttles in bursts, crashes, timeouts,
killed runtimes, duplicated executions, lost answers, stragglers, Ctrl-C and a
function that vanishes mid-job.  Tasks run the real deployment package in
subprocesses (against a moto S3); a wrapping invoker injects the faults.  Every
run must give exactly the local backend's answer, and the tests check which
attempts and backoffs happened."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402

from aws_fixtures import enforced_module_bucket, iam_servers  # noqa: E402,F401
from difftest import assert_same  # noqa: E402
from sqlmr.aws import deploy, package  # noqa: E402
from sqlmr.aws.invoker import (FunctionNotFound, InvokeError, InvokeResult,  # noqa: E402
                               SubprocessInvoker, Throttled)
from sqlmr.backends import JobCancelledError, TaskFailedError, lambda_backend  # noqa: E402
from sqlmr.backends.lambda_backend import LambdaBackend, SchedulerOptions  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.session import Session  # noqa: E402
from test_lambda_backend import (REGION, FixedSession, ddl, keys, local_rows,  # noqa: E402
                                 run_sql, upload_tables)

AGG = "SELECT SUBSTR(sourceIP, 1, 3), SUM(adRevenue), COUNT(*) FROM uv " \
      "GROUP BY SUBSTR(sourceIP, 1, 3)"
SCAN = "SELECT destURL, visitDate, duration FROM uv WHERE duration > 8"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def bucket(enforced_module_bucket):
    """An empty account with IAM enforced and one bucket of tables for the module,
    SQLMR_BUCKET pointing at it (aws_fixtures.enforced_module_bucket)."""
    upload_tables(enforced_module_bucket)
    yield enforced_module_bucket


@pytest.fixture(autouse=True)
def no_leftovers(bucket):
    """A failing test must not leave scratch data for the next one to find."""
    yield
    from runtime import storage
    storage.delete_prefix(f"s3://{bucket}/sqlmr/jobs/")


_answers: dict[str, list] = {}


@pytest.fixture
def answer(bucket):
    """The local backend's answer to a query (computed once per module)."""
    def get(sql: str) -> list:
        if sql not in _answers:
            _answers[sql] = local_rows(bucket, sql)
        return _answers[sql]
    return get


class FakeTime:
    """The backend's clock and sleep: sleeping moves the clock without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


def _script(path, body: str) -> str:
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{body}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    # a process another thread forks while the file is open for writing holds
    # that descriptor until it execs; running the script meanwhile fails with
    # ETXTBSY ("Text file busy"), so give those children time to exec
    time.sleep(0.2)
    return str(path)


class FaultInvoker:
    """Runs events with a SubprocessInvoker, except where ``fault(event, n)`` (n:
    how many times this exact attempt was invoked before) names a fault."""

    def __init__(self, inner: SubprocessInvoker, fault, tmp_path=None) -> None:
        self.inner = inner
        self.fault = fault
        self.max_concurrency = inner.max_concurrency
        self.lock = threading.Lock()
        self.calls: list[tuple] = []          # (stage, kind, task, attempt, fault)
        self.runs: list[tuple] = []           # attempts that really ran in a subprocess
        self.function_name = None
        self.tmp_path = tmp_path

    def use_function(self, name: str, memory_mb: int | None = None) -> None:
        if memory_mb:
            self.inner.use_function(name, memory_mb)
        else:
            self.function_name = name

    def use_role(self, role_arn: str, region: str | None = None) -> None:
        self.inner.use_role(role_arn, region)   # a deploying backend: run as the role

    def probe(self, uris: list[str]) -> dict[str, str]:
        return self.inner.probe(uris)

    def _run(self, event: dict) -> InvokeResult:
        with self.lock:
            self.runs.append(_key(event))
        return self.inner.invoke(event)

    def _slow(self, body: str, timeout_s: float) -> SubprocessInvoker:
        inv = SubprocessInvoker(timeout_s=timeout_s)
        inv.python = _script(self.tmp_path / f"py-{os.urandom(6).hex()}.sh", body)
        return inv

    def invoke(self, event: dict) -> InvokeResult:
        key = _key(event)
        with self.lock:
            n = sum(1 for c in self.calls if c[:4] == key)
            what = self.fault(event, n) if self.fault else None
            self.calls.append(key + (what,))
        if what is None:
            return self._run(event)
        if what == "throttle":
            raise Throttled("TooManyRequestsException: Rate Exceeded.")
        if what == "crash":   # the real package fails: the entry does not exist
            return self._run({**event, "entry": "no_such_entry_injected"})
        if what == "timeout":
            return self._slow("import time; time.sleep(60)", timeout_s=1.5).invoke(event)
        if what == "killed":
            return self._slow("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
                              timeout_s=30).invoke(event)
        if what == "oom":     # what Lambda answers when the function ran out of memory
            return InvokeResult(
                {"errorType": "Runtime.OutOfMemory", "errorMessage": "RequestId: x Error: "
                 "Runtime exited with error: signal: killed"}, "Unhandled",
                "REPORT RequestId: x\tDuration: 812.00 ms\tBilled Duration: 812 ms\t"
                "Memory Size: 1769 MB\tMax Memory Used: 1769 MB\t\n", 812, 200, 1769)
        if what == "too_large":
            return InvokeResult(
                {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": "Response "
                 "payload size exceeded maximum allowed payload size (6291556 bytes)."},
                "Unhandled", "", 20, 200, 90)
        if what == "duplicate":   # executed twice; the answer of the first comes back
            first = self._run(event)
            self._run(event)      # ... after the second wrote the same object again
            return first
        if what == "lost":        # it ran, but the answer never arrived
            self._run(event)
            raise InvokeError("ReadTimeoutError: Read timeout on endpoint URL")
        if what.startswith("straggle"):
            time.sleep(float(what.split(":")[1]))
            return self._run(event)
        raise AssertionError(what)


def _key(event: dict) -> tuple:
    return (event["stage"], event["kind"], event["task"], event["attempt"])


def make(fault, tmp_path, *, options: SchedulerOptions | None = None, ft: FakeTime | None = None,
         concurrency: int = 2, deploy_: bool = False, rand=lambda: 0.5, **settings):
    base = dict(backend="lambda", split_mb=0.04, reducers=2)
    base.update(settings)
    s = Settings(**base)
    inv = FaultInvoker(SubprocessInvoker(timeout_s=60, max_concurrency=concurrency), fault,
                       tmp_path)
    ft = ft or FakeTime()
    backend = LambdaBackend(s, invoker=inv, deploy=deploy_, sleep=ft.sleep, clock=ft.clock,
                            rand=rand, options=options or SchedulerOptions(speculation=False))
    return s, backend, inv, ft


def query(settings, backend, bucket, sql, keep=None, progress=None):
    session = FixedSession(settings, backend)
    if progress is not None:
        session.progress = lambda: progress
    list(session.execute(ddl(bucket)))
    return run_sql(session, sql, keep=keep)


def log(backend, what: str) -> list[tuple]:
    return [e[1:5] for r in backend.reports for e in r.log if e[0] == what]


def accepted(backend) -> dict[tuple, int]:
    """(stage, kind, task) → accepted attempt."""
    return {e[:3]: e[3] for e in log(backend, "accepted")}


def wait_until(cond, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# --------------------------------------------------------------------------- throttling

def test_throttle_bursts_back_off_and_lower_the_concurrency(bucket, answer, tmp_path):
    calls = {"n": 0}

    def fault(event, n):
        calls["n"] += 1
        c = calls["n"]
        return "throttle" if c <= 6 or 12 <= c <= 14 else None

    s, backend, inv, ft = make(fault, tmp_path, concurrency=4)
    got = query(s, backend, bucket, AGG)
    assert_same(got, answer(AGG), ordered=False)

    throttled = log(backend, "throttled")
    assert len(throttled) == 9 == sum(r.throttles for r in backend.reports)
    # a throttled invocation did not run and is no failed attempt: every task ran
    # exactly once, as attempt 0
    tasks = sum(r.tasks for r in backend.reports)
    assert len(inv.runs) == tasks and len(set(inv.runs)) == tasks
    assert all(k[3] == 0 for k in inv.runs)
    assert set(accepted(backend).values()) == {0}
    assert sum(r.failures for r in backend.reports) == 0
    # full-jitter exponential backoff (rand fixed at 0.5): 0.5 * 0.25 * 2**n for the
    # n-th throttle in a row of a task
    backoffs = [e[5] for r in backend.reports for e in r.log if e[0] == "backoff"]
    assert len(backoffs) == 9
    steps = {round(0.5 * 0.25 * 2 ** n, 9) for n in range(6)}
    assert all(round(d, 9) in steps for d in backoffs), backoffs
    assert max(backoffs) >= 0.25            # some task was refused twice in a row
    # the concurrency limit was halved on throttling and climbed back to the cap
    limits = backend.reports[0].limits
    assert limits[0] == 4 and min(limits) < 4 and limits[-1] == 4, limits
    # the backoff waited on the injected clock, never longer than it was told
    assert ft.sleeps and sum(ft.sleeps) <= sum(backoffs) + 1e-9


def test_throttled_without_end_gives_up_with_advice(bucket, tmp_path):
    class Always:
        max_concurrency = 2

        def invoke(self, event):
            raise Throttled("TooManyRequestsException: Rate Exceeded.",
                            reason="ReservedFunctionConcurrentInvocationLimitExceeded")

    ft = FakeTime()
    s = Settings(backend="lambda")
    backend = LambdaBackend(s, invoker=Always(), deploy=False, sleep=ft.sleep, clock=ft.clock,
                            options=SchedulerOptions(throttle_give_up_s=120,
                                                     speculation=False))
    events = [_fake_event(i) for i in range(3)]
    t0 = time.monotonic()
    with pytest.raises(TaskFailedError) as info:
        backend.run(events)
    assert time.monotonic() - t0 < 10                     # the waiting was simulated
    assert "reserved concurrency" in str(info.value)
    assert sum(ft.sleeps) >= 120
    assert max(backend.report.backoffs) <= SchedulerOptions().backoff_cap_s
    assert backend.report.limits[-1] == 1


def _fake_event(i: int, stage: int = 1) -> dict:
    return {"v": 1, "job": "j", "stage": stage, "kind": "map", "task": i, "attempt": 0,
            "input": {"splits": [{"uri": f"s3://b/t/part-{i}", "start": 0, "end": 10}]},
            "partitions": 0, "work": "s3://b/sqlmr/jobs/j/", "code": {}, "entry": "m"}


def test_aimd_settles_under_an_account_limit():
    """An account that runs at most 3 invocations at once: the backend's limit comes
    down from its cap, every task is accepted exactly once, in order."""
    class Account:
        max_concurrency = 16

        def __init__(self):
            self.lock = threading.Lock()
            self.running = 0
            self.peak = 0
            self.refused = 0
            self.ran: list[int] = []

        def invoke(self, event):
            with self.lock:
                if self.running >= 3:
                    self.refused += 1
                    raise Throttled("TooManyRequestsException")
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.02)
            with self.lock:
                self.running -= 1
                self.ran.append(event["task"])
            return InvokeResult({"stage": 1, "kind": "map", "task": event["task"],
                                 "attempt": event["attempt"], "output": None}, None,
                                "", 25, 200, 60)

    ft = FakeTime()
    acct = Account()
    backend = LambdaBackend(Settings(backend="lambda"), invoker=acct, deploy=False,
                            sleep=ft.sleep, clock=ft.clock,
                            options=SchedulerOptions(speculation=False))
    results = backend.run([_fake_event(i) for i in range(60)])
    assert [r["task"] for r in results] == list(range(60))
    assert sorted(acct.ran) == list(range(60)) and acct.peak <= 3
    rep = backend.report
    assert rep.limits[0] == 16 and min(rep.limits) <= 4
    assert rep.throttles == acct.refused
    assert rep.throttles < 60          # AIMD: far fewer refusals than tasks
    assert all(r["billing"]["invocations"] == 1 and r["billing"]["billed_ms"] == 25
               for r in results)


# --------------------------------------------------------------------------- failures

def test_crashes_are_retried_as_new_attempts(bucket, answer, tmp_path):
    def fault(event, n):
        if event["kind"] == "map" and event["task"] == 1 and event["attempt"] < 2:
            return "crash"
        if event["kind"] == "reduce" and event["task"] == 0 and event["attempt"] == 0:
            return "crash"
        return None

    s, backend, inv, ft = make(fault, tmp_path)
    kept: list = []
    got = query(s, backend, bucket, AGG, keep=kept)
    stats = kept[0].stats
    kept[0].close()
    assert_same(got, answer(AGG), ordered=False)
    failed = log(backend, "failed")
    assert failed == [(1, "map", 1, 0), (1, "map", 1, 1), (1, "reduce", 0, 0)]
    acc = accepted(backend)
    assert acc[(1, "map", 1)] == 2 and acc[(1, "reduce", 0)] == 1
    assert all(a == 0 for k, a in acc.items() if k not in ((1, "map", 1), (1, "reduce", 0)))
    messages = [e[5] for e in backend.reports[0].log if e[0] == "failed"]
    assert all("KeyError" in m and "no_such_entry_injected" in m for m in messages)
    # billing counts every invocation, failed ones included
    assert stats.invocations == stats.map_tasks + stats.reduce_tasks + 3
    assert stats.attempts == stats.invocations
    assert keys(bucket, "sqlmr/jobs/") == []


def test_a_task_failing_every_attempt_fails_the_job(bucket, tmp_path):
    def fault(event, n):
        return "crash" if event["kind"] == "map" and event["task"] == 2 else None

    s, backend, inv, ft = make(fault, tmp_path)
    with pytest.raises(TaskFailedError) as info:
        query(s, backend, bucket, AGG)
    e = info.value
    assert e.attempts == 3 and e.event["task"] == 2 and e.event["attempt"] == 2
    text = e.render(with_traceback=True)
    assert "stage 1 map task 2 (attempt 2, 3 tried): KeyError: 'no_such_entry_injected'" \
        in text
    assert f"input: s3://{bucket}/data/uservisits/" in text
    assert 'runtime/handler.py", line' in text and "remote traceback:" in text
    assert [k for k in log(backend, "failed")] == [(1, "map", 2, a) for a in range(3)]
    # the job's scratch prefix is removed, and so are outputs of invocations that
    # were still running when the job failed
    assert wait_until(lambda: keys(bucket, "sqlmr/jobs/") == [])


def test_timeouts_killed_runtimes_oom_and_oversized_answers(bucket, answer, tmp_path):
    faults = {0: "timeout", 1: "killed", 2: "oom", 3: "too_large"}

    def fault(event, n):
        if event["kind"] == "map" and event["attempt"] == 0:
            return faults.get(event["task"])
        return None

    s, backend, inv, ft = make(fault, tmp_path)
    kept: list = []
    got = query(s, backend, bucket, SCAN, keep=kept)
    stats = kept[0].stats
    kept[0].close()
    assert_same(got, answer(SCAN), ordered=False)
    msgs = {e[3]: e[5] for e in backend.reports[0].log if e[0] == "failed"}
    assert set(msgs) == {0, 1, 2, 3}
    assert msgs[0].startswith("Sandbox.Timedout: RequestId: ")
    assert msgs[0].endswith("Task timed out after 1.50 seconds")
    assert msgs[1].startswith("Runtime.ExitError") and "signal: kill" in msgs[1]
    assert msgs[2].startswith("Runtime.OutOfMemory")
    assert msgs[3].startswith("Function.ResponseSizeTooLarge")
    assert {k: v for k, v in accepted(backend).items() if k[2] in faults} == \
        {(1, "map", t): 1 for t in faults}
    # a timed-out invocation is billed for the whole timeout
    assert stats.billed_ms >= 1500 + 812
    assert stats.invocations == stats.map_tasks + 4


def test_duplicated_executions_and_lost_answers_neither_lose_nor_double_rows(
        bucket, answer, tmp_path):
    def fault(event, n):
        if n > 0:
            return None
        if event["kind"] == "map" and event["task"] in (0, 3):
            return "duplicate"
        if event["kind"] == "map" and event["task"] == 1 and event["attempt"] == 0:
            return "lost"
        if event["kind"] == "reduce" and event["task"] == 1:
            return "duplicate"
        return None

    for sql in (SCAN, AGG):
        s, backend, inv, ft = make(fault, tmp_path)
        got = query(s, backend, bucket, sql)
        assert_same(got, answer(sql), ordered=False)
        runs = inv.runs
        assert runs.count((1, "map", 0, 0)) == 2 and runs.count((1, "map", 3, 0)) == 2
        assert (1, "map", 1, 0) in runs and (1, "map", 1, 1) in runs
        acc = accepted(backend)
        assert acc[(1, "map", 1)] == 1 and acc[(1, "map", 0)] == 0
        if sql == AGG:
            assert runs.count((1, "reduce", 1, 0)) == 2
        assert log(backend, "failed") == [(1, "map", 1, 0)]
        assert keys(bucket, "sqlmr/jobs/") == []


def test_a_straggler_gets_a_speculative_copy_and_the_loser_is_deleted(
        bucket, answer, tmp_path):
    def fault(event, n):
        if event["kind"] == "map" and event["task"] == 0 and event["attempt"] == 0:
            return "straggle:12"  # long enough that its copy wins on a loaded machine
        return None

    opts = SchedulerOptions(speculation=True, speculation_k=2, speculation_min_s=0.5,
                            poll_s=0.05)
    s, backend, inv, ft = make(fault, tmp_path, options=opts, keep_scratch=True)
    got = query(s, backend, bucket, AGG)
    assert_same(got, answer(AGG), ordered=False)
    rep = backend.reports[0]
    spec = [e for e in rep.log if e[0] == "speculate"]
    assert len(spec) == 1 and spec[0][1:5] == (1, "map", 0, 1)
    assert rep.speculative == 1
    assert accepted(backend)[(1, "map", 0)] == 1
    # the original finishes later: its success is ignored and its output deleted
    assert wait_until(lambda: any(u.endswith("/s1-map/part-00000.a0.part")
                                  for u in rep.deleted_outputs))
    assert rep.discarded == 1
    left = keys(bucket, "sqlmr/jobs/")
    assert any(k.endswith("/s1-map/part-00000.a1.part") for k in left)
    assert not any(k.endswith("/s1-map/part-00000.a0.part") for k in left)


# --------------------------------------------------------------------------- control

def test_ctrl_c_stops_submitting_and_cleans_up(bucket, tmp_path):
    s, backend, inv, ft = make(None, tmp_path, concurrency=1)

    def progress(label, done, total, nbytes):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(JobCancelledError):
        query(s, backend, bucket, AGG, progress=progress)
    rep = backend.reports[0]
    assert rep.tasks >= 4
    assert len([e for e in rep.log if e[0] == "invoke"]) == 1   # the rest never started
    assert len(inv.runs) == 1
    assert wait_until(lambda: keys(bucket, "sqlmr/jobs/") == [])
    # the backend is usable again after a cancel
    got = query(s, backend, bucket, "SELECT COUNT(*) FROM uv")
    assert got == [[2100]]


def test_a_function_that_vanishes_mid_job_is_deployed_again(bucket, answer, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(deploy, "_sleep", lambda s: None)
    monkeypatch.setattr(lambda_backend, "POLICY_PROPAGATION_S", 0.0)
    deploy.forget_deployments()
    lam = boto3.client("lambda", region_name=REGION)
    fn = f"sqlmr-runtime-{package.runtime_hash()[:12]}"
    state = {"calls": 0}

    class Checking(FaultInvoker):
        def invoke(self, event):
            with self.lock:
                state["calls"] += 1
                if state["calls"] == 3:  # someone runs `sqlmr lambda undeploy` now
                    lam.delete_function(FunctionName=fn)
            try:
                lam.get_function(FunctionName=self.function_name)
            except lam.exceptions.ResourceNotFoundException:
                raise FunctionNotFound(f"Function not found: {self.function_name}") from None
            return super().invoke(event)

    s = Settings(backend="lambda", split_mb=0.04, reducers=2)
    inv = Checking(SubprocessInvoker(timeout_s=60), None, tmp_path)
    backend = LambdaBackend(s, invoker=inv, options=SchedulerOptions(speculation=False))
    got = query(s, backend, bucket, AGG)
    assert_same(got, answer(AGG), ordered=False)
    assert sum(r.redeploys for r in backend.reports) == 1
    assert len(log(backend, "function-gone")) >= 1
    assert lam.get_function(FunctionName=fn)["Configuration"]["State"] == "Active"
    assert inv.function_name == fn
    assert sum(r.failures for r in backend.reports) == 0
    deploy.forget_deployments()
