"""The chunked CSV / JSON writers give exactly the text of the per-row writers
they replaced, on 2a's result and on rows with NULLs, quotes, delimiters,
newlines, floats, booleans and odd names."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
from array import array

import pytest

from sqlmr import writers
from sqlmr.render import text_value, write_csv, write_json, write_rows


def csv_per_row(columns, rows) -> str:
    """The CSV writer as it was: one ``writerow`` per row, values by text_value."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if v is None else text_value(v) for v in r])
    return out.getvalue()


def json_per_row(columns, rows) -> str:
    """The JSON writer as it was: one ``json.dumps`` of a dict per row."""
    out = io.StringIO()
    out.write("[")
    n = 0
    for r in rows:
        out.write(",\n " if n else "\n ")
        out.write(json.dumps(dict(zip(columns, r)), ensure_ascii=False, default=str))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return out.getvalue()


def written(fn, columns, rows) -> tuple[str, int]:
    out = io.StringIO()
    n = fn(columns, rows if hasattr(rows, "column_batches") else iter(rows), out)
    return out.getvalue(), n


def check(columns, rows) -> None:
    for new, old in ((write_csv, csv_per_row), (write_json, json_per_row)):
        text, n = written(new, columns, rows)
        assert n == len(rows)
        assert text == old(columns, rows), new.__name__
    for fmt in ("csv", "json"):
        out = io.StringIO()
        assert write_rows(fmt, columns, iter(rows), out) == len(rows)


STRINGS = ["", " ", "a", "a,b", 'say "hi"', '"', "line\nbreak", "cr\rhere", "crlf\r\n", "tab\there",
           "\x00nul", "é ü 中文", "\u2028sep", "emoji 🙂", "back\\slash", ",", "\n", "NULL", "\\N",
           "{\"k\": 1}", "a\x1fb", "trailing ", "}", "{", ": "]
FLOATS = [0.0, -0.0, 0.1, 1.5, -2.25, 1e300, 5e-324, 12.598212530000001, 1e16, 123456789.0,
          math.inf, -math.inf, math.nan]
INTS = [0, 1, -1, 2**31, -(2**63), 2**63 - 1]
OTHER = [True, False, dt.date(2024, 2, 29)]


def random_rows(rng: random.Random, width: int, n: int, pools: list[list]) -> list[tuple]:
    return [tuple(rng.choice(pools[c]) if rng.random() > 0.1 else None for c in range(width))
            for _ in range(n)]


def test_2a_shaped_result_is_unchanged():
    rng = random.Random(2)
    rows = [(f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(10)}",
             rng.random() * 20 if i % 97 else None) for i in range(3 * writers.CHUNK + 17)]
    check(["SUBSTR(sourceIP, 1, 8)", "SUM(adRevenue)"], rows)


def test_2a_on_the_tiny_data_is_unchanged(session, tiny):
    cols = ("sourceIP STRING, destURL STRING, visitDate DATE, adRevenue DOUBLE, userAgent STRING, "
            "countryCode STRING, languageCode STRING, searchWord STRING, duration INT")
    list(session.execute(f"CREATE EXTERNAL TABLE uv ({cols}) LOCATION '{tiny / 'uservisits'}'"))
    for sql in ("SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)",
                "SELECT * FROM uv"):
        res = list(session.execute(sql))[-1]
        rows = list(res.rows)
        res.close()
        assert len(rows) > 1000
        check(res.columns, rows)


@pytest.mark.parametrize("seed", range(6))
def test_random_rows_are_unchanged(seed):
    rng = random.Random(seed)
    pools = [STRINGS, FLOATS, INTS, STRINGS + FLOATS + INTS + OTHER]
    width = rng.randint(1, 5)
    per_column = [rng.choice(pools) for _ in range(width)]
    rows = random_rows(rng, width, rng.choice([0, 1, 5, writers.CHUNK + 3]), per_column)
    check([f"c{i}" for i in range(width)], rows)


@pytest.mark.parametrize("columns", [["a", "a"], ["x"], ['we"ird, name', "é\n"], ["", "k"]])
def test_odd_column_names(columns):
    rng = random.Random(len(columns))
    rows = random_rows(rng, len(columns), writers.CHUNK + 5, [STRINGS + FLOATS + OTHER] * len(columns))
    check(columns, rows)


def test_booleans_only_in_some_chunks():
    rows = [("a", 1.0)] * writers.CHUNK + [("b", True), ("c", False)] + [("d", None)] * 3
    check(["k", "v"], rows)
    assert written(write_csv, ["k", "v"], rows)[0].endswith("b,true\nc,false\nd,\nd,\nd,\n")


