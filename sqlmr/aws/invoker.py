"""Invoking one task on Lambda: the :class:`Invoker` interface and two implementations.

An invoker runs one task event and reports what Lambda reported, nothing more:
scheduling, retries and throttling policy live in
:mod:`sqlmr.backends.lambda_backend`.

``invoke(event) -> InvokeResult`` returns for every invocation that *ran*
(successful or not: a ``FunctionError`` is data, as in the Lambda API) and
raises for one that did not:

* :class:`Throttled` — 429 ``TooManyRequestsException`` (and the other "not now"
  answers: EC2 throttling, function not ready, update in progress).  The task
  did not run; the caller backs off and tries the same attempt again.
* :class:`FunctionNotFound` — the function is gone (undeployed, or replaced by
  a deploy of another runtime version); the caller re-deploys.
* :class:`InvokeError` — no answer or a service error: the task may or may not
  have run.  ``retryable`` is False for requests that can never succeed
  (payload too large, access denied).

:class:`BotoInvoker` calls the real Lambda API.  :class:`SubprocessInvoker`
runs the real deployment package (:func:`sqlmr.aws.package.build_package`,
extracted once) in a fresh ``python -I`` process per task, with Lambda's
response shapes, payload limits, timeouts and a billed duration measured from
the process: the tests use it, and ``SQLMR_LAMBDA_INVOKER=subprocess`` makes
``--backend lambda`` run its tasks on this machine (a dry run against the real
S3 and deployment).
"""

from __future__ import annotations

import atexit
import base64
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any, Protocol

# Lambda's synchronous payload limits (bytes).
MAX_REQUEST_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_BYTES = 6291556
# Lambda returns the last 4 KB of the invocation's log with LogType=Tail.
LOG_TAIL_BYTES = 4096

THROTTLE_CODES = frozenset({
    "TooManyRequestsException", "EC2ThrottledException", "ThrottlingException",
    "ResourceNotReadyException", "ResourceConflictException",
})
# Requests that will fail the same way however often they are sent.
FATAL_CODES = frozenset({
    "RequestTooLargeException", "InvalidRequestContentException",
    "InvalidParameterValueException", "AccessDeniedException", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredTokenException", "KMSAccessDeniedException",
    "KMSDisabledException", "KMSNotFoundException", "InvalidZipFileException",
    "InvalidRuntimeException", "UnsupportedMediaTypeException",
})


@dataclass
class InvokeResult:
    """What one invocation that ran returned."""
    payload: dict | None           # the handler's result, or Lambda's error object
    function_error: str | None     # "Unhandled" (or "Handled") when the function failed
    log_tail: str = ""             # the last 4 KB of the log, REPORT line included
    billed_ms: int | None = None   # "Billed Duration" of the REPORT line
    status: int = 200
    max_memory_mb: int | None = None   # "Max Memory Used" of the REPORT line


