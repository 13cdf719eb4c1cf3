"""The Python API on the Lambda backend (moto, tasks run by the real package
in subprocesses): the same rows as the local backend, and an estimated cost (local wall time is never "billed")."""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import sqlmr  # noqa: E402
from aws_fixtures import enforced_bucket, iam_servers  # noqa: E402,F401
from compiler.statements import split_statements  # noqa: E402
from test_lambda_backend import UV_FILES, ddl, keys, tables  # noqa: E402,F401


def test_a_query_on_lambda_through_the_api(tables):
    bucket = tables
    q = "SELECT countryCode, COUNT(*), SUM(duration) FROM uv WHERE duration > ? GROUP BY countryCode"
    results = {}
    for backend in ("local", "lambda"):
        with sqlmr.connect(backend=backend, split_mb=0.1, reducers=2, memory_mb=1024) as con:
            for st in split_statements(ddl(bucket)):
                con.execute(st.text)
            rel = con.sql(q, [2])
            results[backend] = sorted(rel.fetchall())
            stats = rel.stats
        if backend == "lambda":
            # the subprocess invoker's durations are local wall time: an estimate
            assert not stats.billed and stats.lambda_cost > 0 and stats.tasks > 1
            assert any("(estimate:" in line and "1024 MB" in line for line in stats.lines)
    assert results["lambda"] == results["local"] and len(results["local"]) > 3
    assert sum(r[1] for r in results["local"]) < UV_FILES * 700
    assert keys(bucket, "sqlmr/jobs/") == []
