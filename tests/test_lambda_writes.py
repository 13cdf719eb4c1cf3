"""CREATE TABLE AS and INSERT OVERWRITE DIRECTORY to S3 on the Lambda backend
(moto server, tasks run by the real package in subprocesses): tasks stage
their files under the job prefix, the driver commits them inside S3 (no part
byte passes through it), the manifest is written last, and a failed, cancelled
or killed write leaves the previous output whole and, once cleaned up, nothing
behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import aws_fixtures  # noqa: E402
from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: E402,F401

try:  # an IAM-enforced account (tasks as the function's role), where aws_fixtures has one
    from aws_fixtures import enforced_bucket, iam_account, iam_servers  # noqa: E402,F401
except ImportError:
    pass
from difftest import assert_same  # noqa: E402
from test_lambda_backend import (ddl, keys, lambda_settings, local_rows, run_sql,  # noqa: E402
                                 s3, tables)  # noqa: F401
from compiler.errors import SqlError  # noqa: E402
from runtime import s3 as rs3  # noqa: E402
from runtime import storage  # noqa: E402
from sqlmr import table_writes  # noqa: E402
from sqlmr.aws import deploy, grants  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.session import Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BY_COUNTRY = "SELECT countryCode, COUNT(*) AS n, SUM(duration) AS d FROM uv GROUP BY countryCode"
PART = re.compile(r"part-\d{5}-[0-9a-f]{8}")


class DriverRequests:
    """The S3 requests this process (the driver) makes through runtime.s3's
    client: (operation, key) pairs, recorded by a botocore event hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        rs3.reset_client()
        rs3.client().meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params, model, **_):
        self.calls.append((model.name, params.get("Key", "")))

    def keys(self, op: str) -> list[str]:
        return [k for o, k in self.calls if o == op]


def lambda_session() -> Session:
    return Session(lambda_settings())


def local_session() -> Session:
    return Session(Settings(workers=2, split_mb=0.04, reducers=2))


def message(session: Session, sql: str) -> str:
    results = list(session.execute(sql))
    for r in results:
        r.close()
    return results[-1].message


def lines_of(bucket: str, prefix: str) -> list[str]:
    """The rows of the files a folder's manifest names, sorted."""
    c = s3()
    marker = c.get_object(Bucket=bucket, Key=prefix + "_SUCCESS")["Body"].read()
    names = storage.parse_manifest(marker)
    assert names is not None
    out = []
    for n in names:
        out += c.get_object(Bucket=bucket, Key=prefix + n)["Body"].read().decode().splitlines()
    return sorted(out)


