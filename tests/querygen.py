"""Seeded random queries over sqlmr's SQL grammar, each with the DuckDB query
that means the same under Hive's semantics.

``generate(seed, schema)`` returns a :class:`Case`: the sqlmr (Hive dialect)
SQL, the DuckDB SQL, how to compare the two results, and the settings to run it
with (reducers, broadcast threshold, split size).  Everything is derived from
the seed, so a failing seed is a complete reproduction::

    python tests/querygen.py 1234          # print case 1234 (generated schema)
    python tests/querygen.py 1234 amplab   # over the AMPLab tables
    python tests/querygen.py 1234 gen shapes   # a WITH / UNION / no-FROM case

Where Hive and DuckDB differ, the DuckDB side spells Hive's meaning:
``CONCAT`` is ``||`` (NULL when an argument is NULL); ``CAST(x AS INT)`` of a
DOUBLE truncates (``TRUNC``); ``/`` and ``%`` by zero are NULL (``NULLIF``);
``ROUND`` is HALF_UP on the decimal value; ``SUBSTR`` is Hive's (the
``hsubstr`` macros); a STRING compared with a number is read as a DOUBLE;
ascending order puts NULLs first and descending order last; a decimal
literal is a DOUBLE.  Hive's functions (REGEXP_*, SPLIT, LPAD, DATE_ADD,
FLOOR, SQRT, GREATEST, …) are spelt with their DuckDB equivalents, NULL
where Hive's answer is NULL (``SQRT`` of a negative number, ``GREATEST``
with a NULL argument), on patterns and values where the two agree exactly;
they come from a stream of their own (see :meth:`Gen.extra`), so a seed that
draws none is the query it was before they existed.  Every ORDER BY ends with every output column, so the
expected order is total and LIMIT takes the same rows from both engines.

Fixtures (``GEN_TABLES``) hold the values where engines go wrong: NULLs
(``\\N``), negative numbers, ``-0.0`` and ``0.0``, ``7`` and ``7.0``, empty
strings, duplicate keys, unparsable fields, dates, strings with ``%``/``_``,
a table with empty lines and an empty table.  Numerals are ones Hive's Java
parsers and DuckDB read alike, so the oracle is exact.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# ---------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Col:
    name: str
    type: str                      # int | double | string | date
    pool: tuple = ()               # literals worth comparing the column with
    numeric_text: bool = False     # a STRING holding numerals (CAST / compare with numbers)


@dataclass(frozen=True)
class Table:
    name: str
    cols: tuple[Col, ...]
    weight: float = 1.0            # how often single-table queries read it

    def col(self, name: str) -> Col:
        return next(c for c in self.cols if c.name == name)


@dataclass(frozen=True)
class Schema:
    name: str
    tables: tuple[Table, ...]
    # join edges: (table, column, table, column); the same table twice is a self join
    edges: tuple[tuple[str, str, str, str], ...]
    like_patterns: tuple[str, ...]
    third: tuple[tuple[str, str, str], ...] = ()   # (table, its column, column of a joined table)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


KEYS = ("a", "b", "c", "A", "ab", "a%", "_b", "", "k1", "k2", "k3", "k4", "k5", "x y")
INTS = (-100, -3, -1, 0, 1, 2, 3, 7, 10, 12, 100)
DOUBLES = ("7.0", "7", "-0.0", "0.0", "0", "2.5", "-1.25", "0.125", "100.5", "-7.0", "3.375", "1e1", "12")
WORDS = ("alpha", "Beta", "GAMMA", "", " pad ", "a b", "x%y", "u_v", "h\u00e9llo", "abc", "abcdef", "zz", "A")
NUMTEXT = ("7", "7.0", "-3", "2.5", "", "x", "-0", "12", "0.5", "1e1")
DATE_POOL = ("1999-12-31", "2000-01-01", "2000-02-29", "2000-06-15", "2000-12-31", "2001-01-01")

GEN = Schema(
    "gen",
    (
        Table("t1", (Col("k", "string", KEYS), Col("i", "int", INTS), Col("d", "double", (7.0, 0.0, -0.0, 2.5, -1.25, 100.5)),
                     Col("s", "string", WORDS), Col("dt", "date", DATE_POOL),
                     Col("n", "string", NUMTEXT, numeric_text=True)), 6),
        Table("t2", (Col("k2", "string", KEYS), Col("j", "int", INTS), Col("e", "double", (7.0, 0.0, 2.5, -7.0)),
                     Col("dt2", "date", DATE_POOL)), 2),
        Table("t3", (Col("code", "string", KEYS), Col("label", "string", ("one", "two", "")),
                     Col("w", "int", (1, 2, 3, -1))), 1),
        Table("t4", (Col("k4", "string", ("a", "b", "")), Col("x", "int", (1, 3)), Col("y", "double", (2.0, 4.0))), 0.4),
        Table("t5", (Col("k5", "string", KEYS), Col("z", "int", INTS)), 0.3),
    ),
    (("t1", "k", "t2", "k2"), ("t1", "i", "t2", "j"), ("t1", "d", "t2", "e"), ("t1", "i", "t2", "e"),
     ("t1", "d", "t2", "j"), ("t1", "k", "t1", "k"), ("t1", "i", "t1", "i"), ("t2", "k2", "t2", "k2"),
     ("t1", "k", "t3", "code"), ("t2", "k2", "t3", "code"), ("t1", "k", "t4", "k4"),
     ("t1", "i", "t4", "x"), ("t1", "k", "t5", "k5"), ("t3", "w", "t2", "j")),
    ("a%", "%a", "%b%", "_b%", "a_", "%", "", "x%y", "A%", "%_", "k_", "%e%l%", "7%", "-%", "%.%", "2000%"),
    (("t3", "code", "string"), ("t3", "w", "int"), ("t2", "j", "int"), ("t4", "k4", "string")),
)

# The real AMPLab /tiny/ data: rankings (1,200 rows) and uservisits (10,000 rows).
AMPLAB = Schema(
    "amplab",
    (
        Table("rk", (Col("pageURL", "string", ("nbizrgdziebsaecsecujfjcqtvnpcnxxwiopmddorcxnlijdizgoi", "x")),
                     Col("pageRank", "int", (0, 1, 10, 100, 187, 665, 1000)),
                     Col("avgDuration", "int", (1, 10, 16, 29, 50))), 1),
        Table("uv", (Col("sourceIP", "string", ("182.163.112.4", "146.97.78.95", "1")),
                     Col("destURL", "string", ("nbizrgdziebsaecsecujfjcqtvnpcnxxwiopmddorcxnlijdizgoi",)),
                     Col("visitDate", "date", ("1970-01-03", "1978-10-17", "1993-06-15", "2000-01-01", "2012-04-30")),
                     Col("adRevenue", "double", (0.332717, 0.5, 0.9109504, 0.0, 1.0)),
                     Col("userAgent", "string", ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.2)",)),
                     Col("countryCode", "string", ("BGR", "PRT", "USA", "DEU", "CHN", "XXX")),
                     Col("languageCode", "string", ("BGR-BG", "PRT-PT", "USA-EN")),
                     Col("searchWord", "string", ("seismoscopic", "hallmarks", "a")),
                     Col("duration", "int", (1, 3, 5, 10))), 2),
    ),
    (("rk", "pageURL", "uv", "destURL"), ("uv", "destURL", "rk", "pageURL")),
    ("a%", "%ing", "%a%", "_b%", "1%", "%.4", "Mozilla%", "%NT 5._)", "BGR%", "%-%", "19__-%"),
)

SCHEMAS = {"gen": GEN, "amplab": AMPLAB}


# ------------------------------------------------------------- expressions

@dataclass(frozen=True)
class E:
    """One expression in both spellings, with its (Hive) type."""

    h: str
    d: str
    t: str            # int | double | string | date | bool
    agg: bool = False  # contains an aggregate

    @property
    def numeric(self) -> bool:
        return self.t in ("int", "double")


def _num_type(*es: E) -> str:
    return "double" if any(e.t == "double" for e in es) else "int"


def lit_int(v: int) -> E:
    return E(f"({v})", f"({v})", "int") if v < 0 else E(str(v), str(v), "int")


def lit_double(text: str) -> E:
    neg = text.startswith("-")
    body = text.lstrip("-")
    h = f"(-{body})" if neg else body
    d = f"(-CAST({body} AS DOUBLE))" if neg else f"CAST({body} AS DOUBLE)"
    return E(h, d, "double")


def lit_str(v: str) -> E:
    assert "'" not in v and "\\" not in v
    return E(f"'{v}'", f"'{v}'", "string")


def lit_date(v: str, style: int = 0) -> E:
    h = (f"DATE '{v}'", f"Date('{v}')", f"CAST('{v}' AS DATE)")[style]
    return E(h, f"DATE '{v}'", "date")


def as_text(e: E) -> E:
    """A value as a string function's argument (Hive converts other types)."""
    if e.t == "string":
        return e
    return E(e.h, f"CAST({e.d} AS VARCHAR)", "string", e.agg)


def as_double_d(e: E) -> str:
    """DuckDB spelling of a STRING compared with a number: read as DOUBLE."""
    return f"TRY_CAST({e.d} AS DOUBLE)" if e.t == "string" else e.d


# ------------------------------------------------------------------ cases

@dataclass
class Case:
    seed: int
    schema: str
    sqlmr: str
    duck: str
    compare: str = "unordered"   # unordered | ordered | subset
    limit: int | None = None     # for subset: rows sqlmr must return
    settings: dict = field(default_factory=dict)
    tables: tuple[str, ...] = ()

    def describe(self) -> str:
        return (f"seed {self.seed} (schema {self.schema}, settings {self.settings}, compare {self.compare})\n"
                f"  sqlmr : {self.sqlmr}\n  duckdb: {self.duck}")


@dataclass
class Scope:
    """Columns a query block can read: (sql qualifier or '', Col)."""

    cols: list[tuple[str, Col]]

    def ref(self, q: str, c: Col) -> E:
        name = f"{q}.{c.name}" if q else c.name
        t = c.type
        return E(name, name, t)


NODE_BUDGET = 120   # expression nodes per query before the rest are leaves

