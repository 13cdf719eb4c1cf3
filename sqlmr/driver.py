"""The driver: plans a compiled job's tasks, runs them on a backend, gathers
the statistics and streams the final result.

Stages run in dependency order (the compiler numbers them so).  Per stage: one
map task per split group of each table it scans, or over the rows an earlier
stage wrote; for a reduce stage, maps write many fine partitions, and once
they ran the driver sums each partition's bytes over the map outputs (and the
outputs an earlier stage partitioned for it, a chained stage) and coalesces
contiguous partitions into reducers of about a target size
(:mod:`sqlmr.shuffle_plan`).  Optionally combiners first gather groups of map
outputs into fewer objects of the same format.  The driver writes one list of
the objects to read; each reducer reads its range of partitions from every
listed object, finding the offsets (and sorted runs, for a join or a
range-partitioned sort) in the object's own partition table.  Tasks that probe a broadcast hash table get the
small side's files (or an earlier stage's outputs) in their parameters.  Only
the attempt a backend accepts for a task is ever read, so retried or
duplicated attempts cannot lose or double rows.
"""

from __future__ import annotations

import heapq
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from typing import Callable, Iterator, Sequence

from compiler.errors import SqlError
from compiler.job import Job, Stage
from compiler.sample import kept_splits
from compiler.stages import OneRowIn, Phase, Probe, RowsIn, TableIn
from runtime import codecache, events, s3stats, shuffle, storage
from runtime.inputs import InputError
from sqlmr import cost as costs
from sqlmr import result_reads
from sqlmr import scratch as scratch_space
from sqlmr.cost_guard import CostMeter
from sqlmr.backends import Backend, TaskFailedError
from sqlmr.config import Settings
from sqlmr.partitions import Partitions, partitions_of
from sqlmr.shuffle_plan import (ShufflePlan, choose_shuffle, coalesce, combiners_add, fine_partitions,
                                groups_estimate)
from sqlmr.splits import (MIN_SPLIT, SplitChoice, adding_combiner_memory, choose_lambda_split,
                          choose_reducers, choose_split_size, choose_task_memory,
                          combine_group, plan_splits, planned)

# Throughput assumed for estimates before a run (measured by benchmarks/bench_core.py
# on one core: a 2a-style map runs at 60-70 MB/s; 1,769 MB on Lambda is one vCPU).
EST_MAP_BYTES_PER_S = 50e6
EST_TASK_OVERHEAD_S = 0.05
#: Lambda: shuffled bytes per reducer when coalescing fine partitions (as
#: Spark's advisory partition size); locally reducers keep the planned count.
LAMBDA_REDUCE_BYTES = 64 << 20
#: Bytes of map outputs one combiner gathers at most (it spools them and its
#: output to local disk).
COMBINE_MAX_BYTES = 384 << 20


@dataclass
class InputPlan:
    """The map tasks of one map phase."""

    phase: Phase
    files: list[tuple[str, int]] = field(default_factory=list)   # table input
    tasks: list[list[dict]] = field(default_factory=list)        # splits per map task
    rows_from: int | None = None                                 # rows of this stage
    partitions: dict | None = None   # a partitioned table: what pruning kept (EXPLAIN)
    one_row: bool = False            # a SELECT without FROM: one task, no input
    sample: dict | None = None       # TABLESAMPLE: the splits read of all planned

    @property
    def bytes(self) -> int:
        if self.sample is not None:   # only the sampled splits are read
            return sum(sp["end"] - sp["start"] for t in self.tasks for sp in t)
        return sum(s for _, s in self.files)

    @property
    def splits(self) -> int:
        return sum(len(t) for t in self.tasks)


@dataclass
class StagePlan:
    stage: Stage
    inputs: list[InputPlan]
    split_size: int
    reducers: int
    broadcast: dict[str, dict] = field(default_factory=dict)    # probe name -> what to load
    broadcast_bytes: int = 0
    broadcast_partitions: list[dict] = field(default_factory=list)  # partitioned small sides
    samples: list[dict] = field(default_factory=list)   # TABLESAMPLE: what each read
    split_choice: SplitChoice | None = None   # Lambda: the split chosen from the modeled cost
    fine: int = 0                     # partitions each map writes (coalesced into reducers)
    shuffle: ShufflePlan | None = None   # the shuffle as planned (EXPLAIN, estimate)
    # Lambda: each task kind's function memory, MB, chosen from the modeled cost
    # (empty: the function's memory for every task)
    memory: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> list[tuple[str, int]]:
        return [f for i in self.inputs for f in i.files]

    @property
    def tasks(self) -> list[list[dict]]:
        return [t for i in self.inputs for t in i.tasks]

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.inputs)

    @property
    def splits(self) -> int:
        return sum(i.splits for i in self.inputs)

    @property
    def map_tasks(self) -> int:
        """Map tasks planned (a map over an earlier stage's rows counts one)."""
        return sum(len(i.tasks) if i.rows_from is None else 1 for i in self.inputs)

    def memory_line(self) -> str:
        """``memory: maps 1,024 MB, combiners 1,024 MB, reducers 1,280 MB (…)``."""
        names = {"map": "maps", "combine": "combiners", "reduce": "reducers"}
        kinds = [k for k in names if k in self.memory
                 and (k != "combine" or (self.shuffle and self.shuffle.mode == "combine"))]
        adding = ("combine" in kinds and "add" in self.memory
                  and self.memory["add"] != self.memory["combine"])
        shown = [f"{names[k]} {self.memory[k]:,} MB"
                 + (f" ({self.memory['add']:,} MB when they add)" if k == "combine" and adding
                    else "") for k in kinds]
        return ("memory: " + ", ".join(shown)
                + " (per task kind, the cheapest modeled within 1.5x the fastest"
                + ("; combiners that add, one vCPU)" if adding else ")"))

    def facts(self) -> dict:
        inputs = []
        for i in self.inputs:
            if i.one_row:
                inputs.append({"kind": "one row", "maps": 1})
            elif i.rows_from is None:
                inputs.append({"kind": "table", "files": len(i.files), "bytes": i.bytes,
                               "splits": i.splits, "maps": len(i.tasks),
                               **({"partitions": i.partitions} if i.partitions else {}),
                               **({"sample": i.sample} if i.sample else {})})
            else:
                one = isinstance(i.phase.input, RowsIn) and (
                    i.phase.input.merge or i.phase.input.limit is not None)
                inputs.append({"kind": "rows", "stage": i.rows_from,
                               "maps": "1 map task" if one else "map tasks"})
        return {"files": len(self.files), "bytes": self.bytes, "splits": self.splits,
                "split_size": self.split_size, "maps": len(self.tasks),
                "reducers": self.reducers, "inputs": inputs,
                **({"split_choice": self.split_choice.line()} if self.split_choice else {}),
                **({"memory": self.memory_line()} if self.memory else {}),
                **({"shuffle": _shuffle_facts(self.shuffle)} if self.shuffle else {}),
                **({"broadcast_partitions": self.broadcast_partitions}
                   if self.broadcast_partitions else {}),
                **({"broadcast_samples": [f for f in self.samples if not any(
                    f is i.sample for i in self.inputs)]} if self.samples else {})}


