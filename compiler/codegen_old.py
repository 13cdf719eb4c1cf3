"""Generating a job's Python module from its stages (:mod:`compiler.stages`).

One data-centric loop per phase (task kind of a stage): a map loop over text
splits the line only as far as the last needed field, converts only the
needed columns, evaluates the filter, probes broadcast hash tables, then
projects rows, updates a map-side hash aggregate or emits tagged join
records; a reduce loop merges partial aggregates or merge-joins sorted runs
and continues the same way.  Rows whose fields all parse take a fast path
where no column can be NULL (so no null checks); the rare others (``\\N``,
missing or unparsable fields) take a slow path with full NULL semantics and
are counted as malformed.

The module's entry points are named ``s<stage>_map[<i>]`` / ``s<stage>_reduce``
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

from compiler.exprs import Code, ExprCompiler, Var, expr_key, intern_const
from compiler.plan import OrderKey, QueryPlan
from compiler.stages import (AggIn, Assign, Filter, JoinIn, MergeIn, PartialAgg, Probe, RangeOut,
                             RowsIn, RowsOut, ShuffleOut, TableIn)

BATCH = 4096
SAMPLE_PER_BATCH = 16   # rows a range-sorted query's tasks sample per written batch
AGGR_CHECK_ROWS = 100_000  # rows a scan aggregates before judging the reduction (Hive's checkinterval)
MIN_REDUCTION = 0.5        # groups/rows above this: stop aggregating map-side (Hive's min.reduction)
PASS_THROUGH_FLUSH = 65536  # passed-through pairs collected before they go to the writer
SHUFFLE_HANDOVER = 32768  # join records a task collects before handing them to the writer
_PARSE = {"string": "{}", "int": "int({})", "bigint": "int({})", "double": "float({})",
          "date": "(_dok({0}) or _date({0}))", "boolean": "_bool({})"}


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


@dataclass
class Generated:
    source: str
    output_types: list[str | None]
    map_entry: str = "s1_map"
    reduce_entry: str | None = None
    consts: dict[str, str] = field(default_factory=dict)
    passing: set[str] = field(default_factory=set)  # scan phases that may pass rows through


def generate(plan: QueryPlan, stage: int = 1) -> str:
    return generate_job(plan, stage).source


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
    if not cols or cols == [0] and strings:
        # An empty line splits to [''], so reading a field past the first fails,
        # and no parser but a STRING's accepts '': only when every field read is
        # a STRING field 0 (or none is read) can an empty line get here, so only
        # then is the line itself tested (the slow path skips it).
        strings.append("line")
    if strings:
        src(f"if {' and '.join(strings)}:")
    else:
        src("if True:  # every field parsed: no NULL, not an empty line")
    src.indent()
    return spec  # type: ignore[return-value]


def _slow_prologue(src: Src, plan: QueryPlan, spec) -> None:
    cols = plan.scan.columns
    src("if not line:").indent()("continue").dedent()
    sep = plan.scan.table.delimiter
    if cols:
        names = ", ".join(f"c{i}" for i in cols) + ("," if len(cols) == 1 else "")
        src(f"({names}), _bad = _parse_fields(line, {sep!r}, {spec!r})")
        src("if _bad:").indent()("bad(line)").dedent()


def _tuple(items: list[str]) -> str:
    """A tuple display of ``items`` that is valid at any width: ``()``, ``(a,)``, ``(a, b)``."""
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _key_expr(codes: list[Code]) -> str:
    if len(codes) == 1:
        return codes[0].code
    if not codes:
        return "0"
    return "(" + ", ".join(c.code for c in codes) + ",)"


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


_ONE_NUMBER = ("count_star", "count", "sum")  # kinds whose partial state is one number


def _empty_state(s: AggSlot) -> list[str]:
    return {"count_star": ["0"], "count": ["0"], "count_distinct": ["[]"], "sum": ["None"],
            "min": ["None"], "max": ["None"], "avg": ["0", "0"]}[s.kind]


# ------------------------------------------------------------------ stages

def generate_job(plan: QueryPlan, stage: int = 1) -> Generated:
    """Source of the job module for a single-table plan (one stage)."""
    from compiler.blocks import Block, TableSource
    from compiler.stages import Lowering
    scan = plan.scan
    block = Block(TableSource(scan.table, scan.alias, scan.alias, scan.columns, scan.filter),
                  None, plan.aggregate, plan.outputs, plan.names, [], plan.order, plan.limit,
                  False, {})
    return generate_stages(Lowering().lower(block))


def generate_stages(stages: list) -> Generated:
    """Source of the job module for a list of stages: one function per phase
    (``s<stage>_map[<i>]``, ``s<stage>_reduce``), the loaders of broadcast
    hash tables, and the ``sortkey`` functions ordered outputs are merged by."""
    consts: dict[str, str] = {}
    body = Src()
    final_types: list[str | None] = []
    sampled: list[str | None] = []
    passing: set[str] = set()
    for st in stages:
        for ph in st.maps + ([st.reduce] if st.reduce is not None else []):
            gen = _PhaseGen(body, ph, consts)
            types = gen.generate()
            if gen.passes_through:
                passing.add(ph.entry)
            sink = ph.sink
            if isinstance(sink, RowsOut):
                if sink.order:
                    _sortkey(body, sink.order, types, sink.sortkey)
                if sink.sample:
                    sampled = types
                if sink.final:
                    # a total-order sort's reducers pass the sampled rows through
                    final_types = sampled if isinstance(ph.input, MergeIn) else types
    head = Src()
    head("# Generated by sqlmr: one job, data-centric loops, no per-row calls into a framework.")
    head("from bisect import bisect_right as _bisect")
    head("from collections import defaultdict as _defaultdict")
    head("from heapq import merge as _merge, nsmallest as _nsmallest")
    head("from itertools import chain as _chain, islice as _islice")
    head("from operator import itemgetter as _itemgetter")
    head("from random import Random as _Random")
    head("from runtime import sqlfuncs as F")
    head("from zlib import crc32 as _crc32")
    head("from runtime.shuffle import partition_of as _partition_of, split_items as _split_items")
    head("_DATES = {}  # date texts already validated (a table holds few distinct dates)")
    head("_dok = _DATES.get")
    head()
    head()
    head("def _date(text, _parse=F.parse_date):")
    head("    value = _parse(text)")
    head("    if len(_DATES) < 65536:")
    head("        _DATES[text] = value")
    head("    return value")
    head()
    head()
    head("_bool = F.parse_bool")
    head("_NUL = F.NULL_TEXT")
    head("_JK = _itemgetter(0, 1)  # join shuffle order: key, then side tag")
    head("_KEY0 = _itemgetter(0)")
    head("_NOKEY = object()")
    head("_BC = {}  # broadcast hash tables built in this process, by (job, name)")
    head()
    head()
    head("class _Done(Exception):")
    head("    \"\"\"A task has produced all the rows its LIMIT needs.\"\"\"")
    head()
    head()
    for name, code in consts.items():
        head(f"{name} = {code}")
    head()
    first = stages[0]
    return Generated(head.text() + body.text(), final_types, first.map_entry or "",
                     stages[-1].reduce_entry, consts, passing)


_SENTINEL = {"string": "''", "date": "''", "int": "0", "bigint": "0", "double": "0.0",
             "boolean": "False", None: "''"}


def _coerce(c: Code, to: str | None) -> Code:
    """A join key value converted to the type both sides compare in."""
    if to is None or c.type == to or (c.type in ("int", "bigint") and to in ("int", "bigint")):
        return c
    if to == "double" and c.type in ("int", "bigint"):
        if not c.nullable:
            return Code(f"float({c.code})", "double", False)
        return Code(f"F.cast({c.code}, 'double')", "double", True)
    if to == "string" and c.type == "date":
        return c
    return Code(f"F.cast({c.code}, {to!r})", to, True)


class _PhaseGen:
    """Writes one phase's task function: input loop, operators, sink."""

    def __init__(self, src: Src, phase, consts: dict[str, str]) -> None:
        self.src = src
        self.ph = phase
        self.consts = consts
        self.n = 0
        self.types: list[str | None] | None = None
        self.loaders: list = []
        self.pass_through = False  # generating a scan loop that passes rows through
        self.scalar_fast = False   # a scan's one-number state updates in one statement
        self.scalar_kind: str | None = None   # how that number travels: "d", "q" or as JSON
        self.agg_key_types: list[str | None] = []

    # ------------------------------------------------------------ helpers
    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def bind_keys(self, comp: ExprCompiler, keys: list, types: list) -> list[tuple[str, bool, str | None]]:
        """Join key values bound to fresh locals (converted to the key's join
        type); returns (name, may be NULL, value type) per key."""
        names = []
        for key, typ in zip(keys, types):
            c = _coerce(comp.value(key), typ)
            name = self.fresh("j")
            self.src(f"{name} = {c.code}")
            names.append((name, c.nullable, c.type))
        return names

    def compiler(self, env: dict[str, Var]) -> ExprCompiler:
        return ExprCompiler(env, self.consts, tmp_prefix=f"_t{self.fresh('')}_")

    def bind(self, fields, record: str, offset: int, env: dict[str, Var]) -> None:
        """Bind a record's values (from ``offset``) to fresh locals under the fields' keys."""
        for i, f in enumerate(fields):
            name = self.fresh("x")
            self.src(f"{name} = {record}[{offset + i}]")
            env[f.key] = Var(name, f.type, True)

    def nulls(self, fields, env: dict[str, Var]) -> None:
        for f in fields:
            env[f.key] = Var("None", f.type, True)

    @property
    def batched(self) -> bool:
        """Rows arrive in blocks/batches (the sink's housekeeping runs per block)."""
        inp = self.ph.input
        return isinstance(inp, TableIn) or (isinstance(inp, RowsIn) and not inp.merge
                                            and inp.limit is None)

    # ------------------------------------------------------------ generate
    def generate(self) -> list[str | None]:
        src, ph = self.src, self.ph
        sink = ph.sink
        src(f"def {ph.entry}(ctx):")
        src.indent()
        self.sink_init()
        self.init_mark = len(src.lines)
        for op in ph.ops:
            if isinstance(op, Probe):
                src(f"_{op.name}get = _load_{op.name}(ctx).get")
                self.loaders.append(op)
        src("n_in = 0")
        early = isinstance(sink, RowsOut) and sink.limit is not None and not sink.order
        if early:
            src("try:").indent()
        inp = ph.input
        if isinstance(inp, TableIn):
            self.table_loop(inp)
        elif isinstance(inp, RowsIn):
            self.rows_loop(inp)
        elif isinstance(inp, AggIn):
            self.agg_loop(inp)
        elif isinstance(inp, JoinIn):
            self.join_loop(inp)
        elif isinstance(inp, MergeIn):
            self.merge_loop(inp)
        else:
            raise AssertionError(inp)
        if early:
            src.dedent()("except _Done:").indent()("pass").dedent()
        self.sink_finish()
        src("ctx.rows_in = n_in")
        src.dedent()
        src()
        for op in self.loaders:
            self.loader(op)
        return self.types or []

    # -------------------------------------------------------------- inputs
    def table_loop(self, inp) -> None:
        src = self.src
        src("bad = ctx.bad")
        src("_nul = _NUL")
        src("_parse_fields = F.parse_fields")
        src("for block in ctx.blocks():").indent()
        src("n_in += len(block)")
        mark = len(src.lines)
        self.line_loop(inp)
        if self.passes_through:
            # Hive's hive.map.aggr.hash.min.reduction: once partial aggregation is
            # seen not to shrink the rows, the rest go out as (key, number) pairs
            # and the reducers aggregate them (same records, no dict update here)
            aggregating = ["    " + line if line else line for line in src.lines[mark:]]
            del src.lines[mark:]
            src("if passthru:").indent()
            self.pass_through = True
            self.line_loop(inp)
            self.pass_through = False
            src(f"if len(pks) >= {PASS_THROUGH_FLUSH}:").indent()
            src(f"out.add_pair_columns(pks, pvs, {self.scalar_kind!r})")
            src("n_passed += len(pks)")
            src("pks.clear()")
            src("pvs.clear()").dedent()
            src.dedent()("else:").indent()
            src.lines.extend(aggregating)
            src("if n_in >= check_at:").indent()
            src("check_at = 1 << 62  # checked once")
            src(f"passthru = len(g) > n_in * {MIN_REDUCTION}").dedent()
            src.dedent()
            prologue = ["out = ctx.writer()",
                        "pks = []  # keys and numbers passed through unaggregated",
                        "pvs = []",
                        "ka = pks.append",
                        "va = pvs.append",
                        "n_passed = 0",
                        "passthru = False",
                        f"check_at = ctx.params.get('aggr_check_rows') or {AGGR_CHECK_ROWS}"]
            src.lines[self.init_mark:self.init_mark] = ["    " + line for line in prologue]
        src.dedent()  # out of the block loop

    def line_loop(self, inp) -> None:
        """``for line in block:`` with its fast and slow (NULL-aware) paths."""
        src = self.src
        shim = _ScanPlan(inp.scan)
        src("for line in block:").indent()
        spec = _parse_prologue(src, shim)
        for fast in (True, False):
            if not fast:
                _slow_prologue(src, shim, spec)
            self.pipeline(_scan_env(inp.scan, nullable=not fast), fast, inp.scan.filter)
            if fast:
                src("continue")
                src.dedent().dedent()
        src.dedent()  # out of the line loop
        self.boundary()

    @property
    def passes_through(self) -> bool:
        """A scan's partial aggregation may switch to passing rows through:
        its state is one number under a single text key (pair batches)."""
        return (isinstance(self.ph.input, TableIn) and self.scalar_fast
                and self.agg_key_types == ["string"] and self.scalar_kind is not None)

    def rows_loop(self, inp) -> None:
        src = self.src
        if inp.merge or inp.limit is not None:
            it = (f"_merge(*ctx.runs(), key={inp.stage.last[0].sink.sortkey})" if inp.merge
                  else "_chain.from_iterable(ctx.batches())")
            if inp.limit is not None:
                it = f"_islice({it}, {inp.limit})"
            src(f"for r in {it}:").indent()
            src("n_in += 1")
            env: dict[str, Var] = {}
            self.bind(inp.fields, "r", 0, env)
            self.pipeline(env, False)
            src.dedent()
            return
        src("for batch in ctx.batches():").indent()
        src("n_in += len(batch)")
        src("for r in batch:").indent()
        env = {}
        self.bind(inp.fields, "r", 0, env)
        self.pipeline(env, False)
        src.dedent()
        self.boundary()
        src.dedent()

    def agg_loop(self, inp) -> None:
        src = self.src
        agg = inp.agg
        slots = inp.slots
        multi = len(agg.keys) > 1
        if (len(slots) == 1 and slots[0].kind in _ONE_NUMBER and len(agg.keys) == 1
                and not agg.scalar):
            self.one_number_agg_loop(inp)
            return
        sets = [pos for pos, s in _positions(slots) if s.kind == "count_distinct"]
        src("g = {}")
        src("gget = g.get")
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
        env: dict[str, Var] = {}
        for i, (k, t) in enumerate(zip(agg.keys, inp.key_types)):
            env[expr_key(k)] = Var(f"k{i}", t, True)
        finals = []
        for j, ((pos, s), a) in enumerate(zip(_positions(slots), agg.aggs)):
            code, nullable = _final(s, pos)
            env[expr_key(a)] = Var(f"a{j}", s.type, nullable)
            finals.append(code)
        src("for k, acc in g.items():").indent()
        if len(agg.keys) == 1:
            src("k0 = k")
        elif multi:
            src(", ".join(f"k{i}" for i in range(len(agg.keys))) + " = k")
        for j, code in enumerate(finals):
            src(f"a{j} = {code}")
        self.pipeline(env, False)
        src.dedent()

    def one_number_agg_loop(self, inp) -> None:
        """Final aggregation of groups whose state is one number (SUM, COUNT):
        records arrive as (key, number) columns and each merges in one
        statement; the groups go out as a pair batch when the result rows are
        exactly (key, aggregate)."""
        src = self.src
        slot = inp.slots[0]
        # g.get with a default beats a defaultdict here: a new group costs no
        # factory call and second store
        src("g = {}")
        src("gget = g.get")
        if slot.kind == "sum":
            src("gn = set()  # groups seen so far only with a NULL sum")
        src("for keys, nums, maybe_null in ctx.pairs():").indent()
        src("n_in += len(keys)")
        if slot.kind == "sum":
            src("if maybe_null:").indent()
            src("for k, v in zip(keys, nums):").indent()
            src("if v is None:").indent()("gn.add(k)").dedent()
            src("else:").indent()("g[k] = gget(k, 0) + v").dedent()
            src.dedent().dedent()("else:").indent()
            src("for k, v in zip(keys, nums):").indent()("g[k] = gget(k, 0) + v").dedent().dedent()
            src.dedent()
            src("for k in gn:").indent()
            src("if k not in g:").indent()("g[k] = None").dedent().dedent()
        else:
            src("for k, v in zip(keys, nums):").indent()("g[k] = gget(k, 0) + v").dedent()
            src.dedent()
        env = {expr_key(inp.agg.keys[0]): Var("k0", inp.key_types[0], True),
               expr_key(inp.agg.aggs[0]): Var("a0", slot.type, slot.kind == "sum")}
        sink = self.ph.sink
        if (isinstance(sink, RowsOut) and not self.ph.ops and not sink.order and sink.limit is None
                and not sink.sample and inp.key_types[0] == "string"
                and [self.compiler(env).value(e).code for e in sink.outputs] == ["k0", "a0"]):
            # the result rows are the groups themselves: no per-group Python
            self.types = [inp.key_types[0], slot.type]
            src(f"out.add_pair_columns(list(g), list(g.values()), {'d' if slot.type == 'double' else 'q'!r}, 0)")
            src("n_out += len(g)")
            return
        src("for k0, a0 in g.items():").indent()
        self.pipeline(env, False)
        src.dedent()

    def merge_loop(self, inp) -> None:
        """A range partition of a total-order sort: merge its sorted runs."""
        src = self.src
        src(f"for chunk in ctx.merged({inp.sortkey}):").indent()
        src("n_in += len(chunk)")
        src("out.add_batch(0, chunk)")
        src("n_out += len(chunk)")
        src.dedent()
        self.types = []

    def join_loop(self, inp) -> None:
        src = self.src
        side0, side1 = inp.sides
        pres = inp.preserved
        src("jbuf = []")
        src("cur = _NOKEY")
        src("hit = False")
        src("maxbuf = 0")

        def unmatched_buffered() -> None:
            src("if jbuf and not hit:").indent()
            src("for b in jbuf:").indent()
            env: dict[str, Var] = {}
            self.bind(side0, "b", 2, env)
            self.nulls(side1, env)
            self.pipeline(env, False)
            src.dedent().dedent()

        src("for chunk in ctx.merged(_JK):").indent()
        src("n_in += len(chunk)")
        src("for r in chunk:").indent()
        src("jk = r[0]")
        src("if jk != cur:").indent()
        if pres == 0:
            unmatched_buffered()
        src("cur = jk")
        src("jbuf = []")
        src("hit = False").dedent()
        src("t = r[1]")
        src("if t == 0:").indent()
        src("jbuf.append(r)")
        src("if len(jbuf) > maxbuf:").indent()("maxbuf = len(jbuf)").dedent()
        src("continue").dedent()
        if pres is not None:
            # a preserved row whose key is NULL: it matches nothing
            src("if t == 2:").indent()
            env: dict[str, Var] = {}
            if pres == 0:
                self.bind(side0, "r", 2, env)
                self.nulls(side1, env)
            else:
                self.nulls(side0, env)
                self.bind(side1, "r", 2, env)
            self.pipeline(env, False)
            src("continue").dedent()
        if pres == 0:
            src("hit = True")
        env1: dict[str, Var] = {}
        self.bind(side1, "r", 2, env1)
        if pres == 1:
            src("if not jbuf:").indent()
            env = dict(env1)
            self.nulls(side0, env)
            self.pipeline(env, False)
            src("continue").dedent()
        src("for b in jbuf:").indent()
        env = dict(env1)
        self.bind(side0, "b", 2, env)
        self.pipeline(env, False)
        src.dedent()
        src.dedent().dedent()  # out of the chunk and merge loops
        if pres == 0:
            unmatched_buffered()
        src("ctx.counters['max_buffered'] = maxbuf")

    # ----------------------------------------------------------- pipeline
    def pipeline(self, env: dict[str, Var], fast: bool,
                 pre: exp.Expression | None = None) -> None:
        """The scan filter ``pre``, the operators, then the sink's per-row code;
        back at the starting indent."""
        src = self.src
        level = src.level
        env = dict(env)
        comp = self.compiler(env)
        if pre is not None:
            src(f"if {comp.predicate(pre)}:").indent()
        for op in self.ph.ops:
            if isinstance(op, Filter):
                src(f"if {comp.predicate(op.pred)}:").indent()
            elif isinstance(op, Assign):
                new: dict[str, Var] = {}
                for key, e in op.items:
                    c = comp.value(e)
                    name = self.fresh("o")
                    src(f"{name} = {c.code}")
                    new[key] = Var(name, c.type, c.nullable)
                env = new
                comp = self.compiler(env)
            elif isinstance(op, Probe):
                parts = [_coerce(comp.value(k), t) for k, t in zip(op.keys, op.key_types)]
                key = _key_expr(parts)
                m = self.fresh("m")
                if op.kind == "left":
                    nulls = self.consts_name(_tuple([_tuple(["None"] * len(op.fields))]))
                    src(f"for {m} in (_{op.name}get({key}) or {nulls}):").indent()
                else:
                    src(f"for {m} in _{op.name}get({key}, ()):").indent()
                env = dict(env)
                for i, f in enumerate(op.fields):
                    name = self.fresh("y")
                    src(f"{name} = {m}[{i}]")
                    env[f.key] = Var(name, f.type, True)
                comp = self.compiler(env)
            else:
                raise AssertionError(op)
        self.sink_row(comp, fast)
        src.level = level

    def consts_name(self, code: str) -> str:
        return intern_const(self.consts, code)

    # --------------------------------------------------------------- sinks
    def sink_init(self) -> None:
        src, sink = self.src, self.ph.sink
        if isinstance(sink, RowsOut):
            src("out = ctx.writer()")
            src("rows = []")
            src("append = rows.append")
            src("n_out = 0")
            if sink.sample:
                src("_sample = _Random(ctx.event['task']).sample")
        elif isinstance(sink, RangeOut):
            src(f"out = ctx.writer(sort={sink.sortkey})")
            src("parts = ctx.event['partitions'] or 1")
            src(f"bounds = [{sink.sortkey}(b) for b in ctx.params.get('bounds', [])]")
            src("n_out = 0")
        elif isinstance(sink, PartialAgg):
            if not isinstance(self.ph.input, TableIn):
                src("g = {}" if not isinstance(self.ph.input, AggIn) else "g2 = {}")
            else:
                # a defaultdict lets a one-number state update in one statement
                # (g[k] += v); list states still go through gget, which never inserts
                src("g = _defaultdict(int)")
                src("gget = g.get")
                src("gs = {}  # groups fed by rows that took the slow (NULL-aware) path")
        elif isinstance(sink, ShuffleOut):
            # records collect in local lists per partition, handed to the sorting
            # writer in bulk (no call into the runtime per record)
            # every record of a run has the same tag unless NULL keys pass as tag 2:
            # then sorting by the key alone keeps the run in (key, tag) order
            src("out = ctx.writer(sort=True)" if sink.null_tag is not None
                else "out = ctx.writer(sort=_KEY0)")
            src("parts = ctx.event['partitions'] or 1")
            src("sbufs = [[] for _ in range(parts)]")
            src("sadd = [b.append for b in sbufs]")
            src("n_out = 0")
            src("n_handed = 0")
            src(f"handover = min({SHUFFLE_HANDOVER}, out.spill_records)")
            if sink.null_tag is not None:
                src("nullpart = ctx.event['task']")

    def _agg_dict(self, fast: bool) -> tuple[str, str]:
        """(dict, getter) the partial aggregation of this path updates."""
        if isinstance(self.ph.input, TableIn):
            return ("g", "gget") if fast else ("gs", "gs.get")
        if isinstance(self.ph.input, AggIn):
            return ("g2", "g2.get")
        return ("g", "g.get")

    def sink_row(self, comp: ExprCompiler, fast: bool) -> None:
        src, sink = self.src, self.ph.sink
        if isinstance(sink, RowsOut):
            codes = [comp.value(e) for e in sink.outputs]
            if self.types is None:
                self.types = [c.type for c in codes]
            else:
                self.types = [t or c.type for t, c in zip(self.types, codes)]
            src("append([" + ", ".join(c.code for c in codes) + "])")
            if sink.limit is not None and not sink.order:
                src(f"if n_out + len(rows) >= {sink.limit}:").indent()("raise _Done").dedent()
            elif not self.batched:
                self.housekeeping()
            return
        if isinstance(sink, RangeOut):
            src(f"out.add(_bisect(bounds, {sink.sortkey}(r)), r)")
            src("n_out += 1")
            return
        if isinstance(sink, PartialAgg):
            agg = sink.agg
            slots = agg_slots(agg.aggs, comp)
            self.slots = slots
            keys = [comp.value(k) for k in agg.keys]
            self.agg_key_types = [k.type for k in keys]
            src(f"k = {_key_expr(keys)}")
            args = []
            for j, s in enumerate(slots):
                if s.arg is None:
                    args.append(Code("1", None, False))
                    continue
                c = comp.value(s.arg)
                if c.code.isidentifier():  # a column: no copy needed
                    args.append(c)
                    continue
                src(f"v{j} = {c.code}")
                args.append(Code(f"v{j}", c.type, c.nullable))
            scalar_state = len(slots) == 1 and slots[0].kind in ("count_star", "sum", "count")
            target, getter = self._agg_dict(fast)
            if fast and isinstance(self.ph.input, TableIn) and scalar_state and not args[0].nullable:
                self.scalar_fast = True
                s = slots[0]
                # how the one number travels in a pair batch: int64, float64, or as JSON
                self.scalar_kind = ("q" if s.kind in ("count_star", "count") or args[0].type in ("int", "bigint")
                                    else "d" if args[0].type == "double" else None)
                inc = "1" if s.kind in ("count_star", "count") else args[0].code
                if self.pass_through:
                    src("ka(k)")
                    src(f"va({inc})")
                else:
                    src(f"g[k] += {inc}")
                return
            src(f"acc = {getter}(k)")
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
            return
        if isinstance(sink, ShuffleOut):
            names = self.bind_keys(comp, sink.keys, sink.key_types)
            key = names[0][0] if len(names) == 1 else "(" + ", ".join(n for n, *_ in names) + ",)"
            vals = [comp.value(_column(f.key)).code for f in sink.fields]
            rec = ", ".join([key, str(sink.tag)] + vals)
            # a single string key hashes inline, exactly as runtime.shuffle.partition_of does
            text_key = len(names) == 1 and names[0][2] == "string"
            part = f"_crc32({key}.encode()) % parts" if text_key else f"_partition_of({key}, parts)"
            nullable = [n for n, nl, _ in names if nl]
            if nullable:
                test = " or ".join(f"{n} is None" for n in nullable)
                src(f"if {test}:").indent()
                if sink.null_tag is None:
                    src("pass")
                else:
                    sentinel = [_SENTINEL.get(t, "''") for t in sink.key_types]
                    skey = sentinel[0] if len(sentinel) == 1 else "(" + ", ".join(sentinel) + ",)"
                    src("nullpart += 1")
                    src(f"sadd[nullpart % parts]([{', '.join([skey, str(sink.null_tag)] + vals)}])")
                    src("n_out += 1")
                src.dedent()("else:").indent()
                src(f"sadd[{part} if parts > 1 else 0]([{rec}])")
                src("n_out += 1")
                src.dedent()
            else:
                src(f"sadd[{part} if parts > 1 else 0]([{rec}])")
                src("n_out += 1")
            if not self.batched:
                self.hand_over()
            return
        raise AssertionError(sink)

    def hand_over(self, final: bool = False) -> None:
        """Move a join shuffle's local record lists into the sorting writer."""
        src = self.src
        if not final:
            src("if n_out - n_handed >= handover:").indent()
        src("for p, b in enumerate(sbufs):").indent()
        src("out.add_batch(p, b)")
        src("b.clear()").dedent()
        src("n_handed = n_out")
        if not final:
            src.dedent()

    def boundary(self) -> None:
        """Per block of input: keep a RowsOut sink's buffer small, hand a join
        shuffle's records to the writer."""
        if isinstance(self.ph.sink, RowsOut) and not (self.ph.sink.limit is not None
                                                     and not self.ph.sink.order):
            self.housekeeping()
        elif isinstance(self.ph.sink, ShuffleOut):
            self.hand_over()

    def housekeeping(self) -> None:
        src, sink = self.src, self.ph.sink
        if sink.order and sink.limit is not None:
            src(f"if len(rows) > {max(2 * sink.limit, BATCH)}:").indent()
            src(f"rows[:] = _nsmallest({sink.limit}, rows, key={sink.sortkey})").dedent()
        elif not sink.order:
            src(f"if len(rows) >= {BATCH}:").indent()
            if sink.sample:
                src(f"ctx.sample.extend(_sample(rows, {SAMPLE_PER_BATCH}))")
            src("out.add_batch(0, rows)")
            src("n_out += len(rows)")
            src("rows = []")
            src("append = rows.append").dedent()

    def sink_finish(self) -> None:
        src, sink = self.src, self.ph.sink
        if isinstance(sink, RowsOut):
            if sink.sample:
                src(f"ctx.sample.extend(_sample(rows, min(len(rows), {SAMPLE_PER_BATCH})))")
            if sink.limit is not None and not sink.order:
                src(f"del rows[max(0, {sink.limit} - n_out):]")
            if isinstance(self.ph.input, MergeIn):
                pass  # already in order
            elif sink.order and sink.limit is not None:
                src(f"rows = _nsmallest({sink.limit}, rows, key={sink.sortkey})")
            elif sink.order:
                src(f"rows.sort(key={sink.sortkey})")
            src(f"for i in range(0, len(rows), {BATCH}):").indent()
            src(f"out.add_batch(0, rows[i:i + {BATCH}])").dedent()
            src("n_out += len(rows)")
            src("ctx.rows_out = n_out")
        elif isinstance(sink, PartialAgg):
            slots = getattr(self, "slots", None) or []
            sets = [pos for pos, s in _positions(slots) if s.kind == "count_distinct"]
            src("out = ctx.writer()")
            src("parts = ctx.event['partitions'] or 1")
            src("bufs = [[] for _ in range(parts)]")
            if isinstance(self.ph.input, TableIn):
                dicts = (("g", self.scalar_fast), ("gs", False))
            else:
                dicts = (("g2" if isinstance(self.ph.input, AggIn) else "g", False),)
            # a single string key hashes inline, exactly as runtime.shuffle.partition_of does
            key_types = self.agg_key_types
            str_key = len(key_types) == 1 and key_types[0] == "string"
            part = "_crc32(k.encode()) % parts" if str_key else "_partition_of(k, parts)"
            for name, scalar in dicts:
                if scalar and self.passes_through:
                    # text keys, one number: pair batches (numbers in binary),
                    # split by partition in C
                    kind = self.scalar_kind
                    src(f"out.add_pair_columns(pks, pvs, {kind!r})")
                    src("n_passed += len(pks)")
                    src(f"out.add_pair_columns(list({name}), list({name}.values()), {kind!r})")
                    continue
                if scalar:
                    # (key, number) pairs: grouped by partition in C
                    src(f"for p, chunk in enumerate(_split_items(list({name}.items()), {name}, parts)):").indent()
                    src("bufs[p].extend(chunk)").dedent()
                    continue
                src(f"for k, acc in {name}.items():").indent()
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
            if self.passes_through:
                src("if n_passed:").indent()("ctx.counters['rows_passed_through'] = n_passed").dedent()
            src("ctx.rows_out = " + " + ".join([f"len({n})" for n, _ in dicts]
                                               + (["n_passed"] if self.passes_through else [])))
        elif isinstance(sink, ShuffleOut):
            self.hand_over(final=True)
            src("ctx.rows_out = n_out")
        elif isinstance(sink, RangeOut):
            src("ctx.rows_out = n_out")

    # ------------------------------------------------------------ loaders
    def loader(self, op) -> None:
        """``_load_<name>(ctx)``: the broadcast hash table, built once per process
        and job: small-side key -> list of value tuples (NULL keys never match)."""
        src = self.src
        src(f"def _load_{op.name}(ctx):")
        src.indent()
        src(f"key = (ctx.event['job'], {op.name!r})")
        src("d = _BC.get(key)")
        src("if d is not None:").indent()("return d").dedent()
        src("for old in [k for k in _BC if k[0] != key[0]]:").indent()("del _BC[old]").dedent()
        src("d = {}")
        src("dget = d.get")
        sub = _LoaderGen(self, op)
        sub.emit()
        src("_BC[key] = d")
        src("return d")
        src.dedent()
        src()


