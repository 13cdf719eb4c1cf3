"""The Python API (sqlmr.connect): a PEP 249 subset, parameter binding,
con.sql relations with their statistics, and a differential check against DuckDB."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlmr
from sqlmr import cost as costs
from sqlmr import dbapi
from sqlmr.params import bind, literal

from difftest import Tables, assert_same, as_bytes, uservisits_lines, UV_COLUMNS

ROWS = [("a", 1, "2020-01-01", "2020-01-01 10:00:00.5"),
        ("b", 2, "2020-02-29", "2020-02-29 23:59:59"),
        ("c", 3, "2021-12-31", "2021-12-31 00:00:00"),
        ("d", -4, "1999-01-01", "1999-01-01 01:02:03.123456"),
        ("O'Brien", 5, "2000-06-15", "2000-06-15 12:00:00"),
        ("x?y", 6, "2001-01-01", "2001-01-01 00:00:01"),
        ("back\\slash", 7, "2002-02-02", "2002-02-02 02:02:02")]


@pytest.fixture
def con(tmp_path):
    """A connection with table ``t`` (k STRING, n INT, d DATE, ts TIMESTAMP)
    over a tab-separated file of :data:`ROWS`."""
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "part-0").write_text("".join("\t".join(map(str, r)) + "\n" for r in ROWS))
    c = sqlmr.connect(workers=2)
    c.execute(f"CREATE EXTERNAL TABLE t (k STRING, n INT, d DATE, ts TIMESTAMP) "
              f"ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\t' LOCATION '{folder}'")
    yield c
    c.close()


# ----------------------------------------------------------- PEP 249 subset
def test_module_globals():
    for module in (sqlmr, dbapi):
        assert module.apilevel == "2.0"
        assert module.threadsafety == 1
        assert module.paramstyle == "qmark"
        assert callable(module.connect)


def test_exception_hierarchy():
    assert issubclass(sqlmr.Warning, Exception)
    assert issubclass(sqlmr.Error, Exception)
    assert not issubclass(sqlmr.Warning, sqlmr.Error)
    assert issubclass(sqlmr.InterfaceError, sqlmr.Error)
    assert issubclass(sqlmr.DatabaseError, sqlmr.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                 "ProgrammingError", "NotSupportedError"):
        cls = getattr(sqlmr, name)
        assert issubclass(cls, sqlmr.DatabaseError), name
        assert getattr(dbapi.Connection, name) is cls  # the optional Connection.<Error>


def test_type_objects():
    assert sqlmr.STRING == "STRING" and "STRING" == sqlmr.STRING
    assert sqlmr.NUMBER == "INT" and sqlmr.NUMBER == "BIGINT" and sqlmr.NUMBER == "DOUBLE"
    assert sqlmr.DATETIME == "DATE" and sqlmr.DATETIME == "TIMESTAMP"
    assert sqlmr.NUMBER != "STRING" and sqlmr.STRING != "DATE" and sqlmr.BINARY != "STRING"
    assert sqlmr.Date(2020, 1, 2) == dt.date(2020, 1, 2)
    assert sqlmr.TimestampFromTicks(0) == dt.datetime.fromtimestamp(0)


def test_description_rowcount_and_values(con):
    cur = con.cursor()
    cur.execute("SELECT k, n, n * 1.5 AS h, d, ts FROM t ORDER BY n")
    names = [d[0] for d in cur.description]
    codes = [d[1] for d in cur.description]
    assert names == ["k", "n", "h", "d", "ts"]
    assert codes == ["STRING", "INT", "DOUBLE", "DATE", "TIMESTAMP"]
    assert codes[0] == sqlmr.STRING and codes[1] == sqlmr.NUMBER and codes[2] == sqlmr.NUMBER
    assert codes[3] == sqlmr.DATETIME and codes[4] == sqlmr.DATETIME
    assert all(len(d) == 7 and d[2:] == (None,) * 5 for d in cur.description)
    assert cur.rowcount == len(ROWS)           # known before any fetch
    rows = cur.fetchall()
    want = sorted(ROWS, key=lambda r: r[1])
    assert [r[:2] for r in rows] == [r[:2] for r in want]
    assert [r[2] for r in rows] == [r[1] * 1.5 for r in want]
    assert [r[3] for r in rows] == [dt.date.fromisoformat(r[2]) for r in want]
    assert [r[4] for r in rows] == [dt.datetime.fromisoformat(r[3]) for r in want]
    assert all(type(r) is tuple for r in rows)


def test_fetchmany_arraysize_iteration(con):
    cur = con.cursor()
    assert cur.arraysize == 1
    cur.execute("SELECT n FROM t ORDER BY n")
    assert cur.fetchmany() == [(-4,)]            # arraysize rows
    cur.arraysize = 3
    assert cur.fetchmany() == [(1,), (2,), (3,)]
    assert cur.fetchmany(0) == []
    assert cur.fetchone() == (5,)
    assert cur.fetchmany(5) == [(6,), (7,)]       # fewer left than asked
    assert cur.fetchmany(5) == [] and cur.fetchone() is None and cur.fetchall() == []
    cur.execute("SELECT n FROM t ORDER BY n DESC")
    assert [r[0] for r in cur] == [7, 6, 5, 3, 2, 1, -4]
    cur.setinputsizes([None])
    cur.setoutputsize(10)


def test_rows_are_streamed_and_scratch_goes_when_read(con, sqlmr_home):
    jobs = sqlmr_home / "jobs"
    cur = con.cursor()
    cur.execute("SELECT k FROM t")
    assert cur.fetchone() is not None
    assert any(jobs.iterdir())                 # the rest is still read from the job's outputs
    rest = cur.fetchall()
    assert len(rest) == len(ROWS) - 1
    assert not any(p for p in jobs.iterdir() if not p.name.startswith("."))
    rel = con.sql("SELECT n FROM t ORDER BY n")
    rel.show(max_rows=2, file=io.StringIO())   # peeked rows come first, then the stream
    assert [r[0] for r in rel] == [-4, 1, 2, 3, 5, 6, 7]
    assert not any(p for p in jobs.iterdir() if not p.name.startswith("."))


def test_closed_cursor_and_connection(con):
    cur = con.cursor()
    cur.execute("SELECT k FROM t")
    cur.close()
    cur.close()                                # closing twice is fine
    with pytest.raises(sqlmr.InterfaceError):
        cur.fetchone()
    with pytest.raises(sqlmr.InterfaceError):
        cur.execute("SELECT k FROM t")
    other = con.cursor()
    other.execute("SELECT k FROM t")
    con.close()
    con.close()
    for use in (other.fetchall, con.cursor, con.commit, lambda: con.execute("SELECT k FROM t")):
        with pytest.raises(sqlmr.InterfaceError):
            use()


def test_context_manager_closes(tmp_path):
    with sqlmr.connect(home=tmp_path / "h", workers=1) as c:
        assert not c.closed
    assert c.closed


def test_a_script_without_a_main_guard_runs_its_queries_once(tmp_path):
    """A script that queries at top level, with no ``if __name__ ==
    "__main__":`` guard, while another thread runs (so the pool uses a fork
    server): its workers do not run the script again."""
    import subprocess
    import sys
    from pathlib import Path
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "part-0").write_text("".join(f"k{i % 7},{i}\n" for i in range(5000)))
    runs = tmp_path / "runs.txt"
    script = tmp_path / "report.py"
    script.write_text(
        "import threading, time\n"
        "import sqlmr\n"
        "from sqlmr.backends.local import start_method\n"
        f"open({str(runs)!r}, 'a').write('ran\\n')\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "assert start_method() == 'forkserver'\n"
        f"con = sqlmr.connect(home={str(tmp_path / 'home')!r}, workers=2, split_mb=0.01)\n"
        f"con.execute(\"CREATE EXTERNAL TABLE t (k STRING, n INT) ROW FORMAT DELIMITED FIELDS "
        f"TERMINATED BY ',' LOCATION '{folder}'\")\n"
        "print(con.execute('SELECT k, COUNT(*), SUM(n) FROM t GROUP BY k ORDER BY k').fetchall())\n")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 0, r.stderr
    expected = [(f"k{j}", len(range(j, 5000, 7)), sum(range(j, 5000, 7))) for j in range(7)]
    assert r.stdout.strip() == str(expected)
    assert runs.read_text() == "ran\n"


def test_no_result_set_and_statement_messages(con, tmp_path):
    cur = con.cursor()
    cur.execute(f"CREATE TABLE copy LOCATION '{tmp_path / 'copy'}' AS SELECT k, n FROM t")
    assert cur.description is None and cur.rowcount == -1
    assert cur.message.startswith("created table copy") and cur.stats is not None
    with pytest.raises(sqlmr.ProgrammingError, match="no result set"):
        cur.fetchone()
    cur.execute("SELECT COUNT(*) FROM copy")
    assert cur.fetchall() == [(len(ROWS),)]


def test_commit_is_a_no_op_and_rollback_refused(con):
    con.commit()
    with pytest.raises(sqlmr.NotSupportedError, match="rollback"):
        con.rollback()


def test_explain_is_a_result_of_lines(con):
    cur = con.execute("EXPLAIN SELECT k FROM t WHERE n > ?", [2])
    assert [d[0] for d in cur.description] == ["plan"]
    lines = [r[0] for r in cur.fetchall()]
    assert any("Stage" in line for line in lines) and cur.rowcount == len(lines)
    buf = io.StringIO()
    con.sql("EXPLAIN SELECT k FROM t WHERE n > ?", [2]).show(file=buf)
    assert buf.getvalue() == "\n".join(lines) + "\n"
    with pytest.raises(sqlmr.ProgrammingError):
        con.execute("EXPLAIN SELECT k FROM t WHERE k = 'unterminated")


def test_executemany(con):
    cur = con.cursor()
    cur.executemany("SELECT k FROM t WHERE n = ?", [[1], [2], [99]])
    assert cur.rowcount == 2 and cur.description is None


# --------------------------------------------------------------- errors
def test_error_types(con):
    with pytest.raises(sqlmr.ProgrammingError) as e:
        con.execute("SELECT nope FROM t")
    assert "column 'nope' not found" in str(e.value) and e.value.offset == 7
    assert "^" in str(e.value)                  # the line and a caret, as the CLI shows
    with pytest.raises(sqlmr.ProgrammingError, match="table 'missing' does not exist"):
        con.execute("SELECT k FROM missing")
    with pytest.raises(sqlmr.ProgrammingError):
        con.execute("SELEC k FROM t")
    with pytest.raises(sqlmr.ProgrammingError):
        con.execute("SELECT k FROM t WHERE k = 'unterminated")
    with pytest.raises(sqlmr.NotSupportedError, match="not supported yet"):
        con.execute("SELECT k, NTILE(4) OVER (ORDER BY n) FROM t")
    with pytest.raises(sqlmr.ProgrammingError, match="one statement"):
        con.execute("SELECT k FROM t; SELECT n FROM t")
    with pytest.raises(sqlmr.ProgrammingError, match="no statement"):
        con.execute("  -- nothing\n")


def test_strict_malformed_row_is_a_data_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "f").write_text("1\nnot-a-number\n")
    with sqlmr.connect(workers=1, strict=True) as c:
        c.execute(f"CREATE EXTERNAL TABLE bad (n INT) LOCATION '{folder}'")
        with pytest.raises(sqlmr.DataError, match="strict"):
            c.execute("SELECT SUM(n) FROM bad")
    with sqlmr.connect(workers=1) as c:          # without strict: NULL and a count
        rel = c.sql("SELECT SUM(n) FROM bad")
        assert rel.fetchall() == [(1,)] and rel.stats.malformed == 1


def test_an_unreadable_input_is_an_operational_error(tmp_path):
    import gzip
    folder = tmp_path / "z"
    folder.mkdir()
    (folder / "f.gz").write_bytes(gzip.compress(b"1\n2\n" * 1000, mtime=0)[:-20])
    with sqlmr.connect(workers=1) as c:
        c.execute(f"CREATE EXTERNAL TABLE z (n INT) LOCATION '{folder}'")
        with pytest.raises(sqlmr.OperationalError, match="f.gz"):
            c.execute("SELECT SUM(n) FROM z")
        with pytest.raises(sqlmr.ProgrammingError):    # the connection is still usable
            c.execute("SELECT nope FROM z")


def test_settings_and_home(tmp_path, sqlmr_home):
    with pytest.raises(sqlmr.ProgrammingError, match="unknown setting"):
        sqlmr.connect(no_such_setting=1)
    with pytest.raises(sqlmr.ProgrammingError, match="workers"):
        sqlmr.connect(workers=-1)
    with pytest.raises(sqlmr.ProgrammingError, match="backend"):
        sqlmr.connect(backend="cloud")
    own = tmp_path / "own-home"
    data = tmp_path / "d"
    data.mkdir()
    (data / "f").write_text("1\n2\n")
    with sqlmr.connect(home=own, workers=1, strict=True, split_mb=1) as c:
        assert c.settings.strict and c.settings.workers == 1 and c.settings.split_mb == 1.0
        c.execute(f"CREATE EXTERNAL TABLE mine (n INT) LOCATION '{data}'")
        assert c.sql("SELECT SUM(n) FROM mine").fetchall() == [(3,)]
    assert (own / "catalog.json").is_file()
    assert not (sqlmr_home / "catalog.json").exists()   # $SQLMR_HOME untouched
    with sqlmr.connect(workers=1) as c, pytest.raises(sqlmr.ProgrammingError):
        c.execute("SELECT n FROM mine")


# ------------------------------------------------------------ parameters
def test_parameters_of_each_type(con):
    values = [None, True, False, 0, -7, 2**40, 0.1, -2.5, 1e300, 5e-324, decimal.Decimal("-12.50"),
              "", "plain", dt.date(2020, 2, 29), dt.datetime(2021, 3, 4, 5, 6, 7),
              dt.datetime(2021, 3, 4, 5, 6, 7, 890)]
    marks = ", ".join("?" for _ in values)
    row = con.execute(f"SELECT {marks} FROM t LIMIT 1", values).fetchone()
    want = [float(v) if isinstance(v, decimal.Decimal) else v for v in values]
    assert list(row) == want


def test_negative_parameter_next_to_minus_is_not_a_comment(con):
    rows = con.execute("SELECT n-? FROM t WHERE n=? AND k<>?", [-1, 3, "--"]).fetchall()
    assert rows == [(4,)]


def test_parameters_in_where_and_named(con):
    q = "SELECT k FROM t WHERE n BETWEEN ? AND ? AND d >= ? ORDER BY k"
    assert con.execute(q, (2, 6, dt.date(2000, 1, 1))).fetchall() == [("O'Brien",), ("b",),
                                                                       ("c",), ("x?y",)]
    q = "SELECT k FROM t WHERE k = :name OR n = :n OR k = :name"
    assert sorted(con.execute(q, {"name": "back\\slash", "n": 1}).fetchall()) == \
        [("a",), ("back\\slash",)]


def test_question_marks_in_literals_and_comments_are_text(con):
    q = "SELECT k, '?' AS q FROM t /* ? */ WHERE k = ? -- and ?\n ORDER BY k"
    assert con.execute(q, ["x?y"]).fetchall() == [("x?y", "?")]
    assert con.execute("SELECT k FROM t WHERE k = 'x?y'").fetchall() == [("x?y",)]
    assert con.execute("SELECT `k` FROM t WHERE k LIKE '%?%'", ()).fetchall() == [("x?y",)]


def test_wrong_parameters(con):
    for q, p in [("SELECT k FROM t WHERE n = ?", []),
                 ("SELECT k FROM t WHERE n = ?", [1, 2]),
                 ("SELECT k FROM t WHERE n = ?", None),
                 ("SELECT k FROM t", [1]),
                 ("SELECT k FROM t WHERE n = ?", {"n": 1}),
                 ("SELECT k FROM t WHERE n = :n", {"m": 1}),
                 ("SELECT k FROM t WHERE k = ?", "a")]:
        with pytest.raises(sqlmr.ProgrammingError):
            con.execute(q, p)
    for bad in (float("inf"), float("nan"), decimal.Decimal("NaN")):
        with pytest.raises(sqlmr.DataError):
            con.execute("SELECT k FROM t WHERE n = ?", [bad])
    for unsupported in (b"bytes", [1, 2], dt.time(1, 2),
                        dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)):
        with pytest.raises(sqlmr.NotSupportedError):
            con.execute("SELECT k FROM t WHERE n = ?", [unsupported])


HOSTILE = ["'; DROP TABLE t; --", "'", "''", "\\", "\\'", "'\\", "a\\'b", "\\\\'", "\n", "\r\n",
           "\t", "\x00", "\\0", "\\n", "é", "日本語", "😀", "\u2028", "--", "/*", "*/", "?", ":x",
           ";", "\"", "`", "${x}", "%s", "\\u0041", "'||'", "\x1b[31m"]


def _read_back(con, texts):
    marks = ", ".join("?" for _ in texts)
    cur = con.execute(f"SELECT {marks} FROM t WHERE n = 1", texts)
    return list(cur.fetchone()), cur


def test_hostile_strings_read_back(con):
    got, cur = _read_back(con, HOSTILE)
    assert got == HOSTILE
    assert cur.rowcount == 1
    assert con.execute("SELECT COUNT(*) FROM t").fetchall() == [(len(ROWS),)]  # t survived


def test_hostile_strings_read_back_in_the_duckdb_dialect(con):
    with sqlmr.connect(workers=1, dialect="duckdb") as duck_con:
        got, _ = _read_back(duck_con, HOSTILE)
    assert got == HOSTILE


def test_a_dropped_cursor_removes_its_scratch(con, sqlmr_home):
    import gc
    cur = con.execute("SELECT k FROM t")
    assert cur.fetchone() is not None and any((sqlmr_home / "jobs").iterdir())
    del cur
    gc.collect()
    assert not any(p for p in (sqlmr_home / "jobs").iterdir() if not p.name.startswith("."))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=20) | st.sampled_from(HOSTILE)
                      | st.lists(st.sampled_from(HOSTILE + ["a", " "]), max_size=6).map("".join),
                      min_size=1, max_size=6))
def test_any_string_reads_back(con, texts):
    got, _ = _read_back(con, texts)
    assert got == texts


@settings(max_examples=300, deadline=None)
@given(text=st.text(), dialect=st.sampled_from(["hive", "spark", "duckdb", "postgres"]))
def test_a_string_literal_is_one_token_with_the_text(text, dialect):
    import sqlglot
    sql = bind("SELECT ? FROM t WHERE x = ?", [text, text], dialect)
    tree = sqlglot.parse(sql, read=dialect)
    assert len(tree) == 1                                       # no second statement
    literals = [e.this for e in tree[0].find_all(sqlglot.exp.Literal)]
    assert literals == [text, text]
    assert literal(text, dialect).count("?") == text.count("?")


# ---------------------------------------------------------------- con.sql
def test_sql_relation_and_stats(con, tmp_path):
    rel = con.sql("SELECT k, n FROM t WHERE n > ? ORDER BY n", [4])
    assert rel.columns == ["k", "n"] and rel.types == ["STRING", "INT"]
    assert rel.rowcount == 3
    s = rel.stats
    size = sum(len("\t".join(map(str, r)) + "\n") for r in ROWS)
    assert s.bytes_read == size and s.files == 1 and s.rows_read == len(ROWS)
    assert s.map_tasks >= 1 and s.tasks == s.map_tasks + s.reduce_tasks and s.seconds >= 0
    assert s.athena_cost == costs.athena_cost(size) and s.lambda_cost > 0 and not s.billed
    assert s.lines[0].startswith("Time: ") and "read " in s.lines[0]
    assert s.lines[-1].startswith("Cost: Lambda $") and str(s) == "\n".join(s.lines)
    assert s.job.splits == s.splits
    assert rel.fetchone() == ("O'Brien", 5)
    assert rel.fetchall() == [("x?y", 6), ("back\\slash", 7)]


def test_show_prints_the_cli_table_and_keeps_rows(con):
    from sqlmr.cli import print_result
    from sqlmr.session import Session
    q = "SELECT k, n, d FROM t ORDER BY n"
    rel = con.sql(q)
    buf = io.StringIO()
    rel.show(file=buf)
    shown = buf.getvalue()
    session = Session(con.settings.updated(timing=False))
    try:
        result = session.execute_one(q)
        out, err = io.StringIO(), io.StringIO()
        print_result(result, session.settings, None, out, err)
        result.close()
    finally:
        session.close()
    assert shown.startswith(out.getvalue())    # the same table and row count footer
    assert "Time: " in shown and "Cost: " in shown
    assert len(rel.fetchall()) == len(ROWS)    # show() left every row to fetch
    small = io.StringIO()
    con.sql(q).show(max_rows=2, file=small)
    assert "(7 rows, first 2 shown)" in small.getvalue()


def test_df_needs_pandas(con):
    rel = con.sql("SELECT k, n FROM t ORDER BY n")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            rel.df()
    else:
        frame = rel.df()
        assert list(frame.columns) == ["k", "n"] and len(frame) == len(ROWS)


def test_df_matches_rows():
    pandas = pytest.importorskip("pandas")
    with sqlmr.connect(workers=1) as c:
        rel = c.sql("SELECT pageRank FROM rankings ORDER BY pageRank DESC LIMIT 3")
        want = c.sql("SELECT pageRank FROM rankings ORDER BY pageRank DESC LIMIT 3").fetchall()
        assert isinstance(rel.df(), pandas.DataFrame)
        assert [tuple(r) for r in c.sql("SELECT pageRank FROM rankings ORDER BY pageRank "
                                         "DESC LIMIT 3").df().itertuples(index=False)] == want


# ----------------------------------------------------------- differential
def test_group_by_through_the_api_equals_duckdb(tmp_path, session):
    pytest.importorskip("duckdb")
    tables = Tables(session, tmp_path)
    tables.add("uv", UV_COLUMNS, {"a.csv": as_bytes(uservisits_lines(700, 1, nulls=0.05)),
                                  "b.csv": as_bytes(uservisits_lines(500, 2, nulls=0.05))})
    q = ("SELECT countryCode, COUNT(*) AS c, SUM(adRevenue) AS s, AVG(duration) AS a, "
         "MIN(visitDate) AS m FROM uv WHERE duration > ? AND searchWord <> ? "
         "GROUP BY countryCode")
    params = [3, "O'Brien"]
    with sqlmr.connect(workers=2, reducers=3) as c:
        got = [list(r) for r in c.execute(q, params).fetchall()]
    want = [list(r) for r in tables.con.execute(q, params).fetchall()]
    assert_same(got, want, ordered=False)
    assert len(got) > 3
