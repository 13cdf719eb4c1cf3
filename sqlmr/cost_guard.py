"""The cost guard: ``max_cost`` (``--max-cost``, ``SET max_cost``, config).

Two checks, both priced by :mod:`sqlmr.cost` as everything else sqlmr prints:

* **Before a job runs**, the plan's estimate (the one EXPLAIN prints,
  :func:`sqlmr.driver.estimate`) must not exceed the limit; a job over it is
  refused before any task (or deployment) with the estimate and its basis.
* **While it runs**, a :class:`CostMeter` adds up what the finished tasks
  cost: billed GB-s where the backend reports them, else the Lambda price of
  the task's measured seconds at the session's memory (what the local backend
  does: it reports what the run would have cost on Lambda); plus the Lambda
  request and the S3 requests of each task.  Once the sum passes the limit
  the job is stopped as Ctrl-C stops one: pending tasks are dropped and the
  job's scratch removed.

>>> from sqlmr.config import Settings
>>> m = CostMeter(Settings(max_cost=0.001, memory_mb=1024))
>>> ev = {"kind": "map", "attempt": 0, "input": {"splits": [{}, {}]}}
>>> m.add(ev, {"seconds": 10.0, "attempt": 0, "output": {"uri": "x"}})
>>> m.tasks, round(m.gb_seconds, 1), m.gets, m.puts
(1, 10.0, 3, 1)
>>> m.add(ev, {"seconds": 100.0, "attempt": 0, "output": None})
Traceback (most recent call last):
...
sqlmr.cost_guard.CostLimitError: stopped: the job passed max_cost $0.00100 after 2 finished tasks: it spent $0.00147 (110.0 GB-s estimated from task seconds at 1024 MB, 2 Lambda requests, 6 S3 GET, 1 S3 PUT); pending tasks were dropped and its scratch removed
"""

from __future__ import annotations

from compiler.sizes import size_text
from sqlmr import cost as costs
from sqlmr.config import Settings


class CostLimitError(Exception):
    """A job over ``max_cost``: refused before it ran (``refused``) or stopped
    while running (``spent`` is what its finished tasks cost)."""

    def __init__(self, message: str, refused: bool, spent: float = 0.0) -> None:
        super().__init__(message)
        self.refused = refused
        self.spent = spent


def basis_text(est, lam: costs.LambdaCost, settings: Settings) -> str:
    """What an estimate rests on: bytes read, tasks, and the price basis."""
    from sqlmr.render import plural
    where = ("Lambda" if settings.backend == "lambda"
             else "local backend: what the same tasks would cost on Lambda")
    return (f"{size_text(est.bytes_read)} read by {plural(est.map_tasks, 'map task')} and "
            f"{plural(est.reduce_tasks, 'reduce task')}; priced as Lambda GB-s ({where}, "
            f"{est.memory_text(settings.memory_mb)} {settings.architecture}): "
            f"~{lam.gb_seconds:.1f} GB-s "
            f"{costs.money(lam.compute)} + {plural(lam.requests, 'request')} "
            f"{costs.money(lam.request_cost)} + {lam.gets:,} S3 GET / {lam.puts:,} S3 PUT "
            f"{costs.money(lam.s3_cost)}")


def over_estimate(plans, settings: Settings) -> str | None:
    """Why a job is refused before it runs (its estimate is over
    ``max_cost``), or None when it may run."""
    if settings.max_cost <= 0:
        return None
    from sqlmr.driver import estimate
    est, lam = estimate(plans, settings)
    if lam.total <= settings.max_cost:
        return None
    return (f"refused: the estimate {costs.money(lam.total)} is over max_cost "
            f"{costs.money(settings.max_cost)}; nothing was run. Basis: "
            f"{basis_text(est, lam, settings)}. Raise the limit (--max-cost, SET max_cost = …, "
            f"0 = no limit), or try the query on a sample first (TABLESAMPLE (1 PERCENT))")


def check_estimate(plans, settings: Settings) -> None:
    """Raise :class:`CostLimitError` when the plan's estimate is over ``max_cost``."""
    why = over_estimate(plans, settings)
    if why is not None:
        raise CostLimitError(why, refused=True)


def _reads(event: dict) -> int:
    """S3 GETs a task makes: its input parts and its code object."""
    inp = event.get("input") or {}
    parts = inp.get("splits") or inp.get("rows") or inp.get("shuffle") or []
    return len(parts) + 1


class CostMeter:
    """What a running job's finished tasks cost so far, against ``max_cost``."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_cost
        self.memory_mb = settings.memory_mb
        self.architecture = settings.architecture
        self.keep_scratch = settings.keep_scratch
        self.tasks = 0
        self.gb_seconds = 0.0
        self.billed = False      # some GB-s are billed ones, not estimated
        self.requests = 0
        self.gets = 0
        self.puts = 0

    def cost(self) -> costs.LambdaCost:
        return costs.lambda_cost(self.gb_seconds, self.requests, self.gets, self.puts,
                                 self.architecture)

    def add(self, event: dict, result: dict) -> None:
        """Count a finished task; :class:`CostLimitError` once the job has
        spent more than the limit."""
        self.tasks += 1
        bill = result.get("billing")
        if bill:  # every invocation of every attempt of the task, as billed
            self.billed = True
            self.gb_seconds += bill["billed_ms"] / 1000 * bill["memory_mb"] / 1024
            self.requests += bill["invocations"]
            self.architecture = bill.get("architecture") or self.architecture
        else:
            self.gb_seconds += (result["seconds"] * (event.get("memory_mb") or self.memory_mb)
                                / 1024)
            self.requests += 1 + result.get("attempt", 0)
        self.gets += _reads(event)
        self.puts += 1 if result.get("output") else 0
        if self.limit > 0 and self.cost().total > self.limit:
            raise CostLimitError(self.stopped_text(), refused=False, spent=self.cost().total)

    def stopped_text(self) -> str:
        from sqlmr.render import plural
        lam = self.cost()
        how = "billed" if self.billed else f"estimated from task seconds at {self.memory_mb} MB"
        return (f"stopped: the job passed max_cost {costs.money(self.limit)} after "
                f"{plural(self.tasks, 'finished task')}: it spent {costs.money(lam.total)} "
                f"({lam.gb_seconds:.1f} GB-s {how}, {plural(lam.requests, 'Lambda request')}, "
                f"{lam.gets:,} S3 GET, {lam.puts:,} S3 PUT); pending tasks were dropped"
                + ("" if self.keep_scratch else " and its scratch removed"))
