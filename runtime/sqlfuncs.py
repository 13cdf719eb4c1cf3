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

from runtime.javadate import compile_format
from runtime.javaregex import RegexError, compile_java, compile_replacement, java_split

NULL_TEXT = "\\N"  # Hive's text NULL marker


# ---------------------------------------------------------------- field parsers
# Each raises ValueError when the text does not parse as the type; the caller
# turns that into NULL and counts the row as malformed.  They accept what
# Hive's Java parsers accept, not what Python's lenient int()/float() do
# (``1_000``, `` 7 ``, ``inf``, ``nan``, full-width digits, INT past 32 bits):
#
# - INT / BIGINT (Integer.parseInt / Long.parseLong): an optional sign and
#   ASCII digits, nothing around them, in the type's range (32 / 64 bits);
# - DOUBLE (Double.parseDouble): characters <= ' ' trimmed from both ends, then
#   an optional sign and a decimal number (``1``, ``1.``, ``.5``, ``1e-3``) with
#   an optional ``f``/``d`` suffix, a hexadecimal one (``0x1.8p1``), ``NaN`` or
#   ``Infinity`` spelt so; a finite number too large is +-Infinity, as in Java;
# - DATE: exactly ``yyyy-MM-dd`` with ASCII digits, a real date.
#
# Generated scan code converts with int()/float() on its fast path and sends a
# field those would accept but Hive would not to the slow path (see
# compiler.schema.FAST_CHECK), which calls these.

INT_RANGE = {"int": (-2**31, 2**31 - 1), "bigint": (-2**63, 2**63 - 1)}
_JAVA_INT = re.compile(r"[+-]?[0-9]+").fullmatch
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)").fullmatch
_JAVA_HEX_DOUBLE = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?").fullmatch
_JAVA_SPACE = "".join(map(chr, range(33)))  # String.trim() removes every char <= ' '


def parse_int(text: str, typ: str = "int") -> int:
    """INT (or BIGINT) text as Java's Integer.parseInt (Long.parseLong) reads it.

    >>> parse_int("-2147483648"), parse_int("+7"), parse_int("007")
    (-2147483648, 7, 7)
    >>> for t in ("2147483648", "1_000", " 7", "7 ", "\uff11\uff12", "1.0", ""):
    ...     try: parse_int(t)
    ...     except ValueError: pass
    ...     else: print("accepted", repr(t))
    >>> parse_int("99999999999", "bigint")
    99999999999
    """
    if not _JAVA_INT(text):
        raise ValueError(f"not an integer: {text!r}")
    value = int(text)
    low, high = INT_RANGE[typ]
    if not low <= value <= high:
        raise ValueError(f"out of range for {typ.upper()}: {text!r}")
    return value


def parse_bigint(text: str) -> int:
    return parse_int(text, "bigint")


def parse_double(text: str) -> float:
    """DOUBLE text as Java's Double.parseDouble reads it.

    >>> [parse_double(t) for t in ("1.5", " 2e3\t", "-.5", "7.", "1.5d", "0x1.8p1", "1e400", "-Infinity")]
    [1.5, 2000.0, -0.5, 7.0, 1.5, 3.0, inf, -inf]
    >>> parse_double("NaN") != parse_double("NaN")
    True
    >>> for t in ("inf", "nan", "infinity", "1_000", "\uff11", "1,5", "", "e3", "1e", "0x1p"):
    ...     try: parse_double(t)
    ...     except ValueError: pass
    ...     else: print("accepted", repr(t))
    """
    t = text.strip(_JAVA_SPACE)
    if _JAVA_DOUBLE(t):
        if t[-1] in "fFdD":  # Java's float / double suffix
            t = t[:-1]
        return float(t)
    if _JAVA_HEX_DOUBLE(t):
        return float.fromhex(t[:-1] if t[-1] in "fFdD" else t)
    raise ValueError(f"not a double: {text!r}")


