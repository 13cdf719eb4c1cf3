"""The parts of a SELECT over its FROM clause: filter, grouping, outputs, order, limit.

:func:`select_parts` takes a qualified, type-annotated sqlglot SELECT apart
for :mod:`compiler.blocks`, which plans the FROM clause around it; the
dataclasses here (:class:`Scan`, :class:`Aggregate`, :class:`OrderKey`) are
shared with the lowering into stages.

>>> import sqlglot
>>> from compiler.schema import Table, Column
>>> from compiler.resolve import qualify_query, scope_tables
>>> uv = Table("uservisits", [Column("sourceIP", "string"), Column("adRevenue", "double")], "/d")
>>> sql = "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uservisits GROUP BY SUBSTR(sourceIP, 1, 8)"
>>> q = sqlglot.parse_one(sql, read="hive")
>>> qualified = qualify_query(q, {"uservisits": uv}, "hive", sql)
>>> p = select_parts(qualified, q, scope_tables(qualified, {"uservisits": uv}, sql), "hive", sql)
>>> [k.sql() for k in p.aggregate.keys], [a.sql() for a in p.aggregate.aggs], p.names
(['SUBSTRING("uservisits"."sourceip", 1, 8)'], ['SUM("uservisits"."adrevenue")'], ['SUBSTR(sourceIP, 1, 8)', 'SUM(adRevenue)'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import sqlglot
from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.exprs import expr_key, function_name
from compiler.resolve import _start
from compiler.schema import Table
from compiler.udfs import UserAgg, mark_aggregates
from compiler.sample import Sample

AGGREGATES = (exp.Sum, exp.Count, exp.Avg, exp.Min, exp.Max, UserAgg)


@dataclass
class Scan:
    """A table read by a map task, with the columns needed and the filter."""

    table: Table
    alias: str                       # lower-case alias used by qualified columns
    columns: list[int]               # indices of the columns the query uses
    filter: exp.Expression | None
    partitions: list[int] = field(default_factory=list)   # partition columns it uses
    # the conjuncts of ``filter`` over partition columns only: the driver
    # drops the partitions they are not true for (module function ``prune_entry``)
    prune: exp.Expression | None = None
    prune_entry: str = ""
    prune_text: str = ""             # ``prune`` as EXPLAIN shows it
    sample: Sample | None = None     # TABLESAMPLE: the driver plans a sample of the splits


@dataclass
class Aggregate:
    keys: list[exp.Expression]
    aggs: list[exp.AggFunc]          # distinct aggregate calls
    having: exp.Expression | None
    scalar: bool                     # no GROUP BY: exactly one output row


@dataclass
class OrderKey:
    index: int                       # position in the outputs
    desc: bool
    nulls_first: bool


def select_item_texts(sql: str, dialect: str = "hive") -> list[str] | None:
    """The text of each item of the first SELECT list in ``sql`` outside
    parentheses (or, when all are inside, the first at the least depth) as
    written: the statement's own, not a CTE's.

    >>> select_item_texts("SELECT SUBSTR(a, 1, 8), SUM(b) FROM t GROUP BY 1")
    ['SUBSTR(a, 1, 8)', 'SUM(b)']
    >>> select_item_texts("WITH c AS (SELECT x FROM t) SELECT x + 1, 2 FROM c")
    ['x + 1', '2']
    """
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType
    try:
        toks = sqlglot.tokenize(sql, read=dialect)
    except TokenError:
        return None
    # where the statement's SELECT list starts: the first SELECT at the least depth
    first: dict[int, int] = {}
    level = 0
    for i, tok in enumerate(toks):
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            level += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            level -= 1
        elif tok.token_type == TokenType.SELECT:
            first.setdefault(level, i)
    if first:
        toks = toks[first[min(first)]:]
    items: list[str] = []
    depth = 0
    begin = None
    started = False
    stop = {TokenType.FROM, TokenType.WHERE, TokenType.GROUP_BY, TokenType.ORDER_BY,
            TokenType.LIMIT, TokenType.HAVING, TokenType.SEMICOLON, TokenType.UNION}
    last_end = None
    for tok in toks:
        if not started:
            if tok.token_type == TokenType.SELECT:
                started = True
            continue
        if depth == 0 and tok.token_type in (TokenType.DISTINCT, TokenType.ALL) and begin is None and not items:
            continue
        if depth == 0 and (tok.token_type in stop or tok.token_type == TokenType.COMMA):
            if begin is not None:
                items.append(sql[begin:last_end + 1])
            begin = None
            if tok.token_type != TokenType.COMMA:
                return items
            continue
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        if begin is None:
            begin = tok.start
        last_end = tok.end
    if begin is not None:
        items.append(sql[begin:last_end + 1])
    return items or None


def output_names(original: exp.Select, qualified: exp.Select, tables: dict[str, Table],
                 dialect: str, sql: str | None = None,
                 spelling: Mapping[str, str] | None = None) -> list[str]:
    """Column headers as the user wrote them (the optimizer lower-cases Hive names).

    A ``*`` expands to the catalog's spelling (``spelling`` adds the names of
    derived tables' columns); an unaliased expression is named by its own SQL text.
    """
    names: list[str] = []
    texts = select_item_texts(sql, dialect) if sql else None
    if texts is not None and len(texts) != len(original.expressions):
        texts = None
    spelled = {c.name.lower(): c.name for t in tables.values() for c in t.all_columns}
    spelled.update(spelling or {})
    for i, e in enumerate(original.expressions):
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            names.append("*")
        elif isinstance(e, exp.Alias):
            names.append(e.alias)
        elif isinstance(e, exp.Column):
            names.append(e.name)
        else:
            names.append(" ".join(texts[i].split()) if texts else e.sql(dialect=dialect))
    if "*" not in names:
        return names
    # expand stars from the qualified select list (same order)
    out: list[str] = []
    q_names = [s.alias_or_name for s in qualified.expressions]
    qi = 0
    for n in names:
        if n != "*":
            out.append(n)
            qi += 1
            continue
        star_count = len(q_names) - (len(names) - 1)
        for _ in range(star_count):
            out.append(spelled.get(q_names[qi].lower(), q_names[qi]))
            qi += 1
    return out


def _limit(select: exp.Select, sql: str) -> int | None:
    lim = select.args.get("limit")
    if lim is None:
        return None
    if select.args.get("offset") is not None or lim.args.get("offset") is not None:
        raise UnsupportedError("LIMIT with OFFSET", sql, _start(lim))
    value = lim.expression
    if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
        raise SqlError("LIMIT needs a non-negative integer", sql, _start(lim))
    return int(value.this)


@dataclass
class SelectParts:
    """What a SELECT computes over its FROM clause, whatever that clause is."""

    filter: exp.Expression | None    # the WHERE condition
    aggregate: Aggregate | None
    outputs: list[exp.Expression]    # visible outputs, then hidden sort keys
    names: list[str]
    order: list[OrderKey]
    limit: int | None
    distinct: bool
    windows: list[exp.Window] = field(default_factory=list)   # distinct window calls

    def expressions(self) -> list[exp.Expression]:
        """Every expression evaluated over the FROM clause's rows."""
        out: list[exp.Expression] = []
        if self.aggregate is not None:
            out += list(self.aggregate.keys) + list(self.aggregate.aggs)
            if self.aggregate.having is not None:
                out.append(self.aggregate.having)
        return out


