"""Writes never destroy what sqlmr did not create: CREATE TABLE AS keeps hidden
and ``_`` content (it refuses a non-empty LOCATION), INSERT OVERWRITE DIRECTORY
refuses each protected target (tested one by one), replaces only an empty
folder or an earlier sqlmr output unless forced, neither writes in or around a
table's location, ``--output`` is replaced all or nothing, and repeated
column names become ``a``, ``a_1`` where names must be unique."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from aws_fixtures import moto_server, s3_bucket  # noqa: F401
from compiler.errors import SqlError
from test_ctas import ct, leftovers, run  # noqa: F401


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its text."""
    return {str(p.relative_to(folder)): p.read_text()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith(("_", ".")))


# ------------------------------------------------------------ CREATE TABLE AS

def test_ctas_refuses_a_location_holding_only_hidden_and_underscore_entries(ct, tmp_path):
    dest = tmp_path / "dest"
    (dest / "_archive").mkdir(parents=True)
    (dest / "_archive" / "2023.csv").write_text("old,1\n")
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = tree(dest)
    with pytest.raises(SqlError, match=r"location .*dest is not empty \(\.git, _archive\)"):
        run(ct, f"CREATE TABLE o LOCATION '{dest}' AS SELECT sourceIP FROM uv")
    assert tree(dest) == before and leftovers(tmp_path) == []
    assert ct.session.catalog.tables().get("o") is None


