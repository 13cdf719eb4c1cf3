"""A compiled job: its stages, its generated module and how to read its result.

>>> from compiler.schema import Table, Column
>>> rk = Table("rankings", [Column("pageURL", "string"), Column("pageRank", "int")], "/d")
>>> job = compile_select("SELECT pageURL FROM rankings WHERE pageRank > 10", {"rankings": rk})
>>> [(s.id, s.table, s.map_entry, s.reduce_entry) for s in job.stages], job.columns
([(1, 'rankings', 's1_map', None)], ['pageURL'])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from compiler.blocks import Block, build_block, refuse_subqueries_outside_from
from compiler.codegen import generate_stages
from compiler.errors import SqlError, UnsupportedError
from compiler.exprs import deep_recursion, nesting_error, pin_current_date
from compiler.explain import stage_trees
from compiler.resolve import check_names, qualify_query, restore_char_lengths
from compiler.schema import Table
from compiler.shapes import rewrite
from compiler.udfs import Udf, active
from compiler.stages import Lowering, Stage  # noqa: F401  (Stage is part of this module's API)


@dataclass
class Job:
    sql: str
    stages: list[Stage]
    source: str                      # the generated Python module
    columns: list[str]               # visible output column names
    types: list[str | None]          # value type of each visible column
    width: int                       # columns per output row (visible + hidden sort keys)
    sorted: bool                     # final task outputs are sorted by the module's sortkey
    limit: int | None
    tables: dict[str, Table]
    plan: Block | None = None
    notes: list[str] = field(default_factory=list)   # what EXPLAIN adds (a CTE read twice)
    udfs: list[Udf] = field(default_factory=list)    # users' functions it calls (shipped)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()


def parse_one(sql: str, dialect: str = "hive") -> exp.Expression:
    """Parse one statement; syntax errors carry the position of the bad token.
    Nesting deeper than sqlmr supports is refused before parsing (the parser
    recurses per level)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:  # noqa: BLE001 — the parser reports it, with its position
        tokens = []
    too_deep = nesting_error(sql, tokens)
    if too_deep is not None:
        raise too_deep
    try:
        with deep_recursion(sql, "parse"):
            stmts = sqlglot.parse(sql, read=dialect)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        offset = None
        if err.get("line") is not None:
            offset = _offset_of(sql, err["line"], err["col"], err.get("highlight") or "")
        desc = err.get("description") or str(e)
        raise SqlError(_friendly(desc, err.get("highlight")), sql, offset) from None
    stmts = [s for s in stmts if s is not None]
    if len(stmts) != 1:
        raise SqlError("expected one statement", sql, 0)
    return stmts[0]


def _friendly(desc: str, highlight: str | None) -> str:
    if desc.startswith("Invalid expression / Unexpected token") and highlight:
        return f"syntax error at or near '{highlight}'"
    if desc.startswith("Required keyword"):
        return f"syntax error: incomplete statement near '{highlight}'" if highlight else "syntax error: incomplete statement"
    return f"syntax error: {desc}"


def _offset_of(sql: str, line: int, col: int, highlight: str) -> int:
    """Character offset of a token sqlglot reports by (line, end column)."""
    lines = sql.split("\n")
    line = max(1, min(line, len(lines)))
    base = sum(len(x) + 1 for x in lines[: line - 1])
    end_col = col  # sqlglot reports the column of the token's last character
    start = base + end_col - len(highlight)
    return max(base, min(start, len(sql)))


def compile_select(sql: str, catalog: Mapping[str, Table], dialect: str = "hive",
                   tree: exp.Expression | None = None, sizes: Mapping[str, int] | None = None,
                   broadcast_bytes: int | None = None,
                   functions: Mapping[str, Udf] | None = None) -> Job:
    """Compile a SELECT statement into a job.

    ``sizes`` (table name -> input bytes) and ``broadcast_bytes`` decide joins:
    a side smaller than ``broadcast_bytes`` is broadcast to the other side's
    tasks; without sizes every join is a reduce-side join.  ``functions``
    (name -> Udf) are the Python UDFs the statement may call.
    """
    original = tree if tree is not None else parse_one(sql, dialect)
    original = pin_current_date(original)  # one day for every task of the job
    with deep_recursion(sql), active(dict(functions or {})) as calls:
        job = _compile_select(sql, original, catalog, dialect, sizes, broadcast_bytes)
    job.udfs = sorted(calls.used.values(), key=lambda u: u.name)
    return job


def _compile_select(sql: str, original: exp.Expression, catalog: Mapping[str, Table],
                    dialect: str, sizes: Mapping[str, int] | None,
                    broadcast_bytes: int | None) -> Job:
    """:func:`compile_select` of a parsed statement."""
    if not isinstance(original, (exp.Select, exp.SetOperation)):
        raise UnsupportedError(f"{original.key.upper()} statements", sql, 0)
    restore_char_lengths(original, sql, dialect)   # before copies change the tree's shape
    shaped = rewrite(original, sql, dialect)
    original = shaped.tree
    refuse_subqueries_outside_from(original, sql)
    for select in original.find_all(exp.Select):   # derived tables too: before qualifying
        check_names(select, catalog, sql)
    qualified = qualify_query(original, catalog, dialect, sql)
    block = build_block(qualified, original, catalog, dialect, sql)
    lowering = Lowering(sizes, broadcast_bytes, sql)
    stages = lowering.lower(block)
    try:
        gen = generate_stages(stages)
    except SqlError as e:
        if e.sql is None:  # found while generating code: place it in the statement
            raise SqlError(e.message, sql, e.offset, e.hint) from None
        raise
    stage_trees(stages, block.all_spelling(), gen.passing)
    used = {t.table.name.lower(): t.table for t in block.tables()}
    # a range-partitioned sort's outputs are already in order, partition after partition
    merge = bool(block.order) and not lowering.range_sorted
    return Job(sql, stages, gen.source, block.names, gen.output_types[: block.visible],
               len(block.outputs), merge, block.limit, used, block, shaped.notes)
