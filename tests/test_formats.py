"""Table formats: quoted CSV, JSON lines, header lines, ESCAPED BY, NULL DEFINED
AS, .gz / .bz2, against DuckDB on the same files (or, where DuckDB has no
reader for a format, the same rows written as CSV), and CSV splits against
Python's csv module on random content and cut points."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difftest import assert_same, duck, typed_columns, _norm
from runtime.formats import CsvReader, JsonReader, record_start, csv_syntax

COLUMNS = [("sourceIP", "string"), ("destURL", "string"), ("visitDate", "date"),
           ("adRevenue", "double"), ("note", "string"), ("duration", "int")]
NOTES = ["plain", "with, comma", 'say "hi"', "two\nlines", 'all, of "it"\nhere', "é ü",
         "", "x'y", "\\N"]


def visits(n: int, seed: int) -> list[list[str]]:
    """uservisits-like rows as field texts; notes hold delimiters, quotes and newlines."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        rows.append([f"{r.randint(1, 255)}.{r.randint(0, 255)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
                     r.choice(["http://a.com/x", "b.org/y,z", 'q"uote', "u"]) + str(r.randint(0, 50)),
                     f"{r.randint(1990, 2012)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
                     f"{r.uniform(0, 1000):.4f}" if r.random() > 0.02 else "",
                     r.choice(NOTES),
                     str(r.randint(1, 100)) if r.random() > 0.02 else "oops"])
    return rows


def csv_bytes(rows: list[list[str]], header: bool = True, crlf: bool = False,
              delimiter: str = ",", escapechar: str | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n",
                   escapechar=escapechar, doublequote=escapechar is None)
    if header:
        w.writerow([n for n, _ in COLUMNS])
    w.writerows(rows)
    return buf.getvalue().encode()


def cols_sql(columns=COLUMNS) -> str:
    return ", ".join(f"{n} {t.upper()}" for n, t in columns)


def varchar_spec(columns=COLUMNS, lower: bool = False) -> str:
    return "{" + ", ".join(f"'{n.lower() if lower else n}': 'VARCHAR'" for n, _ in columns) + "}"


class Both:
    """A session and a DuckDB connection over the same data."""

    def __init__(self, session, root: Path) -> None:
        self.session = session
        self.root = root
        self.con = duck()

    def folder(self, name: str, files: dict[str, bytes]) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        return folder

    def ddl(self, sql: str) -> None:
        for r in self.session.execute(sql):
            r.close()

    def duck_table(self, name: str, read_sql: str, columns=COLUMNS) -> None:
        """DuckDB's view ``name``: ``read_sql`` (every column VARCHAR), typed as
        sqlmr types text (TRY_CAST: a field that does not parse is NULL)."""
        self.con.execute(f"CREATE OR REPLACE TABLE raw_{name} AS {read_sql}")
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {typed_columns(columns)} "
                         f"FROM raw_{name}")

    def rows(self, sql: str) -> list[list]:
        results = list(self.session.execute(sql))
        try:
            return [[_norm(v) for v in r] for r in results[-1].rows]
        finally:
            for r in results:
                r.close()

    def check(self, sql: str, ordered: bool = False) -> list[list]:
        got = self.rows(sql)
        want = [[_norm(v) for v in r] for r in self.con.execute(sql).fetchall()]
        assert_same(got, want, ordered)
        return got


QUERIES = [
    "SELECT * FROM t",
    "SELECT SUBSTR(sourceIP, 1, 3), SUM(adRevenue), COUNT(*) FROM t GROUP BY SUBSTR(sourceIP, 1, 3)",
    "SELECT note, COUNT(*), MAX(duration) FROM t GROUP BY note",
    "SELECT COUNT(*), COUNT(adRevenue), COUNT(duration), MIN(visitDate) FROM t",
    "SELECT destURL, note FROM t WHERE duration > 50",
]


