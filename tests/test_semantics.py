"""Hive semantics written down: each test holds one rule, checked against
DuckDB where DuckDB agrees with Hive, and against the expected answer where it
does not (or where DuckDB would accept what Hive reads as NULL)."""

from __future__ import annotations

import pytest

from difftest import Tables

T2 = [("k", "string"), ("i", "int"), ("d", "double")]


@pytest.fixture
def tables(session, tmp_path) -> Tables:
    """t2 = a,7,NULL / b,NULL,7.0 / c,NULL,2.5; t3 one STRING column."""
    t = Tables(session, tmp_path)
    t.add("t2", T2, {"d.txt": b"a,7,\\N\nb,\\N,7.0\nc,\\N,2.5\n"})
    t.add("t3", [("s", "string")], {"d.txt": b"1\n2\n1.0\nx\n\\N\n"})
    return t


def rows(t: Tables, sql: str) -> list[list]:
    return t.sqlmr(sql)


# ------------------------------------------------------------------------ IN

def test_in_list_converts_the_column_as_equality_does(tables):
    # a STRING compared with numbers compares as DOUBLE, in a list as with '='
    assert rows(tables, "SELECT s FROM t3 WHERE s IN (1, 2) ORDER BY s") == [["1"], ["1.0"], ["2"]]
    assert rows(tables, "SELECT s FROM t3 WHERE s = 1 OR s = 2 ORDER BY s") == [["1"], ["1.0"], ["2"]]
    got = rows(tables, "SELECT s, s IN (1, 2), s NOT IN (1, 2), s IN (1, NULL), s NOT IN (2, NULL) "
                       "FROM t3 ORDER BY s")
    assert got == [[None, None, None, None, None],
                   ["1", True, False, True, None],
                   ["1.0", True, False, True, None],
                   ["2", True, False, None, False],
                   ["x", None, None, None, None]]


def test_in_list_item_that_does_not_convert_is_null(tables):
    got = rows(tables, "SELECT k, i IN ('7', 'x'), i NOT IN ('8', 'x') FROM t2 ORDER BY k")
    assert got == [["a", True, None], ["b", None, None], ["c", None, None]]


# -------------------------------------------------------------------- SUBSTR

# (text, start, length, Hive's answer): a start before the first or after the
# last character gives '' (Hive's UDFSubstr; DuckDB clips instead), 0 acts as
# 1, a length <= 0 gives '', a NULL argument gives NULL.
SUBSTR_CASES = [
    ("ab", -3, 1, ""), ("hello", -10, 3, ""), ("hello", -5, 2, "he"), ("hello", -2, None, "lo"),
    ("hello", 0, 2, "he"), ("hello", 0, None, "hello"), ("hello", 6, None, ""),
    ("hello", 5, 9, "o"), ("hello", 2, -1, ""), ("hello", 2, 0, ""), ("abc", 2, "NULL", None),
    ("abc", "NULL", 1, None), ("", 1, 1, ""), ("", -1, None, ""),
]


@pytest.mark.parametrize("text, start, length, want", SUBSTR_CASES)
def test_substr_follows_hive(tables, text, start, length, want):
    typed = lambda v: f"CAST({v} AS INT)"  # noqa: E731  (a typed NULL, as a column would be)
    args = f"'{text}', {typed(start)}" + ("" if length is None else f", {typed(length)}")
    lits = f"'{text}', {start}" + ("" if length is None else f", {length}")
    got = rows(tables, f"SELECT SUBSTR({args}), SUBSTR({lits}) FROM t2 WHERE k = 'a'")
    assert got == [[want, want]]


def test_substr_over_columns_matches_duckdb_where_they_agree(tables):
    # starts inside the text and positive lengths mean the same in both
    tables.check("SELECT k, SUBSTR(CONCAT(k, 'xyz'), 2, 2), SUBSTR(CONCAT(k, 'xyz'), -3), "
                 "SUBSTR(CONCAT(k, 'xyz'), -4, 3), SUBSTR(k, 1, 5) FROM t2")


# ------------------------------------------- types of COALESCE / IF / CASE