EXTRA_P = 0.06      # chance that an expression becomes one of Hive's functions (Gen.extra)
SEMI_P = 0.08       # chance that a WHERE gets an IN / EXISTS subquery conjunct (Gen.semi)
WINDOW_P = 0.12     # chance that a scan's SELECT list gets a window function (Gen.window)
SETOP_P = 0.3       # chance that a union of two SELECTs is an INTERSECT or EXCEPT instead
RLIKE_PATTERNS = ("[aeiou]", "[0-9]", "a|b", "[%_]", "^[a-k]", "[A-Z]", " ", "l+", "^$", "e.a")
EXTRACTS = (("([a-z]+)", 1), ("([a-z])([a-z]*)", 2), ("[0-9]+", 0), ("([A-Za-z]+)[^a-z]*", 1))
REPLACES = (("[aeiou]", "#"), ("[0-9]+", "N"), ("a|b", ""), ("([a-z])([a-z])", "$2$1"), (" ", "_"))
SPLITS = (",", " ", "a", "[0-9]", "%", "[ _]", "l+")
DATE_FORMATS = (("yyyy-MM-dd", "%Y-%m-%d"), ("MM/dd/yyyy", "%m/%d/%Y"), ("yyyyMMdd", "%Y%m%d"),
                ("MMM d yyyy", "%b %-d %Y"), ("EEE", "%a"), ("D", "%-j"), ("yy", "%y"),
                ("EEEE MMMM", "%A %B"))


def _with_extras(kind: str):
    """Generate as before, then (on the extras' own stream) perhaps replace
    the result by one of Hive's functions of the same type."""
    def wrap(fn):
        def gen(self, scope, *args):
            out = fn(self, scope, *args)
            extra = self.extra(scope, kind if kind != "num" else out.t, args[-1])
            return out if extra is None else extra
        gen.__doc__ = fn.__doc__
        return gen
    return wrap


