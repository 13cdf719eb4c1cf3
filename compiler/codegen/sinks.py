"""Sinks: where a phase's rows go, one class per kind of stage sink.

Each sink writes its locals (:meth:`Sink.init`), its per-row code
(:meth:`Sink.row`), what runs after each block or batch of input
(:meth:`Sink.boundary`) and what runs after the input (:meth:`Sink.finish`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler import aggs
from compiler.exprs import Code, ExprCompiler
from compiler.stages import (AggIn, MergeIn, PartialAgg, RangeOut, RowsOut, ShuffleOut, TableIn,
                             WindowOut)
from compiler.codegen.source import key_code, key_expr
from compiler.codegen.tuning import (AGGR_CHECK_ROWS, AGGR_EARLY_ROWS, BATCH, EARLY_MIN_REDUCTION,
                                     MIN_REDUCTION, PASS_THROUGH_FLUSH,
                                     PASS_THROUGH_FLUSH_MAX, PASS_THROUGH_PER_PARTITION,
                                     SAMPLE_PER_BATCH, SHUFFLE_HANDOVER)

if TYPE_CHECKING:
    from compiler.codegen.phase import PhaseGen

# the key a preserved row with a NULL join key is shuffled under (it matches nothing)
_SENTINEL = {"string": "''", "date": "''", "timestamp": "''", "int": "0", "bigint": "0", "double": "0.0",
             "boolean": "False", None: "''"}


class Sink:
    """The code of one phase's sink; ``gen`` is the phase being written."""

    passes_through = False   # an adaptive scan aggregation (see PartialAggSink)
    stops_early = False      # the task stops reading once it has enough rows (raises _Done)

    def __init__(self, gen: "PhaseGen", sink) -> None:
        self.gen = gen
        self.sink = sink

    @property
    def src(self):
        return self.gen.src

    def init(self) -> None:
        """Locals set up before the input loop."""

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        """The code for one row (``comp`` compiles over its values)."""
        raise NotImplementedError

    def boundary(self) -> None:
        """After each block or batch of input."""

    def finish(self) -> None:
        """After the input: write what is held, set ``ctx.rows_out``."""

    def pass_through_init(self) -> None:
        """Locals of the loop that passes rows through (only when :attr:`passes_through`)."""


class RowsSink(Sink):
    """Rows to the output (the final result, or rows a later stage reads),
    in batches; ordered and limited per task as the sink says."""

    sink: RowsOut

    def init(self) -> None:
        src = self.src
        self.gen.names.fixed("out", "rows", "append", "n_out", "_sample")
        src("out = ctx.writer()")
        src("rows = []")
        src("append = rows.append")
        src("n_out = 0")
        if self.sink.sample:
            src("_sample = _Random(ctx.event['task']).sample")

    @property
    def stops_early(self) -> bool:
        """A LIMIT without ORDER BY: the task stops once it has enough rows."""
        return self.sink.limit is not None and not self.sink.order

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        gen, src, sink = self.gen, self.src, self.sink
        codes = [comp.value(e) for e in sink.outputs]
        if gen.types is None:
            gen.types = [c.type for c in codes]
        else:
            gen.types = [t or c.type for t, c in zip(gen.types, codes)]
        src("append([" + ", ".join(c.code for c in codes) + "])")
        if self.stops_early:
            src(f"if n_out + len(rows) >= {sink.limit}:").indent()("raise _Done").dedent()
        elif not gen.batched:
            self.housekeeping()

    def boundary(self) -> None:
        if not self.stops_early:
            self.housekeeping()

    def housekeeping(self) -> None:
        """Keep the row buffer small: a top-n trims it, otherwise full batches go out."""
        src, sink = self.src, self.sink
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

    def finish(self) -> None:
        src, sink = self.src, self.sink
        if sink.sample:
            src(f"ctx.sample.extend(_sample(rows, min(len(rows), {SAMPLE_PER_BATCH})))")
        if self.stops_early:
            src(f"del rows[max(0, {sink.limit} - n_out):]")
        if isinstance(self.gen.phase.input, MergeIn):
            pass  # already in order
        elif sink.order and sink.limit is not None:
            src(f"rows = _nsmallest({sink.limit}, rows, key={sink.sortkey})")
        elif sink.order:
            src(f"rows.sort(key={sink.sortkey})")
        src(f"for i in range(0, len(rows), {BATCH}):").indent()
        src(f"out.add_batch(0, rows[i:i + {BATCH}])").dedent()
        src("n_out += len(rows)")
        src("ctx.rows_out = n_out")


