"""Generating a job's Python module from a :class:`~compiler.plan.QueryPlan`.

One data-centric loop per task kind: the map loop splits each line only as
far as the last needed field, converts only the needed columns, evaluates the
filter and either projects rows or updates a map-side hash aggregate; the
reduce loop merges partial aggregates and finishes them.  Rows whose fields
all parse take a fast path where no column can be NULL (so no null checks);
the rare others (``\\N``, missing or unparsable fields) take a slow path with
full NULL semantics and are counted as malformed.

The module's entry points are named ``s<stage>_map`` / ``s<stage>_reduce``
and take the task context of :mod:`runtime.handler`; ``sortkey`` (when the
query orders) is shared by tasks and the driver's final merge.

>>> import sqlglot
>>> from compiler.schema import Table, Column
>>> from compiler.resolve import qualify_query
>>> from compiler.plan import plan_select
>>> rk = Table("rankings", [Column("pageURL", "string"), Column("pageRank", "int")], "/d")
>>> sql = "SELECT pageURL, pageRank FROM rankings WHERE pageRank > 1000"
>>> q = sqlglot.parse_one(sql, read="hive")
>>> p = plan_select(qualify_query(q, {"rankings": rk}, "hive", sql), q, {"rankings": rk}, "hive", sql)
>>> src = generate(p)
>>> "f = line.split(',', 2)" in src and "c1 = int(f[1])" in src and "(c1 > 1000)" in src
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from compiler.exprs import Code, ExprCompiler, Var, expr_key
from compiler.plan import Aggregate, OrderKey, QueryPlan

BATCH = 4096
_PARSE = {"string": "{}", "int": "int({})", "bigint": "int({})", "double": "float({})",
          "date": "_date({})", "boolean": "_bool({})"}


class Src:
    """Indented source builder."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, line: str = "") -> "Src":
        self.lines.append(("    " * self.level + line) if line else "")
        return self

    def indent(self) -> "Src":
        self.level += 1
        return self

    def dedent(self) -> "Src":
        self.level -= 1
        return self

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class AggSlot:
    """How one aggregate lives in a group's state list."""

    kind: str          # count_star | count | count_distinct | sum | min | max | avg
    width: int         # slots used (AVG: sum and count)
    arg: exp.Expression | None
    type: str | None   # result type


def agg_slots(aggs: list[exp.AggFunc], compiler: ExprCompiler) -> list[AggSlot]:
    slots = []
    for a in aggs:
        arg = a.this
        if isinstance(a, exp.Count):
            if arg is None or isinstance(arg, exp.Star):
                slots.append(AggSlot("count_star", 1, None, "bigint"))
            elif isinstance(arg, exp.Distinct):
                if len(arg.expressions) != 1:
                    from compiler.errors import UnsupportedError
                    raise UnsupportedError("COUNT(DISTINCT …) of several expressions")
                slots.append(AggSlot("count_distinct", 1, arg.expressions[0], "bigint"))
            else:
                slots.append(AggSlot("count", 1, arg, "bigint"))
            continue
        if isinstance(arg, exp.Distinct):
            from compiler.errors import UnsupportedError
            raise UnsupportedError(f"{a.sql_name()}(DISTINCT …)")
        t = compiler.value(arg).type
        if isinstance(a, exp.Sum):
            slots.append(AggSlot("sum", 1, arg, "bigint" if t in ("int", "bigint") else "double"))
        elif isinstance(a, exp.Avg):
            slots.append(AggSlot("avg", 2, arg, "double"))
        elif isinstance(a, exp.Min):
            slots.append(AggSlot("min", 1, arg, t))
        elif isinstance(a, exp.Max):
            slots.append(AggSlot("max", 1, arg, t))
    return slots


@dataclass
class Generated:
    source: str
    output_types: list[str | None]
    map_entry: str = "s1_map"
    reduce_entry: str | None = None
    consts: dict[str, str] = field(default_factory=dict)


def generate(plan: QueryPlan, stage: int = 1) -> str:
    return generate_job(plan, stage).source


