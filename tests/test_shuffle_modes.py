"""Every shuffle gives the same answer: direct, coalesced from fine partitions,
and through combiners; on the local backend, on the Lambda backend (moto, the
real package in subprocesses), and at a scale where combiners pay."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from aws_fixtures import moto_server, s3_bucket  # noqa: F401
from difftest import (RK_COLUMNS, UV_COLUMNS, Tables, as_bytes, assert_same, rankings_lines,
                      uservisits_lines)
from runtime import shuffle, storage
from sqlmr.config import Settings
from sqlmr.session import Session
from sqlmr.shuffle_plan import coalesce

QUERIES = Path(__file__).resolve().parents[1] / "queries"
AMPLAB = ["1a", "1b", "1c", "2a", "2b", "2c", "3a", "3b", "3c"]

# name -> settings changed from the default (and test knobs, set as attributes)
MODES = {
    "direct": dict(shuffle="direct"),
    # many fine partitions, coalesced into reducers of a tiny target size
    "coalesced": dict(shuffle="direct", reduce_mb=0.002, fine_partitions=64),
    "combine": dict(shuffle="combine", combine_group=2, fine_partitions=16),
}


def make_settings(base: dict, mode: dict) -> Settings:
    knobs = {k: v for k, v in mode.items() if k in ("fine_partitions", "combine_group")}
    s = Settings(**{**base, **{k: v for k, v in mode.items() if k not in knobs}})
    for k, v in knobs.items():
        setattr(s, k, v)
    return s


def rows_of(session: Session, sql: str, stats: list | None = None) -> list[list]:
    results = list(session.execute(sql))
    res = results[-1]
    try:
        rows = [list(r) for r in res.rows]
        if stats is not None:
            stats.append(res.stats)
        return rows
    finally:
        for r in results:
            r.close()


# ----------------------------------------------------------------- the format

def _write(tmp_path: Path, name: str, parts: int, records: list[tuple[int, list]],
           sort: bool = False, spill: int | None = None) -> dict:
    w = shuffle.PartitionedWriter(parts, sort=sort, spill_records=spill)
    for p, r in records:
        w.add(p, r)
    uri = storage.to_uri(str(tmp_path / name))
    return shuffle.output_facts(uri, *w.save(uri))


def _read(ranges: list[dict]) -> list[list]:
    return [r for b in shuffle.iter_ranges(ranges) for r in b]


def test_partition_table_gives_a_range_of_partitions(tmp_path):
    recs = [(k % 5, [k, "x" * (k % 3)]) for k in range(200)]
    out = _write(tmp_path, "m", 5, recs)
    assert "partitions" not in out and out["parts"] == 5 and sum(out["sizes"]) > 0
    for lo in range(5):
        for hi in range(lo + 1, 6):
            r = shuffle.object_range(shuffle.listed(out), lo, hi)
            assert sorted(_read([r])) == sorted(rec for p, rec in recs if lo <= p < hi)
    empty = _write(tmp_path, "e", 4, [(1, ["a"])])
    assert shuffle.object_range(shuffle.listed(empty), 2, 4) is None


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@hsettings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(_TEXT, st.none()), min_size=1, max_size=20), data=st.data())
def test_pair_batches_read_back_as_json_would_read_them(keys, data):
    """The hand-written pair batch line is the JSON encoder's, and the fast
    reader gives what a JSON decode gives: any text key (quotes,
    backslashes, control characters, DEL, non-ASCII), NULL keys, every float."""
    import json
    kind = data.draw(st.sampled_from("dq"))
    nums = data.draw(st.lists(st.floats(allow_nan=False) if kind == "d"
                              else st.integers(-2 ** 63, 2 ** 63 - 1),
                              min_size=len(keys), max_size=len(keys)))
    line = shuffle.encode_pairs(keys, nums, kind)
    assert line is not None and line.endswith(b"\n")
    obj = json.loads(line)          # a valid JSON object, whatever the keys
    got_keys, got_nums, maybe_null = shuffle.decode_pairs(line.rstrip(b"\n"))
    assert list(got_keys) == keys and list(got_nums) == nums and not maybe_null
    assert list(shuffle.decode_rows(line.rstrip(b"\n"))) == list(zip(keys, nums))
    assert shuffle.decode_batch(line.rstrip(b"\n")) == [[k, v] for k, v in zip(keys, nums)]
    if all(k is not None and shuffle.KEY_SEP not in k for k in keys):
        assert obj["s"].split(shuffle.KEY_SEP) == keys   # the joined form


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=9), min_size=1, max_size=5),
       spill=st.sampled_from([None, 60, 400]), data=st.data())
def test_bounds_table_locates_what_each_partition_table_says(tmp_path, counts, spill, data):
    """The driver's bounds table (from reported sizes) gives every reducer
    the same bytes as each object's own partition table, spilled or not, and
    an object with fewer partitions than the stage ends where its data ends."""
    fine = max(len(c) for c in counts)
    outs = []
    for m, per_part in enumerate(counts):
        recs = [(p, [f"k{p}-{i}", i * 0.5]) for p, n in enumerate(per_part) for i in range(n)]
        w = shuffle.PartitionedWriter(len(per_part), **({"spill_bytes": spill} if spill else {}))
        for p, r in recs:
            w.add(p, r)
        out_uri = storage.to_uri(str(tmp_path / f"b{m}"))
        outs.append(shuffle.output_facts(out_uri, *w.save(out_uri)))
    uri = storage.to_uri(str(tmp_path / "bounds.bin"))
    storage.write_bytes(uri, shuffle.bounds_table(outs, fine))
    listed = [shuffle.listed(o) for o in outs]
    lo = data.draw(st.integers(0, fine - 1))
    hi = data.draw(st.integers(lo + 1, fine))
    starts, ends = shuffle.bounds_ranges(uri, len(outs), lo, hi)
    for m, o in enumerate(listed):
        want = shuffle.object_range(o, lo, hi)
        got = (starts[m], ends[m])
        if want is None:
            assert got[1] <= got[0]
        else:
            assert got == (want["start"], want["end"])


def test_sorted_runs_survive_ranges_and_combiners(tmp_path):
    """A join shuffle's runs: a range of partitions of one output, and of a
    combiner's output, is still a set of sorted runs whose merge is in order."""
    import heapq
    from operator import itemgetter
    outs = []
    for m in range(3):
        recs = [((k * 7 + m) % 4, [(k * 37 + m) % 101, m]) for k in range(120)]
        outs.append(_write(tmp_path, f"s{m}", 4, recs, sort=True, spill=25))
    assert all(o["cuts"] > 4 for o in outs)    # several runs per partition
    comb = storage.to_uri(str(tmp_path / "c"))
    index, size = shuffle.save_combined([shuffle.listed(o) for o in outs], comb)
    combined = shuffle.output_facts(comb, index, size)
    for lo, hi in [(0, 4), (1, 3), (2, 3)]:
        want = sorted(r for o in outs
                      for r in _read([shuffle.object_range(shuffle.listed(o), lo, hi)]))
        got = list(heapq.merge(*shuffle.iter_runs(
            [shuffle.object_range(shuffle.listed(combined), lo, hi)]), key=itemgetter(0, 1)))
        assert [r[:2] for r in got] == [r[:2] for r in want]


