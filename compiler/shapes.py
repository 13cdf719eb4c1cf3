"""Query shapes the planner reads as derived tables.

:func:`rewrite` runs on the parsed query, before names are checked:

- ``WITH`` (common table expressions): each reference to a CTE becomes a
  derived table holding a copy of its query, so a CTE read twice is computed
  twice (:attr:`Rewritten.notes` says so, for EXPLAIN).  A CTE sees the CTEs
  before it in its WITH clause and those of enclosing queries; an inner WITH
  shadows an outer one, and a CTE shadows a catalog table of the same name.
  ``WITH c(a, b) AS (…)`` names the columns (the derived table's column
  aliases).  ``WITH RECURSIVE`` is refused.
- set operations: a ``UNION ALL`` whose result is the statement's, or is
  ordered, limited or made distinct (``UNION``), becomes ``SELECT [DISTINCT]
  * FROM (… UNION ALL …) ORDER BY … LIMIT …``, so the planner sees UNION ALL
  only as a derived table.  ``INTERSECT`` / ``EXCEPT`` (DISTINCT) group the
  rows of both sides, tagged by side (:func:`_intersect_except`); their ALL
  forms and UNION BY NAME are refused.
- ``IN (SELECT …)`` and ``[NOT] EXISTS`` conjuncts of WHERE: joins with a
  derived table of distinct keys (:mod:`compiler.subqueries`); so do scalar
  aggregate subqueries and `NOT IN`.

Copies keep the positions of the text they came from, so an error inside a
CTE points at the CTE.

>>> import sqlglot
>>> q = sqlglot.parse_one("WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) "
...                       "SELECT * FROM b JOIN b AS c ON b.x = c.x", read="hive")
>>> r = rewrite(q, "")
>>> print(r.tree.sql("hive"))
SELECT * FROM (SELECT x FROM (SELECT 1 AS x) AS a) AS b JOIN (SELECT x FROM (SELECT 1 AS x) AS a) AS c ON b.x = c.x
>>> r.notes
['WITH b is read 2 times and computed for each read']
>>> print(rewrite(sqlglot.parse_one("SELECT 1 AS a UNION SELECT 2 ORDER BY a LIMIT 1"), "").tree.sql())
SELECT DISTINCT * FROM (SELECT 1 AS a UNION ALL SELECT 2) AS _union ORDER BY a LIMIT 1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from compiler.errors import SqlError, UnsupportedError
from compiler.resolve import _start
from compiler.subqueries import unnest_subqueries

UNION_ALIAS = "_union"   # the alias of a wrapped UNION ALL (never visible: it has no peers)
WRAPPER = "sqlmr_union_wrapper"   # meta flag of a SELECT that wraps a UNION ALL


@dataclass
class Rewritten:
    tree: exp.Expression
    notes: list[str] = field(default_factory=list)   # said by EXPLAIN


def rewrite(tree: exp.Expression, sql: str, dialect: str = "hive") -> Rewritten:
    """``tree`` (not changed) with CTEs expanded and set operations wrapped."""
    uses: dict[str, int] = {}
    order: list[str] = []
    out = _expand(tree.copy(), {}, sql, uses, order)
    out, semi_notes = unnest_subqueries(out, sql)
    out = _wrap_unions(out, sql, dialect, top=True)
    _keep_inner_names(out)
    for k, v in tree.meta.items():   # flags of passes that ran on the tree as parsed
        out.meta.setdefault(k, v)
    notes = [f"WITH {key.rsplit('@', 1)[0]} is read {uses[key]} times and computed for each read"
             for key in order if uses.get(key, 0) > 1] + semi_notes
    return Rewritten(out, notes)


# ------------------------------------------------------------------- WITH

@dataclass
class _Cte:
    name: str                        # as written
    body: exp.Expression             # its query, CTEs inside already expanded
    columns: list[exp.Identifier]    # WITH c(a, b): the column names
    key: str                         # unique key for counting reads


def _expand(node: exp.Expression, env: dict[str, _Cte], sql: str, uses: dict[str, int],
            order: list[str]) -> exp.Expression:
    """``node`` with every reference to a CTE of ``env`` (or of a WITH inside
    it) replaced by a derived table; changes ``node`` in place."""
    with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
    if with_ is not None:
        if with_.args.get("recursive"):
            raise UnsupportedError("WITH RECURSIVE", sql, _keyword(sql, with_, "RECURSIVE"))
        env = dict(env)
        seen: set[str] = set()
        for cte in with_.expressions:
            name = cte.alias
            if name.lower() in seen:
                raise SqlError(f"WITH names '{name}' twice", sql, _start(cte.args["alias"]))
            seen.add(name.lower())
            # a CTE sees the ones before it, not itself
            body = _expand(cte.this, env, sql, uses, order)
            key = f"{name}@{len(order)}"
            order.append(key)
            env[name.lower()] = _Cte(name, body, list(cte.args["alias"].columns), key)
        node.set("with_", None)
    if isinstance(node, exp.Table) and _plain(node) and node.name.lower() in env:
        return _reference(node, env[node.name.lower()], uses)
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            new = _expand(value, env, sql, uses, order)
            if new is not value:
                node.set(key, new)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, exp.Expression):
                    new = _expand(v, env, sql, uses, order)
                    if new is not v:
                        value[i] = new
                        new.parent, new.arg_key, new.index = node, key, i
    return node


def _plain(t: exp.Table) -> bool:
    """A table named by one identifier (not ``db.t``, not a table function)."""
    return isinstance(t.this, exp.Identifier) and not t.args.get("db") and not t.args.get("catalog")


def _reference(ref: exp.Table, cte: _Cte, uses: dict[str, int]) -> exp.Subquery:
    """The derived table a reference to ``cte`` reads: ``(body) AS alias(cols)``."""
    uses[cte.key] = uses.get(cte.key, 0) + 1
    alias_node = ref.args.get("alias")
    alias = alias_node.this.copy() if alias_node is not None and alias_node.this else \
        ref.this.copy()
    own_cols = list(alias_node.columns) if alias_node is not None else []
    body = cte.body.copy()
    if own_cols and cte.columns:
        # FROM c AS x(p, q) over WITH c(a, b): the CTE's names, then the reference's
        inner = exp.Subquery(this=body, alias=exp.TableAlias(
            this=exp.to_identifier(cte.name), columns=[c.copy() for c in cte.columns]))
        body = exp.select("*").from_(inner)
        cols = [c.copy() for c in own_cols]
    else:
        cols = [c.copy() for c in (own_cols or cte.columns)]
    sub = exp.Subquery(this=body, alias=exp.TableAlias(this=alias, columns=cols or None))
    sub.meta.update(ref.meta)
    return sub


def _keep_inner_names(tree: exp.Expression) -> None:
    """``(q) AS d(a, b)``: the qualifier renames q's outputs to a, b, which
    an ORDER BY (or HAVING) inside q that names its own outputs would no
    longer find; reading q through ``SELECT *`` keeps q as written."""
    for sub in list(tree.find_all(exp.Subquery)):
        alias = sub.args.get("alias")
        body = sub.this
        if alias is not None and alias.columns and isinstance(body, exp.Query) and (
                not isinstance(body, exp.Select) or body.args.get("order")
                or body.args.get("having")):
            if isinstance(body, exp.Select):   # the star must see one name per column
                _unique_output_names(body)
            inner = exp.Subquery(this=sub.this, alias=exp.TableAlias(
                this=exp.to_identifier("_named")))
            sub.set("this", exp.select("*").from_(inner))


def _unique_output_names(select: exp.Select) -> None:
    """Alias each output whose name an earlier output has (``SELECT a.id,
    b.id``) as ``<name>_<position>``; an ORDER BY inside can only have meant
    them by position.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT a.id, b.id, x AS ID, 1 FROM t")
    >>> _unique_output_names(q); q.sql()
    'SELECT a.id, b.id AS id_2, x AS ID_3, 1 FROM t'
    """
    seen: set[str] = set()
    items = []
    for i, e in enumerate(select.expressions, 1):
        name = e.alias_or_name
        if name and name.lower() in seen:
            e = exp.alias_(e.unalias() if isinstance(e, exp.Alias) else e, f"{name}_{i}")
        if name:
            seen.add(name.lower())
        items.append(e)
    select.set("expressions", items)


# ------------------------------------------------------------ set operations

def _wrap_unions(node: exp.Expression, sql: str, dialect: str, top: bool) -> exp.Expression:
    """Wrap each UNION that is the statement's result, ordered, limited or
    distinct in ``SELECT [DISTINCT] * FROM (… UNION ALL …)``; refuse the
    other set operations (bottom up)."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            new = _wrap_unions(value, sql, dialect, False)
            if new is not value:
                node.set(key, new)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, exp.Expression):
                    new = _wrap_unions(v, sql, dialect, False)
                    if new is not v:
                        value[i] = new
                        new.parent, new.arg_key, new.index = node, key, i
    if not isinstance(node, exp.SetOperation):
        return node
    if not isinstance(node, exp.Union):
        out = _intersect_except(node, sql, dialect)
        return out if top else exp.Subquery(this=out)
    if node.args.get("by_name") or node.args.get("side") or node.args.get("kind"):
        raise UnsupportedError("UNION BY NAME / outer UNION", sql, _keyword(sql, node, "UNION", dialect))
    distinct = bool(node.args.get("distinct"))
    moved = {k: node.args.get(k) for k in ("order", "limit", "offset")}
    if not (top or distinct or any(moved.values())):
        return node
    inner = node.copy()
    for k in moved:
        inner.set(k, None)
    inner.set("distinct", False)
    wrapper = exp.select("*").from_(exp.Subquery(
        this=inner, alias=exp.TableAlias(this=exp.to_identifier(UNION_ALIAS))))
    if distinct:
        wrapper.set("distinct", exp.Distinct())
    for k, v in moved.items():
        if v is not None:
            wrapper.set(k, v)
    wrapper.meta[WRAPPER] = True
    return wrapper if top else exp.Subquery(this=wrapper)


