"""Compiling SQL expressions into inline Python expressions.

Each SQL expression becomes one Python expression over local variables (the
parsed columns of the current row, or group keys and aggregate results after a
GROUP BY).  NULL is ``None``; SQL's three-valued logic is kept exactly, and
null checks are left out wherever a value is known not to be NULL, so the
common case compiles to plain Python operators.

Two contexts:
- :meth:`ExprCompiler.value` gives the SQL value (``True``/``False``/``None``
  for a boolean);
- :meth:`ExprCompiler.predicate` gives a Python truth value that is true only
  when the SQL value is TRUE (WHERE, HAVING, CASE WHEN), which lets AND/OR
  short-circuit.

Literals enter the code only through ``repr()`` of a Python value and
identifiers never become Python names, so a hostile string stays a string.

>>> import sqlglot
>>> ec = ExprCompiler({'t.a': Var('c0', 'int', nullable=False)})
>>> ec.predicate(sqlglot.parse_one("t.a > 10 AND t.a <= 20"))
'((c0 > 10) and (c0 <= 20))'
>>> ec = ExprCompiler({'t.s': Var('c1', 'string', nullable=True)})
>>> ec.value(sqlglot.parse_one("SUBSTR(t.s, 1, 8)")).code
'(None if ((_t0 := c1) is None) else _t0[0:8])'
>>> ec.value(sqlglot.parse_one("t.s = 'x''; import os'")).code
'(None if ((_t1 := c1) is None) else (_t1 == "x\\'; import os"))'
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlglot import exp
from sqlglot.dialects.hive import Hive
from sqlglot.time import format_time

from compiler import udfs
from compiler.errors import SqlError, UnsupportedError
from compiler.schema import NUMERIC
from runtime.javadate import compile_format
from runtime.javaregex import RegexError, RegexUnsupported, compile_java, compile_replacement
from runtime.sqlfuncs import parse_timestamp


@dataclass(frozen=True)
class Var:
    """A Python local holding a SQL value."""

    name: str
    type: str | None  # sqlmr value type ('int', 'double', 'string', 'date', 'boolean') or None
    nullable: bool = True


@dataclass(frozen=True)
class Code:
    code: str
    type: str | None
    nullable: bool


CONST_PREFIX = "_C"  # generated constants only: no other generated name starts so


def intern_const(consts: dict[str, str], value_code: str) -> str:
    """Name of the module-level constant holding ``value_code``, added once.
    Constant names have a prefix of their own (:data:`CONST_PREFIX` and a
    number), which :mod:`compiler.codegen` never gives any other name.

    >>> k = {}
    >>> intern_const(k, "frozenset((1,))"), intern_const(k, "frozenset((1,))"), k
    ('_C0', '_C0', {'_C0': 'frozenset((1,))'})
    """
    for name, code in consts.items():
        if code == value_code:
            return name
    name = f"{CONST_PREFIX}{len(consts)}"
    consts[name] = value_code
    return name


def column_key(col: exp.Column) -> str:
    """Environment key of a qualified column: ``table.column`` in lower case."""
    return f"{col.table.lower()}.{col.name.lower()}"


def expr_key(node: exp.Expression) -> str:
    """Environment key of any expression (its canonical SQL); parentheses
    around the whole expression do not count: ``(i + 1)`` is ``i + 1``."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        return column_key(node)
    return node.sql(dialect="hive", normalize=True)


def sqlglot_type(node: exp.Expression) -> str | None:
    """sqlmr value type of an annotated sqlglot node."""
    t = node.type
    if t is None:
        return None
    T = exp.DataType.Type
    k = t.this
    if k in (T.VARCHAR, T.CHAR, T.TEXT, T.NVARCHAR, T.NCHAR):
        return "string"
    if k in (T.INT, T.SMALLINT, T.TINYINT, T.UINT, T.USMALLINT, T.UTINYINT):
        return "int"
    if k in (T.BIGINT, T.UBIGINT, T.INT128, T.HUGEINT):
        return "bigint"
    if k in (T.DOUBLE, T.FLOAT, T.DECIMAL):
        return "double"
    if k == T.DATE:
        return "date"
    if k in (T.TIMESTAMP, T.DATETIME):
        return "timestamp"
    if k == T.BOOLEAN:
        return "boolean"
    return None


_CAST_TYPES = {
    "VARCHAR": "string", "CHAR": "string", "TEXT": "string", "NVARCHAR": "string",
    "INT": "int", "SMALLINT": "int", "TINYINT": "int", "BIGINT": "bigint",
    "DOUBLE": "double", "FLOAT": "double", "DECIMAL": "double", "DATE": "date",
    "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "DATETIME": "timestamp",
}

_TEXT_TYPES = (None, "string", "date", "timestamp")  # values that are their own text


def _raw_date_format(args: list) -> exp.Expression:
    return exp.Anonymous(this="DATE_FORMAT", expressions=args)


# Hive's DATE_FORMAT keeps its Java pattern as written: sqlglot would rewrite a
# constant pattern into strftime codes, which cannot be read back where the
# pattern quotes text ('day' would come back as d, a, yyyy).
Hive.Parser.FUNCTIONS = {**Hive.Parser.FUNCTIONS, "DATE_FORMAT": _raw_date_format}


def pin_current_date(tree: exp.Expression, today: _dt.date | None = None) -> exp.Expression:
    """CURRENT_DATE read once, when the query is planned, as a DATE constant,
    so that every task of the job (whenever and wherever it runs) agrees.

    >>> import sqlglot
    >>> pin_current_date(sqlglot.parse_one("SELECT CURRENT_DATE + 0"), _dt.date(2024, 2, 29)).sql()
    "SELECT CAST('2024-02-29' AS DATE) + 0"
    """
    if tree.find(exp.CurrentDate) is None:
        return tree
    day = (today or _dt.date.today()).isoformat()
    return tree.transform(lambda n: exp.Cast(this=exp.Literal.string(day),
                                             to=exp.DataType.build("DATE"))
                          if isinstance(n, exp.CurrentDate) else n)

_COMPARE = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<",
            exp.LTE: "<="}
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}

# Operators that chain: a left-deep run of them compiles to one flat Python
# expression (``a + b - c``), not one nesting level per operator, so a long
# chain neither nests too deep for Python's parser nor costs quadratic time.
# ``+`` and ``-`` chain together (same precedence, Python evaluates them left to
# right exactly as the nested form did); ``*`` chains on its own.
_CHAINS: dict[type, tuple[type, ...]] = {exp.Add: (exp.Add, exp.Sub), exp.Sub: (exp.Add, exp.Sub),
                                         exp.Mul: (exp.Mul,)}
# How an operator shows in an environment key (expr_key's SQL); a chain's
# prefixes can only be keys when some key contains the operator.
_KEY_TEXT = {exp.Add: " + ", exp.Sub: " - ", exp.Mul: " * ", exp.And: " AND ",
             exp.Or: " OR ", exp.DPipe: " || "}

_SLACK = 8  # levels sqlmr's rewrites may add to what the statement nests
_RUN = 200  # operators per run of a flat chain in the generated Python (see _fold)

MAX_DEPTH = 64
"""How deeply expressions may nest (chains of one operator count once).  Each
level costs up to three levels of parentheses in the generated Python, whose
parser allows 200."""


# Python frames compiling a query may take: sqlglot's parser and optimizer
# recurse a dozen frames per level of nesting, so MAX_DEPTH levels need more
# than Python's default 1000.  (Python's own frames do not use the C stack.)
RECURSION_LIMIT = 20000


