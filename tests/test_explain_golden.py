"""Golden EXPLAIN output for the benchmark queries (Hive's qtest habit).

The built-in tables are pointed at the real tiny data by linking it into the
test's $SQLMR_HOME.  Set SQLMR_UPDATE_GOLDEN=1 to rewrite the files after an
intended change, and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sqlmr.config import Settings
from sqlmr.session import Session

GOLDEN = Path(__file__).resolve().parent / "golden"
QUERIES = Path(__file__).resolve().parents[1] / "queries"


@pytest.fixture
def tiny_home(sqlmr_home, tiny):
    data = sqlmr_home / "data" / "amplab"
    data.mkdir(parents=True)
    for t in ("rankings", "uservisits"):
        (data / t).symlink_to(tiny / t)
    return sqlmr_home


def explain(home: Path, query: str, code: bool = False) -> str:
    s = Session(Settings(workers=2))
    try:
        sql = (QUERIES / f"{query}.sql").read_text()
        res = list(s.execute(("EXPLAIN CODE " if code else "EXPLAIN ") + sql.split("\n", 1)[1]))[0]
        return res.message.replace(str(home), "$SQLMR_HOME") + "\n"
    finally:
        s.close()


@pytest.mark.parametrize("query", ["1a", "2a"])
def test_golden_explain(tiny_home, query):
    text = explain(tiny_home, query)
    path = GOLDEN / f"explain_{query}.txt"
    if os.environ.get("SQLMR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_explain_code_is_the_generated_module(tiny_home):
    text = explain(tiny_home, "2a", code=True)
    compile(text, "<explain code>", "exec")
    assert "def s1_map(ctx):" in text and "def s1_reduce(ctx):" in text
    assert "line.split(',', 4)" in text  # split only as far as the last needed field


PARTITIONED_QUERY = ("SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uvp "
                     "WHERE visitYear >= 2010 GROUP BY SUBSTR(sourceIP, 1, 8)")


def test_golden_explain_partitioned(sqlmr_home):
    """uservisits partitioned by the year of visitDate (generated, seeded, so
    every byte count is stable), with a filter that prunes to 3 of 43 years."""
    from difftest import UV_COLUMNS, as_bytes, uservisits_lines
    root = sqlmr_home / "data" / "uvp"
    by_year: dict[str, list[str]] = {}
    for line in uservisits_lines(3000, seed=7):
        by_year.setdefault(line.split(",")[2][:4], []).append(line)
    for year, lines in by_year.items():
        (root / f"visitYear={year}").mkdir(parents=True)
        (root / f"visitYear={year}" / "part-00000").write_bytes(as_bytes(lines))
    cols = ", ".join(f"{n} {t.upper()}" for n, t in UV_COLUMNS)
    s = Session(Settings(workers=2))
    try:
        list(s.execute(f"CREATE EXTERNAL TABLE uvp ({cols}) PARTITIONED BY (visitYear INT) "
                       f"LOCATION '{root}'"))
        res = list(s.execute("EXPLAIN " + PARTITIONED_QUERY))[0]
        text = res.message.replace(str(sqlmr_home), "$SQLMR_HOME") + "\n"
    finally:
        s.close()
    path = GOLDEN / "explain_partitioned.txt"
    if os.environ.get("SQLMR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert "partitions: 3 of 43 (pruned by visitYear >= 2010)" in text
