"""Python aggregate UDFs: a class with init/step/merge/final named by CREATE
[TEMPORARY] FUNCTION … USING FILE; states built map-side, merged across tasks
through the shuffle, finished reduce-side.  Answers compared with the same
class applied in plain Python."""

from __future__ import annotations

import math
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: F401  (Lambda test)
from compiler.errors import SqlError, UnsupportedError
from sqlmr.backends import TaskFailedError
from sqlmr.config import Settings
from sqlmr.session import Session
from statements import rows_of

AGGS = textwrap.dedent('''\
    import math


    class GeoMean:
        """exp(mean(log x)) of the positive values; NULL when there are none."""

        def init(self):
            return [0.0, 0]

        def step(self, state, x):
            if x > 0:
                state[0] += math.log(x)
                state[1] += 1
            return state

        def merge(self, a, b):
            return [a[0] + b[0], a[1] + b[1]]

        def final(self, state) -> float:
            return math.exp(state[0] / state[1]) if state[1] else None


    class Median:
        def init(self):
            return []

        def step(self, state, x):
            state.append(x)
            return state

        def merge(self, a, b):
            return a + b

        def final(self, state):
            if not state:
                return None
            s = sorted(state)
            m = len(s) // 2
            return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


    class Boom:
        def init(self):
            return 0

        def step(self, state, x):
            if x == 7:
                raise ValueError("seven is not allowed")
            return state + 1

        def merge(self, a, b):
            return a + b

        def final(self, state) -> int:
            return state
    ''')

NULL = "\\N"
SETUP = ("CREATE EXTERNAL TABLE t (g STRING, n INT) ROW FORMAT DELIMITED "
         "FIELDS TERMINATED BY ',' LOCATION '{loc}';"
         "CREATE TEMPORARY FUNCTION geomean AS 'aggs.GeoMean' USING FILE 'aggs.py';"
         "CREATE TEMPORARY FUNCTION mid AS 'aggs.Median' USING FILE 'aggs.py' RETURNS DOUBLE")


