"""The driver function's handler: plan and run a query on the worker function,
leave its result in S3 (:mod:`sqlmr.results_store`) and return.

The event::

    {"query_id": "q-…", "statements": "SELECT …", "settings": {"reducers": 4, …},
     "catalog": "s3://bucket/prefix/"}

or, from a schedule (:mod:`sqlmr.schedules`), ``"schedule": NAME`` and
``"scheduled_time"`` in place of ``query_id``: the run's id is then
``NAME/<timestamp>``.

The catalog must be in S3.  The driver runs SELECT (and SET / EXPLAIN); the
tasks run on the worker function (``SQLMR_WORKER_FUNCTION``).  Its role may
not change IAM: a table the worker may not read fails naming the
``sqlmr lambda grant`` command to run.

Lambda retries an asynchronous invocation that died; the retry (same event)
finds the stages the dead driver finished in the checkpoint and does not run
them again (:mod:`sqlmr.resumable`).  When its time runs short between stages,
the driver invokes itself again with the same event and returns.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from sqlmr.results_store import DONE, QueryStore, valid_query_id

# Settings a client may send (the rest are the driver's own).
CLIENT_SETTINGS = ("dialect", "split_mb", "reducers", "shuffle", "reduce_mb", "strict",
                   "broadcast_mb", "memory_mb", "architecture", "max_cost")
# Statements a serverless driver runs: it reads the catalog, it does not change it.
_ALLOWED = re.compile(r"^\s*(SELECT|WITH|FROM|SET|EXPLAIN|VALUES|\()", re.I)
# Seconds left at a stage boundary below which the driver continues in a new invocation.
RESERVE_S = float(os.environ.get("SQLMR_DRIVER_RESERVE_S") or 120)


class DriverError(Exception):
    """The query cannot run on the serverless driver: the message says why."""


def query_id_of(event: dict) -> str:
    """The query's id: given, or ``<schedule>/<scheduled time>`` for a scheduled run.

    >>> query_id_of({"query_id": "q-1"})
    'q-1'
    >>> query_id_of({"schedule": "nightly", "scheduled_time": "2026-12-02T03:00:00Z"})
    'nightly/20261202T030000Z'
    """
    if event.get("schedule"):
        when = str(event.get("scheduled_time") or "")
        if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", when):
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # no time given
        return f"{event['schedule']}/{when.replace('-', '').replace(':', '')}"
    return str(event.get("query_id") or "")


def _settings(event: dict):
    from sqlmr.config import Settings, parse_value
    s = Settings(backend="lambda", keep_scratch=True, timing=True)
    for name, value in (event.get("settings") or {}).items():
        if name in CLIENT_SETTINGS and value is not None:
            setattr(s, name, parse_value(name, str(value), getattr(s, name)))
    s.catalog = event.get("catalog") or os.environ.get("SQLMR_CATALOG", "")
    return s


def worker_invoker() -> Any:
    """How the driver invokes the worker function."""
    from sqlmr.aws import invoker
    timeout = int(os.environ.get("SQLMR_LAMBDA_TIMEOUT_S") or 900)
    memory = int(os.environ.get("SQLMR_LAMBDA_MEMORY_MB") or 1769)
    if (os.environ.get("SQLMR_LAMBDA_INVOKER") or "").lower() == "subprocess":
        inv = invoker.SubprocessInvoker(timeout_s=timeout, memory_mb=memory,
                                        function_name=os.environ["SQLMR_WORKER_FUNCTION"])
        role = os.environ.get("SQLMR_WORKER_ROLE_ARN")
        if role:
            inv.use_role(role, os.environ.get("AWS_REGION"))
    else:
        inv = invoker.BotoInvoker(os.environ["SQLMR_WORKER_FUNCTION"],
                                  region=os.environ.get("AWS_REGION"), timeout_s=timeout,
                                  concurrency=int(os.environ.get("SQLMR_LAMBDA_CONCURRENCY")
                                                  or 1000))
    for mb, name in sized_workers(os.environ.get("SQLMR_WORKER_SIZED", "")).items():
        inv.use_function(name, mb)   # tasks the planner gives less memory run there
    return inv


def sized_workers(spec: str) -> dict[int, str]:
    """The worker's siblings by memory, from ``SQLMR_WORKER_SIZED``
    (``sqlmr lambda deploy`` writes it into the driver's environment).

    >>> sized_workers("1024=sqlmr-runtime-ab-1024mb,1280=sqlmr-runtime-ab-1280mb")
    {1024: 'sqlmr-runtime-ab-1024mb', 1280: 'sqlmr-runtime-ab-1280mb'}
    >>> sized_workers("")
    {}
    """
    out: dict[int, str] = {}
    for item in filter(None, spec.split(",")):
        mb, _, name = item.partition("=")
        out[int(mb)] = name
    return out


def continue_later(event: dict) -> None:
    """Invoke this function again, asynchronously, with the same event."""
    import json
    import subprocess
    import sys
    body = json.dumps(event).encode("utf-8")
    if (os.environ.get("SQLMR_LAMBDA_INVOKER") or "").lower() == "subprocess":
        from sqlmr.aws import invoker
        env = dict(os.environ, SQLMR_REQUEST_ID=os.urandom(8).hex())
        proc = subprocess.Popen([sys.executable, "-I", "-c", invoker._BOOTSTRAP],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=os.environ["LAMBDA_TASK_ROOT"],
                                env=env, start_new_session=True)
        proc.stdin.write(body)
        proc.stdin.close()
        return
    import boto3
    boto3.client("lambda").invoke(FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                                  InvocationType="Event", Payload=body)


class _GrantCheckingBackend:
    """The Lambda backend as the driver uses it: no deploy and no grants (its role
    may not change IAM); before a job, the worker is asked whether it can read
    every table, and a table it cannot fails naming the grant command."""

    def __init__(self, inner: Any, scratch: str) -> None:
        self.inner = inner
        self.scratch = scratch   # this query's jobs, every run's, under one folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prepare_inputs(self, splits: list[dict]) -> None:
        from sqlmr.aws import grants
        self.inner.prepare_inputs(splits)
        sample: dict[str, str] = {}
        for uri, loc in sorted(grants.table_roots(splits).items()):
            sample.setdefault(loc, uri)
        if not sample:
            return
        denied = self.inner._invoker.probe(sorted(sample.values()))
        if denied:
            locs = sorted({loc for loc, uri in sample.items() if uri in denied})
            raise DriverError(f"the worker function may not read {', '.join(locs)}: run "
                              + "; ".join(f"sqlmr lambda grant {loc}" for loc in locs)
                              + " (from a machine that may change IAM policies)")

    def run(self, events, progress=None):
        return self.inner.run(events, progress)

    def close(self) -> None:
        self.inner.close()


def _access_hint(e: Exception) -> str:
    text = str(e)
    m = re.search(r"s3://[^\s'\",)]+", text)
    if m and ("AccessDenied" in text or "access denied" in text.lower()):
        where = m.group(0)
        return (f"{text} (the driver function may read only granted tables: run "
                f"sqlmr lambda grant {where})")
    return text


def lambda_handler(event: dict, context: Any = None) -> dict:
    started = time.monotonic()
    os.environ.setdefault("SQLMR_HOME", "/tmp/sqlmr")
    bucket = os.environ.get("SQLMR_BUCKET", "")
    qid = query_id_of(event)
    if not bucket or not valid_query_id(qid):
        raise DriverError(f"the driver needs SQLMR_BUCKET and a query id (got {qid!r})")
    store = QueryStore(bucket, qid)
    status = store.status() or {}
    if status.get("state") in DONE:   # a retry of a query that is over
        return status
    attempts = int(status.get("attempts", 0)) + 1
    text = str(event.get("statements") or "")
    store.set_status("running", statement=text, attempts=attempts,
                     schedule=event.get("schedule"))
    try:
        return _run(event, context, store, text, attempts, started)
    except Exception as e:  # noqa: BLE001 — a failed query is a status, not a retry
        from sqlmr.backends import JobCancelledError
        from compiler.errors import SqlError
        if isinstance(e, JobCancelledError):
            return store.set_status("cancelled", error=str(e))
        msg = e.render() if isinstance(e, SqlError) else _access_hint(e)
        return store.set_status("failed", error=f"{type(e).__name__}: {msg}"
                                if not isinstance(e, (SqlError, DriverError)) else msg)


def _run(event: dict, context: Any, store: QueryStore, text: str, attempts: int,
         started: float) -> dict:
    from sqlmr.backends.lambda_backend import LambdaBackend
    from sqlmr.catalog_s3 import S3Catalog
    from sqlmr.render import summary_lines
    from sqlmr.resumable import CheckpointingBackend, ContinueLater, remaining_time
    from sqlmr.session import Session
    from compiler.statements import split_statements

    settings = _settings(event)
    if not settings.catalog.startswith("s3://"):
        raise DriverError("the serverless driver reads the catalog from S3: set catalog = "
                          "s3://bucket/prefix/ (or SQLMR_CATALOG)")
    for st in split_statements(text, settings.dialect):
        if not _ALLOWED.match(st.text):
            raise DriverError(f"the serverless driver runs queries (SELECT, SET, EXPLAIN); run "
                              f"this from your machine: {st.text.strip()[:60]}")
    if store.cancel_requested():
        raise _cancelled()
    hook = None
    if os.environ.get("SQLMR_DRIVER_TEST_EXIT_AFTER_CHECKPOINT") and attempts == 1:
        def hook(doc: dict) -> None:   # a driver dying mid-job (tests)
            os._exit(17)
    inner = LambdaBackend(settings, invoker=worker_invoker(), deploy=False)
    scratch = f"{inner.scratch}{store.query_id}/"
    backend = CheckpointingBackend(_GrantCheckingBackend(inner, scratch), store,
                                   time_left=remaining_time(context, started),
                                   reserve_s=RESERVE_S, after_checkpoint=hook)
    session = Session(settings, catalog=S3Catalog(settings.catalog))
    session._backend = backend   # type: ignore[assignment]
    session._backend_key = (settings.backend, settings.effective_workers())
    messages: list[str] = []
    written: dict[str, Any] = {}
    continuing = False
    try:
        for result in session.execute(text):
            try:
                if result.kind == "rows":
                    n = store.write_result(result.columns, result.rows, result.types)
                    written = {"columns": list(result.columns),
                               "types": [str(t) if t else None for t in result.types],
                               "rows": n,
                               "summary": summary_lines(result, settings)
                               if result.stats is not None else [],
                               "map_tasks": getattr(result.stats, "map_tasks", 0),
                               "reduce_tasks": getattr(result.stats, "reduce_tasks", 0)}
                elif result.message:
                    messages.append(result.message)
            finally:
                result.close()
    except ContinueLater as e:
        continuing = True
        continue_later(event)
        return store.set_status("running", note=str(e))
    finally:
        session._backend = None
        backend.close()
        if not continuing:   # every run's scratch: the earlier runs' outputs too
            delete_scratch(scratch)
    store.write_stats({**written, "messages": messages,
                       "tasks_invoked": backend.invoked_tasks,
                       "tasks_from_checkpoint": backend.replayed_tasks,
                       "attempts": attempts})
    return store.set_status("succeeded", rows=written.get("rows", 0),
                            result=store.uri("result.csv") if written else None)


def delete_scratch(work: str) -> None:
    """Delete a job's scratch objects: in batches of 1,000, each object on its own
    when a store refuses the batch (some authorize DeleteObjects on the bucket,
    not on the keys the role may delete).  The lifecycle rule expires what stays."""
    import boto3
    from sqlmr.results_store import _split
    bucket, prefix = _split(work)
    s3 = boto3.session.Session().client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        batch = keys[i:i + 1000]
        resp = s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in batch], "Quiet": True})
        for e in resp.get("Errors", []):
            if e.get("Code") == "AccessDenied":
                s3.delete_object(Bucket=bucket, Key=e["Key"])


def _cancelled():
    from sqlmr.backends import JobCancelledError
    return JobCancelledError("cancelled before it started")
