"""Function memory per stage and task kind on Lambda: what the planner picks,
what EXPLAIN and the estimate say, how tasks are sent to the function of their
size and billed at it.  (Deploying the sibling functions and running tasks
in them over moto: tests/test_lambda_deploy.py, tests/test_lambda_backend.py.)"""

from __future__ import annotations

import io
import json
import re

import pytest

from difftest import UV_COLUMNS
from sqlmr import splits
from sqlmr.aws import invoker
from sqlmr.config import Settings
from sqlmr.cost_guard import CostMeter
from sqlmr.session import Session

RK = "pageURL STRING, pageRank INT, avgDuration INT"


def _uv_ddl(name: str, where) -> str:
    uv = ", ".join(f"{n} {t.upper()}" for n, t in UV_COLUMNS)
    return f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} ({uv}) LOCATION '{where}'"


@pytest.fixture
def big(tmp_path):
    """uservisits of 20 GB (sparse: planning reads sizes, never the bytes) and a
    small rankings table."""
    uv = tmp_path / "uv"
    uv.mkdir()
    with open(uv / "part-00000", "wb") as f:
        f.truncate(20 * 10**9)
    rk = tmp_path / "rk"
    rk.mkdir()
    (rk / "part-00000").write_text("http://a,10,3\n")
    return tmp_path


def _explain(settings: Settings, base, sql: str) -> str:
    s = Session(settings)
    try:
        list(s.execute(_uv_ddl("uv", base / "uv") + ";"
                       f"CREATE EXTERNAL TABLE IF NOT EXISTS rk ({RK}) LOCATION '{base / 'rk'}'"))
        return list(s.execute("EXPLAIN " + sql))[0].message
    finally:
        s.close()


AGG = "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)"


def test_each_task_kind_gets_the_memory_the_model_finds_cheapest(big):
    text = _explain(Settings(backend="lambda"), big, AGG)
    # maps parse about as fast as S3 delivers at 1,024 MB: no whole vCPU needed
    assert re.search(r"split: \d+ MB at 1,024 MB memory \(modeled: ", text)
    # reducers work longer than they fetch: less than a vCPU, but not the least
    m = re.search(r"      memory: maps 1,024 MB, (combiners 1,024 MB \(1,769 MB when they "
                  r"add\), )?reducers "
                  r"(1,024|1,280) MB \(per task kind, the cheapest modeled within 1.5x the "
                  r"fastest(; combiners that add, one vCPU)?\)\n", text)
    assert m, text
    hi = 1769 if m.group(1) else int(m.group(2).replace(",", ""))
    rng = "1024 MB" if hi == 1024 else f"1024–{hi} MB"
    assert f"Estimate on Lambda ({rng}, arm64)" in text


def test_combiners_get_the_least_memory(big):
    """Combiners that copy bytes get the least memory; combiners that add a
    SUM's numbers by key work like reducers, one wave long: one vCPU."""
    two = "SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue), COUNT(*) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)"
    text = _explain(Settings(backend="lambda", shuffle="combine"), big, two)
    assert "shuffle: combine (" in text and "adding each key's numbers" not in text
    assert "memory: maps 1,024 MB, combiners 1,024 MB, reducers" in text
    text = _explain(Settings(backend="lambda", shuffle="combine"), big, AGG)
    assert "adding each key's numbers" in text
    assert "combiners 1,024 MB (1,769 MB when they add), reducers" in text
    assert "combiners that add, one vCPU" in text


def test_memory_mb_caps_the_choice(big):
    # below the smallest size sqlmr chooses from, the function's memory is the only one
    text = _explain(Settings(backend="lambda", memory_mb=512), big, AGG)
    assert re.search(r"memory: maps 512 MB, (combiners 512 MB, )?reducers 512 MB", text)
    assert re.search(r"split: \d+ MB at 512 MB memory", text)
    assert "Estimate on Lambda (512 MB, arm64)" in text


def test_a_split_set_by_hand_or_a_broadcast_side_keeps_the_function_memory(big):
    text = _explain(Settings(backend="lambda", split_mb=128), big, AGG)
    assert "memory: maps 1,769 MB, " in text and "split: " not in text
    join = ("SELECT uv.sourceIP, SUM(rk.pageRank) FROM uv JOIN rk ON rk.pageURL = uv.destURL "
            "GROUP BY uv.sourceIP")
    text = _explain(Settings(backend="lambda"), big, join)
    assert "Broadcast" in text or "broadcast" in text
    assert "memory: maps 1,769 MB" in text       # the small side is held in memory


def test_local_plans_carry_no_memory(big):
    text = _explain(Settings(backend="local"), big, AGG)
    assert "memory:" not in text and " at 1,024 MB memory" not in text


def test_lambda_memories_never_exceed_the_function_memory():
    for cap in (128, 1000, 1024, 1300, 1769, 3008, 10240):
        sizes = splits.lambda_memories(cap)
        assert max(sizes) == cap and all(m <= cap for m in sizes)
        c = splits.choose_lambda_split(126.8e9, 473, memory_mb=cap)
        assert c.memory_mb in sizes
        for kind in ("combine", "reduce"):
            assert splits.choose_task_memory(kind, 64 << 20, 0, 60,
                                             memory_mb=cap).memory_mb in sizes


def test_unbilled_tasks_are_estimated_at_their_own_memory():
    meter = CostMeter(Settings(backend="lambda", memory_mb=1769))
    meter.add({"kind": "map", "memory_mb": 1024, "input": {}}, {"seconds": 2.0, "output": None})
    meter.add({"kind": "map", "input": {}}, {"seconds": 1.0, "output": None})
    assert meter.gb_seconds == pytest.approx((2.0 * 1024 + 1.0 * 1769) / 1024)


class _Client:
    def __init__(self) -> None:
        self.called: list[str] = []

    def invoke(self, FunctionName, **kw):   # noqa: N803 — boto3's argument name
        self.called.append(FunctionName)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps({"ok": 1}).encode())}


def test_boto_invoker_sends_a_task_to_the_function_of_its_memory():
    inv = invoker.BotoInvoker("sqlmr-runtime-abc", region="us-east-1", timeout_s=60,
                              concurrency=2)
    inv.client = _Client()
    inv.use_function("sqlmr-runtime-abc-1024mb", 1024)
    for ev in ({"memory_mb": 1024}, {"memory_mb": 1769}, {}):
        inv.invoke({"kind": "map", **ev})
    assert inv.client.called == ["sqlmr-runtime-abc-1024mb", "sqlmr-runtime-abc",
                                 "sqlmr-runtime-abc"]
    inv.use_function("sqlmr-runtime-def")    # a new main function forgets the siblings
    inv.invoke({"memory_mb": 1024})
    assert inv.client.called[-1] == "sqlmr-runtime-def"