class _LoaderGen:
    """The input loop of a broadcast loader (a table scan or stage rows)."""

    def __init__(self, parent: _PhaseGen, op) -> None:
        self.p = parent
        self.op = op

    def emit(self) -> None:
        p, op, src = self.p, self.op, self.p.src
        source = op.source
        if isinstance(source, TableIn):
            shim = _ScanPlan(source.scan)
            # malformed rows of a broadcast side are not counted (every task reads
            # it); strict mode still fails on them
            src("bad = ctx.bad if ctx.strict else (lambda line, why=None: None)")
            src("_nul = _NUL")
            src("_parse_fields = F.parse_fields")
            src(f"for block in ctx.side_blocks({op.name!r}):").indent()
            src("for line in block:").indent()
            spec = _parse_prologue(src, shim)
            for fast in (True, False):
                if not fast:
                    _slow_prologue(src, shim, spec)
                self.row(_scan_env(source.scan, nullable=not fast))
                if fast:
                    src("continue")
                    src.dedent().dedent()
            src.dedent().dedent()
        else:
            src(f"for batch in ctx.side_batches({op.name!r}):").indent()
            src("for r in batch:").indent()
            env: dict[str, Var] = {}
            p.bind(source.fields, "r", 0, env)
            self.row(env)
            src.dedent().dedent()

    def row(self, env: dict[str, Var]) -> None:
        p, op, src = self.p, self.op, self.p.src
        level = src.level
        comp = p.compiler(env)
        if op.small_filter is not None:
            src(f"if {comp.predicate(op.small_filter)}:").indent()
        names = p.bind_keys(comp, op.small_keys, op.key_types)
        nullable = [n for n, nl, _ in names if nl]
        if nullable:
            src(f"if {' and '.join(f'{n} is not None' for n in nullable)}:").indent()
        key = names[0][0] if len(names) == 1 else "(" + ", ".join(n for n, *_ in names) + ",)"
        vals = [comp.value(_column(f.key)).code for f in op.fields]
        tup = _tuple(vals)
        src(f"lst = dget({key})")
        src("if lst is None:").indent()(f"d[{key}] = [{tup}]").dedent()
        src("else:").indent()(f"lst.append({tup})").dedent()
        src.level = level


class _ScanPlan:
    """What the parse prologues need of a plan: its scan."""

    def __init__(self, scan) -> None:
        self.scan = scan


def _scan_env(scan, nullable: bool) -> dict[str, Var]:
    return {f"{scan.alias}.{scan.table.columns[i].name.lower()}":
            Var(f"c{i}", scan.table.columns[i].type, nullable) for i in scan.columns}


def _column(key: str) -> exp.Column:
    alias, name = key.split(".", 1)
    return exp.column(exp.to_identifier(name, quoted=True),
                      table=exp.to_identifier(alias, quoted=True))


# -------------------------------------------------------------------- order

def _sortkey(src: Src, order: list[OrderKey], types: list[str | None],
             name: str = "sortkey") -> None:
    """``sortkey(row)``: a tuple that orders rows as ORDER BY says, NULLs placed
    first or last per key."""
    src(f"def {name}(r):")
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
