"""Window functions against DuckDB on the same files: ranking, running and
whole-partition aggregates, LAG / LEAD, with and without PARTITION BY and
ORDER BY, NULLs in partition and order values, several windows in one
query, over GROUP BY, joins and derived tables (top-n per group) — and the
shapes refused, each with a message."""

from __future__ import annotations

import pytest

from compiler.errors import SqlError, UnsupportedError
from difftest import Tables, as_bytes
from test_joins import join_tables


@pytest.fixture(params=["1 reducer", "3 reducers"])
def wt(request, session, tmp_path):
    t = join_tables(session, tmp_path, seed=21, pages=120, visits=900, nulls=0.06)
    session.settings.split_mb = 0.02   # several map tasks per table
    session.settings.reducers = {"1 reducer": 1, "3 reducers": 3}[request.param]
    return t


# ORDER BY inside OVER names every tie-breaker a ROW_NUMBER / LAG needs to be
# one answer, and NULLS FIRST / LAST (the engines' defaults differ)
SHAPES = [
    # ranking
    "SELECT pageURL, pageRank, ROW_NUMBER() OVER (ORDER BY pageRank DESC NULLS LAST, pageURL, avgDuration) AS rn FROM rk",
    "SELECT countryCode, sourceIP, RANK() OVER (PARTITION BY countryCode ORDER BY duration DESC NULLS LAST) AS r, "
    "DENSE_RANK() OVER (PARTITION BY countryCode ORDER BY duration DESC NULLS LAST) AS d FROM uv",
    "SELECT pageURL, RANK() OVER (ORDER BY pageRank NULLS FIRST) AS r FROM rk",
    # aggregates over the whole partition, and running (the default frame: peers included)
    "SELECT sourceIP, countryCode, SUM(adRevenue) OVER (PARTITION BY countryCode) AS total, "
    "COUNT(*) OVER (PARTITION BY countryCode) AS n, AVG(duration) OVER (PARTITION BY countryCode) AS a FROM uv",
    "SELECT pageURL, pageRank, SUM(pageRank) OVER (ORDER BY avgDuration NULLS FIRST) AS running, "
    "COUNT(pageRank) OVER (ORDER BY avgDuration NULLS FIRST) AS c FROM rk",
    "SELECT destURL, visitDate, MIN(visitDate) OVER (PARTITION BY destURL) AS first, "
    "MAX(adRevenue) OVER (PARTITION BY destURL ORDER BY visitDate NULLS LAST, sourceIP NULLS FIRST, adRevenue) AS best FROM uv",
    "SELECT countryCode, COUNT(*) OVER () AS everyone, SUM(duration) OVER () AS d FROM uv",
    # LAG / LEAD with offsets and defaults
    "SELECT pageURL, LAG(pageRank) OVER (ORDER BY pageURL, pageRank NULLS FIRST, avgDuration) AS prev, "
    "LEAD(pageRank, 2, -1) OVER (ORDER BY pageURL, pageRank NULLS FIRST, avgDuration) AS next2 FROM rk",
    "SELECT sourceIP, LAG(destURL, 1, 'none') OVER (PARTITION BY countryCode ORDER BY sourceIP NULLS FIRST, visitDate NULLS FIRST, "
    "adRevenue NULLS FIRST, destURL NULLS FIRST) AS before FROM uv",
    # in expressions, several windows, ORDER BY a window's alias, NULL partition values
    "SELECT sourceIP, adRevenue - AVG(adRevenue) OVER (PARTITION BY searchWord) AS above FROM uv",
    "SELECT pageURL, pageRank, ROW_NUMBER() OVER (PARTITION BY avgDuration % 5 ORDER BY pageRank DESC NULLS LAST, pageURL, avgDuration) AS rn, "
    "SUM(pageRank) OVER (PARTITION BY avgDuration % 5) AS s FROM rk ORDER BY rn, pageURL, pageRank NULLS FIRST LIMIT 15",
    "SELECT countryCode, duration, COUNT(*) OVER (PARTITION BY countryCode, duration) AS n FROM uv",
    # over GROUP BY, joins and derived tables
    "SELECT countryCode, SUM(adRevenue) AS rev, RANK() OVER (ORDER BY SUM(adRevenue) DESC NULLS LAST) AS r, "
    "SUM(COUNT(*)) OVER () AS visits FROM uv GROUP BY countryCode",
    "SELECT r.pageURL, u.sourceIP, ROW_NUMBER() OVER (PARTITION BY r.pageURL ORDER BY u.adRevenue DESC NULLS LAST, u.sourceIP NULLS FIRST, u.visitDate NULLS FIRST) AS k "
    "FROM rk r JOIN uv u ON r.pageURL = u.destURL",
    "SELECT countryCode, sourceIP, adRevenue FROM (SELECT countryCode, sourceIP, adRevenue, ROW_NUMBER() OVER "
    "(PARTITION BY countryCode ORDER BY adRevenue DESC NULLS LAST, sourceIP NULLS FIRST, visitDate NULLS FIRST) AS rn FROM uv) t WHERE rn <= 3",
    "SELECT c, n, SUM(n) OVER (ORDER BY c NULLS FIRST) AS cum FROM (SELECT countryCode AS c, COUNT(*) AS n FROM uv GROUP BY countryCode) t",
]


