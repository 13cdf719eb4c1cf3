"""Differential testing against DuckDB on the same files.

``Tables`` writes fixture files, registers each as an sqlmr external table and
as a DuckDB view that reads the same bytes with sqlmr's text semantics
(every field read as text, then TRY_CAST: a field that does not parse is NULL,
missing trailing fields are NULL, ``\\N`` is NULL, extra fields are ignored).
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import os
import random
import string
from pathlib import Path

DUCK_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
              "date": "DATE", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP"}

# Hive's TIMESTAMP text (runtime.sqlfuncs.parse_timestamp); DuckDB's cast reads
# more (a time without seconds, a zone), so its view casts only what Hive reads.
HIVE_TIMESTAMP = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                  r"|T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?")

UV_COLUMNS = [("sourceIP", "string"), ("destURL", "string"), ("visitDate", "date"),
              ("adRevenue", "double"), ("userAgent", "string"), ("countryCode", "string"),
              ("languageCode", "string"), ("searchWord", "string"), ("duration", "int")]
RK_COLUMNS = [("pageURL", "string"), ("pageRank", "int"), ("avgDuration", "int")]


def duck():
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    return con


class Tables:
    def __init__(self, session, root: Path) -> None:
        self.session = session
        self.root = root
        self.con = duck()

    def add(self, name: str, columns: list[tuple[str, str]], files: dict[str, bytes],
            delimiter: str = ",", crlf: bool = False) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        cols = ", ".join(f"{n} {t.upper()}" for n, t in columns)
        delim_sql = delimiter if delimiter != "\t" else "\\t"
        list(self.session.execute(
            f"CREATE EXTERNAL TABLE {name} ({cols}) ROW FORMAT DELIMITED FIELDS TERMINATED BY "
            f"'{delim_sql}' LOCATION '{folder}'"))
        plain = [f for f in files if not f.endswith(".gz")]
        gz = [f for f in files if f.endswith(".gz")]
        colspec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n, _ in columns) + "}"
        nl = ", new_line='\\r\\n'" if crlf else ""
        reads = []
        for group, compression in ((plain, "none"), (gz, "gzip")):
            if group:
                paths = "[" + ", ".join(f"'{folder / f}'" for f in group) + "]"
                reads.append(
                    f"SELECT * FROM read_csv({paths}, header=false, delim='{delimiter}', "
                    f"quote='', escape='', columns={colspec}, nullstr='\\N', null_padding=true, "
                    f"strict_mode=false, auto_detect=false, compression='{compression}'{nl})")
        # Text first, then TRY_CAST from a materialised table: DuckDB pushes a cast
        # over read_csv into the reader, where a bad field is an error, not NULL.
        self.con.execute(f"CREATE OR REPLACE TABLE raw_{name} AS " + " UNION ALL ".join(reads))
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {typed_columns(columns)} FROM raw_{name}")
        return folder

    def sqlmr(self, sql: str) -> list[list]:
        results = list(self.session.execute(sql))
        res = results[-1]
        try:
            return [list(r) for r in res.rows]
        finally:
            for r in results:
                r.close()

    def duckdb(self, sql: str) -> list[list]:
        return [[_norm(v) for v in r] for r in self.con.execute(sql).fetchall()]

    def check(self, sql: str, duck_sql: str | None = None, ordered: bool | None = None) -> list[list]:
        """Assert sqlmr and DuckDB agree; returns sqlmr's rows."""
        got = [[_norm(v) for v in r] for r in self.sqlmr(sql)]
        want = self.duckdb(duck_sql or sql)
        if ordered is None:
            ordered = "order by" in sql.lower()
        assert_same(got, want, ordered)
        return got


def typed_columns(columns: list[tuple[str, str]]) -> str:
    return ", ".join(_typed(n, t) for n, t in columns)


def _typed(n: str, t: str) -> str:
    if t == "string":
        return n
    if t == "timestamp":
        return (f"CASE WHEN regexp_full_match(trim({n}), '{HIVE_TIMESTAMP}') "
                f"THEN TRY_CAST(trim({n}) AS TIMESTAMP) END AS {n}")
    return f"TRY_CAST({n} AS {DUCK_TYPES[t]}) AS {n}"


def hive_timestamp_text(v: dt.datetime) -> str:
    """A timestamp as Hive prints it: no fraction when zero, else no trailing zeros."""
    text = f"{v.year:04d}-{v:%m-%d %H:%M:%S}"
    return text + (f".{v.microsecond:06d}".rstrip("0") if v.microsecond else "")


