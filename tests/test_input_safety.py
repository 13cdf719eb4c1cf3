"""Input that cannot be read as planned never gives an answer with exit 0:
truncated or corrupt gzip, unreadable folders and files, files that change
while a query runs, broken or looping symbolic links; and a very long line is
read whole, in time linear in its length."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aws_fixtures import moto_server, s3_bucket  # noqa: F401  (fixtures)
from runtime.inputs import InputError, SplitReader
from test_cli import sqlmr


def _lines(path: Path, cuts: list[int], block_bytes: int) -> list[str]:
    """Every line of ``path`` read as splits cut at ``cuts``."""
    size = path.stat().st_size
    edges = [0, *sorted(c for c in cuts if 0 < c < size), size]
    out: list[str] = []
    for s, e in zip(edges, edges[1:]):
        if s < e:
            for block in SplitReader(path.as_uri(), s, e, block_bytes=block_bytes):
                out.extend(block)
    return out


# ------------------------------------------------------------ long lines

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(long_len=st.integers(1, 300_000), before=st.lists(st.text("ab,", max_size=5), max_size=3),
       after=st.lists(st.text("ab,", max_size=5), max_size=3), final_newline=st.booleans(),
       cuts=st.lists(st.integers(0, 400_000), max_size=4), block_bytes=st.sampled_from([7, 4096, 1 << 16]))
def test_a_line_longer_than_many_chunks_is_read_intact(tmp_path_factory, long_len, before, after,
                                                       final_newline, cuts, block_bytes):
    """A line spanning many read chunks (and any split cuts) comes out whole,
    once, with its neighbours."""
    long = "x" * (long_len - 1) + "y"
    lines = [*before, long, *after]
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path = tmp_path_factory.mktemp("long") / "t.txt"
    path.write_text(text)
    expected = text.split("\n")
    if expected[-1] == "":   # an empty final line is not a row
        expected.pop()
    assert _lines(path, cuts, block_bytes) == expected


def test_a_50_mb_line_with_no_newline_is_one_row(tmp_path):
    """The issue's case: 50 MB and no newline at all, as one split and as many."""
    path = tmp_path / "one.txt"
    size = 50 << 20
    path.write_bytes(b"z" * size)
    assert [len(line) for line in _lines(path, [], 1 << 20)] == [size]
    assert [len(line) for line in _lines(path, list(range(1, size, 7 << 20)), 1 << 20)] == [size]
    gz = tmp_path / "one.gz"
    gz.write_bytes(gzip.compress(b"q" * size + b"\nend\n", 1))
    got = [line for block in SplitReader(gz.as_uri(), 0, gz.stat().st_size) for line in block]
    assert [len(line) for line in got] == [size, 3] and got[1] == "end"


# ------------------------------------------------------------------- gzip

ROWS = "".join(f"k{i},{i}\n" for i in range(100_000)).encode()


def _table(folder: Path, name: str = "t", env: dict | None = None) -> None:
    r = sqlmr("-e", f"CREATE EXTERNAL TABLE {name} (k STRING, v INT) LOCATION '{folder}'")
    assert r.returncode == 0, r.stderr


def _one_line_error(r, *needles: str) -> None:
    """Exit 1 with one line on stderr naming each of ``needles``, no traceback."""
    assert r.returncode == 1, (r.returncode, r.stdout[-500:], r.stderr)
    assert "Traceback" not in r.stderr and "remote traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def _gz_table(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "gz"
    folder.mkdir()
    (folder / "a.csv").write_text("a,1\n")          # a good file beside the bad one
    (folder / "b.gz").write_bytes(data)
    _table(folder)
    return folder / "b.gz"


