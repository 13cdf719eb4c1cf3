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
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager, nullcontext
from itertools import islice
from typing import IO, Callable, ContextManager, Iterable, Iterator

from compiler.explain import size_text
from sqlmr import cost as costs
from sqlmr import writers

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

    A line break or tab inside a value shows as ``\\n`` / ``\\r`` / ``\\t``, so
    one row stays one line of the table (a quoted CSV field may hold them).

    >>> display_value(0.49919295399999997), display_value(0.1), display_value(None)
    ('0.499192954', '0.1', 'NULL')
    >>> print(display_value("two\\nlines"))
    two\\nlines
    """
    if isinstance(v, float):
        text = repr(v)
        return text if len(text) <= 16 else format(v, ".15g")
    text = text_value(v)
    if isinstance(v, str) and ("\n" in text or "\r" in text or "\t" in text):
        text = text.translate(_CONTROL_SHOWN)
    return text


_CONTROL_SHOWN = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def table_text(columns: list[str], rows: list[list], types: list[str | None] | None = None,
               style: str = "table") -> str:
    types = types or [None] * len(columns)
    align = ["right" if t in NUMERIC else "left" for t in types]
    body = [[display_value(v) for v in r] for r in rows]
    from tabulate import tabulate  # here: a CSV or JSON run never pays its ~30 ms import
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
    """CSV with a header: NULL an empty field, every value as :func:`text_value`
    spells it (written in chunks by :mod:`sqlmr.writers`)."""
    return writers.write_delimited(columns, rows, out)


def write_json(columns: list[str], rows: Iterable[list], out: IO[str]) -> int:
    """A JSON array of objects, one per line, streamed in chunks."""
    return writers.write_json_array(columns, rows, out)


def write_rows(fmt: str, columns: list[str], rows: Iterable[list], out: IO[str],
               types: list[str | None] | None = None) -> int:
    if fmt == "csv":
        return write_csv(columns, rows, out)
    if fmt == "json":
        # an object holds one value per key: a repeated name becomes a, a_1 (as in DuckDB)
        return write_json(writers.unique_names(columns), rows, out)
    materialized = list(rows)
    out.write(table_text(columns, materialized, types, fmt) + "\n")
    return len(materialized)


def write_tsv(columns: list[str], rows: Iterable[list], out: IO[str]) -> int:
    """Tab-separated values with a header; NULL is an empty field (as in CSV)."""
    w = csv.writer(out, dialect="excel-tab", lineterminator="\n")
    w.writerow(columns)
    n = 0
    for r in rows:
        w.writerow(["" if v is None else text_value(v) for v in r])
        n += 1
    return n


def write_output(fmt: str, columns: list[str], rows: Iterable[list], out: IO[str],
                 types: list[str | None] | None = None) -> int:
    """:func:`write_rows`, plus the formats only a file can ask for (``.tsv``)."""
    if fmt == "tsv":
        return write_tsv(columns, rows, out)
    return write_rows(fmt, columns, rows, out, types)


def write_output_file(path: str, fmt: str, columns: list[str], rows: Iterable[list],
                      types: list[str | None] | None = None) -> int:
    """:func:`write_output` into the file ``path``, all or nothing (see
    :func:`replaced_file`)."""
    with replaced_file(path) as f:
        return write_output(fmt, columns, rows, f, types)


@contextmanager
def replaced_file(path: str, keep: bool = False,
                  commit: Callable[[], ContextManager] = nullcontext) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` all or nothing: written as a hidden
    temporary file beside it, flushed to disk and renamed over ``path`` (inside
    ``commit()``) when the block ends; an error, a full disk or Ctrl-C leave the
    old file as it was and no temporary file.  ``keep`` starts it as a copy of
    the old file (appending).  A path that is not a regular file (``/dev/stdout``,
    a FIFO) is written in place; a symlink stays a link to the new file."""
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        with open(target, "a" if keep else "w", encoding="utf-8", newline="") as f:
            yield f
        return
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            if keep and os.path.exists(target):
                with open(target, encoding="utf-8", newline="") as old:
                    shutil.copyfileobj(old, f)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(target))
        with commit():
            os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file_mode(path: str) -> int:
    """The permissions the new file gets: the old file's, else what ``open``
    would give (0666 less the umask; ``mkstemp`` makes 0600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# The format of an output file, from its extension.
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".md": "markdown",
                ".txt": "table"}


def format_for_path(path: str, default: str | None) -> str | None:
    """The format a file named ``path`` is written in: its extension's, else
    ``default`` (None: the caller refuses an extension it cannot read).

    >>> format_for_path("out.TSV", "table"), format_for_path("out.dat", None)
    ('tsv', None)
    """
    ext = os.path.splitext(path)[1].lower()
    return FILE_FORMATS.get(ext, default)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and the noun that agrees with it, the number with thousands separators.

    >>> plural(1, "row"), plural(10000, "row"), plural(0, "split"), plural(1, "S3 GET")
    ('1 row', '10,000 rows', '0 splits', '1 S3 GET')
    """
    word = noun if n == 1 else (nouns or noun + "s")
    return f"{n:,} {word}"