class Throttled(Exception):
    """The invocation was refused for now (429); it did not run."""

    def __init__(self, message: str, retry_after: float | None = None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


class FunctionNotFound(Exception):
    """The function to invoke does not exist (any more)."""


class InvokeError(Exception):
    """The invocation got no usable answer; the task may or may not have run."""

    def __init__(self, message: str, retryable: bool = True, traceback: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.traceback = traceback


class Invoker(Protocol):
    def invoke(self, event: dict) -> InvokeResult:
        """Run one task event synchronously."""


_REPORT = re.compile(r"REPORT RequestId:[^\n]*?Billed Duration:\s*(\d+)\s*ms"
                     r"(?:[^\n]*?Max Memory Used:\s*(\d+)\s*MB)?")


def parse_report(log: str) -> tuple[int | None, int | None]:
    """(billed ms, max memory MB) from the last report of a Lambda log tail, in
    either log format: the text ``REPORT`` line or the JSON ``platform.report``
    record.  (None, None) when there is none (the caller estimates, never 0).

    >>> parse_report("START RequestId: 1\\nREPORT RequestId: 1\\tDuration: 1.50 ms\\t"
    ...              "Billed Duration: 2 ms\\tMemory Size: 1769 MB\\tMax Memory Used: 81 MB\\t")
    (2, 81)
    >>> parse_report('{"time":"2024-01-01T00:00:00Z","type":"platform.report","record":'
    ...              '{"requestId":"1","metrics":{"durationMs":1.5,"billedDurationMs":2,'
    ...              '"memorySizeMB":1769,"maxMemoryUsedMB":81}}}')
    (2, 81)
    >>> parse_report("no report here")
    (None, None)
    """
    best: tuple[int, int | None] | None = None
    at = -1
    for m in _REPORT.finditer(log or ""):
        best, at = (int(m.group(1)), int(m.group(2)) if m.group(2) else None), m.start()
    for start, metrics in _json_reports(log or ""):
        billed = metrics.get("billedDurationMs")
        if isinstance(billed, (int, float)) and start > at:
            mem = metrics.get("maxMemoryUsedMB")
            best = (int(billed), int(mem) if isinstance(mem, (int, float)) else None)
            at = start
    return best if best is not None else (None, None)


def _json_reports(log: str) -> list[tuple[int, dict]]:
    """(offset, metrics) of each JSON-format ``platform.report`` line."""
    out = []
    offset = 0
    for line in log.splitlines(keepends=True):
        text = line.strip()
        if text.startswith("{") and "platform.report" in text:
            try:
                rec = json.loads(text)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and rec.get("type") == "platform.report":
                metrics = (rec.get("record") or {}).get("metrics") or {}
                if isinstance(metrics, dict):
                    out.append((offset, metrics))
        offset += len(line)
    return out


def remote_traceback(payload: Any, log_tail: str = "") -> str:
    """The remote traceback of a failed invocation, as text: Lambda's ``stackTrace``
    (a list of frames, strings or ``[file, line, func, text]``), then the log tail."""
    lines: list[str] = []
    if isinstance(payload, dict):
        st = payload.get("stackTrace") or []
        if st:
            lines.append("Traceback (most recent call last):")
        for frame in st:
            if isinstance(frame, str):
                lines.append(frame.rstrip("\n"))
            elif isinstance(frame, (list, tuple)) and len(frame) >= 3:
                lines.append(f'  File "{frame[0]}", line {frame[1]}, in {frame[2]}')
                if len(frame) > 3 and frame[3]:
                    lines.append(f"    {frame[3]}")
        if payload.get("errorType") or payload.get("errorMessage"):
            lines.append(f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}")
    text = "\n".join(lines)
    tail = (log_tail or "").strip()
    if tail:
        text += ("\n" if text else "") + "log tail:\n" + tail
    return text


def error_message(payload: Any, function_error: str | None) -> str:
    """One line: what a failed invocation said."""
    if isinstance(payload, dict) and (payload.get("errorType") or payload.get("errorMessage")):
        return f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}".strip()
    return f"function error ({function_error})" if function_error else "invalid response"


def probe_with(invoker: Any, uris: list[str]) -> dict[str, str]:
    """Ask the function (through ``invoker``) whether its role can read ``uris``:
    the ones it cannot, each with the error it got ({} when all are readable).
    A probe that does not run at all raises :class:`InvokeError`."""
    r = invoker.invoke({"probe": list(uris)})
    if r.function_error or not isinstance(r.payload, dict) or "probe" not in r.payload:
        raise InvokeError("the access probe failed: " + error_message(r.payload,
                                                                      r.function_error))
    from runtime import s3stats
    s3stats.merge(r.payload.get("s3"))   # the driver's requests: it asked for them
    return {u: e for u, e in r.payload["probe"].items() if e}


# --------------------------------------------------------------------------- boto3

class BotoInvoker:
    """Synchronous ``Invoke`` through boto3, with botocore's retries switched off (a
    retried invoke would run the task twice) and a read timeout longer than the
    function's timeout (else a slow task would be cut off, then run again).

    ``concurrency`` is how many invocations may be in flight at once: the HTTP
    connection pool holds that many connections (one per invocation thread,
    kept alive between tasks) and no more.
    """

    bills = True   # the REPORT lines' durations are what AWS bills

    def __init__(self, function_name: str, *, region: str | None, timeout_s: int,
                 concurrency: int, session: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.function_name = function_name
        self.sized: dict[int, str] = {}     # memory MB → the sibling function of that size
        self.max_concurrency = max(1, concurrency)
        self.config = Config(retries={"max_attempts": 0, "mode": "standard"},
                             read_timeout=timeout_s + 60, connect_timeout=10,
                             max_pool_connections=self.max_concurrency)
        session = session or boto3.session.Session(region_name=region)
        self.client = session.client("lambda", region_name=region, config=self.config)

    def use_function(self, function_name: str, memory_mb: int | None = None) -> None:
        """Invoke ``function_name`` (for tasks of ``memory_mb``: tasks whose event
        asks for that memory)."""
        if memory_mb:
            self.sized[memory_mb] = function_name
        else:
            self.function_name = function_name
            self.sized.clear()

    def probe(self, uris: list[str]) -> dict[str, str]:
        """The ``uris`` the function's role cannot read (see :func:`probe_with`)."""
        return probe_with(self, uris)

    def invoke(self, event: dict) -> InvokeResult:
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_REQUEST_BYTES:
            raise InvokeError(f"the task event is {len(body):,} bytes, over Lambda's "
                              f"{MAX_REQUEST_BYTES:,} byte request limit", retryable=False)
        try:
            name = self.sized.get(event.get("memory_mb") or 0, self.function_name)
            resp = self.client.invoke(FunctionName=name,
                                      InvocationType="RequestResponse", LogType="Tail",
                                      Payload=body)
        except ClientError as e:
            err = e.response.get("Error", {}) or {}
            code = str(err.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            msg = f"{code or status}: {err.get('Message', '')}".strip()
            if code in THROTTLE_CODES or status == 429:
                retry = e.response.get("retryAfterSeconds") or e.response.get(
                    "ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
                try:
                    retry_after = float(retry) if retry else None
                except ValueError:
                    retry_after = None
                raise Throttled(msg, retry_after, str(e.response.get("Reason", ""))) from e
            if code == "ResourceNotFoundException" or status == 404:
                raise FunctionNotFound(msg) from e
            raise InvokeError(msg, retryable=code not in FATAL_CODES and status != 413) from e
        except (BotoCoreError, ConnectionError) as e:
            raise InvokeError(f"{type(e).__name__}: {e}") from e
        raw = resp["Payload"].read() if resp.get("Payload") is not None else b""
        log = ""
        if resp.get("LogResult"):
            log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")
        billed, mem = parse_report(log)
        payload: dict | None
        function_error = resp.get("FunctionError")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"errorType": "InvalidResponse",
                       "errorMessage": f"not JSON: {raw[:200]!r}"}
            function_error = function_error or "InvalidResponse"
        return InvokeResult(payload, function_error, log, billed,
                            int(resp.get("StatusCode", 200)), mem)

    def close(self) -> None:
        """Close the pool's connections."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------- subprocess

# What runs in the child: Lambda's Python runtime reduced to one invocation.
# stdout carries only the final JSON; anything the task prints goes to stderr,
# the "log".
_BOOTSTRAP = r"""
import json, os, resource, sys, time, traceback
_out = sys.stdout
sys.stdout = sys.stderr
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
rid = os.environ["SQLMR_REQUEST_ID"]
print("START RequestId: %s Version: $LATEST" % rid, file=sys.stderr, flush=True)
error = None
try:
    event = json.loads(sys.stdin.buffer.read())
    import importlib
    module, _, func = os.environ.get("_HANDLER", "runtime.handler.lambda_handler").rpartition(".")
    handler = importlib.import_module(module)
    print("INIT runtime=%s" % handler.__file__, file=sys.stderr, flush=True)
    result = getattr(handler, func)(event, None)
    try:
        body = json.dumps(result)
    except (TypeError, ValueError) as e:
        error = "Unhandled"
        body = json.dumps({"errorMessage": "Unable to marshal response: %s" % e,
                           "errorType": "Runtime.MarshalError", "requestId": rid,
                           "stackTrace": []})
except Exception as e:
    error = "Unhandled"
    frames = traceback.format_list(traceback.extract_tb(e.__traceback__)[1:])
    print("[ERROR] %s: %s\n%s" % (type(e).__name__, e, "".join(frames)), file=sys.stderr)
    body = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__,
                       "requestId": rid, "stackTrace": frames})
print("END RequestId: %s" % rid, file=sys.stderr, flush=True)
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_out.write(json.dumps({"function_error": error, "body": body, "max_rss_kb": rss_kb}))
_out.flush()
"""

_ENV_PASS = ("HOME", "PATH", "TMPDIR", "SYSTEMROOT")
# Where, not who: what a task run as the role keeps of this process's AWS variables.
_AWS_PLACE = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_USE_FIPS_ENDPOINT",
              "AWS_USE_DUALSTACK_ENDPOINT", "AWS_CA_BUNDLE")
# AssumeRole right after the role's trust policy changed fails until IAM has it.
ASSUME_ROLE_WAIT_S = 60.0
_sleep = time.sleep


def assume_role(role_arn: str, wait_s: float | None = None, region: str | None = None) -> dict:
    """Temporary credentials of ``role_arn`` for this process's identity
    (``{"key", "secret", "token", "expires"}``), retried with backoff while IAM
    does not yet let it (up to ``wait_s``, default :data:`ASSUME_ROLE_WAIT_S`)."""
    import random

    import boto3
    from botocore.exceptions import ClientError

    wait_s = ASSUME_ROLE_WAIT_S if wait_s is None else wait_s
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    sts = boto3.session.Session(region_name=region or None).client("sts")
    waited, step = 0.0, 0.5
    while True:
        try:
            c = sts.assume_role(RoleArn=role_arn, RoleSessionName="sqlmr-subprocess-tasks",
                                DurationSeconds=3600)["Credentials"]
            return {"key": c["AccessKeyId"], "secret": c["SecretAccessKey"],
                    "token": c["SessionToken"], "expires": c["Expiration"].timestamp()}
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code != "AccessDenied" or waited >= wait_s:
                raise InvokeError(
                    f"cannot run tasks as the function's role {role_arn} ({code}: "
                    f"{e.response.get('Error', {}).get('Message', '')}): the subprocess "
                    f"invoker needs sts:AssumeRole on it, and the role must trust this "
                    f"identity (the Lambda backend adds it to the role's trust policy, "
                    f"which needs iam:UpdateAssumeRolePolicy)", retryable=False) from e
            delay = min(step, wait_s - waited) * (0.5 + random.random() / 2)
            _sleep(delay)
            waited += delay
            step = min(step * 2, 8.0)
_package_lock = threading.Lock()
_package_dirs: dict[str, str] = {}


def extract_package() -> str:
    """The real deployment zip, built and extracted once per process (per hash):
    the folder that plays ``/var/task``."""
    from sqlmr.aws import package

    blob, sha = package.build_package()
    return extract_zip(blob, sha, "sqlmr-lambda")


def extract_zip(blob: bytes, digest: str, prefix: str) -> str:
    """A package zip extracted once per process and content hash, into a
    folder removed at exit (:func:`remove_extracted_packages`).  The folder
    is inside this process's claimed temporary folder
    (:func:`sqlmr.scratch.temp_dir`), so when the process is killed before
    its exit handlers run, the next run's sweep removes it."""
    from sqlmr import scratch

    with _package_lock:
        folder = _package_dirs.get(digest)
        if folder and os.path.isdir(folder):
            return folder
        folder = tempfile.mkdtemp(prefix=f"{prefix}-{digest[:12]}-", dir=scratch.temp_dir())
        zipfile.ZipFile(io.BytesIO(blob)).extractall(folder)
        _package_dirs[digest] = folder
        return folder


class SubprocessInvoker:
    """Runs each task event as Lambda would, in a fresh isolated Python process on
    this machine, from the real deployment package.

    * only the extracted package is added to ``sys.path`` (``python -I``: no
      user site, no ``PYTHON*`` variables, no current directory);
    * with a role (``role_arn``, or :meth:`use_role`; the Lambda backend gives
      the function's), the child gets that role's temporary credentials
      (``sts:AssumeRole``), the region and endpoints, and no other credentials,
      so it may do exactly what the function may; without one, the AWS
      variables of this process;
    * a failure comes back as Lambda's ``{"errorMessage", "errorType",
      "stackTrace"}`` with ``FunctionError: "Unhandled"``; a task still running
      after ``timeout_s`` is killed and reported as ``Sandbox.Timedout``, "Task
      timed out after N seconds", billed for the whole timeout; a child that
      dies without answering (killed, out of memory) as ``Runtime.ExitError``;
    * request and response payload limits are Lambda's;
    * the log tail ends with a REPORT line whose billed duration is the
      process's wall time (start-up included, as Lambda bills its init phase),
      rounded up to 1 ms.
    """

    bills = False   # its REPORT line's duration is local wall time: an estimate
    any_memory = True   # a task's event says its memory, and gets it

    def __init__(self, *, timeout_s: float = 900, memory_mb: int = 1769,
                 max_concurrency: int | None = None, python: str | None = None,
                 function_name: str = "sqlmr-runtime-local",
                 role_arn: str | None = None, package_dir: str | None = None,
                 handler: str = "runtime.handler.lambda_handler",
                 environment: dict[str, str] | None = None) -> None:
        self.timeout_s = timeout_s
        self.role_arn = role_arn
        self.region: str | None = None
        self._credentials: dict | None = None
        self.memory_mb = memory_mb
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.python = python or sys.executable
        self.function_name = function_name
        # another function's package (the driver's), its handler and the
        # environment variables it is configured with, as Lambda sets them
        self.sized: dict[int, str] = {}     # memory MB → the sibling function's name
        self.package_dir = package_dir or extract_package()
        self.handler = handler
        self.environment = dict(environment or {})
        self.invocations = 0
        self._lock = threading.Lock()

    def use_function(self, function_name: str, memory_mb: int | None = None) -> None:
        """Name tasks run under (``memory_mb``: of the sibling function of that
        memory; a task's event says its memory, which this invoker gives it)."""
        if memory_mb:
            self.sized[memory_mb] = function_name
        else:
            self.function_name = function_name

    def use_role(self, role_arn: str | None, region: str | None = None) -> None:
        """Run tasks with the credentials of ``role_arn`` (the function's role),
        obtained by ``sts:AssumeRole`` (in ``region``) with this process's credentials."""
        with self._lock:
            self.region = region or self.region
            if role_arn != self.role_arn:
                self.role_arn = role_arn
                self._credentials = None

    def probe(self, uris: list[str]) -> dict[str, str]:
        """The ``uris`` the function's role cannot read (see :func:`probe_with`)."""
        return probe_with(self, uris)

    def role_credentials(self) -> dict[str, str] | None:
        """The role's temporary credentials (renewed 5 minutes before they expire),
        or None when no role is set."""
        with self._lock:
            if self.role_arn is None:
                return None
            creds = self._credentials
            if creds is None or creds["expires"] - time.time() < 300:
                creds = self._credentials = assume_role(self.role_arn, region=self.region)
            return creds

    def _env(self, request_id: str, memory_mb: int | None = None) -> dict[str, str]:
        memory_mb = memory_mb or self.memory_mb
        role = self.role_credentials()
        if role is None:  # no role: the caller's own AWS environment
            env = {k: v for k, v in os.environ.items()
                   if k.startswith("AWS_") and not k.startswith("AWS_LAMBDA_")}
        else:  # as on Lambda: the role's credentials and nothing else
            env = {k: v for k, v in os.environ.items()
                   if k.startswith("AWS_ENDPOINT_URL") or k in _AWS_PLACE}
            env.update({"AWS_ACCESS_KEY_ID": role["key"],
                        "AWS_SECRET_ACCESS_KEY": role["secret"],
                        "AWS_SESSION_TOKEN": role["token"],
                        "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                        "AWS_EC2_METADATA_DISABLED": "true"})
            if self.region:  # Lambda always sets these; a profile's region is not read
                env.setdefault("AWS_REGION", self.region)
                env.setdefault("AWS_DEFAULT_REGION", self.region)
        # the runtime's S3 retry and hedge knobs
        env.update({k: v for k, v in os.environ.items() if k.startswith("SQLMR_S3_")})
        env.update({k: os.environ[k] for k in _ENV_PASS if k in os.environ})
        env.update(self.environment)
        env.update({
            "LAMBDA_TASK_ROOT": self.package_dir,
            "_HANDLER": self.handler,
            "AWS_LAMBDA_FUNCTION_NAME": self.sized.get(memory_mb, self.function_name),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "sqlmr_subprocess",
            "LANG": "C.UTF-8", "TZ": "UTC",
            "SQLMR_REQUEST_ID": request_id,
        })
        return env

    def invoke(self, event: dict) -> InvokeResult:
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_REQUEST_BYTES:
            raise InvokeError(f"the task event is {len(body):,} bytes, over Lambda's "
                              f"{MAX_REQUEST_BYTES:,} byte request limit", retryable=False)
        with self._lock:
            self.invocations += 1
        memory_mb = event.get("memory_mb") or self.memory_mb
        rid = str(uuid.uuid4())
        t0 = time.perf_counter()
        proc = subprocess.Popen([self.python, "-I", "-c", _BOOTSTRAP],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.package_dir,
                                env=self._env(rid, memory_mb))
        timed_out = False
        try:
            out, err = proc.communicate(body, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        elapsed_ms = (time.perf_counter() - t0) * 1000
        log = err.decode("utf-8", "replace")
        mem_used: int | None = None
        function_error: str | None
        payload: dict | None
        if timed_out:
            billed = int(self.timeout_s * 1000)
            function_error = "Unhandled"
            payload = {"errorType": "Sandbox.Timedout",
                       "errorMessage": f"RequestId: {rid} Error: Task timed out after "
                                       f"{self.timeout_s:.2f} seconds"}
            log += f"\n{time.strftime('%Y-%m-%dT%H:%M:%S')} {rid} Task timed out after " \
                   f"{self.timeout_s:.2f} seconds\n"
        else:
            billed = max(1, math.ceil(elapsed_ms))
            try:
                reply = json.loads(out.decode("utf-8"))
            except ValueError:
                reply = None
            if proc.returncode != 0 or not isinstance(reply, dict):
                function_error = "Unhandled"
                how = (f"signal: {_signal_name(-proc.returncode)}" if proc.returncode < 0
                       else f"exit status {proc.returncode}")
                payload = {"errorType": "Runtime.ExitError",
                           "errorMessage": f"RequestId: {rid} Error: Runtime exited with "
                                           f"error: {how}"}
            else:
                mem_used = max(1, math.ceil(reply["max_rss_kb"] / 1024))
                function_error = reply["function_error"]
                text = reply["body"]
                if len(text.encode("utf-8")) > MAX_RESPONSE_BYTES:
                    function_error = "Unhandled"
                    payload = {"errorType": "Function.ResponseSizeTooLarge",
                               "errorMessage": "Response payload size exceeded maximum "
                                               f"allowed payload size ({MAX_RESPONSE_BYTES} "
                                               "bytes)."}
                else:
                    payload = json.loads(text)
        report = (f"REPORT RequestId: {rid}\tDuration: {elapsed_ms:.2f} ms\t"
                  f"Billed Duration: {billed} ms\tMemory Size: {memory_mb} MB\t"
                  + (f"Max Memory Used: {mem_used} MB\t" if mem_used is not None else "")
                  + "\n")
        tail = (log.rstrip("\n") + "\n" + report)[-LOG_TAIL_BYTES:]
        billed_ms, max_mem = parse_report(tail)
        return InvokeResult(payload, function_error, tail, billed_ms, 200, max_mem)

    def close(self) -> None:
        pass


def _signal_name(num: int) -> str:
    import signal
    try:
        return signal.Signals(num).name.removeprefix("SIG").lower()
    except ValueError:
        return str(num)


def remove_extracted_packages() -> None:
    """Delete the folders :func:`extract_package` made (tests, atexit)."""
    with _package_lock:
        for folder in _package_dirs.values():
            shutil.rmtree(folder, ignore_errors=True)
        _package_dirs.clear()


atexit.register(remove_extracted_packages)
