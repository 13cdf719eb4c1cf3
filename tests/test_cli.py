"""The sqlmr command as a person uses it: output formats, exit codes, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = ("sourceIP STRING, destURL STRING, visitDate DATE, adRevenue DOUBLE, userAgent STRING, "
      "countryCode STRING, languageCode STRING, searchWord STRING, duration INT")


def sqlmr(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "sqlmr", *args], capture_output=True, text=True,
                          input=stdin, env=env, timeout=120)


@pytest.fixture
def uv(tiny):
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE uv ({UV}) ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' "
                    f"LOCATION '{tiny / 'uservisits'}'")
    assert r.returncode == 0, r.stderr
    assert "created table uv" in r.stderr   # a status line: stdout is a pipe here
    return "uv"


def test_table_output_with_counts_time_and_cost(uv):
    """Piped, a table holds every row (as psql's does); time and cost go to stderr."""
    r = sqlmr("-e", "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "SUBSTR(sourceIP, 1, 8)" in out.splitlines()[1]
    assert out.splitlines()[-1] == "(9,651 rows)"
    assert len(out.splitlines()) == 9651 + 5   # border, header, rule, rows, border, footer
    assert "Time:" not in out and "Cost:" not in out
    err = r.stderr
    assert "Time:" in err and "map + " in err and "reduce tasks" in err and "read 1.7 MB" in err
    assert "Cost: Lambda $" in err and "Athena $" in err and "S3 PUT planned)" in err


def test_csv_has_only_data_on_stdout(uv, tmp_path):
    r = sqlmr("--format", "csv", "-e", "SELECT countryCode, COUNT(*) AS n FROM uv GROUP BY countryCode")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["countryCode", "n"]
    assert sum(int(n) for _, n in rows[1:]) == 10000
    assert "Time:" in r.stderr and "Time:" not in r.stdout


def test_json_and_null_as_empty_in_csv(uv):
    r = sqlmr("--format", "json", "-e", "SELECT MAX(duration) AS m, SUM(CASE WHEN duration > 99 THEN 1 END) AS none FROM uv")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"m": 10, "none": None}]
    r = sqlmr("--format", "csv", "-e", "SELECT SUM(CASE WHEN duration > 99 THEN 1 END) AS none, 1 AS one FROM uv")
    assert r.stdout == "none,one\n,1\n"


def test_output_file_gets_every_row(uv, tmp_path):
    out = tmp_path / "all.csv"
    r = sqlmr("-o", str(out), "-e", "SELECT sourceIP FROM uv")
    assert r.returncode == 0, r.stderr
    assert "wrote 10,000 rows" in r.stderr and r.stdout == ""
    assert len(out.read_text().splitlines()) == 10001


