"""TABLESAMPLE: a query over a sample of a table's splits.

``FROM t TABLESAMPLE (10 PERCENT)`` reads about a tenth of ``t``'s splits
and ``TABLESAMPLE (BUCKET 2 OUT OF 8)`` every eighth split from the second;
a split is read whole or not at all, so the sample is of blocks of rows (as
Hive samples HDFS blocks for a percentage), cheap and the same on every run.
The result says that it is a sample.

>>> import sqlglot
>>> table_sample(sqlglot.parse_one("SELECT * FROM t TABLESAMPLE (10 PERCENT)", read="hive").find(sqlglot.exp.Table), "")
Sample(percent=10.0, bucket=None, text='TABLESAMPLE (10 PERCENT)')
>>> kept_splits(20, Sample(percent=10.0)), kept_splits(10, Sample(bucket=(2, 4)))
([0, 10], [1, 5, 9])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.resolve import _start


@dataclass(frozen=True)
class Sample:
    percent: float | None = None              # TABLESAMPLE (n PERCENT)
    bucket: tuple[int, int] | None = None     # TABLESAMPLE (BUCKET x OUT OF y)
    text: str = ""                            # as EXPLAIN and the result say it


def table_sample(node: exp.Expression | None, sql: str) -> Sample | None:
    """The :class:`Sample` a table (or its SELECT) names, or None; the forms
    sqlmr cannot honour are refused by name rather than ignored."""
    ts = node.args.get("sample") if node is not None else None
    if not isinstance(ts, exp.TableSample):
        return None
    at = _start(ts)
    if ts.args.get("percent") is not None:
        value = _number(ts.args["percent"], sql, at)
        if not 0 < value <= 100:
            raise SqlError(f"TABLESAMPLE takes a percentage above 0 and at most 100, not {value:g}",
                           sql, at)
        return Sample(percent=value, text=f"TABLESAMPLE ({value:g} PERCENT)")
    num, den = ts.args.get("bucket_numerator"), ts.args.get("bucket_denominator")
    if num is not None and den is not None:
        if ts.args.get("bucket_field") is not None:
            raise UnsupportedError("TABLESAMPLE (BUCKET x OUT OF y ON column): sqlmr samples "
                                   "splits, not rows by a column's hash", sql, at)
        x, y = int(_number(num, sql, at)), int(_number(den, sql, at))
        if not 1 <= x <= y:
            raise SqlError(f"TABLESAMPLE (BUCKET {x} OUT OF {y}) needs 1 <= {x} <= {y}", sql, at)
        return Sample(bucket=(x, y), text=f"TABLESAMPLE (BUCKET {x} OUT OF {y})")
    raise UnsupportedError(f"{ts.sql(dialect='hive')} (TABLESAMPLE takes n PERCENT or "
                           "BUCKET x OUT OF y)", sql, at)


def _number(node: exp.Expression, sql: str, at: int | None) -> float:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            pass
    raise SqlError(f"TABLESAMPLE needs a number, not {node.sql()}", sql, at)


def kept_splits(n: int, sample: Sample) -> list[int]:
    """Indices of the splits (of ``n``, in planning order) a sample reads:
    ``ceil(n * percent / 100)`` spread evenly from the first, or every y-th
    from the x-th for a bucket.

    >>> kept_splits(3, Sample(percent=1.0)), kept_splits(4, Sample(percent=100.0)), kept_splits(0, Sample(percent=50.0))
    ([0], [0, 1, 2, 3], [])
    """
    if sample.bucket is not None:
        x, y = sample.bucket
        return list(range(x - 1, n, y))
    k = min(n, math.ceil(n * (sample.percent or 0) / 100))
    return [i * n // k for i in range(k)] if k else []
