"""``sqlmr bench --plot FILE.png``: like compared with like.

The 5nodes panels put the published 2014 systems and the 2016 Lambda
reference architecture beside sqlmr's *modeled* 5nodes time and cost; what
was measured on this machine at a small scale has a panel of its own.  Each
system keeps one colour in every panel, bars carry their values, and a
caption states the model's assumptions.  What to draw is worked out by
:func:`panels` (plain data, tested without matplotlib); :func:`figure` draws it.

>>> [s.label for s in panels([], 0.001)[0].series][-2:]
['Lambda MR ref. 2016', 'sqlmr on Lambda (modeled)']
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from sqlmr import bench_model as bm
from sqlmr import bench_published as pub
from sqlmr import cost as costs
from sqlmr.bench import QueryRun, _money, _secs

MODELED = "sqlmr on Lambda (modeled)"
MEASURED = "sqlmr measured here"
REF2016 = "Lambda MR ref. 2016"
ATHENA = "Athena (5nodes bytes)"

# One colour per system in every panel; a system's disk and memory runs are
# two shades of its hue, sqlmr's model is the one red.
COLOURS: dict[str, str] = {
    "Redshift": "#1f77b4", "Impala disk": "#ffbb78", "Impala mem": "#ff7f0e",
    "Shark disk": "#98df8a", "Shark mem": "#2ca02c", "Hive": "#9467bd", "Tez": "#8c564b",
    REF2016: "#7f7f7f", MODELED: "#d62728", ATHENA: "#17becf", MEASURED: "#e377c2",
}


@dataclass
class Series:
    label: str
    key: str                        # the colour's key: the same system, the same colour
    values: list[float | None]      # one per query; None: not run
    text: str = "s"                 # "s" or "$": how a bar's value label is written


@dataclass
class Panel:
    title: str
    ylabel: str
    series: list[Series]


def panels(results: list[QueryRun], scale: float) -> list[Panel]:
    """Time and cost on the 5nodes data (published and sqlmr's model), then
    sqlmr's measured median at ``scale`` on its own."""
    names = [q.query for q in results]
    times = [Series(pub.SYSTEM_LABELS[s], s, [pub.PUBLISHED_SECONDS[s].get(n) for n in names])
             for s in pub.SYSTEMS]
    times.append(Series(REF2016, REF2016,
                        [pub.REFERENCE_2016.get(n, (None, None))[0] for n in names]))
    times.append(Series(MODELED, MODELED,
                        [q.projection.seconds if q.projection else None for q in results]))
    dollars = [Series(pub.SYSTEM_LABELS[s] + " (cluster time)", s,
                      [pub.cluster_cost(s, n) for n in names], "$") for s in pub.SYSTEMS]
    dollars.append(Series(REF2016, REF2016,
                          [pub.REFERENCE_2016.get(n, (None, None))[1] for n in names], "$"))
    dollars.append(Series(MODELED, MODELED,
                          [q.projection.dollars if q.projection else None for q in results],
                          "$"))
    dollars.append(Series(ATHENA, ATHENA,
                          [costs.athena_cost(q.projected_bytes) if q.projection else None
                           for q in results], "$"))
    measured = [Series(f"{MEASURED} (SF {scale:g})", MEASURED, [q.median for q in results])]
    return [
        Panel("AMPLab 5nodes data: response time (published 2014/2016 vs sqlmr modeled)",
              "seconds (log)", times),
        Panel("AMPLab 5nodes data: cost per query", "US$ (log)", dollars),
        Panel(f"measured on this machine at SF {scale:g} (not comparable with the panels "
              f"above)", "seconds (log)", measured),
    ]


def caption(ctx: dict) -> str:
    """The sources and the model's assumptions, under the figure."""
    m: bm.LambdaModel = ctx["model"]
    runs = ctx["runs"]
    return (
        "Published: AMPLab Big Data Benchmark, 5nodes data, median seconds (Feb 2014); cluster "
        "cost = seconds x the cluster's hourly price; Lambda MR ref. 2016: AWS reference "
        "architecture. No bar: the system did not run the query. "
        f"sqlmr modeled: projected to 5nodes (rankings {bm.FIVENODES_BYTES['rankings'] / 1e9:g}"
        f" GB, uservisits {bm.FIVENODES_BYTES['uservisits'] / 1e9:g} GB) on Lambda from the CPU "
        f"per byte measured here at SF {ctx['scale']:g} ({ctx['backend']} backend, median of "
        f"{runs} run{'s' if runs != 1 else ''}); sqlmr/bench_model.py. Assumptions: "
        f"{m.describe()}. Not modelled: the driver's own work, retries, stragglers, "
        "throttling.")


def figure(results: list[QueryRun], ctx: dict) -> Any:
    """The matplotlib figure (raises ImportError without matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [q.query for q in results]
    shown = panels(results, ctx["scale"])
    fig, axes = plt.subplots(len(shown), 1, squeeze=False,
                             figsize=(max(10, 1.9 * len(names) + 4), 15),
                             gridspec_kw={"height_ratios": [3, 3, 1.6]})
    for ax, panel in zip(axes[:, 0], shown):
        _draw(ax, panel, names)
        for j, q in enumerate(results):
            if q.status == "not yet supported":
                ax.text(j, 0.02, "sqlmr: not yet\nsupported", ha="center", va="bottom",
                        fontsize=6, transform=ax.get_xaxis_transform())
    fig.text(0.01, 0.005, textwrap.fill(caption(ctx), 190), fontsize=6.5, va="bottom",
             ha="left", wrap=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _draw(ax: Any, panel: Panel, names: list[str]) -> None:
    width = 0.84 / max(1, len(panel.series))
    for i, s in enumerate(panel.series):
        at = [(j + (i - len(panel.series) / 2 + 0.5) * width, v)
              for j, v in enumerate(s.values) if v]
        if not at:
            continue
        bars = ax.bar([x for x, _ in at], [v for _, v in at], width, label=s.label,
                      color=COLOURS[s.key], edgecolor="black" if s.key == MODELED else None,
                      linewidth=0.6)
        labels = [_money(v) if s.text == "$" else _secs(v) for _, v in at]
        ax.bar_label(bars, labels=labels, rotation=90, fontsize=5.5, padding=2)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel(panel.ylabel)
    ax.set_title(panel.title, fontsize=10)
    ax.legend(fontsize=7, ncol=4 if len(panel.series) > 4 else 1, loc="upper left")


def plot(results: list[QueryRun], path: str, ctx: dict) -> None:
    """Draw the figure into ``path`` (PNG, or what its extension says)."""
    try:
        fig = figure(results, ctx)
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'sqlmr[plot]'") from None
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=130)
    plt.close(fig)