class RangeSink(Sink):
    """Records range-partitioned by the sort key (the map side of a total-order sort)."""

    sink: RangeOut

    def init(self) -> None:
        src, key = self.src, self.sink.sortkey
        self.gen.names.fixed("out", "parts", "bounds", "n_out")
        src(f"out = ctx.writer(sort={key})")
        src("parts = ctx.event['partitions'] or 1")
        src(f"bounds = [{key}(b) for b in ctx.params.get('bounds', [])]")
        src("n_out = 0")

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        self.src(f"out.add(_bisect(bounds, {self.sink.sortkey}(r)), r)")
        self.src("n_out += 1")

    def finish(self) -> None:
        self.src("ctx.rows_out = n_out")


class PartialAggSink(Sink):
    """Hash partial aggregation, partitioned on the group key.

    A scan's groups whose state is one number that cannot be NULL update in
    one statement (``g[k] += v``, a defaultdict); rows that took the slow path
    go to a second dict.  When that number travels under a single STRING key,
    the scan may give up aggregating (Hive's ``hive.map.aggr.hash.min.reduction``):
    once aggregation is seen not to shrink the rows, the rest go out as
    (key, number) pairs and the reducers aggregate them.
    """

    sink: PartialAgg

    def __init__(self, gen: "PhaseGen", sink) -> None:
        super().__init__(gen, sink)
        self.slots: list[aggs.AggSlot] = []
        self.key_types: list[str | None] = []
        self.scalar_fast = False   # a scan's one-number state updates in one statement
        self.scalar_kind: str | None = None   # how that number travels: "d", "q" or as JSON
        self.pass_through = False  # writing the loop that passes rows through

    @property
    def scan(self) -> bool:
        return isinstance(self.gen.phase.input, TableIn)

    @property
    def passes_through(self) -> bool:
        """The scan's aggregation may switch to passing rows through: its
        state is one number under a single text key (pair batches)."""
        return (self.scan and self.scalar_fast and self.key_types == ["string"]
                and self.scalar_kind is not None)

    def init(self) -> None:
        src, names = self.src, self.gen.names
        if not self.scan:
            name = "g2" if isinstance(self.gen.phase.input, AggIn) else "g"
            names.fixed(name)
            src(f"{name} = {{}}")
        else:
            # a defaultdict lets a one-number state update in one statement
            # (g[k] += v); list states still go through gget, which never inserts
            names.fixed("g", "gget", "gs")
            src("g = _defaultdict(int)")
            src("gget = g.get")
            src("gs = {}  # groups fed by rows that took the slow (NULL-aware) path")

    def pass_through_init(self) -> None:
        """The locals of the pass-through loop (written once the loops are)."""
        self.gen.names.fixed("out", "parts", "pks", "pvs", "kas", "vas", "n_passed", "n_mark",
                             "passthru", "check_at", "full_at", "flush_at")
        src = self.src
        src("out = ctx.writer()")
        src("parts = ctx.event['partitions'] or 1")
        # each row's key is hashed as it is read, into its partition's lists:
        # cheaper than collecting every pair and splitting them afterwards
        src("pks = [[] for _ in range(parts)]  # keys and numbers passed through, by partition")
        src("pvs = [[] for _ in range(parts)]")
        src("kas = [ks.append for ks in pks]")
        src("vas = [vs.append for vs in pvs]")
        src("n_passed = 0")
        src("n_mark = 0  # n_in when the pairs were last handed over")
        src("passthru = False")
        src(f"full_at = ctx.params.get('aggr_check_rows') or {AGGR_CHECK_ROWS}")
        src(f"check_at = min(full_at, ctx.params.get('aggr_early_rows') or {AGGR_EARLY_ROWS})"
            "  # an early look first")
        # pairs handed over at once: enough that every partition gets a
        # batch of a few hundred (one encoded batch per partition per flush)
        src(f"flush_at = min({PASS_THROUGH_FLUSH_MAX}, max({PASS_THROUGH_FLUSH}, "
            f"{PASS_THROUGH_PER_PARTITION} * (ctx.event['partitions'] or 1)))")

    def pass_through_flush(self) -> None:
        """After a block passed through: hand the pairs over when there are enough."""
        src = self.src
        src("if n_in - n_mark >= flush_at:").indent()
        src(f"n_passed += out.add_pair_partitions(pks, pvs, {self.scalar_kind!r})")
        src("n_mark = n_in").dedent()

    def reduction_check(self) -> None:
        """After a block aggregated: judge the reduction once, after enough rows."""
        src = self.src
        src("if n_in >= check_at:").indent()
        # nearly every row a new group after the first rows: the full check
        # would say the same, so stop paying for the dict now
        src("if n_in < full_at:").indent()
        src("check_at = full_at")
        src(f"passthru = len(g) > n_in * {EARLY_MIN_REDUCTION}").dedent()
        src("else:").indent()
        src("check_at = 1 << 62  # checked once")
        src(f"passthru = len(g) > n_in * {MIN_REDUCTION}").dedent()
        # what the driver estimates the stage's groups from (how often keys repeat)
        src("ctx.counters['agg_rows'] = n_in")
        src("ctx.counters['agg_groups'] = len(g)").dedent()

    def _dict(self, fast: bool) -> tuple[str, str]:
        """(dict, getter) the partial aggregation of this path updates."""
        if self.scan:
            return ("g", "gget") if fast else ("gs", "gs.get")
        if isinstance(self.gen.phase.input, AggIn):
            return ("g2", "g2.get")
        return ("g", "g.get")

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        src, agg = self.src, self.sink.agg
        self.gen.names.fixed("k", "acc")
        slots = aggs.agg_slots(agg.aggs, comp)
        self.slots = slots
        keys = [comp.value(k) for k in agg.keys]
        self.key_types = [k.type for k in keys]
        src(f"k = {key_expr(keys)}")
        args = []
        for j, s in enumerate(slots):
            if s.arg is None:
                args.append(Code("1", None, False))
                continue
            c = comp.value(s.arg)
            if c.code.isidentifier():  # a column: no copy needed
                args.append(c)
                continue
            self.gen.names.fixed(f"v{j}")
            src(f"v{j} = {c.code}")
            args.append(Code(f"v{j}", c.type, c.nullable))
        one_number = len(slots) == 1 and slots[0].kind in ("count_star", "sum", "count")
        if fast and self.scan and one_number and not args[0].nullable:
            self.scalar_fast = True
            s = slots[0]
            # how the one number travels in a pair batch: int64, float64, or as JSON
            self.scalar_kind = ("q" if s.kind in ("count_star", "count") or args[0].type in ("int", "bigint")
                                else "d" if args[0].type == "double" else None)
            inc = "1" if s.kind in ("count_star", "count") else args[0].code
            if self.pass_through:
                # the partition runtime.shuffle.partition_of gives a text key
                self.gen.names.fixed("p")
                src("try:").indent()("p = _crc32(k.encode()) % parts").dedent()
                src("except (AttributeError, UnicodeEncodeError):  # NULL, a lone surrogate").indent()
                src("p = _partition_of(k, parts)").dedent()
                src("kas[p](k)")
                src(f"vas[p]({inc})")
            else:
                src(f"g[k] += {inc}")
            return
        target, getter = self._dict(fast)
        src(f"acc = {getter}(k)")
        src("if acc is None:").indent()
        src(f"{target}[k] = [" + ", ".join(aggs.init(s, a) for s, a in zip(slots, args)) + "]")
        src.dedent()
        updates = [u for (pos, s), a in zip(aggs.positions(slots), args) for u in aggs.update(s, a, pos)]
        if updates:
            src("else:").indent()
            for u in updates:
                src(u)
            src.dedent()

    def finish(self) -> None:
        src = self.src
        self.gen.names.fixed("out", "parts", "bufs", "p", "buf", "chunk", "i")
        sets = [pos for pos, s in aggs.positions(self.slots) if s.kind == "count_distinct"]
        src("out = ctx.writer()")
        src("parts = ctx.event['partitions'] or 1")
        src("bufs = [[] for _ in range(parts)]")
        if self.scan:
            dicts = (("g", self.scalar_fast), ("gs", False))
        else:
            dicts = (("g2" if isinstance(self.gen.phase.input, AggIn) else "g", False),)
        # a single string key hashes inline, exactly as runtime.shuffle.partition_of does
        str_key = len(self.key_types) == 1 and self.key_types[0] == "string"
        part = "_crc32(k.encode()) % parts" if str_key else "_partition_of(k, parts)"
        for name, scalar in dicts:
            if scalar and self.passes_through:
                # text keys, one number: pair batches (numbers in binary),
                # split by partition in C
                kind = self.scalar_kind
                src(f"n_passed += out.add_pair_partitions(pks, pvs, {kind!r})")
                src(f"out.add_pair_columns(list({name}), list({name}.values()), {kind!r})")
                continue
            if scalar:
                # (key, number) pairs: grouped by partition in C
                src(f"for p, chunk in enumerate(_split_items(list({name}.items()), {name}, parts)):").indent()
                src("bufs[p].extend(chunk)").dedent()
                continue
            src(f"for k, acc in {name}.items():").indent()
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


