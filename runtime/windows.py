"""Window functions over one partition's rows (the reducers of a window stage).

A window stage's records are ``[partition values, order values, arguments,
field, …]``, hash-partitioned on the partition values and written as runs
sorted by :func:`sort_key`; a reducer merges the runs, cuts them into
partitions (:func:`partitions`) and computes the stage's calls over each one
(:func:`values`).  Without ORDER BY an aggregate covers its whole partition;
with it, the rows up to the current one and its peers (SQL's default frame,
RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), as in Hive.

>>> rows = [[["a"], [1], [10]], [["a"], [2], [None]], [["a"], [2], [5]], [["b"], [7], [1]]]
>>> [len(p) for p in partitions([rows])]
[3, 1]
>>> calls = (("row_number", None, 0, None), ("rank", None, 0, None), ("dense_rank", None, 0, None),
...          ("sum", 0, 0, None), ("count", 0, 0, None), ("lag", 0, 1, None))
>>> values(rows[:3], calls, True)
[[1, 1, 1, 10, 1, None], [2, 2, 2, 15, 2, 10], [3, 2, 2, 15, 2, None]]
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from runtime.sqlfuncs import Desc

_NOKEY = object()


def sort_key(order: tuple[tuple[bool, bool], ...]) -> Callable[[list], tuple]:
    """The key records are sorted and merged by: the partition values (NULL
    first; any total order groups them), then the order values as ORDER BY
    ``order`` ((descending, NULLs first) per value) says; NaN above every
    number, as in the result sorts.

    >>> key = sort_key(((True, False),))
    >>> sorted([[[1], [2.0]], [[1], [None]], [[1], [5.0]], [[None], [1.0]]], key=key)
    [[[None], [1.0]], [[1], [5.0]], [[1], [2.0]], [[1], [None]]]
    >>> nan = float("nan")
    >>> [len(p) for p in partitions([sorted([[[nan], [1]], [[2.0], [1]], [[nan], [2]]], key=key)])]
    [1, 2]
    """
    def rank(v: Any, desc: bool, nulls_first: bool) -> tuple:
        if v is None:
            return (0 if nulls_first else 1, 0)
        if v != v:   # NaN
            return (1 if nulls_first else 0, -1 if desc else 1)
        return (1 if nulls_first else 0, 0, Desc(v) if desc else v)

    def key(r: list) -> tuple:
        return (tuple((0,) if v is None else (1, 0, v) if v == v else (1, 1) for v in r[0]),
                tuple(rank(v, d, n) for v, (d, n) in zip(r[1], order)))
    return key


def _same(a: list, b: list) -> bool:
    """Equal lists of values, NaN equal to NaN (as Hive's and DuckDB's
    PARTITION BY and ORDER BY peers have it)."""
    return a == b or (len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b)))


def partitions(chunks: Iterable[list]) -> Iterator[list]:
    """The records of sorted chunks, cut where the partition values change."""
    cur: Any = _NOKEY
    part: list = []
    for chunk in chunks:
        for r in chunk:
            if cur is _NOKEY or not _same(r[0], cur):
                if part:
                    yield part
                cur = r[0]
                part = []
            part.append(r)
    if part:
        yield part


def values(rows: list, calls: tuple, ordered: bool) -> list[list]:
    """Each row's values of ``calls`` ((kind, argument index, offset,
    default index) each) over one partition's rows, in their order."""
    n = len(rows)
    peers = _peer_groups(rows) if ordered else [(0, n)]
    cols = [_column(rows, peers, *call) for call in calls]
    return [list(t) for t in zip(*cols)] if cols else [[] for _ in rows]


def _peer_groups(rows: list) -> list[tuple[int, int]]:
    """[start, end) of each run of rows with equal order values."""
    out = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or not _same(rows[i][1], rows[start][1]):
            out.append((start, i))
            start = i
    return out


def _column(rows: list, peers: list, kind: str, a: int | None, offset: int,
            default: int | None) -> list:
    n = len(rows)
    if kind == "row_number":
        return list(range(1, n + 1))
    col: list = [None] * n
    if kind in ("rank", "dense_rank"):
        for g, (s, e) in enumerate(peers):
            col[s:e] = [s + 1 if kind == "rank" else g + 1] * (e - s)
        return col
    if kind in ("lag", "lead"):
        step = -offset if kind == "lag" else offset
        for i in range(n):
            j = i + step
            if 0 <= j < n:
                col[i] = rows[j][2][a]
            elif default is not None:
                col[i] = rows[i][2][default]
        return col
    acc = _Acc(kind)
    for s, e in peers:   # the frame grows by a peer group at a time
        for i in range(s, e):
            acc.add(None if a is None else rows[i][2][a])
        col[s:e] = [acc.result()] * (e - s)
    return col


class _Acc:
    """A running aggregate: NULLs skipped, as SQL's aggregates skip them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.n = 0
        self.value: Any = None

    def add(self, v: Any) -> None:
        kind = self.kind
        if kind == "count_star":
            self.n += 1
            return
        if v is None:
            return
        self.n += 1
        if kind in ("sum", "avg"):
            self.value = v + 0.0 if self.value is None and isinstance(v, float) else (
                v if self.value is None else self.value + v)
        elif kind == "min":
            if self.value is None or v < self.value:
                self.value = v
        elif kind == "max":
            if self.value is None or v > self.value:
                self.value = v

    def result(self) -> Any:
        if self.kind in ("count", "count_star"):
            return self.n
        if self.kind == "avg":
            return None if not self.n else self.value / self.n
        return self.value