def parse_date(text: str) -> str:
    """Validate a ``yyyy-MM-dd`` date (ASCII digits); dates travel as their ISO
    text (they sort and compare correctly as strings).

    >>> parse_date("2020-02-29")
    '2020-02-29'
    >>> for t in ("2_20-01-01", "\uff12\uff10\uff12\uff10-01-01", "2020-1-01", "2021-02-29", " 2020-01-01"):
    ...     try: parse_date(t)
    ...     except ValueError: pass
    ...     else: print("accepted", repr(t))
    """
    if (len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii()
            or not (text[:4] + text[5:7] + text[8:]).isdigit()):
        raise ValueError(f"not a date: {text!r}")
    _dt.date(int(text[:4]), int(text[5:7]), int(text[8:]))
    return text


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:( )([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"|(T)([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?)?").fullmatch


def parse_timestamp(text: str) -> str:
    """A TIMESTAMP as Hive's Timestamp.valueOf reads it, in its canonical text:
    characters <= ' ' trimmed, then ``yyyy-MM-dd HH:mm:ss[.f…]`` (1 to 9
    fraction digits), a date alone (midnight), or the ISO form
    ``yyyy-MM-ddTHH:mm[:ss[.f…]]``; ASCII digits, a real date and time.
    Timestamps travel as this text: ``yyyy-MM-dd HH:mm:ss`` and, when not
    zero, a fraction without trailing zeros (Hive's output form), so that
    equal timestamps have equal text and texts order as the timestamps do.

    >>> parse_timestamp("2020-02-29 23:59:07.120"), parse_timestamp(" 2020-01-02 ")
    ('2020-02-29 23:59:07.12', '2020-01-02 00:00:00')
    >>> parse_timestamp("2020-01-02T03:04"), parse_timestamp("2020-01-02 03:04:05.000000000")
    ('2020-01-02 03:04:00', '2020-01-02 03:04:05')
    >>> for t in ("2021-02-29 00:00:00", "2020-01-01 24:00:00", "2020-01-01 1:00:00",
    ...           "2020-01-01 10:00", "2020-01-01 10:00:00.", "2020-01-01 10:00:00.1234567890", ""):
    ...     try: parse_timestamp(t)
    ...     except ValueError: pass
    ...     else: print("accepted", repr(t))
    """
    m = _TIMESTAMP(text.strip(_JAVA_SPACE))
    if m is None:
        raise ValueError(f"not a timestamp: {text!r}")
    y, mo, d, _, h, mi, s, frac, iso, ih, imi, is_, ifrac = m.groups()
    if iso:
        h, mi, s, frac = ih, imi, is_ or "00", ifrac
    elif h is None:
        h = mi = s = "00"
    _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))  # a real date and time
    frac = frac.rstrip("0") if frac else ""
    return f"{y}-{mo}-{d} {h}:{mi}:{s}" + (f".{frac}" if frac else "")


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_string(text: str) -> str:
    return text


PARSERS = {"string": parse_string, "int": parse_int, "bigint": parse_bigint,
           "double": parse_double, "date": parse_date, "boolean": parse_bool,
           "timestamp": parse_timestamp}


def partition_value(text: str | None, typ: str) -> Any:
    """A partition column's value from its folder name's (unescaped) text, as
    Hive reads it: NULL for the default partition (``None``) and for text that
    does not parse as the column's type.

    >>> partition_value("2024-01-03", "date"), partition_value("007", "int"), partition_value("x", "int")
    ('2024-01-03', 7, None)
    """
    if text is None:
        return None
    try:
        return PARSERS[typ](text)
    except (ValueError, OverflowError):
        return None


def parse_fields(line: str, sep: str, spec: tuple[tuple[int, str], ...],
                 null: str = NULL_TEXT) -> tuple[list, bool]:
    """Slow path: parse the fields ``spec`` = ((index, type), ...) of a line one by
    one.  Returns (values, malformed); a missing field or one that does not parse
    is NULL and marks the row malformed; ``\\N`` (``null``) is NULL and is not malformed.

    >>> parse_fields('a,x,3', ',', ((0, 'string'), (1, 'int'), (2, 'int'), (5, 'int')))
    (['a', None, 3, None], True)
    >>> parse_fields('\\\\N,2', ',', ((0, 'string'), (1, 'int')))
    ([None, 2], False)
    """
    return parse_list(line.split(sep), spec, null)


def parse_list(fields: list, spec: tuple[tuple[int, str], ...], null: str | None = NULL_TEXT,
               empty_null: bool = False) -> tuple[list, bool]:
    """:func:`parse_fields` of a record already cut into fields (text, or None
    for NULL); ``empty_null``: an empty field of a type other than STRING is
    NULL and not malformed (CSV).

    >>> parse_list(['1', None, '', 'x'], ((0, 'int'), (1, 'int'), (2, 'int'), (3, 'string')), None, True)
    ([1, None, None, 'x'], False)
    """
    values: list[Any] = []
    malformed = False
    n = len(fields)
    for index, typ in spec:
        if index >= n:
            values.append(None)
            malformed = True
            continue
        text = fields[index]
        if text is None or text == null or empty_null and text == "" and typ != "string":
            values.append(None)
            continue
        try:
            values.append(PARSERS[typ](text))
        except (ValueError, OverflowError, TypeError, AttributeError):
            values.append(None)
            malformed = True
    return values, malformed


