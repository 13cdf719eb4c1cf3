"""The driver: plans a compiled job's tasks, runs them on a backend, gathers
the statistics and streams the final result.

Per stage: list the table's files, cut them into splits, run one map task per
split group; for a reduce stage, hand every reducer the byte range of its
partition in each map output.  Only the attempt a backend accepts for a task is
ever read, so retried or duplicated attempts cannot lose or double rows.
"""

from __future__ import annotations

import heapq
import math
import secrets
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterator

from compiler.job import Job, Stage
from runtime import codecache, events, shuffle, storage
from sqlmr import cost as costs
from sqlmr.backends import Backend
from sqlmr.config import Settings
from sqlmr.splits import choose_reducers, choose_split_size, plan_splits

# Throughput assumed for estimates before a run (measured by benchmarks/bench_core.py
# on one core: a 2a-style map runs at 60-70 MB/s; 1,769 MB on Lambda is one vCPU).
EST_MAP_BYTES_PER_S = 50e6
EST_TASK_OVERHEAD_S = 0.05


@dataclass
class StagePlan:
    stage: Stage
    files: list[tuple[str, int]]
    tasks: list[list[dict]]
    split_size: int
    reducers: int

    @property
    def bytes(self) -> int:
        return sum(s for _, s in self.files)

    @property
    def splits(self) -> int:
        return sum(len(t) for t in self.tasks)

    def facts(self) -> dict:
        return {"files": len(self.files), "bytes": self.bytes, "splits": self.splits,
                "split_size": self.split_size, "maps": len(self.tasks),
                "reducers": self.reducers}


@dataclass
class JobStats:
    seconds: float = 0.0
    map_tasks: int = 0
    reduce_tasks: int = 0
    splits: int = 0
    files: int = 0
    bytes_read: int = 0
    bytes_shuffled: int = 0
    rows_read: int = 0
    malformed: int = 0
    malformed_sample: str = ""
    task_seconds: float = 0.0
    peak_mem_mb: float = 0.0
    gets: int = 0
    puts: int = 0
    attempts: int = 0
    # Filled from the Lambda backend's per-task "billing" (every invocation of every
    # attempt, failed, duplicate and speculative ones included): a billed cost.
    billed: bool = False
    billed_ms: int = 0
    billed_gb_s: float = 0.0
    invocations: int = 0
    memory_mb: int = 0
    architecture: str = ""

    @property
    def requests(self) -> int:
        return self.map_tasks + self.reduce_tasks

    def lambda_cost(self, settings: Settings) -> costs.LambdaCost:
        if self.billed:
            return costs.lambda_cost(self.billed_gb_s, self.invocations, self.gets, self.puts,
                                     self.architecture or settings.architecture)
        gb_s = self.task_seconds * settings.memory_mb / 1024
        return costs.lambda_cost(gb_s, self.attempts or self.requests, self.gets, self.puts,
                                 settings.architecture)


def _not_found(table, location: str) -> FileNotFoundError:
    return FileNotFoundError(f"table '{table}': location {location} does not exist")


def plan_job(job: Job, settings: Settings) -> list[StagePlan]:
    """Splits, map tasks and reducers for each stage (also what EXPLAIN shows)."""
    plans = []
    workers = settings.effective_workers()
    for stage in job.stages:
        table = job.tables[stage.table]
        try:
            files = storage.list_files(table.location)
        except FileNotFoundError:
            raise _not_found(table.name, table.location) from None
        total = sum(s for _, s in files)
        split = (int(settings.split_mb * 2**20) if settings.split_mb > 0
                 else choose_split_size(total, workers, settings.backend))
        tasks = plan_splits(files, max(1, split))
        if stage.reduce_entry is None:
            reducers = 0
        elif stage.reducers == "one":
            reducers = 1
        elif settings.reducers > 0:
            reducers = settings.reducers
        else:
            reducers = choose_reducers(total, workers)
        plans.append(StagePlan(stage, files, tasks, split, reducers))
    return plans


def estimate(plans: list[StagePlan], settings: Settings) -> tuple[JobStats, costs.LambdaCost]:
    """Cost of running the plan on Lambda, before running it."""
    st = JobStats()
    for p in plans:
        st.map_tasks += len(p.tasks)
        st.reduce_tasks += p.reducers
        st.splits += p.splits
        st.bytes_read += p.bytes
        st.task_seconds += p.bytes / EST_MAP_BYTES_PER_S + EST_TASK_OVERHEAD_S * (
            len(p.tasks) + p.reducers)
        st.gets += p.splits + len(p.tasks) + p.reducers * (len(p.tasks) + 1) + p.reducers
        st.puts += len(p.tasks) + p.reducers + 1 + math.ceil(max(1, len(p.files)) / 1000)
    return st, st.lambda_cost(settings)


