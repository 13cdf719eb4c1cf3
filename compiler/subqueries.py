"""Subqueries outside FROM, as joins with derived tables.

:func:`unnest_subqueries` runs on the parsed query (after WITH is expanded,
before names are checked), innermost SELECT first:

- a top-level conjunct of WHERE ``x IN (SELECT c FROM …)`` becomes ``JOIN
  (SELECT DISTINCT c AS _k1 FROM …) AS _semi1 ON x = _semi1._k1``;
- ``EXISTS (SELECT … FROM u WHERE u.a = t.b AND p)`` (correlated by
  equalities with the enclosing query's tables; conditions on those tables
  alone move out to the WHERE) becomes ``JOIN (SELECT DISTINCT u.a AS _k1
  FROM u WHERE p) AS _semi1 ON t.b = _semi1._k1``; Hive's ``LEFT SEMI JOIN
  u ON …`` is that EXISTS;
- ``NOT EXISTS (…)`` the same as a LEFT JOIN, and the conjunct
  ``_semi1._k1 IS NULL``;
- ``x NOT IN (SELECT c FROM u …)`` that LEFT JOIN, cross joined with the
  one row ``(SELECT COUNT(*) AS _n, COUNT(c) AS _nn FROM u …)``, and the
  conjunct ``_n = 0 OR (x IS NOT NULL AND _k1 IS NULL AND _nn = _n)``: SQL's
  NOT IN is true for every row over an empty subquery and for none once the
  subquery holds a NULL;
- a scalar subquery that is an uncorrelated aggregate without GROUP BY
  (``WHERE x > (SELECT AVG(x) FROM t)``, also in SELECT, HAVING and ORDER
  BY) becomes a cross join with that one row, ``(SELECT AVG(x) AS _v1 FROM
  t) AS _scalar1``, read as ``_scalar1._v1`` (and grouped by, when the
  query groups: one value changes no group);
- a correlated one, ``(SELECT AVG(x) FROM u WHERE u.a = t.b)``, a LEFT
  JOIN with ``(SELECT u.a AS _k1, AVG(x) AS _v1 FROM u GROUP BY u.a)`` on
  ``t.b = _k1`` (a COUNT reads 0 where no row matched).

The keys are distinct, so a joined row is never repeated, and NULL never
equals NULL in a join, as it never makes ``IN`` or an equality true: the rows
kept are the rows SQL keeps.  A correlated ``IN`` adds its equalities to the
subquery's value; an ``IN`` over a grouped, limited or set-operation
subquery reads it as a derived table first.  A subquery under OR, in a
join's ON, other uses of an outer column and other scalar subqueries are
refused, here or by :func:`compiler.blocks.refuse_subqueries_outside_from`.

>>> import sqlglot
>>> q = sqlglot.parse_one("SELECT * FROM t WHERE t.a > 1 AND t.k IN (SELECT c FROM u WHERE d = 2)")
>>> print(unnest_subqueries(q, "")[0].sql())
SELECT t.* FROM t JOIN (SELECT DISTINCT c AS _k1 FROM u WHERE d = 2) AS _semi1 ON t.k = _semi1._k1 WHERE t.a > 1
>>> q = sqlglot.parse_one("SELECT a FROM t x WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.b = x.a)")
>>> print(unnest_subqueries(q, "")[0].sql())
SELECT a FROM t AS x LEFT JOIN (SELECT DISTINCT u.b AS _k1 FROM u) AS _semi1 ON x.a = _semi1._k1 WHERE _semi1._k1 IS NULL
>>> q = sqlglot.parse_one("SELECT a FROM t WHERE a > (SELECT AVG(a) FROM t)")
>>> print(unnest_subqueries(q, "")[0].sql())
SELECT a FROM t CROSS JOIN (SELECT AVG(a) AS _v1 FROM t) AS _scalar1 WHERE a > _scalar1._v1
"""

from __future__ import annotations

import re
from itertools import count

from sqlglot import exp

from compiler.errors import UnsupportedError
from compiler.resolve import _start

_OPEN = re.compile(r"\(\s*(?:SELECT|WITH)\b", re.I)


def subquery_start(node: exp.Expression, sql: str) -> int | None:
    """Where a subquery's ``(SELECT`` is in ``sql`` (positions are kept on
    names and literals only: the last ``(SELECT`` before the first of them)."""
    at = _start(node)
    opens = list(_OPEN.finditer(sql, 0, at)) if at is not None else []
    return opens[-1].start() if opens else at


