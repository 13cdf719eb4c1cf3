"""End to end through a pseudo-terminal: ``python -m sqlmr`` as a user meets it."""

from __future__ import annotations

import os
import random
import re
import signal
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "sqlmr> "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[>=]|\r")


def plain(text: str) -> str:
    return ANSI.sub("", text)


def make_data(path: Path, mb: float) -> None:
    """A CSV of about ``mb`` MB: ip, url, revenue, country."""
    rnd = random.Random(7)
    block = "".join(f"{rnd.randint(1, 255)}.{rnd.randint(0, 255)}.1.{i % 255},"
                    f"http://example.com/{i},{rnd.random() * 100:.4f},"
                    f"{rnd.choice(['US', 'DE', 'FR', 'JP'])}\n" for i in range(20000))
    with open(path, "w") as f:
        for _ in range(int(mb * 1e6 / len(block)) + 1):
            f.write(block)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# started as from a terminal, and as a shell starts a background command
# (SIGINT ignored, which Python would keep): Ctrl-C must cancel either way
@pytest.fixture(params=["sigint default", "sigint ignored at start"])
def child(request, tmp_path):
    home = tmp_path / "home"
    data = tmp_path / "visits"
    data.mkdir()
    make_data(data / "part-0.csv", 60)
    env = dict(os.environ, SQLMR_HOME=str(home), TERM="xterm-256color",
               PROMPT_TOOLKIT_NO_CPR="1", PAGER="", XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ignored = request.param == "sigint ignored at start"
    p = pexpect.spawn(sys.executable, ["-m", "sqlmr"], cwd=str(ROOT), env=env,
                      encoding="utf-8", dimensions=(40, 120), timeout=30,
                      preexec_fn=_ignore_sigint if ignored else None)
    p.home = home
    p.data = data
    yield p
    if p.isalive():
        p.terminate(force=True)


def prompt(p) -> None:
    """Wait for a fresh prompt (prompt_toolkit draws "sqlmr>" and moves the
    cursor past the space)."""
    p.expect_exact("sqlmr>")


def until(p, pattern: str) -> str:
    """Everything printed up to and including ``pattern`` (a regex, which
    pexpect compiles with DOTALL: say ``[^\\n]*``, not ``.*``, or a prompt that
    arrived in the same read is swallowed), without terminal escapes.  On a
    timeout the failure shows what the terminal printed meanwhile."""
    try:
        p.expect(pattern)
    except pexpect.TIMEOUT:
        pytest.fail(f"no {pattern!r} within {p.timeout} s; the terminal showed:\n"
                    + plain(p.before)[-3000:])
    return plain(p.before + p.after)


def test_a_session_in_a_terminal(child):
    p = child
    assert "type \\? for help, \\q to quit" in until(p, r"Tables: [^\n]*\n")
    prompt(p)

    p.send(f"CREATE EXTERNAL TABLE visits (ip STRING, url STRING, rev DOUBLE, cc STRING) "
           f"LOCATION '{p.data}';\r")
    p.expect_exact("created table visits (4 columns)")
    prompt(p)

    # a statement over three lines runs when the ';' comes
    p.send("SELECT cc, count(*) AS n\r")
    p.expect_exact("...>")
    p.send("FROM visits\r")
    p.expect_exact("...>")
    p.send("GROUP BY cc ORDER BY n DESC;\r")
    out = until(p, r"Cost: Lambda[^\n]*\n")
    table = out[out.index("+--"):]
    lines = table.splitlines()
    assert re.fullmatch(r"\| cc +\| +n \|", lines[1])
    cells = [[c.strip() for c in ln.split("|")[1:3]] for ln in lines[3:7]]
    assert sorted(c for c, _ in cells) == ["DE", "FR", "JP", "US"]
    counts = [int(n) for _, n in cells]
    assert counts == sorted(counts, reverse=True) and lines[7].startswith("+--")
    assert "(4 rows)" in out and "Time: " in out
    assert out.count("(4 rows)") == 1
    prompt(p)

    # an error: the line, a caret under the bad token, the message; the REPL goes on
    p.send("SELECT rev, cnt\r")
    p.expect_exact("...>")
    p.send("FROM visits;\r")
    out = until(p, r"error: [^\n]*\n")
    err_lines = out.splitlines()
    i = next(n for n, ln in enumerate(err_lines) if ln.startswith("LINE 1: "))
    assert err_lines[i] == "LINE 1: SELECT rev, cnt"
    assert err_lines[i + 1].index("^") == err_lines[i].index("cnt")
    assert err_lines[i + 2].startswith("error: ") and "cnt" in err_lines[i + 2]
    prompt(p)

    # Ctrl-C at the prompt clears the line, twice, and does not exit
    p.send("SELECT this is abandoned")
    p.expect_exact("abandoned")
    p.send("\x03")
    prompt(p)
    p.send("\x03")
    prompt(p)
    assert p.isalive()

    # a slow query: one worker and many small splits; Ctrl-C once progress shows
    p.send("\\set workers 1\r")
    p.expect_exact("workers = 1")
    p.send("\\set split_mb 0.25\r")
    p.expect_exact("split_mb = 0.25")
    prompt(p)
    p.send("SELECT url, count(*), sum(rev) FROM visits GROUP BY url ORDER BY 2 DESC LIMIT 3;\r")
    p.expect(r"Stage-1 map +\[")
    p.send("\x03")
    out = until(p, "cancelled")
    prompt(p)
    assert "rows)" not in out
    assert not any((p.home / "jobs").iterdir())     # the job's scratch data is gone

    # and the next query runs normally
    p.send("\\set split_mb 0\r")
    p.expect_exact("split_mb = 0.0")
    p.send("SELECT count(*) FROM visits WHERE cc = 'US';\r")
    out = until(p, r"\(1 row\)")
    assert re.search(r"^\|\s+\d+ \|$", out, re.M)
    prompt(p)

    # Ctrl-D on an empty line exits with status 0
    p.send("\x04")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0
    history = (p.home / "history").read_text()
    assert "+SELECT cc, count(*) AS n\n+FROM visits\n+GROUP BY cc ORDER BY n DESC;" in history


def test_tall_results_go_through_the_pager_short_ones_do_not(tmp_path):
    home = tmp_path / "home"
    data = tmp_path / "nums"
    data.mkdir()
    (data / "n.csv").write_text("".join(f"{i},name{i}\n" for i in range(30)))
    env = dict(os.environ, SQLMR_HOME=str(home), TERM="xterm-256color",
               PROMPT_TOOLKIT_NO_CPR="1", PAGER="sed -e s/^/paged:/",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = pexpect.spawn(sys.executable, ["-m", "sqlmr"], cwd=str(ROOT), env=env,
                      encoding="utf-8", dimensions=(20, 100), timeout=30)
    try:
        prompt(p)
        p.send(f"CREATE EXTERNAL TABLE nums (n INT, name STRING) LOCATION '{data}';\r")
        p.expect_exact("created table nums")
        prompt(p)
        p.send("SELECT n, name FROM nums WHERE n < 3;\r")
        out = until(p, r"Cost: Lambda[^\n]*\n")
        assert "| name2  |" in out and "paged:" not in out
        prompt(p)
        p.send("SELECT n, name FROM nums;\r")
        out = until(p, r"Cost: Lambda[^\n]*\n")
        assert re.search(r"^paged:\|\s+0 \| name0\s+\|$", out, re.M)
        assert re.search(r"^paged:\|\s+29 \| name29 \|$", out, re.M)
        assert re.search(r"^\(30 rows\)$", out, re.M)     # the footer after the pager
        prompt(p)
        p.send("\\q\r")
        p.expect(pexpect.EOF)
        p.close()
        assert p.exitstatus == 0
    finally:
        if p.isalive():
            p.terminate(force=True)