def test_ctas_into_an_empty_folder_writes_parts_and_a_manifest(ct, tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    msg = run(ct, f"CREATE TABLE o LOCATION '{dest}' AS SELECT sourceIP, duration FROM uv")
    assert msg.startswith("created table o")
    parts = data_files(dest)
    assert parts and all(p.startswith("part-") for p in parts)
    doc = json.loads((dest / "_SUCCESS").read_text())
    assert doc == {"writer": "sqlmr", "files": parts}
    assert len(ct.sqlmr("SELECT * FROM o")) == 1500  # the marker is not read as data


def test_commit_never_replaces_a_folder_filled_while_the_job_ran(tmp_path):
    """The root of the fix: the commit of a CREATE TABLE AS is a rename that
    fails on a non-empty folder, whatever the earlier check saw."""
    from sqlmr.table_writes import commit, staging_for
    from runtime import storage
    dest = tmp_path / "dest"
    staging = staging_for(str(dest))
    part = storage.join(staging, "task-0")
    storage.write_bytes(part, b"a,1\n")
    (dest / ".git").mkdir(parents=True)      # appears after the check
    (dest / ".git" / "HEAD").write_text("keep me\n")
    with pytest.raises(SqlError, match="no longer empty"):
        commit(staging, [part], storage.to_uri(str(dest)), overwrite=False)
    assert tree(dest) == {".git/HEAD": "keep me\n"}


def test_failed_driver_side_write_leaves_no_result_file_in_tmpdir(tmp_path, monkeypatch):
    """The ORDER BY / LIMIT path writes the merged rows to a temporary file
    first: Ctrl-C while it is written removes it."""
    import tempfile
    from sqlmr.table_writes import staging_for, write_rows
    made: list[str] = []
    real = tempfile.NamedTemporaryFile

    def recorded(*a, **k):
        f = real(*a, **k)
        made.append(f.name)
        return f

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", recorded)
    staging = staging_for(str(tmp_path / "dest"))
    with pytest.raises(KeyboardInterrupt):
        write_rows(failing_rows(10000, KeyboardInterrupt()), staging, ",", 2)
    assert made and not any(os.path.exists(m) for m in made)


def test_overwrite_of_a_dangling_symlink_names_it(ct, tmp_path):
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(SqlError, match="is a symlink to .*nowhere, which does not exist"):
        insert(ct, str(link))
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_ctas_location_inside_an_input_table_is_refused(ct, tmp_path):
    inside = tmp_path / "uv" / "copy"
    with pytest.raises(SqlError, match=r"LOCATION .*uv/copy is inside the location of table uv"):
        run(ct, f"CREATE TABLE c LOCATION '{inside}' AS SELECT * FROM uv")
    assert not inside.exists() and leftovers(tmp_path / "uv") == []
    assert ct.session.catalog.tables().get("c") is None
    assert len(ct.sqlmr("SELECT * FROM uv")) == 1500  # still its own rows, not 3,000


def test_ctas_location_containing_an_input_table_is_refused(ct, tmp_path):
    with pytest.raises(SqlError, match="contains the location of table"):
        run(ct, f"CREATE TABLE c LOCATION '{tmp_path}' AS SELECT code FROM cc")


def test_ctas_location_inside_another_catalogued_table_is_refused(ct, tmp_path):
    with pytest.raises(SqlError, match="is inside the location of table rk"):
        run(ct, f"CREATE TABLE c LOCATION '{tmp_path / 'rk' / 'more'}' AS SELECT code FROM cc")


def test_ctas_repeated_column_names_become_unique(ct):
    run(ct, "CREATE TABLE d AS SELECT code AS a, country AS a, continent AS A FROM cc")
    assert [c.name for c in ct.session.catalog.get("d").columns] == ["a", "a_1", "A_2"]
    assert len(ct.sqlmr("SELECT a, a_1, A_2 FROM d")) == 8


# ------------------------------------------- INSERT OVERWRITE DIRECTORY guards

def insert(t, target: str, force: bool = False) -> str:
    t.session.settings.force = force
    return run(t, f"INSERT OVERWRITE DIRECTORY '{target}' SELECT code FROM cc")


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """A home directory and a current directory of the test's own, each
    holding a canary file."""
    home = tmp_path / "home" / "me"
    work = home / "work"
    work.mkdir(parents=True)
    (home / "canary.txt").write_text("home\n")
    (work / "canary.txt").write_text("work\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


def intact(home: Path) -> bool:
    return (home / "canary.txt").read_text() == "home\n" and \
        (home / "work" / "canary.txt").read_text() == "work\n"


def test_overwrite_refuses_the_root_folder(ct, canary):
    with pytest.raises(SqlError, match="refusing to replace the root folder /"):
        insert(ct, "/", force=True)
    assert intact(canary)


@pytest.mark.parametrize("target", ["~", "{home}", "{home}/"])
def test_overwrite_refuses_the_home_directory(ct, canary, target):
    with pytest.raises(SqlError, match="refusing to replace your home directory"):
        insert(ct, target.format(home=canary), force=True)
    assert intact(canary)


def test_overwrite_refuses_a_folder_above_home(ct, canary):
    with pytest.raises(SqlError, match="contains your home directory"):
        insert(ct, str(canary.parent), force=True)
    assert intact(canary)


def test_overwrite_refuses_sqlmr_home_and_inside_it(ct, sqlmr_home):
    catalog = (sqlmr_home / "catalog.json").read_text()
    with pytest.raises(SqlError, match=r"refusing to replace \$SQLMR_HOME"):
        insert(ct, str(sqlmr_home), force=True)
    with pytest.raises(SqlError, match=r"refusing to write inside \$SQLMR_HOME"):
        insert(ct, str(sqlmr_home / "out"), force=True)
    with pytest.raises(SqlError, match=r"contains \$SQLMR_HOME"):
        insert(ct, str(sqlmr_home.parent), force=True)
    assert (sqlmr_home / "catalog.json").read_text() == catalog
    assert not (sqlmr_home / "out").exists()


@pytest.mark.parametrize("target", ["", ".", "{work}"])
def test_overwrite_refuses_the_current_directory(ct, canary, target):
    with pytest.raises(SqlError, match="refusing to replace the current directory"):
        insert(ct, target.format(work=canary / "work"), force=True)
    assert intact(canary) and os.listdir(canary / "work") == ["canary.txt"]


def test_overwrite_refuses_a_folder_above_the_current_directory(ct, tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "canary.txt").write_text("x\n")
    monkeypatch.chdir(work)
    with pytest.raises(SqlError, match="contains the current directory"):
        insert(ct, "..", force=True)
    assert (work / "canary.txt").read_text() == "x\n"


def test_overwrite_refuses_the_parent_of_an_input_table(ct, tmp_path):
    before = tree(tmp_path / "cc")
    with pytest.raises(SqlError, match="contains the location of table cc"):
        insert(ct, str(tmp_path), force=True)
    assert tree(tmp_path / "cc") == before


def test_overwrite_refuses_an_input_table_and_a_folder_inside_it(ct, tmp_path):
    with pytest.raises(SqlError, match="is the location of table cc"):
        insert(ct, str(tmp_path / "cc"), force=True)
    with pytest.raises(SqlError, match="is inside the location of table cc"):
        insert(ct, str(tmp_path / "cc" / "sub"), force=True)
    assert not (tmp_path / "cc" / "sub").exists()


def test_overwrite_refuses_a_catalogued_table_the_query_does_not_read(ct, tmp_path):
    before = tree(tmp_path / "rk")
    with pytest.raises(SqlError, match="is the location of table rk"):
        insert(ct, str(tmp_path / "rk"), force=True)
    assert tree(tmp_path / "rk") == before


def test_overwrite_refuses_a_folder_holding_other_files_unless_forced(ct, tmp_path):
    dest = tmp_path / "out"
    (dest / "_keep").mkdir(parents=True)
    (dest / "_keep" / "notes.txt").write_text("mine\n")
    (dest / ".hidden").write_text("mine\n")
    before = tree(dest)
    with pytest.raises(SqlError, match=r"holds 2 files sqlmr did not write \(\.hidden, _keep\)"):
        insert(ct, str(dest))
    assert tree(dest) == before and leftovers(tmp_path) == []
    msg = insert(ct, str(dest), force=True)
    assert "(replaced 2 entries because of --force: .hidden, _keep)" in msg
    assert not (dest / "_keep").exists() and data_files(dest)
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_an_earlier_sqlmr_output_and_says_so(ct, tmp_path):
    dest = tmp_path / "out"
    first = insert(ct, str(dest))
    assert "replaced" not in first
    msg = insert(ct, str(dest))
    n = len(data_files(dest))
    assert f"(replaced an earlier sqlmr output ({n} file" in msg
    assert json.loads((dest / "_SUCCESS").read_text())["files"] == data_files(dest)


def test_overwrite_refuses_sqlmr_output_with_a_file_added_by_hand(ct, tmp_path):
    dest = tmp_path / "out"
    insert(ct, str(dest))
    (dest / "mine.csv").write_text("x\n")
    with pytest.raises(SqlError, match=r"holds 1 file sqlmr did not write \(mine.csv\)"):
        insert(ct, str(dest))
    assert (dest / "mine.csv").read_text() == "x\n"


def test_overwrite_refuses_a_success_file_sqlmr_did_not_write(ct, tmp_path):
    dest = tmp_path / "hadoop"
    dest.mkdir()
    (dest / "_SUCCESS").write_text("")
    (dest / "part-00000").write_text("theirs\n")
    with pytest.raises(SqlError, match=r"holds 2 files sqlmr did not write \(_SUCCESS, part-00000\)"):
        insert(ct, str(dest))
    assert (dest / "part-00000").read_text() == "theirs\n"


def test_overwrite_refuses_a_file(ct, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep\n")
    with pytest.raises(SqlError, match="is a file, not a folder"):
        insert(ct, str(target), force=True)
    assert target.read_text() == "keep\n"


def test_force_flag_on_the_command_line(tmp_path, monkeypatch, capsys):
    from sqlmr.cli import main
    data = tmp_path / "t"
    data.mkdir()
    (data / "p0").write_text("a,1\nb,2\n")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.csv").write_text("old\n")
    assert main(["-e", f"CREATE EXTERNAL TABLE t (k STRING, v INT) LOCATION '{data}'"]) == 0
    sql = f"INSERT OVERWRITE DIRECTORY '{dest}' SELECT k FROM t"
    assert main(["--no-timing", "-e", sql]) == 1
    assert "--force" in capsys.readouterr().err and (dest / "old.csv").exists()
    assert main(["--no-timing", "--force", "-e", sql]) == 0
    assert "because of --force: old.csv" in capsys.readouterr().err
    assert not (dest / "old.csv").exists()
    # --force never overrides a protected target
    assert main(["--force", "-e", f"INSERT OVERWRITE DIRECTORY '{data}' SELECT k FROM t"]) == 1
    assert (data / "p0").read_text() == "a,1\nb,2\n"


def test_s3_overwrite_guards(ct, s3_bucket):
    import boto3
    s3 = boto3.client("s3")
    base = f"s3://{s3_bucket}/warehouse"
    run(ct, f"CREATE TABLE bc LOCATION '{base}/bc' AS SELECT code, country FROM cc")
    for target, relation in ((f"{base}/bc", "is"), (f"{base}/bc/sub", "is inside"),
                             (base, "contains")):
        with pytest.raises(SqlError, match=f"{relation} the location of table bc"):
            insert(ct, target, force=True)
    with pytest.raises(SqlError, match="refusing to replace a whole bucket"):
        insert(ct, f"s3://{s3_bucket}/", force=True)
    s3.put_object(Bucket=s3_bucket, Key="other/_notes/a.txt", Body=b"mine")
    with pytest.raises(SqlError, match=r"sqlmr did not write \(_notes/a.txt\)"):
        insert(ct, f"s3://{s3_bucket}/other")
    msg = insert(ct, f"s3://{s3_bucket}/other", force=True)
    assert "because of --force: _notes/a.txt" in msg
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="other/")["Contents"])
    assert keys[0] == "other/_SUCCESS" and len(keys) == 2
    assert re.fullmatch(r"other/part-00000-[0-9a-f]{8}", keys[1])
    assert "replaced an earlier sqlmr output (1 file)" in insert(ct, f"s3://{s3_bucket}/other")
    # a CREATE TABLE AS on S3 counts hidden keys too
    s3.put_object(Bucket=s3_bucket, Key="t2/.keep", Body=b"")
    with pytest.raises(SqlError, match=r"is not empty \(\.keep\)"):
        run(ct, f"CREATE TABLE t2 LOCATION 's3://{s3_bucket}/t2' AS SELECT code FROM cc")


# ------------------------------------------------------------------ --output

def failing_rows(n: int, error: BaseException):
    for i in range(n):
        yield [f"k{i}", i]
    raise error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_output_file_is_kept_when_the_write_fails(tmp_path, error):
    from sqlmr.render import write_output_file
    out = tmp_path / "out.csv"
    out.write_text("old,result\n")
    with pytest.raises(type(error)):
        write_output_file(str(out), "csv", ["k", "v"], failing_rows(20000, error))
    assert out.read_text() == "old,result\n"
    assert os.listdir(tmp_path) == ["out.csv"]   # no temporary file left


def test_output_file_replaced_whole_keeps_mode_and_symlink(tmp_path):
    from sqlmr.render import write_output_file
    real = tmp_path / "real.json"
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    n = write_output_file(str(link), "json", ["a", "a"], iter([[1, 2]]))
    assert n == 1 and link.is_symlink()
    assert json.loads(real.read_text()) == [{"a": 1, "a_1": 2}]
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o640)
    assert sorted(os.listdir(tmp_path)) == ["link.json", "real.json"]


