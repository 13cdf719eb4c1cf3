"""Partition columns in generated code: their values per block, and the
driver's pruning functions.

A partitioned table's split carries its partition's values as the folder
names spelt them (``None``: Hive's default partition); a task sees them as
``ctx.partition`` while it reads that split's blocks.  A scan that uses
partition columns binds them once per block (``p<j>``, always nullable:
Hive's default partition and a value that does not parse as the column's
type are NULL), so the line loop is the same as an unpartitioned table's.

The pruning function of a scan, ``<name>(pv)``, takes those values and
returns whether the scan's partition filter is TRUE for them; it converts and
compares with the code the tasks run (:func:`runtime.sqlfuncs.partition_value`,
:class:`compiler.exprs.ExprCompiler`), so the driver cannot prune a
partition the tasks would have read rows from.

>>> from compiler.schema import Table, Column
>>> from compiler.plan import Scan
>>> from compiler.codegen.source import Src
>>> from compiler.codegen.names import ModuleNames
>>> import sqlglot
>>> t = Table("t", [Column("a", "int")], "/x", partition_columns=[Column("dt", "date"), Column("c", "string")])
>>> s = Scan(t, "t", [0], None, [1], sqlglot.parse_one("t.c = 'US'"))
>>> src = Src(); prune_function(src, ModuleNames(), s, "s1_map_prune"); print(src.text(), end="")
def s1_map_prune(pv):
    p1 = F.partition_value(pv[1], 'string')
    return bool((((_t0_0 := p1) is not None) and _t0_0 == 'US'))
"""

from __future__ import annotations

from sqlglot import exp

from compiler.exprs import ExprCompiler, Var
from compiler.codegen.names import LocalNames, ModuleNames
from compiler.codegen.source import Src


def partition_env(scan) -> dict[str, Var]:
    """The partition columns a scan uses, bound to ``p<index>``."""
    cols = scan.table.partition_columns
    return {f"{scan.alias}.{cols[j].name.lower()}": Var(f"p{j}", cols[j].type, True)
            for j in getattr(scan, "partitions", ())}


def bind(src: Src, names: LocalNames, scan) -> None:
    """At the top of a block loop: the partition columns the scan uses, from
    the values of the split the block is from (nothing when it uses none)."""
    if not getattr(scan, "partitions", None):
        return
    cols = scan.table.partition_columns
    names.fixed("_pv", *(f"p{j}" for j in scan.partitions))
    src("_pv = ctx.partition")
    for j in scan.partitions:
        src(f"p{j} = F.partition_value(_pv[{j}], {cols[j].type!r})")


def prune_function(src: Src, module: ModuleNames, scan, name: str) -> None:
    """``def <name>(pv)``: whether ``scan.prune`` is TRUE for a partition's values."""
    module.claim(name)
    cols = scan.table.partition_columns
    used = sorted({scan.table.partition_index(c.name) for c in scan.prune.find_all(exp.Column)})
    env = {f"{scan.alias}.{cols[j].name.lower()}": Var(f"p{j}", cols[j].type, True)
           for j in used}
    pred = ExprCompiler(env, module.consts, tmp_prefix="_t0_").predicate(scan.prune)
    src(f"def {name}(pv):").indent()
    for j in used:
        src(f"p{j} = F.partition_value(pv[{j}], {cols[j].type!r})")
    src(f"return bool({pred})").dedent()
    src()
