"""The task handler: what runs inside a Lambda function or a local worker.

``handle(event) -> result`` is the whole contract (see :mod:`runtime.events`).
The same function runs on both backends; ``lambda_handler`` is the AWS entry
point named in the deployment package.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from typing import Any, Iterator

from runtime import codecache, events, formats, s3stats, shuffle, storage, transform, udfs
from runtime.inputs import BLOCK_BYTES, SplitReader


class MalformedRowError(Exception):
    """A row did not parse and the job runs in strict mode."""


class TaskContext:
    """What generated code sees of its task: input blocks or record batches, an
    output writer, and counters.  Generated code keeps its per-row loop local and
    touches the context once per block."""

    def __init__(self, event: events.Event) -> None:
        self.event = event
        self.params = event.get("params", {})
        self.strict = bool(event.get("strict"))
        self.rows_in = 0
        self.rows_out = 0
        self.bytes_in = 0
        self.malformed = 0
        self.malformed_sample = ""
        self.malformed_first_line = ""   # a malformed first line of a file (a header?)
        self.table = ""                  # the table the current split belongs to
        self.reader: SplitReader | None = None
        self._writer: shuffle.PartitionedWriter | None = None
        self.counters: dict[str, int] = {}   # task-specific figures reported in the result
        self.sample: list = []                # rows sampled for a range-partitioned sort
        # the partition values (folder names' text, None: the default
        # partition) of the split whose blocks are being read
        self.partition: list | None = None
        self._ranges: list[dict] | None = None
        self.spooled: list[str] = []   # temp files of fetched ranges, deleted after the task

    def input_ranges(self) -> list[dict]:
        """The byte ranges this task reads: a reducer of a range of fine
        partitions finds them in the partition tables of the objects its
        stage's shuffle list names (read once, here, not shipped in the
        event); other tasks get them in the event."""
        if self._ranges is None:
            inp = self.event["input"]
            if "shuffle_list" in inp:
                self._ranges = shuffle.list_ranges(inp["shuffle_list"], inp["lo"], inp["hi"],
                                                   self.spooled, inp.get("bounds"))
            else:
                self._ranges = inp.get("shuffle") or inp.get("rows") or []
        return self._ranges

    # ----------------------------------------------------------------- input
    def blocks(self, fmt: dict | None = None) -> Iterator[list]:
        """Blocks of records of every split of this map task: text lines, or
        for ``fmt`` (a table's format, see :mod:`runtime.formats`) of kind
        csv or json, lists of fields."""
        block_bytes = self.params.get("block_bytes") or BLOCK_BYTES
        for split in self.event["input"]["splits"]:
            reader = formats.reader_of(split, fmt, block_bytes, self.bad)
            self.reader = reader
            self.table = split.get("table", "")
            self.partition = split.get("partition")
            try:
                yield from reader
            finally:
                self.bytes_in += reader.bytes_read

    def batches(self) -> Iterator[list]:
        """Record batches of this task's shuffle partition (or stage-output rows)."""
        ranges = self.input_ranges()
        for r in ranges:
            self.bytes_in += max(0, r["end"] - r["start"])
        return shuffle.iter_ranges(ranges)

    def pairs(self) -> Iterator[tuple[list, object, bool]]:
        """This task's input records of (key, number) as columns per batch:
        ``(keys, numbers, maybe_null)`` (see :func:`runtime.shuffle.decode_pairs`)."""
        ranges = self.input_ranges()
        for r in ranges:
            self.bytes_in += max(0, r["end"] - r["start"])
        return shuffle.iter_pairs(ranges)

    def runs(self) -> list[Iterator[list]]:
        """One record iterator per sorted run of this task's input (each sorted
        stage output), for a ``heapq.merge`` that may stop early (LIMIT)."""
        ranges = self.input_ranges()
        for r in ranges:
            self.bytes_in += max(0, r["end"] - r["start"])
        return shuffle.iter_runs(ranges)

    def merged(self, key) -> Iterator[list]:
        """This task's input in ``key`` order, as sorted chunks of records: the
        merge of the sorted runs of a join shuffle partition or a range of a
        total-order sort (more runs than the merge fan-in are pre-merged)."""
        ranges = self.input_ranges()
        for r in ranges:
            self.bytes_in += max(0, r["end"] - r["start"])
        runs = shuffle.run_batches(ranges)
        self.counters["runs_merged"] = len(runs)
        fanin = self.params.get("merge_fanin") or shuffle.MERGE_FANIN
        if len(runs) > fanin:
            runs = shuffle.merge_runs(runs, key, fanin)
        return shuffle.merge_batches(runs, key)

    # ----------------------------------------------------- broadcast inputs
    def side_blocks(self, name: str, fmt: dict | None = None,
                    bad=None) -> Iterator[list]:
        """Blocks of records of a broadcast (small) table named in the event
        (as :meth:`blocks`; ``bad`` is told of a JSON line that is no object)."""
        main, table = self.reader, self.table
        for split in self.params["broadcast"][name]["splits"]:
            reader = formats.reader_of(split, fmt, BLOCK_BYTES, bad)
            self.reader = reader   # malformed rows name the broadcast file and table
            self.table = split.get("table", "")
            self.partition = split.get("partition")
            try:
                yield from reader
            finally:
                self._count("broadcast_bytes_in", reader.bytes_read)
                self.reader, self.table = main, table

    # A broadcast side is read by every task of its stage (or once per worker
    # process, then kept), but each of its malformed rows must be counted once
    # per job: the rows counted while a side is read travel with its hash
    # table, and only the stage's task 0 reports them.
    def side_mark(self) -> tuple:
        """What is counted as malformed so far (taken before a side is read)."""
        return (self.malformed, self.malformed_sample, self.malformed_first_line,
                {k: v for k, v in self.counters.items() if k.startswith("malformed_")})

    def side_read(self, mark: tuple) -> tuple:
        """The malformed rows counted since ``mark`` (a side's, kept with its
        table); a task other than 0 takes them back."""
        n, sample, first, counters = mark
        tally = (self.malformed - n,
                 self.malformed_sample if self.malformed_sample != sample else "",
                 self.malformed_first_line if self.malformed_first_line != first else "",
                 {k: v - counters.get(k, 0) for k, v in self.counters.items()
                  if k.startswith("malformed_") and v != counters.get(k, 0)})
        if not self._reports_sides():
            self.malformed, self.malformed_sample, self.malformed_first_line = n, sample, first
            for k in tally[3]:
                if k in counters:
                    self.counters[k] = counters[k]
                else:
                    del self.counters[k]
        return tally

    def side_kept(self, tally: tuple) -> None:
        """Report the malformed rows of a side this process read before."""
        n, sample, first, counters = tally
        if not n or not self._reports_sides():
            return
        self.malformed += n
        self.malformed_sample = self.malformed_sample or sample
        self.malformed_first_line = self.malformed_first_line or first
        for k, v in counters.items():
            self._count(k, v)

    def _reports_sides(self) -> bool:
        return self.event.get("task") == 0

    def side_batches(self, name: str) -> Iterator[list]:
        """Record batches of a broadcast input that an earlier stage wrote."""
        ranges = self.params["broadcast"][name]["rows"]
        for r in ranges:
            self._count("broadcast_bytes_in", max(0, r["end"] - r["start"]))
        return shuffle.iter_ranges(ranges)

    def _count(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ---------------------------------------------------------------- output
    def writer(self, sort=False) -> shuffle.PartitionedWriter:
        """The task's output; ``sort=True`` writes sorted runs per partition
        (join shuffles, ordered by join key then side tag), ``sort=<key
        function>`` sorted runs in that order (a range-partitioned sort)."""
        if self._writer is None:
            self._writer = shuffle.PartitionedWriter(
                self.event.get("partitions") or 1, sort=sort,
                spill_records=self.params.get("sort_spill_records"))
        return self._writer

    # ------------------------------------------------------------ bad input
    def bad(self, line, why: str = "malformed row") -> None:
        """Count a malformed row (a text line, or a record of the reader's
        current block); in strict mode fail naming file and byte offset."""
        self.malformed += 1
        reader = self.reader
        if not self.malformed_sample or self.strict:
            text = line if isinstance(line, str) or reader is None else reader.text_of(line)
            if not self.malformed_sample:
                self.malformed_sample = text[:200]
        # what the rows look like, for a warning that says how to read them
        table = self.table
        counters = self.counters
        key = "malformed_rows:" + table
        counters[key] = counters.get(key, 0) + 1
        if reader is not None and reader.is_first(line):
            key = "malformed_first_lines:" + table
            counters[key] = counters.get(key, 0) + 1
            if not self.malformed_first_line:
                self.malformed_first_line = (line if isinstance(line, str)
                                             else reader.text_of(line))[:200]
        if isinstance(line, str) and '"' in line:
            key = "malformed_quoted:" + table
            counters[key] = counters.get(key, 0) + 1
        if self.strict:
            where = ""
            if reader is not None:
                where = f"{reader.uri} at byte {reader.offset_of(line)}: "
            raise MalformedRowError(f"{where}{why}: {text[:200]!r}")


def _peak_mem_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def handle(event: events.Event) -> events.Result:
    """Run one task attempt: load the job code, run its entry, save the output."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    requests0 = s3stats.snapshot()
    if event.get("v") != events.VERSION:
        raise ValueError(f"task event version {event.get('v')!r}, runtime expects {events.VERSION}")
    if event["kind"] == "combine":
        return _combine(event, t0, c0, requests0)
    ns = codecache.load(event["code"])
    entry = ns[event["entry"]]
    ctx = TaskContext(event)
    # A task builds millions of small lists (records, group states) and makes
    # no reference cycles; the cyclic collector would rescan them over and
    # over (a third of a reducer's time), so it is paused while the task runs.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        entry(ctx)
    except Exception as e:
        user = udfs.user_error(e, event["code"].get("files") or [], _where(ctx, e))
        if user is None:
            raise
        raise user from None
    finally:
        if gc_was_enabled:
            gc.enable()
        _unlink(ctx.spooled)
    output: dict[str, Any] | None = None
    bytes_out = 0
    text = ctx.params.get("text")
    if text is not None:
        # a table's data file: delimited text, written under an attempt-specific
        # name that the driver commits (renames) only for the accepted attempt
        uri = storage.join(text["prefix"], f"s{event['stage']}-{event['kind']}-"
                                           f"{event['task']:05d}.a{event['attempt']}")
        writer = ctx._writer or shuffle.PartitionedWriter(1)
        width = text["width"]
        if text.get("transform"):   # the rows go through the user's command first
            spec = text["transform"]
            writer, _ = transform.piped(writer, spec, event["code"].get("files") or [],
                                        ctx.counters)
            width = spec["width"]
        rows, bytes_out = writer.save_text(uri, text["delimiter"], width)
        output = {"uri": uri, "text": True, "partitions": [[0, bytes_out]], "records": [rows]}
    elif ctx._writer is not None:
        uri = events.output_uri(event, ".part")
        index, bytes_out = ctx._writer.save(uri)
        output = shuffle.output_facts(uri, index, bytes_out)
        if ctx._writer.runs_spilled:
            ctx.counters["runs_spilled"] = ctx._writer.runs_spilled
    return {
        "stage": event["stage"], "kind": event["kind"], "task": event["task"],
        "attempt": event["attempt"], "rows_in": ctx.rows_in, "bytes_in": ctx.bytes_in,
        "rows_out": ctx.rows_out, "bytes_out": bytes_out, "malformed": ctx.malformed,
        "malformed_sample": ctx.malformed_sample,
        **({"malformed_first_line": ctx.malformed_first_line} if ctx.malformed_first_line else {}),
        "output": output,
        "seconds": round(time.perf_counter() - t0, 6),
        "cpu_seconds": round(time.process_time() - c0, 6), "peak_mem_mb": _peak_mem_mb(),
        "counters": ctx.counters,
        # every S3 request this attempt sent (code, input, shuffle, output; retries too)
        "s3": s3stats.since(requests0),
        **({"sample": _cap(ctx.sample, SAMPLE_MAX, event["task"])} if ctx.sample else {}),
    }


def _unlink(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _combine(event: events.Event, t0: float, c0: float,
             requests0: dict[str, int]) -> events.Result:
    """A combiner: the partitions of a group of map outputs gathered into one
    object of the same format (no generated code: bytes are copied, or a
    SUM or COUNT's numbers added by key)."""
    objects = event["input"]["objects"]
    merge = event["input"].get("merge")
    uri = events.output_uri(event, ".part")
    counts: dict = {}
    index, size = shuffle.save_combined(objects, uri, merge=merge, counts=counts)
    bytes_in = sum(o["size"] for o in objects)
    counters = {"objects_combined": len(objects)}
    if merge:
        counters.update(partitions_merged=counts["merged"], partitions_copied=counts["copied"],
                        shuffle_bytes_in=counts["data_bytes"])
    return {
        "stage": event["stage"], "kind": "combine", "task": event["task"],
        "attempt": event["attempt"], "rows_in": counts["records_in"], "bytes_in": bytes_in,
        "rows_out": sum(index["records"]), "bytes_out": size, "malformed": 0,
        "malformed_sample": "", "output": shuffle.output_facts(uri, index, size),
        "seconds": round(time.perf_counter() - t0, 6),
        "cpu_seconds": round(time.process_time() - c0, 6), "peak_mem_mb": _peak_mem_mb(),
        "counters": counters,
        "s3": s3stats.since(requests0),
    }


def _where(ctx: TaskContext, e: BaseException) -> str:
    """`` on the row of FILE at byte N`` for an exception raised while the
    generated loop held a row read from a file (its ``line`` or ``f``)."""
    reader = ctx.reader
    if reader is None:
        return ""
    entry = ctx.event["entry"]
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == entry:
            for name in ("line", "f"):
                row = frame.f_locals.get(name)
                if row is not None:
                    return f" on the row of {reader.uri} at byte {reader.offset_of(row)}"
        tb = tb.tb_next
    return ""


SAMPLE_MAX = 1000  # rows of a sample a task reports (keeps the result small)


def _cap(rows: list, n: int, seed: int) -> list:
    if len(rows) <= n:
        return rows
    import random
    return random.Random(seed).sample(rows, n)


def lambda_handler(event: events.Event, context: Any = None) -> events.Result:
    """AWS Lambda entry point (a task event, or an access probe: see
    :mod:`runtime.probe`)."""
    if "probe" in event:
        from runtime import probe
        return probe.readable(event["probe"])
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        from runtime import s3
        s3.set_deadline(remaining() / 1000)
    return handle(event)