@dataclass
class JobStats:
    seconds: float = 0.0
    map_tasks: int = 0
    reduce_tasks: int = 0
    combine_tasks: int = 0
    splits: int = 0
    files: int = 0
    bytes_read: int = 0
    bytes_shuffled: int = 0
    rows_read: int = 0
    malformed: int = 0
    malformed_sample: str = ""
    malformed_first_line: str = ""   # a malformed first line of a file (a header?)
    notes: list = field(default_factory=list)   # said with the result (a TABLESAMPLE's sample)
    task_seconds: float = 0.0
    peak_mem_mb: float = 0.0
    gets: int = 0
    puts: int = 0
    shuffle_gets: int = 0   # of gets: reducers' and combiners' reads of the shuffle (planned)
    attempts: int = 0
    # S3 requests counted (runtime.s3stats) by the tasks' attempts and by the
    # driver (planning's listings, code upload, result reads, deletes):
    # {"get", "head", "put", "list", "delete", "retries"}; ``counted`` when the
    # job's scratch is on S3, so that every shuffle byte went through S3 and
    # the counts are what a Lambda run asks of S3 (a local run over local files
    # asks nothing: its cost line keeps the planned counts)
    s3: dict = field(default_factory=dict)       # the tasks'
    driver_s3: dict = field(default_factory=dict)
    counted: bool = False
    _driver_base: dict | None = None
    counters: dict = field(default_factory=dict)   # task counters (max_* are maxima)
    groups_estimate: float | None = None   # a stage's groups, judged from its maps (combiners)
    # per stage and task kind ("1/map", "1/reduce"): tasks, bytes in and out,
    # task-seconds, in the order they ran (the --stats file)
    phases: dict = field(default_factory=dict)
    # Filled from the Lambda backend's per-task "billing" (every invocation of every
    # attempt, failed, duplicate and speculative ones included): ``metered``;
    # ``billed`` when the durations are AWS's own (not the subprocess invoker's
    # local wall time, which is an estimate).
    metered: bool = False
    billed: bool = False
    billed_ms: int = 0
    billed_gb_s: float = 0.0
    invocations: int = 0
    estimated: int = 0               # invocations whose billed time was estimated
    memory_mb: int = 0
    architecture: str = ""
    planned_gb_s: float = 0.0        # estimate(): task seconds at each task kind's memory
    memories: set = field(default_factory=set)   # the function memories tasks got (Lambda)

    def memory_text(self, default: int) -> str:
        """``1769 MB``, or ``1024–1769 MB`` when task kinds got different memory."""
        ms = sorted(self.memories) or [self.memory_mb or default]
        return f"{ms[0]} MB" if len(ms) == 1 else f"{ms[0]}–{ms[-1]} MB"

    @property
    def requests(self) -> int:
        return self.map_tasks + self.reduce_tasks + self.combine_tasks

    def start_counting(self, since: dict | None = None) -> None:
        """Count the driver's S3 requests from now (or from the snapshot ``since``)."""
        self._driver_base = since if since is not None else s3stats.snapshot()

    def count_driver(self) -> None:
        """The driver's requests so far (result reads and deletes come after
        the job ran: called again before the cost line and the stats file)."""
        if self._driver_base is not None:
            self.driver_s3 = s3stats.since(self._driver_base)

    def counted_s3(self) -> dict[str, int]:
        """Every counted S3 request: the tasks' and the driver's, by kind."""
        self.count_driver()
        return s3stats.add(dict(self.s3), self.driver_s3)

    def s3_gets_puts(self) -> tuple[int, int]:
        """(GET-priced, PUT-priced) requests: counted when ``counted``
        (HEAD is priced as a GET, LIST as a PUT), else planned."""
        if not self.counted:
            return self.gets, self.puts
        c = self.counted_s3()
        return c.get("get", 0) + c.get("head", 0), c.get("put", 0) + c.get("list", 0)

    @property
    def invocations_counted(self) -> int:
        """Task invocations (every attempt: retries, duplicates, speculation)."""
        return self.invocations if self.metered else (self.attempts or self.requests)

    def lambda_cost(self, settings: Settings) -> costs.LambdaCost:
        gets, puts = self.s3_gets_puts()
        if self.metered:
            return costs.lambda_cost(self.billed_gb_s, self.invocations, gets, puts,
                                     self.architecture or settings.architecture)
        gb_s = self.planned_gb_s or self.task_seconds * settings.memory_mb / 1024
        return costs.lambda_cost(gb_s, self.attempts or self.requests, gets, puts,
                                 settings.architecture)


def _not_found(table, location: str) -> FileNotFoundError:
    return FileNotFoundError(f"table '{table}': location {location} does not exist")


def plan_files(table) -> list[tuple[str, int]]:
    """A table's files as a query would list them now (errors as :func:`_list`)."""
    return _list(table, {})


def _list(table, stamps: dict[str, object]) -> list[tuple[str, int]]:
    """A table's files; a location that cannot be listed or read (or holds
    anything that cannot be) fails before the query runs, naming the path."""
    try:
        return storage.list_files(table.location, stamps)
    except FileNotFoundError:
        raise _not_found(table.name, table.location) from None
    except InputError as e:
        raise InputError(f"table '{table.name}': {e}") from None
    except OSError as e:  # e.g. the S3 listing
        raise InputError(f"table '{table.name}': cannot list {table.location}: "
                         f"{e.strerror or e}") from None