def split_escaped(line: str, sep: str, esc: str, null: str = NULL_TEXT) -> list:
    """Hive's delimited text with ESCAPED BY: ``esc`` makes the next character
    literal (``esc`` + ``n`` / ``r`` is a newline / carriage return), so an
    escaped delimiter does not cut a field; a field spelt ``null`` (before
    unescaping) is None.

    >>> split_escaped('a\\\\,b,c\\\\\\\\d,\\\\N,x\\\\ny', ',', '\\\\')
    ['a,b', 'c\\\\d', None, 'x\\ny']
    """
    if esc not in line:
        return [None if f == null else f for f in line.split(sep)]
    fields: list = []
    raw: list[str] = []
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == esc and i + 1 < n:
            nxt = line[i + 1]
            raw.append(c + nxt)
            out.append("\n" if nxt == "n" else "\r" if nxt == "r" else nxt)
            i += 2
            continue
        if c == sep:
            fields.append(None if "".join(raw) == null else "".join(out))
            raw, out = [], []
        else:
            raw.append(c)
            out.append(c)
        i += 1
    fields.append(None if "".join(raw) == null else "".join(out))
    return fields


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


def concat_ws(sep: str | None, *parts: str | None) -> str | None:
    """Hive's CONCAT_WS: the non-NULL parts joined by ``sep``; NULL when ``sep`` is.

    >>> concat_ws("-", "a", None, "b"), concat_ws(None, "a"), concat_ws(",", None)
    ('a-b', None, '')
    """
    if sep is None:
        return None
    return sep.join([p for p in parts if p is not None])


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


_CAST_INT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?").fullmatch


def cast(v: Any, to: str) -> Any:
    """CAST with Hive semantics: a value that does not convert is NULL.

    Text to INT / BIGINT is Hive's LazyInteger with trimming: spaces around,
    a sign, ASCII digits and a fraction that is dropped (``' 2.9'`` is 2), in
    range; text to DOUBLE is Double.parseDouble.  A DOUBLE to INT / BIGINT
    truncates toward zero and saturates at the type's bounds (Java's
    narrowing of a double); a BIGINT to INT keeps its low 32 bits (a long's).

    >>> cast(' 2.9', 'int'), cast('-7', 'bigint'), cast('1_000', 'int'), cast('1e3', 'int'), cast('99999999999', 'int')
    (2, -7, None, None, None)
    >>> cast(1e10, 'int'), cast(-2.7, 'int'), cast(float('nan'), 'int'), cast(2**31 + 5, 'int')
    (2147483647, -2, None, -2147483643)
    >>> cast('inf', 'double'), cast(' 1.5 ', 'double'), cast('Infinity', 'double')
    (None, 1.5, inf)
    """
    if v is None:
        return None
    try:
        if to == "string":
            return to_text(v)
        if to in ("int", "bigint"):
            low, high = INT_RANGE[to]
            if isinstance(v, str):
                t = v.strip(_JAVA_SPACE)
                if not _CAST_INT(t):
                    return None
                n = int(t.split(".", 1)[0])
                return n if low <= n <= high else None
            if isinstance(v, float):
                if math.isnan(v):
                    return None
                if math.isinf(v):
                    return high if v > 0 else low
                return max(low, min(high, int(v)))  # truncates toward zero, saturates
            n = int(v)
            if not low <= n <= high:  # wraps as Java's (int) of a long
                n = (n - low) % (2 * high + 2) + low
            return n
        if to == "double":
            if isinstance(v, str):
                return parse_double(v)
            return float(v)
        if to == "date":
            if isinstance(v, str):
                return parse_date(v.strip()[:10])
            return None
        if to == "timestamp":
            if isinstance(v, str):
                return parse_timestamp(v)
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


