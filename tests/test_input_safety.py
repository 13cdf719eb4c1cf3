"""Input that cannot be read as planned never gives an answer with exit 0:
truncated or corrupt gzip, unreadable folders and files, files that change
while a query runs, broken or looping symbolic links; and a very long line is
read whole, in time linear in its length."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.inputs import SplitReader


def _lines(path: Path, cuts: list[int], block_bytes: int) -> list[str]:
    """Every line of ``path`` read as splits cut at ``cuts``."""
    size = path.stat().st_size
    edges = [0, *sorted(c for c in cuts if 0 < c < size), size]
    out: list[str] = []
    for s, e in zip(edges, edges[1:]):
        if s < e:
            for block in SplitReader(path.as_uri(), s, e, block_bytes=block_bytes):
                out.extend(block)
    return out


# ------------------------------------------------------------ long lines

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(long_len=st.integers(1, 300_000), before=st.lists(st.text("ab,", max_size=5), max_size=3),
       after=st.lists(st.text("ab,", max_size=5), max_size=3), final_newline=st.booleans(),
       cuts=st.lists(st.integers(0, 400_000), max_size=4), block_bytes=st.sampled_from([7, 4096, 1 << 16]))
def test_a_line_longer_than_many_chunks_is_read_intact(tmp_path_factory, long_len, before, after,
                                                       final_newline, cuts, block_bytes):
    """A line spanning many read chunks (and any split cuts) comes out whole,
    once, with its neighbours."""
    long = "x" * (long_len - 1) + "y"
    lines = [*before, long, *after]
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path = tmp_path_factory.mktemp("long") / "t.txt"
    path.write_text(text)
    expected = [line for line in text.split("\n")]
    if final_newline:
        expected.pop()
    assert _lines(path, cuts, block_bytes) == expected


def test_a_50_mb_line_with_no_newline_is_one_row(tmp_path):
    """The issue's case: 50 MB and no newline at all, as one split and as many."""
    path = tmp_path / "one.txt"
    size = 50 << 20
    path.write_bytes(b"z" * size)
    assert [len(line) for line in _lines(path, [], 1 << 20)] == [size]
    assert [len(line) for line in _lines(path, list(range(1, size, 7 << 20)), 1 << 20)] == [size]
    gz = tmp_path / "one.gz"
    gz.write_bytes(gzip.compress(b"q" * size + b"\nend\n", 1))
    got = [line for block in SplitReader(gz.as_uri(), 0, gz.stat().st_size) for line in block]
    assert [len(line) for line in got] == [size, 3] and got[1] == "end"