def read_csv_sql(paths: list[Path], delim: str = ",", quote: str = '"', header: bool = True,
                 crlf: bool = False, null: str = "\\N") -> str:
    files = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    q = quote.replace("'", "''")
    nl = ", new_line='\\r\\n'" if crlf else ""
    return (f"SELECT * FROM read_csv({files}, header={str(header).lower()}, delim='{delim}', "
            f"quote='{q}', escape='{q}', columns={varchar_spec()}, nullstr='{null}', "
            f"auto_detect=false{nl})")


# ------------------------------------------------------------------- CSV

@pytest.fixture
def csv_tables(session, tmp_path):
    """Quoted CSV with a header line in each of several files (one .gz, one
    .bz2), read by sqlmr in many small splits; DuckDB reads the same files
    (the .bz2 one decompressed beside them)."""
    b = Both(session, tmp_path)
    parts = {f"p{i}.csv": csv_bytes(visits(300, seed=i), crlf=i == 2) for i in range(4)}
    gz_rows, bz_rows = csv_bytes(visits(200, seed=10)), csv_bytes(visits(200, seed=11))
    folder = b.folder("t", {**parts, "p5.csv.gz": gzip.compress(gz_rows),
                            "p6.csv.bz2": bz2.compress(bz_rows)})
    plain = b.folder("bz_plain", {"p6.csv": bz_rows})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) ROW FORMAT SERDE "
          f"'org.apache.hadoop.hive.serde2.OpenCSVSerde' WITH SERDEPROPERTIES "
          f"('separatorChar'=',', 'quoteChar'='\"') LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    reads = [read_csv_sql([folder / f]) for f in parts if f != "p2.csv"]
    reads.append(read_csv_sql([folder / "p2.csv"], crlf=True))
    reads.append(read_csv_sql([folder / "p5.csv.gz"]))
    reads.append(read_csv_sql([plain / "p6.csv"]))
    b.duck_table("t", " UNION ALL ".join(reads))
    session.settings.split_mb = 0.003   # splits of 3 KB: records and headers cut
    session.settings.reducers = 3
    return b


@pytest.mark.parametrize("sql", QUERIES)
def test_csv_matches_duckdb(csv_tables, sql):
    csv_tables.check(sql)


@pytest.mark.parametrize("split_mb", [0.001, 0.004, 0.02, 0])
def test_csv_answer_is_the_same_for_any_split_size(csv_tables, split_mb):
    csv_tables.session.settings.split_mb = split_mb
    csv_tables.check(QUERIES[0])
    csv_tables.check(QUERIES[1])


def test_stored_as_csv_with_a_pipe_and_escape_char(session, tmp_path):
    b = Both(session, tmp_path)
    rows = visits(400, seed=7)
    data = csv_bytes(rows, delimiter="|", escapechar="\\")
    folder = b.folder("t", {"a.csv": data})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' "
          f"ESCAPED BY '\\\\' STORED AS CSV LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    # DuckDB reads the same rows written with doubled quotes
    same = b.folder("same", {"a.csv": csv_bytes(rows)})
    b.duck_table("t", read_csv_sql([same / "a.csv"]))
    session.settings.split_mb = 0.002
    for sql in QUERIES:
        b.check(sql)


