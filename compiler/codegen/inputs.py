"""Input loops, one per kind of phase input.

- a table's text splits (:func:`table_loop`, with the scan loops of
  :mod:`compiler.codegen.scan`; an adaptive aggregation gets a second loop
  that passes rows through, written as a loop of its own);
- one row of no columns (:func:`one_row_loop`: a SELECT without FROM);
- an earlier stage's rows (:func:`rows_loop`), in batches, or merged in
  order and cut at a LIMIT by one task;
- a shuffle partition of partial aggregates to merge (:func:`agg_loop`; one
  number per group: :func:`one_number_agg_loop`);
- the sorted runs of a join shuffle, merge-joined (:func:`join_loop`);
- the sorted runs of a range partition, merged (:func:`merge_loop`);
- the sorted runs of a window stage, cut into partitions whose window
  functions are computed (:func:`window_loop`).

Each leaves ``src`` at the level it started and hands each row to the
phase's pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler import aggs
from compiler.exprs import Var, expr_key
from compiler.stages import AggIn, JoinIn, MergeIn, OneRowIn, RowsIn, TableIn, WindowIn
from compiler.codegen import partitions, scan
from compiler.codegen.sinks import RowsSink, window_key
from compiler.codegen.source import Src

if TYPE_CHECKING:
    from compiler.codegen.phase import PhaseGen


def input_loop(gen: "PhaseGen") -> None:
    """The loop over the phase's input."""
    gen.names.fixed("r", "batch", "chunk", "block", "plain", "line", "f", "_bad", "bad", "_nul",
                    "_parse_fields", "_parse_list", "_split_esc")
    _LOOPS[type(gen.phase.input)](gen, gen.phase.input)


def table_loop(gen: "PhaseGen", inp: TableIn) -> None:
    src = gen.src
    table = inp.scan.table
    src("bad = ctx.bad")
    scan.bind_helpers(src, table)
    fmt = scan.reader_format(inp.scan)
    src(f"for block in ctx.blocks({'' if fmt is None else repr(fmt)}):").indent()
    if scan.records(table):
        src("n_in += len(block)")
    else:
        src("n_in += len(block) - block.count('')  # an empty line is no row")
    partitions.bind(src, gen.names, inp.scan)
    if scan.has_plain_blocks(inp.scan):
        src("plain = ctx.reader.block_plain(_nul)")
    aggregating = _scan_block(gen, inp)
    sink = gen.sink
    if sink.passes_through:
        # Hive's hive.map.aggr.hash.min.reduction: once partial aggregation is
        # seen not to shrink the rows, the rest go out as (key, number) pairs
        # and the reducers aggregate them (same records, no dict update here)
        src("if passthru:").indent()
        sink.pass_through = True
        src.block(_scan_block(gen, inp))
        sink.pass_through = False
        sink.pass_through_flush()
        src.dedent()("else:").indent()
        src.block(aggregating)
        sink.reduction_check()
        src.dedent()
    else:
        src.block(aggregating)
    src.dedent()  # out of the block loop


def _scan_block(gen: "PhaseGen", inp: TableIn) -> Src:
    """The lines of one block through the pipeline, then the sink's
    per-block code: a block of its own (level 0)."""
    outer, block = gen.src, Src()
    gen.src = block

    def lines(plain: bool) -> None:
        scan.line_loop(block, inp.scan,
                       lambda env, fast: gen.pipeline(env, fast, inp.scan.filter), plain)

    if scan.has_plain_blocks(inp.scan):
        # the same loop twice: a plain block's fast path tests less per row
        block("if plain:").indent()
        lines(True)
        block.dedent()("else:").indent()
        lines(False)
        block.dedent()
    else:
        lines(False)
    gen.sink.boundary()
    gen.src = outer
    return block


