"""The partitioned batch file: the format of shuffle data and of task outputs.

One object per task attempt holds all its partitions, so a job makes one PUT
per task and a reducer reads its partition from each map output with one
ranged GET: requests grow with maps + reducers, not maps x reducers.

Layout (version 1)::

    SQLMR1\\n                         magic line
    <partition 0 batches><partition 1 batches>...
    <index JSON>\\n                    {"v":1,"partitions":[[start,end],...],"records":[n,...]}
    <16 digit offset of the index>    so the file describes itself

A batch is one line holding a JSON array of records (records are JSON arrays
of values).  JSON keeps NULL, numbers and text exact (floats round-trip through
``repr``) and is never executable, unlike pickle.  Task outputs (map-only
stages, reducers) are the same file with a single partition.

>>> w = PartitionedWriter(2)
>>> w.add(1, ["b", 2.5]); w.add(0, ["a", None]); w.add(1, ["c", 1])
>>> data, index = w.to_bytes()
>>> s, e = index["partitions"][1]
>>> [r for batch in iter_batches_bytes(data[s:e]) for r in batch]
[['b', 2.5], ['c', 1]]
>>> read_index(data) == index
True
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from typing import Any, Iterable, Iterator

from runtime import storage

MAGIC = b"SQLMR1\n"
BATCH_ROWS = 4096
SPILL_BYTES = 64 << 20  # buffered encoded bytes before spilling to a temp file

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_encode = _encoder.encode
_decode = json.JSONDecoder().decode


def encode_batch(records: list) -> bytes:
    return _encode(records).encode("utf-8") + b"\n"


def partition_of(key: Any, partitions: int) -> int:
    """Deterministic partition of a group/join key (same in every process and
    machine: never Python's randomised ``hash`` of a str).

    >>> partition_of("192.168.", 7) == partition_of("192.168.", 7)
    True
    >>> partition_of(("a", 1), 3) == partition_of(["a", 1], 3)
    True
    """
    if partitions <= 1:
        return 0
    if isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
    else:
        if isinstance(key, tuple):
            key = list(key)
        data = _encode(key).encode("utf-8", "surrogatepass")
    return zlib.crc32(data) % partitions


class PartitionedWriter:
    """Buffers records per partition; spills to a temp file past ``spill_bytes``
    so memory stays bounded whatever the output size."""

    def __init__(self, partitions: int, spill_bytes: int = SPILL_BYTES) -> None:
        self.partitions = max(1, partitions)
        self.spill_bytes = spill_bytes
        self._pending: list[list] = [[] for _ in range(self.partitions)]
        self._encoded: list[list[bytes]] = [[] for _ in range(self.partitions)]
        self._buffered = 0
        self._spill = None  # temp file of (partition, bytes) segments
        self._segments: list[list[tuple[int, int]]] = [[] for _ in range(self.partitions)]
        self.records = [0] * self.partitions

    def add(self, partition: int, record: list) -> None:
        pending = self._pending[partition]
        pending.append(record)
        if len(pending) >= BATCH_ROWS:
            self._seal(partition)

    def add_batch(self, partition: int, records: list) -> None:
        """Add many records at once (one JSON encode for the batch)."""
        if not records:
            return
        self._seal(partition)
        self._push(partition, records)

    def _seal(self, partition: int) -> None:
        pending = self._pending[partition]
        if pending:
            self._pending[partition] = []
            self._push(partition, pending)

    def _push(self, partition: int, records: list) -> None:
        blob = encode_batch(records)
        self.records[partition] += len(records)
        self._encoded[partition].append(blob)
        self._buffered += len(blob)
        if self._buffered >= self.spill_bytes:
            self._spill_all()

    def _spill_all(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="sqlmr-spill-")
        for p, blobs in enumerate(self._encoded):
            if not blobs:
                continue
            data = b"".join(blobs)
            start = self._spill.seek(0, os.SEEK_END)
            self._spill.write(data)
            self._segments[p].append((start, len(data)))
            self._encoded[p] = []
        self._buffered = 0

    def _finish(self) -> None:
        for p in range(self.partitions):
            self._seal(p)

    def write_to(self, out) -> dict:
        """Write the whole file to a binary stream; returns the index."""
        self._finish()
        offset = out.write(MAGIC)
        spans = []
        for p in range(self.partitions):
            start = offset
            for seg_start, seg_len in self._segments[p]:
                self._spill.seek(seg_start)
                remaining = seg_len
                while remaining:
                    chunk = self._spill.read(min(remaining, 8 << 20))
                    out.write(chunk)
                    remaining -= len(chunk)
                offset += seg_len
            for blob in self._encoded[p]:
                offset += out.write(blob)
            spans.append([start, offset])
        index = {"v": 1, "partitions": spans, "records": self.records}
        index_bytes = _encode(index).encode() + b"\n"
        out.write(index_bytes)
        out.write(b"%016d" % offset)
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        return index

    def to_bytes(self) -> tuple[bytes, dict]:
        import io
        buf = io.BytesIO()
        index = self.write_to(buf)
        return buf.getvalue(), index

    def save(self, uri: str) -> tuple[dict, int]:
        """Write the file to ``uri``; returns (index, size in bytes)."""
        if storage.is_s3(uri) or self._spill is not None:
            with tempfile.NamedTemporaryFile(prefix="sqlmr-out-", delete=False) as f:
                index = self.write_to(f)
                size = f.tell()
            try:
                storage.write_file(uri, f.name)
            finally:
                os.unlink(f.name)
            return index, size
        data, index = self.to_bytes()
        storage.write_bytes(uri, data)
        return index, len(data)


def iter_batches_bytes(data: bytes) -> Iterator[list]:
    for line in data.split(b"\n"):
        if line:
            yield _decode(line.decode("utf-8"))


def iter_batches(uri: str, start: int, end: int) -> Iterator[list]:
    """Stream the batches of one partition range ``[start, end)`` of a file."""
    if end <= start:
        return
    rest = b""
    for chunk in storage.iter_range(uri, start, end, chunk=4 << 20):
        data = rest + chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line:
                yield _decode(line.decode("utf-8"))
    if rest:
        yield _decode(rest.decode("utf-8"))


def iter_ranges(ranges: Iterable[dict]) -> Iterator[list]:
    """Batches of several ``{"uri", "start", "end"}`` ranges, one after another."""
    for r in ranges:
        yield from iter_batches(r["uri"], r["start"], r["end"])


def read_index(data: bytes) -> dict:
    """The index of a whole file held in memory (for tools and tests)."""
    offset = int(data[-16:])
    return _decode(data[offset:-16].decode())