def test_branches_of_mixed_numbers_are_double(tables):
    # Hive types these DOUBLE whatever the first argument's type
    tables.check("SELECT k, COALESCE(i, d), NVL(i, d), IF(k = 'a', i, d), "
                 "CASE WHEN k = 'a' THEN i ELSE d END, CAST(COALESCE(i, d) AS STRING), "
                 "CAST(IF(k = 'a', i, d) AS STRING), CAST(CASE k WHEN 'a' THEN i ELSE d END AS STRING) "
                 "FROM t2", "SELECT k, COALESCE(i, d), IFNULL(i, d), IF(k = 'a', i, d), "
                 "CASE WHEN k = 'a' THEN i ELSE d END, CAST(COALESCE(i, d) AS STRING), "
                 "CAST(IF(k = 'a', i, d) AS STRING), CAST(CASE k WHEN 'a' THEN i ELSE d END AS STRING) "
                 "FROM t2")
    # DuckDB's CAST to INT rounds; Hive's truncates toward zero
    got = rows(tables, "SELECT k, CAST(COALESCE(i, d) AS INT), CAST(COALESCE(i, d) AS STRING) "
                       "FROM t2 ORDER BY k")
    assert got == [["a", 7, "7.0"], ["b", 7, "7.0"], ["c", 2, "2.5"]]
    assert all(isinstance(r[1], float) for r in rows(tables, "SELECT k, COALESCE(i, d) FROM t2"))


def test_branches_of_numbers_and_text_are_text(tables):
    got = rows(tables, "SELECT k, COALESCE(i, k), CASE k WHEN 'b' THEN 'x' ELSE d END FROM t2 ORDER BY k")
    assert got == [["a", "7", None], ["b", "b", "x"], ["c", "c", "2.5"]]
    with pytest.raises(Exception, match="COALESCE mixes BOOLEAN and INT"):
        rows(tables, "SELECT COALESCE(i, k = 'a') FROM t2")


def test_case_subject_compares_as_equality(tables):
    got = rows(tables, "SELECT s, CASE s WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'other' END, "
                       "CASE s WHEN NULL THEN 1 ELSE 0 END FROM t3 ORDER BY s")
    assert got == [[None, "other", 0], ["1", "one", 0], ["1.0", "one", 0], ["2", "two", 0],
                   ["x", "other", 0]]
    tables.check("SELECT k, CASE i WHEN 7 THEN 'seven' ELSE 'no' END, "
                 "CASE d WHEN 7 THEN 'seven' WHEN 2.5 THEN 'half' END FROM t2")


# ------------------------------------------------- equal keys, one reducer

@pytest.mark.parametrize("reducers", [2, 3, 4, 5, 7])
def test_equal_keys_of_different_spellings_meet_in_one_group(session, tmp_path, reducers):
    from difftest import gz_bytes
    t = Tables(session, tmp_path)
    # a .gz file is a map task of its own: equal keys come from different maps
    t.add("t7", T2, {"p0": b"a,1,0.0\nb,7,7.0\n", "p1.gz": gz_bytes(["c,2,-0.0", "d,\\N,7"])})
    session.settings.reducers = reducers
    assert sorted(rows(t, "SELECT d, COUNT(*) FROM t7 GROUP BY d")) == [[0.0, 2], [7.0, 2]]
    assert sorted(rows(t, "SELECT COALESCE(i, d), COUNT(*) FROM t7 GROUP BY COALESCE(i, d)")) == [
        [1.0, 1], [2.0, 1], [7.0, 2]]
    t.check("SELECT a.k, b.k FROM t7 a JOIN t7 b ON a.i = b.d")


# ----------------------------------------------------------- SUM, AVG of -0.0