def test_csv_broadcast_join_reads_the_small_side_as_csv(session, tmp_path):
    b = Both(session, tmp_path)
    folder = b.folder("t", {"a.csv": csv_bytes(visits(500, seed=3))})
    small_cols = [("note", "string"), ("weight", "int")]
    small = io.StringIO()
    w = csv.writer(small, lineterminator="\n")
    w.writerow(["note", "weight"])
    w.writerows([[n, str(i)] for i, n in enumerate(NOTES)])
    sfolder = b.folder("s", {"s.csv": small.getvalue().encode()})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) STORED AS CSV LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    b.ddl(f"CREATE EXTERNAL TABLE s ({cols_sql(small_cols)}) STORED AS CSV LOCATION '{sfolder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    b.duck_table("t", read_csv_sql([folder / "a.csv"]))
    b.con.execute(f"CREATE VIEW s AS SELECT note, TRY_CAST(weight AS INTEGER) AS weight FROM "
                  f"read_csv('{sfolder / 's.csv'}', header=true, quote='\"', escape='\"', "
                  f"columns={varchar_spec(small_cols)}, nullstr='\\N', auto_detect=false)")
    session.settings.split_mb = 0.004
    sql = "SELECT s.weight, COUNT(*), SUM(t.duration) FROM t JOIN s ON t.note = s.note GROUP BY s.weight"
    explain = list(session.execute("EXPLAIN " + sql))[-1].message
    assert "Map Join Operator" in explain   # the small side is a broadcast hash table
    b.check(sql)


# ------------------------------------------------------------ CSV splits

FIELD = st.text(alphabet=['a', 'b', ',', '"', '\n', '\r', ' ', 'é', '\\'], max_size=8)


def _split_records(path: Path, fmt: dict, cuts: list[int], block_bytes: int) -> list[list[str]]:
    size = path.stat().st_size
    bounds = sorted({0, size, *[min(c, size) for c in cuts]})
    out = []
    for a, e in zip(bounds, bounds[1:]):
        split = {"uri": path.as_uri(), "start": a, "end": e, "size": size}
        for block in CsvReader(split, fmt, block_bytes):
            out += block
    return out


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=4), min_size=1, max_size=25),
       cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8),
       crlf=st.booleans(), quote_all=st.booleans(), escaped=st.booleans(),
       final_newline=st.booleans(), block_bytes=st.sampled_from([5, 64, 1 << 20]))
def test_csv_splits_read_each_record_once_as_the_csv_module_reads_the_file(
        tmp_path, rows, cuts, crlf, quote_all, escaped, final_newline, block_bytes):
    """For any content and any cut points, the records of all splits are the
    records of the whole file as Python's csv module reads it."""
    dialect = dict(escapechar="\\", doublequote=False) if escaped else {}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n",
               quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, **dialect).writerows(rows)
    data = buf.getvalue().encode()
    if not final_newline:
        data = data.rstrip(b"\n")
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    read = dict(escapechar="\\") if escaped else {}
    want = [r for r in csv.reader(io.StringIO(data.decode(), newline=""), **read) if r]
    fmt = {"kind": "csv", "escape": "\\" if escaped else None}
    assert _split_records(path, fmt, cuts, block_bytes) == want


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.text(alphabet=['a', ',', '"', '\n', 'é'], max_size=8),
                              min_size=1, max_size=4), min_size=1, max_size=40),
       s=st.integers(min_value=0, max_value=800))
def test_csv_boundary_is_the_first_record_start_at_or_after_the_cut(rows, s):
    """Speculation (a small window) and the exact count from the start of the
    file find the same boundary: the first record start at or after ``s``."""
    import runtime.formats as formats
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode()

    def read(a: int, e: int) -> bytes:
        return data[a:e]
    # record starts as the csv module sees them: the offsets of each record's first line
    text = data.decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = io.StringIO(text, newline="").readlines()
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line.encode())
    record_starts = []
    last = 0
    for _ in reader:
        record_starts.append(offsets[last])
        last = reader.line_num
    record_starts.append(len(data))
    want = min(x for x in record_starts if x >= min(s, len(data)))
    syn = csv_syntax({"kind": "csv"})
    assert record_start(read, s, len(data), syn) == want
    old = formats.WINDOW
    formats.WINDOW = 3   # mostly undecided: the exact count decides
    try:
        assert record_start(read, s, len(data), syn) == want
    finally:
        formats.WINDOW = old


# ------------------------------------------------------------------ JSON

def json_lines(n: int, seed: int) -> bytes:
    r = random.Random(seed)
    out = []
    for row in visits(n, seed):
        obj = {n.lower(): v for (n, _), v in zip(COLUMNS, row)}
        obj["adrevenue"] = float(obj["adrevenue"]) if obj["adrevenue"] else None
        obj["duration"] = int(obj["duration"]) if obj["duration"].isdigit() else obj["duration"]
        if r.random() < 0.1:
            del obj["note"]                         # missing key: NULL
        if r.random() < 0.1:
            obj["extra"] = {"k": [1, 2.5, None]}    # extra key: ignored
        if r.random() < 0.1:
            obj["note"] = {"nested": [1, "two", {"x": True}]}   # JSON text in a STRING
        if r.random() < 0.05:
            obj["note"] = r.choice([True, 12, 1.5])
        items = list(obj.items())
        r.shuffle(items)
        out.append(json.dumps(dict(items), ensure_ascii=r.random() < 0.5))
    return ("\n".join(out) + "\n").encode()


