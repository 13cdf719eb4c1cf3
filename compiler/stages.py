"""Lowering a logical :class:`~compiler.blocks.Block` into MapReduce stages.

A *phase* is the code one kind of task runs: an input, a pipeline of
operators and a sink.

- inputs: a table's text splits (:class:`TableIn`), one row of no columns
  (:class:`OneRowIn`: a SELECT without FROM, one task), the rows an earlier
  stage wrote (:class:`RowsIn`), a shuffle partition of partial aggregates to merge
  (:class:`AggIn`) or the sorted runs of a join shuffle to merge-join
  (:class:`JoinIn`);
- operators: :class:`Filter`, :class:`Assign` (a derived table's projection),
  :class:`Probe` (the probe of a broadcast join's hash table);
- sinks: rows (:class:`RowsOut`: final result, or rows a later stage reads),
  hash partial aggregation partitioned on the group key (:class:`PartialAgg`),
  or join records partitioned on the join key and tagged by side
  (:class:`ShuffleOut`).

A stage is map phases (one per input it scans) and an optional reduce
phase.  A reduce phase reads the partitions written for it by its own map
phases and, for chained stages, by an earlier stage's last phase: the reducer
of a join can aggregate its output partially and partition it for the next
stage's reducers, so join -> aggregate -> top-n (AMPLab 3) needs no map pass
over intermediate rows.  A map phase can also read an earlier stage's rows
(a derived table with a LIMIT, or the small side of a broadcast join that is
itself a query).

Lowering keeps a *stream*: an open pipeline not yet given its sink, either a
map over some input that is not placed in a stage yet, or the reduce phase
of a stage.  Closing a stream with a sink that shuffles places it: as a map
phase of the consuming stage, or as the last phase of its own stage feeding
the consumer's reducers.

A UNION ALL is a stream of streams, one per branch, each ending in an
:class:`Assign` of the union's columns (converted to their common type).
Closed into a consumer, every branch feeds it as it is (a map phase of the
consumer, or a reducer writing partitions for it); closed on its own, the
branches become the map phases of one stage, a branch that ends in a reducer
writing its rows for a map phase of that stage to pass on.

Joins: a side whose input is below ``broadcast_bytes`` is loaded into a hash
table by each task of the other side (a map join; a left join can only
broadcast its right side); otherwise a reduce-side join: both sides shuffle
on the key, sorted by (key, side tag) within each partition, and the reducer
streams the merge of the sorted runs, buffering the rows of the smaller side
(tag 0) for the current key only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Union

from sqlglot import exp

from compiler.aggs import AggSlot, agg_slots, one_number
from compiler.blocks import (Block, DerivedSource, JoinSource, OneRowSource, TableSource,
                             UnionBlock)
from compiler.errors import SqlError
from compiler.exprs import ExprCompiler, Var, expr_key
from compiler.partitions import prune_filter
from compiler.plan import Aggregate, OrderKey, Scan
from compiler.resolve import _start
from compiler.schema import NUMERIC, SQLGLOT_TYPES
from compiler.sizes import size_text


# ORDER BY without LIMIT over more input than this: a range-partitioned sort
# stage; below it each final task sorts its rows and the driver merges them.
RANGE_SORT_BYTES = 256 << 20


# ------------------------------------------------------------------ phases

@dataclass
class Field:
    """A value a record carries, and the name (env key) it is bound to."""

    key: str
    type: str | None


@dataclass
class TableIn:
    scan: Scan

    @property
    def label(self) -> str:
        return self.scan.table.name


@dataclass
class OneRowIn:
    """One row of no columns: what a SELECT without FROM reads (one task)."""

    @property
    def label(self) -> str:
        return "one row"


@dataclass
class RowsIn:
    stage: "Stage"
    fields: list[Field]
    merge: bool = False              # merge the stage's sorted outputs (by its sortkey)
    limit: int | None = None         # read only the first rows (one task)

    @property
    def label(self) -> str:
        return f"Stage-{self.stage.id} output"


@dataclass
class AggIn:
    agg: Aggregate
    key_types: list[str | None]
    slots: list[AggSlot]             # each aggregate's state, as the partial side keeps it


@dataclass
class JoinIn:
    kind: str                        # inner | left
    sides: tuple[list[Field], list[Field]]   # fields of tag 0 (buffered), tag 1 (streamed)
    preserved: int | None            # tag of a LEFT JOIN's preserved side
    keys: tuple[list[exp.Expression], list[exp.Expression]]   # for EXPLAIN
    labels: tuple[str, str]
    reason: str


@dataclass
class WindowCall:
    """One window function of a window stage, over its partition's rows."""

    kind: str                        # row_number rank dense_rank sum count count_star avg min max lag lead
    arg: int | None                  # index of its argument among the records' arguments
    offset: int                      # LAG / LEAD
    default: int | None              # index of LAG / LEAD's default among the arguments
    type: str | None
    key: str                         # expr_key of the OVER expression (what the env binds)
    func: exp.Expression             # the function called (EXPLAIN)