class ShuffleSink(Sink):
    """Join records partitioned on the join key and tagged by side, collected
    in local lists per partition and handed to the sorting writer in bulk (no
    call into the runtime per record)."""

    sink: ShuffleOut

    def init(self) -> None:
        src, sink = self.src, self.sink
        self.gen.names.fixed("out", "parts", "sbufs", "sadd", "n_out", "n_handed", "handover",
                             "nullpart")
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

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        gen, src, sink = self.gen, self.src, self.sink
        names = gen.bind_keys(comp, sink.keys, sink.key_types)
        key = key_code([n for n, *_ in names])
        vals = [comp.value(gen.column(f.key)).code for f in sink.fields]
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
                skey = key_code([_SENTINEL.get(t, "''") for t in sink.key_types])
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
        if not gen.batched:
            self.hand_over()

    def boundary(self) -> None:
        self.hand_over()

    def hand_over(self, final: bool = False) -> None:
        """Move the local record lists into the sorting writer (when enough
        records wait, or at the end)."""
        src = self.src
        if not final:
            src("if n_out - n_handed >= handover:").indent()
        src("for p, b in enumerate(sbufs):").indent()
        src("out.add_batch(p, b)")
        src("b.clear()").dedent()
        src("n_handed = n_out")
        if not final:
            src.dedent()

    def finish(self) -> None:
        self.hand_over(final=True)
        self.src("ctx.rows_out = n_out")