@pytest.fixture
def json_tables(session, tmp_path):
    b = Both(session, tmp_path)
    a, c = json_lines(300, 1), json_lines(200, 2)
    gz, bz = json_lines(150, 3), json_lines(150, 4)
    folder = b.folder("t", {"a.json": a, "c.json": c, "d.json.gz": gzip.compress(gz),
                            "e.json.bz2": bz2.compress(bz)})
    plain = b.folder("plain", {"d.json": gz, "e.json": bz})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) ROW FORMAT SERDE "
          f"'org.openx.data.jsonserde.JsonSerDe' LOCATION '{folder}'")
    files = [folder / "a.json", folder / "c.json", plain / "d.json", plain / "e.json"]
    paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    b.duck_table("t", f"SELECT {', '.join(n.lower() + ' AS ' + n for n, _ in COLUMNS)} FROM "
                      f"read_json({paths}, format='newline_delimited', "
                      f"columns={varchar_spec(lower=True)})")
    session.settings.split_mb = 0.004
    session.settings.reducers = 2
    return b


@pytest.mark.parametrize("sql", QUERIES)
def test_json_matches_duckdb(json_tables, sql):
    json_tables.check(sql)


def test_json_keys_are_case_insensitive(session, tmp_path):
    b = Both(session, tmp_path)
    lower = json_lines(100, 5)
    upper = "\n".join(json.dumps({k.upper() if i % 2 else k.title(): v
                                  for k, v in json.loads(line).items()})
                      for i, line in enumerate(lower.decode().splitlines())).encode()
    f1, f2 = b.folder("lower", {"a.json": lower}), b.folder("upper", {"a.json": upper})
    b.ddl(f"CREATE EXTERNAL TABLE lo ({cols_sql()}) STORED AS JSON LOCATION '{f1}'")
    b.ddl(f"CREATE EXTERNAL TABLE up ({cols_sql()}) STORED AS JSONFILE LOCATION '{f2}'")
    assert_same(b.rows("SELECT * FROM up"), b.rows("SELECT * FROM lo"), False)


# ------------------------------------------------- delimited text variants

@pytest.mark.parametrize("delim, sql_delim", [("|", "|"), ("\x01", "\\001"), ("\t", "\\t")],
                         ids=["pipe", "ctrl-a", "tab"])
def test_text_header_lines_across_files_and_splits(session, tmp_path, delim, sql_delim):
    b = Both(session, tmp_path)
    files = {}
    for i in range(3):
        rows = [[f.replace("\n", " ").replace(delim, " ") for f in row]
                for row in visits(250, seed=20 + i)]
        lines = [delim.join(n for n, _ in COLUMNS), "# second header line"]
        files[f"p{i}"] = ("\n".join(lines + [delim.join(r) for r in rows]) + "\n").encode()
    folder = b.folder("t", files)
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) ROW FORMAT DELIMITED FIELDS TERMINATED BY "
          f"'{sql_delim}' LINES TERMINATED BY '\\n' STORED AS TEXTFILE LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='2')")
    paths = "[" + ", ".join(f"'{folder / f}'" for f in files) + "]"
    b.duck_table("t", f"SELECT * FROM read_csv({paths}, header=false, skip=2, delim='{delim}', "
                      f"quote='', escape='', columns={varchar_spec()}, nullstr='\\N', "
                      f"null_padding=true, strict_mode=false, auto_detect=false)")
    for split_mb in (0.0005, 0.003, 0):
        session.settings.split_mb = split_mb
        b.check(QUERIES[0])
        b.check(QUERIES[1])
    assert b.rows("SELECT COUNT(*) FROM t") == [[750]]


