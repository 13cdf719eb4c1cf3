"""CREATE TABLE … AS SELECT and INSERT OVERWRITE DIRECTORY: results written as
text tables (``\\N`` for NULL), registered in the catalog, queried again and
compared with DuckDB; writes are atomic (nothing half-written after a failed
task, an error or Ctrl-C); S3 locations through moto."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from aws_fixtures import moto_server, s3_bucket  # noqa: F401
from compiler.errors import SqlError
from difftest import Tables, as_bytes, assert_same
from test_joins import CC, RK, UV, join_fixture


@pytest.fixture
def ct(session, tmp_path):
    rk, uv, cc = join_fixture(seed=11, pages=200, visits=1500)
    t = Tables(session, tmp_path)
    t.add("rk", RK, {"p0": as_bytes(rk)})
    t.add("uv", UV, {"p0": as_bytes(uv[:700]), "p1": as_bytes(uv[700:])})
    t.add("cc", CC, {"p0": as_bytes(cc)})
    session.settings.split_mb = 0.03
    session.settings.reducers = 3
    return t


def run(t: Tables, sql: str) -> str:
    results = list(t.session.execute(sql))
    for r in results:
        r.close()
    return results[-1].message


def leftovers(folder: Path) -> list[str]:
    """Staging folders or files a write may have left next to its destination."""
    return [p.name for p in folder.iterdir() if "sqlmr-staging" in p.name or p.name.endswith(".old")]


def test_ctas_then_query_equals_duckdb(ct, sqlmr_home):
    select = ("SELECT u.countryCode AS country, COUNT(*) AS visits, SUM(r.pageRank) AS ranks, "
              "AVG(u.adRevenue) AS rev, MIN(u.visitDate) AS first FROM uv u JOIN rk r "
              "ON u.destURL = r.pageURL GROUP BY u.countryCode")
    msg = run(ct, "CREATE TABLE summary AS " + select)
    assert msg.startswith("created table summary (5 columns")
    where = sqlmr_home / "warehouse" / "summary"
    assert sorted(os.listdir(where)) and all(n.startswith("part-") for n in os.listdir(where))
    table = ct.session.catalog.get("summary")
    assert [(c.name, c.type) for c in table.columns] == [
        ("country", "string"), ("visits", "bigint"), ("ranks", "bigint"), ("rev", "double"),
        ("first", "date")]
    # the new table answers like the query it was made from (NULLs included)
    got = ct.sqlmr("SELECT * FROM summary")
    assert_same(got, ct.duckdb(select), ordered=False)
    # and it composes: a join of the new table with a base table
    ct.con.execute(f"CREATE VIEW summary AS {select}")
    ct.check("SELECT s.country, s.visits, c.continent FROM summary s JOIN cc c ON s.country = c.code "
             "WHERE s.visits > 10")
    ct.check("SELECT country, rev FROM summary ORDER BY rev DESC NULLS LAST, country NULLS LAST LIMIT 3")


def test_ctas_with_location_delimiter_and_order(ct, tmp_path):
    dest = tmp_path / "out" / "top"
    msg = run(ct, f"CREATE TABLE top ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' "
                  f"STORED AS TEXTFILE LOCATION '{dest}' AS "
                  "SELECT sourceIP, adRevenue, duration FROM uv WHERE adRevenue IS NOT NULL "
                  "ORDER BY adRevenue DESC, sourceIP LIMIT 7")
    assert "7 rows in 1 file" in msg
    lines = (dest / "part-00000").read_text().splitlines()
    assert len(lines) == 7 and all(line.count("|") == 2 for line in lines)
    want = ct.duckdb("SELECT sourceIP, adRevenue, duration FROM uv WHERE adRevenue IS NOT NULL "
                     "ORDER BY adRevenue DESC, sourceIP LIMIT 7")
    assert_same(ct.sqlmr("SELECT * FROM top"), want, ordered=True)  # one file, in order
    assert "\\N" in "".join(lines) or all(r[0] is not None and r[2] is not None for r in want)
    assert leftovers(dest.parent) == []


def test_nulls_round_trip_as_backslash_n(ct, tmp_path):
    run(ct, f"CREATE TABLE n LOCATION '{tmp_path / 'n'}' AS SELECT sourceIP, duration, "
            "visitDate FROM uv WHERE sourceIP IS NULL OR duration IS NULL")
    text = "".join(p.read_text() for p in (tmp_path / "n").iterdir())
    assert "\\N" in text
    ct.check("SELECT COUNT(*), COUNT(sourceIP), COUNT(duration), COUNT(visitDate) FROM n",
             "SELECT COUNT(*), COUNT(sourceIP), COUNT(duration), COUNT(visitDate) FROM uv "
             "WHERE sourceIP IS NULL OR duration IS NULL")


def test_insert_overwrite_directory_replaces_files(ct, tmp_path):
    dest = tmp_path / "dir"
    dest.mkdir()
    (dest / "old-data").write_text("stale,1\n")
    sql = (f"INSERT OVERWRITE DIRECTORY '{dest}' ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\t' "
           "SELECT destURL, duration FROM uv WHERE duration = 2")
    # a file sqlmr did not write is replaced only with force (test_write_safety.py)
    with pytest.raises(SqlError, match="sqlmr did not write"):
        run(ct, sql)
    ct.session.settings.force = True
    msg = run(ct, sql)
    assert msg.startswith("wrote ") and "replaced 1 entry because of --force: old-data" in msg
    names = sorted(n for n in os.listdir(dest) if n != "_SUCCESS")
    assert "old-data" not in names and names and all(n.startswith("part-") for n in names)
    rows = [line.split("\t") for p in names for line in (dest / p).read_text().splitlines()]
    want = ct.duckdb("SELECT destURL, duration FROM uv WHERE duration = 2")
    assert sorted(r[0] for r in rows) == sorted("\\N" if w[0] is None else w[0] for w in want)
    assert ct.session.catalog.tables().get("dir") is None   # nothing registered
    assert leftovers(tmp_path) == []


def test_existing_table_and_if_not_exists(ct):
    run(ct, "CREATE TABLE t1 AS SELECT code FROM cc")
    with pytest.raises(SqlError, match="already exists"):
        run(ct, "CREATE TABLE t1 AS SELECT code FROM cc")
    assert "skipped" in run(ct, "CREATE TABLE IF NOT EXISTS t1 AS SELECT code FROM cc")
    with pytest.raises(SqlError, match="built-in"):
        run(ct, "CREATE TABLE rankings AS SELECT code FROM cc")
    # DROP removes a managed table's files, so the name can be used again
    assert "and its files" in run(ct, "DROP TABLE t1")
    run(ct, "CREATE TABLE t1 AS SELECT code, country FROM cc")
    assert len(ct.sqlmr("SELECT * FROM t1")) == 8


def test_unnamed_columns_are_named_like_hive(ct):
    run(ct, "CREATE TABLE agg AS SELECT countryCode, COUNT(*), MAX(duration) FROM uv GROUP BY countryCode")
    assert [c.name for c in ct.session.catalog.get("agg").columns] == ["countryCode", "_c1", "_c2"]


def test_failed_task_leaves_nothing(ct, tmp_path):
    from sqlmr.backends import TaskFailedError
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p0").write_text("a,1\nb,oops\n")
    list(ct.session.execute(f"CREATE EXTERNAL TABLE badt (k STRING, v INT) LOCATION '{bad}'"))
    ct.session.settings.strict = True
    dest = tmp_path / "never"
    with pytest.raises(TaskFailedError):
        run(ct, f"CREATE TABLE never LOCATION '{dest}' AS SELECT k, v FROM badt")
    assert not dest.exists() and leftovers(tmp_path) == []
    assert ct.session.catalog.tables().get("never") is None


def test_value_containing_the_delimiter_is_refused(ct, tmp_path):
    dest = tmp_path / "ua"
    with pytest.raises(SqlError, match="field delimiter"):
        run(ct, f"CREATE TABLE ua ROW FORMAT DELIMITED FIELDS TERMINATED BY '/' LOCATION '{dest}' "
                "AS SELECT DISTINCT userAgent FROM uv")
    assert not dest.exists() and leftovers(tmp_path) == []


def test_interrupted_commit_leaves_nothing(ct, tmp_path, monkeypatch):
    import sqlmr.session as session_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(session_mod, "_commit", interrupted)
    dest = tmp_path / "half"
    with pytest.raises(KeyboardInterrupt):
        run(ct, f"CREATE TABLE half LOCATION '{dest}' AS SELECT sourceIP FROM uv")
    assert not dest.exists() and leftovers(tmp_path) == []
    assert ct.session.catalog.tables().get("half") is None


def test_ctas_to_s3(ct, s3_bucket):
    import boto3
    uri = f"s3://{s3_bucket}/tables/bycountry"
    select = "SELECT countryCode, COUNT(*) AS n FROM uv GROUP BY countryCode"
    run(ct, f"CREATE TABLE bycountry LOCATION '{uri}' AS {select}")
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    # part files (named by their commit) and the _SUCCESS manifest; no staging
    # or commit intent left
    assert len(keys) > 1 and all(re.fullmatch(r"tables/bycountry/part-\d{5}-[0-9a-f]{8}", k)
                                 for k in keys[1:])
    assert keys[0] == "tables/bycountry/_SUCCESS"
    assert_same(ct.sqlmr("SELECT * FROM bycountry"), ct.duckdb(select), ordered=False)
    insert = f"INSERT OVERWRITE DIRECTORY '{uri}' SELECT countryCode, 1 FROM uv WHERE duration = 3 LIMIT 2"
    with pytest.raises(SqlError, match="is the location of table bycountry"):
        run(ct, insert)  # a catalogued table's folder is never overwritten
    run(ct, "DROP TABLE bycountry")  # external: its files are kept
    assert "replaced an earlier sqlmr output (2 files)" in run(ct, insert)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys[0] == "tables/bycountry/_SUCCESS" and len(keys) == 2
    assert re.fullmatch(r"tables/bycountry/part-00000-[0-9a-f]{8}", keys[1])
    run(ct, f"CREATE EXTERNAL TABLE bycountry (c STRING, n INT) LOCATION '{uri}'")
    assert len(ct.sqlmr("SELECT * FROM bycountry")) == 2


def test_explain_create_table_as(ct, sqlmr_home):
    text = run(ct, "EXPLAIN CREATE TABLE e AS SELECT countryCode, COUNT(*) FROM uv GROUP BY countryCode")
    assert "Move Operator (the final tasks write text files" in text
    assert f"committed to file://{sqlmr_home}/warehouse/e, then table e is registered" in text
    assert ct.session.catalog.tables().get("e") is None  # EXPLAIN runs nothing
