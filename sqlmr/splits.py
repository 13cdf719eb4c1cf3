"""Planning a stage's input: which byte ranges each map task reads, and how many
reducers to run.

Files are cut into byte-range splits of ``split_size`` (the runtime fixes up
line boundaries); compressed files (``.gz``, ``.bz2``) are one split each; small files and split
tails are packed together so a task reads about ``split_size`` bytes.

>>> files = [("file:///a", 250), ("file:///b", 30), ("file:///c.gz", 40)]
>>> [[(s["uri"][-4:], s["start"], s["end"]) for s in t] for t in plan_splits(files, 100)]
[[('///a', 0, 100)], [('///a', 100, 200)], [('///a', 200, 250), ('///b', 0, 30)], [('c.gz', 0, 40)]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.shuffle import COMBINE_FETCHES
from sqlmr import prices
from sqlmr.cost import money

MB = 1 << 20
MIN_SPLIT = 1 * MB
MAX_SPLIT = 128 * MB
BYTES_PER_REDUCER = 256 * MB   # as Hive's hive.exec.reducers.bytes.per.reducer
LOCAL_BYTES_PER_REDUCER = 32 * MB
MAX_REDUCERS = 1009


def choose_split_size(total_bytes: int, workers: int, backend: str = "local",
                      reducers: int = 0) -> int:
    """Enough splits to keep every worker busy (several waves for balance) while
    keeping each task's fixed costs small; on Lambda the cheapest split that
    is not much slower (:func:`choose_lambda_split`, ``workers``: the
    concurrency).

    >>> choose_split_size(1_700_000, 2) == MIN_SPLIT, choose_split_size(10 * 2**30, 2) == MAX_SPLIT
    (True, True)
    """
    if backend == "lambda":
        return choose_lambda_split(total_bytes, reducers, functions=workers).size
    target_tasks = max(1, workers * 4)
    size = math.ceil(total_bytes / target_tasks) if total_bytes else MIN_SPLIT
    return int(min(MAX_SPLIT, max(MIN_SPLIT, size)))


def choose_reducers(total_bytes: int, workers: int, backend: str = "local") -> int:
    """Reducers from the input size, at least one per worker.

    On Lambda, Hive's rule (256 MB per reducer): each reducer costs a ranged
    GET per map output.  Locally a reducer costs next to nothing, and smaller
    ones are faster: a reducer's hash table that stays in the core's cache
    merges a pair in half the time (2a at SF 0.02: 16 reducers spent 0.64
    task-seconds where 2 spent 1.1), so there is one per 32 MB of input.

    >>> choose_reducers(1_000, 2), choose_reducers(10 * 2**30, 2, "lambda"), choose_reducers(508 << 20, 2)
    (2, 40, 16)
    """
    per_reducer = BYTES_PER_REDUCER if backend == "lambda" else LOCAL_BYTES_PER_REDUCER
    by_size = math.ceil(total_bytes / per_reducer)
    return int(min(MAX_REDUCERS, max(workers, by_size, 1)))


def plan_splits(files: list[tuple[str, int]], split_size: int,
                stamps: dict[str, object] | None = None) -> list[list[dict]]:
    """Group file byte ranges into map tasks of about ``split_size`` bytes.

    Every split carries its file's size and version (``stamps``: mtime or S3
    ETag, from the listing) as planned, so a task can tell that the file
    changed since and fail rather than read fewer rows.

    >>> plan_splits([("file:///a", 5)], 100, {"file:///a": 17})
    [[{'uri': 'file:///a', 'start': 0, 'end': 5, 'size': 5, 'stamp': 17}]]
    """
    stamps = stamps or {}
    tasks: list[list[dict]] = []
    current: list[dict] = []
    current_bytes = 0

    def flush() -> None:
        nonlocal current, current_bytes
        if current:
            tasks.append(current)
        current, current_bytes = [], 0

    gz_tasks = []
    for uri, size in files:
        if size == 0:
            continue
        if uri.endswith((".gz", ".bz2")):   # not splittable: read whole
            gz_tasks.append([{"uri": uri, "start": 0, "end": size, "gz": uri.endswith(".gz"),
                              **planned(uri, size, stamps)}])
            continue
        if size <= split_size and current_bytes + size > split_size:
            flush()  # a small file is never cut: it goes whole into the next task
        start = 0
        while start < size:
            room = split_size - current_bytes
            end = min(size, start + room)
            # do not leave a sliver smaller than 10% of a split for the next task
            if size - end < split_size // 10:
                end = size
            current.append({"uri": uri, "start": start, "end": end,
                            **planned(uri, size, stamps)})
            current_bytes += end - start
            start = end
            if current_bytes >= split_size:
                flush()
    flush()
    return tasks + gz_tasks


def planned(uri: str, size: int, stamps: dict[str, object]) -> dict:
    """A split's record of its file as planned: size, and version when known."""
    stamp = stamps.get(uri)
    return {"size": size} if stamp is None else {"size": size, "stamp": stamp}


