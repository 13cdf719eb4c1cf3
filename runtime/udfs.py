"""Users' Python files inside a task: fetched, hash-checked, imported once.

A job that calls a Python UDF ships the UDF's file beside the job code: the
task event's ``code`` names it (``{"files": [{"name", "uri", "sha256"}]}``).
The generated module binds each UDF to an :class:`Unbound` placeholder; only
a task (:func:`bind`, called by :mod:`runtime.codecache`) replaces it with
the user's function, after checking the file's sha256.  The driver loads the
same module for its sort keys without ever importing a user file: calling a
placeholder fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import traceback
from typing import Any

from runtime import storage


class FileMismatchError(Exception):
    """A shipped file does not have the sha256 the event names."""


class UdfError(Exception):
    """A user's function raised; the message holds its traceback and the row."""


class Unbound:
    """A UDF before a task has bound it (the driver never does)."""

    def __init__(self, name: str, module: str, function: str, sha256: str,
                 aggregate: bool = False) -> None:
        self.name, self.module, self.function, self.sha256 = name, module, function, sha256
        self.aggregate = aggregate   # a class: a task binds one instance of it

    def __call__(self, *args: Any) -> Any:
        raise RuntimeError(f"function {self.name}() runs only inside a task")


def files_dir(files: list[dict]) -> str:
    """The folder holding a job's shipped files on this machine (one per set
    of contents); a file is fetched when the folder lacks it (or holds
    another content), and what is fetched must have the sha256 the event names."""
    key = hashlib.sha256("".join(sorted(f["sha256"] for f in files)).encode()).hexdigest()
    folder = os.path.join(tempfile.gettempdir(), "sqlmr-files", key[:16])
    for f in files:
        path = os.path.join(folder, f["name"])
        if _sha_of(path) == f["sha256"]:
            continue   # fetched by an earlier task of this machine, unchanged since
        data = storage.read_range(f["uri"])
        actual = hashlib.sha256(data).hexdigest()
        if actual != f["sha256"]:
            raise FileMismatchError(f"shipped file {f['name']} at {f['uri']} has sha256 "
                                    f"{actual[:12]}…, the task expects {f['sha256'][:12]}…")
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    return folder


def _sha_of(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _import(folder: str, module: str, sha256: str) -> Any:
    """The user's module from ``folder``, imported once per content."""
    key = f"sqlmr_udf_{sha256[:16]}_{module}"
    mod = sys.modules.get(key)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(key, os.path.join(folder, module + ".py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)   # the file may import the files shipped beside it
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(folder)
    sys.modules[key] = mod
    return mod


def bind(ns: dict[str, Any], files: list[dict]) -> None:
    """Replace the module's UDF placeholders with the users' functions."""
    unbound = [(k, v) for k, v in ns.items() if isinstance(v, Unbound)]
    if not unbound:
        return
    folder = files_dir(files)
    for key, u in unbound:
        bound = getattr(_import(folder, u.module, u.sha256), u.function)
        ns[key] = bound() if u.aggregate else bound


def user_error(e: BaseException, files: list[dict], where: str) -> UdfError | None:
    """A UdfError for an exception raised in a user's file (None if it was not):
    the traceback from the user's first frame, and where the row was read."""
    if not files:
        return None
    folder = os.path.realpath(files_dir(files))
    frames = traceback.extract_tb(e.__traceback__)
    first = next((i for i, fr in enumerate(frames)
                  if os.path.realpath(os.path.dirname(fr.filename)) == folder), None)
    if first is None:
        return None
    lines = traceback.format_list(frames[first:]) + traceback.format_exception_only(type(e), e)
    text = "".join(lines).replace(folder + os.sep, "")
    return UdfError(f"a Python function raised{where}:\nTraceback (most recent call last):\n"
                    f"{text.rstrip()}")
