"""What a killed driver leaves behind: workers, scratch, staging, temp files.

Each test runs a real ``sqlmr`` driver as a subprocess over a generated file
big enough for a job of a few seconds (``--workers 2``, small splits), stops
it the way `timeout`, CI or `docker stop` do (SIGTERM), or the way a crash
does (SIGKILL), and then looks at /proc and at the disk.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = 600_000
KEYS = 3000

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# ----------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Counter]:
    """A folder with one CSV file of ROWS lines (k, v, padding) and the
    expected count per key."""
    folder = tmp_path_factory.mktemp("cleanup-data") / "t"
    folder.mkdir()
    rnd = random.Random(16)
    counts: Counter = Counter()
    lines = []
    for i in range(ROWS):
        k = f"k{rnd.randrange(KEYS)}"
        counts[k] += 1
        lines.append(f"{k},{i % 97},{'x' * 30}\n")
    (folder / "t.csv").write_text("".join(lines))
    return folder, counts


def _env(home: Path, tmp: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), SQLMR_HOME=str(home), TMPDIR=str(tmp))


def _table(folder: Path) -> str:
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS t (k STRING, v INT, s STRING) ROW FORMAT "
            f"DELIMITED FIELDS TERMINATED BY ',' LOCATION '{folder}'; ")


GROUP_BY = "SELECT k, count(*) AS n, sum(v), max(s) FROM t GROUP BY k ORDER BY k"


def _start(env: dict[str, str], sql: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sqlmr", "--workers", "2", "--split-mb", "0.25",
                             "--format", "csv", *flags, "-e", sql],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sqlmr", *args], capture_output=True, text=True,
                          env=env, timeout=180)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie is dead, not yet reaped


def _descendants(root: int) -> set[int]:
    """Live processes below ``root`` (workers, a fork server and its workers)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                children.setdefault(st[1], []).append(int(name))
    out: set[int] = set()
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out and _alive(c):
                out.add(c)
                todo.append(c)
    return out


def _wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _job_running(proc: subprocess.Popen, home: Path, workers: int = 2) -> set[int]:
    """Wait until the driver has its workers and a job folder; returns the workers."""
    jobs = home / "jobs"

    def ready():
        assert proc.poll() is None, proc.communicate()
        kids = _descendants(proc.pid)
        folders = list(jobs.iterdir()) if jobs.is_dir() else []
        return kids if len(kids) >= workers and folders else None
    return _wait_for(ready, 60, "the job's workers and scratch folder")


def _none_alive(pids: set[int], timeout: float = 10) -> None:
    try:
        _wait_for(lambda: not any(_alive(p) for p in pids), timeout, "workers to die")
    except AssertionError as e:
        alive = {p: (_stat(p), _cmd(p)) for p in pids if _alive(p)}
        raise AssertionError(f"{e}: still alive {alive}") from None


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80].decode()
    except OSError:
        return ""


def _leftovers(home: Path) -> list[str]:
    jobs = home / "jobs"
    out = [p.name for p in jobs.iterdir()] if jobs.is_dir() else []
    claims = home / "claims"
    return out + ([p.name for p in claims.iterdir()] if claims.is_dir() else [])


def _expected(counts: Counter) -> dict[str, int]:
    return dict(counts)


def _parse(csv_text: str) -> dict[str, int]:
    lines = csv_text.strip().splitlines()[1:]
    return {ln.split(",")[0]: int(ln.split(",")[1]) for ln in lines}


@pytest.fixture
def env(tmp_path, data) -> tuple[dict[str, str], Path, Path]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    e = _env(home, tmp)
    r = _run(e, "-e", _table(data[0]))
    assert r.returncode == 0, r.stderr
    return e, home, tmp


# ------------------------------------------------------------------- tests

def test_sigkill_driver_takes_its_workers_and_the_next_run_reclaims_scratch(env, data):
    e, home, tmp = env
    proc = _start(e, GROUP_BY)
    workers = _job_running(proc, home)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _none_alive(workers)
    assert _leftovers(home), "a SIGKILLed driver cannot clean up: the next run must"
    r = _run(e, "-e", "SELECT count(*) FROM t")
    assert r.returncode == 0, r.stderr
    assert f"{ROWS}" in r.stdout
    assert _leftovers(home) == []
    assert list(tmp.iterdir()) == []


def test_sigterm_cancels_the_job_like_ctrl_c(env, data):
    e, home, tmp = env
    proc = _start(e, GROUP_BY)
    workers = _job_running(proc, home)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.splitlines()[0].startswith("sqlmr: terminated (SIGTERM): cancelled after "), err
    assert "Traceback" not in err
    _none_alive(workers)
    assert _leftovers(home) == []   # cleaned by the driver itself, not by a later run
    assert list(tmp.iterdir()) == []


def _embedding_script(folder: Path, split_mb: float, per_result: str) -> Path:
    """A program that runs GROUP_BY through a Session while another thread
    exists (as a REPL or an embedding program does): its driver uses a fork
    server.  ``per_result``: a statement on each result ``r``."""
    script = folder / "embed.py"
    script.write_text(
        "import threading, time\n"
        "from sqlmr.config import Settings\n"
        "from sqlmr.session import Session\n"
        "from sqlmr.backends.local import start_method\n"
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
        "    assert start_method() == 'forkserver'\n"
        f"    s = Session(Settings(workers=2, split_mb={split_mb!r}))\n"
        f"    for r in s.execute({GROUP_BY!r}):\n"
        f"        {per_result}\n")
    return script


