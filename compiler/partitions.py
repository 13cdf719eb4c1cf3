"""Partition pruning: the part of a scan's filter the driver can decide per
partition, before any split is planned.

A conjunct of a scan's WHERE that reads only the table's partition columns
(at least one of them) is the same for every row of a partition, so a
partition where it is not TRUE holds no row the query keeps.  Such conjuncts
are compiled into a module function (:mod:`compiler.codegen.partitions`) with
the same expression compiler the scan's filter uses, so pruning cannot
disagree with filtering; the filter still runs in the tasks.

>>> import sqlglot
>>> from compiler.schema import Table, Column
>>> t = Table("t", [Column("a", "int")], "/x",
...           partition_columns=[Column("dt", "date"), Column("c", "string")])
>>> w = sqlglot.parse_one("t.dt >= '2024-01-03' AND (t.c = 'US' OR t.a > 1) AND UPPER(t.c) IN ('US', 'FR')")
>>> prune_filter(t, "t", w).sql()
"t.dt >= '2024-01-03' AND UPPER(t.c) IN ('US', 'FR')"
>>> prune_filter(t, "t", sqlglot.parse_one("t.a > 1 OR t.dt IS NULL")) is None
True
"""

from __future__ import annotations

from sqlglot import exp

from compiler.blocks import and_all, conjuncts
from compiler.schema import Table

# functions whose value is not a function of their arguments: never evaluated
# once per partition in place of once per row
VOLATILE = tuple(getattr(exp, n) for n in ("Rand", "Randn", "Uuid") if hasattr(exp, n))


def prune_filter(table: Table, alias: str, filt: exp.Expression | None) -> exp.Expression | None:
    """The conjuncts of ``filt`` over ``alias``'s partition columns only, ANDed
    (None when there are none or the table is not partitioned)."""
    if not table.partition_columns or filt is None:
        return None
    keep = []
    for c in conjuncts(filt):
        cols = list(c.find_all(exp.Column))
        if not cols or any(not col.table or col.table.lower() != alias
                           or table.partition_index(col.name) is None for col in cols):
            continue
        if any(isinstance(n, VOLATILE + (exp.AggFunc, exp.Subquery, exp.Select))
               for n in c.walk()):
            continue
        keep.append(c)
    return and_all(keep)
