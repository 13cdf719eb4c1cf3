"""The projection model counts the S3 requests sqlmr really sends.

A query runs on the Lambda backend over moto (the real package in
subprocesses, tables and scratch on S3, so every split, shuffle object and
result goes through S3 and is counted by ``runtime.s3stats``).  The same
run's phases, modeled at the scale they ran (k = 1, the run's split size),
must plan the GETs and PUTs the tasks and the driver counted, within 5%.
"""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

from aws_fixtures import (aws_reset, enforced_bucket, iam_servers,  # noqa: E402,F401
                          moto_server, s3_bucket)
from sqlmr import bench  # noqa: E402
from sqlmr import bench_model as bm  # noqa: E402
from sqlmr.session import Session  # noqa: E402
from test_lambda_backend import amplab, ddl, keys, lambda_settings, tables  # noqa: E402,F401


class RecordingSession(Session):
    """A session whose backend reports each phase's tasks as ``sqlmr bench`` records them."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.phases: list[bm.Measured] = []
        self.counted: list = []
        self._recorder = None

    def backend(self):
        inner = super().backend()
        if self._recorder is None or self._recorder.inner is not inner:
            self._recorder = bench._Recorder(inner, self._record)
        return self._recorder

    def _record(self, evs, results) -> None:
        bench.BenchSession._record(self, evs, results)
        from runtime import s3stats   # what each phase's tasks counted (for the message)
        total: dict = {}
        for r in results:
            s3stats.add(total, r.get("s3"))
        self.counted.append((evs[0]["kind"], len(evs), total))


def table_bytes(bucket: str, name: str) -> int:
    from runtime import storage
    return sum(n for _, n in storage.list_files(f"s3://{bucket}/data/{name}"))


SHAPES = [
    # 2a's shape: a GROUP BY whose maps aggregate; many maps, one coalesced reducer
    ("2a", "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)",
     dict(split_mb=0.01, reducers=0, shuffle="direct")),
    # combiners between the maps and the reducers: adding each key's numbers ...
    ("2a combine", "SELECT SUBSTR(sourceIP, 1, 3), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 3)",
     dict(split_mb=0.01, reducers=0, shuffle="combine")),
    # ... and copying bytes
    ("2a combine copied", "SELECT SUBSTR(sourceIP, 1, 7), COUNT(*), SUM(adRevenue) FROM uv "
     "GROUP BY SUBSTR(sourceIP, 1, 7)", dict(split_mb=0.01, reducers=0, shuffle="combine")),
    # a scan: maps only
    ("1a", "SELECT sourceIP, duration FROM uv WHERE duration > 5",
     dict(split_mb=0.01, reducers=0)),
]


@pytest.mark.parametrize("name, sql, knobs", SHAPES, ids=[s[0] for s in SHAPES])
def test_planned_requests_equal_the_counted_ones(tables, name, sql, knobs, monkeypatch):
    # a read running far past its expected time is sent again (hedged): on a
    # loaded machine moto answers slowly enough to make such stragglers, which
    # the model does not count (its requests are the ones the plan sends)
    monkeypatch.setenv("SQLMR_S3_HEDGE", "off")     # the tasks' processes
    from runtime import readahead
    monkeypatch.setattr(readahead, "HEDGE_FACTOR", None)   # the driver's
    bucket = tables
    settings = lambda_settings(**knobs)
    session = RecordingSession(settings)
    try:
        list(session.execute(ddl(bucket)))
        for r in session.execute(sql):   # deploys the function (once, not per query)
            r.close()
        session.phases, session.counted = [], []
        (res,) = list(session.execute(sql))
        rows = sum(1 for _ in res.rows)
        res.close()
        st = res.stats
    finally:
        session.close()
    assert rows > 0 and st.counted and st.map_tasks >= 8
    if name.startswith("2a combine"):   # the combiners added, or copied, as named
        assert ("partitions_merged" in st.counters) == (name == "2a combine")
    counted_gets, counted_puts = st.s3_gets_puts()
    here = {"uv": table_bytes(bucket, "uservisits"), "rk": table_bytes(bucket, "rankings")}
    model = bm.LambdaModel(split_mb=settings.split_mb, shuffle=settings.shuffle)
    stage_tables = {p.stage: [t for t in here if t in p.table_bytes]
                    for p in session.phases if p.table_bytes}
    job = session.compile(sql)   # which stages' combiners add (groups: the result's rows)
    phases = bm.scale_phases(session.phases, here, model, target=here,
                             stage_tables=stage_tables,
                             adding=bench.adding_stages(job.stages, rows))
    projection = bm.project(phases, model)
    why = (f"planned {[(e.phase.kind, e.phase.tasks, e.gets, e.puts) for e in projection.phases]}"
           f"; counted by the tasks {session.counted}, by the driver {st.driver_s3}")
    # the same tasks as ran ...
    kinds = [(p.kind, p.tasks) for p in phases]
    ran = [("map", st.map_tasks)] + ([("combine", st.combine_tasks)] if st.combine_tasks else [])
    ran += [("reduce", st.reduce_tasks)] if st.reduce_tasks else []
    assert kinds == ran
    # ... and the requests they and the driver sent, within 5%
    planned_gets, planned_puts = projection.cost.gets, projection.cost.puts
    assert abs(planned_gets - counted_gets) <= 0.05 * counted_gets, why
    assert abs(planned_puts - counted_puts) <= 0.05 * counted_puts, why
    assert keys(bucket, "sqlmr/jobs/") == []
