"""WITH, SELECT without FROM and UNION [ALL], each against DuckDB on the same
files, alone and combined; their EXPLAIN; and the errors of what is refused
(line, caret, no traceback)."""

from __future__ import annotations

import pytest

from compiler.errors import SqlError
from difftest import RK_COLUMNS, UV_COLUMNS, Tables, as_bytes, gz_bytes
from test_joins import join_fixture
from test_random_queries import module_session


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """rankings / uservisits where most destURLs are a pageURL (NULLs, duplicate
    pages, a .gz part), split small and reduced by three reducers."""
    session = module_session(tmp_path_factory.mktemp("shapes-home"))
    t = Tables(session, tmp_path_factory.mktemp("shapes"))
    rk, uv, _ = join_fixture(seed=13, pages=200, visits=3000)
    t.add("rk", RK_COLUMNS, {"p0": as_bytes(rk)})
    t.add("uv", UV_COLUMNS, {"p0": as_bytes(uv[:1800]), "p1.gz": gz_bytes(uv[1800:])})
    yield t
    session.close()


@pytest.fixture(params=["reduce-side", "broadcast"])
def tables(request, shapes):
    s = shapes.session.settings
    s.split_mb, s.reducers = 0.03, 3
    s.broadcast_mb = 0 if request.param == "reduce-side" else 32
    return shapes


def check(t: Tables, sql: str, duck: str | None = None) -> list[list]:
    """Compared in order when the statement itself ends ordered (an ORDER BY
    after the last parenthesis: not one inside a CTE or branch)."""
    return t.check(sql, duck, ordered="order by" in sql.lower().rsplit(")", 1)[-1])


# ------------------------------------------------------------------- WITH

WITH_SHAPES = [
    # a CTE read twice, joined with itself
    "WITH c AS (SELECT countryCode, SUM(adRevenue) AS rev, COUNT(*) AS n FROM uv GROUP BY countryCode) "
    "SELECT a.countryCode, a.rev, b.n FROM c a JOIN c b ON a.countryCode = b.countryCode",
    # a CTE reading an earlier one
    "WITH a AS (SELECT sourceIP, duration, adRevenue FROM uv WHERE duration > 3), "
    "b AS (SELECT duration, COUNT(*) AS n, MAX(adRevenue) AS top FROM a GROUP BY duration) "
    "SELECT * FROM b WHERE n > 5",
    # column names in the WITH
    "WITH c(ip, d) AS (SELECT sourceIP, duration FROM uv) SELECT d, COUNT(ip) FROM c GROUP BY d",
    "WITH c(u) AS (SELECT * FROM rk WHERE pageRank > 3) SELECT u, avgDuration FROM c",
    # WITH inside a subquery, and an inner WITH shadowing an outer one
    "SELECT x.n FROM (WITH q AS (SELECT duration FROM uv WHERE duration > 5) "
    "SELECT COUNT(*) AS n FROM q) x",
    "WITH a AS (SELECT 1 AS x), b AS (WITH a AS (SELECT 2 AS x) SELECT x FROM a) "
    "SELECT x FROM a UNION ALL SELECT x FROM b",
    # a CTE shadows the table of its name
    "WITH uv AS (SELECT pageURL AS destURL FROM rk WHERE pageRank > 10) SELECT COUNT(*) FROM uv",
    # a CTE joined with a table; an ordered, limited CTE read twice
    "WITH top AS (SELECT pageURL, pageRank FROM rk WHERE pageRank > 5) "
    "SELECT u.sourceIP, t.pageRank, u.adRevenue FROM uv u JOIN top t ON u.destURL = t.pageURL",
    "WITH t3 AS (SELECT countryCode, SUM(adRevenue) AS r FROM uv WHERE countryCode IS NOT NULL "
    "GROUP BY countryCode ORDER BY r DESC LIMIT 3) "
    "SELECT a.countryCode, b.r FROM t3 a JOIN t3 b ON a.countryCode = b.countryCode",
    # a CTE left-joined, then aggregated with ORDER BY / LIMIT over the result
    "WITH r AS (SELECT pageURL, pageRank FROM rk) SELECT u.countryCode, COUNT(r.pageRank) AS n, "
    "SUM(u.adRevenue) AS s FROM uv u LEFT JOIN r ON u.destURL = r.pageURL "
    "GROUP BY u.countryCode ORDER BY n DESC, s DESC LIMIT 4",
]