def make_rows(seed: int, n: int) -> list[tuple[str | None, int | None]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        g = rnd.choice(["a", "b", "c", None])
        rows.append((g, None if rnd.random() < 0.15 else rnd.randint(-5, 60)))
    rows += [("allnull", None), ("allnull", None)]   # a group whose values are all NULL
    return rows


def write_table(folder: Path, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    third = len(rows) // 3 + 1
    for i in range(3):
        (folder / f"part-{i}").write_text("".join(
            f"{NULL if g is None else g},{NULL if n is None else n}\n"
            for g, n in rows[i * third:(i + 1) * third]))


def oracle_geomean(xs):
    logs = [math.log(x) for x in xs if x is not None and x > 0]
    return math.exp(sum(logs) / len(logs)) if logs else None


def oracle_median(xs):
    s = sorted(x for x in xs if x is not None)
    if not s:
        return None
    m = len(s) // 2
    return float(s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2)


def close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None
                                         and math.isclose(a, b, rel_tol=1e-9))


@pytest.fixture
def work(tmp_path):
    (tmp_path / "aggs.py").write_text(AGGS)
    rows = make_rows(1, 500)
    write_table(tmp_path / "t", rows)
    s = Session(Settings(workers=2, split_mb=0.001, reducers=3))
    s.base_dir = str(tmp_path)
    rows_of(s, SETUP.format(loc="t"))
    yield s, rows, tmp_path
    s.close()


GROUPED = "SELECT g, geomean(n), mid(n), COUNT(n) FROM t GROUP BY g"


def expected_grouped(rows):
    groups: dict = {}
    for g, n in rows:
        groups.setdefault(g, []).append(n)
    return {g: (oracle_geomean(xs), oracle_median(xs), sum(x is not None for x in xs))
            for g, xs in groups.items()}


def check_grouped(got, rows):
    want = expected_grouped(rows)
    assert sorted(r[0] or "" for r in got) == sorted(g or "" for g in want)
    for g, gm, med, cnt in got:
        wg, wm, wc = want[g]
        assert close(gm, wg) and close(med, wm) and cnt == wc, (g, gm, med, cnt, want[g])


def test_grouped_udafs_match_python_across_splits_and_reducers(work):
    s, rows, _ = work
    got = rows_of(s, GROUPED)
    check_grouped(got, rows)
    assert [r for r in got if r[0] == "allnull"] == [["allnull", None, None, 0]]
    shown = rows_of(s, "SHOW FUNCTIONS")
    assert [(r[0], r[1], r[6]) for r in shown] == [("geomean", "DOUBLE", "aggregate"),
                                                  ("mid", "DOUBLE", "aggregate")]
    # the types: final's annotation, RETURNS
    res = list(s.execute("SELECT geomean(n), mid(n) FROM t"))[-1]
    assert res.types == ["double", "double"]
    res.close()


def test_scalar_udaf_and_empty_input(work):
    s, rows, _ = work
    ns = [n for _, n in rows]
    (gm, med), = rows_of(s, "SELECT geomean(n), mid(n) FROM t")
    assert close(gm, oracle_geomean(ns)) and close(med, oracle_median(ns))
    # no row at all: the state of init() is finished
    assert rows_of(s, "SELECT geomean(n), mid(n), COUNT(*) FROM t WHERE n > 1000") \
        == [[None, None, 0]]
    # a group filtered by HAVING on the UDAF, and an expression over it
    got = rows_of(s, "SELECT g, ROUND(mid(n) * 2, 3) FROM t WHERE g IS NOT NULL "
                     "GROUP BY g HAVING mid(n) IS NOT NULL ORDER BY g")
    want = expected_grouped(rows)
    assert got == [[g, round(want[g][1] * 2, 3)] for g in sorted(
        k for k in want if k is not None and want[k][1] is not None)]


def test_udaf_misuse_is_a_clear_error(work):
    s, _, _ = work
    with pytest.raises(SqlError, match="aggregates are not allowed in WHERE"):
        rows_of(s, "SELECT COUNT(*) FROM t WHERE geomean(n) > 1")
    for call, n in (("geomean()", 0), ("geomean(n, n)", 2)):
        with pytest.raises(UnsupportedError, match=f"geomean\\(\\) of {n} arguments"):
            rows_of(s, f"SELECT {call} FROM t")
    with pytest.raises(UnsupportedError, match="geomean\\(DISTINCT"):
        rows_of(s, "SELECT geomean(DISTINCT n) FROM t")
    with pytest.raises(SqlError, match="cannot be nested"):
        rows_of(s, "SELECT geomean(mid(n)) FROM t")


def test_a_raising_udaf_reports_the_users_traceback(work):
    s, _, _ = work
    rows_of(s, "CREATE TEMPORARY FUNCTION boom AS 'aggs.Boom' USING FILE 'aggs.py'")
    with pytest.raises(TaskFailedError) as info:
        rows_of(s, "SELECT g, boom(n) FROM t GROUP BY g")
    msg = info.value.message
    assert 'File "aggs.py", line' in msg and "in step" in msg
    assert "ValueError: seven is not allowed" in msg


def test_a_udaf_on_lambda_gives_the_local_answers(tmp_path, monkeypatch, request):
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    aws = request.getfixturevalue
    import boto3
    from aws_fixtures import run_lambda_locally
    from sqlmr.aws import deploy
    aws("aws_reset")
    bucket = aws("s3_bucket")
    run_lambda_locally(monkeypatch, bucket)
    (tmp_path / "aggs.py").write_text(AGGS)
    rows = make_rows(2, 300)
    write_table(tmp_path / "t", rows)
    s3 = boto3.client("s3", region_name="us-east-1")
    for p in (tmp_path / "t").iterdir():
        s3.put_object(Bucket=bucket, Key=f"data/t/{p.name}", Body=p.read_bytes())
    s = Session(Settings(backend="lambda", split_mb=0.001, reducers=2))
    s.base_dir = str(tmp_path)
    try:
        rows_of(s, SETUP.format(loc=f"s3://{bucket}/data/t"))
        check_grouped(rows_of(s, GROUPED), rows)
    finally:
        s.close()
        deploy.forget_deployments()


def test_a_permanent_udaf_is_in_the_catalog(work, sqlmr_home):
    s, rows, _ = work
    rows_of(s, "CREATE FUNCTION gm AS 'aggs.GeoMean' USING FILE 'aggs.py'")
    other = Session(Settings(workers=2, split_mb=0.001, reducers=2))
    try:
        got = rows_of(other, "SELECT g, gm(n) FROM t GROUP BY g")
        rows_of(other, "DROP FUNCTION gm")
    finally:
        other.close()
    want = expected_grouped(rows)
    assert len(got) == len(want) and all(close(v, want[g][0]) for g, v in got)


def test_a_udaf_raising_in_final_reports_the_users_traceback(work):
    s, _, tmp = work
    (tmp / "bad.py").write_text(AGGS.replace("return math.exp(state[0] / state[1]) if state[1] else None",
                                             "return math.exp(state[0] / state[1])"))
    rows_of(s, "CREATE TEMPORARY FUNCTION badgm AS 'bad.GeoMean' USING FILE 'bad.py'")
    with pytest.raises(TaskFailedError) as info:
        rows_of(s, "SELECT g, badgm(n) FROM t GROUP BY g")
    msg = info.value.message
    assert 'File "bad.py", line' in msg and "in final" in msg
    assert "ZeroDivisionError" in msg


def test_a_udaf_over_a_join(work):
    s, rows, tmp = work
    (tmp / "w").mkdir()
    weights = {"a": 1, "b": 2, "c": 3}
    (tmp / "w" / "p").write_text("".join(f"{g},{w}\n" for g, w in weights.items()))
    rows_of(s, "CREATE EXTERNAL TABLE w (g STRING, w INT) ROW FORMAT DELIMITED "
               "FIELDS TERMINATED BY ',' LOCATION 'w'")
    got = rows_of(s, "SELECT w.w, mid(t.n * w.w) FROM t JOIN w ON t.g = w.g GROUP BY w.w")
    want = {w: oracle_median([None if n is None else n * w for g2, n in rows if g2 == g])
            for g, w in weights.items()}
    assert sorted(got) == sorted([w, m] for w, m in want.items())


def test_create_function_registers_an_aggregate_class(tmp_path, monkeypatch):
    import sqlmr
    (tmp_path / "helpers_udaf.py").write_text(AGGS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import helpers_udaf
    rows = make_rows(4, 200)
    write_table(tmp_path / "t", rows)
    con = sqlmr.connect(home=str(tmp_path / "home"))
    try:
        con.execute("CREATE EXTERNAL TABLE t (g STRING, n INT) ROW FORMAT DELIMITED "
                    f"FIELDS TERMINATED BY ',' LOCATION '{tmp_path / 't'}'")
        con.create_function("gm", helpers_udaf.GeoMean)
        got = con.execute("SELECT g, gm(n) FROM t GROUP BY g").fetchall()
    finally:
        con.close()
    want = expected_grouped(rows)
    assert len(got) == len(want) and all(close(v, want[g][0]) for g, v in got)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["x", "y", None]),
                               st.one_of(st.none(), st.integers(-3, 40))), max_size=80),
       reducers=st.integers(1, 4))
