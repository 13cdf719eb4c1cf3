"""The folders the subprocess invoker extracts deployment packages into: one
per process and package, removed at exit, and inside the process's claimed
temporary folder, so that a run after a killed one sweeps them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

from sqlmr import scratch
from sqlmr.aws import invoker

KILLED = r"""
import io, os, sys, zipfile
from sqlmr.aws import invoker
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("handler.py", "def handle(event, context):\n    return event\n")
print(invoker.extract_zip(buf.getvalue(), "d" * 64, "sqlmr-test"), flush=True)
os._exit(9)   # as a SIGKILL: no exit handler runs
"""


def test_a_killed_processs_package_folder_is_swept_by_the_next_run(sqlmr_home):
    child = subprocess.run([sys.executable, "-c", KILLED], capture_output=True, text=True,
                           env=dict(os.environ, SQLMR_HOME=str(sqlmr_home)))
    folder = child.stdout.strip()
    assert child.returncode == 9, child.stderr
    assert os.path.isfile(os.path.join(folder, "handler.py"))
    assert os.path.basename(os.path.dirname(folder)).startswith("sqlmr-tmp-")
    scratch.sweep(str(sqlmr_home), s3=False)
    assert not os.path.exists(folder) and not os.path.exists(os.path.dirname(folder))


def test_a_package_is_extracted_once_per_process_and_removed(sqlmr_home, monkeypatch):
    monkeypatch.setattr(invoker, "_package_dirs", {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "")
    folder = invoker.extract_zip(buf.getvalue(), "e" * 64, "sqlmr-test")
    assert os.path.dirname(folder) == scratch.temp_dir()
    assert invoker.extract_zip(buf.getvalue(), "e" * 64, "sqlmr-test") == folder
    invoker.remove_extracted_packages()
    assert not os.path.exists(folder)
