"""Python scalar UDFs: CREATE [TEMPORARY] FUNCTION … USING FILE, called per row
in the tasks, the file shipped and sha256-checked; answers compared with the
same function applied in plain Python."""

from __future__ import annotations

import hashlib
import json
import random
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: F401  (Lambda test)
from compiler.errors import SqlError, UnsupportedError
from runtime import udfs as runtime_udfs
from sqlmr.backends import TaskFailedError
from sqlmr.config import Settings
from sqlmr.session import Session
from statements import rows_of

UDFS = textwrap.dedent('''\
    import re

    _HOST = re.compile(r"^[a-z]+://([^/:]+)")


    def url_host(u: str) -> str:
        if u is None:
            return "<null>"
        m = _HOST.match(u)
        return m.group(1) if m else None


    def twice(n) -> int:
        return None if n is None else 2 * n


    def untyped(n):
        return n


    def explode(u):
        if u.endswith("/boom"):
            raise ValueError("cannot handle " + u)
        return u
    ''')


def host_of(u):
    """The oracle: url_host in plain Python."""
    if u is None:
        return "<null>"
    if "://" not in u:
        return None
    rest = u.split("://", 1)[1]
    return rest.split("/", 1)[0].split(":", 1)[0]


NULL = "\\N"


def make_rows(seed: int, n: int) -> list[tuple[str | None, int | None]]:
    rnd = random.Random(seed)
    hosts = ["a.com", "b.org", "c.net:8080", "d.io"]
    rows = []
    for _ in range(n):
        r = rnd.random()
        url = None if r < 0.1 else ("no-scheme" if r < 0.2 else
                                    f"http://{rnd.choice(hosts)}/p{rnd.randint(0, 9)}")
        rows.append((url, None if rnd.random() < 0.1 else rnd.randint(-50, 50)))
    return rows


