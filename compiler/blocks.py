"""Logical plan of any SELECT: a block over a FROM tree of tables, derived
tables (subqueries in FROM) and inner / left outer equi-joins.

``build_block`` takes the qualified, type-annotated query (every column carries
its table alias) and

- splits WHERE and inner-join ON conditions into conjuncts; a conjunct on one
  alias is pushed into that source (a table's scan filter, or a filter on a
  derived table's rows) unless the alias is on the NULL-supplying side of a
  LEFT JOIN; ``a.x = b.y`` between the joined sets becomes a join key; the
  rest is evaluated after the joins;
- orders inner joins greedily so that every join has an equality condition
  (a cross join is refused rather than run, unless a side holds at most one
  row: a scalar aggregate is broadcast with the constant key 1);
- collects the columns each table's scan needs.

What the block computes over its FROM rows (aggregates, outputs, ORDER BY,
LIMIT) is :func:`compiler.plan.select_parts`.

>>> import sqlglot
>>> from compiler.schema import Table, Column
>>> from compiler.resolve import qualify_query
>>> cat = {"r": Table("r", [Column("url", "string"), Column("rank", "int")], "/r"),
...        "v": Table("v", [Column("ip", "string"), Column("dest", "string"), Column("rev", "double")], "/v")}
>>> sql = "SELECT ip, SUM(rev) FROM r, v WHERE url = dest AND rank > 3 AND rev < 1 GROUP BY ip"
>>> q = sqlglot.parse_one(sql, read="hive")
>>> b = build_block(qualify_query(q, cat, "hive", sql), q, cat, "hive", sql)
>>> j = b.source
>>> [k.sql() for k in j.left_keys], [k.sql() for k in j.right_keys], j.kind
(['"r"."url"'], ['"v"."dest"'], 'inner')
>>> j.left.filter.sql(), j.left.columns, j.right.filter.sql(), j.right.columns
('"r"."rank" > 3', [0, 1], '"v"."rev" < 1', [0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.plan import Aggregate, OrderKey, select_parts
from compiler.resolve import _start, check_names, lookup_table
from compiler.shapes import is_union_wrapper, select_keyword
from compiler.schema import Table
from compiler.subqueries import subquery_start
from compiler.sample import Sample, table_sample


@dataclass
class TableSource:
    table: Table
    alias: str                       # lower-case alias qualified columns use
    spelling: str                    # the alias as the user wrote it
    columns: list[int] = field(default_factory=list)
    filter: exp.Expression | None = None
    partitions: list[int] = field(default_factory=list)   # partition columns used
    sample: Sample | None = None     # TABLESAMPLE: a sample of the splits is read

    @property
    def aliases(self) -> set[str]:
        return {self.alias}


@dataclass
class DerivedSource:
    block: "Block"
    alias: str
    spelling: str
    filter: exp.Expression | None = None   # conditions on the derived table's rows

    @property
    def aliases(self) -> set[str]:
        return {self.alias}

    @property
    def columns(self) -> list[str]:
        return self.block.out_names


@dataclass
class JoinSource:
    left: "Source"
    right: "Source"
    kind: str                        # inner | left
    left_keys: list[exp.Expression]
    right_keys: list[exp.Expression]
    # a cross join with a side of at most one row (a scalar aggregate): that
    # side ("left" / "right") is broadcast, the keys are the constant 1
    one_row: str | None = None

    @property
    def aliases(self) -> set[str]:
        return self.left.aliases | self.right.aliases


@dataclass
class OneRowSource:
    """The FROM of a SELECT without FROM: one row of no columns."""

    @property
    def aliases(self) -> set[str]:
        return set()


Source = Union[TableSource, DerivedSource, JoinSource, OneRowSource]


@dataclass
class Block:
    source: Source
    where: exp.Expression | None     # evaluated after the joins
    aggregate: Aggregate | None
    outputs: list[exp.Expression]    # visible outputs, then hidden sort keys
    names: list[str]                 # visible output names as the user spelt them
    out_names: list[str]             # lower-case names an outer query refers to
    order: list[OrderKey]
    limit: int | None
    distinct: bool
    spelling: dict[str, str]         # lower-case column / alias name -> user spelling
    windows: list[exp.Window] = field(default_factory=list)   # computed after HAVING

    @property
    def visible(self) -> int:
        return len(self.names)

    def all_spelling(self) -> dict[str, str]:
        """Spelling of names in this block and every derived table under it."""
        out: dict[str, str] = {}

        def walk(s: Source) -> None:
            if isinstance(s, DerivedSource):
                out.update(s.block.all_spelling())
            elif isinstance(s, JoinSource):
                walk(s.left)
                walk(s.right)
        walk(self.source)
        out.update(self.spelling)
        return out

    def post_columns(self) -> set[str]:
        """Keys (``alias.column``) of the columns used after the FROM clause's
        joins: residual WHERE, grouping, aggregates, outputs."""
        nodes = [self.where] + list(self.outputs)
        if self.aggregate is not None:
            nodes += list(self.aggregate.keys) + list(self.aggregate.aggs)
            nodes.append(self.aggregate.having)
        return {f"{c.table.lower()}.{c.name.lower()}" for n in nodes if n is not None
                for c in n.find_all(exp.Column) if c.table}

    def tables(self) -> list[TableSource]:
        out: list[TableSource] = []

        def walk(s: Source) -> None:
            if isinstance(s, TableSource):
                out.append(s)
            elif isinstance(s, DerivedSource):
                out.extend(s.block.tables())
            elif isinstance(s, JoinSource):
                walk(s.left)
                walk(s.right)
        walk(self.source)
        return out


@dataclass
class UnionBlock:
    """UNION ALL of two or more queries: their rows, under the first one's
    column names; column types are unified when the stages are built
    (:meth:`compiler.stages.Lowering.union`)."""

    branches: list[Block]
    names: list[str]                 # the first branch's
    out_names: list[str]
    starts: list[int | None]         # where each branch is in the text (errors)
    limit: None = None               # ORDER BY / LIMIT over a union are the wrapper's
    order: list = field(default_factory=list)

    @property
    def visible(self) -> int:
        return len(self.names)

    def all_spelling(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for b in reversed(self.branches):   # the first branch's spelling wins
            out.update(b.all_spelling())
        return out

    def tables(self) -> list[TableSource]:
        return [t for b in self.branches for t in b.tables()]


_UNSUPPORTED_ARGS = ("with_", "windows", "qualify", "laterals", "pivots", "prewhere", "connect",
                     "match", "settings", "format", "kind", "into", "locks",
                     "cluster", "distribute", "sort")


def conjuncts(e: exp.Expression | None) -> list[exp.Expression]:
    if e is None:
        return []
    e = e.unnest() if isinstance(e, exp.Paren) else e
    if isinstance(e, exp.And):
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def and_all(parts: list[exp.Expression]) -> exp.Expression | None:
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


def aliases_of(e: exp.Expression) -> set[str]:
    return {c.table.lower() for c in e.find_all(exp.Column) if c.table}


def _own_nodes(select: exp.Select):
    """Nodes of this SELECT, not of the derived tables in its FROM."""
    return select.walk(bfs=False, prune=lambda n: n is not select and isinstance(
        n, (exp.Subquery, exp.Select)))


def refuse_subqueries_outside_from(tree: exp.Expression, sql: str) -> None:
    """Refuse a subquery in WHERE, SELECT or HAVING (``IN (SELECT …)``,
    ``EXISTS``, a scalar subquery) before names are checked: a correlated
    one's outer alias would otherwise read as an unknown table.

    >>> import sqlglot
    >>> sql = "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.b = t.a)"
    >>> refuse_subqueries_outside_from(sqlglot.parse_one(sql), sql)
    Traceback (most recent call last):
    compiler.errors.UnsupportedError: not supported yet: subqueries outside FROM
    >>> refuse_subqueries_outside_from(sqlglot.parse_one("SELECT a FROM (SELECT 1 a) q"), "")
    """
    for select in tree.find_all(exp.Select):
        items = _from_items(select)
        for node in _own_nodes(select):
            if isinstance(node, (exp.Subquery, exp.Exists)) and node is not select \
                    and not any(node is i for i in items):
                raise _subquery_error(node, sql)


def _subquery_error(node: exp.Expression, sql: str) -> UnsupportedError:
    test = node if isinstance(node, exp.Exists) else node.parent
    hint = None
    if isinstance(test, (exp.Exists, exp.In)):   # a semi-join, or an anti-join under NOT
        join = "FROM t JOIN (SELECT DISTINCT k FROM u) s ON t.k = s.k"
        if isinstance(test.parent, exp.Not):
            join = ("FROM t LEFT JOIN (SELECT DISTINCT k FROM u) s ON t.k = s.k WHERE s.k IS NULL"
                    + (" (NOT IN also keeps no row when u.k holds a NULL)"
                       if isinstance(test, exp.In) else ""))
        hint = f"a join in FROM does the same: … {join}"
    return UnsupportedError("subqueries outside FROM", sql, subquery_start(node, sql), hint)


def build_block(select: exp.Expression, original: exp.Expression,
                catalog: Mapping[str, Table], dialect: str, sql: str,
                top: bool = True) -> Block:
    """The logical block of a qualified SELECT (``original``: the same query
    as parsed, for names and error positions)."""
    if isinstance(select, exp.Subquery):
        select, original = select.this, original.this if isinstance(original, exp.Subquery) else original
    if isinstance(select, exp.SetOperation):
        raise UnsupportedError(f"{select.key.upper()} here", sql, _start(select))
    if not isinstance(select, exp.Select):
        raise UnsupportedError(f"{select.key.upper()} in FROM", sql, _start(select))
    for arg in _UNSUPPORTED_ARGS:
        if select.args.get(arg):
            raise UnsupportedError(f"{arg.rstrip('_').upper()} clause", sql, _start(select))
    for node in _own_nodes(select):
        if isinstance(node, (exp.Subquery, exp.Exists)) and node is not select:
            if not _is_from_item(select, node):
                raise _subquery_error(node, sql)

    if select.args.get("from_") is None:
        return _no_from_block(select, original, dialect, sql, top)

    # ------------------------------------------------------------ sources
    q_items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    o_items = _from_items(original) if isinstance(original, exp.Select) else [None] * len(q_items)
    if len(o_items) != len(q_items):
        o_items = [None] * len(q_items)
    sources: list[Source] = []
    spelling: dict[str, str] = {}
    for q_item, o_item in zip(q_items, o_items):
        sources.append(_source(q_item, o_item, catalog, dialect, sql, spelling,
                               original if top else None))
    _select_sample(select, original, sources, sql)
    for s in sources:
        for t in _walk_tables(s):
            spelling.update({c.name.lower(): c.name for c in t.table.all_columns})
        if isinstance(s, DerivedSource):
            spelling.update({n.lower(): n for n in s.block.names if n.lower() in s.block.out_names})
    names_of = {s.alias: s for s in sources}  # type: ignore[union-attr]
    if len(names_of) != len(sources):
        raise SqlError("a table alias is used twice in one FROM clause", sql, _start(select))

    parts = select_parts(select, original if isinstance(original, exp.Select) else select,
                         {s.alias: s.table for s in sources if isinstance(s, TableSource)},
                         dialect, sql, spelling, named_by_text=top)

    # ------------------------------------------------------------- joins
    joins = select.args.get("joins") or []
    where_parts = conjuncts(parts.filter)
    if not joins:
        only = sources[0]
        if isinstance(only, TableSource):
            only.filter = parts.filter        # kept as written (EXPLAIN shows it so)
        elif parts.filter is not None:
            only.filter = parts.filter
        source: Source = only
        residual: list[exp.Expression] = []
    else:
        source, residual = _join_tree(sources, joins, where_parts, sql)

    # ----------------------------------------------------- needed columns
    used: dict[str, set[str]] = {}
    for node in _own_nodes(select):
        if isinstance(node, exp.Column) and node.table:
            used.setdefault(node.table.lower(), set()).add(node.name.lower())
    for s in sources:
        if isinstance(s, TableSource):
            cols = used.get(s.alias, set())
            in_partition = {c: s.table.partition_index(c) for c in cols}
            s.columns = sorted(s.table.column_index(c) for c in cols if in_partition[c] is None)
            s.partitions = sorted(p for p in in_partition.values() if p is not None)

    out_names = [(e.alias_or_name or "").lower() for e in select.expressions]
    names = parts.names
    if is_union_wrapper(original) and isinstance(sources[0], DerivedSource):
        names = list(sources[0].block.names)   # SELECT * over the union: its own names
    return Block(source, and_all(residual), parts.aggregate, parts.outputs, names,
                 out_names, parts.order, parts.limit, parts.distinct, spelling, parts.windows)


def _no_from_block(select: exp.Select, original: exp.Expression, dialect: str, sql: str,
                   top: bool) -> Block:
    """A SELECT without FROM: its expressions over one row of no columns
    (WHERE, aggregates and ORDER BY mean what they mean over that row)."""
    parts = select_parts(select, original if isinstance(original, exp.Select) else select, {},
                         dialect, sql, {}, named_by_text=top)
    out_names = [(e.alias_or_name or "").lower() for e in select.expressions]
    return Block(OneRowSource(), parts.filter, parts.aggregate, parts.outputs, parts.names,
                 out_names, parts.order, parts.limit, parts.distinct, {}, parts.windows)


def build_union(union: exp.Union, original: exp.Expression | None,
                catalog: Mapping[str, Table], dialect: str, sql: str,
                top: bool = False) -> UnionBlock:
    """The block of a UNION ALL (a derived table: see :mod:`compiler.shapes`);
    every branch must have as many columns as the first."""
    q_branches = _branches(union)
    o_branches = _branches(original) if isinstance(original, exp.Union) else []
    if len(o_branches) != len(q_branches):
        o_branches = [None] * len(q_branches)
    blocks: list[Block] = []
    starts: list[int | None] = []
    for i, (q, o) in enumerate(zip(q_branches, o_branches)):
        inner_o = o.this if isinstance(o, exp.Subquery) else o
        if isinstance(inner_o, exp.Select):
            check_names(inner_o, catalog, sql)
        # the first branch names the columns; at the top, as the text spells them
        blocks.append(build_block(q, inner_o if inner_o is not None else q, catalog, dialect,
                                  sql, top=top and i == 0))
        starts.append(select_keyword(sql, _start(o), dialect) if o is not None else None)
    first = blocks[0]
    for i, b in enumerate(blocks[1:], 2):
        if b.visible != first.visible:
            raise SqlError(f"each SELECT of a UNION needs as many columns as the first: the "
                           f"first has {first.visible}, SELECT {i} has {b.visible}", sql,
                           starts[i - 1])
    return UnionBlock(blocks, list(first.names), list(first.out_names), starts)


def _branches(node: exp.Expression) -> list[exp.Expression]:
    """The queries a UNION ALL chain combines, left to right."""
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Union):
        return _branches(node.this)   # (a UNION ALL b) UNION ALL c
    if isinstance(node, exp.Union):   # distinct ones were wrapped (compiler.shapes)
        return _branches(node.this) + _branches(node.expression)
    return [node]


def _is_from_item(select: exp.Select, node: exp.Expression) -> bool:
    items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    return any(node is i for i in items)


def _from_items(select: exp.Select) -> list:
    if select.args.get("from_") is None:
        return []
    return [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]


def _select_sample(select: exp.Select, original, sources: list, sql: str) -> None:
    """``FROM t AS x TABLESAMPLE (…)``: sqlglot hangs a sample written after an
    alias on the SELECT; it samples the one table in FROM."""
    node = original if isinstance(original, exp.Select) and original.args.get("sample") \
        else select
    if node.args.get("sample") is None:
        return
    if len(sources) != 1 or not isinstance(sources[0], TableSource):
        raise SqlError("write TABLESAMPLE right after its table's name: FROM t TABLESAMPLE "
                       "(10 PERCENT) x", sql, _start(node.args["sample"]))
    sources[0].sample = table_sample(node, sql)


def _walk_tables(s: Source):
    if isinstance(s, TableSource):
        yield s
    elif isinstance(s, JoinSource):
        yield from _walk_tables(s.left)
        yield from _walk_tables(s.right)


def _source(q_item: exp.Expression, o_item: exp.Expression | None, catalog, dialect: str,
            sql: str, spelling: dict[str, str], parent: exp.Expression | None = None) -> Source:
    alias = q_item.alias_or_name.lower()
    user = o_item.alias_or_name if o_item is not None and o_item.alias_or_name else alias
    spelling[alias] = user
    if isinstance(q_item, exp.Table):
        if q_item.args.get("db") is not None:
            raise SqlError(f"table '{q_item.sql()}': database names are not supported", sql,
                           _start(q_item))
        table = lookup_table(q_item.name, catalog, sql, o_item if o_item is not None else q_item)
        return TableSource(table, alias, user, sample=table_sample(
            o_item if o_item is not None and o_item.args.get("sample") else q_item, sql))
    if (o_item if o_item is not None else q_item).args.get("sample") is not None:
        raise UnsupportedError("TABLESAMPLE of a derived table (sample a table in FROM)", sql,
                               _start((o_item if o_item is not None else q_item).args["sample"]))
    if isinstance(q_item, exp.Subquery):
        inner_o = o_item.this if isinstance(o_item, exp.Subquery) else None
        if isinstance(inner_o, exp.Select):
            check_names(inner_o, catalog, sql)
        if isinstance(q_item.this, exp.Union):
            block: Block | UnionBlock = build_union(q_item.this, inner_o, catalog, dialect, sql,
                                                    top=is_union_wrapper(parent))
        else:
            block = build_block(q_item.this, inner_o if inner_o is not None else q_item.this,
                                catalog, dialect, sql, top=False)
        named = o_item.args.get("alias") if o_item is not None else None
        if named is not None and len(named.columns) > block.visible:
            raise SqlError(f"'{user}' has {block.visible} column"
                           f"{'s' if block.visible != 1 else ''} but {len(named.columns)} "
                           "column names", sql, _start(named.columns[block.visible]))
        if len(set(block.out_names)) != len(block.out_names):
            raise SqlError(f"derived table '{user}' has two columns with the same name; "
                           "give them aliases", sql, _start(q_item))
        return DerivedSource(block, alias, user)
    raise UnsupportedError(f"{q_item.key.upper()} in FROM", sql, _start(q_item))


def _join_kind(j: exp.Join, sql: str, first: bool) -> str:
    side = (j.args.get("side") or "").upper()
    kind = (j.args.get("kind") or "").upper()
    if side == "RIGHT" and first and kind in ("", "OUTER"):
        return "right"   # a RIGHT JOIN of the first two tables is the LEFT JOIN the other way
    if kind in ("SEMI", "ANTI") or side in ("RIGHT", "FULL") or kind not in ("", "INNER", "OUTER", "CROSS"):
        what = " ".join(x for x in (side, kind) if x) or "this"
        raise UnsupportedError(f"{what} JOIN (inner and LEFT OUTER joins are, and a RIGHT "
                               "JOIN of the first two tables)", sql, _start(j))
    if side == "LEFT":
        return "left"
    return "inner"


def _join_tree(sources: list[Source], joins: list[exp.Join], where_parts: list[exp.Expression],
               sql: str) -> tuple[Source, list[exp.Expression]]:
    """A left-deep join tree over ``sources`` and the conditions left for after it."""
    kinds = ["inner"] + [_join_kind(j, sql, i == 0) for i, j in enumerate(joins)]
    ons = [[]] + [conjuncts(j.args.get("on")) for j in joins]
    if kinds[1] == "right":
        sources[0], sources[1] = sources[1], sources[0]
        kinds[1] = "left"
    # aliases on the NULL-supplying side of a LEFT JOIN: WHERE conditions on them
    # must see the NULLs the join adds, so they are not pushed below it
    nullable = {a for s, k in zip(sources, kinds) if k == "left" for a in s.aliases}
    pending: list[exp.Expression] = list(where_parts)
    for k, on in zip(kinds, ons):
        if k == "inner":
            pending.extend(on)
    residual: list[exp.Expression] = []

    # push single-source conditions into their source
    keep = []
    for c in pending:
        al = aliases_of(c)
        if len(al) == 1 and not (al & nullable):
            target = next(s for s in sources if s.aliases & al)
            _push(target, c)
        elif not al:
            _push(sources[0], c)
        else:
            keep.append(c)
    pending = keep

    current: Source = sources[0]
    done = set(sources[0].aliases)
    i = 1
    while i < len(sources):
        if kinds[i] == "left":
            right = sources[i]
            lk, rk, rest = [], [], []
            for c in ons[i]:
                al = aliases_of(c)
                pair = _equi(c, done, right.aliases)
                if pair is not None:
                    lk.append(pair[0])
                    rk.append(pair[1])
                elif al and al <= right.aliases:
                    _push(right, c)
                else:
                    rest.append(c)
            if rest:
                raise UnsupportedError("a LEFT JOIN ON condition other than equalities and "
                                       "conditions on the right side alone", sql, _start(rest[0]))
            if not lk:
                raise UnsupportedError("a LEFT JOIN without an equality condition", sql,
                                       _start(joins[i - 1]))
            current = JoinSource(current, right, "left", lk, rk)
            done |= right.aliases
            i += 1
            continue
        # inner: among the inner sources up to the next LEFT JOIN, take the first
        # one that an equality condition connects to what is joined so far
        end = i
        while end < len(sources) and kinds[end] == "inner":
            end += 1
        pick = None
        for cand in range(i, end):
            if any(_equi(c, done, sources[cand].aliases) for c in pending):
                pick = cand
                break
        if pick is None:
            # no equality: a cross join, run only with a side of at most one row
            one = next((c for c in range(i, end) if at_most_one_row(sources[c])), None)
            if one is None and not at_most_one_row(current):
                raise UnsupportedError("a join without an equality condition between the tables "
                                       "(a cross join; one with a side of at most one row, such as "
                                       "a scalar aggregate, runs)", sql, _start(joins[i - 1]))
            pick = i if one is None else one
            if pick != i:
                sources.insert(i, sources.pop(pick))
            side = "right" if one is not None else "left"
            current = JoinSource(current, sources[i], "inner", [exp.Literal.number(1)],
                                 [exp.Literal.number(1)], one_row=side)
            done |= sources[i].aliases
            i += 1
            continue
        if pick != i:
            sources.insert(i, sources.pop(pick))
        right = sources[i]
        lk, rk, keep = [], [], []
        for c in pending:
            pair = _equi(c, done, right.aliases)
            if pair is not None:
                lk.append(pair[0])
                rk.append(pair[1])
            else:
                keep.append(c)
        pending = keep
        current = JoinSource(current, right, "inner", lk, rk)
        done |= right.aliases
        i += 1
    residual.extend(pending)
    return current, residual


def at_most_one_row(source: Source) -> bool:
    """Whether a FROM item yields at most one row: a derived table that is an
    aggregate without GROUP BY, a SELECT without FROM, or limited to one row."""
    if not isinstance(source, DerivedSource) or not isinstance(source.block, Block):
        return False
    b = source.block
    if b.limit is not None and b.limit <= 1:
        return True
    if b.aggregate is not None:
        return b.aggregate.scalar
    return isinstance(b.source, OneRowSource) and not b.distinct


def _push(source: Source, cond: exp.Expression) -> None:
    if isinstance(source, JoinSource):  # a constant condition: the first table takes it
        _push(source.left, cond)
        return
    source.filter = cond if source.filter is None else exp.And(this=source.filter, expression=cond)


def _equi(c: exp.Expression, left: set[str], right: set[str]) -> tuple[exp.Expression, exp.Expression] | None:
    """(left side expression, right side expression) when ``c`` is an equality
    between an expression of the ``left`` aliases and one of the ``right``."""
    if not isinstance(c, exp.EQ):
        return None
    a, b = c.left, c.right
    la, lb = aliases_of(a), aliases_of(b)
    if la and lb and la <= left and lb <= right:
        return a, b
    if la and lb and lb <= left and la <= right:
        return b, a
    return None
