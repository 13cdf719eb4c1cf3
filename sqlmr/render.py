"""Printing results: tables (tabulate), CSV and JSON, and the summary lines.

>>> print(table_text(["k", "n"], [["a", 1.5], [None, 2]], ["string", "double"]))
+------+-----+
| k    |   n |
|------+-----|
| a    | 1.5 |
| NULL |   2 |
+------+-----+
"""

from __future__ import annotations

import csv
import json
import os
from itertools import islice
from typing import IO, Iterable, Iterator

from tabulate import tabulate

from compiler.explain import size_text
from sqlmr import cost as costs

NUMERIC = {"int", "bigint", "double"}
TABLE_STYLES = {"table": "psql", "markdown": "github"}


def text_value(v, null: str = "NULL") -> str:
    """A value as text: NULL spelled out, floats exact (shortest round trip)."""
    if v is None:
        return null
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def display_value(v) -> str:
    """Like :func:`text_value`, but a float shows at most 15 significant digits
    (as psql does), so summation noise does not fill the screen; CSV and JSON
    keep every digit.

    >>> display_value(0.49919295399999997), display_value(0.1), display_value(None)
    ('0.499192954', '0.1', 'NULL')
    """
    if isinstance(v, float):
        text = repr(v)
        return text if len(text) <= 16 else format(v, ".15g")
    return text_value(v)


def table_text(columns: list[str], rows: list[list], types: list[str | None] | None = None,
               style: str = "table") -> str:
    types = types or [None] * len(columns)
    align = ["right" if t in NUMERIC else "left" for t in types]
    body = [[display_value(v) for v in r] for r in rows]
    return tabulate(body, headers=columns, tablefmt=TABLE_STYLES.get(style, "psql"),
                    disable_numparse=True, colalign=align if columns else None)


def expanded_text(columns: list[str], rows: list[list]) -> str:
    """psql's ``\\x`` layout: one block per row, one line per column."""
    width = max((len(c) for c in columns), default=0)
    out = []
    for n, r in enumerate(rows, 1):
        out.append(f"-[ RECORD {n} ]" + "-" * max(0, width - 4))
        for c, v in zip(columns, r):
            out.append(f"{c.ljust(width)} | {text_value(v)}")
    return "\n".join(out)


def write_csv(columns: list[str], rows: Iterable[list], out: IO[str]) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    n = 0
    for r in rows:
        w.writerow(["" if v is None else text_value(v) for v in r])
        n += 1
    return n


def write_json(columns: list[str], rows: Iterable[list], out: IO[str]) -> int:
    """A JSON array of objects, streamed row by row."""
    out.write("[")
    n = 0
    for r in rows:
        out.write(",\n " if n else "\n ")
        out.write(json.dumps(dict(zip(columns, r)), ensure_ascii=False, default=str))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def write_rows(fmt: str, columns: list[str], rows: Iterable[list], out: IO[str],
               types: list[str | None] | None = None) -> int:
    if fmt == "csv":
        return write_csv(columns, rows, out)
    if fmt == "json":
        return write_json(columns, rows, out)
    materialized = list(rows)
    out.write(table_text(columns, materialized, types, fmt) + "\n")
    return len(materialized)


def format_for_path(path: str, default: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return {".csv": "csv", ".json": "json", ".md": "markdown", ".txt": "table"}.get(
        ext, "csv" if default == "table" else default)


def take(rows: Iterable[list], n: int) -> tuple[list[list], Iterator[list]]:
    it = iter(rows)
    return list(islice(it, n)), it


def rows_line(total: int, shown: int) -> str:
    noun = "row" if total == 1 else "rows"
    if shown < total:
        return f"({total:,} {noun}, first {shown:,} shown; --output FILE writes them all)"
    return f"({total:,} {noun})"


def summary_lines(result, settings) -> list[str]:
    """Time, what ran, and the cost line after a query."""
    st = result.stats
    if st is None:
        return [f"Time: {result.seconds:.3f} s"]
    tasks = f"{st.map_tasks} map" + (f" + {st.reduce_tasks} reduce" if st.reduce_tasks else "")
    n_tasks = st.map_tasks + st.reduce_tasks
    parts = [f"Time: {result.seconds:.2f} s",
             f"{tasks} task{'s' if n_tasks != 1 else ''} on {settings.backend}"
             + (f" ({settings.effective_workers()} worker{'s' if settings.effective_workers() != 1 else ''})"
                if settings.backend == "local" else ""),
             f"{st.splits} split{'s' if st.splits != 1 else ''}", f"read {size_text(st.bytes_read)}"]
    if st.reduce_tasks:
        parts.append(f"shuffled {size_text(st.bytes_shuffled)}")
    lines = [" · ".join(parts)]
    if st.malformed:
        lines.append(f"Warning: {st.malformed:,} malformed rows read as NULLs "
                     f"(first: {st.malformed_sample[:80]!r}); --strict makes them an error")
    lam = result.lambda_cost
    label = "billed" if getattr(st, "billed", False) else "estimate"
    if lam is not None:
        lines.append(
            f"Cost: Lambda {costs.money(lam.total)} ({label}: {lam.gb_seconds:.2f} GB-s at "
            f"{getattr(st, 'memory_mb', 0) or settings.memory_mb} MB {lam.architecture}, "
            f"{lam.requests} requests, "
            f"{lam.gets} S3 GET, {lam.puts} S3 PUT) · Athena {costs.money(result.athena_cost)} "
            f"for the same bytes")
    return lines
