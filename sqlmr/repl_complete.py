"""Completion and highlighting for the REPL.

The completer knows three situations: a backslash or dot command (command
names, then the command's argument: a table, a file, a mode, a setting), a
place where a table name goes (after FROM / JOIN / DESCRIBE …), and anywhere
else in a statement (columns of the tables the statement names, functions,
keywords).  Names come back in the user's spelling (``pageURL``, ``myTable``).

>>> from prompt_toolkit.document import Document
>>> from compiler.schema import Column, Table
>>> t = Table("uv", [Column("sourceIP", "string"), Column("adRevenue", "double")], "file:///x")
>>> c = SqlCompleter(lambda: {"uv": t})
>>> [x.text for x in c.get_completions(Document("SELECT * FROM u"), None)]
['uv']
>>> [x.text for x in c.get_completions(Document("SELECT ad FROM uv"), None)]
[]
>>> [x.text for x in c.get_completions(Document("SELECT ad FROM uv", 9), None)]
['adRevenue']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.lexers import Lexer, PygmentsLexer
from pygments.lexers.sql import SqlLexer

from compiler.schema import Table
from sqlmr.repl_commands import COMMANDS, MODES

KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "JOIN", "INNER JOIN",
    "LEFT JOIN", "RIGHT JOIN", "LEFT OUTER JOIN", "LEFT SEMI JOIN", "CROSS JOIN", "ON", "AS", "AND", "OR",
    "NOT", "IN", "BETWEEN", "LIKE", "ILIKE", "IS", "NULL", "IS NULL", "IS NOT NULL", "DISTINCT",
    "UNION ALL", "CASE", "WHEN", "THEN", "ELSE", "END", "ASC", "DESC", "TRUE", "FALSE",
    "CREATE EXTERNAL TABLE", "IF NOT EXISTS", "ROW FORMAT DELIMITED", "FIELDS TERMINATED BY",
    "LOCATION", "DROP TABLE", "IF EXISTS", "SHOW TABLES", "DESCRIBE", "EXPLAIN", "EXPLAIN CODE",
    "SHOW PARTITIONS", "MSCK REPAIR TABLE",
    "SET", "STRING", "INT", "BIGINT", "DOUBLE", "DATE", "BOOLEAN", "BY", "TABLE", "EXTERNAL",
    "ALL", "OUTER", "LEFT", "RIGHT", "GROUP", "ORDER", "OVER", "EXISTS",
    "NOT EXISTS", "NULLS FIRST", "NULLS LAST", "WITH", "UNION",
)
# the built-in functions sqlmr compiles (README "SQL"), window functions included
FUNCTIONS = ("SUBSTR", "SUBSTRING", "UPPER", "LOWER", "LENGTH", "CONCAT", "CONCAT_WS", "TRIM",
             "ROUND", "ABS", "COALESCE", "CAST", "IF", "NVL", "GREATEST", "LEAST", "SUM", "COUNT",
             "AVG", "MIN", "MAX", "DATE", "YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND",
             "DATE_ADD", "DATE_SUB", "DATEDIFF", "DATE_FORMAT", "TO_DATE", "CURRENT_DATE",
             "REGEXP_EXTRACT", "REGEXP_REPLACE", "SPLIT", "INSTR", "LOCATE", "LPAD", "RPAD",
             "REPLACE", "FLOOR", "CEIL", "POWER", "SQRT", "LN", "LOG10", "LOG", "ROW_NUMBER",
             "RANK", "DENSE_RANK", "LAG", "LEAD")

# Words that, just before the cursor, mean "a table name goes here".
TABLE_CONTEXT = {"FROM", "JOIN", "DESCRIBE", "DESC", "TABLE", "EXISTS"}
# Keywords that start a clause (used to tell "FROM a, <here>" from "SELECT a, <here>").
CLAUSES = {"SELECT", "FROM", "WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "ON", "JOIN",
           "UNION", "SET", "BY", "DESCRIBE", "DESC", "TABLE", "LOCATION", "EXPLAIN"}
RESERVED = {w for k in KEYWORDS for w in k.split()} | {"USING", "WITH", "INTO", "VALUES"}

# the command registry: completion offers what \? lists (aliases are not offered)
COMPLETED_COMMANDS = {n: c for c in COMMANDS for n in c.names}
SETTING_VALUES = {"backend": ("local", "lambda"), "format": MODES,
                  "dialect": ("hive", "duckdb", "spark", "presto", "trino", "postgres", "mysql",
                              "sqlite", "bigquery", "snowflake"),
                  "architecture": ("arm64", "x86_64")}


# ------------------------------------------------------------------ lexing

@dataclass(frozen=True)
class Tok:
    kind: str   # word | quoted | punct | string | number
    text: str
    start: int


def scan(text: str) -> tuple[list[Tok], str]:
    """Tokens of SQL text and the state at its end: ``code``, ``string`` (inside
    a quote) or ``comment``.  Forgiving: unfinished text is the normal case."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            if j < 0:
                return toks, "comment"
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                return toks, "comment"
            i = j + 2
        elif ch in "'\"`":
            j = i + 1
            while True:
                j = text.find(ch, j)
                if j < 0:
                    return toks, "string"
                if ch != "`" and text[j - 1] == "\\" and ch == "'":
                    j += 1
                    continue
                if text.startswith(ch * 2, j):
                    j += 2
                    continue
                break
            kind = "string" if ch == "'" else "quoted"
            body = text[i + 1:j] if kind == "quoted" else text[i:j + 1]
            toks.append(Tok(kind, body, i))
            i = j + 1
        elif ch.isalpha() or ch == "_":
            m = re.compile(r"[\w$]+").match(text, i)
            toks.append(Tok("word", m.group(), i))
            i = m.end()
        elif ch.isdigit():
            m = re.compile(r"[\d.eE]+").match(text, i)
            toks.append(Tok("number", m.group(), i))
            i = m.end()
        else:
            toks.append(Tok("punct", ch, i))
            i += 1
    return toks, "code"