def one_row_loop(gen: "PhaseGen", inp: OneRowIn) -> None:
    """A SELECT without FROM: the pipeline runs once, over no columns."""
    src = gen.src
    src("for r in ((),):").indent()
    src("n_in += 1")
    gen.pipeline({}, False)
    src.dedent()


def rows_loop(gen: "PhaseGen", inp: RowsIn) -> None:
    src = gen.src
    env: dict[str, Var] = {}
    if inp.merge or inp.limit is not None:
        it = (f"_merge(*ctx.runs(), key={inp.stage.last[0].sink.sortkey})" if inp.merge
              else "_chain.from_iterable(ctx.batches())")
        if inp.limit is not None:
            it = f"_islice({it}, {inp.limit})"
        src(f"for r in {it}:").indent()
        src("n_in += 1")
        gen.bind(inp.fields, "r", 0, env)
        gen.pipeline(env, False)
        src.dedent()
        return
    src("for batch in ctx.batches():").indent()
    src("n_in += len(batch)")
    src("for r in batch:").indent()
    gen.bind(inp.fields, "r", 0, env)
    gen.pipeline(env, False)
    src.dedent()
    gen.sink.boundary()
    src.dedent()


def agg_loop(gen: "PhaseGen", inp: AggIn) -> None:
    """Merge partial states by group (the first record of a group is its state),
    then each group's results through the pipeline."""
    src = gen.src
    agg = inp.agg
    slots = aggs.bind_consts(inp.slots, gen.module.consts)
    multi = len(agg.keys) > 1
    if aggs.one_number(len(agg.keys), agg.scalar, slots):
        one_number_agg_loop(gen, inp)
        return
    gen.names.fixed("g", "gget", "k", "acc", *(f"k{i}" for i in range(len(agg.keys))),
                    *(f"a{j}" for j in range(len(agg.aggs))))
    sets = [pos for pos, s in aggs.positions(slots) if s.kind == "count_distinct"]
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
    merges = [line for pos, s in aggs.positions(slots) for line in aggs.merge(s, pos)]
    if merges:
        src("else:").indent()
        for m in merges:
            src(m)
        src.dedent()
    src.dedent().dedent()
    if agg.scalar:
        empty = ", ".join(x for s in slots for x in aggs.empty_state(s))
        src("if not g:").indent()
        src(f"g[0] = [0, {empty}]" if empty else "g[0] = [0]")
        for pos in sets:
            src(f"g[0][{pos + 1}] = set()")
        src.dedent()
    env: dict[str, Var] = {}
    for i, (k, t) in enumerate(zip(agg.keys, inp.key_types)):
        env[expr_key(k)] = Var(f"k{i}", t, True)
    finals = []
    for j, ((pos, s), a) in enumerate(zip(aggs.positions(slots), agg.aggs)):
        code, nullable = aggs.final(s, pos)
        env[expr_key(a)] = Var(f"a{j}", s.type, nullable)
        finals.append(code)
    src("for k, acc in g.items():").indent()
    if len(agg.keys) == 1:
        src("k0 = k")
    elif multi:
        src(", ".join(f"k{i}" for i in range(len(agg.keys))) + " = k")
    for j, code in enumerate(finals):
        src(f"a{j} = {code}")
    gen.pipeline(env, False)
    src.dedent()


def one_number_agg_loop(gen: "PhaseGen", inp: AggIn) -> None:
    """Final aggregation of groups whose state is one number (SUM, COUNT):
    records arrive as (key, number) columns and each merges in one
    statement; the groups go out as a pair batch when the result rows are
    exactly (key, aggregate)."""
    src = gen.src
    slot = inp.slots[0]
    gen.names.fixed("g", "gget", "gn", "keys", "nums", "maybe_null", "k", "v", "k0", "a0")
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
    sink = gen.sink
    if (isinstance(sink, RowsSink) and not gen.phase.ops and not sink.sink.order
            and sink.sink.limit is None and not sink.sink.sample and inp.key_types[0] == "string"
            and [gen.compiler(env).value(e).code for e in sink.sink.outputs] == ["k0", "a0"]):
        # the result rows are the groups themselves: no per-group Python
        gen.types = [inp.key_types[0], slot.type]
        src(f"out.add_pair_columns(list(g), list(g.values()), {'d' if slot.type == 'double' else 'q'!r}, 0)")
        src("n_out += len(g)")
        return
    src("for k0, a0 in g.items():").indent()
    gen.pipeline(env, False)
    src.dedent()


