"""Subqueries outside FROM against DuckDB on the same files: IN (SELECT …),
[NOT] EXISTS, NOT IN and Hive's LEFT SEMI JOIN, uncorrelated and correlated,
over grouped, limited and UNION subqueries, with NULL keys on either side,
duplicate keys, and inside derived tables and CTEs; scalar aggregate
subqueries and cross joins with one row — each run with broadcast and with
reduce-side joins.  And the shapes still refused, each with a message."""

from __future__ import annotations

import pytest
import sqlglot

from compiler.errors import SqlError, UnsupportedError
from test_joins import join_tables


@pytest.fixture(params=["reduce-side", "broadcast"])
def sj(request, session, tmp_path):
    t = join_tables(session, tmp_path, seed=11, pages=200, visits=1500, nulls=0.06)
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
    # a condition on the outer table alone inside EXISTS
    "SELECT r.pageURL FROM rk r WHERE EXISTS (SELECT 1 FROM uv u WHERE u.destURL = r.pageURL AND r.pageRank > 2)",
    # NOT IN: the subquery's key has NULLs (no row is kept), has none, is empty
    "SELECT COUNT(*) FROM rk WHERE pageRank NOT IN (SELECT duration FROM uv)",
    "SELECT pageURL, pageRank FROM rk WHERE pageRank NOT IN (SELECT duration FROM uv WHERE duration IS NOT NULL)",
    "SELECT pageURL FROM rk WHERE pageURL NOT IN (SELECT destURL FROM uv WHERE duration > 99)",
    "SELECT countryCode, COUNT(*) FROM uv WHERE countryCode NOT IN (SELECT code FROM cc WHERE code IS NOT NULL AND continent <> 'Asia') GROUP BY countryCode",
    "SELECT COUNT(*) FROM uv WHERE duration NOT IN (SELECT pageRank FROM rk WHERE pageRank IS NOT NULL GROUP BY pageRank HAVING COUNT(*) > 3)",
    # scalar aggregate subqueries: WHERE, SELECT, HAVING, ORDER BY, without FROM, nested
    "SELECT pageURL, pageRank FROM rk WHERE pageRank > (SELECT AVG(pageRank) FROM rk)",
    "SELECT countryCode, SUM(adRevenue) / (SELECT SUM(adRevenue) FROM uv) AS share FROM uv GROUP BY countryCode",
    "SELECT countryCode, COUNT(*) FROM uv GROUP BY countryCode HAVING COUNT(*) > (SELECT COUNT(*) FROM uv) / 20",
    "SELECT pageURL, ABS(pageRank - (SELECT AVG(pageRank) FROM rk WHERE avgDuration > 50)) AS d FROM rk ORDER BY d NULLS LAST, pageURL LIMIT 9",
    "SELECT (SELECT COUNT(*) FROM uv) - (SELECT COUNT(DISTINCT destURL) FROM uv) AS repeats",
    "SELECT COUNT(*) FROM uv WHERE adRevenue > (SELECT AVG(adRevenue) FROM uv WHERE destURL IN (SELECT pageURL FROM rk))",
    "SELECT u.countryCode, COUNT(*) FROM uv u JOIN rk r ON u.destURL = r.pageURL WHERE r.pageRank >= (SELECT MAX(pageRank) FROM rk) / 4 GROUP BY u.countryCode",
    "SELECT * FROM cc WHERE (SELECT COUNT(*) FROM rk WHERE pageRank > 1000) = 0",   # 0 or every row
    # correlated scalar aggregates: a LEFT JOIN of grouped values (COUNT of no row is 0)
    "SELECT r.pageURL, (SELECT COUNT(*) FROM uv u WHERE u.destURL = r.pageURL) AS visits FROM rk r",
    "SELECT r.pageURL, (SELECT COUNT(u.duration) FROM uv u WHERE u.destURL = r.pageURL AND u.duration > 5) AS n, "
    "(SELECT MAX(u.visitDate) FROM uv u WHERE u.destURL = r.pageURL) AS last FROM rk r WHERE r.pageRank < 30",
    "SELECT r.pageURL FROM rk r WHERE r.pageRank > (SELECT AVG(u.duration) FROM uv u WHERE u.destURL = r.pageURL)",
    "SELECT u.sourceIP, u.adRevenue FROM uv u WHERE u.adRevenue >= (SELECT MAX(x.adRevenue) FROM uv x "
    "WHERE x.countryCode = u.countryCode AND x.searchWord = u.searchWord AND x.duration > 5)",
    "SELECT countryCode, COUNT(*) FROM uv u WHERE u.duration < (SELECT AVG(x.duration) FROM uv x WHERE x.countryCode = u.countryCode) GROUP BY countryCode",
    # cross joins with one row, either side
    "SELECT r.pageURL, r.pageRank, t.total FROM rk r CROSS JOIN (SELECT SUM(pageRank) AS total FROM rk) t WHERE r.pageRank > 10",
    "SELECT t.n, c.code FROM (SELECT COUNT(*) AS n FROM uv) t, cc c",
    "SELECT a.n + b.m FROM (SELECT COUNT(*) n FROM uv) a CROSS JOIN (SELECT COUNT(*) m FROM rk) b",
]

