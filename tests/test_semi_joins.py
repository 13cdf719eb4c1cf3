"""IN (SELECT …) and [NOT] EXISTS in WHERE against DuckDB on the same files:
uncorrelated and correlated, over grouped, limited and UNION subqueries,
with NULL keys on either side, duplicate keys, and inside derived tables and
CTEs — each run with broadcast and with reduce-side joins.  And the shapes
still refused, each with a message."""

from __future__ import annotations

import pytest
import sqlglot

from compiler.errors import SqlError, UnsupportedError
from difftest import Tables, as_bytes
from test_joins import CC, RK, UV, join_fixture


@pytest.fixture(params=["reduce-side", "broadcast"])
def sj(request, session, tmp_path):
    rk, uv, cc = join_fixture(seed=11, pages=200, visits=1500, nulls=0.06)
    t = Tables(session, tmp_path)
    t.add("rk", RK, {"part-00000": as_bytes(rk[:100]), "part-00001": as_bytes(rk[100:])})
    t.add("uv", UV, {"part-00000": as_bytes(uv[:700]), "part-00001": as_bytes(uv[700:])})
    t.add("cc", CC, {"part-00000": as_bytes(cc)})
    session.settings.split_mb = 0.03   # several map tasks per table
    session.settings.reducers = 3
    session.settings.broadcast_mb = {"reduce-side": 0, "broadcast": 32}[request.param]
    return t


SHAPES = [
    # uncorrelated IN, alone and beside other conditions; the subquery's key has NULLs
    "SELECT sourceIP, destURL FROM uv WHERE destURL IN (SELECT pageURL FROM rk WHERE pageRank > 5)",
    "SELECT countryCode, COUNT(*), SUM(adRevenue) FROM uv WHERE duration > 3 AND destURL IN "
    "(SELECT pageURL FROM rk) AND countryCode <> 'XXX' GROUP BY countryCode",
    "SELECT COUNT(*) FROM rk WHERE pageRank IN (SELECT duration FROM uv)",   # many duplicates, INT keys
    "SELECT * FROM cc WHERE code IN (SELECT countryCode FROM uv WHERE adRevenue > 0.5)",
    "SELECT pageURL FROM rk r WHERE r.pageURL IN (SELECT DISTINCT destURL FROM uv WHERE duration = 1)",
    "SELECT pageRank * 2 AS p FROM rk WHERE UPPER(pageURL) IN (SELECT UPPER(destURL) FROM uv) ORDER BY p DESC, 1 LIMIT 7",
    # IN over grouped, limited and UNION subqueries
    "SELECT sourceIP FROM uv WHERE destURL IN (SELECT destURL FROM uv GROUP BY destURL HAVING COUNT(*) > 9)",
    "SELECT pageURL, pageRank FROM rk WHERE pageURL IN (SELECT destURL FROM uv ORDER BY adRevenue DESC NULLS LAST, destURL LIMIT 20)",
    "SELECT COUNT(*) FROM uv WHERE countryCode IN (SELECT code FROM cc WHERE continent = 'Europe' UNION SELECT 'BRA')",
    # correlated EXISTS / NOT EXISTS: one key, two keys, an extra inner condition, a literal
    "SELECT r.pageURL, r.pageRank FROM rk r WHERE EXISTS (SELECT 1 FROM uv u WHERE u.destURL = r.pageURL AND u.duration > 8)",
    "SELECT r.pageURL FROM rk r WHERE NOT EXISTS (SELECT * FROM uv u WHERE u.destURL = r.pageURL)",
    "SELECT u.countryCode, COUNT(*) FROM uv u WHERE NOT EXISTS (SELECT 1 FROM cc c WHERE c.code = u.countryCode) GROUP BY u.countryCode",
    "SELECT a.pageURL FROM rk a WHERE EXISTS (SELECT 1 FROM rk b WHERE b.pageURL = a.pageURL AND b.avgDuration = a.avgDuration AND b.pageRank > 4)",
    "SELECT r.pageURL FROM rk r WHERE EXISTS (SELECT 1 FROM uv u WHERE r.pageRank = 3 AND u.destURL = r.pageURL)",
    # correlated IN, IN and NOT EXISTS together, a join outside
    "SELECT r.pageURL FROM rk r WHERE r.pageURL IN (SELECT u.destURL FROM uv u WHERE u.duration = r.avgDuration % 10)",
    "SELECT u.sourceIP, r.pageRank FROM uv u JOIN rk r ON u.destURL = r.pageURL WHERE u.countryCode IN "
    "(SELECT code FROM cc) AND NOT EXISTS (SELECT 1 FROM rk x WHERE x.pageURL = u.destURL AND x.pageRank > 20)",
    # inside a derived table and a CTE; a subquery inside the subquery
    "SELECT c, COUNT(*) FROM (SELECT countryCode AS c FROM uv WHERE destURL IN (SELECT pageURL FROM rk)) t GROUP BY c",
    "WITH top AS (SELECT pageURL FROM rk WHERE pageRank > 10) SELECT COUNT(*), COUNT(DISTINCT sourceIP) FROM uv WHERE destURL IN (SELECT pageURL FROM top)",
    "SELECT sourceIP FROM uv WHERE destURL IN (SELECT pageURL FROM rk WHERE pageRank IN (SELECT duration FROM uv WHERE countryCode = 'USA'))",
]


