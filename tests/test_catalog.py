"""The catalog: table names are identifiers, a managed table's folder stays in
the warehouse, DROP deletes only what sqlmr wrote, and concurrent writers
never lose a table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.errors import SqlError
from sqlmr.catalog import Catalog, check_table_name

REPO = Path(__file__).resolve().parents[1]

BAD_NAMES = ["../../escape", "../x", "a/b", "/abs", ".", "..", ".hidden", "1abc", "a b", "a-b",
             "a.b", "é", "t\n", "x" * 129, "a\\b"]
GOOD_NAMES = ["t", "_x", "A1_b", "page_views2", "x" * 128]


def run(session, sql: str) -> list:
    results = list(session.execute(sql))
    for r in results:
        r.close()
    return results


@pytest.fixture
def src(session, tmp_path) -> Path:
    """An external table ``src`` (two rows) for CREATE TABLE AS to read."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "p0").write_text("a,1\nb,2\n")
    run(session, f"CREATE EXTERNAL TABLE src (k STRING, n INT) LOCATION '{folder}'")
    return folder


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_identifiers_are_table_names(name):
    assert check_table_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_other_names_are_refused_naming_the_name(name):
    with pytest.raises(SqlError) as e:
        check_table_name(name)
    assert repr(name) in e.value.message and "not an identifier" in e.value.message
    with pytest.raises(SqlError):
        Catalog().create(__import__("compiler.schema", fromlist=["Table"]).Table(
            name, [], "file:///tmp/x"))


@pytest.mark.parametrize("name", ["../../escape", "../x", "a/b", "1abc", ".hidden"])
def test_ctas_name_cannot_escape_the_warehouse(session, src, sqlmr_home, tmp_path, name):
    outside = tmp_path.parent
    before = listing(outside)
    with pytest.raises(SqlError, match="not an identifier") as e:
        run(session, f"CREATE TABLE {quoted(name)} AS SELECT k, n FROM src")
    assert e.value.offset is not None  # the caret points at the name
    assert listing(outside) == before  # nothing written anywhere
    assert not (sqlmr_home / "warehouse").exists()
    assert set(session.catalog.tables()) == {"rankings", "uservisits", "documents", "src"}
    with pytest.raises(SqlError, match="not an identifier"):
        run(session, f"EXPLAIN CREATE TABLE {quoted(name)} AS SELECT k, n FROM src")


def test_ctas_with_location_and_bad_name_writes_nothing(session, src, tmp_path):
    dest = tmp_path / "dest"
    with pytest.raises(SqlError, match="not an identifier"):
        run(session, f"CREATE TABLE `a/b` LOCATION '{dest}' AS SELECT k FROM src")
    assert not dest.exists()


def test_external_table_name_must_be_an_identifier(session, src):
    with pytest.raises(SqlError, match="'../up' is not an identifier") as e:
        run(session, f"CREATE EXTERNAL TABLE `../up` (k STRING) LOCATION '{src}'")
    assert e.value.offset is not None
    assert "../up" not in session.catalog.tables()


def test_warehouse_folder_that_links_outside_is_refused(session, src, sqlmr_home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sqlmr_home / "warehouse").mkdir()
    os.symlink(elsewhere, sqlmr_home / "warehouse" / "t")
    with pytest.raises(SqlError, match="outside the warehouse"):
        run(session, "CREATE TABLE t AS SELECT k FROM src")
    assert list(elsewhere.iterdir()) == []


def test_drop_managed_table_deletes_its_folder(session, src, sqlmr_home):
    run(session, "CREATE TABLE t AS SELECT k, n FROM src")
    folder = sqlmr_home / "warehouse" / "t"
    assert any(p.name.startswith("part-") for p in folder.iterdir())
    assert "and its files" in run(session, "DROP TABLE t")[-1].message
    assert not folder.exists() and (sqlmr_home / "warehouse").is_dir()


