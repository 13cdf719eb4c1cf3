"""Readers of a table's files by format: quoted CSV and JSON lines (delimited
text is :class:`runtime.inputs.SplitReader`'s lines).

A reader yields blocks of records, each a list of fields: text, or None for
a JSON null or missing key.  Generated code binds ``f`` to a record and
converts fields as it does a text line's, so the scan's typed conversions,
NULL checks and malformed-row counting are one code for every format.

**CSV splits.**  A record of quoted CSV may hold newlines, so a byte-range
split cannot just start after the first newline.  Records are cut by *quote
parity*: a newline ends a record when an even number of quotes (not escaped)
precede it in the file.  Split ``[s, e)`` reads the bytes
``[record_start(s), record_start(e))`` where :func:`record_start` is "the
first record start at or after s", one deterministic function of the file's
bytes and ``s``: the split before computes the same boundary for its end, so
every byte, and so every record, is read by exactly one split, even in a
file that is not well-formed CSV.

:func:`record_start` needs the quote state at ``s``; counting quotes from
the start of the file would make every split read all bytes before it.  It
first speculates from a window after ``s`` (Ge et al., "Speculative
Distributed CSV Data Parsing", SIGMOD 2019): each of the two states (inside
or outside quotes) assigns every quote in the window a role; an opening
quote must follow a delimiter, a line break or a quote, a closing quote must
be followed by one (or end the file).  A state whose roles break that is
ruled out; in well-formed CSV the true state never is, so when exactly one
state survives, it is the state.  When both survive (no quotes in the window,
or only ambiguous ones such as ``,"",``) or neither (not well-formed), the
state is counted exactly from the start of the file: correct, but it reads
every byte before ``s`` (a file with no quotes at all is read this way).
Reading to ``record_start(e)`` finishes the split's last record past its
end.  An escape character and the byte after it count as neither quote nor
newline.  The model takes quotes to enclose fields, as CSV writers put
them: a stray quote inside an unquoted field (``5" screen``) toggles the
state too, and a lone ``\\r`` does not end a record.

>>> data = b'a,"x\\ny",1\\nb,"p,q",2\\n'
>>> read = lambda a, b: data[a:b]
>>> [record_start(read, s, len(data), CsvSyntax()) for s in (0, 1, 4, 10, 11, 20, 21)]
[0, 10, 10, 10, 20, 20, 20]
"""

from __future__ import annotations

import csv
import io
import json
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from runtime import storage
from runtime.inputs import BLOCK_BYTES, SplitReader

WINDOW = 64 << 10   # bytes after a split boundary used to speculate its quote state
SCAN_CHUNK = 1 << 20

Read = Callable[[int, int], bytes]   # bytes [a, b) of the file


@dataclass(frozen=True)
class CsvSyntax:
    """The one-character delimiter, quote and escape (None: a quote inside a
    quoted field is doubled) of a CSV file, as bytes."""

    delimiter: bytes = b","
    quote: bytes = b'"'
    escape: bytes | None = None

    def neutral(self, data: bytes) -> bytes:
        """``data`` with each escaped character and its escape replaced by
        bytes that are no quote, delimiter or newline (same length): quotes
        and newlines left are the ones that count."""
        if self.escape is None or self.escape not in data:
            return data
        filler = next(b for b in (b"\0", b"\1", b"A") if b not in
                      (self.delimiter, self.quote, self.escape))
        pattern = re.compile(re.escape(self.escape) + b".", re.S)
        return pattern.sub(filler * 2, data)

    def unpaired_escape_at_end(self, neutral: bytes) -> bool:
        return self.escape is not None and neutral.endswith(self.escape)