class Gen:
    """Random expressions and queries; all choices come from ``self.r``."""

    def __init__(self, seed: int, schema: Schema, stress: bool = False) -> None:
        self.seed = seed
        self.schema = schema
        # stress: many constants (long IN lists, LIKE patterns), many aggregates
        # and joins, so generated code binds many names of every kind
        self.stress = stress
        self._scope: Scope | None = None
        self.r = random.Random(seed * 7919 + 17)
        self.r_extra = random.Random(seed * 6151 + 29)  # Hive's functions (extra)
        self.r_semi = random.Random(seed * 4201 + 43)   # IN / EXISTS subqueries (semi)
        self.r_window = random.Random(seed * 3083 + 59)  # window functions (window)
        self.r_setop = random.Random(seed * 2411 + 67)   # INTERSECT / EXCEPT (union_block)
        self.nodes = 0
        self.ctes: list[tuple[str, list[Col]]] = []   # WITH names in scope (shapes only)

    # ------------------------------------------------------------ helpers
    def spend(self, depth: int) -> int:
        """One more expression node: past the query's budget every node is a
        leaf (branches multiply, so depth alone does not bound a query's size)."""
        self.nodes += 1
        return depth if self.nodes <= NODE_BUDGET else 0

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    @staticmethod
    def reads_column(e: E, scope: Scope) -> bool:
        """Whether ``e`` reads a column (a constant GROUP BY or ORDER BY item is a
        position in DuckDB)."""
        text = re.sub(r"'[^']*'", "''", e.h)
        return any(re.search(rf"(?<![\w.']){re.escape(f'{q}.' if q else '')}{re.escape(c.name)}\b", text)
                   for q, c in scope.cols)

    def cols_of(self, scope: Scope, types: tuple[str, ...]) -> list[tuple[str, Col]]:
        return [(q, c) for q, c in scope.cols if c.type in types]

    # ---------------------------------------------------------- literals
    def literal_for(self, col: Col | None, t: str) -> E:
        """A literal of type ``t``, often one from the column's pool."""
        r = self.r
        if t == "int":
            pool = [v for v in (col.pool if col else ()) if isinstance(v, int)] or list(INTS)
            return lit_int(self.pick(pool) if r.random() < 0.8 else r.randint(-5, 15))
        if t == "double":
            nums = [v for v in (col.pool if col else ()) if isinstance(v, (int, float))]
            if nums and r.random() < 0.6:
                return lit_double(repr(float(self.pick(nums))))
            return lit_double(self.pick(("2.5", "0.5", "7.0", "-1.25", "0.0", "-0.0", "3.375", "100.5", "0.125")))
        if t == "string":
            pool = [v for v in (col.pool if col else ()) if isinstance(v, str)] or list(WORDS)
            return lit_str(self.pick(pool))
        if t == "date":
            pool = [v for v in (col.pool if col else ()) if isinstance(v, str)] or list(DATE_POOL)
            return lit_date(self.pick(pool), self.pick((0, 0, 1, 2)))
        raise ValueError(t)

    # ------------------------------------------------------- expressions
    def expr(self, scope: Scope, t: str, depth: int) -> E:
        """A row-level expression of type ``t`` (``num`` = int or double)."""
        if t == "num":
            t = self.pick(("int", "double"))
        if t in ("int", "double"):
            return self.num(scope, t, depth)
        if t == "string":
            return self.text(scope, depth)
        if t == "date":
            return self.date(scope, depth)
        if t == "bool":
            return self.pred(scope, depth)
        raise ValueError(t)

    def column(self, scope: Scope, types: tuple[str, ...]) -> E | None:
        cs = self.cols_of(scope, types)
        if not cs:
            return None
        q, c = self.pick(cs)
        return scope.ref(q, c)

    @_with_extras("num")
    def num(self, scope: Scope, t: str, depth: int) -> E:
        depth = self.spend(depth)
        r = self.r
        col = self.column(scope, (t,))
        if depth <= 0 or r.random() < 0.35:
            if col is not None and r.random() < 0.8:
                return col
            return self.literal_for(None, t)
        k = r.randrange(15)

        def operand(d: int = depth - 1) -> E:
            return self.num(scope, self.pick(("int", "double")) if t == "double" else "int", d)

        if k <= 2:
            op = self.pick("+-*")
            # products of products overflow INT in DuckDB (Hive wraps): multiply leaves only
            a, b = (operand(0), operand(0)) if op == "*" else (operand(), operand())
            if t == "double" and a.t == b.t == "int":
                b = self.num(scope, "double", 0 if op == "*" else depth - 1)
            return E(f"({a.h} {op} {b.h})", f"({a.d} {op} {b.d})", _num_type(a, b))
        if k == 3 and t == "double":
            a, b = self.num(scope, self.pick(("int", "double")), depth - 1), self.num(scope, self.pick(("int", "double")), depth - 1)
            return E(f"({a.h} / {b.h})", f"({a.d} / NULLIF({b.d}, 0))", "double")
        if k == 4:
            a, b = operand(), operand()
            if t == "double" and a.t == b.t == "int":
                a = self.num(scope, "double", depth - 1)
            return E(f"({a.h} % {b.h})", f"({a.d} % NULLIF({b.d}, 0))", _num_type(a, b))
        if k == 5:
            a = self.num(scope, t, depth - 1)
            return E(f"ABS({a.h})", f"ABS({a.d})", a.t)
        if k == 6:
            a = self.num(scope, t, depth - 1)
            return E(f"(-{a.h})", f"(-{a.d})", a.t)
        if k == 7:
            if t == "int":
                a = self.num(scope, self.pick(("int", "double")), depth - 1)
                src = a
                if r.random() < 0.25:
                    nt = [(q, c) for q, c in scope.cols if c.numeric_text]
                    if nt:
                        q, c = self.pick(nt)
                        src = scope.ref(q, c)
                ty = self.pick(("INT", "INT", "BIGINT"))
                if src.t == "string":
                    # Hive's LazyInteger: sign, ASCII digits, a fraction dropped; no exponent
                    dty = "INTEGER" if ty == "INT" else "BIGINT"
                    d = (f"(CASE WHEN regexp_full_match(trim({src.d}), '[+-]?[0-9]+([.][0-9]*)?') "
                         f"THEN TRY_CAST(split_part(trim({src.d}), '.', 1) AS {dty}) END)")
                elif src.t == "double":
                    d = f"CAST(TRUNC({src.d}) AS BIGINT)"
                else:
                    d = f"CAST({src.d} AS BIGINT)"
                return E(f"CAST({src.h} AS {ty})", d, "int")
            a = self.num(scope, "int", depth - 1)
            if r.random() < 0.25:
                nt = [(q, c) for q, c in scope.cols if c.numeric_text]
                if nt:
                    q, c = self.pick(nt)
                    a = scope.ref(q, c)
            return E(f"CAST({a.h} AS DOUBLE)", f"TRY_CAST({a.d} AS DOUBLE)", "double")
        if k == 8:
            if t == "double":
                a = self.num(scope, "double", depth - 1)
                n = self.pick((0, 1, 2, None))
                if n is None:
                    return E(f"ROUND({a.h})", f"CAST(ROUND(CAST(CAST({a.d} AS VARCHAR) AS DECIMAL(38, 18)), 0) AS DOUBLE)", "double")
                return E(f"ROUND({a.h}, {n})",
                         f"CAST(ROUND(CAST(CAST({a.d} AS VARCHAR) AS DECIMAL(38, 18)), {n}) AS DOUBLE)", "double")
            s = self.text(scope, depth - 1)
            fn = self.pick(("LENGTH", "LENGTH", "LENGTH"))
            arg = s if r.random() < 0.8 else self.num(scope, "int", depth - 1)
            ta = as_text(arg)
            return E(f"{fn}({arg.h})", f"LENGTH({ta.d})", "int")
        if k == 9:
            parts = [self.num(scope, t, depth - 1) if i == 0 else operand() for i in range(r.randint(2, 3))]
            if r.random() < 0.15:
                parts.insert(0, E("CAST(NULL AS INT)", "CAST(NULL AS INTEGER)", "int"))
            return E(f"COALESCE({', '.join(p.h for p in parts)})", f"COALESCE({', '.join(p.d for p in parts)})",
                     _num_type(*parts))
        if k in (10, 11):
            return self.case(scope, t, depth, operand)
        if k == 12:
            p = self.pred(scope, depth - 1)
            a = self.num(scope, t, depth - 1)
            b = self.num(scope, "int" if t == "int" else self.pick(("int", "double")), depth - 1)
            return E(f"IF({p.h}, {a.h}, {b.h})", f"(CASE WHEN {p.d} THEN {a.d} ELSE {b.d} END)", _num_type(a, b))
        if k == 13 and t == "int":
            # simple CASE over an int column
            c = self.column(scope, ("int",))
            if c is not None:
                whens = [(self.literal_for(None, "int"), self.num(scope, "int", depth - 1)) for _ in range(r.randint(1, 3))]
                els = self.num(scope, "int", depth - 1)
                h = "CASE " + c.h + " " + " ".join(f"WHEN {w.h} THEN {v.h}" for w, v in whens) + f" ELSE {els.h} END"
                d = "CASE " + c.d + " " + " ".join(f"WHEN {w.d} THEN {v.d}" for w, v in whens) + f" ELSE {els.d} END"
                return E(h, d, "int")
        return col if col is not None else self.literal_for(None, t)

    def case(self, scope: Scope, t: str, depth: int, branch: Callable[[], E]) -> E:
        r = self.r
        whens = [(self.pred(scope, depth - 1), branch()) for _ in range(r.randint(1, 3))]
        els = branch() if r.random() < 0.8 else None
        parts = [v for _, v in whens] + ([els] if els else [])
        typ = _num_type(*parts) if t in ("int", "double") else t
        h = "CASE " + " ".join(f"WHEN {p.h} THEN {v.h}" for p, v in whens) + (f" ELSE {els.h}" if els else "") + " END"
        d = "CASE " + " ".join(f"WHEN {p.d} THEN {v.d}" for p, v in whens) + (f" ELSE {els.d}" if els else "") + " END"
        return E(h, d, typ)

    @_with_extras("string")
    def text(self, scope: Scope, depth: int) -> E:
        depth = self.spend(depth)
        r = self.r
        col = self.column(scope, ("string",))
        if depth <= 0 or r.random() < 0.35:
            if col is not None and r.random() < 0.85:
                return col
            return self.literal_for(None, "string")
        k = r.randrange(10)
        if k == 0:
            a = self.text(scope, depth - 1) if r.random() < 0.85 else self.expr(scope, self.pick(("int", "date")), depth - 1)
            fn = self.pick(("UPPER", "LOWER", "TRIM"))
            ta = as_text(a)
            return E(f"{fn}({a.h})", f"{fn}({ta.d})", "string")
        if k in (1, 2):
            a = self.text(scope, depth - 1) if r.random() < 0.9 else self.num(scope, "int", depth - 1)
            ta = as_text(a)
            start = self.pick((1, 1, 2, 3, 0, -1, -2, -3, -6, 5, 10))
            st = lit_int(start) if r.random() < 0.85 else self.num(scope, "int", 0)
            fn = self.pick(("SUBSTR", "SUBSTR", "SUBSTRING"))
            if r.random() < 0.3:
                return E(f"{fn}({a.h}, {st.h})", f"hsubstr({ta.d}, {st.d}, 2147483647)", "string")
            ln = lit_int(self.pick((1, 2, 3, 5, 0, -1))) if r.random() < 0.85 else (
                self.num(scope, "int", 0) if r.random() < 0.7 else E("CAST(NULL AS INT)", "CAST(NULL AS INTEGER)", "int"))
            return E(f"{fn}({a.h}, {st.h}, {ln.h})", f"hsubstr({ta.d}, {st.d}, {ln.d})", "string")
        if k == 3:
            parts = []
            for _ in range(r.randint(2, 3)):
                x = r.random()
                parts.append(self.text(scope, depth - 1) if x < 0.8 else self.expr(scope, self.pick(("int", "date")), depth - 1))
            d = "(" + " || ".join(as_text(p).d for p in parts) + ")"
            if r.random() < 0.15 and len(parts) == 2 and all(p.t == "string" for p in parts):
                return E(f"({parts[0].h} || {parts[1].h})", d, "string")
            return E(f"CONCAT({', '.join(p.h for p in parts)})", d, "string")
        if k == 4:
            a = self.expr(scope, self.pick(("int", "double", "date", "int")), depth - 1)
            ty = self.pick(("STRING", "STRING", "VARCHAR"))
            return E(f"CAST({a.h} AS {ty})", f"CAST({a.d} AS VARCHAR)", "string")
        if k == 5:
            parts = [self.text(scope, depth - 1) for _ in range(r.randint(2, 3))]
            if r.random() < 0.3:   # separator first; NULL parts skipped in both engines
                args = ", ".join(p.h for p in parts)
                return E(f"CONCAT_WS({args})", f"CONCAT_WS({', '.join(p.d for p in parts)})", "string")
            return E(f"COALESCE({', '.join(p.h for p in parts)})", f"COALESCE({', '.join(p.d for p in parts)})", "string")
        if k in (6, 7):
            return self.case(scope, "string", depth, lambda: self.text(scope, depth - 1))
        if k == 8:
            p = self.pred(scope, depth - 1)
            a, b = self.text(scope, depth - 1), self.text(scope, depth - 1)
            return E(f"IF({p.h}, {a.h}, {b.h})", f"(CASE WHEN {p.d} THEN {a.d} ELSE {b.d} END)", "string")
        return col if col is not None else self.literal_for(None, "string")

    @_with_extras("date")
    def date(self, scope: Scope, depth: int) -> E:
        depth = self.spend(depth)
        r = self.r
        col = self.column(scope, ("date",))
        if depth <= 0 or r.random() < 0.6:
            if col is not None and r.random() < 0.85:
                return col
            return self.literal_for(None, "date")
        k = r.randrange(3)
        if k == 0:
            a, b = self.date(scope, depth - 1), self.date(scope, depth - 1)
            return E(f"COALESCE({a.h}, {b.h})", f"COALESCE({a.d}, {b.d})", "date")
        if k == 1:
            return self.case(scope, "date", depth, lambda: self.date(scope, depth - 1))
        return col if col is not None else self.literal_for(None, "date")

    # ------------------------------------------------- Hive's functions
    def semi(self, scope: Scope) -> E | None:
        """Now and then (:data:`SEMI_P`), a WHERE conjunct ``x [NOT] IN
        (SELECT c FROM t …)``, ``[NOT] EXISTS (SELECT 1 FROM t s9 WHERE s9.c =
        q.x …)`` or ``x < (SELECT MAX(c) FROM t …)`` over a table of the
        schema, of the outer column's type; drawn from ``r_semi``, so the rest
        of the query is unchanged."""
        if self.r_semi.random() >= SEMI_P:
            return None
        return self._drawn_from(self.r_semi, self._semi, scope)

    def _semi(self, scope: Scope) -> E | None:
        r = self.r
        outer = [(q, c) for q, c in scope.cols if c.type in ("int", "string", "date", "double")]
        if not outer:
            return None
        q, c = self.pick(outer)
        inner = [(t, x) for t in self.schema.tables for x in t.cols
                 if x.type == c.type or {x.type, c.type} <= {"int", "double"}]
        if not inner:
            return None
        t, x = self.pick(inner)
        iscope = Scope([("s9", y) for y in t.cols])
        p = self.pred(iscope, 1) if r.random() < 0.5 else None
        ref = scope.ref(q, c)
        x_kind = r.random()
        if x_kind < 0.25:   # compared with a scalar aggregate of another table
            aggs = ("MIN", "MAX", "COUNT") + (("SUM", "AVG") if c.type in ("int", "double") else ())
            agg = self.pick(aggs)
            arg = "*" if agg == "COUNT" and r.random() < 0.5 else f"s9.{x.name}"
            if agg == "COUNT" and c.type not in ("int", "double"):
                return None
            op = self.pick(("=", "<>", "<", "<=", ">", ">="))
            conds_h = [p.h] if p else []
            conds_d = [p.d] if p else []
            ties = [(q2, c2, y) for q2, c2 in scope.cols if q2 for y in t.cols if y.type == c2.type]
            if ties and r.random() < 0.5:   # correlated: grouped by the tying column
                q2, c2, y = self.pick(ties)
                conds_h.insert(0, f"s9.{y.name} = {q2}.{c2.name}")
                conds_d.insert(0, f"s9.{y.name} = {q2}.{c2.name}")
            where_h = (" WHERE " + " AND ".join(conds_h)) if conds_h else ""
            where_d = (" WHERE " + " AND ".join(conds_d)) if conds_d else ""
            return E(f"({ref.h} {op} (SELECT {agg}({arg}) FROM {t.name} s9{where_h}))",
                     f"({ref.d} {op} (SELECT {agg}({arg}) FROM {t.name} s9{where_d}))", "bool")
        if q and x_kind < 0.6:   # correlated: an equality with the outer column
            neg = "NOT " if r.random() < 0.4 else ""
            more_h = f" AND {p.h}" if p else ""
            more_d = f" AND {p.d}" if p else ""
            return E(f"{neg}EXISTS (SELECT 1 FROM {t.name} s9 WHERE s9.{x.name} = {ref.h}{more_h})",
                     f"{neg}EXISTS (SELECT 1 FROM {t.name} s9 WHERE s9.{x.name} = {ref.d}{more_d})",
                     "bool")
        where_h = f" WHERE {p.h}" if p else ""
        where_d = f" WHERE {p.d}" if p else ""
        neg = "NOT " if r.random() < 0.35 else ""
        return E(f"{ref.h} {neg}IN (SELECT s9.{x.name} FROM {t.name} s9{where_h})",
                 f"{ref.d} {neg}IN (SELECT s9.{x.name} FROM {t.name} s9{where_d})", "bool")

    def window(self, scope: Scope) -> E | None:
        """Now and then (:data:`WINDOW_P`), a window function whose answer does
        not depend on how ties are broken: RANK, DENSE_RANK or an aggregate
        (its default frame holds the current row's peers), OVER a PARTITION
        BY and / or ORDER BY of columns, NULLs placed as Hive places them by
        default.  Drawn from ``r_window``: the rest of the query is unchanged."""
        if self.r_window.random() >= WINDOW_P:
            return None
        return self._drawn_from(self.r_window, self._window, scope)

    def _window(self, scope: Scope) -> E | None:
        r = self.r
        cols = [(q, c) for q, c in scope.cols if c.type in ("int", "double", "string", "date")]
        if not cols:
            return None
        over_h, over_d = [], []
        if r.random() < 0.7:
            q, c = self.pick(cols)
            ref = scope.ref(q, c)
            over_h.append(f"PARTITION BY {ref.h}")
            over_d.append(f"PARTITION BY {ref.d}")
        ordered = not over_h or r.random() < 0.6
        if ordered:
            q, c = self.pick(cols)
            ref = scope.ref(q, c)
            desc = r.random() < 0.4
            nulls = self.pick((None, None, "FIRST", "LAST"))
            dn = nulls or ("LAST" if desc else "FIRST")   # Hive's default placement
            over_h.append(f"ORDER BY {ref.h}{' DESC' if desc else ''}{f' NULLS {nulls}' if nulls else ''}")
            over_d.append(f"ORDER BY {ref.d}{' DESC' if desc else ' ASC'} NULLS {dn}")
        nums = [(q, c) for q, c in cols if c.type in ("int", "double")]
        kinds = (["RANK", "DENSE_RANK"] if ordered else []) + ["COUNT", "MIN", "MAX"] + (
            ["SUM", "AVG"] if nums else [])
        kind = self.pick(kinds)
        if kind in ("RANK", "DENSE_RANK"):
            call_h = call_d = f"{kind}()"
            t = "int"
        elif kind == "COUNT" and r.random() < 0.5:
            call_h = call_d = "COUNT(*)"
            t = "int"
        else:
            q, c = self.pick(nums if kind in ("SUM", "AVG") else cols)
            ref = scope.ref(q, c)
            call_h, call_d = f"{kind}({ref.h})", f"{kind}({ref.d})"
            t = {"COUNT": "int", "AVG": "double", "SUM": c.type}.get(kind, c.type)
        return E(f"{call_h} OVER ({' '.join(over_h)})", f"{call_d} OVER ({' '.join(over_d)})", t)

    def extra(self, scope: Scope, t: str, depth: int) -> E | None:
        """Now and then (:data:`EXTRA_P`), one of Hive's functions of type ``t``.
        It is drawn from ``r_extra`` and does not count against the node
        budget, so the main stream, and the rest of the query, is unchanged."""
        if depth <= 0 or self.r_extra.random() >= EXTRA_P:
            return None
        return self._drawn_from(self.r_extra, self._extra, scope, t, depth - 1)

    def _drawn_from(self, stream: random.Random, fn, *args):
        """``fn(*args)`` with every choice drawn from ``stream`` and its nodes
        not counted against the budget: the main stream, and the rest of the
        query, stay as they were."""
        saved = self.r, self.nodes
        self.r = stream
        try:
            return fn(*args)
        finally:
            self.r, self.nodes = saved

    def _extra(self, scope: Scope, t: str, depth: int) -> E:
        r = self.r
        if t == "int":
            k = r.randrange(6)
            if k == 0:
                a = self.num(scope, "double", depth)
                fn = self.pick(("FLOOR", "CEIL"))
                return E(f"{fn}({a.h})", f"CAST({fn}({a.d}) AS BIGINT)", "int")
            if k == 1:
                a = as_text(self.text(scope, depth))
                lit = self.pick(("a", "l", "", " ", "%", "b"))
                return E(f"INSTR({a.h}, '{lit}')", f"INSTR({a.d}, '{lit}')", "int")
            if k == 2:
                a = self.date(scope, depth)
                fn = self.pick(("YEAR", "MONTH", "DAY"))
                return E(f"{fn}({a.h})", f"{fn}({a.d})", "int")
            if k == 3:
                a, b = self.date(scope, depth), self.date(scope, depth)
                return E(f"DATEDIFF({a.h}, {b.h})", f"DATE_DIFF('day', {b.d}, {a.d})", "int")
            if k == 4:
                parts = [self.num(scope, "int", depth) for _ in range(r.randint(2, 3))]
                fn = self.pick(("GREATEST", "LEAST"))
                # Hive's is NULL when an argument is; DuckDB's skips NULLs
                nulls = " OR ".join(f"{p.d} IS NULL" for p in parts)
                return E(f"{fn}({', '.join(p.h for p in parts)})",
                         f"(CASE WHEN {nulls} THEN NULL ELSE {fn}({', '.join(p.d for p in parts)}) END)",
                         "int")
            a, b = self.num(scope, "int", depth), self.num(scope, "int", depth)
            return E(f"NVL({a.h}, {b.h})", f"COALESCE({a.d}, {b.d})", "int")
        if t == "double":
            a = self.num(scope, self.pick(("int", "double")), depth)
            k = r.randrange(4)
            if k == 0:
                n = self.pick((0, 1, 2, 3))
                return E(f"POWER({a.h}, {n})", f"POWER({a.d}, {n})", "double")
            # Hive: NULL where DuckDB gives NaN or -inf
            fn, test = (("SQRT", ">= 0"), ("LN", "> 0"), ("LOG10", "> 0"))[k - 1]
            return E(f"{fn}({a.h})", f"(CASE WHEN {a.d} {test} THEN {fn}({a.d}) END)", "double")
        if t == "string":
            k = r.randrange(7)
            a = as_text(self.text(scope, depth))
            if k == 0:
                pat, g = self.pick(EXTRACTS)
                return E(f"REGEXP_EXTRACT({a.h}, '{pat}', {g})", f"REGEXP_EXTRACT({a.d}, '{pat}', {g})",
                         "string")
            if k == 1:
                pat, rep = self.pick(REPLACES)
                drep = re.sub(r"\$(\d)", r"\\\1", rep)  # Java's $1 is RE2's \1
                return E(f"REGEXP_REPLACE({a.h}, '{pat}', '{rep}')",
                         f"REGEXP_REPLACE({a.d}, '{pat}', '{drep}', 'g')", "string")
            if k == 2:
                sep = self.pick(SPLITS)
                i = self.pick((0, 0, 1, 2, 3))
                return E(f"SPLIT({a.h}, '{sep}')[{i}]", f"STRING_SPLIT_REGEX({a.d}, '{sep}')[{i + 1}]",
                         "string")
            if k == 3:
                fn = self.pick(("LPAD", "RPAD"))
                n, fill = self.pick((0, 1, 3, 5, 8)), self.pick(("*", "ab", "0"))
                return E(f"{fn}({a.h}, {n}, '{fill}')", f"{fn}({a.d}, {n}, '{fill}')", "string")
            if k == 4:
                old, new = self.pick((("a", "A"), ("l", ""), (" ", "--"), ("%", "pct"), ("ab", "x")))
                return E(f"REPLACE({a.h}, '{old}', '{new}')", f"REPLACE({a.d}, '{old}', '{new}')",
                         "string")
            if k == 5:
                d = self.date(scope, depth)
                java, c = self.pick(DATE_FORMATS)
                return E(f"DATE_FORMAT({d.h}, '{java}')", f"STRFTIME({d.d}, '{c}')", "string")
            b = as_text(self.text(scope, depth))
            return E(f"NVL({a.h}, {b.h})", f"COALESCE({a.d}, {b.d})", "string")
        if t == "date":
            a = self.date(scope, depth)
            k = r.randrange(3)
            if k == 2:
                return E(f"TO_DATE({a.h})", a.d, "date")
            n = self.num(scope, "int", 0) if r.random() < 0.3 else lit_int(r.randint(-400, 400))
            fn, op = (("DATE_ADD", "+"), ("DATE_SUB", "-"))[k]
            # DuckDB adds only INTEGER days to a DATE (a COUNT(*) read from a CTE is BIGINT)
            return E(f"{fn}({a.h}, {n.h})", f"({a.d} {op} CAST({n.d} AS INTEGER))", "date")
        if t == "bool":
            a = as_text(self.text(scope, depth))
            pat = self.pick(RLIKE_PATTERNS)
            kw = self.pick(("RLIKE", "REGEXP"))
            if r.random() < 0.25:
                return E(f"(NOT {a.h} {kw} '{pat}')", f"(NOT REGEXP_MATCHES({a.d}, '{pat}'))", "bool")
            return E(f"({a.h} {kw} '{pat}')", f"REGEXP_MATCHES({a.d}, '{pat}')", "bool")
        raise ValueError(t)

    # ----------------------------------------------------------- predicates
    def operand_pair(self, scope: Scope, depth: int) -> tuple[E, E, Col | None]:
        """Two comparable operands; the first is usually a column."""
        r = self.r
        q_col = self.pick(scope.cols)
        q, c = q_col
        a = scope.ref(q, c) if r.random() < 0.7 else self.expr(scope, c.type, depth)
        if r.random() < 0.6:
            if c.numeric_text and r.random() < 0.5:
                b = self.literal_for(None, self.pick(("int", "double")))
            else:
                b = self.literal_for(c, a.t)
        else:
            b = self.expr(scope, "num" if a.numeric else a.t, depth)
        return a, b, c

    @_with_extras("bool")
    def pred(self, scope: Scope, depth: int) -> E:
        depth = self.spend(depth)
        r = self.r
        k = r.randrange(14) if depth > 0 else r.randrange(9)
        if k <= 2:
            a, b, _ = self.operand_pair(scope, max(depth - 1, 0))
            op = self.pick(("=", "<>", "<", "<=", ">", ">=", "!="))
            dop = "<>" if op == "!=" else op
            if (a.t == "string") != (b.t == "string"):
                return E(f"({a.h} {op} {b.h})", f"({as_double_d(a)} {dop} {as_double_d(b)})", "bool")
            return E(f"({a.h} {op} {b.h})", f"({a.d} {dop} {b.d})", "bool")
        if k == 3:
            a, lo, c = self.operand_pair(scope, max(depth - 1, 0))
            hi = self.literal_for(c, lo.t) if lo.t != "string" or a.t == "string" else self.literal_for(None, self.pick(("int", "double")))
            neg = "NOT " if r.random() < 0.2 else ""
            if a.t == "string" and lo.t != "string":
                ad = as_double_d(a)
            else:
                ad = a.d
            return E(f"({a.h} {neg}BETWEEN {lo.h} AND {hi.h})", f"({ad} {neg}BETWEEN {lo.d} AND {hi.d})", "bool")
        if k == 4:
            return self.in_list(scope, max(depth - 1, 0))
        if k == 5:
            a = self.column(scope, ("string",)) if r.random() < 0.8 else None
            if a is None or r.random() < 0.2:
                a = self.expr(scope, self.pick(("string", "int", "double", "date")), max(depth - 1, 0))
            pat = self.pick(self.schema.like_patterns)
            neg = "NOT " if r.random() < 0.25 else ""
            return E(f"({a.h} {neg}LIKE '{pat}')", f"({as_text(a).d} {neg}LIKE '{pat}')", "bool")
        if k == 6:
            a = self.column(scope, ("string", "int", "double", "date")) if r.random() < 0.7 else \
                self.expr(scope, self.pick(("string", "int", "double", "date")), max(depth - 1, 0))
            neg = "NOT " if r.random() < 0.5 else ""
            return E(f"({a.h} IS {neg}NULL)", f"({a.d} IS {neg}NULL)", "bool")
        if k in (7, 8):
            a, b, _ = self.operand_pair(scope, 0)
            op = self.pick(("=", "<", ">=", "<>"))
            if (a.t == "string") != (b.t == "string"):
                return E(f"({a.h} {op} {b.h})", f"({as_double_d(a)} {op} {as_double_d(b)})", "bool")
            return E(f"({a.h} {op} {b.h})", f"({a.d} {op} {b.d})", "bool")
        if k in (9, 10):
            a, b = self.pred(scope, depth - 1), self.pred(scope, depth - 1)
            op = self.pick(("AND", "OR"))
            return E(f"({a.h} {op} {b.h})", f"({a.d} {op} {b.d})", "bool")
        if k == 11:
            a = self.pred(scope, depth - 1)
            return E(f"(NOT {a.h})", f"(NOT {a.d})", "bool")
        if k == 12:
            a = self.pred(scope, depth - 1)
            v = self.pick(("TRUE", "FALSE"))
            op = self.pick(("AND", "OR"))
            return E(f"({a.h} {op} {v})", f"({a.d} {op} {v})", "bool")
        a = self.pred(scope, depth - 1)
        b = self.pred(scope, depth - 1)
        return E(f"({a.h} AND (NOT {b.h}))", f"({a.d} AND (NOT {b.d}))", "bool")

    def in_list(self, scope: Scope, depth: int, size: int | None = None) -> E:
        """``x [NOT] IN (…)`` with constants of the column's type, mixed numeric
        spellings, numeral strings for numbers, numbers for numeral strings, NULL."""
        r = self.r
        q, c = self.pick(scope.cols)
        a = scope.ref(q, c) if r.random() < 0.8 else self.expr(scope, c.type, depth)
        n = size or r.randint(1, 6)
        items_h, items_d = [], []
        numeric_subject = a.numeric or (c.numeric_text and a.t == "string" and r.random() < 0.6)
        for _ in range(n):
            x = r.random()
            if x < 0.1:
                items_h.append("NULL")
                items_d.append("NULL")
            elif numeric_subject:
                if x < 0.5:
                    v = self.pick([p for p in c.pool if isinstance(p, int)] or list(INTS)) if a.t == "int" else r.randint(-5, 15)
                    items_h.append(str(v))
                    items_d.append(str(v))
                elif x < 0.8 or a.t == "string":
                    v = self.pick((7.0, 2.5, -0.0, 0.0, 0.5, -1.25, 3.0, 12.0, 100.5))
                    items_h.append(repr(v))
                    items_d.append(f"CAST({repr(v)} AS DOUBLE)")
                else:  # a numeral string compared with a number is read as a DOUBLE
                    v = self.pick(("7", "2.5", "-3", "0", "12.0"))
                    items_h.append(f"'{v}'")
                    items_d.append(f"CAST('{v}' AS DOUBLE)")
            elif a.t == "date":
                v = self.pick(DATE_POOL + tuple(p for p in c.pool if isinstance(p, str)))
                if x < 0.6:
                    items_h.append(f"DATE '{v}'")
                else:
                    items_h.append(f"'{v}'")
                items_d.append(f"DATE '{v}'")
            else:
                e = self.literal_for(c if c.type == a.t else None, a.t)
                items_h.append(e.h)
                items_d.append(e.d)
        neg = "NOT " if r.random() < 0.25 else ""
        ad = f"TRY_CAST({a.d} AS DOUBLE)" if a.t == "string" and numeric_subject else a.d
        return E(f"({a.h} {neg}IN ({', '.join(items_h)}))", f"({ad} {neg}IN ({', '.join(items_d)}))", "bool")

    def order_expr(self, scope: Scope) -> E:
        """An ORDER BY expression that reads a column (a constant would be a position)."""
        q, c = self.pick(scope.cols)
        col = scope.ref(q, c)
        x = self.r.random()
        if c.type in ("int", "double") and x < 0.5:
            b = self.literal_for(None, self.pick(("int", "double")))
            op = self.pick("+-*")
            return E(f"({col.h} {op} {b.h})", f"({col.d} {op} {b.d})", _num_type(col, b))
        if c.type == "string" and x < 0.5:
            return E(f"UPPER({col.h})", f"UPPER({col.d})", "string")
        return col

    # ------------------------------------------------------------ aggregates
    def aggregate(self, scope: Scope) -> E:
        r = self.r
        k = r.randrange(10)
        if k == 0:
            return E("COUNT(*)", "COUNT(*)", "int", True)
        if k == 1:
            a = self.expr(scope, self.pick(("string", "int", "double", "date")), self.pick((0, 0, 1)))
            return E(f"COUNT({a.h})", f"COUNT({a.d})", "int", True)
        if k == 2:
            a = self.expr(scope, self.pick(("string", "int", "double", "date")), self.pick((0, 0, 1)))
            return E(f"COUNT(DISTINCT {a.h})", f"COUNT(DISTINCT {a.d})", "int", True)
        if k in (3, 4):
            a = self.num(scope, self.pick(("int", "double")), self.pick((0, 0, 1)))
            return E(f"SUM({a.h})", f"SUM({a.d})", a.t, True)
        if k == 5:
            a = self.num(scope, self.pick(("int", "double")), self.pick((0, 0, 1)))
            return E(f"AVG({a.h})", f"AVG({a.d})", "double", True)
        if k in (6, 7, 8):
            a = self.expr(scope, self.pick(("string", "int", "double", "date")), self.pick((0, 0, 1)))
            fn = self.pick(("MIN", "MAX"))
            return E(f"{fn}({a.h})", f"{fn}({a.d})", a.t, True)
        a, b = self.aggregate(scope), self.aggregate(scope)
        if a.numeric and b.numeric:
            op = self.pick(("+", "-", "*", "/"))
            if op == "/":
                return E(f"({a.h} / {b.h})", f"({a.d} / NULLIF({b.d}, 0))", "double", True)
            return E(f"({a.h} {op} {b.h})", f"({a.d} {op} {b.d})", _num_type(a, b), True)
        return a

    def agg_pred(self, aggs: list[E], keys: list[E], scope: Scope) -> E:
        r = self.r
        parts = []
        for _ in range(r.randint(1, 2)):
            x = r.random()
            if x < 0.7 or not keys:
                a = self.pick(aggs) if aggs and r.random() < 0.6 else self.aggregate(scope)
                if a.t == "string":
                    b = self.literal_for(None, "string")
                elif a.t == "date":
                    b = self.literal_for(None, "date")
                elif a.t == "int" and "COUNT" in a.h:
                    b = lit_int(self.pick((0, 1, 2, 3, 5, 10)))
                else:
                    b = self.literal_for(None, self.pick(("int", "double")))
                op = self.pick(("=", "<>", "<", "<=", ">", ">="))
                parts.append(E(f"({a.h} {op} {b.h})", f"({a.d} {op} {b.d})", "bool", True))
            else:
                kk = self.pick(keys)
                if kk.t == "bool":
                    parts.append(kk)
                    continue
                if kk.t == "string":
                    b = self.literal_for(None, "string")
                    parts.append(E(f"({kk.h} <> {b.h})", f"({kk.d} <> {b.d})", "bool"))
                else:
                    parts.append(E(f"({kk.h} IS NOT NULL)", f"({kk.d} IS NOT NULL)", "bool"))
        if len(parts) == 1:
            return parts[0]
        op = self.pick(("AND", "OR"))
        return E(f"({parts[0].h} {op} {parts[1].h})", f"({parts[0].d} {op} {parts[1].d})", "bool", True)

    # -------------------------------------------------------------- FROM
    def relation(self, allow_join: bool = True, allow_derived: bool = True) -> tuple[str, str, Scope, list[str]]:
        """(sqlmr FROM text, DuckDB FROM text, scope, tables read)."""
        r = self.r
        if self.ctes and r.random() < 0.5:
            return self.cte_relation()
        x = r.random()
        if self.stress and allow_join and x < 0.7 and self.schema.edges:
            return self.join()
        if allow_join and x < 0.3 and self.schema.edges:
            return self.join()
        if allow_derived and x < 0.42:
            return self.derived()
        tables = list(self.schema.tables)
        t = r.choices(tables, weights=[tb.weight for tb in tables])[0]
        if r.random() < 0.3:
            alias = self.pick(("t", "x", "q"))
            return f"{t.name} {alias}", f"{t.name} {alias}", Scope([(alias, c) for c in t.cols]), [t.name]
        qual = "" if r.random() < 0.8 else t.name
        return t.name, t.name, Scope([(qual, c) for c in t.cols]), [t.name]

    def join(self) -> tuple[str, str, Scope, list[str]]:
        r = self.r
        ta, ca, tb, cb = self.pick(self.schema.edges)
        A, B = self.schema.table(ta), self.schema.table(tb)
        scope = Scope([("a", c) for c in A.cols] + [("b", c) for c in B.cols])
        on = [f"a.{ca} = b.{cb}"]
        # a second key or a key expression, now and then
        if r.random() < 0.1 and ca == cb and ta == tb:
            other = self.pick([c for c in A.cols if c.name != ca])
            on.append(f"a.{other.name} = b.{other.name}")
        elif r.random() < 0.08 and A.col(ca).type in ("int", "double") and B.col(cb).type in ("int", "double"):
            on[0] = f"a.{ca} = b.{cb} * 1.0"
        tables = [ta, tb]
        kind = self.pick(("JOIN", "JOIN", "INNER JOIN", ",", "LEFT JOIN", "LEFT OUTER JOIN", "LEFT JOIN", "RIGHT JOIN"))
        extra_h: list[str] = []
        extra_d: list[str] = []
        if kind.startswith("LEFT") and r.random() < 0.3:
            # a condition on the right side inside ON keeps unmatched left rows
            bscope = Scope([("b", c) for c in B.cols])
            p = self.pred(bscope, 0)
            for _ in range(20):
                if self.reads_column(p, bscope):
                    break
                p = self.pred(bscope, 0)
            else:
                q, c = self.pick(bscope.cols)
                p = E(f"({q}.{c.name} IS NOT NULL)", f"({q}.{c.name} IS NOT NULL)", "bool")
            extra_h.append(p.h)
            extra_d.append(p.d)
        on_d = [o.replace("* 1.0", "* CAST(1.0 AS DOUBLE)") for o in on]
        if kind == ",":
            h = f"{ta} a, {tb} b"
            d = f"{ta} a, {tb} b"
            where = " AND ".join(on)
            self._join_where = (where, " AND ".join(on_d))
        else:
            h = f"{ta} a {kind} {tb} b ON " + " AND ".join(on + extra_h)
            d = f"{ta} a {kind} {tb} b ON " + " AND ".join(on_d + extra_d)
            self._join_where = None
        if kind not in (",", "RIGHT JOIN") and self.schema.third and r.random() < 0.3:
            tc, cc, typ = self.pick(self.schema.third)
            C = self.schema.table(tc)
            partners = [(q, c) for q, c in scope.cols if c.type == typ]
            if partners:
                q, c = self.pick(partners)
                kind3 = self.pick(("JOIN", "LEFT JOIN"))
                h += f" {kind3} {tc} c ON {q}.{c.name} = c.{cc}"
                d += f" {kind3} {tc} c ON {q}.{c.name} = c.{cc}"
                scope = Scope(scope.cols + [("c", x) for x in C.cols])
                tables.append(tc)
        return h, d, scope, tables

    def derived(self) -> tuple[str, str, Scope, list[str]]:
        r = self.r
        while True:
            inner = Gen(self.r.randrange(1 << 30), self.schema)
            h, d, cols, tables, _ = inner.select_block(allow_derived=False, aliases=True,
                                                       allow_join=r.random() < 0.3, top=False)
            # a boolean output is selected but not read again (no BOOLEAN columns elsewhere)
            readable = [c for c in cols if c.type != "bool"]
            if readable:
                break
        alias = self.pick(("v", "dt0", "sub"))
        scope = Scope([(alias if r.random() < 0.5 else "", c) for c in readable])
        return f"({h}) {alias}", f"({d}) {alias}", scope, tables

    # ------------------------------------------------------------ queries
    def select_block(self, allow_derived: bool = True, aliases: bool = False, allow_join: bool = True,
                     top: bool = True, rel: tuple | None = None) -> tuple[str, str, list[Col], list[str], tuple]:
        """One SELECT: (sqlmr SQL, DuckDB SQL, output columns, tables, (compare, limit));
        ``rel``: the FROM clause to use (sqlmr text, DuckDB text, scope, tables)."""
        r = self.r
        self._join_where = None
        from_h, from_d, scope, tables = rel if rel is not None else self.relation(allow_join, allow_derived)
        join_where = self._join_where
        self._scope = scope
        kind = r.random()
        where = self.pred(scope, self.pick((1, 2, 2, 3))) if r.random() < 0.6 else None
        if self.stress and top:
            kind = 1.0   # an aggregate
            ors = [self.in_list(scope, 0, size=r.randint(8, 30)) for _ in range(r.randint(4, 10))]
            ors += [self.pred(scope, 1) for _ in range(r.randint(2, 5))]
            where = E("(" + " OR ".join(p.h for p in ors) + ")", "(" + " OR ".join(p.d for p in ors) + ")",
                      "bool")
        wh, wd = [], []
        if join_where:
            wh.append(join_where[0])
            wd.append(join_where[1])
        if where:
            wh.append(where.h)
            wd.append(where.d)
        semi = self.semi(scope) if not self.stress else None
        if semi is not None:
            wh.append(semi.h)
            wd.append(semi.d)
        where_h = (" WHERE " + " AND ".join(wh)) if wh else ""
        where_d = (" WHERE " + " AND ".join(wd)) if wd else ""
        if kind < 0.45:
            return self._scan(scope, from_h, from_d, where_h, where_d, aliases, tables, top)
        return self._aggregate(scope, from_h, from_d, where_h, where_d, aliases, tables, top)

    def _items(self, exprs: list[E], aliases: bool) -> tuple[list[str], list[str], list[str | None]]:
        hs, ds, names = [], [], []
        for i, e in enumerate(exprs):
            if aliases or self.chance(0.3):
                # not the name of a column in scope: ORDER BY (c0 + 1) reads an
                # output alias in Hive and the input column in DuckDB
                taken = {c.name.lower() for _, c in self._scope.cols} if self._scope else set()
                name = f"c{i}" if f"c{i}" not in taken else f"o{i}"
                hs.append(f"{e.h} AS {name}")
                ds.append(f"{e.d} AS {name}")
                names.append(name)
            else:
                hs.append(e.h)
                ds.append(e.d)
                names.append(None)
        return hs, ds, names

    def _order(self, exprs: list[E], names: list[str | None], extra: list[E]) -> tuple[str, str]:
        """ORDER BY some outputs (by alias, position or expression) or ``extra``
        expressions, then every output position so the order is total."""
        r = self.r
        hs, ds = [], []
        n = len(exprs)
        used = set()
        for _ in range(r.randint(1, min(3, n + len(extra)))):
            x = r.random()
            if extra and x < 0.2:
                e = self.pick(extra)
                ref_h, ref_d = e.h, e.d
            else:
                free = [j for j in range(n) if j not in used]
                if not free:
                    break
                i = self.pick(free)
                used.add(i)
                if names[i] and r.random() < 0.6:
                    ref_h = ref_d = names[i]
                elif r.random() < 0.6 or not self.reads_column(exprs[i], self._scope):
                    ref_h = ref_d = str(i + 1)
                else:
                    ref_h, ref_d = exprs[i].h, exprs[i].d
            desc = r.random() < 0.4
            nulls = self.pick((None, None, "FIRST", "LAST"))
            h = ref_h + (" DESC" if desc else "") + (f" NULLS {nulls}" if nulls else "")
            dn = nulls or ("LAST" if desc else "FIRST")
            d = ref_d + (" DESC" if desc else " ASC") + f" NULLS {dn}"
            hs.append(h)
            ds.append(d)
        for i in range(n):
            if i in used:
                continue
            desc = r.random() < 0.3
            hs.append(f"{i + 1}" + (" DESC" if desc else ""))
            ds.append(f"{i + 1}" + (" DESC NULLS LAST" if desc else " ASC NULLS FIRST"))
        return " ORDER BY " + ", ".join(hs), " ORDER BY " + ", ".join(ds)

    def _tail(self, exprs, names, extra, top: bool, allow_order: bool = True) -> tuple[str, str, tuple]:
        r = self.r
        x = r.random()
        if allow_order and x < 0.45:
            oh, od = self._order(exprs, names, extra)
            if r.random() < 0.6:
                lim = self.pick((0, 1, 2, 3, 5, 7, 10, 20))
                return f"{oh} LIMIT {lim}", f"{od} LIMIT {lim}", ("ordered", lim)
            return oh, od, ("ordered", None)
        if top and x < 0.55:
            lim = self.pick((1, 3, 10))
            return f" LIMIT {lim}", "", ("subset", lim)
        return "", "", ("unordered", None)

    def _scan(self, scope, from_h, from_d, where_h, where_d, aliases, tables, top):
        r = self.r
        if not aliases and r.random() < 0.08 and len(tables) == 1:
            cols = [c for _, c in scope.cols]
            exprs = [scope.ref(q, c) for q, c in scope.cols]
            tail_h, tail_d, cmp = self._tail(exprs, [None] * len(exprs), [], top, allow_order=False)
            return (f"SELECT *{' FROM ' + from_h}{where_h}{tail_h}", f"SELECT *{' FROM ' + from_d}{where_d}{tail_d}",
                    cols, tables, cmp)
        distinct = r.random() < 0.2
        exprs = [self.expr(scope, self.pick(("string", "int", "double", "date", "string", "int", "bool")),
                           self.pick((0, 0, 1, 2))) for _ in range(r.randint(1, 4))]
        win = None if distinct else self.window(scope)
        if win is not None:
            exprs.append(win)
        hs, ds, names = self._items(exprs, aliases)
        extra = [] if distinct else [self.order_expr(scope) for _ in range(2)]
        tail_h, tail_d, cmp = self._tail(exprs, names, extra, top) if (top or r.random() < 0.3) else ("", "", ("unordered", None))
        if not top and cmp[0] == "ordered" and cmp[1] is None:
            tail_h = tail_d = ""   # an ORDER BY without LIMIT inside FROM means nothing
        if not top and cmp[0] == "subset":
            tail_h = tail_d = ""
        dh = "DISTINCT " if distinct else ""
        h = f"SELECT {dh}{', '.join(hs)} FROM {from_h}{where_h}{tail_h}"
        d = f"SELECT {dh}{', '.join(ds)} FROM {from_d}{where_d}{tail_d}"
        cols = [Col(names[i] or f"c{i}", e.t) for i, e in enumerate(exprs)]
        return h, d, cols, tables, cmp

    def _aggregate(self, scope, from_h, from_d, where_h, where_d, aliases, tables, top):
        r = self.r
        nkeys = self.pick((0, 1, 1, 1, 2, 2, 3))
        keys = []
        for _ in range(nkeys):
            if r.random() < 0.65:
                q, c = self.pick(scope.cols)
                keys.append(scope.ref(q, c))
            else:
                e = self.expr(scope, self.pick(("string", "int", "double", "date")), 1)
                if self.reads_column(e, scope):
                    keys.append(e)
        # dedupe by text
        seen, uniq = set(), []
        for k in keys:
            if k.h not in seen:
                seen.add(k.h)
                uniq.append(k)
        keys = uniq
        outs: list[E] = []
        for k in keys:
            if r.random() < 0.8:
                if k.t == "string" and r.random() < 0.15:
                    outs.append(E(f"UPPER({k.h})", f"UPPER({k.d})", "string"))
                elif k.numeric and r.random() < 0.15:
                    outs.append(E(f"({k.h} + 1)", f"({k.d} + 1)", k.t))
                else:
                    outs.append(k)
        aggs = [self.aggregate(scope) for _ in range(r.randint(12, 30) if self.stress and top else r.randint(1, 4))]
        outs.extend(aggs)
        r.shuffle(outs)
        hs, ds, names = self._items(outs, aliases)
        gh = gd = ""
        if keys:
            gh = " GROUP BY " + ", ".join(k.h for k in keys)
            gd = " GROUP BY " + ", ".join(k.d for k in keys)
        hv_h = hv_d = ""
        if r.random() < 0.3:
            p = self.agg_pred(aggs, keys, scope)
            hv_h, hv_d = f" HAVING {p.h}", f" HAVING {p.d}"
        tail_h, tail_d, cmp = self._tail(outs, names, [], top) if keys else ("", "", ("unordered", None))
        if not top and cmp[0] != "ordered" or (not top and cmp[1] is None):
            tail_h = tail_d = ""
            cmp = ("unordered", None)
        h = f"SELECT {', '.join(hs)} FROM {from_h}{where_h}{gh}{hv_h}{tail_h}"
        d = f"SELECT {', '.join(ds)} FROM {from_d}{where_d}{gd}{hv_d}{tail_d}"
        cols = [Col(names[i] or f"c{i}", e.t) for i, e in enumerate(outs)]
        return h, d, cols, tables, cmp


    # --------------------------------------- WITH, UNION, SELECT without FROM
    def shape_block(self) -> tuple[str, str, list[Col], list[str], tuple]:
        """A statement of one of the shapes: WITH, UNION [ALL] or no FROM."""
        x = self.r.random()
        if x < 0.35:
            return self.with_block()
        if x < 0.8:
            return self.union_block(top=True)
        return self.no_from_block(top=True)

    def no_from_block(self, top: bool) -> tuple[str, str, list[Col], list[str], tuple]:
        """``SELECT <constant expressions> [WHERE <constant predicate>]``,
        sometimes aggregated (over its one row, or none)."""
        r = self.r
        scope = ConstScope(self)
        self._scope = scope
        if r.random() < 0.25:
            exprs = [self.aggregate(scope) for _ in range(r.randint(1, 3))]
        else:
            exprs = [self.expr(scope, self.pick(("string", "int", "double", "date", "bool")),
                               self.pick((0, 1, 1, 2))) for _ in range(r.randint(1, 4))]
        hs, ds, names = self._items(exprs, not top or r.random() < 0.3)
        wh = wd = ""
        if r.random() < 0.3:
            p = self.pred(scope, 1)
            wh, wd = f" WHERE {p.h}", f" WHERE {p.d}"
        cols = [Col(names[i] or f"c{i}", e.t) for i, e in enumerate(exprs)]
        return (f"SELECT {', '.join(hs)}{wh}", f"SELECT {', '.join(ds)}{wd}", cols, [],
                ("unordered", None))

    def typed_expr(self, scope: Scope, t: str, agg: bool) -> E:
        """A row expression of type family ``t`` (an aggregate when ``agg``)."""
        r = self.r
        if isinstance(scope, ConstScope) and r.random() < 0.15:
            return null_of(t)
        if not agg:
            return self.expr(scope, t, self.pick((0, 0, 1, 2)))
        k = r.randrange(4)
        if t == "int":
            if k == 0:
                return E("COUNT(*)", "COUNT(*)", "int", True)
            a = self.expr(scope, self.pick(("int", "string", "double")), 0)
            if k == 1:
                return E(f"COUNT(DISTINCT {a.h})", f"COUNT(DISTINCT {a.d})", "int", True)
            a = self.num(scope, "int", self.pick((0, 1)))
            return E(f"SUM({a.h})", f"SUM({a.d})", "int", True) if k == 2 else \
                E(f"MAX({a.h})", f"MAX({a.d})", "int", True)
        if t == "double":
            a = self.num(scope, self.pick(("double", "int")) if k == 0 else "double", self.pick((0, 1)))
            fn = ("AVG", "SUM", "MIN", "MAX")[k]
            return E(f"{fn}({a.h})", f"{fn}({a.d})", "double" if fn == "AVG" else a.t, True)
        a = self.expr(scope, t, self.pick((0, 1)))
        fn = self.pick(("MIN", "MAX"))
        return E(f"{fn}({a.h})", f"{fn}({a.d})", a.t, True)

    UNION_KINDS = (("int",), ("double",), ("string",), ("date",), ("int", "double"),
                   ("int", "double"), ("string", "int"), ("string", "date"))

    def union_branch(self, types: list[str], first: bool) -> tuple[str, str, list[E], list[str]]:
        """One SELECT of a union with columns of ``types``: a scan, an
        aggregate, a SELECT without FROM or a parenthesised ordered LIMIT."""
        r = self.r
        x = r.random()
        if x < 0.2:
            scope: Scope = ConstScope(self)
            from_h = from_d = ""
            tables: list[str] = []
            join_where = None
        else:
            self._join_where = None
            fh, fd, scope, tables = self.relation(r.random() < 0.3, r.random() < 0.3)
            join_where = self._join_where
            from_h, from_d = f" FROM {fh}", f" FROM {fd}"
        self._scope = scope
        agg = 0.55 <= x < 0.85 and not isinstance(scope, ConstScope)
        keys: list[E] = []
        if agg:
            for _ in range(self.pick((0, 1, 1, 2))):
                q, c = self.pick(scope.cols)
                if all(k.h != scope.ref(q, c).h for k in keys):
                    keys.append(scope.ref(q, c))
        exprs = []
        for t in types:
            same = [k for k in keys if k.t == t]
            exprs.append(self.pick(same) if same and r.random() < 0.4 else self.typed_expr(scope, t, agg))
        hs = [f"{e.h} AS u{i}" if first else e.h for i, e in enumerate(exprs)]
        ds = [f"{e.d} AS u{i}" if first else e.d for i, e in enumerate(exprs)]
        wh, wd = ([join_where[0]], [join_where[1]]) if join_where else ([], [])
        if r.random() < 0.4:
            p = self.pred(scope, self.pick((0, 1, 2)))
            wh.append(p.h)
            wd.append(p.d)
        h = f"SELECT {', '.join(hs)}{from_h}" + (" WHERE " + " AND ".join(wh) if wh else "")
        d = f"SELECT {', '.join(ds)}{from_d}" + (" WHERE " + " AND ".join(wd) if wd else "")
        if keys:
            h += " GROUP BY " + ", ".join(k.h for k in keys)
            d += " GROUP BY " + ", ".join(k.d for k in keys)
        if x >= 0.85 and not isinstance(scope, ConstScope):
            # the branch's own ORDER BY (every column: a total order) and LIMIT
            order = [(f"{i + 1}", r.random() < 0.4) for i in range(len(exprs))]
            lim = self.pick((0, 1, 2, 5))
            h = f"({h} ORDER BY " + ", ".join(p + (" DESC" if dsc else "") for p, dsc in order) + \
                f" LIMIT {lim})"
            d = f"({d} ORDER BY " + ", ".join(p + (" DESC NULLS LAST" if dsc else " ASC NULLS FIRST")
                                             for p, dsc in order) + f" LIMIT {lim})"
        return h, d, exprs, tables

    def union_block(self, top: bool) -> tuple[str, str, list[Col], list[str], tuple]:
        """Two to four SELECTs joined by UNION ALL (now and then UNION; two of
        them now and then by INTERSECT or EXCEPT), with
        columns of one type family each; at the top, ordered and limited,
        or read by an outer query."""
        r = self.r
        kinds = [self.pick(self.UNION_KINDS) for _ in range(r.randint(1, 3))]
        hs, ds, types, tables = [], [], [], []
        for i in range(self.pick((2, 2, 2, 3, 4))):
            h, d, exprs, ts = self.union_branch([self.pick(k) for k in kinds], i == 0)
            if i:
                op = " UNION " if r.random() < 0.15 else " UNION ALL "
                hs.append(op)
                ds.append(op)
            hs.append(h)
            ds.append(d)
            types.append([e.t for e in exprs])
            tables.extend(ts)
        if len(types) == 2 and self.r_setop.random() < SETOP_P:
            # of two SELECTs only: INTERSECT binds tighter than UNION in DuckDB
            hs[1] = ds[1] = self.r_setop.choice((" INTERSECT ", " EXCEPT ", " INTERSECT DISTINCT "))
        cols = [Col(f"u{i}", union_type([ts[i] for ts in types])) for i in range(len(kinds))]
        h, d = "".join(hs), "".join(ds)
        if not top:
            return h, d, cols, tables, ("unordered", None)
        x = r.random()
        if x < 0.35:
            parts_h, parts_d = [], []
            for i in r.sample(range(len(cols)), len(cols)):
                ref = f"u{i}" if r.random() < 0.5 else str(i + 1)
                desc = r.random() < 0.4
                parts_h.append(ref + (" DESC" if desc else ""))
                parts_d.append(ref + (" DESC NULLS LAST" if desc else " ASC NULLS FIRST"))
            h += " ORDER BY " + ", ".join(parts_h)
            d += " ORDER BY " + ", ".join(parts_d)
            if r.random() < 0.6:
                lim = self.pick((0, 1, 3, 10))
                h, d = f"{h} LIMIT {lim}", f"{d} LIMIT {lim}"
            return h, d, cols, tables, ("ordered", None)
        if x < 0.55:
            alias = self.pick(("uq", "x"))
            scope = Scope([(alias if r.random() < 0.5 else "", c) for c in cols])
            return self.select_block(rel=(f"({h}) {alias}", f"({d}) {alias}", scope, tables))
        keys = [(c, o) for c in cols for o in self.schema.tables[0].cols
                if c.type == o.type and c.type in ("string", "int")]
        if x < 0.7 and keys:
            # the union joined with a table (either side, shuffled or broadcast)
            c, o = self.pick(keys)
            t = self.schema.tables[0].name
            kind = self.pick(("JOIN", "LEFT JOIN", "JOIN"))
            text = (f"({h}) x {kind} {t} b ON x.{c.name} = b.{o.name}" if r.random() < 0.6 else
                    f"{t} b {kind} ({h}) x ON b.{o.name} = x.{c.name}")
            text_d = text.replace(f"({h})", f"({d})")
            scope = Scope([("x", c) for c in cols] + [("b", c) for c in self.schema.tables[0].cols])
            return self.select_block(rel=(text, text_d, scope, tables + [t]))
        return h, d, cols, tables, ("unordered", None)

    def with_block(self) -> tuple[str, str, list[Col], list[str], tuple]:
        """``WITH w0 [(names)] AS (…)[, w1 AS (… w0 …)] <query over them>``: a
        CTE read once, twice (joined with itself), or by a union's branches."""
        r = self.r
        defs_h, defs_d = [], []
        for j in range(self.pick((1, 1, 2))):
            name = f"w{j}"
            cols: list[Col] = []
            while not any(c.type != "bool" for c in cols):   # a column to read again
                x = r.random()
                if x < 0.2:
                    h, d, cols, _, _ = self.union_block(top=False)
                elif x < 0.3:
                    h, d, cols, _, _ = self.no_from_block(top=False)
                elif self.ctes and x < 0.65:
                    h, d, cols, _, _ = self.select_block(aliases=True, top=False,
                                                         rel=self.cte_relation())
                else:
                    inner = Gen(r.randrange(1 << 30), self.schema)
                    h, d, cols, _, _ = inner.select_block(allow_derived=False, aliases=True,
                                                          allow_join=r.random() < 0.3, top=False)
            head = name
            if r.random() < 0.25:
                cols = [Col(f"a{i}", c.type, c.pool, c.numeric_text) for i, c in enumerate(cols)]
                head = f"{name}({', '.join(c.name for c in cols)})"
            defs_h.append(f"{head} AS ({h})")
            defs_d.append(f"{head} AS ({d})")
            self.ctes.append((name, [c for c in cols if c.type != "bool"]))
        x = r.random()
        if x < 0.3:
            body = self.cte_self_join()
        elif x < 0.5:
            body = self.union_block(top=True)
        else:
            body = self.select_block(rel=self.cte_relation())
        h, d, cols, tables, cmp = body
        return ("WITH " + ", ".join(defs_h) + " " + h, "WITH " + ", ".join(defs_d) + " " + d,
                cols, tables, cmp)

    def cte_relation(self) -> tuple[str, str, Scope, list[str]]:
        """A CTE in scope as the FROM clause."""
        name, readable = self.pick(self.ctes)
        if self.r.random() < 0.4:
            alias = self.pick(("p", "q2"))
            return f"{name} {alias}", f"{name} {alias}", Scope([(alias, c) for c in readable]), [name]
        return name, name, Scope([("", c) for c in readable]), [name]

    def cte_self_join(self) -> tuple[str, str, list[Col], list[str], tuple]:
        """A CTE read twice: joined with itself on a column."""
        name, cols = self.pick(self.ctes)
        keys = [c for c in cols if c.type in ("string", "int", "date")]
        if not keys:
            return self.select_block(rel=self.cte_relation())
        k = self.pick(keys)
        kind = self.pick(("JOIN", "JOIN", "LEFT JOIN"))
        scope = Scope([("a", c) for c in cols] + [("b", c) for c in cols])
        text = f"{name} a {kind} {name} b ON a.{k.name} = b.{k.name}"
        return self.select_block(rel=(text, text, scope, [name, name]))