def statement_bounds(text: str, cursor: int) -> tuple[int, int]:
    """The start and end of the statement holding ``cursor`` (split at ';')."""
    toks, _ = scan(text)
    start, end = 0, len(text)
    for t in toks:
        if t.kind == "punct" and t.text == ";":
            if t.start < cursor:
                start = t.start + 1
            else:
                end = t.start
                break
    return start, end


def table_refs(toks: list[Tok]) -> list[tuple[str, str | None]]:
    """``(table, alias)`` for each table a statement names after FROM / JOIN."""
    refs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "word" and t.text.upper() in ("FROM", "JOIN"):
            i += 1
            while i < len(toks) and toks[i].kind in ("word", "quoted"):
                name = toks[i].text
                i += 1
                # db.table: keep the last part
                while i + 1 < len(toks) and toks[i].text == "." and toks[i + 1].kind in ("word", "quoted"):
                    name = toks[i + 1].text
                    i += 2
                alias = None
                if i < len(toks) and toks[i].kind == "word" and toks[i].text.upper() == "AS":
                    i += 1
                if i < len(toks) and (toks[i].kind == "quoted" or (
                        toks[i].kind == "word" and toks[i].text.upper() not in RESERVED)):
                    alias = toks[i].text
                    i += 1
                refs.append((name, alias))
                if i < len(toks) and toks[i].text == ",":
                    i += 1
                    continue
                break
            continue
        i += 1
    return refs


# -------------------------------------------------------------- completion

def _match(word: str, names: Iterable[str]) -> list[str]:
    """Prefix matches first, then (for two letters or more) names containing
    the word; case-insensitive, each name once."""
    low = word.lower()
    names = list(dict.fromkeys(names))
    first = [n for n in names if n.lower().startswith(low)]
    rest = [n for n in names if len(low) >= 2 and low in n.lower() and n not in first]
    return first + rest


def quote_name(name: str, dialect: str = "hive") -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.upper() not in RESERVED:
        return name
    q = "`" if dialect in ("hive", "spark", "databricks", "mysql", "bigquery") else '"'
    return q + name.replace(q, q * 2) + q