@pytest.mark.parametrize("reducers", [1, 3])
def test_a_sum_or_average_of_negative_zeros_is_positive_zero(session, tmp_path, reducers):
    """Hive's SUM and AVG start at +0.0, and +0.0 + -0.0 is +0.0: a sum is
    never -0.0 (DuckDB agrees), whichever path a group takes (the first row,
    a NULL before it, a scalar aggregate, partial sums of several maps).
    MIN keeps the -0.0 it read."""
    from difftest import gz_bytes
    session.settings.reducers = reducers
    t = Tables(session, tmp_path)
    t.add("tz", T2, {"p0": b"a,1,-0.0\na,2,-0.0\nb,3,\\N\nb,4,-0.0\nc,5,1.5\nc,6,-1.5\n",
                     "p1.gz": gz_bytes(["a,7,-0.0", "d,8,-0.0"])})
    got = rows(t, "SELECT k, CAST(SUM(d) AS STRING), CAST(AVG(d) AS STRING), CAST(MIN(d) AS STRING) "
                  "FROM tz GROUP BY k ORDER BY k")
    assert got == [["a", "0.0", "0.0", "-0.0"], ["b", "0.0", "0.0", "-0.0"],
                   ["c", "0.0", "0.0", "-1.5"], ["d", "0.0", "0.0", "-0.0"]]
    assert rows(t, "SELECT CAST(SUM(d) AS STRING), CAST(AVG(d) AS STRING) FROM tz WHERE k IN ('a', 'd')") \
        == [["0.0", "0.0"]]
    t.check("SELECT k, CAST(SUM(d) AS STRING), CAST(AVG(d) AS STRING), COUNT(d) FROM tz GROUP BY k")


# ---------------------------------------------------------------- NaN order

@pytest.mark.parametrize("reducers", [1, 3])
def test_nan_orders_above_every_number(session, tmp_path, reducers):
    """A DOUBLE field "NaN" reads as NaN (Java's parseDouble). Hive orders
    doubles by ``Double.compare``: NaN above every number, Infinity included.
    So ORDER BY puts NaN last ascending and first descending, MAX is NaN once
    one is read, and MIN is NaN only when every value is (DuckDB agrees). A
    NaN compares false with everything in Python, so without that rank it
    left the rows around it out of order."""
    from difftest import gz_bytes
    session.settings.reducers = reducers
    t = Tables(session, tmp_path)
    t.add("tn", T2, {"p0": b"a,1,NaN\na,2,1.0\na,3,2.0\nb,4,1.0\nb,5,NaN\nb,6,Infinity\n",
                     "p1.gz": gz_bytes(["c,7,NaN", "c,8,\\N", "d,9,-1.0", "a,10,0.5", "b,11,NaN"])})
    nan = float("nan")
    got = rows(t, "SELECT i, d FROM tn ORDER BY d, i")
    want = [[8, None], [9, -1.0], [10, 0.5], [2, 1.0], [4, 1.0], [3, 2.0], [6, float("inf")],
            [1, nan], [5, nan], [7, nan], [11, nan]]
    assert str(got) == str(want)
    assert str(rows(t, "SELECT i, d FROM tn ORDER BY d DESC, i LIMIT 5")) == str(
        [[1, nan], [5, nan], [7, nan], [11, nan], [6, float("inf")]])
    assert str(rows(t, "SELECT k, MIN(d), MAX(d) FROM tn GROUP BY k ORDER BY k")) == str(
        [["a", 0.5, nan], ["b", 1.0, nan], ["c", nan, nan], ["d", -1.0, -1.0]])
    assert str(rows(t, "SELECT MIN(d), MAX(d) FROM tn")) == str([[-1.0, nan]])
    assert str(rows(t, "SELECT MIN(d), MAX(d) FROM tn WHERE d < 100")) == str([[-1.0, 2.0]])
    t.check("SELECT i, d FROM tn ORDER BY d DESC, i", ordered=True)
    t.check("SELECT k, MIN(d), MAX(d), COUNT(d) FROM tn GROUP BY k ORDER BY k", ordered=True)


# ---------------------------------------------------------------------- LIKE

def test_like_on_a_number_matches_its_text(tables):
    assert rows(tables, "SELECT k FROM t2 WHERE i LIKE '7%'") == [["a"]]
    assert rows(tables, "SELECT k FROM t2 WHERE d LIKE '%.5'") == [["c"]]
    assert rows(tables, "SELECT k, i NOT LIKE '_', d LIKE CONCAT('7', '%') FROM t2 ORDER BY k") == [
        ["a", False, None], ["b", None, True], ["c", None, False]]