def _intersect_except(node: exp.SetOperation, sql: str, dialect: str) -> exp.Select:
    """``a INTERSECT b`` / ``a EXCEPT b`` (DISTINCT, as SQL's default): the
    rows of both, tagged by side, grouped by every column (GROUP BY holds
    NULLs equal, as set operations do) and kept when a side has them:

    ``SELECT _c1 AS x … FROM (SELECT _c1 …, 1 AS _sa, 0 AS _sb FROM (a) _l(_c1 …)
    UNION ALL SELECT _c1 …, 0, 1 FROM (b) _r(_c1 …)) _setop GROUP BY _c1 …
    HAVING MAX(_sa) = 1 AND MAX(_sb) = 1`` (``= 0`` for EXCEPT).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT a FROM t EXCEPT SELECT b FROM u ORDER BY a")
    >>> print(_intersect_except(q, "", "hive").sql())
    SELECT _c1 AS a FROM (SELECT _c1, 1 AS _sa, 0 AS _sb FROM (SELECT a FROM t) AS _l(_c1) UNION ALL SELECT _c1, 0 AS _sa, 1 AS _sb FROM (SELECT b FROM u) AS _r(_c1)) AS _setop GROUP BY _c1 HAVING MAX(_sa) = 1 AND MAX(_sb) = 0 ORDER BY a
    """
    word = "INTERSECT" if isinstance(node, exp.Intersect) else "EXCEPT"
    if not node.args.get("distinct"):
        raise UnsupportedError(f"{word} ALL ({word} and {word} DISTINCT are supported)", sql,
                               _keyword(sql, node, word, dialect))
    left, right = node.this, node.expression
    first = left
    while isinstance(first, (exp.SetOperation, exp.Subquery)):   # a chain's first SELECT
        first = first.this
    items = first.selects if isinstance(first, exp.Select) else []
    if not items or any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                        for e in items):
        raise UnsupportedError(f"{word} of SELECT * (list the columns)", sql,
                               _keyword(sql, node, word, dialect))
    cols = [f"_c{i}" for i in range(1, len(items) + 1)]

    def side(query: exp.Expression, alias: str, a: int, b: int) -> exp.Select:
        body = (query.this if isinstance(query, exp.Subquery) else query).copy()
        for k in ("order", "limit", "offset"):
            if isinstance(body, exp.SetOperation) and body.args.get(k) is not None:
                body = exp.select("*").from_(exp.Subquery(this=body, alias=exp.TableAlias(
                    this=exp.to_identifier(f"{alias}o"))))
                break
        derived = exp.Subquery(this=body, alias=exp.TableAlias(
            this=exp.to_identifier(alias), columns=[exp.to_identifier(c) for c in cols]))
        return exp.select(*cols, exp.alias_(exp.Literal.number(a), "_sa"),
                          exp.alias_(exp.Literal.number(b), "_sb")).from_(derived)

    both = exp.union(side(left, "_l", 1, 0), side(right, "_r", 0, 1), distinct=False)
    names = [e.alias_or_name or c for e, c in zip(items, cols)]
    out = exp.select(*[exp.alias_(exp.column(c), n, quoted=not exp.SAFE_IDENTIFIER_RE.match(n))
                       for c, n in zip(cols, names)]).from_(exp.Subquery(
        this=both, alias=exp.TableAlias(this=exp.to_identifier("_setop"))))
    out = out.group_by(*cols).having(exp.and_(
        exp.EQ(this=exp.Max(this=exp.column("_sa")), expression=exp.Literal.number(1)),
        exp.EQ(this=exp.Max(this=exp.column("_sb")),
               expression=exp.Literal.number(1 if word == "INTERSECT" else 0))))
    for k in ("order", "limit", "offset"):
        if node.args.get(k) is not None:
            out.set(k, node.args[k])
    out.meta.update(node.meta)
    return out


