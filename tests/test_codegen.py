"""Generated code: names that cannot collide, tuples valid at any width, and
empty lines that are never rows (each once a wrong answer or a crash)."""

from __future__ import annotations

import ast
import re

import pytest

from difftest import RK_COLUMNS, UV_COLUMNS, Tables, as_bytes

T2 = [("k", "string"), ("i", "int"), ("d", "double")]


def _module_names(source: str) -> list[str]:
    """Every name the module binds at its top level (imports, assignments, defs)."""
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


# ----------------------------------------------------------- name collisions

@pytest.fixture
def amplab(session, tiny, tmp_path):
    t = Tables(session, tmp_path)
    for name, folder, cols in (("rk", "rankings", RK_COLUMNS), ("uv", "uservisits", UV_COLUMNS)):
        col_sql = ", ".join(f"{n} {ty.upper()}" for n, ty in cols)
        list(session.execute(
            f"CREATE EXTERNAL TABLE {name} ({col_sql}) ROW FORMAT DELIMITED FIELDS "
            f"TERMINATED BY ',' LOCATION '{tiny / folder}'"))
    return t


@pytest.mark.parametrize("broadcast_mb", [0, 32])
def test_join_with_in_null_keeps_the_join_sorted(amplab, session, broadcast_mb):
    # The interned constant of IN (NULL) was named _K0 and replaced the
    # prelude's _K0 = itemgetter(0): the reduce-side join's runs were then
    # "sorted" by a frozenset and the merge join lost half the matches.
    session.settings.broadcast_mb = broadcast_mb
    rows = amplab.sqlmr("SELECT COUNT(*), SUM(u.duration) FROM rk r JOIN uv u "
                         "ON r.pageURL = u.destURL WHERE r.pageRank IN (NULL) OR r.pageRank > 0")
    assert rows == [[10000, 55592]]


def test_module_level_names_are_bound_once(session, tmp_path):
    """No top-level name of a generated module is bound twice (a second binding
    silently replaces the first), however many constants the query interns."""
    from compiler.job import compile_select
    t = Tables(session, tmp_path)
    t.add("t2", T2, {"part-00000": as_bytes(["a,1,1.0"])})
    sql = (f"SELECT a.k, COUNT(*), SUM(b.i) FROM t2 a JOIN t2 b ON a.k = b.k "
           f"WHERE a.i IN (NULL, {', '.join(map(str, range(30)))}) OR a.k LIKE 'x%' "
           f"OR b.k IN ('p', 'q') OR b.d IN (1.5, NULL) GROUP BY a.k ORDER BY a.k")
    assert t.sqlmr(sql) == [["a", 1, 1]]
    table = session.catalog.get("t2")
    for sizes in (None, {"t2": 10}):   # reduce-side, then broadcast
        job = compile_select(sql, {"t2": table}, sizes=sizes, broadcast_bytes=1 << 20)
        names = _module_names(job.source)
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
        consts = [n for n in names if re.fullmatch(r"_C\d+", n)]
        assert len(consts) >= 3  # the IN lists and the LIKE pattern are constants


# ------------------------------------------------------- zero-width tuples

@pytest.fixture
def t2(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("t2", T2, {"part-00000": as_bytes(["a,7,\\N", "b,\\N,7.0", "c,\\N,2.5", "a,1,1.0",
                                             "\\N,3,3.0"])})
    return t


@pytest.mark.parametrize("broadcast_mb", [0, 32])
@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) FROM t2 a LEFT JOIN t2 b ON a.k = b.k",
    "SELECT COUNT(*) FROM t2 a JOIN t2 b ON a.k = b.k",
    "SELECT a.k, COUNT(*) FROM t2 a LEFT JOIN t2 b ON a.k = b.k GROUP BY a.k",
    "SELECT COUNT(*) FROM t2 a LEFT JOIN t2 b ON a.k = b.k LEFT JOIN t2 c ON b.k = c.k",
    "SELECT COUNT(b.i) FROM t2 a LEFT JOIN t2 b ON a.k = b.k",
])
def test_join_sides_that_ship_no_fields(t2, session, sql, broadcast_mb):
    # A broadcast LEFT join whose small side ships no field generated
    # `_K0 = ((,),)` (a SyntaxError) for the row of NULLs it probes with.
    session.settings.broadcast_mb = broadcast_mb
    t2.check(sql)


# --------------------------------------------------------------- empty lines

EMPTY_LINES = ["a,1,2", "", "b,3,4", "\\N,5,6", ",7,8", "", "c", "\r", "d,9,10"]