@pytest.mark.parametrize("sql", SHAPES)
def test_semi_join_shape(sj, sql):
    outer_order = sqlglot.parse_one(sql, read="hive").args.get("order") is not None
    sj.check(sql, ordered=outer_order)


def test_explain_says_how_a_subquery_runs(sj):
    text = list(sj.session.execute("EXPLAIN SELECT COUNT(*) FROM uv WHERE destURL IN (SELECT pageURL FROM rk)"))[0].message
    assert "IN (SELECT …) in WHERE runs as a join with the subquery's distinct keys" in text
    text = list(sj.session.execute("EXPLAIN SELECT pageURL FROM rk r WHERE NOT EXISTS "
                                   "(SELECT 1 FROM uv u WHERE u.destURL = r.pageURL)"))[0].message
    assert "NOT EXISTS in WHERE runs as an anti-join (LEFT JOIN … IS NULL)" in text


REFUSED = [
    ("SELECT pageURL FROM rk WHERE pageURL NOT IN (SELECT destURL FROM uv)", "subqueries outside FROM"),
    ("SELECT pageURL FROM rk WHERE pageRank > 3 OR pageURL IN (SELECT destURL FROM uv)", "subqueries outside FROM"),
    ("SELECT pageURL FROM rk WHERE EXISTS (SELECT 1 FROM uv)", "EXISTS with no equality tying it to the outer query"),
    ("SELECT pageURL FROM rk r WHERE EXISTS (SELECT 1 FROM uv u WHERE u.duration > r.pageRank)",
     "a subquery that uses an outer column other than in inner = outer equalities of its WHERE"),
    ("SELECT pageURL FROM rk r WHERE EXISTS (SELECT COUNT(*) FROM uv u WHERE u.destURL = r.pageURL)",
     "EXISTS over a grouped, aggregated or limited subquery"),
    ("SELECT pageURL FROM rk WHERE pageURL IN (SELECT destURL, sourceIP FROM uv)",
     "an IN subquery that selects other than one column"),
    ("SELECT pageURL FROM rk r WHERE pageURL IN (SELECT destURL FROM uv u WHERE u.duration = r.pageRank GROUP BY destURL)",
     "a correlated IN (SELECT …) over a grouped or limited subquery"),
]


@pytest.mark.parametrize("sql,message", REFUSED, ids=[m for _, m in REFUSED])
def test_refused_subqueries_say_what(sj, sql, message):
    with pytest.raises(UnsupportedError, match="not supported yet: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("…", ".")):
        sj.sqlmr(sql)


def test_an_unknown_column_in_a_subquery_is_named(sj):
    with pytest.raises(SqlError, match="column 'pageUR' not found") as e:
        sj.sqlmr("SELECT sourceIP FROM uv WHERE destURL IN (SELECT pageUR FROM rk)")
    assert e.value.offset == e.value.sql.index("pageUR ")
