"""Where the sqlmr command's output goes: a pipe or file gets every row and only
data; a terminal gets a preview and the status lines; Time is wall time until
the last row is written; statements that write files print Time and Cost too."""

from __future__ import annotations

import io
import os
import re
import sys
import time
from pathlib import Path

import pytest

from test_cli import REPO, sqlmr

N = 120   # more rows than the 40-row preview


@pytest.fixture
def nums(tmp_path: Path) -> Path:
    data = tmp_path / "nums"
    data.mkdir()
    (data / "part-0.csv").write_text("".join(f"k{i},{i}\n" for i in range(N)))
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE nums (k STRING, v INT) LOCATION '{data}'")
    assert r.returncode == 0, r.stderr
    return tmp_path


def test_piped_table_and_markdown_hold_every_row(nums):
    r = sqlmr("-e", "SELECT k, v FROM nums")
    assert r.returncode == 0, r.stderr
    assert len(re.findall(r"^\| k\d+", r.stdout, re.M)) == N
    assert r.stdout.splitlines()[-1] == f"({N} rows)"
    assert "Time:" in r.stderr and "Time:" not in r.stdout
    r = sqlmr("--format", "markdown", "-e", "SELECT k, v FROM nums")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == N + 2 and all(x.startswith("|") for x in lines)   # only markdown
    assert f"({N} rows)" in r.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_set_echo_and_messages_stay_out_of_the_data_stream(nums, fmt):
    r = sqlmr("--format", fmt, "-e", "SET max_rows = 5; SELECT k FROM nums WHERE v < 2 ORDER BY k")
    assert r.returncode == 0, r.stderr
    assert "max_rows = 5" in r.stderr and "max_rows" not in r.stdout
    assert "k0" in r.stdout and "k1" in r.stdout and "Time" not in r.stdout


def test_terminal_gets_a_preview_and_the_status_lines(nums, sqlmr_home):
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, PYTHONPATH=str(REPO), SQLMR_HOME=str(sqlmr_home), TERM="dumb")
    p = pexpect.spawn(sys.executable, ["-m", "sqlmr", "-e", "SET max_rows = 40; "
                                       "SELECT k, v FROM nums"],
                      env=env, encoding="utf-8", dimensions=(50, 200), timeout=60)
    p.expect(pexpect.EOF)
    out = p.before.replace("\r", "")
    assert len(re.findall(r"^\| k\d+", out, re.M)) == 40
    assert f"({N} rows, first 40 shown; --output FILE writes them all)" in out
    assert "max_rows = 40" in out and "Time:" in out and "S3 PUT planned)" in out


@pytest.mark.parametrize("sql", [
    "CREATE TABLE copy AS SELECT k, v FROM nums",
    "INSERT OVERWRITE DIRECTORY '{tmp}/dir' SELECT k FROM nums",
])
def test_statements_that_write_files_print_time_and_cost(nums, sql):
    r = sqlmr("-e", sql.format(tmp=nums))
    assert r.returncode == 0, r.stderr
    assert re.search(r"^Time: \d+\.\d\d s · 1 map task", r.stderr, re.M), r.stderr
    assert "Cost: Lambda $" in r.stderr
    assert "(2 columns," in r.stderr or "wrote 120 rows in 1 file" in r.stderr


def test_time_runs_until_the_last_row_is_written():
    """Rows come from a lazy iterator: reading them is part of the query's time."""
    from sqlmr.cli import print_result
    from sqlmr.config import Settings
    from sqlmr.driver import JobStats
    from sqlmr.session import StatementResult

    def slow_rows():
        for i in range(3):
            time.sleep(0.1)
            yield (i,)

    result = StatementResult("rows", columns=["n"], types=["int"], rows=slow_rows(),
                             total_rows=3, stats=JobStats(map_tasks=1), seconds=0.001)
    out, err = io.StringIO(), io.StringIO()
    print_result(result, Settings(format="csv"), None, out, err)
    assert out.getvalue() == "n\n0\n1\n2\n"
    seconds = float(re.search(r"Time: ([\d.]+) s", err.getvalue()).group(1))
    assert seconds >= 0.3


def test_ctrl_c_prints_the_time_and_the_cost_so_far():
    """A cancelled job reports how long it ran and what its finished tasks cost
    (the driver attaches the partial stats to the exception)."""
    from sqlmr.backends import JobCancelledError
    from sqlmr.cli import run_script
    from sqlmr.config import Settings
    from sqlmr.driver import JobStats

    class Cancelled:
        settings = Settings()

        def execute(self, script):
            time.sleep(0.2)
            e = JobCancelledError("cancelled")
            e.partial_stats = JobStats(map_tasks=8, attempts=3, task_seconds=6.0)
            raise e
            yield

    out, err = io.StringIO(), io.StringIO()
    assert run_script(Cancelled(), "SELECT 1", None, False, out=out, err=err) == 130
    lines = err.getvalue().splitlines()
    assert re.fullmatch(r"sqlmr: cancelled after 0\.[2-9]\d s", lines[0]), lines
    assert lines[1].startswith("Cost so far: at least Lambda $") and "3 finished tasks" in lines[1]
    assert out.getvalue() == ""