@pytest.mark.parametrize("strict", [[], ["--strict"]], ids=["lenient", "strict"])
def test_a_gzip_file_cut_in_half_fails_the_query_naming_it(tmp_path, strict):
    """Today's wrong answer: the first half plus a garbage last row, exit 0."""
    whole = gzip.compress(ROWS)
    bad = _gz_table(tmp_path, whole[:len(whole) // 2])
    r = sqlmr(*strict, "-e", "SELECT COUNT(*), SUM(v) FROM t")
    _one_line_error(r, str(bad), "truncated gzip file")
    bad.write_bytes(whole)    # the same table with the whole file answers
    r = sqlmr("--format", "csv", "-e", "SELECT COUNT(*), SUM(v) FROM t")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == f"100001,{sum(range(100_000)) + 1}"


def test_a_gzip_file_with_a_corrupt_byte_fails_naming_it(tmp_path):
    whole = bytearray(gzip.compress(ROWS))
    whole[len(whole) // 2] ^= 0xFF
    bad = _gz_table(tmp_path, bytes(whole))
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "corrupt gzip data")


def test_a_file_named_gz_that_is_not_gzip_fails_once_naming_it(tmp_path, sqlmr_home):
    """One line, and a single attempt: the data will not get better on a retry."""
    bad = _gz_table(tmp_path, ROWS)
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), str(bad), "not gzip data")
    from sqlmr.config import Settings
    from sqlmr.session import Session
    s = Session(Settings(workers=2))
    try:
        with pytest.raises(InputError, match="not gzip data"):
            list(s.run_select("SELECT COUNT(*) FROM t").rows)
        tries = [a for a in s.backend().attempts if a[2] > 0]
        assert tries == [], tries
    finally:
        s.close()


def test_concatenated_and_zero_padded_gzip_members_read_whole(tmp_path):
    """What gzip itself accepts still reads: several members, zero padding."""
    member = gzip.compress(ROWS[:ROWS.index(b"\n", 1000) + 1])
    path = tmp_path / "m.gz"
    path.write_bytes(member + b"\0" * 10 + member + b"\0" * 3)
    got = [line for block in SplitReader(path.as_uri(), 0, path.stat().st_size, block_bytes=7)
           for line in block]
    assert got == ROWS[:ROWS.index(b"\n", 1000) + 1].decode().splitlines() * 2


# ------------------------------------------------------- symbolic links

def test_a_broken_symbolic_link_as_location_says_so(tmp_path):
    link = tmp_path / "t"
    link.symlink_to(tmp_path / "gone")
    _table(link)
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"),
                    f"location {link} is a broken symbolic link to {tmp_path / 'gone'}")


def test_a_symbolic_link_loop_as_location_says_so(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    _table(a)
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"), f"location {a} is a symbolic link loop")


def test_a_location_under_a_broken_link_names_the_link(tmp_path):
    (tmp_path / "data").symlink_to(tmp_path / "unmounted")
    _table(tmp_path / "data" / "t")
    _one_line_error(sqlmr("-e", "SELECT COUNT(*) FROM t"),
                    f"is inside {tmp_path / 'data'}, which is a broken symbolic link to")


def test_links_inside_a_table_folder(tmp_path):
    """A linked file or folder is read; a broken link or a loop inside the
    folder fails naming it (it was 'does not exist', or silently skipped)."""
    data = tmp_path / "t"
    (data / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.csv").write_text("c,3\n")
    (data / "a.csv").write_text("a,1\n")
    (data / "sub" / "b.csv").write_text("b,2\n")
    (data / "linked").symlink_to(tmp_path / "elsewhere")
    _table(data)
    r = sqlmr("--format", "csv", "-e", "SELECT SUM(v) FROM t")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "6", r.stderr
    (data / "sub" / "up").symlink_to(data)
    _one_line_error(sqlmr("-e", "SELECT SUM(v) FROM t"), f"{data / 'sub' / 'up'} is a symbolic link loop")
    (data / "sub" / "up").unlink()
    (data / "z.csv").symlink_to(tmp_path / "nothing.csv")
    _one_line_error(sqlmr("-e", "SELECT SUM(v) FROM t"),
                    f"{data / 'z.csv'} is a broken symbolic link to {tmp_path / 'nothing.csv'}")


# ------------------------------------------------------ unreadable input

NOBODY = 65534


def _drop_privileges() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.fixture
def world(tmp_path_factory):
    """A folder anyone may use (pytest's own are root-only), with a $SQLMR_HOME
    in it; removed afterwards whatever modes the test left."""
    import shutil
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="sqlmr-perm-", dir="/tmp"))
    base.chmod(0o755)
    (base / "home").mkdir(mode=0o777)
    (base / "home").chmod(0o777)
    yield base
    for root, dirs, _ in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(base, ignore_errors=True)


