"""Joins against DuckDB on the same files: inner and LEFT OUTER, both
spellings, two and three tables, filters on either side, aggregation over the
join's output, NULL and non-matching keys, duplicate keys (many-to-many) —
each shape run as a reduce-side sort-merge join and as a broadcast join."""

from __future__ import annotations

import random
import string

import pytest

from difftest import Tables, as_bytes

RK = [("pageURL", "string"), ("pageRank", "int"), ("avgDuration", "int")]
UV = [("sourceIP", "string"), ("destURL", "string"), ("visitDate", "date"),
      ("adRevenue", "double"), ("userAgent", "string"), ("countryCode", "string"),
      ("languageCode", "string"), ("searchWord", "string"), ("duration", "int")]
CC = [("code", "string"), ("country", "string"), ("continent", "string")]
COUNTRIES = ["USA", "DEU", "FRA", "BRA", "IND", "CHN", "JPN", "ZAF"]


def _url(rnd: random.Random) -> str:
    return "".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(6, 14)))


def join_fixture(seed: int = 7, pages: int = 300, visits: int = 2500, nulls: float = 0.04):
    """rankings/uservisits-shaped lines where most destURLs match a pageURL;
    some pages are listed twice (duplicate keys), some visits point nowhere or
    have a NULL destURL, and fields are NULL at rate ``nulls``."""
    rnd = random.Random(seed)
    urls = []
    while len(urls) < pages:
        u = _url(rnd)
        if u not in urls:
            urls.append(u)
    rk = []
    for i, u in enumerate(urls):
        rank = "\\N" if rnd.random() < nulls else str(int(rnd.paretovariate(1.2)))
        rk.append(f"{u},{rank},{rnd.randint(1, 99)}")
        if i % 37 == 0:  # a duplicate pageURL: both rows join
            rk.append(f"{u},{rnd.randint(1, 50)},{rnd.randint(1, 99)}")
    rnd.shuffle(rk)
    uv = []
    for _ in range(visits):
        x = rnd.random()
        dest = rnd.choice(urls) if x < 0.85 else ("\\N" if x < 0.9 else _url(rnd) + "zz")
        f = [f"{rnd.randint(1, 20)}.{rnd.randint(0, 9)}.{rnd.randint(0, 9)}.{rnd.randint(1, 9)}",
             dest,
             f"{rnd.randint(1975, 2010)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
             repr(round(rnd.random(), 6)),
             rnd.choice(["Mozilla/5.0", "Opera/9.0", "curl/7.1"]),
             rnd.choice(COUNTRIES + ["XXX"]),
             "en-US", rnd.choice(["alpha", "beta", "gamma"]), str(rnd.randint(1, 10))]
        for i in (0, 2, 3, 5, 8):
            if rnd.random() < nulls:
                f[i] = "\\N"
        uv.append(",".join(f))
    cc = [f"{c},country {c.lower()},{rnd.choice(['Europe', 'Asia', 'Americas'])}"
          for c in COUNTRIES if c != "ZAF"] + ["\\N,nowhere,none"]
    return rk, uv, cc


def join_tables(session, tmp_path, seed: int, pages: int, visits: int, nulls: float) -> Tables:
    """rk, uv (two files each) and cc of :func:`join_fixture`, as tables of
    ``session`` and DuckDB views over the same files."""
    rk, uv, cc = join_fixture(seed=seed, pages=pages, visits=visits, nulls=nulls)
    t = Tables(session, tmp_path)
    half_rk, half_uv = len(rk) // 2, len(uv) // 2
    t.add("rk", RK, {"part-00000": as_bytes(rk[:half_rk]), "part-00001": as_bytes(rk[half_rk:])})
    t.add("uv", UV, {"part-00000": as_bytes(uv[:half_uv]), "part-00001": as_bytes(uv[half_uv:])})
    t.add("cc", CC, {"part-00000": as_bytes(cc)})
    return t


