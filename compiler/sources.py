"""Files named straight in FROM: ``'data/*.csv'``, ``read_csv('…', header => true)``,
``read_json('…')`` (pure: what the query asks for, not what the files hold).

A quoted name that is no catalogued table (``'x.csv'``; in Hive also
``"x.csv"``) is a path, a folder or a glob.  ``read_csv`` / ``read_json`` take
DuckDB's options, named with ``=>`` or ``=``.  Each source is replaced in the
query by a reference to a table named after it (:func:`replace_source`), so
the compiler reads it as any other table once the front end has inferred
that table from the files.

>>> import sqlglot
>>> sql = "SELECT t.a FROM read_csv('s3://b/logs/', header => true, delim = '|') AS t"
>>> [(s.reader, s.path, s.header, s.delimiter, s.alias) for s in file_sources(sqlglot.parse_one(sql, read="hive"), sql)]
[('csv', 's3://b/logs/', True, '|', 't')]
>>> sql = "SELECT * FROM read_csv('x.csv', heder => true)"
>>> try: file_sources(sqlglot.parse_one(sql), sql)
... except Exception as e: print(e.render())
LINE 1: SELECT * FROM read_csv('x.csv', heder => true)
                                        ^
error: unknown read_csv option 'heder'
hint: did you mean 'header'? read_csv takes: header, delim, sep, quote, escape, nullstr, columns
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError, suggest
from compiler.schema import Column, Table, normalize_type

CSV_READERS = ("read_csv", "read_csv_auto")
JSON_READERS = ("read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto")
READERS = CSV_READERS + JSON_READERS
CSV_OPTIONS = ("header", "delim", "sep", "quote", "escape", "nullstr", "columns")
JSON_OPTIONS = ("columns", "format")
CSV_EXTENSIONS = (".csv", ".tsv")
JSON_EXTENSIONS = (".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class FileSource:
    """What a FROM item reading files asks for; None: sniff it from a sample."""

    reader: str                  # auto (a bare path) | csv | json
    path: str                    # as written: a file, folder or glob
    alias: str                   # the name columns are qualified with
    spelling: str                # the item as written (without its alias)
    offset: int | None = None    # where it starts in the statement
    header: bool | None = None
    delimiter: str | None = None
    quote: str | None = None     # "" reads no quoting
    escape: str | None = None
    null: str | None = None
    columns: tuple[Column, ...] | None = None

    def kind_from_name(self) -> str | None:
        """``csv`` / ``json`` from the path's extension (``.gz`` aside), else None.

        >>> FileSource("auto", "logs/*.ndjson.gz", "x", "").kind_from_name()
        'json'
        """
        if self.reader != "auto":
            return self.reader
        return kind_of_name(self.path)


def kind_of_name(name: str) -> str | None:
    """``csv`` or ``json`` by a file name's extension (``.gz`` aside), else None.

    >>> kind_of_name("a/b.TSV"), kind_of_name("x.jsonl.gz"), kind_of_name("part-00000")
    ('csv', 'json', None)
    """
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    if low.endswith(CSV_EXTENSIONS):
        return "csv"
    if low.endswith(JSON_EXTENSIONS):
        return "json"
    return None


def default_alias(path: str) -> str:
    """The name a path is known by without an alias, as in DuckDB: a file's
    name without its extensions, a glob or folder as written.

    >>> default_alias("data/visits.csv"), default_alias("s3://b/x.json.gz"), default_alias("d/*.csv")
    ('visits', 'x', 'd/*.csv')
    """
    base = path.rstrip("/").rsplit("/", 1)[-1]
    if any(c in path for c in "*?[") or "." not in base or path.endswith("/"):
        return path
    return base.split(".", 1)[0] or path


def _start(node: exp.Expression) -> int | None:
    from compiler.resolve import _start as start
    return start(node)


def _is_path_literal(table: exp.Table, sql: str, is_table: Callable[[str], bool]) -> bool:
    """A FROM item written in single (or double) quotes that names no table."""
    ident = table.this
    if not isinstance(ident, exp.Identifier) or not ident.quoted or table.args.get("db"):
        return False
    at = _start(ident)
    if at is None or at >= len(sql) or sql[at] not in "'\"":
        return False
    return sql[at] == "'" or not is_table(ident.name)


def file_sources(tree: exp.Expression, sql: str,
                 is_table: Callable[[str], bool] = lambda name: False) -> list[FileSource]:
    """Every FROM item of ``tree`` that reads files, in order (see the module
    doc); an unknown option or a value of the wrong kind is a SqlError at it.
    ``is_table`` says whether a name is a catalogued table (``"x"`` names a
    table before a file)."""
    return [src for _, src in _sources(tree, sql, is_table)]


def _sources(tree: exp.Expression, sql: str,
             is_table: Callable[[str], bool]) -> list[tuple[exp.Table, FileSource]]:
    out = []
    for table in list(tree.find_all(exp.Table)):
        src = source_of(table, sql, is_table)
        if src is not None:
            out.append((table, src))
    return out


def source_of(table: exp.Table, sql: str,
              is_table: Callable[[str], bool] = lambda name: False) -> FileSource | None:
    """The :class:`FileSource` a FROM item stands for, or None when it is not one."""
    alias = table.alias or None
    if _is_path_literal(table, sql, is_table):
        path = table.this.name
        at = _start(table.this)
        return FileSource("auto", path, alias or default_alias(path), _quoted(path), at)
    func = table.this
    name = _reader_name(func)
    if name is None:
        return None
    at = _start(func)
    args = [func.this] + list(func.expressions) if isinstance(func, exp.ReadCSV) \
        else list(func.expressions)
    if not args or not (isinstance(args[0], exp.Literal) and args[0].is_string):
        what = args[0].sql() if args else "nothing"
        raise (UnsupportedError(f"{name} of a list of paths (one path, folder or glob "
                                "such as 'data/*.csv' reads many files)", sql, _start(args[0]))
               if args and isinstance(args[0], exp.Array)
               else SqlError(f"{name} needs a path in quotes first, not {what}", sql,
                             _start(args[0]) if args else at))
    path = args[0].name
    reader = "csv" if name in CSV_READERS else "json"
    opts = _options(name, args[1:], sql, CSV_OPTIONS if reader == "csv" else JSON_OPTIONS, at)
    spelling = re.sub(r"\s+", " ", _call_text(sql, at) or func.sql(dialect="duckdb"))
    kw: dict = {}
    for key, (value, node) in opts.items():
        if key == "header":
            kw["header"] = _bool(value, key, node, sql)
        elif key in ("delim", "sep"):
            kw["delimiter"] = _char(value, key, node, sql)
        elif key in ("quote", "escape"):
            kw[key] = _char(value, key, node, sql, empty=True)
        elif key == "nullstr":
            kw["null"] = _text(value, key, node, sql)
        elif key == "columns":
            kw["columns"] = _columns(value, node, sql)
        elif key == "format":
            fmt = _text(value, key, node, sql).lower()
            if fmt not in ("newline_delimited", "nd", "auto"):
                raise UnsupportedError(f"read_json format '{fmt}' (JSON lines: "
                                       "format => 'newline_delimited')", sql, _start(node))
    return FileSource(reader, path, alias or name, spelling, at, **kw)


def _call_text(sql: str, at: int | None) -> str | None:
    """The text of the call starting at ``at``, to its closing parenthesis.

    >>> _call_text("SELECT * FROM read_csv('a)b', x => 1) t", 14)
    "read_csv('a)b', x => 1)"
    """
    if at is None:
        return None
    depth, quote = 0, None
    for i in range(at, len(sql)):
        c = sql[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return sql[at:i + 1]
    return None


def _reader_name(func: exp.Expression) -> str | None:
    if isinstance(func, exp.ReadCSV):
        return "read_csv"
    if isinstance(func, exp.Anonymous) and str(func.this).lower() in READERS:
        return str(func.this).lower()
    return None


def _quoted(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _options(func: str, args: list[exp.Expression], sql: str, allowed: tuple[str, ...],
             at: int | None) -> dict[str, tuple[exp.Expression, exp.Expression]]:
    """name -> (value, node) of ``name => value`` / ``name = value`` arguments."""
    out: dict[str, tuple[exp.Expression, exp.Expression]] = {}
    for arg in args:
        _place(arg, sql, at)
        if isinstance(arg, exp.Kwarg):
            key = arg.this.name
        elif isinstance(arg, (exp.EQ, exp.PropertyEQ)) and isinstance(arg.this, (exp.Column, exp.Identifier, exp.Var)):
            key = arg.this.name
        else:
            raise SqlError(f"{func} takes a path, then options as name => value, not "
                           f"{arg.sql()}", sql, _start(arg))
        low = key.lower()
        if low not in allowed:
            hint = suggest(key, allowed)
            raise SqlError(f"unknown {func} option '{key}'", sql, _start(arg),
                           (hint + " " if hint else "") + f"{func} takes: " + ", ".join(allowed))
        if low in out or (low in ("delim", "sep") and ({"delim", "sep"} & set(out))):
            raise SqlError(f"{func} option '{key}' is given twice", sql, _start(arg))
        out[low] = (arg.expression, arg)
    return out


def _place(arg: exp.Expression, sql: str, after: int | None) -> None:
    """Give an option the position of its name in the text (sqlglot keeps
    none for ``name => value``), for the caret of an error about it."""
    if "start" in arg.meta or after is None or not isinstance(
            getattr(arg, "this", None), exp.Expression):
        return
    m = re.compile(r"\b" + re.escape(arg.this.name) + r"\s*=", re.I).search(sql, after)
    if m:
        arg.meta["start"] = m.start()


def _bool(value: exp.Expression, key: str, node: exp.Expression, sql: str) -> bool:
    if isinstance(value, exp.Boolean):
        return bool(value.this)
    text = value.name.lower() if isinstance(value, exp.Literal) else ""
    if text in ("true", "1", "false", "0"):
        return text in ("true", "1")
    raise SqlError(f"option {key} is true or false, not {value.sql()}", sql, _start(node))


def _text(value: exp.Expression, key: str, node: exp.Expression, sql: str) -> str:
    if isinstance(value, exp.Literal) and value.is_string:
        return value.name
    raise SqlError(f"option {key} is a string in quotes, not {value.sql()}", sql, _start(node))


_CHAR_ESCAPES = {"\\t": "\t", "\\|": "|", "\\\\": "\\"}


def _char(value: exp.Expression, key: str, node: exp.Expression, sql: str,
          empty: bool = False) -> str:
    """One character (``'\\t'`` spelt with a backslash is a tab); ``empty``
    allows '' (no quoting / no escape)."""
    text = _text(value, key, node, sql)
    text = _CHAR_ESCAPES.get(text, text)
    if len(text) == 1 or (empty and text == ""):
        return text
    raise SqlError(f"option {key} is one character, not {text!r}", sql, _start(node))


def _columns(value: exp.Expression, node: exp.Expression, sql: str) -> tuple[Column, ...]:
    """``{'name': 'TYPE', …}`` as columns."""
    if not isinstance(value, exp.Struct) or not value.expressions:
        raise SqlError("option columns is {'name': 'TYPE', …}", sql, _start(node))
    out, seen = [], set()
    for item in value.expressions:
        if not isinstance(item, exp.PropertyEQ) or not isinstance(item.expression, exp.Literal):
            raise SqlError("option columns is {'name': 'TYPE', …}", sql, _start(item))
        name = item.this.name
        try:
            typ = normalize_type(item.expression.name)
        except ValueError as e:
            raise SqlError(str(e), sql, _start(item)) from None
        if name.lower() in seen:
            raise SqlError(f"column '{name}' is named twice in columns", sql, _start(item))
        seen.add(name.lower())
        out.append(Column(name, typ))
    return tuple(out)


def replace_source(table: exp.Table, name: str, alias: str) -> None:
    """Make the FROM item ``table`` read the table ``name`` under ``alias``,
    keeping the position of the user's text for errors."""
    at = _start(table.this)
    ident = exp.to_identifier(name, quoted=True)
    if at is not None:
        ident.meta["start"] = at
    table.set("this", ident)
    if not table.alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))


def bind_sources(tree: exp.Expression, sql: str, is_table: Callable[[str], bool],
                 bind: Callable[[FileSource], Table]) -> dict[str, Table]:
    """Replace every file source of ``tree`` (in place) by the table ``bind``
    makes of it; returns those tables by lower-case name."""
    tables: dict[str, Table] = {}
    for node, src in _sources(tree, sql, is_table):
        table = bind(src)
        tables[table.name.lower()] = table
        replace_source(node, table.name, src.alias)
    return tables