@pytest.mark.parametrize("sql", WITH_SHAPES)
def test_with(tables, sql):
    assert check(tables, sql)


def test_a_cte_read_twice_is_computed_twice_and_explain_says_so(shapes):
    sql = WITH_SHAPES[0]
    text = list(shapes.session.execute("EXPLAIN " + sql))[0].message
    assert "Note: WITH c is read 2 times and computed for each read" in text
    assert text.count("alias: uv") == 2 and "derived table a" in text and "derived table b" in text


# ------------------------------------------------------- SELECT without FROM

NO_FROM = [
    ("SELECT 1", None),
    ("SELECT 1 + 2 AS x, 'a', 7 / 2, -3 * 4", None),
    ("SELECT CAST('2024-01-01' AS DATE), DATE '2000-02-29', CAST(CONCAT('2000-02-', '30') AS DATE)",
     "SELECT CAST('2024-01-01' AS DATE), DATE '2000-02-29', TRY_CAST('2000-02-30' AS DATE)"),
    ("SELECT NULL, CAST(NULL AS INT) AS n, COALESCE(NULL, 3), 1 / 0, CAST('x' AS INT)",
     "SELECT NULL, CAST(NULL AS INT) AS n, COALESCE(NULL, 3), NULL, TRY_CAST('x' AS INT)"),
    ("SELECT UPPER('abc'), SUBSTR('hello', 2, 3), LENGTH(''), CONCAT('a', NULL), "
     "CASE WHEN 1 > 2 THEN 'no' ELSE 'yes' END",
     "SELECT UPPER('abc'), SUBSTR('hello', 2, 3), LENGTH(''), 'a' || NULL, "
     "CASE WHEN 1 > 2 THEN 'no' ELSE 'yes' END"),
    ("SELECT 'x' WHERE 1 = 0", None),
    ("SELECT 'x' AS y WHERE 2 > 1 AND DATE '2020-01-01' < '2021-01-01'",
     "SELECT 'x' AS y WHERE 2 > 1 AND DATE '2020-01-01' < DATE '2021-01-01'"),
    ("SELECT COUNT(*), SUM(4), MAX('b')", None),
    ("SELECT COUNT(*), SUM(4) WHERE 1 = 0", None),
    ("SELECT 5 AS a ORDER BY a LIMIT 1", None),
]


@pytest.mark.parametrize("sql,duck", NO_FROM, ids=[q for q, _ in NO_FROM])
def test_select_without_from(shapes, sql, duck):
    check(shapes, sql, duck)


def test_select_without_from_runs_one_task_and_reports_as_any_query(shapes):
    res = list(shapes.session.execute("SELECT 1 + 2 AS x, DATE '2024-01-01' AS d"))[0]
    rows = list(res.rows)
    res.close()
    assert rows == [(3, "2024-01-01")] and res.columns == ["x", "d"] and res.types == ["int", "date"]
    assert res.stats.map_tasks == 1 and res.stats.bytes_read == 0 and res.stats.reduce_tasks == 0
    assert res.lambda_cost is not None and res.lambda_cost.total > 0
    text = list(shapes.session.execute("EXPLAIN SELECT 1 + 2 AS x"))[0].message
    assert "1 map task over one row, no input" in text and "_dummy_table" in text


# ---------------------------------------------------------------- UNION