# ------------------------------------------------------------------ literals

def test_literals_out_of_float_range_or_very_long_are_valid_code(tables):
    got = rows(tables, "SELECT d * 1e400, -1e400 * d, d * 1e400 - d * 1e400 FROM t2 WHERE k = 'c'")
    assert got[0][0] == float("inf") and got[0][1] == float("-inf") and got[0][2] != got[0][2]
    big = "9" * 5000
    got = rows(tables, f"SELECT {big} > d, d < {big}, {big} FROM t2 WHERE k = 'c'")
    assert got == [[True, True, float("inf")]]
    got = rows(tables, "SELECT 99999999999 + i, 9223372036854775807, 99999999999999999999 FROM t2 WHERE k = 'a'")
    assert got == [[100000000006, 9223372036854775807, 1e20]]
    assert rows(tables, "SELECT k FROM t2 WHERE k = 'c' AND d IN (2.5, 1e400)") == [["c"]]
    assert rows(tables, "SELECT s FROM t3 WHERE s = 1e400") == []


# --------------------------------------------- valid queries, not refused

def test_group_by_a_parenthesised_expression(tables):
    tables.check("SELECT (i + 1) AS x, COUNT(*) FROM t2 GROUP BY (i + 1)")
    tables.check("SELECT (i + 1) * 2 AS x, COUNT(*) FROM t2 GROUP BY i + 1")


def test_order_by_an_expression_of_an_output_alias(tables):
    tables.check("SELECT k, i FROM t2 ORDER BY i * 2 DESC NULLS LAST, k")
    tables.check("SELECT k, COUNT(*) AS n FROM t2 GROUP BY k ORDER BY n * 2, k DESC")
    tables.check("SELECT DISTINCT k = 'a' AS b, k FROM t2 ORDER BY k = 'a', 2")


