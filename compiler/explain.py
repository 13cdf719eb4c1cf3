"""EXPLAIN text in Hive's vocabulary.

``stage_trees`` describes what each phase (task kind of a stage) does;
``render`` lays out the stage graph with the driver's numbers (splits, tasks,
bytes, cost) and which join strategy was chosen and why.

>>> import sqlglot
>>> pretty(sqlglot.parse_one('SUBSTRING("uv"."sourceip", 1, 8)'), {"sourceip": "sourceIP"})
'substr(sourceIP, 1, 8)'
"""

from __future__ import annotations

from typing import Collection

from sqlglot import exp

from compiler.codegen.tuning import (AGGR_CHECK_ROWS, AGGR_EARLY_ROWS, EARLY_MIN_REDUCTION,
                                     MIN_REDUCTION)
from compiler.shapes import UNION_ALIAS
from compiler.sizes import size_text  # noqa: F401  (also this module's API)
from compiler.stages import (AggIn, Assign, Filter, JoinIn, MergeIn, OneRowIn, PartialAgg, Probe,
                             RangeOut, RowsIn, RowsOut, ShuffleOut, TableIn, WindowIn, WindowOut)


def pretty(node: exp.Expression, spelling: dict[str, str], qualify: bool = False) -> str:
    """An expression as a person would write it: columns in their catalog
    spelling (qualified by the table alias when ``qualify``), function names in
    lower case as Hive prints them."""
    def fix(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column):
            name = spelling.get(n.name.lower(), n.name)
            if qualify and n.table:
                table = spelling.get(n.table.lower(), n.table)
                return exp.column(exp.to_identifier(name, quoted=False),
                                  table=exp.to_identifier(table, quoted=False))
            return exp.column(exp.to_identifier(name, quoted=False))
        return n
    text = node.copy().transform(fix).sql(dialect="hive")
    for upper, lower in (("SUBSTRING(", "substr("), ("SUM(", "sum("), ("COUNT(", "count("),
                         ("AVG(", "avg("), ("MIN(", "min("), ("MAX(", "max(")):
        text = text.replace(upper, lower)
    return text


def _ind(level: int, text: str) -> str:
    return "  " * level + text


def stage_trees(stages: list, spelling: dict[str, str], passing: Collection[str] = ()) -> None:
    """Fill each stage's operator trees (``map_trees`` per map phase, ``map_ops``
    for the first, ``reduce_ops``) from its phases; ``passing`` names the phases
    whose partial aggregation may give up and pass rows through."""
    for st in stages:
        st.map_trees = [phase_tree(m, spelling, m.entry in passing) for m in st.maps]
        st.map_ops = st.map_trees[0] if st.map_trees else []
        st.reduce_ops = phase_tree(st.reduce, spelling) if st.reduce is not None else []


def _phase_aliases(ph) -> set[str]:
    nodes: list[exp.Expression] = []
    inp = ph.input
    if isinstance(inp, TableIn):
        return {inp.scan.alias} | {a for op in ph.ops if isinstance(op, Probe)
                                   for a in _aliases(op.small_keys)}
    if isinstance(inp, AggIn):
        nodes += list(inp.agg.keys) + list(inp.agg.aggs)
    if isinstance(inp, JoinIn):
        nodes += list(inp.keys[0]) + list(inp.keys[1])
    if isinstance(inp, RowsIn):
        return {f.key.split(".", 1)[0] for f in inp.fields}
    return _aliases(nodes)


def _aliases(nodes) -> set[str]:
    return {c.table.lower() for n in nodes for c in n.find_all(exp.Column) if c.table}