def write_table(folder: Path, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for i, part in enumerate((rows[:half], rows[half:])):
        (folder / f"part-{i}").write_text("".join(
            f"{NULL if u is None else u},{NULL if n is None else n}\n" for u, n in part))


@pytest.fixture
def work(tmp_path):
    (tmp_path / "udfs.py").write_text(UDFS)
    rows = make_rows(1, 400)
    write_table(tmp_path / "t", rows)
    s = Session(Settings(workers=2, split_mb=0.002, reducers=2))
    s.base_dir = str(tmp_path)
    list(s.execute("CREATE EXTERNAL TABLE t (u STRING, n INT) ROW FORMAT DELIMITED "
                   "FIELDS TERMINATED BY ',' LOCATION 't'"))
    yield s, rows, tmp_path
    s.close()


def expected_hosts(rows) -> list[list]:
    counts = Counter(host_of(u) for u, _ in rows)
    sums: dict = {}
    for u, n in rows:
        if n is not None:
            sums[host_of(u)] = sums.get(host_of(u), 0) + 2 * n
    return sorted(([h, c, sums.get(h)] for h, c in counts.items()),
                  key=lambda r: (r[0] is not None, r[0] or ""))


GROUPED = ("SELECT url_host(u) h, COUNT(*) c, SUM(twice(n)) s FROM t "
           "GROUP BY url_host(u) ORDER BY h")


def test_a_temporary_udf_groups_like_python(work):
    s, rows, _ = work
    made = list(s.execute("CREATE TEMPORARY FUNCTION url_host AS 'udfs.url_host' USING FILE 'udfs.py';"
                          "CREATE TEMPORARY FUNCTION twice AS 'udfs.twice' USING FILE 'udfs.py'"))
    assert made[1].message.startswith("created temporary function twice (scalar, returns BIGINT): "
                                      "udfs.twice from ")
    got = rows_of(s, GROUPED)
    assert got == expected_hosts(rows)
    # the declared types travel through the plan: twice() is a BIGINT summed as one
    res = list(s.execute("SELECT twice(n) + 1, url_host(u) FROM t LIMIT 1"))[-1]
    assert res.types == ["bigint", "string"]
    res.close()


def test_a_permanent_udf_is_in_the_catalog_with_its_file_hash(work, sqlmr_home):
    s, rows, tmp = work
    rows_of(s, "CREATE FUNCTION url_host AS 'udfs.url_host' USING FILE 'udfs.py'")
    doc = json.loads((sqlmr_home / "catalog.json").read_text())
    entry = doc["functions"]["url_host"]
    assert entry["path"] == str(tmp / "udfs.py")
    assert entry["sha256"] == hashlib.sha256(UDFS.encode()).hexdigest()
    assert entry["returns"] == "string"
    # another session sees it; SHOW FUNCTIONS lists it
    other = Session(Settings(workers=2))
    try:
        got = rows_of(other, "SELECT url_host(u) h, COUNT(*) FROM t GROUP BY url_host(u)")
        assert sorted(got, key=repr) == sorted(
            ([h, c] for h, c in Counter(host_of(u) for u, _ in rows).items()), key=repr)
        shown = rows_of(other, "SHOW FUNCTIONS")
        assert [(r[0], r[1], r[5]) for r in shown] == [("url_host", "STRING", "permanent")]
        rows_of(other, "DROP FUNCTION url_host")
    finally:
        other.close()
    assert rows_of(s, "SHOW FUNCTIONS") == []
    with pytest.raises(SqlError, match="not supported yet: function URL_HOST"):
        rows_of(s, "SELECT url_host(u) FROM t")


def test_drop_temporary_function_and_show(work):
    s, _, _ = work
    rows_of(s, "CREATE TEMPORARY FUNCTION twice AS 'udfs.twice' USING FILE 'udfs.py'")
    assert [r[0] for r in rows_of(s, "SHOW FUNCTIONS")] == ["twice"]
    rows_of(s, "DROP TEMPORARY FUNCTION twice")
    assert rows_of(s, "SHOW FUNCTIONS") == []
    with pytest.raises(SqlError, match="does not exist"):
        rows_of(s, "DROP TEMPORARY FUNCTION twice")
    rows_of(s, "DROP TEMPORARY FUNCTION IF EXISTS twice")


def test_return_types_returns_clause_annotation_default(work):
    s, rows, _ = work
    rows_of(s, "CREATE TEMPORARY FUNCTION a AS 'udfs.untyped' USING FILE 'udfs.py' RETURNS BIGINT;"
               "CREATE TEMPORARY FUNCTION b AS 'udfs.twice' USING FILE 'udfs.py';"
               "CREATE TEMPORARY FUNCTION c AS 'udfs.untyped' USING FILE 'udfs.py'")
    shown = {r[0]: r[1] for r in rows_of(s, "SHOW FUNCTIONS")}
    assert shown == {"a": "BIGINT", "b": "BIGINT", "c": "STRING"}
    got = rows_of(s, "SELECT SUM(a(n)), SUM(b(n)) FROM t")
    total = sum(n for _, n in rows if n is not None)
    assert got == [[total, 2 * total]]


def test_the_driver_never_runs_the_file(tmp_path):
    """Creating, planning and explaining never import the module: a file whose
    import would write a marker leaves none."""
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n\ndef f(x) -> int:\n    return 1\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "p").write_text("a,1\n")
    s = Session(Settings(workers=1))
    s.base_dir = str(tmp_path)
    try:
        rows_of(s, "CREATE EXTERNAL TABLE t (u STRING, n INT) ROW FORMAT DELIMITED "
                   "FIELDS TERMINATED BY ',' LOCATION 't';"
                   "CREATE TEMPORARY FUNCTION f AS 'evil.f' USING FILE 'evil.py'")
        msg = list(s.execute("EXPLAIN SELECT f(u) x FROM t ORDER BY x"))[-1].message
        assert "Stage-1" in msg
        code = list(s.execute("EXPLAIN CODE SELECT f(u) x FROM t ORDER BY x"))[-1].message
        assert "_Udf('f', 'evil', 'f'" in code
        assert not marker.exists()
        # the tasks do run it (in their worker processes)
        assert rows_of(s, "SELECT f(u) x FROM t ORDER BY x") == [[1]]
        assert marker.exists()
    finally:
        s.close()


