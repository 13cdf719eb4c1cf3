"""EXPLAIN text in Hive's vocabulary.

``operator_trees`` describes what each task kind does; ``render`` lays out the
stage graph with the driver's numbers (splits, tasks, bytes, cost).

>>> import sqlglot
>>> from sqlglot import exp
>>> pretty(sqlglot.parse_one('SUBSTRING("uv"."sourceip", 1, 8)'), {"sourceip": "sourceIP"})
'substr(sourceIP, 1, 8)'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

if TYPE_CHECKING:
    from compiler.plan import QueryPlan


def pretty(node: exp.Expression, spelling: dict[str, str]) -> str:
    """An expression as a person would write it: columns unqualified in their
    catalog spelling, function names in lower case as Hive prints them."""
    def fix(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column):
            name = spelling.get(n.name.lower(), n.name)
            return exp.column(exp.to_identifier(name, quoted=False))
        return n
    text = node.copy().transform(fix).sql(dialect="hive")
    for upper, lower in (("SUBSTRING(", "substr("), ("SUM(", "sum("), ("COUNT(", "count("),
                         ("AVG(", "avg("), ("MIN(", "min("), ("MAX(", "max(")):
        text = text.replace(upper, lower)
    return text


def _ind(level: int, text: str) -> str:
    return "  " * level + text


def operator_trees(plan: "QueryPlan") -> tuple[list[str], list[str]]:
    """Lines of the map and reduce operator trees (reduce empty when map-only)."""
    table = plan.scan.table
    sp = {c.name.lower(): c.name for c in table.columns}
    P = lambda e: pretty(e, sp)  # noqa: E731
    m: list[str] = []
    lvl = 0
    m.append(_ind(lvl, "TableScan"))
    m.append(_ind(lvl + 2, f"alias: {table.name}" + (f" ({plan.scan.alias})" if plan.scan.alias != table.name.lower() else "")))
    m.append(_ind(lvl + 2, "columns read: " + (", ".join(table.columns[i].name for i in plan.scan.columns) or "(none)")))
    m.append(_ind(lvl + 2, f"location: {table.location}"))
    if plan.scan.filter is not None:
        lvl += 1
        m.append(_ind(lvl, "Filter Operator"))
        m.append(_ind(lvl + 2, f"predicate: {P(plan.scan.filter)}"))
    agg = plan.aggregate
    r: list[str] = []
    if agg is None:
        lvl += 1
        m.append(_ind(lvl, "Select Operator"))
        m.append(_ind(lvl + 2, "expressions: " + ", ".join(P(e) for e in plan.outputs)))
        _tail(m, lvl, plan)
        return m, r
    lvl += 1
    m.append(_ind(lvl, "Group By Operator"))
    if agg.aggs:
        m.append(_ind(lvl + 2, "aggregations: " + ", ".join(P(a) for a in agg.aggs)))
    if agg.keys:
        m.append(_ind(lvl + 2, "keys: " + ", ".join(P(k) for k in agg.keys)))
    m.append(_ind(lvl + 2, "mode: hash (map-side partial aggregation)"))
    lvl += 1
    m.append(_ind(lvl, "Reduce Output Operator"))
    if agg.keys:
        m.append(_ind(lvl + 2, "key expressions: " + ", ".join(P(k) for k in agg.keys)))
        m.append(_ind(lvl + 2, "partition: crc32(key) mod reducers"))
    else:
        m.append(_ind(lvl + 2, "partition: single reducer (no GROUP BY)"))
    lvl = 0
    r.append(_ind(lvl, "Group By Operator"))
    if agg.aggs:
        r.append(_ind(lvl + 2, "aggregations: " + ", ".join(P(a) for a in agg.aggs)))
    if agg.keys:
        r.append(_ind(lvl + 2, "keys: " + ", ".join(P(k) for k in agg.keys)))
    r.append(_ind(lvl + 2, "mode: mergepartial"))
    if agg.having is not None:
        lvl += 1
        r.append(_ind(lvl, "Filter Operator"))
        r.append(_ind(lvl + 2, f"predicate: {P(agg.having)}"))
    lvl += 1
    r.append(_ind(lvl, "Select Operator"))
    r.append(_ind(lvl + 2, "expressions: " + ", ".join(P(e) for e in plan.outputs)))
    _tail(r, lvl, plan)
    return m, r


def _tail(lines: list[str], lvl: int, plan: "QueryPlan") -> None:
    if plan.order:
        keys = ", ".join(f"_col{o.index} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}"
                         for o in plan.order)
        lvl += 1
        if plan.limit is not None:
            lines.append(_ind(lvl, f"Top-N Operator (per task; merged by the driver)"))
            lines.append(_ind(lvl + 2, f"keys: {keys}"))
            lines.append(_ind(lvl + 2, f"limit: {plan.limit}"))
        else:
            lines.append(_ind(lvl, "Sort Operator (per task; merge-sorted by the driver)"))
            lines.append(_ind(lvl + 2, f"keys: {keys}"))
    elif plan.limit is not None:
        lvl += 1
        lines.append(_ind(lvl, "Limit"))
        lines.append(_ind(lvl + 2, f"number of rows: {plan.limit} (tasks stop reading early)"))
    lvl += 1
    lines.append(_ind(lvl, "File Output Operator"))
    lines.append(_ind(lvl + 2, "format: sqlmr partitioned batch file (JSON rows)"))


def render(stages: list, facts: list[dict], summary: list[str]) -> str:
    """The EXPLAIN text: dependencies, then each stage's plan and numbers.

    ``facts[i]`` has the driver's numbers for stage i: ``files``, ``bytes``,
    ``splits``, ``split_size``, ``maps``, ``reducers``.
    """
    out = ["STAGE DEPENDENCIES:"]
    for s in stages:
        deps = getattr(s, "depends", None)
        out.append(f"  Stage-{s.id} is a root stage" if not deps
                   else f"  Stage-{s.id} depends on stages: " + ", ".join(f"Stage-{d}" for d in deps))
    last = stages[-1].id
    out.append(f"  Stage-0 depends on stages: Stage-{last}")
    out.append("")
    out.append("STAGE PLANS:")
    for s, f in zip(stages, facts):
        out.append(f"  Stage: Stage-{s.id}")
        out.append("    Map Reduce" if s.reduce_entry else "    Map Reduce (map only)")
        out.append(f"      Map Operator Tree: {f['maps']} map tasks over {f['splits']} splits "
                   f"of {f['files']} files, {_size(f['bytes'])}")
        for line in s.map_ops:
            out.append("          " + line)
        if s.reduce_entry:
            out.append(f"      Reduce Operator Tree: {f['reducers']} reduce task"
                       f"{'s' if f['reducers'] != 1 else ''}")
            for line in s.reduce_ops:
                out.append("        " + line)
        out.append("")
    out.append("  Stage: Stage-0")
    out.append("    Fetch Operator (driver reads the final outputs" +
               (", merging sorted runs)" if any(getattr(s, "sorted", False) for s in stages) else ")"))
    out.append("")
    out.extend(summary)
    return "\n".join(out)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