# ----------------------------------------------------------- Lambda task sizing

#: Split sizes a Lambda map task may get, MiB (1 GiB reads in ~12 s at 90 MB/s,
#: far inside Lambda's 900 s limit, and is streamed, so memory stays bounded).
LAMBDA_SPLITS_MB = (64, 128, 256, 512, 1024)
#: A bigger split may make the stage at most this much slower than the fastest choice.
LAMBDA_SLOWER = 1.5
#: What the choice assumes of a Lambda function (the same figures as the model's
#: defaults, sqlmr/bench_model.py): S3 MB/s, seconds per request, a cold start,
#: map CPU bytes per second at one vCPU (the driver's estimate), ranged GETs a
#: reducer has in flight, bytes per ranged GET of a split.
LAMBDA_S3_BYTES_PER_S = 90e6
LAMBDA_REQUEST_S = 0.03
LAMBDA_COLD_START_S = 0.5
LAMBDA_FETCH_DEPTH = 12
LAMBDA_COMBINE_DEPTH = COMBINE_FETCHES   # objects a combiner downloads at once
LAMBDA_GET_BYTES = 32 * MB
#: CPU bytes per second of one task's loop at one vCPU, by task kind (the driver's
#: estimates, from ``sqlmr bench`` on the AMPLab data: maps of the scans 1a-3b parse
#: 110-150 MB/s, 1c, 3c and UDF maps 20-60; combiners copy bytes at about 370;
#: reducers aggregate or join 20-90, 2a's about 40).
LAMBDA_MAP_BYTES_PER_S = 120e6
LAMBDA_COMBINE_BYTES_PER_S = 350e6
LAMBDA_REDUCE_BYTES_PER_S = 40e6
#: Memory sizes (MB) a stage's tasks may get, up to the function's ``memory_mb``
#: (then that too): the choice is per stage and task kind, from the modeled cost.
#: Not below 1,024 MB: the model takes S3 throughput as the same at every size it
#: may choose, which measurements support from about 1 GB up, not below.
LAMBDA_MEMORY_MB = (1024, 1280, 1536, 1769)


def lambda_memories(cap: int) -> tuple[int, ...]:
    """The sizes a stage may choose from when the function's memory is ``cap``.

    >>> lambda_memories(1769), lambda_memories(3008), lambda_memories(1300), lambda_memories(512)
    ((1024, 1280, 1536, 1769), (1024, 1280, 1536, 1769, 3008), (1024, 1280, 1300), (512,))
    """
    return tuple(sorted({m for m in LAMBDA_MEMORY_MB if m <= cap} | {cap}))


@dataclass(frozen=True)
class SplitChoice:
    """A Lambda stage's split size and what it was chosen from (EXPLAIN's line)."""

    size: int            # bytes
    maps: int            # map tasks it makes
    seconds: float       # the stage's modeled time
    usd: float           # the stage's modeled cost
    reason: str
    memory_mb: int = 1769   # the map tasks' memory

    def line(self) -> str:
        """``split: 512 MB at 1,769 MB (modeled: …)``, for EXPLAIN."""
        return (f"split: {self.size // MB} MB at {self.memory_mb:,} MB memory "
                f"(modeled: {self.reason})")