SEMI = "_semi"      # derived tables of keys this pass adds: _semi1, _semi2, …
SCALAR = "_scalar"  # one-row derived tables: _scalar1, …
KEY = "_k"          # their columns: _k1, _k2, … and _v1


def unnest_subqueries(tree: exp.Expression, sql: str) -> tuple[exp.Expression, list[str]]:
    """``tree`` (changed in place) with each subquery this pass knows turned
    into a join, and EXPLAIN's notes on it."""
    notes: list[str] = []
    numbers = count(1)
    # innermost first, so a subquery's own subqueries are joins before it moves
    for select in reversed(list(tree.find_all(exp.Select))):
        _semi_join_clauses(select)
        _where_conjuncts(select, sql, numbers, notes)
        _scalars(select, sql, numbers, notes)
    return tree, notes


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


# ------------------------------------------------------ LEFT SEMI JOIN

def _semi_join_clauses(select: exp.Select) -> None:
    """Hive's ``LEFT SEMI JOIN u ON c``: the WHERE conjunct ``EXISTS (SELECT 1
    FROM u WHERE c)`` (u's columns may appear in ON only, as in Hive)."""
    joins = select.args.get("joins") or []
    semis = [j for j in joins if (j.args.get("kind") or "").upper() == "SEMI"
             and (j.args.get("side") or "LEFT").upper() == "LEFT"]
    if not semis:
        return
    select.set("joins", [j for j in joins if j not in semis] or None)
    for j in semis:
        on = j.args.get("on")
        sub = exp.Select(expressions=[exp.Literal.number(1)], from_=exp.From(this=j.this))
        if on is not None:
            sub.set("where", exp.Where(this=on))
        sub.meta.update(j.meta)
        exists = exp.Exists(this=sub)
        where = select.args.get("where")
        select.set("where", exp.Where(this=exists if where is None else exp.and_(
            where.this, exists, copy=False)))


# ------------------------------------------------- IN / EXISTS / NOT IN

def _where_conjuncts(select: exp.Select, sql: str, numbers, notes: list[str]) -> None:
    where = select.args.get("where")
    if where is None or select.args.get("from_") is None:
        return
    kept, changed = [], False
    for cond in _conjuncts(where.this):
        joined = _as_join(select, cond, sql, numbers)
        if joined is None:
            kept.append(cond)
            continue
        joins, extra, note = joined
        changed = True
        _note(notes, note)
        _expand_star(select)
        for join in joins:
            select.append("joins", join)
        kept.extend(extra)
    if changed:
        select.set("where", exp.Where(this=exp.and_(*kept, copy=False)) if kept else None)


def _conjuncts(cond: exp.Expression) -> list[exp.Expression]:
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    if isinstance(cond, exp.Paren) and isinstance(cond.this, exp.And):
        return _conjuncts(cond.this)
    return [cond]