def test_combiner_output_reads_as_the_map_outputs(tmp_path):
    outs = [_write(tmp_path, f"m{i}", 6, [((i + k) % 6, [i, k]) for k in range(50)])
            for i in range(4)]
    buf = io.BytesIO()
    index = shuffle.combine([shuffle.listed(o) for o in outs], buf)
    path = tmp_path / "c"
    path.write_bytes(buf.getvalue())
    comb = shuffle.output_facts(storage.to_uri(str(path)), index, len(buf.getvalue()))
    assert comb["sizes"] == [sum(o["sizes"][p] for o in outs) for p in range(6)]
    for p in range(6):
        direct = [r for o in outs for r in _read(
            [x for x in [shuffle.object_range(shuffle.listed(o), p, p + 1)] if x])]
        via = _read([shuffle.object_range(shuffle.listed(comb), p, p + 1)])
        assert sorted(via) == sorted(direct)


def _pair_output(tmp_path: Path, name: str, parts: int, batches: list[tuple[int, list, list, str]]
                 ) -> dict:
    """A map output of (key, number) batches as maps write them: pair batches
    (kind "d" or "q"), or JSON records (kind "json", numbers may be NULL)."""
    w = shuffle.PartitionedWriter(parts)
    for p, keys, nums, kind in batches:
        if kind == "json":
            w.add_batch(p, [[k, v] for k, v in zip(keys, nums)])
        else:
            w.add_pair_columns(keys, nums, kind, p)
    uri = storage.to_uri(str(tmp_path / name))
    return shuffle.output_facts(uri, *w.save(uri))


