"""Reading a map task's input split as blocks of text lines.

A split is a byte range ``[start, end)`` of one file.  The standard line
fix-up makes splits partition the lines exactly: a line belongs to the split
holding its first byte, so a task skips the partial first line unless it
starts at 0 (it looks one byte back to know), and reads past ``end`` to finish
its last line.  ``.gz`` and ``.bz2`` files are not splittable and are read
whole.  ``\\r`` before ``\\n`` is dropped; an empty final line is not a row.
A table's header lines (``skip.header.line.count``) are the first lines of
each file: a split skips the lines that start before the end of the file's
N-th line, so they are skipped once per file, whichever splits hold them.

Lines come out in blocks (lists of ``str``) so generated code runs a tight
``for line in block`` loop with no per-line function call.

>>> import os, tempfile
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.txt")
>>> _ = open(p, "wb").write(b"aa\\r\\nbbb\\ncc")
>>> [list(SplitReader("file://" + p, s, e)) for s, e in [(0, 3), (3, 7), (7, 10)]]
[[['aa']], [['bbb']], [['cc']]]
"""

from __future__ import annotations

import bz2
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from runtime import storage
from runtime.storage import InputError

BLOCK_BYTES = 1 << 20
TAIL_CHUNK = 64 << 10
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads a gzip header and checks its CRC


@dataclass(frozen=True)
class Codec:
    """A whole-file compression a table's files may use, known by suffix."""

    name: str                 # as messages say it
    suffix: str
    magic: bytes              # how its files start
    new: Callable[[], Any]    # a decompressor of one member
    error: type               # what the decompressor raises on bad data
    padded: bool              # zero bytes may follow a member (gzip)


GZIP = Codec("gzip", ".gz", b"\x1f\x8b", lambda: zlib.decompressobj(GZIP_WBITS), zlib.error, True)
BZIP2 = Codec("bzip2", ".bz2", b"BZh", bz2.BZ2Decompressor, OSError, False)


