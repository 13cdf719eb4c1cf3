"""Java SimpleDateFormat patterns (Hive's DATE_FORMAT) over sqlmr's timestamp
text (``yyyy-MM-dd HH:mm:ss[.f…]``, see :func:`runtime.sqlfuncs.parse_timestamp`).

A pattern is compiled once into a list of parts; each letter run is a field
as SimpleDateFormat prints it in the English locale and UTC:

==========  =================================================================
``y``       year; ``yy`` its last two digits, otherwise zero-padded to the run
``M``       month: ``M`` / ``MM`` number, ``MMM`` ``Jan``, ``MMMM`` ``January``
``d D``     day of month, day of year (zero-padded to the run's length)
``E``       day of week: ``Mon`` (up to 3 letters), ``Monday`` (4 or more)
``u``       day number of the week (1 is Monday)
``H k``     hour 0-23, 1-24;  ``h K``: hour 1-12, 0-11;  ``a``: ``AM`` / ``PM``
``m s``     minute, second
``S``       milliseconds as a number (``SSS`` is ``007``; ``S`` is ``7``)
``G``       era (``AD``)
``'…'``     literal text; ``''`` is a quote
==========  =================================================================

Other letters (week fields, time zones) are refused with :class:`ValueError`
naming the letter; other characters are copied.

>>> fmt = compile_format("yyyy-MM-dd'T'HH:mm:ss.SSS EEE MMM d, h a ''yy")
>>> fmt("2020-02-09 13:04:05.5")
"2020-02-09T13:04:05.500 Sun Feb 9, 1 PM '20"
>>> compile_format("w")
Traceback (most recent call last):
...
ValueError: DATE_FORMAT pattern letter 'w'
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from typing import Callable

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _fields(ts: str) -> dict[str, int]:
    y, mo, d = int(ts[:4]), int(ts[5:7]), int(ts[8:10])
    return {"y": y, "M": mo, "d": d, "H": int(ts[11:13]), "m": int(ts[14:16]),
            "s": int(ts[17:19]), "S": int((ts[20:] + "000")[:3]) if len(ts) > 20 else 0}


def _pad(v: int, width: int) -> str:
    return str(v).zfill(width)


def _field(letter: str, count: int) -> Callable[[dict, _dt.date], str]:
    if letter == "y":
        if count == 2:
            return lambda f, day: _pad(f["y"] % 100, 2)
        return lambda f, day: _pad(f["y"], count)
    if letter == "M":
        if count >= 4:
            return lambda f, day: _MONTHS[f["M"] - 1]
        if count == 3:
            return lambda f, day: _MONTHS[f["M"] - 1][:3]
        return lambda f, day: _pad(f["M"], count)
    if letter in "dHmsS":
        return lambda f, day: _pad(f[letter], count)
    if letter == "D":
        return lambda f, day: _pad(day.timetuple().tm_yday, count)
    if letter == "E":
        if count >= 4:
            return lambda f, day: _DAYS[day.weekday()]
        return lambda f, day: _DAYS[day.weekday()][:3]
    if letter == "u":
        return lambda f, day: _pad(day.isoweekday(), count)
    if letter == "k":
        return lambda f, day: _pad(f["H"] or 24, count)
    if letter == "h":
        return lambda f, day: _pad(f["H"] % 12 or 12, count)
    if letter == "K":
        return lambda f, day: _pad(f["H"] % 12, count)
    if letter == "a":
        return lambda f, day: "AM" if f["H"] < 12 else "PM"
    if letter == "G":
        return lambda f, day: "AD"
    raise ValueError(f"DATE_FORMAT pattern letter {letter!r}")


@lru_cache(maxsize=64)
def compile_format(pattern: str) -> Callable[[str], str]:
    """A function formatting a timestamp text by ``pattern`` (ValueError for a
    letter sqlmr does not print, or an unclosed quote)."""
    parts: list = []  # literal strings and field functions
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "'":
            if pattern.startswith("''", i):
                parts.append("'")
                i += 2
                continue
            end = i + 1
            text = []
            while True:
                if end >= n:
                    raise ValueError(f"unterminated quote in DATE_FORMAT pattern {pattern!r}")
                if pattern[end] == "'":
                    if pattern.startswith("''", end):
                        text.append("'")
                        end += 2
                        continue
                    break
                text.append(pattern[end])
                end += 1
            parts.append("".join(text))
            i = end + 1
        elif ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            j = i
            while j < n and pattern[j] == ch:
                j += 1
            parts.append(_field(ch, j - i))
            i = j
        else:
            parts.append(ch)
            i += 1
    fixed = tuple(parts)

    def fmt(ts: str) -> str:
        f = _fields(ts)
        day = _dt.date(f["y"], f["M"], f["d"])
        return "".join(p if isinstance(p, str) else p(f, day) for p in fixed)

    return fmt
