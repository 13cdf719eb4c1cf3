"""How long a query would take, and cost, on AWS Lambda over the AMPLab 5nodes data,
projected from a run of sqlmr on a small scale of the same data.

Pure functions, no I/O; every figure can be checked by hand.

**The model.**  A query is a sequence of *phases* (the map or reduce tasks of
one stage), run one after the other.  For each phase measured here:

1. *Bytes scale with the table.*  A map phase over a table reads that table's
   5nodes bytes (:data:`FIVENODES_BYTES`: rankings 6.38 GB, uservisits 126.8 GB,
   GB = 10^9 bytes) instead of the bytes it read here; the ratio ``k`` of the two
   also scales what it writes (the shuffle, or the result), and what later phases
   read.  (A map-side partial aggregate shrinks less at 5nodes than at a small
   scale, so for GROUP BY this over-states the shuffle of few-group queries.)
2. *CPU per byte is measured.*  The phase's task seconds divided by the bytes
   its tasks read, here, on this machine: CPU seconds per input byte.  On Lambda
   a function gets ``memory / 1769`` of a vCPU, and the task handler is one
   Python thread, so more than one vCPU does not help (:func:`cpu_share`);
   ``cpu_factor`` scales for a Lambda vCPU slower (> 1) or faster (< 1) than a
   core of this machine (default 1).
3. *Tasks as sqlmr would plan them on Lambda.*  Map tasks: one per
   ``split_mb`` (64 MiB, the Lambda backend's split size) of input.  Reduce
   tasks: Hive's rule, one per 256 MiB of the stage's input, at most 1,009
   (:func:`reducers`), or one when the stage has a single reducer by design
   (``reducers_from="shuffle"`` applies the rule to the shuffled bytes instead).
4. *One task's duration* (:func:`task_duration`): sequential S3 requests (one
   invoke, the job code, its input ranges -- a reducer reads one range per map
   output, ``fetch_parallel`` at a time -- and its output PUT) at
   ``request_latency_s`` each, plus input and output bytes at ``s3_mbps`` per
   function, plus CPU.
5. *Scheduling* (:func:`makespan`): equal tasks go to the earliest free
   environment, at most ``functions`` at once.  New environments come from a
   token bucket: ``burst`` at once, then ``scale_per_10s`` per 10 s
   (Lambda's concurrency scaling rate, which AWS refills continuously); each new
   environment pays ``cold_start_s`` once per query (environments stay warm
   from one phase to the next).
6. *S3 request rates*: a phase cannot be faster than its GETs at ``get_rate``
   or its PUTs at ``put_rate`` per second (S3's per-prefix rates; all shuffle
   objects of a stage share one prefix).  When that is what bounds a phase, its
   tasks wait on S3 (503 Slow Down, back off) and are billed while waiting: their
   durations stretch in proportion.

Time = the sum of the phases' times.  Cost (:func:`project`) = billed GB-s
(every task's duration and every cold start -- counting the init phase as
billed is the conservative choice -- x memory / 1024) at the architecture's
GB-s price + one request per task + S3 GET and PUT requests, from
:mod:`sqlmr.prices` through :func:`sqlmr.cost.lambda_cost`.  Not modelled: the
driver's own work (planning, listing, reading the final result), retries,
stragglers, Lambda throttling, multipart uploads of outputs over 64 MiB.

>>> m = LambdaModel()
>>> round(cpu_share(m.memory_mb), 3), reducers(126.8e9, m), map_tasks(126.8e9, m)
(1.0, 473, 1890)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, fields

from sqlmr import cost as costs

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
class LambdaModel:
    """The stated parameters of the projection (each is a ``sqlmr bench`` flag)."""

    functions: int = 1000            # concurrent functions (Lambda's default regional limit)
    memory_mb: int = 1769            # function memory; 1,769 MB = 1 vCPU
    architecture: str = "arm64"
    s3_mbps: float = 90.0            # S3 read/write throughput per function, MB/s (10^6 B)
    request_latency_s: float = 0.03  # one S3 request or invoke round trip, in sequence
    fetch_parallel: int = 1          # shuffle ranges a reducer fetches at once (runtime: 1)
    cold_start_s: float = 0.5        # a new environment's init, once per query
    burst: int = 1000                # environments Lambda starts at once
    scale_per_10s: int = 1000        # then new environments per 10 s
    cpu_factor: float = 1.0          # Lambda vCPU seconds per CPU second measured here
    threads: int = 1                 # threads a task keeps busy (the handler: one)
    split_mb: float = 64.0           # map input per task, MiB (the Lambda backend's split)
    reducer_mb: float = 256.0        # stage input per reducer, MiB (Hive's rule)
    max_reducers: int = 1009         # Hive's cap
    reducers_from: str = "input"     # input: Hive's rule on the stage's input (as sqlmr
                                     # plans); shuffle: on the bytes shuffled (a what-if)
    get_rate: float = 5500.0         # S3 GET per second per prefix
    put_rate: float = 3500.0         # S3 PUT per second per prefix

    @property
    def split_bytes(self) -> int:
        return int(self.split_mb * MIB)

    def describe(self) -> str:
        """One line stating every parameter.

        >>> LambdaModel(functions=10).describe()[:60]
        'functions=10, memory_mb=1769, architecture=arm64, s3_mbps=90'
        """
        return ", ".join(f"{f.name}={getattr(self, f.name):g}" if isinstance(
            getattr(self, f.name), float) else f"{f.name}={getattr(self, f.name)}"
            for f in fields(self))


def cpu_share(memory_mb: float, threads: int = 1) -> float:
    """vCPUs a task uses: memory / 1,769 MB of one vCPU, no more than the task's
    threads, no more than Lambda's 6 vCPUs.

    >>> cpu_share(1769), cpu_share(884.5), cpu_share(3538), cpu_share(3538, threads=2)
    (1.0, 0.5, 1.0, 2.0)
    >>> round(cpu_share(10240, threads=8), 3)
    5.789
    """
    return min(memory_mb / VCPU_MB, float(threads), float(MAX_VCPUS))


def map_tasks(input_bytes: float, model: LambdaModel) -> int:
    """Map tasks over ``input_bytes`` of a table: one per split.

    >>> map_tasks(6.38e9, LambdaModel()), map_tasks(1, LambdaModel()), map_tasks(0, LambdaModel())
    (96, 1, 1)
    """
    return max(1, math.ceil(input_bytes / model.split_bytes))


def reducers(stage_input_bytes: float, model: LambdaModel) -> int:
    """Hive's rule: one reducer per ``reducer_mb`` MiB of the stage's input, 1 to
    ``max_reducers``.

    >>> reducers(126.8e9, LambdaModel()), reducers(1000, LambdaModel()), reducers(1e15, LambdaModel())
    (473, 1, 1009)
    """
    by_size = math.ceil(stage_input_bytes / (model.reducer_mb * MIB))
    return int(min(model.max_reducers, max(1, by_size)))


def task_duration(read_bytes: float, write_bytes: float, cpu_seconds: float, gets: float,
                  puts: float, model: LambdaModel) -> float:
    """Seconds one task runs: its requests in sequence, its bytes through S3, its CPU.

    ``gets`` data GETs (a reducer's shuffle ranges go ``fetch_parallel`` at a
    time), plus the invoke and the job code GET; ``cpu_seconds`` measured here.

    Hand check: 64 MB read, 6.4 MB written at 90 MB/s = 0.7111 + 0.0711 s; two
    CPU seconds at 1 vCPU = 2 s; requests: invoke + code + 1 GET + 1 PUT = 4 x
    0.03 = 0.12 s.  Total 2.9022 s.

    >>> round(task_duration(64e6, 6.4e6, 2.0, 1, 1, LambdaModel()), 4)
    2.9022

    At 884 MB the task gets 884 / 1769 = 0.4997 of a vCPU: 2 / 0.4997 = 4.0023 s of
    CPU, 4.9045 s in all.

    >>> round(task_duration(64e6, 6.4e6, 2.0, 1, 1, LambdaModel(memory_mb=884)), 4)
    4.9045
    """
    rounds = 2 + math.ceil(gets / max(1, model.fetch_parallel)) + puts
    share = cpu_share(model.memory_mb, model.threads)
    return (rounds * model.request_latency_s
            + (read_bytes + write_bytes) / (model.s3_mbps * 1e6)
            + cpu_seconds * model.cpu_factor / share)


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

    kind: str                      # map | reduce
    tasks: int
    bytes_in: float                # all tasks together
    bytes_out: float
    cpu_s_per_byte: float          # measured
    cpu_s_per_task: float = 0.0    # measured, for phases that read no bytes
    gets_per_task: float = 1.0     # data GETs (splits or shuffle ranges)
    puts_per_task: float = 1.0
    label: str = ""
    reads_table: bool = False      # a map over table files (one LIST request)

    def duration(self, model: LambdaModel) -> float:
        n = max(1, self.tasks)
        read, write = self.bytes_in / n, self.bytes_out / n
        cpu = read * self.cpu_s_per_byte + self.cpu_s_per_task
        return task_duration(read, write, cpu, self.gets_per_task, self.puts_per_task, model)


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

    Requests counted: per task one invoke, one GET of the job code, its data
    GETs and PUTs; per job one PUT of the code, one LIST per map phase over a
    table, and the driver's GET of each final output.

    Hand check, one map phase of 10 tasks of 100 MB each (the task count is
    given: ``split_mb`` only matters in :func:`scale_phases`), CPU 1e-8 s/B = 1 s,
    read 100 MB at 100 MB/s = 1 s, 4 requests x 0.05 s = 0.2 s: 2.2 s a task.
    4 functions: 3 waves + one cold start = 0.5 + 6.6 = 7.1 s.  Billed:
    10 x 2.2 + 4 x 0.5 = 24 s x 1769/1024 GB = 41.4609 GB-s.  Requests 10.
    GET: 10 x (code + split) + 10 outputs = 30.  PUT: 10 + code + LIST = 12.
    $: 41.4609 x 0.0000133334 + 10 x 0.2e-6 + 30 x 0.4e-6 + 12 x 5e-6
    = 0.00055282 + 0.000002 + 0.000012 + 0.00006 = 0.00062682.

    >>> p = Phase("map", 10, 1e9, 0.0, 1e-8, reads_table=True)
    >>> r = project([p], LambdaModel(functions=4, s3_mbps=100, request_latency_s=0.05))
    >>> round(r.seconds, 6), round(r.cost.gb_seconds, 4), r.cost.requests, r.cost.gets, r.cost.puts
    (7.1, 41.4609, 10, 30, 12)
    >>> round(r.dollars, 8)
    0.00062682
    """
    per_second = model.scale_per_10s / 10.0
    warm = 0
    out: list[PhaseEstimate] = []
    total_s = gb_s = 0.0
    requests = gets = 0
    puts = 1                                     # the job code
    warnings: list[str] = []
    for ph in phases:
        d = ph.duration(model)
        span, new = makespan(ph.tasks, d, model.functions, model.cold_start_s, warm,
                             model.burst, per_second)
        warm += new
        ph_gets = math.ceil(ph.tasks * (1 + ph.gets_per_task))
        ph_puts = math.ceil(ph.tasks * ph.puts_per_task)
        seconds, bound = span, "tasks"
        if ph_gets / model.get_rate > seconds:
            seconds, bound = ph_gets / model.get_rate, "S3 GET rate"
        if ph_puts / model.put_rate > seconds:
            seconds, bound = ph_puts / model.put_rate, "S3 PUT rate"
        if ph.reads_table:
            ph_puts += 1                         # LIST of the table's files
        # Bound by S3's request rate, tasks wait for their requests (503 Slow Down and
        # back off) and are billed while they wait: durations stretch with the phase.
        stretch = seconds / span if span > 0 else 1.0
        billed = (ph.tasks * d * stretch + new * model.cold_start_s) * model.memory_mb / 1024
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
    kind: str                       # map | reduce
    tasks: int
    seconds: float                  # task seconds
    bytes_in: int
    bytes_out: int
    table_bytes: dict[str, int] = field(default_factory=dict)  # map over tables: split bytes
    single: bool = False            # one task by design (a merge, LIMIT, one reducer)


