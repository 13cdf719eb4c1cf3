"""Partitioned tables in Hive layout, against DuckDB's hive_partitioning on the
same folders: partition columns everywhere a column goes, pruning that
never drops a row the filter keeps, SHOW PARTITIONS / MSCK REPAIR TABLE, and
the errors."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aws_fixtures import (aws_reset, enforced_bucket, iam_servers, moto_server,  # noqa: F401
                          run_lambda_locally, s3_bucket)
from difftest import (DUCK_TYPES, UV_COLUMNS, Tables, as_bytes, assert_same, typed_columns,
                      uservisits_lines)

# uservisits without countryCode: the country is a partition column here
DATA_COLUMNS = [c for c in UV_COLUMNS if c[0] != "countryCode"]
PARTITION_COLUMNS = [("year", "int"), ("country", "string")]
# folder values (as Hive escapes them) -> what a query reads
YEARS = {"2019": 2019, "2020": 2020, "2021": 2021, "__HIVE_DEFAULT_PARTITION__": None}
COUNTRIES = {"US": "US", "FR": "FR", "A%3AB": "A:B", "M%C3%BCn": "Mün", "50%25": "50%"}


def _drop_country(line: str) -> str:
    f = line.split(",")
    return ",".join(f[:5] + f[6:])


def write_partitioned(root: Path, seed: int = 11) -> tuple[list[Path], dict[str, int]]:
    """Rows of uservisits over two partition levels, several files a
    partition, some partitions empty of rows; also files a query must not
    read (hidden, ``_``, outside a full partition path).  Returns the data
    files and the bytes per partition name."""
    rnd = random.Random(seed)
    lines = [_drop_country(x) for x in uservisits_lines(4000, seed=seed, nulls=0.02)]
    parts = [(y, c) for y in YEARS for c in COUNTRIES if rnd.random() < 0.8]
    data: list[Path] = []
    sizes: dict[str, int] = {}
    chunks: dict[tuple[str, str], list[str]] = {p: [] for p in parts}
    for line in lines:
        chunks[rnd.choice(parts)].append(line)
    for (y, c), rows in chunks.items():
        folder = root / f"year={y}" / f"country={c}"
        folder.mkdir(parents=True)
        half = len(rows) // 2
        for i, block in enumerate((rows[:half], rows[half:])):
            path = folder / f"part-{i:05d}"
            path.write_bytes(as_bytes(block))
            data.append(path)
            sizes[f"year={y}/country={c}"] = sizes.get(f"year={y}/country={c}", 0) + \
                path.stat().st_size
        (folder / "_SUCCESS").write_bytes(b"not,data\n")
        (folder / ".part-00000.crc").write_bytes(b"not,data\n")
    (root / "stray-file").write_bytes(b"9.9.9.9,stray\n")                   # no partition path
    (root / "year=2019" / "stray-file").write_bytes(b"9.9.9.9,stray\n")     # half a path
    (root / "notes").mkdir()
    (root / "notes" / "readme").write_bytes(b"9.9.9.9,stray\n")
    return data, sizes


def create_sql(name: str, location: Path | str) -> str:
    cols = ", ".join(f"{n} {t.upper()}" for n, t in DATA_COLUMNS)
    parts = ", ".join(f"{n} {t.upper()}" for n, t in PARTITION_COLUMNS)
    return f"CREATE EXTERNAL TABLE {name} ({cols}) PARTITIONED BY ({parts}) LOCATION '{location}'"


@pytest.fixture
def ptables(session, tmp_path):
    """Table ``pv`` in sqlmr and a DuckDB view of the same rows read with
    hive_partitioning from the same data files (the test names them)."""
    t = Tables(session, tmp_path)
    root = tmp_path / "pv"
    data, sizes = write_partitioned(root)
    list(session.execute(create_sql("pv", root)))
    colspec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n, _ in DATA_COLUMNS) + "}"
    hive = "{" + ", ".join(f"'{n}': '{DUCK_TYPES[ty]}'" for n, ty in PARTITION_COLUMNS) + "}"
    paths = "[" + ", ".join(f"'{p}'" for p in data) + "]"
    t.con.execute(
        f"CREATE TABLE raw_pv AS SELECT * FROM read_csv({paths}, header=false, delim=',', "
        f"quote='', escape='', columns={colspec}, nullstr='\\N', null_padding=true, "
        f"strict_mode=false, auto_detect=false, hive_partitioning=true, hive_types={hive})")
    t.con.execute(f"CREATE VIEW pv AS SELECT {typed_columns(DATA_COLUMNS)}, year, country "
                  "FROM raw_pv")
    t.con.execute("CREATE TABLE names AS SELECT * FROM (VALUES ('US', 'United States'), "
                  "('A:B', 'colon'), ('Mün', 'Munich'), ('XX', 'none')) AS v(code, name)")
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "n.txt").write_text("US,United States\nA:B,colon\nMün,Munich\nXX,none\n")
    list(session.execute(f"CREATE EXTERNAL TABLE names (code STRING, name STRING) "
                         f"LOCATION '{tmp_path / 'names'}'"))
    session.settings.split_mb = 0.01   # several splits, and tasks holding several partitions
    session.settings.reducers = 3
    t.sizes = sizes
    t.root = root
    return t


SHAPES = [
    "SELECT * FROM pv",
    "SELECT sourceIP, year, country FROM pv WHERE year = 2020",
    "SELECT sourceIP, country FROM pv WHERE country IN ('A:B', 'Mün') AND duration > 3",
    "SELECT year, country, COUNT(*), SUM(adRevenue), COUNT(DISTINCT searchWord) FROM pv "
    "GROUP BY year, country",
    "SELECT country, COUNT(DISTINCT year) FROM pv GROUP BY country",
    "SELECT COUNT(DISTINCT country), MIN(year), MAX(country) FROM pv",
    "SELECT year, SUM(duration) AS d FROM pv WHERE year IS NOT NULL GROUP BY year ORDER BY d DESC",
    "SELECT year, country FROM pv GROUP BY year, country ORDER BY year NULLS FIRST, country",
    "SELECT country, year, sourceIP FROM pv ORDER BY year DESC NULLS LAST, country NULLS LAST, "
    "sourceIP NULLS LAST, destURL NULLS LAST, visitDate NULLS LAST LIMIT 30",
    "SELECT sourceIP FROM pv WHERE year = 2019 OR duration = 7",
    "SELECT sourceIP FROM pv WHERE (year BETWEEN 2020 AND 2021 AND country LIKE 'A%') "
    "OR (year IS NULL AND searchWord = 'alpha')",
    # Hive's CONCAT is NULL when an argument is NULL, as DuckDB's || is
    ("SELECT year + 1, CONCAT(country, '-', searchWord), UPPER(country) FROM pv WHERE year > 2019",
     "SELECT year + 1, country || '-' || searchWord, UPPER(country) FROM pv WHERE year > 2019"),
    "SELECT p.year, n.name, COUNT(*) FROM pv p JOIN names n ON p.country = n.code "
    "WHERE p.year <> 2021 GROUP BY p.year, n.name",
    "SELECT n.code, COUNT(p.sourceIP) FROM names n LEFT JOIN pv p ON n.code = p.country "
    "AND p.year = 2020 GROUP BY n.code",
    "SELECT a.year, COUNT(*) FROM pv a JOIN pv b ON a.sourceIP = b.sourceIP "
    "WHERE a.country = 'US' AND b.year = 2019 GROUP BY a.year",
    "SELECT COUNT(*) FROM pv",
    "SELECT DISTINCT year, country FROM pv WHERE country <> 'FR'",
    "SELECT y, COUNT(*) FROM (SELECT year AS y FROM pv WHERE country = 'US') t GROUP BY y",
    "SELECT t.sourceIP FROM (SELECT year, sourceIP FROM pv) t WHERE t.year = 2020",
]


@pytest.mark.parametrize("broadcast_mb", [0, 32])
def test_partitioned_queries_match_duckdb(ptables, broadcast_mb):
    ptables.session.settings.broadcast_mb = broadcast_mb
    for sql in SHAPES:
        ptables.check(*((sql,) if isinstance(sql, str) else sql))


def test_partition_columns_come_after_the_data_columns(ptables):
    res = list(ptables.session.execute("SELECT * FROM pv LIMIT 1"))[-1]
    assert res.columns == [n for n, _ in DATA_COLUMNS] + ["year", "country"]
    res.close()
    rows = ptables.sqlmr("DESCRIBE pv")
    assert [r[0] for r in rows] == [n for n, _ in DATA_COLUMNS] + [
        "year", "country", "", "# Partition Information", "year", "country"]


def same_rows(got: list[list], want: list[list]) -> bool:
    try:
        assert_same(got, want, False)
    except AssertionError:
        return False
    return True


def _atom(rnd: random.Random) -> str:
    year = rnd.choice([2018, 2019, 2020, 2021, 2022])
    country = rnd.choice(["US", "FR", "A:B", "Mün", "50%", "ZZ"])
    return rnd.choice([
        f"year = {year}", f"year > {year}", f"year <= {year}", f"year <> {year}",
        f"year BETWEEN {year} AND {year + rnd.randint(0, 2)}",
        f"year IN ({year}, {rnd.choice([2019, 2021])})", "year IS NULL", "year IS NOT NULL",
        f"country = '{country}'", f"country <> '{country}'", "country LIKE 'A%'",
        "country LIKE '5_%'", f"country IN ('{country}', 'US')", "UPPER(country) = 'FR'",
        "LENGTH(country) = 2", f"COALESCE(year, 0) < {year}", "year * 2 > 4039",
        f"CASE WHEN year IS NULL THEN country = 'US' ELSE year = {year} END",
        # data columns: an OR with one of these must not prune
        f"duration = {rnd.randint(1, 10)}", "searchWord = 'alpha'", "adRevenue < 0.3",
    ])


def _predicate(rnd: random.Random, depth: int = 0) -> str:
    if depth >= 2 or rnd.random() < 0.3:
        return _atom(rnd)
    kind = rnd.random()
    if kind < 0.15:
        return f"NOT ({_predicate(rnd, depth + 1)})"
    op = "AND" if kind < 0.6 else "OR"
    return f"({_predicate(rnd, depth + 1)} {op} {_predicate(rnd, depth + 1)})"


def test_random_predicates_prune_only_what_the_filter_drops(ptables):
    """Seeded random WHERE clauses over partition and data columns: the
    answer equals DuckDB's (pruning never dropped a partition with a kept
    row), and no more than the partitions' bytes are read."""
    ptables.session.settings.split_mb = 0.05
    rnd = random.Random(2024)
    total = sum(ptables.sizes.values())
    pruned_some = 0
    for _ in range(30):
        where = " AND ".join(_predicate(rnd) for _ in range(rnd.randint(1, 2)))
        sql = f"SELECT COUNT(*), SUM(duration), COUNT(DISTINCT country) FROM pv WHERE {where}"
        results = list(ptables.session.execute(sql))
        got = [list(r) for r in results[-1].rows]
        stats = results[-1].stats
        results[-1].close()
        want = ptables.duckdb(sql)
        assert same_rows(got, want), f"{sql}: sqlmr {got} vs duckdb {want}"
        assert stats.bytes_read <= total + 64 * 1024
        pruned_some += stats.bytes_read < total
    assert pruned_some >= 5  # the grammar does prune


