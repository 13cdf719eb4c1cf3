"""A bounded pool of daemon threads for Lambda invocations.

A synchronous invocation keeps its thread (and its HTTP connection) for the
whole task, so the pool's size bounds both.  Threads are started only when
every started one is busy, and kept for the next invocation.  They are daemon
threads: after Ctrl-C an invocation still running in the cloud does not keep
the driver from exiting.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class InvokeThreads:
    """At most ``size`` threads, each running one submitted call at a time.

    >>> pool = InvokeThreads(2)
    >>> done = queue.SimpleQueue()
    >>> pool.submit(done.put, 1); pool.submit(done.put, 2)
    >>> sorted([done.get(timeout=5), done.get(timeout=5)])
    [1, 2]
    >>> pool.wait_idle(5)
    True
    >>> pool.started <= 2 and pool.free == 2
    True
    >>> pool.close()
    """

    def __init__(self, size: int, name: str = "sqlmr-invoke") -> None:
        self.size = max(1, size)
        self.name = name
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._busy = 0          # calls submitted and not yet returned
        self._threads = 0       # threads alive
        self.started = 0        # threads ever started (tests, --debug)
        self._closed = False

    @property
    def free(self) -> int:
        """Calls that may be submitted now without waiting for a thread."""
        with self._cond:
            return self.size - self._busy

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pool thread; the caller checks :attr:`free`
        first (a call beyond the size is a bug, not a wait)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the invocation threads are closed")
            if self._busy >= self.size:
                raise RuntimeError("no free invocation thread")
            self._busy += 1
            # every thread not running a call is waiting for one, so a new
            # thread is needed only when all are busy
            if self._busy > self._threads:
                self._threads += 1
                self.started += 1
                threading.Thread(target=self._loop, daemon=True,
                                 name=f"{self.name}-{self.started}").start()
        self._work.put((fn, args))

    def wait_free(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a free thread; whether there is one."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy < self.size, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until no call is running (tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def _loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                with self._cond:
                    self._threads -= 1
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 — calls report their own errors
                pass
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def close(self) -> None:
        """Let every thread end once its current call returns."""
        with self._cond:
            self._closed = True
            n = self._threads
        for _ in range(n):
            self._work.put(None)
