"""Python scalar UDFs as the compiler sees them: a name, where the function
lives (module file and its sha256) and the SQL type it returns.

The compiler never runs a user's file: a return type not declared in SQL is
read from the function's annotation with :mod:`ast`.  The functions a
statement may call are set for the length of its compilation
(:func:`active`); the expression compiler records those it calls, which the
job then ships.

>>> return_annotation("def f(x) -> int:\\n    return x\\n", "f")
'bigint'
>>> return_annotation("def f(x):\\n    return x\\n", "f") is None
True
"""

from __future__ import annotations

import ast
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

# Python annotations -> the SQL value types the compiler uses
_ANNOTATIONS = {"int": "bigint", "float": "double", "str": "string", "bool": "boolean",
                "date": "date", "datetime": "timestamp"}
TYPES = ("bigint", "int", "double", "string", "boolean", "date", "timestamp")


@dataclass(frozen=True)
class Udf:
    name: str          # as SQL calls it (lower case)
    module: str        # the file's module name (udfs for udfs.py)
    function: str      # a top-level function of that module
    path: str          # the file on the driver's machine
    sha256: str        # of the file when the function was created
    returns: str       # SQL value type

    @property
    def file(self) -> str:
        return self.module + ".py"


@dataclass
class Calls:
    """The UDFs a statement may call, and those it did."""

    known: dict[str, Udf]
    used: dict[str, Udf] = field(default_factory=dict)


_ACTIVE: ContextVar[Calls | None] = ContextVar("sqlmr_udfs", default=None)


@contextlib.contextmanager
def active(known: dict[str, Udf]) -> Iterator[Calls]:
    """Make ``known`` (lower-case name -> Udf) callable while compiling."""
    calls = Calls({k.lower(): v for k, v in known.items()})
    token = _ACTIVE.set(calls)
    try:
        yield calls
    finally:
        _ACTIVE.reset(token)


def lookup(name: str) -> Udf | None:
    """The UDF called ``name`` (recorded as used), if any."""
    calls = _ACTIVE.get()
    if calls is None:
        return None
    udf = calls.known.get(name.lower())
    if udf is not None:
        calls.used[udf.name] = udf
    return udf


def return_annotation(source: str, function: str) -> str | None:
    """The SQL type of a top-level function's ``-> T`` annotation (int, float,
    str, bool, date, datetime; ``Optional[T]`` / ``T | None`` too), None when
    absent or another type."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            return _sql_type(node.returns)
    return None


def has_function(source: str, function: str) -> bool:
    """Whether the module's top level defines ``function`` (def or assignment).

    >>> has_function("import os\\ndef f(): pass\\n", "f"), has_function("x = 1", "f")
    (True, False)
    """
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node.name == function:
            return True
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == function for t in node.targets):
            return True
    return False


def _sql_type(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):   # "int"
        try:
            return _sql_type(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):   # int | None
        sides = [n for n in (node.left, node.right)
                 if not (isinstance(n, ast.Constant) and n.value is None)]
        return _sql_type(sides[0]) if len(sides) == 1 else None
    if isinstance(node, ast.Subscript) and _name(node.value) == "Optional":
        return _sql_type(node.slice)
    return _ANNOTATIONS.get(_name(node) or "")


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
