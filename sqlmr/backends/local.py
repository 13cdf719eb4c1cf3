"""The local backend: a process pool running the runtime handler on task events.

Lambda's process model on this machine: each task runs in a worker process
(forked, one per core by default) through :func:`runtime.handler.handle`, the
function the Lambda package runs.  Ctrl-C cancels a job: tasks not yet started
are dropped, running workers are stopped, and the pool is rebuilt for the
next job.

Workers die with their driver, however it ends (SIGKILL included): each asks
the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``; a fork
server's workers have the fork server as parent, and the fork server exits
when the driver's end of its pipe closes), and a watch thread also ends the
worker once the driver's pid is gone (through a pidfd where Linux has one,
else by polling), for systems without ``prctl``.  A worker that dies mid-job
breaks the pool: the pool is rebuilt and every task it held is run again.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import tempfile
import time
import traceback
import types
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.context import ForkServerContext, ForkServerProcess

from runtime.events import Event, Result, with_attempt
from sqlmr import scratch
from sqlmr.backends import JobCancelledError, ProgressFn, TaskFailedError

# Set only while this driver starts its fork server (see forkserver_guard).
FORKSERVER_ENV = "SQLMR_FORKSERVER_OF"

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


@contextmanager
def _caller_script_hidden():
    """While a fork server worker starts: ``__main__`` is an empty module, so
    multiprocessing does not tell the worker to import the caller's script.

    multiprocessing makes a fork server's (or spawned) child run the parent's
    main script again, as ``__mp_main__``, so that objects defined there
    unpickle.  sqlmr's workers receive only task events (dicts) and sqlmr's
    own functions, so they need nothing from it; running it again would
    import the REPL's whole command line in every worker, and a script that
    runs a query at top level, without an ``if __name__ == "__main__":``
    guard, would run it again in every worker, which fails.  Only the
    moment of a worker's launch sees the empty module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = main


class _WorkerProcess(ForkServerProcess):
    """A fork server worker that does not run the caller's script again."""

    @staticmethod
    def _Popen(process_obj):
        with _caller_script_hidden():
            return ForkServerProcess._Popen(process_obj)


class _WorkerContext(ForkServerContext):
    """The fork server context whose processes are :class:`_WorkerProcess`."""

    Process = _WorkerProcess


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where
    ``prctl`` is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _driver_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_driver(driver: int, parent: int) -> None:
    """Exit this worker once the driver is gone: wait on a pidfd of the driver
    (immune to pid reuse), else poll the driver's pid and our parent."""
    try:
        fd = os.pidfd_open(driver)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        try:
            select.select([fd], [], [])
        except (OSError, ValueError):
            pass
        else:
            os._exit(1)
    while _driver_alive(driver) and os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _die_with_driver(driver: int, deathsig: bool) -> None:
    """Make this worker end when the driver (pid ``driver``) ends."""
    parent = os.getppid()
    if deathsig:
        _set_parent_death_signal()
    # the parent may have died before prctl took effect
    if not _driver_alive(driver) or os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_driver, args=(driver, parent), daemon=True,
                     name="sqlmr-watch-driver").start()


def _init_worker(environ: dict[str, str], driver: int = 0, deathsig: bool = False,
                 temp: str | None = None) -> None:
    # Ctrl-C goes to the whole foreground process group; the driver decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the driver stops workers with SIGTERM: a forked worker must not inherit
    # the CLI's handler (which turns SIGTERM into a cancel) and live on
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a worker must not outlive its driver (SIGKILL, `timeout`, `docker stop`)
    if driver:
        _die_with_driver(driver, deathsig)
    # The forkserver was started with the driver's environment of that moment;
    # a worker runs with the environment of the session that made its pool
    # (AWS credentials, endpoint, region set since).
    os.environ.clear()
    os.environ.update(environ)
    # the runtime's spill and merge files go in the driver's claimed temp
    # folder, which the next run sweeps if the job is killed
    if temp:
        tempfile.tempdir = temp