@pytest.fixture(params=["reduce-side", "broadcast", "mixed"])
def jt(request, session, tmp_path):
    rk, uv, cc = join_fixture()
    t = Tables(session, tmp_path)
    t.add("rk", RK, {"part-00000": as_bytes(rk[:150]), "part-00001": as_bytes(rk[150:])})
    t.add("uv", UV, {"part-00000": as_bytes(uv[:1000]), "part-00001": as_bytes(uv[1000:1800]),
                     "part-00002": as_bytes(uv[1800:])})
    t.add("cc", CC, {"part-00000": as_bytes(cc)})
    session.settings.split_mb = 0.03   # several map tasks per table
    session.settings.reducers = 3
    # mixed: only cc (about 150 bytes) is below the threshold, so it is probed
    # inside the reducers of the rk/uv reduce-side join
    session.settings.broadcast_mb = {"reduce-side": 0, "broadcast": 32, "mixed": 0.001}[request.param]
    t.mode = request.param
    return t


SHAPES = [
    # inner joins, both spellings, filters on either side
    "SELECT r.pageURL, r.pageRank, u.sourceIP FROM rk r JOIN uv u ON r.pageURL = u.destURL",
    "SELECT sourceIP, pageRank, adRevenue FROM rk, uv WHERE pageURL = destURL AND pageRank > 3 AND duration < 5",
    "SELECT u.sourceIP, r.avgDuration FROM uv u INNER JOIN rk r ON u.destURL = r.pageURL WHERE u.countryCode IN ('USA', 'FRA') AND r.avgDuration BETWEEN 10 AND 60",
    # aggregation over the join, on either side's columns
    "SELECT pageURL, COUNT(*), SUM(adRevenue), MIN(visitDate) FROM rk JOIN uv ON pageURL = destURL GROUP BY pageURL",
    "SELECT countryCode, AVG(pageRank), MAX(visitDate), COUNT(pageRank) FROM uv JOIN rk ON destURL = pageURL GROUP BY countryCode",
    "SELECT COUNT(*), SUM(pageRank), AVG(adRevenue) FROM rk JOIN uv ON pageURL = destURL",
    "SELECT countryCode, COUNT(DISTINCT destURL), COUNT(DISTINCT pageRank) FROM uv JOIN rk ON destURL = pageURL GROUP BY countryCode",
    "SELECT DISTINCT countryCode, pageRank FROM uv JOIN rk ON destURL = pageURL WHERE pageRank < 4",
    "SELECT searchWord, SUM(adRevenue) AS rev FROM uv JOIN rk ON destURL = pageURL GROUP BY searchWord HAVING SUM(adRevenue) > 5 ORDER BY rev DESC LIMIT 2",
    # AMPLab 3 shape: join, aggregate in a derived table, top-n outside
    "SELECT sourceIP, totalRevenue, avgPageRank FROM (SELECT sourceIP, AVG(pageRank) AS avgPageRank, "
    "SUM(adRevenue) AS totalRevenue FROM rk AS R, uv AS UV WHERE R.pageURL = UV.destURL AND "
    "UV.visitDate BETWEEN DATE '1980-01-01' AND DATE '1995-01-01' GROUP BY UV.sourceIP) t "
    "ORDER BY totalRevenue DESC LIMIT 3",
    # three tables
    "SELECT c.continent, COUNT(*), SUM(r.pageRank) FROM uv u JOIN rk r ON u.destURL = r.pageURL JOIN cc c ON u.countryCode = c.code GROUP BY c.continent",
    "SELECT u.sourceIP, r.pageRank, c.country FROM uv u, cc c, rk r WHERE r.pageURL = u.destURL AND c.code = u.countryCode AND r.pageRank > 5",
    # left outer joins: non-matching and NULL keys keep their row
    "SELECT u.sourceIP, u.destURL, r.pageRank FROM uv u LEFT JOIN rk r ON u.destURL = r.pageURL",
    "SELECT u.countryCode, COUNT(*), COUNT(r.pageURL), SUM(r.pageRank) FROM uv u LEFT OUTER JOIN rk r ON u.destURL = r.pageURL GROUP BY u.countryCode",
    "SELECT u.sourceIP, u.destURL FROM uv u LEFT JOIN rk r ON u.destURL = r.pageURL WHERE r.pageURL IS NULL",
    "SELECT u.destURL, r.pageRank FROM uv u LEFT JOIN rk r ON u.destURL = r.pageURL AND r.pageRank > 10 WHERE u.duration > 8",
    "SELECT u.sourceIP, r.pageRank, c.continent FROM uv u LEFT JOIN rk r ON u.destURL = r.pageURL LEFT JOIN cc c ON u.countryCode = c.code",
    "SELECT r.pageURL, COUNT(u.sourceIP) FROM rk r LEFT JOIN uv u ON r.pageURL = u.destURL GROUP BY r.pageURL",
    "SELECT u.countryCode, SUM(r.pageRank), COUNT(*) FROM rk r RIGHT JOIN uv u ON r.pageURL = u.destURL GROUP BY u.countryCode",
    # ORDER BY over a join: several keys, ties and NULLs placed explicitly
    "SELECT r.pageRank, u.sourceIP, u.visitDate FROM rk r JOIN uv u ON r.pageURL = u.destURL "
    "ORDER BY r.pageRank DESC NULLS LAST, u.sourceIP NULLS FIRST, u.visitDate DESC NULLS FIRST, u.adRevenue NULLS LAST LIMIT 40",
    "SELECT r.pageRank AS pr, u.duration FROM rk r JOIN uv u ON r.pageURL = u.destURL "
    "ORDER BY pr NULLS FIRST, 2 DESC NULLS LAST, u.adRevenue NULLS FIRST, u.sourceIP NULLS FIRST, u.visitDate NULLS FIRST",
    # derived tables on either side, and aggregates of derived tables
    "SELECT r.pageURL, v.n FROM rk r JOIN (SELECT destURL, COUNT(*) AS n FROM uv GROUP BY destURL) v ON r.pageURL = v.destURL WHERE v.n > 8",
    "SELECT a.destURL, a.rev, b.visits FROM (SELECT destURL, SUM(adRevenue) AS rev FROM uv WHERE duration > 5 GROUP BY destURL) a "
    "JOIN (SELECT destURL, COUNT(*) AS visits FROM uv GROUP BY destURL) b ON a.destURL = b.destURL",
    "SELECT c, COUNT(*), AVG(d) FROM (SELECT countryCode AS c, duration AS d FROM uv WHERE duration > 3) t GROUP BY c",
    "SELECT COUNT(*), MAX(pr) FROM (SELECT r.pageRank AS pr FROM rk r JOIN uv u ON r.pageURL = u.destURL WHERE u.duration = 1) t",
    "SELECT s, n FROM (SELECT sourceIP AS s, COUNT(*) AS n FROM uv GROUP BY sourceIP) t WHERE n >= 3",
    # self join, composite keys, key type coercion, residual conditions
    "SELECT a.pageURL, b.pageURL FROM rk a JOIN rk b ON a.pageRank = b.pageRank WHERE a.avgDuration < 10 AND b.avgDuration > 90",
    "SELECT a.pageURL, b.pageURL FROM rk a JOIN rk b ON a.pageRank = b.pageRank AND a.avgDuration = b.avgDuration",
    "SELECT r.pageURL, u.sourceIP FROM rk r JOIN uv u ON r.pageRank = u.duration * 1.0 WHERE u.adRevenue < 0.05",
    "SELECT r.pageURL, u.sourceIP FROM rk r JOIN uv u ON r.pageURL = u.destURL WHERE r.pageRank > u.duration * 3",
]