UNIONS = [
    ("SELECT sourceIP, duration FROM uv WHERE duration > 8 "
     "UNION ALL SELECT pageURL, pageRank FROM rk WHERE pageRank > 20", None),
    # an aggregate, a join and a SELECT without FROM
    ("SELECT countryCode, COUNT(*) FROM uv GROUP BY countryCode "
     "UNION ALL SELECT u.sourceIP, r.pageRank FROM uv u JOIN rk r ON u.destURL = r.pageURL "
     "WHERE r.pageRank > 30 UNION ALL SELECT 'none', NULL", None),
    # aggregates, then ORDER BY / LIMIT over the union
    ("SELECT countryCode AS k, COUNT(*) AS n FROM uv GROUP BY countryCode "
     "UNION ALL SELECT searchWord, COUNT(*) FROM uv GROUP BY searchWord "
     "ORDER BY n DESC, k NULLS FIRST LIMIT 5", None),
    ("SELECT countryCode AS k, SUM(adRevenue) AS s FROM uv GROUP BY countryCode "
     "UNION ALL SELECT 'total', SUM(adRevenue) FROM uv ORDER BY 2 DESC, 1 NULLS FIRST", None),
    # a union under GROUP BY (DOUBLE and INT are DOUBLE)
    ("SELECT k, COUNT(*), SUM(v), MIN(v) FROM (SELECT countryCode AS k, adRevenue AS v FROM uv "
     "UNION ALL SELECT SUBSTR(pageURL, 1, 1), pageRank FROM rk "
     "UNION ALL SELECT 'z', 1) x GROUP BY k", None),
    # a union under a WHERE and a scalar aggregate
    ("SELECT COUNT(*), SUM(n) FROM (SELECT duration AS n FROM uv UNION ALL "
     "SELECT pageRank FROM rk) x WHERE n > 3", None),
    # branches with their own ORDER BY / LIMIT
    ("(SELECT sourceIP, adRevenue FROM uv WHERE adRevenue IS NOT NULL "
     "ORDER BY adRevenue DESC, sourceIP LIMIT 3) UNION ALL "
     "(SELECT pageURL, pageRank FROM rk WHERE pageRank IS NOT NULL "
     "ORDER BY pageRank DESC, pageURL LIMIT 2)", None),
    # STRING and numbers are STRING; DATE and STRING are STRING
    ("SELECT countryCode FROM uv WHERE duration < 3 UNION ALL SELECT duration FROM uv "
     "WHERE duration > 8", None),
    ("SELECT visitDate FROM uv WHERE duration = 1 UNION ALL SELECT countryCode FROM uv "
     "WHERE duration = 2", None),
    # UNION (distinct), also mixed with UNION ALL
    ("SELECT countryCode FROM uv UNION SELECT searchWord FROM uv", None),
    ("SELECT duration FROM uv UNION ALL SELECT duration FROM uv UNION SELECT 99", None),
    ("SELECT 1 AS x UNION SELECT 1 UNION ALL SELECT 1", None),
    # a union as a join side (materialised when broadcast, shuffled otherwise)
    ("SELECT r.pageRank, x.src FROM rk r JOIN (SELECT destURL AS u, 'uv' AS src FROM uv "
     "WHERE duration > 7 UNION ALL SELECT pageURL, 'rk' FROM rk WHERE pageRank > 10) x "
     "ON r.pageURL = x.u", None),
    ("SELECT x.u, COUNT(*) FROM (SELECT destURL AS u FROM uv UNION ALL SELECT pageURL FROM rk) x "
     "JOIN rk r ON x.u = r.pageURL GROUP BY x.u", None),
    # CTEs and unions together; SELECT without FROM as a CTE
    ("WITH a AS (SELECT 1 AS x UNION ALL SELECT 2), b AS (SELECT 3 AS x) "
     "SELECT x, COUNT(*) FROM (SELECT x FROM a UNION ALL SELECT x FROM a UNION ALL "
     "SELECT x FROM b) y GROUP BY x", None),
    ("WITH c AS (SELECT countryCode AS k, COUNT(*) AS n FROM uv GROUP BY countryCode) "
     "SELECT k, n FROM c WHERE n > 100 UNION ALL SELECT k, n * 2 FROM c WHERE n <= 100", None),
]


@pytest.mark.parametrize("sql,duck", UNIONS, ids=[q[:80] for q, _ in UNIONS])
def test_union(tables, sql, duck):
    assert check(tables, sql, duck)