def speculate(window: bytes, before: bytes, at_eof: bool, syn: CsvSyntax) -> bool | None:
    """The quote state (True: inside quotes) before ``window[0]``, decided from
    the window alone, or None when the window cannot decide.  ``before`` is
    the byte before the window (empty at the start of the file); ``at_eof``
    says the window ends the file.

    >>> syn = CsvSyntax()
    >>> speculate(b'x",1\\nb,"y', b"a", False, syn), speculate(b'1,"ab",2', b"\\n", False, syn)
    (True, False)
    >>> speculate(b"1,2\\n3,4", b"\\n", False, syn) is None
    True
    """
    q = syn.quote[0]
    after_ok = {syn.delimiter[0], 10, 13, q}     # may follow a closing quote
    before_ok = {syn.delimiter[0], 10, 13, q}    # may precede an opening quote
    alive = [True, True]   # state False (outside quotes), True (inside)
    pos = window.find(syn.quote)
    k = 0
    while pos >= 0 and (alive[0] or alive[1]):
        for state in (0, 1):
            if not alive[state]:
                continue
            inside = (state + k) % 2 == 1   # the state before this quote
            if inside:   # a closing quote
                if pos + 1 < len(window):
                    if window[pos + 1] not in after_ok:
                        alive[state] = False
                elif not at_eof:
                    pass  # the follower is past the window: no evidence
            else:        # an opening quote
                prev = window[pos - 1] if pos else (before[0] if before else None)
                if prev is not None and prev not in before_ok:
                    alive[state] = False
        k += 1
        pos = window.find(syn.quote, pos + 1)
    if alive[0] != alive[1]:
        return alive[1]
    return None


def exact_state(read: Read, t: int, syn: CsvSyntax) -> tuple[bool, bool]:
    """The quote state before byte ``t``, counted from the start of the file,
    and whether byte ``t`` is escaped."""
    odd = False
    carry = b""
    pos = 0
    while pos < t:
        chunk = read(pos, min(t, pos + SCAN_CHUNK))
        if not chunk:
            break
        pos += len(chunk)
        data = syn.neutral(carry + chunk)
        carry = b""
        if syn.unpaired_escape_at_end(data) and pos < t:
            data, carry = data[:-1], data[-1:]
        odd ^= data.count(syn.quote) % 2 == 1
    return odd, carry == b"" and syn.unpaired_escape_at_end(data)


def first_record_end(data: bytes, inside: bool, syn: CsvSyntax) -> int:
    """Index just past the first newline of ``data`` that ends a record when
    the state before ``data`` is ``inside``; -1 when none does.

    >>> first_record_end(b'a"b\\nc"\\nd', False, CsvSyntax()), first_record_end(b'x\\ny', True, CsvSyntax())
    (7, -1)
    """
    data = syn.neutral(data)
    at = 0
    while True:
        nl = data.find(b"\n", at)
        if nl < 0:
            return -1
        inside ^= data.count(syn.quote, at, nl) % 2 == 1
        if not inside:
            return nl + 1
        at = nl + 1


def record_start(read: Read, s: int, size: int, syn: CsvSyntax) -> int:
    """The first record start at or after byte ``s`` (``size`` when none):
    the boundary between the split ending at ``s`` and the one starting
    there.  A record starts at 0 and after each newline that ends a record."""
    if s <= 0:
        return 0
    if s >= size:
        return size
    t = s - 1   # a record starts at s when the newline ending the last one is at s - 1
    window = read(t, min(size, t + WINDOW))
    before = read(t - 1, t) if t > 0 else b""
    inside = None if t else False
    if t and not (syn.escape is not None and before == syn.escape):   # t is not an escaped byte
        inside = speculate(syn.neutral(window), before, t + len(window) >= size, syn)
    pos = t
    data = window
    if inside is None:
        inside, escaped = exact_state(read, t, syn)
        if escaped:   # byte t is data, whatever it is
            data = b"\0" + window[1:] if syn.delimiter != b"\0" else b"A" + window[1:]
    while True:
        end = first_record_end(data, inside, syn)
        if end >= 0:
            return pos + end
        if pos + len(data) >= size:
            return size
        neutral = syn.neutral(data)
        if syn.unpaired_escape_at_end(neutral):   # finish the escape in the next read
            data = data[:-1]
            neutral = neutral[:-1]
        inside ^= neutral.count(syn.quote) % 2 == 1
        pos += len(data)
        data = read(pos, min(size, pos + SCAN_CHUNK))
        if not data:
            return size