def test_udafs_match_python_whatever_the_rows_and_reducers(tmp_path_factory, rows, reducers):
    folder = tmp_path_factory.mktemp("prop")
    (folder / "aggs.py").write_text(AGGS)
    write_table(folder / "t", rows)
    s = Session(Settings(workers=2, split_mb=0.00003, reducers=reducers))
    s.base_dir = str(folder)
    try:
        rows_of(s, "DROP TABLE IF EXISTS t")   # the previous example's, in the same catalog
        rows_of(s, SETUP.format(loc="t"))
        check_grouped(rows_of(s, GROUPED), rows)
        (gm, med), = rows_of(s, "SELECT geomean(n), mid(n) FROM t")
    finally:
        s.close()
    ns = [n for _, n in rows]
    assert close(gm, oracle_geomean(ns)) and close(med, oracle_median(ns))


def test_a_state_that_is_not_json_fails_the_task_saying_so(work):
    s, _, tmp = work
    (tmp / "sets.py").write_text(textwrap.dedent('''\
        class Distinct:
            def init(self):
                return set()

            def step(self, state, x):
                state.add(x)
                return state

            def merge(self, a, b):
                return a | b

            def final(self, state) -> int:
                return len(state)
        '''))
    rows_of(s, "CREATE TEMPORARY FUNCTION nd AS 'sets.Distinct' USING FILE 'sets.py'")
    with pytest.raises(TaskFailedError, match="Object of type set is not JSON serializable"):
        rows_of(s, "SELECT g, nd(n) FROM t GROUP BY g")