def test_pruning_reads_only_the_partitions_the_filter_keeps(ptables):
    s = ptables.session
    s.settings.split_mb = 64  # whole files: the bytes read are the files' bytes
    keep = [n for n in ptables.sizes if n.startswith("year=2020/")]
    res = list(s.execute("SELECT COUNT(*) FROM pv WHERE year = 2020"))[-1]
    want = ptables.duckdb("SELECT COUNT(*) FROM pv WHERE year = 2020")
    assert [list(r) for r in res.rows] == want
    assert res.stats.bytes_read == sum(ptables.sizes[n] for n in keep)
    res.close()
    full = list(s.execute("SELECT COUNT(*) FROM pv WHERE duration > 0"))[-1]
    assert full.stats.bytes_read == sum(ptables.sizes.values())
    full.close()
    text = list(s.execute("EXPLAIN SELECT COUNT(*) FROM pv WHERE year = 2020"))[-1].message
    assert f"partitions: {len(keep)} of {len(ptables.sizes)} (pruned by year = 2020)" in text
    assert "partition filter: year = 2020" in text


def test_or_with_a_data_column_does_not_prune(ptables):
    text = list(ptables.session.execute(
        "EXPLAIN SELECT COUNT(*) FROM pv WHERE year = 2020 OR duration = 1"))[-1].message
    n = len(ptables.sizes)
    assert f"partitions: {n} of {n} (no partition filter)" in text


