"""Running statements in a test: the rows of the last one, every result closed."""

from __future__ import annotations


def rows_of(session, sql: str) -> list[list]:
    """The rows of the last statement of ``sql`` as lists (the job's scratch
    data removed after, as the CLI does)."""
    results = list(session.execute(sql))
    try:
        return [list(r) for r in results[-1].rows]
    finally:
        for r in results:
            r.close()