@contextmanager
def deep_recursion(sql: str | None, what: str = "compile") -> Iterator[None]:
    """Run a parse or compile step with room for :data:`MAX_DEPTH` levels of
    nesting; running out anyway is a :class:`SqlError`, not a traceback."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, RECURSION_LIMIT))
    try:
        yield
    except RecursionError:
        raise SqlError(f"the statement is nested too deeply to {what}; sqlmr supports up to "
                       f"{MAX_DEPTH} levels of nested expressions", sql, None,
                       "split it into simpler expressions") from None
    finally:
        sys.setrecursionlimit(old)


def nesting_error(sql: str, tokens: list) -> SqlError | None:
    """The error for a statement whose parentheses (or CASE … END) nest deeper
    than :data:`MAX_DEPTH`, found from its tokens before any recursive parsing;
    None when it nests no deeper."""
    from sqlglot.tokens import TokenType
    depth = deepest = 0
    at = None
    for tok in tokens:
        if tok.token_type in (TokenType.L_PAREN, TokenType.CASE):
            depth += 1
            if depth > deepest:
                deepest = depth
                if depth == MAX_DEPTH + 1:
                    at = tok.start
        elif tok.token_type in (TokenType.R_PAREN, TokenType.END):
            depth = max(0, depth - 1)
    if deepest <= MAX_DEPTH:
        return None
    return SqlError(f"expression nested {deepest} deep; sqlmr supports up to {MAX_DEPTH} "
                    "levels of parentheses and CASE", sql, at,
                    "split it into simpler expressions")


def depth_error(sql: str | None, node: exp.Expression) -> SqlError:
    """The error for an expression nested deeper than :data:`MAX_DEPTH`."""
    return SqlError(f"expression nested more than {MAX_DEPTH} deep; sqlmr supports up to "
                    f"{MAX_DEPTH} levels of nested expressions",
                    sql, _offset(node), "split it into simpler expressions, or compute "
                    "parts of it in a subquery or a CREATE TABLE AS step")


def _type_params(to: exp.DataType, sql: str | None, node: exp.Expression) -> tuple[int, ...] | None:
    """The parameters a CAST must honour: (n,) of VARCHAR(n), (p, s) of
    DECIMAL(p, s) (Hive's DECIMAL alone is DECIMAL(10, 0)); None for others."""
    T = exp.DataType.Type
    if to.this not in (T.VARCHAR, T.NVARCHAR, T.DECIMAL):
        return None
    values = []
    for p in to.expressions:
        v = p.this if isinstance(p, exp.DataTypeParam) else p
        if not (isinstance(v, exp.Literal) and not v.is_string and v.this.isdigit()):
            raise UnsupportedError(f"CAST to {to.sql()}", sql, _offset(node))
        values.append(int(v.this))
    if to.this == T.DECIMAL:
        p, s = (values + [10, 0][len(values):])[:2] if values else (10, 0)
        if not 1 <= p <= 38 or not 0 <= s <= p:
            raise SqlError(f"invalid type {to.sql()}: DECIMAL(p, s) needs 1 <= p <= 38 and "
                           "0 <= s <= p", sql, _offset(node))
        return (p, s)
    if not values:
        return None
    if values[0] < 1:
        raise SqlError(f"invalid type {to.sql()}", sql, _offset(node))
    return (values[0],)


def cast_target(to: exp.DataType) -> str:
    name = to.this.name if hasattr(to.this, "name") else str(to.this)
    if name not in _CAST_TYPES:
        raise UnsupportedError(f"CAST to {to.sql()}")
    return _CAST_TYPES[name]


class ExprCompiler:
    """Compiles expressions against an environment of variables.

    ``env`` maps :func:`expr_key` of a column (or, after GROUP BY, of a group key
    or aggregate) to the :class:`Var` holding it.  ``consts`` collects module
    level constants (sets for IN, compiled LIKE patterns) the code refers to.
    """

    def __init__(self, env: dict[str, Var], consts: dict[str, str] | None = None,
                 sql: str | None = None, tmp_prefix: str = "_t") -> None:
        self.env = env
        self.consts = consts if consts is not None else {}
        self.sql = sql
        self._tmp = 0
        self._tmp_prefix = tmp_prefix
        self._depth = 0  # nesting of value()/predicate() calls, checked against MAX_DEPTH

    # ------------------------------------------------------------- helpers
    def tmp(self) -> str:
        name = f"{self._tmp_prefix}{self._tmp}"
        self._tmp += 1
        return name

    def const(self, value_code: str) -> str:
        """A module-level constant holding ``value_code`` (deduplicated)."""
        return intern_const(self.consts, value_code)

    def _bind(self, parts: list[Code], test: str) -> tuple[list[str], list[str]]:
        """Operand names for a null-aware expression: a nullable operand is bound
        to a temp by a walrus inside its null ``test`` (``is None`` / ``is not None``)."""
        names, checks = [], []
        for p in parts:
            if p.nullable:
                t = self.tmp()
                checks.append(f"(({t} := {p.code}) {test})")
                names.append(t)
            else:
                names.append(p.code)
        return names, checks

    def _error(self, message: str, node: exp.Expression) -> SqlError:
        return UnsupportedError(message, self.sql, _offset(node))

    def _guard(self, parts: list[Code], body) -> Code:
        """Null-propagating application: ``body`` gets the code of each operand
        (a temp name where the operand may be NULL) and returns the result code."""
        names, checks = self._bind(parts, "is None")
        code = body(*names)
        if not checks:
            return Code(code, None, False)
        return Code(f"(None if {' or '.join(checks)} else {code})", None, True)

    # -------------------------------------------------------------- values
    def value(self, node: exp.Expression) -> Code:
        key = expr_key(node) if not isinstance(node, exp.Literal) else None
        if key is not None and key in self.env:
            v = self.env[key]
            return Code(v.name, v.type, v.nullable)
        method = getattr(self, "_v_" + type(node).__name__, None)
        if method is None:
            if isinstance(node, exp.AggFunc):
                raise SqlError(f"aggregate {node.sql(dialect='hive')} is not allowed here",
                               self.sql, _offset(node))
            if isinstance(node, exp.Column):
                raise SqlError(f"column '{spelled(node)}' must appear in GROUP BY or be used "
                               "in an aggregate function",
                               self.sql, _offset(node))
            raise self._error(f"{_describe(node)}", node)
        if isinstance(node, (exp.Paren, exp.Alias)):  # not a level of its own
            return method(node)
        self._enter(node)
        try:
            return method(node)
        finally:
            self._depth -= 1

    def _enter(self, node: exp.Expression) -> None:
        """Count one level of nesting; fail at compile time past :data:`MAX_DEPTH`
        (deeper code would fail in the workers, or exhaust Python's recursion)."""
        self._depth += 1
        if self._depth > MAX_DEPTH + _SLACK:
            self._depth -= 1  # the callers' `finally` unwind the rest
            raise depth_error(self.sql, node)

    def _in_env(self, node: exp.Expression, check: bool) -> bool:
        """Whether a chain's inner node is itself an environment entry (a GROUP BY
        key such as ``a + b`` inside ``a + b + c``); only looked up when ``check``."""
        return check and expr_key(node) in self.env

    def _may_key(self, kind: type) -> bool:
        """Whether some environment key contains the operator of ``kind``."""
        text = _KEY_TEXT[kind]
        return any(text in k.upper() for k in self.env)

    def _left_chain(self, node: exp.Binary, kinds: tuple[type, ...]) -> list[exp.Expression]:
        """Operands of a left-deep chain of ``kinds`` ending at ``node``, left to
        right, found without recursion (parenthesised operands stay whole)."""
        check = any(self._may_key(k) for k in kinds)
        rights: list[exp.Expression] = []
        n: exp.Expression = node
        while type(n) in kinds and (n is node or not self._in_env(n, check)):
            rights.append(n)
            n = n.left
        return [n] + rights[::-1]  # the leftmost operand, then each operator node

    def _flat_operands(self, node: exp.Expression, kind: type, env_check: bool) -> list[exp.Expression]:
        """Operands of an associative AND / OR tree, left to right, through
        parentheses, without recursion.  With ``env_check`` an inner node that
        is an environment entry stays one operand."""
        check = env_check and self._may_key(kind)
        out: list[exp.Expression] = []
        stack = [node]
        while stack:
            n = stack.pop()
            inner = n
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if type(inner) is kind and (n is node or not self._in_env(n, check)):
                stack.append(inner.right)
                stack.append(inner.left)
            else:
                out.append(n)
        return out

    def _v_Paren(self, node: exp.Paren) -> Code:
        return self.value(node.this)

    def _v_Alias(self, node: exp.Alias) -> Code:
        return self.value(node.this)

    def _v_Literal(self, node: exp.Literal) -> Code:
        if node.is_string:
            return Code(repr(node.this), "string", False)
        value = number_literal(node.this)
        typ = "double" if isinstance(value, float) else "int" if -_INT_MAX - 1 <= value <= _INT_MAX else "bigint"
        return Code(py_literal(value), typ, False)

    def _v_Null(self, node: exp.Null) -> Code:
        return Code("None", None, True)

    def _v_Boolean(self, node: exp.Boolean) -> Code:
        return Code(repr(bool(node.this)), "boolean", False)

    def _v_Neg(self, node: exp.Neg) -> Code:
        inner = self.value(node.this)
        self._need_numeric(inner, node)
        out = self._guard([inner], lambda a: f"(-{a})")
        return Code(out.code, inner.type, out.nullable)

    def _v_Date(self, node: exp.Date) -> Code:
        arg = node.this
        if isinstance(arg, exp.Literal) and arg.is_string:
            return Code(repr(_date_literal(arg.this, self.sql, node)), "date", False)
        inner = self.value(arg)
        return self._call("F.cast", [inner, Code(repr("date"), "string", False)], "date",
                          always_nullable=True)

    def _v_Cast(self, node: exp.Cast) -> Code:
        to = cast_target(node.to)
        params = _type_params(node.to, self.sql, node)
        if params is not None:
            return self._sized_cast(node, to, params)
        arg = node.this
        if isinstance(arg, exp.Literal) and to == "date" and arg.is_string:
            return Code(repr(_date_literal(arg.this, self.sql, node)), "date", False)
        if isinstance(arg, exp.Literal) and to == "timestamp" and arg.is_string:
            return Code(repr(_timestamp_literal(arg.this, self.sql, node)), "timestamp", False)
        inner = self.value(arg)
        if inner.type == to:
            return inner
        if to == "timestamp" or inner.type == "timestamp":
            return self._timestamp_cast(inner, to, node)
        if to == "double" and inner.type in NUMERIC:
            out = self._guard([inner], lambda a: f"float({a})")
            return Code(out.code, "double", out.nullable)
        if to == "string" and inner.type in ("string", "date"):
            return Code(inner.code, "string", inner.nullable)
        return Code(f"F.cast({inner.code}, {to!r})", to, True)

    _v_TryCast = _v_Cast

    def _timestamp_cast(self, inner: Code, to: str, node: exp.Expression) -> Code:
        """CAST to or from TIMESTAMP: text parses as a timestamp, a DATE is its
        midnight; a TIMESTAMP's text is itself, its DATE the day."""
        if to == "timestamp" and inner.type == "date":
            out = self._guard([inner], lambda a: f"({a} + ' 00:00:00')")
        elif to == "timestamp" and inner.type in (None, "string"):
            return Code(f"F.cast({inner.code}, 'timestamp')", "timestamp", True)
        elif inner.type == "timestamp" and to == "string":
            out = inner
        elif inner.type == "timestamp" and to == "date":
            out = self._guard([inner], lambda a: f"{a}[:10]")
        else:
            raise self._error(f"CAST of {(inner.type or 'NULL').upper()} to {to.upper()}", node)
        return Code(out.code, to, out.nullable)

    def _sized_cast(self, node: exp.Cast, to: str, params: tuple[int, ...]) -> Code:
        """CAST to VARCHAR(n) (keeps n characters) or DECIMAL(p, s) (rounds half
        up to s digits; a value with more than p - s integer digits is NULL)."""
        inner = self.value(exp.Cast(this=node.this, to=exp.DataType.build(
            "STRING" if to == "string" else "DOUBLE")))
        if to == "string":
            n = params[0]
            out = self._guard([inner], lambda a: f"{a}[:{n}]")
            return Code(out.code, "string", out.nullable)
        return Code(f"F.to_decimal({inner.code}, {params[0]}, {params[1]})", "double", True)

    def _v_Column(self, node: exp.Column) -> Code:
        raise SqlError(f"column '{spelled(node)}' must appear in GROUP BY or be used in an "
                       "aggregate function", self.sql, _offset(node))

    # arithmetic
    def _arith(self, node: exp.Binary) -> Code:
        """``+ - *``: a left-deep chain (``a + b - c``) compiles to one flat,
        null-guarded Python expression, typed as the nested form was (INT,
        then BIGINT, then DOUBLE as operands widen)."""
        chain = self._left_chain(node, _CHAINS[type(node)])
        first = chain[0]
        parts = [self.value(first)]
        ops: list[str] = []
        typ = None
        for i, op_node in enumerate(chain[1:]):
            b = self.value(op_node.right)
            if i == 0:
                self._need_numeric(parts[0], first)
            self._need_numeric(b, op_node.right)
            ops.append(_ARITH[type(op_node)])
            a_type = parts[0].type if i == 0 else typ
            typ = "double" if "double" in (a_type, b.type) else (
                "bigint" if "bigint" in (a_type, b.type) else "int")
            parts.append(b)
        out = self._guard(parts, lambda *xs: self._fold(xs[0], list(zip(ops, xs[1:]))))
        return Code(out.code, typ, out.nullable)

    def _fold(self, first: str, rest: list[tuple[str, str]]) -> str:
        """``first op x op y …`` evaluated left to right.  Python's compiler
        recurses once per binary operator, so a long chain is cut into runs of
        :data:`_RUN` operators, each adding to an accumulator in a tuple whose
        last item is the result: ``(_t := a + … , _t := _t + … )[-1]``."""
        if len(rest) <= _RUN:
            return "(" + first + "".join(f" {op} {x}" for op, x in rest) + ")"
        acc = self.tmp()
        runs, head = [], first
        for i in range(0, len(rest), _RUN):
            runs.append(f"{acc} := " + head + "".join(f" {op} {x}" for op, x in rest[i:i + _RUN]))
            head = acc
        return "((" + "), (".join(runs) + "))[-1]"

    _v_Add = _v_Sub = _v_Mul = _arith

    def _v_Div(self, node: exp.Div) -> Code:
        a, b = self.value(node.left), self.value(node.right)
        self._need_numeric(a, node.left)
        self._need_numeric(b, node.right)
        rb = node.right.unnest() if isinstance(node.right, exp.Paren) else node.right
        if isinstance(rb, exp.Literal) and not rb.is_string and float(rb.this) != 0:
            out = self._guard([a, b], lambda x, y: f"({x} / {y})")
            return Code(out.code, "double", out.nullable)
        return Code(f"F.divide({a.code}, {b.code})", "double", True)

    def _v_IntDiv(self, node: exp.IntDiv) -> Code:
        a, b = self.value(node.left), self.value(node.right)
        return Code(f"F.cast(F.divide({a.code}, {b.code}), 'bigint')", "bigint", True)

    def _v_Mod(self, node: exp.Mod) -> Code:
        a, b = self.value(node.left), self.value(node.right)
        self._need_numeric(a, node.left)
        self._need_numeric(b, node.right)
        typ = "double" if "double" in (a.type, b.type) else "int"
        return Code(f"F.modulo({a.code}, {b.code})", typ, True)

    def _need_numeric(self, c: Code, node: exp.Expression, what: str = "here") -> None:
        if c.type is not None and c.type not in NUMERIC:
            raise SqlError(f"{shown(node)} is {c.type.upper()}, a number is needed {what}",
                           self.sql, _offset(node))

    def _common(self, parts: list[Code], nodes: list[exp.Expression], what: str) -> list[Code]:
        """Branches of COALESCE / IF / CASE converted to their common type, as
        Hive's: numbers widen (INT, BIGINT, DOUBLE), numbers and dates with
        text become STRING.  A value's type must match its code, so a later
        CAST is not skipped on a value that is not what its type says."""
        types = {p.type for p in parts if p.type is not None}
        if len(types) <= 1:
            return parts
        if types <= NUMERIC:
            to = "double" if "double" in types else "bigint"
        elif types == {"date", "timestamp"}:
            to = "timestamp"
        elif "string" in types and types <= NUMERIC | {"string", "date", "timestamp"}:
            to = "string"
        else:
            names = " and ".join(sorted(t.upper() for t in types))
            raise SqlError(f"{what} mixes {names}", self.sql, _offset(nodes[0]))
        return [self._convert(p, to) for p in parts]

    def _convert(self, c: Code, to: str) -> Code:
        """``c`` as a value of type ``to`` (an implicit, always valid conversion)."""
        if c.type is None or c.type == to or (to == "bigint" and c.type == "int"):
            return Code(c.code, to, c.nullable)
        if to == "double":
            out = self._guard([c], lambda a: f"float({a})")
            return Code(out.code, "double", out.nullable)
        if to == "string" and c.type in ("date", "timestamp"):
            return Code(c.code, "string", c.nullable)
        if to == "timestamp" and c.type == "date":
            out = self._guard([c], lambda a: f"({a} + ' 00:00:00')")
            return Code(out.code, "timestamp", out.nullable)
        return Code(f"F.cast({c.code}, {to!r})", to, c.nullable)

    # comparisons
    def _coerce_pair(self, a: Code, b: Code, na: exp.Expression, nb: exp.Expression) -> tuple[Code, Code]:
        """Hive's implicit conversions for comparing two values."""
        ta, tb = a.type, b.type
        if ta is None or tb is None or ta == tb:
            return a, b
        if ta in NUMERIC and tb in NUMERIC:
            return a, b
        if {ta, tb} == {"date", "string"}:
            # a string literal compared with a date is read as a date
            lit, other = (na, nb) if ta == "string" else (nb, na)
            if isinstance(lit, exp.Literal):
                d = Code(repr(_date_literal(lit.this, self.sql, lit)), "date", False)
                return (d, b) if ta == "string" else (a, d)
            return a, b
        if "timestamp" in (ta, tb) and {ta, tb} <= {"timestamp", "date", "string"}:
            # a date or a text compared with a timestamp is read as a timestamp
            # (a literal when compiling, a text that does not parse is NULL)
            def ts(c: Code, n: exp.Expression) -> Code:
                if c.type == "string" and isinstance(n, exp.Literal):
                    return Code(repr(_timestamp_literal(n.this, self.sql, n)), "timestamp", False)
                if c.type == "string":  # may not parse: NULL
                    return Code(f"F.cast({c.code}, 'timestamp')", "timestamp", True)
                return self._convert(c, "timestamp")
            return ts(a, na), ts(b, nb)
        if ta == "string" and tb in NUMERIC:
            return self._to_double(a, na), b
        if tb == "string" and ta in NUMERIC:
            return a, self._to_double(b, nb)
        raise SqlError(f"cannot compare {ta.upper()} with {tb.upper()}", self.sql, _offset(na))

    def _to_double(self, c: Code, node: exp.Expression) -> Code:
        if isinstance(node, exp.Literal):
            try:
                return Code(py_literal(float(node.this)), "double", False)
            except ValueError:
                return Code("None", "double", True)
        return Code(f"F.cast({c.code}, 'double')", "double", True)

    def _compare(self, node: exp.Binary) -> Code:
        a, b = self._coerce_pair(self.value(node.left), self.value(node.right),
                                 node.left, node.right)
        op = _COMPARE[type(node)]
        out = self._guard([a, b], lambda x, y: f"({x} {op} {y})")
        return Code(out.code, "boolean", out.nullable)

    _v_EQ = _v_NEQ = _v_GT = _v_GTE = _v_LT = _v_LTE = _compare

    def _v_Between(self, node: exp.Between) -> Code:
        x = self.value(node.this)
        lo = self.value(node.args["low"])
        hi = self.value(node.args["high"])
        x, lo = self._coerce_pair(x, lo, node.this, node.args["low"])
        x, hi = self._coerce_pair(x, hi, node.this, node.args["high"])
        if not (x.nullable or lo.nullable or hi.nullable):
            return Code(f"({lo.code} <= {x.code} <= {hi.code})", "boolean", False)
        # x >= lo AND x <= hi in three-valued logic: one side FALSE is FALSE
        # even when the other bound is NULL (NOT (7 BETWEEN NULL AND 1) is TRUE)
        return self._call("F.between", [x, lo, hi], "boolean", always_nullable=True)

    def _v_In(self, node: exp.In) -> Code:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise self._error("IN with a subquery", node)
        x = self.value(node.this)
        items = node.expressions
        values = []
        has_null = False
        subject: Code | None = None  # ``x`` converted to the type the list compares in
        for it in items:
            if isinstance(it, exp.Null):
                has_null = True
                continue
            if not isinstance(it, (exp.Literal, exp.Neg, exp.Date, exp.Cast, exp.TryCast, exp.Boolean)):
                raise self._error("IN with a list that is not all constants", it)
            c = self.value(it)
            if c.nullable:
                raise self._error("IN with a list that is not all constants", it)
            # each item compares with x as ``x = item`` would: both sides may convert
            c, xc = self._coerce_pair(c, x, it, node.this)
            if subject is None:
                subject = xc
            elif xc.code != subject.code:
                raise self._error("IN with a list whose items compare with it in different "
                                  "types (write the conversions with CAST)", it)
            if c.code == "None":  # an item that does not convert (CAST('x' AS DOUBLE)) is NULL
                has_null = True
                continue
            values.append(c.code)
        x = subject if subject is not None else x
        name = self.const("frozenset((" + "".join(v + ", " for v in values) + "))")
        if has_null:
            out = self._guard([x], lambda a: f"(True if {a} in {name} else None)")
            return Code(out.code, "boolean", True)
        out = self._guard([x], lambda a: f"({a} in {name})")
        return Code(out.code, "boolean", out.nullable)

    def _v_Like(self, node: exp.Like, lower: bool = False) -> Code:
        x = self._text(node.this)  # Hive matches a number's text: ``i LIKE '7%'``
        pat_node = node.expression
        if node.args.get("escape") is not None:
            raise self._error("LIKE … ESCAPE", node)
        if isinstance(pat_node, exp.Literal) and pat_node.is_string:
            pattern = pat_node.this.lower() if lower else pat_node.this
            fast = _like_fast(pattern)
            subject = (lambda a: f"{a}.lower()") if lower else (lambda a: a)
            if fast is not None:
                kind, text = fast
                lit = repr(text)
                body = {
                    "eq": lambda a: f"({subject(a)} == {lit})",
                    "prefix": lambda a: f"{subject(a)}.startswith({lit})",
                    "suffix": lambda a: f"{subject(a)}.endswith({lit})",
                    "contains": lambda a: f"({lit} in {subject(a)})",
                }[kind]
            else:
                rx = self.const(f"F.like_regex({pattern!r})")
                body = lambda a: f"({rx}.match({subject(a)}) is not None)"  # noqa: E731
            out = self._guard([x], body)
        else:
            p = self._text(pat_node)
            if lower:
                out = Code(f"F.like(F.lower({x.code}), F.lower({p.code}))", None, True)
            else:
                out = Code(f"F.like({x.code}, {p.code})", None, True)
        code = Code(out.code, "boolean", out.nullable)
        if node.args.get("negate"):
            return self._negate(code)
        return code

    def _v_ILike(self, node: exp.ILike) -> Code:
        return self._v_Like(node, lower=True)

    def _v_Is(self, node: exp.Is) -> Code:
        target = node.expression
        x = self.value(node.this)
        if isinstance(target, exp.Null):
            return Code(f"({x.code} is None)" if x.nullable else "False", "boolean", False)
        if isinstance(target, exp.Boolean):
            return Code(f"({x.code} is {bool(target.this)!r})", "boolean", False)
        raise self._error(f"IS {target.sql()}", node)

    # logic (value context: three-valued)
    def _v_Not(self, node: exp.Not) -> Code:
        return self._negate(self.value(node.this))

    def _negate(self, c: Code) -> Code:
        if not c.nullable:
            return Code(f"(not {c.code})", "boolean", False)
        t = self.tmp()
        return Code(f"(None if ({t} := {c.code}) is None else not {t})", "boolean", True)

    def _connective(self, node: exp.Binary, op: str, decisive: bool) -> Code:
        """AND (decisive False) / OR (decisive True) in three-valued logic over a
        whole chain (``a AND b AND c`` is one flat expression): the decisive
        value wins, else NULL if any operand is NULL.  Operands are evaluated
        left to right and stop at the first decisive one."""
        nodes = self._flat_operands(node, type(node), env_check=True)
        parts = [self.value(n) for n in nodes]
        if not any(p.nullable for p in parts):
            return Code("(" + f" {op} ".join(p.code for p in parts) + ")", "boolean", False)
        temps = [self.tmp() for _ in parts]
        tests = " or ".join(f"({t} := {p.code}) is {decisive}" for t, p in zip(temps, parts))
        nulls = " or ".join(f"{t} is None" for t in temps)
        return Code(f"({decisive} if {tests} else (None if {nulls} else {not decisive}))",
                    "boolean", True)

    def _v_And(self, node: exp.And) -> Code:
        return self._connective(node, "and", False)

    def _v_Or(self, node: exp.Or) -> Code:
        return self._connective(node, "or", True)

    # functions
    def _call(self, fn: str, args: list[Code], typ: str | None,
              always_nullable: bool = False) -> Code:
        nullable = always_nullable or any(a.nullable for a in args)
        return Code(f"{fn}({', '.join(a.code for a in args)})", typ, nullable)

    def _text(self, node: exp.Expression) -> Code:
        """A string function's argument; other types convert to text as Hive
        converts them (``UPPER(duration)`` is ``UPPER(CAST(duration AS STRING))``)."""
        c = self.value(node)
        if c.type in _TEXT_TYPES:
            return c
        return Code(f"F.cast({c.code}, 'string')", "string", c.nullable)

    def _v_Substring(self, node: exp.Substring) -> Code:
        s = self._text(node.this)
        start = node.args.get("start")
        length = node.args.get("length")
        cs = _int_literal(start)
        cl = _int_literal(length) if length is not None else None
        if cs is not None and cs > 0 and (length is None or (cl is not None and cl >= 0)):
            b = cs - 1
            sl = f"[{b}:]" if length is None else f"[{b}:{b + cl}]"
            out = self._guard([s], lambda a: f"{a}{sl}")
            return Code(out.code, "string", out.nullable)
        args = [s, self.value(start)] + ([self.value(length)] if length is not None else [])
        return self._call("F.substr", args, "string")

    def _string_method(self, node: exp.Func, method: str) -> Code:
        s = self._text(node.this)
        out = self._guard([s], lambda a: f"{a}.{method}()")
        return Code(out.code, "string", out.nullable)

    def _v_Upper(self, node: exp.Upper) -> Code:
        return self._string_method(node, "upper")

    def _v_Lower(self, node: exp.Lower) -> Code:
        return self._string_method(node, "lower")

    def _v_Length(self, node: exp.Length) -> Code:
        s = self._text(node.this)
        out = self._guard([s], lambda a: f"len({a})")
        return Code(out.code, "int", out.nullable)

    def _v_Trim(self, node: exp.Trim) -> Code:
        if node.args.get("expression") is not None or node.args.get("position"):
            raise self._error("TRIM with characters or a position", node)
        s = self._text(node.this)
        out = self._guard([s], lambda a: f"{a}.strip(' ')")
        return Code(out.code, "string", out.nullable)

    def _v_Concat(self, node: exp.Concat) -> Code:
        parts = [self.value(e) for e in node.expressions]
        if all(p.type == "string" for p in parts):
            out = self._guard(parts, lambda *xs: self._fold(xs[0], [("+", x) for x in xs[1:]]))
            return Code(out.code, "string", out.nullable)
        return self._call("F.concat", parts, "string")

    def _v_ConcatWs(self, node: exp.ConcatWs) -> Code:
        """Hive's CONCAT_WS(sep, s1, s2, …): NULL arguments are skipped, a
        NULL separator gives NULL; the arguments are text (as Hive checks)."""
        if len(node.expressions) < 2:
            raise SqlError("CONCAT_WS needs a separator and at least one string", self.sql,
                           _offset(node))
        parts = [self.value(e) for e in node.expressions]
        for i, (part, e) in enumerate(zip(parts, node.expressions), 1):
            if part.type not in (None, "string"):
                raise SqlError(f"CONCAT_WS takes text: argument {i} is {part.type.upper()} "
                               f"(write CAST(… AS STRING))", self.sql, _offset(e))
        sep, rest = parts[0], [p.code for p in parts[1:]]
        if sep.nullable or any(p.nullable for p in parts[1:]):
            return Code(f"F.concat_ws({sep.code}, {', '.join(rest)})", "string", sep.nullable)
        return Code(f"{sep.code}.join(({', '.join(rest)},))", "string", False)

    def _v_DPipe(self, node: exp.DPipe) -> Code:
        """``a || b || c`` is CONCAT(a, b, c): one call, not one per operator."""
        chain = self._left_chain(node, (exp.DPipe,))
        return self._v_Concat(exp.Concat(expressions=[chain[0]] + [n.right for n in chain[1:]]))

    def _v_Round(self, node: exp.Round) -> Code:
        x = self.value(node.this)
        self._need_numeric(x, node.this)
        digits = node.args.get("decimals")
        d = self.value(digits) if digits is not None else Code("0", "int", False)
        typ = x.type if x.type in ("int", "bigint") else "double"
        return self._call("F.sql_round", [x, d], typ)

    def _v_Abs(self, node: exp.Abs) -> Code:
        x = self.value(node.this)
        self._need_numeric(x, node.this)
        out = self._guard([x], lambda a: f"abs({a})")
        return Code(out.code, x.type, out.nullable)

    def _v_Coalesce(self, node: exp.Coalesce) -> Code:
        nodes = [node.this] + list(node.expressions)
        parts = self._common([self.value(e) for e in nodes], nodes, "COALESCE")
        typ = next((p.type for p in parts if p.type), None)
        nullable = all(p.nullable for p in parts)
        return Code(f"F.coalesce({', '.join(p.code for p in parts)})", typ, nullable)

    def _v_Case(self, node: exp.Case) -> Code:
        subject = node.this
        subj: Code | None = None
        subj_tmp = ""
        if subject is not None:
            sc = self.value(subject)
            subj_tmp = self.tmp()
            subj = Code(subj_tmp, sc.type, sc.nullable)
        conds, values, nodes = [], [], []
        for i, when in enumerate(node.args.get("ifs") or []):
            if subj is not None:
                # ``CASE x WHEN v`` is ``x = v``, converting as '=' does
                w = self.value(when.this)
                x, w = self._coerce_pair(subj, w, subject, when.this)
                test = f"{x.code} == {w.code}"
                if x.nullable or w.nullable:
                    names, checks = self._bind([x, w], "is not None")
                    test = " and ".join(checks + [f"{names[0]} == {names[1]}"])
                if i == 0:  # the subject is evaluated once, by the first test
                    test = f"(({subj_tmp} := {sc.code}) is not None or True) and {test}"
                cond = f"({test})"
            else:
                cond = self.predicate(when.this)
            conds.append(cond)
            values.append(self.value(when.args["true"]))
            nodes.append(when.args["true"])
        default = node.args.get("default")
        values.append(self.value(default) if default is not None else Code("None", None, True))
        nodes.append(default if default is not None else node)
        values = self._common(values, nodes, "CASE")
        typ = next((v.type for v in values if v.type), None)
        nullable = any(v.nullable for v in values)
        code = values[-1].code
        for cond, then in reversed(list(zip(conds, values))):
            code = f"({then.code} if {cond} else {code})"
        return Code(code, typ, nullable)

    def _v_If(self, node: exp.If) -> Code:
        cond = self.predicate(node.this)
        t = self.value(node.args["true"])
        f_node = node.args.get("false")
        f = self.value(f_node) if f_node is not None else Code("None", None, True)
        t, f = self._common([t, f], [node.args["true"], f_node or node], "IF")
        return Code(f"({t.code} if {cond} else {f.code})", t.type or f.type,
                    t.nullable or f.nullable)


    # dates and timestamps (Hive converts a text argument, and a DATE is a
    # TIMESTAMP at midnight; a text that does not convert is NULL)
    def _as_date(self, node: exp.Expression, keep_time: bool = False) -> Code:
        c = self.value(node)
        if c.type == "date" or (keep_time and c.type == "timestamp"):
            return c
        if c.type == "timestamp":
            out = self._guard([c], lambda a: f"{a}[:10]")
            return Code(out.code, "date", out.nullable)
        if c.type in (None, "string"):
            return Code(f"F.cast({c.code}, 'date')", "date", True)
        raise SqlError(f"{shown(node)} is {c.type.upper()}, a date is needed here",
                       self.sql, _offset(node))

    def _as_timestamp(self, node: exp.Expression) -> Code:
        c = self.value(node)
        if c.type in ("timestamp", "date"):
            return self._convert(c, "timestamp")
        if c.type in (None, "string"):
            return Code(f"F.cast({c.code}, 'timestamp')", "timestamp", True)
        raise SqlError(f"{shown(node)} is {c.type.upper()}, a timestamp is needed here",
                       self.sql, _offset(node))

    def _v_TsOrDsToDate(self, node: exp.TsOrDsToDate) -> Code:
        if node.args.get("format") is not None:
            raise self._error("TO_DATE with a format", node)
        return self._as_date(node.this)

    def _v_TimeStrToTime(self, node: exp.TimeStrToTime) -> Code:
        return self._as_timestamp(node.this)

    def _date_part(self, node: exp.Func, cut: str, of_time: bool) -> Code:
        """YEAR … SECOND: a slice of the value's text as an INT.  A text is read
        as a date (YEAR … DAY) or a timestamp; HOUR … SECOND also read a time
        alone, as Hive does (``HOUR('12:58:59')`` is 12)."""
        arg = node.this
        if isinstance(arg, exp.TsOrDsToDate) and arg.args.get("format") is None:
            arg = arg.this  # sqlglot's wrapper: a timestamp's date part is its first 10 characters
        c = self.value(arg)
        if c.type in (None, "string"):
            text = f"F.time_text({c.code})" if of_time else f"F.cast({c.code}, 'date')"
            c = Code(text, "timestamp" if of_time else "date", True)
        elif c.type not in ("date", "timestamp"):
            raise SqlError(f"{shown(arg)} is {c.type.upper()}, a date or timestamp is needed here",
                           self.sql, _offset(arg))
        elif of_time:
            c = self._convert(c, "timestamp")
        out = self._guard([c], lambda a: f"int({a}[{cut}])")
        return Code(out.code, "int", out.nullable)

    def _v_Year(self, node: exp.Year) -> Code:
        return self._date_part(node, ":4", False)

    def _v_Month(self, node: exp.Month) -> Code:
        return self._date_part(node, "5:7", False)

    def _v_Day(self, node: exp.Day) -> Code:
        return self._date_part(node, "8:10", False)

    _v_DayOfMonth = _v_Day

    def _v_Hour(self, node: exp.Hour) -> Code:
        return self._date_part(node, "11:13", True)

    def _v_Minute(self, node: exp.Minute) -> Code:
        return self._date_part(node, "14:16", True)

    def _v_Second(self, node: exp.Second) -> Code:
        return self._date_part(node, "17:19", True)

    def _days(self, node: exp.Expression) -> Code:
        n = self.value(node)
        if n.type not in (None, "int", "bigint"):
            raise SqlError(f"{shown(node)} is {n.type.upper()}, a whole number of days is needed",
                           self.sql, _offset(node))
        return n

    def _v_TsOrDsAdd(self, node: exp.TsOrDsAdd) -> Code:
        """DATE_ADD / DATE_SUB (sqlglot writes DATE_SUB(d, n) as adding ``n * -1``)."""
        unit = node.args.get("unit")
        if unit is not None and unit.name.upper() != "DAY":
            raise self._error(f"DATE_ADD by {unit.name.upper()}", node)
        return self._call("F.date_add", [self._as_date(node.this), self._days(node.expression)],
                          "date", always_nullable=True)

    def _v_DateDiff(self, node: exp.DateDiff) -> Code:
        unit = node.args.get("unit")
        if unit is not None and unit.name.upper() != "DAY":
            raise self._error(f"DATEDIFF by {unit.name.upper()}", node)
        return self._call("F.datediff", [self._as_date(node.this), self._as_date(node.expression)],
                          "int")

    def _date_format(self, value: exp.Expression, pattern: exp.Expression,
                     java: str | None, node: exp.Expression) -> Code:
        """DATE_FORMAT: a constant pattern is compiled once per task; a pattern
        that is a value is compiled (and cached) where it is used."""
        ts = self._as_timestamp(value)
        if java is None:
            return self._call("F.date_format", [ts, self._text(pattern)], "string",
                              always_nullable=True)
        try:
            compile_format(java)
        except ValueError as e:
            raise self._error(str(e), pattern) from None
        fmt = self.const(f"F.compile_format({java!r})")
        out = self._guard([ts], lambda a: f"{fmt}({a})")
        return Code(out.code, "string", out.nullable)

    def _v_Anonymous(self, node: exp.Anonymous) -> Code:
        name = node.name.upper()
        args = node.expressions
        udf = udfs.lookup(node.name)
        if udf is not None and udf.aggregate:
            raise self._error(f"aggregate function {udf.name}() here", node)
        if udf is not None:
            # the user's function, called per row with None for NULL; bound
            # to the user's code only inside a task (runtime.udfs)
            fn = self.const(f"_Udf({udf.name!r}, {udf.module!r}, {udf.function!r}, "
                            f"{udf.sha256!r})")
            return self._call(fn, [self.value(a) for a in args], udf.returns,
                              always_nullable=True)
        if name == "DATE_FORMAT" and len(args) == 2:
            lit = args[1]
            java = lit.this if isinstance(lit, exp.Literal) and lit.is_string else None
            return self._date_format(args[0], lit, java, node)
        if name == "DATE_FORMAT":
            raise SqlError("DATE_FORMAT takes two arguments: a date or timestamp and a pattern",
                           self.sql, _offset(node))
        raise self._error(_describe(node), node)

    def _v_TimeToStr(self, node: exp.TimeToStr) -> Code:
        """STRFTIME and the like, whose pattern sqlglot has read into strftime
        codes: spelt back as Java's for the one formatter."""
        fmt = node.args.get("format")
        java = None
        if isinstance(fmt, exp.Literal) and fmt.is_string:
            java = format_time(fmt.this, Hive.INVERSE_TIME_MAPPING, Hive.INVERSE_TIME_TRIE)
        return self._date_format(node.this, fmt, java, node)

    # regular expressions (Java's syntax, see runtime.javaregex)
    def _const_pattern(self, node: exp.Expression) -> str | None:
        """The text of a constant pattern, checked; None when it is a value."""
        if not (isinstance(node, exp.Literal) and node.is_string):
            return None
        try:
            compile_java(node.this)
        except RegexUnsupported as e:
            raise self._error(str(e), node) from None
        except RegexError as e:
            raise SqlError(str(e), self.sql, _offset(node)) from None
        return node.this

    def _v_RegexpLike(self, node: exp.RegexpLike) -> Code:
        if node.args.get("flag") is not None:
            raise self._error("RLIKE with flags", node)
        s = self._text(node.this)
        pattern = self._const_pattern(node.expression)
        if pattern is None:
            return self._call("F.rlike", [s, self._text(node.expression)], "boolean",
                              always_nullable=True)
        rx = self.const(f"F.compile_java({pattern!r})")
        out = self._guard([s], lambda a: f"({rx}.search({a}) is not None)")
        return Code(out.code, "boolean", out.nullable)

    def _v_RegexpExtract(self, node: exp.RegexpExtract) -> Code:
        for arg in ("position", "occurrence", "parameters"):
            if node.args.get(arg) is not None:
                raise self._error(f"REGEXP_EXTRACT with a {arg}", node)
        s = self._text(node.this)
        group_node = node.args.get("group")
        group = 1 if group_node is None else _int_literal(group_node)
        if group is None:
            raise self._error("REGEXP_EXTRACT with a group index that is not a constant", node)
        pattern = self._const_pattern(node.expression)
        if pattern is None:
            return self._call("F.regexp_extract", [s, self._text(node.expression),
                                                   Code(str(group), "int", False)],
                              "string", always_nullable=True)
        groups = compile_java(pattern).groups
        if not 0 <= group <= groups:
            raise SqlError(f"REGEXP_EXTRACT group {group}: the pattern {pattern!r} has "
                           f"{groups} group{'s' if groups != 1 else ''}", self.sql,
                           _offset(group_node if group_node is not None else node))
        rx = self.const(f"F.compile_java({pattern!r})")
        out = self._guard([s], lambda a: f"F.rx_extract({rx}, {a}, {group})")
        return Code(out.code, "string", True)

    def _v_RegexpReplace(self, node: exp.RegexpReplace) -> Code:
        for arg in ("position", "occurrence", "modifiers"):
            if node.args.get(arg) is not None:
                raise self._error(f"REGEXP_REPLACE with {arg}", node)
        s = self._text(node.this)
        rep = node.args.get("replacement")
        if rep is None:
            raise SqlError("REGEXP_REPLACE takes a text, a pattern and a replacement",
                           self.sql, _offset(node))
        pattern = self._const_pattern(node.expression)
        if pattern is None or not (isinstance(rep, exp.Literal) and rep.is_string):
            return self._call("F.regexp_replace", [s, self._text(node.expression), self._text(rep)],
                              "string", always_nullable=True)
        try:
            _, template = compile_replacement(pattern, rep.this)
        except RegexError as e:
            raise SqlError(str(e), self.sql, _offset(rep)) from None
        rx = self.const(f"F.compile_java({pattern!r})")
        out = self._guard([s], lambda a: f"{rx}.sub({template!r}, {a})")
        return Code(out.code, "string", out.nullable)

    def _v_RegexpSplit(self, node: exp.RegexpSplit) -> Code:
        raise self._error(f"{shown(node)} as a value: arrays are not a value type; take one "
                          "item, as in SPLIT(s, ',')[0]", node)

    def _v_Bracket(self, node: exp.Bracket) -> Code:
        """``SPLIT(s, regex)[i]``: item ``i`` (from 0) of Java's split, NULL past the end."""
        split = node.this
        if not isinstance(split, exp.RegexpSplit) or len(node.expressions) != 1:
            raise self._error(f"[…] on {shown(split)} (only SPLIT(s, regex)[i] is supported)", node)
        if split.args.get("limit") is not None:
            raise self._error("SPLIT with a limit", split)
        s = self._text(split.this)
        index = self.value(node.expressions[0])
        if index.type not in (None, "int", "bigint"):
            raise SqlError(f"{shown(node.expressions[0])} is {index.type.upper()}, an array "
                           "index must be a whole number", self.sql, _offset(node.expressions[0]))
        pattern = self._const_pattern(split.expression)
        if pattern is None:
            return self._call("F.split_at", [s, self._text(split.expression), index], "string",
                              always_nullable=True)
        rx = self.const(f"F.compile_java({pattern!r})")
        out = self._guard([s, index], lambda a, i: f"F.rx_split_at({rx}, {a}, {i})")
        return Code(out.code, "string", True)

    # more text functions
    def _v_StrPosition(self, node: exp.StrPosition) -> Code:
        """INSTR(s, sub) / LOCATE(sub, s): 1-based, 0 when absent."""
        for arg in ("position", "occurrence"):
            if node.args.get(arg) is not None:
                raise self._error(f"{function_name(node)} with a start {arg}", node)
        s, sub = self._text(node.this), self._text(node.args["substr"])
        out = self._guard([s, sub], lambda a, b: f"({a}.find({b}) + 1)")
        return Code(out.code, "int", out.nullable)

    def _v_Pad(self, node: exp.Pad) -> Code:
        left = bool(node.args.get("is_left"))
        fill = node.args.get("fill_pattern")
        if fill is None:
            raise SqlError(f"{'LPAD' if left else 'RPAD'} takes a text, a length and a padding text",
                           self.sql, _offset(node))
        n = self.value(node.expression)
        if n.type not in (None, "int", "bigint"):
            raise SqlError(f"{shown(node.expression)} is {n.type.upper()}, a whole number is needed",
                           self.sql, _offset(node.expression))
        return self._call("F.pad", [self._text(node.this), n, self._text(fill),
                                    Code(repr(left), "boolean", False)], "string",
                          always_nullable=True)

    def _v_Replace(self, node: exp.Replace) -> Code:
        parts = [self._text(node.this), self._text(node.expression),
                 self._text(node.args["replacement"])]
        out = self._guard(parts, lambda a, b, c: f"{a}.replace({b}, {c})")
        return Code(out.code, "string", out.nullable)

    def _extreme(self, node: exp.Func, fn: str) -> Code:
        """GREATEST / LEAST: NULL when any argument is NULL (Hive 2 and later);
        arguments convert as for a comparison."""
        nodes = [node.this] + list(node.expressions)
        what = "GREATEST" if fn == "max" else "LEAST"
        if len(nodes) < 2:
            raise SqlError(f"{what} takes two or more arguments", self.sql, _offset(node))
        parts = [self.value(n) for n in nodes]
        types = {p.type for p in parts if p.type is not None}
        if types <= NUMERIC:
            parts = self._common(parts, nodes, what)
        elif types == {"date", "timestamp"}:
            parts = [self._convert(p, "timestamp") for p in parts]
        elif len(types) > 1:
            if types <= NUMERIC | {"string"}:
                parts = [self._to_double(p, n) if p.type == "string" else p
                         for p, n in zip(parts, nodes)]
                parts = self._common(parts, nodes, what)
            else:
                names = " and ".join(sorted(t.upper() for t in types))
                raise SqlError(f"{what} mixes {names}", self.sql, _offset(node))
        typ = next((p.type for p in parts if p.type), None)
        out = self._guard(parts, lambda *xs: f"{fn}({', '.join(xs)})")
        return Code(out.code, typ, out.nullable)

    def _v_Greatest(self, node: exp.Greatest) -> Code:
        return self._extreme(node, "max")

    def _v_Least(self, node: exp.Least) -> Code:
        return self._extreme(node, "min")

    # more mathematics (Hive's types: FLOOR / CEIL are BIGINT, the rest DOUBLE)
    def _math(self, node: exp.Func, fn: str, args: list[exp.Expression], typ: str,
              nullable: bool) -> Code:
        parts = []
        for a in args:
            c = self.value(a)
            self._need_numeric(c, a)
            parts.append(c)
        return self._call(fn, parts, typ, always_nullable=nullable)

    def _v_Floor(self, node: exp.Floor) -> Code:
        if node.args.get("decimals") is not None or node.args.get("to") is not None:
            raise self._error("FLOOR with a precision", node)
        return self._math(node, "F.floor", [node.this], "bigint", False)

    def _v_Ceil(self, node: exp.Ceil) -> Code:
        if node.args.get("decimals") is not None or node.args.get("to") is not None:
            raise self._error("CEIL with a precision", node)
        return self._math(node, "F.ceil", [node.this], "bigint", False)

    def _v_Pow(self, node: exp.Pow) -> Code:
        return self._math(node, "F.power", [node.this, node.expression], "double", False)

    def _v_Sqrt(self, node: exp.Sqrt) -> Code:
        return self._math(node, "F.sqrt", [node.this], "double", True)

    def _v_Ln(self, node: exp.Ln) -> Code:
        return self._math(node, "F.ln", [node.this], "double", True)

    def _v_Log(self, node: exp.Log) -> Code:
        """LOG10(x) (which sqlglot reads as LOG(10, x)) and LOG(base, x)."""
        if node.expression is None:  # LOG(x): Hive's dialect reads it as LN, DuckDB's as LOG10
            return self._math(node, "F.log10", [node.this], "double", True)
        if _int_literal(node.this) == 10:
            return self._math(node, "F.log10", [node.expression], "double", True)
        return self._math(node, "F.log", [node.this, node.expression], "double", True)

    # ---------------------------------------------------------- predicates
    def predicate(self, node: exp.Expression) -> str:
        """Python truth value that holds exactly when ``node`` is SQL TRUE."""
        if isinstance(node, exp.Paren):
            return self.predicate(node.this)
        self._enter(node)
        try:
            return self._predicate(node)
        finally:
            self._depth -= 1

    def _predicate(self, node: exp.Expression) -> str:
        if isinstance(node, (exp.And, exp.Or)):  # a chain is one flat `and` / `or`
            op = " and " if isinstance(node, exp.And) else " or "
            operands = self._flat_operands(node, type(node), env_check=False)
            return "(" + op.join(self.predicate(n) for n in operands) + ")"
        if isinstance(node, exp.Not):
            inner = self.value(node.this)
            return f"(not {inner.code})" if not inner.nullable else f"({inner.code} is False)"
        if type(node) in _COMPARE:
            a, b = self._coerce_pair(self.value(node.left), self.value(node.right),
                                     node.left, node.right)
            op = _COMPARE[type(node)]
            return self._guarded_test([a, b], lambda x, y: f"{x} {op} {y}")
        if isinstance(node, exp.Between):
            x = self.value(node.this)
            lo, hi = self.value(node.args["low"]), self.value(node.args["high"])
            x, lo = self._coerce_pair(x, lo, node.this, node.args["low"])
            x, hi = self._coerce_pair(x, hi, node.this, node.args["high"])
            return self._guarded_test([x, lo, hi], lambda a, l, h: f"{l} <= {a} <= {h}")
        v = self.value(node)
        if v.type not in (None, "boolean"):
            raise SqlError(f"{node.sql(dialect='hive')} is {v.type.upper()}, a condition is needed",
                           self.sql, _offset(node))
        return f"({v.code} is True)" if v.nullable else v.code

    def _guarded_test(self, parts: list[Code], body) -> str:
        names, checks = self._bind(parts, "is not None")
        return "(" + " and ".join(checks + [body(*names)]) + ")"


# ------------------------------------------------------------------ helpers

def _offset(node: exp.Expression | None) -> int | None:
    """Character offset of a node's first identifier/literal token, if known."""
    if node is None:
        return None
    for n in node.walk():
        meta = getattr(n, "_meta", None) or {}
        if "start" in meta:
            return meta["start"]
    return None


def spelled(col: exp.Column) -> str:
    """A column's name as the user wrote it (qualification lower-cases it)."""
    meta = getattr(col.this, "_meta", None) or {}
    return meta.get("spelled", col.name)


def shown(node: exp.Expression) -> str:
    """An expression as a person would write it: columns without their table
    qualifier and quotes.

    >>> import sqlglot
    >>> shown(sqlglot.parse_one('SUM("uv"."adrevenue") + 1'))
    'SUM(adrevenue) + 1'
    """
    def strip(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column):
            return exp.column(exp.to_identifier(spelled(n), quoted=False))
        return n
    return node.copy().transform(strip).sql(dialect="hive")


def function_name(node: exp.Func) -> str:
    """A function's name as Hive spells the call (sqlglot's class names are its
    own: UNIX_TIMESTAMP is StrToUnix).

    >>> import sqlglot
    >>> function_name(sqlglot.parse_one("UNIX_TIMESTAMP(s)", read="hive"))
    'UNIX_TIMESTAMP'
    """
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    name = node.sql(dialect="hive").split("(", 1)[0].strip()
    return name if name.replace("_", "").isalnum() else node.sql_name()


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Func):
        return f"function {function_name(node)}()"
    return f"{node.key.upper()} expression ({node.sql(dialect='hive')[:60]})"