def phase_tree(ph, spelling: dict[str, str], passing: bool = False) -> list[str]:
    """Lines of one phase's operator tree, Hive style."""
    qualify = len(_phase_aliases(ph)) > 1
    P = lambda e: pretty(e, spelling, qualify)  # noqa: E731
    m: list[str] = []
    lvl = 0
    inp = ph.input
    if isinstance(inp, TableIn):
        table = inp.scan.table
        sp = dict(spelling)
        sp.update({c.name.lower(): c.name for c in table.all_columns})
        m.append(_ind(lvl, "TableScan"))
        m.append(_ind(lvl + 2, f"alias: {table.name}" + (
            f" ({spelling.get(inp.scan.alias, inp.scan.alias)})"
            if inp.scan.alias != table.name.lower() else "")))
        m.append(_ind(lvl + 2, "columns read: " + (
            ", ".join(table.columns[i].name for i in inp.scan.columns) or "(none)")))
        if table.partition_columns:
            m.append(_ind(lvl + 2, "partition columns used: " + (", ".join(
                table.partition_columns[j].name for j in inp.scan.partitions) or "(none)")))
            _prune_text(inp.scan, sp, qualify)
            if inp.scan.prune is not None:
                m.append(_ind(lvl + 2, f"partition filter: {inp.scan.prune_text} "
                                       "(partitions pruned before planning)"))
        m.append(_ind(lvl + 2, f"location: {table.location}"))
        if inp.scan.filter is not None:
            lvl += 1
            m.append(_ind(lvl, "Filter Operator"))
            m.append(_ind(lvl + 2, f"predicate: {P(inp.scan.filter)}"))
    elif isinstance(inp, OneRowIn):
        m.append(_ind(lvl, "TableScan"))
        m.append(_ind(lvl + 2, "alias: _dummy_table (one row, no columns: SELECT without FROM)"))
    elif isinstance(inp, RowsIn):
        m.append(_ind(lvl, "TableScan"))
        m.append(_ind(lvl + 2, f"rows of Stage-{inp.stage.id}"))
        m.append(_ind(lvl + 2, "columns: " + (", ".join(P(_column(f.key)) for f in inp.fields)
                                              or "all, passed through")))
        if inp.merge or inp.limit is not None:
            how = "merged in order" if inp.merge else "read"
            lim = f", first {inp.limit} rows" if inp.limit is not None else ""
            m.append(_ind(lvl + 2, f"one task: outputs {how}{lim}"))
    elif isinstance(inp, AggIn):
        agg = inp.agg
        m.append(_ind(lvl, "Group By Operator"))
        if agg.aggs:
            m.append(_ind(lvl + 2, "aggregations: " + ", ".join(P(a) for a in agg.aggs)))
        if agg.keys:
            m.append(_ind(lvl + 2, "keys: " + ", ".join(P(k) for k in agg.keys)))
        m.append(_ind(lvl + 2, "mode: mergepartial"))
    elif isinstance(inp, MergeIn):
        m.append(_ind(lvl, "Merge Operator (sorted runs of one key range)"))
        m.append(_ind(lvl + 1, "File Output Operator"))
        m.append(_ind(lvl + 3, "order: the reducers' outputs, range after range, are the total order"))
        m.append(_ind(lvl + 3, "format: sqlmr partitioned batch file (JSON rows)"))
        return m
    elif isinstance(inp, WindowIn):
        spec = inp.spec
        m.append(_ind(lvl, "PTF Operator (windowing: sorted runs merged, cut into partitions)"))
        m.append(_ind(lvl + 2, "functions: " + ", ".join(P(c.func) for c in inp.calls)))
        m.append(_ind(lvl + 2, "partition by: " + (", ".join(P(e) for e in spec.partition)
                                                  or "(none: one partition, one reducer)")))
        if spec.order:
            m.append(_ind(lvl + 2, "order by: " + _window_order(spec, P)))
            m.append(_ind(lvl + 2, "frame: RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW "
                                   "(aggregates); a partition is held in memory"))
        else:
            m.append(_ind(lvl + 2, "frame: the whole partition (held in memory)"))
    elif isinstance(inp, JoinIn):
        kind = "Inner Join" if inp.kind == "inner" else (
            f"Left Outer Join (tag {inp.preserved} preserved)")
        m.append(_ind(lvl, "Join Operator (reduce side, sort-merge)"))
        m.append(_ind(lvl + 2, f"condition map: {kind} 0 to 1"))
        m.append(_ind(lvl + 2, "keys: " + ", ".join(
            f"{t} " + ", ".join(P(k) for k in keys) for t, keys in enumerate(inp.keys))))
        m.append(_ind(lvl + 2, f"tag 0 ({inp.labels[0]}): buffered per key; "
                               f"tag 1 ({inp.labels[1]}): streamed"))
        m.append(_ind(lvl + 2, f"chosen because: {inp.reason}"))
    for op in ph.ops:
        lvl += 1
        if isinstance(op, Filter):
            m.append(_ind(lvl, "Filter Operator"))
            m.append(_ind(lvl + 2, f"predicate: {P(op.pred)}"))
        elif isinstance(op, Assign):
            name = spelling.get(op.alias, op.alias)
            what = (f"derived table {name}" if not op.union else "UNION ALL" if
                    op.alias == UNION_ALIAS else f"UNION ALL as derived table {name}")
            m.append(_ind(lvl, f"Select Operator ({what})"))
            m.append(_ind(lvl + 2, "expressions: " + ", ".join(
                _as(P(e), spelling.get(k.split('.', 1)[1], k.split('.', 1)[1]))
                for k, e in op.items)))
        elif isinstance(op, Probe):
            kind = "Inner Join" if op.kind == "inner" else "Left Outer Join"
            m.append(_ind(lvl, "Map Join Operator (broadcast hash join)"))
            m.append(_ind(lvl + 2, f"condition: {kind}"))
            m.append(_ind(lvl + 2, "keys: " + ", ".join(
                f"{P(a)} = {P(b)}" for a, b in zip(op.keys, op.small_keys))))
            src = op.source
            if isinstance(src, TableIn):
                _prune_text(src.scan, spelling, qualify)
                cols = ", ".join([src.scan.table.columns[i].name for i in src.scan.columns] +
                                 [src.scan.table.partition_columns[j].name
                                  for j in src.scan.partitions])
                small = f"{src.scan.table.name} (columns read: {cols}" + (
                    f"; predicate: {P(op.small_filter)})" if op.small_filter is not None else ")")
            else:
                small = f"rows of Stage-{src.stage.id}"
            m.append(_ind(lvl + 2, f"small side: {small}"))
            m.append(_ind(lvl + 2, f"chosen because: {op.reason}"))
    sink = ph.sink
    if isinstance(sink, RangeOut):
        keys = ", ".join(f"_col{o.index} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}"
                         for o in sink.order)
        lvl += 1
        m.append(_ind(lvl, "Reduce Output Operator"))
        m.append(_ind(lvl + 2, f"sort keys: {keys}"))
        m.append(_ind(lvl + 2, f"partition: key ranges, boundaries drawn from a sample of "
                               f"Stage-{inp.stage.id}'s rows"))
        m.append(_ind(lvl + 2, "sort order: sort keys (sorted runs per partition)"))
    elif isinstance(sink, RowsOut):
        lvl += 1
        m.append(_ind(lvl, "Select Operator"))
        m.append(_ind(lvl + 2, "expressions: " + ", ".join(P(e) for e in sink.outputs)))
        _tail(m, lvl, sink)
    elif isinstance(sink, PartialAgg):
        agg = sink.agg
        lvl += 1
        m.append(_ind(lvl, "Group By Operator"))
        if agg.aggs:
            m.append(_ind(lvl + 2, "aggregations: " + ", ".join(P(a) for a in agg.aggs)))
        if agg.keys:
            m.append(_ind(lvl + 2, "keys: " + ", ".join(P(k) for k in agg.keys)))
        m.append(_ind(lvl + 2, "mode: hash (map-side partial aggregation)"
                     if ph.kind == "map" else "mode: hash (partial aggregation of the reducer's output)"))
        if passing:
            m.append(_ind(lvl + 2, f"adaptive: rows pass through if groups > "
                                   f"{EARLY_MIN_REDUCTION} x rows after {AGGR_EARLY_ROWS:,} rows, "
                                   f"or > {MIN_REDUCTION} x rows after {AGGR_CHECK_ROWS:,}"))
        lvl += 1
        m.append(_ind(lvl, "Reduce Output Operator"))
        if agg.keys:
            m.append(_ind(lvl + 2, "key expressions: " + ", ".join(P(k) for k in agg.keys)))
            m.append(_ind(lvl + 2, "partition: crc32(key) mod partitions"))
        else:
            m.append(_ind(lvl + 2, "partition: single reducer (no GROUP BY)"))
        if ph.kind == "reduce" and ph.stage is not None and ph.stage.consumer is not None:
            m.append(_ind(lvl + 2, f"to: Stage-{ph.stage.consumer.id} reducers"))
    elif isinstance(sink, WindowOut):
        lvl += 1
        m.append(_ind(lvl, "Reduce Output Operator (windowing)"))
        m.append(_ind(lvl + 2, "partition: " + (
            "crc32(" + ", ".join(P(e) for e in sink.partition) + ") mod partitions"
            if sink.partition else "single reducer (no PARTITION BY)")))
        m.append(_ind(lvl + 2, "sort order: partition values, then " + (
            _window_order(sink, P) if sink.order else "none") + " (sorted runs per partition)"))
        if sink.args:
            m.append(_ind(lvl + 2, "arguments: " + ", ".join(P(e) for e in sink.args)))
        if ph.kind == "reduce" and ph.stage is not None and ph.stage.consumer is not None:
            m.append(_ind(lvl + 2, f"to: Stage-{ph.stage.consumer.id} reducers"))
    elif isinstance(sink, ShuffleOut):
        lvl += 1
        m.append(_ind(lvl, "Reduce Output Operator"))
        m.append(_ind(lvl + 2, "key expressions: " + ", ".join(P(k) for k in sink.keys)))
        m.append(_ind(lvl + 2, "sort order: key, then tag (sorted runs per partition)"))
        m.append(_ind(lvl + 2, "partition: crc32(key) mod partitions"))
        m.append(_ind(lvl + 2, f"tag: {sink.tag}" + (
            "; NULL keys pass as unmatched rows" if sink.null_tag is not None
            else "; NULL keys dropped")))
        m.append(_ind(lvl + 2, "value expressions: " + (
            ", ".join(P(_column(f.key)) for f in sink.fields) or "(none)")))
        if ph.kind == "reduce" and ph.stage is not None and ph.stage.consumer is not None:
            m.append(_ind(lvl + 2, f"to: Stage-{ph.stage.consumer.id} reducers"))
    return m


