"""The ``--stats FILE`` record of a run: one JSON object, its statements in order.

Each statement that ran a job gives, per stage and task kind, the task count,
bytes in and out and task-seconds; the S3 requests counted
(:mod:`runtime.s3stats`: the tasks' and the driver's, retries and the scratch
cleanup included) as ``s3_get``, ``s3_head``, ``s3_put``, ``s3_list``,
``s3_delete``, ``s3_retries``; ``invocations`` (every task attempt);
``billed_gb_s`` when AWS billed the durations, else ``estimated_gb_s``;
``cost_usd`` (the cost line's figure) and ``wall_s``.  The run's totals
come first, at the top level.

>>> rec = statement_record("SET x = 1", None, None, 0.0012)
>>> rec
{'statement': 'SET x = 1', 'wall_s': 0.0012}
>>> run_record([rec], 0.5, "local")["statements"][0] is rec
True
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

S3_KINDS = ("get", "head", "put", "list", "delete", "retries")


def statement_record(text: str, stats: Any, settings: Any, wall_s: float) -> dict:
    """What one statement did (``stats``: its JobStats, None when it ran no job)."""
    rec: dict[str, Any] = {"statement": text.strip(), "wall_s": round(wall_s, 4)}
    if stats is None:
        return rec
    counted = stats.counted_s3()
    lam = stats.lambda_cost(settings)
    rec["stages"] = [{**ph, "task_seconds": round(ph["task_seconds"], 4)}
                     for ph in stats.phases.values()]
    for k in S3_KINDS:
        rec[f"s3_{k}"] = counted.get(k, 0)
    rec["invocations"] = stats.invocations_counted
    rec["billed_gb_s" if stats.billed else "estimated_gb_s"] = round(lam.gb_seconds, 4)
    rec["cost_usd"] = round(lam.total, 8)
    rec["cost_s3_requests"] = "counted" if stats.counted else "planned"
    return rec


def run_record(statements: list[dict], wall_s: float, backend: str) -> dict:
    """The whole run: totals over its statements, then the statements in order."""
    out: dict[str, Any] = {"backend": backend, "wall_s": round(wall_s, 4)}
    for key in [f"s3_{k}" for k in S3_KINDS] + ["invocations"]:
        out[key] = sum(s.get(key, 0) for s in statements)
    billed = any("billed_gb_s" in s for s in statements)
    gb_s = sum(s.get("billed_gb_s", s.get("estimated_gb_s", 0.0)) for s in statements)
    out["billed_gb_s" if billed else "estimated_gb_s"] = round(gb_s, 4)
    out["cost_usd"] = round(sum(s.get("cost_usd", 0.0) for s in statements), 8)
    out["statements"] = statements
    return out


def write(path: str, record: dict) -> None:
    """Write the record to ``path`` (a temporary file renamed into place)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".stats-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