def generate_job(plan: QueryPlan, stage: int = 1) -> Generated:
    """Source of the job module for a single-stage plan."""
    consts: dict[str, str] = {}
    body = Src()
    scan = plan.scan
    cols = scan.columns
    col_types = {i: scan.table.columns[i].type for i in cols}

    def env(nullable: bool) -> dict[str, Var]:
        return {f"{scan.alias}.{scan.table.columns[i].name.lower()}":
                Var(f"c{i}", col_types[i], nullable) for i in cols}

    fast = ExprCompiler(env(False), consts, tmp_prefix="_f")
    slow = ExprCompiler(env(True), consts, tmp_prefix="_s")
    agg = plan.aggregate
    output_types: list[str | None] = []
    reduce_entry = None
    if agg is None:
        output_types = _scan_map(body, plan, stage, fast, slow)
    else:
        slots = agg_slots(agg.aggs, slow)
        key_codes = _agg_map(body, plan, agg, slots, stage, fast, slow)
        output_types = _agg_reduce(body, plan, agg, slots, key_codes, stage, consts)
        reduce_entry = f"s{stage}_reduce"
    if plan.order:
        _sortkey(body, plan.order, output_types)

    head = Src()
    head("# Generated by sqlmr: one job, data-centric loops, no per-row calls into a framework.")
    head("from heapq import nsmallest as _nsmallest")
    head("from runtime import sqlfuncs as F")
    head("from zlib import crc32 as _crc32")
    head("from runtime.shuffle import partition_of as _partition_of")
    head("_date = F.parse_date")
    head("_bool = F.parse_bool")
    head("_NUL = F.NULL_TEXT")
    for name, code in consts.items():
        head(f"{name} = {code}")
    head()
    return Generated(head.text() + body.text(), output_types, f"s{stage}_map", reduce_entry, consts)


# --------------------------------------------------------------------- map

def _parse_prologue(src: Src, plan: QueryPlan) -> None:
    """Per-line parsing with a fast path; leaves the caller inside the
    fast-path ``if`` (indent level +3 from the line loop)."""
    scan = plan.scan
    cols = scan.columns
    sep = scan.table.delimiter
    spec = tuple((i, scan.table.columns[i].type) for i in cols)
    if cols:
        src(f"f = line.split({sep!r}, {max(cols) + 1})")
    src("try:").indent()
    if cols:
        for i in cols:
            src(f"c{i} = " + _PARSE[scan.table.columns[i].type].format(f"f[{i}]"))
    else:
        src("pass")
    src.dedent()("except (ValueError, IndexError):").indent()("pass").dedent()
    src("else:").indent()
    strings = [f"c{i} != _nul" for i in cols if scan.table.columns[i].type == "string"]
    src(f"if {' and '.join(strings) if strings else 'line'}:").indent()
    return spec  # type: ignore[return-value]


def _slow_prologue(src: Src, plan: QueryPlan, spec) -> None:
    cols = plan.scan.columns
    src("if not line:").indent()("continue").dedent()
    sep = plan.scan.table.delimiter
    if cols:
        names = ", ".join(f"c{i}" for i in cols) + ("," if len(cols) == 1 else "")
        src(f"({names}), _bad = _parse_fields(line, {sep!r}, {spec!r})")
        src("if _bad:").indent()("bad(line)").dedent()