def test_script_file_with_several_statements(uv, tmp_path):
    f = tmp_path / "q.sql"
    f.write_text("-- two queries\nSELECT COUNT(*) FROM uv;\n\nSELECT COUNT(*) FROM uv WHERE duration > 5;\n")
    r = sqlmr("--format", "csv", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "10000"
    assert len(r.stdout.splitlines()) == 4


def test_syntax_error_shows_line_and_caret(uv):
    r = sqlmr("-e", "SELECT countryCode,\n  COUNT(*) FROM uv GROUP countryCode")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "LINE 2:   COUNT(*) FROM uv GROUP countryCode"
    # "GROUP" alone reads as an alias of uv, so the unexpected token is the next one
    assert lines[1].index("^") == lines[0].rindex("countryCode")
    assert "syntax error at or near 'countryCode'" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_column_is_named_with_suggestion(uv):
    r = sqlmr("-e", "SELECT sourceIp, adRevenu FROM uv")
    assert r.returncode == 1
    assert "column 'adRevenu' not found in table 'uv'" in r.stderr
    assert "did you mean 'adRevenue'?" in r.stderr
    caret_line = r.stderr.splitlines()[1]
    assert caret_line.index("^") == r.stderr.splitlines()[0].index("adRevenu")


def test_unknown_table_is_named_with_suggestion(uv):
    r = sqlmr("-e", "SELECT * FROM uvv")
    assert r.returncode == 1
    assert "table 'uvv' does not exist" in r.stderr and "did you mean 'uv'?" in r.stderr


def test_error_in_second_statement_points_into_the_script(uv):
    r = sqlmr("-e", "SELECT COUNT(*) FROM uv;\nSELECT nope FROM uv")
    assert r.returncode == 1
    assert "LINE 2: SELECT nope FROM uv" in r.stderr
    assert "10000" in r.stdout  # the first statement ran


def test_unsupported_is_said_plainly(uv):
    r = sqlmr("-e", "SELECT countryCode, RANK() OVER (ORDER BY duration ROWS 2 PRECEDING) FROM uv")
    assert r.returncode == 1 and "not supported yet: window frames (ROWS / RANGE …)" in r.stderr
    # the caret is on the frame, and the hint says what does run
    line = next(x for x in r.stderr.splitlines() if x.startswith("LINE 1: "))
    caret = r.stderr.splitlines()[r.stderr.splitlines().index(line) + 1]
    assert line[caret.index("^"):].startswith("ROWS 2 PRECEDING")
    assert "hint: only the default frame runs" in r.stderr


def test_usage_errors_exit_2():
    assert sqlmr("--format", "xml", "-e", "SELECT 1").returncode == 2
    r = sqlmr("-f", "/nonexistent/q.sql")
    assert r.returncode == 2 and "cannot read /nonexistent/q.sql" in r.stderr


def test_missing_location_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE t (a STRING) LOCATION '{missing}'; SELECT * FROM t")
    assert r.returncode == 1
    assert f"location file://{missing} does not exist" in r.stderr


def test_ddl_show_describe_drop(tiny):
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE IF NOT EXISTS rk (pageURL STRING, pageRank INT, avgDuration INT) "
                    f"LOCATION '{tiny / 'rankings'}'; CREATE EXTERNAL TABLE IF NOT EXISTS rk (a INT) LOCATION '/x';"
                    "SHOW TABLES; DESCRIBE rk; DROP TABLE rk; DROP TABLE IF EXISTS rk")
    assert r.returncode == 0, r.stderr
    assert "already exists, skipped" in r.stderr
    assert "rankings" in r.stdout and "(built-in)" in r.stdout
    assert "| pageRank | INT" in r.stdout.replace("  ", " ").replace("  ", " ") or "pageRank" in r.stdout
    assert "dropped table rk" in r.stderr and "nothing dropped" in r.stderr
    r = sqlmr("-e", "DROP TABLE rk")
    assert r.returncode == 1 and "table 'rk' does not exist" in r.stderr


def test_type_errors_are_found_before_running(uv):
    r = sqlmr("-e", "SELECT SUM(sourceIP) FROM uv")
    assert r.returncode == 1 and "task failed" not in r.stderr
    assert "sourceIP is STRING, a number is needed in SUM()" in r.stderr
    assert r.stderr.splitlines()[1].index("^") == r.stderr.splitlines()[0].index("sourceIP")
    r = sqlmr("-e", "SELECT countryCode, COUNT(*) FROM uv")
    assert r.returncode == 1
    assert "column 'countryCode' must appear in GROUP BY or be used in an aggregate function" in r.stderr
    assert r.stderr.splitlines()[1].index("^") == r.stderr.splitlines()[0].index("countryCode")