def hive_escaped(field: str, delim: str) -> str:
    return (field.replace("\\", "\\\\").replace(delim, "\\" + delim)
            .replace("\n", "\\n").replace("\r", "\\r"))


def test_text_escaped_by_and_null_defined_as(session, tmp_path):
    """Hive's escaped text (an escaped delimiter is data, ``\\\\n`` a newline)
    with NULL spelt 'NA'; DuckDB reads the same rows written as CSV."""
    b = Both(session, tmp_path)
    rows = visits(600, seed=30)
    rows = [[("NA" if i == 4 and k % 7 == 0 else f) for i, f in enumerate(row)]
            for k, row in enumerate(rows)]
    text = "".join(",".join("NA" if f == "NA" else hive_escaped(f, ",") for f in row) + "\n"
                   for row in rows)
    folder = b.folder("t", {"a.txt": text.encode()})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' "
          f"ESCAPED BY '\\\\' NULL DEFINED AS 'NA' LOCATION '{folder}'")
    plain = b.folder("same", {"a.csv": csv_bytes(rows)})
    b.duck_table("t", read_csv_sql([plain / "a.csv"], null="NA"))
    session.settings.split_mb = 0.003
    for sql in QUERIES:
        b.check(sql)


# ------------------------------------------------ malformed rows, --strict