def test_a_raising_udf_reports_the_users_traceback_and_the_row(tmp_path):
    (tmp_path / "udfs.py").write_text(UDFS)
    (tmp_path / "t").mkdir()
    lines = ["http://a.com/1,1", "http://a.com/2,2", "http://b.org/boom,3", "http://c/4,4"]
    (tmp_path / "t" / "p").write_text("".join(l + "\n" for l in lines))
    s = Session(Settings(workers=1))
    s.base_dir = str(tmp_path)
    try:
        rows_of(s, "CREATE EXTERNAL TABLE t (u STRING, n INT) ROW FORMAT DELIMITED "
                   "FIELDS TERMINATED BY ',' LOCATION 't';"
                   "CREATE TEMPORARY FUNCTION crash AS 'udfs.explode' USING FILE 'udfs.py'")
        with pytest.raises(TaskFailedError) as info:
            rows_of(s, "SELECT crash(u) FROM t")
    finally:
        s.close()
    msg = info.value.message
    offset = sum(len(l) + 1 for l in lines[:2])
    assert f"on the row of file://{tmp_path}/t/p at byte {offset}" in msg
    assert 'File "udfs.py", line' in msg and "in explode" in msg
    assert "ValueError: cannot handle http://b.org/boom" in msg


def test_a_file_changed_after_create_function_is_refused(work):
    s, _, tmp = work
    rows_of(s, "CREATE TEMPORARY FUNCTION twice AS 'udfs.twice' USING FILE 'udfs.py'")
    (tmp / "udfs.py").write_text(UDFS.replace("2 * n", "3 * n"))
    with pytest.raises(SqlError, match="changed since the function was created"):
        rows_of(s, "SELECT twice(n) FROM t")


def test_a_shipped_file_altered_in_transit_fails_the_task(tmp_path):
    """The task checks the sha256 the event names against what it fetches."""
    f = tmp_path / "m.py"
    f.write_text("def g(x):\n    return x\n")
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_text("def g(x):\n    return 'tampered'\n")
    files = [{"name": "m.py", "uri": f.as_uri(), "sha256": good}]
    with pytest.raises(runtime_udfs.FileMismatchError, match="task expects"):
        runtime_udfs.files_dir(files)


@pytest.mark.parametrize("statement, error", [
    ("CREATE TEMPORARY FUNCTION f AS 'udfs.nope' USING FILE 'udfs.py'",
     "defines no top-level function 'nope'"),
    ("CREATE TEMPORARY FUNCTION f AS 'other.twice' USING FILE 'udfs.py'",
     "must name a function of the file"),
    ("CREATE TEMPORARY FUNCTION f AS 'missing.f' USING FILE 'missing.py'", "cannot read"),
    ("CREATE TEMPORARY FUNCTION upper AS 'udfs.twice' USING FILE 'udfs.py'",
     "built-in function"),
    ("CREATE TEMPORARY FUNCTION f AS 'udfs.twice' USING JAR 'x.jar'", "not supported yet"),
])
def test_bad_create_function_statements_are_clear_errors(work, statement, error):
    s, _, _ = work
    with pytest.raises((SqlError, UnsupportedError), match=error):
        rows_of(s, statement)


def test_a_udf_on_lambda_gives_the_local_answers(tmp_path, monkeypatch, request):
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    aws = request.getfixturevalue
    """The lambda backend (moto S3, the real package run in subprocesses) ships
    the file to the job bucket next to the job code and answers as locally."""
    import boto3
    from aws_fixtures import run_lambda_locally
    from sqlmr.aws import deploy
    aws("aws_reset")
    bucket = aws("s3_bucket")
    run_lambda_locally(monkeypatch, bucket)
    (tmp_path / "udfs.py").write_text(UDFS)
    rows = make_rows(2, 300)
    write_table(tmp_path / "t", rows)
    s3 = boto3.client("s3", region_name="us-east-1")
    for p in (tmp_path / "t").iterdir():
        s3.put_object(Bucket=bucket, Key=f"data/t/{p.name}", Body=p.read_bytes())
    setup = ("CREATE EXTERNAL TABLE IF NOT EXISTS t (u STRING, n INT) ROW FORMAT DELIMITED "
             f"FIELDS TERMINATED BY ',' LOCATION 's3://{bucket}/data/t';"
             "CREATE TEMPORARY FUNCTION url_host AS 'udfs.url_host' USING FILE 'udfs.py';"
             "CREATE TEMPORARY FUNCTION twice AS 'udfs.twice' USING FILE 'udfs.py'")
    answers = []
    try:
        for settings in (Settings(workers=2, split_mb=0.002, reducers=2),
                         Settings(backend="lambda", split_mb=0.002, reducers=2,
                                  keep_scratch=True)):
            s = Session(settings)
            s.base_dir = str(tmp_path)
            try:
                rows_of(s, setup)
                answers.append(rows_of(s, GROUPED))
            finally:
                s.close()
    finally:
        deploy.forget_deployments()
    assert answers[0] == answers[1] == expected_hosts(rows)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="sqlmr/jobs/")
            .get("Contents", [])]
    sha = hashlib.sha256(UDFS.encode()).hexdigest()
    assert any(k.endswith(f"/files/{sha}/udfs.py") for k in keys)
    assert any(k.endswith("/job.py") for k in keys)


