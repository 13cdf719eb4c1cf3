"""sqlmr against DuckDB on the same files, for every single-table query shape."""

from __future__ import annotations

import pytest

from difftest import (RK_COLUMNS, UV_COLUMNS, Tables, as_bytes, gz_bytes, rankings_lines,
                      typed_columns, uservisits_lines)

QUERIES = {}
for name in ("1a", "1b", "1c", "2a", "2b", "2c"):
    QUERIES[name] = None


def _amplab(name: str) -> str:
    from pathlib import Path
    return (Path(__file__).resolve().parents[1] / "queries" / f"{name}.sql").read_text()


@pytest.fixture
def tiny_tables(session, tiny, tmp_path):
    t = Tables(session, tmp_path)
    cols_uv = ", ".join(f"{n} {ty.upper()}" for n, ty in UV_COLUMNS)
    cols_rk = ", ".join(f"{n} {ty.upper()}" for n, ty in RK_COLUMNS)
    # The AMPLab queries name the built-in tables; point same-named session tables
    # at the real tiny data by rewriting the table names.
    list(session.execute(f"CREATE EXTERNAL TABLE uv ({cols_uv}) LOCATION '{tiny / 'uservisits'}';"
                         f"CREATE EXTERNAL TABLE rk ({cols_rk}) LOCATION '{tiny / 'rankings'}'"))
    for name, cols, folder in (("uv", UV_COLUMNS, tiny / "uservisits"),
                               ("rk", RK_COLUMNS, tiny / "rankings")):
        colspec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n, _ in cols) + "}"
        t.con.execute(f"CREATE TABLE raw_{name} AS SELECT * FROM read_csv('{folder}/*', "
                      f"header=false, delim=',', quote='', escape='', columns={colspec}, "
                      f"auto_detect=false)")
        t.con.execute(f"CREATE VIEW {name} AS SELECT {typed_columns(cols)} FROM raw_{name}")
    return t


KNOWN_TINY = {"1a": 0, "1b": 45, "1c": 1200, "2a": 9651, "2b": 9991, "2c": 10000}


@pytest.mark.parametrize("name", sorted(KNOWN_TINY))
def test_amplab_queries_on_tiny_data(tiny_tables, name):
    sql = _amplab(name).replace("FROM rankings", "FROM rk").replace("FROM uservisits", "FROM uv")
    rows = tiny_tables.check(sql)
    assert len(rows) == KNOWN_TINY[name]


def test_tiny_total_revenue(tiny_tables):
    rows = tiny_tables.check("SELECT SUM(adRevenue), COUNT(*), COUNT(DISTINCT destURL), "
                             "MIN(visitDate), MAX(visitDate) FROM uv")
    total, count, urls, first, last = rows[0]
    assert abs(total - 4975.25506920848) < 1e-6
    assert (count, urls, first, last) == (10000, 1199, "1970-01-03", "2012-04-30")


# ------------------------------------------------------------ generated data

@pytest.fixture
def gen_tables(session, tmp_path):
    """uservisits-shaped data over several files: plain, .gz, CRLF, no final
    newline, NULLs; rankings with a heavy-tailed pageRank."""
    t = Tables(session, tmp_path)
    a = uservisits_lines(3000, seed=1, nulls=0.02)
    b = uservisits_lines(2000, seed=2)
    c = uservisits_lines(1500, seed=3, nulls=0.05)
    t.add("uv", UV_COLUMNS, {"part-00000": as_bytes(a), "part-00001": as_bytes(b, final_newline=False),
                             "part-00002.gz": gz_bytes(c)})
    d = uservisits_lines(1200, seed=4, nulls=0.03)
    t.add("uvcrlf", UV_COLUMNS, {"part-00000": as_bytes(d, crlf=True)}, crlf=True)
    t.add("rk", RK_COLUMNS, {"part-00000": as_bytes(rankings_lines(2500, seed=5))})
    session.settings.split_mb = 0.05  # many splits, cut mid-line
    session.settings.reducers = 3
    return t


