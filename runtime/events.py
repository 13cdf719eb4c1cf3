"""The task contract: one JSON event in, one JSON result out.

This module is the single definition of both shapes; the driver (``sqlmr``)
builds events with :func:`map_event` / :func:`reduce_event` and the handler
(``runtime.handler``) reads them.  Everything here is plain dicts so the same
event travels through a local process pool or a Lambda ``Invoke`` payload
(6 MB limit) unchanged.

Event::

    {
      "v": 1,
      "job": "20261123-120000-ab12cd",     # job id
      "stage": 1,                           # stage number in the job
      "kind": "map" | "combine" | "reduce",
      "task": 0,                            # task index within (stage, kind)
      "attempt": 0,                         # retry number; outputs are attempt specific
      "input": {"splits": [{"uri": ..., "start": 0, "end": 1234, "gz": false,
                            "table": "uservisits",
                            "size": 5678, "stamp": ...}]}  # map over text
                            # size, stamp (mtime ns, or S3 ETag): the file as
                            # planned; optional, a changed file fails the task
             | {"shuffle_list": ".../s1-shuffle.json", "lo": 0, "hi": 16}  # reduce:
                            # fine partitions [lo, hi) of every object listed
                            # there (offsets read from their partition tables)
             | {"shuffle": [{"uri": ..., "start": 0, "end": 99}]}   # reduce, explicit
             | {"objects": [{"uri", "size", "parts", "cuts"}, ...],  # combine
                "merge"?: "sum"}
             | {"rows": [{"uri": ..., "start": 0, "end": 99}]},     # map over a stage output
             | {"rows": []},                        # one row of no columns (no FROM)
      "partitions": 8,                      # reducers fed by this task (0 = map only)
      "work": "file:///tmp/sqlmr/jobs/<job>/",   # job scratch prefix (file:// or s3://)
      "code": {"uri": ".../job.py", "sha256": "..."},
      "entry": "s1_map",                    # function of the job module to run
      "strict": false                       # malformed rows fail the task
    }

Result::

    {
      "task": 0, "attempt": 0, "stage": 1, "kind": "map",
      "rows_in": 10, "bytes_in": 1234, "rows_out": 3, "bytes_out": 99,
      "malformed": 0, "malformed_sample": "",  # first bad line, for the report
      "output": {"uri": ..., "size": 400, "parts": 8, "cuts": 0,
                 "sizes": [bytes of each partition], "rows": 3,
                 # one-partition outputs also: "partitions": [[start, end]],
                 # "records": [n] (and "runs" when sorted)
                } | null,
      "seconds": 0.12, "cpu_seconds": 0.11, "peak_mem_mb": 41.0,
      "s3": {"get": 3, "put": 1, "retries": 1}   # S3 requests sent (runtime.s3stats)
    }
"""

from __future__ import annotations

import zlib
from typing import Any

VERSION = 1

Event = dict[str, Any]
Result = dict[str, Any]


def map_event(*, job: str, stage: int, task: int, input: dict, partitions: int,
              work: str, code: dict, entry: str, strict: bool = False,
              attempt: int = 0, params: dict | None = None) -> Event:
    """Build a map task event."""
    return {"v": VERSION, "job": job, "stage": stage, "kind": "map", "task": task,
            "attempt": attempt, "input": input, "partitions": partitions, "work": work,
            "code": code, "entry": entry, "strict": strict, "params": params or {}}


def reduce_event(*, job: str, stage: int, task: int, shuffle: list[dict], work: str,
                 code: dict, entry: str, strict: bool = False, attempt: int = 0,
                 partitions: int = 0, params: dict | None = None) -> Event:
    """Build a reduce task event reading ``shuffle`` byte ranges of map outputs."""
    return {"v": VERSION, "job": job, "stage": stage, "kind": "reduce", "task": task,
            "attempt": attempt, "input": {"shuffle": shuffle}, "partitions": partitions,
            "work": work, "code": code, "entry": entry, "strict": strict,
            "params": params or {}}


