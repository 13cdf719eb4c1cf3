"""TABLESAMPLE reads a sample of a table's splits, and says so."""

from __future__ import annotations

import pytest

from compiler.errors import SqlError

N = 20_000


@pytest.fixture
def sampled(session, tmp_path):
    """Tables v (N rows, 4 files) and r (200 rows) cut into many small splits."""
    folder = tmp_path / "v"
    folder.mkdir()
    for f in range(4):
        rows = "".join(f"{i},{i % 200},{i % 7}\n" for i in range(f * N // 4, (f + 1) * N // 4))
        (folder / f"part-{f}.csv").write_text(rows)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "r.csv").write_text("".join(f"{k},name{k}\n" for k in range(200)))
    run(session, f"CREATE EXTERNAL TABLE v (id INT, k INT, g INT) LOCATION '{folder}'")
    run(session, f"CREATE EXTERNAL TABLE r (k INT, name STRING) LOCATION '{tmp_path / 'r'}'")
    session.settings.split_mb = 0.004
    return session


def run(session, sql):
    res = list(session.execute(sql))[-1]
    return res, [list(r) for r in res.rows] if res.kind == "rows" else []


def test_the_buckets_of_a_table_add_up_to_the_whole_table(sampled):
    """Every split is in exactly one of BUCKET 1..y OUT OF y: no row is read
    twice or lost, whatever the split sizes."""
    _, whole = run(sampled, "SELECT COUNT(*), SUM(id), SUM(g) FROM v")
    assert whole == [[N, N * (N - 1) // 2, sum(i % 7 for i in range(N))]]
    for y in (2, 3, 5):
        parts = [run(sampled, f"SELECT COUNT(*), SUM(id), SUM(g) FROM v "
                              f"TABLESAMPLE (BUCKET {x} OUT OF {y})")[1][0] for x in range(1, y + 1)]
        assert [sum(col) for col in zip(*parts)] == whole[0]
        assert all(0 < p[0] < N for p in parts)


def test_a_percentage_reads_about_that_share_of_the_splits_and_says_so(sampled):
    full, _ = run(sampled, "SELECT COUNT(*) FROM v")
    res, rows = run(sampled, "SELECT COUNT(*) FROM v TABLESAMPLE (25 PERCENT)")
    splits = full.stats.splits
    assert res.stats.splits == -(-splits * 25 // 100)   # ceil: the sample never reads nothing
    assert 0.15 * N < rows[0][0] < 0.35 * N
    assert res.stats.bytes_read < 0.4 * full.stats.bytes_read
    assert res.stats.notes == [f"Sample: the result is from {res.stats.splits} of {splits} "
                               f"splits of v (TABLESAMPLE (25 PERCENT))"]
    assert not full.stats.notes
    # the same splits every time, and all of them at 100 percent
    assert run(sampled, "SELECT COUNT(*) FROM v TABLESAMPLE (25 PERCENT)")[1] == rows
    assert run(sampled, "SELECT COUNT(*) FROM v AS x TABLESAMPLE (100 PERCENT)")[1] == [[N]]


def test_a_sampled_broadcast_side_is_cut_into_splits_too(sampled):
    sampled.settings.split_mb = 0.0005
    _, whole = run(sampled, "SELECT COUNT(*) FROM v JOIN r ON v.k = r.k")
    parts = [run(sampled, f"SELECT COUNT(*) FROM v JOIN r TABLESAMPLE (BUCKET {x} OUT OF 2) "
                          f"rr ON v.k = rr.k")[1][0][0] for x in (1, 2)]
    assert sum(parts) == whole[0][0] == N and all(parts)


def test_explain_shows_the_sample(sampled):
    res, _ = run(sampled, "EXPLAIN SELECT g, COUNT(*) FROM v TABLESAMPLE (BUCKET 2 OUT OF 4) "
                          "GROUP BY g")
    lines = [ln.strip() for ln in res.message.splitlines()]
    sample = [ln for ln in lines if ln.startswith("sample: ")]
    assert len(sample) == 1 and sample[0].endswith(
        "splits (TABLESAMPLE (BUCKET 2 OUT OF 4)); the result is from a sample")


@pytest.mark.parametrize("sql,needle", [
    ("SELECT * FROM v TABLESAMPLE (0 PERCENT)", "above 0 and at most 100"),
    ("SELECT * FROM v TABLESAMPLE (150 PERCENT)", "above 0 and at most 100"),
    ("SELECT * FROM v TABLESAMPLE (5 ROWS)", "not supported yet: TABLESAMPLE (5 ROWS)"),
    ("SELECT * FROM v TABLESAMPLE (BUCKET 5 OUT OF 4)", "needs 1 <= 5 <= 4"),
    ("SELECT * FROM v TABLESAMPLE (BUCKET 1 OUT OF 4 ON k)", "not supported yet: TABLESAMPLE (BUCKET"),
    ("SELECT * FROM v AS a TABLESAMPLE (5 PERCENT) JOIN r ON a.k = r.k", "right after its table"),
])
def test_a_sample_sqlmr_cannot_take_is_refused_with_a_caret(sampled, sql, needle):
    with pytest.raises(SqlError) as e:
        run(sampled, sql)
    assert needle in str(e.value)
    assert e.value.offset is not None