@dataclass
class WindowOut:
    """Records partitioned on the PARTITION BY values and sorted by them then
    the ORDER BY values, as sorted runs (the map side of a window stage)."""

    partition: list[exp.Expression]
    order: list[tuple[exp.Expression, bool, bool]]   # (value, desc, nulls first)
    args: list[exp.Expression]       # the calls' arguments, evaluated before the shuffle
    fields: list[Field]


@dataclass
class WindowIn:
    """Merge the sorted runs, cut them into partitions and compute the window
    functions over each (the reduce side of a window stage)."""

    spec: WindowOut
    calls: list[WindowCall]
    fields: list[Field]


Input = Union[TableIn, OneRowIn, RowsIn, AggIn, JoinIn, "MergeIn", WindowIn]


@dataclass
class Filter:
    pred: exp.Expression


@dataclass
class Assign:
    """Bind a derived table's columns (``alias.name``) to expressions; what
    was bound before goes out of scope."""

    items: list[tuple[str, exp.Expression]]
    alias: str
    union: bool = False              # a UNION ALL branch's columns


@dataclass
class Probe:
    """Probe a broadcast hash table built from ``source`` (the small side)."""

    name: str
    kind: str                        # inner | left
    keys: list[exp.Expression]       # probe side
    small_keys: list[exp.Expression]
    key_types: list[str | None]      # common type of each key pair
    fields: list[Field]              # small side values bound on a match
    source: Union[TableIn, RowsIn]
    small_filter: exp.Expression | None
    reason: str


Op = Union[Filter, Assign, Probe]


@dataclass
class RowsOut:
    outputs: list[exp.Expression]
    visible: int
    order: list[OrderKey]
    limit: int | None
    final: bool
    sortkey: str | None = None       # name of the module function ordering the rows
    sample: bool = False             # report a random sample of the rows (range sort)


@dataclass
class RangeOut:
    """Range-partition records by the job's ``sortkey`` on boundaries the driver
    drew from a sample, as sorted runs (the map side of a total-order sort)."""

    order: list[OrderKey]
    sortkey: str = "sortkey"


@dataclass
class MergeIn:
    """Merge the sorted runs of a range partition and write the records in
    order (the reduce side of a total-order sort)."""

    sortkey: str = "sortkey"


@dataclass
class PartialAgg:
    agg: Aggregate


@dataclass
class ShuffleOut:
    tag: int
    keys: list[exp.Expression]
    key_types: list[str | None]      # the join's common key types
    fields: list[Field]
    null_tag: int | None             # None: drop NULL keys; 2: pass through as unmatched


Sink = Union[RowsOut, PartialAgg, ShuffleOut, "RangeOut", WindowOut]


@dataclass
class Phase:
    kind: str                        # map | reduce
    input: Input
    ops: list
    sink: Sink | None
    entry: str = ""
    stage: "Stage | None" = None