@pytest.mark.parametrize("sql", SHAPES)
def test_join_shape(jt, sql):
    jt.check(sql)


def test_join_with_limit_and_no_order_returns_a_subset(jt):
    sql = "SELECT u.sourceIP, r.pageRank FROM uv u JOIN rk r ON u.destURL = r.pageURL WHERE r.pageRank > 2"
    rows = jt.sqlmr(sql + " LIMIT 13")
    assert len(rows) == 13
    everything = {tuple(r) for r in jt.duckdb(sql)}
    assert all(tuple(r) in everything for r in rows)


def test_derived_table_with_limit(jt):
    jt.check("SELECT COUNT(*), SUM(r) FROM (SELECT adRevenue AS r FROM uv "
             "ORDER BY adRevenue DESC NULLS LAST, sourceIP NULLS LAST LIMIT 25) t")
    jt.check("SELECT x.pageURL, x.pageRank, u.sourceIP FROM (SELECT pageURL, pageRank FROM rk "
             "ORDER BY pageRank DESC NULLS LAST, pageURL LIMIT 5) x JOIN uv u ON x.pageURL = u.destURL",
             ordered=False)


def test_explain_names_the_join_strategy(jt):
    res = list(jt.session.execute("EXPLAIN SELECT COUNT(*) FROM rk JOIN uv ON pageURL = destURL"))[0]
    if jt.mode == "broadcast":
        assert "Map Join Operator (broadcast hash join)" in res.message
        assert "below broadcast_mb 32 MB" in res.message
    elif jt.mode == "mixed":
        text = list(jt.session.execute(
            "EXPLAIN SELECT COUNT(*) FROM rk JOIN uv ON pageURL = destURL JOIN cc ON countryCode = code"))[0].message
        assert "Join Operator (reduce side, sort-merge)" in text
        assert "Map Join Operator (broadcast hash join)" in text.split("Reduce Operator Tree")[1]
    else:
        assert "Join Operator (reduce side, sort-merge)" in res.message
        assert "no side is below broadcast_mb 0 MB" in res.message