def as_user(base: Path, *args: str):
    """``sqlmr *args`` run as a user that permissions apply to: nobody when
    the tests run as root (setpriv, else setuid in the child), else us."""
    import subprocess
    import sys
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(Path(__file__).parents[1]),
           "SQLMR_HOME": str(base / "home"), "HOME": str(base / "home"),
           "XDG_CONFIG_HOME": str(base / "home" / "xdg"), "LANG": "C.UTF-8"}
    cmd, preexec = _unprivileged([sys.executable, "-m", "sqlmr", *args])
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(base),
                          preexec_fn=preexec, timeout=120)


def _unprivileged(cmd: list[str]):
    """``cmd`` and a preexec_fn that run it as nobody when we are root."""
    import shutil
    if os.geteuid() != 0:
        return cmd, None
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd], None
    return cmd, _drop_privileges


@pytest.fixture
def perm_tables(world):
    """Tables t_dir (folder unreadable), t_sub (a subfolder unreadable), t_file
    (a file unreadable) and ok; each readable twin answers."""
    for name in ("t_dir", "t_sub", "t_file", "ok"):
        d = world / name
        (d / "sub").mkdir(parents=True)
        (d / "a.csv").write_text("a,1\n")
        (d / "sub" / "b.csv").write_text("b,2\n")
        for p in (d, d / "sub"):
            p.chmod(0o755)
        for p in (d / "a.csv", d / "sub" / "b.csv"):
            p.chmod(0o644)
        r = as_user(world, "-e", f"CREATE EXTERNAL TABLE {name} (k STRING, v INT) LOCATION '{d}'")
        if r.returncode != 0 and os.geteuid() == 0:
            pytest.skip(f"cannot run sqlmr as uid {NOBODY}: {r.stderr.strip()[-300:]}")
        assert r.returncode == 0, r.stderr
    r = as_user(world, "--format", "csv", "-e", "SELECT SUM(v) FROM ok")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "3", r.stderr
    (world / "t_dir").chmod(0o300)             # may not list it (nor read, as 000 would)
    (world / "t_sub" / "sub").chmod(0o000)
    (world / "t_file" / "sub" / "b.csv").chmod(0o000)
    return world


@pytest.mark.parametrize("table,needle", [
    ("t_dir", "cannot list folder {w}/t_dir: Permission denied"),
    ("t_sub", "cannot list folder {w}/t_sub/sub: Permission denied"),
    ("t_file", "cannot read {w}/t_file/sub/b.csv: Permission denied"),
])
def test_unreadable_input_fails_before_the_query_runs(perm_tables, table, needle):
    """0 rows with exit 0, a silently skipped subfolder, a traceback after three
    tries: each is now one line naming the path and the OS error, from the
    planning (no task runs, so nothing is retried)."""
    w = perm_tables
    r = as_user(w, "-e", f"SELECT COUNT(*), SUM(v) FROM {table}")
    _one_line_error(r, needle.format(w=w))
    r = as_user(w, "-e", f"EXPLAIN SELECT COUNT(*) FROM {table}")   # planning alone finds it
    _one_line_error(r, needle.format(w=w))
    assert not list((w / "home").glob("jobs/*/job.py"))   # no job was started


