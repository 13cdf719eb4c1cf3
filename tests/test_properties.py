"""Property tests: answers do not depend on how input is split or partitioned,
and splits partition a file's lines exactly whatever the boundaries."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difftest import UV_COLUMNS, Tables, _key, as_bytes, uservisits_lines
from runtime import shuffle
from runtime.inputs import SplitReader

LINES = st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r",
                                                blacklist_categories=("Cs",)), max_size=30),
                 min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(lines=LINES, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
       crlf=st.booleans(), final_newline=st.booleans())
def test_splits_partition_lines_exactly(tmp_path_factory, lines, cuts, crlf, final_newline):
    data = as_bytes(lines, crlf=crlf, final_newline=final_newline) if lines else b""
    path = tmp_path_factory.mktemp("split") / "f.txt"
    path.write_bytes(data)
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    got = []
    for s, e in zip(bounds, bounds[1:]):
        for block in SplitReader("file://" + str(path), s, e, block_bytes=7):
            got.extend(block)
    want = lines if lines else []
    if lines and not final_newline and lines[-1] == "":
        want = lines[:-1]  # a trailing empty line without a newline is no line
    assert got == want


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.text(alphabet="ab\u00e9,", max_size=12), min_size=1, max_size=30),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4), crlf=st.booleans())
def test_line_offsets_are_byte_offsets_in_the_file(tmp_path_factory, lines, cuts, crlf):
    """What --strict reports: the byte where a line starts, also in a split
    that begins mid-line and in files with CRLF line ends."""
    # distinct lines: line_offset finds a line by identity, and equal short
    # strings are one object (the first of equal malformed rows is the one reported)
    lines = [f"{i}:{line}" for i, line in enumerate(lines)]
    data = as_bytes(lines, crlf=crlf, final_newline=True)
    path = tmp_path_factory.mktemp("offsets") / "f.txt"
    path.write_bytes(data)
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line.encode()) + (2 if crlf else 1)
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    seen = []
    for s, e in zip(bounds, bounds[1:]):
        reader = SplitReader("file://" + str(path), s, e, block_bytes=9)
        for block in reader:
            seen += [reader.line_offset(line) for line in block]
    assert seen == starts


@settings(max_examples=60, deadline=None)
@given(records=st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.floats(allow_nan=False),
                                                                   st.integers())), max_size=200),
       parts=st.integers(min_value=1, max_value=9), spill=st.sampled_from([64, 1 << 20]))
def test_partitioned_file_roundtrip(records, parts, spill):
    w = shuffle.PartitionedWriter(parts, spill_bytes=spill)
    want = [[] for _ in range(parts)]
    for k, v in records:
        p = shuffle.partition_of(k, parts)
        w.add(p, [k, v])
        want[p].append([k, v])
    data, index = w.to_bytes()
    assert shuffle.read_index(data) == index
    for p, (s, e) in enumerate(index["partitions"]):
        got = [r for b in shuffle.iter_batches_bytes(data[s:e]) for r in b]
        assert got == want[p]


QUERIES = [
    "SELECT SUBSTR(sourceIP, 1, 5), SUM(adRevenue), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 5)",
    "SELECT countryCode, AVG(duration), MIN(visitDate), COUNT(DISTINCT searchWord) FROM uv GROUP BY countryCode",
    "SELECT sourceIP, adRevenue FROM uv WHERE duration > 4 ORDER BY adRevenue DESC, sourceIP LIMIT 7",
    "SELECT COUNT(*), SUM(duration) FROM uv WHERE adRevenue > 0.25",
]


def _canon(rows):
    return sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows),
                  key=_key)


@pytest.fixture
def prop_tables(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("uv", UV_COLUMNS, {"a": as_bytes(uservisits_lines(900, seed=11, nulls=0.02)),
                             "b": as_bytes(uservisits_lines(700, seed=12), final_newline=False)})
    t.expected = {q: _canon(t.duckdb(q)) for q in QUERIES}
    return t


# The fixture is built once and shared by the examples, which vary only the plan.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split_kb=st.integers(min_value=1, max_value=200), reducers=st.integers(min_value=1, max_value=7),
       block_bytes=st.sampled_from([0, 512, 4096]), check_rows=st.sampled_from([0, 1, 30, 300]))
def test_any_split_size_and_reducer_count_same_answer(prop_tables, split_kb, reducers, block_bytes,
                                                      check_rows):
    """Whatever the splits, reducers, read blocks, and whenever map-side
    aggregation judges itself (and perhaps passes rows through)."""
    prop_tables.session.settings.split_mb = split_kb / 1024
    prop_tables.session.settings.reducers = reducers
    prop_tables.session.settings.block_bytes = block_bytes
    prop_tables.session.settings.aggr_check_rows = check_rows
    for q in QUERIES:
        assert _canon(prop_tables.sqlmr(q)) == prop_tables.expected[q], q


@given(data=st.binary(max_size=200).map(lambda b: b.replace(b"x", b"\n")),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_batch_lines_are_the_non_empty_lines_however_the_chunks_fall(data, cuts):
    """The shuffle reader's line finder (memchr per line, a line that spans
    chunks joined once) gives what splitting the whole stream would."""
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert list(shuffle._lines(chunks)) == [line for line in data.split(b"\n") if line]


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.one_of(st.text(max_size=6), st.none(), st.integers()), unique=True, max_size=60),
       parts=st.integers(min_value=1, max_value=40))
def test_split_items_agrees_with_partition_of(keys, parts):
    items = [(k, i) for i, k in enumerate(keys)]
    groups = shuffle.split_items(items, keys, parts)
    assert len(groups) == parts
    for p, group in enumerate(groups):
        assert group == [it for it in items if shuffle.partition_of(it[0], parts) == p]


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.one_of(st.text(max_size=6), st.none()),
                                st.one_of(st.floats(), st.integers(min_value=-2**70, max_value=2**70))),
                      max_size=50),
       kind=st.sampled_from(["d", "q"]))
def test_pair_batches_roundtrip_exactly(pairs, kind):
    """Pair batches give back the records a JSON batch would (values that do not
    fit the binary kind fall back to JSON)."""
    if kind == "d":
        pairs = [(k, float(v)) for k, v in pairs if not isinstance(v, int) or abs(v) < 2**53]
    else:
        pairs = [(k, v) for k, v in pairs if isinstance(v, int)]
    w = shuffle.PartitionedWriter(1)
    w.add_pair_columns([k for k, _ in pairs], [v for _, v in pairs], kind, 0)
    data, index = w.to_bytes()
    s, e = index["partitions"][0]
    got = [r for b in shuffle.iter_batches_bytes(data[s:e]) for r in b]
    want = [list(p) for p in pairs]
    assert len(got) == len(want)
    for g, w_ in zip(got, want):
        assert g[0] == w_[0] and type(g[1]) is type(w_[1])
        assert (g[1] != g[1] and w_[1] != w_[1]) or g[1] == w_[1]  # NaN == NaN here


@settings(max_examples=80, deadline=None)
@given(keys=st.lists(st.one_of(st.text(max_size=6), st.sampled_from(["\x7f", "a\x7fb", ""]), st.none()),
                     max_size=60),
       parts=st.integers(min_value=1, max_value=24), kind=st.sampled_from(["d", "q"]))
def test_pair_columns_go_to_their_partitions_and_read_back_as_columns(tmp_path_factory, keys, parts, kind):
    """``add_pair_columns`` puts each (key, number) in its key's partition, in
    order; ``iter_pairs`` reads a partition back as the same columns (keys
    holding the DEL separator, or NULL, travel as a JSON list)."""
    nums = [float(i) / 3 if kind == "d" else i * 7 for i in range(len(keys))]
    w = shuffle.PartitionedWriter(parts)
    w.add_pair_columns(keys, nums, kind)
    path = tmp_path_factory.mktemp("pairs") / "out"
    index, _ = w.save("file://" + str(path))
    for p in range(parts):
        s, e = index["partitions"][p]
        got_k, got_v = [], []
        for ks, vs, maybe_null in shuffle.iter_pairs([{"uri": "file://" + str(path), "start": s, "end": e}]):
            assert not maybe_null
            got_k += ks
            got_v += list(vs)
        want = [(k, v) for k, v in zip(keys, nums) if shuffle.partition_of(k, parts) == p]
        assert list(zip(got_k, got_v)) == want
        assert all(type(v) is type(wv) for v, (_, wv) in zip(got_v, want))
