"""Writing result rows as CSV and JSON fast: rows go in chunks to C code
(``csv.writer.writerows``, one ``json`` encoder call per chunk) instead of
through per-value Python.

The text is exactly what a per-row writer gives (``render.text_value`` for
CSV fields, ``json.dumps(dict(zip(columns, row)), ensure_ascii=False,
default=str)`` for JSON objects); tests/test_writers.py compares the two.

>>> import io
>>> out = io.StringIO()
>>> write_delimited(["k", "x"], [("a,b", 1.5), (None, True)], out)
2
>>> print(out.getvalue(), end="")
k,x
"a,b",1.5
,true
>>> out = io.StringIO()
>>> write_json_array(["k", "x"], [("a", None), ("é", 2.0)], out)
2
>>> print(out.getvalue(), end="")
[
 {"k": "a", "x": null},
 {"k": "é", "x": 2.0}
]
"""

from __future__ import annotations

import csv
import json
from array import array
from itertools import chain, cycle, islice
from typing import IO, Any, Iterable, Sequence

CHUNK = 8192  # rows per C call: big enough to amortise, small enough to stream


def _chunks(rows: Iterable) -> Iterable[list]:
    it = iter(rows)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def write_delimited(columns: list[str], rows: Iterable, out: IO[str], **fmtparams: Any) -> int:
    """A header line, then one line per row; returns the number of rows.

    ``csv.writer`` already spells values as sqlmr's text does (NULL as an
    empty field, a float by ``repr``, anything else by ``str``) except
    booleans (``True`` where sqlmr writes ``true``), so only a chunk that holds
    a boolean is converted value by value.  Rows that offer column batches
    (the driver's result rows) are written a column at a time."""
    w = csv.writer(out, lineterminator="\n", **fmtparams)
    w.writerow(columns)
    d = w.dialect
    batches = getattr(rows, "column_batches", None)
    # the plain-text shortcut knows csv's minimal quoting with '"' only
    minimal = (d.quoting == csv.QUOTE_MINIMAL and d.quotechar == '"' and d.escapechar is None
               and d.lineterminator == "\n")
    source = batches() if batches is not None and minimal else None
    n = 0
    if source is None:
        for chunk in _chunks(rows):
            n += _write_chunk(w, chunk)
        return n
    sep = d.delimiter
    for cols in source:
        size = len(cols[0]) if cols else 0
        texts = _plain_texts(cols, len(columns), sep) if size else None
        if texts is None:
            _write_chunk(w, list(zip(*cols)))
        else:
            out.write("\n".join(map(sep.join, zip(*texts))) + "\n")
        n += size
    return n


def _write_chunk(w: Any, chunk: list) -> int:
    """Write rows through ``csv.writer``; booleans spelt true/false."""
    if bool in set(map(type, chain.from_iterable(chunk))):
        chunk = [[("true" if v else "false") if type(v) is bool else v for v in r] for r in chunk]
    w.writerows(chunk)
    return len(chunk)


_NONE = type(None)
_REPR = {"d": float.__repr__, "q": int.__repr__}  # number arrays of pair batches


def _plain_texts(cols: list[Sequence], width: int, sep: str) -> list[Sequence[str]] | None:
    """The fields of a column batch exactly as ``csv.writer`` would write
    them, or None when one of them needs what only it does (quoting, a
    boolean, a type it spells its own way): that batch goes through it.

    >>> _plain_texts([["a", None], array("d", [1.5, 0.1])], 2, ",")
    [['a', ''], ['1.5', '0.1']]
    >>> _plain_texts([["a,b", "c"], [1, 2]], 2, ",") is None
    True
    """
    if len(cols) != width or len({len(c) for c in cols}) != 1:
        return None
    texts: list[Sequence[str]] = []
    for col in cols:
        if isinstance(col, array):
            spell = _REPR.get(col.typecode)
            if spell is None:
                return None
            texts.append(list(map(spell, col)))
            continue
        kinds = set(map(type, col))
        if kinds <= {str, _NONE}:
            text = ["" if v is None else v for v in col] if _NONE in kinds else col
            joined = "".join(text)
            if sep in joined or '"' in joined or "\n" in joined or "\r" in joined:
                return None  # csv.writer quotes these
        elif kinds <= {float, _NONE} or kinds <= {int, _NONE}:
            spell = float.__repr__ if float in kinds else int.__repr__
            text = ["" if v is None else spell(v) for v in col] if _NONE in kinds \
                else list(map(spell, col))
        else:
            return None
        texts.append(text)
    if width == 1 and "" in texts[0]:
        return None  # csv.writer writes a lone empty field as ""
    return texts


# Encodes a flat list of scalars with NUL between items: JSON escapes a NUL
# inside a string (\u0000), so splitting on it gives back each value's text.
_VALUES = json.JSONEncoder(ensure_ascii=False, default=str, separators=("\0", ": ")).encode


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with each repeat renamed as DuckDB does: ``a``, ``a_1``, ``a_2``
    …, compared without case and skipping a name already taken.

    >>> unique_names(["a", "a", "A", "a_1", "b"])
    ['a', 'a_1', 'A_2', 'a_1_1', 'b']
    """
    used: set[str] = set()
    out: list[str] = []
    for name in names:
        new, k = name, 0
        while new.lower() in used:
            k += 1
            new = f"{name}_{k}"
        used.add(new.lower())
        out.append(new)
    return out


def write_json_array(columns: list[str], rows: Iterable, out: IO[str]) -> int:
    """A JSON array of objects, one per line, streamed in chunks; returns the
    number of rows.  Repeated names keep the last value, as ``dict`` does:
    callers showing results give unique names (:func:`unique_names`)."""
    width = len(columns)
    # duplicate names make dict(zip(...)) keep one key: those rows go one by one
    fast = width > 0 and len(set(columns)) == width
    keys = [json.dumps(c, ensure_ascii=False) + ": " for c in columns]
    # the text before each value of a chunk: "{key: " before a row's first
    # value (closing the previous row's object), ", key: " before the others
    inner = ["{" + keys[0]] + [", " + k for k in keys[1:]] if fast else []
    following = ["},\n " + inner[0]] + inner[1:] if fast else []
    out.write("[")
    n = 0
    for chunk in _chunks(rows):
        values: list[str] = []
        if fast and set(map(len, chunk)) == {width}:
            flat = list(chain.from_iterable(chunk))
            values = _VALUES(flat)[1:-1].split("\0")
        if values and len(values) == len(flat):  # (a nested value would hold NULs)
            first = [("\n " if n == 0 else ",\n ") + inner[0]] + inner[1:]
            out.write("".join(chain.from_iterable(zip(chain(first, cycle(following)), values))))
            out.write("}")
            n += len(chunk)
            continue
        for r in chunk:
            out.write(",\n " if n else "\n ")
            out.write(json.dumps(dict(zip(columns, r)), ensure_ascii=False, default=str))
            n += 1
    out.write("\n]\n" if n else "]\n")
    return n
