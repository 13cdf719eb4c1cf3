"""The ``sqlmr bench`` table for a terminal: as many columns as fit the width.

Columns come in three groups under a group header line -- **published**
(5nodes, 2014), **measured here** (this machine, this scale) and **modeled
5nodes** (sqlmr on Lambda, :mod:`sqlmr.bench_model`) -- each with a priority.
The least important columns are left out until the table fits; a footer
names every column's unit and source, the model's assumptions, and what was
left out (``--wide`` and ``--format csv|json`` keep every column).

>>> cols = [Column("", "q", "query", 0, None), Column("g", "a", "aaaa", 1, None),
...         Column("g", "b", "bbbb", 2, None)]
>>> [c.key for c in fit(cols, {"q": 5, "a": 4, "b": 4}, {"g": "group"}, 15)]
['q', 'a']
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable

from sqlmr import bench_model as bm
from sqlmr import bench_published as pub
from sqlmr import cost as costs
from sqlmr import prices
from sqlmr.bench import QueryRun, _crawl_text, _money, _secs
from sqlmr.render import size_text

GROUP_GAP = " | "     # between groups
COLUMN_GAP = " "      # between the columns of one group
MARKS = {"ok": "✓", "wrong": "✗", "error": "!", "not yet supported": "-"}


@dataclass(frozen=True)
class Column:
    group: str                     # "" for the query column
    key: str
    header: str                    # "\n" splits it over two lines
    priority: int                  # 0 always shown; higher numbers leave first
    value: Callable[[QueryRun], str] | None


def _published(system: str) -> Callable[[QueryRun], str]:
    return lambda q: _secs(pub.PUBLISHED_SECONDS[system].get(q.query))


def _ref2016(i: int) -> Callable[[QueryRun], str]:
    def value(q: QueryRun) -> str:
        ref = pub.REFERENCE_2016.get(q.query)
        if ref is None:
            return ""
        return _secs(ref[0]) if i == 0 else _money(ref[1])
    return value


def _ran(get: Callable[[QueryRun], str]) -> Callable[[QueryRun], str]:
    return lambda q: get(q) if q.times else ""


def _modeled(get: Callable[[QueryRun], str]) -> Callable[[QueryRun], str]:
    return lambda q: get(q) if q.projection is not None else ""


def _tasks(q: QueryRun) -> str:
    return f"{q.map_tasks}" + (f"+{q.reduce_tasks}" if q.reduce_tasks else "")


# Group keys; their titles depend on the run (the scale).
PUBLISHED, MEASURED, MODELED = "published", "measured", "modeled"

COLUMNS: list[Column] = [
    Column("", "query", "query", 0, lambda q: f"{q.query} {MARKS.get(q.status, '?')}"),
    Column(PUBLISHED, "redshift", "Redshift", 1, _published("Redshift")),
    Column(PUBLISHED, "impala_disk", "Impala\ndisk", 6, _published("Impala disk")),
    Column(PUBLISHED, "impala_mem", "Impala\nmem", 4, _published("Impala mem")),
    Column(PUBLISHED, "shark_disk", "Shark\ndisk", 6, _published("Shark disk")),
    Column(PUBLISHED, "shark_mem", "Shark\nmem", 2, _published("Shark mem")),
    Column(PUBLISHED, "hive", "Hive", 1, _published("Hive")),
    Column(PUBLISHED, "tez", "Tez", 5, _published("Tez")),
    Column(PUBLISHED, "ref2016_s", "Lambda\n2016", 2, _ref2016(0)),
    Column(PUBLISHED, "ref2016_usd", "Lambda\n2016 $", 5, _ref2016(1)),
    Column(MEASURED, "rows", "rows", 3, lambda q: f"{q.rows:,}" if q.rows is not None else ""),
    Column(MEASURED, "median_s", "median\ns", 1, _ran(lambda q: _secs(q.median))),
    Column(MEASURED, "tasks", "tasks", 4, _ran(_tasks)),
    Column(MEASURED, "read", "read", 4, _ran(lambda q: size_text(q.bytes_read))),
    Column(MEASURED, "lambda_usd", "Lambda\n$", 7, _ran(lambda q: _money(q.lambda_usd))),
    Column(MEASURED, "athena_usd", "Athena\n$", 7, _ran(lambda q: _money(q.athena_usd))),
    Column(MODELED, "modeled_s", "Lambda\ns", 1, _modeled(lambda q: _secs(q.projection.seconds))),
    Column(MODELED, "modeled_usd", "Lambda\n$", 1,
           _modeled(lambda q: _money(q.projection.dollars))),
    Column(MODELED, "modeled_athena_usd", "Athena\n$", 2,
           _modeled(lambda q: _money(costs.athena_cost(q.projected_bytes)))),
]


def group_titles(scale: float) -> dict[str, str]:
    return {"": "", PUBLISHED: "published 5nodes, s", MEASURED: "measured here",
            MODELED: "modeled 5nodes"}


def fit(columns: list[Column], widths: dict[str, int], titles: dict[str, str],
        width: int) -> list[Column]:
    """The columns that fit ``width``: those with the largest priority number
    leave first (the later one of equals first); priority 0 always stays.
    ``widths`` are the columns' own widths; a group is at least as wide as its
    title."""
    keep = list(columns)
    while _table_width(keep, widths, titles) > width:
        droppable = [c for c in keep if c.priority > 0]
        if not droppable:
            break
        keep.remove(max(reversed(droppable), key=lambda c: c.priority))
    return keep


def _span(group: str, cols: list[Column], widths: dict[str, int],
          titles: dict[str, str]) -> int:
    """A group's width: its columns, or its title when that is wider."""
    inner = sum(widths[c.key] for c in cols) + len(COLUMN_GAP) * (len(cols) - 1)
    return max(inner, len(titles.get(group, "")))