class ConstScope(Scope):
    """The columns a SELECT without FROM can read: none.  Each read of a
    column is a literal of its type (from its pool), now and then NULL."""

    def __init__(self, gen: "Gen") -> None:
        super().__init__([("", c) for c in gen.schema.tables[0].cols])
        self.gen = gen

    def ref(self, q: str, c: Col) -> E:
        if self.gen.r.random() < 0.1:
            return null_of(c.type)
        return self.gen.literal_for(c, c.type)


def null_of(t: str) -> E:
    """A NULL of type ``t`` in both spellings."""
    h, d = {"int": ("INT", "INTEGER"), "double": ("DOUBLE", "DOUBLE"), "string": ("STRING", "VARCHAR"),
            "date": ("DATE", "DATE"), "bool": ("BOOLEAN", "BOOLEAN")}[t]
    return E(f"CAST(NULL AS {h})", f"CAST(NULL AS {d})", t)


def union_type(types: list[str]) -> str:
    """A union column's type from its branches' (Hive's rule, as DuckDB's here)."""
    ts = set(types)
    if ts <= {"int", "double"}:
        return "double" if "double" in ts else "int"
    if "string" in ts:
        return "string"
    return types[0]


def settings_for(seed: int) -> dict:
    """The settings a seed runs with: one or several reducers, broadcast or
    reduce-side joins (or only tiny sides broadcast), small splits or one."""
    r = random.Random(seed * 31 + 7)
    return {
        "reducers": r.choice((1, 2, 3, 4)),
        "broadcast_mb": r.choice((0.0, 32.0, 0.0005)),
        "split_mb": r.choice((0.002, 0.004, 0.0)),
    }