def scale_phases(measured: list[Measured], data_bytes: dict[str, float], model: LambdaModel,
                 target: dict[str, float] | None = None,
                 result_ratio: float | None = None,
                 stage_tables: dict[int, list[str]] | None = None) -> list[Phase]:
    """The phases of a query at the ``target`` table sizes (default 5nodes).

    ``data_bytes``: the bytes of each table where it was measured.  A map over
    a table scales by ``target / data_bytes`` of that table; a reduce by the
    ratio of its stage's maps; a map over an earlier stage's rows by the ratio
    of the phase before it.  CPU per byte is the measured task seconds over the
    measured input bytes.  ``result_ratio`` (rows of the result at the target
    over rows here), when known, scales what the last phase writes instead: a
    GROUP BY's groups do not grow with the data.  ``stage_tables`` (stage id ->
    the base tables feeding it, as the compiler records them) sizes reducers as
    sqlmr's driver does: Hive's rule on those tables' bytes, also for a stage
    that reads an earlier stage's output (a GROUP BY after a join).

    Hand check: 2a measured on 25.4 MB of uservisits, 2 map tasks, 0.5 task
    seconds, 1 MB shuffled; then 2 reducers, 0.1 s.  k = 126.8e9 / 25.4e6 =
    4992.1.  Maps: 1,890 of 64 MiB; shuffle 1 MB x k = 4.99 GB.  Reducers:
    Hive's rule on 126.8 GB = 473, each reading one range of each of the 1,890
    map outputs; CPU 0.1 s / 1 MB = 1e-7 s per shuffle byte.

    >>> ms = [Measured(1, "map", 2, 0.5, 25_400_000, 1_000_000, {"uservisits": 25_400_000}),
    ...       Measured(1, "reduce", 2, 0.1, 1_000_000, 50_000)]
    >>> a, b = scale_phases(ms, {"uservisits": 25.4e6}, LambdaModel())
    >>> a.tasks, round(a.bytes_in / 1e9, 1), round(a.bytes_out / 1e9, 3), round(a.cpu_s_per_byte * 25.4e6, 3)
    (1890, 126.8, 4.992, 0.5)
    >>> b.tasks, b.gets_per_task, round(b.bytes_in / 1e9, 3), round(b.cpu_s_per_byte, 9)
    (473, 1890.0, 4.992, 1e-07)
    """
    target = FIVENODES_BYTES if target is None else target
    phases: list[Phase] = []
    ratios: list[float] = []                   # k of each phase, in order
    stage_maps: dict[int, list[tuple[Phase, float, float]]] = {}  # stage -> (phase, k, table B')
    for m in measured:
        per_byte = m.seconds / m.bytes_in if m.bytes_in else 0.0
        per_task = 0.0 if m.bytes_in else m.seconds / max(1, m.tasks)
        if m.kind == "map" and m.table_bytes:
            scaled = {t: b * target[t] / data_bytes[t] for t, b in m.table_bytes.items()}
            measured_split = sum(m.table_bytes.values())
            k = sum(scaled.values()) / measured_split if measured_split else 1.0
            tasks = sum(map_tasks(b, model) for b in scaled.values())
            gets = 1.0
            label = "table map (" + ", ".join(sorted(m.table_bytes)) + ")"
            stage_in = sum(target[t] for t in m.table_bytes)
        elif m.kind == "map":
            k = ratios[-1] if ratios else 1.0
            tasks = 1 if m.single else map_tasks(m.bytes_in * k, model)
            producers = phases[-1].tasks if phases else 1
            gets = producers / tasks
            label = "rows map"
            stage_in = m.bytes_in * k
        else:
            maps = stage_maps.get(m.stage, [])
            k = (sum(p.bytes_in for p, _, _ in maps) / sum(p.bytes_in / kk for p, kk, _ in maps)
                 if maps and all(p.bytes_in for p, _, _ in maps) else (ratios[-1] if ratios else 1.0))
            stage_input = sum(s for _, _, s in maps) or m.bytes_in * k
            base = (stage_tables or {}).get(m.stage)
            if base and all(t in target for t in base):
                stage_input = sum(target[t] for t in base)
            if model.reducers_from == "shuffle":
                stage_input = m.bytes_in * k
            tasks = 1 if m.single else reducers(stage_input, model)
            gets = float(sum(p.tasks for p, _, _ in maps) or (phases[-1].tasks if phases else 1))
            label = "reduce"
        last = m is measured[-1]
        out_k = result_ratio if (last and result_ratio is not None) else k
        ph = Phase(m.kind, tasks, m.bytes_in * k, m.bytes_out * out_k, per_byte, per_task,
                   gets, 1.0, label, reads_table=bool(m.kind == "map" and m.table_bytes))
        if m.kind == "map":
            stage_maps.setdefault(m.stage, []).append((ph, k, stage_in))
        phases.append(ph)
        ratios.append(k)
    return phases