def merge_loop(gen: "PhaseGen", inp: MergeIn) -> None:
    """A range partition of a total-order sort: merge its sorted runs."""
    src = gen.src
    src(f"for chunk in ctx.merged({inp.sortkey}):").indent()
    src("n_in += len(chunk)")
    src("out.add_batch(0, chunk)")
    src("n_out += len(chunk)")
    src.dedent()
    gen.types = []


def join_loop(gen: "PhaseGen", inp: JoinIn) -> None:
    """Merge-join the sorted runs: the rows of tag 0 are buffered per key,
    each row of tag 1 joins the buffer; tag 2 is a preserved row whose key is
    NULL (it matches nothing)."""
    src = gen.src
    side0, side1 = inp.sides
    pres = inp.preserved
    gen.names.fixed("jbuf", "cur", "hit", "maxbuf", "jk", "t", "b")
    src("jbuf = []")
    src("cur = _NOKEY")
    src("hit = False")
    src("maxbuf = 0")

    def unmatched_buffered() -> None:
        src("if jbuf and not hit:").indent()
        src("for b in jbuf:").indent()
        env: dict[str, Var] = {}
        gen.bind(side0, "b", 2, env)
        gen.nulls(side1, env)
        gen.pipeline(env, False)
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
            gen.bind(side0, "r", 2, env)
            gen.nulls(side1, env)
        else:
            gen.nulls(side0, env)
            gen.bind(side1, "r", 2, env)
        gen.pipeline(env, False)
        src("continue").dedent()
    if pres == 0:
        src("hit = True")
    env1: dict[str, Var] = {}
    gen.bind(side1, "r", 2, env1)
    if pres == 1:
        src("if not jbuf:").indent()
        env = dict(env1)
        gen.nulls(side0, env)
        gen.pipeline(env, False)
        src("continue").dedent()
    src("for b in jbuf:").indent()
    env = dict(env1)
    gen.bind(side0, "b", 2, env)
    gen.pipeline(env, False)
    src.dedent()
    src.dedent().dedent()  # out of the chunk and merge loops
    if pres == 0:
        unmatched_buffered()
    src("ctx.counters['max_buffered'] = maxbuf")


def window_loop(gen: "PhaseGen", inp: WindowIn) -> None:
    """A window stage's partitions (its sorted runs merged, cut where the
    partition values change): the window functions over each partition's
    rows, then each row, with its values, through the pipeline."""
    src = gen.src
    gen.names.fixed("part", "wv", "w")
    key = window_key(gen, inp.spec)
    calls = gen.module.const(repr(tuple((c.kind, c.arg, c.offset, c.default) for c in inp.calls)))
    src(f"for part in _W.partitions(ctx.merged({key})):").indent()
    src("n_in += len(part)")
    src(f"wv = _W.values(part, {calls}, {bool(inp.spec.order)})")
    src("for r, w in zip(part, wv):").indent()
    env: dict[str, Var] = {}
    gen.bind(inp.fields, "r", 3, env)
    for i, c in enumerate(inp.calls):
        name = gen.names.fresh("wv")
        src(f"{name} = w[{i}]")
        env[c.key] = Var(name, c.type, True)
    gen.pipeline(env, False)
    src.dedent().dedent()


_LOOPS = {TableIn: table_loop, OneRowIn: one_row_loop, RowsIn: rows_loop, AggIn: agg_loop, JoinIn: join_loop,
          MergeIn: merge_loop, WindowIn: window_loop}
