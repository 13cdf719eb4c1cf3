"""Overlapped, hedged reads of byte ranges of S3 objects.

A task that reads S3 one request at a time waits for the network, then
computes, never both.  Here the ranges a task will read are cut into pieces
of at most ``chunk`` bytes and fetched by a small thread pool ahead of the
consumer, which gets them back in order: a map task parses one block while
the next ones download, a reducer has many shuffle ranges in flight at once.
Memory is bounded: at most ``depth`` pieces and about ``max_bytes`` are in
flight or waiting.

A piece the consumer is waiting for that runs far past its expected time
(:func:`expected_s`: latency + bytes / throughput, times ``HEDGE_FACTOR``) is
requested again and the first answer wins (Starling's read-straggler
mitigation); the loser is left to finish and dropped.  A piece whose
request S3 throttled (it is in retry backoff) is not hedged: a copy would
only add to the load S3 is pushing back on.

Local files do not come here: the page cache answers faster than a thread
hand-off (see :func:`runtime.storage.iter_range`).

>>> pieces_of([("s3://b/k", 0, 10, None)], 4)
[(0, 's3://b/k', 0, 4, None), (0, 's3://b/k', 4, 8, None), (0, 's3://b/k', 8, 10, None)]
>>> round(expected_s(8 << 20), 3)
0.143
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator

# bytes per ranged GET of a map split: big enough that a 5nodes scan (127 GB)
# costs few GETs (4.3k: $0.0017; 16 MiB pieces took 8.5k), while the split's
# small first GET (FIRST) lets parsing start at once
CHUNK = 32 << 20
FIRST = 1 << 20          # a map split's first GET: parsing starts after 1 MB, not 32
DEPTH = 3                # pieces in flight for a map split (memory: DEPTH x CHUNK)
SHUFFLE_DEPTH = 12       # shuffle ranges in flight for a reducer
MAX_BYTES = 96 << 20     # bytes in flight or waiting, at most (one piece always may be):
                         # a map's DEPTH pieces of CHUNK
THREADS = 32             # the pool also runs hedged requests and abandoned losers

# What a GET is expected to take (S3 from Lambda in region): first byte after
# LATENCY_S, then THROUGHPUT bytes/s; a read past HEDGE_FACTOR times that (and
# past HEDGE_MIN_S) is sent again.  SQLMR_S3_HEDGE=off turns hedging off, or
# gives the factor.
LATENCY_S = 0.05
THROUGHPUT = 90e6
HEDGE_MIN_S = 0.5
_hedge = (os.environ.get("SQLMR_S3_HEDGE") or "").strip().lower()
HEDGE_FACTOR: float | None = None if _hedge in ("off", "0", "no", "false") else (
    float(_hedge) if _hedge and _hedge not in ("on", "yes", "true") else 4.0)

Piece = tuple  # (range index, uri, start, end, etag)

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
hedges_sent = 0   # hedged requests sent by this process (for tests and counters)


def pool() -> ThreadPoolExecutor:
    """The process's reader threads (made on first use, again after a fork)."""
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _pool_lock:
            if _pool is None or _pool_pid != pid:
                _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="sqlmr-read")
                _pool_pid = pid
    return _pool


def expected_s(nbytes: int) -> float:
    """Seconds a ranged GET of ``nbytes`` is expected to take."""
    return LATENCY_S + nbytes / THROUGHPUT


def pieces_of(ranges: Iterable[tuple[str, int, int, str | None]], chunk: int,
              first: int | None = None) -> list[Piece]:
    """The ranges ``(uri, start, end, etag)`` cut into pieces of at most
    ``chunk``; each range's first piece of at most ``first`` when given (the
    reader can start while the big pieces download).

    >>> [p[2:4] for p in pieces_of([("s3://b/k", 0, 10, None)], 4, first=1)]
    [(0, 1), (1, 5), (5, 9), (9, 10)]
    """
    out: list[Piece] = []
    for i, (uri, start, end, etag) in enumerate(ranges):
        s = start
        if first and s < end:
            out.append((i, uri, s, min(end, s + first), etag))
            s = min(end, s + first)
        for s in range(s, end, max(1, chunk)):
            out.append((i, uri, s, min(end, s + chunk), etag))
    return out


_local = threading.local()   # the piece a reader thread is fetching


def note_retry() -> None:
    """The request of the piece this thread fetches is being retried (S3
    throttles or failed it): a second copy would only add to the load, so
    that piece is not hedged (see :class:`runtime.s3.Retrying`)."""
    fetch = getattr(_local, "fetch", None)
    if fetch is not None:
        fetch.retried = True


