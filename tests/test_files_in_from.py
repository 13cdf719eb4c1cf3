"""Files straight in FROM ('path', read_csv, read_json), inferred schemas,
DESCRIBE SELECT, CREATE EXTERNAL TABLE without columns, CREATE TABLE LIKE and
`sqlmr gen`'s DDL: differential against DuckDB reading the same files with
read_csv / read_json."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.errors import SqlError
from difftest import assert_same, duck, _norm
from sqlmr.infer import infer_csv, infer_json

REPO = Path(__file__).resolve().parents[1]
DUCK_TYPES = {"BIGINT": "bigint", "DOUBLE": "double", "DATE": "date", "BOOLEAN": "boolean",
              "VARCHAR": "string"}

# ------------------------------------------------------------------ data

KINDS = ("bigint", "double", "date", "boolean", "string")


def value(rnd: random.Random, kind: str) -> str:
    if kind == "bigint":
        return str(rnd.randint(-10**6, 10**12))
    if kind == "double":
        return f"{rnd.uniform(-1e4, 1e4):.3f}"
    if kind == "date":
        return (dt.date(1990, 1, 1) + dt.timedelta(days=rnd.randint(0, 15000))).isoformat()
    if kind == "boolean":
        return rnd.choice(["true", "false"])
    return rnd.choice(["x", "qq", ""]) + "".join(rnd.choices(string.ascii_lowercase, k=5))


def table_rows(seed: int, kinds: list[str], n: int, nulls: float = 0.1) -> list[list[str]]:
    rnd = random.Random(seed)
    return [["" if i and rnd.random() < nulls else value(rnd, k) for i, k in enumerate(kinds)]
            for _ in range(n)]


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]],
              delim: str = ",") -> Path:
    lines = ([delim.join(header)] if header else []) + [delim.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, names: list[str], kinds: list[str], rows: list[list[str]]) -> Path:
    def conv(v: str, k: str):
        if v == "":
            return None
        return {"bigint": int, "double": float, "boolean": lambda s: s == "true"}.get(k, str)(v)
    path.write_text("".join(json.dumps({n: conv(v, k) for n, k, v in zip(names, kinds, r)}) + "\n"
                            for r in rows))
    return path


def duck_schema(con, sql: str) -> list[tuple[str, str]]:
    return [(r[0], DUCK_TYPES.get(r[1], r[1])) for r in con.execute(f"DESCRIBE {sql}").fetchall()]


def rows_of(session, sql: str) -> list[list]:
    results = list(session.execute(sql))
    try:
        return [[_norm(v) for v in r] for r in results[-1].rows]
    finally:
        for r in results:
            r.close()


def duck_rows(con, sql: str) -> list[list]:
    return [[_norm(v) for v in r] for r in con.execute(sql).fetchall()]


# --------------------------------------------------- inference vs DuckDB's sniffer

@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=6),
       header=st.booleans(), delim=st.sampled_from([",", "|", "\t", ";"]),
       seed=st.integers(0, 10**6), n=st.integers(3, 60))
def test_csv_schema_matches_duckdb_sniffer(tmp_path_factory, kinds, header, delim, seed, n):
    folder = tmp_path_factory.mktemp("sniff")
    names = [f"{k[:3]}_{i}" for i, k in enumerate(kinds)]
    rows = table_rows(seed, kinds, n)
    # the first two rows hold a value in every column: a column of NULLs after
    # the first row leaves the header undecidable (DuckDB and sqlmr guess apart)
    rows[:2] = [[value(random.Random(seed + i), k) for k in kinds] for i in range(2)]
    if all(k == "string" for k in kinds) and not header:
        header = True  # DuckDB (and sqlmr) take the first row of all-text files as names
    path = write_csv(folder / "t.csv", names if header else None, rows, delim)
    cols, fmt, got_delim = infer_csv(path.read_bytes(), whole=True)
    want = duck_schema(duck(), f"SELECT * FROM read_csv('{path}')")
    assert [(c.name, c.type) for c in cols] == want
    assert got_delim == delim
    assert fmt.header_lines == int(header)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
       seed=st.integers(0, 10**6), n=st.integers(1, 40))
def test_json_schema_matches_duckdb(tmp_path_factory, kinds, seed, n):
    folder = tmp_path_factory.mktemp("json")
    names = [f"k{i}" for i in range(len(kinds))]
    rows = table_rows(seed, kinds, n, nulls=0.2)
    # a key whose sample values are all null DuckDB types by name (JSON); sqlmr as STRING
    rows[0] = [value(random.Random(seed), k) for k in kinds]
    path = write_json(folder / "t.json", names, kinds, rows)
    cols = infer_json(path.read_bytes(), whole=True)
    want = duck_schema(duck(), f"SELECT * FROM read_json('{path}')")
    assert [(c.name, c.type) for c in cols] == want


def test_header_and_names_as_duckdb_names_them(tmp_path):
    con = duck()
    cases = {"nohead.csv": "1,x\n2,y\n", "blank.csv": "a,,a\n1,2,3\n4,5,6\n",
             "strings.csv": "bob,paris\nann,rome\n", "one.csv": "x\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        cols, _, _ = infer_csv(text.encode(), whole=True)
        want = duck_schema(con, f"SELECT * FROM read_csv('{tmp_path / name}')")
        assert [(c.name, c.type) for c in cols] == want, name


def test_a_record_cut_by_the_sample_does_not_decide_a_type():
    sample = b"a,b\n" + b"1,2.5\n" * 10 + b"3,x"  # 'x' is the start of a longer field
    cols, _, _ = infer_csv(sample, whole=False)
    assert [c.type for c in cols] == ["bigint", "double"]


def test_json_keys_merge_without_case_first_spelling_wins():
    cols = infer_json(b'{"Id": 1, "tag": "a"}\n{"ID": 2.5, "Extra": true}\n', whole=True)
    assert [(c.name, c.type) for c in cols] == [("Id", "double"), ("tag", "string"),
                                                ("Extra", "boolean")]


def test_timestamps_are_strings_unless_sqlmr_has_the_type():
    from compiler.schema import SQLGLOT_TYPES
    cols, _, _ = infer_csv(b"t\n2024-01-02 03:04:05\n2024-01-03 00:00:00\n", whole=True)
    assert cols[0].type == ("timestamp" if "timestamp" in SQLGLOT_TYPES else "string")


# ----------------------------------------------------- queries vs DuckDB

@pytest.fixture
def data(tmp_path):
    kinds = ["bigint", "string", "double", "date", "boolean"]
    names = ["id", "word", "score", "day", "flag"]
    rows = table_rows(7, kinds, 400)
    d = tmp_path / "data"
    d.mkdir()
    write_csv(d / "part1.csv", names, rows[:200])
    write_csv(d / "part2.csv", names, rows[200:])
    write_csv(tmp_path / "pipes.tsv", names, rows[:50], "\t")
    write_json(tmp_path / "events.jsonl", names, kinds, rows[:300])
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "part-00000").write_text(
        "".join(f"{r[0]}|{r[2] or '0'}|{r[3] or '2000-01-01'}\n" for r in rows[:100]))
    return tmp_path


QUERIES = [
    ("SELECT * FROM '{d}/data/*.csv'", "SELECT * FROM read_csv('{d}/data/*.csv')"),
    ("SELECT word, count(*), sum(score), min(day), max(id) FROM '{d}/data/' GROUP BY word",
     "SELECT word, count(*), sum(score), min(day), max(id) FROM read_csv('{d}/data/*.csv') "
     "GROUP BY word"),
    ("SELECT t.id, t.flag FROM read_csv('{d}/data/part1.csv', header => true) AS t "
     "WHERE t.score > 0 AND t.day >= DATE '2000-01-01'",
     "SELECT t.id, t.flag FROM read_csv('{d}/data/part1.csv', header=true) AS t "
     "WHERE t.score > 0 AND t.day >= DATE '2000-01-01'"),
    ("SELECT * FROM '{d}/pipes.tsv'", "SELECT * FROM read_csv('{d}/pipes.tsv')"),
    ("SELECT id, word, score, day, flag FROM '{d}/events.jsonl' WHERE flag",
     "SELECT id, word, score, day, flag FROM read_json('{d}/events.jsonl') WHERE flag"),
    ("SELECT count(*), count(word), avg(score) FROM read_json('{d}/events.jsonl')",
     "SELECT count(*), count(word), avg(score) FROM read_json('{d}/events.jsonl')"),
    ("SELECT e.id, c.word FROM '{d}/events.jsonl' e JOIN '{d}/data/part2.csv' AS c "
     "ON e.id = c.id", "SELECT e.id, c.word FROM read_json('{d}/events.jsonl') e JOIN "
     "read_csv('{d}/data/part2.csv') AS c ON e.id = c.id"),
    ("SELECT part1.word FROM '{d}/data/part1.csv' WHERE part1.id > 100",
     "SELECT part1.word FROM '{d}/data/part1.csv' WHERE part1.id > 100"),
    ("SELECT column0, column2 FROM '{d}/plain/'",
     "SELECT column0, column2 FROM read_csv('{d}/plain/part-00000', header=false)"),
]


@pytest.mark.parametrize("sql,duck_sql", QUERIES, ids=[q for q, _ in QUERIES])
def test_query_over_files_matches_duckdb(session, data, sql, duck_sql):
    got = rows_of(session, sql.format(d=data))
    want = duck_rows(duck(), duck_sql.format(d=data))
    assert_same(got, want, ordered=False)


def test_a_file_joins_a_catalog_table(session, data):
    list(session.execute(f"CREATE EXTERNAL TABLE words (word STRING, n INT) "
                         f"LOCATION '{data / 'words'}'"))
    (data / "words").mkdir()
    rows = table_rows(7, ["bigint", "string", "double", "date", "boolean"], 400)  # data's
    words = sorted({r[1] for r in rows[:60] if r[1]})
    (data / "words" / "w.txt").write_text("".join(f"{w},{len(w)}\n" for w in words))
    got = rows_of(session, f"SELECT f.id, w.n FROM '{data}/data/*.csv' AS f, words w "
                           "WHERE f.word = w.word")
    con = duck()
    want = duck_rows(con, f"SELECT f.id, w.column1 FROM read_csv('{data}/data/*.csv') f, "
                          f"read_csv('{data}/words/w.txt', header=false, "
                          "columns={'column0': 'VARCHAR', 'column1': 'INT'}) w "
                          "WHERE f.word = w.column0")
    assert len(got) >= len(words)
    assert_same(got, want, ordered=False)


def test_gzipped_json(session, tmp_path):
    rows = table_rows(3, ["bigint", "double"], 100)
    text = "".join(json.dumps({"a": int(r[0]), "b": float(r[1]) if r[1] else None}) + "\n"
                   for r in rows)
    (tmp_path / "x.ndjson.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    got = rows_of(session, f"SELECT sum(a), count(b) FROM '{tmp_path}/x.ndjson.gz'")
    want = duck_rows(duck(), f"SELECT sum(a), count(b) FROM read_json('{tmp_path}/x.ndjson.gz')")
    assert got == want


def test_gzipped_csv(session, tmp_path):
    rows = table_rows(3, ["bigint", "double"], 100)
    text = "a,b\n" + "".join(f"{r[0]},{r[1]}\n" for r in rows)
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    got = rows_of(session, f"SELECT sum(a), count(b) FROM '{tmp_path}/x.csv.gz'")
    want = duck_rows(duck(), f"SELECT sum(a), count(b) FROM read_csv('{tmp_path}/x.csv.gz')")
    assert got == want


def test_read_csv_quote_and_nullstr_as_duckdb_reads_them(session, tmp_path):
    (tmp_path / "q.csv").write_text('a,b\n1,"x y"\nNA,z\n7,\n')
    for opts, duck_opts in (("quote => ''", "quote=''"), ("nullstr => 'NA'", "nullstr='NA'"),
                            ("header = true, sep = ','", "header=true, sep=','")):
        sql = f"SELECT * FROM read_csv('{tmp_path}/q.csv', {{}})"
        got = rows_of(session, sql.format(opts))
        want = duck_rows(duck(), sql.format(duck_opts))
        assert_same(got, want, ordered=False)


# --------------------------------------------------------------- DESCRIBE

def test_describe_select_shows_inferred_columns(session, data):
    res = list(session.execute(f"DESCRIBE SELECT * FROM '{data}/data/*.csv'"))[-1]
    want = duck_schema(duck(), f"SELECT * FROM read_csv('{data}/data/*.csv')")
    assert [(n, t.lower()) for n, t in res.rows] == want
    assert "CSV" in res.message and "header lines 1" in res.message


def test_describe_any_select(session, data):
    res = list(session.execute(
        f"DESCRIBE SELECT word, count(*) AS n, avg(score) a, max(day) FROM "
        f"'{data}/events.jsonl' GROUP BY word"))[-1]
    assert [list(r) for r in res.rows] == [["word", "STRING"], ["n", "BIGINT"],
                                           ["a", "DOUBLE"], ["max(day)", "DATE"]]
    res = list(session.execute(f"DESCRIBE '{data}/pipes.tsv'"))[-1]
    assert [r[0] for r in res.rows] == ["id", "word", "score", "day", "flag"]


# ---------------------------------------------------------------- DDL

def test_create_external_table_without_columns(session, data):
    msg = list(session.execute(f"CREATE EXTERNAL TABLE ev LOCATION '{data}/events.jsonl'"))[-1]
    assert "id BIGINT, word STRING, score DOUBLE, day DATE, flag BOOLEAN" in msg.message
    assert session.catalog.get("ev").format.kind == "json"
    got = rows_of(session, "SELECT count(*), sum(id) FROM ev")
    assert got == duck_rows(duck(), f"SELECT count(*), sum(id) FROM read_json('{data}/events.jsonl')")


def test_create_external_table_stored_as_csv_keeps_what_it_says(session, data):
    list(session.execute(f"CREATE EXTERNAL TABLE p STORED AS CSV "
                         f"TBLPROPERTIES ('skip.header.line.count'='0') "
                         f"LOCATION '{data}/data/part1.csv'"))
    t = session.catalog.get("p")
    # the header line is data here: every column reads as text
    assert t.format.header_lines == 0 and {c.type for c in t.columns} == {"string"}
    assert [c.name for c in t.columns] == [f"column{i}" for i in range(5)]


def test_create_without_columns_errors_and_if_not_exists(session, tmp_path):
    with pytest.raises(SqlError, match="no such file or folder: nowhere/") as e:
        list(session.execute("CREATE EXTERNAL TABLE nw LOCATION 'nowhere/'"))
    caret = e.value.render().splitlines()[1].index("^")   # under the path
    assert caret == len("LINE 1: CREATE EXTERNAL TABLE nw LOCATION ")
    with pytest.raises(SqlError, match="needs LOCATION"):
        list(session.execute("CREATE EXTERNAL TABLE nw STORED AS CSV"))
    (tmp_path / "x.csv").write_text("a\n1\n")
    list(session.execute(f"CREATE EXTERNAL TABLE x1 LOCATION '{tmp_path}/x.csv'"))
    (tmp_path / "x.csv").unlink()  # a table that exists is skipped before its files are read
    res = list(session.execute(f"CREATE EXTERNAL TABLE IF NOT EXISTS x1 LOCATION '{tmp_path}/x.csv'"))
    assert res[-1].message == "table x1 already exists, skipped"


def test_create_table_like(session, data):
    list(session.execute(f"CREATE EXTERNAL TABLE a1 LOCATION '{data}/data/part1.csv'"))
    list(session.execute(f"CREATE TABLE a2 LIKE a1 LOCATION '{data}/data/part2.csv'"))
    a1, a2 = session.catalog.get("a1"), session.catalog.get("a2")
    assert (a2.columns, a2.format, a2.delimiter) == (a1.columns, a1.format, a1.delimiter)
    assert a2.location.endswith("part2.csv")
    assert rows_of(session, "SELECT count(*) FROM a2") == [[200]]
    with pytest.raises(SqlError, match="LIKE a1 needs LOCATION"):
        list(session.execute("CREATE EXTERNAL TABLE a3 LIKE a1"))
    with pytest.raises(SqlError, match="table 'nope' does not exist"):
        list(session.execute(f"CREATE TABLE a4 LIKE nope LOCATION '{data}'"))


# ---------------------------------------------------------------- errors

def sqlmr(*args: str, cwd: Path | None = None, home: Path | None = None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if home is not None:
        env["SQLMR_HOME"] = str(home)
    flags = [] if args[0] == "gen" else ["--no-timing"]
    return subprocess.run([sys.executable, "-m", "sqlmr", *flags, *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("sql,message", [
    ("SELECT * FROM 'nothing/*.csv'", "error: no file matches nothing/*.csv"),
    ("SELECT * FROM 'missing.csv'", "error: no such file or folder: missing.csv"),
    ("SELECT * FROM read_csv('x.csv', skip => 1)",
     "error: unknown read_csv option 'skip'\n"
     "hint: read_csv takes: header, delim, sep, quote, escape, nullstr, columns"),
    ("SELECT * FROM read_csv('x.csv', delimter = ';')",
     "hint: did you mean 'delim'? read_csv takes: header, delim, sep"),
    ("SELECT * FROM read_json('x.json', header => true)",
     "error: unknown read_json option 'header'"),
    ("SELECT * FROM read_csv('x.csv', delim => 'ab')", "option delim is one character"),
    ("SELECT * FROM read_csv('x.csv', columns => {'a': 'BLOB'})", "unsupported column type"),
    ("SELECT * FROM 'bad.json'", "cannot infer columns of file://"),
    ("SELECT * FROM 'empty.csv'", "holds only empty files"),
    ("SELECT nope FROM 'x.csv'", "error: column 'nope' not found in table 'x.csv'"),
])
def test_errors_have_a_caret_and_no_traceback(tmp_path, sql, message):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "x.json").write_text('{"a": 1}\n')
    (tmp_path / "bad.json").write_text("[1, 2]\n")
    (tmp_path / "empty.csv").write_text("")
    r = sqlmr("-e", sql, cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 1, r.stderr
    assert message in r.stderr
    assert r.stderr.startswith("LINE 1: ") and "^" in r.stderr.splitlines()[1]
    assert "Traceback" not in r.stderr


def test_unreadable_sample_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    f = tmp_path / "locked.csv"
    f.write_text("a\n1\n")
    f.chmod(0)
    r = sqlmr("-e", "SELECT * FROM 'locked.csv'", cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 1 and "locked.csv" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_compressed_sample_is_named(tmp_path):
    (tmp_path / "broken.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n" * 1000)[:40] + b"junk")
    r = sqlmr("-e", "SELECT * FROM 'broken.csv.gz'", cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot read a sample of file://" in r.stderr and "broken.csv.gz" in r.stderr


def test_paths_in_a_script_are_relative_to_its_folder(tmp_path):
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "nums.csv").write_text("n\n1\n2\n3\n")
    (tmp_path / "q" / "sum.sql").write_text(
        "SELECT sum(n) AS s FROM 'nums.csv';\n"
        "CREATE EXTERNAL TABLE nums LOCATION 'nums.csv';\nSELECT max(n) AS m FROM nums;\n")
    r = sqlmr("--format", "csv", "-f", "q/sum.sql", cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["s", "6", "m", "3"]
    assert f"at file://{tmp_path}/q/nums.csv" in r.stderr
    r = sqlmr("--format", "csv", "-e", "SELECT sum(n) AS s FROM 'q/nums.csv'", cwd=tmp_path,
              home=tmp_path / "home")
    assert r.stdout.splitlines() == ["s", "6"]


# ---------------------------------------------------------------- sqlmr gen

def test_gen_prints_ddl_and_registers(tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "amp"
    r = sqlmr("gen", "amplab", "--scale", "0.00001", "--out", str(out), "--no-progress",
              "--register", home=home)
    assert r.returncode == 0, r.stderr
    ddl = r.stdout
    assert ddl.count("CREATE EXTERNAL TABLE") == 3 and f"LOCATION 'file://{out}/rankings'" in ddl
    assert f"amplab_documents (line STRING) ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\001' " \
           f"LOCATION 'file://{out}/documents'" in ddl
    r = sqlmr("--format", "csv", "-e", "SELECT count(*) FROM amplab_rankings", home=home)
    assert r.returncode == 0, r.stderr
    rows = sum(len(f.read_bytes().splitlines()) for f in (out / "rankings").iterdir())
    assert r.stdout.splitlines()[1] == str(rows)
    # the printed DDL registers the same tables in another catalog
    other = tmp_path / "home2"
    r = sqlmr("-e", ddl, home=other)
    assert r.returncode == 0, r.stderr
    r = sqlmr("--format", "csv", "-e", "SELECT count(*) FROM amplab_uservisits", home=other)
    assert r.returncode == 0 and int(r.stdout.splitlines()[1]) > 0
    r = sqlmr("--format", "csv", "-e", "SELECT count(*) FROM amplab_documents", home=other)
    lines = sum(len(f.read_bytes().splitlines()) for f in (out / "documents").iterdir())
    assert r.returncode == 0 and r.stdout.splitlines()[1] == str(lines)


# ---------------------------------------------------------------- S3

from aws_fixtures import moto_server, s3_bucket  # noqa: E402,F401


def test_files_on_s3_by_glob_and_prefix(session, s3_bucket, tmp_path):
    import boto3
    from runtime import storage
    s3 = boto3.client("s3")
    rows = table_rows(11, ["bigint", "double", "string"], 90)
    for i, day in enumerate(("2024-01-01", "2024-01-02", "2024-02-01")):
        part = rows[i * 30:(i + 1) * 30]
        s3.put_object(Bucket=s3_bucket, Key=f"logs/{day}/part.csv",
                      Body=("n,x,w\n" + "".join(",".join(r) + "\n" for r in part)).encode())
        s3.put_object(Bucket=s3_bucket, Key=f"events/{day}.jsonl",
                      Body="".join(json.dumps({"n": int(r[0])}) + "\n" for r in part).encode())
    s3.put_object(Bucket=s3_bucket, Key="logs/_tmp/part.csv", Body=b"n,x,w\n999,1,zz\n")
    listed = storage.list_files(f"s3://{s3_bucket}/logs/2024-01-*/*.csv")
    assert [u.rsplit("/", 2)[1] for u, _ in listed] == ["2024-01-01", "2024-01-02"]
    # a CSV header in each file, types from the first file's sample
    got = rows_of(session, f"SELECT count(*), sum(n), count(w) FROM "
                           f"'s3://{s3_bucket}/logs/2024-01-*/*.csv'")
    part = rows[:60]
    assert got == [[60, sum(int(r[0]) for r in part), sum(1 for r in part if r[2])]]
    got = rows_of(session, f"SELECT sum(e.n) FROM read_json('s3://{s3_bucket}/events/') e")
    assert got == [[sum(int(r[0]) for r in rows)]]
    with pytest.raises(SqlError, match=f"no file matches s3://{s3_bucket}/logs/2023-"):
        list(session.execute(f"SELECT * FROM 's3://{s3_bucket}/logs/2023-*/*.csv'"))
    with pytest.raises(SqlError, match="no such file or folder"):
        list(session.execute(f"SELECT * FROM read_csv('s3://{s3_bucket}/nothing/')"))
    with pytest.raises(SqlError, match="cannot list s3://no-such-bucket-x1/x.csv: S3 bucket"):
        list(session.execute("SELECT * FROM 's3://no-such-bucket-x1/x.csv'"))


def test_the_sample_decides_a_later_value_of_another_type_is_null(session, tmp_path):
    (tmp_path / "d").mkdir()
    big = "".join(f"{i},{i * 10}\n" for i in range(1, 120_000))  # more than the 1 MB sample
    (tmp_path / "d" / "a.csv").write_text("id,n\n" + big)
    (tmp_path / "d" / "b.csv").write_text("id,n\n0,lots\n")
    results = list(session.execute(f"SELECT id, n FROM '{tmp_path}/d/' WHERE id < 3 ORDER BY id"))
    res = results[-1]
    assert [list(r) for r in res.rows] == [[0, None], [1, 10], [2, 20]]
    assert res.stats.malformed == 1
    res.close()


def test_small_first_files_let_the_next_ones_widen_the_types(session, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("id,n,w\n1,10,x\n")
    (tmp_path / "d" / "b.csv").write_text("id,n,w\n2,2.5,y\n")
    (tmp_path / "d" / "c.csv").write_text("id,n,w\n3,,2024-01-01\n")
    res = list(session.execute(f"DESCRIBE '{tmp_path}/d/'"))[-1]
    assert [list(r) for r in res.rows] == [["id", "BIGINT"], ["n", "DOUBLE"], ["w", "STRING"]]
    assert rows_of(session, f"SELECT sum(n), count(*) FROM '{tmp_path}/d/'") == [[12.5, 3]]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "a.json").write_text('{"a": 1}\n')
    (tmp_path / "e" / "b.json").write_text('{"A": 1.5, "b": true}\n')
    res = list(session.execute(f"DESCRIBE '{tmp_path}/e/'"))[-1]
    assert [list(r) for r in res.rows] == [["a", "DOUBLE"], ["b", "BOOLEAN"]]


# ------------------------------------------------------- properties

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=12), st.from_regex(r"[+-]?[0-9]{1,20}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
                 st.dates().map(str), st.sampled_from(["true", "FALSE", "True", "nan", "inf",
                                                       "1_000", " 1", "0x10", "1.5d"])))
def test_a_sampled_type_is_one_the_reader_parses(text):
    """What the sample calls BIGINT / DOUBLE / DATE / BOOLEAN, the scan reads as
    that type (Hive's parsers), so the sample never types a column its own
    values would make NULL."""
    from runtime import sqlfuncs
    from sqlmr.infer import value_type
    typ = value_type(text)
    if typ != "string":
        sqlfuncs.PARSERS[typ](text)  # raises if the reader would not read it


@settings(max_examples=1000, deadline=None)
@given(pattern=st.text(alphabet="ab*?[]!^&~|\\.-", min_size=1, max_size=8),
       name=st.text(alphabet="ab.^&~|\\-", max_size=8))
def test_glob_within_a_folder_name_is_fnmatch(pattern, name):
    """A folder name matches as fnmatch matches it; ``**`` is any number of folders."""
    import fnmatch
    from runtime.storage import glob_match
    if "**" in pattern:
        return
    assert glob_match(pattern, name) == fnmatch.fnmatchcase(name, pattern)
    if not name:
        return
    if fnmatch.fnmatchcase(name, pattern):  # (a folder above may match the pattern too)
        assert glob_match("**/" + pattern, "x/y/" + name)
    assert glob_match("x/" + pattern, "x/" + name + "/part-0") == fnmatch.fnmatchcase(name, pattern)


def test_a_file_name_holding_glob_characters(session, tmp_path):
    (tmp_path / "data[1].csv").write_text("a\n5\n")
    (tmp_path / "data1.csv").write_text("a\n7\n")
    assert rows_of(session, f"SELECT a FROM '{tmp_path}/data[1].csv'") == [[7]]  # the glob
    (tmp_path / "data1.csv").unlink()
    assert rows_of(session, f"SELECT a FROM '{tmp_path}/data[1].csv'") == [[5]]  # the name


@pytest.mark.parametrize("text,kind,names,header", [
    ("id|n\n1|2.5\n2|3\n", "csv", ["id", "n"], 1),          # a header types prove
    ("1|2.5\n2|3.5\n", "text", ["column0", "column1"], 0),      # plain delimited text
    ("bob,paris\nann,rome\n", "text", ["column0", "column1"], 0),  # all text: no header guessed
    ('1,"a,b"\n2,c\n', "csv", ["column0", "column1"], 0),     # quotes: CSV
    ('{"a": 1}\n', "json", ["a"], 0),
])
def test_a_file_of_unknown_kind(tmp_path, text, kind, names, header):
    from sqlmr.files import Hints, infer_table
    (tmp_path / "part-00000").write_text(text)
    t = infer_table("t", f"file://{tmp_path}", Hints())
    assert (t.format.kind, [c.name for c in t.columns], t.format.header_lines) == \
        (kind, names, header)


@pytest.mark.parametrize("dialect", ["hive", "duckdb", "spark"])
def test_both_option_spellings_in_each_dialect(tmp_path, dialect):
    from sqlmr.config import Settings
    from sqlmr.session import Session
    (tmp_path / "x.csv").write_text("a;b\n1;2024-01-01\n2;2024-01-02\n")
    s = Session(Settings(workers=1, dialect=dialect))
    try:
        for opts in ("header = true, sep = ';'",) + (
                () if dialect == "spark" else ("header => true, delim => ';'",)):
            assert rows_of(s, f"SELECT max(a), min(b) FROM read_csv('{tmp_path}/x.csv', {opts})") \
                == [[2, "2024-01-01"]]
        assert rows_of(s, f"SELECT count(*) FROM \"{tmp_path}/x.csv\"") == [[2]]
    finally:
        s.close()


def test_repl_describes_a_file(tmp_path, capsys, monkeypatch):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from sqlmr.config import Settings
    from sqlmr.repl import run_repl
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.csv").write_text("id,day\n1,2024-01-01\n")
    with create_pipe_input() as inp:
        inp.send_text("\\d 'v.csv'\r\x04")
        run_repl(Settings(workers=1), input=inp, output=DummyOutput())
    out = capsys.readouterr().out
    assert "| id       | BIGINT |" in out and "| day      | DATE   |" in out