def _probes(stage: Stage) -> list[tuple[Phase, Probe]]:
    return [(ph, op) for ph in stage.maps + ([stage.reduce] if stage.reduce else [])
            for op in ph.ops if isinstance(op, Probe)]


def plan_job(job: Job, settings: Settings) -> list[StagePlan]:
    """Splits, map tasks and reducers for each stage (also what EXPLAIN shows)."""
    plans: list[StagePlan] = []
    workers = settings.effective_workers()
    listed: dict[str, list[tuple[str, int]]] = {}
    found: dict[str, Partitions] = {}
    stamps: dict[str, object] = {}  # each file's version as planned (mtime or ETag)
    read: dict[str, dict[str, int]] = {}  # a partitioned table's files some scan reads
    module: list[dict] = []  # the job's module, loaded once a pruning function is needed

    def files_of(name: str) -> list[tuple[str, int]]:
        if name not in listed:
            table = job.tables[name]
            listed[name] = _list(table, stamps)
            if table.partition_columns:
                found[name] = partitions_of(table.location, table.partition_columns,
                                            listed[name])
                listed[name] = found[name].files
        return listed[name]

    def scanned(scan) -> tuple[list[tuple[str, int]], dict[str, list], dict | None]:
        """The files a scan reads, the partition values of each (when the
        table is partitioned) and what pruning kept, for EXPLAIN."""
        name = scan.table.name.lower()
        files = files_of(name)
        if name not in found:
            return files, {}, None
        every = found[name].partitions
        keep = every
        if scan.prune_entry:
            if not module:
                module.append(codecache.load_local(job.source, job.sha256))
            keep = [p for p in every if _kept(module[0][scan.prune_entry], p.values)]
        files = [f for p in keep for f in p.files]
        read.setdefault(name, {}).update(files)
        facts = {"read": len(keep), "total": len(every), "bytes_total": found[name].bytes,
                 "pruned_by": scan.prune_text}
        return files, {u: p.values for p in keep for u, _ in p.files}, facts

    def table_bytes(name: str) -> int:
        """A table's bytes, of the partitions its scans read."""
        files = files_of(name)
        return sum(read[name].values()) if name in read else sum(s for _, s in files)

    by_id: dict[int, StagePlan] = {}
    for stage in job.stages:
        inputs: list[InputPlan] = []
        values: list[dict[str, list]] = []  # per input: file -> its partition's values
        for ph in stage.maps:
            if isinstance(ph.input, TableIn):
                files, of, facts = scanned(ph.input.scan)
                inputs.append(InputPlan(ph, files, partitions=facts))
                values.append(of)
            elif isinstance(ph.input, OneRowIn):
                inputs.append(InputPlan(ph, tasks=[[]], one_row=True))
                values.append({})
            else:
                inputs.append(InputPlan(ph, rows_from=ph.input.stage.id))
                values.append({})
        broadcast: dict[str, dict] = {}
        broadcast_bytes = 0
        small_partitions: list[dict] = []
        samples: list[dict] = []
        for _, op in _probes(stage):
            if isinstance(op.source, TableIn):
                small, of, facts = scanned(op.source.scan)
                if facts is not None:
                    small_partitions.append({**facts, "table": op.source.scan.table.name,
                                             "bytes": sum(n for _, n in small)})
                name = op.source.scan.table.name   # malformed rows name their table
                splits = [{"uri": u, "start": 0, "end": n, "gz": u.endswith(".gz"), "table": name,
                           **planned(u, n, stamps), **_partition(of, u)} for u, n in small if n]
                if op.source.scan.sample is not None:   # cut to sample, as a scanned table is
                    cut = plan_splits([(u, n) for u, n in small], int(settings.split_mb * 2**20)
                                      if settings.split_mb > 0 else MIN_SPLIT, stamps)
                    kept, fact = _sampled(cut, op.source.scan)
                    splits = [{**sp, "table": name, **_partition(of, sp["uri"])}
                              for t in kept for sp in t]
                    samples.append(fact)
                broadcast[op.name] = {"splits": splits}
                broadcast_bytes += sum(sp["end"] - sp["start"] for sp in splits)
            else:
                broadcast[op.name] = {"rows_from": op.source.stage.id}
        tables_bytes = sum(table_bytes(t) for t in stage.tables)
        total = sum(i.bytes for i in inputs) or tables_bytes
        if stage.reduce is None:
            reducers = 0
        elif stage.reducers == "one":
            reducers = 1
        elif settings.reducers > 0:
            reducers = settings.reducers
        else:
            reducers = choose_reducers(tables_bytes, workers, settings.backend)
        split_choice = None
        if settings.split_mb > 0:
            split = int(settings.split_mb * 2**20)
        elif settings.backend == "lambda":   # from the modeled cost: EXPLAIN says why
            split_choice = choose_lambda_split(total, reducers, functions=_concurrency(),
                                               memory_mb=settings.memory_mb,
                                               architecture=settings.architecture)
            split = split_choice.size
        else:
            split = choose_split_size(total, workers, settings.backend)
        for i, of in zip(inputs, values):
            if i.rows_from is None and not i.one_row:
                i.tasks = plan_splits(i.files, max(1, split), stamps)
                for task in i.tasks:
                    for s in task:
                        s.update(_partition(of, s["uri"]))
                if i.phase.input.scan.sample is not None:
                    i.tasks, i.sample = _sampled(i.tasks, i.phase.input.scan)
                    samples.append(i.sample)
        plan = StagePlan(stage, inputs, split, reducers, broadcast, broadcast_bytes,
                         small_partitions, samples,
                         split_choice if any(i.rows_from is None and not i.one_row
                                             for i in inputs) else None)
        if stage.reduce is not None:
            plan.fine = _fine(stage, reducers, settings)
            objects = plan.map_tasks + sum(by_id[f.id].reducers for f in stage.feeds)
            plan.shuffle = choose_shuffle(objects, reducers, settings.shuffle, settings.backend,
                                          fine=plan.fine,
                                          group=getattr(settings, "combine_group", 0),
                                          adds=stage.adds_partial_numbers)
        if settings.backend == "lambda":
            plan.memory = stage_memory(plan, objects if stage.reduce is not None else 0,
                                       settings)
        plans.append(plan)
        by_id[stage.id] = plan
    return plans