@dataclass(eq=False)
class Stage:
    """One MapReduce stage: map phases over tables or earlier stages' rows,
    then (optionally) reduce tasks over the hash-partitioned map output and
    over partitions an earlier stage wrote for them.  Stages are equal only
    to themselves (they refer to each other and to their phases)."""

    id: int
    maps: list[Phase] = field(default_factory=list)
    reduce: Phase | None = None
    reducers: str = "auto"           # "auto" (sized from input) or "one"
    feeds: list["Stage"] = field(default_factory=list)   # earlier stages writing partitions for our reducers
    reads: list["Stage"] = field(default_factory=list)   # earlier stages whose rows we read
    consumer: "Stage | None" = None  # the stage whose reducers read our partitions
    sorted_shuffle: bool = False     # map outputs are sorted runs (join, range sort)
    range_sort: bool = False         # a total-order sort: range partitions from a sample
    tables: list[str] = field(default_factory=list)      # base tables feeding it (reducer sizing)
    map_ops: list = field(default_factory=list)          # EXPLAIN, per map phase
    reduce_ops: list = field(default_factory=list)

    @property
    def depends(self) -> list[int]:
        return sorted({s.id for s in self.feeds + self.reads})

    @property
    def table(self) -> str | None:
        """Catalog name of the table the first map phase reads (if any)."""
        for m in self.maps:
            if isinstance(m.input, TableIn):
                return m.input.scan.table.name.lower()
        return None

    @property
    def map_entry(self) -> str | None:
        return self.maps[0].entry if self.maps else None

    @property
    def reduce_entry(self) -> str | None:
        return self.reduce.entry if self.reduce is not None else None

    @property
    def adds_partial_numbers(self) -> bool:
        """Its reducers merge one number per group by adding (a GROUP BY of
        one key and one SUM or COUNT): a combiner may add the numbers of a
        key before them (:func:`runtime.shuffle.combine`, ``merge="sum"``)."""
        r = self.reduce
        return (r is not None and isinstance(r.input, AggIn)
                and one_number(len(r.input.agg.keys), r.input.agg.scalar, r.input.slots))

    @property
    def last(self) -> list[Phase]:
        return [self.reduce] if self.reduce is not None else self.maps


# ----------------------------------------------------------------- streams

@dataclass
class Stream:
    input: Input | None
    ops: list
    stage: Stage | None              # None: a map over `input` not placed yet
    env: dict[str, Var]              # what is bound (types only)
    est: int | None                  # estimated input bytes
    reads: list[Stage] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    label: str = ""
    # a UNION ALL: the streams of its branches (each binding ``env``'s keys);
    # ``ops`` and ``reads`` apply to every branch
    parts: list["Stream"] = field(default_factory=list)


def union_type(a: str | None, b: str | None) -> str | None:
    """The type of a UNION ALL column whose branches have types ``a`` and
    ``b`` (Hive's: numbers widen; numbers and dates with text are STRING);
    None when they do not mix.

    >>> union_type("int", "bigint"), union_type("int", "double"), union_type("string", "int")
    ('bigint', 'double', 'string')
    >>> union_type(None, "date"), union_type("date", "int")
    ('date', None)
    """
    if a is None or b is None or a == b:
        return a or b
    if a in NUMERIC and b in NUMERIC:
        return "double" if "double" in (a, b) else "bigint"
    if "string" in (a, b) and {a, b} <= NUMERIC | {"string", "date"}:
        return "string"
    return None


def common_type(a: str | None, b: str | None, sql: str | None = None) -> str | None:
    """The type both sides of a join key are compared in (Hive's rules).

    >>> common_type("int", "bigint"), common_type("int", "double"), common_type("string", "int")
    ('bigint', 'double', 'double')
    """
    if a is None or b is None:
        return a or b
    if a == b:
        return a
    if a in NUMERIC and b in NUMERIC:
        return "double" if "double" in (a, b) else "bigint"
    if {a, b} <= NUMERIC | {"string"}:
        return "double"
    if {a, b} in ({"date", "string"}, {"timestamp", "string"}):
        return "string"
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    raise SqlError(f"cannot join a {a.upper()} key with a {b.upper()} key", sql, None)


def _shown(block: Block, i: int) -> str:
    """Column ``i`` of a union branch as its SELECT names it."""
    return block.names[i] if i < len(block.names) else f"column {i + 1}"


def _window_spec_key(w: exp.Window) -> str:
    """Calls with the same PARTITION BY and ORDER BY share a stage."""
    order = w.args.get("order")
    return "|".join([expr_key(p) for p in w.args.get("partition_by") or []] + ["/"] +
                    [f"{expr_key(o.this)} {bool(o.args.get('desc'))} {bool(o.args.get('nulls_first'))}"
                     for o in (order.expressions if order is not None else [])])