@pytest.mark.parametrize("sql", SHAPES)
def test_window_shape(wt, sql):
    outer_order = " ORDER BY rn, pageURL" in sql
    wt.check(sql, ordered=outer_order)


def test_explain_shows_the_window_stage(wt):
    text = list(wt.session.execute(
        "EXPLAIN SELECT sourceIP, RANK() OVER (PARTITION BY countryCode ORDER BY duration DESC) FROM uv"))[0].message
    assert "PTF Operator (windowing: sorted runs merged, cut into partitions)" in text
    assert "functions: RANK()" in text and "partition by: countryCode" in text
    assert "order by: duration DESC NULLS LAST" in text
    assert "Reduce Output Operator (windowing)" in text and "partition: crc32(countryCode) mod partitions" in text


REFUSED = [
    ("SELECT SUM(pageRank) OVER (ORDER BY pageURL ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM rk",
     UnsupportedError, "window frames"),
    ("SELECT NTILE(4) OVER (ORDER BY pageRank) FROM rk", UnsupportedError, "window function NTILE()"),
    ("SELECT COUNT(DISTINCT pageRank) OVER () FROM rk", UnsupportedError, "COUNT(DISTINCT …) OVER"),
    ("SELECT DISTINCT pageRank, ROW_NUMBER() OVER (ORDER BY pageRank) FROM rk", UnsupportedError,
     "SELECT DISTINCT with window functions"),
    ("SELECT pageURL FROM rk WHERE ROW_NUMBER() OVER (ORDER BY pageRank) < 3", SqlError,
     "window functions are not allowed in WHERE, GROUP BY or HAVING"),
    ("SELECT RANK() OVER (PARTITION BY pageURL) FROM rk", SqlError, "RANK() needs ORDER BY in its OVER clause"),
    ("SELECT LAG(pageRank, avgDuration) OVER (ORDER BY pageURL) FROM rk", SqlError,
     "LAG's offset must be a whole number literal"),
    ("SELECT SUM(pageURL) OVER () FROM rk", SqlError, "SUM needs a number, not STRING"),
    ("SELECT pageRank, SUM(avgDuration) OVER (PARTITION BY pageURL) FROM rk GROUP BY pageRank", SqlError,
     "must appear in GROUP BY"),
]


@pytest.mark.parametrize("sql,kind,message", REFUSED, ids=[m for _, _, m in REFUSED])
def test_refused_windows_say_what(wt, sql, kind, message):
    with pytest.raises(kind) as e:
        wt.sqlmr(sql)
    assert message in str(e.value)


def test_nan_partitions_and_peers_are_one(session, tmp_path):
    """NaN values are one partition and one peer group (as Hive's compare and
    DuckDB have it), placed above every number."""
    t = Tables(session, tmp_path)
    lines = ["a,NaN,1", "b,1.5,NaN", "c,NaN,NaN", "d,2.0,1", "e,\\N,2", "f,NaN,\\N", "g,1.5,3"]
    t.add("n", [("k", "string"), ("x", "double"), ("y", "double")], {"p0": as_bytes(lines[:4]),
                                                                      "p1": as_bytes(lines[4:])})
    session.settings.split_mb = 0.00002
    session.settings.reducers = 2
    t.check("SELECT k, COUNT(*) OVER (PARTITION BY x) AS n, RANK() OVER (ORDER BY y NULLS FIRST) AS r, "
            "DENSE_RANK() OVER (PARTITION BY x ORDER BY y DESC NULLS LAST) AS d FROM n", ordered=False)