def _sums(records) -> dict:
    """SUM by key as a reducer computes it: NULL adds nothing; a key seen only
    with NULL is NULL."""
    out: dict = {}
    for k, v in records:
        if v is None:
            out.setdefault(k, None)
        else:
            out[k] = (out.get(k) or 0) + v
    return out


_SUM_KEYS = st.one_of(st.sampled_from(["a", "b", 'q"', "\x7f", ""]), st.none(), _TEXT)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), parts=st.integers(1, 5), kind=st.sampled_from(["d", "q"]),
       sample=st.sampled_from([0, 3, 10 ** 6]), round_bytes=st.sampled_from([1, 60, 1 << 20]))
def test_a_merging_combiner_adds_what_the_reducers_would_add(tmp_path, data, parts, kind, sample,
                                                             round_bytes):
    """Any keys (NULL, DEL, quotes), float or int numbers (sums past int64
    too), NULL numbers in JSON batches, any partitioning, rounds of any size,
    and a combiner that gives up merging after any number of records: each
    partition's sums are those of its records read directly, and records in
    and out are counted."""
    import math
    nums = (st.floats(-1e6, 1e6, allow_nan=False) if kind == "d"
            else st.integers(-2 ** 63, 2 ** 63 - 1))
    outs, everything = [], []
    for m in range(data.draw(st.integers(1, 4))):
        batches = []
        for _ in range(data.draw(st.integers(0, 4))):
            p = data.draw(st.integers(0, parts - 1))
            keys = data.draw(st.lists(_SUM_KEYS, min_size=1, max_size=8))
            fmt = data.draw(st.sampled_from([kind, kind, "json"]))
            vals = data.draw(st.lists(st.one_of(nums, st.none()) if fmt == "json" else nums,
                                      min_size=len(keys), max_size=len(keys)))
            batches.append((p, keys, vals, fmt))
            everything += [(p, k, v) for k, v in zip(keys, vals)]
        outs.append(_pair_output(tmp_path, f"p{m}", parts, batches))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shuffle, "MERGE_SAMPLE_RECORDS", sample)
        mp.setattr(shuffle, "ADD_ROUND_BYTES", round_bytes)
        if sample == 0:
            mp.setattr(shuffle, "MERGE_MAX_RATIO", -1.0)  # gives up after the first partition
        buf, counts = io.BytesIO(), {}
        index = shuffle.combine([shuffle.listed(o) for o in outs], buf, merge="sum",
                                counts=counts)
    path = tmp_path / "merged"
    path.write_bytes(buf.getvalue())
    comb = shuffle.output_facts(storage.to_uri(str(path)), index, len(buf.getvalue()))
    assert counts["records_in"] == len(everything)
    assert counts["merged"] + counts["copied"] == parts and counts["merged"] >= 1
    for p in range(parts):
        r = shuffle.object_range(shuffle.listed(comb), p, p + 1)
        got = _read([r]) if r else []
        assert len(got) == index["records"][p]
        want = _sums((k, v) for q, k, v in everything if q == p)
        assert _sums(map(tuple, got)).keys() == want.keys()
        for k, v in _sums(map(tuple, got)).items():
            w = want[k]
            assert (v is None) == (w is None), (k, v, w)
            if v is not None:
                assert type(v) is type(w) and math.isclose(v, w, rel_tol=1e-9, abs_tol=1e-6)
        if p < counts["merged"]:   # merged: one record per key
            assert len(got) == len(want)


def test_a_merging_combiner_copies_once_keys_stop_repeating(tmp_path, monkeypatch):
    """Keys that never repeat: after the sample the combiner copies bytes."""
    monkeypatch.setattr(shuffle, "MERGE_SAMPLE_RECORDS", 100)
    outs = [_pair_output(tmp_path, f"u{m}", 8,
                         [(p, [f"{m}-{p}-{i}" for i in range(40)], [1.0] * 40, "d")
                          for p in range(8)]) for m in range(3)]
    buf, counts = io.BytesIO(), {}
    index = shuffle.combine([shuffle.listed(o) for o in outs], buf, merge="sum", counts=counts)
    assert {k: counts[k] for k in ("records_in", "merged", "copied")} == {
        "records_in": 960, "merged": 1, "copied": 7}
    assert counts["data_bytes"] == sum(sum(o["sizes"]) for o in outs)
    assert index["records"] == [120] * 8
    repeated = [_pair_output(tmp_path, f"r{m}", 8, [(p, ["x", "y"] * 20, [1] * 40, "q")
                                                      for p in range(8)]) for m in range(3)]
    index = shuffle.combine([shuffle.listed(o) for o in repeated], io.BytesIO(), merge="sum",
                            counts=counts)
    assert counts["merged"] == 8 and index["records"] == [2] * 8


