"""``--dry-run``: what a query would read and cost, with nothing run.

The plan is the one a run would use (:func:`sqlmr.driver.plan_job`): the
splits of each table (count, files, bytes; every split with ``-v``), the
tasks, and the estimate EXPLAIN prints, with its basis and the ``max_cost``
verdict.  Nothing is invoked: no task, no deployment, no scratch.
"""

from __future__ import annotations

from compiler.sizes import size_text
from compiler.stages import TableIn
from sqlmr import cost as costs
from sqlmr.config import Settings
from sqlmr.cost_guard import basis_text, over_estimate
from sqlmr.driver import StagePlan, _probes, estimate
from sqlmr.render import plural, table_text


def split_rows(plans: list[StagePlan]) -> list[tuple[str, str, dict]]:
    """(table, how it is read, split) for every split a job reads: a scanned
    table's splits, and the splits of a small table broadcast to the tasks."""
    out = []
    for p in plans:
        for i in p.inputs:
            if i.rows_from is None and not i.one_row:
                name = i.phase.input.scan.table.name
                out += [(name, f"Stage-{p.stage.id} scan", sp) for t in i.tasks for sp in t]
        for _, op in _probes(p.stage):
            if isinstance(op.source, TableIn) and op.name in p.broadcast:
                name = op.source.scan.table.name
                out += [(name, f"Stage-{p.stage.id} broadcast", sp)
                        for sp in p.broadcast[op.name].get("splits", [])]
    return out


def dry_run_text(plans: list[StagePlan], settings: Settings, action: str,
                 every_split: bool = False) -> str:
    """The report of a dry run of one query (``action``: what the statement
    would do with the result)."""
    rows: dict[tuple[str, str], list] = {}
    for table, how, sp in split_rows(plans):
        r = rows.setdefault((table, how), [table, how, set(), 0, 0])
        r[2].add(sp["uri"])
        r[3] += sp["end"] - sp["start"]
        r[4] += 1
    maps = {p.stage.id: p.map_tasks for p in plans}
    body = [[t, how, len(files), size_text(nbytes), n]
            for t, how, files, nbytes, n in rows.values()]
    lines = ["Dry run: nothing was run (no task, no deployment)."]
    if body:
        lines.append(table_text(["table", "read by", "files", "bytes", "splits"], body,
                                [None, None, "int", None, "int"]))
    else:
        lines.append("No table is read.")
    if every_split:
        splits = [[t, how, sp["uri"], sp["start"], sp["end"]] for t, how, sp in split_rows(plans)]
        if splits:
            lines.append(table_text(["table", "read by", "file", "start", "end"], splits,
                                    [None, None, None, "int", "int"]))
    lines.append("Tasks: " + "; ".join(
        f"Stage-{p.stage.id}: {plural(maps[p.stage.id], 'map task')}"
        + (f", {plural(p.reducers, 'reduce task')}" if p.reducers else "") for p in plans))
    est, lam = estimate(plans, settings)
    lines.append(f"Estimate: {costs.money(lam.total)}. Basis: {basis_text(est, lam, settings)}")
    lines.append(f"Athena for the same bytes: {costs.money(costs.athena_cost(est.bytes_read))}")
    if settings.max_cost > 0:
        verdict = ("over it: a run would be refused" if over_estimate(plans, settings)
                   else "within it")
        lines.append(f"max_cost {costs.money(settings.max_cost)}: the estimate is {verdict}")
    lines.append(f"Would: {action}")
    return "\n".join(lines)