def select_parts(select: exp.Select, original: exp.Select, tables: Mapping[str, Table],
                 dialect: str, sql: str | None,
                 spelling: Mapping[str, str] | None = None,
                 named_by_text: bool = True) -> SelectParts:
    """WHERE, GROUP BY / aggregates / HAVING / DISTINCT, outputs with their
    names, ORDER BY and LIMIT of a qualified SELECT.  ``named_by_text``:
    unaliased outputs are named by their text in ``sql`` (the statement's
    own SELECT list, not a derived table's)."""
    mark_aggregates(select)
    where = select.args.get("where")
    filt = where.this if where is not None else None
    if filt is not None:
        for agg in filt.find_all(exp.AggFunc):
            raise SqlError("aggregates are not allowed in WHERE (use HAVING)", sql, _start(agg))

    selects = [s.this if isinstance(s, exp.Alias) else s for s in select.expressions]
    group = select.args.get("group")
    group_keys = list(group.expressions) if group is not None else []
    if group is not None and (group.args.get("rollup") or group.args.get("cube")
                              or group.args.get("grouping_sets")):
        raise UnsupportedError("ROLLUP / CUBE / GROUPING SETS", sql, _start(group))
    having_node = select.args.get("having")
    having = having_node.this if having_node is not None else None
    order_nodes = list(select.args["order"].expressions) if select.args.get("order") else []

    for e in [filt, having, *group_keys]:
        w = e.find(exp.Window) if e is not None else None
        if w is not None:
            raise SqlError("window functions are not allowed in WHERE, GROUP BY or HAVING "
                           "(compute them in a derived table)", sql, _start(w))
    windows: dict[str, exp.Window] = {}
    for e in selects + [o.this for o in order_nodes]:
        for w in e.find_all(exp.Window):
            check_window(w, sql)
            windows.setdefault(expr_key(w), w)

    aggs: dict[str, exp.AggFunc] = {}
    for e in selects + ([having] if having is not None else []) + [o.this for o in order_nodes]:
        for agg in e.find_all(exp.AggFunc):
            if isinstance(agg.parent, exp.Window) and agg.arg_key == "this":
                continue   # a window's own function, computed by the window stage
            if not isinstance(agg, AGGREGATES):
                raise UnsupportedError(f"aggregate function {function_name(agg)}()", sql, _start(agg))
            if any(isinstance(a, exp.AggFunc) for a in agg.this.find_all(exp.AggFunc)) if agg.this else False:
                raise SqlError("aggregates cannot be nested", sql, _start(agg))
            aggs.setdefault(expr_key(agg), agg)

    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        raise UnsupportedError("DISTINCT ON", sql, _start(select))
    if distinct is not None and windows:
        raise UnsupportedError("SELECT DISTINCT with window functions (compute them in a "
                               "derived table)", sql, _start(select))

    aggregate = None
    if group_keys or aggs or having is not None:
        if distinct is not None:
            raise UnsupportedError("SELECT DISTINCT with GROUP BY or aggregates", sql, _start(select))
        aggregate = Aggregate(group_keys, list(aggs.values()), having, scalar=not group_keys)
    elif distinct is not None:
        aggregate = Aggregate(list(selects), [], None, scalar=False)

    names = output_names(original, select, dict(tables), dialect,
                         sql if named_by_text else None, spelling)
    outputs: list[exp.Expression] = list(selects)
    order: list[OrderKey] = []
    aliases = {s.alias.lower(): i for i, s in enumerate(select.expressions) if isinstance(s, exp.Alias)}
    out_keys = {expr_key(e): i for i, e in enumerate(selects)}
    for o in order_nodes:
        target = o.this
        index = None
        if isinstance(target, exp.Column) and not target.table and target.name.lower() in aliases:
            index = aliases[target.name.lower()]
        elif isinstance(target, exp.Literal) and target.is_int:
            pos = int(target.this)
            if not 1 <= pos <= len(selects):
                raise SqlError(f"ORDER BY position {pos} is not in the select list", sql, _start(target))
            index = pos - 1
        else:
            index = out_keys.get(expr_key(target))
        if index is None:
            if distinct is not None:
                raise SqlError("with SELECT DISTINCT, ORDER BY expressions must appear in the select list",
                               sql, _start(target))
            outputs.append(target)
            index = len(outputs) - 1
        nulls_first = bool(o.args.get("nulls_first"))
        order.append(OrderKey(index, bool(o.args.get("desc")), nulls_first))
    return SelectParts(filt, aggregate, outputs, names, order, _limit(select, sql),
                       distinct is not None, list(windows.values()))