class SqlCompleter(Completer):
    def __init__(self, tables: Callable[[], dict[str, Table]],
                 settings: Callable[[], Iterable[str]] = lambda: (),
                 dialect: Callable[[], str] = lambda: "hive") -> None:
        self._tables = tables
        self._settings = settings
        self._dialect = dialect
        self._paths = PathCompleter(expanduser=True)

    def tables(self) -> dict[str, Table]:
        try:
            return self._tables()
        except Exception:  # noqa: BLE001 — a broken catalog must not break typing
            return {}

    def get_completions(self, document: Document, complete_event: CompleteEvent | None
                        ) -> Iterator[Completion]:
        requested = bool(complete_event and complete_event.completion_requested)
        text = document.text
        cursor = document.cursor_position
        line = document.current_line_before_cursor
        if text.lstrip().startswith(".") and "\n" not in text[:cursor]:
            yield from self._command(line.lstrip(), requested)
            return
        if line.lstrip().startswith("\\"):
            before_line = text[:cursor - len(line)]
            if scan(before_line)[1] == "code":
                yield from self._command(line.lstrip(), requested)
                return
        yield from self._sql(text, cursor, requested)

    # ---------------------------------------------------------- commands
    def _command(self, line: str, requested: bool) -> Iterator[Completion]:
        if " " not in line:
            for c in COMMANDS:
                for name in c.names:
                    if name.startswith(line) and (line or requested) and name != line:
                        yield Completion(name, -len(line), display_meta=c.help.split(";")[0])
            return
        cmd, arg = line.split(" ", 1)
        spec = COMPLETED_COMMANDS.get(cmd)
        if spec is None:
            return
        arg = arg.lstrip()
        kind = spec.arg_kind
        if kind == "table":
            for t in self._table_matches(arg):
                yield t
        elif kind == "file":
            if not arg and not requested:
                return
            for c in self._paths.get_completions(Document(arg, len(arg)), CompleteEvent()):
                yield c
        elif kind in ("mode", "onoff", "expanded"):
            choices = {"mode": MODES, "onoff": ("on", "off"),
                       "expanded": ("on", "off", "auto")}[kind]
            for c in choices:
                if c.startswith(arg.lower()) and c != arg:
                    yield Completion(c, -len(arg))
        elif kind == "pset":
            parts = arg.split(" ")
            if len(parts) == 1:
                for c in ("pager",):
                    if c.startswith(arg):
                        yield Completion(c, -len(arg))
            elif parts[0] == "pager" and len(parts) == 2:
                for c in ("on", "off"):
                    if c.startswith(parts[1]):
                        yield Completion(c, -len(parts[1]))
        elif kind == "setting":
            parts = arg.split(" ")
            if len(parts) == 1:
                for name in self._settings():
                    if name.startswith(arg.lower()) and (arg or requested):
                        yield Completion(name, -len(arg), display_meta="setting")
            elif len(parts) == 2:
                values = SETTING_VALUES.get(parts[0].lower(), ())
                if parts[0].lower() in ("strict", "timing", "keep_scratch"):
                    values = ("on", "off")
                for v in values:
                    if v.startswith(parts[1].lower()) and v != parts[1]:
                        yield Completion(v, -len(parts[1]))

    # --------------------------------------------------------------- SQL
    def _table_matches(self, word: str) -> Iterator[Completion]:
        tables = self.tables()
        names = [t.name for t in sorted(tables.values(), key=lambda t: t.name.lower())]
        for name in _match(word, names):
            if name == word:
                continue
            t = tables[name.lower()]
            yield Completion(quote_name(name, self._dialect()), -len(word), display=name,
                             display_meta="built-in table" if t.builtin else "table")

    def _sql(self, text: str, cursor: int, requested: bool) -> Iterator[Completion]:
        start, end = statement_bounds(text, cursor)
        before = text[start:cursor]
        toks, state = scan(before)
        if state != "code":
            return
        m = re.search(r"(?:([\w$]+|`[^`]*`)\s*\.\s*)?([\w$]*)$", before)
        word = m.group(2) if m else ""
        qualifier = m.group(1).strip("`") if m and m.group(1) else None
        if word and word[0].isdigit():
            return
        # the tokens before the word being typed
        prev_toks = toks[:-1] if toks and word and toks[-1].text == word else toks
        if qualifier is not None:
            prev_toks = prev_toks[:-2] if len(prev_toks) >= 2 else []
        prev = prev_toks[-1] if prev_toks else None

        stmt_toks, _ = scan(text[start:end])
        refs = table_refs(stmt_toks)
        tables = self.tables()

        if qualifier is not None:
            table = self._resolve(qualifier, refs, tables)
            if table is not None:
                for name in _match(word, [c.name for c in table.all_columns]):
                    if name != word:
                        yield Completion(quote_name(name, self._dialect()), -len(word),
                                         display=name, display_meta=f"column · {table.name}")
            return

        if prev is not None and prev.kind == "word" and prev.text.upper() in ("TABLE", "EXISTS") \
                and stmt_toks and stmt_toks[0].text.upper() == "CREATE":
            return  # naming a new table
        if prev is not None and prev.kind == "word" and prev.text.upper() in TABLE_CONTEXT \
                or (prev is not None and prev.text == "," and self._clause(prev_toks) == "FROM"):
            yield from self._table_matches(word)
            return
        if not word and not requested:
            return
        if prev is not None and prev.kind == "word" and prev.text.upper() == "AS":
            return  # naming an alias: nothing to suggest
        upper = not word or any(c.isupper() for c in word)
        seen: set[str] = set()
        for t in self._statement_tables(refs, tables):
            for name in _match(word, [c.name for c in t.all_columns]):
                if name.lower() in seen or name == word:
                    continue
                seen.add(name.lower())
                yield Completion(quote_name(name, self._dialect()), -len(word), display=name,
                                 display_meta=f"column · {t.name}")
        for f in FUNCTIONS:
            if f.lower().startswith(word.lower()) and f.lower() != word.lower():
                yield Completion(f if upper else f.lower(), -len(word), display_meta="function")
        for k in KEYWORDS:
            if k.lower().startswith(word.lower()) and k.lower() != word.lower():
                yield Completion(k if upper else k.lower(), -len(word), display_meta="keyword")

    @staticmethod
    def _clause(toks: list[Tok]) -> str | None:
        depth = 0
        for t in reversed(toks):
            if t.text == ")":
                depth += 1
            elif t.text == "(":
                depth -= 1
            elif depth <= 0 and t.kind == "word" and t.text.upper() in CLAUSES:
                return t.text.upper()
        return None

    @staticmethod
    def _resolve(qualifier: str, refs: list[tuple[str, str | None]],
                 tables: dict[str, Table]) -> Table | None:
        for name, alias in refs:
            if alias and alias.lower() == qualifier.lower():
                return tables.get(name.lower())
        return tables.get(qualifier.lower())

    @staticmethod
    def _statement_tables(refs: list[tuple[str, str | None]],
                          tables: dict[str, Table]) -> list[Table]:
        out: list[Table] = []
        for name, _ in refs:
            t = tables.get(name.lower())
            if t is not None and t not in out:
                out.append(t)
        return out


# ------------------------------------------------------------ highlighting

class ReplLexer(Lexer):
    """SQL through Pygments; a command line (``\\d uv``, ``.mode csv``) as a
    command name and plain arguments, never as SQL errors."""

    def __init__(self) -> None:
        self._sql = PygmentsLexer(SqlLexer)

    def lex_document(self, document: Document):
        stripped = document.text.lstrip()
        if stripped.startswith(("\\", ".")) and "\n" not in stripped:
            def get_line(lineno: int):
                line = document.lines[lineno]
                m = re.match(r"(\s*)(\S*)(.*)", line)
                return [("", m.group(1)), ("class:pygments.keyword", m.group(2)),
                        ("class:pygments.text", m.group(3))]
            return get_line
        return self._sql.lex_document(document)

