"""A table's schema inferred from a sample of its files (pure: bytes in, schema out).

Used for files named straight in FROM (``FROM 'data/*.csv'``, ``read_csv(…)``,
``read_json(…)``) and for ``CREATE EXTERNAL TABLE`` without a column list.
The sample decides: a column's type is the narrowest of BOOLEAN, BIGINT,
DOUBLE, DATE, TIMESTAMP, STRING that every non-empty sample value has; a value
of a later row that is not of that type reads as NULL (counted as malformed),
as Hive reads a field that does not parse.  Timestamps (``yyyy-MM-dd
HH:mm:ss[.f]``) are TIMESTAMP where sqlmr has that type, else STRING.

CSV is sniffed as DuckDB's ``read_csv`` does: the delimiter among ``,`` ``|``
tab ``;`` that cuts the sample into the most consistent rows; a header when
the first row does not fit the types of the rows after it (or when every
column is text); names from the header, else ``column0``, ``column1`` ….

>>> cols, fmt, delim = infer_csv(b"id;day;ok\\n1;2024-01-02;true\\n2;2024-01-03;false\\n")
>>> [(c.name, c.type) for c in cols], fmt.kind, fmt.header_lines, delim
([('id', 'bigint'), ('day', 'date'), ('ok', 'boolean')], 'csv', 1, ';')
>>> [(c.name, c.type) for c in infer_json(b'{"a": 1, "b": "x"}\\n{"A": 2.5, "c": null}\\n')]
[('a', 'double'), ('b', 'string'), ('c', 'string')]
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from typing import Iterable, Sequence

from compiler.schema import SQLGLOT_TYPES, Column, Format
from runtime import sqlfuncs
from runtime.sqlfuncs import parse_date
from sqlmr.writers import unique_names

# TIMESTAMP is inferred where sqlmr has the type and its parser; elsewhere a
# timestamp is STRING
_parse_timestamp = (getattr(sqlfuncs, "parse_timestamp", None)
                    if "timestamp" in SQLGLOT_TYPES else None)

SAMPLE_BYTES = 1 << 20     # read at most this much of the first file(s)
SAMPLE_RECORDS = 5000      # and infer from at most this many records
DELIMITERS = (",", "|", "\t", ";")

_BIGINT = re.compile(r"[+-]?[0-9]+").fullmatch
# a decimal number as both DuckDB and Java's Double.parseDouble read it (not
# Java's 1.5d / NaN / hex spellings, not Python's 1_000 / inf)
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch


class SampleError(ValueError):
    """The sample cannot be read as the format it should be in."""


def value_type(text: str) -> str:
    """The narrowest type a non-empty text value has.

    >>> [value_type(t) for t in ("TRUE", "-12", "1.5e3", "2024-02-29", "2024-02-30", "9" * 20, "1_0")]
    ['boolean', 'bigint', 'double', 'date', 'string', 'double', 'string']
    """
    if text.lower() in ("true", "false"):
        return "boolean"
    if _BIGINT(text):
        return "bigint" if -2**63 <= int(text) < 2**63 else "double"
    if _DOUBLE(text):
        return "double"
    try:
        parse_date(text)
        return "date"
    except ValueError:
        pass
    if _parse_timestamp is not None and len(text) > 10 and text == text.strip():
        try:
            _parse_timestamp(text)
            return "timestamp"
        except ValueError:
            pass
    return "string"


def fits(text: str, typ: str) -> bool:
    """Whether a text value reads as ``typ`` (BIGINT fits DOUBLE).

    >>> fits("7", "double"), fits("7.5", "bigint"), fits("x", "string")
    (True, False, True)
    """
    have = value_type(text)
    return have == typ or typ == "string" or merge_types(have, typ) == typ


def merge_types(a: str | None, b: str) -> str:
    """The narrowest type holding values of both types (None: no value yet).

    >>> merge_types(None, "date"), merge_types("bigint", "double"), merge_types("date", "bigint")
    ('date', 'double', 'string')
    """
    if a is None or a == b:
        return b
    if {a, b} == {"bigint", "double"}:
        return "double"
    if {a, b} == {"date", "timestamp"}:  # a date is its midnight
        return "timestamp"
    return "string"


def column_types(rows: Iterable[Sequence[str]], width: int) -> list[str]:
    """Per column, the narrowest type of its non-empty values (STRING when
    there are none).

    >>> column_types([["1", "x", ""], ["2.5", "2024-01-01", ""]], 3)
    ['double', 'string', 'string']
    """
    types: list[str | None] = [None] * width
    for row in rows:
        for i, v in enumerate(row[:width]):
            if v != "" and types[i] != "string":
                types[i] = merge_types(types[i], value_type(v))
    return [t or "string" for t in types]


def complete_lines(sample: bytes, whole: bool) -> str:
    """The sample as text, cut after its last newline unless it is the whole
    file (a record cut in two must not decide a type).

    >>> complete_lines(b"a,b\\n1,2\\n3,", False), complete_lines(b"a\\n1", True)
    ('a,b\\n1,2\\n', 'a\\n1')
    """
    if sample.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark is not data
        sample = sample[3:]
    if not whole:
        cut = sample.rfind(b"\n")
        sample = sample[:cut + 1] if cut >= 0 else sample
    return sample.decode("utf-8", errors="replace")


def _rows(text: str, delimiter: str, quote: str | None) -> list[list[str]]:
    """Non-empty records of ``text`` cut at ``delimiter`` (csv rules when
    ``quote`` is given, plain splitting otherwise)."""
    if quote:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote,
                            strict=False)
        try:
            rows = [r for r in reader if r and r != [""]]
        except csv.Error as e:
            raise SampleError(f"not CSV: {e}") from None
    else:
        rows = [ln.split(delimiter) for ln in text.splitlines() if ln.strip("\r")]
    return rows[:SAMPLE_RECORDS]


def sniff_delimiter(text: str, quote: str | None = '"') -> str:
    """The delimiter among ``,`` ``|`` tab ``;`` whose rows agree best on a
    field count above one (``,`` when none cuts anything).

    >>> sniff_delimiter("a|b,c|d\\n1|2,5|3\\n"), sniff_delimiter("a\\tb\\n1\\t2\\n"), sniff_delimiter("x\\n")
    ('|', '\\t', ',')
    """
    best, best_score = ",", (0, 0)
    for d in DELIMITERS:
        try:
            rows = _rows(text, d, quote)
        except SampleError:
            continue
        if not rows:
            continue
        width, agree = Counter(len(r) for r in rows).most_common(1)[0]
        if width < 2:
            continue
        score = (agree, width)  # most rows of one width, then the most columns
        if score > best_score:
            best, best_score = d, score
    return best


def has_header(rows: list[list[str]]) -> bool:
    """DuckDB's rule: the first row is a header when some column that has a
    type below it holds a value of another type in the first row, or when
    every column is text (a single row is a header).

    >>> has_header([["id", "n"], ["1", "2"]]), has_header([["1", "2"], ["3", "4"]])
    (True, False)
    >>> has_header([["name"], ["bob"]]), has_header([["1", "x"], ["2", "y"]])
    (True, False)
    """
    if len(rows) < 2:
        return True
    width = max(len(r) for r in rows)
    types = column_types(rows[1:], width)
    if all(t == "string" for t in types):
        return True
    first = rows[0]
    return any(t != "string" and i < len(first) and first[i] != "" and not fits(first[i], t)
               for i, t in enumerate(types))


def header_names(header: Sequence[str], width: int) -> list[str]:
    """Column names from a header row: blank or missing ones are ``column<i>``,
    repeats ``a_1`` … (DuckDB's names).

    >>> header_names(["a", " ", "a"], 4)
    ['a', 'column1', 'a_1', 'column3']
    """
    names = [(header[i].strip() if i < len(header) else "") or f"column{i}"
             for i in range(width)]
    return unique_names(names)


def infer_csv(sample: bytes, whole: bool = False, delimiter: str | None = None,
              header: bool | None = None, quote: str | None = '"',
              escape: str | None = None, null: str = "") -> tuple[list[Column], Format, str]:
    """``(columns, format, delimiter)`` of CSV from a sample of it; ``whole``:
    the sample is the whole file.  ``delimiter`` / ``header`` given are kept,
    None is sniffed.  ``quote`` None (or empty) reads no quoting; a field
    that is ``null`` is NULL (as an empty one is).

    >>> cols, fmt, d = infer_csv(b"1,x\\n2,y\\n", whole=True)
    >>> [(c.name, c.type) for c in cols], fmt.header_lines, fmt.null
    ([('column0', 'bigint'), ('column1', 'string')], 0, '')
    >>> [c.name for c in infer_csv(b'"a","b c"\\n1,"x,y"\\n', header=True)[0]]
    ['a', 'b c']
    """
    text = complete_lines(sample, whole)
    if not text.strip():
        raise SampleError("the sample is empty (no records to infer columns from)")
    quote = quote or None
    if delimiter is None:
        delimiter = sniff_delimiter(text, quote)
    raw = _rows(text, delimiter, quote)
    rows = [["" if v == null else v for v in r] for r in raw] if null else raw
    if header is None:
        header = has_header(rows)
    body = rows[1:] if header else rows
    width = max((len(r) for r in rows), default=1)
    names = header_names(raw[0] if header else [], width)
    types = column_types(body, width)
    fmt = Format("csv", header_lines=1 if header else 0, quote=quote or "", escape=escape,
                 null=null)
    return [Column(n, t) for n, t in zip(names, types)], fmt, delimiter


def _json_type(value: object) -> str | None:
    """The column type of one JSON value (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint" if -2**63 <= value < 2**63 else "double"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        typ = value_type(value)
        return typ if typ in ("date", "timestamp") else "string"
    return "string"  # an object or array reads as its JSON text


def infer_json(sample: bytes, whole: bool = False) -> list[Column]:
    """Columns of JSON lines (one object a line) from a sample: keys in the
    order first seen, merged without case (the first spelling names the
    column), each typed by its non-null values; a string is DATE when every
    value is ``yyyy-MM-dd``, an object or array is STRING.

    >>> [(c.name, c.type) for c in infer_json(b'{"d": "2024-01-01", "n": [1]}\\n{"D": "2024-01-02", "x": true}\\n')]
    [('d', 'date'), ('n', 'string'), ('x', 'boolean')]
    >>> infer_json(b'[1, 2]\\n')
    Traceback (most recent call last):
    ...
    sqlmr.infer.SampleError: line 1 is not a JSON object (JSON lines hold one object a line)
    """
    text = complete_lines(sample, whole)
    names: dict[str, str] = {}
    types: dict[str, str | None] = {}
    seen = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SampleError(f"line {lineno} is not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise SampleError(f"line {lineno} is not a JSON object (JSON lines hold one "
                              "object a line)")
        for key, value in record.items():
            low = key.lower()
            if low not in names:
                names[low], types[low] = key, None
            t = _json_type(value)
            if t is not None and types[low] != "string":
                types[low] = merge_types(types[low], t)
        seen += 1
        if seen >= SAMPLE_RECORDS:
            break
    if not names:
        raise SampleError("the sample holds no JSON object with keys")
    return [Column(names[k], types[k] or "string") for k in names]


def infer_text(sample: bytes, whole: bool = False,
               delimiter: str | None = None) -> tuple[list[Column], str]:
    """``(columns, delimiter)`` of Hive delimited text (no quoting, no header)
    from a sample.

    >>> cols, d = infer_text(b"a|1|2024-01-01\\nb|2|2024-01-02\\n")
    >>> [(c.name, c.type) for c in cols], d
    ([('column0', 'string'), ('column1', 'bigint'), ('column2', 'date')], '|')
    """
    text = complete_lines(sample, whole)
    if not text.strip():
        raise SampleError("the sample is empty (no records to infer columns from)")
    if delimiter is None:
        delimiter = sniff_delimiter(text, None)
    rows = _rows(text, delimiter, None)
    rows = [[v if v != "\\N" else "" for v in r] for r in rows]
    width = max(len(r) for r in rows)
    return ([Column(f"column{i}", t) for i, t in enumerate(column_types(rows, width))],
            delimiter)


def looks_like_json(sample: bytes) -> bool:
    """Whether a sample of unknown format is JSON lines (its first non-blank
    character opens an object).

    >>> looks_like_json(b'  {"a": 1}'), looks_like_json(b"a,b")
    (True, False)
    """
    return sample.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def looks_quoted(text: str, quote: str = '"') -> bool:
    """Whether CSV quoting matters in a sample (else Hive's text reading is the same).

    >>> looks_quoted('a,"b,c"\\n'), looks_quoted("a,b\\n")
    (True, False)
    """
    return quote in text