def test_an_adding_combiner_on_s3_reads_in_rounds_what_it_reads_locally(
        s3_bucket, tmp_path, monkeypatch):
    """On S3 an adding combiner reads each object's index with one GET and
    each round's range of it with one more: the output is byte for byte the
    one made from local files."""
    from runtime import s3stats
    monkeypatch.setattr(shuffle, "ADD_ROUND_BYTES", 6_000)
    outs_local = [_pair_output(tmp_path, f"a{m}", 16, [
        (p, [f"k{(m * 7 + i) % 40}" for i in range(30)], [float(p)] * 30, "d") for p in range(16)])
        for m in range(5)]
    outs = []
    for o in outs_local:
        uri = f"s3://{s3_bucket}/shuffle/{Path(storage.to_path(o['uri'])).name}"
        storage.write_bytes(uri, Path(storage.to_path(o["uri"])).read_bytes())
        outs.append({**o, "uri": uri})
    local = io.BytesIO()
    want = shuffle.combine([shuffle.listed(o) for o in outs_local], local, merge="sum")
    before = s3stats.snapshot()
    remote = io.BytesIO()
    assert shuffle.combine([shuffle.listed(o) for o in outs], remote, merge="sum") == want
    assert remote.getvalue() == local.getvalue()
    total = sum(sum(o["sizes"]) for o in outs)
    rounds = len(shuffle._rounds([[[0, n] for n in o["sizes"]] for o in outs], 16, 6_000))
    assert 1 < rounds < 16 and total > 6_000
    assert s3stats.since(before)["get"] == len(outs) * (1 + rounds)


def test_a_combiner_on_s3_downloads_its_objects_at_once_and_cleans_up(
        s3_bucket, tmp_path, monkeypatch):
    """Map outputs on S3 are fetched COMBINE_FETCHES at a time; the combined
    object is byte for byte the one made from local copies; a failed download
    raises and leaves no temp file behind."""
    import threading
    import time
    outs_local = [_write(tmp_path, f"m{i}", 5, [((i * 3 + k) % 5, [i, k, "v" * (k % 4)])
                                                 for k in range(300)]) for i in range(7)]
    outs = []
    for o in outs_local:
        uri = f"s3://{s3_bucket}/shuffle/{Path(storage.to_path(o['uri'])).name}"
        storage.write_bytes(uri, Path(storage.to_path(o["uri"])).read_bytes())
        outs.append({**o, "uri": uri})
    active, peak, lock = [0], [0], threading.Lock()
    real = storage.iter_range

    def counted(uri, *a, **kw):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.05)       # long enough for the others to start
            yield from real(uri, *a, **kw)
        finally:
            with lock:
                active[0] -= 1
    monkeypatch.setattr(storage, "iter_range", counted)
    before = set(os.listdir(tempfile.gettempdir()))
    buf = io.BytesIO()
    index = shuffle.combine([shuffle.listed(o) for o in outs], buf)
    local = io.BytesIO()
    monkeypatch.setattr(storage, "iter_range", real)
    assert shuffle.combine([shuffle.listed(o) for o in outs_local], local) == index
    assert buf.getvalue() == local.getvalue()
    assert peak[0] == shuffle.COMBINE_FETCHES

    started: list[str] = []

    def failing(uri, *a, **kw):
        started.append(uri)
        if uri.endswith("m1"):
            raise OSError(f"injected: cannot read {uri}")
        time.sleep(1.0)        # the others are busy when the failure is seen
        yield from real(uri, *a, **kw)
    monkeypatch.setattr(storage, "iter_range", failing)
    with pytest.raises(OSError, match="injected"):
        shuffle.combine([shuffle.listed(o) for o in outs], io.BytesIO())
    assert len(started) < len(outs)          # the failure cancelled the rest
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before
            if n.startswith("sqlmr-comb-")}
    assert not left