# INTERSECT / EXCEPT (DISTINCT): NULLs are equal, as in every set operation
SET_OPERATIONS = [
    # a branch ordered inside, whose outputs share a name
    "SELECT 7 AS a, 1 AS b EXCEPT (SELECT u.duration, u.duration FROM uv u ORDER BY 1 DESC NULLS LAST LIMIT 3)",
    "SELECT c1, c2 FROM (SELECT u.duration, u.duration FROM uv u ORDER BY 1 DESC NULLS LAST, 2 LIMIT 5) AS d(c1, c2)",
    "SELECT destURL FROM uv INTERSECT SELECT pageURL FROM rk",
    "SELECT pageURL, pageRank FROM rk EXCEPT SELECT destURL, duration FROM uv",
    "SELECT countryCode, duration FROM uv WHERE adRevenue > 0.5 INTERSECT SELECT countryCode, duration FROM uv WHERE adRevenue < 0.5",
    "SELECT duration AS d FROM uv EXCEPT SELECT pageRank FROM rk WHERE pageRank < 5 ORDER BY d NULLS FIRST LIMIT 4",
    "SELECT searchWord FROM uv EXCEPT SELECT searchWord FROM uv WHERE duration > 5 UNION SELECT 'extra'",
    "SELECT x, COUNT(*) FROM (SELECT countryCode AS x FROM uv INTERSECT SELECT countryCode FROM uv WHERE duration = 2) t GROUP BY x",
    "SELECT a FROM (SELECT duration AS a FROM uv EXCEPT SELECT avgDuration % 10 FROM rk "
    "EXCEPT SELECT 3) t",
]


@pytest.mark.parametrize("sql", SET_OPERATIONS)
def test_intersect_and_except(tables, sql):
    assert check(tables, sql, None)


def test_union_column_types_are_unified_and_names_come_from_the_first(shapes):
    def run(sql):
        res = list(shapes.session.execute(sql))[0]
        rows = [list(r) for r in res.rows]
        res.close()
        return res.columns, res.types, rows
    cols, types, rows = run("SELECT duration AS d, 1 AS one FROM uv WHERE duration = 1 "
                            "UNION ALL SELECT COUNT(*), 2.5 FROM rk")
    assert cols == ["d", "one"] and types == ["bigint", "double"]
    assert all(isinstance(r[1], float) for r in rows) and {r[1] for r in rows} == {1.0, 2.5}
    cols, types, rows = run("SELECT 'a' AS s UNION ALL SELECT 7 UNION ALL SELECT NULL")
    assert types == ["string"] and sorted(rows, key=str) == [["7"], ["a"], [None]]


def test_union_order_by_without_limit_is_a_range_sort(shapes, monkeypatch):
    import compiler.stages
    monkeypatch.setattr(compiler.stages, "RANGE_SORT_BYTES", 0)
    sql = ("SELECT sourceIP AS k, adRevenue AS v FROM uv UNION ALL "
           "SELECT pageURL, pageRank FROM rk UNION ALL SELECT countryCode, SUM(adRevenue) "
           "FROM uv GROUP BY countryCode ORDER BY v DESC NULLS LAST, k NULLS FIRST")
    text = list(shapes.session.execute("EXPLAIN " + sql))[0].message
    assert "partition: key ranges" in text
    shapes.check(sql, ordered=True)


def test_union_in_create_table_as(shapes, tmp_path):
    sql = ("SELECT countryCode AS k, COUNT(*) AS n FROM uv GROUP BY countryCode "
           "UNION ALL SELECT pageURL, pageRank FROM rk WHERE pageRank > 20 UNION ALL SELECT 'x', 1")
    list(shapes.session.execute(f"CREATE TABLE u_ctas LOCATION '{tmp_path / 'u'}' AS {sql}"))
    desc = list(shapes.session.execute("DESCRIBE u_ctas"))[0]
    assert [list(r) for r in desc.rows] == [["k", "STRING"], ["n", "BIGINT"]]
    shapes.check("SELECT k, n FROM u_ctas", sql)
    list(shapes.session.execute(f"CREATE TABLE w_ctas LOCATION '{tmp_path / 'w'}' AS "
                                "WITH c AS (SELECT 1 AS a) SELECT a FROM c UNION ALL SELECT a + 1 FROM c"))
    assert sorted(r[0] for r in shapes.sqlmr("SELECT a FROM w_ctas")) == [1, 2]