SHAPES = [
    "SELECT * FROM uv",
    "SELECT sourceIP, adRevenue FROM uv WHERE adRevenue > 0.5",
    "SELECT sourceIP FROM uv WHERE duration BETWEEN 3 AND 5 AND countryCode = 'USA'",
    "SELECT destURL, duration FROM uv WHERE duration IN (1, 2, 10) OR countryCode IN ('DEU', 'FRA')",
    "SELECT searchWord FROM uv WHERE searchWord LIKE 'a%'",
    "SELECT searchWord FROM uv WHERE searchWord LIKE '%ta'",
    "SELECT searchWord FROM uv WHERE searchWord LIKE '%r_c%'",
    "SELECT searchWord, sourceIP FROM uv WHERE searchWord NOT LIKE '%a%'",
    "SELECT sourceIP FROM uv WHERE searchWord IS NULL OR duration IS NULL",
    "SELECT sourceIP, visitDate FROM uv WHERE visitDate IS NOT NULL AND NOT (duration > 5)",
    "SELECT sourceIP FROM uv WHERE visitDate BETWEEN DATE '1980-01-01' AND DATE '1983-01-01'",
    "SELECT sourceIP FROM uv WHERE visitDate > Date('2000-06-30')",
    # Hive's CONCAT is NULL when an argument is NULL; DuckDB's || behaves so, its CONCAT does not
    ("SELECT UPPER(countryCode), LOWER(searchWord), LENGTH(destURL), CONCAT(countryCode, '-', searchWord) FROM uv",
     "SELECT UPPER(countryCode), LOWER(searchWord), LENGTH(destURL), countryCode || '-' || searchWord FROM uv"),
    # Hive's ROUND is HALF_UP on the decimal value (ROUND(0.145, 2) = 0.15); DuckDB 2 rounds
    # the binary double (0.14), so the oracle rounds the value's shortest decimal text
    ("SELECT TRIM(userAgent), ABS(duration - 5), ROUND(adRevenue, 2), COALESCE(searchWord, countryCode, 'none') FROM uv",
     "SELECT TRIM(userAgent), ABS(duration - 5), "
     "CAST(ROUND(CAST(CAST(adRevenue AS VARCHAR) AS DECIMAL(38, 18)), 2) AS DOUBLE), "
     "COALESCE(searchWord, countryCode, 'none') FROM uv"),
    "SELECT adRevenue * 100 + duration, duration / 4, duration % 3, -duration FROM uv",
    # Hive's CAST to INT truncates toward zero; DuckDB's rounds
    ("SELECT CAST(duration AS DOUBLE), CAST(adRevenue * 10 AS INT), CAST(duration AS STRING) FROM uv",
     "SELECT CAST(duration AS DOUBLE), CAST(TRUNC(adRevenue * 10) AS INT), CAST(duration AS STRING) FROM uv"),
    "SELECT CASE WHEN duration > 5 THEN 'long' WHEN duration > 2 THEN 'mid' ELSE 'short' END, sourceIP FROM uv",
    "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)",
    "SELECT SUBSTR(sourceIP, 3), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 3)",
    "SELECT countryCode, COUNT(*), COUNT(searchWord), SUM(duration), AVG(adRevenue), MIN(visitDate), MAX(destURL) FROM uv GROUP BY countryCode",
    "SELECT countryCode, languageCode, SUM(adRevenue) AS rev FROM uv GROUP BY countryCode, languageCode HAVING SUM(adRevenue) > 10",
    "SELECT countryCode, COUNT(DISTINCT searchWord) FROM uv GROUP BY countryCode",
    "SELECT COUNT(*), SUM(adRevenue), AVG(duration), MIN(adRevenue), MAX(visitDate) FROM uv",
    "SELECT COUNT(*), SUM(duration) FROM uv WHERE duration > 100",
    "SELECT duration, COUNT(*) AS n FROM uv WHERE adRevenue < 0.9 GROUP BY duration HAVING COUNT(*) > 10",
    "SELECT DISTINCT countryCode, searchWord FROM uv",
    "SELECT countryCode, SUM(adRevenue) AS s FROM uv GROUP BY countryCode ORDER BY s DESC LIMIT 3",
    "SELECT sourceIP, adRevenue FROM uv ORDER BY adRevenue DESC, sourceIP LIMIT 25",
    "SELECT duration, searchWord FROM uv ORDER BY duration NULLS FIRST, searchWord DESC NULLS LAST, sourceIP, destURL, visitDate",
    "SELECT pageURL, pageRank FROM rk WHERE pageRank > 10",
    "SELECT pageRank, COUNT(*) FROM rk GROUP BY pageRank ORDER BY 2 DESC, 1 LIMIT 10",
    "SELECT SUBSTR(sourceIP, 1, 6), SUM(adRevenue), COUNT(*) FROM uvcrlf GROUP BY SUBSTR(sourceIP, 1, 6)",
    "SELECT * FROM uvcrlf WHERE duration > 8",
    "SELECT countryCode, AVG(duration) AS a FROM uv GROUP BY countryCode HAVING AVG(duration) > 5.4 ORDER BY a",
    # Hive escapes a quote with a backslash ('x''y' is two adjacent literals there)
    ("SELECT COUNT(*) FROM uv WHERE searchWord = 'x\\'y' OR searchWord = \"O'Brien\"",
     "SELECT COUNT(*) FROM uv WHERE searchWord = 'x''y' OR searchWord = 'O''Brien'"),
]