def test_cross_join_is_refused(session, tmp_path):
    from compiler.errors import SqlError
    rk, uv, cc = join_fixture(pages=20, visits=20)
    t = Tables(session, tmp_path)
    t.add("rk", RK, {"p": as_bytes(rk)})
    t.add("cc", CC, {"p": as_bytes(cc)})
    with pytest.raises(SqlError, match="cross join"):
        t.sqlmr("SELECT * FROM rk, cc WHERE pageRank > 1")


@pytest.mark.parametrize("broadcast_mb", [32, 0], ids=["broadcast", "reduce-side"])
def test_malformed_rows_of_the_small_side_are_counted_once(session, tmp_path, broadcast_mb):
    """Every map task reads a broadcast side (a worker keeps it for the
    next), yet each of its malformed rows is counted once, with its sample,
    as when the side is shuffled; the hint names the small side's table."""
    from sqlmr.render import warning_lines
    rk, uv, cc = join_fixture(pages=60, visits=900)
    rk[0] = "pageURL,pageRank,avgDuration"      # a header line, not skipped
    rk[9] = rk[9].split(",")[0] + ",many,3"     # an INT that is no number
    t = Tables(session, tmp_path)
    t.add("rk", RK, {"p": as_bytes(rk)})
    t.add("uv", UV, {f"p{i}": as_bytes(uv[i::3]) for i in range(3)})
    session.settings.split_mb = 0.01   # many map tasks, two workers: sides are kept and reused
    session.settings.broadcast_mb = broadcast_mb
    sql = "SELECT COUNT(*), SUM(r.pageRank) FROM uv u JOIN rk r ON u.destURL = r.pageURL"
    res = list(session.execute(sql))[-1]
    list(res.rows)
    res.close()
    assert res.stats.map_tasks >= 6
    # pageURL is read as text, so the header line is malformed for its INT
    # pageRank only: two rows of rk, each once
    assert res.stats.malformed == 2
    assert res.stats.malformed_sample in (rk[0], rk[9])
    assert res.stats.counters["malformed_rows:rk"] == 2
    assert not any(k.startswith("malformed_rows:") and k != "malformed_rows:rk"
                   for k in res.stats.counters)
    text = "\n".join(warning_lines(res))
    assert "Warning: 2 malformed rows read as NULLs" in text
    assert "1 malformed row of rk is the first line of a file, as a header line is" in text
    t.check(sql)   # and the answer is DuckDB's over the same files


# ------------------------------------------------------------ skew and memory

class InProcessBackend:
    """Runs task events through the runtime handler in this process, one after
    another, tracing the memory the join reducers (stage 1 reduce) allocate."""

    name = "inprocess"

    def __init__(self) -> None:
        self.peaks: list[int] = []

    def run(self, events, progress=None):
        import tracemalloc

        from runtime.handler import handle
        out = []
        for e in events:
            traced = e["kind"] == "reduce" and e["stage"] == 1
            if traced:
                tracemalloc.start()
            try:
                r = handle(e)
            finally:
                if traced:
                    self.peaks.append(tracemalloc.get_traced_memory()[1])
                    tracemalloc.stop()
            out.append(r)
            if progress:
                progress(e, r)
        return out

    def close(self) -> None:
        pass