def stage_memory(plan: StagePlan, objects: int, settings: Settings) -> dict[str, int]:
    """The function memory of a Lambda stage's task kinds, from the modeled
    cost: maps as their split was chosen with (a stage holding a broadcast
    side in memory, or a split set by hand, keeps the function's memory);
    combiners and reducers by :func:`sqlmr.splits.choose_task_memory`, for a
    combiner of about a split's bytes and a reducer of the reduce target
    reading the shuffle list, its bounds and a range of each of the
    ``objects`` (map outputs, or the combiners' outputs when planned)."""
    cap = settings.memory_mb
    arch = settings.architecture
    memory = {"map": cap}
    if plan.split_choice is not None and not plan.broadcast:
        memory["map"] = plan.split_choice.memory_mb
    if plan.stage.reduce is not None:
        target = (int(settings.reduce_mb * 2**20) if settings.reduce_mb > 0
                  else LAMBDA_REDUCE_BYTES)
        read = (plan.shuffle.combiners if plan.shuffle is not None
                and plan.shuffle.mode == "combine" else objects)
        memory["reduce"] = choose_task_memory("reduce", target, 0, read + 2,
                                              memory_mb=cap, architecture=arch).memory_mb
        group = min(plan.split_size, COMBINE_MAX_BYTES)
        memory["combine"] = choose_task_memory("combine", group, group, max(2, objects),
                                               memory_mb=cap, architecture=arch).memory_mb
        if plan.stage.adds_partial_numbers:   # combiners that add: CPU-bound
            memory["add"] = adding_combiner_memory(cap)
    return memory


def _concurrency() -> int:
    """Lambda functions a stage may run at once (the Lambda backend's setting)."""
    from sqlmr.aws.config import AwsSetupError, resolve_settings
    try:
        return resolve_settings().concurrency
    except AwsSetupError:
        return 1000


def _kept(prune: Callable[[list], bool], values: list) -> bool:
    """Whether a partition may hold rows the scan keeps.  Pruning only saves
    work: a partition whose filter cannot be evaluated here is read, and the
    tasks' filter decides (as it does for every row anyway)."""
    try:
        return prune(values)
    except Exception:  # noqa: BLE001
        return True


def _sampled(tasks: list[list[dict]], scan) -> tuple[list[list[dict]], dict]:
    """The map tasks of a TABLESAMPLE scan: only the sampled splits (in
    planning order, see :func:`compiler.sample.kept_splits`), and what was kept."""
    splits = [(t, sp) for t, task in enumerate(tasks) for sp in task]
    keep = set(kept_splits(len(splits), scan.sample))
    out: dict[int, list[dict]] = {}
    for j, (t, sp) in enumerate(splits):
        if j in keep:
            out.setdefault(t, []).append(sp)
    fact = {"table": scan.table.name, "read": len(keep), "total": len(splits),
            "text": scan.sample.text}
    return [out[t] for t in sorted(out)], fact


def sample_notes(plans: list[StagePlan]) -> list[str]:
    """What a sampled query says with its result."""
    return [f"Sample: the result is from {f['read']} of {f['total']} splits of {f['table']} "
            f"({f['text']})" for p in plans for f in p.samples]


def _partition(values: dict[str, list], uri: str) -> dict:
    """A split's partition values (folder text; None: NULL), when its file is
    in a partition: ``{"partition": [...]}``, else nothing."""
    return {"partition": values[uri]} if uri in values else {}


def _fine(stage: Stage, reducers: int, settings: Settings) -> int:
    """Partitions a stage's maps write: fine ones, coalesced into reducers
    after the maps ran; exactly the reducers when ``reducers`` is set (each
    partition is then one reducer) or the stage has one reducer by design."""
    if stage.reducers == "one":
        return 1
    forced = getattr(settings, "fine_partitions", 0)   # tests vary it
    if forced:
        return forced
    if settings.reducers > 0:
        return reducers
    return fine_partitions(reducers, settings.backend)


def _shuffle_facts(sp: ShufflePlan) -> dict:
    return {"mode": sp.mode, "fine": sp.fine_partitions, "group": sp.group,
            "combiners": sp.combiners, "gets": sp.gets, "puts": sp.puts, "reason": sp.reason}


def reduce_ranges(plan: StagePlan, sizes: Sequence[int], settings: Settings) -> list[tuple[int, int]]:
    """The reducers of a stage, as ranges ``[lo, hi)`` of its fine partitions,
    from the bytes of each partition the maps wrote: contiguous ranges near
    a target size (``reduce_mb``; on Lambda 64 MB; locally the shuffled bytes
    over the planned reducers, so local parallelism stays), a skewed
    partition alone.  When maps write one partition per reducer (``reducers``
    set, or one reducer by design) every non-empty partition is a reducer."""
    if plan.fine <= 1:
        return [(0, max(1, plan.fine))]
    if plan.fine == plan.reducers:
        return [(p, p + 1) for p, n in enumerate(sizes) if n]
    total = sum(sizes)
    if settings.reduce_mb > 0:
        target = int(settings.reduce_mb * 2**20)
    elif settings.backend == "lambda":
        target = LAMBDA_REDUCE_BYTES
    else:
        target = math.ceil(total / max(1, plan.reducers))
    return coalesce(sizes, target)