def lambda_stage(total_bytes: float, split: int, reducers: int, *, functions: int = 1000,
                 memory_mb: int = 1769, architecture: str = "arm64") -> tuple[int, float, float]:
    """(maps, seconds, dollars) of a stage's map tasks and its reducers'
    requests with splits of ``split`` bytes at ``memory_mb``, as
    :func:`choose_lambda_split` weighs them.  A map reads its split while it
    parses (time: the slower of the two; the loop gets ``memory_mb / 1769`` of a
    vCPU), after one cold start per new function; every reducer GETs the
    shuffle list, its bounds rows and a range of each map output,
    ``LAMBDA_FETCH_DEPTH`` at a time.  Dollars: GB-s, invocations, the splits'
    ranged GETs, the map outputs' PUTs and the reducers' GETs.

    Hand check, 1 GB in 2 maps of 500 MB, 1 reducer: a map takes 3 x 0.03 +
    max(500/90, 500/120) s = 5.6456 s; the stage 0.5 + 5.6456 + (2 + 2) x 0.03 /
    12 = 6.1556 s.  Dollars: (2 x 5.6456 + 2 x 0.5) s x 1769/1024 GB x
    $0.0000133334 = $0.00028316; 2 invocations $0.0000004; GETs 2 x (1 + 15
    pieces of 32 MiB) + 1 x (2 + 2) = 36 x $0.0000004 = $0.0000144; 3 PUTs
    $0.000015: $0.000313.

    >>> maps, s, usd = lambda_stage(1e9, 500_000_000, 1)
    >>> maps, round(s, 4), round(usd, 6)
    (2, 6.1556, 0.000313)

    At 884 MB the loop gets 884 / 1769 of a vCPU and parses at 59.97 MB/s: the
    map takes 0.09 + 500/59.97 = 8.428 s.

    >>> round(lambda_stage(1e9, 500_000_000, 1, memory_mb=884)[1] - 0.5 - 0.01, 4)
    8.428
    """
    maps = max(1, math.ceil(total_bytes / max(1, split)))
    each = min(float(split), total_bytes) if maps == 1 else float(split)
    share = min(1.0, memory_mb / 1769)
    task_s = 3 * LAMBDA_REQUEST_S + max(each / LAMBDA_S3_BYTES_PER_S,
                                        each / (LAMBDA_MAP_BYTES_PER_S * share))
    waves = math.ceil(maps / max(1, functions))
    fetch_s = (maps + 2) * LAMBDA_REQUEST_S / LAMBDA_FETCH_DEPTH if reducers else 0.0
    seconds = LAMBDA_COLD_START_S + waves * task_s + math.ceil(
        reducers / max(1, functions)) * fetch_s
    billed_s = maps * task_s + min(maps, functions) * LAMBDA_COLD_START_S
    gets = maps * (1 + math.ceil(each / LAMBDA_GET_BYTES)) + reducers * (maps + 2)
    usd = (billed_s * memory_mb / 1024 * prices.LAMBDA_GB_SECOND[architecture]
           + maps * prices.LAMBDA_PER_REQUEST + gets * prices.S3_GET
           + (maps + 1) * prices.S3_PUT)
    return maps, seconds, usd


def choose_lambda_split(total_bytes: float, reducers: int = 0, *, functions: int = 1000,
                        memory_mb: int = 1769, architecture: str = "arm64") -> SplitChoice:
    """The split size and memory of a Lambda stage's maps: of
    :data:`LAMBDA_SPLITS_MB` and :func:`lambda_memories` (up to the function's
    ``memory_mb``), the cheapest pair (:func:`lambda_stage`) whose stage is at
    most :data:`LAMBDA_SLOWER` times as slow as the fastest pair's; on a tie
    the smaller split.  Bigger splits mean fewer map tasks, fewer cold starts
    and fewer map outputs for every reducer to read; smaller ones, more
    functions at work at once.  Less memory is cheaper while a map waits on S3
    rather than on its CPU.  ``reducers``: the planned reducers (0: a map-only
    stage).

    126.8 GB into 473 planned reducers (AMPLab 2a at 5nodes): 256 MiB splits
    at 1,024 MB, where a map parses about as fast as S3 delivers.

    >>> c = choose_lambda_split(126.8e9, 473)
    >>> c.line()
    'split: 256 MB at 1,024 MB memory (modeled: 473 maps, 5.6 s, $0.122; 64 MB at 1,769 MB: 1,890 maps, 6.9 s, $0.418)'

    A map-only scan of 6.38 GB (1a) keeps 64 MiB.  A small input keeps the
    smallest split; with a function of 512 MB, that is the only memory.

    >>> choose_lambda_split(6.38e9).line()
    'split: 64 MB at 1,024 MB memory (modeled: 96 maps, 1.6 s, $0.00261; 64 MB at 1,769 MB: 96 maps, 1.3 s, $0.00357)'
    >>> c = choose_lambda_split(1e6, 4, memory_mb=512)
    >>> c.size == 64 * MB, c.memory_mb
    (True, 512)
    """
    options = []
    for mem in sorted(lambda_memories(memory_mb), reverse=True):
        for mb in LAMBDA_SPLITS_MB:
            maps, seconds, usd = lambda_stage(total_bytes, mb * MB, reducers,
                                              functions=functions, memory_mb=mem,
                                              architecture=architecture)
            options.append((mb * MB, mem, maps, seconds, usd))
            if maps == 1:   # bigger splits change nothing
                break
    fastest = min(o[3] for o in options)
    ok = [o for o in options if o[3] <= fastest * LAMBDA_SLOWER + 1e-9]
    size, mem, maps, seconds, usd = min(ok, key=lambda o: (round(o[4], 9), o[0], -o[1]))
    base = options[0]
    reason = f"{_maps(maps)}, {seconds:.1f} s, {money(usd)}"
    if (size, mem) != base[:2]:
        reason += (f"; {base[0] // MB} MB at {base[1]:,} MB: {_maps(base[2])}, "
                   f"{base[3]:.1f} s, {money(base[4])}")
    return SplitChoice(size, maps, round(seconds, 3), usd, reason, mem)