@given(sizes=st.lists(st.integers(0, 50), max_size=40), target=st.integers(1, 120))
def test_coalesce_covers_every_nonempty_partition_once_in_order(sizes, target):
    ranges = coalesce(sizes, target)
    covered = [p for lo, hi in ranges for p in range(lo, hi)]
    assert covered == sorted(set(covered))                        # contiguous, in order
    assert {p for p, n in enumerate(sizes) if n} <= set(covered)  # nothing lost
    for lo, hi in ranges:
        total = sum(sizes[lo:hi])
        assert total > 0
        assert total <= target or hi - lo == 1 or total - max(sizes[lo:hi]) < target


# ----------------------------------------------------------- AMPLab, locally

@pytest.fixture
def amplab_home(sqlmr_home, tiny):
    data = sqlmr_home / "data" / "amplab"
    data.mkdir(parents=True)
    for t in ("rankings", "uservisits"):
        (data / t).symlink_to(tiny / t)
    return sqlmr_home


def _query(name: str) -> str:
    return (QUERIES / f"{name}.sql").read_text()


@pytest.mark.parametrize("query", AMPLAB)
def test_amplab_every_shuffle_gives_the_default_answer(amplab_home, query):
    base = dict(workers=2, split_mb=0.3)
    sql = _query(query)
    ref = Session(Settings(workers=2))
    try:
        want = rows_of(ref, sql)
    finally:
        ref.close()
    for name, mode in MODES.items():
        s = Session(make_settings(base, mode))
        stats: list = []
        try:
            got = rows_of(s, sql, stats)
        finally:
            s.close()
        assert_same(got, want, ordered="ORDER BY" in sql.upper())
        if name == "combine" and stats[0].reduce_tasks:
            assert stats[0].combine_tasks >= 1, query
        if name == "combine" and query.startswith("2"):   # SUM by one key: combiners add
            assert stats[0].counters.get("partitions_merged", 0) >= 1, query


# ------------------------------------------------ differential shapes (DuckDB)