def test_csv_and_json_malformed_rows_are_counted(session, tmp_path):
    b = Both(session, tmp_path)
    rows = visits(50, seed=40)
    bad_csv = sum(r[5] == "oops" for r in rows)
    folder = b.folder("c", {"a.csv": csv_bytes(rows)})
    b.ddl(f"CREATE EXTERNAL TABLE c ({cols_sql()}) STORED AS CSV LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    res = list(session.execute("SELECT SUM(duration), COUNT(adRevenue) FROM c"))
    list(res[-1].rows)
    assert res[-1].stats.malformed == bad_csv > 0   # an empty DOUBLE is NULL, not malformed
    lines = json_lines(40, 41).decode().splitlines()
    lines[3] = '{"sourceip": "1.2.3.4", "duration": 5'    # cut short
    lines[7] = '["an", "array"]'
    jfolder = b.folder("j", {"a.json": ("\n".join(lines) + "\n\n").encode()})
    b.ddl(f"CREATE EXTERNAL TABLE j ({cols_sql()}) STORED AS JSON LOCATION '{jfolder}'")
    res = list(session.execute("SELECT COUNT(*), COUNT(sourceIP) FROM j"))
    assert [list(r) for r in res[-1].rows] == [[40, 38]]
    assert res[-1].stats.malformed == 2


def _offset(data: bytes, needle: bytes) -> int:
    at = data.index(needle)
    return data.rindex(b"\n", 0, at) + 1


def test_strict_names_file_and_byte_offset_for_csv_and_json(session, tmp_path):
    from sqlmr.backends import TaskFailedError
    b = Both(session, tmp_path)
    rows = [r for r in visits(200, seed=42) if r[5] != "oops"]
    rows[150][5] = "bad-int"
    data = csv_bytes(rows)
    folder = b.folder("c", {"a.csv": data})
    b.ddl(f"CREATE EXTERNAL TABLE c ({cols_sql()}) STORED AS CSV LOCATION '{folder}' "
          f"TBLPROPERTIES ('skip.header.line.count'='1')")
    session.settings.strict = True
    session.settings.split_mb = 0.004
    with pytest.raises(TaskFailedError) as info:
        list(session.execute("SELECT SUM(duration) FROM c"))
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow(rows[150])
    at = data.index(row.getvalue().encode())
    assert f"{folder}/a.csv at byte {at}" in str(info.value) and "bad-int" in str(info.value)
    lines = json_lines(60, 43).decode().splitlines()
    lines[44] = "{not json"
    jdata = ("\n".join(lines) + "\n").encode()
    jfolder = b.folder("j", {"a.json": jdata})
    b.ddl(f"CREATE EXTERNAL TABLE j ({cols_sql()}) STORED AS JSON LOCATION '{jfolder}'")
    with pytest.raises(TaskFailedError) as info:
        list(session.execute("SELECT COUNT(*) FROM j"))
    at = jdata.index(b"{not json")
    assert f"{jfolder}/a.json at byte {at}" in str(info.value) and "not a JSON object" in str(info.value)


# ---------------------------------------------------------- bz2 input

def test_truncated_and_corrupt_bz2_fail_naming_the_file(tmp_path):
    from test_cli import sqlmr
    from test_input_safety import _one_line_error
    rows = "".join(f"k{i},{i}\n" for i in range(50_000)).encode()
    whole = bz2.compress(rows)
    folder = tmp_path / "b"
    folder.mkdir()
    bad = folder / "b.bz2"
    bad.write_bytes(whole[:len(whole) // 2])
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE t (k STRING, v INT) LOCATION '{folder}'")
    assert r.returncode == 0, r.stderr
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "truncated bzip2 file")
    broken = bytearray(whole)
    broken[len(broken) // 2] ^= 0xFF
    bad.write_bytes(bytes(broken))
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "bzip2 data")
    bad.write_bytes(whole + bz2.compress(b"last,7\n"))   # two streams: both read
    r = sqlmr("--format", "csv", "-e", "SELECT COUNT(*), SUM(v) FROM t")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == f"50001,{sum(range(50_000)) + 7}"


# ---------------------------------------------------------------- DDL

@pytest.mark.parametrize("props, needle", [
    ("ROW FORMAT SERDE 'com.example.MySerDe'", "not supported yet: ROW FORMAT SERDE 'com.example.MySerDe'"),
    ("STORED AS PARQUET", "not supported yet: STORED AS PARQUET"),
    ("ROW FORMAT DELIMITED LINES TERMINATED BY ';'", "not supported yet: LINES TERMINATED BY ';'"),
    ("TBLPROPERTIES ('serialization.encoding'='latin1')",
     "not supported yet: TBLPROPERTIES ('serialization.encoding'='latin1')"),
    ("ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde' WITH SERDEPROPERTIES "
     "('separatorChar'=';;')", "'separatorChar' is one character"),
    ("STORED AS CSV TBLPROPERTIES ('skip.header.line.count'='x')", "is a number of lines"),
    ("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' STORED AS CSV", "reads csv but"),
    ("ROW FORMAT DELIMITED FIELDS TERMINATED BY '§' STORED AS CSV",
     "not supported yet: a non-ASCII CSV delimiter"),
])
def test_unsupported_or_wrong_format_ddl_is_a_clear_error(session, tmp_path, props, needle):
    from compiler.errors import SqlError
    with pytest.raises(SqlError) as info:
        list(session.execute(f"CREATE EXTERNAL TABLE t (a STRING) {props} LOCATION '{tmp_path}'"))
    assert needle in str(info.value)


def test_describe_shows_the_format_and_the_catalog_keeps_it(session, tmp_path):
    list(session.execute(f"CREATE EXTERNAL TABLE t (a STRING) ROW FORMAT SERDE "
                         f"'org.apache.hadoop.hive.serde2.OpenCSVSerde' WITH SERDEPROPERTIES "
                         f"('separatorChar'='\\t', 'quoteChar'='\\'') LOCATION '{tmp_path}' "
                         f"TBLPROPERTIES ('skip.header.line.count'='3')"))
    from sqlmr.config import Settings
    from sqlmr.session import Session
    again = Session(Settings(workers=1))   # a new session reads the saved catalog
    res = list(again.execute("DESCRIBE t"))[-1]
    assert res.message.endswith("CSV, fields terminated by '\\t', quote \"'\", header lines 3")
    again.close()


def test_writing_a_table_as_csv_is_refused(session, tmp_path):
    from compiler.errors import SqlError
    with pytest.raises(SqlError) as info:
        list(session.execute(f"CREATE TABLE w STORED AS CSV LOCATION '{tmp_path / 'w'}' "
                             f"AS SELECT 1 AS x"))
    assert "not supported yet: STORED AS CSV when writing a table" in str(info.value)


# --------------------------------------------------------- the warning

def test_warning_says_the_files_have_a_header_line(session, tmp_path):
    from sqlmr.render import warning_lines
    b = Both(session, tmp_path)
    files = {f"p{i}.csv": csv_bytes([[f.replace("\n", " ").replace(",", " ").replace('"', "")
                                      for f in r] for r in visits(30, seed=i) if r[5] != "oops"])
             for i in range(3)}
    folder = b.folder("t", files)
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) LOCATION '{folder}'")
    res = list(session.execute("SELECT SUM(duration) FROM t"))[-1]
    list(res.rows)
    text = "\n".join(warning_lines(res))
    assert "3 malformed rows of t are the first line of a file, as a header line is" in text
    assert "its fields are the column names" in text
    ddl = text.split("\n  ")[-1]
    assert "TBLPROPERTIES ('skip.header.line.count'='1')" in ddl
    b.ddl(ddl.replace("CREATE EXTERNAL TABLE t ", "CREATE EXTERNAL TABLE fixed "))
    res = list(session.execute("SELECT SUM(duration) FROM fixed"))[-1]
    list(res.rows)
    assert res.stats.malformed == 0


def test_warning_says_the_files_are_quoted_csv(session, tmp_path):
    from sqlmr.render import warning_lines
    b = Both(session, tmp_path)
    rows = [r for r in visits(200, seed=50) if r[5] != "oops" and r[3]]
    for r in rows:
        r[1] = f"{r[1]}, {r[0]}"     # every row's URL holds a delimiter, so is quoted
    folder = b.folder("t", {"a.csv": csv_bytes(rows)})
    b.ddl(f"CREATE EXTERNAL TABLE t ({cols_sql()}) LOCATION '{folder}'")
    res = list(session.execute("SELECT SUM(duration), SUM(adRevenue) FROM t"))[-1]
    list(res.rows)
    text = "\n".join(warning_lines(res))
    assert "hold double quotes, as quoted CSV does" in text
    ddl = text.split("\n  ")[-1]
    assert "STORED AS CSV" in ddl and "'skip.header.line.count'='1'" in ddl
    b.ddl(ddl.replace("CREATE EXTERNAL TABLE t ", "CREATE EXTERNAL TABLE fixed "))
    b.duck_table("fixed", read_csv_sql([folder / "a.csv"]))
    b.check("SELECT SUM(duration), SUM(adRevenue), COUNT(*) FROM fixed")


# -------------------------------------------- any split size, end to end

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(alphabet=['a', ',', '"', '\n', 'é', ' '], max_size=10),
                               st.integers(min_value=-50, max_value=50)), min_size=1, max_size=80),
       split_bytes=st.integers(min_value=16, max_value=4096), block_bytes=st.sampled_from([0, 64]))
