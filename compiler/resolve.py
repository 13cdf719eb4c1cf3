"""Name resolution: every table and column a query names must exist.

Runs on the parsed (not yet qualified) query so errors point at the user's own
text and suggest the closest name; then qualifies the query with
``sqlglot.optimizer.qualify`` and annotates types against the catalog.

>>> import sqlglot
>>> from compiler.schema import Table, Column
>>> t = {"rankings": Table("rankings", [Column("pageURL", "string"), Column("pageRank", "int")], "/x")}
>>> q = sqlglot.parse_one("SELECT pageUrl, pagerank FROM Rankings WHERE pageRank > 1", read="hive")
>>> print(qualify_query(q, t, "hive", "").sql("hive"))
SELECT `rankings`.`pageurl` AS `pageurl`, `rankings`.`pagerank` AS `pagerank` FROM `rankings` AS `rankings` WHERE `rankings`.`pagerank` > 1
>>> try: check_names(sqlglot.parse_one("SELECT pageRnk FROM rankings"), t, "SELECT pageRnk FROM rankings")
... except Exception as e: print(e.render())
LINE 1: SELECT pageRnk FROM rankings
               ^
error: column 'pageRnk' not found in table 'rankings'
hint: did you mean 'pageRank'?
"""

from __future__ import annotations

import re
from typing import Mapping

import sqlglot
from sqlglot import exp, parser
from sqlglot.dialects.hive import Hive
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from compiler.errors import SqlError, UnsupportedError, suggest
from compiler.schema import Table


def _start(node: exp.Expression) -> int | None:
    meta = node.meta if hasattr(node, "meta") else {}
    if "start" in meta:
        return meta["start"]
    for n in node.walk():
        m = getattr(n, "_meta", None) or {}
        if "start" in m:
            return m["start"]
    return None


def lookup_table(name: str, tables: Mapping[str, Table], sql: str, node: exp.Expression) -> Table:
    t = tables.get(name.lower())
    if t is None:
        raise SqlError(f"table '{name}' does not exist", sql, _start(node),
                       suggest(name, [t.name for t in tables.values()])
                       or "SHOW TABLES lists the tables; CREATE EXTERNAL TABLE adds one")
    return t


def scope_tables(select: exp.Select, tables: Mapping[str, Table], sql: str) -> dict[str, Table]:
    """Alias (lower case) -> table for the plain tables a SELECT reads."""
    out: dict[str, Table] = {}
    sources = []
    if select.args.get("from_") is not None:
        sources.append(select.args["from_"].this)
    for j in select.args.get("joins") or []:
        sources.append(j.this)
    for src in sources:
        if isinstance(src, exp.Table):
            if src.args.get("db") is not None:
                from compiler.sources import kind_of_name
                raise SqlError(f"table '{src.sql()}': database names are not supported", sql,
                               _start(src), f"a file is read by its path in quotes: FROM "
                               f"'{src.sql()}'" if kind_of_name(src.sql()) else None)
            t = lookup_table(src.name, tables, sql, src)
            out[(src.alias_or_name).lower()] = t
    return out


def check_names(select: exp.Select, tables: Mapping[str, Table], sql: str) -> None:
    """Raise a positioned SqlError for an unknown table or column in ``select``
    (subqueries are checked when they are compiled)."""
    scope = scope_tables(select, tables, sql)
    if not scope and select.args.get("from_") is None:
        for star in select.expressions:
            if isinstance(star, exp.Star) or (isinstance(star, exp.Column) and star.is_star):
                raise SqlError("SELECT * needs a FROM clause", sql, _start(select))
        for col in _own_columns(select):   # a SELECT without FROM has no columns
            aliases = {s.alias.lower() for s in select.expressions if isinstance(s, exp.Alias)}
            if not isinstance(col.this, exp.Star) and not (
                    col.name.lower() in aliases and col.find_ancestor(exp.Order)):
                raise SqlError(f"column '{col.name}' not found: the SELECT has no FROM clause",
                               sql, _start(col))
        return
    aliases = {s.alias.lower() for s in select.expressions if isinstance(s, exp.Alias)}
    derived = any(not isinstance(s, exp.Table) for s in _sources(select))
    order = select.args.get("order")
    # in ORDER BY an unqualified output alias names the output, not an input column
    order_aliases = {id(c) for c in order.find_all(exp.Column)
                     if not c.table and c.name.lower() in aliases} if order is not None else set()
    for col in _own_columns(select):
        name = col.name
        if isinstance(col.this, exp.Star) or id(col) in order_aliases:
            continue
        if col.table:
            t = scope.get(col.table.lower())
            if t is None:
                if derived:
                    continue
                raise SqlError(f"unknown table or alias '{col.table}'", sql, _start(col),
                               suggest(col.table, scope.keys()))
            if not _has(t, name):
                raise SqlError(f"column '{name}' not found in table '{t.name}'", sql,
                               _start(col.this), suggest(name, [c.name for c in t.all_columns]))
            continue
        owners = [t for t in scope.values() if _has(t, name)]
        if not owners and name.lower() not in aliases and not derived:
            cands = [c.name for t in scope.values() for c in t.all_columns] + sorted(aliases)
            where = (f"table '{next(iter(scope.values())).name}'" if len(scope) == 1
                     else "tables " + ", ".join(f"'{t.name}'" for t in scope.values()))
            raise SqlError(f"column '{name}' not found in {where}", sql, _start(col),
                           suggest(name, cands))
        if len({id(t) for t in owners}) > 1 or (len(owners) > 1 and len(scope) > 1 and
                                                 len({a for a, t in scope.items() if _has(t, name)}) > 1):
            raise SqlError(f"column '{name}' is ambiguous: it is in "
                           + ", ".join(f"'{a}'" for a, t in scope.items() if _has(t, name)),
                           sql, _start(col), "qualify it with a table name or alias")


