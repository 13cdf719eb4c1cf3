"""The catalog kept in S3 (catalog = s3://bucket/prefix/, SQLMR_CATALOG),
against a moto server: the same statements behave as with the local file,
concurrent writers lose nothing (conditional writes, retried on a conflict),
and a missing bucket or credentials says what to set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402

from aws_fixtures import moto_server, s3_bucket  # noqa: E402,F401
from compiler.errors import SqlError  # noqa: E402
from compiler.schema import Column, Table  # noqa: E402
from runtime import s3  # noqa: E402
from sqlmr.catalog import Catalog, CatalogError, open_catalog  # noqa: E402
from sqlmr.catalog_s3 import S3Catalog  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.session import Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUILTIN = {"rankings", "uservisits", "documents"}


@pytest.fixture(autouse=True)
def fresh_client():
    s3.reset_client()
    yield
    s3.reset_client()


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "p0").write_text("a,1\nb,2\na,3\n")
    return folder


def results(session: Session, sql: str) -> list[tuple]:
    """What each statement gave: kind, message, columns and rows."""
    out = []
    for r in session.execute(sql):
        out.append((r.kind, r.message, list(r.columns), sorted(map(tuple, r.rows))))
        r.close()
    return out


def catalog_object(bucket: str, key: str) -> dict:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def table(name: str, location: str = "/data") -> Table:
    return Table(name, [Column("a", "string")], "file://" + location)


def test_setting_or_env_chooses_the_store(s3_bucket, monkeypatch, sqlmr_home):
    assert type(open_catalog(Settings())) is Catalog
    c = open_catalog(Settings(catalog=f"s3://{s3_bucket}/team/"))
    assert isinstance(c, S3Catalog) and c.where == f"s3://{s3_bucket}/team/catalog.json"
    monkeypatch.setenv("SQLMR_CATALOG", f"s3://{s3_bucket}/env/")
    assert open_catalog(Settings()).where == f"s3://{s3_bucket}/env/catalog.json"
    from sqlmr.config import load_settings
    assert load_settings().catalog == f"s3://{s3_bucket}/env/"


def test_the_same_statements_behave_the_same_with_both_stores(s3_bucket, data, sqlmr_home):
    script = (f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}';"
              "CREATE EXTERNAL TABLE IF NOT EXISTS t (k STRING) LOCATION '/x';"
              "SHOW TABLES; DESCRIBE t;"
              "SELECT k, SUM(n) AS s FROM t GROUP BY k;"
              "CREATE TABLE made AS SELECT k FROM t WHERE n > 1;"
              "SELECT k FROM made; DROP TABLE t; DROP TABLE made; DROP TABLE IF EXISTS t;"
              "SHOW TABLES")
    local = Session(Settings(workers=1))
    remote = Session(Settings(workers=1, catalog=f"s3://{s3_bucket}/cat/"))
    try:
        got_local = results(local, script)
        # the managed table's folder is reused: the first session dropped it
        got_remote = results(remote, script)
    finally:
        local.close()
        remote.close()
    assert got_remote == got_local
    assert got_local[4][3] == [("a", 4), ("b", 2)]
    assert [r[0] for r in got_local[-1][3]] == sorted(BUILTIN)
    # the S3 catalog holds the document, and only it was written by the second session
    assert catalog_object(s3_bucket, "cat/catalog.json")["tables"] == {}


def test_a_table_created_in_s3_is_seen_by_another_session(s3_bucket, data, sqlmr_home):
    where = f"s3://{s3_bucket}/shared/"
    one = Session(Settings(workers=1, catalog=where))
    other = Session(Settings(workers=1, catalog=where))
    try:
        results(one, f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}'")
        assert results(other, "SELECT COUNT(*) FROM t")[0][3] == [(3,)]
        doc = catalog_object(s3_bucket, "shared/catalog.json")
        assert doc["version"] == 1 and doc["tables"]["t"]["location"] == f"file://{data}"
        assert not (sqlmr_home / "catalog.json").exists()   # the local file is not used
        # SET catalog switches this session's catalog
        results(other, "SET catalog = ''")
        with pytest.raises(SqlError, match="does not exist"):
            results(other, "DESCRIBE t")
    finally:
        one.close()
        other.close()


def test_two_sessions_creating_tables_at_once_lose_none(s3_bucket, tmp_path):
    where = f"s3://{s3_bucket}/busy/"
    per_session = 8
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    conflicts: list[int] = []

    def create(prefix: str) -> None:
        s = Session(Settings(workers=1, catalog=where))
        try:
            start.wait()
            for i in range(per_session):
                results(s, f"CREATE EXTERNAL TABLE {prefix}{i} (a STRING) "
                           f"LOCATION '{tmp_path}/{prefix}{i}'")
            conflicts.append(s.catalog.conflicts)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            s.close()

    threads = [threading.Thread(target=create, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    names = set(S3Catalog(where).tables()) - BUILTIN
    assert names == {f"{p}{i}" for p in "xy" for i in range(per_session)}


def test_a_write_that_lost_the_race_is_applied_again(s3_bucket):
    """Another writer changes the catalog between this change's read and its
    write: the conditional write is refused, the change re-applied to the new
    catalog, and both tables stay."""
    where = f"s3://{s3_bucket}/race/"
    mine, theirs = S3Catalog(where), S3Catalog(where)
    mine.create(table("first"))
    calls = []
    original = mine._parse_tables

    def parse_then_interleave(raw):
        tables = original(raw)
        if not calls:   # once: the other writer is quicker
            calls.append(1)
            theirs.create(table("theirs"))
        return tables

    mine._parse_tables = parse_then_interleave  # type: ignore[method-assign]
    assert mine.create(table("mine"))
    assert mine.conflicts == 1
    assert set(S3Catalog(where).tables()) - BUILTIN == {"first", "mine", "theirs"}
    # the change is re-checked against the catalog as it now is
    mine._parse_tables = original  # type: ignore[method-assign]
    calls.clear()
    theirs.create(table("again"))
    with pytest.raises(SqlError, match="table 'again' already exists"):
        mine.create(table("again"))
    assert catalog_object(s3_bucket, "race/catalog.json.bak")["tables"].keys() == \
        {"first", "mine", "theirs"}


def test_first_write_creates_the_object_only_if_it_is_still_missing(s3_bucket):
    where = f"s3://{s3_bucket}/new/"
    a, b = S3Catalog(where), S3Catalog(where)
    original = a._parse_tables
    once = []

    def interleave(raw):
        if not once:
            once.append(1)
            b.create(table("b_first"))   # creates the object first
        return original(raw)

    a._parse_tables = interleave  # type: ignore[method-assign]
    a.create(table("a_second"))
    assert a.conflicts == 1
    assert set(S3Catalog(where).tables()) - BUILTIN == {"b_first", "a_second"}


def test_functions_are_kept_in_the_s3_catalog(s3_bucket, tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def twice(x: int) -> int:\n    return 2 * x\n")
    where = f"s3://{s3_bucket}/fn/"
    s = Session(Settings(workers=1, catalog=where))
    try:
        results(s, f"CREATE FUNCTION twice AS 'm.twice' USING FILE '{module}'")
        assert results(s, "SELECT twice(21)")[0][3] == [(42,)]
        assert "twice" in S3Catalog(where).functions()
        results(s, "DROP FUNCTION twice")
        assert S3Catalog(where).functions() == {}
    finally:
        s.close()


def test_a_missing_bucket_names_what_to_set(moto_server):
    c = S3Catalog("s3://sqlmr-no-such-bucket-4711/cat/")
    with pytest.raises(CatalogError) as e:
        c.tables()
    msg = str(e.value)
    assert "s3://sqlmr-no-such-bucket-4711/cat/catalog.json" in msg
    assert "bucket 'sqlmr-no-such-bucket-4711' does not exist" in msg
    assert "SQLMR_CATALOG" in msg and "catalog = s3://" in msg


def test_missing_credentials_name_what_to_set(s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3.reset_client()
    with pytest.raises(CatalogError) as e:
        S3Catalog(f"s3://{s3_bucket}/cat/").create(table("t"))
    msg = str(e.value)
    assert "no usable AWS credentials" in msg and "AWS_ACCESS_KEY_ID" in msg
    assert "SQLMR_CATALOG" in msg


def test_a_damaged_catalog_object_is_named(s3_bucket):
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="bad/catalog.json", Body=b"{not json")
    with pytest.raises(CatalogError) as e:
        S3Catalog(f"s3://{s3_bucket}/bad/").tables()
    assert f"s3://{s3_bucket}/bad/catalog.json is not valid JSON" in str(e.value)


def test_cli_with_sqlmr_catalog_env(s3_bucket, data, sqlmr_home):
    env = {**os.environ, "PYTHONPATH": str(REPO), "SQLMR_CATALOG": f"s3://{s3_bucket}/cli/"}

    def cli(sql: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sqlmr", "--format", "csv", "-e", sql],
                              capture_output=True, text=True, env=env, timeout=300)

    r = cli(f"CREATE EXTERNAL TABLE t (k STRING, n INT) LOCATION '{data}'")
    assert r.returncode == 0, r.stderr
    r = cli("SELECT k, n FROM t ORDER BY n")
    assert r.returncode == 0 and r.stdout.splitlines() == ["k,n", "a,1", "b,2", "a,3"]
    assert not (sqlmr_home / "catalog.json").exists()
    env["SQLMR_CATALOG"] = "s3://sqlmr-no-such-bucket-4711/x/"
    r = cli("SHOW TABLES")
    assert r.returncode == 1
    assert "sqlmr: error: the catalog s3://sqlmr-no-such-bucket-4711/x/catalog.json cannot be " \
           "read: S3 bucket 'sqlmr-no-such-bucket-4711' does not exist" in r.stderr
