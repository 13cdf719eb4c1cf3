"""How long a query would take, and cost, on AWS Lambda over the AMPLab 5nodes data,
projected from a run of sqlmr on a small scale of the same data.

Pure functions, no I/O; every figure can be checked by hand.  The model
describes what sqlmr's code does, and nothing else: how tasks are sized
(:func:`sqlmr.splits.choose_lambda_split`), how a shuffle is planned
(:mod:`sqlmr.shuffle_plan`) and how a task reads and writes S3
(:func:`code_facts`, read from the runtime and the driver) come from the
code itself; the figures it cannot know (S3 throughput per function, request
latency, cold starts, a Lambda vCPU's speed) are the stated parameters of
:class:`LambdaModel`, each a ``sqlmr bench`` flag.

**The model.**  A query is a sequence of *phases* (the map, combine or
reduce tasks of one stage), run one after the other.  For each phase measured
here:

1. *Bytes scale with the table.*  A map phase over a table reads that table's
   5nodes bytes (:data:`FIVENODES_BYTES`: rankings 6.38 GB, uservisits 126.8 GB,
   GB = 10^9 bytes) instead of the bytes it read here; the ratio ``k`` of the two
   also scales what it writes (the shuffle, or the result), and what later phases
   read.  (A map-side partial aggregate that keeps aggregating shrinks less at
   5nodes than at a small scale, so for few-group queries this over-states the
   shuffle; one that gives up -- 2a-2c -- passes its rows through at any scale.)
2. *CPU per byte is measured.*  The phase's task CPU seconds divided by the
   bytes its tasks read, here, on this machine.  On Lambda a function gets
   ``memory / 1769`` of a vCPU; the generated loop is one Python thread, so
   more than one vCPU does not help (:func:`cpu_share`); ``cpu_factor`` scales
   for a Lambda vCPU slower (> 1) or faster (< 1) than a core of this machine.
3. *Tasks as sqlmr plans them on Lambda.*  Map tasks: one per split, the split
   size chosen per stage by :func:`sqlmr.splits.choose_lambda_split` (or
   ``split_mb``, as ``SET split_mb``).  Reducers: planned by Hive's rule (one
   per 256 MiB of the stage's base tables, :func:`reducers`); when the driver
   coalesces fine partitions after the maps (:attr:`CodeFacts.reduce_target`)
   the reducers are the shuffled bytes in ranges of that target
   (:func:`coalesced_reducers`), else the planned ones.  Between maps and
   reducers, combiners when :func:`sqlmr.shuffle_plan.choose_shuffle` picks
   them, as the driver asks it.
4. *One task's duration* (:func:`task_duration`): an invoke and the job code's
   GET, its input GETs (``CodeFacts.read_depth`` or ``fetch_depth`` at a time)
   and bytes at ``s3_mbps``, its CPU -- reading overlapped with the CPU when
   the runtime reads ahead (the slower of the two), else one after the other
   -- then its output PUT.
5. *Scheduling* (:func:`makespan`): equal tasks go to the earliest free
   environment, at most ``functions`` at once.  New environments come from a
   token bucket: ``burst`` at once, then ``scale_per_10s`` per 10 s; each new
   environment pays ``cold_start_s`` once per query.
6. *S3 request rates*: a phase cannot be faster than its GETs at ``get_rate``
   or its PUTs at ``put_rate`` per second per key prefix: a table's files
   share one prefix; shuffle objects spread over ``CodeFacts.prefixes``.  When
   that bounds a phase, its tasks wait on S3 (503 Slow Down, back off) and are
   billed while waiting.

Time = the sum of the phases' times.  Cost (:func:`project`) = billed GB-s
(every task's duration and every cold start, the init phase being billed) x
memory / 1024 at the architecture's GB-s price + one request per task + S3 GET
and PUT requests, from :mod:`sqlmr.prices` through :func:`sqlmr.cost.lambda_cost`.
Not modelled: the driver's own work (planning, listing, reading the final
result), retries, stragglers, Lambda throttling.

>>> m = LambdaModel()
>>> round(cpu_share(m.memory_mb), 3), reducers(126.8e9), map_tasks(126.8e9, 64 * MIB)
(1.0, 473, 1890)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass, field, fields

from sqlmr import cost as costs
from sqlmr import shuffle_plan
from sqlmr.splits import (BYTES_PER_REDUCER, MAX_REDUCERS, adding_combiner_memory,
                          choose_lambda_split, choose_task_memory, combine_group)

GB = 1e9
#: Bytes of the AMPLab 5nodes tables (the benchmark's published sizes; documents is
#: query 4's crawl).
FIVENODES_BYTES: dict[str, float] = {"rankings": 6.38 * GB, "uservisits": 126.8 * GB,
                                     "documents": 136.9 * GB}
VCPU_MB = 1769          # Lambda memory that buys one vCPU
MAX_VCPUS = 6           # at 10,240 MB
MIB = 1 << 20
#: Rows of the 5nodes tables (90 M pages; ~752 M visits in the published data).
FIVENODES_ROWS: dict[str, int] = {"rankings": 90_000_000, "uservisits": 752_000_000}


@dataclass(frozen=True)
class CodeFacts:
    """How sqlmr's code reads, writes and shuffles on S3 (:func:`code_facts`
    reads them from the runtime and the driver; not parameters)."""

    overlapped: bool = False      # a task reads ahead while it computes
    split_get_bytes: int = 0      # bytes per ranged GET of a split (0: one GET a split)
    split_first_bytes: int = 0    # a split's first, smaller GET (0: none)
    read_depth: int = 1           # a map's split GETs in flight
    fetch_depth: int = 1          # a reducer's shuffle GETs in flight
    combine_depth: int = 1        # a combiner's object downloads in flight
    prefixes: int = 1             # key prefixes a stage's shuffle objects spread over
    index_reads: bool = False     # reducers GET the shuffle list and each object's table
    bounds_reads: bool = False    # ... or the list and two rows of the driver's bounds table
    combiners: bool = False       # the driver may put combiners before the reducers
    reduce_target: int = 0        # bytes per coalesced reducer (0: Hive's rule, no coalescing)
    combine_max: int = 0          # bytes of map outputs a combiner gathers at most (0: any)
    merge_max_ratio: float = 0.0  # a combiner adds a key's numbers while out/in stays under
                                  # this (0: combiners never add)
    add_round_bytes: int = 0      # ... reading its input in rounds of this many bytes
    multipart_bytes: int = 0      # an output this big is a multipart upload (0: never)
    part_bytes: int = 0           # ... in parts of this many bytes

    def put_requests(self, object_bytes: float) -> int:
        """PUT-class requests that write one output of ``object_bytes``: one PUT,
        or a multipart upload's create, parts and complete.

        >>> c = CodeFacts(multipart_bytes=512 << 20, part_bytes=64 << 20)
        >>> c.put_requests(384 << 20), c.put_requests(600 << 20), CodeFacts().put_requests(1e12)
        (1, 12, 1)
        """
        if not self.multipart_bytes:
            return 1
        from runtime import s3
        return s3.put_requests(object_bytes, self.multipart_bytes, self.part_bytes)

    def split_gets(self, split_bytes: float) -> int:
        """Ranged GETs that read one split of ``split_bytes``.

        >>> CodeFacts(split_get_bytes=16 << 20, split_first_bytes=1 << 20).split_gets(256 << 20)
        17
        >>> CodeFacts().split_gets(256 << 20), CodeFacts(split_get_bytes=8 << 20).split_gets(1)
        (1, 1)
        """
        if not self.split_get_bytes:
            return 1
        first = min(self.split_first_bytes, split_bytes)
        return max(1, (1 if first else 0) + math.ceil(
            max(0.0, split_bytes - first) / self.split_get_bytes))


def code_facts() -> CodeFacts:
    """What the code in this tree does (the runtime's read-ahead, its key
    prefixes, the driver's shuffle)."""
    from runtime import events, s3, shuffle
    from sqlmr import driver
    try:
        from runtime import readahead  # type: ignore[attr-defined]
    except ImportError:
        readahead = None
    return CodeFacts(
        overlapped=readahead is not None,
        split_get_bytes=getattr(readahead, "CHUNK", 0),
        split_first_bytes=getattr(readahead, "FIRST", 0),
        read_depth=getattr(readahead, "DEPTH", 1),
        fetch_depth=getattr(readahead, "SHUFFLE_DEPTH", 1),
        combine_depth=getattr(shuffle, "COMBINE_FETCHES", 1),
        prefixes=getattr(events, "SPREAD_PREFIXES", 1),
        index_reads=hasattr(events, "shuffle_reduce_event"),
        bounds_reads=hasattr(shuffle, "bounds_table"),
        combiners=hasattr(events, "combine_event"),
        reduce_target=getattr(driver, "LAMBDA_REDUCE_BYTES", 0),
        combine_max=getattr(driver, "COMBINE_MAX_BYTES", 0),
        merge_max_ratio=getattr(shuffle, "MERGE_MAX_RATIO", 0.0),
        add_round_bytes=getattr(shuffle, "ADD_ROUND_BYTES", 0),
        multipart_bytes=s3.MULTIPART_THRESHOLD, part_bytes=s3.PART_SIZE)


@dataclass(frozen=True)
class LambdaModel:
    """The stated parameters of the projection (each is a ``sqlmr bench`` flag)."""

    functions: int = 1000            # concurrent functions (Lambda's default regional limit)
    memory_mb: int = 1769            # function memory; 1,769 MB = 1 vCPU
    architecture: str = "arm64"
    s3_mbps: float = 90.0            # S3 read/write throughput per function, MB/s (10^6 B)
    request_latency_s: float = 0.03  # one S3 request or invoke round trip
    cold_start_s: float = 0.5        # a new environment's init, once per query
    burst: int = 1000                # environments Lambda starts at once
    scale_per_10s: int = 1000        # then new environments per 10 s
    cpu_factor: float = 1.0          # Lambda vCPU seconds per CPU second measured here
    split_mb: float = 0.0            # map split, MiB; 0 = chosen per stage (as SET split_mb)
    shuffle: str = "auto"            # auto | direct | combine (as SET shuffle)
    get_rate: float = 5500.0         # S3 GET per second per prefix
    put_rate: float = 3500.0         # S3 PUT per second per prefix
    code: CodeFacts = field(default_factory=code_facts)   # what the code does (not a flag)

    def describe(self) -> str:
        """One line stating every parameter and what the code does.

        >>> LambdaModel(functions=10, code=CodeFacts()).describe()[:60]
        'functions=10, memory_mb=1769, architecture=arm64, s3_mbps=90'
        """
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "code":
                parts.append("code: " + ", ".join(f"{k}={w}" for k, w in asdict(v).items()))
            else:
                parts.append(f"{f.name}={v:g}" if isinstance(v, float) else f"{f.name}={v}")
        return ", ".join(parts)


def cpu_share(memory_mb: float) -> float:
    """vCPUs a task's generated loop (one Python thread) uses: memory / 1,769 MB
    of one vCPU, at most one.

    >>> cpu_share(1769), cpu_share(884.5), cpu_share(3538)
    (1.0, 0.5, 1.0)
    """
    return min(memory_mb / VCPU_MB, 1.0)


def map_tasks(input_bytes: float, split_bytes: int) -> int:
    """Map tasks over ``input_bytes`` of a table: one per split.

    >>> map_tasks(6.38e9, 64 * MIB), map_tasks(1, 64 * MIB), map_tasks(0, 64 * MIB)
    (96, 1, 1)
    """
    return max(1, math.ceil(input_bytes / max(1, split_bytes)))


def reducers(stage_input_bytes: float) -> int:
    """The planned reducers: Hive's rule as :func:`sqlmr.splits.choose_reducers`
    applies it on Lambda, one per 256 MiB of the stage's input, 1 to 1,009.

    >>> reducers(126.8e9), reducers(1000), reducers(1e15)
    (473, 1, 1009)
    """
    by_size = math.ceil(stage_input_bytes / BYTES_PER_REDUCER)
    return int(min(MAX_REDUCERS, max(1, by_size)))


def coalesced_reducers(shuffle_bytes: float, fine: int, target: int) -> int:
    """Reducers after the driver coalesces ``fine`` partitions of ``shuffle_bytes``
    (spread evenly by the key's hash) into contiguous ranges of at most
    ``target`` bytes (:func:`sqlmr.shuffle_plan.coalesce`).

    2a: 12.5 GB in 2,048 partitions of 6.1 MB; 10 fit in 64 MiB: 205 reducers.

    >>> coalesced_reducers(12.5e9, 2048, 64 * MIB)
    205
    >>> coalesced_reducers(1e6, 1024, 64 * MIB), coalesced_reducers(1e12, 1024, 64 * MIB)
    (1, 1024)
    """
    fine = max(1, fine)
    if shuffle_bytes <= 0:
        return 1
    per = max(1, int(target // (shuffle_bytes / fine)))
    return min(fine, math.ceil(fine / per))


def task_duration(read_bytes: float, write_bytes: float, cpu_seconds: float, gets: float,
                  puts: float, model: LambdaModel, depth: int = 1,
                  overlapped: bool = False, memory_mb: int = 0) -> float:
    """Seconds one task runs: an invoke and the code GET, then its ``gets``
    input requests (``depth`` at a time) and ``read_bytes`` at ``s3_mbps``
    alongside its CPU when ``overlapped`` (the slower of the two), else one
    after the other; then ``puts`` requests and ``write_bytes``.  The task's
    memory is ``memory_mb`` (0: the model's).

    Hand check: 64 MB read, 6.4 MB written at 90 MB/s = 0.7111 + 0.0711 s; two
    CPU seconds at 1 vCPU = 2 s; requests: invoke + code + 1 GET + 1 PUT = 4 x
    0.03 = 0.12 s.  One after the other: 2.9022 s.

    >>> round(task_duration(64e6, 6.4e6, 2.0, 1, 1, LambdaModel(code=CodeFacts())), 4)
    2.9022

    Overlapped, the read (0.03 + 0.7111 s) hides under the CPU: 0.06 + 2 +
    0.03 + 0.0711 = 2.1611 s.  At 884 MB the task gets 884 / 1769 = 0.4997 of
    a vCPU: 4.0023 s of CPU.

    >>> m = LambdaModel(code=CodeFacts())
    >>> round(task_duration(64e6, 6.4e6, 2.0, 1, 1, m, overlapped=True), 4)
    2.1611
    >>> round(task_duration(64e6, 6.4e6, 2.0, 1, 1, LambdaModel(memory_mb=884)), 4)
    4.9045

    A reducer's 24 GETs, 12 at a time: two rounds of 0.03 s.

    >>> round(task_duration(0, 0, 0, 24, 0, m, depth=12), 4)
    0.12
    """
    lat = model.request_latency_s
    bps = model.s3_mbps * 1e6
    read = math.ceil(gets / max(1, depth)) * lat + read_bytes / bps
    cpu = cpu_seconds * model.cpu_factor / cpu_share(memory_mb or model.memory_mb)
    body = max(read, cpu) if overlapped else read + cpu
    return 2 * lat + body + puts * lat + write_bytes / bps


def ready_time(j: int, burst: int, per_second: float) -> float:
    """When new environment ``j`` (0-based) can start: the first ``burst`` at once,
    then ``per_second`` more each second.

    >>> ready_time(0, 1000, 100), ready_time(999, 1000, 100), ready_time(1000, 1000, 100)
    (0.0, 0.0, 0.01)
    >>> ready_time(1999, 1000, 100)
    10.0
    """
    if j < burst:
        return 0.0
    return (j - burst + 1) / per_second


def makespan(tasks: int, duration: float, functions: int, cold_start_s: float = 0.0,
             warm: int = 0, burst: int = 1000, per_second: float = 100.0) -> tuple[float, int]:
    """(seconds until the last of ``tasks`` equal tasks ends, new environments started).

    Each task goes to the environment free soonest: one of the ``warm`` ones or
    one already started (free when its last task ends), or a new one (free at
    :func:`ready_time` + ``cold_start_s``), never more than ``functions`` in all.

    One wave, all cold: 0.5 + 2 = 2.5 s.

    >>> makespan(10, 2.0, functions=1000, cold_start_s=0.5)
    (2.5, 10)

    2,500 tasks on 1,000 functions: three waves, 0.5 + 3 x 2 = 6.5 s.

    >>> makespan(2500, 2.0, functions=1000, cold_start_s=0.5)
    (6.5, 1000)

    Warm environments from an earlier phase skip the cold start:

    >>> makespan(2500, 2.0, functions=1000, cold_start_s=0.5, warm=1000)
    (6.0, 0)

    A ramp: 1,200 tasks of 10 s, 1,200 functions, 1,000 at once then 100/s:
    the 200 more start at 0.01 ... 2.00 s, so the last ends at 12 s.

    >>> makespan(1200, 10.0, functions=1200, burst=1000, per_second=100)
    (12.0, 1200)
    """
    if tasks <= 0:
        return 0.0, 0
    functions = max(1, functions)
    warm = min(warm, functions)
    free = [0.0] * warm            # heap of times existing environments become free
    started = 0                    # new environments so far
    end = 0.0
    for _ in range(tasks):
        new_at = (ready_time(started, burst, per_second) + cold_start_s
                  if warm + started < functions else math.inf)
        if free and free[0] <= new_at:
            t = heapq.heappop(free)
        else:
            t = new_at
            started += 1
        finish = t + duration
        end = max(end, finish)
        heapq.heappush(free, finish)
    return round(end, 9), started


# ------------------------------------------------------------------ phases

@dataclass
class Phase:
    """One phase at the target scale: ``tasks`` equal tasks."""

    kind: str                      # map | combine | reduce
    tasks: int
    bytes_in: float                # all tasks together
    bytes_out: float
    cpu_s_per_byte: float          # measured
    cpu_s_per_task: float = 0.0    # measured, for phases that read no bytes
    gets_per_task: float = 1.0     # input GETs (split pieces, shuffle lists, tables, ranges)
    puts_per_task: float = 1.0
    label: str = ""
    reads_table: bool = False      # a map over table files (the driver lists them)
    tables: int = 1                # tables it reads (each listed: 2 HEAD probes + LIST)
    depth: int = 1                 # input GETs in flight
    overlapped: bool = False       # reading alongside the CPU
    prefixes: int = 1              # key prefixes its input objects spread over
    code_get: bool = True          # each task GETs the job's code (combiners do not)
    extra_puts: int = 0            # once per phase: the driver's shuffle list
    split: int = 0                 # a map's split size, bytes (notes)
    shuffle: str = ""              # a reduce's shuffle (notes): the planner's reason
    memory_mb: int = 0             # the tasks' function memory (0: the model's)

    def duration(self, model: LambdaModel) -> float:
        n = max(1, self.tasks)
        read, write = self.bytes_in / n, self.bytes_out / n
        cpu = read * self.cpu_s_per_byte + self.cpu_s_per_task
        d = task_duration(read, write, cpu, self.gets_per_task, self.puts_per_task, model,
                          self.depth, self.overlapped, self.memory_mb)
        return d if self.code_get else d - model.request_latency_s

    def requests(self, code: CodeFacts | None = None) -> tuple[int, int]:
        """(GETs, PUTs) of the phase's tasks, and what the driver writes for it;
        with ``code``, an output big enough for a multipart upload counts its
        parts.

        >>> Phase("reduce", 10, 0, 0, 0, gets_per_task=7, extra_puts=1).requests()
        (80, 11)
        >>> Phase("combine", 2, 0, 1200 << 20, 0).requests(CodeFacts(multipart_bytes=512 << 20,
        ...                                                          part_bytes=64 << 20))
        (4, 24)
        """
        gets = math.ceil(self.tasks * (self.gets_per_task + (1 if self.code_get else 0)))
        per_output = (code or CodeFacts()).put_requests(self.bytes_out / max(1, self.tasks))
        puts = math.ceil(self.tasks * self.puts_per_task * per_output) + self.extra_puts
        return gets, puts


@dataclass
class PhaseEstimate:
    phase: Phase
    task_seconds: float        # one task's duration
    seconds: float             # the phase's wall time
    bound: str                 # what sets it: tasks | S3 GET rate | S3 PUT rate
    new_environments: int
    gb_seconds: float
    gets: int
    puts: int


@dataclass
class Projection:
    seconds: float
    cost: costs.LambdaCost
    phases: list[PhaseEstimate]
    warnings: list[str] = field(default_factory=list)

    @property
    def dollars(self) -> float:
        return self.cost.total


def project(phases: list[Phase], model: LambdaModel) -> Projection:
    """Time and cost of running ``phases`` one after the other on Lambda.

    Requests counted (:meth:`Phase.requests`): per task one invoke, one GET of
    the job code, its input GETs and output PUTs; per job one PUT of the code,
    per table read two HEADs and a LIST (the driver's listing), the driver's
    GET of each final output and the LIST that deletes the job's scratch.

    Hand check, one map phase of 10 tasks of 100 MB each, CPU 1e-8 s/B = 1 s,
    read 100 MB at 100 MB/s = 1 s, 4 requests x 0.05 s = 0.2 s: 2.2 s a task.
    4 functions: 3 waves + one cold start = 0.5 + 6.6 = 7.1 s.  Billed:
    10 x 2.2 + 4 x 0.5 = 24 s x 1769/1024 GB = 41.4609 GB-s.  Requests 10.
    GET: 10 x (code + split) + 2 HEADs + 10 outputs = 32.  PUT: 10 + code +
    2 LISTs = 13.  $: 41.4609 x 0.0000133334 + 10 x 0.2e-6 + 32 x 0.4e-6 +
    13 x 5e-6 = 0.00055282 + 0.000002 + 0.0000128 + 0.000065 = 0.00063262.

    >>> p = Phase("map", 10, 1e9, 0.0, 1e-8, reads_table=True)
    >>> r = project([p], LambdaModel(functions=4, s3_mbps=100, request_latency_s=0.05))
    >>> round(r.seconds, 6), round(r.cost.gb_seconds, 4), r.cost.requests, r.cost.gets, r.cost.puts
    (7.1, 41.4609, 10, 32, 13)
    >>> round(r.dollars, 8)
    0.00063262
    """
    per_second = model.scale_per_10s / 10.0
    warm: dict[int, int] = {}                    # memory -> environments started (a
                                                 # function per memory: none shared)
    out: list[PhaseEstimate] = []
    total_s = gb_s = 0.0
    requests = gets = 0
    puts = 2                                     # the job code; the LIST that deletes
                                                 # the job's scratch (DELETE is free)
    warnings: list[str] = []
    for ph in phases:
        d = ph.duration(model)
        mem = ph.memory_mb or model.memory_mb
        span, new = makespan(ph.tasks, d, model.functions, model.cold_start_s,
                             warm.get(mem, 0), model.burst, per_second)
        warm[mem] = warm.get(mem, 0) + new
        ph_gets, ph_puts = ph.requests(model.code)
        seconds, bound = span, "tasks"
        if ph_gets / (model.get_rate * ph.prefixes) > seconds:
            seconds, bound = ph_gets / (model.get_rate * ph.prefixes), "S3 GET rate"
        out_prefixes = model.code.prefixes if ph.puts_per_task else 1
        if ph_puts / (model.put_rate * out_prefixes) > seconds:
            seconds, bound = ph_puts / (model.put_rate * out_prefixes), "S3 PUT rate"
        if ph.reads_table:                       # the driver lists each table: a HEAD
            ph_puts += ph.tables                 # of the name, of the bucket, a LIST
            ph_gets += 2 * ph.tables
        # Bound by S3's request rate, tasks wait for their requests (503 Slow Down and
        # back off) and are billed while they wait: durations stretch with the phase.
        stretch = seconds / span if span > 0 else 1.0
        billed = (ph.tasks * d * stretch + new * model.cold_start_s) * mem / 1024
        if d > 900:
            warnings.append(f"{ph.label or ph.kind} tasks would run {d:,.0f} s, over "
                            f"Lambda's 900 s limit")
        out.append(PhaseEstimate(ph, d, seconds, bound, new, billed, ph_gets, ph_puts))
        total_s += seconds
        gb_s += billed
        requests += ph.tasks
        gets += ph_gets
        puts += ph_puts
    if phases:
        gets += phases[-1].tasks                 # the driver reads each final output
    cost = costs.lambda_cost(gb_s, requests, gets, puts, model.architecture)
    return Projection(total_s, cost, out, warnings)


# ------------------------------------------------------- from measurements

@dataclass
class Measured:
    """One phase as it ran here (sums over its tasks)."""

    stage: int
    kind: str                       # map | combine | reduce
    tasks: int
    seconds: float                  # task seconds
    bytes_in: int
    bytes_out: int
    table_bytes: dict[str, int] = field(default_factory=dict)  # map over tables: split bytes
    single: bool = False            # one task by design (a merge, LIMIT, one reducer)
    broadcast: bool = False         # its maps hold a broadcast side in memory
    rows_out: int = 0               # records written (a map: into the shuffle)
    adds: bool = False              # combiners that added each key's numbers ...
    shuffle_bytes: int = 0          # ... reading these bytes of partitions (no indexes)


def split_size(stage_bytes: float, planned: int, model: LambdaModel) -> int:
    """The split of a stage on Lambda: ``split_mb`` when set, else the
    planner's choice (:func:`sqlmr.splits.choose_lambda_split`).

    >>> split_size(126.8e9, 473, LambdaModel()) // MIB, split_size(1e9, 0, LambdaModel(split_mb=8)) // MIB
    (256, 8)
    """
    return split_and_memory(stage_bytes, planned, model)[0]


def split_and_memory(stage_bytes: float, planned: int, model: LambdaModel) -> tuple[int, int]:
    """(split bytes, map memory MB) of a stage on Lambda, as the driver plans
    them: ``split_mb`` at the function's memory when set, else the pair
    :func:`sqlmr.splits.choose_lambda_split` picks.

    >>> [(n // MIB, m) for n, m in (split_and_memory(126.8e9, 473, LambdaModel()),
    ...                             split_and_memory(1e9, 0, LambdaModel(split_mb=8)))]
    [(256, 1024), (8, 1769)]
    """
    if model.split_mb > 0:
        return int(model.split_mb * MIB), model.memory_mb
    c = choose_lambda_split(stage_bytes, planned, functions=model.functions,
                            memory_mb=model.memory_mb, architecture=model.architecture)
    return c.size, c.memory_mb


def scale_phases(measured: list[Measured], data_bytes: dict[str, float], model: LambdaModel,
                 target: dict[str, float] | None = None,
                 result_ratio: float | None = None,
                 stage_tables: dict[int, list[str]] | None = None,
                 adding: dict[int, float | None] | None = None) -> list[Phase]:
    """The phases of a query at the ``target`` table sizes (default 5nodes).

    ``data_bytes``: the bytes of each table where it was measured.  A map over
    a table scales by ``target / data_bytes`` of that table; a reduce by the
    ratio of its stage's maps; a map over an earlier stage's rows by the ratio
    of the phase before it.  CPU per byte is the measured task seconds over the
    measured input bytes.  ``result_ratio`` (rows of the result at the target
    over rows here), when known, scales what the last phase writes instead: a
    GROUP BY's groups do not grow with the data.  ``stage_tables`` (stage id ->
    the base tables feeding it, as the compiler records them) plans reducers as
    sqlmr's driver does: Hive's rule on those tables' bytes.  Combiners are
    the driver's (:func:`sqlmr.shuffle_plan.choose_shuffle`); a combine phase
    measured here only lends its CPU per byte.  ``adding`` (stage id -> its
    groups at the target, None when unknown) names the stages whose
    combiners add each key's numbers (a SUM or COUNT by one key):
    :func:`sqlmr.shuffle_plan.added_share` gives what such a combiner writes, and the reducers
    are coalesced from that.

    Hand check, with the code reading one GET a split, no coalescing: 2a
    measured on 25.4 MB of uservisits, 2 map tasks, 0.5 task seconds, 1 MB
    shuffled; then 2 reducers, 0.1 s.  k = 126.8e9 / 25.4e6 = 4992.1.  Splits
    of 256 MiB (:func:`split_size`): 473 maps; shuffle 1 MB x k = 4.99 GB.
    Reducers: Hive's rule on 126.8 GB = 473, each reading one range of each of
    the 473 map outputs; CPU 0.1 s / 1 MB = 1e-7 s per shuffle byte.

    >>> ms = [Measured(1, "map", 2, 0.5, 25_400_000, 1_000_000, {"uservisits": 25_400_000}),
    ...       Measured(1, "reduce", 2, 0.1, 1_000_000, 50_000)]
    >>> a, b = scale_phases(ms, {"uservisits": 25.4e6}, LambdaModel(code=CodeFacts()))
    >>> a.tasks, round(a.bytes_in / 1e9, 1), round(a.bytes_out / 1e9, 3), round(a.cpu_s_per_byte * 25.4e6, 3)
    (473, 126.8, 4.992, 0.5)
    >>> b.tasks, b.gets_per_task, round(b.bytes_in / 1e9, 3), round(b.cpu_s_per_byte, 9)
    (473, 473.0, 4.992, 1e-07)

    With the shuffle sqlmr has now (fine partitions coalesced into 64 MiB
    reducers, each reading the shuffle list and two rows of the driver's
    bounds table, then a range of every object it reads): 4.99 GB in 2,048 partitions of 2.44 MB,
    27 to a reducer: 76 reducers.  473 x 76 x 2 GETs direct would take 13 s
    at 5,500 a second, so the driver puts combiners before them
    (:func:`sqlmr.shuffle_plan.choose_shuffle`), each of a map's size
    (:func:`sqlmr.splits.combine_group`: 25 outputs of 10.6 MB in 256 MiB):
    19 combiners, and a reducer GETs 2 + 19.

    >>> facts = CodeFacts(index_reads=True, bounds_reads=True, combiners=True,
    ...                   reduce_target=64 * MIB, fetch_depth=12, prefixes=256)
    >>> a, c, b = scale_phases(ms, {"uservisits": 25.4e6}, LambdaModel(code=facts))
    >>> c.kind, c.tasks, round(c.gets_per_task, 2), b.tasks, b.gets_per_task, b.extra_puts
    ('combine', 19, 24.89, 76, 21.0, 2)
    >>> b.shuffle
    'combine: 473 maps × 76 reducers = 36.1k GETs direct, 2,069 with 19 combiners of 25 map outputs'
    """
    target = FIVENODES_BYTES if target is None else target
    code = model.code
    phases: list[Phase] = []
    ratios: list[float] = []                   # k of each phase, in order
    stage_maps: dict[int, list[tuple[Phase, float]]] = {}  # stage -> (map phase, its k)
    stage_in: dict[int, float] = {}            # stage -> its base tables' bytes at target
    stage_rows: dict[int, float] = {}          # stage -> records its maps shuffle, at target
    reduced = {m.stage for m in measured if m.kind == "reduce"}
    single_reduce = {m.stage for m in measured if m.kind == "reduce" and m.single}
    combine_cpu = [m.seconds / m.bytes_in for m in measured
                   if m.kind == "combine" and m.bytes_in and not m.adds]
    # combiners that added here: their CPU per byte, and what the maps
    # shuffled (they read it; the reducers read what they wrote)
    added = {m.stage: m for m in measured if m.kind == "combine" and m.adds and m.shuffle_bytes}

    def planned(stage: int, fallback: float) -> int:
        if stage not in reduced:
            return 0
        if stage in single_reduce:
            return 1
        base = (stage_tables or {}).get(stage)
        if base and all(t in target for t in base):
            return reducers(sum(target[t] for t in base))
        return reducers(stage_in.get(stage, fallback))

    def stage_split(stage: int, fallback: float) -> int:
        """The stage's split as plan_job sizes it: from its table input's
        bytes, else its base tables' (a stage over rows or a shuffle)."""
        return stage_split_memory(stage, fallback)[0]

    def stage_split_memory(stage: int, fallback: float) -> tuple[int, int]:
        base = (stage_tables or {}).get(stage)
        size = table_in.get(stage) or (sum(target[t] for t in base) if base and all(
            t in target for t in base) else fallback)
        return split_and_memory(size, planned(stage, fallback), model)

    def map_memory(m: Measured, stage_in_bytes: float) -> int:
        """The maps' memory, as :func:`sqlmr.driver.stage_memory` gives it: the
        split choice's for a stage over tables, unless a broadcast side is held."""
        if m.broadcast or m.stage not in table_in or model.split_mb > 0:
            return model.memory_mb
        return stage_split_memory(m.stage, stage_in_bytes)[1]

    table_in: dict[int, float] = {}            # stage -> its table maps' bytes at target
    for m in measured:
        if m.kind == "map" and m.table_bytes:
            table_in[m.stage] = table_in.get(m.stage, 0.0) + sum(
                b * target[t] / data_bytes[t] for t, b in m.table_bytes.items())

    for m in measured:
        if m.kind == "combine":
            continue                           # planned below, from the driver's choice
        per_byte = m.seconds / m.bytes_in if m.bytes_in else 0.0
        per_task = 0.0 if m.bytes_in else m.seconds / max(1, m.tasks)
        extra_puts = 0
        shuffle_reason = ""
        split = 0
        if m.kind == "map" and m.table_bytes:
            scaled = {t: b * target[t] / data_bytes[t] for t, b in m.table_bytes.items()}
            measured_split = sum(m.table_bytes.values())
            k = sum(scaled.values()) / measured_split if measured_split else 1.0
            stage_in[m.stage] = sum(target[t] for t in m.table_bytes)
            split = stage_split(m.stage, stage_in[m.stage])
            tasks = sum(map_tasks(b, split) for b in scaled.values())
            # every split is read in GETs of at most split_get_bytes (at least one),
            # and its last line finished past its end by one more small GET
            pieces = sum(map_tasks(b, split) * code.split_gets(min(split, b))
                         for b in scaled.values())
            gets, depth, prefixes = pieces / tasks + 1, code.read_depth, 1
            label = "table map (" + ", ".join(sorted(m.table_bytes)) + ")"
        elif m.kind == "map":
            k = ratios[-1] if ratios else 1.0
            rows = m.bytes_in * k
            stage_in.setdefault(m.stage, rows)
            split = stage_split(m.stage, rows)
            tasks = 1 if m.single else map_tasks(rows, split)
            producers = phases[-1].tasks if phases else 1
            gets, depth, prefixes = producers / tasks, code.fetch_depth, code.prefixes
            label = "rows map"
        else:
            maps = stage_maps.get(m.stage, [])
            k = (sum(p.bytes_in for p, _ in maps) / sum(p.bytes_in / kk for p, kk in maps)
                 if maps and all(p.bytes_in for p, _ in maps) else (ratios[-1] if ratios else 1.0))
            shuffled = (added[m.stage].shuffle_bytes if m.stage in added else m.bytes_in) * k
            sources = sum(p.tasks for p, _ in maps) or (phases[-1].tasks if phases else 1)
            plan_r = planned(m.stage, shuffled)
            fine = shuffle_plan.fine_partitions(plan_r, "lambda")
            if m.single:
                tasks = 1
            elif code.reduce_target:
                tasks = coalesced_reducers(shuffled, fine, code.reduce_target)
            else:
                tasks = plan_r
            # the memory of the stage's reducers and combiners, as the driver
            # gives it (sqlmr.driver.stage_memory)
            group_bytes = min(stage_split(m.stage, shuffled), code.combine_max or math.inf)
            combine_mem = choose_task_memory(
                "combine", group_bytes, group_bytes, max(2, sources),
                memory_mb=model.memory_mb, architecture=model.architecture).memory_mb
            if code.index_reads:
                chosen = shuffle_plan.choose_shuffle(
                    sources, tasks, model.shuffle if code.combiners else "direct", "lambda",
                    fine=1 if m.single else fine,
                    group=combine_group(sources, shuffled, min(
                        stage_split(m.stage, shuffled), code.combine_max or math.inf)),
                    adds=bool(code.merge_max_ratio) and m.stage in (adding or {}))
                shuffle_reason = chosen.reason
                if chosen.mode == "combine":
                    rows_each = stage_rows.get(m.stage, 0.0) / chosen.combiners
                    groups = (adding or {}).get(m.stage)
                    if (code.merge_max_ratio and m.stage in (adding or {})
                            and shuffle_plan.combiners_add(rows_each, groups,
                                                           code.merge_max_ratio)):
                        # combiners that add, as the driver chooses them from the
                        # groups (it judges them from the maps; here they are the
                        # result's): each object's index, then rounds of
                        # partitions, one ranged GET of each object a round, read
                        # ahead while it adds (CPU per byte measured when they ran
                        # here, else the reducers': the same decode, add, encode);
                        # groups unknown: it copies after its sample (share 1)
                        share = shuffle_plan.added_share(rows_each, groups,
                                                         code.merge_max_ratio)
                        bytes_each = shuffled / chosen.combiners
                        rounds = max(1, math.ceil(bytes_each / (code.add_round_bytes or math.inf)))
                        add_cpu = (added[m.stage].seconds / added[m.stage].shuffle_bytes
                                   if m.stage in added else per_byte)
                        comb = Phase("combine", chosen.combiners, shuffled, shuffled * share,
                                     add_cpu if share < 1.0 else
                                     (combine_cpu[0] if combine_cpu else 0.0), 0.0,
                                     gets_per_task=sources / chosen.combiners * (1 + rounds),
                                     label=(f"combine, adding each key's numbers "
                                            f"({1 / share:.1f}x fewer records)" if share < 1.0
                                            else "combine (keys too many to add: copied)"),
                                     depth=code.fetch_depth, overlapped=code.overlapped,
                                     prefixes=code.prefixes, code_get=False,
                                     memory_mb=adding_combiner_memory(model.memory_mb))
                        shuffled *= share
                        if not m.single and code.reduce_target:
                            tasks = coalesced_reducers(shuffled, fine, code.reduce_target)
                    else:
                        comb = Phase("combine", chosen.combiners, shuffled, shuffled,
                                     combine_cpu[0] if combine_cpu else 0.0, 0.0,
                                     gets_per_task=sources / chosen.combiners,
                                     label="combine", depth=code.combine_depth,
                                     overlapped=code.overlapped, prefixes=code.prefixes,
                                     code_get=False, memory_mb=combine_mem)
                    phases.append(comb)
                    ratios.append(k)
                    sources = chosen.combiners
                if code.bounds_reads:             # the list, its bounds rows; each range
                    gets, extra_puts = 2.0 + sources, 2   # the driver's list and bounds
                else:                             # the list; each object's table and range
                    gets, extra_puts = 1.0 + 2.0 * sources, 1
            else:
                gets = float(sources)             # ranges listed in the event
            reduce_mem = choose_task_memory(
                "reduce", code.reduce_target or 64 * MIB, 0, sources + 2,
                memory_mb=model.memory_mb, architecture=model.architecture).memory_mb
            depth, prefixes = code.fetch_depth, code.prefixes
            label = "reduce"
        last = m is measured[-1] or all(x.kind == "combine" for x in
                                        measured[measured.index(m) + 1:])
        out_k = result_ratio if (last and result_ratio is not None) else k
        bytes_in = shuffled if m.kind == "reduce" else m.bytes_in * k
        ph = Phase(m.kind, tasks, bytes_in, m.bytes_out * out_k, per_byte, per_task,
                   gets, 1.0, label, reads_table=bool(m.kind == "map" and m.table_bytes),
                   tables=max(1, len(m.table_bytes)),
                   depth=depth, overlapped=code.overlapped, prefixes=prefixes,
                   extra_puts=extra_puts, split=split, shuffle=shuffle_reason,
                   memory_mb=(map_memory(m, stage_in.get(m.stage, m.bytes_in * k))
                              if m.kind == "map" else reduce_mem))
        if m.kind == "map":
            stage_maps.setdefault(m.stage, []).append((ph, k))
            stage_rows[m.stage] = stage_rows.get(m.stage, 0.0) + m.rows_out * k
        phases.append(ph)
        ratios.append(k)
    return phases