def is_union_wrapper(select: exp.Expression) -> bool:
    return bool(getattr(select, "_meta", None) and select.meta.get(WRAPPER))


def _keyword(sql: str, node: exp.Expression, word: str, dialect: str = "hive") -> int | None:
    """Offset of the first ``word`` token inside ``node``'s text (the text is
    known from the positions its nodes kept), or anywhere when unknown."""
    starts = [n.meta["start"] for n in node.walk() if getattr(n, "_meta", None)
              and "start" in n.meta]
    lo = min(starts) if starts else 0
    # the keyword may come before the first positioned node (WITH RECURSIVE r …)
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:  # noqa: BLE001 — only a position for the caret
        return None
    hits = [t.start for t in tokens if t.text.upper() == word and
            t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER, TokenType.VAR)]
    after = [h for h in hits if h >= lo]
    if word in ("RECURSIVE",) or not after:
        return hits[0] if hits else None
    return after[0]


def select_keyword(sql: str, offset: int | None, dialect: str = "hive") -> int | None:
    """Offset of the SELECT keyword that starts the query whose first
    positioned node is at ``offset`` (a union branch), for a caret.

    >>> select_keyword("SELECT a FROM t UNION ALL SELECT b, c FROM u", 33)
    26
    """
    if offset is None or not sql:
        return offset
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:  # noqa: BLE001 — only a position for the caret
        return offset
    before = [t.start for t in tokens if t.token_type == TokenType.SELECT and t.start <= offset]
    return before[-1] if before else offset
