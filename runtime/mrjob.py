"""MapReduce jobs written in Python (mrjob's model), as tasks run them.

A user's class derives from :class:`MRJob` and defines ``mapper(line)``,
optionally ``combiner(key, values)``, and ``reducer(key, values)``, each a
generator of ``(key, value)`` pairs.  A job's generated module binds the class
(shipped with the job, see :mod:`runtime.udfs`) and its entries call
:func:`map_task` and :func:`reduce_task`.  Keys travel as canonical JSON text,
so equal keys meet in one reducer whatever process produced them.

>>> encode_key(("a", 1))
'["a",1]'
>>> output_text("w"), output_text(3), output_text([1, "x"]), output_text("a\\tb")
('w', '3', '[1,"x"]', '"a\\\\tb"')
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from runtime.shuffle import partition_of

COMBINE_KEYS = 100_000   # distinct keys a map task buffers before combining them
# Set by a job's module in a task: a job file that calls ``WordCount.run(...)``
# at its top level is imported there too, and must then only define its class.
IN_TASK = False


class MRJobError(Exception):
    """A job's pairs are not what sqlmr can shuffle (not JSON-able, not a pair)."""


class MRJob:
    """Base class of a MapReduce job: override ``mapper`` and ``reducer``
    (``combiner`` is optional).  The mapper's default passes each line on as
    a key with the value None; the reducer's default yields the pairs as is."""

    def mapper(self, line: str) -> Iterable[tuple[Any, Any]]:
        yield line, None

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
        for v in values:
            yield key, v

    combiner = None   # a method (key, values) -> pairs, run per map task when defined

    @classmethod
    def run(cls, *args: Any, **kwargs: Any) -> None:
        """Inside a task (the file imported to bind its class) running is a no-op."""
        if not IN_TASK:
            raise RuntimeError("run a job with sqlmr.MRJob.run on the driver")

    def steps(self) -> list:
        """One step: this class's mapper, combiner and reducer."""
        return [MRStep(self.mapper, self.combiner, self.reducer)]


class MRStep:
    """A step of a multi-step job: the first step's mapper takes a line, a
    later one's ``(key, value)``; a missing mapper or reducer passes pairs on."""

    def __init__(self, mapper=None, combiner=None, reducer=None) -> None:
        self.mapper, self.combiner, self.reducer = mapper, combiner, reducer


def encode_key(key: Any) -> str:
    """Canonical JSON text of a key (what partitions and groups it)."""
    try:
        return json.dumps(key, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise MRJobError(f"a key must be JSON-able (str, number, bool, None, list, dict): "
                         f"{key!r} ({e})") from None


def encode_value(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise MRJobError(f"a value must be JSON-able (str, number, bool, None, list, dict): "
                         f"{value!r} ({e})") from None


def output_text(v: Any) -> str:
    """How a key or value is written in an output line: text and numbers as
    they are, anything else as JSON (text holding a tab or a line break too)."""
    if isinstance(v, str) and not any(c in v for c in "\t\n\r"):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    return json.dumps(v, separators=(",", ":"))


def _pairs(produced: Iterable | None, what: str) -> Iterator[tuple[Any, Any]]:
    if produced is None:
        return
    for pair in produced:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise MRJobError(f"{what} must yield (key, value) pairs, it yielded {pair!r}")
        yield pair[0], pair[1]


def steps_of(job: MRJob) -> list:
    """A job's steps (its only one unless it defines ``steps()``)."""
    steps = job.steps()
    if not isinstance(steps, (list, tuple)) or not steps or not all(
            isinstance(s, MRStep) for s in steps):
        raise MRJobError(f"steps() must return a list of MRStep, it returned {steps!r}")
    return list(steps)


def step_of(job: MRJob, step: int) -> MRStep:
    """Step ``step`` of a job."""
    steps = steps_of(job)
    if step >= len(steps):
        raise MRJobError(f"steps() returned {len(steps)} steps, the job was planned with more")
    return steps[step]


def _records(ctx) -> Iterator[tuple[Any, Any]]:
    """The (key, value) pairs an earlier step's reducers wrote."""
    for batch in ctx.batches():
        for key, value in batch:
            yield json.loads(key), json.loads(value)


def map_task(ctx, job_class: type, step: int = 0) -> None:
    """A map task: every line of the task's splits (or, after the first step,
    every pair of the previous step) through the step's mapper (and its
    combiner over this task's pairs), written partitioned by key.  A step
    without a mapper passes its pairs on."""
    job = job_class()
    st = step_of(job, step)
    mapper = st.mapper
    out = ctx.writer()
    parts = out.partitions
    combiner = st.combiner
    buffered: dict[str, list] = {}
    rows_in = rows_out = 0

    def emit(pairs: Iterable[tuple[Any, Any]]) -> None:
        nonlocal rows_out
        for k, v in pairs:
            key = encode_key(k)
            out.add(partition_of(key, parts), [key, encode_value(v)])
            rows_out += 1

    def combine() -> None:
        for key, values in buffered.items():
            emit(_pairs(combiner(json.loads(key), iter(values)), "combiner"))
        buffered.clear()

    def inputs() -> Iterator[Iterable[tuple[Any, Any]]]:
        if step == 0:
            for block in ctx.blocks():
                for line in block:
                    yield _pairs(mapper(line), "mapper")
        else:
            for k, v in _records(ctx):
                yield [(k, v)] if mapper is None else _pairs(mapper(k, v), "mapper")

    for pairs in inputs():
        rows_in += 1
        if combiner is None:
            emit(pairs)
            continue
        for k, v in pairs:
            buffered.setdefault(encode_key(k), []).append(v)
        if len(buffered) >= COMBINE_KEYS:
            combine()
    if combiner is not None:
        combine()
    ctx.rows_in += rows_in
    ctx.rows_out += rows_out


def reduce_task(ctx, job_class: type, step: int = 0, final: bool = True) -> None:
    """A reduce task: this partition's pairs grouped by key (in key order)
    through the step's reducer (none: the pairs as they are); the last step's
    results are rows of output text, an earlier step's pairs for the next."""
    job = job_class()
    reducer = step_of(job, step).reducer
    groups: dict[str, list] = {}
    rows_in = 0
    for batch in ctx.batches():
        for key, value in batch:
            groups.setdefault(key, []).append(value)
            rows_in += 1
    out = ctx.writer()
    rows_out = 0
    for key in sorted(groups):
        values = (json.loads(v) for v in groups[key])
        k0 = json.loads(key)
        pairs = ((k0, v) for v in values) if reducer is None else _pairs(
            reducer(k0, values), "reducer")
        for k, v in pairs:
            out.add(0, [output_text(k), output_text(v)] if final
                    else [encode_key(k), encode_value(v)])
            rows_out += 1
    ctx.rows_in += rows_in
    ctx.rows_out += rows_out