def test_drop_keeps_files_sqlmr_did_not_write(session, src, sqlmr_home):
    run(session, "CREATE TABLE t AS SELECT k, n FROM src")
    folder = sqlmr_home / "warehouse" / "t"
    (folder / "notes.txt").write_text("mine")
    assert "its files are kept" in run(session, "DROP TABLE t")[-1].message
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_drop_external_table_never_deletes_its_files(session, src):
    run(session, "DROP TABLE src")
    assert (src / "p0").read_text() == "a,1\nb,2\n"


@pytest.mark.parametrize("where", ["outside", "warehouse", "other_table", "home"])
def test_drop_of_a_managed_entry_pointing_elsewhere_deletes_nothing(session, src, sqlmr_home,
                                                                     tmp_path, where):
    """A catalog entry marked managed whose location is not <warehouse>/<name>
    (written by an older sqlmr, or edited by hand) is unregistered, its files kept."""
    run(session, "CREATE TABLE other AS SELECT k FROM src")
    target = {"outside": tmp_path / "victim", "warehouse": sqlmr_home / "warehouse",
              "other_table": sqlmr_home / "warehouse" / "other", "home": sqlmr_home}[where]
    target.mkdir(exist_ok=True)
    (target / "part-00000").write_text("keep me\n")
    doc = json.loads((sqlmr_home / "catalog.json").read_text())
    doc["tables"]["t"] = {"name": "t", "columns": [["k", "string"]], "location": target.as_uri(),
                          "delimiter": ",", "builtin": False, "properties": {"managed": True}}
    (sqlmr_home / "catalog.json").write_text(json.dumps(doc))
    assert "its files are kept" in run(session, "DROP TABLE t")[-1].message
    assert (target / "part-00000").read_text() == "keep me\n"
    assert "t" not in session.catalog.tables()


WRITER = """
import sys, time
from pathlib import Path
from compiler.schema import Column, Table
from sqlmr.catalog import Catalog
proc, n, start = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
while time.time() < start:  # every writer starts at the same moment
    time.sleep(0.001)
cat = Catalog()
for i in range(n):
    cat.create(Table(f"t{proc}_{i}", [Column("k", "string")], f"file:///data/{proc}/{i}"))
    cat.tables()  # a reader never sees half a catalog
"""


def writers(home: Path, procs: int, n: int) -> None:
    import time
    env = dict(os.environ, SQLMR_HOME=str(home), PYTHONPATH=str(REPO))
    start = time.time() + 1.5  # after every interpreter has started
    ps = [subprocess.Popen([sys.executable, "-c", WRITER, str(p), str(n), str(start)], env=env,
                           stderr=subprocess.PIPE, text=True) for p in range(procs)]
    errors = [p.communicate(timeout=120)[1] for p in ps]
    assert [p.returncode for p in ps] == [0] * procs, errors


def test_concurrent_writers_lose_no_table(sqlmr_home):
    """8 processes each create 10 tables at once: all 80 are in the catalog."""
    writers(sqlmr_home, 8, 10)
    names = set(Catalog().tables()) - {"rankings", "uservisits", "documents"}
    assert names == {f"t{p}_{i}" for p in range(8) for i in range(10)}
    assert not [p.name for p in sqlmr_home.iterdir() if p.name.startswith(".catalog-")]


def test_concurrent_create_and_drop(sqlmr_home):
    """Drops under the lock too: each process's drops remove only its tables."""
    writers(sqlmr_home, 4, 5)
    cat = Catalog()
    script = ("import sys\nfrom sqlmr.catalog import Catalog\np = int(sys.argv[1])\n"
              "for i in range(5):\n    Catalog().drop(f't{p}_{i}')\n")
    env = dict(os.environ, SQLMR_HOME=str(sqlmr_home), PYTHONPATH=str(REPO))
    ps = [subprocess.Popen([sys.executable, "-c", script, str(p)], env=env) for p in (0, 2)]
    assert [p.wait(timeout=120) for p in ps] == [0, 0]
    assert set(cat.tables()) - {"rankings", "uservisits", "documents"} == \
        {f"t{p}_{i}" for p in (1, 3) for i in range(5)}
