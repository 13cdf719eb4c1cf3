"""The local backend: a process pool running the runtime handler on task events.

Lambda's process model on this machine: each task runs in a worker process
(forked, one per core by default) through :func:`runtime.handler.handle`, the
function the Lambda package runs.  Ctrl-C cancels a job: tasks not yet started
are dropped, running workers are stopped, and the pool is rebuilt for the
next job.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from runtime.events import Event, Result, with_attempt
from sqlmr.backends import JobCancelledError, ProgressFn, TaskFailedError

# Failures that a new attempt may not repeat (the machine, not the task).
TRANSIENT = (MemoryError, OSError, BrokenProcessPool)
MAX_ATTEMPTS = 3


def start_method() -> str:
    """``fork`` when the driver is a single thread (cheap, and nothing of the
    caller's script runs again); ``forkserver`` when other threads exist (a
    REPL, an embedding program, a DuckDB connection): forking a process that
    holds other threads' locks can crash the child."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = threading.active_count()
    return "fork" if threads == 1 else "forkserver"


def _init_worker(environ: dict[str, str]) -> None:
    # Ctrl-C goes to the whole foreground process group; the driver decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The forkserver was started with the driver's environment of that moment;
    # a worker runs with the environment of the session that made its pool
    # (AWS credentials, endpoint, region set since).
    os.environ.clear()
    os.environ.update(environ)


def _run_task(event: Event) -> dict:
    """Run one task in a worker; failures come back as data with the traceback."""
    from runtime.handler import handle
    try:
        return {"ok": True, "result": handle(event)}
    except BaseException as e:  # reported to the driver, never lost
        return {"ok": False, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "transient": isinstance(e, TRANSIENT) and not isinstance(e, FileNotFoundError)}


class LocalBackend:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self.attempts: list[tuple[int, int, int]] = []  # (stage, task, attempt) run, for tests

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context(start_method())
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload(["runtime.handler", "runtime.shuffle", "runtime.sqlfuncs"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=_init_worker,
                                             initargs=(dict(os.environ),))
        return self._pool

    def _kill(self) -> None:
        pool = self._pool
        self._pool = None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=2)

    def run(self, events: list[Event], progress: ProgressFn | None = None) -> list[Result]:
        results: list[Result | None] = [None] * len(events)
        pending: dict[Future, int] = {}

        def submit(i: int, event: Event) -> None:
            self.attempts.append((event["stage"], event["task"], event["attempt"]))
            try:
                fut = self._executor().submit(_run_task, event)
            except BrokenProcessPool:
                self._kill()
                fut = self._executor().submit(_run_task, event)
            pending[fut] = i
            current[i] = event

        current: dict[int, Event] = {}
        try:
            for i, e in enumerate(events):
                submit(i, e)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    event = current[i]
                    try:
                        out = fut.result()
                    except BrokenProcessPool as e:
                        out = {"ok": False, "error": f"worker process died ({e})",
                               "traceback": "", "transient": True}
                        self._kill()
                    if out["ok"]:
                        results[i] = out["result"]
                        if progress:
                            progress(event, out["result"])
                        continue
                    attempts = event["attempt"] + 1
                    if out["transient"] and attempts < MAX_ATTEMPTS:
                        submit(i, with_attempt(event, attempts))
                        continue
                    self._kill()
                    raise TaskFailedError(event, out["error"], out["traceback"], attempts)
        except KeyboardInterrupt:
            self._kill()
            raise JobCancelledError("cancelled") from None
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