#: Bytes of a Unix socket's path on Linux (sun_path, its NUL included).
SOCKET_PATH_MAX = 108


def short_socket_folder() -> str:
    """The folder multiprocessing keeps its fork server's socket in, made in
    ``/tmp`` when one in ``$TMPDIR`` would give the socket a path longer than
    a Unix socket allows (a deep ``$TMPDIR`` otherwise fails the run with
    "AF_UNIX path too long"; Python 3.13 does the same).  Made once per
    process, as multiprocessing makes it.

    >>> import os; os.path.isdir(short_socket_folder())
    True
    """
    from multiprocessing import util
    # as multiprocessing names them: <tmp>/pymp-xxxxxxxx/listener-xxxxxxxx
    if len(os.path.join(tempfile.gettempdir(), "pymp-xxxxxxxx", "listener-xxxxxxxx")) \
            < SOCKET_PATH_MAX - 4 or not os.path.isdir("/tmp"):
        return util.get_temp_dir()
    saved = tempfile.tempdir
    tempfile.tempdir = "/tmp"
    try:
        return util.get_temp_dir()   # made now in /tmp, kept for the process
    finally:
        tempfile.tempdir = saved


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
                self._start_fork_server(ctx)
                ctx = _WorkerContext()
            # PR_SET_PDEATHSIG fires when the *thread* that forked the worker
            # ends: safe for the fork server (its main thread forks) and for
            # a driver forking from its main thread, not from a passing thread
            deathsig = (ctx.get_start_method() == "forkserver"
                        or threading.current_thread() is threading.main_thread())
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=_init_worker,
                                             initargs=(dict(os.environ), os.getpid(), deathsig,
                                                       scratch.temp_dir()))
        return self._pool

    @staticmethod
    def _start_fork_server(ctx) -> None:
        """Start the fork server with the runtime preloaded; started from the
        main thread, it also dies with the driver, and its workers with it
        (PR_SET_PDEATHSIG fires when the forking *thread* ends)."""
        from multiprocessing import forkserver
        short_socket_folder()
        preload = ["runtime.handler", "runtime.shuffle", "runtime.sqlfuncs"]
        guard = threading.current_thread() is threading.main_thread()
        if guard:
            preload.append("sqlmr.backends.forkserver_guard")
        ctx.set_forkserver_preload(preload)
        if not guard:
            return
        # the variable names this driver to the server it starts now, and
        # only to it: no later child of the driver inherits it
        os.environ[FORKSERVER_ENV] = str(os.getpid())
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(FORKSERVER_ENV, None)

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
        pool_of: dict[Future, ProcessPoolExecutor] = {}
        current: dict[int, Event] = {}

        def submit(i: int, event: Event) -> None:
            self.attempts.append((event["stage"], event["task"], event["attempt"]))
            try:
                fut = self._executor().submit(_run_task, event)
            except BrokenProcessPool:
                self._kill()
                fut = self._executor().submit(_run_task, event)
            pending[fut] = i
            pool_of[fut] = self._pool  # type: ignore[assignment]
            current[i] = event

        try:
            for i, e in enumerate(events):
                submit(i, e)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    pool = pool_of.pop(fut)
                    event = current[i]
                    try:
                        out = fut.result()
                    except BrokenProcessPool as e:
                        # a worker died (killed, out of memory): every task of
                        # that pool fails so; the pool is replaced once, not
                        # each time one of its tasks reports (which would kill
                        # the new pool and the retries running on it)
                        out = {"ok": False, "error": f"worker process died ({e})",
                               "traceback": "", "transient": True}
                        if pool is self._pool:
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
        except BaseException:
            # the driver stopped the job from ``progress`` (max_cost): as for
            # Ctrl-C, no worker may go on writing into the scratch it removes
            self._kill()
            raise
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