def estimate(plans: list[StagePlan], settings: Settings) -> tuple[JobStats, costs.LambdaCost]:
    """Cost of running the plan on Lambda, before running it."""
    st = JobStats()
    for p in plans:
        maps = p.map_tasks
        st.map_tasks += maps
        st.reduce_tasks += p.reducers
        st.splits += p.splits
        st.bytes_read += p.bytes + p.broadcast_bytes
        map_s = (p.bytes + p.broadcast_bytes * maps) / EST_MAP_BYTES_PER_S + \
            EST_TASK_OVERHEAD_S * maps
        st.task_seconds += map_s + EST_TASK_OVERHEAD_S * p.reducers
        mem = p.memory or {}
        combining = p.shuffle is not None and p.shuffle.mode == "combine"
        st.memories.update(m for k, m in mem.items() if k not in ("combine", "add") or combining)
        st.planned_gb_s += (map_s * mem.get("map", settings.memory_mb) + EST_TASK_OVERHEAD_S
                            * p.reducers * mem.get("reduce", settings.memory_mb)) / 1024
        st.gets += p.splits + maps + p.reducers + (p.shuffle.gets if p.shuffle else 0)
        st.puts += maps + p.reducers + 1 + math.ceil(max(1, len(p.files)) / 1000)
        if p.shuffle:   # the shuffle list, combiners' outputs
            st.puts += 1 + p.shuffle.combiners
            st.combine_tasks += p.shuffle.combiners
            st.task_seconds += EST_TASK_OVERHEAD_S * p.shuffle.combiners
            st.planned_gb_s += (EST_TASK_OVERHEAD_S * p.shuffle.combiners
                                * mem.get("combine", settings.memory_mb) / 1024)
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
        self._ns = codecache.load_local(job.source, job.sha256) if job.sorted else None
        produced = sum(sum(o["records"]) for o in outputs)
        self.total_rows = produced if job.limit is None else min(produced, job.limit)

    @property
    def outputs(self) -> list[dict]:
        """The accepted outputs of the last phase, in task order."""
        return list(self._outputs)

    def rows(self) -> "ResultRows":
        """Visible columns of every result row, in order, as tuples (as a
        DB-API ``fetchall`` gives them); a writer may take them as column
        batches instead (:meth:`ResultRows.column_batches`)."""
        unordered = not self.job.sorted and self.job.limit is None
        return ResultRows(self._rows, self._column_batches if unordered else None)

    def _ranges(self) -> list[result_reads.Range]:
        return [(o["uri"], o["partitions"][0][0], o["partitions"][0][1])
                for o in self._outputs]

    def _rows(self) -> Iterator[tuple]:
        # the outputs are read ahead on a few threads (sqlmr.result_reads)
        merged: Iterator[list]
        if self.job.sorted:
            reads = result_reads.MergeStreams(self._ranges())
            streams = [chain.from_iterable(map(shuffle.decode_rows, s)) for s in reads.streams]
            merged = _closing(heapq.merge(*streams, key=self._ns["sortkey"]), reads.close)
        else:
            lines = result_reads.lines_in_order(self._ranges())
            merged = chain.from_iterable(map(shuffle.decode_rows, lines))
        if self.job.limit is not None:
            merged = islice(merged, self.job.limit)
        width = len(self.columns)
        if self.job.width == width:
            return merged
        return (r[:width] for r in merged)

    @staticmethod
    def _stream(output: dict) -> Iterator[tuple]:
        start, end = output["partitions"][0]
        return shuffle.iter_rows(output["uri"], start, end)

    def _column_batches(self) -> Iterator[list[Sequence]]:
        """Every batch of an unordered result as its visible columns, in task
        order: a pair batch's keys and number array as they are decoded
        (no tuple per row), a JSON batch's records split into columns."""
        width = len(self.columns)
        for line in result_reads.lines_in_order(self._ranges()):
            if line[:1] == b"{":  # a pair batch: (text key, number) records
                keys, numbers, _ = shuffle.decode_pairs(line)
                yield [keys, numbers][:width]
            else:
                records = shuffle.decode_batch(line)
                yield [list(map(itemgetter(i), records)) for i in range(width)]

    def close(self) -> None:
        if not self._keep and self._work:
            storage.delete_prefix(self._work)
            self._work = ""

    def __enter__(self) -> "JobResult":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _closing(rows: Iterator, close: Callable[[], None]) -> Iterator:
    """``rows``, then ``close()`` (also when the reader stops early)."""
    try:
        yield from rows
    finally:
        close()


class ResultRows:
    """An iterator over a result's rows (tuples) that a writer can read as
    column batches instead, which spares a tuple per row and the writer's
    per-value work (sqlmr.writers).  Iterating it iterates the plain row
    iterator, made on first use."""

    __slots__ = ("_make_rows", "_make_columns", "_rows")

    def __init__(self, make_rows: Callable[[], Iterator[tuple]],
                 make_columns: Callable[[], Iterator[list[Sequence]]] | None) -> None:
        self._make_rows = make_rows
        self._make_columns = make_columns
        self._rows: Iterator[tuple] | None = None

    def __iter__(self) -> Iterator[tuple]:
        if self._rows is None:
            self._rows = self._make_rows()
        return self._rows

    def __next__(self) -> tuple:
        return next(iter(self))

    def column_batches(self) -> Iterator[list[Sequence]] | None:
        """The rows as batches of columns (lists or number arrays, one per
        visible column), or None when they can only be read row by row: an
        ordered merge, a LIMIT, or reading has already begun.  Taking the
        batches consumes the rows."""
        if self._rows is not None or self._make_columns is None:
            return None
        self._rows = iter(())
        return self._make_columns()