def shuffle_reduce_event(*, job: str, stage: int, task: int, shuffle_list: str, lo: int,
                         hi: int, work: str, code: dict, entry: str, strict: bool = False,
                         attempt: int = 0, partitions: int = 0,
                         params: dict | None = None, bounds: str | None = None) -> Event:
    """Build a reduce task event reading fine partitions ``[lo, hi)`` of every
    object named in the stage's shuffle list ``shuffle_list`` (located by the
    stage's bounds table ``bounds`` when given, see
    :func:`runtime.shuffle.bounds_table`)."""
    inp: dict = {"shuffle_list": shuffle_list, "lo": lo, "hi": hi}
    if bounds is not None:
        inp["bounds"] = bounds
    return {"v": VERSION, "job": job, "stage": stage, "kind": "reduce", "task": task,
            "attempt": attempt, "input": inp,
            "partitions": partitions, "work": work, "code": code, "entry": entry,
            "strict": strict, "params": params or {}}


def combine_event(*, job: str, stage: int, task: int, objects: list[dict], work: str,
                  code: dict, attempt: int = 0, merge: str | None = None) -> Event:
    """Build a combiner event: gather the partitions of ``objects`` (map
    outputs, as listed) into one object of the same format; ``merge="sum"``:
    add the numbers of each key on the way (a SUM or COUNT's pairs)."""
    inp: dict = {"objects": objects}
    if merge:
        inp["merge"] = merge
    return {"v": VERSION, "job": job, "stage": stage, "kind": "combine", "task": task,
            "attempt": attempt, "input": inp, "partitions": 0,
            "work": work, "code": code, "entry": "", "strict": False, "params": {}}


def with_attempt(event: Event, attempt: int) -> Event:
    """The same task as a new attempt (its outputs get new names)."""
    return {**event, "attempt": attempt}


def output_uri(event: Event, suffix: str) -> str:
    """Attempt-specific output object for a task: nothing a retry writes can
    overwrite what another attempt wrote.  On S3 the name starts with
    :func:`spread_prefix`, so a stage's objects spread over many key prefixes.

    >>> ev = {"work": "s3://b/jobs/j1/", "stage": 2, "kind": "map", "task": 7, "attempt": 1}
    >>> output_uri(ev, ".part")
    's3://b/jobs/j1/a3/s2-map/part-00007.a1.part'
    >>> output_uri({**ev, "work": "file:///tmp/j1/"}, ".part")
    'file:///tmp/j1/s2-map/part-00007.a1.part'
    """
    work = event["work"].rstrip("/")
    stage, kind, task = event["stage"], event["kind"], event["task"]
    spread = spread_prefix(stage, kind, task) + "/" if work.startswith("s3://") else ""
    return f"{work}/{spread}s{stage}-{kind}/part-{task:05d}.a{event['attempt']}{suffix}"


SPREAD_PREFIXES = 256


def spread_prefix(stage: int, kind: str, task: int) -> str:
    """Two hex digits from a hash of a task's name: S3 serves about 5,500
    GETs and 3,500 PUTs per second per key prefix, so a shuffle whose objects
    share one prefix is capped there; 256 prefixes lift the cap far above
    what a stage asks for (every attempt of a task shares its prefix).

    >>> spread_prefix(1, "map", 0), spread_prefix(1, "map", 1)
    ('9d', '0b')
    >>> len({spread_prefix(1, "map", t) for t in range(2000)})
    256
    """
    return "%02x" % (zlib.crc32(f"s{stage}-{kind}-{task}".encode()) % SPREAD_PREFIXES)


def describe_input(event: Event) -> str:
    """A short human description of what a task reads, for error reports."""
    inp = event.get("input", {})
    if "shuffle_list" in inp:
        return f"partitions {inp['lo']}..{inp['hi'] - 1} of the objects in {inp['shuffle_list']}"
    parts = inp.get("splits") or inp.get("shuffle") or inp.get("rows") or inp.get("objects") or []
    shown = ", ".join(f"{p['uri']}[{p.get('start', 0)}:{p.get('end', '')}]" for p in parts[:3])
    more = f" (+{len(parts) - 3} more)" if len(parts) > 3 else ""
    return shown + more