def _skewed(folder, visits: int, seed: int = 5) -> None:
    """uservisits where 90% of the rows visit one page ('hot', listed twice in
    rankings), over 4 files; rankings over 1 file."""
    rnd = random.Random(seed)
    pages = [_url(rnd) for _ in range(300)]
    (folder / "rk").mkdir(parents=True)
    (folder / "uv").mkdir()
    rk = [f"{p},{rnd.randint(1, 99)},{rnd.randint(1, 99)}" for p in pages] + ["hot,7,1", "hot,9,2"]
    (folder / "rk" / "p0").write_bytes(as_bytes(rk))
    per = visits // 4
    for f in range(4):
        lines = [f"1.2.3.{rnd.randint(1, 254)},{'hot' if rnd.random() < 0.9 else rnd.choice(pages)},"
                 f"2001-01-0{rnd.randint(1, 9)},{rnd.random()!r},ua,USA,en,w,{rnd.randint(1, 9)}"
                 for _ in range(per)]
        (folder / "uv" / f"p{f}").write_bytes(as_bytes(lines))


SKEW_SQL = ("SELECT COUNT(*), SUM(u.adRevenue), MAX(r.pageRank) FROM uv u "
            "JOIN rk r ON u.destURL = r.pageURL")


def _run_skewed(session, tmp_path, visits: int, **knobs):
    from sqlmr.driver import plan_job, run_job
    list(session.execute("DROP TABLE IF EXISTS rk; DROP TABLE IF EXISTS uv"))
    t = Tables(session, tmp_path)
    _skewed(tmp_path / "data", visits)
    rk = (tmp_path / "data" / "rk" / "p0").read_bytes()
    uv = {p.name: p.read_bytes() for p in sorted((tmp_path / "data" / "uv").iterdir())}
    t.add("rk", RK, {"p0": rk})
    t.add("uv", UV, uv)
    s = session.settings
    s.broadcast_mb, s.reducers, s.split_mb = 0, 2, 64   # reduce-side; one map task per file
    for k, v in knobs.items():
        setattr(s, k, v)
    job = session.compile(SKEW_SQL)
    backend = InProcessBackend()
    res = run_job(job, s, backend, session.scratch(), plans=plan_job(job, s))
    try:
        rows = [list(r) for r in res.rows()]
    finally:
        res.close()
    want = t.duckdb(SKEW_SQL)
    assert_same_rows(rows, want)
    return res.stats, max(backend.peaks)


def assert_same_rows(got, want):
    from difftest import assert_same
    assert_same(got, want, ordered=True)


def test_skewed_key_keeps_reducer_memory_flat(session, tmp_path):
    """One key holds 90% of the larger side: the reducer buffers only the smaller
    side's rows of the current key (2) and streams the rest, so its traced peak
    memory does not grow with the larger side (4x the rows, same peak)."""
    small, peak_small = _run_skewed(session, tmp_path / "a", 40_000)
    large, peak_large = _run_skewed(session, tmp_path / "b", 200_000)
    print(f"skewed join reducer peak: {peak_small / 1e6:.2f} MB at 40k rows, "
          f"{peak_large / 1e6:.2f} MB at 200k rows; shuffled {large.bytes_shuffled / 1e6:.1f} MB")
    assert small.counters["max_buffered"] == 2 and large.counters["max_buffered"] == 2
    assert large.bytes_shuffled > 4.5 * small.bytes_shuffled
    assert peak_large < 1.25 * peak_small + (256 << 10), (peak_small, peak_large)
    # buffering the hot key's 180,000 rows would take well over 100 bytes each
    assert peak_large < 180_000 * 100 / 4, peak_large


def test_many_sorted_runs_are_merged_in_passes(session, tmp_path):
    """Map tasks that spill many sorted runs, merged with a fan-in of 4: the
    reducer pre-merges runs into temp files and still gets the join right."""
    stats, _ = _run_skewed(session, tmp_path, 20_000, sort_spill_records=1500, merge_fanin=4)
    assert stats.counters["runs_spilled"] >= 3
    assert stats.counters["runs_merged"] > 4
    assert stats.counters["max_buffered"] == 2
