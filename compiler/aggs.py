"""How aggregates live in a group's state, and the code that keeps it.

An aggregate is an :class:`AggSlot` (its kind, how many state slots it uses,
its argument and result type).  The helpers give the Python code that starts
a state from the first row (:func:`init`), updates it by a row
(:func:`update`), merges a partial state into another (:func:`merge`) and
gives the result (:func:`final`); the lowering sizes states with
:func:`agg_slots`, code generation writes the loops around them.

>>> s = AggSlot("avg", 2, None, "double")
>>> from compiler.exprs import Code
>>> init(s, Code("c1", "int", True)), update(s, Code("c1", "int", False), 3)
('(0 if c1 is None else c1), (0 if c1 is None else 1)', ['acc[3] += c1', 'acc[4] += 1'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from sqlglot import exp

from compiler.errors import UnsupportedError
from compiler.exprs import Code, ExprCompiler, intern_const
from compiler.udfs import UserAgg, aggregate_ref, lookup


@dataclass
class AggSlot:
    """How one aggregate lives in a group's state list."""

    kind: str          # count_star | count | count_distinct | sum | min | max | avg | udaf
    width: int         # slots used (AVG: sum and count)
    arg: exp.Expression | None
    type: str | None   # result type
    udaf: str | None = None   # udaf: code of the user's aggregate object (an instance)
    ref: str | None = None    # udaf: the module constant holding it


def bind_consts(slots: list[AggSlot], consts: dict[str, str]) -> list[AggSlot]:
    """The slots with each aggregate UDF's object interned in ``consts`` (the
    generated module's constants)."""
    return [AggSlot(s.kind, s.width, s.arg, s.type, s.udaf, intern_const(consts, s.udaf))
            if s.udaf else s for s in slots]


ONE_NUMBER = ("count_star", "count", "sum")  # kinds whose partial state is one number


def one_number(keys: int, scalar: bool, slots: list[AggSlot]) -> bool:
    """A grouped aggregate whose state per group is one number merged by
    adding (one key, one SUM or COUNT): its shuffle carries (key, number)
    pairs, and partial numbers of a key may be added anywhere on the way.

    >>> one_number(1, False, [AggSlot("sum", 1, None, "double")])
    True
    >>> one_number(1, False, [AggSlot("avg", 2, None, "double")]), one_number(2, False, [])
    (False, False)
    """
    return len(slots) == 1 and slots[0].kind in ONE_NUMBER and keys == 1 and not scalar


def agg_slots(aggs: list[exp.AggFunc], compiler: ExprCompiler) -> list[AggSlot]:
    """The state slot of each aggregate call (``compiler`` types the arguments)."""
    slots = []
    for a in aggs:
        arg = a.this
        if isinstance(a, exp.Count):
            if arg is None or isinstance(arg, exp.Star):
                slots.append(AggSlot("count_star", 1, None, "bigint"))
            elif isinstance(arg, exp.Distinct):
                if len(arg.expressions) != 1:
                    raise UnsupportedError("COUNT(DISTINCT …) of several expressions")
                slots.append(AggSlot("count_distinct", 1, arg.expressions[0], "bigint"))
            else:
                slots.append(AggSlot("count", 1, arg, "bigint"))
            continue
        if isinstance(arg, exp.Distinct):
            raise UnsupportedError(f"{a.sql_name()}(DISTINCT …)")
        if isinstance(a, UserAgg):
            if isinstance(arg, exp.Tuple):
                raise UnsupportedError(f"aggregate function {a.sql_name()}() of "
                                       f"{len(arg.expressions)} arguments (it takes one)")
            compiler.value(arg)   # checks the argument
            name = a.sql_name()
            code = aggregate_ref(name)
            udf = lookup(name)
            assert udf is not None
            slots.append(AggSlot("udaf", 1, arg, udf.returns, code, compiler.const(code)))
            continue
        value = compiler.value(arg)
        t = value.type
        if isinstance(a, (exp.Sum, exp.Avg)):
            compiler._need_numeric(value, arg, f"in {a.sql_name()}()")
        if isinstance(a, exp.Sum):
            slots.append(AggSlot("sum", 1, arg, "bigint" if t in ("int", "bigint") else "double"))
        elif isinstance(a, exp.Avg):
            slots.append(AggSlot("avg", 2, arg, "double"))
        elif isinstance(a, exp.Min):
            slots.append(AggSlot("min", 1, arg, t))
        elif isinstance(a, exp.Max):
            slots.append(AggSlot("max", 1, arg, t))
    return slots


def positions(slots: list[AggSlot]) -> Iterator[tuple[int, AggSlot]]:
    """(position of its first slot in the state, slot) of each aggregate."""
    pos = 0
    for s in slots:
        yield pos, s
        pos += s.width


def init(s: AggSlot, a: Code) -> str:
    """The state slots a group's first row ``a`` starts (comma-separated)."""
    v = a.code
    if s.kind == "count_star":
        return "1"
    if s.kind == "count":
        return "1" if not a.nullable else f"(0 if {v} is None else 1)"
    if s.kind == "count_distinct":
        return f"{{{v}}}" if not a.nullable else f"(set() if {v} is None else {{{v}}})"
    if s.kind in ("min", "max"):
        return v
    if s.kind == "sum":
        total = _from_zero(a)
        return total if not a.nullable or total == v else f"(None if {v} is None else {total})"
    if s.kind == "udaf":   # NULLs are skipped, as SQL's aggregates do
        first = f"{s.ref}.step({s.ref}.init(), {v})"
        return first if not a.nullable else f"({s.ref}.init() if {v} is None else {first})"
    if s.kind == "avg":
        total = _from_zero(a)
        if not a.nullable:
            return f"{total}, 1"
        return f"(0 if {v} is None else {total}), (0 if {v} is None else 1)"
    raise AssertionError(s.kind)