def generate(seed: int, schema: str = "gen", stress: bool = False, shapes: bool = False) -> Case:
    """Case ``seed``; ``stress`` makes it an aggregate over a join (most often)
    with a WHERE of many IN lists and predicates and 12-30 aggregates;
    ``shapes`` a WITH, UNION [ALL] or SELECT without FROM statement."""
    g = Gen(seed, SCHEMAS[schema], stress)
    if stress:
        g.r.random()   # stress cases draw from their own stream
    if shapes:
        g.r = random.Random(seed * 104729 + 31)   # and so do shapes
        h, d, _cols, tables, (compare, limit) = g.shape_block()
        return Case(seed, schema, h, d, compare, limit, settings_for(seed), tuple(tables))
    h, d, _cols, tables, (compare, limit) = g.select_block()
    return Case(seed, schema, h, d, compare, limit, settings_for(seed), tuple(tables))


# ------------------------------------------------------------------ fixtures

def _gen_rows(seed: int) -> dict[str, tuple[list[tuple[str, str]], dict[str, bytes]]]:
    """The generated tables: name -> (columns, files)."""
    rnd = random.Random(seed)

    def dates(n: int) -> str:
        x = rnd.random()
        if x < 0.06:
            return "\\N"
        if x < 0.08:
            return rnd.choice(("2000-02-30", "xx", ""))
        if x < 0.3:
            return rnd.choice(DATE_POOL)
        return (dt.date(1999, 12, 20) + dt.timedelta(days=rnd.randint(0, 400))).isoformat()

    def pick_null(seq, p=0.08):
        return "\\N" if rnd.random() < p else rnd.choice(seq)

    t1 = []
    for _ in range(240):
        i = "\\N" if rnd.random() < 0.08 else (rnd.choice(("x", "")) if rnd.random() < 0.02 else str(rnd.choice(INTS)))
        t1.append(",".join((pick_null(KEYS), i, pick_null(DOUBLES), pick_null(WORDS), dates(0), pick_null(NUMTEXT))))
    t2 = []
    for _ in range(60):
        t2.append(",".join((pick_null(KEYS + ("zz",)), pick_null(tuple(map(str, INTS))),
                            pick_null(DOUBLES), dates(0))))
    t3 = ["a,one,1", "b,two,2", "A,one,3", ",empty,-1", "k1,two,2", "\\N,none,1", "c,one,\\N", "c,two,3", "zz,,2"]
    t4_text = b"a,1,2.0\n\nb,3,4.0\n\n\na,\\N,-0.0\n,3,0.0\n"
    enc = lambda lines, final=True: ("\n".join(lines) + ("\n" if final else "")).encode()  # noqa: E731
    T1 = [(c.name, c.type) for c in GEN.table("t1").cols]
    T2 = [(c.name, c.type) for c in GEN.table("t2").cols]
    T3 = [(c.name, c.type) for c in GEN.table("t3").cols]
    T4 = [(c.name, c.type) for c in GEN.table("t4").cols]
    T5 = [(c.name, c.type) for c in GEN.table("t5").cols]
    return {
        "t1": (T1, {"part-00000": enc(t1[:100]), "part-00001": enc(t1[100:200], final=False),
                    "part-00002": enc(t1[200:])}),
        "t2": (T2, {"part-00000": enc(t2[:40]), "part-00001.gz": gzip.compress(enc(t2[40:]), mtime=0)}),
        "t3": (T3, {"part-00000": enc(t3)}),
        "t4": (T4, {"part-00000": t4_text}),
        "t5": (T5, {"part-00000": b""}),
    }


