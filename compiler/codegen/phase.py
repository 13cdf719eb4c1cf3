"""One phase's task function: its input loop, operator pipeline and sink.

:class:`PhaseGen` assembles ``def <entry>(ctx):`` from separately written
parts: the input loop (:mod:`compiler.codegen.inputs`) is written first,
into a block of its own, because what the sink sets up before it (the
pass-through locals of an adaptive scan) depends on what the loop turned out
to need; then the function is laid out in order: the sink's locals, the
broadcast tables, the loop, the sink's finish.  The loaders of the
broadcast tables follow the function.
"""

from __future__ import annotations

from sqlglot import exp

from compiler.exprs import Code, ExprCompiler, Var
from compiler.stages import Assign, Filter, Phase, Probe, RowsIn, TableIn
from compiler.codegen import inputs, loaders
from compiler.codegen.names import LocalNames, ModuleNames
from compiler.codegen.sinks import sink_for
from compiler.codegen.source import Src, key_expr, tuple_code


def coerce(c: Code, to: str | None) -> Code:
    """A join key value converted to the type both sides compare in."""
    if to is None or c.type == to or (c.type in ("int", "bigint") and to in ("int", "bigint")):
        return c
    if to == "double" and c.type in ("int", "bigint"):
        if not c.nullable:
            return Code(f"float({c.code})", "double", False)
        return Code(f"F.cast({c.code}, 'double')", "double", True)
    if to == "string" and c.type in ("date", "timestamp"):
        return c
    return Code(f"F.cast({c.code}, {to!r})", to, True)


class PhaseGen:
    """Writes one phase's task function, then its broadcast loaders."""

    def __init__(self, src: Src, phase: Phase, module: ModuleNames) -> None:
        self.src = src
        self.phase = phase
        self.module = module
        self.names = LocalNames(module)
        self.types: list[str | None] | None = None   # value types of a RowsOut sink's rows
        self.sink = sink_for(self, phase.sink)

    # ------------------------------------------------------------ helpers
    @property
    def batched(self) -> bool:
        """Rows arrive in blocks/batches (the sink's housekeeping runs per block)."""
        inp = self.phase.input
        return isinstance(inp, TableIn) or (isinstance(inp, RowsIn) and not inp.merge
                                            and inp.limit is None)

    def compiler(self, env: dict[str, Var]) -> ExprCompiler:
        """An expression compiler over ``env`` with temporaries of its own."""
        return ExprCompiler(env, self.module.consts, tmp_prefix=self.names.tmp_prefix())

    def bind(self, fields, record: str, offset: int, env: dict[str, Var]) -> None:
        """Bind a record's values (from ``offset``) to fresh locals under the fields' keys."""
        for i, f in enumerate(fields):
            name = self.names.fresh("x")
            self.src(f"{name} = {record}[{offset + i}]")
            env[f.key] = Var(name, f.type, True)

    def bind_keys(self, comp: ExprCompiler, keys: list, types: list) -> list[tuple[str, bool, str | None]]:
        """Join key values bound to fresh locals (converted to the key's join
        type); returns (name, may be NULL, value type) per key."""
        names = []
        for key, typ in zip(keys, types):
            c = coerce(comp.value(key), typ)
            name = self.names.fresh("j")
            self.src(f"{name} = {c.code}")
            names.append((name, c.nullable, c.type))
        return names

    @staticmethod
    def nulls(fields, env: dict[str, Var]) -> None:
        """The fields of the side a row did not match: NULL."""
        for f in fields:
            env[f.key] = Var("None", f.type, True)

    @staticmethod
    def column(key: str) -> exp.Column:
        """The qualified column an env key (``alias.name``) stands for."""
        alias, name = key.split(".", 1)
        return exp.column(exp.to_identifier(name, quoted=True),
                          table=exp.to_identifier(alias, quoted=True))

    # ------------------------------------------------------------ generate
    def generate(self) -> list[str | None]:
        """Write the function and its loaders; returns the value types of the
        rows a RowsOut sink writes."""
        src, ph, sink = self.src, self.phase, self.sink
        self.module.claim(ph.entry)
        self.names.fixed("ctx", "n_in")
        probes = [op for op in ph.ops if isinstance(op, Probe)]
        # the input loop first, as a block of its own: what the function sets
        # up before it depends on what it needed
        loop = Src()
        self.src = loop
        inputs.input_loop(self)
        self.src = src
        src(f"def {ph.entry}(ctx):")
        src.indent()
        sink.init()
        if sink.passes_through:
            sink.pass_through_init()
        for op in probes:
            self.names.fixed(f"_{op.name}get")
            src(f"_{op.name}get = _load_{op.name}(ctx).get")
        src("n_in = 0")
        if sink.stops_early:
            src("try:").indent()
        src.block(loop)
        if sink.stops_early:
            src.dedent()("except _Done:").indent()("pass").dedent()
        sink.finish()
        src("ctx.rows_in = n_in")
        src.dedent()
        src()
        for op in probes:
            if f"_load_{op.name}" not in self.module.taken:   # the branches of a union share it
                loaders.loader(self, op)
        return self.types or []

    # ----------------------------------------------------------- pipeline
    def pipeline(self, env: dict[str, Var], fast: bool, pre: exp.Expression | None = None) -> None:
        """The scan filter ``pre``, the operators, then the sink's per-row
        code; back at the starting level."""
        src = self.src
        level = src.level
        env = dict(env)
        comp = self.compiler(env)
        if pre is not None:
            src(f"if {comp.predicate(pre)}:").indent()
        for op in self.phase.ops:
            env, comp = _OPS[type(op)](self, op, env, comp)
        self.sink.row(comp, fast)
        src.level = level


def _filter(gen: PhaseGen, op: Filter, env: dict[str, Var], comp: ExprCompiler):
    gen.src(f"if {comp.predicate(op.pred)}:").indent()
    return env, comp


def _assign(gen: PhaseGen, op: Assign, env: dict[str, Var], comp: ExprCompiler):
    """A derived table's projection: its columns replace what was bound."""
    new: dict[str, Var] = {}
    for key, e in op.items:
        c = comp.value(e)
        name = gen.names.fresh("o")
        gen.src(f"{name} = {c.code}")
        new[key] = Var(name, c.type, c.nullable)
    return new, gen.compiler(new)


def _probe(gen: PhaseGen, op: Probe, env: dict[str, Var], comp: ExprCompiler):
    """Loop over the broadcast table's matches (a LEFT join: one row of NULLs
    when there is none)."""
    src = gen.src
    key = key_expr([coerce(comp.value(k), t) for k, t in zip(op.keys, op.key_types)])
    m = gen.names.fresh("m")
    if op.kind == "left":
        nulls = gen.module.const(tuple_code([tuple_code(["None"] * len(op.fields))]))
        src(f"for {m} in (_{op.name}get({key}) or {nulls}):").indent()
    else:
        src(f"for {m} in _{op.name}get({key}, ()):").indent()
    env = dict(env)
    for i, f in enumerate(op.fields):
        name = gen.names.fresh("y")
        src(f"{name} = {m}[{i}]")
        env[f.key] = Var(name, f.type, True)
    return env, gen.compiler(env)


_OPS = {Filter: _filter, Assign: _assign, Probe: _probe}
