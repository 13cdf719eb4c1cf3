"""The folders the subprocess invoker extracts deployment packages into: one
per process and package, named with the process id, removed at exit, and
removed by the next process when their own was killed before it could."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile

from sqlmr.aws import invoker


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handle(event, context):\n    return event\n")
    return buf.getvalue()


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


def test_a_killed_processs_package_folder_is_removed_by_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(invoker, "_package_dirs", {})
    # what a task process killed with SIGKILL leaves: its extracted package
    orphan = tmp_path / f"sqlmr-test-{'a' * 12}-{_dead_pid()}-k1ll3d"
    (orphan / "runtime").mkdir(parents=True)
    # a folder of a process still running, and one named by an older sqlmr: kept
    alive = tmp_path / f"sqlmr-test-{'b' * 12}-{os.getppid()}-running"
    alive.mkdir()
    other = tmp_path / "sqlmr-test-cccccccccccc-oldname"
    other.mkdir()

    folder = invoker.extract_zip(_zip(), "d" * 64, "sqlmr-test")
    assert os.path.basename(folder).startswith(f"sqlmr-test-{'d' * 12}-{os.getpid()}-")
    assert os.path.isfile(os.path.join(folder, "handler.py"))
    assert not orphan.exists() and alive.exists() and other.exists()
    # the same package again: the same folder, nothing extracted twice
    assert invoker.extract_zip(_zip(), "d" * 64, "sqlmr-test") == folder
    invoker.remove_extracted_packages()
    assert not os.path.exists(folder) and alive.exists()
