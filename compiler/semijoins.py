"""``IN (SELECT …)`` and ``[NOT] EXISTS (…)`` in WHERE, as joins with a
derived table of distinct keys.

:func:`unnest_semi_joins` runs on the parsed query (after WITH is expanded,
before names are checked).  A top-level conjunct of a WHERE clause

- ``x IN (SELECT c FROM …)`` becomes ``JOIN (SELECT DISTINCT c AS _k1 FROM …)
  AS _semi1 ON x = _semi1._k1``;
- ``EXISTS (SELECT … FROM u WHERE u.a = t.b AND p)`` (correlated by
  equalities with the enclosing query's tables) becomes ``JOIN (SELECT
  DISTINCT u.a AS _k1 FROM u WHERE p) AS _semi1 ON t.b = _semi1._k1``;
- ``NOT EXISTS (…)`` the same as a LEFT JOIN, and the conjunct
  ``_semi1._k1 IS NULL``.

The keys are distinct, so a joined row is never repeated, and NULL never
equals NULL in a join, as it never makes ``IN`` or an equality true: the rows
kept are the rows SQL keeps.  A correlated ``IN`` adds its equalities to the
subquery's value; an ``IN`` over a grouped, limited or set-operation
subquery reads it as a derived table first.  ``NOT IN`` (true for every row
over an empty subquery, for none once the subquery holds a NULL), a
subquery under OR, in SELECT or HAVING, and any other use of an outer
column stay refused, by :func:`compiler.blocks.refuse_subqueries_outside_from`
or here.

>>> import sqlglot
>>> q = sqlglot.parse_one("SELECT * FROM t WHERE t.a > 1 AND t.k IN (SELECT c FROM u WHERE d = 2)")
>>> print(unnest_semi_joins(q, "")[0].sql())
SELECT t.* FROM t JOIN (SELECT DISTINCT c AS _k1 FROM u WHERE d = 2) AS _semi1 ON t.k = _semi1._k1 WHERE t.a > 1
>>> q = sqlglot.parse_one("SELECT a FROM t x WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.b = x.a)")
>>> print(unnest_semi_joins(q, "")[0].sql())
SELECT a FROM t AS x LEFT JOIN (SELECT DISTINCT u.b AS _k1 FROM u) AS _semi1 ON x.a = _semi1._k1 WHERE _semi1._k1 IS NULL
"""

from __future__ import annotations

from itertools import count

from sqlglot import exp

from compiler.errors import UnsupportedError
from compiler.resolve import _start

ALIAS = "_semi"   # derived tables this pass adds: _semi1, _semi2, …
KEY = "_k"        # their columns: _k1, _k2, …


def unnest_semi_joins(tree: exp.Expression, sql: str) -> tuple[exp.Expression, list[str]]:
    """``tree`` (changed in place) with each IN / EXISTS subquery that is a
    conjunct of a WHERE clause turned into a join, and EXPLAIN's notes on it."""
    notes: list[str] = []
    numbers = count(1)
    # innermost first, so a subquery's own subqueries are joins before it moves
    for select in reversed(list(tree.find_all(exp.Select))):
        where = select.args.get("where")
        if where is None or select.args.get("from_") is None:
            continue
        kept, changed = [], False
        for cond in _conjuncts(where.this):
            joined = _as_join(select, cond, sql, numbers)
            if joined is None:
                kept.append(cond)
                continue
            join, extra, note = joined
            changed = True
            if note not in notes:
                notes.append(note)
            _expand_star(select)
            select.append("joins", join)
            if extra is not None:
                kept.append(extra)
        if changed:
            select.set("where", exp.Where(this=exp.and_(*kept, copy=False)) if kept else None)
    return tree, notes


def _conjuncts(cond: exp.Expression) -> list[exp.Expression]:
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    if isinstance(cond, exp.Paren) and isinstance(cond.this, exp.And):
        return _conjuncts(cond.this)
    return [cond]