def _sources(select: exp.Select) -> list[exp.Expression]:
    out = []
    if select.args.get("from_") is not None:
        out.append(select.args["from_"].this)
    for j in select.args.get("joins") or []:
        out.append(j.this)
    return out


def _own_columns(select: exp.Select):
    """Columns of this SELECT, not of nested subqueries."""
    for node in select.walk(bfs=False, prune=lambda n: n is not select and isinstance(
            n, (exp.Subquery, exp.Select)) and n is not select):
        if isinstance(node, exp.Column):
            yield node


def _has(t: Table, name: str) -> bool:
    low = name.lower()
    return any(c.name.lower() == low for c in t.all_columns)


def qualify_query(query: exp.Expression, tables: Mapping[str, Table], dialect: str,
                  sql: str) -> exp.Expression:
    """Qualify every column with its table alias, expand ``*`` and aliases in
    GROUP BY / HAVING / ORDER BY, and annotate types."""
    restore_char_lengths(query, sql, dialect)
    schema = MappingSchema({exp.to_identifier(name, quoted=True).sql(dialect=dialect):
                            t.sqlglot_schema(dialect) for name, t in tables.items()},
                           dialect=dialect, normalize=True)
    try:
        q = qualify(query.copy(), schema=schema, dialect=dialect,
                    validate_qualify_columns=True, quote_identifiers=True,
                    expand_alias_refs=True, expand_stars=True, isolate_tables=False)
    except OptimizeError as e:
        raise _optimize_error(str(e), sql) from None
    _restore_positions(query, q)
    for select in q.find_all(exp.Select):
        _expand_order_aliases(select)
    return annotate_types(q, schema=schema, dialect=dialect)


def _optimize_error(message: str, sql: str) -> SqlError:
    """The qualifier's error, placed: a column it cannot resolve (one read
    from a derived table or a CTE, which :func:`check_names` leaves to it)
    points at the column.

    >>> print(_optimize_error("Column 'zz' could not be resolved. Line: 1, Col: 22",
    ...                       "SELECT zz FROM c WHERE zz > 1").render())
    LINE 1: SELECT zz FROM c WHERE zz > 1
                                   ^
    error: column 'zz' not found
    """
    m = re.fullmatch(r"Column '(.+)' could not be resolved(?: for table: '(.+)')?\. "
                     r"Line: (\d+), Col: (\d+)", message.strip(), re.S)
    if m is None or not sql:
        return SqlError(message, sql, None)
    name, line, col = m.group(1), int(m.group(3)), int(m.group(4))
    lines = sql.split("\n")
    offset = None
    if 1 <= line <= len(lines):
        # sqlglot gives the column of the name's last character
        offset = sum(len(x) + 1 for x in lines[:line - 1]) + max(0, col - len(name))
    return SqlError(f"column '{name}' not found", sql, offset)


