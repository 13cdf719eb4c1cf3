"""Generating a job's Python module from its stages (:mod:`compiler.stages`).

One data-centric loop per phase (task kind of a stage): a map loop over a
table's records (text lines split only as far as the last needed field; CSV
and JSON records cut by their format's reader) converts only the
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

One concern per module: :mod:`~compiler.codegen.names` (every name, no
collisions), :mod:`~compiler.codegen.prelude` (the fixed start),
:mod:`~compiler.codegen.scan` (records to values),
:mod:`~compiler.codegen.inputs` (a loop per input kind),
:mod:`~compiler.codegen.sinks` (a class per sink),
:mod:`~compiler.codegen.loaders` (broadcast hash tables),
:mod:`~compiler.codegen.order` (sort keys) and
:mod:`~compiler.codegen.phase` (a task function from those parts).

>>> from compiler.schema import Table, Column
>>> from compiler.job import compile_select
>>> rk = Table("rankings", [Column("pageURL", "string"), Column("pageRank", "int")], "/d")
>>> src = compile_select("SELECT pageURL, pageRank FROM rankings WHERE pageRank > 1000",
...                      {"rankings": rk}).source
>>> "f = line.split(',', 2)" in src and "c1 = int(f[1])" in src and "(c1 > 1000)" in src
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.errors import SqlError
from compiler.stages import MergeIn, Probe, RowsOut, Stage, TableIn
from compiler.codegen import partitions
from compiler.codegen.names import ModuleNames, NameClash  # noqa: F401  (part of this API)
from compiler.codegen.order import sortkey
from compiler.codegen.phase import PhaseGen
from compiler.codegen.prelude import PRELUDE, PRELUDE_NAMES
from compiler.codegen.source import Src
from compiler.codegen.tuning import (AGGR_CHECK_ROWS, BATCH, MIN_REDUCTION,  # noqa: F401
                                     PASS_THROUGH_FLUSH, SAMPLE_PER_BATCH, SHUFFLE_HANDOVER)


@dataclass
class Generated:
    source: str
    output_types: list[str | None]
    map_entry: str = "s1_map"
    reduce_entry: str | None = None
    consts: dict[str, str] = field(default_factory=dict)
    passing: set[str] = field(default_factory=set)  # scan phases that may pass rows through


def generate_stages(stages: list[Stage]) -> Generated:
    """Source of the job module for a list of stages: one function per phase
    (``s<stage>_map[<i>]``, ``s<stage>_reduce``), the loaders of broadcast
    hash tables, and the ``sortkey`` functions ordered outputs are merged by."""
    module = ModuleNames()
    for name in PRELUDE_NAMES:
        module.claim(name)
    body = Src()
    final_types: list[str | None] = []
    sampled: list[str | None] = []
    passing: set[str] = set()
    sortkeys: set[str] = set()   # the map phases of a union's stage share theirs
    for st in stages:
        for ph in st.maps + ([st.reduce] if st.reduce is not None else []):
            gen = PhaseGen(body, ph, module)
            types = gen.generate()
            _prune_functions(body, module, ph)
            if gen.sink.passes_through:
                passing.add(ph.entry)
            sink = ph.sink
            if isinstance(sink, RowsOut):
                if sink.order and sink.sortkey not in sortkeys:
                    sortkeys.add(sink.sortkey)
                    sortkey(body, sink.order, module.claim(sink.sortkey))
                # the phases of one stage (a union's) agree on types; one may
                # know a type another does not (a NULL column)
                if sink.sample:
                    sampled = _known(sampled, types)
                if sink.final:
                    # a total-order sort's reducers pass the sampled rows through
                    final_types = _known(final_types, sampled if isinstance(ph.input, MergeIn)
                                         else types)
    consts = "".join(f"{name} = {code}\n" for name, code in module.consts.items())
    first = stages[0]
    source = PRELUDE + consts + "\n" + body.text()
    check_compiles(source)
    return Generated(source, final_types, first.map_entry or "",
                     stages[-1].reduce_entry, dict(module.consts), passing)


def _prune_functions(body: Src, module: ModuleNames, ph) -> None:
    """The driver's partition pruning function of each table a phase scans
    with a partition filter: ``<entry>_prune``, ``<entry>_<probe>_prune``."""
    scans = [(ph.entry, ph.input)] + [(f"{ph.entry}_{op.name}", op.source) for op in ph.ops
                                       if isinstance(op, Probe)]
    for name, inp in scans:
        if isinstance(inp, TableIn) and inp.scan.prune is not None:
            inp.scan.prune_entry = f"{name}_prune"
            partitions.prune_function(body, module, inp.scan, inp.scan.prune_entry)


def _known(a: list[str | None], b: list[str | None]) -> list[str | None]:
    """Column types from two phases writing the same rows: each one's known type."""
    return [x or y for x, y in zip(a, b)] if a else list(b)


def check_compiles(source: str) -> None:
    """Compile the module once here, so that code Python cannot compile (an
    expression past one of its parser's limits) is an error of the statement
    at compile time, never a traceback in every worker."""
    try:
        compile(source, "<sqlmr-job>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as e:
        reason = getattr(e, "msg", None) or str(e) or type(e).__name__
        raise SqlError(f"the query is too complex for the Python code sqlmr generates ({reason})",
                       hint="split long or deeply nested expressions into simpler ones") from None
