"""Query parameters bound as SQL literals (the Python API's ``?`` and ``:name``).

Placeholders are found with sqlglot's tokenizer for the session's dialect, so
a ``?`` inside a string, a quoted name or a comment is text, not a parameter.
Each value becomes a literal written by sqlglot's generator for that dialect
(in ``hive``, a quote is ``\\'`` and a backslash ``\\\\``), which its parser
reads back as the same value: a parameter can never end a string or start a
statement.

>>> bind("SELECT * FROM t WHERE name = ? AND n > ?", ["O'Brien", -2])
"SELECT * FROM t WHERE name = 'O\\\\'Brien' AND n > (-2)"
>>> bind("SELECT '?' /* ? */, x FROM t WHERE x = :x", {"x": 1.5})
"SELECT '?' /* ? */, x FROM t WHERE x = 1.5"
>>> bind("SELECT ? FROM t", [])
Traceback (most recent call last):
...
sqlmr.params.ParameterError: the statement has 1 parameter marker (?) but 0 parameters were given
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Mapping, Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType


class ParameterError(ValueError):
    """Markers and parameters do not match (a DB-API ProgrammingError)."""


class ParameterValueError(ValueError):
    """A value that has no SQL literal (a DB-API DataError): inf, NaN."""


class ParameterTypeError(TypeError):
    """A parameter of a type sqlmr has no literal for (a DB-API NotSupportedError)."""


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def placeholders(sql: str, dialect: str = "hive") -> list[tuple[int, int, str | None]]:
    """``(start, end, name)`` of each parameter marker, in order: ``?`` (name
    None) or ``:name``; ``end`` is exclusive.

    >>> placeholders("SELECT ?, ':a', `?`, :a -- ?")
    [(7, 8, None), (21, 23, 'a')]
    >>> placeholders("EXPLAIN SELECT x FROM t WHERE x = ? AND y = '?'")
    [(34, 35, None)]
    """
    tokenizer = Dialect.get_or_raise(dialect).tokenizer_class
    tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    found: list[tuple[int, int, str | None]] = []
    skip = -1
    for i, t in enumerate(tokens):
        if i == skip:
            continue
        if t.token_type in tokenizer.COMMANDS and i + 1 < len(tokens) and \
                tokens[i + 1].token_type == TokenType.STRING:
            # EXPLAIN …, SHOW …: the tokenizer keeps the rest as one text, not
            # a quoted string; its markers are found in it
            rest = tokens[i + 1].text
            at = sql.find(rest, t.end + 1)
            if at >= 0 and not sql[t.end + 1:at].strip():
                try:
                    inner = placeholders(rest, dialect)
                except TokenError:  # unreadable: the statement's own error says where
                    inner = []
                found += [(a + at, b + at, n) for a, b, n in inner]
                skip = i + 1
            continue
        if t.token_type == TokenType.PLACEHOLDER and sql[t.start:t.end + 1] == "?":
            found.append((t.start, t.end + 1, None))
        elif t.token_type == TokenType.COLON and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            text = sql[nxt.start:nxt.end + 1]
            if nxt.start == t.end + 1 and _WORD.fullmatch(text):
                found.append((t.start, nxt.end + 1, text))
    return found


def bind(sql: str, params: Sequence | Mapping | None, dialect: str = "hive") -> str:
    """``sql`` with each marker replaced by its parameter as a literal: a
    sequence binds ``?`` in order, a mapping binds ``:name``.  ``None`` binds
    nothing, and a statement with markers then needs parameters."""
    if params is None:
        params = ()
    if isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping)):
        raise ParameterError(f"parameters are a sequence (for ?) or a mapping (for :name), "
                             f"not {type(params).__name__}")
    marks = placeholders(sql, dialect)
    named = isinstance(params, Mapping)
    qmarks = [m for m in marks if m[2] is None]
    if named:
        if qmarks:
            raise ParameterError("parameters given by name (a mapping) but the statement has "
                                 "? markers; pass a sequence for ?")
        missing = sorted({m[2] for m in marks if m[2] not in params})
        if missing:
            raise ParameterError(f"no parameter named {', '.join(missing)}")
        marks = [m for m in marks if m[2] is not None]
    else:
        marks = qmarks
        if len(marks) != len(params):
            raise ParameterError(
                f"the statement has {len(marks)} parameter marker{'' if len(marks) == 1 else 's'}"
                f" (?) but {len(params)} parameter{'' if len(params) == 1 else 's'} "
                f"{'was' if len(params) == 1 else 'were'} given")
    out = []
    at = 0
    for n, (start, end, name) in enumerate(marks):
        value = params[name] if named else params[n]  # type: ignore[index]
        text = literal(value, dialect)
        # never glued to a neighbouring word, number or quote
        if start > 0 and _glues(sql[start - 1]):
            text = " " + text
        if end < len(sql) and _glues(sql[end]):
            text += " "
        out += [sql[at:start], text]
        at = end
    out.append(sql[at:])
    return "".join(out)


def _glues(ch: str) -> bool:
    return ch.isalnum() or ch in "_'\"`.$"


def literal(value: object, dialect: str = "hive") -> str:
    """A SQL literal for ``value`` that the dialect's parser reads back as it.

    >>> literal(None), literal(True), literal(-3), literal(0.1), literal("it's")
    ('NULL', 'TRUE', '(-3)', '0.1', "'it\\\\'s'")
    >>> literal(datetime.date(2020, 1, 2)), literal(datetime.datetime(2020, 1, 2, 3, 4, 5, 600))
    ("DATE '2020-01-02'", "TIMESTAMP '2020-01-02 03:04:05.000600'")
    >>> literal(decimal.Decimal("1E+3")), literal(decimal.Decimal("-0.50"))
    ('1000', '(-0.50)')
    >>> literal(float("nan"))
    Traceback (most recent call last):
    ...
    sqlmr.params.ParameterValueError: nan has no SQL literal (only finite numbers are parameters)
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return _number(str(int(value)))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterValueError(f"{value!r} has no SQL literal (only finite numbers are "
                                      "parameters)")
        return _number(repr(value))
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ParameterValueError(f"{value} has no SQL literal (only finite numbers are "
                                      "parameters)")
        return _number(format(value, "f"))
    if isinstance(value, str):
        return exp.Literal.string(value).sql(dialect=dialect)
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is not None:
            raise ParameterTypeError("datetime with a time zone (TIMESTAMP has none; convert "
                                     "it to a naive local or UTC datetime)")
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    raise ParameterTypeError(f"parameters of type {type(value).__name__} (parameters are None, "
                             "bool, int, float, Decimal, str, datetime.date, datetime.datetime)")


def _number(text: str) -> str:
    """A negative number in parentheses: ``x-?`` must not become ``x--1`` (a comment)."""
    return f"({text})" if text.startswith("-") else text