_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1


def number_literal(text: str) -> int | float:
    """The value of a numeric literal: an integer that fits BIGINT, else a DOUBLE
    (as Hive types ``99999999999999999999``); the text is not limited in length.

    >>> number_literal("42"), number_literal("1e400"), number_literal("9" * 20), number_literal("1.5")
    (42, inf, 1e+20, 1.5)
    """
    if text.isdigit() and len(text) <= 19 and int(text) <= _BIGINT_MAX:
        return int(text)
    return float(text)


def py_literal(value: object) -> str:
    """Python source for a constant: ``repr`` where it is valid source, else an
    expression that builds the value (``repr`` of a float infinity is ``inf``,
    a bare name; ``repr`` of a huge int raises).

    >>> [py_literal(v) for v in (1.5, float("inf"), float("-inf"), float("nan"), 7)]
    ['1.5', "float('inf')", "float('-inf')", "float('nan')", '7']
    >>> eval(py_literal(10 ** 5000)) == 10 ** 5000
    True
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({repr(value)!r})"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 4000:
        return hex(value)  # power-of-two bases have no length limit
    return repr(value)


def _int_literal(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    if isinstance(node, exp.Paren):
        return _int_literal(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        inner = _int_literal(node.this)
        return None if inner is None else -inner
    return None


def _date_literal(text: str, sql: str | None, node: exp.Expression) -> str:
    try:
        return _dt.date.fromisoformat(text.strip()[:10]).isoformat()
    except ValueError:
        raise SqlError(f"invalid date literal {text!r} (expected yyyy-MM-dd)", sql,
                       _offset(node)) from None


def _timestamp_literal(text: str, sql: str | None, node: exp.Expression) -> str:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise SqlError(f"invalid timestamp literal {text!r} (expected yyyy-MM-dd HH:mm:ss[.fff])",
                       sql, _offset(node)) from None


def _like_fast(pattern: str) -> tuple[str, str] | None:
    """LIKE patterns that reduce to a plain string test.

    >>> _like_fast('abc'), _like_fast('ab%'), _like_fast('%bc'), _like_fast('%b%'), _like_fast('a_c')
    (('eq', 'abc'), ('prefix', 'ab'), ('suffix', 'bc'), ('contains', 'b'), None)
    """
    if "_" in pattern or "\\" in pattern:
        return None
    inner = pattern.strip("%")
    if "%" in inner:
        return None
    lead, trail = pattern.startswith("%"), pattern.endswith("%") and len(pattern) > 1
    if not lead and not trail:
        return ("eq", inner)
    if lead and trail:
        return ("contains", inner)
    if trail:
        return ("prefix", inner)
    return ("suffix", inner)