def test_show_partitions_and_msck(ptables):
    rows = ptables.sqlmr("SHOW PARTITIONS pv")
    assert [r[0] for r in rows] == sorted(ptables.sizes)
    # names as the folders spell them (escaped), the default partition's too
    assert any(r[0].endswith("country=A%3AB") for r in rows)
    assert any(r[0].startswith("year=__HIVE_DEFAULT_PARTITION__/") for r in rows)
    msg = list(ptables.session.execute("MSCK REPAIR TABLE pv"))[-1].message
    assert f"table pv: {len(ptables.sizes)} partitions ({2 * len(ptables.sizes)} files" in msg
    assert "3 files outside year=…/country=… folders ignored:" in msg
    assert msg.splitlines()[1:-1] == [f"  {n}" for n in sorted(ptables.sizes)]
    assert msg.splitlines()[-1].startswith("Nothing to record")


def test_unparsable_and_empty_partition_values_are_null(session, tmp_path):
    for folder, line in (("k=7", "a\n"), ("k=abc", "b\n"), ("k=", "c\n"),
                         ("k=__HIVE_DEFAULT_PARTITION__", "d\n"), ("k=%2B8", "e\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "f").write_text(line)
    list(session.execute(f"CREATE EXTERNAL TABLE t (s STRING) PARTITIONED BY (k INT) "
                         f"LOCATION '{tmp_path}'"))
    rows = list(session.execute("SELECT s, k FROM t ORDER BY s"))[-1]
    assert [list(r) for r in rows.rows] == [["a", 7], ["b", None], ["c", None], ["d", None],
                                            ["e", 8]]
    rows.close()
    rows = list(session.execute("SELECT s FROM t WHERE k IS NULL ORDER BY s"))[-1]
    assert [r[0] for r in rows.rows] == ["b", "c", "d"]
    rows.close()


@pytest.mark.parametrize("ddl, message", [
    ("CREATE EXTERNAL TABLE t (a INT) PARTITIONED BY (dt) LOCATION '/x'",
     "partition column 'dt' needs a type"),
    ("CREATE EXTERNAL TABLE t (a INT, dt STRING) PARTITIONED BY (dt STRING) LOCATION '/x'",
     "partition column 'dt' is also a data column"),
    ("CREATE EXTERNAL TABLE t (a INT) PARTITIONED BY (dt STRING, DT INT) LOCATION '/x'",
     "partition column 'DT' is declared twice"),
    ("CREATE EXTERNAL TABLE t (a INT) PARTITIONED BY (dt MAP<STRING, INT>) LOCATION '/x'",
     "unsupported column type"),
    ("CREATE TABLE t PARTITIONED BY (dt STRING) AS SELECT pageURL FROM rankings",
     "not supported yet"),
])
def test_partitioned_by_errors(session, ddl, message):
    from compiler.errors import SqlError
    with pytest.raises(SqlError) as e:
        list(session.execute(ddl))
    assert message in e.value.render()


def test_show_partitions_errors(session, tmp_path):
    from compiler.errors import SqlError
    list(session.execute(f"CREATE EXTERNAL TABLE plain (a INT) LOCATION '{tmp_path}'"))
    with pytest.raises(SqlError, match="table 'plain' is not partitioned"):
        list(session.execute("SHOW PARTITIONS plain"))
    with pytest.raises(SqlError, match="table 'nope' does not exist"):
        list(session.execute("MSCK REPAIR TABLE nope"))
    with pytest.raises(SqlError, match="usage: SHOW PARTITIONS"):
        list(session.execute("SHOW PARTITIONS plain PARTITION (a=1)"))


def test_partition_columns_survive_the_catalog(session, tmp_path):
    from sqlmr.catalog import Catalog
    list(session.execute(create_sql("pv", tmp_path)))
    t = Catalog().get("pv")
    assert [(c.name, c.type) for c in t.partition_columns] == PARTITION_COLUMNS


def upload(root: Path, bucket: str, prefix: str) -> None:
    import os
    import boto3
    c = boto3.client("s3", region_name=os.environ["AWS_REGION"])
    for path in root.rglob("*"):
        if path.is_file():
            c.put_object(Bucket=bucket, Key=prefix + str(path.relative_to(root)),
                         Body=path.read_bytes())


def test_partitioned_table_on_s3(moto_server, s3_bucket, session, tmp_path):
    """The same layout under an S3 prefix reads the same rows as locally."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    root = tmp_path / "pv"
    write_partitioned(root)
    upload(root, s3_bucket, "pv/")
    list(session.execute(create_sql("pv", root) + ";" +
                         create_sql("pv3", f"s3://{s3_bucket}/pv")))
    session.settings.split_mb = 0.02
    for sql in ("SELECT year, country, COUNT(*), SUM(adRevenue) FROM {} GROUP BY year, country",
                "SELECT sourceIP, country FROM {} WHERE year = 2021 AND country <> 'US'"):
        local = list(session.execute(sql.format("pv")))[-1]
        remote = list(session.execute(sql.format("pv3")))[-1]
        assert_same([list(r) for r in remote.rows], [list(r) for r in local.rows], False)
        local.close()
        remote.close()
    shown = list(session.execute("SHOW PARTITIONS pv3"))[-1]
    assert [r[0] for r in shown.rows] == [r[0] for r in list(
        session.execute("SHOW PARTITIONS pv"))[-1].rows]


def test_partitioned_table_on_lambda(enforced_bucket, session, tmp_path):
    """Tasks run by the deployment package (in subprocesses, as the function's
    role, IAM enforced) bind the partition values their splits carry; pruning
    happens before they run; the role is granted the table once, not each
    partition folder."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from sqlmr.aws import deploy, grants
    from sqlmr.aws.config import resolve_settings
    from sqlmr.config import Settings
    from sqlmr.session import Session
    s3_bucket = enforced_bucket
    root = tmp_path / "pv"
    write_partitioned(root)
    upload(root, s3_bucket, "data/pv/")
    list(session.execute(create_sql("pv", root)))
    sql = ("SELECT year, country, COUNT(*), SUM(duration) FROM {} "
           "WHERE year >= 2020 OR year IS NULL GROUP BY year, country")
    want = list(session.execute(sql.format("pv")))[-1]
    lam = Session(Settings(backend="lambda", split_mb=0.02, reducers=2))
    try:
        list(lam.execute(create_sql("pvs3", f"s3://{s3_bucket}/data/pv")))
        got = list(lam.execute(sql.format("pvs3")))[-1]
        assert_same([list(r) for r in got.rows], [list(r) for r in want.rows], False)
        got.close()
        ls = resolve_settings({})
        policy = grants.current_policy(deploy._Aws(ls), ls)
        assert grants.granted_locations(policy) == {f"s3://{s3_bucket}/data/pv/"}
    finally:
        want.close()
        lam.close()
        deploy.forget_deployments()


def test_cli_end_to_end(tmp_path):
    """The sqlmr command: create, list partitions, query with pruning (the
    statistics line reads fewer bytes), errors as one positioned message."""
    import csv
    import io
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "pv"
    data, sizes = write_partitioned(root)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sqlmr", *args], capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=str(repo)), timeout=120)

    r = run("-e", create_sql("pv", root))
    assert r.returncode == 0 and "partitioned by year, country" in r.stderr, r.stderr
    r = run("--format", "csv", "-e", "SHOW PARTITIONS pv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["partition"] + sorted(sizes)
    r = run("--format", "csv", "-e", "SELECT country, COUNT(*) FROM pv WHERE year = 2021 "
                                     "GROUP BY country ORDER BY country")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))[1:]
    assert [c for c, _ in rows] == sorted(n.split("=", 2)[2].replace("%3A", ":").replace(
        "%C3%BC", "ü").replace("%25", "%") for n in sizes if n.startswith("year=2021/"))
    read = sum(sizes[n] for n in sizes if n.startswith("year=2021/"))
    assert f"read {read / 1000:.1f} KB" in r.stderr
    r = run("-e", "SHOW PARTITIONS nope")
    assert r.returncode == 1 and "table 'nope' does not exist" in r.stderr
    assert "Traceback" not in r.stderr


# Hive's FileUtils.escapePathName: these characters become %XX in a folder name
_HIVE_ESCAPED = set(map(chr, range(32))) | set('"#%\'*/:=?\\\x7f{[]^')


def hive_escape(value: str) -> str:
    """A partition value as Hive writes it into a folder name.

    >>> hive_escape("a:b/c%")
    'a%3Ab%2Fc%25'
    """
    return "".join(f"%{ord(c):02X}" if c in _HIVE_ESCAPED else c for c in value)


def test_escaped_values_read_back_as_written(session, tmp_path):
    """Any value Hive escapes into a folder name reads back as the value."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
    values = st.lists(text.filter(lambda v: v != "__HIVE_DEFAULT_PARTITION__"),
                      min_size=1, max_size=6, unique_by=hive_escape)
    case = iter(range(10**6))

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(values)
    def check(vs):
        n = next(case)
        root = tmp_path / f"t{n}"
        for v in vs:
            folder = root / f"k={hive_escape(v)}"
            folder.mkdir(parents=True)
            (folder / "part-0").write_text("x\n")
        list(session.execute(f"CREATE EXTERNAL TABLE t{n} (s STRING) PARTITIONED BY "
                             f"(k STRING) LOCATION '{root}'"))
        res = list(session.execute(f"SELECT k, COUNT(*) FROM t{n} GROUP BY k"))[-1]
        assert sorted(map(tuple, res.rows)) == sorted((v, 1) for v in vs)
        res.close()
    check()