# ------------------------------------------------------- con.create_function

def test_create_function_ships_a_top_level_function(tmp_path, monkeypatch):
    import sqlmr
    (tmp_path / "helpers_udf.py").write_text(
        "def label(n: int) -> str:\n    return None if n is None else ('neg' if n < 0 else 'pos')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import helpers_udf
    rows = make_rows(3, 200)
    write_table(tmp_path / "t", rows)
    con = sqlmr.connect(home=str(tmp_path / "home"))
    try:
        con.execute("CREATE EXTERNAL TABLE t (u STRING, n INT) ROW FORMAT DELIMITED "
                    f"FIELDS TERMINATED BY ',' LOCATION '{tmp_path / 't'}'")
        con.create_function("label", helpers_udf.label)
        got = con.execute("SELECT label(n) l, COUNT(*) FROM t GROUP BY label(n)").fetchall()
    finally:
        con.close()
    want = Counter(helpers_udf.label(n) for _, n in rows)
    assert sorted(got, key=repr) == sorted(want.items(), key=repr)


def _nested():
    def inner(x):
        return x
    return inner


@pytest.mark.parametrize("fn, why", [
    (lambda x: x, "a lambda"),
    (_nested(), "nested"),
    (len, "not a Python function"),
])
def test_create_function_refuses_what_cannot_be_shipped(fn, why, tmp_path):
    import sqlmr
    con = sqlmr.connect(home=str(tmp_path / "home"))
    try:
        with pytest.raises(sqlmr.NotSupportedError, match=why):
            con.create_function("f", fn)
    finally:
        con.close()


def test_create_function_refuses_a_function_from_python_c(tmp_path):
    import subprocess
    import sys
    code = ("import sqlmr\ndef f(x):\n    return x\n"
            f"con = sqlmr.connect(home={str(tmp_path)!r})\n"
            "try:\n    con.create_function('f', f)\n"
            "except sqlmr.NotSupportedError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[1]), timeout=120)
    assert "not defined in a .py file" in out.stdout, out.stderr


def test_a_task_refuses_a_shipped_file_altered_after_upload(tmp_path):
    """The whole task path: a job calling a UDF, its file altered where the
    driver uploaded it; the task fails before running any row."""
    import uuid

    from compiler.job import compile_select
    from compiler.schema import Column, Table
    from compiler.udfs import Udf
    from runtime import events, handler, storage
    src = f"# {uuid.uuid4().hex}\ndef g(x) -> int:\n    return 1\n".encode()
    sha = hashlib.sha256(src).hexdigest()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "p").write_text("a\nb\n")
    table = Table("t", [Column("u", "string")], (tmp_path / "t").as_uri())
    udf = Udf("g", "m", "g", str(tmp_path / "m.py"), sha, "bigint")
    job = compile_select("SELECT g(u) FROM t", {"t": table}, functions={"g": udf})
    code_uri = (tmp_path / "job.py").as_uri()
    storage.write_bytes(code_uri, job.source.encode())
    shipped = tmp_path / "files" / "m.py"
    shipped.parent.mkdir()
    shipped.write_bytes(src.replace(b"return 1", b"return 2"))
    event = events.map_event(
        job="j", stage=1, task=0, partitions=0, work=tmp_path.as_uri() + "/",
        input={"splits": [{"uri": (tmp_path / "t" / "p").as_uri(), "start": 0, "end": 4}]},
        code={"uri": code_uri, "sha256": job.sha256,
              "files": [{"name": "m.py", "uri": shipped.as_uri(), "sha256": sha}]},
        entry=job.stages[0].map_entry)
    with pytest.raises(runtime_udfs.FileMismatchError, match="the task expects"):
        handler.handle(event)
    shipped.write_bytes(src)   # the file as created: the same task runs
    assert handler.handle(event)["rows_out"] == 2
