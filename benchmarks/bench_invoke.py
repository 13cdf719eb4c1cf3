"""The driver's side of a Lambda invocation, measured.

Against Lambda's Invoke API emulated on 127.0.0.1 (tests/lambda_emulator.py,
in a process of its own, answering at once), this measures what one
invocation costs the process that sends it:

* ``raw``: BotoInvoker.invoke in a loop on one thread (what a launcher
  invocation would pay per task it starts: the same boto3 call);
* ``backend``: LambdaBackend.run over N task events at several concurrency
  caps (the scheduler, the bounded thread pool, boto3 and the HTTP pool):
  invocations per second and the driver's CPU per invocation.

Usage: python benchmarks/bench_invoke.py [--tasks 2000] [--concurrency 1,16,64,256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "SQLMR_BUCKET": "bench-bucket"}


def event(i: int) -> dict:
    return {"v": 1, "job": "bench", "stage": 1, "kind": "map", "task": i, "attempt": 0,
            "input": {"splits": [{"uri": f"s3://bench-bucket/t/part-{i:05d}", "start": 0,
                                  "end": 64 << 20, "size": 64 << 20, "stamp": "e" * 32,
                                  "table": "uservisits"}]},
            "partitions": 473, "work": "s3://bench-bucket/sqlmr/jobs/bench/",
            "code": {"uri": "s3://bench-bucket/sqlmr/jobs/bench/job.py", "sha256": "0" * 64},
            "entry": "map_1", "strict": False, "params": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,16,64,256")
    args = ap.parse_args()
    os.environ.update(FAKE_AWS)
    from lambda_emulator import EmulatorProcess
    emu = EmulatorProcess(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:2])), "echo")
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = emu.url
    from sqlmr.aws.invoker import BotoInvoker
    from sqlmr.backends.lambda_backend import LambdaBackend, SchedulerOptions
    from sqlmr.config import Settings
    out: dict = {"tasks": args.tasks}
    try:
        inv = BotoInvoker("sqlmr-bench", region="us-east-1", timeout_s=60, concurrency=1)
        inv.invoke(event(0))                       # connect, load botocore's models
        n = min(args.tasks, 1000)
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            inv.invoke(event(i))
        out["raw"] = {"invokes": n, "wall_ms_per_invoke": (time.perf_counter() - w0) / n * 1e3,
                      "cpu_ms_per_invoke": (time.process_time() - c0) / n * 1e3}
        rows = []
        for c in [int(x) for x in args.concurrency.split(",")]:
            backend = LambdaBackend(Settings(backend="lambda"), deploy=False,
                                    overrides={"concurrency": c},
                                    options=SchedulerOptions(speculation=False))
            backend.run([event(0)])                # the pool's first connection
            evs = [event(i) for i in range(args.tasks)]
            w0, c0 = time.perf_counter(), time.process_time()
            results = backend.run(evs)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            assert len(results) == args.tasks
            rows.append({"concurrency": c, "cap": backend.concurrency_cap,
                         "invokes_per_s": args.tasks / wall,
                         "cpu_ms_per_invoke": cpu / args.tasks * 1e3})
            backend.close()
        out["backend"] = rows
        out["emulator"] = emu.stats()
    finally:
        emu.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