@pytest.mark.parametrize("sql", SHAPES)
def test_shape(gen_tables, sql):
    if isinstance(sql, tuple):
        gen_tables.check(*sql)
    else:
        gen_tables.check(sql)


def test_limit_without_order_returns_subset(gen_tables):
    rows = gen_tables.sqlmr("SELECT sourceIP, duration FROM uv WHERE duration > 3 LIMIT 17")
    assert len(rows) == 17
    everything = {tuple(r) for r in gen_tables.duckdb("SELECT sourceIP, duration FROM uv WHERE duration > 3")}
    assert all(tuple(r) in everything for r in rows)


def test_malformed_rows_are_null_and_counted(session, tmp_path):
    t = Tables(session, tmp_path)
    lines = uservisits_lines(50, seed=9)
    lines[3] = "1.2.3.4,url,not-a-date,0.5,ua,USA,USA-EN,w,7"     # bad date
    lines[7] = "1.2.3.5,url,2001-01-01,zero,ua,USA,USA-EN,w,7"     # bad double
    lines[11] = "1.2.3.6,url,2001-01-01"                           # missing fields
    lines[13] = ""                                                 # empty line: skipped
    t.add("uv", UV_COLUMNS, {"p0": as_bytes(lines)})
    t.check("SELECT visitDate, adRevenue, duration, countryCode FROM uv")
    results = list(session.execute("SELECT COUNT(*), COUNT(visitDate), COUNT(adRevenue) FROM uv"))
    res = results[0]
    rows = list(res.rows)
    res.close()
    assert rows == [(49, 48, 47)]  # the short line still has its date
    assert res.stats.malformed == 3


def test_strict_mode_names_file_and_offset(session, tmp_path):
    from compiler.errors import SqlError  # noqa: F401
    from sqlmr.backends import TaskFailedError
    t = Tables(session, tmp_path)
    lines = uservisits_lines(20, seed=3)
    lines[5] = "1.2.3.4,url,2001-01-01,oops,ua,USA,USA-EN,w,7"
    folder = t.add("uv", UV_COLUMNS, {"p0": as_bytes(lines)})
    offset = len(as_bytes(lines[:5]))
    session.settings.strict = True
    with pytest.raises(TaskFailedError) as info:
        list(session.execute("SELECT SUM(adRevenue) FROM uv"))
    msg = str(info.value)
    assert f"{folder}/p0 at byte {offset}" in msg and "oops" in msg


# ------------------------------------------------ map-side aggregation gives up

