"""Planning a stage's shuffle: how many fine partitions maps write, how the
driver coalesces them into reducers, and whether combiners sit between maps
and reducers.  Pure functions (no I/O): the planned request counts that
EXPLAIN prints and the cost model uses.

Every map writes ``fine_partitions`` partitions into its one object.  After
the maps ran the driver sums the partitions' bytes and :func:`coalesce`\\ s
them into contiguous ranges of about a target size, one reducer per range
(adaptive coalescing, as Spark's; contiguity keeps a range-partitioned sort
in order).  The driver also writes where every fine partition starts in
every object (the *bounds table*, from the sizes the maps reported), so a
reducer reads the stage's list of objects and two rows of the bounds table
once, then its whole range of every object with one ranged GET.

Directly that is about ``maps · reducers`` GETs.  With combiners (the
``combine`` shuffle, Starling's and Lambada's multi-level exchange) each
combiner reads a group of ``group`` map outputs whole and writes one object
in the same format; reducers read the ``ceil(maps / group)`` combiner outputs
instead, so requests drop from about ``maps · reducers`` to about ``maps +
(maps / group) · reducers``.

>>> p = choose_shuffle(1890, 473)
>>> p.mode, p.group, p.combiners, p.fine_partitions
('combine', 43, 44, 2048)
>>> p.reason
'combine: 1,890 maps × 473 reducers = 895k GETs direct, 23.6k with 44 combiners of 43 map outputs'
>>> choose_shuffle(8, 16, backend="local").mode
'direct'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from sqlmr import prices

MODES = ("auto", "direct", "combine")
#: Lambda: fine partitions per map output, at least 4 per planned reducer.
LAMBDA_MIN_FINE = 1024
LAMBDA_MAX_FINE = 4096
#: Locally a partition costs a map a little (a smaller batch), so fewer.
LOCAL_FINE_PER_REDUCER = 4
LOCAL_MAX_FINE = 256
#: S3 GETs per second on one key prefix (the rate a shuffle is bounded by).
GET_RATE = 5500.0
#: What a combiner phase adds to a query's time: one more wave of
#: invocations, each reading its group and writing one object (seconds).
COMBINE_PHASE_S = 1.5
#: Locally requests are file reads: combiners pay only past this many.
LOCAL_COMBINE_PAIRS = 1_000_000


@dataclass(frozen=True)
class ShufflePlan:
    """A stage's shuffle as planned before its maps run."""

    mode: str             # "direct" | "combine"
    fine_partitions: int  # partitions every map writes into its one object per attempt
    group: int            # map outputs read by one combiner (0 when direct)
    combiners: int        # 0 when direct
    reducers: int         # planned reducers (actual ones come from coalescing after the maps)
    gets: int             # planned shuffle GETs: list + index reads + ranged data reads
    puts: int             # planned shuffle PUTs (map outputs, list, combiner outputs)
    reason: str           # one line for EXPLAIN


def fine_partitions(planned_reducers: int, backend: str) -> int:
    """Partitions each map writes: on Lambda a power of two with at least four
    per planned reducer, 1,024 to 4,096 (a reducer's range then comes close
    to its target and a skewed partition stands alone); locally four per
    reducer, at most 256 (every partition costs a map a batch).

    >>> fine_partitions(473, "lambda"), fine_partitions(1, "lambda"), fine_partitions(1009, "lambda")
    (2048, 1024, 4096)
    >>> fine_partitions(16, "local"), fine_partitions(1, "local"), fine_partitions(200, "local")
    (64, 4, 256)
    """
    planned_reducers = max(1, planned_reducers)
    if backend == "lambda":
        want = 1 << max(0, math.ceil(math.log2(planned_reducers * 4)))
        return int(min(LAMBDA_MAX_FINE, max(LAMBDA_MIN_FINE, want)))
    return int(min(max(LOCAL_MAX_FINE, planned_reducers),
                   planned_reducers * LOCAL_FINE_PER_REDUCER))


