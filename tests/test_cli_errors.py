"""Bad invocations of the sqlmr command: never a traceback, the right exit
status (2 usage, 1 query), and a message that names the problem.  Usage errors
are found before any work: the statement given would write a folder, and it
must not exist afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import sqlmr

ROWS = "a,1,2\nb,x,4\nc,5,6\n"     # row 2's INT field is malformed (byte offset 6)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    data = tmp_path / "small"
    data.mkdir()
    (data / "part-0.csv").write_text(ROWS)
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE t (s STRING, i INT, j INT) LOCATION '{data}'")
    assert r.returncode == 0, r.stderr
    return tmp_path


def check(r, code: int, *needles: str) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


USAGE = [
    (["--max-rows", "-5"], "max_rows must be 0 or more"),
    (["--workers", "0"], "argument --workers: must be more than 0"),
    (["--workers", "-1"], "argument --workers: must be more than 0"),
    (["--workers", "two"], "workers needs a whole number, not 'two'"),
    (["--reducers", "-3"], "argument --reducers: must be more than 0"),
    (["--split-mb", "-1"], "argument --split-mb: must be more than 0"),
    (["--split-mb", "nan"], "split_mb needs a finite number"),
    (["--memory", "0"], "memory_mb must be in 128–10240"),
    (["--dialect", "foo"], "Unknown dialect 'foo'"),
    (["-o", "/nonexistent/dir/out.csv"], "folder /nonexistent/dir does not exist"),
    (["-o", "{tmp}"], "is a folder; name a file"),
    (["-o", "{tmp}/out.dat"], "cannot tell the format of --output {tmp}/out.dat"),
]


@pytest.mark.parametrize("args,message", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_exit_2_before_any_work(small, args, message):
    ran = small / "ran"
    args = [a.format(tmp=small) for a in args]
    r = sqlmr(*args, "-e", f"INSERT OVERWRITE DIRECTORY '{ran}' SELECT s FROM t")
    check(r, 2, message.format(tmp=small))
    assert not ran.exists()


def test_bad_config_value_names_file_key_and_value(small, sqlmr_home):
    (sqlmr_home / "config").write_text("# mine\nworkers = abc\n")
    r = sqlmr("-e", "SELECT s FROM t")
    check(r, 2, f"{sqlmr_home / 'config'} line 2 (workers = abc): "
                "workers needs a whole number, not 'abc'")
    assert "invalid literal" not in r.stderr
    (sqlmr_home / "config").write_text("memory_mb = 0\n")
    check(sqlmr("-e", "SELECT s FROM t"), 2, "memory_mb must be in 128–10240")


QUERY = [
    ("SET workers = -1; SELECT s FROM t", "workers must be 0 or more (0 = one per core), not -1"),
    ("SET max_rows = lots", "max_rows needs a whole number, not 'lots'"),
    ("SET dialect = foo", "Unknown dialect 'foo'"),
    ("WITH RECURSIVE a AS (SELECT s FROM t) SELECT * FROM a", "not supported yet: WITH RECURSIVE"),
    ("SELECT s FROM t INTERSECT ALL SELECT s FROM t", "not supported yet: INTERSECT ALL"),
    ("SELEC x;", "syntax error: 'SELEC' does not start a statement sqlmr knows"),
    ("SELECT CONCAT_WS('-', s, i) FROM t", "CONCAT_WS takes text: argument 3 is INT (write CAST(… AS STRING))"),
    ("SELECT CONCAT_WS('-') FROM t", "CONCAT_WS needs a separator and at least one string"),
    ("SELECT * FROM read_parquet('x.parquet')",
     "not supported yet: table functions in FROM (read_parquet("),
    ("SELECT * FROM (SELECT * FROM read_parquet('x.parquet')) q",
     "table functions in FROM (read_parquet("),
    ("SELECT * FROM read_csv('nowhere/*.csv')", "no file matches nowhere/*.csv"),
    ("SELECT * FROM read_csv('x.csv', headr => true)", "unknown read_csv option 'headr'"),
]


@pytest.mark.parametrize("sql,message", QUERY, ids=[q for q, _ in QUERY])
def test_query_errors_exit_1_with_a_message(small, sql, message):
    r = sqlmr("-e", sql)
    check(r, 1, message)
    assert "does not exist" not in r.stderr and "ALIAS" not in r.stderr


SUBQUERIES = [   # what is not a conjunct of WHERE, and NOT IN
    ("SELECT s FROM t x WHERE x.i = 1 OR EXISTS (SELECT 1 FROM t y WHERE y.i = x.j)",
     "hint: a join in FROM does the same: … FROM t JOIN (SELECT DISTINCT k FROM u) s ON t.k = s.k"),
    ("SELECT s FROM t WHERE i < 0 OR i IN (SELECT COALESCE(j, 0) FROM t)", "FROM t JOIN (SELECT DISTINCT k FROM u) s"),
    ("SELECT s FROM t x WHERE x.i = 1 OR NOT EXISTS (SELECT 1 FROM t y WHERE y.i = x.j)",
     "LEFT JOIN (SELECT DISTINCT k FROM u) s ON t.k = s.k WHERE s.k IS NULL"),
    ("SELECT s FROM t WHERE i < 0 OR i NOT IN (SELECT j FROM t)", "NOT IN also keeps no row when u.k holds a NULL"),
    ("SELECT s FROM t x JOIN t y ON x.i = y.j AND y.s IN (SELECT s FROM t)", "FROM t JOIN (SELECT DISTINCT k FROM u) s"),
]


@pytest.mark.parametrize("sql,hint", SUBQUERIES, ids=[q for q, _ in SUBQUERIES])
def test_a_subquery_outside_a_where_conjunct_is_refused_with_the_join_that_does_it(small, sql, hint):
    r = sqlmr("-e", sql)
    check(r, 1, "error: not supported yet: subqueries outside FROM", hint)
    assert "unknown table" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[1].index("^") - len("LINE 1: ") == sql.index("(SELECT")


def test_a_scalar_subquery_that_may_return_many_rows_is_refused(small):
    sql = "SELECT s, (SELECT i FROM t) FROM t"
    r = sqlmr("-e", sql)
    check(r, 1, "not supported yet: a scalar subquery other than an aggregate without GROUP BY "
                "(one that always returns one row)")
    assert r.stderr.splitlines()[1].index("^") - len("LINE 1: ") == sql.index("(SELECT")


def test_an_unsupported_aggregate_is_named_as_written(small):
    check(sqlmr("-e", "SELECT percentile_approx(i, 0.5) FROM t"), 1,
          "not supported yet: aggregate function PERCENTILE_APPROX()")


def test_caret_points_at_the_unknown_statement_word(small):
    r = sqlmr("--no-timing", "-e", "SELECT s FROM t;\n  SELEC x;")
    lines = r.stderr.splitlines()
    assert lines[0] == "LINE 2:   SELEC x;"
    assert lines[1].index("^") == lines[0].index("SELEC")


@pytest.mark.parametrize("command", ["\\d t", "\\dt", ".tables"])
def test_a_repl_command_in_a_script_says_what_sql_does_it(small, command):
    """A script piped in (as psql's users do) runs SQL: a REPL command there is
    named, with the SQL that does the same, after the statements before it ran."""
    r = sqlmr("--no-timing", stdin=f"SELECT COUNT(*) FROM t;\n{command}\n")
    check(r, 1, f"error: '{command.split()[0]}' is a command of the interactive REPL; "
                "a script or -e runs SQL only", "DESCRIBE TABLE (\\d TABLE), SHOW TABLES (\\dt)")
    assert "|          3 |" in r.stdout   # the SELECT before it ran
    lines = r.stderr.splitlines()
    assert lines[0] == f"LINE 2: {command}" and lines[1].index("^") == lines[0].index(command)


def test_explain_of_a_path_with_a_backslash(small):
    """The path is text in EXPLAIN's output, not a regex replacement template."""
    r = sqlmr("-e", "EXPLAIN INSERT OVERWRITE DIRECTORY '/tmp/x\\\\1' SELECT s FROM t")
    check(r, 0)
    assert "committed to file:///tmp/x\\1" in r.stdout


def test_strict_prints_one_line_naming_file_offset_and_row(small):
    r = sqlmr("--strict", "-e", "SELECT s, i FROM t")
    check(r, 1, "part-0.csv at byte 6", "'b,x,4'")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "remote traceback" not in r.stderr and "File " not in r.stderr
    r = sqlmr("--strict", "--debug", "-e", "SELECT s, i FROM t")
    assert r.returncode == 1 and "remote traceback" in r.stderr   # --debug shows the frames


def test_tsv_output_is_tab_separated(small):
    out = small / "out.tsv"
    r = sqlmr("-o", str(out), "-e", "SELECT s, j FROM t ORDER BY s")
    check(r, 0, "wrote 3 rows")
    assert out.read_text() == "s\tj\na\t2\nb\t4\nc\t6\n"


@pytest.mark.parametrize("sql", ["SELEC 1", "  selec x, y FROM t", "SELCT s FROM t"])
def test_a_misspelt_statement_word_is_named_whatever_follows(small, sql):
    r = sqlmr("-e", sql)
    word = sql.split()[0]
    check(r, 1, f"syntax error: '{word}' does not start a statement sqlmr knows")
    lines = r.stderr.splitlines()
    assert lines[1].index("^") == lines[0].index(word)
