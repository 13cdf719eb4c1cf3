"""The partitioned batch file: the format of shuffle data and of task outputs.

One object per task attempt holds all its partitions, so a job makes one PUT
per task and a reducer reads its partition from each map output with one
ranged GET: requests grow with maps + reducers, not maps x reducers.

Layout (version 1)::

    SQLMR1\\n                         magic line
    <partition 0 batches><partition 1 batches>...
    <index JSON>\\n                    {"v":1,"partitions":[[start,end],...],"records":[n,...]}
    <partition table>                 binary: what a reducer reads of the index
    <16 digit offset of the index>    so the file describes itself

The partition table repeats the index in fixed-width little-endian int64s so
that a reducer reads only the entries of its partitions with one small ranged
GET (the object's size, partition count and run count locate it): one
(start offset, runs before it) pair per partition and one for the end, then
the run boundaries (version 2 only; each run's start, then the end).  A
reducer of a range ``[lo, hi)`` of partitions reads entries ``lo..hi``, then
one ranged GET of the bytes of all its partitions (:func:`object_range`).

Version 2 is the same file written by a *sorting* writer (the shuffle of a
reduce-side join): each partition is a sequence of sorted runs (one per spill
plus the final one), records ordered by their first two fields (join key, then
side tag), and the index adds the run boundaries::

    {"v":2,"partitions":[[start,end],...],"records":[n,...],
     "runs":[[[start,end],...],...]}     runs of partition 0, of partition 1, ...

A reducer merges the runs of its partition from every map output
(:func:`iter_runs` + ``heapq.merge``), so it streams its input in key order
holding one batch per run.  Readers that do not need the order read a
partition's span as in version 1.

A batch is one line holding a JSON array of records (records are JSON arrays
of values).  A map-side aggregate whose state is one number writes its
(key, number) records as a *pair batch* instead: a JSON object
``{"s": "<the keys joined by DEL>", "d" | "q": "<base64 of the numbers as
little-endian float64 | int64>"}`` (``"k": [keys…]`` instead of ``"s"`` when
a key is NULL or holds a DEL) -- the same records, without printing and
parsing every float in decimal (the most expensive part of such a task's
output) or every key as a JSON string.  JSON keeps NULL, numbers and text
exact (floats round-trip through ``repr``) and is never executable, unlike
pickle.  Task outputs (map-only stages, reducers) are the same file with a
single partition.

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

import base64
import json
import os
import struct
import sys
import tempfile
import zlib
from array import array
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from itertools import accumulate, chain, groupby, repeat
from operator import itemgetter, mod as _mod
from typing import Any, Iterable, Iterator

from runtime import storage

_first = itemgetter(0)
_second = itemgetter(1)

MAGIC = b"SQLMR1\n"
BATCH_ROWS = 4096
SPILL_BYTES = 64 << 20  # buffered encoded bytes before spilling to a temp file
# Objects a combiner downloads at once: one S3 stream is slower than what a
# function can take in, and each waits its first byte's latency.
COMBINE_FETCHES = 4
SORT_SPILL_RECORDS = 200_000  # sort mode: buffered records before a sorted run is cut
SORT_BATCH_ROWS = 1024  # records per batch in a sorted run: what a merge holds per run
RUN_CHUNK = 256 << 10   # bytes read at a time from each run while merging
MERGE_FANIN = 64        # runs merged at once; more are pre-merged into temp files
_SORT_KEY = itemgetter(0, 1)
KEY_SEP = "\x7f"  # joins a pair batch's text keys when none contains it (DEL: JSON leaves it as is)

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_encode = _encoder.encode
_decode = json.JSONDecoder().decode


def encode_batch(records: list) -> bytes:
    return _encode(records).encode("utf-8") + b"\n"


def partition_of(key: Any, partitions: int) -> int:
    """Deterministic partition of a group/join key (same in every process and
    machine: never Python's randomised ``hash`` of a str).  Keys equal under
    SQL equality go to one partition whatever their spelling: a float with an
    integral value hashes as that integer (7.0 as 7, -0.0 as 0).

    >>> partition_of("192.168.", 7) == partition_of("192.168.", 7)
    True
    >>> partition_of(("a", 1), 3) == partition_of(["a", 1], 3)
    True
    >>> all(partition_of(7.0, n) == partition_of(7, n) and partition_of(-0.0, n) == partition_of(0, n)
    ...     and partition_of(("a", 7.0), n) == partition_of(("a", 7), n) for n in range(1, 40))
    True
    """
    if partitions <= 1:
        return 0
    if isinstance(key, str):  # the common case first: text keys hash their UTF-8
        data = key.encode("utf-8", "surrogatepass")
    else:
        if isinstance(key, (tuple, list)):
            key = [_by_value(v) for v in key]
        else:
            key = _by_value(key)
        data = _encode(key).encode("utf-8", "surrogatepass")
    return zlib.crc32(data) % partitions


def _by_value(v: Any) -> Any:
    """A number in the one spelling its equal values share (7.0 and -0.0 as the
    integers 7 and 0); other values as they are."""
    if type(v) is float and v.is_integer():
        return int(v)
    return v


def _upload(uri: str, write) -> tuple[Any, int]:
    """Write an object through a local temp file (``write(file)`` fills it),
    then store it at ``uri``; returns (what ``write`` returned, size)."""
    with tempfile.NamedTemporaryFile(prefix="sqlmr-out-", delete=False) as f:
        result = write(f)
        size = f.tell()
    try:
        storage.write_file(uri, f.name)
    finally:
        os.unlink(f.name)
    return result, size


def partitions_of(keys: Iterable, partitions: int) -> list[int]:
    """:func:`partition_of` of every key; for text keys the hashing runs in C
    (``map`` over ``crc32``), which keeps a map task's output step from
    costing as much as its scan.

    >>> partitions_of(["a", None, ("a", 1)], 3) == [partition_of(k, 3) for k in ["a", None, ("a", 1)]]
    True
    """
    try:
        return list(map(_mod, map(zlib.crc32, map(str.encode, keys)), repeat(partitions)))
    except (TypeError, UnicodeEncodeError):  # not all text: the general rule, key by key
        return [partition_of(k, partitions) for k in keys]


def split_items(items: list, keys: Iterable, partitions: int) -> list[list]:
    """``items`` (one per key, in the order of ``keys``) grouped by the
    partition of their key, the same partition :func:`partition_of` gives.

    >>> split_items([("a", 1), ("b", 2), ("c", 3)], ["a", "b", "c"], 2) == [
    ...     [i for i in [("a", 1), ("b", 2), ("c", 3)] if partition_of(i[0], 2) == p] for p in range(2)]
    True
    """
    if partitions <= 1:
        return [items if isinstance(items, list) else list(items)]
    out: list[list] = [[] for _ in range(partitions)]
    for item, p in zip(items, partitions_of(keys, partitions)):
        out[p].append(item)
    return out


def split_columns(keys: list, nums: list, partitions: int) -> list[tuple[list, list]]:
    """(keys, numbers) of each partition, in partition order.  One pass
    appends record by record: measured as fast as selecting each partition
    in C (``compress``) for two partitions, and its cost does not grow with
    the number of partitions.

    >>> split_columns(["a", "b", "c"], [1, 2, 3], 1)
    [(['a', 'b', 'c'], [1, 2, 3])]
    >>> cols = split_columns(["a", "b", "c"], [1, 2, 3], 2)
    >>> [sorted(zip(*c)) for c in cols] == [sorted(i for i in [("a", 1), ("b", 2), ("c", 3)]
    ...     if partition_of(i[0], 2) == p) for p in range(2)]
    True
    """
    if partitions <= 1:
        return [(keys, nums)]
    cols: list[tuple[list, list]] = [([], []) for _ in range(partitions)]
    for k, v, p in zip(keys, nums, partitions_of(keys, partitions)):
        ks, vs = cols[p]
        ks.append(k)
        vs.append(v)
    return cols


class PartitionedWriter:
    """Buffers records per partition; spills to a temp file past ``spill_bytes``
    so memory stays bounded whatever the output size.

    With ``sort=True`` (join shuffles) records are kept unencoded per partition
    and, every ``spill_records`` records and at the end, each partition's
    buffer is sorted by the records' first two fields (or by ``sort`` when it
    is a key function) and written as one sorted run (index version 2 lists
    the runs)."""

    def __init__(self, partitions: int, spill_bytes: int = SPILL_BYTES, sort=False,
                 spill_records: int | None = None) -> None:
        self.partitions = max(1, partitions)
        self.spill_bytes = spill_bytes
        self.sort = bool(sort)
        self.sort_key = sort if callable(sort) else _SORT_KEY
        self.spill_records = spill_records or SORT_SPILL_RECORDS
        self._pending: list[list] = [[] for _ in range(self.partitions)]
        self._encoded: list[list[bytes]] = [[] for _ in range(self.partitions)]
        self._buffered = 0
        self._spill = None  # temp file of (partition, bytes) segments
        self._segments: list[list[tuple[int, int]]] = [[] for _ in range(self.partitions)]
        self.records = [0] * self.partitions
        self._unsorted = 0   # sort mode: records buffered since the last run was cut
        self.runs_spilled = 0
        if sort:
            self.add = self._add_sorted  # type: ignore[method-assign]

    def add(self, partition: int, record: list) -> None:
        pending = self._pending[partition]
        pending.append(record)
        if len(pending) >= BATCH_ROWS:
            self._seal(partition)

    def _add_sorted(self, partition: int, record: list) -> None:
        self._pending[partition].append(record)
        self._unsorted += 1
        if self._unsorted >= self.spill_records:
            self._spill_runs()

    def add_pair_columns(self, keys: list, nums: list, kind: str, partition: int | None = None) -> None:
        """Add (key, number) records given as two columns, as pair batches
        (``kind`` "d" for float64, "q" for int64; records that do not fit go as
        JSON): each to the partition of its key, or all to ``partition``."""
        if partition is not None:
            self._add_columns(partition, keys, nums, kind)
            return
        for p, (ks, vs) in enumerate(split_columns(keys, nums, self.partitions)):
            self._add_columns(p, ks, vs, kind)

    def add_pair_partitions(self, keys: list[list], nums: list[list], kind: str) -> int:
        """Add (key, number) records already grouped by partition (``keys[p]``
        and ``nums[p]`` are partition p's), then empty those lists in place,
        so a caller's bound ``append`` methods stay valid; returns how many
        records were added.  What a scan that passes rows through hands over:
        it hashed each key as it read it.

        >>> w = PartitionedWriter(2)
        >>> ks, vs = [["a"], []], [[1.0], []]
        >>> w.add_pair_partitions(ks, vs, "d"), ks, w.records
        (1, [[], []], [1, 0])
        """
        n = 0
        for p, (ks, vs) in enumerate(zip(keys, nums)):
            if ks:
                self._add_columns(p, ks, vs, kind)
                n += len(ks)
                ks.clear()
                vs.clear()
        return n

    def _add_columns(self, partition: int, keys: list, nums: list, kind: str) -> None:
        if not keys:
            return
        if self.sort:
            self.add_batch(partition, list(map(list, zip(keys, nums))))
            return
        self._seal(partition)
        for i in range(0, len(keys), BATCH_ROWS):
            ks, vs = keys[i:i + BATCH_ROWS], nums[i:i + BATCH_ROWS]
            blob = encode_pairs(ks, vs, kind)
            if blob is None:
                self._push(partition, list(map(list, zip(ks, vs))))
                continue
            self.records[partition] += len(ks)
            self._encoded[partition].append(blob)
            self._buffered += len(blob)
            if self._buffered >= self.spill_bytes:
                self._spill_all()

    def add_batch(self, partition: int, records: list) -> None:
        """Add many records at once (one JSON encode for the batch)."""
        if not records:
            return
        if self.sort:
            self._pending[partition].extend(records)
            self._unsorted += len(records)
            if self._unsorted >= self.spill_records:
                self._spill_runs()
            return
        self._seal(partition)
        self._push(partition, records)

    # ------------------------------------------------------------ sort mode
    def _run_blobs(self, partition: int) -> list[bytes]:
        """Sort and encode a partition's buffered records as one run."""
        rows = self._pending[partition]
        self._pending[partition] = []
        rows.sort(key=self.sort_key)
        self.records[partition] += len(rows)
        return [encode_batch(rows[i:i + SORT_BATCH_ROWS])
                for i in range(0, len(rows), SORT_BATCH_ROWS)]

    def _spill_runs(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="sqlmr-spill-")
        for p in range(self.partitions):
            if not self._pending[p]:
                continue
            data = b"".join(self._run_blobs(p))
            start = self._spill.seek(0, os.SEEK_END)
            self._spill.write(data)
            self._segments[p].append((start, len(data)))
        self._unsorted = 0
        self.runs_spilled += 1

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
        if self.sort:
            for p in range(self.partitions):
                if self._pending[p]:
                    self._encoded[p] = self._run_blobs(p)
            return
        for p in range(self.partitions):
            self._seal(p)

    def write_to(self, out) -> dict:
        """Write the whole file to a binary stream; returns the index."""
        self._finish()
        offset = out.write(MAGIC)
        spans = []
        runs: list[list[list[int]]] = []
        for p in range(self.partitions):
            start = offset
            part_runs = []
            for seg_start, seg_len in self._segments[p]:
                self._spill.seek(seg_start)
                remaining = seg_len
                while remaining:
                    chunk = self._spill.read(min(remaining, 8 << 20))
                    out.write(chunk)
                    remaining -= len(chunk)
                part_runs.append([offset, offset + seg_len])
                offset += seg_len
            run_start = offset
            for blob in self._encoded[p]:
                offset += out.write(blob)
            if offset > run_start:
                part_runs.append([run_start, offset])
            spans.append([start, offset])
            runs.append(part_runs)
        if self.sort:
            index = {"v": 2, "partitions": spans, "records": self.records, "runs": runs}
        else:
            index = {"v": 1, "partitions": spans, "records": self.records}
        write_tail(out, index, offset)
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        return index

    def save_text(self, uri: str, delimiter: str, width: int) -> tuple[int, int]:
        """Write partition 0 as delimited text (a table's data file) to ``uri``
        instead of the batch file; returns (rows, bytes)."""
        with tempfile.NamedTemporaryFile(prefix="sqlmr-batches-") as batches:
            start, end = self.write_to(batches)["partitions"][0]
            batches.flush()

            def write(f) -> int:
                rows = 0
                for batch in iter_batches(storage.to_uri(batches.name), start, end):
                    f.write(text_lines(batch, delimiter, width))
                    rows += len(batch)
                return rows
            return _upload(uri, write)

    def to_bytes(self) -> tuple[bytes, dict]:
        import io
        buf = io.BytesIO()
        index = self.write_to(buf)
        return buf.getvalue(), index

    def save(self, uri: str) -> tuple[dict, int]:
        """Write the file to ``uri``; returns (index, size in bytes)."""
        if storage.is_s3(uri) or self._spill is not None:
            return _upload(uri, self.write_to)
        data, index = self.to_bytes()
        storage.write_bytes(uri, data)
        return index, len(data)


NULL_TEXT = "\\N"


class TextValueError(ValueError):
    """A value cannot be written to a delimited text table without breaking its row."""


def text_value(v: Any, delimiter: str) -> str:
    """A value as a text table field: ``\\N`` for NULL, floats exact.

    >>> [text_value(v, ",") for v in (None, 1, 2.5, True, "a b", 1e-05)]
    ['\\\\N', '1', '2.5', 'true', 'a b', '1e-05']
    """
    if v is None:
        return NULL_TEXT
    if isinstance(v, str):
        if delimiter in v or "\n" in v or "\r" in v or v == NULL_TEXT:
            what = "the field delimiter" if delimiter in v else (
                "a line break" if v != NULL_TEXT else "the NULL marker \\N")
            raise TextValueError(f"the value {v[:60]!r} contains {what}: it cannot be written "
                                 f"to a text table delimited by {delimiter!r} (choose another "
                                 f"delimiter with ROW FORMAT DELIMITED FIELDS TERMINATED BY)")
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def text_lines(records: list, delimiter: str, width: int) -> bytes:
    """Records (their first ``width`` values) as text lines."""
    return "".join(delimiter.join([text_value(v, delimiter) for v in r[:width]]) + "\n"
                   for r in records).encode("utf-8")


def decode_batch(line: bytes) -> list:
    """The records of one batch line (a JSON array, or a pair batch).

    >>> decode_batch(encode_pairs(["a", "b"], [1.5, -0.0], "d").rstrip())
    [['a', 1.5], ['b', -0.0]]
    >>> decode_batch(b'[["a",1]]')
    [['a', 1]]
    """
    cols = _pair_columns(line)
    if cols is not None:
        return list(map(list, zip(*cols)))
    obj = _decode(line.decode("utf-8"))
    if type(obj) is list:
        return obj
    return list(map(list, zip(_pair_keys(obj), _numbers(obj))))


def _numbers(obj: dict) -> array:
    kind = "d" if "d" in obj else "q"
    return _number_array(kind, obj[kind])


def _number_array(kind: str, b64: str) -> array:
    """A pair batch's numbers from their base64 (little-endian int64 or float64)."""
    numbers = array(kind)
    numbers.frombytes(base64.b64decode(b64))
    if sys.byteorder != "little":
        numbers.byteswap()
    return numbers


def decode_pairs(line: bytes) -> tuple[list, Any, bool]:
    """A batch of (key, number) records as columns: ``(keys, numbers,
    maybe_null)``.  A pair batch gives its numbers as an array (never NULL);
    a JSON batch of two-field records gives lists, and ``maybe_null`` True
    because a number there may be None.

    >>> decode_pairs(encode_pairs(["a", "b"], [1.5, 2.0], "d").rstrip())
    (['a', 'b'], array('d', [1.5, 2.0]), False)
    >>> decode_pairs(b'[["a",null],["b",3]]')
    (['a', 'b'], [None, 3], True)
    """
    cols = _pair_columns(line)
    if cols is not None:
        return cols[0], cols[1], False
    obj = _decode(line.decode("utf-8"))
    if type(obj) is list:
        return list(map(_first, obj)), list(map(_second, obj)), True
    return _pair_keys(obj), _numbers(obj), False


def decode_rows(line: bytes) -> Iterable[tuple]:
    """The records of one batch line as tuples (what a reader of results
    wants: a pair batch's columns are zipped without a list per record).

    >>> list(decode_rows(encode_pairs(["a"], [1.5], "d").rstrip())), list(decode_rows(b'[["a",null]]'))
    ([('a', 1.5)], [('a', None)])
    """
    cols = _pair_columns(line)
    if cols is not None:
        return zip(*cols)
    obj = _decode(line.decode("utf-8"))
    if type(obj) is list:
        return map(tuple, obj)
    return zip(_pair_keys(obj), _numbers(obj))


def iter_rows(uri: str, start: int, end: int, chunk_bytes: int = 4 << 20) -> Iterator[tuple]:
    """Every record of one range ``[start, end)`` of a file, as a tuple."""
    return chain.from_iterable(map(decode_rows, _batch_lines(uri, start, end, chunk_bytes)))


def iter_pairs(ranges: Iterable[dict], chunk_bytes: int = 4 << 20) -> Iterator[tuple[list, Any, bool]]:
    """Every batch of several ranges of (key, number) records, as columns
    (:func:`decode_pairs`): what a reducer merging one-number states reads."""
    return map(decode_pairs, _ranges_lines(ranges, chunk_bytes))


def encode_pairs(keys: list, numbers: list, kind: str) -> bytes | None:
    r"""A pair batch line for text keys and float64 (``"d"``) or int64 (``"q"``)
    numbers; None when a number does not fit (the caller writes JSON).

    The line is the JSON object ``{"s": keys joined by KEY_SEP, kind: base64
    of the numbers}``, written here piece by piece: a map with 2,048 fine
    partitions writes thousands of small batches, where a general JSON
    encode per batch cost twice the bytes' own work.

    >>> encode_pairs(["a", 'q"'], [1.5, 2.0], "d")
    b'{"s":"a\x7fq\\"","d":"AAAAAAAA+D8AAAAAAAAAQA=="}\n'
    >>> encode_pairs(["a", 'q"'], [1.5, 2.0], "d") == _encode(
    ...     {"s": "a\x7fq\"", "d": "AAAAAAAA+D8AAAAAAAAAQA=="}).encode() + b"\n"
    True
    >>> all(encode_pairs([k, "b"], [1.5, 2.0], "d") == _encode({"s": k + KEY_SEP + "b", "d":
    ...     "AAAAAAAA+D8AAAAAAAAAQA=="}).encode() + b"\n" for k in ["", "é", "a\\b", "\t", "\x1f", "\x80"])
    True
    >>> encode_pairs(["a", None], [1, 2], "q")
    b'{"k":["a",null],"q":"AQAAAAAAAAACAAAAAAAAAA=="}\n'
    >>> [encode_pairs(["a"], [v], k) for v, k in [(2 ** 70, "q"), (1.5, "q"), (None, "d"), ("1", "d")]]
    [None, None, None, None]
    >>> encode_pairs(["a", "b"], [True, -2 ** 63], "q") == encode_pairs(["a", "b"], [1, -2 ** 63], "q")
    True
    """
    try:
        # little-endian whatever the machine; struct converts a number half
        # as fast again as array() does (which parses each as an argument)
        packed = struct.pack(f"<{len(numbers)}{kind}", *numbers)
    except (OverflowError, TypeError, struct.error):
        return None
    numbers_b64 = base64.b64encode(packed)
    try:
        joined = KEY_SEP.join(keys)
    except TypeError:  # a key is not text (NULL): keys as a JSON list
        joined = None
    if joined is not None and joined.count(KEY_SEP) == len(keys) - 1:
        data = joined.encode("utf-8")
        # nothing JSON escapes (a quote, a backslash, a control character):
        # the text is its own JSON string, and one C pass over its bytes says
        # so three times faster than the encoder would print it
        if len(data.translate(None, _JSON_ESCAPED)) == len(data):
            return b"".join((b'{"s":"', data, b'"', _NUMBERS_AT[kind], numbers_b64, b'"}\n'))
        return b"".join((b'{"s":', _json_str(joined).encode("utf-8"), _NUMBERS_AT[kind],
                         numbers_b64, b'"}\n'))
    return _encode({"k": keys, kind: numbers_b64.decode("ascii")}).encode("utf-8") + b"\n"


_json_str = json.encoder.encode_basestring   # what the encoder writes for a str (ensure_ascii off)
_JSON_ESCAPED = bytes(range(32)) + b'"\\'     # the bytes it writes otherwise
_NUMBERS_AT = {"d": b',"d":"', "q": b',"q":"'}


def _pair_columns(line: bytes) -> tuple[list, array] | None:
    r"""The keys and numbers of a ``{"s": …}`` pair batch line, read without a
    general JSON decode; None for any other line.

    >>> _pair_columns(encode_pairs(["a", 'q"'], [1.5, 2.0], "d").rstrip())
    (['a', 'q"'], array('d', [1.5, 2.0]))
    >>> _pair_columns(b'[["a",1]]') is None, _pair_columns(b'{"k":["a"],"q":"AQAAAAAAAAA="}') is None
    (True, True)
    """
    if not line.startswith(b'{"s":"'):
        return None
    text = line.decode("utf-8")
    joined, end = _scan_str(text, 6)
    kind = text[end + 2:end + 3]
    if text[end:end + 2] != ',"' or text[end + 3:end + 6] != '":"' or kind not in _NUMBERS_AT \
            or not text.endswith('"}'):
        return None
    return joined.split(KEY_SEP), _number_array(kind, text[end + 6:-2])


_scan_str = json.decoder.scanstring


def _pair_keys(obj: dict) -> list:
    return obj["s"].split(KEY_SEP) if "s" in obj else obj["k"]


def iter_batches_bytes(data: bytes) -> Iterator[list]:
    for line in data.split(b"\n"):
        if line:
            yield decode_batch(line)


def batch_lines(uri: str, start: int, end: int, chunk_bytes: int = 4 << 20) -> Iterator[bytes]:
    """The undecoded batch lines of one range ``[start, end)`` of a file (for
    a reader that decodes them its own way: the driver's column batches)."""
    return _batch_lines(uri, start, end, chunk_bytes)


def _batch_lines(uri: str, start: int, end: int, chunk_bytes: int) -> Iterator[bytes]:
    """The batch lines of one range ``[start, end)`` of a file, streamed."""
    if end <= start:
        return iter(())
    return _lines(storage.iter_range(uri, start, end, chunk=chunk_bytes))


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    r"""The non-empty lines of a stream of chunks (without their newlines).

    Batch lines are long (thousands of records): each is found with
    ``bytes.find`` (``memchr``) rather than by ``split``'s byte-by-byte scan,
    and only a line that spans chunks is copied twice.

    >>> list(_lines([b"ab\nc", b"d\n\ne", b"", b"f", b"\ng"]))
    [b'ab', b'cd', b'ef', b'g']
    """
    pieces: list[bytes] = []   # the start of a line begun in earlier chunks
    for chunk in chunks:
        start = 0
        if pieces:
            nl = chunk.find(b"\n")
            if nl < 0:
                pieces.append(chunk)
                continue
            pieces.append(chunk[:nl])
            line = b"".join(pieces)
            pieces = []
            if line:
                yield line
            start = nl + 1
        find = chunk.find
        while (nl := find(b"\n", start)) >= 0:
            if nl > start:
                yield chunk[start:nl]
            start = nl + 1
        if start < len(chunk):
            pieces.append(chunk[start:])
    line = b"".join(pieces)
    if line:
        yield line


def _ranges_lines(ranges: Iterable[dict], chunk_bytes: int = 4 << 20) -> Iterator[bytes]:
    """The batch lines of several ranges, one range after another; on S3 many
    ranges are fetched at once, ahead of the reader
    (:func:`runtime.storage.iter_ranges_ahead`)."""
    spans = [(r["uri"], r["start"], r["end"]) for r in ranges if r["end"] > r["start"]]
    # a range's last batch line ends at its end: lines never span two ranges
    for _, chunks in groupby(storage.iter_ranges_ahead(spans, chunk_bytes), key=itemgetter(0)):
        yield from _lines(chunk for _, chunk in chunks)


def iter_batches(uri: str, start: int, end: int, chunk_bytes: int = 4 << 20) -> Iterator[list]:
    """Stream the batches of one partition range ``[start, end)`` of a file."""
    return map(decode_batch, _batch_lines(uri, start, end, chunk_bytes))


def iter_ranges(ranges: Iterable[dict]) -> Iterator[list]:
    """Batches of several ``{"uri", "start", "end"}`` ranges, one after another."""
    return map(decode_batch, _ranges_lines(ranges))


def iter_records(uri: str, start: int, end: int, chunk_bytes: int = RUN_CHUNK) -> Iterator[list]:
    """The records of one range, one at a time (one decoded batch held)."""
    for batch in iter_batches(uri, start, end, chunk_bytes):
        yield from batch


def iter_runs(ranges: Iterable[dict]) -> list[Iterator[list]]:
    """One record iterator per sorted run of the given ranges: a range that
    lists its ``runs`` (version 2 files) gives one iterator per run, any other
    range one iterator for the whole range (a task output sorted as a whole).

    >>> w = PartitionedWriter(1, sort=True, spill_records=3)
    >>> for k in [5, 1, 4, 2, 3]: w.add(0, [k, 0])
    >>> data, index = w.to_bytes()
    >>> index["v"], len(index["runs"][0])
    (2, 2)
    >>> import heapq, os, tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "f"); _ = open(p, "wb").write(data)
    >>> runs = iter_runs([{"uri": "file://" + p, "start": index["partitions"][0][0],
    ...                    "end": index["partitions"][0][1], "runs": index["runs"][0]}])
    >>> [r[0] for r in heapq.merge(*runs, key=itemgetter(0, 1))]
    [1, 2, 3, 4, 5]
    """
    return [chain.from_iterable(batches) for batches in run_batches(ranges)]


def _run_spans(ranges: Iterable[dict]) -> list[tuple[str, int, int]]:
    """``(uri, start, end)`` of every sorted run of the ranges (a range that
    does not list its runs is one run)."""
    out: list[tuple[str, int, int]] = []
    for r in ranges:
        runs = r.get("runs")
        spans = [(r["start"], r["end"])] if runs is None else [(s, e) for s, e in runs if e > s]
        out.extend((r["uri"], s, e) for s, e in spans)
    return out


def run_batches(ranges: Iterable[dict], chunk_bytes: int = RUN_CHUNK) -> list[Iterator[list]]:
    """As :func:`iter_runs`, but each run as an iterator of its (sorted)
    batches.  On S3 the runs are read as :class:`runtime.readahead.Streams`:
    each run's next chunk in flight, and the first chunks of the next runs
    requested while one is opened."""
    spans = _run_spans(ranges)
    if not any(storage.is_s3(u) for u, _, _ in spans):
        return [iter_batches(u, s, e, chunk_bytes) for u, s, e in spans]
    streams = storage.range_streams(spans, chunk_bytes)
    return [map(decode_batch, _lines(streams.stream(i))) for i in range(len(spans))]


def merge_batches(runs: list[Iterator[list]], key) -> Iterator[list]:
    """Merge sorted runs, each an iterator of sorted batches, into sorted chunks.

    Each step takes, from every run's current batch, the records up to the
    smallest last key among those batches (all that can come next), and sorts
    them in C (timsort merges the sorted pieces); so the merge holds one batch
    per run and costs no Python work per record, unlike ``heapq.merge``.

    >>> runs = [iter([[1, 4], [6, 9]]), iter([[2, 3, 4, 5]]), iter([[0, 7]])]
    >>> [x for chunk in merge_batches(runs, lambda v: v) for x in chunk]
    [0, 1, 2, 3, 4, 4, 5, 6, 7, 9]
    """
    from bisect import bisect_right
    heads: list[list] = []
    its: list[Iterator[list]] = []
    for it in runs:
        for b in it:
            if b:
                heads.append(b)
                its.append(it)
                break
    while heads:
        if len(heads) == 1:
            yield heads[0]
            yield from (b for b in its[0] if b)
            return
        horizon = min(key(b[-1]) for b in heads)
        chunk: list = []
        i = 0
        while i < len(heads):
            b = heads[i]
            if not horizon < key(b[-1]):    # (sort keys may define only <)
                chunk += b
                nxt = next((x for x in its[i] if x), None)
                if nxt is None:
                    del heads[i], its[i]
                    continue
                heads[i] = nxt
            else:
                j = bisect_right(b, horizon, key=key)
                if j:
                    chunk += b[:j]
                    heads[i] = b[j:]
            i += 1
        chunk.sort(key=key)
        yield chunk


def merge_runs(runs: list[Iterator[list]], key, fanin: int = MERGE_FANIN) -> list[Iterator[list]]:
    """At most ``fanin`` sorted runs (iterators of batches) covering the same
    records: while there are more, groups of ``fanin`` are merged into temp
    files (a multi-pass merge), so a merge never holds more than ``fanin``
    batches however many map tasks wrote runs.

    >>> runs = [iter([[[k, 0]]]) for k in (5, 3, 9, 1, 7)]
    >>> merged = merge_runs(runs, itemgetter(0, 1), fanin=2)
    >>> len(merged), [r[0] for c in merge_batches(merged, itemgetter(0, 1)) for r in c]
    (2, [1, 3, 5, 7, 9])
    """
    fanin = max(2, fanin)
    while len(runs) > fanin:
        merged: list[Iterator[list]] = []
        for i in range(0, len(runs), fanin):
            group = runs[i:i + fanin]
            if len(group) == 1:
                merged.append(group[0])
                continue
            f = tempfile.TemporaryFile(prefix="sqlmr-merge-")
            for chunk in merge_batches(group, key):
                for j in range(0, len(chunk), SORT_BATCH_ROWS):
                    f.write(encode_batch(chunk[j:j + SORT_BATCH_ROWS]))
            f.seek(0)
            merged.append(_file_batches(f))
        runs = merged
    return runs


def _file_batches(f) -> Iterator[list]:
    with f:
        for line in f:
            yield decode_batch(line.rstrip(b"\n"))


def read_index(data: bytes) -> dict:
    """The index of a whole file held in memory (for tools and tests)."""
    offset = int(data[-16:])
    return _decode(data[offset:data.index(b"\n", offset)].decode())



# ------------------------------------------------------------ partition tables
ENTRY = 16   # bytes of a partition table entry: (start offset, runs before it)


def _int64s(values: Iterable[int]) -> bytes:
    a = array("q", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _from_int64s(data: bytes) -> array:
    a = array("q")
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def partition_table(index: dict) -> tuple[bytes, int]:
    """The binary partition table of an index, and its number of run
    boundaries (0 for version 1).

    >>> table, cuts = partition_table({"v": 2, "partitions": [[7, 9], [9, 9], [9, 20]],
    ...                                "runs": [[[7, 9]], [], [[9, 15], [15, 20]]]})
    >>> list(_from_int64s(table)), cuts
    ([7, 0, 9, 1, 9, 1, 20, 3, 7, 9, 15, 20], 4)
    """
    spans = index["partitions"]
    runs = index.get("runs")
    entries: list[int] = []
    cuts: list[int] = []
    for p, (start, end) in enumerate(spans):
        entries += [start, len(cuts)]
        if runs is not None:
            cuts += [s for s, e in runs[p] if e > s]
    end = spans[-1][1] if spans else len(MAGIC)
    entries += [end, len(cuts)]
    if runs is not None:
        cuts.append(end)
    return _int64s(entries + cuts), len(cuts)


def write_tail(out, index: dict, offset: int) -> int:
    """Write a file's index, partition table and trailer after its data
    (``offset``: where the index starts); returns the file's size."""
    table, _ = partition_table(index)
    index_bytes = _encode(index).encode() + b"\n"
    out.write(index_bytes)
    out.write(table)
    out.write(b"%016d" % offset)
    return offset + len(index_bytes) + len(table) + 16


def output_facts(uri: str, index: dict, size: int) -> dict:
    """What a task reports of an output file of ``size`` bytes: where it is
    and what locates its partition table (``size``, ``parts``, ``cuts``),
    and the bytes of each partition (the driver coalesces partitions by
    them).  A one-partition output (a result, rows for a later stage) also
    gives its span, records and runs as before; a shuffle output's
    per-partition offsets stay in the file, for reducers to read."""
    spans = index["partitions"]
    cuts = (sum(1 for rs in index["runs"] for s, e in rs if e > s) + 1
            if "runs" in index else 0)
    facts = {"uri": uri, "size": size, "parts": len(spans), "cuts": cuts,
             "sizes": [e - s for s, e in spans], "rows": sum(index["records"])}
    if len(spans) == 1:
        facts["partitions"] = spans
        facts["records"] = index["records"]
        if "runs" in index:
            facts["runs"] = index["runs"]
    return facts


def listed(o: dict) -> dict:
    """An output as a shuffle list names it: what locates its table."""
    return {"uri": o["uri"], "size": o["size"], "parts": o["parts"], "cuts": o["cuts"]}


def object_range(o: dict, lo: int, hi: int) -> dict | None:
    """The byte range (and sorted runs, version 2) of partitions ``[lo, hi)``
    of one listed object (:func:`listed`), read from its partition table with
    one ranged GET (two with runs); None when those partitions are empty."""
    parts, cuts = o["parts"], o["cuts"]
    lo, hi = max(0, lo), min(hi, parts)
    if hi <= lo:
        return None
    table_end = o["size"] - 16 - 8 * cuts
    entries_start = table_end - ENTRY * (parts + 1)
    e = _from_int64s(storage.read_range(o["uri"], entries_start + ENTRY * lo,
                                        entries_start + ENTRY * (hi + 1)))
    start, c_lo, end, c_hi = e[0], e[1], e[-2], e[-1]
    if end <= start:
        return None
    r = {"uri": o["uri"], "start": start, "end": end}
    if cuts:
        bounds = _from_int64s(storage.read_range(o["uri"], table_end + 8 * c_lo,
                                                 table_end + 8 * (c_hi + 1)))
        r["runs"] = [[bounds[i], bounds[i + 1]] for i in range(len(bounds) - 1)]
    return r


# ------------------------------------------------------------- bounds tables
BOUNDS_ROWS_ONE_GET = 1 << 20   # bytes of bounds rows a reducer reads with one GET


def bounds_table(objects: list[dict], fine: int) -> bytes:
    """Where every partition boundary ``b`` (0 … ``fine``) lies in every
    listed object, as the driver knows from the partition sizes the tasks
    reported: row ``b`` holds one little-endian int64 per object, the start
    of partition ``b`` (the end of the data for ``b`` past its partitions).
    A reducer of ``[lo, hi)`` reads rows ``lo`` and ``hi`` with one ranged
    GET instead of one GET of each object's own table: partitions lie in
    order right after the magic line, so the sizes locate them.

    >>> objs = [{"sizes": [3, 0, 4]}, {"sizes": [5]}]
    >>> list(_from_int64s(bounds_table(objs, 3)))
    [7, 7, 10, 12, 10, 12, 14, 12]
    """
    starts = []
    for o in objects:
        cum = list(accumulate(o["sizes"][:fine], initial=len(MAGIC)))
        starts.append(cum + [cum[-1]] * (fine + 1 - len(cum)))
    return _int64s(v for row in zip(*starts) for v in row)


def bounds_ranges(bounds_uri: str, objects: int, lo: int, hi: int) -> tuple[array, array]:
    """Rows ``lo`` and ``hi`` of a :func:`bounds_table` of ``objects`` columns:
    one ranged GET of the rows between (two when they are far apart)."""
    row = 8 * objects
    if (hi - lo + 1) * row <= BOUNDS_ROWS_ONE_GET:
        rows = _from_int64s(storage.read_range(bounds_uri, lo * row, (hi + 1) * row))
        return rows[:objects], rows[-objects:]
    return (_from_int64s(storage.read_range(bounds_uri, lo * row, (lo + 1) * row)),
            _from_int64s(storage.read_range(bounds_uri, hi * row, (hi + 1) * row)))


def list_ranges(list_uri: str, lo: int, hi: int, spool: list[str] | None = None,
                bounds: str | None = None) -> list[dict]:
    """A reducer's input: the ranges of partitions ``[lo, hi)`` of every
    object of a stage's shuffle list (a JSON list of :func:`listed` objects).
    With ``bounds`` (the stage's :func:`bounds_table`) an object's range comes
    from it; else, and for an object of sorted runs, from the object's own
    partition table.  A range of several sorted runs in S3 is fetched with one
    GET into a local temp file (its path appended to ``spool``, for the caller
    to delete), so the merge reads its runs locally instead of one GET per run."""
    objects = _decode(storage.read_range(list_uri).decode("utf-8"))
    starts = ends = None
    if bounds is not None and objects:
        starts, ends = bounds_ranges(bounds, len(objects), lo, hi)
    out = []
    for m, o in enumerate(objects):
        if starts is not None and not o["cuts"]:
            r = {"uri": o["uri"], "start": starts[m], "end": ends[m]} \
                if ends[m] > starts[m] else None
        else:
            r = object_range(o, lo, hi)
        if r is None:
            continue
        if spool is not None and len(r.get("runs", ())) > 1 and storage.is_s3(r["uri"]):
            r = _spooled(r, spool)
        out.append(r)
    return out


def _spooled(r: dict, spool: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(prefix="sqlmr-range-", delete=False) as f:
        spool.append(f.name)
        for chunk in storage.iter_range(r["uri"], r["start"], r["end"]):
            f.write(chunk)
    base = r["start"]
    return {"uri": storage.to_uri(f.name), "start": 0, "end": r["end"] - base,
            "runs": [[s - base, e - base] for s, e in r["runs"]]}


# ------------------------------------------------------------------ combiners
#: A merging combiner keeps adding the numbers of each key only while that
#: shrinks what it writes to at most this share of what it reads; once the
#: first MERGE_SAMPLE_RECORDS records say otherwise it copies bytes (keys too
#: many for the combiner's share of the data: 2c's).  Hive's map-side
#: aggregation gives up the same way (hive.map.aggr.hash.min.reduction).
MERGE_MAX_RATIO = 0.5
MERGE_SAMPLE_RECORDS = 50_000


def combine(objects: list[dict], out, chunk: int = 8 << 20, merge: str | None = None,
            counts: dict | None = None) -> dict:
    """Write to ``out`` one file holding, partition by partition, the bytes
    of every listed object's partition (objects in the order given): the
    output of a combiner, read by reducers exactly as a map output.  Each
    object is read whole with one GET (an S3 object through a temp file,
    :data:`COMBINE_FETCHES` at a time);
    sorted runs stay separate runs, so a reducer's merge sees them all.
    With ``merge="sum"`` (records are (key, number) pairs of a SUM or COUNT,
    never sorted runs) a partition's numbers of the same key are added
    (:func:`merge_pairs`) while that pays (:data:`MERGE_MAX_RATIO`).
    ``counts``, when given, receives ``records_in`` (and when adding: the
    partitions ``merged`` and ``copied``, and the partitions' ``data_bytes``).
    Returns the new file's index.

    >>> import os, io, tempfile
    >>> d = tempfile.mkdtemp(); objs = []
    >>> for n, rows in enumerate([[(0, ["a", 1]), (1, ["b", 2])], [(1, ["c", 3])]]):
    ...     w = PartitionedWriter(2)
    ...     for p, r in rows: w.add(p, r)
    ...     uri = storage.to_uri(os.path.join(d, f"m{n}"))
    ...     objs.append(listed(output_facts(uri, *w.save(uri))))
    >>> buf = io.BytesIO(); index = combine(objs, buf)
    >>> s, e = index["partitions"][1]
    >>> [r for b in iter_batches_bytes(buf.getvalue()[s:e]) for r in b], index["records"]
    ([['b', 2], ['c', 3]], [1, 2])
    """
    if merge not in (None, "sum"):
        raise ValueError(f"unknown combiner merge {merge!r}")
    if merge and not any(o["cuts"] for o in objects):
        return _combine_adding(objects, out, counts)
    opened = []
    temps: list[str] = []
    try:
        local = _download_all([o for o in objects if storage.is_s3(o["uri"])], chunk, temps)
        for o in objects:
            path = local.get(o["uri"]) or storage.to_path(o["uri"])
            fh = open(path, "rb")
            opened.append(fh)
            fh.seek(-16, os.SEEK_END)
            at = int(fh.read(16))
            fh.seek(at)
            opened[-1] = (fh, _decode(fh.readline().decode()))
        parts = max((idx["partitions"].__len__() for _, idx in opened), default=1)
        sort = any("runs" in idx for _, idx in opened)
        offset = out.write(MAGIC)
        spans: list[list[int]] = []
        runs: list[list[list[int]]] = []
        records = [0] * parts
        for p in range(parts):
            start = offset
            part_runs: list[list[int]] = []
            for fh, idx in opened:
                s, e = idx["partitions"][p]
                if e <= s:
                    continue
                if sort:
                    for rs, re_ in idx.get("runs", [[[s, e]]] * parts)[p]:
                        if re_ > rs:
                            part_runs.append([offset + rs - s, offset + re_ - s])
                fh.seek(s)
                remaining = e - s
                while remaining:
                    data = fh.read(min(remaining, chunk))
                    out.write(data)
                    remaining -= len(data)
                offset += e - s
                records[p] += idx["records"][p]
            spans.append([start, offset])
            runs.append(part_runs)
        index = {"v": 2 if sort else 1, "partitions": spans, "records": records}
        if sort:
            index["runs"] = runs
        write_tail(out, index, offset)
        if counts is not None:
            counts["records_in"] = sum(sum(idx["records"]) for _, idx in opened)
        return index
    finally:
        for item in opened:
            (item[0] if isinstance(item, tuple) else item).close()
        for t in temps:
            os.unlink(t)


#: Bytes of its input an adding combiner reads per round (a range of
#: partitions, one ranged GET per object): it adds one round's numbers while
#: the next downloads.
ADD_ROUND_BYTES = 64 << 20
#: An object's last bytes read at once for its index (one GET when it fits).
TAIL_BYTES = 256 << 10


def _combine_adding(objects: list[dict], out, counts: dict | None) -> dict:
    """:func:`combine` with ``merge="sum"``: the partitions are read in
    rounds of about :data:`ADD_ROUND_BYTES` (a contiguous range of
    partitions, one ranged GET of each object, read ahead while the round
    before is added), each partition's numbers added by key
    (:func:`merge_pairs`) until the sample says that does not pay, then its
    bytes copied."""
    indexes = _object_indexes(objects)
    parts = max((len(idx["partitions"]) for idx in indexes), default=1)
    spans = [idx["partitions"] + [[idx["partitions"][-1][1]] * 2] * (parts - len(idx["partitions"]))
             for idx in indexes]
    rounds = _rounds(spans, parts, ADD_ROUND_BYTES)
    ranges = []     # (uri, start, end) of each round's objects, rounds in order
    owners = []     # (round, object) of each range
    for r, (lo, hi) in enumerate(rounds):
        for j, sp in enumerate(spans):
            if sp[hi - 1][1] > sp[lo][0]:
                ranges.append((objects[j]["uri"], sp[lo][0], sp[hi - 1][1]))
                owners.append((r, j))
    merging = True
    seen_in = seen_out = merged = 0
    offset = out.write(MAGIC)
    out_spans: list[list[int]] = []
    records = [0] * parts
    got: dict[int, list[bytes]] = {}     # this round: object -> its bytes so far

    def flush(r: int) -> None:
        nonlocal merging, seen_in, seen_out, merged, offset
        lo, hi = rounds[r]
        blobs = {j: b"".join(v) for j, v in got.items()}
        got.clear()
        for p in range(lo, hi):
            start = offset
            pieces = [blobs[j][sp[p][0] - sp[lo][0]:sp[p][1] - sp[lo][0]]
                      for j, sp in enumerate(spans) if j in blobs and sp[p][1] > sp[p][0]]
            if merging:
                lines, n_in, n_out = merge_pairs(pieces)
                for line in lines:
                    offset += out.write(line)
                records[p] = n_out
                seen_in += n_in
                seen_out += n_out
                merged += 1
                if seen_in >= MERGE_SAMPLE_RECORDS and seen_out > MERGE_MAX_RATIO * seen_in:
                    merging = False   # the keys barely repeat: copying costs less
            else:
                for piece in pieces:
                    offset += out.write(piece)
                records[p] = sum(idx["records"][p] for idx in indexes
                                 if p < len(idx["records"]))
            out_spans.append([start, offset])

    current = 0
    for i, data in storage.iter_ranges_ahead(ranges):
        r, j = owners[i]
        while current < r:
            flush(current)
            current += 1
        got.setdefault(j, []).append(data)
    while current < len(rounds):
        flush(current)
        current += 1
    index = {"v": 1, "partitions": out_spans or [[offset, offset]] * parts, "records": records}
    write_tail(out, index, offset)
    if counts is not None:
        counts["records_in"] = sum(sum(idx["records"]) for idx in indexes)
        counts["merged"], counts["copied"] = merged, parts - merged
        counts["data_bytes"] = sum(e - st for _, st, e in ranges)
    return index


def _object_indexes(objects: list[dict]) -> list[dict]:
    """Each object's index, from one ranged GET of its last
    :data:`TAIL_BYTES` (two when its index is longer), read ahead."""
    tails = [(o["uri"], max(0, o["size"] - TAIL_BYTES), o["size"]) for o in objects]
    data: list[list[bytes]] = [[] for _ in objects]
    for i, chunk in storage.iter_ranges_ahead(tails):
        data[i].append(chunk)
    out = []
    for o, (_, start, end), pieces in zip(objects, tails, data):
        tail = b"".join(pieces)
        at = int(tail[-16:])
        if at < start:
            tail = storage.read_range(o["uri"], at, end)
            start = at
        line_end = tail.index(b"\n", at - start)
        out.append(_decode(tail[at - start:line_end].decode()))
    return out


def _rounds(spans: list[list[list[int]]], parts: int, target: int) -> list[tuple[int, int]]:
    """Contiguous ranges ``[lo, hi)`` of partitions holding about ``target``
    bytes over all objects (a partition bigger than that is a round alone).

    >>> _rounds([[[7, 17], [17, 27], [27, 30]], [[7, 8], [8, 20], [20, 20]]], 3, 20)
    [(0, 1), (1, 2), (2, 3)]
    >>> _rounds([[[7, 9], [9, 10], [10, 12]]], 3, 100)
    [(0, 3)]
    """
    out: list[tuple[int, int]] = []
    lo = acc = 0
    for p in range(parts):
        size = sum(sp[p][1] - sp[p][0] for sp in spans)
        if acc and acc + size > target:
            out.append((lo, p))
            lo, acc = p, 0
        acc += size
    out.append((lo, parts))
    return out


def merge_pairs(pieces: Iterable[bytes]) -> tuple[list[bytes], int, int]:
    r"""The (key, number) records of one partition's pieces (batch lines, as
    :func:`decode_pairs` reads them) with the numbers of each key added, as
    the reducers of a SUM or COUNT add them: a NULL number adds nothing, a
    key seen only with NULL keeps NULL.  Returns (batch lines, records in,
    records out).  The numbers go out as the pieces gave them: float64 or
    int64 pair batches, else (a sum past int64, mixed types) JSON records.

    >>> a = encode_pairs(["x", "y"], [1.5, 2.0], "d") + encode_pairs(["x"], [0.25], "d")
    >>> lines, n_in, n_out = merge_pairs([a, b'[["y",null],["z",null]]\n'])
    >>> [r for ln in lines for r in decode_batch(ln.rstrip())], n_in, n_out
    ([['x', 1.75], ['y', 2.0], ['z', None]], 5, 3)
    >>> lines, _, _ = merge_pairs([encode_pairs(["k"], [2 ** 62], "q")] * 4)
    >>> lines
    [b'[["k",18446744073709551616]]\n']
    """
    g: dict = {}
    gget = g.get
    nulls: set = set()     # keys seen so far only with a NULL number
    kinds: set = set()     # typecodes of the number arrays read; None: JSON records
    n_in = 0
    for piece in pieces:
        for line in piece.split(b"\n"):
            if not line:
                continue
            keys, nums, maybe_null = decode_pairs(line)
            n_in += len(keys)
            if maybe_null:
                kinds.add(None)
                for k, v in zip(keys, nums):
                    if v is None:
                        nulls.add(k)
                    else:
                        g[k] = gget(k, 0) + v
            else:
                kinds.add(nums.typecode)
                for k, v in zip(keys, nums):
                    g[k] = gget(k, 0) + v
    keys, nums = list(g), list(g.values())
    kind = _pairs_kind(kinds, nums)
    lines = []
    for i in range(0, len(keys), BATCH_ROWS):
        ks, vs = keys[i:i + BATCH_ROWS], nums[i:i + BATCH_ROWS]
        blob = encode_pairs(ks, vs, kind) if kind else None
        lines.append(blob if blob is not None else encode_batch(list(map(list, zip(ks, vs)))))
    only_null = [[k, None] for k in nulls if k not in g]
    for i in range(0, len(only_null), BATCH_ROWS):
        lines.append(encode_batch(only_null[i:i + BATCH_ROWS]))
    return lines, n_in, len(keys) + len(only_null)


def _pairs_kind(kinds: set, nums: list) -> str | None:
    """The typecode that keeps every number as it is: that of the arrays
    read when nothing else was read, else what the numbers are (None:
    neither all float nor all int, so JSON)."""
    if len(kinds) == 1 and None not in kinds:
        return next(iter(kinds))
    if all(type(v) is float for v in nums):
        return "d"
    if all(type(v) is int for v in nums):
        return "q"
    return None


def _download(uri: str, size: int, chunk: int, temps: list[str]) -> str:
    """Object ``uri`` in a temp file (listed in ``temps`` at once, so it is
    removed whatever happens next)."""
    with tempfile.NamedTemporaryFile(prefix="sqlmr-comb-", delete=False) as f:
        temps.append(f.name)
        for data in storage.iter_range(uri, 0, size, chunk=chunk):
            f.write(data)
    return f.name


def _download_all(objects: list[dict], chunk: int, temps: list[str]) -> dict[str, str]:
    """Each object (uri → temp file), :data:`COMBINE_FETCHES` at a time; a
    failure cancels the downloads not yet started and is raised once the
    running ones have stopped."""
    if not objects:
        return {}
    with ThreadPoolExecutor(max_workers=min(COMBINE_FETCHES, len(objects)),
                            thread_name_prefix="sqlmr-combine") as pool:
        futures = {o["uri"]: pool.submit(_download, o["uri"], o["size"], chunk, temps)
                   for o in objects}
        _, pending = wait(futures.values(), return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
    for f in futures.values():
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()  # type: ignore[misc]
    return {uri: f.result() for uri, f in futures.items()}


def save_combined(objects: list[dict], uri: str, merge: str | None = None,
                  counts: dict | None = None) -> tuple[dict, int]:
    """:func:`combine` into the object ``uri``; returns (index, size)."""
    return _upload(uri, lambda f: combine(objects, f, merge=merge, counts=counts))
