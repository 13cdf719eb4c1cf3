"""Every shuffle gives the same answer: direct, coalesced from fine partitions,
and through combiners; on the local backend, on the Lambda backend (moto, the
real package in subprocesses), and at a scale where combiners pay."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

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
]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sql", SHAPES)
def test_shapes_in_every_shuffle_mode_match_duckdb(shape_tables, sql, mode):
    for k, v in MODES[mode].items():
        setattr(shape_tables.session.settings, k, v)
    shape_tables.check(sql)


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
