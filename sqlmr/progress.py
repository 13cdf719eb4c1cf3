"""A progress bar on stderr while tasks run (only when stderr is a terminal).

>>> import io
>>> buf = io.StringIO()
>>> bar = ProgressBar(buf, force=True, width=10)
>>> bar("Stage-1 map", 5, 10, 1_500_000)
>>> buf.getvalue().split("\\r")[-1]
'Stage-1 map  [#####.....]  5/10 tasks  1.5 MB'
"""

from __future__ import annotations

import sys
import time
from typing import IO

from sqlmr.render import size_text


class ProgressBar:
    def __init__(self, stream: IO[str] | None = None, force: bool = False, width: int = 28,
                 min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = force or (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._shown = False
        self._len = 0

    def __call__(self, phase: str, done: int, total: int, nbytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done not in (0, total) and now - self._last < self.min_interval:
            return
        self._last = now
        filled = int(self.width * done / total) if total else self.width
        text = (f"{phase}  [{'#' * filled}{'.' * (self.width - filled)}]  "
                f"{done}/{total} tasks  {size_text(nbytes)}")
        pad = " " * max(0, self._len - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._len = len(text)
        self._shown = True

    def clear(self) -> None:
        """Erase the bar so the result prints on a clean line."""
        if self._shown:
            self.stream.write("\r" + " " * self._len + "\r")
            self.stream.flush()
            self._shown = False
            self._len = 0