@pytest.fixture
def t1(session, tmp_path):
    t = Tables(session, tmp_path)
    t.add("t1", RK_COLUMNS, {"part-00000": as_bytes(EMPTY_LINES)})
    # a broadcast side with empty lines too (a string key and nothing else read)
    t.add("s", [("pageURL", "string")], {"part-00000": as_bytes(["", "a", "", "b", ""])})
    return t


@pytest.mark.parametrize("sql, want", [
    ("SELECT COUNT(*) AS n, COUNT(pageURL) AS m FROM t1", [[6, 5]]),
    ("SELECT pageURL FROM t1 ORDER BY pageURL", [[None], [""], ["a"], ["b"], ["c"], ["d"]]),
    ("SELECT COUNT(*) FROM t1 WHERE pageURL = ''", [[1]]),
    ("SELECT pageURL, COUNT(*) FROM t1 GROUP BY pageURL ORDER BY pageURL",
     [[None, 1], ["", 1], ["a", 1], ["b", 1], ["c", 1], ["d", 1]]),
    ("SELECT COUNT(pageRank) FROM t1", [[5]]),
    ("SELECT COUNT(*) FROM t1 a JOIN s b ON a.pageURL = b.pageURL", [[2]]),
    ("SELECT COUNT(*) FROM t1 a LEFT JOIN s b ON a.pageURL = b.pageURL", [[6]]),
    ("SELECT COUNT(*) FROM s a JOIN s b ON a.pageURL = b.pageURL", [[2]]),
])
@pytest.mark.parametrize("broadcast_mb", [0, 32])
def test_empty_lines_are_not_rows(t1, session, sql, want, broadcast_mb):
    # The fast path tested only the STRING fields it read against \N, so an
    # empty line read for one STRING field was a row with pageURL ''.
    session.settings.broadcast_mb = broadcast_mb
    assert t1.sqlmr(sql) == want


TYPE_VALUES = {"string": "x", "int": "1", "bigint": "2", "double": "3.5", "date": "2020-01-02",
               "boolean": "true"}


@pytest.mark.parametrize("typ", sorted(TYPE_VALUES))
def test_empty_lines_are_not_rows_whatever_the_type_read(session, tmp_path, typ):
    """Field 0 alone, of each type: the fast path must not take an empty line
    (a parser that accepted '' would let one through)."""
    t = Tables(session, tmp_path)
    v = TYPE_VALUES[typ]
    t.add("one", [("x", typ)], {"part-00000": as_bytes([v, "", v, "\r", ""])})
    assert t.sqlmr("SELECT COUNT(*), COUNT(x) FROM one") == [[2, 2]]
    assert t.sqlmr("SELECT COUNT(*) FROM one WHERE x IS NULL") == [[0]]


# ------------------------------------------------------------ the allocator

def test_a_name_bound_twice_is_refused_not_rebound():
    """The allocator makes a collision an error at generation time: a task
    entry point that takes a prelude name, or two phases with one entry."""
    from compiler.codegen import NameClash, generate_stages
    from compiler.job import compile_select
    from compiler.schema import Column, Table
    t = Table("t", [Column("k", "string"), Column("i", "int")], "/t")
    job = compile_select("SELECT k, SUM(i) FROM t GROUP BY k", {"t": t})
    assert generate_stages(job.stages).source == job.source
    phases = [job.stages[0].maps[0], job.stages[0].reduce]
    for clash in ("_KEY0", phases[1].entry):
        old = phases[0].entry
        phases[0].entry = clash
        try:
            with pytest.raises(NameClash):
                generate_stages(job.stages)
        finally:
            phases[0].entry = old


def test_constants_and_locals_cannot_take_each_others_names():
    from compiler.codegen.names import LocalNames, ModuleNames, NameClash
    m = ModuleNames()
    m.claim("_load_b0")
    assert m.const("frozenset((None,))") == "_C0"
    loc = LocalNames(m)
    loc.fixed("g", "acc")
    for bad in ("_C0", "_C12", "g", "j3", "_t4_0"):   # constant, local or fresh shapes
        with pytest.raises(NameClash):
            m.claim(bad)
    for bad in ("_load_b0", "_C3", "x9", "_t1_2"):
        with pytest.raises(NameClash):
            loc.fixed(bad)
    assert loc.fresh("j") == "j1" and loc.tmp_prefix() == "_t2_"


def test_rows_read_does_not_count_empty_lines(t1, session):
    """The job's rows-read statistic counts rows, as COUNT(*) does."""
    results = list(session.execute("SELECT COUNT(*) FROM t1"))
    try:
        assert [list(r) for r in results[-1].rows] == [[6]]
        assert results[-1].stats.rows_read == 6
    finally:
        for r in results:
            r.close()