def test_explain_shows_each_branch(shapes):
    sql = ("SELECT countryCode, COUNT(*) AS n FROM uv GROUP BY countryCode "
           "UNION ALL SELECT pageURL, pageRank FROM rk UNION ALL SELECT 'x', 1 ORDER BY n DESC LIMIT 3")
    text = list(shapes.session.execute("EXPLAIN " + sql))[0].message
    assert "Map Operator Tree (Stage-1 output): map tasks over the rows of Stage-1" in text
    assert "Map Operator Tree (rk):" in text and "Map Operator Tree (one row):" in text
    assert text.count("Select Operator (UNION ALL)") == 3
    assert "CAST(pageRank AS BIGINT) AS n" in text
    assert "Top-N Operator" in text


# ---------------------------------------------------------------- errors

ERRORS = [
    ("SELECT sourceIP, duration FROM uv UNION ALL SELECT pageURL, pageRank, avgDuration FROM rk",
     "each SELECT of a UNION needs as many columns as the first: the first has 2, SELECT 2 has 3",
     "SELECT pageURL"),
    ("WITH RECURSIVE r AS (SELECT 1 AS n) SELECT n FROM r", "not supported yet: WITH RECURSIVE",
     "RECURSIVE"),
    ("SELECT sourceIP FROM uv INTERSECT ALL SELECT pageURL FROM rk",
     "not supported yet: INTERSECT ALL (INTERSECT and INTERSECT DISTINCT are supported)", "INTERSECT"),
    ("SELECT * FROM uv EXCEPT SELECT * FROM uv", "not supported yet: EXCEPT of SELECT * (list the columns)",
     "EXCEPT"),
    ("SELECT visitDate FROM uv UNION ALL SELECT pageRank FROM rk",
     "UNION column 1 is DATE in SELECT 1 ('visitDate') and INT in SELECT 2 ('pageRank')",
     "pageRank"),
    ("WITH c(a, b) AS (SELECT pageURL FROM rk) SELECT a FROM c",
     "'c' has 1 column but 2 column names", "b)"),
    ("WITH c AS (SELECT 1 AS a), c AS (SELECT 2 AS a) SELECT a FROM c", "WITH names 'c' twice",
     "c AS (SELECT 2"),
    ("WITH c AS (SELECT pageURL FROM pages) SELECT * FROM c", "table 'pages' does not exist",
     "pages)"),
    ("SELECT x + 1", "column 'x' not found: the SELECT has no FROM clause", "x + 1"),
    ("SELECT sourceIP FROM uv UNION ALL SELECT pageURL FROM rk WHERE SUM(pageRank) > 1",
     "aggregates are not allowed in WHERE", "SUM(pageRank)"),
    ("WITH c AS (SELECT destURL FROM uv) SELECT destURL, nosuch FROM c",
     "column 'nosuch' not found", "nosuch"),
]


@pytest.mark.parametrize("sql,message,at", ERRORS, ids=[m for _, m, _ in ERRORS])
def test_errors_have_a_caret(shapes, sql, message, at):
    with pytest.raises(SqlError) as info:
        list(shapes.session.execute(sql))
    e = info.value
    assert message in e.message
    assert e.offset == sql.index(at), (e.render(), at)
    lines = e.render().splitlines()
    assert lines[0] == "LINE 1: " + sql and lines[1].index("^") == len("LINE 1: ") + sql.index(at)


@pytest.mark.parametrize("sql,message", [
    ("SELECT s FROM t UNION ALL SELECT s, i FROM t", "the first has 1, SELECT 2 has 2"),
    ("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r", "not supported yet: WITH RECURSIVE"),
    ("SELECT s FROM t EXCEPT ALL SELECT s FROM t", "not supported yet: EXCEPT ALL"),
])
def test_cli_errors_have_no_traceback(tmp_path, sql, message):
    from test_cli import sqlmr
    data = tmp_path / "t"
    data.mkdir()
    (data / "p").write_text("a,1\n")
    assert sqlmr("-e", f"CREATE EXTERNAL TABLE t (s STRING, i INT) LOCATION '{data}'").returncode == 0
    r = sqlmr("-e", sql)
    assert r.returncode == 1 and "Traceback" not in r.stderr and message in r.stderr, r.stderr
    assert r.stderr.startswith("LINE 1: ") and "^" in r.stderr.splitlines()[1]