def _window_order(spec, P) -> str:
    return ", ".join(f"{P(e)} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nf else 'LAST'}"
                     for e, desc, nf in spec.order)


def _prune_text(scan, spelling: dict[str, str], qualify: bool) -> None:
    """Set ``scan.prune_text``: its partition filter as EXPLAIN shows it."""
    if scan.prune is not None:
        sp = dict(spelling)
        sp.update({c.name.lower(): c.name for c in scan.table.all_columns})
        scan.prune_text = pretty(scan.prune, sp, qualify)


def sample_line(facts: dict) -> str:
    """What a TABLESAMPLE scan reads.

    >>> sample_line({"read": 3, "total": 30, "text": "TABLESAMPLE (10 PERCENT)"})
    'sample: 3 of 30 splits (TABLESAMPLE (10 PERCENT)); the result is from a sample'
    """
    return (f"sample: {facts['read']} of {facts['total']} splits ({facts['text']}); "
            f"the result is from a sample")


def partitions_line(facts: dict) -> str:
    """What partition pruning kept of a partitioned table (driver's numbers).

    >>> partitions_line({"read": 3, "total": 30, "pruned_by": "dt >= '2024-01-03'",
    ...                  "bytes": 12_100_000, "bytes_total": 120_000_000})
    "partitions: 3 of 30 (pruned by dt >= '2024-01-03'), 12.1 MB of 120.0 MB"
    """
    why = f"pruned by {facts['pruned_by']}" if facts.get("pruned_by") else "no partition filter"
    return (f"partitions: {facts['read']} of {facts['total']} ({why}), "
            f"{size_text(facts['bytes'])} of {size_text(facts['bytes_total'])}")


