"""Scan loops: records into typed column values, with a fast and a slow path.

A delimited text line is split only as far as the last needed field (a
table with ESCAPED BY is cut by :func:`runtime.sqlfuncs.split_escaped`); a
CSV or JSON table's reader (:mod:`runtime.formats`) yields records already
cut into fields, bound to ``f``.  The needed columns are converted in one
``try``.  When every conversion succeeds and no STRING field read is NULL
(the table's NULL text, ``\\N`` by default; None from a JSON or escaped
reader), the row takes the fast path, where no column can be NULL; otherwise
it takes the slow path (:func:`runtime.sqlfuncs.parse_list`, full NULL
semantics, malformed rows reported).  An empty text line is never a row: it
fails every conversion but a STRING field 0's, which is then tested for.
A plain delimited table's loop is written twice: a block that is all ASCII
and holds no NULL text (the reader says so once per block) takes the copy
whose fast path tests neither (:func:`has_plain_blocks`).

>>> from compiler.schema import Column, Format, Table
>>> t = Table("t", [Column("a", "string")], "/d", "|", format=Format("csv", header_lines=1))
>>> from types import SimpleNamespace as Scan
>>> reader_format(Scan(table=t, columns=[0]))
{'kind': 'csv', 'delimiter': '|', 'header_lines': 1, 'quote': '"', 'escape': None, 'null': '\\\\N', 'maxsplit': 1}
>>> reader_format(Scan(table=Table("t", [Column("a", "string")], "/d"), columns=[0])) is None
True
"""

from __future__ import annotations

from typing import Callable

from compiler.exprs import Var
from compiler.schema import fast_check
from compiler.codegen import partitions
from compiler.codegen.source import Src

# the fast path's conversion of a field's text, by column type
PARSE = {"string": "{}", "int": "int({})", "bigint": "int({})", "double": "float({})",
         "date": "(_dok({0}) or _date({0}))", "boolean": "_bool({})",
         "timestamp": "F.parse_timestamp({})"}

# per-row code of a scan: (environment of the row's columns, fast path) -> None
RowCode = Callable[[dict[str, Var], bool], None]


def scan_env(scan, nullable: bool) -> dict[str, Var]:
    """The columns a scan reads, bound to ``c<index>`` (NULL only on the slow
    path), and the partition columns it uses (``p<index>``, bound per block)."""
    return {**{f"{scan.alias}.{scan.table.columns[i].name.lower()}":
               Var(f"c{i}", scan.table.columns[i].type, nullable) for i in scan.columns},
            **partitions.partition_env(scan)}


def reader_format(scan) -> dict | None:
    """What the runtime's reader needs of a scanned table's
    :class:`~compiler.schema.Format` (None: plain delimited text, read as
    lines).  A JSON reader is given the names of the columns the scan reads:
    its records hold those, in that order (see :func:`field_index`)."""
    table = scan.table
    fmt = table.format
    if fmt.kind == "text" and not fmt.header_lines:
        return None
    out = {"kind": fmt.kind, "delimiter": table.delimiter, "header_lines": fmt.header_lines,
           "quote": fmt.quote, "escape": fmt.escape, "null": fmt.null}
    if fmt.kind == "json":
        out["columns"] = [table.columns[i].name for i in scan.columns]
    if fmt.kind == "csv":   # a line with no quotes is cut only as far as needed
        out["maxsplit"] = max(scan.columns) + 1 if scan.columns else 0
    return out


def field_index(scan, i: int) -> int:
    """Where column ``i`` is in a record of the scan's reader: a JSON record
    holds only the columns read, in the scan's order."""
    return scan.columns.index(i) if scan.table.format.kind == "json" else i


def records(table) -> bool:
    """Whether a table's reader yields records of fields (else text lines)."""
    return table.format.kind != "text"


def none_nulls(table) -> bool:
    """Whether NULL fields arrive as None (JSON, escaped text), else as the
    table's NULL text."""
    fmt = table.format
    return fmt.kind == "json" or fmt.kind == "text" and fmt.escape is not None


def null_text(table) -> str:
    """The NULL text of a scan's table, for its ``_nul``."""
    return table.format.null


def bind_helpers(src: Src, table) -> None:
    """Bind the names a scan's loops use: ``_nul`` and the slow path's parser."""
    null = table.format.null
    src("_nul = _NUL" if null == "\\N" else f"_nul = {null!r}")
    if records(table) or none_nulls(table):
        src("_parse_list = F.parse_list")
        if table.format.escape is not None and not records(table):
            src("_split_esc = F.split_escaped")
    else:
        src("_parse_fields = F.parse_fields")


