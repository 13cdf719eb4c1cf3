"""Limits that are messages, not crashes: long AND / OR / + / || chains give
the right answer (checked against DuckDB), nesting past sqlmr's limit is a
compile-time error naming the limit, a closed output pipe ends quietly, a
damaged or newer catalog is named and never overwritten, and --no-timing
keeps warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.errors import SqlError
from compiler.exprs import MAX_DEPTH
from difftest import Tables, as_bytes

COLUMNS = [("a", "int"), ("b", "int"), ("c", "double"), ("d", "string")]


@pytest.fixture
def t(session, tmp_path):
    """A small table with NULLs in b (every fifth row), c and d."""
    tables = Tables(session, tmp_path)
    lines = [f"{i},{'' if i % 5 == 0 else i * 3 % 17},{'' if i % 7 == 0 else i * 0.37},"
             f"{'' if i % 11 == 0 else 's' + str(i)}" for i in range(60)]
    tables.add("t", COLUMNS, {"f.csv": as_bytes(lines)})
    tables.con.execute("SET max_expression_depth TO 2000")  # DuckDB crashes much deeper
    return tables


def test_300_ors_in_where(t):
    where = " OR ".join(f"a = {i * 7}" for i in range(300))
    rows = t.check(f"SELECT a FROM t WHERE {where}")
    assert len(rows) == 9  # 0, 7, … 56


def test_300_ands_in_where(t):
    where = " AND ".join(f"a <> {i * 7}" for i in range(300))
    assert len(t.check(f"SELECT a FROM t WHERE {where}")) == 51


def test_300_ors_and_ands_as_values_keep_three_valued_logic(t):
    ors = " OR ".join(f"b = {i}" for i in range(2, 302))
    ands = " AND ".join(f"b <> {i}" for i in range(2, 302))
    rows = t.check(f"SELECT a, ({ors}) AS o, ({ands}) AS n FROM t")
    assert [None, None] in [r[1:] for r in rows]  # NULL b: both NULL, as in SQL


def test_3000_plus_terms(t):
    """DuckDB itself cannot evaluate an expression 3,000 deep: the expected sum
    is folded left to right in Python over the rows DuckDB reads."""
    terms = ["c" if i % 3 == 0 else ("b" if i % 2 else "a") for i in range(3000)]
    started = time.monotonic()
    got = t.sqlmr(f"SELECT a, {' + '.join(terms)} AS m FROM t")
    assert time.monotonic() - started < 120
    want = []
    for a, b, c in t.duckdb("SELECT a, b, c FROM t"):
        values = {"a": a, "b": b, "c": c}
        total = values[terms[0]]
        for name in terms[1:]:
            total = None if total is None or values[name] is None else total + values[name]
        want.append([a, total])
    assert sorted(got, key=lambda r: r[0]) == sorted(want, key=lambda r: r[0])
    assert any(r[1] is None for r in got) and any(isinstance(r[1], float) for r in got)


def test_long_minus_times_and_concat_chains(t):
    minus = "a" + "".join(f" - b + {i}" for i in range(250))
    times = " * ".join(["1"] * 300) + " * a"
    concat = " || ".join(["d", "'-'"] * 150)
    t.check(f"SELECT a, {minus} AS m, {times} AS x FROM t")
    t.check(f"SELECT a, {concat} AS s FROM t")


def test_chain_prefix_that_is_a_group_key_is_still_found(t):
    t.check("SELECT a + b, a + b + 1 AS x, COUNT(*) FROM t GROUP BY a + b")
    t.check("SELECT a + b, a + b - 1 AS x, COUNT(*) FROM t GROUP BY a + b")
    t.check("SELECT a - b, a - b + 1 AS x, COUNT(*) FROM t GROUP BY a - b")
    t.check("SELECT a > 3 AND b > 1, a > 3 AND b > 1 AND COUNT(*) > 2 AS x, COUNT(*) FROM t "
            "GROUP BY a > 3 AND b > 1",
            "SELECT k, k AND n > 2, n FROM (SELECT a > 3 AND b > 1 AS k, COUNT(*) AS n FROM t "
            "GROUP BY 1)")


@pytest.mark.parametrize("shape", ["paren", "function", "case"])
def test_deep_nesting_is_a_compile_time_message(t, shape):
    n = MAX_DEPTH + 56
    expr = {"paren": "(" * n + "a + 1" + ")" * n,
            "function": "abs(" * n + "a" + ")" * n,
            "case": "CASE WHEN a > 0 THEN " * n + "a" + " END" * n}[shape]
    started = time.monotonic()
    with pytest.raises(SqlError) as err:
        t.sqlmr(f"SELECT {expr} FROM t")
    assert time.monotonic() - started < 10
    assert f"nested {n} deep; sqlmr supports up to {MAX_DEPTH}" in err.value.message


def test_deep_nesting_without_parentheses_is_a_message(t):
    with pytest.raises(SqlError) as err:
        t.sqlmr("SELECT " + "- " * 3000 + "a FROM t")
    assert f"sqlmr supports up to {MAX_DEPTH}" in err.value.message
    with pytest.raises(SqlError) as err:
        t.sqlmr("SELECT a FROM t WHERE " + "NOT " * 5000 + "a > 1")
    assert "nested too deeply" in err.value.message or "nested more than" in err.value.message


def test_nesting_at_the_limit_runs(t):
    n = MAX_DEPTH - 1
    t.check("SELECT a, " + "abs(" * n + "b - 9" + ")" * n + " AS x FROM t")


# ------------------------------------------------------------- closed pipe

def _big_table(home: Path, tmp_path: Path) -> dict[str, str]:
    """An environment whose catalog has table big (200,000 rows)."""
    data = tmp_path / "big"
    data.mkdir()
    (data / "f.csv").write_text("".join(f"{i},x{i}\n" for i in range(200_000)))
    env = dict(os.environ, SQLMR_HOME=str(home))
    subprocess.run([sys.executable, "-m", "sqlmr.cli", "--no-timing", "-e",
                    f"CREATE EXTERNAL TABLE big (a INT, s STRING) LOCATION '{data}'"],
                   env=env, check=True, capture_output=True)
    return env


@pytest.mark.parametrize("fmt", ["csv", "json", "table", "markdown", "repl"])
def test_head_closing_the_pipe_ends_quietly(sqlmr_home, tmp_path, fmt):
    env = _big_table(sqlmr_home, tmp_path)
    if fmt == "repl":  # statements on a non-terminal stdin
        argv, stdin = ["--format", "csv"], "SELECT * FROM big;\nSELECT * FROM big;\n"
    else:
        argv, stdin = ["--format", fmt, "-e", "SELECT * FROM big"], ""
    cmd = " ".join([sys.executable, "-m", "sqlmr.cli", *[f"'{a}'" for a in argv]])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], input=stdin,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_interactive_repl_piped_into_head_ends_quietly(sqlmr_home, tmp_path):
    """`sqlmr | head -1` typed at a terminal: the prompt is on the terminal,
    results go to the pipe; once the reader has gone the REPL ends, quietly."""
    import pty
    import select
    env = _big_table(sqlmr_home, tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sqlmr.cli", "--format", "csv",
                             "--max-rows", "1000000"], stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    screen = b""

    def drain(seconds: float) -> None:
        nonlocal screen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    return
    try:
        drain(3)
        os.write(master, b"SELECT * FROM big;\r")
        assert proc.stdout.readline() == b"a,s\n"
        proc.stdout.close()  # what head does after its line
        drain(10)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"Broken pipe" not in screen and b"Traceback" not in screen, screen[-2000:]


# ----------------------------------------------------------------- catalog

def _catalog_with_two_tables(sqlmr_home: Path, tmp_path: Path):
    from compiler.schema import Column, Table
    from sqlmr.catalog import Catalog
    catalog = Catalog()
    for name in ("one", "two"):
        catalog.create(Table(name, [Column("a", "int")], f"file://{tmp_path}/{name}"))
    return catalog, sqlmr_home / "catalog.json"


def test_backup_of_the_last_good_catalog_is_written_before_each_replace(sqlmr_home, tmp_path):
    catalog, path = _catalog_with_two_tables(sqlmr_home, tmp_path)
    backup = sqlmr_home / "catalog.json.bak"
    assert set(json.loads(backup.read_text())["tables"]) == {"one"}  # as before the last change
    assert set(json.loads(path.read_text())["tables"]) == {"one", "two"}


@pytest.mark.parametrize("content, problem", [
    (bytes(range(256)) * 3, "is not UTF-8 text"),
    (b'{"version": 1, "tables": {"one": ', "is not valid JSON"),
    (b'[1, 2]', "holds a JSON array, not an object"),
    (b'{"version": 1, "tables": []}', '"tables" as a JSON array'),
    (b'{"version": 1, "tables": {"x": [1]}}', "table entry 'x' that is malformed"),
    (b'{"version": 1, "tables": {"x": {"name": "x", "columns": [], "location": 3}}}',
     "its location is a JSON number"),
    (b'{"version": "one", "tables": {}}', "has version 'one'"),
])
def test_damaged_catalog_is_named_and_the_backup_offered(sqlmr_home, tmp_path, content, problem):
    _, path = _catalog_with_two_tables(sqlmr_home, tmp_path)
    path.write_bytes(content)
    env = dict(os.environ, SQLMR_HOME=str(sqlmr_home))
    for statement in ("DROP TABLE one", "SELECT a FROM one"):
        proc = subprocess.run([sys.executable, "-m", "sqlmr.cli", "-e", statement], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr and "object has no attribute" not in proc.stderr
        assert f"the catalog {path} {problem}" in proc.stderr or problem in proc.stderr, proc.stderr
        assert f"the last good catalog is in {path}.bak" in proc.stderr
    assert path.read_bytes() == content  # never rewritten


def test_newer_catalog_is_read_but_never_rewritten(sqlmr_home, tmp_path):
    from compiler.errors import SqlError
    from compiler.schema import Column, Table
    from sqlmr.catalog import Catalog, CatalogError
    _, path = _catalog_with_two_tables(sqlmr_home, tmp_path)
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    catalog = Catalog()
    assert {"one", "two"} <= set(catalog.tables())  # read-only use still works
    with pytest.raises(CatalogError, match="version 99, written by a newer sqlmr"):
        catalog.drop("one")
    with pytest.raises(CatalogError, match="version 99"):
        catalog.create(Table("three", [Column("a", "int")], f"file://{tmp_path}/three"))
    assert path.read_bytes() == before
    assert SqlError  # the CLI shows either kind as one line
    env = dict(os.environ, SQLMR_HOME=str(sqlmr_home))
    proc = subprocess.run([sys.executable, "-m", "sqlmr.cli", "-e", "DROP TABLE one"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "version 99" in proc.stderr and "Traceback" not in proc.stderr
    assert path.read_bytes() == before


# ---------------------------------------------------------------- warnings

@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_no_timing_keeps_the_malformed_rows_warning(sqlmr_home, tmp_path, fmt):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "f.csv").write_text("1,x\nzz,y\n3,z\n")
    env = dict(os.environ, SQLMR_HOME=str(sqlmr_home))
    proc = subprocess.run([sys.executable, "-m", "sqlmr.cli", "--no-timing", "--format", fmt, "-e",
                           f"CREATE EXTERNAL TABLE bad (a INT, s STRING) LOCATION '{data}';"
                           "SELECT * FROM bad"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Warning: 1 malformed row read as NULLs (first: 'zz,y')" in proc.stderr
    assert "Time:" not in proc.stderr + proc.stdout and "Cost:" not in proc.stderr