WINDOW_FUNCTIONS = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Sum, exp.Count, exp.Avg,
                    exp.Min, exp.Max, exp.Lag, exp.Lead)


def check_window(w: exp.Window, sql: str | None) -> None:
    """Refuse what the window stage does not compute: frames other than the
    default, functions other than :data:`WINDOW_FUNCTIONS`, nested windows.

    >>> import sqlglot
    >>> check_window(sqlglot.parse_one("SELECT SUM(x) OVER (ORDER BY y ROWS 2 PRECEDING) FROM t").selects[0], "")
    Traceback (most recent call last):
    compiler.errors.UnsupportedError: not supported yet: window frames (ROWS / RANGE …)
    """
    fn = w.this
    spec = w.args.get("spec")
    if spec is not None:
        at = _start(w)
        kind = str(spec.args.get("kind") or "ROWS").upper()
        if sql and at is not None and sql.upper().find(kind, at) >= 0:
            at = sql.upper().find(kind, at)   # the caret on ROWS / RANGE
        raise UnsupportedError(
            "window frames (ROWS / RANGE …)", sql, at,
            "only the default frame runs: with ORDER BY, from the partition's first row to "
            "the current row and its peers; without, the whole partition")
    if not isinstance(fn, WINDOW_FUNCTIONS):
        raise UnsupportedError(f"window function {function_name(fn)}()", sql, _start(w))
    if isinstance(fn, exp.Count) and isinstance(fn.this, exp.Distinct):
        raise UnsupportedError("COUNT(DISTINCT …) OVER (…)", sql, _start(w))
    if isinstance(fn, (exp.Lag, exp.Lead)):
        off = fn.args.get("offset")
        if off is not None and not (isinstance(off, exp.Literal) and off.is_int and int(off.this) >= 0):
            raise SqlError(f"{function_name(fn)}'s offset must be a whole number literal",
                           sql, _start(off))
    parts = [fn, *(w.args.get("partition_by") or []), w.args.get("order")]
    if any(p is not None and p.find(exp.Window) is not None for p in parts):
        raise SqlError("window functions cannot be nested", sql, _start(w))