class _Fetch:
    """One piece being fetched: its first request, and a hedged copy if sent."""

    __slots__ = ("piece", "futures", "started", "retried")

    def __init__(self, piece: Piece, read: Callable[[str, int, int, str | None], bytes]) -> None:
        self.piece = piece
        self.started: list[float] = []
        self.retried = False
        self.futures: list[Future] = [pool().submit(self._timed, read)]

    def _timed(self, read) -> bytes:
        self.started.append(time.monotonic())
        _, uri, s, e, etag = self.piece
        _local.fetch = self
        try:
            return read(uri, s, e, etag)
        finally:
            _local.fetch = None

    def hedge(self, read) -> None:
        global hedges_sent
        hedges_sent += 1
        self.futures.append(pool().submit(self._timed, read))

    def result(self, read, factor: float | None) -> bytes:
        """The first answer of the piece's requests (hedging a slow one)."""
        budget = None
        if factor is not None:
            _, _, s, e, _ = self.piece
            budget = max(HEDGE_MIN_S, factor * expected_s(e - s))
        errors: list[BaseException] = []
        pending = set(self.futures)
        while True:
            timeout = None
            if budget is not None and len(self.futures) == 1:
                if self.started:
                    timeout = max(0.0, self.started[0] + budget - time.monotonic())
                else:
                    timeout = budget   # not started yet: look again in a while
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for f in done:
                if f.exception() is None:
                    return f.result()
                errors.append(f.exception())
            if not pending:
                raise errors[0]
            if (not done and budget is not None and len(self.futures) == 1 and self.started
                    and time.monotonic() - self.started[0] >= budget):
                if self.retried:    # slow because S3 throttles it: waiting is all there is
                    budget = None
                    continue
                self.hedge(read)
                pending.add(self.futures[-1])

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()


def fetch(pieces: Iterable[Piece], read: Callable[[str, int, int, str | None], bytes],
          depth: int = DEPTH, max_bytes: int = MAX_BYTES,
          hedge: float | None | bool = True) -> Iterator[tuple[int, bytes]]:
    """``(range index, bytes)`` of every piece, in order, fetched ahead by the
    pool (``read(uri, start, end, etag)`` does one request).  A piece shorter
    than asked for ends its range (the object ends there): the range's later
    pieces yield nothing.  An error of a piece is raised when the consumer
    reaches it; closing the iterator cancels what has not started."""
    factor = HEDGE_FACTOR if hedge is True else (None if hedge is False else hedge)
    todo = iter(pieces)
    inflight: deque[_Fetch] = deque()
    inflight_bytes = 0
    ended: set[int] = set()   # ranges whose object ended early
    try:
        while True:
            while len(inflight) < max(1, depth):
                if inflight and inflight_bytes >= max_bytes:
                    break
                piece = next(todo, None)
                if piece is None:
                    break
                inflight.append(_Fetch(piece, read))
                inflight_bytes += piece[3] - piece[2]
            if not inflight:
                return
            f = inflight.popleft()
            i, _, s, e, _ = f.piece
            inflight_bytes -= e - s
            data = f.result(read, factor)
            if i in ended:
                continue
            if len(data) < e - s:
                ended.add(i)
            if data:
                yield i, data
    finally:
        for f in inflight:
            f.cancel()


class Streams:
    """Many ranges read as separate streams (the sorted runs a reducer merges,
    each consumed at its own pace): a stream keeps its next piece in flight
    while its current one is consumed, and opening stream ``i`` starts the
    first pieces of streams ``i+1 … i+window`` too, so a merge that takes the
    first batch of every run waits for about ``runs / window`` round trips,
    not ``runs``.  Memory: two pieces per open stream, ``window`` more.

    >>> data = {"s3://b/k": bytes(range(10))}
    >>> st = Streams([("s3://b/k", 0, 4), ("s3://b/k", 6, 10)],
    ...              lambda u, s, e, t: data[u][s:e], chunk=3)
    >>> [b"".join(st.stream(i)) for i in (0, 1)]
    [b'\\x00\\x01\\x02\\x03', b'\\x06\\x07\\x08\\t']
    """

    def __init__(self, spans: list[tuple[str, int, int]],
                 read: Callable[[str, int, int, str | None], bytes],
                 chunk: int, window: int = SHUFFLE_DEPTH) -> None:
        self.spans = spans
        self.read = read
        self.chunk = max(1, chunk)
        self.window = window
        self.first: dict[int, _Fetch] = {}
        self.started = 0   # streams whose first piece was submitted: 0 … started-1

    def _piece(self, i: int, start: int) -> _Fetch:
        uri, _, end = self.spans[i]
        return _Fetch((i, uri, start, min(end, start + self.chunk), None), self.read)

    def stream(self, i: int) -> Iterator[bytes]:
        """The bytes of span ``i``, in pieces (nothing is fetched until the
        first one is asked for)."""
        end = self.spans[i][2]
        while self.started < min(len(self.spans), i + 1 + self.window):
            j = self.started
            self.first[j] = self._piece(j, self.spans[j][1])
            self.started += 1
        f: _Fetch | None = self.first.pop(i)
        while f is not None:
            _, _, s, e, _ = f.piece
            data = f.result(self.read, HEDGE_FACTOR)
            ahead = self._piece(i, e) if len(data) == e - s and e < end else None
            if data:
                yield data
            f = ahead
