"""Input that cannot be read as planned never gives an answer with exit 0:
truncated or corrupt gzip, unreadable folders and files, files that change
while a query runs, broken or looping symbolic links; and a very long line is
read whole, in time linear in its length."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.inputs import InputError, SplitReader
from test_cli import sqlmr


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
    expected = text.split("\n")
    if expected[-1] == "":   # an empty final line is not a row
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


# ------------------------------------------------------------------- gzip

ROWS = "".join(f"k{i},{i}\n" for i in range(100_000)).encode()


def _table(folder: Path, name: str = "t", env: dict | None = None) -> None:
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE {name} (k STRING, v INT) LOCATION '{folder}'")
    assert r.returncode == 0, r.stderr


def _one_line_error(r, *needles: str) -> None:
    """Exit 1 with one line on stderr naming each of ``needles``, no traceback."""
    assert r.returncode == 1, (r.returncode, r.stdout[-500:], r.stderr)
    assert "Traceback" not in r.stderr and "remote traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def _gz_table(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "gz"
    folder.mkdir()
    (folder / "a.csv").write_text("a,1\n")          # a good file beside the bad one
    (folder / "b.gz").write_bytes(data)
    _table(folder)
    return folder / "b.gz"


@pytest.mark.parametrize("strict", [[], ["--strict"]], ids=["lenient", "strict"])
def test_a_gzip_file_cut_in_half_fails_the_query_naming_it(tmp_path, strict):
    """Today's wrong answer: the first half plus a garbage last row, exit 0."""
    whole = gzip.compress(ROWS)
    bad = _gz_table(tmp_path, whole[:len(whole) // 2])
    r = sqlmr(*strict, "-e", "SELECT COUNT(*), SUM(v) FROM t")
    _one_line_error(r, str(bad), "truncated gzip file")
    bad.write_bytes(whole)    # the same table with the whole file answers
    r = sqlmr("--format", "csv", "-e", "SELECT COUNT(*), SUM(v) FROM t")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == f"100001,{sum(range(100_000)) + 1}"


def test_a_gzip_file_with_a_corrupt_byte_fails_naming_it(tmp_path):
    whole = bytearray(gzip.compress(ROWS))
    whole[len(whole) // 2] ^= 0xFF
    bad = _gz_table(tmp_path, bytes(whole))
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "corrupt gzip data")


def test_a_file_named_gz_that_is_not_gzip_fails_once_naming_it(tmp_path, sqlmr_home):
    """One line, and a single attempt: the data will not get better on a retry."""
    bad = _gz_table(tmp_path, ROWS)
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "not gzip data")
    from sqlmr.config import Settings
    from sqlmr.session import Session
    s = Session(Settings(workers=2))
    try:
        with pytest.raises(InputError, match="not gzip data"):
            list(s.run_select("SELECT COUNT(*) FROM t").rows)
        tries = [a for a in s.backend().attempts if a[2] > 0]
        assert tries == [], tries
    finally:
        s.close()


def test_concatenated_and_zero_padded_gzip_members_read_whole(tmp_path):
    """What gzip itself accepts still reads: several members, zero padding."""
    member = gzip.compress(ROWS[:ROWS.index(b"\n", 1000) + 1])
    path = tmp_path / "m.gz"
    path.write_bytes(member + b"\0" * 10 + member + b"\0" * 3)
    got = [line for block in SplitReader(path.as_uri(), 0, path.stat().st_size, block_bytes=7)
           for line in block]
    assert got == ROWS[:ROWS.index(b"\n", 1000) + 1].decode().splitlines() * 2
