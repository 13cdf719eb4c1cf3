"""Hive's ``SELECT TRANSFORM (cols) USING 'command' AS (names)`` inside a task.

The task's rows go to the command's stdin as tab-separated lines (``\\N`` for
NULL); each line of its stdout is a row, cut at tabs into as many fields as
the AS clause names (missing ones are NULL, extra ones dropped, as Hive does;
both are counted).  A writer thread feeds stdin while the task reads stdout,
so neither side waits on a full pipe; memory holds one line at a time.  The
command runs in a fresh folder holding the shipped files (fetched and
sha256-checked, see :mod:`runtime.udfs`), with the task's permissions.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from typing import Iterator

from runtime import shuffle, storage, udfs

NULL = "\\N"
STDERR_TAIL = 4000   # characters of the command's stderr kept for the report


class TransformError(Exception):
    """The TRANSFORM command failed (non-zero exit, or could not start)."""


def _field(v) -> str:
    if v is None:
        return NULL
    try:
        return shuffle.text_value(v, "\t")
    except ValueError:   # a tab or newline in a value: written as it is, as Hive does
        return str(v)


def command_args(command: str) -> list[str]:
    """The command split as a shell would, ``python``/``python3`` being this
    process's interpreter (the one a Lambda runtime has).

    >>> command_args("python3 url_count.py 'a b'")[1:]
    ['url_count.py', 'a b']
    """
    args = shlex.split(command)
    if args and args[0] in ("python", "python3"):
        args[0] = sys.executable
    return args


def run(records: Iterator[list], spec: dict, files: list[dict],
        counters: dict[str, int]) -> Iterator[list]:
    """The command's output rows for ``records`` (lists of values)."""
    width = spec["width"]
    cwd = tempfile.mkdtemp(prefix="sqlmr-transform-")
    try:
        if files:
            folder = udfs.files_dir(files)
            for f in files:
                shutil.copy(os.path.join(folder, f["name"]), os.path.join(cwd, f["name"]))
        try:
            proc = subprocess.Popen(command_args(spec["command"]), cwd=cwd,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, encoding="utf-8",
                                    errors="surrogateescape", bufsize=1 << 16)
        except OSError as e:
            raise TransformError(f"cannot run {spec['command']!r}: {e.strerror or e}") from None
        tail: deque[str] = deque()
        size = [0]
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                assert proc.stdin is not None
                for r in records:
                    proc.stdin.write("\t".join(map(_field, r)) + "\n")
            except BrokenPipeError:
                pass   # the command stopped reading: its exit status tells
            except BaseException as e:  # noqa: BLE001 — reported by the task
                failed.append(e)
            finally:
                try:
                    proc.stdin.close()   # type: ignore[union-attr]
                except OSError:
                    pass

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail.append(line)
                size[0] += len(line)
                while size[0] > STDERR_TAIL and len(tail) > 1:
                    size[0] -= len(tail.popleft())

        threads = [threading.Thread(target=feed, daemon=True),
                   threading.Thread(target=drain, daemon=True)]
        for t in threads:
            t.start()
        short = long = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < width:
                short += 1
                fields += [NULL] * (width - len(fields))
            elif len(fields) > width:
                long += 1
                del fields[width:]
            yield [None if f == NULL else f for f in fields]
        status = proc.wait()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]
        if short:
            counters["transform_short_rows"] = counters.get("transform_short_rows", 0) + short
        if long:
            counters["transform_long_rows"] = counters.get("transform_long_rows", 0) + long
        if status != 0:
            err = "".join(tail).rstrip()
            raise TransformError(f"TRANSFORM command {spec['command']!r} exited with status "
                                 f"{status}" + (f"; its stderr ends:\n{err}" if err else ""))
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def piped(writer: shuffle.PartitionedWriter, spec: dict, files: list[dict],
          counters: dict[str, int]) -> tuple[shuffle.PartitionedWriter, int]:
    """A writer holding the command's output for the rows ``writer`` holds
    (partition 0), and how many rows went in."""
    out = shuffle.PartitionedWriter(1)
    n_in = [0]
    with tempfile.NamedTemporaryFile(prefix="sqlmr-transform-in-") as tmp:
        start, end = writer.write_to(tmp)["partitions"][0]
        tmp.flush()

        def records() -> Iterator[list]:
            for batch in shuffle.iter_batches(storage.to_uri(tmp.name), start, end):
                n_in[0] += len(batch)
                yield from batch

        batch: list = []
        for row in run(records(), spec, files, counters):
            batch.append(row)
            if len(batch) >= 4096:
                out.add_batch(0, batch)
                batch = []
        if batch:
            out.add_batch(0, batch)
    return out, n_in[0]