def test_single_column_empty_and_null_are_quoted_as_before():
    check(["s"], [("",), (None,), ("x",), ("",)])
    assert written(write_csv, ["s"], [("",), (None,)])[0] == 's\n""\n""\n'


def test_rows_of_other_lengths_and_nested_values():
    """Not what a query gives, but the JSON writer still matches the old one."""
    check(["a", "b"], [("x",), ("y", 1, 2), ("z", 3)])
    check(["a", "b"], [("x", [1, "\x00", 2]), ("y", {"k": None})])
    check(["a"], [])


class Batches:
    """Rows that offer column batches, as the driver's result rows do."""

    def __init__(self, batches: list[list]) -> None:
        self.batches = batches
        self.taken = False

    def column_batches(self):
        self.taken = True
        return iter(self.batches)

    def __iter__(self):
        return iter(rows_of(self.batches))


def rows_of(batches: list[list]) -> list[tuple]:
    return [r for cols in batches for r in zip(*cols)]


COLUMN_BATCHES = [
    [["a", "b"], array("d", [1.5, -0.0])],                        # a pair batch
    [["x", None], array("q", [2**62, -1])],
    [["a,b", 'q"'], array("d", [math.inf, math.nan])],             # needs quoting
    [["line\nbreak", "cr\r"], array("d", [0.1, 2.0])],
    [["t", "u"], [True, None]],                                    # booleans
    [["s", ""], [None, 12.598212530000001]],                       # NULL numbers
    [[None, None], [1, None]],
    [[dt.date(2024, 1, 2), "x"], [1, 2]],                          # a type csv spells itself
    [["é 中", "\x00"], [5e-324, 1e300]],
    [[], []],
]


def test_column_batches_write_what_rows_write():
    rows = Batches(COLUMN_BATCHES)
    text, n = written(write_csv, ["k", "v"], rows)
    assert rows.taken and n == len(rows_of(COLUMN_BATCHES))
    assert text == csv_per_row(["k", "v"], rows_of(COLUMN_BATCHES))


@pytest.mark.parametrize("batches", [[[["", "a"]]], [[["x", "y"]]], [[[None]]], [[array("d", [1.0])]]])
def test_one_column_batches(batches):
    rows = Batches(batches)
    assert written(write_csv, ["c"], rows)[0] == csv_per_row(["c"], rows_of(batches))


def test_other_quoting_ignores_column_batches():
    rows = Batches(COLUMN_BATCHES)
    out = io.StringIO()
    writers.write_delimited(["k", "v"], rows, out, quoting=csv.QUOTE_ALL)
    assert not rows.taken and out.getvalue().startswith('"k","v"\n"a","1.5"\n')


class Spy:
    """Rows that record whether the writer got column batches from them."""

    def __init__(self, rows) -> None:
        self.rows = rows
        self.taken = None

    def column_batches(self):
        self.taken = self.rows.column_batches()
        return self.taken

    def __iter__(self):
        return iter(self.rows)


def test_result_rows_as_column_batches(session, tiny):
    """The driver's rows: pair batches (2a), JSON batches (several columns),
    and ordered results that are read row by row."""
    cols = ("sourceIP STRING, destURL STRING, visitDate DATE, adRevenue DOUBLE, userAgent STRING, "
            "countryCode STRING, languageCode STRING, searchWord STRING, duration INT")
    list(session.execute(f"CREATE EXTERNAL TABLE uv ({cols}) LOCATION '{tiny / 'uservisits'}'"))
    for sql, batched in [
            ("SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 8)", True),
            ("SELECT countryCode, COUNT(*), MAX(adRevenue), MIN(searchWord) FROM uv GROUP BY countryCode",
             True),
            ("SELECT sourceIP, destURL, adRevenue, duration, userAgent FROM uv", True),
            ("SELECT countryCode, SUM(duration) FROM uv GROUP BY countryCode ORDER BY 2 DESC", False),
            ("SELECT sourceIP, adRevenue FROM uv LIMIT 10", False)]:
        first, second = (list(session.execute(sql))[-1] for _ in range(2))
        want = csv_per_row(first.columns, list(first.rows))
        spy = Spy(second.rows)
        got, n = written(write_csv, second.columns, spy)
        first.close()
        second.close()
        assert got == want and n == want.count("\n") - 1  # (no field holds a newline)
        assert (spy.taken is not None) == batched
    res = list(session.execute("SELECT sourceIP FROM uv"))[-1]
    next(iter(res.rows))
    assert res.rows.column_batches() is None  # reading has begun: rows only
    res.close()