def test_a_csv_query_reads_the_rows_the_csv_module_reads_for_any_split_size(
        session, tmp_path_factory, rows, split_bytes, block_bytes):
    """End to end: each row of a random quoted CSV file (a header, fields with
    quotes, delimiters and newlines) is read once, whatever the split size."""
    folder = tmp_path_factory.mktemp("csvprop")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["s", "n"])
    w.writerows(rows)
    (folder / "a.csv").write_bytes(buf.getvalue().encode())
    (folder / "b.csv").write_bytes(buf.getvalue().encode())
    name = folder.name.replace("-", "_").lower()
    for r in session.execute(f"CREATE EXTERNAL TABLE {name} (s STRING, n INT) STORED AS CSV "
                             f"LOCATION '{folder}' TBLPROPERTIES ('skip.header.line.count'='1')"):
        r.close()
    session.settings.split_mb = split_bytes / 2**20
    session.settings.block_bytes = block_bytes
    res = list(session.execute(f"SELECT s, n FROM {name}"))[-1]
    got = sorted((s, n) for s, n in res.rows)
    res.close()
    want = sorted((s, int(n)) for s, n in csv.reader(io.StringIO(buf.getvalue(), newline=""))
                  if s != "s" or n != "n") * 2
    assert got == sorted(want)
