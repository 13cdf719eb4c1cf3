"""Java's ``Float.toString`` in pure Python.

AMPLab's ``adRevenue`` column is ``Float.toString(random.nextFloat())``: the shortest
decimal that reads back as the same 32-bit float (ties between two shortest candidates
go to the nearer one, and an exact half to the even digit), written as ``0.0012345`` when
``1e-3 <= |x| < 1e7`` and as ``1.2345E-4`` otherwise, always with a digit after the
point.

:func:`java_float_str` formats any float with the shortest digits, as Java 19+ does.
Java 8-18 agree except for values where their algorithm emits a needless extra digit
(JDK-4511638): on 300,000 random bit patterns Java 17 differed only above 1e7, plus
edge cases such as ``Float.MIN_NORMAL`` (Java 17: ``1.17549435E-38``, here and in Java
19+: ``1.1754944E-38``).  None of them lies in [0, 1) at a multiple of 2**-24:
:func:`revenue_str`, the fast path the generator uses for ``k / 2**24``
(``0 <= k < 2**24``, the values ``nextFloat`` returns), works on integers only and agrees
with Java 17's ``Float.toString`` on all 2**24 inputs (checked exhaustively; the test
suite re-checks a sample against ``java`` when a JDK is installed).

>>> java_float_str(0.5), java_float_str(0.001), java_float_str(1e-4), java_float_str(3.1352043e-05)
('0.5', '0.001', '1.0E-4', '3.1352043E-5')
>>> java_float_str(1.0), java_float_str(123456.7), java_float_str(1.5e7), java_float_str(0.0)
('1.0', '123456.7', '1.5E7', '0.0')
>>> revenue_str(5582065), revenue_str(526), revenue_str(0), revenue_str(1 << 23)
('0.332717', '3.1352043E-5', '0.0', '0.5')
"""

from __future__ import annotations

import math
import struct

_F32 = struct.Struct("<f")


def to_float32(x: float) -> float:
    """``x`` rounded to the nearest 32-bit float (as a Python float)."""
    return _F32.unpack(_F32.pack(x))[0]


def _shortest_digits(x: float) -> tuple[str, int]:
    """(digits, exponent) of the shortest decimal that reads back as float32 ``x`` > 0.

    ``'%.{p}e'`` rounds correctly (half to even), so for the smallest precision that
    round-trips it gives the nearest such decimal.
    """
    for p in range(1, 10):
        s = "%.*e" % (p - 1, x)
        if to_float32(float(s)) == x:
            break
    mant, exp = s.split("e")
    digits = mant.replace(".", "").rstrip("0") or "0"
    return digits, int(exp)


def java_float_str(x: float) -> str:
    """Java's ``Float.toString`` of ``x`` (first rounded to a 32-bit float)."""
    x = to_float32(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0.0"
    ax = abs(x)
    digits, e = _shortest_digits(ax)
    if 1e-3 <= ax < 1e7:
        if e >= 0:
            whole = digits[:e + 1].ljust(e + 1, "0")
            frac = digits[e + 1:] or "0"
        else:
            whole = "0"
            frac = "0" * (-e - 1) + digits
        return sign + whole + "." + frac
    if len(digits) == 1:
        # "d.dE": of the two-digit decimals, the one nearest x (Float.MIN_VALUE: 1.4E-45)
        mant, exp = ("%.1e" % ax).split("e")
        if to_float32(float(mant + "e" + exp)) == ax:
            digits, e = mant.replace(".", ""), int(exp)
    return sign + digits[0] + "." + (digits[1:] or "0") + "E" + str(e)


# ---------------------------------------------------------------- fast path: k / 2**24
#
# x = k / 2**24 with b = k.bit_length() is a float32 whose neighbours are 2**(b-48) away,
# so the decimals that read back as x are those within 2**(b-49) of it.  In units of
# 2**-24 and with q decimal places: the q-place decimal nearest to x is
# round(k * 10**q / 2**24), at distance dist = min(r, 2**24 - r) with
# r = (k * 10**q) mod 2**24, and it reads back as x iff dist * 2**(25-b) < 10**q (never
# equal: the interval ends need 49-b >= 25 decimal places).  At _SURE[b] places the
# nearest decimal always fits, so the answer has _SURE[b] places unless one fewer fits;
# then keep shortening while it does.  Powers of two (an asymmetric interval) and 0 are
# looked up.

_MASK = (1 << 24) - 1
_HALF = 1 << 23
_ONE = 1 << 24
_P10 = tuple(10 ** q for q in range(32))
_SURE = [0] * 25
for _b in range(1, 25):
    _q = 0
    while 10 ** _q <= 2 ** (48 - _b):
        _q += 1
    _SURE[_b] = _q
_SPECIAL = {0: "0.0"}
for _b in range(24):
    _SPECIAL[1 << _b] = java_float_str((1 << _b) / _ONE)
_SCI_BELOW = 16778  # the smallest k with k / 2**24 >= 1e-3


def revenue_str(k: int) -> str:
    """``Float.toString(k / 2**24f)`` for ``0 <= k < 2**24`` (``Random.nextFloat`` values)."""
    s = _SPECIAL.get(k)
    if s is not None:
        return s
    b = k.bit_length()
    shift = 25 - b
    q = _SURE[b] - 1
    t = k * _P10[q]
    r = t & _MASK
    if r > _HALF:
        r = _ONE - r
    if (r << shift) < _P10[q]:
        while True:  # one place fewer fits: try fewer still
            q1 = q - 1
            t1 = k * _P10[q1]
            r1 = t1 & _MASK
            if r1 > _HALF:
                r1 = _ONE - r1
            if (r1 << shift) >= _P10[q1]:
                break
            q, t = q1, t1
    else:
        q += 1
        t = k * _P10[q]
    d = t >> 24
    r = t & _MASK
    if r > _HALF or (r == _HALF and d & 1):
        d += 1
    if k >= _SCI_BELOW:
        return "0." + str(d).zfill(q)
    ds = str(d)
    e = len(ds) - 1 - q
    ds = ds.rstrip("0")
    return ds[0] + "." + (ds[1:] or "0") + "E" + str(e)
