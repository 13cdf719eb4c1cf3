"""Errors the compiler reports, with the position of the offending text.

>>> e = SqlError("column 'pageUrl' not found", "SELECT pageUrl\\nFROM rankings", 7, hint="did you mean 'pageURL'?")
>>> print(e.render())
LINE 1: SELECT pageUrl
               ^
error: column 'pageUrl' not found
hint: did you mean 'pageURL'?
"""

from __future__ import annotations

import copy
import difflib
from typing import Iterable


class SqlError(Exception):
    """A user-facing SQL error.  ``offset`` is a character offset into ``sql``."""

    def __init__(self, message: str, sql: str | None = None, offset: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sql = sql
        self.offset = offset
        self.hint = hint

    @property
    def line_col(self) -> tuple[int, int] | None:
        """1-based line and column of the offending text."""
        if self.sql is None or self.offset is None:
            return None
        before = self.sql[: self.offset]
        line = before.count("\n") + 1
        col = self.offset - (before.rfind("\n") + 1) + 1
        return line, col

    def render(self) -> str:
        """psql-style: the statement line, a caret under the bad token, the message."""
        out = []
        pos = self.line_col
        if pos is not None:
            line_no, col = pos
            text = self.sql.split("\n")[line_no - 1]
            prefix = f"LINE {line_no}: "
            out.append(prefix + text.expandtabs(1))
            out.append(" " * (len(prefix) + col - 1) + "^")
        out.append(f"error: {self.message}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def shifted(self, sql: str, by: int) -> "SqlError":
        """The same error placed in a larger text (a script holding the statement)."""
        moved = copy.copy(self)   # the same class: callers tell unsupported from wrong SQL
        moved.sql, moved.offset = sql, None if self.offset is None else self.offset + by
        return moved

    def __str__(self) -> str:
        return self.message


class UnsupportedError(SqlError):
    """Valid SQL that sqlmr does not compile yet (never answered wrongly)."""

    def __init__(self, what: str, sql: str | None = None, offset: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(f"not supported yet: {what}", sql, offset, hint)


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """'did you mean …?' for a misspelt name (case-insensitive)."""
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean '{lowered[match[0]]}'?" if match else None