@dataclass(frozen=True)
class MemoryChoice:
    """The memory of a stage's combiners or reducers, and the modeled task."""

    memory_mb: int
    seconds: float       # one task's modeled time
    usd: float           # one task's modeled GB-s cost, its cold start included


#: CPU bytes per second at one vCPU of the task kinds :func:`choose_task_memory` sizes.
TASK_BYTES_PER_S = {"combine": LAMBDA_COMBINE_BYTES_PER_S, "reduce": LAMBDA_REDUCE_BYTES_PER_S}


def choose_task_memory(kind: str, read_bytes: float, write_bytes: float, requests: int, *,
                       memory_mb: int = 1769, architecture: str = "arm64") -> MemoryChoice:
    """The memory of a combine or reduce task that reads ``read_bytes`` in
    ``requests`` GETs and writes ``write_bytes``: of :func:`lambda_memories`,
    the cheapest whose task is at most :data:`LAMBDA_SLOWER` times as slow as
    the fastest's.  A task fetches (``LAMBDA_FETCH_DEPTH`` GETs at a time)
    while its loop works, at :data:`TASK_BYTES_PER_S` per vCPU.

    A combiner copies bytes far faster than S3 moves them, so the least memory
    does: 256 MiB in and out takes 6 s at any size.

    >>> choose_task_memory("combine", 256 * MB, 256 * MB, 10).memory_mb
    1024

    A reducer of 64 MiB works about 1.7 s at one vCPU, longer than it fetches:
    less memory costs about as much and takes longer; 1,280 MB is the cheapest
    within 1.5 x the fastest (1,024 MB would take 1.7 x).

    >>> c = choose_task_memory("reduce", 64 * MB, 1e6, 60)
    >>> c.memory_mb, round(c.seconds, 2)
    (1280, 2.57)
    """
    bps = TASK_BYTES_PER_S[kind]
    depth = LAMBDA_COMBINE_DEPTH if kind == "combine" else LAMBDA_FETCH_DEPTH
    options = []
    for mem in lambda_memories(memory_mb):
        share = min(1.0, mem / 1769)
        seconds = (LAMBDA_REQUEST_S * (3 + math.ceil(requests / depth))
                   + max(read_bytes / LAMBDA_S3_BYTES_PER_S, read_bytes / (bps * share))
                   + write_bytes / LAMBDA_S3_BYTES_PER_S)
        usd = ((seconds + LAMBDA_COLD_START_S) * mem / 1024
               * prices.LAMBDA_GB_SECOND[architecture])
        options.append(MemoryChoice(mem, seconds, usd))
    fastest = min(o.seconds for o in options)
    return min((o for o in options if o.seconds <= fastest * LAMBDA_SLOWER + 1e-9),
               key=lambda o: (round(o.usd, 12), -o.memory_mb))


def adding_combiner_memory(memory_mb: int = 1769) -> int:
    """The memory of a combiner that adds each key's numbers: one vCPU
    (1,769 MB), or the function's memory when less.  Its loop is one Python
    thread, so more does not help; and a combiner phase is one wave of a few
    tasks, so less would stretch the query by as much as the task.

    >>> adding_combiner_memory(), adding_combiner_memory(3008), adding_combiner_memory(1024)
    (1769, 1769, 1024)
    """
    return min(memory_mb, 1769)


def combine_group(objects: int, shuffle_bytes: float, split: int) -> int:
    """Map outputs a combiner gathers on Lambda: as many as make about one
    ``split`` of bytes, so a combiner is a task of a map's size (its phase
    takes about a map's time, whatever the stage's size), at least 2.

    2a at 5nodes: 473 outputs of 26.4 MB (12.5 GB) and 256 MiB splits: 10 a
    combiner, 48 combiners.

    >>> combine_group(473, 12.5e9, 256 * MB), combine_group(10, 1e6, 256 * MB), combine_group(4, 0, MB)
    (10, 10, 4)
    """
    if objects <= 1:
        return 2
    if shuffle_bytes <= 0:
        return objects
    per = shuffle_bytes / objects
    return int(max(2, min(objects, round(split / per))))


def _maps(n: int) -> str:
    return f"{n:,} map" + ("s" if n != 1 else "")
