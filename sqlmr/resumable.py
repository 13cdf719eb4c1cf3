"""A backend that checkpoints each finished phase, so a driver can stop and go on.

The serverless driver runs a job through :class:`CheckpointingBackend`, which
wraps the Lambda backend.  Each time a phase of a stage (its maps, combiners or
reducers; a stage is finished with its last phase) has finished, the task
results of every finished phase so far are saved to the query's
``checkpoint.json`` (:class:`sqlmr.results_store.QueryStore`).

A driver started again for the same query (Lambda's retry of an asynchronous
invocation that died, or the driver's own continuation when its time is
short) plans the same job; each phase whose task events are those of a saved
phase (compared with the job id and scratch folders taken out: see
:func:`fingerprint`) gets the saved results back without a task being invoked.
Their outputs are still in the earlier run's scratch folder: the driver keeps
every run's folder (listed in the checkpoint) until the result is written.

Between task launches it also checks the query's cancel marker, and after each
checkpoint whether the driver has time left (:class:`ContinueLater`).

>>> ev = [{"job": "j1", "work": "s3://b/w/j1/", "code": {"uri": "s3://b/w/j1/job.py"}}]
>>> fingerprint(ev, ["s3://b/w/j1/"]) == fingerprint(
...     [{"job": "j2", "work": "s3://b/w/j2/", "code": {"uri": "s3://b/w/j2/job.py"}}],
...     ["s3://b/w/j2/"])
True
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable

from sqlmr.backends import JobCancelledError

# How often, at most, the cancel marker is read while tasks finish.
CANCEL_CHECK_S = 2.0


class ContinueLater(Exception):
    """The driver stops between stages to continue in a new invocation."""


def fingerprint(events: list[dict], works: list[str]) -> str:
    """What a phase's task events ask, without the run they belong to."""
    text = json.dumps(events, sort_keys=True, separators=(",", ":"))
    for w in sorted(set(works), key=len, reverse=True):
        text = text.replace(w, "<work>")
    for job in {e.get("job") for e in events if e.get("job")}:
        text = text.replace(job, "<job>")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CheckpointingBackend:
    """``inner`` (a LambdaBackend) with stage checkpoints in ``store``.

    ``time_left``: seconds the invocation has left; below ``reserve_s`` at a
    stage boundary, :class:`ContinueLater` is raised.  ``after_checkpoint``
    (tests) is called after each checkpoint is saved."""

    def __init__(self, inner: Any, store: Any, *, time_left: Callable[[], float] | None = None,
                 reserve_s: float = 120.0,
                 after_checkpoint: Callable[[dict], None] | None = None) -> None:
        self.inner = inner
        self.store = store
        self.time_left = time_left
        self.reserve_s = reserve_s
        self.after_checkpoint = after_checkpoint
        doc = store.checkpoint() or {}
        self.saved: dict[str, list] = dict(doc.get("phases", {}))  # fingerprint → results
        self.works: list[str] = list(doc.get("works", []))
        self.stages_done: list[str] = list(doc.get("stages", []))  # "stage 1 map", …
        self.replayed_tasks = 0
        self.invoked_tasks = 0
        self._checked = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # ------------------------------------------------------------ checkpoints
    def _phase_finished(self, fp: str, results: list, label: str) -> None:
        """Save the checkpoint with this phase's results; then stop if time is short."""
        self.saved[fp] = results
        self.stages_done.append(label)
        doc = {"phases": self.saved, "works": self.works, "stages": self.stages_done,
               "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.store.save_checkpoint(doc)
        if self.after_checkpoint is not None:
            self.after_checkpoint(doc)
        if self.time_left is not None and self.time_left() < self.reserve_s:
            raise ContinueLater(f"{label} done; continuing in a new invocation")

    def check_cancel(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._checked >= CANCEL_CHECK_S:
            self._checked = now
            if self.store.cancel_requested():
                raise JobCancelledError("cancelled (the query's cancel marker is set)")

    # ------------------------------------------------------------------ run
    def run(self, events: list[dict], progress=None) -> list[dict]:
        if not events:
            return []
        work = events[0].get("work")
        if work and work not in self.works:
            self.works.append(work)
        fp = fingerprint(events, self.works)
        if fp in self.saved:
            results = self.saved[fp]
            self.replayed_tasks += len(results)
            if progress is not None:
                for ev, r in zip(events, results):
                    progress(ev, r)
            return results
        self.check_cancel(force=True)

        def on_done(event: dict, result: dict) -> None:
            if progress is not None:
                progress(event, result)
            self.check_cancel()

        results = self.inner.run(events, on_done)
        self.invoked_tasks += len(events)
        self._phase_finished(fp, results, f"stage {events[0].get('stage')} "
                                          f"{events[0].get('kind', 'task')}")
        return results

    def close(self) -> None:
        self.inner.close()


def remaining_time(context: Any, started: float) -> Callable[[], float]:
    """Seconds this invocation has left: Lambda's context, else the function's
    timeout (``SQLMR_DRIVER_TIMEOUT_S``, default 900) from ``started``."""
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: context.get_remaining_time_in_millis() / 1000.0
    limit = float(os.environ.get("SQLMR_DRIVER_TIMEOUT_S") or 900)
    return lambda: limit - (time.monotonic() - started)