PASS_THROUGH_SHAPES = [  # (query, whether its scans can pass rows through)
    ("SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)", True),
    ("SELECT sourceIP, COUNT(*) FROM uv WHERE duration > 2 GROUP BY sourceIP", True),
    ("SELECT destURL, SUM(duration) FROM uv GROUP BY destURL", True),
    ("SELECT SUBSTR(sourceIP, 1, 5), COUNT(*) AS n FROM uv GROUP BY SUBSTR(sourceIP, 1, 5) HAVING COUNT(*) > 1", True),
    # NULL keys (rows with a NULL searchWord) come from the slow path's groups;
    # Hive's CONCAT is NULL when an argument is NULL, as DuckDB's || is
    (("SELECT CONCAT(sourceIP, searchWord), SUM(adRevenue) FROM uv GROUP BY CONCAT(sourceIP, searchWord)",
      "SELECT sourceIP || searchWord, SUM(adRevenue) FROM uv GROUP BY sourceIP || searchWord"), True),
    ("SELECT sourceIP, SUM(adRevenue) AS s FROM uv GROUP BY sourceIP ORDER BY s DESC, sourceIP LIMIT 5", True),
    ("SELECT SUBSTR(sourceIP, 1, 6), SUM(adRevenue), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 6)", False),
    # a key that is NULL on the fast path too: hashed as partition_of hashes NULL
    ("SELECT CASE WHEN duration <> 3 THEN sourceIP END AS k, SUM(adRevenue) FROM uv "
     "GROUP BY CASE WHEN duration <> 3 THEN sourceIP END", True),
]


@pytest.fixture
def small_blocks(gen_tables):
    """Tasks that read many small blocks and judge their aggregation early."""
    settings = gen_tables.session.settings
    settings.split_mb, settings.block_bytes, settings.aggr_check_rows = 0.5, 4096, 40
    settings.aggr_early_rows = 0   # the default early look (a test may set its own)
    return gen_tables


@pytest.mark.parametrize("sql, passes", PASS_THROUGH_SHAPES)
def test_map_side_aggregation_that_does_not_shrink_passes_rows_through(small_blocks, sql, passes):
    """Checked after a few rows (Hive's rule: more than half of the rows are new
    groups), a scan stops aggregating and sends (key, number) pairs as they
    are; reducers merge them with the groups aggregated before the switch and
    with the NULL-aware slow path's groups.  The answer is DuckDB's."""
    sql, duck_sql = sql if isinstance(sql, tuple) else (sql, None)
    small_blocks.check(sql, duck_sql)
    res = list(small_blocks.session.execute(sql))[0]
    res.close()
    assert ("rows_passed_through" in res.stats.counters) == passes, res.stats.counters


@pytest.mark.parametrize("sql, passes", [
    ("SELECT sourceIP, SUM(adRevenue) FROM uv GROUP BY sourceIP", True),
    ("SELECT SUBSTR(countryCode, 1, 1), SUM(adRevenue) FROM uv GROUP BY SUBSTR(countryCode, 1, 1)",
     False),
])
def test_an_early_look_passes_rows_through_when_nearly_every_row_is_a_new_group(
        small_blocks, sql, passes):
    """Before Hive's check, an early look: when nearly every row so far was a
    new group, a scan stops aggregating at once (the full check would agree);
    otherwise it keeps aggregating until the full check.  DuckDB's answer."""
    small_blocks.session.settings.aggr_check_rows = 10 ** 9   # only the early look decides
    small_blocks.session.settings.aggr_early_rows = 40
    small_blocks.check(sql)
    res = list(small_blocks.session.execute(sql))[0]
    res.close()
    assert ("rows_passed_through" in res.stats.counters) == passes, res.stats.counters


def test_map_side_aggregation_that_shrinks_keeps_aggregating(small_blocks):
    sql = "SELECT SUBSTR(countryCode, 1, 1), SUM(adRevenue) FROM uv GROUP BY SUBSTR(countryCode, 1, 1)"
    small_blocks.check(sql)
    res = list(small_blocks.session.execute(sql))[0]
    res.close()
    assert "rows_passed_through" not in res.stats.counters