@pytest.fixture
def shape_tables(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("uv", UV_COLUMNS, {f"part-{i:05d}": as_bytes(uservisits_lines(900, seed=10 + i,
                                                                        nulls=0.02))
                             for i in range(3)})
    urls = [ln.split(",", 1)[0] for ln in rankings_lines(800, seed=20)]
    t.add("rk", RK_COLUMNS, {"part-00000": as_bytes(rankings_lines(800, seed=20))})
    # a visits table whose destURL names ranked pages, so reduce-side joins match
    vis = []
    for i, ln in enumerate(uservisits_lines(1500, seed=30)):
        f = ln.split(",")
        f[1] = urls[(i * 7) % len(urls)]
        vis.append(",".join(f))
    t.add("vis", UV_COLUMNS, {"part-00000": as_bytes(vis[:700]), "part-00001": as_bytes(vis[700:])})
    session.settings.split_mb = 0.03
    session.settings.broadcast_mb = 0   # joins on the reduce side
    return t


SHAPES = [
    "SELECT SUBSTR(sourceIP, 1, 5), SUM(adRevenue), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 5)",
    "SELECT countryCode, COUNT(DISTINCT searchWord), AVG(duration) FROM uv GROUP BY countryCode",
    "SELECT DISTINCT countryCode, languageCode FROM uv",
    "SELECT sourceIP, adRevenue FROM uv ORDER BY adRevenue DESC, sourceIP LIMIT 17",
    "SELECT duration, searchWord FROM uv ORDER BY duration NULLS FIRST, searchWord DESC NULLS LAST, sourceIP, destURL, visitDate",
    "SELECT v.sourceIP, r.pageRank, v.adRevenue FROM vis v JOIN rk r ON v.destURL = r.pageURL WHERE r.pageRank > 50",
    "SELECT v.sourceIP, SUM(v.adRevenue) AS s, AVG(r.pageRank) FROM vis v JOIN rk r ON v.destURL = r.pageURL "
    "GROUP BY v.sourceIP ORDER BY s DESC LIMIT 5",
    "SELECT c, COUNT(*) FROM (SELECT countryCode AS c, SUM(duration) AS d FROM uv GROUP BY countryCode, languageCode) t "
    "WHERE d > 10 GROUP BY c",
    "SELECT countryCode, SUM(adRevenue) AS s FROM uv GROUP BY countryCode ORDER BY s DESC",
    # one key, one SUM or COUNT: combiners add the numbers (NULL keys, NULL numbers)
    "SELECT searchWord, SUM(duration) FROM uv GROUP BY searchWord",
    "SELECT SUBSTR(sourceIP, 1, 4), COUNT(searchWord) FROM uv GROUP BY SUBSTR(sourceIP, 1, 4)",
]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sql", SHAPES)
def test_shapes_in_every_shuffle_mode_match_duckdb(shape_tables, sql, mode):
    for k, v in MODES[mode].items():
        setattr(shape_tables.session.settings, k, v)
    shape_tables.check(sql)


def test_combiners_add_only_when_the_maps_saw_keys_repeat(shape_tables):
    """The maps judge their partial aggregation early (here after 50 rows) and
    report how often keys repeated: the driver has the combiners add a SUM's
    numbers only when that shrinks a combiner's pairs to half or less."""
    s = shape_tables.session
    s.settings.shuffle, s.settings.combine_group = "combine", 3
    s.settings.aggr_early_rows, s.settings.aggr_check_rows = 50, 10 ** 9
    cases = [  # (query, its combiners add)
        ("SELECT CONCAT(sourceIP, destURL, visitDate), SUM(adRevenue) FROM uv "
         "GROUP BY CONCAT(sourceIP, destURL, visitDate)", False),   # every key new
        ("SELECT SUBSTR(sourceIP, 1, 2), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 2)",
         True),
    ]
    for sql, adds in cases:
        s.settings.shuffle = "direct"
        want = rows_of(s, sql)
        s.settings.shuffle = "combine"
        stats: list = []
        assert_same(rows_of(s, sql, stats), want, ordered=False)
        st = stats[0]
        assert st.combine_tasks >= 1 and st.groups_estimate is not None, sql
        assert ("partitions_merged" in st.counters) == adds, (sql, st.groups_estimate)
        (comb,) = [p for p in st.phases.values() if p["kind"] == "combine"]
        assert comb.get("adds", False) == adds   # what --stats says of the phase
        assert (comb["rows_out"] < comb["rows_in"]) == adds


@hsettings(max_examples=12, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fine=st.integers(1, 40), target_kb=st.integers(1, 64), group=st.integers(1, 6),
       mode=st.sampled_from(["direct", "combine"]), q=st.integers(0, len(SHAPES) - 1))
def test_any_partitioning_target_and_grouping_gives_the_same_answer(
        shape_tables, fine, target_kb, group, mode, q):
    s = shape_tables.session.settings
    s.shuffle, s.reduce_mb = mode, target_kb / 1024
    s.fine_partitions, s.combine_group = fine, group
    shape_tables.check(SHAPES[q])


# ------------------------------------------- the Lambda backend over moto S3

JOIN = ("SELECT uv.sourceIP, SUM(uv.adRevenue), AVG(rk.pageRank) FROM uv JOIN rk "
        "ON uv.destURL = rk.pageURL GROUP BY uv.sourceIP")
AGG = "SELECT SUBSTR(sourceIP, 1, 3), SUM(adRevenue), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 3)"


def _lambda():
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    import test_lambda_faults as faults
    return faults


@pytest.fixture
def lam(moto_server, tmp_path):
    """A bucket of tables on moto and a way to run a query on the Lambda
    backend (the real package in subprocesses, faults injectable)."""
    faults = _lambda()
    import boto3
    from aws_fixtures import _reset_moto
    from test_lambda_backend import REGION, upload_tables
    _reset_moto(moto_server)
    name = "sqlmr-shuffle-" + os.urandom(4).hex()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    upload_tables(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SQLMR_BUCKET", name)

        def run(sql, fault=None, **settings):
            knobs = {k: settings.pop(k) for k in ("fine_partitions", "combine_group")
                     if k in settings}
            s, backend, inv, _ = faults.make(fault, tmp_path, **settings)
            for k, v in knobs.items():
                setattr(s, k, v)
            kept: list = []
            rows = faults.query(s, backend, name, sql, keep=kept)
            stats = kept[0].stats
            for r in kept:
                r.close()
            return rows, stats, backend, inv
        run.bucket = name
        yield run


def test_lambda_combine_and_coalesced_give_the_local_answer(lam):
    """Few tasks (each is a Python process here): a coalesced GROUP BY through
    combiners, and a reduce-side join coalesced directly."""
    from test_lambda_backend import local_rows
    want = local_rows(lam.bucket, AGG)
    got, st, _, _ = lam(AGG, shuffle="combine", reducers=0, reduce_mb=0.001, split_mb=0.1,
                        fine_partitions=4, combine_group=2)
    assert_same(got, want, ordered=False)
    assert st.combine_tasks >= 2 and st.reduce_tasks >= 2
    assert st.metered and st.invocations == st.map_tasks + st.combine_tasks + st.reduce_tasks
    want = local_rows(lam.bucket, JOIN)
    got, st, _, _ = lam(JOIN, shuffle="direct", reducers=0, reduce_mb=0.002, split_mb=0.1,
                        fine_partitions=4, broadcast_mb=0)
    assert_same(got, want, ordered=False)
    assert st.combine_tasks == 0 and st.reduce_tasks >= 2


SUBQUERIES = ("SELECT countryCode, COUNT(*), SUM(adRevenue) / (SELECT SUM(adRevenue) FROM uv) FROM uv "
              "WHERE destURL IN (SELECT pageURL FROM rk WHERE pageRank > 10) AND NOT EXISTS "
              "(SELECT 1 FROM rk r WHERE r.pageURL = uv.destURL AND r.avgDuration > 90) "
              "GROUP BY countryCode")


def test_lambda_subqueries_give_the_local_answer(lam):
    """IN, NOT EXISTS and a scalar subquery on Lambda: the derived tables of
    keys are broadcast (read from S3 by every map) and joined as reduce-side
    joins, and the one row of the scalar aggregate goes to every task."""
    from test_lambda_backend import local_rows
    want = local_rows(lam.bucket, SUBQUERIES)
    assert want
    for broadcast_mb in (32, 0):
        got, st, _, _ = lam(SUBQUERIES, reducers=2, split_mb=0.05, broadcast_mb=broadcast_mb)
        assert_same(got, want, ordered=False)
        assert st.metered


WINDOWS = ("SELECT sourceIP, destURL, RANK() OVER (PARTITION BY SUBSTR(sourceIP, 1, 2) ORDER BY adRevenue DESC) AS r, "
           "SUM(duration) OVER (PARTITION BY SUBSTR(sourceIP, 1, 2)) AS d, "
           "COUNT(*) OVER (ORDER BY visitDate) AS upto FROM uv")


def test_lambda_windows_give_the_local_answer(lam):
    """Window stages on Lambda: records shuffled on the partition values as
    sorted runs, merged and cut into partitions by the reducers (one reducer
    for the window without PARTITION BY)."""
    from test_lambda_backend import local_rows
    want = local_rows(lam.bucket, WINDOWS)
    assert want
    got, st, _, _ = lam(WINDOWS, reducers=3, split_mb=0.05)
    assert_same(got, want, ordered=False)
    assert st.metered


SUM_BY_KEY = "SELECT SUBSTR(sourceIP, 1, 3), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 3)"


def test_lambda_combiners_add_partial_sums_and_the_reducers_shrink(lam):
    """A SUM by one key through combiners on Lambda: they add each key's
    numbers, so the reducers, sized after the combiners ran, read fewer
    records and are fewer than those sized from the maps' outputs."""
    from test_lambda_backend import local_rows
    want = local_rows(lam.bucket, SUM_BY_KEY)
    knobs = dict(shuffle="combine", reducers=0, reduce_mb=0.002, split_mb=0.05,
                 fine_partitions=8, combine_group=3)
    got, st, _, _ = lam(SUM_BY_KEY, **knobs)
    assert_same(got, want, ordered=False)
    assert st.combine_tasks >= 2 and st.counters["partitions_merged"] >= 1
    direct, dst, _, _ = lam(SUM_BY_KEY, **{**knobs, "shuffle": "direct"})
    assert_same(direct, want, ordered=False)
    assert dst.combine_tasks == 0 and st.reduce_tasks < dst.reduce_tasks


def test_lambda_combiner_duplicates_and_lost_answers_keep_one_attempt(lam):
    from test_lambda_backend import keys, local_rows
    faults = _lambda()

    def fault(event, n):
        if n == 0 and event["kind"] == "combine":
            if event["task"] == 0:
                return "duplicate"
            if event["task"] == 1 and event["attempt"] == 0:
                return "lost"
        return None

    want = local_rows(lam.bucket, AGG)
    got, st, backend, inv = lam(AGG, fault, shuffle="combine", reducers=0, reduce_mb=0.001,
                                split_mb=0.1, fine_partitions=4, combine_group=2)
    assert_same(got, want, ordered=False)
    assert inv.runs.count((1, "combine", 0, 0)) == 2
    acc = faults.accepted(backend)
    assert acc[(1, "combine", 1)] == 1 and acc[(1, "combine", 0)] == 0
    assert faults.log(backend, "failed") == [(1, "combine", 1, 0)]
    assert keys(lam.bucket, "sqlmr/jobs/") == []


# ------------------------------------------------------- at scale (over moto)

class S3ScratchSession(Session):
    """The local backend with its scratch data (shuffle objects) on S3."""

    def __init__(self, settings: Settings, scratch: str) -> None:
        super().__init__(settings)
        self._scratch = scratch

    def scratch(self) -> str:
        return self._scratch


def test_a_thousand_maps_combine_into_fifty_reducers(moto_server, s3_bucket, tmp_path):
    """≥ 1,000 map tasks, ≥ 50 reducers, shuffle objects on (moto) S3, through
    combiners: the answer is the one-split run's, and the shuffle's GETs
    (the driver's count of what reducers and combiners read) stay far below
    maps × reducers.  Run on the local backend: a thousand Lambda tasks in
    subprocesses would take minutes."""
    lines = uservisits_lines(12_000, seed=77)
    folder = tmp_path / "uvs"
    folder.mkdir()
    (folder / "part-00000").write_bytes(as_bytes(lines))
    cols = ", ".join(f"{n} {t.upper()}" for n, t in UV_COLUMNS)
    create = f"CREATE EXTERNAL TABLE IF NOT EXISTS uvs ({cols}) LOCATION '{folder}';"
    sql = "SELECT SUBSTR(sourceIP, 1, 6), COUNT(*), SUM(duration) FROM uvs GROUP BY SUBSTR(sourceIP, 1, 6)"
    ref = Session(Settings(workers=2))
    try:
        want = rows_of(ref, create + sql)
    finally:
        ref.close()
    size = (folder / "part-00000").stat().st_size
    settings = Settings(workers=2, split_mb=size / 1050 / 2**20, reducers=50, shuffle="combine")
    settings.combine_group = 200   # few combiners: each request to moto costs ~10 ms
    s = S3ScratchSession(settings, f"s3://{s3_bucket}/scratch")
    stats: list = []
    try:
        got = rows_of(s, create + sql, stats)
    finally:
        s.close()
    assert_same(got, want, ordered=False)
    st = stats[0]
    assert st.map_tasks >= 1000 and st.reduce_tasks >= 50 and st.combine_tasks >= 5
    assert 0 < st.shuffle_gets < st.map_tasks * st.reduce_tasks / 4


# ------------------------------------------------- the setting, SET and EXPLAIN

def test_set_shuffle_changes_explain_and_the_run(amplab_home):
    s = Session(Settings(workers=2, split_mb=0.3))
    try:
        sql = _query("2a").split("\n", 1)[1]
        auto = list(s.execute("EXPLAIN " + sql))[0].message
        assert "shuffle: direct, " in auto and "planned" in auto
        list(s.execute("SET shuffle = combine"))
        text = list(s.execute("EXPLAIN " + sql))[0].message
        line = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("shuffle:")][0]
        assert line.startswith("shuffle: combine (") and "SET shuffle = combine" in line
        stats: list = []
        rows_of(s, sql, stats)
        assert stats[0].combine_tasks >= 1
        with pytest.raises(Exception, match="shuffle is auto, direct or combine"):
            list(s.execute("SET shuffle = sometimes"))
    finally:
        s.close()


def test_cli_shuffle_flag(amplab_home, capsys):
    from sqlmr import cli
    sql = _query("2a").split("\n", 1)[1]
    assert cli.main(["--shuffle", "combine", "--split-mb", "0.3", "--workers", "2",
                     "--format", "csv", "-e", sql]) == 0
    out = capsys.readouterr()
    assert " combine + " in out.err + out.out
    with pytest.raises(SystemExit):
        cli.main(["--shuffle", "often", "-e", "SELECT 1"])