_WINDOW_KINDS = {exp.RowNumber: "row_number", exp.Rank: "rank", exp.DenseRank: "dense_rank",
                 exp.Sum: "sum", exp.Count: "count", exp.Avg: "avg", exp.Min: "min",
                 exp.Max: "max", exp.Lag: "lag", exp.Lead: "lead"}


def _window_call(w: exp.Window, comp: ExprCompiler, args: list[exp.Expression], ordered: bool,
                 sql: str | None) -> WindowCall:
    """The call of ``w`` (its arguments appended to ``args``) and its type."""
    fn = w.this
    kind = _WINDOW_KINDS[type(fn)]
    if kind in ("rank", "dense_rank") and not ordered:
        raise SqlError(f"{kind.upper()}() needs ORDER BY in its OVER clause", sql, _start(w))

    def arg(e: exp.Expression) -> int:
        args.append(e)
        return len(args) - 1

    if kind in ("row_number", "rank", "dense_rank"):
        return WindowCall(kind, None, 0, None, "bigint", expr_key(w), fn)
    if kind == "count" and isinstance(fn.this, exp.Star):
        return WindowCall("count_star", None, 0, None, "bigint", expr_key(w), fn)
    value = comp.value(fn.this)
    if kind in ("lag", "lead"):
        off = fn.args.get("offset")
        default = fn.args.get("default")
        typ = value.type
        if default is not None:
            dt = comp.value(default).type
            if typ is None:
                typ = dt
            elif dt is not None and dt != typ:
                typ = union_type(typ, dt)
                if typ is None:
                    raise SqlError(f"{kind.upper()}'s default is {dt.upper()}, its value "
                                   f"{value.type.upper()}", sql, _start(default))
        return WindowCall(kind, arg(fn.this), 1 if off is None else int(off.this),
                          None if default is None else arg(default), typ, expr_key(w), fn)
    if kind in ("sum", "avg") and value.type not in NUMERIC | {None}:
        raise SqlError(f"{kind.upper()} needs a number, not {value.type.upper()}", sql,
                       _start(fn.this))
    typ = {"count": "bigint", "avg": "double",
           "sum": "double" if value.type == "double" else "bigint"}.get(kind, value.type)
    return WindowCall(kind, arg(fn.this), 0, None, typ, expr_key(w), fn)


def _col(key: str) -> exp.Column:
    alias, name = key.split(".", 1)
    return exp.column(exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias, quoted=True))