def test_forkserver_workers_die_with_a_killed_driver(env, data, tmp_path):
    """A driver with other threads (a REPL, an embedding program) uses a fork
    server: its workers' parent is the fork server, not the driver."""
    e, home, _ = env
    script = _embedding_script(tmp_path, 64, "list(r.rows)")   # a task of seconds
    proc = subprocess.Popen([sys.executable, str(script)], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    below = _job_running(proc, home, workers=3)  # fork server, a worker, resource tracker
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # the fork server and its workers at once, not when the running tasks end
    # (a worker whose driver is gone would stop at its next read of the task
    # queue); the stdlib's resource tracker exits once they are gone
    _none_alive({p for p in below if "resource_tracker" not in _cmd(p)}, timeout=2.5)
    _none_alive(below)


def test_clean_removes_dead_jobs_scratch_and_never_a_live_jobs(env, data):
    e, home, _ = env
    live = _start(e, GROUP_BY)
    _job_running(live, home)
    live_files = set(_leftovers(home))
    dead = _start(e, GROUP_BY)
    _wait_for(lambda: len(set(_leftovers(home)) - live_files) >= 2
              and len(_descendants(dead.pid)) >= 2, 60, "the second job")
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=10)
    dead_files = set(_leftovers(home)) - live_files
    assert any(not n.endswith(".claim") for n in dead_files)

    r = _run(e, "clean")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("removed "), r.stdout
    left = set(_leftovers(home))
    assert not left & dead_files
    assert live_files <= left, "the live job's scratch and claim must stay"
    out, err = live.communicate(timeout=180)
    assert live.returncode == 0, err
    assert _parse(out) == _expected(data[1])
    assert _leftovers(home) == []
    assert _run(e, "clean").stdout.strip() == "nothing to clean"


def test_staging_and_result_file_of_a_killed_ctas_are_reclaimed(env, data, tmp_path):
    """A SIGKILLed CREATE TABLE AS leaves a hidden staging folder beside its
    target (and, for ORDER BY, a result file in $TMPDIR): the next run's
    sweep removes them; the target's folder gets nothing."""
    e, home, tmp = env
    dest = tmp_path / "out"
    for sql in (f"CREATE TABLE o LOCATION '{dest}' AS SELECT k, v, s FROM t",
                f"CREATE TABLE o2 LOCATION '{dest}' AS SELECT k, v, s FROM t ORDER BY k, v"):
        proc = _start(e, sql)
        _job_running(proc, home)
        # let the tasks (or the driver's merge) write some staging data
        _wait_for(lambda: [p for p in tmp_path.iterdir() if ".sqlmr-staging-" in p.name]
                  or list(tmp.rglob("sqlmr-result-*")), 60, "staging or result data")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_for(lambda: not _descendants(proc.pid), 10, "workers to die")
        assert _run(e, "clean").returncode == 0
        assert [p.name for p in tmp_path.iterdir() if "sqlmr-staging" in p.name] == []
        assert list(tmp.iterdir()) == []
        assert _leftovers(home) == []
        assert not dest.exists()


def test_sigterm_while_an_order_by_ctas_writes_leaves_no_result_file(env, data, tmp_path):
    e, home, tmp = env
    dest = tmp_path / "sorted"
    proc = _start(e, f"CREATE TABLE o LOCATION '{dest}' AS SELECT k, v, s FROM t ORDER BY k, v")
    _wait_for(lambda: list(tmp.rglob("sqlmr-result-*")), 120, "the driver to write the result")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 143), err   # it may have finished meanwhile
    assert list(tmp.rglob("*")) == []
    assert [p.name for p in tmp_path.iterdir() if "sqlmr-staging" in p.name] == []
    assert _leftovers(home) == []


def test_a_killed_worker_is_replaced_and_the_job_succeeds(env, data):
    e, home, _ = env
    proc = _start(e, GROUP_BY)
    workers = _job_running(proc, home)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert _parse(out) == _expected(data[1])
    assert not _alive(victim)
    assert _leftovers(home) == []


def test_a_deep_tmpdir_does_not_break_the_fork_server(env, data, tmp_path):
    """A Unix socket's path has at most 107 bytes: under a $TMPDIR that deep,
    the fork server's socket goes in /tmp and the query runs."""
    e, home, _ = env
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    assert len(str(deep)) > 107 - len("/pymp-xxxxxxxx/listener-xxxxxxxx")
    script = _embedding_script(
        tmp_path, 0.25, "print('\\n'.join(f'{row[0]},{row[1]}' for row in [('k', 'n')] + list(r.rows)))")
    r = subprocess.run([sys.executable, str(script)], env={**e, "TMPDIR": str(deep)},
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert _parse(r.stdout) == _expected(data[1])


def test_a_sweep_removes_only_what_a_dead_claim_lists_and_sqlmr_creates(tmp_path, sqlmr_home):
    """A claim file lists paths; a sweep removes them only once the owner is
    dead, and only if they have the shape of sqlmr's folders (a corrupt or
    edited claim cannot make it delete a user's folder)."""
    from sqlmr import scratch
    jobs = Path(scratch.jobs_dir())
    mine = jobs / "20260101-000000-aaaaaa"
    scratch.register(str(mine))
    mine.mkdir(parents=True)
    staging, precious = tmp_path / ".o.sqlmr-staging-abcd", tmp_path / "precious"
    code = ("import os, signal\n"
            "from sqlmr import scratch\n"
            f"for p in ({str(staging)!r}, {str(precious)!r}):\n"
            "    scratch.register(p); os.makedirs(p)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == -signal.SIGKILL
    assert staging.is_dir() and precious.is_dir()
    assert scratch.sweep(unclaimed=True) == (1, 0)
    assert not staging.exists()
    assert precious.is_dir()
    assert mine.is_dir(), "this live process's claim keeps its folder"
    assert [p.suffix for p in Path(scratch.claims_dir()).iterdir()] == [".claim"]