def _from_zero(a: Code) -> str:
    """A group's first double as a sum that started at zero: Hive's SUM and
    AVG start at +0.0, and +0.0 + -0.0 is +0.0, so a sum is never -0.0.

    >>> _from_zero(Code("c1", "double", False)), _from_zero(Code("c1", "int", False))
    ('(c1 + 0.0)', 'c1')
    >>> -0.0 + 0.0, eval(_from_zero(Code("x", "double", False)), {"x": -0.0})
    (0.0, 0.0)
    """
    return f"({a.code} + 0.0)" if a.type == "double" else a.code


def update(s: AggSlot, a: Code, pos: int) -> list[str]:
    """Statements folding row value ``a`` into ``acc`` (the state list) at ``pos``."""
    v = a.code
    acc = f"acc[{pos}]"
    guard = (lambda body: [body]) if not a.nullable else (lambda body: [f"if {v} is not None:", "    " + body])
    if s.kind == "count_star":
        return [f"{acc} += 1"]
    if s.kind == "count":
        return guard(f"{acc} += 1")
    if s.kind == "count_distinct":
        return guard(f"{acc}.add({v})")
    if s.kind == "sum":
        if not a.nullable:
            return [f"{acc} += {v}"]
        return guard(f"{acc} = {_from_zero(a)} if {acc} is None else {acc} + {v}")
    if s.kind in ("min", "max"):
        wins = _wins(s.kind, v, acc, a.type == "double")
        if not a.nullable:
            return [f"if {wins}:", f"    {acc} = {v}"]
        return [f"if {v} is not None and ({acc} is None or {wins}):", f"    {acc} = {v}"]
    if s.kind == "udaf":
        return guard(f"{acc} = {s.ref}.step({acc}, {v})")
    if s.kind == "avg":
        if not a.nullable:
            return [f"{acc} += {v}", f"acc[{pos + 1}] += 1"]
        return [f"if {v} is not None:", f"    {acc} += {v}", f"    acc[{pos + 1}] += 1"]
    raise AssertionError(s.kind)


def merge(s: AggSlot, pos: int) -> list[str]:
    """Merge a record's state (``r``, key at 0) into ``acc`` (also a record)."""
    i = pos + 1
    acc, r = f"acc[{i}]", f"r[{i}]"
    if s.kind in ("count_star", "count"):
        return [f"{acc} += {r}"]
    if s.kind == "count_distinct":
        return [f"{acc}.update({r})"]
    if s.kind == "sum":
        return [f"if {r} is not None:", f"    {acc} = {r} if {acc} is None else {acc} + {r}"]
    if s.kind in ("min", "max"):
        return [f"if {r} is not None and ({acc} is None or {_wins(s.kind, r, acc, s.type == 'double')}):",
                f"    {acc} = {r}"]
    if s.kind == "avg":
        return [f"{acc} += {r}", f"acc[{i + 1}] += r[{i + 1}]"]
    if s.kind == "udaf":
        return [f"{acc} = {s.ref}.merge({acc}, {r})"]
    raise AssertionError(s.kind)


def _wins(kind: str, v: str, acc: str, double: bool) -> str:
    """When value ``v`` replaces state ``acc`` of MIN or MAX.  Doubles order
    as Hive's ``Double.compare`` orders them, NaN above every number: MAX is
    NaN once one is read, MIN only when every value is (a NaN state gives way).

    >>> _wins("min", "v", "a", False), _wins("max", "v", "a", True)
    ('v < a', 'v > a or v != v')
    >>> nan = float("nan")
    >>> [eval(_wins("min", "v", "a", True), {"v": v, "a": a}) for v, a in [(1.0, nan), (nan, 1.0)]]
    [True, False]
    """
    if kind == "min":
        return f"{v} < {acc} or {acc} != {acc}" if double else f"{v} < {acc}"
    return f"{v} > {acc} or {v} != {v}" if double else f"{v} > {acc}"


def final(s: AggSlot, pos: int) -> tuple[str, bool]:
    """(code of the aggregate's result from a merged record ``acc``, may be NULL)."""
    i = pos + 1
    if s.kind in ("count_star", "count", "sum", "min", "max"):
        return f"acc[{i}]", s.kind in ("sum", "min", "max")
    if s.kind == "count_distinct":
        return f"len(acc[{i}])", False
    if s.kind == "avg":
        return f"(acc[{i}] / acc[{i + 1}] if acc[{i + 1}] else None)", True
    if s.kind == "udaf":
        return f"{s.ref}.final(acc[{i}])", True
    raise AssertionError(s.kind)


def empty_state(s: AggSlot) -> list[str]:
    """The state slots of an aggregate over no rows (a scalar aggregate's only group)."""
    if s.kind == "udaf":
        return [f"{s.ref}.init()"]
    return {"count_star": ["0"], "count": ["0"], "count_distinct": ["[]"], "sum": ["None"],
            "min": ["None"], "max": ["None"], "avg": ["0", "0"]}[s.kind]