def _table_width(columns: list[Column], widths: dict[str, int], titles: dict[str, str]) -> int:
    groups = _grouped(columns)
    return sum(_span(g, cs, widths, titles) for g, cs in groups) + \
        len(GROUP_GAP) * (len(groups) - 1)


def _header_lines(c: Column) -> list[str]:
    lines = c.header.split("\n")
    return lines + [""] * (2 - len(lines))


def _cell_widths(columns: list[Column], cells: dict[str, list[str]]) -> dict[str, int]:
    return {c.key: max([len(h) for h in _header_lines(c)] + [len(v) for v in cells[c.key]])
            for c in columns}


def _grouped(columns: list[Column]) -> list[tuple[str, list[Column]]]:
    out: list[tuple[str, list[Column]]] = []
    for c in columns:
        if out and out[-1][0] == c.group:
            out[-1][1].append(c)
        else:
            out.append((c.group, [c]))
    return out


def _aligned(c: Column, text: str, width: int) -> str:
    return text.ljust(width) if c.group == "" else text.rjust(width)


def render_table(results: list[QueryRun], scale: float, width: int) -> tuple[str, list[Column]]:
    """The table's lines (no footer), at most ``width`` characters wide when
    the query column and the group titles fit, and the columns left out."""
    titles = group_titles(scale)
    cells = {c.key: [c.value(q) if c.value else "" for q in results] for c in COLUMNS}
    widths = _cell_widths(COLUMNS, cells)
    cols = fit(COLUMNS, widths, titles, width)
    groups = _grouped(cols)
    spans = [_span(g, cs, widths, titles) for g, cs in groups]

    def line(parts: list[str | None], status: str = "") -> str:
        text = []
        for part, span in zip(parts, spans):
            if part is None:           # the status spans the groups that did not run
                text.append(status)
                break
            text.append(part.ljust(span))
        return GROUP_GAP.join(text).rstrip()

    out = [line([titles[g] for g, _ in groups])]
    for i in range(2):
        out.append(line([COLUMN_GAP.join(_aligned(c, _header_lines(c)[i], widths[c.key])
                                         for c in cs) for _, cs in groups]))
    out.append("-+-".join("-" * span for span in spans))
    for r, q in enumerate(results):
        not_run = not q.times and q.status != "ok"
        out.append(line([None if not_run and g in (MEASURED, MODELED) else
                         COLUMN_GAP.join(_aligned(c, cells[c.key][r], widths[c.key])
                                         for c in cs) for g, cs in groups], q.status)[:width])
    left_out = [c for c in COLUMNS if c not in cols]
    return "\n".join(out), left_out


