"""Scan loops: text lines into typed column values, with a fast and a slow path.

Each line is split only as far as the last needed field and the needed
columns are converted in one ``try``.  When every conversion succeeds and no
STRING field read is ``\\N``, the row takes the fast path, where no column
can be NULL; otherwise it takes the slow path (:func:`runtime.sqlfuncs.parse_fields`,
full NULL semantics, malformed rows reported).  An empty line is never a row:
it fails every conversion but a STRING field 0's, which is then tested for.
"""

from __future__ import annotations

from typing import Callable

from compiler.exprs import Var
from compiler.schema import fast_check
from compiler.codegen.source import Src

# the fast path's conversion of a field's text, by column type
PARSE = {"string": "{}", "int": "int({})", "bigint": "int({})", "double": "float({})",
         "date": "(_dok({0}) or _date({0}))", "boolean": "_bool({})",
         "timestamp": "F.parse_timestamp({})"}

# per-row code of a scan: (environment of the row's columns, fast path) -> None
RowCode = Callable[[dict[str, Var], bool], None]


def scan_env(scan, nullable: bool) -> dict[str, Var]:
    """The columns a scan reads, bound to ``c<index>`` (NULL only on the slow path)."""
    return {f"{scan.alias}.{scan.table.columns[i].name.lower()}":
            Var(f"c{i}", scan.table.columns[i].type, nullable) for i in scan.columns}


def line_loop(src: Src, scan, row: RowCode) -> None:
    """``for line in block:`` with its fast path, then its slow path; ``row``
    writes the per-row code of each (back at the level it started)."""
    src("for line in block:").indent()
    spec, levels = _fast_prologue(src, scan)
    row(scan_env(scan, nullable=False), True)
    src("continue")
    src.level -= levels
    _slow_prologue(src, scan, spec)
    row(scan_env(scan, nullable=True), False)
    src.dedent()  # out of the line loop


def _fast_prologue(src: Src, scan) -> tuple[tuple[tuple[int, str], ...], int]:
    """Split and convert; leaves ``src`` inside the fast path.  Returns the
    slow path's field spec and how many levels in the fast path is."""
    cols = scan.columns
    types = [scan.table.columns[i].type for i in cols]
    sep = scan.table.delimiter
    if cols:
        src(f"f = line.split({sep!r}, {max(cols) + 1})")
    src("try:").indent()
    if cols:
        for i, t in zip(cols, types):
            src(f"c{i} = " + PARSE[t].format(f"f[{i}]"))
    else:
        src("pass")
    src.dedent()("except (ValueError, IndexError):").indent()("pass").dedent()
    src("else:").indent()
    tests = [f"c{i} != _nul" for i, t in zip(cols, types) if t == "string"]
    if not cols or cols == [0] and tests:
        # An empty line splits to [''], so reading a field past the first fails,
        # and no parser but a STRING's accepts '': only when every field read is
        # a STRING field 0 (or none is read) can an empty line get here, so only
        # then is the line itself tested (the slow path skips it).
        tests.append("line")
    # a number int() / float() read that Hive's parsers would not takes the slow path
    tests += [c for i, t in zip(cols, types) if (c := fast_check(t, f"f[{i}]", f"c{i}"))]
    if not tests:  # every field read parsed: not NULL, not an empty line
        return tuple(zip(cols, types)), 1
    src(f"if {' and '.join(tests)}:").indent()
    return tuple(zip(cols, types)), 2


def _slow_prologue(src: Src, scan, spec: tuple[tuple[int, str], ...]) -> None:
    cols = scan.columns
    src("if not line:").indent()("continue").dedent()
    if cols:
        names = ", ".join(f"c{i}" for i in cols) + ("," if len(cols) == 1 else "")
        src(f"({names}), _bad = _parse_fields(line, {scan.table.delimiter!r}, {spec!r})")
        src("if _bad:").indent()("bad(line)").dedent()
