"""Splitting a script into statements with sqlglot's tokenizer.

A ``;`` inside a string or a comment does not end a statement.

>>> [s.text for s in split_statements("SELECT 'a;b' FROM t; -- done;\\nSHOW TABLES")]
["SELECT 'a;b' FROM t", 'SHOW TABLES']
>>> is_complete("SELECT 1"), is_complete("SELECT ';"), is_complete("SELECT 1; -- x")
(False, False, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from compiler.errors import SqlError


@dataclass(frozen=True)
class Statement:
    text: str    # the statement without its terminating ';'
    offset: int  # character offset of ``text`` in the script


def _tokens(script: str, dialect: str):
    try:
        return sqlglot.tokenize(script, read=dialect)
    except TokenError as e:
        raise SqlError(f"cannot read the SQL text: {e}", script, None) from None


def split_statements(script: str, dialect: str = "hive") -> list[Statement]:
    """Statements of a script, each with its position in the script; comments
    before a statement are dropped."""
    out: list[Statement] = []
    first = None  # start of the current statement's first token
    last_end = 0
    for tok in _tokens(script, dialect):
        if tok.token_type == TokenType.SEMICOLON:
            if first is not None:
                out.append(Statement(script[first:last_end + 1], first))
            first = None
            continue
        if first is None:
            first = tok.start
        last_end = tok.end
    if first is not None:
        out.append(Statement(script[first:last_end + 1].rstrip(), first))
    return out


def is_complete(text: str, dialect: str = "hive") -> bool:
    """True when the text ends with a statement terminator outside any quote."""
    try:
        toks = sqlglot.tokenize(text, read=dialect)
    except TokenError:
        return False
    return bool(toks) and toks[-1].token_type == TokenType.SEMICOLON
