"""Reading a job's result: the accepted outputs of its last phase, fetched
ahead on a few threads and handed out in order.

A job of thousands of tasks has thousands of small outputs; read one after
another, each costs a request's latency.  Here every output range is cut into
pieces of at most ``chunk`` bytes (one ranged GET each, holding no connection
between pieces), and up to ``threads`` pieces are read at once:

* :func:`lines_in_order` — every output's batch lines, output after output
  (an unordered result, a LIMIT): pieces read ahead within a window of
  ``ahead_bytes``.
* :class:`MergeStreams` — one stream of lines per output, each with its next
  piece read ahead (a sorted result, merged by the caller): every stream's
  first piece is asked for at once, and ``chunk`` shrinks as streams grow so
  the read-ahead stays within ``ahead_bytes``.

Threads and connections are bounded by ``threads`` (the S3 client's pool is
larger), memory by ``ahead_bytes`` (plus one piece per merged stream).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

from runtime import storage

READ_THREADS = 8
CHUNK = 4 << 20
AHEAD_BYTES = 64 << 20
MIN_MERGE_CHUNK = 64 << 10

Range = tuple[str, int, int]   # (uri, start, end)


def pieces(uri: str, start: int, end: int, chunk: int) -> list[Range]:
    """``[start, end)`` of ``uri`` cut into reads of at most ``chunk`` bytes.

    >>> pieces("s3://b/k", 10, 25, 10)
    [('s3://b/k', 10, 20), ('s3://b/k', 20, 25)]
    >>> pieces("s3://b/k", 5, 5, 10)
    []
    """
    return [(uri, s, min(end, s + chunk)) for s in range(start, end, chunk)]


def merge_chunk(streams: int, ahead_bytes: int = AHEAD_BYTES, chunk: int = CHUNK) -> int:
    """Bytes per read when ``streams`` outputs are merged: two pieces per stream
    (the one being read and the next) within ``ahead_bytes``.

    >>> merge_chunk(4) == CHUNK, merge_chunk(2000) == MIN_MERGE_CHUNK
    (True, True)
    """
    return max(MIN_MERGE_CHUNK, min(chunk, ahead_bytes // max(1, 2 * streams)))


def _read(piece: Range) -> bytes:
    uri, start, end = piece
    return storage.read_range(uri, start, end)


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of consecutive chunks of one output."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from filter(None, lines)
    if rest:
        yield rest


def lines_in_order(ranges: list[Range], threads: int = READ_THREADS, chunk: int = CHUNK,
                   ahead_bytes: int = AHEAD_BYTES) -> Iterator[bytes]:
    """The batch lines of every range, range after range, read ahead."""
    todo = deque((i, p) for i, (u, s, e) in enumerate(ranges) for p in pieces(u, s, e, chunk))
    if not todo:
        return
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="sqlmr-result")
    ahead: deque[tuple[int, int, Future]] = deque()   # (range, bytes, read)
    held = 0
    try:
        def fill() -> None:
            nonlocal held
            while todo and len(ahead) < 4 * threads and (not ahead or held + (
                    todo[0][1][2] - todo[0][1][1]) <= ahead_bytes):
                i, p = todo.popleft()
                ahead.append((i, p[2] - p[1], pool.submit(_read, p)))
                held += p[2] - p[1]

        def chunks_of(i: int) -> Iterator[bytes]:
            nonlocal held
            while ahead and ahead[0][0] == i:
                _, n, fut = ahead.popleft()
                data = fut.result()
                held -= n
                fill()
                yield data

        fill()
        while ahead:
            yield from _lines(chunks_of(ahead[0][0]))
    finally:
        for _, _, fut in ahead:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


class _Stream:
    """One output's lines, its next piece always being read (asked for at
    construction, so building every stream starts every first read)."""

    def __init__(self, pool: ThreadPoolExecutor, todo: list[Range]) -> None:
        self.pool = pool
        self.todo = deque(todo)
        self.next: Future | None = pool.submit(_read, self.todo.popleft()) if self.todo else None

    def _chunks(self) -> Iterator[bytes]:
        while self.next is not None:
            data = self.next.result()
            self.next = self.pool.submit(_read, self.todo.popleft()) if self.todo else None
            yield data

    def __iter__(self) -> Iterator[bytes]:
        return _lines(self._chunks())


class MergeStreams:
    """Line streams over ``ranges`` (one each, in order) for a caller that
    merges them; ``close()`` drops what is still being read."""

    def __init__(self, ranges: list[Range], threads: int = READ_THREADS,
                 ahead_bytes: int = AHEAD_BYTES) -> None:
        chunk = merge_chunk(len(ranges), ahead_bytes)
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="sqlmr-result")
        self.streams = [_Stream(self.pool, pieces(u, s, e, chunk)) for u, s, e in ranges]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