GEN_TABLES = _gen_rows(20260101)

DUCK_MACROS = [
    # Hive's SUBSTR: 1-based; a negative start counts from the end; a start
    # beyond either end or a length <= 0 gives ''; NULL in, NULL out
    "CREATE OR REPLACE MACRO hsubstr(s, p, l) AS CASE WHEN s IS NULL OR p IS NULL OR l IS NULL THEN NULL "
    "WHEN l <= 0 OR abs(p) > length(s) THEN '' "
    "ELSE substring(s, CAST(CASE WHEN p > 0 THEN p WHEN p < 0 THEN length(s) + p + 1 ELSE 1 END AS BIGINT), "
    "CAST(least(l, 2147483647) AS BIGINT)) END",
]


def add_gen_tables(tables) -> None:
    """Register the generated fixtures with a ``difftest.Tables``."""
    for name, (cols, files) in GEN_TABLES.items():
        tables.add(name, cols, files)
    setup_duck(tables.con)


def setup_duck(con) -> None:
    for m in DUCK_MACROS:
        con.execute(m)


def add_amplab_tables(tables, tiny: Path) -> None:
    """The real AMPLab /tiny/ data as ``rk`` and ``uv`` in both engines."""
    from difftest import RK_COLUMNS, UV_COLUMNS, typed_columns
    cols_uv = ", ".join(f"{n} {ty.upper()}" for n, ty in UV_COLUMNS)
    cols_rk = ", ".join(f"{n} {ty.upper()}" for n, ty in RK_COLUMNS)
    list(tables.session.execute(f"CREATE EXTERNAL TABLE rk ({cols_rk}) LOCATION '{tiny / 'rankings'}';"
                                f"CREATE EXTERNAL TABLE uv ({cols_uv}) LOCATION '{tiny / 'uservisits'}'"))
    for name, cols, folder in (("uv", UV_COLUMNS, tiny / "uservisits"), ("rk", RK_COLUMNS, tiny / "rankings")):
        colspec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n, _ in cols) + "}"
        tables.con.execute(f"CREATE OR REPLACE TABLE raw_{name} AS SELECT * FROM read_csv('{folder}/*', "
                           f"header=false, delim=',', quote='', escape='', columns={colspec}, "
                           f"nullstr='\\N', auto_detect=false)")
        tables.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {typed_columns(cols)} FROM raw_{name}")
    setup_duck(tables.con)