def _norm(v):
    if isinstance(v, dt.datetime):
        return hive_timestamp_text(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if hasattr(v, "as_integer_ratio") and not isinstance(v, (int, float)):
        return float(v)  # Decimal
    return v


def _key(row):
    return tuple((0, "") if v is None else (1, round(v, 6)) if isinstance(v, float)
                 else (1, v) if isinstance(v, (int, bool)) else (2, str(v)) for v in row)


def _digits(text: str) -> str:
    """The significant digits of a number's text (no sign, point, exponent or
    leading and trailing zeros)."""
    mantissa = text.lower().lstrip("+-").split("e")[0]
    return mantissa.replace(".", "").strip("0")


def same_float_text(a: str, b: str) -> bool:
    """Two texts of doubles that are the shortest prints of two values a
    rounding apart: what ``CAST(SUM(x) AS STRING)`` gives when the engines
    add in different orders (SQL leaves the order open; a DOUBLE sum's last
    bits follow it: a few ulps).  Not the same: one value spelled two ways, a
    print that drops digits, different signs.

    >>> same_float_text("17.40952390560895", "17.409523905608957")
    True
    >>> same_float_text("17.40952390560895", "17.4095239056090"), same_float_text("0.0", "-0.0")
    (False, False)
    >>> same_float_text("1.5", "1.50"), same_float_text("2.0", "2.5")
    (False, False)
    """
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if x == y or not (math.isfinite(x) and math.isfinite(y)) \
            or math.copysign(1.0, x) != math.copysign(1.0, y):
        return False
    shortest = all(_digits(t) == _digits(repr(v)) for t, v in ((a, x), (b, y)))
    return shortest and abs(x - y) <= 8 * math.ulp(max(abs(x), abs(y)))


def same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str) and a != b:
        return same_float_text(a, b)
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, str) or isinstance(b, str):
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def assert_same(got: list[list], want: list[list], ordered: bool) -> None:
    assert len(got) == len(want), f"row count: sqlmr {len(got)} vs duckdb {len(want)}"
    if not ordered:
        got = sorted(got, key=_key)
        want = sorted(want, key=_key)
    for i, (g, w) in enumerate(zip(got, want)):
        assert len(g) == len(w), f"row {i}: width {len(g)} vs {len(w)}"
        assert all(same_value(a, b) for a, b in zip(g, w)), f"row {i}: sqlmr {g} != duckdb {w}"


# ------------------------------------------------------------------ fixtures

def uservisits_lines(n: int, seed: int, nulls: float = 0.0) -> list[str]:
    """uservisits-shaped rows with a controllable share of ``\\N`` fields."""
    rnd = random.Random(seed)
    countries = ["USA", "DEU", "FRA", "BRA", "IND", "CHN", "JPN"]
    words = ["alpha", "beta", "gamma", "delta", "x'y", "per%cent", "under_score", "O'Brien"]
    lines = []
    for _ in range(n):
        f = [
            f"{rnd.randint(1, 30)}.{rnd.randint(0, 254)}.{rnd.randint(0, 20)}.{rnd.randint(1, 254)}",
            "".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 12))),
            (dt.date(1970, 1, 1) + dt.timedelta(days=rnd.randint(0, 15455))).isoformat(),
            repr(rnd.random()) if rnd.random() > 0.05 else f"{rnd.random():.3e}",
            rnd.choice(["Mozilla/5.0 (X11; Linux)", "Opera/9.0", "curl/7.1"]),
            rnd.choice(countries),
            rnd.choice(countries) + "-" + rnd.choice(["EN", "DE", "FR"]),
            rnd.choice(words),
            str(rnd.randint(1, 10)),
        ]
        for i in range(len(f)):
            if nulls and rnd.random() < nulls:
                f[i] = "\\N"
        lines.append(",".join(f))
    return lines


def rankings_lines(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"{''.join(rnd.choices(string.ascii_lowercase, k=rnd.randint(10, 40)))},"
            f"{int(rnd.paretovariate(0.8))},{rnd.randint(1, 99)}" for _ in range(n)]


def as_bytes(lines: list[str], crlf: bool = False, final_newline: bool = True) -> bytes:
    nl = "\r\n" if crlf else "\n"
    text = nl.join(lines) + (nl if final_newline else "")
    return text.encode("utf-8")


def gz_bytes(lines: list[str]) -> bytes:
    return gzip.compress(as_bytes(lines), mtime=0)