def _as_join(outer: exp.Select, cond: exp.Expression, sql: str, numbers) -> tuple | None:
    """(joins, conjuncts that replace ``cond``, note) when ``cond`` is an
    IN / NOT IN / [NOT] EXISTS subquery this pass rewrites; None otherwise."""
    negated = isinstance(cond, exp.Not)
    test = cond.this if negated else cond
    if isinstance(test, exp.Paren):
        test = test.this
    if isinstance(test, exp.Exists) and isinstance(test.this, exp.Select):
        sub, value = test.this, None
        what = "NOT EXISTS" if negated else "EXISTS"
    elif isinstance(test, exp.In) and isinstance(test.args.get("query"), exp.Subquery) \
            and isinstance(test.args["query"].this, exp.Query):
        sub, value = test.args["query"].this, test.this
        what = "NOT IN (SELECT …)" if negated else "IN (SELECT …)"
    else:
        return None
    pairs, rest, hoisted = _correlation(sub, _from_names(outer), sql)
    if hoisted and negated:
        raise UnsupportedError(f"a {what} whose WHERE has a condition on the outer query "
                               "alone", sql, _start(hoisted[0]))
    # DISTINCT changes neither membership nor existence; grouping, limits do
    plain = isinstance(sub, exp.Select) and not any(sub.args.get(k) for k in (
        "group", "having", "limit", "offset", "order", "qualify")) and not sub.find(exp.AggFunc)
    if value is None and not plain:
        raise UnsupportedError(f"{what} over a grouped, aggregated or limited subquery", sql,
                               _start(sub))
    if value is not None:
        projections = sub.selects if isinstance(sub, exp.Select) else []
        if isinstance(sub, exp.Select) and (len(projections) != 1 or isinstance(projections[0], exp.Star)):
            raise UnsupportedError("an IN subquery that selects other than one column", sql,
                                   _start(sub))
        if plain:
            pairs = [(value, projections[0].unalias())] + pairs
        elif pairs:
            raise UnsupportedError(f"a correlated {what} over a grouped or limited subquery",
                                   sql, _start(sub))
        if negated and pairs[1:]:
            raise UnsupportedError(f"a correlated {what}", sql, _start(sub))
    elif not pairs:
        raise UnsupportedError(f"{what} with no equality tying it to the outer query",
                               sql, _start(test))
    n = next(numbers)
    alias = f"{SEMI}{n}"
    if value is not None and not plain:
        derived = _distinct_values(sub, alias)
        pairs = [(value, None)]
    else:
        derived = _keys_query(sub, [inner for _, inner in pairs], rest)
    on = exp.and_(*[exp.EQ(this=o.copy(), expression=exp.column(f"{KEY}{i}", table=alias))
                    for i, (o, _) in enumerate(pairs, 1)], copy=False)
    sq = exp.Subquery(this=derived, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    sq.meta.update(sub.meta)
    joins = [exp.Join(this=sq, on=on, **({"side": "LEFT"} if negated else {}))]
    extra = [h.copy() for h in hoisted]
    if not negated:
        return joins, extra, f"{what} in WHERE runs as a join with the subquery's distinct keys"
    key = exp.column(f"{KEY}1", table=alias)
    if value is None:   # NOT EXISTS
        extra.append(exp.Is(this=key, expression=exp.Null()))
        return joins, extra, (f"{what} in WHERE runs as an anti-join (LEFT JOIN … IS NULL) "
                              "with the subquery's distinct keys")
    # NOT IN: also how many rows and non-NULL values the subquery has
    counts = f"{alias}c"
    joins.append(exp.Join(this=exp.Subquery(this=_counts_query(sub, rest, plain), alias=exp.TableAlias(
        this=exp.to_identifier(counts))), kind="CROSS"))
    n_rows, n_values = exp.column("_n", table=counts), exp.column("_nn", table=counts)
    extra.append(exp.Paren(this=exp.or_(
        exp.EQ(this=n_rows, expression=exp.Literal.number(0)),
        exp.and_(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                 exp.Is(this=key, expression=exp.Null()),
                 exp.EQ(this=n_values.copy(), expression=n_rows.copy()), copy=False), copy=False)))
    return joins, extra, (f"{what} in WHERE runs as an anti-join with the subquery's distinct "
                          "values and its row and NULL counts (NOT IN keeps no row once the "
                          "subquery holds a NULL, and every row when it is empty)")


def _keys_query(sub: exp.Select, inners: list[exp.Expression], rest: list[exp.Expression]) -> exp.Select:
    """``SELECT DISTINCT inner1 AS _k1, … FROM <sub's FROM> WHERE <rest>``."""
    derived = exp.Select(expressions=[exp.alias_(inner.copy(), f"{KEY}{i}")
                                      for i, inner in enumerate(inners, 1)])
    derived.set("distinct", exp.Distinct())
    _copy_from(sub, derived, rest)
    return derived


def _copy_from(sub: exp.Select, into: exp.Select, rest: list[exp.Expression]) -> None:
    into.set("from_", sub.args["from_"].copy())
    if sub.args.get("joins"):
        into.set("joins", [j.copy() for j in sub.args["joins"]])
    if rest:
        into.set("where", exp.Where(this=exp.and_(*[c.copy() for c in rest], copy=False)))


def _distinct_values(sub: exp.Query, alias: str) -> exp.Select:
    """The distinct values of a one-column query of any shape, as ``_k1``."""
    body = sub.copy()
    if isinstance(body, exp.Select):
        only = body.selects[0]
        body.set("expressions", [exp.alias_(only.unalias(), f"{KEY}1")])
        inner = exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(f"{alias}q")))
    else:   # a UNION: the derived table's column alias names its one column
        inner = exp.Subquery(this=body, alias=exp.TableAlias(
            this=exp.to_identifier(f"{alias}q"), columns=[exp.to_identifier(f"{KEY}1")]))
    return exp.select(f"{KEY}1").distinct().from_(inner)