class Lowering:
    """Builds the stages of one query."""

    def __init__(self, sizes: Mapping[str, int] | None = None,
                 broadcast_bytes: int | None = None, sql: str | None = None) -> None:
        self.sizes = sizes if sizes is not None else {}   # looked up by lower-case name
        self.broadcast_bytes = broadcast_bytes
        self.sql = sql
        self.stages: list[Stage] = []
        self._probes = 0
        self.range_sort_bytes = RANGE_SORT_BYTES
        self.range_sorted = False

    # ------------------------------------------------------------ helpers
    def _stage(self, reduce_input: Input | None = None, reducers: str = "auto") -> Stage:
        st = Stage(0, reducers=reducers)
        if reduce_input is not None:
            st.reduce = Phase("reduce", reduce_input, [], None, stage=st)
        self.stages.append(st)
        return st

    def _type(self, env: dict[str, Var], e: exp.Expression) -> str | None:
        return ExprCompiler(dict(env), {}, self.sql).value(e).type

    def close(self, s: Stream, sink: Sink, consumer: Stage | None) -> Stage:
        """Give stream ``s`` its sink; returns the stage that runs it."""
        if s.parts:
            return self._close_union(s, sink, consumer)
        if s.stage is None:
            st = consumer if consumer is not None else self._stage()
            st.maps.append(Phase("map", s.input, list(s.ops), sink, stage=st))
        else:
            st = s.stage
            st.reduce.ops = list(s.ops)
            st.reduce.sink = sink
            if consumer is not None:
                consumer.feeds.append(st)
                st.consumer = consumer
        for r in s.reads:
            if r not in st.reads:
                st.reads.append(r)
        for t in s.tables:
            if t not in st.tables:
                st.tables.append(t)
        if consumer is not None and consumer is not st:
            for t in s.tables:
                if t not in consumer.tables:
                    consumer.tables.append(t)
        return st

    def _close_union(self, s: Stream, sink: Sink, consumer: Stage | None) -> Stage:
        """Close every branch of a UNION ALL with (a copy of) ``sink``.  Into a
        consumer's reducers each branch goes as it is; otherwise the rows of
        all branches must be one stage's outputs: a branch that is a map
        becomes a map phase of that stage, a branch that ends in a reducer
        writes its rows and a map phase of that stage reads them."""
        for p in s.parts:
            p.reads.extend(r for r in s.reads if r not in p.reads)
        if consumer is not None:
            for p in s.parts:
                p.ops.extend(s.ops)
                self.close(p, replace(sink), consumer)
            return consumer
        st = self._stage()
        for p in s.parts:
            if p.stage is None and not p.parts:
                p.ops.extend(s.ops)
                self.close(p, replace(sink), st)
                continue
            fields = [Field(k, v.type) for k, v in p.env.items()]
            rows = self.close(p, RowsOut([_col(f.key) for f in fields], len(fields), [], None,
                                         False), None)
            st.maps.append(Phase("map", RowsIn(rows, fields), list(s.ops), replace(sink),
                                 stage=st))
            st.reads.append(rows)
            for t in rows.tables:
                if t not in st.tables:
                    st.tables.append(t)
        return st

    # ------------------------------------------------------------ blocks
    def lower(self, block: Block) -> list[Stage]:
        s = self.open_block(block)
        if block.order and block.limit is None and (s.est is None or s.est > self.range_sort_bytes):
            # ORDER BY without LIMIT over a large input: the rows are written
            # (tasks report a sample), then a sort stage range-partitions them on
            # boundaries drawn from the sample and each reducer merges its sorted
            # runs, so the reducers' outputs in partition order are the total order
            rows = self.close(s, RowsOut(block.outputs, block.visible, [], None, False,
                                         sample=True), None)
            st = self._stage(MergeIn(), "auto")
            st.range_sort = st.sorted_shuffle = True
            st.maps.append(Phase("map", RowsIn(rows, []), [], RangeOut(block.order), stage=st))
            st.reads.append(rows)
            st.tables = list(rows.tables)
            st.reduce.sink = RowsOut(block.outputs, block.visible, block.order, None, True)
            self.range_sorted = True
            return self.finish()
        self.close(s, RowsOut(block.outputs, block.visible, block.order, block.limit, True),
                   None)
        return self.finish()

    def open_block(self, block: Block) -> Stream:
        """The block's rows after FROM, WHERE, GROUP BY and HAVING."""
        s = self.source(block.source, block.post_columns())
        if block.where is not None:
            s.ops.append(Filter(block.where))
        if block.aggregate is not None:
            s = self.aggregate(s, block.aggregate)
            if block.aggregate.having is not None:
                s.ops.append(Filter(block.aggregate.having))
        if block.windows:
            s = self.windows(s, block.windows)
        return s

    def windows(self, s: Stream, calls: list[exp.Window]) -> Stream:
        """One stage per distinct PARTITION BY / ORDER BY: its maps (or the
        reducers before it) shuffle every bound value on the partition
        values, sorted by them then the order values; its reducers compute
        the stage's window functions over each partition's rows."""
        groups: dict[str, list[exp.Window]] = {}
        for w in calls:
            groups.setdefault(_window_spec_key(w), []).append(w)
        for group in groups.values():
            first = group[0]
            partition = list(first.args.get("partition_by") or [])
            order_node = first.args.get("order")
            order = [(o.this, bool(o.args.get("desc")), bool(o.args.get("nulls_first")))
                     for o in (order_node.expressions if order_node is not None else [])]
            comp = ExprCompiler(dict(s.env), {}, self.sql)
            args: list[exp.Expression] = []
            made: list[WindowCall] = []
            for w in group:
                made.append(_window_call(w, comp, args, bool(order), self.sql))
            fields = [Field(k, v.type) for k, v in s.env.items()]
            spec = WindowOut(partition, order, args, fields)
            st = self._stage(WindowIn(spec, made, fields), "auto" if partition else "one")
            st.sorted_shuffle = True
            self.close(s, spec, st)
            env = {f.key: Var("x", f.type, True) for f in fields}
            for c in made:
                env[c.key] = Var("w", c.type, True)
            s = Stream(st.reduce.input, [], st, env, s.est, [], list(st.tables))
        return s

    def aggregate(self, s: Stream, agg: Aggregate) -> Stream:
        key_types = [self._type(s.env, k) for k in agg.keys]
        slots = agg_slots(agg.aggs, ExprCompiler(dict(s.env), {}, self.sql))
        st = self._stage(AggIn(agg, key_types, slots), "one" if agg.scalar else "auto")
        self.close(s, PartialAgg(agg), st)
        env = {expr_key(k): Var("k", t, True) for k, t in zip(agg.keys, key_types)}
        for a, slot in zip(agg.aggs, slots):
            env[expr_key(a)] = Var("a", slot.type, True)
        return Stream(st.reduce.input, [], st, env, s.est, [], list(s.tables))

    # ----------------------------------------------------------- sources
    def source(self, src, needed: set[str]) -> Stream:
        """An open stream of a FROM source; ``needed``: the column keys used
        after this source is joined (what a join ships)."""
        if isinstance(src, TableSource):
            t = src.table
            env = {f"{src.alias}.{t.columns[i].name.lower()}": Var("c", t.columns[i].type, True)
                   for i in src.columns}
            env.update({f"{src.alias}.{t.partition_columns[j].name.lower()}":
                        Var("p", t.partition_columns[j].type, True) for j in src.partitions})
            scan = Scan(t, src.alias, src.columns, src.filter, list(src.partitions),
                        prune_filter(t, src.alias, src.filter), sample=src.sample)
            label = t.name if src.spelling.lower() == t.name.lower() else f"{t.name} ({src.spelling})"
            return Stream(TableIn(scan), [], None, env, self.sizes.get(t.name.lower()), [],
                          [t.name.lower()], label)
        if isinstance(src, DerivedSource):
            s = self.derived(src.block, src.alias, src.spelling)
            if src.filter is not None:
                s.ops.append(Filter(src.filter))
            return s
        if isinstance(src, OneRowSource):
            return Stream(OneRowIn(), [], None, {}, 0, [], [], "one row")
        return self.join(src, needed)

    def derived(self, block: Block | UnionBlock, alias: str, spelling: str,
                keys: list[str] | None = None) -> Stream:
        """The rows of a derived table, its columns bound to ``keys`` (by
        default ``alias.name``)."""
        if isinstance(block, UnionBlock):
            return self.union(block, alias, spelling)
        keys = keys or [f"{alias}.{n}" for n in block.out_names]
        if block.limit is not None:
            # LIMIT applies to the derived table as a whole: its rows are
            # written (top-n per task), then one task merges them
            s = self.open_block(block)
            types = [self._type(s.env, e) for e in block.outputs[:block.visible]]
            st = self.close(s, RowsOut(block.outputs, block.visible, block.order, block.limit,
                                       False), None)
            fields = [Field(k, t) for k, t in zip(keys, types)]
            env = {f.key: Var("x", f.type, True) for f in fields}
            return Stream(RowsIn(st, fields, bool(block.order), block.limit), [], None, env,
                          s.est, [st], list(s.tables), spelling)
        s = self.open_block(block)
        types = [self._type(s.env, e) for e in block.outputs[:block.visible]]
        s.ops.append(Assign(list(zip(keys, block.outputs[:block.visible])), alias))
        s.env = {k: Var("o", t, True) for k, t in zip(keys, types)}
        s.label = spelling
        return s

    def union(self, u: UnionBlock, alias: str, spelling: str) -> Stream:
        """A UNION ALL as a derived table: one stream per branch, each binding
        the derived table's columns (``alias.name``), converted to the
        column's type over all branches."""
        parts: list[Stream] = []
        values: list[list[exp.Expression]] = []
        for n, b in enumerate(u.branches):
            if b.limit is not None:
                # a branch with its own LIMIT: its rows as a table of their own
                # (bound by position: a branch's column names may repeat)
                keys = [f"_b{n}.c{i}" for i in range(b.visible)]
                s = self.derived(b, f"_b{n}", spelling, keys)
                exprs = [_col(k) for k in keys]
            else:
                s = self.open_block(b)
                exprs = list(b.outputs[:b.visible])
            parts.append(s)
            values.append(exprs)
        types: list[str | None] = []
        for i in range(u.visible):
            t = None
            for n, (s, exprs) in enumerate(zip(parts, values)):
                bt = self._type(s.env, exprs[i])
                ut = union_type(t, bt)
                if ut is None and t is not None:
                    first = next(j for j, (ps, pe) in enumerate(zip(parts, values))
                                 if self._type(ps.env, pe[i]) is not None)
                    raise SqlError(
                        f"UNION column {i + 1} is {t.upper()} in SELECT {first + 1} "
                        f"('{_shown(u.branches[first], i)}') and {bt.upper()} in SELECT {n + 1} "
                        f"('{_shown(u.branches[n], i)}'); CAST one of them", self.sql,
                        _start(exprs[i]) if _start(exprs[i]) is not None else u.starts[n],
                        "numbers mix with numbers, and numbers and dates with STRING")
                t = ut
            types.append(t)
        keys = [f"{alias}.{name}" for name in u.out_names]
        for s, exprs in zip(parts, values):
            items = []
            for key, e, t in zip(keys, exprs, types):
                if t is not None and self._type(s.env, e) != t:
                    e = exp.Cast(this=e, to=exp.DataType.build(SQLGLOT_TYPES[t]))
                items.append((key, e))
            s.ops.append(Assign(items, alias, union=True))
            s.env = {k: Var("o", t, True) for k, t in zip(keys, types)}
        est = None if any(p.est is None for p in parts) else sum(p.est for p in parts)
        tables = [t for p in parts for t in p.tables]
        return Stream(None, [], None, {k: Var("o", t, True) for k, t in zip(keys, types)}, est,
                      [], list(dict.fromkeys(tables)), spelling, parts)

    def join(self, j: JoinSource, needed: set[str]) -> Stream:
        below = needed | {f"{c.table.lower()}.{c.name.lower()}"
                          for k in j.left_keys + j.right_keys for c in k.find_all(exp.Column)}
        left = self.source(j.left, below)
        right = self.source(j.right, below)
        lt = [self._type(left.env, k) for k in j.left_keys]
        rt = [self._type(right.env, k) for k in j.right_keys]
        types = [common_type(a, b, self.sql) for a, b in zip(lt, rt)]
        limit = self.broadcast_bytes
        if j.one_row == "right":   # a cross join: the one row goes to every task
            return self._broadcast(left, right, j.left_keys, j.right_keys, types, "inner", needed,
                                   f"{right.label} is at most one row (a cross join)")
        if j.one_row == "left":
            return self._broadcast(right, left, j.right_keys, j.left_keys, types, "inner", needed,
                                   f"{left.label} is at most one row (a cross join)")

        def small(s: Stream) -> bool:
            return limit is not None and s.est is not None and s.est <= limit

        names = f"{left.label or 'left'} {self._size(left)}, {right.label or 'right'} {self._size(right)}"
        # broadcast the smaller side when it is small enough (a LEFT JOIN only its right)
        if j.kind == "inner" and small(left) and (not small(right) or left.est < right.est):
            return self._broadcast(right, left, j.right_keys, j.left_keys, types, "inner", needed)
        if small(right):
            return self._broadcast(left, right, j.left_keys, j.right_keys, types, j.kind, needed)
        if limit is None:
            reason = "input sizes unknown"
        elif j.kind == "left" and small(left):
            reason = (f"a LEFT JOIN can only broadcast its right side ({names}; "
                      f"broadcast_mb {limit / 2**20:g} MB)")
        else:
            reason = f"no side is below broadcast_mb {limit / 2**20:g} MB ({names})"
        # reduce-side: the smaller side is tag 0, buffered per key by the reducer
        lsize = left.est if left.est is not None else float("inf")
        rsize = right.est if right.est is not None else float("inf")
        left_tag = 0 if lsize <= rsize else 1
        lf = [Field(k, v.type) for k, v in left.env.items() if k in needed]
        rf = [Field(k, v.type) for k, v in right.env.items() if k in needed]
        sides = (lf, rf) if left_tag == 0 else (rf, lf)
        keys = (j.left_keys, j.right_keys) if left_tag == 0 else (j.right_keys, j.left_keys)
        labels = (left.label, right.label) if left_tag == 0 else (right.label, left.label)
        preserved = left_tag if j.kind == "left" else None
        st = self._stage(JoinIn(j.kind, sides, preserved, keys, labels, reason))
        st.sorted_shuffle = True
        self.close(left, ShuffleOut(left_tag, j.left_keys, types, lf,
                                    2 if j.kind == "left" else None), st)
        self.close(right, ShuffleOut(1 - left_tag, j.right_keys, types, rf, None), st)
        env = {f.key: Var("x", f.type, True) for f in lf + rf}
        est = None if left.est is None or right.est is None else left.est + right.est
        return Stream(st.reduce.input, [], st, env, est, [], list(st.tables),
                      f"{left.label} join {right.label}")

    def _size(self, s: Stream) -> str:
        return "size unknown" if s.est is None else size_text(s.est)

    def _broadcast(self, big: Stream, small: Stream, big_keys, small_keys, types, kind,
                   needed: set[str], why: str | None = None) -> Stream:
        name = f"b{self._probes}"
        self._probes += 1
        keys = {f"{c.table.lower()}.{c.name.lower()}" for k in small_keys for c in k.find_all(exp.Column)}
        fields = [Field(k, v.type) for k, v in small.env.items() if k in needed]
        # a materialised small side also carries its key columns (to build the table)
        written = [Field(k, v.type) for k, v in small.env.items() if k in needed or k in keys]
        reason = why or (f"{small.label} is {self._size(small)}, below broadcast_mb "
                         f"{self.broadcast_bytes / 2**20:g} MB")
        small_filter = None
        if small.stage is None and isinstance(small.input, TableIn) and not small.ops:
            source: Union[TableIn, RowsIn] = small.input
            small_filter = small.input.scan.filter
            reads: list[Stage] = []
            reason += "; each task reads it into a hash table"
        else:
            st = self.close(small, RowsOut([_col(f.key) for f in written], len(written), [], None,
                                           False), None)
            source = RowsIn(st, written)
            reads = [st]
            reason += f"; Stage-{{{id(st)}}} materialises it, each task reads it into a hash table"
        big.ops.append(Probe(name, kind, list(big_keys), list(small_keys), types, fields, source,
                             small_filter, reason))
        big.env = {**big.env, **{f.key: Var("y", f.type, True) for f in fields}}
        for r in reads:
            big.reads.append(r)
        for t in small.tables:
            if t not in big.tables:
                big.tables.append(t)
        big.label = f"{big.label} join {small.label}"
        return big

    # ------------------------------------------------------------ finish
    def finish(self) -> list[Stage]:
        """Number the stages in dependency order and name their entry points."""
        order: list[Stage] = []
        seen: set[int] = set()

        def visit(st: Stage) -> None:
            if id(st) in seen:
                return
            seen.add(id(st))
            for dep in st.feeds + st.reads:
                visit(dep)
            order.append(st)
        for st in self.stages:
            visit(st)
        for n, st in enumerate(order, 1):
            st.id = n
        for st in order:
            for i, m in enumerate(st.maps):
                m.entry = f"s{st.id}_map" if len(st.maps) == 1 else f"s{st.id}_map{i}"
            if st.reduce is not None:
                st.reduce.entry = f"s{st.id}_reduce"
            for ph in st.maps + ([st.reduce] if st.reduce else []):
                sink = ph.sink
                if isinstance(sink, RowsOut) and sink.order:
                    sink.sortkey = "sortkey" if sink.final else f"s{st.id}_sortkey"
                for op in ph.ops:
                    if isinstance(op, Probe):
                        for r in order:
                            op.reason = op.reason.replace(f"{{{id(r)}}}", str(r.id))
        self.stages = order
        return order
