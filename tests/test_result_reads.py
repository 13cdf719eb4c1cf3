"""Result outputs read ahead on a few threads (sqlmr.result_reads): the same
lines in the same order as reading each range in turn, whatever the piece
size, the read-ahead window and the number of threads; a reader that stops
early leaves nothing running."""

from __future__ import annotations

import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import shuffle, storage
from sqlmr import result_reads


def _sequential(ranges) -> list[bytes]:
    return [line for u, s, e in ranges for line in shuffle.batch_lines(u, s, e)]


def _outputs(tmp_path, contents: list[list[bytes]]) -> list[tuple[str, int, int]]:
    """One file per output, some bytes before and after its range."""
    ranges = []
    for i, lines in enumerate(contents):
        body = b"".join(line + b"\n" for line in lines)
        path = tmp_path / f"out-{i}"
        path.write_bytes(b"HEAD\n" + body + b"TAIL\n")
        ranges.append((storage.to_uri(str(path)), 5, 5 + len(body)))
    return ranges


line_text = st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\n", b"x"))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=st.lists(st.lists(line_text, max_size=8), max_size=12),
       chunk=st.integers(1, 64), ahead=st.integers(1, 200), threads=st.integers(1, 4))
def test_read_ahead_keeps_every_line_in_order(tmp_path_factory, contents, chunk, ahead,
                                              threads):
    tmp = tmp_path_factory.mktemp("outs")
    ranges = _outputs(tmp, contents)
    want = _sequential(ranges)
    got = list(result_reads.lines_in_order(ranges, threads=threads, chunk=chunk,
                                           ahead_bytes=ahead))
    assert got == want
    streams = result_reads.MergeStreams(ranges, threads=threads, ahead_bytes=ahead)
    try:
        per_stream = [list(s) for s in streams.streams]
    finally:
        streams.close()
    assert per_stream == [_sequential([r]) for r in ranges]


def test_reads_overlap_and_stay_within_the_threads(tmp_path, monkeypatch):
    ranges = _outputs(tmp_path, [[b"a%d" % i] for i in range(40)])
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}
    real = result_reads._read

    def slow_read(piece):
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        time.sleep(0.01)
        try:
            return real(piece)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(result_reads, "_read", slow_read)
    got = list(result_reads.lines_in_order(ranges, threads=4))
    assert got == [b"a%d" % i for i in range(40)]
    assert 1 < running["peak"] <= 4


def test_a_reader_that_stops_early_cancels_the_rest(tmp_path, monkeypatch):
    ranges = _outputs(tmp_path, [[b"r%d" % i] for i in range(200)])
    reads: list = []
    real = result_reads._read
    monkeypatch.setattr(result_reads, "_read", lambda p: reads.append(p) or real(p))
    it = result_reads.lines_in_order(ranges, threads=2)
    assert [next(it) for _ in range(3)] == [b"r0", b"r1", b"r2"]
    it.close()
    time.sleep(0.1)
    assert len(reads) <= 3 + 4 * 2 + 2       # what was read ahead, not all 200