def _as(text: str, name: str) -> str:
    return text if text == name else f"{text} AS {name}"


def _column(key: str) -> exp.Column:
    alias, name = key.split(".", 1)
    return exp.column(exp.to_identifier(name, quoted=True),
                      table=exp.to_identifier(alias, quoted=True))


def _tail(lines: list[str], lvl: int, sink) -> None:
    merged_by = "the driver" if sink.final else "the task reading these rows"
    if sink.sample:
        lvl += 1
        lines.append(_ind(lvl, "Sample Operator (random rows per written batch, for the sort's key ranges)"))
    if sink.order:
        keys = ", ".join(f"_col{o.index} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if o.nulls_first else 'LAST'}"
                         for o in sink.order)
        lvl += 1
        if sink.limit is not None:
            lines.append(_ind(lvl, f"Top-N Operator (per task; merged by {merged_by})"))
            lines.append(_ind(lvl + 2, f"keys: {keys}"))
            lines.append(_ind(lvl + 2, f"limit: {sink.limit}"))
        else:
            lines.append(_ind(lvl, f"Sort Operator (per task; merge-sorted by {merged_by})"))
            lines.append(_ind(lvl + 2, f"keys: {keys}"))
    elif sink.limit is not None:
        lvl += 1
        lines.append(_ind(lvl, "Limit"))
        lines.append(_ind(lvl + 2, f"number of rows: {sink.limit} (tasks stop reading early)"))
    lvl += 1
    lines.append(_ind(lvl, "File Output Operator"))
    lines.append(_ind(lvl + 2, "format: sqlmr partitioned batch file (JSON rows, or binary (key, number) pairs)"))