def footer(results: list[QueryRun], ctx: dict, left_out: list[Column], width: int) -> list[str]:
    """Units and sources of every column, the model's assumptions, what was left
    out, and each query's problems, wrapped to ``width``."""
    m = ctx["model"]
    runs = ctx["runs"]
    where = f"{ctx['backend']} backend" + (
        f", {ctx['workers']} workers" if ctx["backend"] == "local" else "")
    paragraphs = [
        "published: AMPLab Big Data Benchmark, 5nodes data (Feb 2014), median response "
        "time, seconds; Lambda 2016: the AWS Lambda MapReduce reference architecture "
        "(1.5 GB functions); blank: that system did not run the query.",
        f"measured here: sqlmr on this machine ({where}), SF {ctx['scale']:g}: "
        f"{ctx['rankings_rows']:,} rankings + {ctx['uservisits_rows']:,} uservisits rows"
        f"{_crawl_text(ctx)} ({size_text(ctx['data_bytes'])}) at {ctx['data']}; median of {runs} "
        f"run{'s' if runs != 1 else ''}, seconds; tasks: map+reduce; rows checked against "
        f"the generator's model (expected ± 5 sd): ✓ right, ✗ wrong, - not yet supported, "
        f"! error. Lambda $ / Athena $: these task seconds at {m.memory_mb} MB "
        f"{m.architecture} / these bytes at $5/TB.",
        f"modeled 5nodes: sqlmr on Lambda over rankings "
        f"{bm.FIVENODES_BYTES['rankings'] / 1e9:g} GB + uservisits "
        f"{bm.FIVENODES_BYTES['uservisits'] / 1e9:g} GB, projected from "
        f"the CPU per byte measured here (sqlmr/bench_model.py), seconds and US$ "
        f"(prices {prices.PRICES_DATE}, us-east-1); Athena $: $5/TB of those bytes. "
        f"Assumptions: {m.describe()}. Not modelled: the driver's own work, retries, "
        f"stragglers, throttling.",
    ]
    if any(q.query == "4" for q in results):
        paragraphs.append(pub.query4_note() + f" Its crawl (documents) is "
                          f"{bm.FIVENODES_BYTES['documents'] / 1e9:g} GB at 5nodes.")
    if left_out:
        names = "; ".join(f"{group}: " + ", ".join(c.header.replace("\n", " ") for c in cs)
                          for group, cs in _grouped(left_out))
        paragraphs.append(f"not shown in {width} columns: {names} (--wide or "
                          f"--format csv|json has every column).")
    out: list[str] = []
    for p in paragraphs:
        out += textwrap.wrap(p, width, subsequent_indent="  ", break_on_hyphens=False)
    for q in results:
        for w in (q.projection.warnings if q.projection else []):
            out += textwrap.wrap(f"{q.query} warning: {w}", width, subsequent_indent="  ")
        if q.status != "ok":
            out += textwrap.wrap(f"{q.query}: {q.status}" + (f": {q.reason}" if q.reason else ""),
                                 width, subsequent_indent="  ")
    return out


def terminal_text(results: list[QueryRun], ctx: dict, width: int) -> str:
    """The whole terminal output: table and footer, no line wider than ``width``."""
    width = max(width, 40)
    table, left_out = render_table(results, ctx["scale"], width)
    return table + "\n" + "\n".join(footer(results, ctx, left_out, width)) + "\n"