def window_key(gen: "PhaseGen", spec: WindowOut) -> str:
    """The module constant of a window stage's record order (shared by its
    writers and its reducers' merge, :func:`runtime.windows.sort_key`)."""
    order = tuple((desc, nulls_first) for _, desc, nulls_first in spec.order)
    return gen.module.const(f"_W.sort_key({order!r})")


class WindowSink(Sink):
    """Records of a window stage: [partition values, order values, the
    calls' arguments, every bound value], hash-partitioned on the partition
    values, handed to a writer that sorts its runs by :func:`window_key`."""

    sink: WindowOut

    def init(self) -> None:
        src = self.src
        self.gen.names.fixed("out", "parts", "n_out")
        src(f"out = ctx.writer(sort={window_key(self.gen, self.sink)})")
        src("parts = ctx.event['partitions'] or 1")
        src("n_out = 0")

    def row(self, comp: ExprCompiler, fast: bool) -> None:
        gen, src, sink = self.gen, self.src, self.sink

        def listed(exprs) -> str:
            return "[" + ", ".join(comp.value(e).code for e in exprs) + "]"
        pkey = gen.names.fresh("wp")
        src(f"{pkey} = {listed(sink.partition)}")
        vals = [comp.env[f.key].name for f in sink.fields]   # aggregates' and windows' keys too
        rec = ", ".join([pkey, listed([e for e, _, _ in sink.order]), listed(sink.args)] + vals)
        part = f"_partition_of({pkey}, parts) if parts > 1 else 0" if sink.partition else "0"
        src(f"out.add({part}, [{rec}])")
        src("n_out += 1")

    def finish(self) -> None:
        self.src("ctx.rows_out = n_out")


SINKS: dict[type, type[Sink]] = {RowsOut: RowsSink, RangeOut: RangeSink, PartialAgg: PartialAggSink,
                                 ShuffleOut: ShuffleSink, WindowOut: WindowSink}


def sink_for(gen: "PhaseGen", sink) -> Sink:
    """The sink code writer of a stage sink."""
    return SINKS[type(sink)](gen, sink)