def _as_join(outer: exp.Select, cond: exp.Expression, sql: str, numbers) -> tuple | None:
    """(join, conjunct that replaces ``cond`` or None, note) when ``cond`` is
    an IN / [NOT] EXISTS subquery this pass rewrites; None otherwise."""
    negated = isinstance(cond, exp.Not)
    test = cond.this if negated else cond
    if isinstance(test, exp.Paren):
        test = test.this
    if isinstance(test, exp.Exists) and isinstance(test.this, exp.Select):
        sub, value = test.this, None
        what = "NOT EXISTS" if negated else "EXISTS"
    elif isinstance(test, exp.In) and not negated and isinstance(test.args.get("query"), exp.Subquery) \
            and isinstance(test.args["query"].this, exp.Query):
        sub, value = test.args["query"].this, test.this
        what = "IN (SELECT …)"
    else:
        return None
    outer_names = _from_names(outer)
    pairs, rest = _correlation(sub, outer_names, sql)
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
            inner_value = projections[0].unalias() if isinstance(projections[0], exp.Alias) \
                else projections[0]
            pairs = [(value, inner_value)] + pairs
        elif pairs:
            raise UnsupportedError(f"a correlated {what} over a grouped or limited subquery",
                                   sql, _start(sub))
    if not pairs:
        if value is None:
            raise UnsupportedError(f"{what} with no equality tying it to the outer query",
                                   sql, _start(test))
    n = next(numbers)
    alias = f"{ALIAS}{n}"
    if value is not None and not plain:
        # IN over a grouped / limited / set-operation query: its one column, distinct
        body = sub.copy()
        if isinstance(body, exp.Select):
            only = body.selects[0]
            body.set("expressions", [exp.alias_(only.unalias() if isinstance(only, exp.Alias)
                                                else only, f"{KEY}1")])
            inner = exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(f"{alias}q")))
            derived = exp.select(f"{KEY}1").distinct().from_(inner)
        else:   # a UNION: its first branch names the column
            inner = exp.Subquery(this=body, alias=exp.TableAlias(
                this=exp.to_identifier(f"{alias}q"), columns=[exp.to_identifier(f"{KEY}1")]))
            derived = exp.select(f"{KEY}1").distinct().from_(inner)
        pairs = [(value, None)]
    else:
        derived = exp.Select(expressions=[exp.alias_(inner.copy(), f"{KEY}{i}")
                                          for i, (_, inner) in enumerate(pairs, 1)])
        derived.set("distinct", exp.Distinct())
        derived.set("from_", sub.args["from_"].copy())
        if sub.args.get("joins"):
            derived.set("joins", [j.copy() for j in sub.args["joins"]])
        if rest:
            derived.set("where", exp.Where(this=exp.and_(*[c.copy() for c in rest], copy=False)))
    on = exp.and_(*[exp.EQ(this=o.copy(), expression=exp.column(f"{KEY}{i}", table=alias))
                    for i, (o, _) in enumerate(pairs, 1)], copy=False)
    sq = exp.Subquery(this=derived, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    sq.meta.update(sub.meta)
    join = exp.Join(this=sq, on=on, **({"side": "LEFT"} if negated else {}))
    extra = exp.Is(this=exp.column(f"{KEY}1", table=alias), expression=exp.Null()) if negated else None
    how = "an anti-join (LEFT JOIN … IS NULL)" if negated else "a join"
    return join, extra, f"{what} in WHERE runs as {how} with the subquery's distinct keys"


def _from_names(select: exp.Select) -> set[str]:
    """The names (aliases, else table names) of a SELECT's FROM items."""
    items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    return {i.alias_or_name.lower() for i in items if i.alias_or_name}


def _correlation(sub: exp.Query, outer: set[str], sql: str) -> tuple[list, list]:
    """A subquery's equalities ``inner = outer`` (as (outer, inner) pairs)
    and its other WHERE conjuncts; refuses any other use of an outer column."""
    if not isinstance(sub, exp.Select) or sub.args.get("from_") is None:
        _refuse_outer(sub, outer, _own_names(sub), sql)
        return [], []
    own = _from_names(sub)
    where = sub.args.get("where")
    pairs, rest = [], []
    for cond in _conjuncts(where.this) if where is not None else []:
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
    return pairs, rest


def _own_names(sub: exp.Query) -> set[str]:
    return _from_names(sub) if isinstance(sub, exp.Select) and sub.args.get("from_") else set()


def _outer_columns(node: exp.Expression, outer: set[str], own: set[str]) -> list[exp.Column]:
    return [c for c in node.find_all(exp.Column)
            if c.table and c.table.lower() in outer and c.table.lower() not in own]


def _is_outer(side: exp.Expression, outer: set[str], own: set[str]) -> bool | None:
    """True: only outer columns; False: no outer column (and some column or a
    value); None: both."""
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
    if not any(isinstance(e, exp.Star) for e in select.expressions):
        return
    items = [select.args["from_"].this] + [j.this for j in select.args.get("joins") or []]
    stars = [exp.Column(this=exp.Star(), table=exp.to_identifier(i.alias_or_name)) for i in items]
    out = []
    for e in select.expressions:
        out.extend(s.copy() for s in stars) if isinstance(e, exp.Star) else out.append(e)
    select.set("expressions", out)