def _counts_query(sub: exp.Query, rest: list[exp.Expression], plain: bool) -> exp.Select:
    """``SELECT COUNT(*) AS _n, COUNT(value) AS _nn`` over the subquery's rows."""
    if plain:
        value = sub.selects[0].unalias().copy()
        out = exp.Select(expressions=[exp.alias_(exp.Count(this=exp.Star()), "_n"),
                                      exp.alias_(exp.Count(this=value), "_nn")])
        _copy_from(sub, out, rest)
        return out
    inner = _distinct_values(sub, "_all").args["from_"].this   # every row, not only distinct ones
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), "_n"),
                      exp.alias_(exp.Count(this=exp.column(f"{KEY}1")), "_nn")).from_(inner)


def _from_names(select: exp.Select) -> set[str]:
    """The names (aliases, else table names) of a SELECT's FROM items."""
    if select.args.get("from_") is None:
        return set()
    items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    return {i.alias_or_name.lower() for i in items if i.alias_or_name}


def _correlation(sub: exp.Query, outer: set[str], sql: str) -> tuple[list, list, list]:
    """A subquery's equalities ``inner = outer`` (as (outer, inner) pairs),
    its other WHERE conjuncts, and those on outer columns alone (they hold or
    not whatever the subquery's rows); refuses any other use of an outer column."""
    if not isinstance(sub, exp.Select) or sub.args.get("from_") is None:
        _refuse_outer(sub, outer, _from_names(sub) if isinstance(sub, exp.Select) else set(), sql)
        return [], [], []
    own = _from_names(sub)
    where = sub.args.get("where")
    pairs, rest, hoisted = [], [], []
    for cond in _conjuncts(where.this) if where is not None else []:
        if _is_outer(cond, outer, own) is True:
            hoisted.append(cond)
            continue
        if isinstance(cond, exp.EQ):
            left, right = _is_outer(cond.this, outer, own), _is_outer(cond.expression, outer, own)
            if left is True and right is False:
                pairs.append((cond.this, cond.expression))
                continue
            if right is True and left is False:
                pairs.append((cond.expression, cond.this))
                continue
        rest.append(cond)
    for node in [*rest, *(v for k, v in sub.args.items() if k != "where" and isinstance(v, exp.Expression)),
                 *(e for k, v in sub.args.items() if isinstance(v, list) for e in v
                   if isinstance(e, exp.Expression))]:
        _refuse_outer(node, outer, own, sql)
    return pairs, rest, hoisted


def _outer_columns(node: exp.Expression, outer: set[str], own: set[str]) -> list[exp.Column]:
    return [c for c in node.find_all(exp.Column)
            if c.table and c.table.lower() in outer and c.table.lower() not in own]


def _is_outer(side: exp.Expression, outer: set[str], own: set[str]) -> bool | None:
    """True: only outer columns; False: no outer column (some inner column or
    only values); None: both."""
    cols = list(side.find_all(exp.Column))
    mine = _outer_columns(side, outer, own)
    if not mine:
        return False
    return True if len(mine) == len(cols) else None


def _refuse_outer(node: exp.Expression, outer: set[str], own: set[str], sql: str) -> None:
    cols = _outer_columns(node, outer, own)
    if cols:
        raise UnsupportedError("a subquery that uses an outer column other than in "
                               "inner = outer equalities of its WHERE", sql, _start(cols[0]))


def _expand_star(select: exp.Select) -> None:
    """``SELECT *`` as ``SELECT a.*, b.*`` over the FROM items as written, so
    the derived tables this pass joins add no columns to it."""
    if not any(isinstance(e, exp.Star) for e in select.expressions) or select.args.get("from_") is None:
        return
    items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    stars = [exp.Column(this=exp.Star(), table=exp.to_identifier(i.alias_or_name)) for i in items]
    out = []
    for e in select.expressions:
        out.extend(s.copy() for s in stars) if isinstance(e, exp.Star) else out.append(e)
    select.set("expressions", out)


# ------------------------------------------------------ scalar subqueries

def _own_subqueries(select: exp.Select) -> list[tuple[exp.Subquery, str]]:
    """(scalar subquery, the clause it is in) for each subquery of this
    SELECT that is a value: not a FROM item, not IN's or EXISTS's query."""
    out = []
    for key, value in select.args.items():
        if key in ("from_", "joins", "with_"):
            continue
        for node in value if isinstance(value, list) else [value]:
            if not isinstance(node, exp.Expression):
                continue
            for sub in node.walk(prune=lambda n: isinstance(n, (exp.Subquery, exp.Select, exp.Exists))):
                if isinstance(sub, exp.Subquery) and not (
                        isinstance(sub.parent, exp.In) and sub.arg_key == "query"):
                    out.append((sub, key))
    return out