def _expand_order_aliases(select: exp.Select) -> None:
    """Replace the output aliases ORDER BY names (the qualifier leaves them as
    unqualified columns) by the expressions they name, so ``ORDER BY i * 2``
    over ``SELECT i`` is ``t.i * 2`` and ``ORDER BY x`` finds its output
    whatever its spelling.  In ORDER BY an output alias wins over an input
    column of the same name, as in Hive."""
    order = select.args.get("order")
    if order is None:
        return
    named = {s.alias.lower(): s.this for s in select.expressions if isinstance(s, exp.Alias)}

    def expand(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in named:
            return named[node.name.lower()].copy()
        return node
    for o in order.expressions:
        if isinstance(o.this, exp.Column) and not o.this.table and o.this.name.lower() in named:
            # a whole item naming an output stays a reference to it: expanded,
            # ``ORDER BY c`` over ``12 AS c`` would read as position 12
            continue
        o.set("this", o.this.transform(expand))


def _restore_positions(original: exp.Expression, qualified: exp.Expression) -> None:
    """Give qualified columns the position and spelling of the user's column
    of that name, so errors found after qualification still point at the text."""
    seen: dict[str, dict] = {}
    for col in original.find_all(exp.Column):
        meta = getattr(col.this, "_meta", None) or {}
        if "start" in meta and col.name.lower() not in seen:
            seen[col.name.lower()] = {**meta, "spelled": col.name}
    for col in qualified.find_all(exp.Column):
        if isinstance(col.this, exp.Identifier):
            known = seen.get(col.name.lower())
            meta = getattr(col.this, "_meta", None) or {}
            if known and "start" not in meta:
                col.this.meta.update(known)
            elif known:
                col.this.meta.setdefault("spelled", known["spelled"])


class _HiveCastLengths(Hive):
    """Hive as sqlglot reads it, except that CHAR(n) / VARCHAR(n) keep their
    length (sqlglot's Hive parser drops it, as Spark ignores it; Hive does not)."""

    class Parser(Hive.Parser):
        def _parse_types(self, check_func: bool = False, schema: bool = False,
                         allow_identifiers: bool = True, with_collation: bool = False):
            return parser.Parser._parse_types(self, check_func=check_func, schema=schema,
                                              allow_identifiers=allow_identifiers,
                                              with_collation=with_collation)


_CHAR_TYPES = (exp.DataType.Type.CHAR, exp.DataType.Type.NCHAR)
_LENGTHS_DONE = "sqlmr_char_lengths"   # meta flag: restore_char_lengths ran on this tree
_VARCHAR_TYPES = (exp.DataType.Type.VARCHAR, exp.DataType.Type.NVARCHAR)


def _casts(tree: exp.Expression) -> list[exp.Cast]:
    return [n for n in tree.walk(bfs=False) if isinstance(n, exp.Cast)]


def restore_char_lengths(query: exp.Expression, sql: str, dialect: str) -> None:
    """Give the casts of ``query`` (parsed with sqlglot's Hive dialect) the
    CHAR / VARCHAR lengths the text wrote: ``CAST(s AS VARCHAR(3))`` keeps 3
    characters, as in Hive.  The text is parsed again keeping the lengths; its
    casts pair with the query's in tree order, so this runs on the query as
    parsed (once: a copy made after it keeps the lengths and says so).  CAST
    to CHAR(n) (padded text) is refused."""
    if query.meta.get(_LENGTHS_DONE):
        return
    query.meta[_LENGTHS_DONE] = True
    if dialect.lower() != "hive" or not sql or not any(
            w in sql.upper() for w in ("CHAR", "VARCHAR")):
        return
    mine = _casts(query)
    if not mine:
        return
    try:
        trees = [t for t in sqlglot.parse(sql, read=_HiveCastLengths) if t is not None]
    except SqlglotError:
        return
    typed = None
    for tree in trees:  # the query may be part of the text (CREATE TABLE … AS SELECT)
        for node in tree.walk(bfs=False):
            if type(node) is type(query) and len(_casts(node)) == len(mine):
                typed = [c.to for c in _casts(node)]
                break
        if typed is not None:
            break
    if typed is None:
        sized = [c.to for t in trees for c in _casts(t) if c.to.expressions and
                 c.to.this in _CHAR_TYPES + _VARCHAR_TYPES]
        if sized:
            raise UnsupportedError(f"CAST to {sized[0].sql()} here (use SUBSTR to cut text)",
                                   sql, None)
        return
    for cast, to in zip(mine, typed):
        if not to.expressions:
            continue
        if to.this in _CHAR_TYPES:
            raise UnsupportedError(f"CAST to {to.sql()} (padded text; VARCHAR(n) and STRING "
                                   "are supported)", sql, _start(cast))
        if to.this in _VARCHAR_TYPES:
            cast.set("to", to.copy())