def test_output_cli_interrupted_keeps_old_file(tmp_path, monkeypatch, capsys):
    """End to end: Ctrl-C while the rows are written leaves the old file."""
    import sqlmr.render as render
    from sqlmr.cli import main
    data = tmp_path / "t"
    data.mkdir()
    (data / "p0").write_text("".join(f"k{i},{i}\n" for i in range(100)))
    out = tmp_path / "res.csv"
    out.write_text("previous\n")
    assert main(["-e", f"CREATE EXTERNAL TABLE t (k STRING, v INT) LOCATION '{data}'"]) == 0
    real = render.write_output

    def interrupted(fmt, columns, rows, f, types=None):
        return real(fmt, columns, failing_rows(5000, KeyboardInterrupt()), f, types)

    monkeypatch.setattr(render, "write_output", interrupted)
    assert main(["--output", str(out), "-e", "SELECT k, v FROM t"]) == 130
    assert out.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["res.csv", "t"]


# --------------------------------------------------- repeated names in JSON

def test_json_output_keeps_every_column_under_a_unique_name(ct):
    from sqlmr.render import write_rows
    rows = ct.sqlmr("SELECT code AS a, country AS a, continent AS a_1 FROM cc ORDER BY code")
    buf = io.StringIO()
    write_rows("json", ["a", "a", "a_1"], rows, buf)
    got = json.loads(buf.getvalue())
    assert list(got[0]) == ["a", "a_1", "a_1_1"]
    assert [list(o.values()) for o in got] == rows


def test_json_format_on_the_command_line(tmp_path, capsys):
    from sqlmr.cli import main
    data = tmp_path / "t"
    data.mkdir()
    (data / "p0").write_text("a,1\n")
    assert main(["-e", f"CREATE EXTERNAL TABLE t (k STRING, v INT) LOCATION '{data}'"]) == 0
    capsys.readouterr()
    assert main(["--format", "json", "-e", "SELECT k AS x, v AS X FROM t"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"x": "a", "X_1": 1}]