def test_a_folder_readable_but_not_searchable_names_its_files(perm_tables):
    """r-- on a folder lists names but no file in it can be opened."""
    w = perm_tables
    (w / "ok").chmod(0o744)
    r = as_user(w, "-e", "SELECT COUNT(*) FROM ok")
    _one_line_error(r, f"cannot read {w}/ok/", "Permission denied")


# ------------------------------------------------- files changed mid-query

def _planned(tmp_path: Path, text: str, sql: str = "SELECT COUNT(*), SUM(v) FROM t", **kw):
    """A session and the plan of ``sql`` over one file holding ``text``."""
    from sqlmr.config import Settings
    from sqlmr.driver import plan_job
    from sqlmr.session import Session
    data = tmp_path / "t"
    data.mkdir()
    (data / "a.csv").write_text(text)
    s = Session(Settings(workers=2, **kw))
    s.execute_one(f"CREATE EXTERNAL TABLE t (k STRING, v INT) LOCATION '{data}'")
    job = s.compile(sql)
    return s, job, plan_job(job, s.settings), data / "a.csv"


def _run(s, job, plans) -> list[tuple]:
    from sqlmr.driver import run_job
    with run_job(job, s.settings, s.backend(), s.scratch(), plans=plans) as result:
        return list(result.rows())


TEXT = "".join(f"k{i},{i}\n" for i in range(60_000))     # ~600 KB


def test_a_file_truncated_after_planning_fails_the_task_naming_it(tmp_path):
    """Today: fewer rows, exit 0.  Several splits, so tasks past the cut and the
    one reading across it each see it."""
    s, job, plans, path = _planned(tmp_path, TEXT, split_mb=0.1)
    try:
        assert len(plans[0].tasks) > 3
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size * 4 // 5)
        with pytest.raises(InputError, match=f"{path} changed while the query ran") as e:
            _run(s, job, plans)
        assert "when the query was planned" in str(e.value) or "before the end" in str(e.value)
        retried = [a for a in s.backend().attempts if a[2] > 0]
        assert retried == []                      # the data's fault: not retried
    finally:
        s.close()