def records_end(data: bytes, syn: CsvSyntax) -> int:
    """Where the last whole record of ``data`` (which starts at a record start)
    ends: just past its last newline outside quotes; 0 when there is none.

    >>> records_end(b'a,"1\\n2"\\nb,"3\\n', CsvSyntax())
    8
    """
    neutral = syn.neutral(data)
    nl = neutral.rfind(b"\n")
    if nl < 0:
        return 0
    odd = neutral.count(syn.quote, 0, nl) % 2 == 1
    while odd:
        prev = neutral.rfind(b"\n", 0, nl)
        if prev < 0:
            return 0
        odd ^= neutral.count(syn.quote, prev, nl) % 2 == 1
        nl = prev
    return nl + 1


def csv_syntax(fmt: dict) -> CsvSyntax:
    esc = fmt.get("escape")
    quote = fmt.get("quote") or '"'
    return CsvSyntax(fmt.get("delimiter", ",").encode(), quote.encode(),
                     esc.encode() if esc and esc != quote else None)


class CsvReader(SplitReader):
    """Blocks of records (lists of field texts) of one split of a quoted CSV
    file: the records starting in ``[record_start(start), record_start(end))``
    (see the module's docstring), parsed by Python's :mod:`csv`.  A
    compressed file is read whole; ``header_lines`` records at the start of
    each file are skipped, in whichever split they fall."""

    def __init__(self, split: dict, fmt: dict, block_bytes: int = BLOCK_BYTES) -> None:
        super().__init__(split["uri"], split.get("start", 0), split.get("end"),
                         gz=split.get("gz", False), block_bytes=block_bytes,
                         size=split.get("size"), stamp=split.get("stamp"))
        self.syntax = csv_syntax(fmt)
        self.header_records = int(fmt.get("header_lines") or 0)
        self.dialect = dict(delimiter=fmt.get("delimiter", ","),
                            quotechar=fmt.get("quote") or '"',
                            escapechar=self.syntax.escape.decode() if self.syntax.escape else None,
                            doublequote=True, strict=False, skipinitialspace=False)
        self.block_text = ""   # the decoded bytes of the current block, for offsets
        # fields a record needs (a line with no quote is cut only so far; -1: all)
        self.maxsplit = int(fmt.get("maxsplit", -1))

    def _read(self, a: int, b: int) -> bytes:
        data = storage.read_range(self.uri, a, b, self.etag)
        self.bytes_read += len(data)
        return data

    def _bytes(self) -> Iterator[tuple[int, bytes]]:
        """(file offset, chunk) of this split's bytes, its records' start and end."""
        if self.compressed:
            pos = 0
            for chunk in self._readable(self._gz_chunks() if self.gz else self._bz2_chunks()):
                yield pos, chunk
                pos += len(chunk)
            return
        self._check_unchanged()
        size = self.size if self.size is not None else storage.size(self.uri)
        syn = self.syntax
        begin = record_start(self._read, self.start, size, syn)
        end = size if self.end is None or self.end >= size else \
            record_start(self._read, self.end, size, syn)
        if self.header_records:
            header_end = 0
            for _ in range(self.header_records):
                header_end = record_start(self._read, header_end + 1, size, syn) \
                    if header_end < size else size
            begin = max(begin, header_end)
        pos = begin
        if pos < end:
            for chunk in self._readable(storage.iter_range(self.uri, pos, end, self.block_bytes,
                                                           self.etag)):
                self.bytes_read += len(chunk)
                yield pos, chunk
                pos += len(chunk)
            if pos < end:
                raise self._changed(f"it ended at byte {pos:,}, planned {size:,}")
        self._check_unchanged()

    def __iter__(self) -> Iterator[list[list[str]]]:
        syn = self.syntax
        carry = b""
        carry_at = 0
        skip = self.header_records if self.compressed else 0
        for at, chunk in self._bytes():
            if not carry:
                carry_at = at
            data = carry + chunk if carry else chunk
            cut = records_end(data, syn)
            if cut == 0:
                carry = data
                continue
            block = self._parse(data[:cut], carry_at)
            carry = data[cut:]
            carry_at += cut
            if skip:
                block, skip = self._drop_header(block, skip)
            if block:
                yield block
        if carry:
            block = self._parse(carry, carry_at)
            if skip:
                block, skip = self._drop_header(block, skip)
            if block:
                yield block

    def _drop_header(self, block: list, skip: int) -> tuple[list, int]:
        """A compressed file's block without its first ``skip`` records."""
        n = min(skip, len(self.block_raw))
        dropped = set(map(id, self.block_raw[:n]))
        self.block = [r for r in block if id(r) not in dropped]
        return self.block, skip - n

    def _parse(self, data: bytes, offset: int) -> list[list[str]]:
        text = data.decode("utf-8", "replace")
        self.block_offset = offset
        self.block_text = text
        self.block_lines = None   # each record's first line, computed when asked
        syn = self.syntax
        if syn.quote not in data and (syn.escape is None or syn.escape not in data) and \
                data.count(b"\r") == data.count(b"\r\n"):
            # no quote, escape or lone \r: the csv module would cut each line
            # at the delimiter, as str.split does (and it can stop at the last
            # field the scan reads, as a text scan does)
            lines = (text.replace("\r\n", "\n") if "\r" in text else text).split("\n")
            if not lines[-1]:
                lines.pop()
            delim = self.dialect["delimiter"]
            n = self.maxsplit
            raw = [line.split(delim, n) for line in lines] if n >= 0 else \
                [line.split(delim) for line in lines]
            if [""] in raw:
                raw = [r if r != [""] else [] for r in raw]
        else:
            raw = list(csv.reader(io.StringIO(text, newline=""), **self.dialect))
        self.block_raw = raw
        self.block = [r for r in raw if r] if [] in raw else raw   # a blank line is no row
        return self.block

    def _record_lines(self) -> list[int]:
        """The line number in the block's text at which each parsed record starts."""
        if self.block_lines is None:
            reader = csv.reader(io.StringIO(self.block_text, newline=""), **self.dialect)
            starts = []
            last = 0
            for _ in reader:
                starts.append(last)
                last = reader.line_num
            self.block_lines = starts
        return self.block_lines

    def offset_of(self, record) -> int:
        for i, r in enumerate(self.block_raw):
            if r is record:
                line = self._record_lines()[i]
                head = "".join(self.block_text.splitlines(keepends=True)[:line])
                return self.block_offset + len(head.encode("utf-8"))
        return self.block_offset

    def text_of(self, record) -> str:
        return self.dialect["delimiter"].join(record)

    def is_first(self, record) -> bool:
        return self.block_offset == 0 and bool(self.block_raw) and self.block_raw[0] is record