def test_ctas_and_overwrite_to_s3_match_the_local_backend(tables):
    bucket = tables
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        seen = DriverRequests()
        msg = message(session, f"CREATE TABLE bc LOCATION 's3://{bucket}/out/bc' AS {BY_COUNTRY}")
        assert msg.startswith("created table bc (3 columns")
        # no part byte went through the driver: it neither read a staged or
        # committed file nor wrote one (the copies are server-side)
        staged = [k for k in seen.keys("GetObject") + seen.keys("PutObject")
                  if "/staging-" in k or PART.search(k)]
        assert staged == []
        # the driver writes only the job's code, the shuffle list and bounds, the commit's
        # own objects (its record and the manifest)
        assert [k for k in seen.keys("PutObject") if not (
            k.endswith(("/job.py", "-shuffle.json", "-bounds.bin")) or k == "out/bc/_SUCCESS"
            or "/_sqlmr-commit-" in k)] == []
        # the manifest is written after the last copy
        ops = [(o, k) for o, k in seen.calls if o in ("CopyObject", "PutObject")]
        assert ops[-1] == ("PutObject", "out/bc/_SUCCESS")
        assert sum(o == "CopyObject" for o, _ in ops) == len(keys(bucket, "out/bc/")) - 1
        # the folder holds the manifest and the files it names, nothing else
        out = keys(bucket, "out/bc/")
        assert out[0] == "out/bc/_SUCCESS" and all(PART.fullmatch(k[7:]) for k in out[1:])
        assert keys(bucket, "sqlmr/jobs/") == []          # staging and scratch are gone
        seen = DriverRequests()
        got = run_sql(session, "SELECT * FROM bc")
        assert_same(got, local_rows(bucket, BY_COUNTRY), ordered=False)
        assert len(got) > 3
        # the driver knew the manifest's files from the listing (its ETag):
        # it read nothing of the table, which only the function may need to
        assert [k for k in seen.keys("GetObject") if k.startswith("out/")] == []

        # INSERT OVERWRITE DIRECTORY: the same files as the local backend writes
        insert = "SELECT sourceIP, duration FROM uv WHERE duration < 40"
        message(session, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/dir/' {insert}")
        local = local_session()
        try:
            list(local.execute(ddl(bucket)))
            message(local, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/local/dir/' {insert}")
        finally:
            local.close()
        first = lines_of(bucket, "out/dir/")
        assert first == lines_of(bucket, "local/dir/") and len(first) > 50
        old = set(keys(bucket, "out/dir/"))
        # overwritten again: new names, the old files are gone
        msg = message(session, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/dir' "
                               "SELECT countryCode FROM uv WHERE duration < 5")
        assert "replaced an earlier sqlmr output" in msg
        new = set(keys(bucket, "out/dir/"))
        assert new & old == {"out/dir/_SUCCESS"}
        assert lines_of(bucket, "out/dir/") == sorted(
            r[0] for r in local_rows(bucket, "SELECT countryCode FROM uv WHERE duration < 5"))
        assert keys(bucket, "sqlmr/jobs/") == []
    finally:
        session.close()


def test_ctas_without_location_goes_to_the_warehouse(tables):
    bucket = tables
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        text = message(session, f"EXPLAIN CREATE TABLE wh AS {BY_COUNTRY}")
        where = f"s3://{bucket}/sqlmr/warehouse/wh"
        assert f"committed to {where}, then table wh is registered" in text
        msg = message(session, f"CREATE TABLE wh AS {BY_COUNTRY}")
        assert msg.endswith(f"at {where}")
        assert session.catalog.get("wh").location == where
        got = run_sql(session, "SELECT * FROM wh")
        assert_same(got, local_rows(bucket, BY_COUNTRY), ordered=False)
        # the function's role was granted the table's folder, by the grant
        # every table read gets (the folder of the files its tasks read)
        backend = session.backend()
        policy = grants.current_policy(deploy._Aws(backend.lambda_settings),
                                       backend.lambda_settings)
        assert grants.covered(where + "/part-00000-00000000", grants.granted_locations(policy))
        # a file put there by something else is not part of the table ...
        s3().put_object(Bucket=bucket, Key="sqlmr/warehouse/wh/notes.txt", Body=b"mine\n")
        assert len(run_sql(session, "SELECT * FROM wh")) == len(got)
        # ... and DROP TABLE deletes only sqlmr's files and manifest
        assert message(session, "DROP TABLE wh") == "dropped table wh (its files are kept)"
        assert keys(bucket, "sqlmr/warehouse/") == ["sqlmr/warehouse/wh/notes.txt"]
        s3().delete_object(Bucket=bucket, Key="sqlmr/warehouse/wh/notes.txt")
        # ORDER BY … LIMIT: the driver merges the rows and stages one file
        top = ("SELECT countryCode, COUNT(*) AS n FROM uv GROUP BY countryCode "
               "ORDER BY n DESC, countryCode LIMIT 3")
        message(session, f"CREATE TABLE top AS {top}")
        assert run_sql(session, "SELECT * FROM top") == local_rows(bucket, top)
        assert message(session, "DROP TABLE top") == "dropped table top and its files"
        message(session, f"CREATE TABLE wh AS {BY_COUNTRY}")
        assert message(session, "DROP TABLE wh") == "dropped table wh and its files"
        assert keys(bucket, "sqlmr/warehouse/") == []
    finally:
        session.close()


def test_failed_job_leaves_no_staging(tables, monkeypatch):
    bucket = tables
    monkeypatch.setenv("SQLMR_LAMBDA_MAX_ATTEMPTS", "1")
    c = s3()
    good = b"".join(b"k%d,%d\n" % (i, i) for i in range(500))
    c.put_object(Bucket=bucket, Key="data/bad/p0", Body=good)
    c.put_object(Bucket=bucket, Key="data/bad/p1", Body=b"a,1\nb,oops\n")
    session = lambda_session()
    try:
        list(session.execute(f"CREATE EXTERNAL TABLE badt (k STRING, v INT) "
                             f"LOCATION 's3://{bucket}/data/bad'"))
        session.settings.strict = True
        with pytest.raises(Exception, match="oops"):
            message(session, f"CREATE TABLE never LOCATION 's3://{bucket}/out/never' "
                             "AS SELECT k, v FROM badt")
        assert session.catalog.tables().get("never") is None
    finally:
        session.close()
    assert keys(bucket, "out/") == [] and keys(bucket, "sqlmr/jobs/") == []


def _earlier_output(session: Session, bucket: str) -> list[str]:
    """An INSERT OVERWRITE DIRECTORY output at s3://bucket/out/keep/ (its rows)."""
    message(session, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/keep' {BY_COUNTRY}")
    return lines_of(bucket, "out/keep/")


def test_commit_failing_before_the_manifest_keeps_the_old_output(tables, monkeypatch):
    bucket = tables
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        before = _earlier_output(session, bucket)
        old_keys = keys(bucket, "out/keep/")

        def fail() -> None:
            raise OSError("the network went away")

        monkeypatch.setattr(table_writes, "_before_manifest", fail)
        with pytest.raises(OSError, match="network went away"):
            message(session, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/keep' "
                             "SELECT sourceIP FROM uv")
        # the copies and the intent are gone, the old output is as it was
        assert keys(bucket, "out/keep/") == old_keys
        assert lines_of(bucket, "out/keep/") == before
        assert keys(bucket, "sqlmr/jobs/") == []
    finally:
        session.close()


KILLER = """
import os, signal, sys
from sqlmr import table_writes
from sqlmr.aws import deploy
from sqlmr.backends import lambda_backend
deploy._sleep = lambda s: None
lambda_backend.POLICY_PROPAGATION_S = 0.0
table_writes._before_manifest = lambda: os.kill(os.getpid(), signal.SIGKILL)
from sqlmr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_mid_commit_keeps_the_old_table_and_clean_removes_leftovers(tables):
    bucket = tables
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        before = _earlier_output(session, bucket)
        list(session.execute(f"CREATE EXTERNAL TABLE kept (c STRING, n BIGINT, d BIGINT) "
                             f"LOCATION 's3://{bucket}/out/keep'"))
        rows = sorted(map(tuple, run_sql(session, "SELECT * FROM kept")))
        message(session, "DROP TABLE kept")
        old_keys = keys(bucket, "out/keep/")
        # a driver killed (SIGKILL) between the copies and the manifest
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-c", KILLER, "--backend", "lambda", "-e",
             f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/keep' SELECT sourceIP FROM uv"],
            env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr
        left = sorted(set(keys(bucket, "out/keep/")) - set(old_keys))
        assert any(PART.search(k) for k in left)                 # the copies were made
        assert any("/_sqlmr-commit-" in k for k in left)         # and the intent is there
        assert keys(bucket, "sqlmr/jobs/")                        # so is the staging
        # readers still see the old output, whole: the manifest names only it
        list(session.execute(f"CREATE EXTERNAL TABLE kept (c STRING, n BIGINT, d BIGINT) "
                             f"LOCATION 's3://{bucket}/out/keep'"))
        assert sorted(map(tuple, run_sql(session, "SELECT * FROM kept"))) == rows
        assert lines_of(bucket, "out/keep/") == before
    finally:
        session.close()
    # sqlmr clean finds the dead driver's claim: copies, intent, staging go
    from sqlmr.cli import main
    assert main(["clean"]) == 0
    assert keys(bucket, "out/keep/") == old_keys
    assert keys(bucket, "sqlmr/jobs/") == []


def test_killed_after_the_manifest_rolls_forward(s3_bucket):
    """A commit whose manifest was written is finished by recovery: the old
    files it replaced are deleted, the new ones kept."""
    bucket = s3_bucket
    c = s3()
    for name in ("part-00000", "part-00000-0123abcd", "part-00001-0123abcd"):
        c.put_object(Bucket=bucket, Key=f"t/{name}", Body=name.encode() + b"\n")
    c.put_object(Bucket=bucket, Key="t/_SUCCESS",
                 Body=storage.manifest_bytes(["part-00000-0123abcd", "part-00001-0123abcd"]))
    intent = f"s3://{bucket}/t/_sqlmr-commit-0123abcd"
    storage.write_bytes(intent, json.dumps({"writer": "sqlmr", "old": ["part-00000"],
                                            "new": ["part-00000-0123abcd",
                                                    "part-00001-0123abcd"]}).encode())
    assert [u.rsplit("/", 1)[1] for u, _ in storage.list_files(f"s3://{bucket}/t")] == \
        ["part-00000-0123abcd", "part-00001-0123abcd"]      # the old file is not read
    table_writes.recover_commit(intent)
    assert keys(bucket, "t/") == ["t/_SUCCESS", "t/part-00000-0123abcd", "t/part-00001-0123abcd"]


def test_manifest_naming_a_missing_file_is_an_error(s3_bucket, monkeypatch):
    monkeypatch.setattr(rs3, "_sleep", lambda s: None)
    c = s3()
    c.put_object(Bucket=s3_bucket, Key="t/part-00000-0123abcd", Body=b"a\n")
    c.put_object(Bucket=s3_bucket, Key="t/_SUCCESS",
                 Body=storage.manifest_bytes(["part-00000-0123abcd", "part-00001-0123abcd"]))
    with pytest.raises(storage.InputError, match="names files that are not there"):
        storage.list_files(f"s3://{s3_bucket}/t")
    # an empty marker (Hadoop, Spark) filters nothing
    c.put_object(Bucket=s3_bucket, Key="t/_SUCCESS", Body=b"")
    assert len(storage.list_files(f"s3://{s3_bucket}/t")) == 1


def test_large_objects_are_copied_part_by_part(s3_bucket, monkeypatch):
    monkeypatch.setattr(rs3, "COPY_LIMIT", 6 * 1024 * 1024)
    monkeypatch.setattr(rs3, "COPY_PART_SIZE", 5 * 1024 * 1024)
    data = os.urandom(1024) * (11 * 1024 + 7)                   # 11 MiB and a bit: 3 parts
    s3().put_object(Bucket=s3_bucket, Key="big/src", Body=data)
    seen = DriverRequests()
    etag = rs3.copy(f"s3://{s3_bucket}/big/src", f"s3://{s3_bucket}/big/dst")
    assert etag.strip('"').endswith("-3")
    assert len(seen.keys("UploadPartCopy")) == 3 and seen.keys("GetObject") == []
    assert s3().get_object(Bucket=s3_bucket, Key="big/dst")["Body"].read() == data


def test_lambda_write_to_a_local_folder_is_fetched(tables, tmp_path):
    """INSERT OVERWRITE (LOCAL) DIRECTORY to this machine on Lambda: the tasks
    stage on S3, the driver fetches the accepted files and renames them in."""
    bucket = tables
    dest = tmp_path / "res"
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        message(session, f"INSERT OVERWRITE DIRECTORY '{dest}' {BY_COUNTRY}")
    finally:
        session.close()
    names = sorted(os.listdir(dest))
    assert names[0] == "_SUCCESS" and all(re.fullmatch(r"part-\d{5}", n) for n in names[1:])
    got = sorted(line for n in names[1:] for line in (dest / n).read_text().splitlines())
    want = sorted(",".join(map(str, r)) for r in local_rows(bucket, BY_COUNTRY))
    assert got == want
    assert keys(bucket, "sqlmr/jobs/") == []
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_sqlerror_for_ctas_into_a_nonempty_warehouse_folder(tables):
    bucket = tables
    s3().put_object(Bucket=bucket, Key="sqlmr/warehouse/busy/x.csv", Body=b"1\n")
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        with pytest.raises(SqlError, match="is not empty"):
            message(session, f"CREATE TABLE busy AS {BY_COUNTRY}")
    finally:
        session.close()
    assert keys(bucket, "sqlmr/jobs/") == []


def test_cancelled_job_keeps_the_old_output_and_leaves_no_staging(tables, monkeypatch):
    """Ctrl-C once the first task has written its file: the earlier output is
    untouched and the staged file is gone (one invocation at a time, so none
    is still running when the job stops)."""
    from sqlmr.backends import JobCancelledError
    bucket = tables
    monkeypatch.setenv("SQLMR_LAMBDA_CONCURRENCY", "1")
    session = lambda_session()
    try:
        list(session.execute(ddl(bucket)))
        before = _earlier_output(session, bucket)
        old_keys = keys(bucket, "out/keep/")
        staged: list[list[str]] = []

        def progress(label, done, total, nbytes):
            if done == 1:
                staged.append([k for k in keys(bucket, "sqlmr/jobs/") if "/staging-" in k])
                raise KeyboardInterrupt

        session.progress = lambda: progress
        with pytest.raises((JobCancelledError, KeyboardInterrupt)):
            message(session, f"INSERT OVERWRITE DIRECTORY 's3://{bucket}/out/keep' "
                             "SELECT sourceIP FROM uv")
        assert staged and staged[0]                     # a task had written its file ...
        assert keys(bucket, "sqlmr/jobs/") == []        # ... which is gone
        assert keys(bucket, "out/keep/") == old_keys and lines_of(bucket, "out/keep/") == before
    finally:
        session.close()


def test_a_dead_drivers_s3_staging_waits_for_a_run_that_uses_s3(s3_bucket, sqlmr_home):
    """A local job (maybe offline) leaves a dead claim's S3 entries alone; a
    run that uses S3 removes them, and a released entry is never touched."""
    from sqlmr import scratch
    c = s3()
    c.put_object(Bucket=s3_bucket, Key="sqlmr/jobs/staging-0123abcd/s1-map-00000.a0", Body=b"x\n")
    c.put_object(Bucket=s3_bucket, Key="sqlmr/jobs/staging-4567cdef/s1-map-00000.a0", Body=b"y\n")
    claims = sqlmr_home / "claims"
    claims.mkdir(exist_ok=True)
    dead = claims / "999999-deadbeef.claim"      # nobody holds its lock: a dead driver's
    dead.write_text(f"s3://{s3_bucket}/sqlmr/jobs/staging-0123abcd/\n"
                    f"s3://{s3_bucket}/sqlmr/jobs/staging-4567cdef/\n"
                    f"-s3://{s3_bucket}/sqlmr/jobs/staging-4567cdef/\n")
    scratch.sweep(s3=False)
    assert dead.exists() and len(keys(s3_bucket, "sqlmr/jobs/")) == 2
    scratch.sweep()
    assert not dead.exists()
    assert keys(s3_bucket, "sqlmr/jobs/") == ["sqlmr/jobs/staging-4567cdef/s1-map-00000.a0"]


@pytest.mark.skipif(not hasattr(aws_fixtures, "iam_account"),
                    reason="needs the IAM-enforced account of aws_fixtures")
def test_writes_where_the_caller_may_not_read(request):
    """The caller may do everything but s3:GetObject in the data bucket: a
    CREATE TABLE AS and INSERT OVERWRITE DIRECTORY into it still commit (the
    copies need no read there, the manifest is known from the listing) and
    the table reads back with the local backend's answer (the same files in
    the job bucket, which the caller may read)."""
    account = request.getfixturevalue("iam_account")
    from test_lambda_backend import upload_tables
    data, jobs = account.data_bucket, account.job_bucket
    upload_tables(data)
    upload_tables(jobs)
    want = local_rows(jobs, BY_COUNTRY)
    session = lambda_session()
    try:
        list(session.execute(ddl(data)))
        message(session, f"CREATE TABLE bc LOCATION 's3://{data}/out/bc' AS {BY_COUNTRY}")
        assert_same(run_sql(session, "SELECT * FROM bc"), want, ordered=False)
        for select in (BY_COUNTRY, "SELECT sourceIP FROM uv"):
            message(session, f"INSERT OVERWRITE DIRECTORY 's3://{data}/out/dir' {select}")
        list(session.execute(f"CREATE EXTERNAL TABLE d (ip STRING) LOCATION 's3://{data}/out/dir'"))
        assert len(run_sql(session, "SELECT * FROM d")) == len(local_rows(jobs, select))
        message(session, f"CREATE TABLE wh AS {BY_COUNTRY}")
        assert_same(run_sql(session, "SELECT * FROM wh"), want, ordered=False)
    finally:
        session.close()
    assert keys(jobs, "sqlmr/jobs/") == []


@pytest.mark.skipif(not hasattr(aws_fixtures, "iam_account"),
                    reason="needs the IAM-enforced account of aws_fixtures")
def test_an_unreadable_marker_of_another_tool_changes_nothing(request):
    account = request.getfixturevalue("iam_account")
    c = s3()
    c.put_object(Bucket=account.data_bucket, Key="spark/part-00000-1a2b-c000.csv", Body=b"a\n")
    c.put_object(Bucket=account.data_bucket, Key="spark/_SUCCESS", Body=b'{"name": "x"}')
    listed = storage.list_files(f"s3://{account.data_bucket}/spark")
    assert [u.rsplit("/", 1)[1] for u, _ in listed] == ["part-00000-1a2b-c000.csv"]
    # beside files of an sqlmr commit, an unreadable manifest is an error
    c.put_object(Bucket=account.data_bucket, Key="spark/part-00001-0123abcd", Body=b"b\n")
    with pytest.raises(storage.InputError, match="cannot read sqlmr's manifest"):
        storage.list_files(f"s3://{account.data_bucket}/spark")