# --------------------------------------------------------------- running

def apply_settings(session, settings: dict) -> None:
    for k, v in settings.items():
        setattr(session.settings, k, v)


def _fmt(rows: list, n: int = 5) -> str:
    shown = "\n".join(f"      {r}" for r in rows[:n])
    more = f"\n      … {len(rows) - n} more" if len(rows) > n else ""
    return shown + more


def diff_rows(got: list[list], want: list[list], ordered: bool) -> str | None:
    """None when equal, else a short description of the difference."""
    from difftest import _key, same_value

    def same_row(a, b) -> bool:
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))

    if ordered:
        for i, (g, w) in enumerate(zip(got, want)):
            if not same_row(g, w):
                return f"  first difference at row {i}: sqlmr {g} vs duckdb {w}" + (
                    f"\n  (row counts {len(got)} vs {len(want)})" if len(got) != len(want) else "")
        if len(got) != len(want):
            return f"  row count: sqlmr {len(got)} vs duckdb {len(want)}"
        return None
    gs, ws = sorted(got, key=_key), sorted(want, key=_key)
    if len(gs) == len(ws) and all(same_row(g, w) for g, w in zip(gs, ws)):
        return None
    # multiset difference, matching rows within float tolerance
    only_w = list(ws)
    only_g = []
    for g in gs:
        for j, w in enumerate(only_w):
            if same_row(g, w):
                del only_w[j]
                break
        else:
            only_g.append(g)
    if not only_g and not only_w:   # equal within float tolerance, sorted apart
        return None
    return (f"  row count: sqlmr {len(got)} vs duckdb {len(want)}\n"
            f"  only in sqlmr ({len(only_g)}):\n{_fmt(only_g)}\n  only in duckdb ({len(only_w)}):\n{_fmt(only_w)}")