Progress = Callable[[str, int, int, int], None]  # (phase, done, total, bytes)


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_job(job: Job, settings: Settings, backend: Backend, scratch: str,
            progress: Progress | None = None, plans: list[StagePlan] | None = None,
            text: dict | None = None, files: Sequence = (),
            counted_from: dict | None = None) -> JobResult:
    """Run every stage of ``job`` on ``backend``; scratch data goes under ``scratch``.
    ``files`` (name, file, path, sha256) ship to the tasks as its UDFs' files do.
    The driver's S3 requests are counted from ``counted_from`` (a
    :func:`runtime.s3stats.snapshot` taken when the statement began: its
    compile and planning listings count too), else from now.

    ``text`` (``{"prefix", "delimiter", "width"}``) makes the last phase's tasks
    write their rows as delimited text files under ``prefix`` (CREATE TABLE AS)
    instead of batch files; the caller commits the accepted outputs.
    """
    t0 = time.perf_counter()
    requests0 = counted_from if counted_from is not None else s3stats.snapshot()
    plans = plans or plan_job(job, settings)
    job_id = new_job_id()
    work = storage.join(scratch, job_id) + "/"
    # reclaim what dead drivers left (cheap: one listing of the claims; their
    # S3 staging and half-done commits too when this job uses S3), then claim
    # this job's folder before it exists (S3 job folders expire by the
    # bucket's lifecycle rule)
    scratch_space.sweep(s3=storage.is_s3(work))
    if not storage.is_s3(work) and not settings.keep_scratch:
        scratch_space.register(work)
    stats = JobStats(notes=sample_notes(plans), counted=storage.is_s3(work))
    stats.start_counting(requests0)   # the driver's requests, planning's included
    # max_cost: finished tasks are counted as they report; passing it stops the job
    meter = CostMeter(settings) if settings.max_cost > 0 else None
    try:
        code_uri = storage.join(work, "job.py")
        storage.write_bytes(code_uri, job.source.encode("utf-8"))
        stats.puts += 1
        code = {"uri": code_uri, "sha256": job.sha256}
        if job.udfs or files:
            code["files"] = ship_files([*job.udfs, *files], work)
            stats.puts += len(code["files"])
        prepare = getattr(backend, "prepare_inputs", None)
        if prepare is not None:  # e.g. grant every table to the function before any task
            prepare(input_splits(plans))
        by_id = {p.stage.id: p for p in plans}
        outputs: dict[int, list[dict]] = {}
        samples: dict[int, list] = {}
        for plan in plans:
            final = plan is plans[-1]
            bounds = None
            if plan.stage.range_sort:
                src = plan.inputs[0].rows_from
                bounds = range_bounds(samples.get(src, []), job, plan.fine)
            outputs[plan.stage.id] = _run_stage(job_id, plan, by_id, outputs, settings, backend,
                                                work, code, stats, progress,
                                                text if final else None, samples, bounds,
                                                meter)
        stats.seconds = time.perf_counter() - t0
        stats.count_driver()
        return JobResult(job, outputs[plans[-1].stage.id], stats, work, settings.keep_scratch)
    except BaseException as e:
        e.partial_stats = stats  # type: ignore[attr-defined]  # Ctrl-C reports what ran
        if not settings.keep_scratch:
            storage.delete_prefix(work)
        raise


def input_splits(plans: list[StagePlan]) -> list[dict]:
    """Every table split a job's tasks will read, broadcast sides included (each
    with its table's name)."""
    out: list[dict] = []
    for plan in plans:
        for inp in plan.inputs:
            if inp.rows_from is None and not inp.one_row:
                table = inp.phase.input.scan.table.name.lower()
                out += [{**sp, "table": table} for task in inp.tasks for sp in task]
        for spec in plan.broadcast.values():
            out += spec.get("splits") or []
    return out