def test_a_file_rewritten_at_the_same_size_fails(tmp_path):
    s, job, plans, path = _planned(tmp_path, TEXT)
    try:
        st = path.stat()
        path.write_text(TEXT.replace("k1,1\n", "k1,7\n"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        with pytest.raises(InputError, match="rewritten since the query was planned"):
            _run(s, job, plans)
    finally:
        s.close()


def test_a_file_that_grows_is_read_as_planned(tmp_path):
    """Appended rows (a log being written) are not read; the last planned line,
    with no newline yet, stays the row it was."""
    s, job, plans, path = _planned(tmp_path, TEXT + "last,5", split_mb=0.1)
    try:
        with open(path, "a") as f:
            f.write("5\nmore,100\n")
        assert _run(s, job, plans) == [(60_001, sum(range(60_000)) + 5)]
    finally:
        s.close()


def test_a_file_truncated_while_a_split_is_read(tmp_path):
    """The cut lands inside the range a reader is streaming."""
    path = tmp_path / "a.csv"
    path.write_text(TEXT)
    size = path.stat().st_size
    split = {"uri": path.as_uri(), "start": 0, "end": size, "size": size,
             "stamp": path.stat().st_mtime_ns}
    blocks = iter(SplitReader.of_split(split, block_bytes=4096))
    next(blocks)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(InputError, match="changed while the query ran"):
        for _ in blocks:
            pass


def test_a_gzip_file_truncated_after_planning_says_it_changed(tmp_path):
    gz = tmp_path / "a.gz"
    gz.write_bytes(gzip.compress(ROWS))
    st = gz.stat()
    split = {"uri": gz.as_uri(), "start": 0, "end": st.st_size, "gz": True,
             "size": st.st_size, "stamp": st.st_mtime_ns}
    with open(gz, "r+b") as f:
        f.truncate(st.st_size // 2)
    with pytest.raises(InputError, match=f"{gz} changed while the query ran"):
        list(SplitReader.of_split(split))


def test_an_s3_object_replaced_after_planning_fails_by_its_etag(moto_server, s3_bucket):
    """S3 reads are pinned to the ETag listed at planning (GetObject IfMatch):
    an object replaced since, shorter or not, fails naming it."""
    pytest.importorskip("boto3")
    from runtime import storage
    import boto3
    raw = boto3.client("s3", region_name=os.environ["AWS_REGION"])
    uri = f"s3://{s3_bucket}/t/a.csv"
    raw.put_object(Bucket=s3_bucket, Key="t/a.csv", Body=TEXT.encode())
    stamps: dict = {}
    files = storage.list_files(f"s3://{s3_bucket}/t", stamps)
    assert files == [(uri, len(TEXT))] and stamps[uri].strip('"')
    split = {"uri": uri, "start": 0, "end": len(TEXT), "size": len(TEXT), "stamp": stamps[uri]}
    assert sum(len(b) for b in SplitReader.of_split(split)) == 60_000      # as planned: reads
    raw.put_object(Bucket=s3_bucket, Key="t/a.csv", Body=TEXT.replace("k1,1", "k1,7").encode())
    with pytest.raises(InputError, match=f"{uri} changed while the query ran"):
        list(SplitReader.of_split(split))            # same size, another object
    with pytest.raises(InputError, match="changed while the query ran"):   # a later split too
        list(SplitReader.of_split({**split, "start": 5, "end": 10}))
    raw.put_object(Bucket=s3_bucket, Key="t/a.csv", Body=TEXT[:1000].encode())
    with pytest.raises(InputError, match=f"{uri} changed while the query ran"):
        list(SplitReader.of_split(split))


def test_a_file_truncated_while_the_query_runs_fails_naming_it(tmp_path, sqlmr_home):
    """The issue's case end to end: a query over one 40 MB file, cut to half as
    soon as its job starts (its code appears in $SQLMR_HOME/jobs), fails
    naming the file instead of answering from what was left."""
    import subprocess
    import sys
    import time
    data = tmp_path / "t"
    data.mkdir()
    path = data / "a.csv"
    with open(path, "w") as f:
        for chunk in range(40):
            f.write("".join(f"k{i},{i}\n" for i in range(chunk * 80_000, (chunk + 1) * 80_000)))
    _table(data)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "sqlmr", "--workers", "1", "--split-mb", "1",
                             "-e", "SELECT COUNT(*), SUM(v) FROM t"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(sqlmr_home.glob("jobs/*/job.py")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert f"{path} changed while the query ran" in err, err


def test_a_file_made_unreadable_after_planning_fails_without_retries(world):
    """Read as a user permissions apply to: a task whose file cannot be opened
    any more fails with InputError (backends do not retry it), not an OSError."""
    import subprocess
    import sys
    path = world / "a.csv"
    path.write_text(TEXT)
    path.chmod(0o644)
    script = (
        "import os, sys\n"
        "from runtime.inputs import InputError, SplitReader\n"
        f"p = {str(path)!r}\n"
        "st = os.stat(p)\n"
        "split = {'uri': 'file://' + p, 'start': 0, 'end': st.st_size, 'size': st.st_size,"
        " 'stamp': st.st_mtime_ns}\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    list(SplitReader.of_split(split))\n"
        "except InputError as e:\n"
        "    print('InputError:', e)\n")
    cmd, preexec = _unprivileged([sys.executable, "-c", script])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
                            cwd=str(world), preexec_fn=preexec)
    path.chmod(0o000)
    out, _ = proc.communicate("go\n", timeout=60)
    assert out.strip() == f"InputError: cannot read {path} (it could be read when the query " \
                          f"was planned): Permission denied", out


def test_a_file_removed_after_planning_fails_naming_it(tmp_path):
    s, job, plans, path = _planned(tmp_path, TEXT)
    try:
        path.unlink()
        with pytest.raises(InputError, match=f"{path} changed while the query ran .it no longer"):
            _run(s, job, plans)
    finally:
        s.close()