def test_order_by_output_alias_wins_over_an_input_column(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("rk", [("pageURL", "string"), ("pageRank", "int")], {"d": b"u1,3\nu2,1\nu3,2\n"})
    sql = ("SELECT A.pageRank AS pageURL FROM rk A JOIN rk B ON A.pageURL = B.pageURL "
           "ORDER BY pageURL")
    assert t.check(sql) == [[1], [2], [3]]
    assert t.check("SELECT pageRank AS pageURL, pageURL AS u FROM rk ORDER BY pageURL DESC") == [
        [3, "u1"], [2, "u3"], [1, "u2"]]
    with pytest.raises(Exception, match="ambiguous"):  # outside ORDER BY the alias is not visible
        t.sqlmr("SELECT A.pageRank AS pageURL FROM rk A JOIN rk B ON A.pageURL = B.pageURL "
                "WHERE pageURL = 'u1'")


# ---------------------------------------------------- casts with parameters

def test_cast_to_decimal_rounds_half_up_to_its_scale(tables):
    tables.check("SELECT k, CAST(2.555 AS DECIMAL(10,2)), CAST(d AS DECIMAL(10,0)), "
                 "CAST(-0.145 AS DECIMAL(5,2)), CAST('12.345' AS DECIMAL(5,2)) FROM t2")
    # Hive: DECIMAL alone is DECIMAL(10,0); too many integer digits is NULL (DuckDB: an error)
    got = rows(tables, "SELECT k, CAST(d AS DECIMAL), CAST(d AS DECIMAL(2,1)), "
                       "CAST(123.4 AS DECIMAL(4,2)) FROM t2 ORDER BY k")
    assert got == [["a", None, None, None], ["b", 7.0, 7.0, None], ["c", 3.0, 2.5, None]]


def test_cast_to_varchar_keeps_its_length(tables):
    got = rows(tables, "SELECT CAST('abcdef' AS VARCHAR(3)), CAST(CAST(k AS VARCHAR(5)) AS VARCHAR(1)), "
                       "CAST(CONCAT(k, 'xyz') AS VARCHAR(2)), CAST(i AS VARCHAR(1)), "
                       "CAST(k AS STRING) FROM t2 ORDER BY k")
    assert got == [["abc", "a", "ax", "7", "a"], ["abc", "b", "bx", None, "b"],
                   ["abc", "c", "cx", None, "c"]]
    with pytest.raises(Exception, match=r"CAST to CHAR\(3\)"):
        rows(tables, "SELECT CAST(k AS CHAR(3)) FROM t2")


# --------------------------------------------- numbers and dates as Hive reads them

# (text, INT, BIGINT, DOUBLE) as Hive reads a field (Integer.parseInt,
# Long.parseLong, Double.parseDouble: Java's parsers; NULL is None).  Java
# trims characters <= ' ' around a DOUBLE, never around an integer.
NUMERALS = [
    ("7", 7, 7, 7.0), ("-7", -7, -7, -7.0), ("+7", 7, 7, 7.0), ("007", 7, 7, 7.0),
    ("2147483647", 2147483647, 2147483647, 2147483647.0), ("-2147483648", -2147483648, -2147483648, -2147483648.0),
    ("2147483648", None, 2147483648, 2147483648.0), ("99999999999", None, 99999999999, 99999999999.0),
    ("9223372036854775808", None, None, 9223372036854775808.0),
    ("1_000", None, None, None), (" 7 ", None, None, 7.0), ("\t7", None, None, 7.0),
    ("\uff11\uff12", None, None, None), ("1.5", None, None, 1.5), ("1.5d", None, None, 1.5),
    (".5", None, None, 0.5), ("5.", None, None, 5.0), ("1e3", None, None, 1000.0),
    ("0x1.8p1", None, None, 3.0), ("1e400", None, None, float("inf")),
    ("inf", None, None, None), ("nan", None, None, None), ("infinity", None, None, None),
    ("Infinity", None, None, float("inf")), ("-Infinity", None, None, float("-inf")),
    ("1,5", None, None, None), ("", None, None, None), ("\u00a07", None, None, None),
]


@pytest.mark.parametrize("block_bytes", [0, 24], ids=["one block", "a block a line"])
def test_fields_parse_as_hive_reads_them(session, tmp_path, block_bytes):
    """With a block a line, the ASCII lines are plain blocks, whose fast path
    leaves out the ASCII test (see SplitReader.block_plain)."""
    session.settings.block_bytes = block_bytes
    t = Tables(session, tmp_path)
    lines = [f"{n}|{text}|{text}|{text}" for n, (text, *_) in enumerate(NUMERALS)]
    t.add("nums", [("n", "int"), ("i", "int"), ("b", "bigint"), ("d", "double")],
          {"d.txt": "\n".join(lines).encode() + b"\n"}, delimiter="|")
    got = {r[0]: r[1:] for r in t.sqlmr("SELECT n, i, b, d FROM nums")}
    for n, (text, i, b, d) in enumerate(NUMERALS):
        assert got[n] == [i, b, d], f"{text!r}: read {got[n]}, Hive reads {[i, b, d]}"
    # out-of-range integers are NULL, so they are not summed
    assert t.sqlmr("SELECT SUM(i), COUNT(i), COUNT(b) FROM nums") == [
        [sum(r[1] for r in NUMERALS if r[1] is not None), sum(r[1] is not None for r in NUMERALS),
         sum(r[2] is not None for r in NUMERALS)]]


@pytest.mark.parametrize("block_bytes", [0, 8], ids=["one block", "a block a line"])
def test_the_null_text_is_null_in_plain_and_other_blocks(session, tmp_path, block_bytes):
    """A block without the NULL text's first character is plain: its fast path
    does not test STRING fields for NULL.  Every other block's does."""
    session.settings.block_bytes = block_bytes
    t = Tables(session, tmp_path)
    t.add("s", [("k", "string"), ("v", "double")],
          {"d.txt": "a,1\n\\N,2\nb\\,3\n\\N,4\né,5\n".encode()})
    assert t.sqlmr("SELECT k, SUM(v) FROM s GROUP BY k ORDER BY k") == [
        [None, 6.0], ["a", 1.0], ["b\\", 3.0], ["é", 5.0]]
    assert t.sqlmr("SELECT COUNT(k), COUNT(*) FROM s") == [[3, 5]]


def test_dates_are_yyyy_mm_dd_with_ascii_digits(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("dates", [("k", "string"), ("v", "date")],
          {"d.txt": "a,2020-01-02\nb,2_20-01-01\nc,\uff12\uff10\uff12\uff10-01-01\nd,2020-1-02\n"
                    "e,2021-02-29\nf,2020-02-29\n".encode()})
    assert t.sqlmr("SELECT k, v FROM dates ORDER BY v, k") == [
        ["b", None], ["c", None], ["d", None], ["e", None], ["a", "2020-01-02"], ["f", "2020-02-29"]]
    session.settings.strict = True
    with pytest.raises(Exception, match="2_20-01-01"):
        t.sqlmr("SELECT COUNT(v) FROM dates")


def test_fast_path_checks_accept_only_what_hive_reads():
    """A field the generated fast path accepts (int() / float() and the type's
    check) is read by the Java-exact parser as the same value."""
    from compiler.schema import fast_check
    from runtime import sqlfuncs as F
    texts = [r[0] for r in NUMERALS] + ["0", "-0", "1_0", "7 ", "+", "-", "1e", "\u0661", "NaN",
                                        "-nan", "1E5", "١٢", "12\u2003", "0.0", "-0.0", "1.7976931348623157e308"]
    fast_taken = set()
    for typ, conv, parse in (("int", int, F.parse_int), ("bigint", int, F.parse_bigint),
                             ("double", float, F.parse_double)):
        # the check of a plain block's fields, which are ASCII (SplitReader.block_plain)
        ascii_check = fast_check(typ, "t", "v", ascii_known=True)
        for t in texts:
            try:
                v = conv(t)
            except ValueError:
                continue
            if eval(fast_check(typ, "t", "v"), {"t": t, "v": v}):
                fast_taken.add((typ, t))
                assert parse(t) == v, (typ, t)
            if t.isascii() and eval(ascii_check, {"t": t, "v": v}):
                assert parse(t) == v, (typ, t)
    # the everyday spellings stay on the fast path
    assert {("int", "7"), ("int", "-7"), ("bigint", "99999999999"), ("double", "1.5"),
            ("double", "-7"), ("double", "1e3"), ("double", "0.0")} <= fast_taken


def test_order_by_an_output_that_is_a_number_is_not_a_position(tables):
    """ORDER BY 3 over a constant output, or an alias of a constant, sorts by
    that output: the constant is never read again as a position (found by the
    random query generator, seeds 35 and 77 over the AMPLab tables)."""
    assert rows(tables, "SELECT 3, k, 100.5 AS c2 FROM t2 ORDER BY 2 DESC, 1, 3") == \
        [[3, "c", 100.5], [3, "b", 100.5], [3, "a", 100.5]]
    assert rows(tables, "SELECT k, 12 AS c1 FROM t2 ORDER BY c1, k DESC") == \
        [["c", 12], ["b", 12], ["a", 12]]
    assert rows(tables, "SELECT k FROM t2 ORDER BY 2.5, k DESC") == [["c"], ["b"], ["a"]]


def test_between_with_a_null_bound_is_false_when_the_other_bound_rules_out(tables):
    """x BETWEEN lo AND hi is x >= lo AND x <= hi: with lo NULL and x > hi it is
    FALSE, so NOT of it is TRUE (found by the random query generator, seed 375)."""
    got = rows(tables, "SELECT k, i BETWEEN d AND 1, NOT (i BETWEEN d AND 1), i NOT BETWEEN d AND 8, "
                       "d BETWEEN i AND 8.0 FROM t2 ORDER BY k")
    assert got == [["a", False, True, None, None], ["b", None, None, None, None],
                   ["c", None, None, None, None]]
    assert rows(tables, "SELECT k FROM t2 WHERE NOT (i BETWEEN d AND 1)") == [["a"]]