def range_bounds(sample: list, job: Job, partitions: int) -> list:
    """Rows whose sort keys cut a sample into ``partitions`` equal ranges (ties
    never split: equal boundary keys are dropped)."""
    if partitions <= 1 or not sample:
        return []
    key = codecache.load_local(job.source, job.sha256)["sortkey"]
    ordered = sorted(sample, key=key)
    bounds: list = []
    for i in range(1, partitions):
        b = ordered[len(ordered) * i // partitions]
        if not bounds or key(bounds[-1]) != key(b):
            bounds.append(b)
    return bounds


def _account(stats: JobStats, results: list[dict]) -> None:
    for r in results:
        stats.task_seconds += r["seconds"]
        ph = stats.phases.setdefault(f"{r['stage']}/{r['kind']}", {
            "stage": r["stage"], "kind": r["kind"], "tasks": 0, "bytes_in": 0,
            "bytes_out": 0, "rows_in": 0, "rows_out": 0, "task_seconds": 0.0})
        ph["tasks"] += 1
        ph["bytes_in"] += r["bytes_in"]
        ph["bytes_out"] += r["bytes_out"]
        ph["rows_in"] += r.get("rows_in", 0)
        ph["rows_out"] += r.get("rows_out", 0)
        ph["task_seconds"] += r["seconds"]
        if (r.get("counters") or {}).get("partitions_merged"):
            ph["adds"] = True   # combiners that added each key's numbers
        stats.malformed += r["malformed"]
        if r["malformed_sample"] and not stats.malformed_sample:
            stats.malformed_sample = r["malformed_sample"]
        if r.get("malformed_first_line") and not stats.malformed_first_line:
            stats.malformed_first_line = r["malformed_first_line"]
        stats.peak_mem_mb = max(stats.peak_mem_mb, r["peak_mem_mb"])
        stats.puts += 1 if r.get("output") else 0
        s3stats.add(stats.s3, r.get("s3"))
        bill = r.get("billing")
        if bill:
            s3stats.add(stats.s3, bill.get("s3_other"))   # duplicate attempts' requests
            stats.metered = True
            stats.billed = stats.billed or bool(bill.get("billed"))
            stats.billed_ms += bill["billed_ms"]
            stats.billed_gb_s += bill["billed_ms"] / 1000 * bill["memory_mb"] / 1024
            stats.invocations += bill["invocations"]
            stats.estimated += bill.get("estimated", 0)
            stats.memory_mb = bill["memory_mb"]
            stats.memories.add(bill["memory_mb"])
            stats.architecture = bill["architecture"]
            stats.peak_mem_mb = max(stats.peak_mem_mb, bill["max_memory_mb"])
            stats.attempts += bill["attempts"]
        else:
            stats.attempts += 1 + r["attempt"]
        for k, v in (r.get("counters") or {}).items():
            if k.startswith("max_") or k == "runs_merged":
                stats.counters[k] = max(stats.counters.get(k, 0), v)
            else:
                stats.counters[k] = stats.counters.get(k, 0) + v


def _rows_ranges(outs: list[dict]) -> list[dict]:
    return [{"uri": o["uri"], "start": o["partitions"][0][0], "end": o["partitions"][0][1]}
            for o in outs if o["records"][0]]


def _params(phase: Phase, plan: StagePlan, outputs: dict[int, list[dict]], settings: Settings,
            text: dict | None) -> dict:
    params: dict = {}
    bc = {}
    for op in phase.ops:
        if isinstance(op, Probe):
            spec = plan.broadcast[op.name]
            if "rows_from" in spec:
                bc[op.name] = {"rows": _rows_ranges(outputs[spec["rows_from"]])}
            else:
                bc[op.name] = spec
    if bc:
        params["broadcast"] = bc
    # tests force many sorted runs, or map-side aggregation to give up early
    for knob in ("sort_spill_records", "merge_fanin", "aggr_check_rows", "aggr_early_rows",
                 "block_bytes"):
        value = getattr(settings, knob, 0)
        if value:
            params[knob] = value
    if text is not None:
        params["text"] = text
    return params


def _group_ranges(ranges: list[dict], size: int) -> list[list[dict]]:
    """Stage-output ranges grouped into map tasks of about ``size`` bytes."""
    groups: list[list[dict]] = []
    cur: list[dict] = []
    n = 0
    for r in ranges:
        if cur and n + (r["end"] - r["start"]) > size:
            groups.append(cur)
            cur, n = [], 0
        cur.append(r)
        n += r["end"] - r["start"]
    if cur:
        groups.append(cur)
    return groups


def _run_stage(job_id: str, plan: StagePlan, by_id: dict[int, StagePlan],
               outputs: dict[int, list[dict]], settings: Settings, backend: Backend, work: str,
               code: dict, stats: JobStats, progress: Progress | None,
               text: dict | None, samples: dict[int, list],
               bounds: list | None = None, meter: CostMeter | None = None) -> list[dict]:
    stage = plan.stage
    consumer = by_id[stage.consumer.id].fine if stage.consumer is not None else 0
    map_text = text if stage.reduce is None else None
    map_events = []
    kinds = []  # per event: "table" or "rows"
    for inp in plan.inputs:
        ph = inp.phase
        partitions = plan.fine if stage.reduce is not None else 0
        params = _params(ph, plan, outputs, settings, map_text)
        if bounds is not None:
            params["bounds"] = bounds
        if inp.one_row:
            map_events.append(events.map_event(
                job=job_id, stage=stage.id, task=len(map_events), input={"rows": []},
                partitions=partitions, work=work, code=code, entry=ph.entry,
                strict=settings.strict, params=params))
            kinds.append("one row")
        elif inp.rows_from is None:
            table = ph.input.scan.table.name.lower()
            for splits in inp.tasks:
                map_events.append(events.map_event(
                    job=job_id, stage=stage.id, task=len(map_events),
                    input={"splits": [{**s, "table": table} for s in splits]},
                    partitions=partitions, work=work, code=code, entry=ph.entry,
                    strict=settings.strict, params=params))
                kinds.append("table")
            stats.splits += inp.splits
            stats.files += len(inp.files)
            stats.gets += inp.splits
            stats.puts += math.ceil(max(1, len(inp.files)) / 1000)
        else:
            ranges = _rows_ranges(outputs[inp.rows_from])
            one = isinstance(ph.input, RowsIn) and (ph.input.merge or ph.input.limit is not None)
            groups = [ranges] if one else _group_ranges(ranges, plan.split_size)
            for group in groups:
                map_events.append(events.map_event(
                    job=job_id, stage=stage.id, task=len(map_events), input={"rows": group},
                    partitions=partitions, work=work, code=code, entry=ph.entry,
                    strict=settings.strict, params=params))
                kinds.append("rows")
                stats.gets += len(group)
    stats.map_tasks += len(map_events)
    stats.gets += len(map_events)
    map_results = _run_phase(backend, map_events, f"Stage-{stage.id} map", progress, meter,
                             plan.memory.get("map", 0))
    _account(stats, map_results)
    for r, kind in zip(map_results, kinds):
        if kind == "table":
            stats.bytes_read += r["bytes_in"]
            stats.rows_read += r["rows_in"]
    stats.bytes_read += plan.broadcast_bytes  # each small table counted once
    if stage.reduce is None:
        samples[stage.id] = [row for r in map_results for row in r.get("sample", ())]
        return [r["output"] for r in map_results if r["output"]]
    stats.bytes_shuffled += sum(r["bytes_out"] for r in map_results)
    feeding = [r["output"] for r in map_results if r["output"]]
    for f in stage.feeds:
        feeding.extend(outputs[f.id])
    feeding = [o for o in feeding if o["rows"]]
    sizes = partition_bytes(feeding, plan.fine)
    ranges = reduce_ranges(plan, sizes, settings)
    if not ranges and stage.reducers == "one":
        ranges = [(0, max(1, plan.fine))]
    group = getattr(settings, "combine_group", 0)
    if not group and settings.backend == "lambda":   # a combiner of a map's size
        group = combine_group(len(feeding), sum(sizes),
                              min(plan.split_size, COMBINE_MAX_BYTES))
    chosen = choose_shuffle(len(feeding), len(ranges), settings.shuffle, settings.backend,
                            fine=plan.fine, group=group, adds=stage.adds_partial_numbers)
    if chosen.mode == "combine" and ranges:
        merge = None
        if stage.adds_partial_numbers:
            # add only when keys repeat enough in a combiner's share of the
            # pairs, judging the groups from what the maps saw
            groups = groups_estimate([(c.get("agg_rows", 0), c.get("agg_groups", 0))
                                      for c in (r.get("counters") or {} for r in map_results)
                                      if "agg_rows" in c])
            records = sum(o["rows"] for o in feeding) / max(1, chosen.combiners)
            stats.groups_estimate = groups
            if combiners_add(records, groups, shuffle.MERGE_MAX_RATIO):
                merge = "sum"
        feeding = _combine(job_id, plan, feeding, chosen.group, work, code, stats, backend,
                           progress, meter, merge)
        if merge and stage.reducers != "one":
            # combiners that added a key's numbers wrote less than the maps:
            # the reducers are sized from what they wrote (Spark's adaptive
            # coalescing, one level later)
            ranges = reduce_ranges(plan, partition_bytes(feeding, plan.fine), settings) or ranges
    list_uri = storage.join(work, f"s{stage.id}-shuffle.json")
    storage.write_bytes(list_uri, _encode_list([shuffle.listed(o) for o in feeding]))
    stats.puts += 1
    # where each reducer's partitions lie in every object, from the sizes the
    # tasks reported: a reducer reads two rows of it instead of each object's
    # table (objects of sorted runs, a join's, need their tables for the runs)
    sorted_objects = sum(1 for o in feeding if o["cuts"])
    bounds_uri = None
    if sorted_objects < len(feeding):
        bounds_uri = storage.join(work, f"s{stage.id}-bounds.bin")
        storage.write_bytes(bounds_uri, shuffle.bounds_table(feeding, max(1, plan.fine)))
        stats.puts += 1
    params = _params(stage.reduce, plan, outputs, settings, text)
    reduce_events = [events.shuffle_reduce_event(
        job=job_id, stage=stage.id, task=i, shuffle_list=list_uri, lo=lo, hi=hi, work=work,
        code=code, entry=stage.reduce_entry, strict=settings.strict, partitions=consumer,
        params=params, bounds=bounds_uri) for i, (lo, hi) in enumerate(ranges)]
    stats.reduce_tasks += len(reduce_events)
    # per reducer: its code, the list, its bounds rows, and per object its range
    # (an object of sorted runs: its table and runs too)
    per_reducer = 1 + (bounds_uri is not None) + len(feeding) + 2 * sorted_objects
    stats.gets += len(reduce_events) * (1 + per_reducer)
    stats.shuffle_gets += len(reduce_events) * per_reducer
    reduce_results = _run_phase(backend, reduce_events, f"Stage-{stage.id} reduce", progress,
                                meter, plan.memory.get("reduce", 0))
    _account(stats, reduce_results)
    if stage.consumer is not None:
        stats.bytes_shuffled += sum(r["bytes_out"] for r in reduce_results)
    samples[stage.id] = [row for r in reduce_results for row in r.get("sample", ())]
    return [r["output"] for r in reduce_results if r["output"]]


def partition_bytes(outputs: list[dict], fine: int) -> list[int]:
    """Bytes of each fine partition, summed over every output (each reports
    its partitions' ``sizes``; an output with fewer partitions adds nothing
    past its last).

    >>> partition_bytes([{"sizes": [1, 2, 3]}, {"sizes": [10, 20]}], 3)
    [11, 22, 3]
    """
    sizes = [0] * max(1, fine)
    for o in outputs:
        for p, n in enumerate(o["sizes"][:len(sizes)]):
            sizes[p] += n
    return sizes


def _encode_list(objects: list[dict]) -> bytes:
    return json.dumps(objects, separators=(",", ":")).encode("utf-8")


def combine_groups(outputs: list[dict], group: int,
                   max_bytes: int = COMBINE_MAX_BYTES) -> list[list[dict]]:
    """Outputs in consecutive groups of ``group``, a group closed early before
    its bytes pass ``max_bytes`` (a combiner holds its inputs and its output
    on local disk: Lambda's ephemeral storage is 1,024 MB by default).

    >>> [len(g) for g in combine_groups([{"size": 10}] * 7, 3)]
    [3, 3, 1]
    >>> [len(g) for g in combine_groups([{"size": 10}] * 7, 3, max_bytes=25)]
    [2, 2, 2, 1]
    """
    groups: list[list[dict]] = []
    cur: list[dict] = []
    n = 0
    for o in outputs:
        if cur and (len(cur) >= max(1, group) or n + o["size"] > max_bytes):
            groups.append(cur)
            cur, n = [], 0
        cur.append(o)
        n += o["size"]
    if cur:
        groups.append(cur)
    return groups


def _combine(job_id: str, plan: StagePlan, feeding: list[dict], group: int, work: str,
             code: dict, stats: JobStats, backend: Backend,
             progress: Progress | None, meter: CostMeter | None = None,
             merge: str | None = None) -> list[dict]:
    """Run the combiners of a stage: each gathers ``group`` of its map
    outputs into one object in the same format (``merge="sum"``: adding the
    numbers of each key); returns their outputs (what the reducers read
    instead)."""
    evs = [events.combine_event(job=job_id, stage=plan.stage.id, task=i,
                                objects=[shuffle.listed(o) for o in g], work=work, code=code,
                                merge=merge)
           for i, g in enumerate(combine_groups(feeding, group))]
    results = _run_phase(backend, evs, f"Stage-{plan.stage.id} combine", progress, meter,
                         plan.memory.get("add" if merge else "combine", 0))
    _account(stats, results)
    stats.combine_tasks += len(evs)
    stats.gets += len(feeding)
    stats.shuffle_gets += len(feeding)
    return [r["output"] for r in results if r["output"] and r["output"]["rows"]]


class ShippedFileChangedError(SqlError):
    """A UDF's file no longer has the content its function was created with."""


def ship_files(needed: Sequence, work: str) -> list[dict]:
    """Upload the files of the UDFs a job calls (and its TRANSFORM scripts)
    beside its code, content addressed (``files/<sha256>/<name>``); each must
    still hold what it held when its function was created (the tasks check
    the same sha256)."""
    shipped: dict[str, dict] = {}
    for u in needed:
        if u.file in shipped:
            if shipped[u.file]["sha256"] != u.sha256:
                raise ShippedFileChangedError(
                    f"two functions use different files named {u.file}; rename one")
            continue
        try:
            data = storage.read_range(storage.to_uri(u.path))
        except OSError as e:
            raise ShippedFileChangedError(f"function {u.name}(): cannot read {u.path}: "
                                          f"{e.strerror or e}") from None
        if codecache.sha256_hex(data) != u.sha256:
            raise ShippedFileChangedError(
                f"function {u.name}(): {u.path} changed since the function was created; "
                f"run CREATE FUNCTION again to use the new version")
        uri = storage.join(work, f"files/{u.sha256}/{u.file}")
        storage.write_bytes(uri, data)
        shipped[u.file] = {"name": u.file, "uri": uri, "sha256": u.sha256}
    return list(shipped.values())


def _run_phase(backend: Backend, evs: list[dict], label: str,
               progress: Progress | None, meter: CostMeter | None = None,
               memory_mb: int = 0) -> list[dict]:
    """Run one phase's tasks; ``memory_mb`` (Lambda): the function memory they get."""
    if not evs:
        return []
    if memory_mb:
        for ev in evs:
            ev["memory_mb"] = memory_mb
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
        if meter is not None:  # raises CostLimitError, which the backend stops the job for
            meter.add(event, result)

    try:
        return backend.run(evs, on_done)
    except TaskFailedError as e:
        # bad input data (corrupt gzip, a file changed since planning) is the
        # data's fault: one line naming the file, not a worker's traceback
        kind, _, detail = e.message.partition(": ")
        if kind == InputError.__name__:
            raise InputError(detail) from e
        raise