class JsonReader(SplitReader):
    """Blocks of records of one split of a JSON lines file: each line an
    object, the values of ``fmt["columns"]`` in that order (keys matched as
    spelt, else case-insensitively), a missing key or null None, numbers as
    their JSON text (so an INT column reads them as Hive would, from text),
    booleans ``true`` / ``false``, objects and arrays as JSON text.  A line
    that is not a JSON object is a record of NULLs, reported to ``bad``
    (blank lines are no row)."""

    def __init__(self, split: dict, fmt: dict, block_bytes: int = BLOCK_BYTES,
                 bad: Callable[..., None] | None = None) -> None:
        super().__init__(split["uri"], split.get("start", 0), split.get("end"),
                         gz=split.get("gz", False), block_bytes=block_bytes,
                         size=split.get("size"), stamp=split.get("stamp"),
                         header_lines=int(fmt.get("header_lines") or 0))
        self.names = list(fmt["columns"])
        self.lower = [n.lower() for n in self.names]
        self.bad = bad
        self.lines: list[str] = []
        self.block_records: list[list] = []

    def __iter__(self) -> Iterator[list[list]]:
        names, lower = self.names, self.lower
        width = len(names)
        # the C scanner, numbers kept as their text; one decoder for the split
        decoder = json.JSONDecoder(parse_int=str, parse_float=str)
        scan = decoder.scan_once
        by_name = operator.itemgetter(*names) if names else None
        by_lower = operator.itemgetter(*lower) if names else None
        plain = {str, type(None)}
        for lines in super().__iter__():
            if "" in lines:
                lines = [line for line in lines if line]
            records = []
            blank = False
            for line in lines:
                try:
                    obj, end = scan(line, 0)
                    if end != len(line):
                        obj = decoder.decode(line)   # trailing blanks, or not JSON
                except (StopIteration, ValueError):
                    if line.isspace():   # a blank line is no row
                        blank = True
                        records.append(None)
                        continue
                    try:
                        obj = decoder.decode(line)   # leading blanks
                    except ValueError:
                        obj = None
                if type(obj) is not dict:
                    records.append(self._bad_line(line))
                    continue
                if width == 0:
                    records.append([])
                    continue
                try:
                    row = by_name(obj)
                except KeyError:
                    try:
                        row = by_lower(obj)
                    except KeyError:
                        low = {k.lower(): v for k, v in obj.items()}
                        row = tuple(low.get(k) for k in lower)
                row = [row] if width == 1 else list(row)
                if not plain.issuperset(map(type, row)):
                    row = self._texts(row, line)
                records.append(row)
            if blank:
                lines = [line for line, r in zip(lines, records) if r is not None]
                records = [r for r in records if r is not None]
            self.lines = lines
            self.block_records = records
            yield records

    def _bad_line(self, line: str) -> list:
        if self.bad is not None:
            self.bad(line, "not a JSON object")
        return [None] * len(self.names)

    def _texts(self, row: list, line: str) -> list:
        """A row's booleans as ``true`` / ``false``, objects and arrays as
        compact JSON text (numbers in them as numbers)."""
        out = []
        nested = None
        for i, v in enumerate(row):
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (dict, list)):
                if nested is None:   # read again with numbers as numbers
                    obj = json.loads(line)
                    nested = {k.lower(): v for k, v in obj.items()}
                v = json.dumps(nested.get(self.lower[i]), separators=(",", ":"),
                               ensure_ascii=False)
            out.append(v)
        return out

    def offset_of(self, record) -> int:
        if isinstance(record, str):
            return self.line_offset(record)
        for i, r in enumerate(self.block_records):
            if r is record:
                return self.line_offset(self.lines[i])
        return self.block_offset

    def is_first(self, record) -> bool:
        if isinstance(record, str):
            return super().is_first(record)
        return self.block_offset == 0 and bool(self.block_records) and \
            self.block_records[0] is record and self.lines[0] is self.block[0]

    def text_of(self, record) -> str:
        if isinstance(record, str):
            return record
        for i, r in enumerate(self.block_records):
            if r is record:
                return self.lines[i]
        return json.dumps(record)


_MISSING = object()


def reader_of(split: dict, fmt: dict | None, block_bytes: int = BLOCK_BYTES,
              bad: Callable[..., None] | None = None) -> SplitReader:
    """The reader of one split of a table in format ``fmt`` (None: text)."""
    kind = (fmt or {}).get("kind", "text")
    if kind == "csv":
        return CsvReader(split, fmt, block_bytes)
    if kind == "json":
        return JsonReader(split, fmt, block_bytes, bad)
    return SplitReader.of_split(split, block_bytes, int((fmt or {}).get("header_lines") or 0))
