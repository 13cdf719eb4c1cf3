"""The task handler: what runs inside a Lambda function or a local worker.

``handle(event) -> result`` is the whole contract (see :mod:`runtime.events`).
The same function runs on both backends; ``lambda_handler`` is the AWS entry
point named in the deployment package.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any, Iterator

from runtime import codecache, events, shuffle
from runtime.inputs import SplitReader


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
        self.reader: SplitReader | None = None
        self._writer: shuffle.PartitionedWriter | None = None

    # ----------------------------------------------------------------- input
    def blocks(self) -> Iterator[list[str]]:
        """Blocks of text lines of every split of this map task."""
        for split in self.event["input"]["splits"]:
            reader = SplitReader(split["uri"], split.get("start", 0), split.get("end"),
                                 gz=split.get("gz", False))
            self.reader = reader
            try:
                yield from reader
            finally:
                self.bytes_in += reader.bytes_read

    def batches(self) -> Iterator[list]:
        """Record batches of this task's shuffle partition (or stage-output rows)."""
        inp = self.event["input"]
        ranges = inp.get("shuffle") or inp.get("rows") or []
        for r in ranges:
            self.bytes_in += max(0, r["end"] - r["start"])
        return shuffle.iter_ranges(ranges)

    # ---------------------------------------------------------------- output
    def writer(self) -> shuffle.PartitionedWriter:
        if self._writer is None:
            self._writer = shuffle.PartitionedWriter(self.event.get("partitions") or 1)
        return self._writer

    # ------------------------------------------------------------ bad input
    def bad(self, line: str, why: str = "malformed row") -> None:
        """Count a malformed row; in strict mode fail naming file and byte offset."""
        self.malformed += 1
        if not self.malformed_sample:
            self.malformed_sample = line[:200]
        if self.strict:
            where = ""
            if self.reader is not None:
                where = f"{self.reader.uri} at byte {self.reader.line_offset(line)}: "
            raise MalformedRowError(f"{where}{why}: {line[:200]!r}")


def _peak_mem_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def handle(event: events.Event) -> events.Result:
    """Run one task attempt: load the job code, run its entry, save the output."""
    t0 = time.perf_counter()
    if event.get("v") != events.VERSION:
        raise ValueError(f"task event version {event.get('v')!r}, runtime expects {events.VERSION}")
    ns = codecache.load(event["code"])
    entry = ns[event["entry"]]
    ctx = TaskContext(event)
    entry(ctx)
    output: dict[str, Any] | None = None
    bytes_out = 0
    if ctx._writer is not None:
        uri = events.output_uri(event, ".part")
        index, bytes_out = ctx._writer.save(uri)
        output = {"uri": uri, "partitions": index["partitions"], "records": index["records"]}
    return {
        "stage": event["stage"], "kind": event["kind"], "task": event["task"],
        "attempt": event["attempt"], "rows_in": ctx.rows_in, "bytes_in": ctx.bytes_in,
        "rows_out": ctx.rows_out, "bytes_out": bytes_out, "malformed": ctx.malformed,
        "malformed_sample": ctx.malformed_sample, "output": output,
        "seconds": round(time.perf_counter() - t0, 6), "peak_mem_mb": _peak_mem_mb(),
    }


def lambda_handler(event: events.Event, context: Any = None) -> events.Result:
    """AWS Lambda entry point."""
    return handle(event)
