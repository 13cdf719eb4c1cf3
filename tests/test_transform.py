"""Hive's SELECT TRANSFORM … USING 'command' AS (…): rows through a user's
script in the tasks, compared with the same computation in plain Python."""

from __future__ import annotations

import random
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: F401  (Lambda test)
from compiler.errors import SqlError, UnsupportedError
from sqlmr.backends import TaskFailedError
from sqlmr.config import Settings
from sqlmr.session import Session
from statements import rows_of

# a url_count-like script: one output row per link found in a document line
URL_COUNT = textwrap.dedent('''\
    import re
    import sys

    LINK = re.compile(r'href="([^"]+)"')
    for line in sys.stdin:
        page, _, body = line.rstrip("\\n").partition("\\t")
        for dest, n in sorted(__import__("collections").Counter(LINK.findall(body)).items()):
            print(f"{page}\\t{dest}\\t{n}")
    ''')


def documents(seed: int, n: int) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    pages = [f"page{i}.html" for i in range(30)]
    docs = []
    for i in range(n):
        links = " ".join(f'<a href="{rnd.choice(pages)}">x</a>' for _ in range(rnd.randint(0, 6)))
        docs.append((f"doc{i}.html", f"<p>{links} text</p>"))
    return docs


def oracle(docs) -> list[list]:
    """destPage, SUM(cnt) in plain Python."""
    import re
    total: Counter = Counter()
    for _, body in docs:
        total.update(re.findall(r'href="([^"]+)"', body))
    return sorted([d, n] for d, n in total.items())


@pytest.fixture
def work(tmp_path):
    docs = documents(5, 300)
    (tmp_path / "docs").mkdir()
    for i, part in enumerate((docs[:150], docs[150:])):
        (tmp_path / "docs" / f"part-{i}").write_text("".join(f"{p}\t{b}\n" for p, b in part))
    (tmp_path / "url_count.py").write_text(URL_COUNT)
    s = Session(Settings(workers=2, split_mb=0.004, reducers=2))
    s.base_dir = str(tmp_path)
    rows_of(s, "CREATE EXTERNAL TABLE pages (page STRING, body STRING) ROW FORMAT "
               "DELIMITED FIELDS TERMINATED BY '\\t' LOCATION 'docs'")
    yield s, docs, tmp_path
    s.close()


Q4 = ("SELECT destPage, SUM(cnt) FROM (SELECT TRANSFORM (page, body) "
      "USING 'python3 url_count.py' AS (sourcePage, destPage, cnt INT) FROM pages) t "
      "GROUP BY destPage ORDER BY destPage")


def test_transform_in_a_derived_table_under_group_by(work, sqlmr_home):
    s, docs, _ = work
    assert rows_of(s, Q4) == oracle(docs)
    # the command's output lives until the next statement (or the session's end)
    jobs = sqlmr_home / "jobs"
    assert [p.name for p in jobs.iterdir() if p.name.startswith("transform-")]
    rows_of(s, "SHOW TABLES")
    assert not [p.name for p in jobs.iterdir() if p.name.startswith("transform-")]


def test_transform_alone_types_its_columns(work):
    s, docs, _ = work
    res = list(s.execute("SELECT TRANSFORM (page, body) USING 'python3 url_count.py' "
                         "AS (sourcePage, destPage, cnt INT) FROM pages"))[-1]
    got = [list(r) for r in res.rows]
    assert res.types == ["string", "string", "int"]
    res.close()
    assert sum(r[2] for r in got) == sum(n for _, n in oracle(docs))
    assert {r[0] for r in got} <= {p for p, _ in docs}


def test_transform_with_a_where_and_ctas(work):
    s, docs, tmp = work
    rows_of(s, "CREATE TABLE links AS SELECT TRANSFORM (page, body) "
               "USING 'python3 url_count.py' AS (sourcePage, destPage, cnt INT) "
               "FROM pages WHERE page LIKE 'doc1%'")
    got = rows_of(s, "SELECT destPage, SUM(cnt) FROM links GROUP BY destPage ORDER BY destPage")
    assert got == oracle([d for d in docs if d[0].startswith("doc1")])


def test_add_file_ships_a_script_from_elsewhere(work, tmp_path_factory):
    s, docs, _ = work
    other = tmp_path_factory.mktemp("scripts")
    (other / "rows.py").write_text("import sys\nfor l in sys.stdin:\n    print('x')\n")
    with pytest.raises(SqlError, match="not beside the query"):   # named before any task runs
        rows_of(s, "SELECT TRANSFORM (page) USING 'python3 rows.py' AS (a) FROM pages")
    rows_of(s, f"ADD FILE {other / 'rows.py'}")
    assert rows_of(s, "SELECT COUNT(*) FROM (SELECT TRANSFORM (page) USING 'python3 rows.py' "
                      "AS (a) FROM pages) t") == [[len(docs)]]


def script(tmp: Path, name: str, body: str) -> None:
    (tmp / name).write_text(textwrap.dedent(body))