# Hive's LEFT SEMI JOIN, and what DuckDB runs for it
SEMI_JOINS = [
    ("SELECT r.pageURL, r.pageRank FROM rk r LEFT SEMI JOIN uv u ON r.pageURL = u.destURL",
     "SELECT r.pageURL, r.pageRank FROM rk r WHERE EXISTS (SELECT 1 FROM uv u WHERE r.pageURL = u.destURL)"),
    ("SELECT r.pageURL FROM rk r LEFT SEMI JOIN uv u ON r.pageURL = u.destURL AND u.duration > 7 AND r.pageRank > 3",
     "SELECT r.pageURL FROM rk r WHERE r.pageRank > 3 AND EXISTS (SELECT 1 FROM uv u WHERE r.pageURL = u.destURL AND u.duration > 7)"),
    ("SELECT u.sourceIP, c.continent FROM uv u JOIN cc c ON u.countryCode = c.code LEFT SEMI JOIN rk r ON u.destURL = r.pageURL",
     "SELECT u.sourceIP, c.continent FROM uv u JOIN cc c ON u.countryCode = c.code WHERE EXISTS (SELECT 1 FROM rk r WHERE u.destURL = r.pageURL)"),
]


@pytest.mark.parametrize("sql", SHAPES)
def test_semi_join_shape(sj, sql):
    outer_order = sqlglot.parse_one(sql, read="hive").args.get("order") is not None
    sj.check(sql, ordered=outer_order)


@pytest.mark.parametrize("hive,duck", SEMI_JOINS, ids=[h for h, _ in SEMI_JOINS])
def test_left_semi_join(sj, hive, duck):
    sj.check(hive, duck, ordered=False)


def test_explain_says_how_a_subquery_runs(sj):
    text = list(sj.session.execute("EXPLAIN SELECT COUNT(*) FROM uv WHERE destURL IN (SELECT pageURL FROM rk)"))[0].message
    assert "IN (SELECT …) in WHERE runs as a join with the subquery's distinct keys" in text
    text = list(sj.session.execute("EXPLAIN SELECT pageURL FROM rk r WHERE NOT EXISTS "
                                   "(SELECT 1 FROM uv u WHERE u.destURL = r.pageURL)"))[0].message
    assert "NOT EXISTS in WHERE runs as an anti-join (LEFT JOIN … IS NULL)" in text
    text = list(sj.session.execute("EXPLAIN SELECT pageURL FROM rk WHERE pageRank > (SELECT AVG(pageRank) FROM rk)"))[0].message
    assert "a scalar subquery runs as a cross join with its one row" in text
    assert "_scalar1 is at most one row (a cross join)" in text


REFUSED = [
    ("SELECT pageURL FROM rk r WHERE pageURL NOT IN (SELECT destURL FROM uv u WHERE u.duration = r.pageRank)",
     "a correlated NOT IN (SELECT …)"),
    ("SELECT pageURL FROM rk r WHERE NOT EXISTS (SELECT 1 FROM uv u WHERE u.destURL = r.pageURL AND r.pageRank > 2)",
     "a NOT EXISTS whose WHERE has a condition on the outer query alone"),
    ("SELECT pageURL FROM rk WHERE pageRank > (SELECT pageRank FROM rk WHERE pageURL = 'x')",
     "a scalar subquery other than an aggregate without GROUP BY (one that always returns one row)"),
    ("SELECT pageURL FROM rk WHERE pageRank > (SELECT MAX(duration) FROM uv GROUP BY countryCode)",
     "a scalar subquery other than an aggregate without GROUP BY (one that always returns one row)"),
    ("SELECT r.pageURL FROM rk r WHERE r.pageRank > (SELECT AVG(duration) FROM uv u WHERE u.duration > r.avgDuration)",
     "a subquery that uses an outer column other than in inner = outer equalities of its WHERE"),
    ("SELECT r.pageURL FROM rk r WHERE r.pageRank > (SELECT AVG(duration) + 1 FROM uv u WHERE u.destURL = r.pageURL)",
     "a correlated scalar subquery that selects other than one aggregate call"),
    ("SELECT r.pageURL, COUNT(*), (SELECT COUNT(*) FROM uv u WHERE u.destURL = r.pageURL) FROM rk r GROUP BY r.pageURL",
     "a correlated scalar subquery in the SELECT list, HAVING or ORDER BY of an aggregate"),
    ("SELECT r.pageURL FROM rk r WHERE r.pageRank > (SELECT COUNT(*) FROM uv u WHERE u.destURL = r.pageURL AND r.pageRank > 3)",
     "a scalar subquery whose WHERE has a condition on the outer query alone"),
    ("SELECT COUNT(*) + (SELECT COUNT(*) FROM rk) FROM uv",
     "a scalar subquery in the SELECT list, HAVING or ORDER BY of an aggregate without GROUP BY"),
    ("SELECT r.pageURL FROM rk r CROSS JOIN uv u",
     "a join without an equality condition between the tables (a cross join; one with a side of at most one row, such as a scalar aggregate, runs)"),
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
