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

from sqlglot import exp

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
    aggregate: bool = False   # a class with init/step/merge/final (AGGREGATE_METHODS)

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


class UserAgg(exp.Expression, exp.AggFunc):
    """A call of an aggregate UDF (the parser reads it as exp.Anonymous); the
    UDF's name is in ``meta["udaf"]``, so the call prints as the user wrote it."""

    arg_types = {"this": True}

    def sql_name(self) -> str:  # type: ignore[override]  # the instance's UDF name
        return str(self.meta.get("udaf", "user_agg"))


def mark_aggregates(tree: exp.Expression) -> None:
    """Replace, in place, the calls of the active aggregate UDFs by :class:`UserAgg`
    (``this``: its argument; a Tuple when there are not exactly one, refused
    by :func:`compiler.aggs.agg_slots`)."""
    calls = _ACTIVE.get()
    if calls is None or not any(u.aggregate for u in calls.known.values()):
        return
    for node in list(tree.find_all(exp.Anonymous)):
        udf = calls.known.get(node.name.lower())
        if udf is not None and udf.aggregate:
            args = node.expressions
            this = args[0] if len(args) == 1 else exp.Tuple(expressions=list(args))
            call = UserAgg(this=this)
            call.meta["udaf"] = udf.name
            node.replace(call)


def aggregate_ref(name: str) -> str:
    """The generated code binding aggregate UDF ``name`` (recorded as used)."""
    udf = lookup(name)
    assert udf is not None and udf.aggregate
    return (f"_Udf({udf.name!r}, {udf.module!r}, {udf.function!r}, {udf.sha256!r}, "
            "aggregate=True)")


def return_annotation(source: str, function: str) -> str | None:
    """The SQL type of a top-level function's ``-> T`` annotation (int, float,
    str, bool, date, datetime; ``Optional[T]`` / ``T | None`` too), None when
    absent or another type."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            return _sql_type(node.returns)
    return None


AGGREGATE_METHODS = ("init", "step", "merge", "final")


def aggregate_class(source: str, name: str) -> ast.ClassDef | None:
    """The top-level class ``name`` if it defines init, step, merge and final
    (an aggregate UDF), else None.

    >>> src = "class G:\\n" + "".join(f"    def {m}(self): pass\\n" for m in AGGREGATE_METHODS)
    >>> aggregate_class(src, "G") is not None, aggregate_class("class G: pass", "G")
    (True, None)
    """
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            defined = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            return node if defined >= set(AGGREGATE_METHODS) else None
    return None


def final_annotation(cls: ast.ClassDef) -> str | None:
    """The SQL type of an aggregate class's ``final(self, state) -> T``."""
    for n in cls.body:
        if isinstance(n, ast.FunctionDef) and n.name == "final":
            return _sql_type(n.returns)
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
