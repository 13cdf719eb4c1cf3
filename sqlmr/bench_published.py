"""Published AMPLab Big Data Benchmark figures that ``sqlmr bench`` prints next to
its own (one place for them).

Response times are the benchmark's published medians in seconds on the
``5nodes`` data (Feb 2014, amplab.cs.berkeley.edu/benchmark): 5 x m2.4xlarge
for Impala, Shark, Hive and Tez ($8.20/h for the cluster), 10 x dw.hs1.xlarge
for Redshift ($8.50/h).  The 2016 AWS Lambda MapReduce reference architecture
(1.5 GB functions) published time and cost for 1a, 1b and 2a only: its reduce
is a merge tree whose final result must fit in one function, so it could not
run 1c, 2b, 2c or Q3.  A query a system did not run has no entry.

Query 4 (a Python UDF over the ``documents`` crawl, then SUM … GROUP BY) was run
by Shark, Hive and Tez only: Redshift and Impala had no Python UDFs.  Its total
time is tabulated; the time of each of its two statements is
:data:`QUERY4_PHASES`.

>>> PUBLISHED_SECONDS["Redshift"]["1a"], PUBLISHED_SECONDS["Tez"]["3c"]
(2.49, 1361.9)
>>> REFERENCE_2016["2a"], "1c" in REFERENCE_2016
((200.0, 0.1129), False)
>>> round(cluster_cost("Hive", "2a"), 2)    # 730.62 s at $8.20/h
1.66
>>> PUBLISHED_SECONDS["Tez"]["4"], "4" in PUBLISHED_SECONDS["Redshift"]
(966.18, False)
"""

from __future__ import annotations

SQL_QUERIES = ("1a", "1b", "1c", "2a", "2b", "2c", "3a", "3b", "3c")
QUERIES = SQL_QUERIES + ("4",)

# system -> (label, seconds per query 1a..3c)
_TIMES = {
    "Redshift": ("Redshift (HDD)", (2.49, 2.61, 9.46, 25.46, 56.51, 79.15, 33.29, 46.08, 168.25)),
    "Impala disk": ("Impala - disk", (12.015, 12.015, 37.085, 113.72, 155.31, 277.53, 108.68,
                                      129.815, 431.26)),
    "Impala mem": ("Impala - mem", (2.17, 3.01, 36.04, 84.35, 134.82, 261.015, 41.21, 76.005,
                                    386.6)),
    "Shark disk": ("Shark - disk", (6.6, 7.0, 22.4, 151.4, 164.3, 196.5, 111.7, 135.6, 382.6)),
    "Shark mem": ("Shark - mem", (1.7, 1.8, 3.6, 83.7, 100.1, 132.6, 44.7, 67.3, 318.0)),
    "Hive": ("Hive 0.12", (50.49, 59.93, 43.34, 730.62, 764.95, 833.30, 561.14, 717.56, 2374.17)),
    "Tez": ("Tez 0.2.0", (28.22, 36.35, 26.44, 377.48, 438.03, 427.56, 323.06, 402.33, 1361.90)),
}

#: Systems in table order.
SYSTEMS: tuple[str, ...] = tuple(_TIMES)
#: The name each system has in the benchmark's published table.
SYSTEM_LABELS: dict[str, str] = {k: v[0] for k, v in _TIMES.items()}
#: Query 4 on the 5nodes data, median seconds: (total, the UDF's CREATE TABLE
#: url_counts_partial, the SUM … GROUP BY's CREATE TABLE url_counts_total); the
#: medians of the parts need not add up to the median total.
QUERY4_PHASES: dict[str, tuple[float, float, float]] = {
    "Shark disk": (279.4, 232.2, 47.2),
    "Shark mem": (191.4, 162.9, 28.1),
    "Hive": (1047.45, 896.47, 150.48),
    "Tez": (966.18, 894.16, 62.60),
}

#: system -> query -> published median seconds on the 5nodes data.
PUBLISHED_SECONDS: dict[str, dict[str, float]] = {
    k: dict(zip(SQL_QUERIES, v[1])) for k, v in _TIMES.items()}
for _system, (_total, *_phases) in QUERY4_PHASES.items():
    PUBLISHED_SECONDS[_system]["4"] = _total

#: Cluster price per hour in 2014 (the whole cluster).
CLUSTER_PER_HOUR: dict[str, float] = {s: (8.50 if s == "Redshift" else 8.20) for s in SYSTEMS}

#: The 2016 Lambda MapReduce reference architecture on the 5nodes data:
#: query -> (seconds, dollars).
REFERENCE_2016: dict[str, tuple[float, float]] = {
    "1a": (39.0, 0.00477),
    "1b": (47.0, 0.0055),
    "2a": (200.0, 0.1129),
}
REFERENCE_2016_MEMORY_MB = 1536

#: corral (Go on Lambda, 3 GB functions) ran variants of the queries, not the
#: benchmark's own, so they are quoted, not tabulated.
CORRAL_NOTES = ("corral (Go on Lambda, 3 GB functions): a scan with pageRank > 50 in 41.8 s, "
                "2a in 168.8 s, a join variant without ORDER BY in 884.6 s")


def query4_note() -> str:
    """One line on query 4's published figures (for the notes under the table).

    >>> query4_note()[:60]
    '4: published times are of its two statements together (media'
    """
    phases = "; ".join(f"{s} {t:g} ({a:g} / {b:g})" for s, (t, a, b) in QUERY4_PHASES.items())
    return ("4: published times are of its two statements together (median total, and "
            f"(UDF / SUM … GROUP BY) medians apart): {phases}. Redshift and Impala could not "
            "run it (no Python UDFs).")


def cluster_cost(system: str, query: str) -> float | None:
    """Dollars of cluster time for one published run (time x hourly price).

    Counts only the seconds the query ran, not the idle cluster around it.
    """
    t = PUBLISHED_SECONDS[system].get(query)
    return None if t is None else t * CLUSTER_PER_HOUR[system] / 3600