class JobResult:
    """The outcome of a job: statistics now, rows streamed on demand from the
    accepted outputs; ``close()`` removes the job's scratch data."""

    def __init__(self, job: Job, outputs: list[dict], stats: JobStats, work: str,
                 keep_scratch: bool) -> None:
        self.job = job
        self.columns = job.columns
        self.types = job.types
        self.stats = stats
        self._outputs = outputs
        self._work = work
        self._keep = keep_scratch
        self._ns = codecache.load_source(job.source) if job.sorted else None
        produced = sum(sum(o["records"]) for o in outputs)
        self.total_rows = produced if job.limit is None else min(produced, job.limit)

    def rows(self) -> Iterator[list]:
        """Visible columns of every result row, in order."""
        streams = [self._stream(o) for o in self._outputs]
        if self.job.sorted:
            merged: Iterator[list] = heapq.merge(*streams, key=self._ns["sortkey"])
        else:
            merged = (r for s in streams for r in s)
        if self.job.limit is not None:
            merged = islice(merged, self.job.limit)
        width = len(self.columns)
        if self.job.width == width:
            return merged
        return (r[:width] for r in merged)

    @staticmethod
    def _stream(output: dict) -> Iterator[list]:
        start, end = output["partitions"][0]
        for batch in shuffle.iter_batches(output["uri"], start, end):
            yield from batch

    def close(self) -> None:
        if not self._keep and self._work:
            storage.delete_prefix(self._work)
            self._work = ""

    def __enter__(self) -> "JobResult":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


Progress = Callable[[str, int, int, int], None]  # (phase, done, total, bytes)


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_job(job: Job, settings: Settings, backend: Backend, scratch: str,
            progress: Progress | None = None, plans: list[StagePlan] | None = None) -> JobResult:
    """Run every stage of ``job`` on ``backend``; scratch data goes under ``scratch``."""
    t0 = time.perf_counter()
    plans = plans or plan_job(job, settings)
    job_id = new_job_id()
    work = storage.join(scratch, job_id) + "/"
    stats = JobStats()
    try:
        code_uri = storage.join(work, "job.py")
        storage.write_bytes(code_uri, job.source.encode("utf-8"))
        stats.puts += 1
        code = {"uri": code_uri, "sha256": job.sha256}
        outputs: list[dict] = []
        for plan in plans:
            outputs = _run_stage(job_id, plan, settings, backend, work, code, stats, progress)
        stats.seconds = time.perf_counter() - t0
        return JobResult(job, outputs, stats, work, settings.keep_scratch)
    except BaseException:
        if not settings.keep_scratch:
            storage.delete_prefix(work)
        raise


def _account(stats: JobStats, results: list[dict]) -> None:
    for r in results:
        stats.task_seconds += r["seconds"]
        stats.malformed += r["malformed"]
        if r["malformed_sample"] and not stats.malformed_sample:
            stats.malformed_sample = r["malformed_sample"]
        stats.peak_mem_mb = max(stats.peak_mem_mb, r["peak_mem_mb"])
        stats.puts += 1 if r.get("output") else 0
        bill = r.get("billing")
        if bill:
            stats.billed = True
            stats.billed_ms += bill["billed_ms"]
            stats.billed_gb_s += bill["billed_ms"] / 1000 * bill["memory_mb"] / 1024
            stats.invocations += bill["invocations"]
            stats.memory_mb = bill["memory_mb"]
            stats.architecture = bill["architecture"]
            stats.peak_mem_mb = max(stats.peak_mem_mb, bill["max_memory_mb"])
            stats.attempts += bill["attempts"]
        else:
            stats.attempts += 1 + r["attempt"]


def _run_stage(job_id: str, plan: StagePlan, settings: Settings, backend: Backend, work: str,
               code: dict, stats: JobStats, progress: Progress | None) -> list[dict]:
    stage = plan.stage
    table = stage.table
    map_events = [
        events.map_event(job=job_id, stage=stage.id, task=i, input={"splits": [
            {**s, "table": table} for s in splits]}, partitions=plan.reducers, work=work,
            code=code, entry=stage.map_entry, strict=settings.strict)
        for i, splits in enumerate(plan.tasks)]
    stats.map_tasks += len(map_events)
    stats.splits += plan.splits
    stats.files += len(plan.files)
    stats.gets += plan.splits + len(map_events)
    stats.puts += math.ceil(max(1, len(plan.files)) / 1000)
    map_results = _run_phase(backend, map_events, f"Stage-{stage.id} map", progress)
    _account(stats, map_results)
    stats.bytes_read += sum(r["bytes_in"] for r in map_results)
    stats.rows_read += sum(r["rows_in"] for r in map_results)
    if stage.reduce_entry is None:
        return [r["output"] for r in map_results if r["output"]]
    stats.bytes_shuffled += sum(r["bytes_out"] for r in map_results)
    reduce_events = []
    for p in range(plan.reducers):
        ranges = [{"uri": r["output"]["uri"], "start": r["output"]["partitions"][p][0],
                   "end": r["output"]["partitions"][p][1]}
                  for r in map_results if r["output"] and r["output"]["records"][p]]
        if not ranges and stage.reducers != "one":
            continue  # an empty partition: no reducer needed
        reduce_events.append(events.reduce_event(
            job=job_id, stage=stage.id, task=p, shuffle=ranges, work=work, code=code,
            entry=stage.reduce_entry, strict=settings.strict))
    stats.reduce_tasks += len(reduce_events)
    stats.gets += sum(len(e["input"]["shuffle"]) + 1 for e in reduce_events)
    reduce_results = _run_phase(backend, reduce_events, f"Stage-{stage.id} reduce", progress)
    _account(stats, reduce_results)
    return [r["output"] for r in reduce_results if r["output"]]


def _run_phase(backend: Backend, evs: list[dict], label: str,
               progress: Progress | None) -> list[dict]:
    if not evs:
        return []
    done = 0
    nbytes = 0
    if progress:
        progress(label, 0, len(evs), 0)

    def on_done(event: dict, result: dict) -> None:
        nonlocal done, nbytes
        done += 1
        nbytes += result["bytes_in"]
        if progress:
            progress(label, done, len(evs), nbytes)

    return backend.run(evs, on_done)