def test_a_failing_script_fails_the_task_with_its_stderr(work):
    s, _, tmp = work
    script(tmp, "fail.py", """\
        import sys
        sys.stdin.read()
        print("something went wrong in fail.py", file=sys.stderr)
        sys.exit(1)
        """)
    with pytest.raises(TaskFailedError) as info:
        rows_of(s, "SELECT TRANSFORM (page) USING 'python3 fail.py' AS (a) FROM pages")
    assert "exited with status 1" in info.value.message
    assert "something went wrong in fail.py" in info.value.message


def test_a_script_printing_nothing_gives_no_rows(work):
    s, _, tmp = work
    script(tmp, "quiet.py", "import sys\nsys.stdin.read()\n")
    assert rows_of(s, "SELECT TRANSFORM (page) USING 'python3 quiet.py' AS (a, b) "
                      "FROM pages") == []


def test_short_and_long_rows_and_nulls_as_hive(work):
    """Too few fields: NULLs; too many: cut; \\N in and out is NULL."""
    s, docs, tmp = work
    script(tmp, "shape.py", """\
        import sys
        for i, line in enumerate(sys.stdin):
            f = line.rstrip("\\n").split("\\t")
            if i % 3 == 0:
                print(f[0])                                 # too few
            elif i % 3 == 1:
                print("\\t".join([f[0], f[1], "x", "extra"]))  # too many
            else:
                print("\\t".join([f[0], "\\\\N", f[1]]))
        """)
    got = rows_of(s, "SELECT TRANSFORM (page, NULL) USING 'python3 shape.py' AS (a, b, c) "
                     "FROM pages")
    assert len(got) == len(docs)
    assert {r[0] for r in got} == {p for p, _ in docs}
    # every second field was a NULL going in (\\N) and comes back as one
    assert all(r[1] is None for r in got)
    shapes = Counter((r[2] is None) for r in got)
    assert shapes[False] == sum(1 for r in got if r[2] == "x")


def test_large_output_does_not_deadlock(work):
    """The script writes far more than a pipe holds before it reads an input
    that is also more than a pipe holds: feeding stdin before reading stdout
    (or the reverse) would wait forever."""
    s, docs, tmp = work
    script(tmp, "flood.py", """\
        import sys
        for i in range(30000):   # ~1.4 MB: far more than a pipe's 64 KB
            sys.stdout.write(f"pre{i}\\t{'y' * 40}\\n")
        n = sum(1 for _ in sys.stdin)
        print(f"seen\\t{n}")
        """)
    s.settings.split_mb = 0   # one task per file
    got = rows_of(s, "SELECT a, COUNT(*), SUM(CAST(b AS INT)) FROM (SELECT TRANSFORM (RPAD(body, 2000, 'z')) "
                     "USING 'python3 flood.py' AS (a, b) FROM pages) t "
                     "WHERE a = 'seen' OR a = 'pre7' GROUP BY a ORDER BY a")
    tasks = got[0][1]
    assert 1 <= tasks <= 2
    assert got == [["pre7", tasks, None], ["seen", tasks, len(docs)]]


@pytest.mark.parametrize("sql, error", [
    ("SELECT TRANSFORM (page) USING 'cat' FROM pages", "TRANSFORM without AS"),
    ("SELECT TRANSFORM (page) USING 'cat' AS (a) FROM pages ORDER BY a",
     "ORDER in a TRANSFORM query"),
    ("EXPLAIN SELECT TRANSFORM (page) USING 'cat' AS (a) FROM pages",
     "EXPLAIN of a TRANSFORM query"),
    # a script the task would not have is named before any task runs
    ("SELECT TRANSFORM (page) USING 'python3 missing_script.py' AS (a) FROM pages",
     r"names missing_script.py, which is not beside the query .* and was not added"),
])
def test_unsupported_transform_shapes_are_clear_errors(work, sql, error):
    s, _, _ = work
    with pytest.raises((SqlError, UnsupportedError), match=error):
        rows_of(s, sql)


def test_transform_on_lambda_gives_the_local_answer(tmp_path, monkeypatch, request):
    """moto S3 and the real package in subprocesses: the script ships to the
    job bucket, runs in the task, and the answer is the local one."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    import boto3
    from aws_fixtures import run_lambda_locally
    from sqlmr.aws import deploy
    request.getfixturevalue("aws_reset")
    bucket = request.getfixturevalue("s3_bucket")
    run_lambda_locally(monkeypatch, bucket)
    docs = documents(6, 120)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key="data/docs/part-0",
                  Body="".join(f"{p}\t{b}\n" for p, b in docs).encode())
    (tmp_path / "url_count.py").write_text(URL_COUNT)
    s = Session(Settings(backend="lambda", split_mb=0.002, reducers=2))
    s.base_dir = str(tmp_path)
    try:
        rows_of(s, "CREATE EXTERNAL TABLE pages (page STRING, body STRING) ROW FORMAT "
                   f"DELIMITED FIELDS TERMINATED BY '\\t' LOCATION 's3://{bucket}/data/docs'")
        got = rows_of(s, Q4)
    finally:
        s.close()
        deploy.forget_deployments()
    assert got == oracle(docs)
