"""Broadcast loaders: ``_load_<name>(ctx)`` builds the small side's hash table.

The table (join key -> list of value tuples) is built once per process and
job and kept in ``_BC``; NULL keys never match, so they are left out.  The
small side is a table scan (fast and slow path, as a task's scan) or the
rows an earlier stage wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.exprs import Var
from compiler.stages import Probe, TableIn
from compiler.codegen import partitions, scan
from compiler.codegen.source import key_code, tuple_code

if TYPE_CHECKING:
    from compiler.codegen.phase import PhaseGen


def loader(gen: "PhaseGen", op: Probe) -> None:
    """The loader function of the broadcast hash table ``op`` probes."""
    src = gen.src
    gen.module.claim(f"_load_{op.name}")
    gen.names.fixed("key", "kept", "mark", "d", "dget", "old", "lst", "bad", "_nul", "_parse_fields", "block",
                    "line", "f", "_bad", "batch", "r", "_parse_list", "_split_esc")
    src(f"def _load_{op.name}(ctx):")
    src.indent()
    src(f"key = (ctx.event['job'], {op.name!r})")
    src("kept = _BC.get(key)")
    src("if kept is not None:").indent()
    src("ctx.side_kept(kept[1])")("return kept[0]").dedent()
    src("for old in [k for k in _BC if k[0] != key[0]]:").indent()("del _BC[old]").dedent()
    src("d = {}")
    src("dget = d.get")
    source = op.source
    if isinstance(source, TableIn):
        # every task reads the side; its malformed rows are reported once
        # (by task 0, :meth:`TaskContext.side_read`)
        src("mark = ctx.side_mark()")
        src("bad = ctx.bad")
        scan.bind_helpers(src, source.scan.table)
        fmt = scan.reader_format(source.scan)
        more = "" if fmt is None else f", {fmt!r}, bad"
        src(f"for block in ctx.side_blocks({op.name!r}{more}):").indent()
        partitions.bind(src, gen.names, source.scan)
        scan.line_loop(src, source.scan, lambda env, fast: _row(gen, op, env))
        src.dedent()
    else:
        src(f"for batch in ctx.side_batches({op.name!r}):").indent()
        src("for r in batch:").indent()
        env: dict[str, Var] = {}
        gen.bind(source.fields, "r", 0, env)
        _row(gen, op, env)
        src.dedent().dedent()
    if isinstance(source, TableIn):
        src("_BC[key] = (d, ctx.side_read(mark))")
    else:
        src("_BC[key] = (d, (0, '', '', {}))")
    src("return d")
    src.dedent()
    src()


def _row(gen: "PhaseGen", op: Probe, env: dict[str, Var]) -> None:
    """Add one small-side row to the table (if it passes the side's filter
    and its key is not NULL); back at the level it started."""
    src = gen.src
    level = src.level
    comp = gen.compiler(env)
    if op.small_filter is not None:
        src(f"if {comp.predicate(op.small_filter)}:").indent()
    names = gen.bind_keys(comp, op.small_keys, op.key_types)
    nullable = [n for n, nl, _ in names if nl]
    if nullable:
        src(f"if {' and '.join(f'{n} is not None' for n in nullable)}:").indent()
    key = key_code([n for n, *_ in names])
    tup = tuple_code([comp.value(gen.column(f.key)).code for f in op.fields])
    src(f"lst = dget({key})")
    src("if lst is None:").indent()(f"d[{key}] = [{tup}]").dedent()
    src("else:").indent()(f"lst.append({tup})").dedent()
    src.level = level