def shuffle_line(facts: dict) -> str:
    """The shuffle a stage will use, its planned requests and why.

    >>> shuffle_line({"mode": "combine", "fine": 2048, "group": 43, "combiners": 44,
    ...     "gets": 43_514, "puts": 1_935, "reason": "combine: 1,890 maps × 473 reducers = "
    ...     "1.79M GETs direct, 44k with 44 combiners of 43 map outputs"})
    'shuffle: combine (44 combiners of 43 map outputs), 2,048 partitions per map coalesced into reducers after the maps; planned 43,514 GETs / 1,935 PUTs (combine: 1,890 maps × 473 reducers = 1.79M GETs direct, 44k with 44 combiners of 43 map outputs)'
    """
    how = (f"combine ({facts['combiners']:,} combiners of {facts['group']:,} map outputs)"
           if facts["mode"] == "combine" else "direct")
    fine = facts["fine"]
    parts = ("1 partition per map" if fine == 1 else
             f"{fine:,} partitions per map coalesced into reducers after the maps")
    return (f"shuffle: {how}, {parts}; planned {facts['gets']:,} GETs / {facts['puts']:,} PUTs "
            f"({facts['reason']})")


def render(stages: list, facts: list[dict], summary: list[str]) -> str:
    """The EXPLAIN text: dependencies, then each stage's plan and numbers.

    ``facts[i]`` has the driver's numbers for stage i: ``files``, ``bytes``,
    ``splits``, ``split_size``, ``maps``, ``reducers``; on Lambda
    ``split_choice``, the line saying how the split size was chosen, and
    ``memory``, the line giving each task kind's function memory.
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
        feeds = getattr(s, "feeds", [])
        maps = getattr(s, "maps", None)
        trees = getattr(s, "map_trees", None)
        if trees is None:
            trees = [s.map_ops]
        inputs = f.get("inputs") or [dict(f, kind="table")]
        if maps is not None and not maps:
            out.append("    Map Reduce (reduce only: its reducers read the partitions "
                       + ", ".join(f"Stage-{d.id}" for d in feeds) + " wrote)")
        else:
            out.append("    Map Reduce" if s.reduce_entry else "    Map Reduce (map only)")
        if f.get("memory"):
            out.append("      " + f["memory"])
        for i, (tree, inp) in enumerate(zip(trees, inputs)):
            label = f" ({maps[i].input.label})" if maps is not None and len(maps) > 1 else ""
            if inp.get("kind", "table") == "table":
                out.append(f"      Map Operator Tree{label}: {inp['maps']} map tasks over "
                           f"{inp['splits']} splits of {inp['files']} files, {size_text(inp['bytes'])}")
                if f.get("split_choice"):
                    out.append("        " + f["split_choice"])
                if inp.get("partitions"):
                    out.append("        " + partitions_line({**inp["partitions"],
                                                             "bytes": inp["bytes"]}))
                if inp.get("sample"):
                    out.append("        " + sample_line(inp["sample"]))
            elif inp["kind"] == "one row":
                out.append(f"      Map Operator Tree{label}: 1 map task over one row, no input")
            else:
                out.append(f"      Map Operator Tree{label}: {inp['maps']} over the rows of "
                           f"Stage-{inp['stage']}")
            for line in tree:
                out.append("          " + line)
        for small in f.get("broadcast_partitions", ()):
            out.append(f"      Broadcast side {small['table']}: {partitions_line(small)}")
        for sample in f.get("broadcast_samples", ()):
            out.append(f"      Broadcast side {sample['table']}: {sample_line(sample)}")
        if s.reduce_entry:
            also = ""
            if feeds and maps:
                also = " (also reading the partitions " + ", ".join(
                    f"Stage-{d.id}" for d in feeds) + " wrote)"
            out.append(f"      Reduce Operator Tree: {f['reducers']} reduce task"
                       f"{'s' if f['reducers'] != 1 else ''}{also}")
            if f.get("shuffle"):
                out.append("        " + shuffle_line(f["shuffle"]))
            for line in s.reduce_ops:
                out.append("        " + line)
        out.append("")
    out.append("  Stage: Stage-0")
    out.append("    Fetch Operator (driver reads the final outputs" +
               (", merging sorted runs)" if any(getattr(s, "sorted", False) for s in stages) else ")"))
    out.append("")
    out.extend(summary)
    return "\n".join(out)

