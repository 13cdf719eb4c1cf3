"""The Lambda backend: task events invoked on AWS Lambda, built to survive
throttling and failures.

The same handler and the same events as the local backend; what differs is
where a task runs and what can go wrong on the way:

* **Deploy on first use.**  The function for the current runtime hash is made
  (or found) by :func:`sqlmr.aws.deploy.ensure_deployed` before the first task;
  if it vanishes mid-job (``ResourceNotFoundException``: undeployed, or replaced
  by a deploy of another runtime version) it is deployed again and the task
  re-sent.  Before a job's first task, every object it reads (all stages,
  broadcast sides included: :meth:`LambdaBackend.prepare_inputs`) must be on S3
  in the function's region; its table is granted to the function's role
  (:mod:`sqlmr.aws.grants`, one location per table) and the function is asked
  (a probe invocation) until it can read it, with backoff up to
  :data:`POLICY_PROPAGATION_S`.  With the subprocess invoker, tasks run with the
  role's credentials (:meth:`SubprocessInvoker.use_role`).
* **Concurrency cap.**  At most ``concurrency`` invocations in flight (setting,
  default 1,000: Lambda's default per-region limit).  A throttle (429) halves
  the current limit (once per round of invocations), each success raises it by
  one, back up to the cap (AIMD).
* **Bounded threads and sockets.**  A synchronous invocation holds a thread and
  an HTTP connection for the whole task, so the cap is also bounded by the
  descriptors the process may open (:func:`sqlmr.fds.connection_slots`: the
  soft ``RLIMIT_NOFILE`` raised toward the hard one first); invocations run on
  a fixed pool of that many threads (:class:`InvokeThreads`) and the invoker's
  connection pool is that size.  Scarce descriptors mean fewer in flight,
  never a failed job.
* **Backoff.**  A throttled invocation did not run: it is sent again, same
  attempt, after an exponential backoff with full jitter (uniform in
  [0, min(cap, base · 2^n)], or Lambda's ``retryAfterSeconds`` if longer).  It
  does not count as a failed attempt; a task refused without a break for
  ``throttle_give_up_s`` fails the job with a message about concurrency.
* **Retries as new attempts.**  A task that fails (``FunctionError``: an
  exception, a timeout, out of memory, a response too large; or an invocation
  that got no answer) is run again as a new attempt
  (:func:`runtime.events.with_attempt`: new output names) up to
  ``max_attempts`` failures; then :class:`TaskFailedError` names the task, its
  input and the remote traceback.
* **Exactly one accepted attempt per task.**  The first successful result wins;
  a later success of another attempt of the same task is ignored and its output
  object deleted.
* **Speculation.**  Once half the tasks are done, a task running longer than
  ``speculation_k`` × the median task time (and at least
  ``speculation_min_s``) gets one speculative copy as a new attempt; the first
  to finish wins.
* **Ctrl-C.**  Nothing more is submitted, pending tasks are dropped and
  :class:`JobCancelledError` is raised at once; invocations already running
  finish in the cloud and write only under the job's scratch prefix, which the
  driver deletes (and the bucket's lifecycle rule expires).
* **Billing.**  Each accepted result carries ``billing``: the billed
  milliseconds (from each invocation's report, text ``REPORT`` line or JSON
  ``platform.report``; an invocation without one is billed its wall time and
  counted as ``estimated``) and invocations of every
  attempt of that task, the function's memory and architecture, so the driver
  reports billed GB-s rather than an estimate.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import os
import queue
import random
import statistics
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from runtime import storage
from runtime.events import Event, Result, with_attempt
from sqlmr import fds
from sqlmr.aws.config import AwsSetupError, LambdaSettings, resolve_settings
from sqlmr.aws.invoker import (
    FunctionNotFound,
    InvokeError,
    InvokeResult,
    Throttled,
    error_message,
    remote_traceback,
)
from sqlmr.backends import JobCancelledError, ProgressFn, TaskFailedError
from sqlmr.backends.invoke_threads import InvokeThreads
from sqlmr.config import Settings


# After the function's policy grants a new table location: how long to keep probing
# (with backoff) for IAM to apply it before the job fails naming the location.
POLICY_PROPAGATION_S = 60.0
# Errors of a task that a retry cannot fix: the input, not the machine
FINAL_ERRORS = frozenset({"InputError"})


@dataclass
class SchedulerOptions:
    """How the backend schedules, retries and backs off (see the module docstring)."""
    max_attempts: int = 3            # failed attempts of a task before the job fails
    backoff_base_s: float = 0.25     # first throttle backoff step
    backoff_cap_s: float = 20.0      # largest backoff step
    throttle_give_up_s: float = 900.0
    speculation: bool = True
    speculation_k: float = 3.0       # straggler: running > k × median of finished tasks
    speculation_after: float = 0.5   # ... once this share of the tasks is done
    speculation_min_s: float = 10.0  # ... and for at least this long
    max_redeploys: int = 2           # re-deploys per run after the function vanished
    poll_s: float = 0.5              # longest wait between straggler checks

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "SchedulerOptions":
        """Defaults, changed by ``SQLMR_LAMBDA_MAX_ATTEMPTS`` and
        ``SQLMR_LAMBDA_SPECULATION`` (``off``, or the factor k)."""
        env = os.environ if env is None else env
        opts = cls()
        if env.get("SQLMR_LAMBDA_MAX_ATTEMPTS"):
            try:
                opts.max_attempts = max(1, int(env["SQLMR_LAMBDA_MAX_ATTEMPTS"]))
            except ValueError:
                raise AwsSetupError("SQLMR_LAMBDA_MAX_ATTEMPTS must be a whole number") from None
        spec = (env.get("SQLMR_LAMBDA_SPECULATION") or "").strip().lower()
        if spec in ("off", "0", "no", "false"):
            opts.speculation = False
        elif spec and spec not in ("on", "yes", "true"):
            try:
                opts.speculation_k = float(spec)
            except ValueError:
                raise AwsSetupError("SQLMR_LAMBDA_SPECULATION is on, off or a factor "
                                    "like 3") from None
        return opts


@dataclass
class RunReport:
    """What happened during one ``run`` (for tests, ``--debug`` and curious users)."""
    tasks: int = 0
    invocations: int = 0            # invocations that ran (billed), retries included
    throttles: int = 0
    backoffs: list[float] = field(default_factory=list)
    failures: int = 0               # failed attempts (function errors, lost invocations)
    retries: int = 0                # new attempts started after a failure
    speculative: int = 0            # speculative attempts started
    discarded: int = 0              # successes of an attempt after another was accepted
    deleted_outputs: list[str] = field(default_factory=list)
    redeploys: int = 0
    limits: list[int] = field(default_factory=list)   # concurrency limit after each change
    billed_ms: int = 0
    log: list[tuple] = field(default_factory=list)    # (what, stage, kind, task, attempt, ...)


def lambda_overrides(settings: Settings) -> dict[str, Any]:
    """The LambdaSettings a session's settings override: only values the user set
    (differ from sqlmr's defaults), so the environment's SQLMR_LAMBDA_* still count."""
    defaults = Settings()
    out: dict[str, Any] = {}
    if settings.memory_mb != defaults.memory_mb:
        out["memory_mb"] = settings.memory_mb
    if settings.architecture != defaults.architecture:
        out["architecture"] = settings.architecture
    return out


class _Task:
    __slots__ = ("index", "event", "next_attempt", "running", "accepted", "accepted_attempt",
                 "failures", "last_error", "throttles", "throttled_since", "billed_ms",
                 "invocations", "max_memory_mb", "speculated", "s3_other", "estimated")

    def __init__(self, index: int, event: Event) -> None:
        self.index = index
        self.event = event
        self.next_attempt = event.get("attempt", 0)
        self.running: dict[int, float] = {}     # attempt → start time
        self.accepted: Result | None = None
        self.accepted_attempt = -1
        self.failures = 0
        self.last_error: tuple[Event, str, str] | None = None
        self.throttles = 0
        self.throttled_since: float | None = None
        self.billed_ms = 0
        self.invocations = 0
        self.max_memory_mb = 0
        self.speculated = False
        self.s3_other: dict[str, int] = {}   # S3 requests of attempts not accepted
        self.estimated = 0      # invocations without a parsable report: time estimated


class LambdaBackend:
    """Runs task events on AWS Lambda (see the module docstring).

    ``invoker`` replaces how a task is invoked (tests: a SubprocessInvoker running
    the real package, wrapped to inject faults); by default a BotoInvoker, or a
    SubprocessInvoker when ``SQLMR_LAMBDA_INVOKER=subprocess``.  ``deploy=False``
    skips deploying (only with an injected invoker).  ``sleep``/``clock``/``rand``
    are injectable so tests of backoff need not wait.
    """

    name = "lambda"

    def __init__(self, settings: Settings | None = None, *, invoker: Any = None,
                 overrides: dict[str, Any] | None = None,
                 options: SchedulerOptions | None = None, deploy: bool = True,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings = settings or Settings(backend="lambda")
        self._extra = dict(overrides or {})
        self.options = options or SchedulerOptions.from_env()
        self._deploy = deploy
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._injected = invoker
        self._invoker: Any = invoker
        self._info: Any = None
        self._prepared_for: LambdaSettings | None = None
        self._bucket_checked = False
        self._granted: set[str] = set()    # table locations the function may read
        self._regions: dict[str, str | None] = {}   # table bucket → its region
        self._sized: dict[int, str] = {}   # memory MB → its sibling function's name
        self._slots = 0                    # invocations the descriptors allow at once
        self._threads: InvokeThreads | None = None
        self.lambda_settings = self._resolve()
        if deploy:
            from sqlmr.aws.deploy import _session
            from sqlmr.aws.config import check_credentials
            check_credentials(_session(self.lambda_settings.region), self.lambda_settings)
        elif not self.lambda_settings.bucket:
            raise AwsSetupError("the Lambda backend needs a job bucket: set SQLMR_BUCKET")
        self.report = RunReport()
        self.reports: list[RunReport] = []

    # ------------------------------------------------------------ settings
    def _resolve(self) -> LambdaSettings:
        return resolve_settings({**lambda_overrides(self.settings), **self._extra})

    @property
    def scratch(self) -> str:
        """Where the driver puts job data: ``s3://BUCKET/sqlmr/jobs/``."""
        return self.lambda_settings.jobs_uri()

    def _prepare(self) -> None:
        """Resolve settings (they may have changed with SET), deploy if needed and
        make the invoker."""
        ls = self._resolve()
        if ls == self._prepared_for and self._invoker is not None:
            return
        self.lambda_settings = ls
        self._sized = {}
        if self._deploy:
            from sqlmr.aws import deploy
            if not self._bucket_checked:
                aws = deploy._Aws(ls)
                deploy._friendly(deploy._check_bucket)(aws, dataclasses.replace(
                    ls, region=aws.region))
                self._bucket_checked = True
            self._info = deploy.ensure_deployed(ls)
        self._slots = fds.connection_slots(ls.concurrency)
        self._invoker = self._injected or self._make_invoker(ls)
        if self._info is not None and hasattr(self._invoker, "use_function"):
            self._invoker.use_function(self._info.function_name)
        if self._info is not None and hasattr(self._invoker, "use_role"):
            # tasks on this machine run as the function's role, as on Lambda
            from sqlmr.aws import deploy
            self._invoker.use_role(deploy.allow_local_tasks(ls), self._info.region)
        self._prepared_for = ls

    def prepare_inputs(self, splits: list[dict]) -> None:
        """Before a job's first task: every object it will read (all stages, broadcast
        sides included) is on S3, in the function's region, granted to its role and
        readable by it; otherwise fail now, naming the location."""
        _check_splits(splits)
        if not any(storage.is_s3(sp["uri"]) for sp in splits):
            return
        self._prepare()
        self._grant_splits(splits)

    def _grant(self, events: list[Event]) -> None:
        """Let the function read the objects these tasks read (see _grant_splits)."""
        self._grant_splits(_splits_of(events))

    def _grant_splits(self, splits: list[dict]) -> None:
        """Grant the function's role the tables of ``splits`` (one location per table),
        check their region, then probe until it can read them (bounded backoff)."""
        if not self._deploy:
            return
        from sqlmr.aws import grants
        roots = grants.table_roots(splits)
        new = {u: loc for u, loc in roots.items() if not grants.covered(loc, self._granted)}
        if not new:
            return
        ls = self.lambda_settings
        self._check_regions({grants._split(u)[0] for u in new})
        if ls.grants == "off":
            self._check_granted(new)
        else:
            grants.ensure_table_access(ls, list(new), new)
        sample: dict[str, str] = {}
        for u, loc in sorted(new.items()):
            sample.setdefault(loc, u)          # one object per location to probe
        if hasattr(self._invoker, "probe"):
            grants.wait_until_readable(
                self._probe, sorted(sample.values()), POLICY_PROPAGATION_S,
                regrant=None if ls.grants == "off" else
                (lambda: grants.ensure_table_access(ls, list(new), new)),
                sleep=self._sleep)
        self._granted.update(sample)

    def _probe(self, uris: list[str]) -> dict[str, str]:
        """The function's answer to "can you read these?"; a throttled probe is asked
        again like a denied one (after the backoff)."""
        try:
            return self._invoker.probe(uris)
        except Throttled as e:
            return {u: f"throttled: {e}" for u in uris}

    def _check_granted(self, new: dict[str, str]) -> None:
        """With grants off: every location must be in the role's policy already."""
        from sqlmr.aws import deploy, grants
        aws = deploy._Aws(self.lambda_settings)
        have = grants.granted_locations(deploy._friendly(grants.current_policy)(
            aws, dataclasses.replace(self.lambda_settings, region=aws.region)))
        outside = sorted({loc for loc in new.values() if not grants.covered(loc, have)})
        if outside:
            raise grants.GrantError(
                f"the function's role may not read {', '.join(outside)} (outside the table "
                f"locations it is granted, and SQLMR_LAMBDA_GRANTS=off): add them to "
                f"SQLMR_TABLE_LOCATIONS and run sqlmr lambda deploy, or unset "
                f"SQLMR_LAMBDA_GRANTS to let sqlmr grant tables as it reads them")

    def _check_regions(self, buckets: set[str]) -> None:
        """Tables are read in the function's region only: reading another region's
        bucket costs data transfer the cost line would not show, so it is refused."""
        from sqlmr.aws import deploy
        todo = sorted(b for b in buckets if b not in self._regions)
        if not todo:
            return
        aws = deploy._Aws(self.lambda_settings)
        for b in todo:
            self._regions[b] = deploy._friendly(deploy.bucket_region)(aws, b)
        far = [(b, self._regions[b]) for b in sorted(buckets)
               if self._regions[b] not in (None, aws.region)]
        if far:
            b, where = far[0]
            raise AwsSetupError(
                f"the table bucket s3://{b} is in {where} but the function runs in "
                f"{aws.region}; sqlmr does not read across regions (data transfer is billed "
                f"per GB): copy the table to a bucket in {aws.region} (aws s3 sync), or run "
                f"with AWS_REGION={where} and a job bucket there")

    def _make_invoker(self, ls: LambdaSettings) -> Any:
        from sqlmr.aws import invoker
        kind = (os.environ.get("SQLMR_LAMBDA_INVOKER") or "boto").lower()
        if kind == "subprocess":
            return invoker.SubprocessInvoker(timeout_s=ls.timeout_s, memory_mb=ls.memory_mb)
        if kind != "boto":
            raise AwsSetupError("SQLMR_LAMBDA_INVOKER is boto (default) or subprocess")
        if self._info is not None:
            name, region = self._info.function_name, self._info.region
        else:  # deploy=False: the function deployed for this runtime, by its name
            from sqlmr.aws import package
            name, region = ls.function_name(package.runtime_hash()), ls.region
        return invoker.BotoInvoker(name, region=region, timeout_s=ls.timeout_s,
                                   concurrency=min(ls.concurrency, self._slots))

    def _redeploy(self, events: list[Event]) -> None:
        from sqlmr.aws import deploy
        deploy.forget_deployments()
        self._info = deploy.ensure_deployed(self.lambda_settings)
        if hasattr(self._invoker, "use_function"):
            self._invoker.use_function(self._info.function_name)
        self._sized.clear()
        self._deploy_sizes(events)
        self._granted.clear()  # the role may be new too
        self._grant(events)

    def _deploy_sizes(self, events: list[Event]) -> None:
        """Tasks a stage gives less memory than the function's run in a sibling
        function of that memory: deploy it (once) and tell the invoker."""
        cap = self.lambda_settings.memory_mb
        if not self._deploy:
            # an invoker given to us (the serverless driver's) runs tasks at the
            # memory it has unless it can give any: bill them as they run
            if not getattr(self._invoker, "any_memory", False):
                known = getattr(self._invoker, "sized", {})
                for e in events:
                    if e.get("memory_mb") and e["memory_mb"] not in known:
                        del e["memory_mb"]
            return
        from sqlmr.aws import deploy
        for mb in sorted({e.get("memory_mb") or cap for e in events} - {cap} - set(self._sized)):
            info = deploy.ensure_deployed(self.lambda_settings, mb)
            self._sized[mb] = info.function_name
            if hasattr(self._invoker, "use_function"):
                self._invoker.use_function(info.function_name, mb)

    @property
    def concurrency_cap(self) -> int:
        """Invocations in flight at most: the setting, bounded by what the
        invoker and the process's descriptors allow."""
        cap = self.lambda_settings.concurrency
        inv_cap = getattr(self._invoker, "max_concurrency", None)
        if inv_cap:
            cap = min(cap, inv_cap)
        if self._slots:
            cap = min(cap, self._slots)
        return max(1, cap)

    def _invoke_threads(self) -> InvokeThreads:
        """The pool invocations run on, one thread per invocation in flight at
        most; kept across runs (a late attempt of an earlier run keeps its
        thread, and its connection, until it returns)."""
        size = self.concurrency_cap
        if self._threads is None or self._threads.size != size:
            if self._threads is not None:
                self._threads.close()
            self._threads = InvokeThreads(size)
        return self._threads

    # ----------------------------------------------------------------- run
    def run(self, events: list[Event], progress: ProgressFn | None = None) -> list[Result]:
        if not events:
            return []
        _check_inputs(events)
        self._prepare()
        self._deploy_sizes(events)
        self._grant(events)
        run = _Run(self, events, progress)
        self.report = run.report
        self.reports.append(run.report)
        try:
            return run.execute()
        except KeyboardInterrupt:
            run.cancel()
            raise JobCancelledError("cancelled") from None
        except BaseException:
            run.cancel()
            raise

    def close(self) -> None:
        if self._threads is not None:
            self._threads.close()
            self._threads = None
        inv = self._invoker
        if inv is not None and inv is not self._injected and hasattr(inv, "close"):
            inv.close()
        self._invoker = None if self._injected is None else self._injected
        self._prepared_for = None


def _splits_of(events: list[Event]) -> list[dict]:
    """Every object split these tasks read: their inputs and broadcast sides."""
    out: list[dict] = []
    for e in events:
        out += e["input"].get("splits") or []
        for spec in ((e.get("params") or {}).get("broadcast") or {}).values():
            out += spec.get("splits") or []
    return out


def _check_inputs(events: list[Event]) -> None:
    """Lambda reads tables from S3 only: say so before invoking anything."""
    _check_splits(_splits_of(events))


def _check_splits(splits: list[dict]) -> None:
    for part in splits:
        if not storage.is_s3(part["uri"]):
            table = part.get("table") or "?"
            raise AwsSetupError(
                f"table '{table}' is on this machine ({part['uri']}); Lambda tasks read "
                f"tables from S3: upload it (aws s3 sync) and CREATE EXTERNAL TABLE … "
                f"LOCATION 's3://…', or run with --backend local")


class _Run:
    """One ``run``: the scheduler loop in the calling thread, invocations on the
    backend's bounded pool of threads (they post to ``self.results``)."""

    def __init__(self, backend: LambdaBackend, events: list[Event],
                 progress: ProgressFn | None) -> None:
        self.b = backend
        self.opts = backend.options
        self.invoker = backend._invoker
        self.threads = backend._invoke_threads()
        self.progress = progress
        self.tasks = [_Task(i, e) for i, e in enumerate(events)]
        self.results: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.finished = False
        self.cap = backend.concurrency_cap
        self.limit = float(self.cap)
        self.last_decrease = -math.inf
        self.in_flight = 0
        self.ready: deque[tuple[_Task, Event | None]] = deque()
        self.timers: list[tuple[float, int, _Task, Event]] = []
        self.seq = 0
        self.durations: list[float] = []
        self.unfinished = len(self.tasks)
        self.deploy_generation = 0
        self.report = RunReport(tasks=len(self.tasks), limits=[self.cap])
        self.memory_mb = backend.lambda_settings.memory_mb
        self.architecture = backend.lambda_settings.architecture

    # ------------------------------------------------------------ helpers
    def _log(self, what: str, event: Event, *extra: Any) -> None:
        self.report.log.append((what, event["stage"], event["kind"], event["task"],
                                event["attempt"]) + extra)

    def cancel(self) -> None:
        with self.lock:
            self.finished = True
        self.cancelled.set()
        self.ready.clear()
        self.timers.clear()

    def _backoff(self, n: int, retry_after: float | None = None) -> float:
        step = min(self.opts.backoff_cap_s, self.opts.backoff_base_s * (2 ** n))
        delay = self.b._rand() * step
        if retry_after:
            delay = max(delay, min(retry_after, self.opts.backoff_cap_s))
        return delay

    def _set_limit(self, value: float) -> None:
        old = int(self.limit)
        self.limit = max(1.0, min(float(self.cap), value))
        if int(self.limit) != old:
            self.report.limits.append(int(self.limit))

    # -------------------------------------------------------------- submit
    def _submit(self, task: _Task, event: Event | None) -> None:
        """Start an invocation: ``event`` is a throttled attempt sent again, or
        None for a new attempt."""
        if event is None:
            event = with_attempt(task.event, task.next_attempt)
            task.next_attempt += 1
        now = self.b._clock()
        task.running[event["attempt"]] = now
        self.in_flight += 1
        self._log("invoke", event)
        self.threads.submit(self._invoke, task, event, now, self.deploy_generation)

    def _can_submit(self) -> bool:
        return self.in_flight < int(self.limit) and self.threads.free > 0

    def _invoke(self, task: _Task, event: Event, started: float, generation: int) -> None:
        try:
            msg: tuple = ("ok", self.invoker.invoke(event))
        except Throttled as e:
            msg = ("throttled", e)
        except FunctionNotFound as e:
            msg = ("gone", e)
        except InvokeError as e:
            msg = ("error", e)
        except BaseException as e:  # noqa: BLE001 — reported to the scheduler, never lost
            msg = ("error", InvokeError(f"{type(e).__name__}: {e}",
                                        traceback=traceback.format_exc()))
        with self.lock:
            if not self.finished:
                self.results.put((task, event, started, generation, msg))
                return
        self._late(task, event, msg)

    def _late(self, task: _Task, event: Event, msg: tuple) -> None:
        """An invocation that returned after its run ended (a speculative loser, or
        one still running at Ctrl-C / a failure): nobody will read its output, so
        remove it, unless the user keeps scratch data of a cancelled job."""
        kind, r = msg
        if kind != "ok" or not isinstance(r.payload, dict) or r.function_error:
            return
        uri = (r.payload.get("output") or {}).get("uri")
        won = ((task.accepted or {}).get("output") or {}).get("uri")
        if not uri or uri == won:
            return
        if self.cancelled.is_set() and task.accepted is None:
            if self.b.settings.keep_scratch:
                return
        else:
            with self.lock:
                self.report.discarded += 1
                self.report.log.append(("discarded-late", event["stage"], event["kind"],
                                        event["task"], event["attempt"]))
        self._delete(uri)

    def _delete(self, uri: str) -> None:
        try:
            storage.delete_prefix(uri)
        except Exception:  # noqa: BLE001 — the job prefix is deleted (or expires) anyway
            return
        with self.lock:
            self.report.deleted_outputs.append(uri)

    # ---------------------------------------------------------------- loop
    def execute(self) -> list[Result]:
        for t in self.tasks:
            self.ready.append((t, None))
        clock = self.b._clock
        while self.unfinished:
            now = clock()
            while self.timers and self.timers[0][0] <= now:
                _, _, task, event = heapq.heappop(self.timers)
                if task.accepted is None:
                    self.ready.append((task, event))
            while self.ready and self._can_submit():
                task, event = self.ready.popleft()
                if task.accepted is None:
                    self._submit(task, event)
            if self.opts.speculation and not self.ready and self._can_submit():
                self._speculate(now)
            if self.in_flight == 0:
                if self.ready:
                    # every thread is busy with late attempts of an earlier run
                    self.threads.wait_free(self.opts.poll_s)
                    continue
                if self.timers:
                    self.b._sleep(max(0.0, self.timers[0][0] - now))
                    continue
                raise AssertionError("lambda backend: nothing to wait for")  # pragma: no cover
            timeout = self.opts.poll_s
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - now))
            try:
                item = self.results.get(timeout=timeout)
            except queue.Empty:
                continue
            self._handle(*item)
            while True:  # take everything else that has arrived
                try:
                    item = self.results.get_nowait()
                except queue.Empty:
                    break
                self._handle(*item)
        with self.lock:  # from now on, invocations still running clean up after themselves
            self.finished = True
        while True:
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                break
            self._handle(*item)
        return self._finish()

    def _finish(self) -> list[Result]:
        out = []
        for t in self.tasks:
            r = t.accepted
            assert r is not None
            r["billing"] = {"billed_ms": t.billed_ms, "invocations": t.invocations,
                            "memory_mb": t.event.get("memory_mb") or self.memory_mb,
                            "architecture": self.architecture,
                            "max_memory_mb": t.max_memory_mb, "attempts": t.next_attempt,
                            "failures": t.failures, "s3_other": t.s3_other,
                            "estimated": t.estimated,
                            # AWS's own billed durations, or a local invoker's wall time
                            "billed": bool(getattr(self.b._invoker, "bills", False))}
            self.report.billed_ms += t.billed_ms
            out.append(r)
        return out

    # -------------------------------------------------------------- events
    def _handle(self, task: _Task, event: Event, started: float, generation: int,
                msg: tuple) -> None:
        self.in_flight -= 1
        task.running.pop(event["attempt"], None)
        kind, value = msg
        now = self.b._clock()
        if task.accepted is not None and kind in ("gone", "error"):
            return  # another attempt won: nothing to retry
        if kind == "throttled":
            self._throttled(task, event, started, value, now)
        elif kind == "gone":
            self._gone(task, event, generation, value)
        elif kind == "error":
            self._failed(task, event, f"invocation failed: {value}", value.traceback,
                         fatal=not value.retryable, delay=self._backoff(task.failures))
        else:
            self._answered(task, event, started, value, now)

    def _throttled(self, task: _Task, event: Event, started: float, e: Throttled,
                   now: float) -> None:
        self.report.throttles += 1
        self._log("throttled", event)
        if started >= self.last_decrease:  # one decrease per round of invocations
            self._set_limit(min(self.limit, self.in_flight + 1) / 2)
            self.last_decrease = now
        if task.accepted is not None:
            return
        if task.running:  # another attempt of this task is running: let it finish
            return
        if task.throttled_since is None:
            task.throttled_since = now
        elif now - task.throttled_since > self.opts.throttle_give_up_s:
            raise TaskFailedError(
                event, f"Lambda refused the task for {now - task.throttled_since:.0f} s "
                       f"({e}); check the function's reserved concurrency and the account's "
                       f"concurrency limit, or lower SQLMR_LAMBDA_CONCURRENCY",
                attempts=task.failures + 1)
        delay = self._backoff(task.throttles, e.retry_after)
        task.throttles += 1
        self.report.backoffs.append(delay)
        self._log("backoff", event, delay)
        self.seq += 1
        heapq.heappush(self.timers, (now + delay, self.seq, task, event))

    def _gone(self, task: _Task, event: Event, generation: int, e: Exception) -> None:
        self._log("function-gone", event)
        if generation == self.deploy_generation:
            if not self.b._deploy or self.report.redeploys >= self.opts.max_redeploys:
                self._failed(task, event, f"the Lambda function is missing: {e}", "",
                             fatal=True)
                return
            self.report.redeploys += 1
            self.b._redeploy([t.event for t in self.tasks])
            self.deploy_generation += 1
        if task.accepted is None and not task.running:
            self.ready.appendleft((task, event))

    def _answered(self, task: _Task, event: Event, started: float, r: InvokeResult,
                  now: float) -> None:
        self.report.invocations += 1
        task.invocations += 1
        if r.billed_ms is None:  # no report in the log: bill the wall time, say so
            task.estimated += 1
            task.billed_ms += max(1, math.ceil((now - started) * 1000))
        else:
            task.billed_ms += r.billed_ms
        task.max_memory_mb = max(task.max_memory_mb, r.max_memory_mb or 0)
        payload = r.payload
        ok = (r.function_error is None and isinstance(payload, dict)
              and payload.get("task") == event["task"]
              and payload.get("attempt") == event["attempt"]
              and payload.get("stage") == event["stage"])
        if not ok:
            if r.function_error is None:
                message = f"invalid response from the function: {str(payload)[:200]}"
            else:
                message = error_message(payload, r.function_error)
            # the data's fault (an unreadable, corrupt or changed input):
            # another attempt would fail the same way
            fatal = isinstance(payload, dict) and payload.get("errorType") in FINAL_ERRORS
            self._failed(task, event, message, remote_traceback(payload, r.log_tail), fatal=fatal)
            return
        task.throttles = 0
        task.throttled_since = None
        self._set_limit(self.limit + 1)
        if task.accepted is None:
            task.accepted = payload
            task.accepted_attempt = event["attempt"]
            self.unfinished -= 1
            self.durations.append(now - started)
            self._log("accepted", event)
            if self.progress:
                self.progress(event, payload)
            return
        # Another attempt won already: this one is ignored, its output removed.
        for k, n in (payload.get("s3") or {}).items():
            task.s3_other[k] = task.s3_other.get(k, 0) + n
        with self.lock:
            self.report.discarded += 1
        self._log("discarded", event)
        uri = (payload.get("output") or {}).get("uri")
        won = (task.accepted.get("output") or {}).get("uri")
        if uri and uri != won:
            self._delete(uri)

    def _failed(self, task: _Task, event: Event, message: str, tb: str,
                fatal: bool = False, delay: float = 0.0) -> None:
        if task.accepted is not None:
            return
        self.report.failures += 1
        task.failures += 1
        task.last_error = (event, message, tb)
        self._log("failed", event, message)
        if fatal or (task.failures >= self.opts.max_attempts and not task.running):
            raise TaskFailedError(event, message, tb, attempts=task.failures)
        if task.running or task.failures >= self.opts.max_attempts:
            return  # another attempt is still running; it may yet succeed
        self.report.retries += 1
        if delay > 0:
            self.seq += 1
            self.report.backoffs.append(delay)
            heapq.heappush(self.timers, (self.b._clock() + delay, self.seq, task,
                                         with_attempt(task.event, self._take_attempt(task))))
        else:
            self.ready.append((task, None))

    @staticmethod
    def _take_attempt(task: _Task) -> int:
        n = task.next_attempt
        task.next_attempt += 1
        return n

    # --------------------------------------------------------- speculation
    def _speculate(self, now: float) -> None:
        done = len(self.tasks) - self.unfinished
        if not self.durations or done < self.opts.speculation_after * len(self.tasks):
            return
        threshold = max(self.opts.speculation_k * statistics.median(self.durations),
                        self.opts.speculation_min_s)
        for t in self.tasks:
            if not self._can_submit():
                return
            if t.accepted is not None or t.speculated or len(t.running) != 1:
                continue
            (attempt, started), = t.running.items()
            if now - started > threshold:
                t.speculated = True
                self.report.speculative += 1
                event = with_attempt(t.event, self._take_attempt(t))
                self._log("speculate", event, round(now - started, 3))
                self._submit(t, event)
