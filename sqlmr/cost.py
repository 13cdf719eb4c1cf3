"""What a run cost, or would have cost, on Lambda; and Athena for the same bytes.

>>> c = lambda_cost(gb_seconds=100.0, requests=1000, gets=2000, puts=1000, architecture="arm64")
>>> round(c.total, 6)
0.007333
>>> round(athena_cost(126.8 * 2**30), 2), athena_cost(1000) == athena_cost(10 * 2**20)
(0.62, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlmr import prices


@dataclass
class LambdaCost:
    gb_seconds: float
    requests: int
    gets: int
    puts: int
    architecture: str
    compute: float
    request_cost: float
    s3_cost: float

    @property
    def total(self) -> float:
        return self.compute + self.request_cost + self.s3_cost


def lambda_cost(gb_seconds: float, requests: int, gets: int, puts: int,
                architecture: str = "arm64") -> LambdaCost:
    compute = gb_seconds * prices.LAMBDA_GB_SECOND[architecture]
    req = requests * prices.LAMBDA_PER_REQUEST
    s3 = gets * prices.S3_GET + puts * prices.S3_PUT
    return LambdaCost(gb_seconds, requests, gets, puts, architecture, compute, req, s3)


def athena_cost(bytes_scanned: float) -> float:
    return max(bytes_scanned, prices.ATHENA_MIN_BYTES) / 2**40 * prices.ATHENA_PER_TB


def money(x: float) -> str:
    """Dollars with three significant digits for small amounts.

    >>> money(0.6192), money(0.0000123), money(0.000118), money(12.5), money(0)
    ('$0.619', '$0.0000123', '$0.000118', '$12.50', '$0')
    """
    if x >= 10:
        return f"${x:,.2f}"
    if x >= 0.01:
        return f"${x:.3f}"
    if x <= 0:
        return "$0"
    decimals = -math.floor(math.log10(x)) + 2
    return f"${x:.{decimals}f}"