def _scan_map(src: Src, plan: QueryPlan, stage: int, fast: ExprCompiler,
              slow: ExprCompiler) -> list[str | None]:
    """Map-only stage: filter and project (top-n / sort per task if ordered)."""
    types: list[str | None] = []
    src(f"def s{stage}_map(ctx):")
    src.indent()
    src("out = ctx.writer()")
    src("rows = []")
    src("append = rows.append")
    src("bad = ctx.bad")
    src("_nul = _NUL")
    src("_parse_fields = F.parse_fields")
    src("n_in = 0")
    src("n_out = 0")
    limit = plan.limit
    ordered = bool(plan.order)
    src("for block in ctx.blocks():").indent()
    src("n_in += len(block)")
    src("for line in block:").indent()
    spec = _parse_prologue(src, plan)
    for compiler, is_fast in ((fast, True), (slow, False)):
        if not is_fast:
            _slow_prologue(src, plan, spec)
        if plan.scan.filter is not None:
            src(f"if not {compiler.predicate(plan.scan.filter)}:").indent()("continue").dedent()
        codes = [compiler.value(e) for e in plan.outputs]
        if is_fast:
            types = [c.type for c in codes]
        else:
            types = [t or c.type for t, c in zip(types, codes)]
        src("append([" + ", ".join(c.code for c in codes) + "])")
        if limit is not None and not ordered:
            src(f"if n_out + len(rows) >= {limit}:").indent()("break").dedent()
        if is_fast:
            src("continue")
            src.dedent().dedent()  # back to the line loop
    src.dedent()  # out of the line loop
    if limit is not None and not ordered:
        src(f"if n_out + len(rows) >= {limit}:").indent()("break").dedent()
    elif limit is not None and ordered:
        src(f"if len(rows) > {max(2 * limit, BATCH)}:").indent()
        src(f"rows[:] = _nsmallest({limit}, rows, key=sortkey)").dedent()
    if not ordered:
        src(f"if len(rows) >= {BATCH}:").indent()
        src("out.add_batch(0, rows)")
        src("n_out += len(rows)")
        src("rows = []")
        src("append = rows.append").dedent()
    src.dedent()  # out of the block loop
    if limit is not None and not ordered:
        src(f"del rows[max(0, {limit} - n_out):]")
    _finish_rows(src, plan)
    src("ctx.rows_in = n_in")
    src("ctx.rows_out = n_out")
    src.dedent()
    src()
    return types


def _finish_rows(src: Src, plan: QueryPlan) -> None:
    """Order / trim the task's rows and write them in batches."""
    if plan.order and plan.limit is not None:
        src(f"rows = _nsmallest({plan.limit}, rows, key=sortkey)")
    elif plan.order:
        src("rows.sort(key=sortkey)")
    src(f"for i in range(0, len(rows), {BATCH}):").indent()
    src(f"out.add_batch(0, rows[i:i + {BATCH}])").dedent()
    src("n_out += len(rows)")


def _key_expr(codes: list[Code]) -> str:
    if len(codes) == 1:
        return codes[0].code
    if not codes:
        return "0"
    return "(" + ", ".join(c.code for c in codes) + ",)"


def _agg_map(src: Src, plan: QueryPlan, agg: Aggregate, slots: list[AggSlot], stage: int,
             fast: ExprCompiler, slow: ExprCompiler) -> list[Code]:
    """Map side of a GROUP BY: filter, hash partial aggregation, partitioned output."""
    scalar_state = len(slots) == 1 and slots[0].kind in ("count_star", "sum", "count")
    src(f"def s{stage}_map(ctx):")
    src.indent()
    src("g = {}")
    src("gget = g.get")
    src("gs = {}  # groups fed by rows that took the slow (NULL-aware) path")
    src("bad = ctx.bad")
    src("_nul = _NUL")
    src("_parse_fields = F.parse_fields")
    src("n_in = 0")
    src("for block in ctx.blocks():").indent()
    src("n_in += len(block)")
    src("for line in block:").indent()
    spec = _parse_prologue(src, plan)
    key_codes: list[Code] = []
    for compiler, is_fast in ((fast, True), (slow, False)):
        if not is_fast:
            _slow_prologue(src, plan, spec)
        if plan.scan.filter is not None:
            src(f"if not {compiler.predicate(plan.scan.filter)}:").indent()("continue").dedent()
        keys = [compiler.value(k) for k in agg.keys]
        if not is_fast:
            key_codes = keys
        src(f"k = {_key_expr(keys)}")
        args = []
        for j, s in enumerate(slots):
            if s.arg is None:
                args.append(Code("1", None, False))
                continue
            c = compiler.value(s.arg)
            if c.code.isidentifier():  # a column: no copy needed
                args.append(c)
                continue
            src(f"v{j} = {c.code}")
            args.append(Code(f"v{j}", c.type, c.nullable))
        if is_fast and scalar_state and not args[0].nullable:
            s = slots[0]
            inc = "1" if s.kind in ("count_star", "count") else args[0].code
            src(f"g[k] = gget(k, 0) + {inc}")
        else:
            target = "g" if is_fast else "gs"
            getter = "gget(k)" if is_fast else "gs.get(k)"
            src(f"acc = {getter}")
            src("if acc is None:").indent()
            src(f"{target}[k] = [" + ", ".join(_init(s, a) for s, a in zip(slots, args)) + "]")
            src.dedent()
            updates = []
            pos = 0
            for s, a in zip(slots, args):
                updates.extend(_update(s, a, pos))
                pos += s.width
            if updates:
                src("else:").indent()
                for u in updates:
                    src(u)
                src.dedent()
        if is_fast:
            src("continue")
            src.dedent().dedent()  # back to the line loop
    src.dedent().dedent()  # out of line and block loops
    src("out = ctx.writer()")
    src("parts = ctx.event['partitions'] or 1")
    src("bufs = [[] for _ in range(parts)]")
    sets = [pos for pos, s in _positions(slots) if s.kind == "count_distinct"]
    # a single string key hashes inline, exactly as runtime.shuffle.partition_of does
    str_key = len(key_codes) == 1 and key_codes[0].type == "string"
    part = "_crc32(k.encode()) % parts" if str_key else "_partition_of(k, parts)"
    for dict_name, scalar in (("g", scalar_state and not _any_nullable_fast(slots, fast)), ("gs", False)):
        src(f"for k, acc in {dict_name}.items():").indent()
        if scalar:
            rec = "[k, acc]"
        else:
            for pos in sets:
                src(f"acc[{pos}] = list(acc[{pos}])")
            rec = "[k, *acc]"
        if str_key:
            src("if k is None:").indent()
            src(f"bufs[_partition_of(k, parts)].append({rec})").dedent()
            src("else:").indent()
            src(f"bufs[{part}].append({rec})").dedent()
        else:
            src(f"bufs[{part}].append({rec})")
        src.dedent()
    src("for p, buf in enumerate(bufs):").indent()
    src(f"for i in range(0, len(buf), {BATCH}):").indent()
    src(f"out.add_batch(p, buf[i:i + {BATCH}])").dedent().dedent()
    src("ctx.rows_in = n_in")
    src("ctx.rows_out = len(g) + len(gs)")
    src.dedent()
    src()
    return key_codes