def run_case(tables, case: Case) -> str | None:
    """Run one case in both engines; None when they agree, else a failure report."""
    from difftest import _norm
    apply_settings(tables.session, case.settings)
    try:
        want = tables.duckdb(case.duck)
    except Exception as e:  # the generator wrote something DuckDB refuses: a generator bug
        return f"{case.describe()}\n  DuckDB error (generator bug?): {type(e).__name__}: {str(e).splitlines()[0]}"
    try:
        got = [[_norm(v) for v in r] for r in tables.sqlmr(case.sqlmr)]
    except Exception as e:
        msg = str(e).strip().splitlines()
        return f"{case.describe()}\n  sqlmr error: {type(e).__name__}: {msg[-1] if msg else ''}"
    if case.compare == "subset":
        from difftest import _key
        if len(got) != min(case.limit, len(want)):
            return f"{case.describe()}\n  LIMIT {case.limit}: sqlmr returned {len(got)} rows of {len(want)}"
        pool = sorted(want, key=_key)
        d = diff_rows(got, [w for w in pool if any(w == g for g in got)][:len(got)], ordered=False) \
            if not all(any(_same(g, w) for w in pool) for g in got) else None
        return None if d is None else f"{case.describe()}\n  rows not in the full result:\n{d}"
    d = diff_rows(got, want, ordered=case.compare == "ordered")
    return None if d is None else f"{case.describe()}\n{d}"


def _same(a, b) -> bool:
    from difftest import same_value
    return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))


if __name__ == "__main__":
    schema = sys.argv[2] if len(sys.argv) > 2 else "gen"
    shaped = "shapes" in sys.argv[3:]
    for s in sys.argv[1].split(","):
        print(generate(int(s), schema, shapes=shaped).describe())