def test_string_functions_convert_numbers_to_text_as_hive_does(uv):
    r = sqlmr("--format", "csv", "-e", "SELECT UPPER(duration), LENGTH(duration), SUBSTR(duration, 1, 1) "
                                       "FROM uv WHERE duration = 10 LIMIT 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "10,2,1"


def test_library_use_from_an_unguarded_script(uv, tmp_path):
    """A script that uses sqlmr as a library at top level (no __main__ guard)
    runs its query once: workers never re-run the caller's script."""
    script = tmp_path / "use_sqlmr.py"
    script.write_text(
        "from sqlmr.config import Settings\n"
        "from sqlmr.session import Session\n"
        "s = Session(Settings(workers=2))\n"
        "res = list(s.execute('SELECT COUNT(*) FROM uv'))[0]\n"
        "print('ROWS', list(res.rows))\n"
        "res.close(); s.close()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("ROWS [(10000,)]") == 1


def test_stats_file_of_a_script(tiny, tmp_path):
    """``--stats FILE`` with ``-f``: one JSON object, the statements in order,
    per stage and task kind what ran; a local run over local files asks S3
    for nothing, and its time-based cost is an estimate."""
    data = sum(f.stat().st_size for f in (tiny / "uservisits").iterdir()
               if not f.name.startswith(("_", ".")))
    script = tmp_path / "s.sql"
    script.write_text(
        f"CREATE EXTERNAL TABLE uv ({UV}) ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' "
        f"LOCATION '{tiny / 'uservisits'}';\n"
        "SELECT countryCode, COUNT(*) FROM uv GROUP BY countryCode;\n"
        "SET reducers = 3;\n"
        "SELECT COUNT(*) FROM uv WHERE duration > 5;\n")
    stats = tmp_path / "run.json"
    r = sqlmr("--stats", str(stats), "--split-mb", "0.5", "--reducers", "2", "-f", str(script))
    assert r.returncode == 0, r.stderr
    rec = json.loads(stats.read_text())
    assert rec["exit_status"] == 0 and rec["backend"] == "local"
    kinds = [s["statement"].split()[0] for s in rec["statements"]]
    assert kinds == ["CREATE", "SELECT", "SET", "SELECT"]
    create, grouped, set_, count = rec["statements"]
    assert set(create) == {"statement", "wall_s"} and set(set_) == {"statement", "wall_s"}
    assert [(s["stage"], s["kind"]) for s in grouped["stages"]] == [(1, "map"), (1, "reduce")]
    maps, reduces = grouped["stages"]
    assert maps["tasks"] == 4 and reduces["tasks"] == 2      # 1.7 MB in 0.5 MB splits
    assert maps["bytes_in"] >= data and reduces["bytes_in"] > 0
    assert maps["task_seconds"] > 0
    assert maps["rows_in"] > maps["rows_out"] > 0 and reduces["rows_in"] == maps["rows_out"]
    assert grouped["invocations"] == 6
    for s in (grouped, count):
        assert s["s3_get"] == s["s3_put"] == s["s3_list"] == s["s3_delete"] == 0
        assert "estimated_gb_s" in s and "billed_gb_s" not in s
        assert s["cost_usd"] > 0 and s["cost_s3_requests"] == "planned" and s["wall_s"] > 0
    assert rec["invocations"] == grouped["invocations"] + count["invocations"]
    assert rec["cost_usd"] == pytest.approx(grouped["cost_usd"] + count["cost_usd"])
    assert rec["wall_s"] >= sum(s["wall_s"] for s in rec["statements"])
    # a script that fails still writes what ran, with its exit status
    script.write_text("SELECT COUNT(*) FROM uv;\nSELECT nope FROM uv;\n")
    r = sqlmr("--stats", str(stats), "-f", str(script))
    assert r.returncode == 1
    rec = json.loads(stats.read_text())
    assert rec["exit_status"] == 1 and len(rec["statements"]) == 1


def test_stats_file_in_a_missing_folder_is_a_usage_error(tmp_path):
    r = sqlmr("--stats", str(tmp_path / "no" / "run.json"), "-e", "SELECT 1")
    assert r.returncode == 2 and "--stats" in r.stderr and "Traceback" not in r.stderr
