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

MB = 1 << 20
MIN_SPLIT = 1 * MB
MAX_SPLIT = 128 * MB
BYTES_PER_REDUCER = 256 * MB   # as Hive's hive.exec.reducers.bytes.per.reducer
LOCAL_BYTES_PER_REDUCER = 32 * MB
MAX_REDUCERS = 1009


def choose_split_size(total_bytes: int, workers: int, backend: str = "local") -> int:
    """Enough splits to keep every worker busy (several waves for balance) while
    keeping each task's fixed costs small.

    >>> choose_split_size(1_700_000, 2) == MIN_SPLIT, choose_split_size(10 * 2**30, 2) == MAX_SPLIT
    (True, True)
    """
    if backend == "lambda":
        return 64 * MB
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