def coalesce(sizes: Sequence[int], target_bytes: int) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` ranges of fine partitions (``sizes`` are their
    bytes, summed over every map output), each close to ``target_bytes``: a
    range grows until the next partition would take it past the target.  A
    partition of at least the target (skew) gets a range of its own; empty
    partitions never make a range of their own.

    >>> coalesce([10, 10, 10, 10], 25)
    [(0, 2), (2, 4)]
    >>> coalesce([0, 5, 100, 0, 5, 0], 20)
    [(0, 2), (2, 3), (3, 6)]
    >>> coalesce([0, 0, 0], 10), coalesce([7], 1), coalesce([1, 2, 3], 0)
    ([], [(0, 1)], [(0, 1), (1, 2), (2, 3)])
    """
    target = max(1, target_bytes)
    out: list[tuple[int, int]] = []
    lo = 0
    acc = 0
    for i, size in enumerate(sizes):
        if size <= 0:
            continue
        if size >= target:       # skew: alone (the range so far closes first)
            if acc:
                out.append((lo, i))
            out.append((i, i + 1))
            lo, acc = i + 1, 0
        elif acc and acc + size > target:
            out.append((lo, i))
            lo, acc = i, size
        else:
            acc += size
    if acc:
        out.append((lo, len(sizes)))
    return out


def shuffle_requests(mode: str, maps: int, reducers: int, group: int) -> tuple[int, int]:
    """(GETs, PUTs) of a shuffle of ``maps`` outputs into ``reducers``.

    Direct: every map output is one PUT, the driver's list of them and its
    bounds table two more; every reducer GETs the list and its rows of the
    bounds table, then its range of every map output.  Combine: every combiner GETs its ``group`` map
    outputs whole and PUTs one object; reducers read the combiner outputs as
    they would map outputs.

    >>> shuffle_requests("direct", 10, 4, 0)
    (48, 12)
    >>> shuffle_requests("combine", 10, 4, 5)
    (26, 14)
    """
    if reducers <= 0 or maps <= 0:
        return 0, max(0, maps)
    if mode == "direct":
        return reducers * (2 + maps), maps + 2
    combiners = math.ceil(maps / max(1, group))
    return maps + reducers * (2 + combiners), maps + combiners + 2


def _count(n: float) -> str:
    """A request count for a person: 894k, 1.79M, 950.

    >>> _count(950), _count(43_514), _count(1_787_860), _count(12_500)
    ('950', '43.5k', '1.79M', '12.5k')
    """
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e4:
        return f"{n / 1e3:.3g}k"
    return f"{n:,.0f}"


def default_group(maps: int) -> int:
    """Map outputs per combiner: about √maps, so combiners and their group
    size grow alike (Lambada's two-level exchange).

    >>> default_group(1890), default_group(3), default_group(1)
    (43, 2, 2)
    """
    return max(2, math.isqrt(max(1, maps)))


def choose_shuffle(maps: int, reducers: int, setting: str = "auto", backend: str = "lambda",
                   *, group: int = 0, fine: int = 0, get_rate: float = GET_RATE,
                   combine_phase_s: float = COMBINE_PHASE_S,
                   get_price: float = prices.S3_GET, put_price: float = prices.S3_PUT,
                   adds: bool = False, **_: float) -> ShufflePlan:
    """The shuffle of a stage with ``maps`` map outputs and ``reducers``
    planned reducers.  ``setting`` ``direct`` or ``combine`` forces the mode;
    ``auto`` takes combiners when they make the stage faster: on Lambda when
    the GETs they save, at S3's per-prefix ``get_rate``, take longer than
    the combiner phase (``combine_phase_s``) and cost more than the requests
    combiners add; locally only past :data:`LOCAL_COMBINE_PAIRS` reads.
    ``group`` (map outputs per combiner) and ``fine`` (fine partitions)
    override the defaults.  ``adds``: the stage's combiners add each key's
    numbers (a SUM or COUNT by one key), which the reason says; the reducers
    are then sized from the combiners' output, so fewer than planned.

    >>> choose_shuffle(4, 2, "combine", "local")
    ShufflePlan(mode='combine', fine_partitions=8, group=2, combiners=2, reducers=2, gets=12, puts=8, reason='combine (SET shuffle = combine): 4 maps × 2 reducers = 12 GETs direct, 12 with 2 combiners of 2 map outputs')
    >>> choose_shuffle(40, 10, backend="lambda").reason
    'direct: 40 maps × 10 reducers = 420 GETs; combiners would save too little'
    >>> choose_shuffle(4, 2, "combine", "local", adds=True).reason.endswith(
    ...     "2 combiners of 2 map outputs adding each key's numbers if keys repeat enough")
    True
    >>> choose_shuffle(1, 1, "combine").mode     # nothing to combine
    'direct'
    """
    if setting not in MODES:
        raise ValueError(f"shuffle must be one of {', '.join(MODES)}, not {setting!r}")
    fine = fine or fine_partitions(reducers, backend)
    group = group or default_group(maps)
    combiners = math.ceil(maps / group) if maps else 0
    d_gets, d_puts = shuffle_requests("direct", maps, reducers, 0)
    c_gets, c_puts = shuffle_requests("combine", maps, reducers, group)
    shape = (f"{maps:,} map{'s' if maps != 1 else ''} × {reducers:,} "
             f"reducer{'s' if reducers != 1 else ''} = {_count(d_gets)} GETs")
    with_c = (f"{_count(c_gets)} with {combiners:,} combiner{'s' if combiners != 1 else ''} "
              f"of {group:,} map outputs"
              + (" adding each key's numbers if keys repeat enough" if adds else ""))
    if reducers <= 0 or maps <= 1 or combiners >= maps:
        mode, why = "direct", f"direct: {shape}; nothing to combine"
    elif setting != "auto":
        mode = setting
        why = (f"{mode} (SET shuffle = {mode}): {shape} direct, {with_c}" if mode == "combine"
               else f"direct (SET shuffle = direct): {shape}, {with_c}")
    elif backend == "lambda":
        saved_s = (d_gets - c_gets) / get_rate
        saved_usd = (d_gets - c_gets) * get_price - (c_puts - d_puts) * put_price
        if saved_s > combine_phase_s and saved_usd > 0:
            mode, why = "combine", f"combine: {shape} direct, {with_c}"
        else:
            mode, why = "direct", f"direct: {shape}; combiners would save too little"
    elif maps * reducers >= LOCAL_COMBINE_PAIRS:
        mode, why = "combine", f"combine: {shape} direct, {with_c}"
    else:
        mode, why = "direct", f"direct: {shape}"
    if mode == "direct":
        return ShufflePlan("direct", fine, 0, 0, reducers, d_gets, d_puts, why)
    return ShufflePlan("combine", fine, group, combiners, reducers, c_gets, c_puts, why)


# ------------------------------------------------ combiners that add numbers

def groups_estimate(seen: Sequence[tuple[int, int]]) -> float | None:
    """The groups of a stage, from what its maps saw when they judged their
    partial aggregation: each ``(rows, groups)`` says ``rows`` rows held
    ``groups`` distinct keys.  Keys drawn uniformly from G groups give
    ``G · (1 − e^(−rows/G))`` distinct ones (linear counting); each map's G
    solved from that, the median taken.  ``math.inf``: no key repeated;
    None: no map judged (too few rows, or maps over rows).

    2a at 5nodes, maps judging after 100,000 rows of 2.07 M groups: about
    97,623 distinct.

    >>> round(groups_estimate([(100_000, 97_640), (100_000, 97_623), (100_000, 97_601)]) / 1e6, 2)
    2.07
    >>> groups_estimate([(10_000, 10_000)]), groups_estimate([])
    (inf, None)
    >>> groups_estimate([(10_000, 3)])
    3.0
    """
    estimates = []
    for rows, groups in seen:
        if rows <= 0 or groups <= 0:
            continue
        if groups >= rows:
            estimates.append(math.inf)
            continue
        lo, hi = float(groups), float(groups)
        while hi * -math.expm1(-rows / hi) < groups:
            hi *= 2
        for _ in range(100):   # G·(1 − e^(−rows/G)) grows with G: bisect
            mid = (lo + hi) / 2
            if mid * -math.expm1(-rows / mid) < groups:
                lo = mid
            else:
                hi = mid
        estimates.append(round(hi, 6))
    if not estimates:
        return None
    estimates.sort()
    return estimates[len(estimates) // 2]


def added_share(records: float, groups: float | None, max_ratio: float) -> float:
    """What a combiner that adds each key's numbers writes, as a share of
    what it reads: ``records`` (key, number) pairs whose keys are spread
    uniformly over ``groups`` keys hold ``groups · (1 − e^(−records/groups))``
    distinct keys (the AMPLab generator spreads keys uniformly; maps that
    pass rows through write one pair a row).  Above ``max_ratio`` adding
    does not pay and the combiner copies bytes (1.0), as it does when the
    groups are unknown or never repeat.

    2a at 5nodes: 14.3 M pairs a combiner (9 of 473 map outputs), 2.07 M
    groups: 2.07 M distinct, a share of 0.145 (6.9x fewer).  2b: 31.3 M
    groups, a share of 0.80: copied.

    >>> round(added_share(14.3e6, 2.07e6, 0.5), 3), added_share(14.3e6, 31.3e6, 0.5)
    (0.145, 1.0)
    >>> added_share(1e6, None, 0.5), added_share(0, 10, 0.5), added_share(5, math.inf, 0.5)
    (1.0, 1.0, 1.0)
    """
    if not groups or math.isinf(groups) or records <= 0 or max_ratio <= 0:
        return 1.0
    share = groups * -math.expm1(-records / groups) / records
    return share if share <= max_ratio else 1.0


def combiners_add(records: float, groups: float | None, max_ratio: float) -> bool:
    """Whether combiners of ``records`` pairs each should add each key's
    numbers (:func:`added_share` under ``max_ratio``); with the groups
    unknown, yes: each combiner's own first records then decide.

    >>> combiners_add(14.3e6, 2.07e6, 0.5), combiners_add(14.3e6, 31.3e6, 0.5), combiners_add(9, None, 0.5)
    (True, False, True)
    """
    return groups is None or added_share(records, groups, max_ratio) < 1.0