def _any_nullable_fast(slots: list[AggSlot], fast: ExprCompiler) -> bool:
    return any(s.arg is not None and fast.value(s.arg).nullable for s in slots)


def _positions(slots: list[AggSlot]):
    pos = 0
    for s in slots:
        yield pos, s
        pos += s.width


def _init(s: AggSlot, a: Code) -> str:
    v = a.code
    if s.kind == "count_star":
        return "1"
    if s.kind == "count":
        return "1" if not a.nullable else f"(0 if {v} is None else 1)"
    if s.kind == "count_distinct":
        return f"{{{v}}}" if not a.nullable else f"(set() if {v} is None else {{{v}}})"
    if s.kind in ("sum", "min", "max"):
        return v
    if s.kind == "avg":
        if not a.nullable:
            return f"{v}, 1"
        return f"(0 if {v} is None else {v}), (0 if {v} is None else 1)"
    raise AssertionError(s.kind)


def _update(s: AggSlot, a: Code, pos: int) -> list[str]:
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
        return guard(f"{acc} = {v} if {acc} is None else {acc} + {v}")
    if s.kind in ("min", "max"):
        op = "<" if s.kind == "min" else ">"
        if not a.nullable:
            return [f"if {v} {op} {acc}:", f"    {acc} = {v}"]
        return [f"if {v} is not None and ({acc} is None or {v} {op} {acc}):", f"    {acc} = {v}"]
    if s.kind == "avg":
        if not a.nullable:
            return [f"{acc} += {v}", f"acc[{pos + 1}] += 1"]
        return [f"if {v} is not None:", f"    {acc} += {v}", f"    acc[{pos + 1}] += 1"]
    raise AssertionError(s.kind)


# ------------------------------------------------------------------ reduce

def _merge(s: AggSlot, pos: int) -> list[str]:
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
        op = "<" if s.kind == "min" else ">"
        return [f"if {r} is not None and ({acc} is None or {r} {op} {acc}):", f"    {acc} = {r}"]
    if s.kind == "avg":
        return [f"{acc} += {r}", f"acc[{i + 1}] += r[{i + 1}]"]
    raise AssertionError(s.kind)


