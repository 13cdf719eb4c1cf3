"""SQL scalar functions and value parsers used by generated job code.

Generated code inlines the common cases (slices for constant SUBSTR, ``float()``
for DOUBLE fields); everything with edge cases lives here so it is written and
tested once.  All functions take and return plain Python values; ``None`` is
SQL NULL.

>>> substr('192.168.0.1', 1, 7)
'192.168'
>>> substr('hello', -3, 2)
'll'
>>> sql_round(2.5), sql_round(-2.5), sql_round(1.005, 2)
(3.0, -3.0, 1.01)
>>> like('abc', 'a%'), like('abc', '_b_'), like('a%c', 'a\\\\%c')
(True, True, True)
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

NULL_TEXT = "\\N"  # Hive's text NULL marker


# ---------------------------------------------------------------- field parsers
# Each raises ValueError when the text does not parse as the type; the caller
# turns that into NULL and counts the row as malformed.

def parse_int(text: str) -> int:
    return int(text)


def parse_double(text: str) -> float:
    return float(text)


def parse_date(text: str) -> str:
    """Validate a ``yyyy-MM-dd`` date; dates travel as their ISO text (they sort
    and compare correctly as strings)."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"not a date: {text!r}")
    _dt.date(int(text[:4]), int(text[5:7]), int(text[8:]))
    return text


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_string(text: str) -> str:
    return text


PARSERS = {"string": parse_string, "int": parse_int, "bigint": parse_int,
           "double": parse_double, "date": parse_date, "boolean": parse_bool}


def parse_fields(line: str, sep: str, spec: tuple[tuple[int, str], ...]) -> tuple[list, bool]:
    """Slow path: parse the fields ``spec`` = ((index, type), ...) of a line one by
    one.  Returns (values, malformed); a missing field or one that does not parse
    is NULL and marks the row malformed; ``\\N`` is NULL and is not malformed.

    >>> parse_fields('a,x,3', ',', ((0, 'string'), (1, 'int'), (2, 'int'), (5, 'int')))
    (['a', None, 3, None], True)
    >>> parse_fields('\\\\N,2', ',', ((0, 'string'), (1, 'int')))
    ([None, 2], False)
    """
    fields = line.split(sep)
    values: list[Any] = []
    malformed = False
    for index, typ in spec:
        if index >= len(fields):
            values.append(None)
            malformed = True
            continue
        text = fields[index]
        if text == NULL_TEXT:
            values.append(None)
            continue
        try:
            values.append(PARSERS[typ](text))
        except (ValueError, OverflowError):
            values.append(None)
            malformed = True
    return values, malformed


# ------------------------------------------------------------------- functions

_NO_LENGTH: Any = object()  # SUBSTR without a length (a NULL length is NULL)


def substr(s: str | None, start: int | None, length: int | None = _NO_LENGTH) -> str | None:
    """Hive SUBSTR: 1-based; a negative start counts from the end; 0 acts as 1;
    a start beyond either end gives ``''``; any NULL argument gives NULL.

    >>> substr('ab', -3, 1), substr('hello', -10, 3), substr('abc', 4), substr('abc', 2, None)
    ('', '', '', None)
    >>> substr('hello', 0, 2), substr('hello', -2), substr('hello', 2, -1)
    ('he', 'lo', '')
    """
    if s is None or start is None or length is None:
        return None
    if abs(start) > len(s):
        return ""
    begin = start - 1 if start > 0 else len(s) + start if start < 0 else 0
    if length is _NO_LENGTH:
        return s[begin:]
    if length <= 0:
        return ""
    return s[begin:begin + length]


def concat(*parts: Any) -> str | None:
    if any(p is None for p in parts):
        return None
    return "".join(to_text(p) for p in parts)


def to_text(v: Any) -> str:
    """SQL text of a value (CAST … AS STRING, CONCAT)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def sql_round(x: float | int | None, digits: int | None = 0) -> float | int | None:
    """ROUND half away from zero, as SQL engines do (Python's round is half-even)."""
    if x is None or digits is None:
        return None
    if isinstance(x, int) and not isinstance(x, bool):
        if digits >= 0:
            return x
        q = Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        return int(q)
    if math.isnan(x) or math.isinf(x):
        return x
    q = Decimal(repr(x)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return float(q)


def to_decimal(x: float | int | None, precision: int, scale: int) -> float | None:
    """CAST to DECIMAL(precision, scale), as a DOUBLE: rounded half up to
    ``scale`` digits (from the value's shortest decimal text); NULL when the
    integer part has more than ``precision - scale`` digits, as in Hive.

    >>> to_decimal(2.555, 10, 2), to_decimal(-0.145, 10, 2), to_decimal(2.5, 10, 0)
    (2.56, -0.15, 3.0)
    >>> to_decimal(123.4, 4, 2), to_decimal(99.994, 4, 2), to_decimal(float('inf'), 10, 2)
    (None, 99.99, None)
    """
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    q = Decimal(repr(x) if isinstance(x, float) else x).quantize(
        Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if q.adjusted() >= precision - scale:
        return None
    return float(q)


def divide(a: float | int | None, b: float | int | None) -> float | None:
    """``a / b`` as a DOUBLE; division by zero is NULL."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def modulo(a: Any, b: Any) -> Any:
    """SQL ``%``: the sign follows the dividend (Python's follows the divisor)."""
    if a is None or b is None or b == 0:
        return None
    r = math.fmod(a, b)
    if isinstance(a, int) and isinstance(b, int):
        return int(r)
    return r


def cast(v: Any, to: str) -> Any:
    """CAST with Hive semantics: a value that does not convert is NULL."""
    if v is None:
        return None
    try:
        if to == "string":
            return to_text(v)
        if to in ("int", "bigint"):
            if isinstance(v, str):
                v = v.strip()
                try:
                    return int(v)
                except ValueError:
                    v = float(v)
            if isinstance(v, float):
                if math.isnan(v) or math.isinf(v):
                    return None
                return int(v)  # truncates toward zero, as Hive does
            return int(v)
        if to == "double":
            if isinstance(v, str):
                return float(v.strip())
            return float(v)
        if to == "date":
            if isinstance(v, str):
                return parse_date(v.strip()[:10])
            return None
        if to == "boolean":
            if isinstance(v, str):
                return parse_bool(v.strip())
            return bool(v)
    except (ValueError, OverflowError):
        return None
    raise ValueError(f"unknown type {to}")


@lru_cache(maxsize=256)
def like_regex(pattern: str, escape: str = "\\") -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def like(s: str | None, pattern: str | None) -> bool | None:
    if s is None or pattern is None:
        return None
    return like_regex(pattern).match(s) is not None


def trim(s: str | None) -> str | None:
    return None if s is None else s.strip(" ")


def coalesce(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


# ------------------------------------------------------------------- ordering

class Desc:
    """Wraps a sort key so that it orders descending inside a tuple key."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: "Desc") -> bool:
        return other.v < self.v

    def __gt__(self, other: "Desc") -> bool:
        return other.v > self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.v == other.v

    def __hash__(self) -> int:
        return hash(self.v)