def has_plain_blocks(scan) -> bool:
    """Whether a scan's loop has a second version for *plain* blocks (see
    :meth:`runtime.inputs.SplitReader.block_plain`): all ASCII and without
    the table's NULL text, so the fast path tests neither.  Plain delimited
    text only, and only when its fast path tests something of the kind."""
    table = scan.table
    if records(table) or none_nulls(table) or not scan.columns:
        return False
    return any(table.columns[i].type in ("string", "int", "bigint", "double") for i in scan.columns)


def line_loop(src: Src, scan, row: RowCode, plain: bool = False) -> None:
    """``for line in block:`` (``for f in block:`` for a reader of records)
    with its fast path, then its slow path; ``row`` writes the per-row code
    of each (back at the level it started).  ``plain``: the loop of a plain
    block (see :func:`has_plain_blocks`)."""
    src("for f in block:" if records(scan.table) else "for line in block:").indent()
    spec, levels = _fast_prologue(src, scan, plain)
    row(scan_env(scan, nullable=False), True)
    src("continue")
    src.level -= levels
    _slow_prologue(src, scan, spec)
    row(scan_env(scan, nullable=True), False)
    src.dedent()  # out of the line loop


def _fast_prologue(src: Src, scan, plain: bool = False) -> tuple[tuple[tuple[int, str], ...], int]:
    """Split and convert; leaves ``src`` inside the fast path.  Returns the
    slow path's field spec and how many levels in the fast path is."""
    cols = scan.columns
    table = scan.table
    types = [table.columns[i].type for i in cols]
    sep = table.delimiter
    nones = none_nulls(table)
    if cols and not records(table):
        if table.format.escape is not None:
            src(f"f = _split_esc(line, {sep!r}, {table.format.escape!r}, _nul)")
        else:
            src(f"f = line.split({sep!r}, {max(cols) + 1})")
    src("try:").indent()
    if cols:
        for i, t in zip(cols, types):
            src(f"c{i} = " + PARSE[t].format(f"f[{field_index(scan, i)}]"))
    else:
        src("pass")
    # a None field (NULL) fails int() / float() with TypeError, a BOOLEAN's or
    # DATE's parser with AttributeError / TypeError
    caught = "ValueError, IndexError, TypeError, AttributeError" if nones else \
        "ValueError, IndexError"
    src.dedent()(f"except ({caught}):").indent()("pass").dedent()
    src("else:").indent()
    # a plain block holds no NULL text, so no STRING field read is NULL
    tests = [] if plain else [f"c{i} is not None" if nones else f"c{i} != _nul"
                              for i, t in zip(cols, types) if t == "string"]
    if not records(table) and (not cols or cols == [0] and types == ["string"]):
        # An empty line splits to [''], so reading a field past the first fails,
        # and no parser but a STRING's accepts '': only when every field read is
        # a STRING field 0 (or none is read) can an empty line get here, so only
        # then is the line itself tested (the slow path skips it).
        tests.append("line")
    # a number int() / float() read that Hive's parsers would not takes the slow path
    tests += [c for i, t in zip(cols, types)
              if (c := fast_check(t, f"f[{field_index(scan, i)}]", f"c{i}", ascii_known=plain))]
    spec = tuple((field_index(scan, i), t) for i, t in zip(cols, types))
    if not tests:  # every field read parsed: not NULL, not an empty line
        return spec, 1
    src(f"if {' and '.join(tests)}:").indent()
    return spec, 2


def _slow_prologue(src: Src, scan, spec: tuple[tuple[int, str], ...]) -> None:
    cols = scan.columns
    table = scan.table
    if not records(table):
        src("if not line:").indent()("continue").dedent()
    if cols:
        names = ", ".join(f"c{i}" for i in cols) + ("," if len(cols) == 1 else "")
        if none_nulls(table):   # f: the fields, NULL as None
            parse = f"_parse_list(f, {spec!r}, None)"
        elif records(table):    # CSV: an empty number, date or boolean is NULL
            parse = f"_parse_list(f, {spec!r}, _nul, True)"
        elif table.format.null != "\\N":
            parse = f"_parse_fields(line, {table.delimiter!r}, {spec!r}, _nul)"
        else:
            parse = f"_parse_fields(line, {table.delimiter!r}, {spec!r})"
        src(f"({names}), _bad = {parse}")
        src("if _bad:").indent()("bad(f)" if records(table) else "bad(line)").dedent()