def between(x: Any, low: Any, high: Any) -> bool | None:
    """``x BETWEEN low AND high`` as ``x >= low AND x <= high`` in three-valued
    logic: a bound that rules ``x`` out decides, whatever the other is.

    >>> between(7, None, 1), between(0, None, 1), between(None, 1, 2), between(2, 1, 3)
    (False, None, None, True)
    """
    if x is None:
        return None
    above = None if low is None else low <= x
    below = None if high is None else x <= high
    if above is False or below is False:
        return False
    if above is None or below is None:
        return None
    return True


def coalesce(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


# ------------------------------------------------ Hive's date, text and math functions
# Constant patterns are compiled once, as module constants of the generated
# code (compile_java, compile_format); these take a pattern only when it is a
# value, compile it through the same caches, and read an invalid one as NULL.

def date_add(d: str | None, days: int | None) -> str | None:
    """DATE_ADD of a DATE text; past year 9999 (or before 1) is NULL.

    >>> date_add('2020-02-28', 1), date_add('2021-02-28', 1), date_add('2020-03-01', -1)
    ('2020-02-29', '2021-03-01', '2020-02-29')
    """
    if d is None or days is None:
        return None
    try:
        return (_dt.date.fromisoformat(d) + _dt.timedelta(days=days)).isoformat()
    except OverflowError:
        return None


_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]").fullmatch


def time_text(v: str | None) -> str | None:
    """A text as HOUR / MINUTE / SECOND read it: a timestamp, or (as Hive
    reads it too) a time of day alone, ``HH:mm:ss``, on 1970-01-01.

    >>> time_text('2020-01-02 03:04:05'), time_text(' 12:58:59 '), time_text('24:00:00')
    ('2020-01-02 03:04:05', '1970-01-01 12:58:59', None)
    """
    if v is None:
        return None
    try:
        return parse_timestamp(v)
    except ValueError:
        t = v.strip(_JAVA_SPACE)
        return f"1970-01-01 {t}" if _TIME(t) else None


def datediff(a: str | None, b: str | None) -> int | None:
    """Days from DATE ``b`` to DATE ``a``.

    >>> datediff('2020-03-01', '2020-02-01'), datediff('2019-12-31', '2020-01-01')
    (29, -1)
    """
    if a is None or b is None:
        return None
    return (_dt.date.fromisoformat(a) - _dt.date.fromisoformat(b)).days


def date_format(ts: str | None, pattern: str | None) -> str | None:
    if ts is None or pattern is None:
        return None
    try:
        return compile_format(pattern)(ts)
    except ValueError:
        return None


def _java_rx(pattern: str) -> re.Pattern | None:
    try:
        return compile_java(pattern)
    except RegexError:
        return None


def rx_extract(rx: re.Pattern, s: str, group: int) -> str | None:
    """Hive's REGEXP_EXTRACT with a compiled pattern: the group of the first
    match; ``''`` when nothing matches; NULL when the group took no part.

    >>> rx = compile_java('([a-z]+)([0-9]+)?')
    >>> rx_extract(rx, '12ab', 1), rx_extract(rx, '12', 1), rx_extract(rx, 'ab', 2), rx_extract(rx, 'ab7', 0)
    ('ab', '', None, 'ab7')
    """
    m = rx.search(s)
    return "" if m is None else m.group(group)


def regexp_extract(s: str | None, pattern: str | None, group: int | None = 1) -> str | None:
    if s is None or pattern is None or group is None:
        return None
    rx = _java_rx(pattern)
    if rx is None or not 0 <= group <= rx.groups:
        return None
    return rx_extract(rx, s, group)


def regexp_replace(s: str | None, pattern: str | None, replacement: str | None) -> str | None:
    """Hive's REGEXP_REPLACE: every match replaced (Java's replaceAll).

    >>> regexp_replace('a1b22', '([0-9]+)', '<$1>'), regexp_replace('abc', 'x', 'y')
    ('a<1>b<22>', 'abc')
    """
    if s is None or pattern is None or replacement is None:
        return None
    try:
        rx, template = compile_replacement(pattern, replacement)
    except RegexError:
        return None
    return rx.sub(template, s)


def rlike(s: str | None, pattern: str | None) -> bool | None:
    if s is None or pattern is None:
        return None
    rx = _java_rx(pattern)
    return None if rx is None else rx.search(s) is not None