def _scalars(select: exp.Select, sql: str, numbers, notes: list[str]) -> None:
    found = _own_subqueries(select)
    if not found:
        return
    outer = _from_names(select)
    grouped = select.args.get("group") is not None
    aggregate = grouped or any(isinstance(n, exp.AggFunc) for n in select.walk(
        prune=lambda n: n is not select and isinstance(n, (exp.Subquery, exp.Select))))
    for sub, clause in found:
        body = sub.this
        if not (isinstance(body, exp.Select) and body.args.get("from_") is not None
                and len(body.selects) == 1 and not isinstance(body.selects[0], exp.Star)
                and not body.args.get("group") and body.find(exp.AggFunc) is not None
                and not any(body.args.get(k) for k in ("having", "limit", "offset", "qualify"))):
            raise UnsupportedError("a scalar subquery other than an aggregate without GROUP BY "
                                   "(one that always returns one row)", sql, subquery_start(sub, sql))
        pairs, rest, hoisted = _correlation(body, outer, sql)
        if hoisted:
            raise UnsupportedError("a scalar subquery whose WHERE has a condition on the outer "
                                   "query alone", sql, _start(hoisted[0]))
        if aggregate and not grouped and clause != "where":
            raise UnsupportedError("a scalar subquery in the SELECT list, HAVING or ORDER BY of "
                                   "an aggregate without GROUP BY", sql, subquery_start(sub, sql),
                                   "compute each aggregate in its own derived table and cross join "
                                   "them: SELECT a.n + b.m FROM (SELECT COUNT(*) n FROM t) a CROSS "
                                   "JOIN (SELECT COUNT(*) m FROM u) b")
        n = next(numbers)
        alias = f"{SCALAR}{n}"
        only = body.selects[0].unalias()
        if pairs:
            value, join = _correlated_scalar(body, only, pairs, rest, alias, sql, sub)
            if aggregate and clause != "where":
                raise UnsupportedError("a correlated scalar subquery in the SELECT list, HAVING "
                                       "or ORDER BY of an aggregate", sql, subquery_start(sub, sql))
            _note(notes, "a correlated scalar subquery runs as a LEFT JOIN with its values "
                         "grouped by the correlated columns")
        else:
            one = body.copy()
            one.set("expressions", [exp.alias_(only.copy(), "_v1")])
            derived = exp.Subquery(this=one, alias=exp.TableAlias(this=exp.to_identifier(alias)))
            derived.meta.update(sub.meta)
            value = exp.column("_v1", table=alias)
            join = exp.Join(this=derived, kind="CROSS")
            _note(notes, "a scalar subquery runs as a cross join with its one row")
        sub.replace(value)
        _expand_star(select)
        if select.args.get("from_") is None:   # SELECT without FROM: the one row is its FROM
            select.set("from_", exp.From(this=join.this))
        else:
            select.append("joins", join)
        if grouped and clause != "where":
            select.args["group"].append("expressions", value.copy())


def _correlated_scalar(body: exp.Select, only: exp.Expression, pairs: list, rest: list,
                       alias: str, sql: str, sub: exp.Subquery) -> tuple[exp.Expression, exp.Join]:
    """``(SELECT AGG(e) FROM u WHERE u.a = t.b AND p)``: ``LEFT JOIN (SELECT
    u.a AS _k1, AGG(e) AS _v1 FROM u WHERE p GROUP BY u.a) ON t.b = _k1``,
    read as ``_v1`` (``COALESCE(_v1, 0)`` for COUNT: no row counts 0)."""
    if not isinstance(only, exp.AggFunc) or only.find_ancestor(exp.Window):
        raise UnsupportedError("a correlated scalar subquery that selects other than one "
                               "aggregate call", sql, subquery_start(sub, sql))
    inners = [inner for _, inner in pairs]
    grouped = exp.Select(expressions=[exp.alias_(i.copy(), f"{KEY}{n}") for n, i in enumerate(inners, 1)]
                         + [exp.alias_(only.copy(), "_v1")])
    _copy_from(body, grouped, rest)
    grouped.set("group", exp.Group(expressions=[i.copy() for i in inners]))
    derived = exp.Subquery(this=grouped, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    derived.meta.update(sub.meta)
    on = exp.and_(*[exp.EQ(this=o.copy(), expression=exp.column(f"{KEY}{n}", table=alias))
                    for n, (o, _) in enumerate(pairs, 1)], copy=False)
    value: exp.Expression = exp.column("_v1", table=alias)
    if isinstance(only, exp.Count):
        value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
    return value, exp.Join(this=derived, on=on, side="LEFT")