def take(rows: Iterable[list], n: int) -> tuple[list[list], Iterator[list]]:
    it = iter(rows)
    return list(islice(it, n)), it


def rows_line(total: int, shown: int) -> str:
    if shown < total:
        return f"({plural(total, 'row')}, first {shown:,} shown; --output FILE writes them all)"
    return f"({plural(total, 'row')})"


def summary_lines(result, settings) -> list[str]:
    """Time, what ran, and the cost line after a query.

    When the job's data went through S3 (the Lambda backend), the S3 request
    counts are the requests the tasks and the driver sent, counted (retries
    and result reads included; the scratch cleanup after the line is not):
    the line says "counted".  A local run over local files sent none, and the
    line shows the plan's (one GET per split and shuffle range, one PUT per
    output), saying "planned".  Time-based cost is "billed" only when AWS
    reported it; locally, and with the subprocess invoker, an "estimate"."""
    st = result.stats
    if st is None:
        return [f"Time: {result.seconds:.3f} s"]
    combine = getattr(st, "combine_tasks", 0)
    tasks = (f"{st.map_tasks} map" + (f" + {combine} combine" if combine else "")
             + (f" + {st.reduce_tasks} reduce" if st.reduce_tasks else ""))
    n_tasks = st.map_tasks + combine + st.reduce_tasks
    workers = settings.effective_workers()
    parts = [f"Time: {result.seconds:.2f} s",
             f"{tasks} task{'' if n_tasks == 1 else 's'} on {settings.backend}"
             + (f" ({plural(workers, 'worker')})" if settings.backend == "local" else ""),
             plural(st.splits, "split"), f"read {size_text(st.bytes_read)}"]
    if st.reduce_tasks:
        parts.append(f"shuffled {size_text(st.bytes_shuffled)}")
    lines = [" · ".join(parts)] + warning_lines(result)
    lam = result.lambda_cost
    label = "billed" if getattr(st, "billed", False) else "estimate"
    counted = getattr(st, "counted", False)
    if lam is not None and counted:   # the driver's result reads count too
        lam = result.lambda_cost = st.lambda_cost(settings)
    if label == "billed" and getattr(st, "estimated", 0):
        label = f"billed, {st.estimated} of {plural(st.invocations, 'invocation')} estimated"
    if lam is not None:
        lines.append(
            f"Cost: Lambda {costs.money(lam.total)} ({label}: {lam.gb_seconds:.2f} GB-s at "
            f"{_memory_text(st, settings)} {lam.architecture}, "
            f"{plural(lam.requests, 'request')}, "
            f"{lam.gets:,} S3 GET, {lam.puts:,} S3 PUT "
            f"{'counted' if counted else 'planned'}) · "
            f"Athena {costs.money(result.athena_cost)} for the same bytes")
    return lines


def _memory_text(st, settings) -> str:
    if hasattr(st, "memory_text"):
        return st.memory_text(settings.memory_mb)
    return f"{getattr(st, 'memory_mb', 0) or settings.memory_mb} MB"


def warning_lines(result) -> list[str]:
    """Warnings about what a query read (malformed rows): not timing, so shown
    with --no-timing too."""
    st = result.stats
    if st is None:
        return []
    notes = list(getattr(st, "notes", []))
    if not st.malformed:
        return notes
    from sqlmr.malformed import malformed_hints
    job = getattr(getattr(result, "job", None), "job", None)
    tables = {k.lower(): t for k, t in (getattr(job, "tables", None) or {}).items()}
    return notes + [f"Warning: {plural(st.malformed, 'malformed row')} read as NULLs "
            f"(first: {st.malformed_sample[:80]!r}); --strict makes them an error",
            *malformed_hints(st.counters, getattr(st, "malformed_first_line", ""), tables)]


def cancelled_lines(e: BaseException | None, seconds: float, settings) -> list[str]:
    """What Ctrl-C prints: how long the statement ran and, with timing on, the
    cost of the work that finished (``partial_stats``, which the driver attaches
    to the exception that stopped a job)."""
    lines = [f"cancelled after {seconds:.2f} s"]
    stats = getattr(e, "partial_stats", None)
    if settings.timing and stats is not None:
        done = stats.attempts or stats.invocations
        if not done:
            lines.append("Cost so far: no phase had finished")
        else:
            lam = stats.lambda_cost(settings)
            lines.append(f"Cost so far: at least Lambda {costs.money(lam.total)} "
                         f"({plural(done, 'finished task')}, {lam.gb_seconds:.2f} GB-s; "
                         f"the phase that was running is not counted)")
    return lines