def rx_split_at(rx: re.Pattern, s: str, index: int) -> str | None:
    """``SPLIT(s, regex)[index]`` with a compiled pattern: 0-based, NULL out of range.

    >>> rx = compile_java(',')
    >>> rx_split_at(rx, 'a,,b,', 1), rx_split_at(rx, 'a,,b,', 3), rx_split_at(rx, 'a', 1), rx_split_at(rx, 'a', -1)
    ('', '', None, None)
    """
    if index < 0:
        return None
    parts = java_split(rx, s)
    return parts[index] if index < len(parts) else None


def split_at(s: str | None, pattern: str | None, index: int | None) -> str | None:
    if s is None or pattern is None or index is None:
        return None
    rx = _java_rx(pattern)
    return None if rx is None else rx_split_at(rx, s, index)


def pad(s: str | None, length: int | None, fill: str | None, left: bool) -> str | None:
    """Hive's LPAD / RPAD: ``s`` cut or padded to ``length`` characters; NULL for
    a negative length, or when padding is needed and ``fill`` is empty.

    >>> pad('ab', 5, 'xy', True), pad('ab', 5, 'xy', False), pad('abcdef', 3, 'x', True)
    ('xyxab', 'abxyx', 'abc')
    >>> pad('ab', -1, 'x', True), pad('ab', 4, '', True), pad('ab', 2, '', True)
    (None, None, 'ab')
    """
    if s is None or length is None or fill is None or length < 0:
        return None
    if length <= len(s):
        return s[:length]
    if not fill:
        return None
    need = length - len(s)
    padding = (fill * (need // len(fill) + 1))[:need]
    return padding + s if left else s + padding


def _to_bigint(x: float) -> int:
    """Java's ``(long)`` of a double: NaN is 0, saturating at the bounds."""
    if x != x:
        return 0
    low, high = INT_RANGE["bigint"]
    if x >= high:
        return high
    if x <= low:
        return low
    return int(x)


def floor(x: float | int | None) -> int | None:
    """FLOOR as a BIGINT (Hive: ``(long) Math.floor(x)``).

    >>> floor(-2.5), floor(7), floor(float('nan')), floor(1e300)
    (-3, 7, 0, 9223372036854775807)
    """
    if x is None:
        return None
    if isinstance(x, int):
        return x
    return _to_bigint(math.floor(x)) if math.isfinite(x) else _to_bigint(x)


def ceil(x: float | int | None) -> int | None:
    """CEIL as a BIGINT.

    >>> ceil(-2.5), ceil(2.1), ceil(float('-inf'))
    (-2, 3, -9223372036854775808)
    """
    if x is None:
        return None
    if isinstance(x, int):
        return x
    return _to_bigint(math.ceil(x)) if math.isfinite(x) else _to_bigint(x)


def power(x: float | int | None, y: float | int | None) -> float | None:
    """Java's Math.pow: overflow is infinite, a negative base with a fractional
    exponent is NaN, zero to a negative power is infinite.

    >>> power(2, 10), power(-8, 1/3), power(0, -1), power(-0.0, -1), power(10, 400), power(-10, 401)
    (1024.0, nan, inf, -inf, inf, -inf)
    """
    if x is None or y is None:
        return None
    x, y = float(x), float(y)
    odd = y.is_integer() and abs(y) < 2**53 and int(y) % 2 == 1
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        if x == 0:
            return -math.inf if math.copysign(1, x) < 0 and odd else math.inf
        return math.nan


def sqrt(x: float | int | None) -> float | None:
    """SQRT; NULL for a negative number (Hive).

    >>> sqrt(16), sqrt(-1), sqrt(0)
    (4.0, None, 0.0)
    """
    if x is None or x < 0:
        return None
    return math.sqrt(x)


def ln(x: float | int | None) -> float | None:
    """LN; NULL for zero or a negative number (Hive).

    >>> ln(1), ln(0), ln(-2)
    (0.0, None, None)
    """
    if x is None or x <= 0:
        return None
    return math.log(x)


def log10(x: float | int | None) -> float | None:
    """LOG10; NULL for zero or a negative number (Hive).

    >>> log10(1000), log10(0)
    (3.0, None)
    """
    if x is None or x <= 0:
        return None
    return math.log10(x)


def log(base: float | int | None, x: float | int | None) -> float | None:
    """LOG(base, x): NULL when ``x <= 0`` or ``base <= 1`` (Hive's UDFLog).

    >>> log(2, 8), log(1, 8), log(2, 0)
    (3.0, None, None)
    """
    if base is None or x is None or x <= 0 or base <= 1:
        return None
    return math.log(x) / math.log(base)


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
