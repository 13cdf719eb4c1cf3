"""Backends run task events through the runtime handler and return results.

Both backends run the *same* handler (:func:`runtime.handler.handle`) on the
*same* events; they differ only in where the process runs.
"""

from __future__ import annotations

from typing import Callable, Protocol

from runtime.events import Event, Result, describe_input

ProgressFn = Callable[[Event, Result], None]


class TaskFailedError(Exception):
    """A task failed on every attempt; names the task, its input and the remote
    traceback."""

    def __init__(self, event: Event, message: str, remote_traceback: str = "",
                 attempts: int = 1) -> None:
        self.event = event
        self.message = message
        self.remote_traceback = remote_traceback
        self.attempts = attempts
        super().__init__(self.render())

    def render(self, with_traceback: bool = False) -> str:
        e = self.event
        text = (f"task failed: stage {e['stage']} {e['kind']} task {e['task']} "
                f"(attempt {e['attempt']}, {self.attempts} tried): {self.message}\n"
                f"  input: {describe_input(e)}")
        if with_traceback and self.remote_traceback:
            text += "\n  remote traceback:\n" + "\n".join(
                "    " + line for line in self.remote_traceback.rstrip().splitlines())
        return text


class JobCancelledError(Exception):
    """The user cancelled the job (Ctrl-C); pending tasks were not started."""


class Backend(Protocol):
    name: str

    def run(self, events: list[Event], progress: ProgressFn | None = None) -> list[Result]:
        """Run every event; results in the order of ``events`` (one accepted
        attempt per task).  Raises TaskFailedError or JobCancelledError."""

    def close(self) -> None:
        """Release processes / clients."""