class SplitReader:
    """Iterates blocks of lines of one split; tracks bytes read and the current
    block's byte offset for error reports."""

    def __init__(self, uri: str, start: int, end: int | None, gz: bool = False,
                 block_bytes: int = BLOCK_BYTES, size: int | None = None,
                 stamp: object = None, header_lines: int = 0) -> None:
        self.uri = uri
        # the file as the query was planned (size; mtime in ns, or an S3 ETag):
        # a file that shrank or was rewritten since fails the task, one that
        # grew is read up to its planned size
        self.size = size
        self.stamp = stamp
        self.etag = stamp if storage.is_s3(uri) and isinstance(stamp, str) else None
        self.name = uri if storage.is_s3(uri) else storage.to_path(uri)  # for messages
        self.start = start
        self.end = end
        self.gz = gz or uri.endswith(".gz")
        self.bz2 = uri.endswith(".bz2")
        self.header_lines = header_lines
        self.block_bytes = block_bytes
        self.bytes_read = 0
        self.block_offset = 0  # byte offset in the (uncompressed) file of the current block
        self.block_crlf = False
        # a split that starts mid-line begins at the next line: set once known
        self.first_line_offset = 0 if self.compressed else start
        self.block: list[str] = []
        self._block_texts: tuple[str, ...] = ()   # the current block's decoded text

    @property
    def compressed(self) -> bool:
        return self.gz or self.bz2

    def raw_chunks(self) -> Iterator[bytes]:
        """The bytes of the split (of the whole file when compressed, its
        header lines skipped), checked against the file as planned."""
        if self.gz or self.bz2:
            chunks = self._gz_chunks() if self.gz else self._bz2_chunks()
            if self.header_lines:
                chunks = self._skip_lines(chunks, self.header_lines)
            return self._readable(chunks)
        return self._readable(self._range_chunks())

    def __iter__(self) -> Iterator[list[str]]:
        chunks = self.raw_chunks()
        # The start of a line that began in earlier chunks, as pieces joined
        # once when its newline arrives: a line spanning many chunks costs its
        # length, not its length squared (a 50 MB line with no newline).
        rest: list[bytes] = []
        rest_len = 0
        offset = -1
        for chunk in chunks:
            if offset < 0:  # where the split's first whole line starts in the file
                offset = self.first_line_offset
            first = chunk.find(b"\n")
            if first < 0:
                rest.append(chunk)
                rest_len += len(chunk)
                continue
            cut = chunk.rfind(b"\n")
            # only the line straddling the previous chunk is copied; the other
            # whole lines are decoded straight from the chunk
            body = memoryview(chunk)[first + 1:cut] if cut > first else None
            rest.append(chunk[:first])
            yield self._block(b"".join(rest), body, offset)
            offset += rest_len + cut + 1
            tail = chunk[cut + 1:]
            rest, rest_len = ([tail], len(tail)) if tail else ([], 0)
        if rest_len:
            yield self._block(b"".join(rest), None, offset)

    def _block(self, head: bytes, body: memoryview | None, offset: int) -> list[str]:
        """The lines of ``head`` (one line) and ``body`` (the lines after it, no
        final newline; empty is one empty line, None none)."""
        lines = [head.decode("utf-8", "replace")]
        crlf = lines[0].endswith("\r")
        if body is not None:
            text = str(body, "utf-8", "replace")
            crlf = crlf or "\r" in text
            lines += text.split("\n")
        if crlf:  # drop the \r of each line's \r\n
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        self.block_offset = offset
        self.block_crlf = crlf
        self.block = lines
        self._block_texts = (lines[0], text) if body is not None else (lines[0],)
        return lines

    def block_plain(self, null: str) -> bool:
        """Whether the current block is all ASCII and holds no ``null`` (the
        table's NULL text) anywhere: then no field of it is NULL, and Python's
        ``int()`` and ``float()`` accept no digit Hive's parsers would not (a
        scan's fast path tests less).  Cheap to ask: ``str.isascii`` reads a
        flag, and only the first character of the NULL text is looked for
        (``memchr``; a block holding it is not plain: a longer search would
        cost more than the tests it saves).

        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
        >>> _ = open(p, "wb").write(b"a,1\\nb,\\\\N\\nc,\\xc3\\xa9\\n")
        >>> r = SplitReader("file://" + p, 0, None, block_bytes=4)
        >>> [(b, r.block_plain("\\\\N"), r.block_plain("")) for b in r]
        [(['a,1'], True, False), (['b,\\\\N'], False, False), (['c,é'], False, False)]
        """
        return bool(null) and all(t.isascii() and null[0] not in t for t in self._block_texts)

    @classmethod
    def of_split(cls, split: dict, block_bytes: int = BLOCK_BYTES,
                 header_lines: int = 0) -> "SplitReader":
        """The reader of one split of a task event (see :mod:`runtime.events`)."""
        return cls(split["uri"], split.get("start", 0), split.get("end"),
                   gz=split.get("gz", False), block_bytes=block_bytes,
                   size=split.get("size"), stamp=split.get("stamp"),
                   header_lines=header_lines)

    def _skip_lines(self, chunks: Iterator[bytes], n: int) -> Iterator[bytes]:
        """``chunks`` without their first ``n`` lines (a compressed file's header)."""
        skipped = 0
        for chunk in chunks:
            while n and chunk:
                nl = chunk.find(b"\n")
                if nl < 0:
                    skipped += len(chunk)
                    chunk = b""
                    break
                skipped += nl + 1
                chunk = chunk[nl + 1:]
                n -= 1
            self.first_line_offset = skipped
            if chunk:
                yield chunk

    def header_end(self) -> int:
        """Where the file's first line after its header lines starts (the
        file's size when it has no more lines)."""
        n, pos = self.header_lines, 0
        for chunk in storage.iter_range(self.uri, 0, self.size, TAIL_CHUNK, self.etag):
            self.bytes_read += len(chunk)
            at = 0
            while n:
                nl = chunk.find(b"\n", at)
                if nl < 0:
                    break
                at = nl + 1
                n -= 1
            if not n:
                return pos + at
            pos += len(chunk)
        return pos

    def _readable(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, with a file that became unreadable or vanished after the
        query was planned reported as the data's problem (not retried)."""
        try:
            yield from chunks
        except FileNotFoundError:
            raise self._changed("it no longer exists") from None
        except PermissionError as e:
            raise InputError(f"cannot read {self.name} (it could be read when the query "
                             f"was planned): {e.strerror or e}") from None

    def _check_unchanged(self) -> None:
        """Fail when the file is no longer what the query planned to read."""
        if self.size is not None:
            why = storage.changed(self.uri, self.size, self.stamp)
            if why:
                raise self._changed(why)

    def _changed(self, why: str) -> InputError:
        return InputError(f"{self.name} changed while the query ran ({why}); run the "
                          f"query again once nothing is writing to it")

    def _range_chunks(self) -> Iterator[bytes]:
        """Raw bytes of the split after line fix-up at both ends, checked
        against the file as planned before and after reading."""
        self._check_unchanged()
        yield from self._split_bytes()
        self._check_unchanged()

    def _split_bytes(self) -> Iterator[bytes]:
        start, end = self.start, self.end
        skipping = start > 0  # drop the partial first line (look one byte back)
        if self.header_lines:
            first = self.header_end()  # a line start: no partial line to drop
            if first > start:
                if end is not None and first >= end:
                    return  # every line starting in this split is a header line
                start, skipping = first, False
                self.first_line_offset = first
        last_byte = b""
        pos = max(start - 1, 0) if skipping else start  # file offset of the next chunk
        for chunk in storage.iter_range_ahead(self.uri, pos, end, self.block_bytes, self.etag):
            self.bytes_read += len(chunk)
            last_byte = chunk[-1:]
            pos += len(chunk)
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                skipping = False
                self.first_line_offset = pos - len(chunk) + nl + 1
                chunk = chunk[nl + 1:]
            if chunk:
                yield chunk
        if end is not None and pos < end:  # the planned range is no longer there
            raise self._changed(f"it ended at byte {pos:,}, before the end of this "
                                f"split at {end:,}")
        if end is None or skipping or last_byte == b"\n" or not last_byte:
            # no line starts in this split, or its last line ended exactly at `end`
            return
        pos = end  # finish the last line past the end of the split
        limit = self.size  # not into bytes appended since the query was planned
        while limit is None or pos < limit:
            stop = pos + TAIL_CHUNK if limit is None else min(pos + TAIL_CHUNK, limit)
            tail = storage.read_range(self.uri, pos, stop, self.etag)
            self.bytes_read += len(tail)
            if not tail:
                if limit is not None:
                    raise self._changed(f"it ended at byte {pos:,}, planned {limit:,}")
                return
            nl = tail.find(b"\n")
            if nl >= 0:
                yield tail[:nl + 1]
                return
            yield tail
            pos += len(tail)

    def _gz_chunks(self) -> Iterator[bytes]:
        return self._decompressed(GZIP)

    def _bz2_chunks(self) -> Iterator[bytes]:
        return self._decompressed(BZIP2)

    def _decompressed(self, codec: "Codec") -> Iterator[bytes]:
        """Decompressed bytes of a whole compressed file (concatenated members
        too, zero padding after a gzip member ignored, as gzip and bzip2 do).

        A stream cut short, a bad checksum or bytes that are not of the codec
        at all raise InputError naming the file: reading on would answer from
        part of it."""
        self._check_unchanged()
        d = codec.new()
        members = 0        # members decompressed to their end
        fed = 0            # compressed bytes fed to the current member
        pos = 0            # compressed bytes read from the file
        try:
            for chunk in storage.iter_range_ahead(self.uri, 0, self.size, self.block_bytes,
                                                  self.etag):
                self.bytes_read += len(chunk)
                pos += len(chunk)
                data = chunk
                while data:
                    if codec.padded and members and not fed:
                        data = data.lstrip(b"\0")  # padding after a member
                        if not data:
                            break
                    fed += len(data)
                    out = d.decompress(data)
                    if out:
                        yield out
                    if not d.eof:
                        break
                    data = d.unused_data  # the next member starts here
                    d = codec.new()
                    members += 1
                    fed = 0
        except codec.error as e:
            self._check_unchanged()  # a file cut short while being read says so
            if not members and storage.read_range(self.uri, 0, len(codec.magic)) != codec.magic:
                raise InputError(f"{self.name}: not {codec.name} data ({e}); a file named "
                                 f"{codec.suffix} must be {codec.name}-compressed") from None
            raise InputError(f"{self.name}: corrupt {codec.name} data ({e})") from None
        self._check_unchanged()
        if fed or not members:
            raise InputError(f"{self.name}: truncated {codec.name} file (the compressed data "
                             f"ends mid-stream after {pos:,} bytes; was it cut short or still "
                             f"being written?)")

    def text_of(self, record) -> str:
        """A record as text, for messages."""
        return record

    def is_first(self, record) -> bool:
        """Whether ``record`` is the first line of its file."""
        return self.block_offset == 0 and bool(self.block) and self.block[0] is record

    def offset_of(self, record) -> int:
        """Byte offset of ``record`` (of the current block) in the file."""
        return self.line_offset(record)

    def line_offset(self, line: str) -> int:
        """Byte offset of ``line`` (of the current block) in the file."""
        offset = self.block_offset
        newline = 2 if self.block_crlf else 1
        for candidate in self.block:
            if candidate is line:
                return offset
            offset += len(candidate.encode("utf-8")) + newline
        return self.block_offset
