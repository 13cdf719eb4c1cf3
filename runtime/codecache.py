"""Loading a job's generated code inside a task, once per process.

The driver uploads the job module's source to the job's work prefix and puts
its URI and sha256 in every task event.  A task fetches it, checks the hash
(so a task never runs code other than what the driver compiled), compiles it
and keeps the namespace for later tasks of the same job in this process.
"""

from __future__ import annotations

import hashlib
import linecache
from typing import Any

from runtime import storage

_CACHE: dict[str, dict[str, Any]] = {}
_MAX_CACHED = 8


class CodeMismatchError(Exception):
    """The job code fetched does not have the sha256 the event names."""


def sha256_hex(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def load(code: dict) -> dict[str, Any]:
    """Namespace of the job module named by ``code = {"uri", "sha256"}``."""
    sha = code["sha256"]
    ns = _CACHE.get(sha)
    if ns is not None:
        return ns
    source = storage.read_range(code["uri"])
    actual = sha256_hex(source)
    if actual != sha:
        raise CodeMismatchError(f"job code at {code['uri']} has sha256 {actual[:12]}…, "
                                f"the task expects {sha[:12]}…")
    ns = load_source(source.decode("utf-8"), sha)
    if len(_CACHE) >= _MAX_CACHED:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[sha] = ns
    return ns


def load_source(source: str, sha: str | None = None) -> dict[str, Any]:
    """Compile and run a job module's source; its lines show in tracebacks."""
    sha = sha or sha256_hex(source.encode("utf-8"))
    filename = f"<sqlmr-job-{sha[:12]}>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    ns: dict[str, Any] = {"__name__": f"sqlmr_job_{sha[:12]}"}
    exec(compile(source, filename, "exec"), ns)
    return ns