def _final(s: AggSlot, pos: int) -> tuple[str, bool]:
    i = pos + 1
    if s.kind in ("count_star", "count", "sum", "min", "max"):
        return f"acc[{i}]", s.kind in ("sum", "min", "max")
    if s.kind == "count_distinct":
        return f"len(acc[{i}])", False
    if s.kind == "avg":
        return f"(acc[{i}] / acc[{i + 1}] if acc[{i + 1}] else None)", True
    raise AssertionError(s.kind)


def _empty_state(s: AggSlot) -> list[str]:
    return {"count_star": ["0"], "count": ["0"], "count_distinct": ["[]"], "sum": ["None"],
            "min": ["None"], "max": ["None"], "avg": ["0", "0"]}[s.kind]


def _agg_reduce(src: Src, plan: QueryPlan, agg: Aggregate, slots: list[AggSlot],
                key_codes: list[Code], stage: int, consts: dict[str, str]) -> list[str | None]:
    src(f"def s{stage}_reduce(ctx):")
    src.indent()
    src("g = {}")
    src("gget = g.get")
    src("n_in = 0")
    multi = len(agg.keys) > 1
    sets = [pos for pos, s in _positions(slots) if s.kind == "count_distinct"]
    src("for batch in ctx.batches():").indent()
    src("n_in += len(batch)")
    src("for r in batch:").indent()
    src("k = tuple(r[0])" if multi else "k = r[0]")
    src("acc = gget(k)")
    src("if acc is None:").indent()
    for pos in sets:
        src(f"r[{pos + 1}] = set(r[{pos + 1}])")
    src("g[k] = r").dedent()
    merges = [line for pos, s in _positions(slots) for line in _merge(s, pos)]
    if merges:
        src("else:").indent()
        for m in merges:
            src(m)
        src.dedent()
    src.dedent().dedent()
    if agg.scalar:
        empty = ", ".join(x for s in slots for x in _empty_state(s))
        src("if not g:").indent()
        src(f"g[0] = [0, {empty}]" if empty else "g[0] = [0]")
        for pos in sets:
            src(f"g[0][{pos + 1}] = set()")
        src.dedent()
    # post-aggregation environment: group keys and aggregate results
    env: dict[str, Var] = {}
    for i, (k, kc) in enumerate(zip(agg.keys, key_codes)):
        env[expr_key(k)] = Var(f"k{i}", kc.type, True)
    finals = []
    for j, ((pos, s), a) in enumerate(zip(_positions(slots), agg.aggs)):
        code, nullable = _final(s, pos)
        env[expr_key(a)] = Var(f"a{j}", s.type, nullable)
        finals.append(code)
    post = ExprCompiler(env, consts, tmp_prefix="_p")
    src("rows = []")
    src("append = rows.append")
    src("for k, acc in g.items():").indent()
    if len(agg.keys) == 1:
        src("k0 = k")
    elif multi:
        src(", ".join(f"k{i}" for i in range(len(agg.keys))) + " = k")
    for j, code in enumerate(finals):
        src(f"a{j} = {code}")
    if agg.having is not None:
        src(f"if not {post.predicate(agg.having)}:").indent()("continue").dedent()
    codes = [post.value(e) for e in plan.outputs]
    src("append([" + ", ".join(c.code for c in codes) + "])")
    src.dedent()
    src("out = ctx.writer()")
    src("n_out = 0")
    _finish_rows(src, plan)
    src("ctx.rows_in = n_in")
    src("ctx.rows_out = n_out")
    src.dedent()
    src()
    return [c.type for c in codes]


# -------------------------------------------------------------------- order

def _sortkey(src: Src, order: list[OrderKey], types: list[str | None]) -> None:
    """``sortkey(row)``: a tuple that orders rows as ORDER BY says, NULLs placed
    first or last per key."""
    src("def sortkey(r):")
    src.indent()
    parts = []
    for n, o in enumerate(order):
        src(f"v{n} = r[{o.index}]")
        value = f"F.Desc(v{n})" if o.desc else f"v{n}"
        null_rank, val_rank = ("0", "1") if o.nulls_first else ("1", "0")
        parts.append(f"(({null_rank}, 0) if v{n} is None else ({val_rank}, {value}))")
    src("return (" + ", ".join(parts) + ",)")
    src.dedent()
    src()
