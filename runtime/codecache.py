"""Loading a job's generated code inside a task, once per process.

The driver uploads the job module's source to the job's work prefix and puts
its URI and sha256 in every task event.  A task fetches it, checks the hash
(so a task never runs code other than what the driver compiled), compiles it
and keeps the namespace for later tasks of the same job in this process.

Processes live long (REPL workers, warm Lambdas) and run job after job, so
what is kept is bounded: the namespaces of the last :data:`MAX_CACHED` jobs
(a namespace holds the job's broadcast hash tables, ``_BC``, which are
emptied when the job is evicted) and the ``linecache`` entries (the source
shown in tracebacks) of the last :data:`MAX_LINES` modules loaded.
"""

from __future__ import annotations

import hashlib
import linecache
from collections import OrderedDict
from typing import Any

from runtime import storage, udfs

# A worker runs the tasks of one job at a time; one more keeps a job whose
# tasks interleave with the next one's (two REPL statements) warm.
MAX_CACHED = 2
# Sources kept for tracebacks: the cached jobs' and a few the driver loaded.
MAX_LINES = 4

_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()  # sha256 -> namespace, oldest first
_LINES: OrderedDict[str, None] = OrderedDict()  # linecache file names we added, oldest first


class CodeMismatchError(Exception):
    """The job code fetched does not have the sha256 the event names."""


def sha256_hex(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def load(code: dict) -> dict[str, Any]:
    """Namespace of the job module named by ``code = {"uri", "sha256"}``, its
    users' functions bound from ``code["files"]`` (each sha256-checked; the
    job's sha256 covers theirs, as its source names them)."""
    sha = code["sha256"]
    ns = _CACHE.get(sha)
    if ns is not None:
        _CACHE.move_to_end(sha)
        udfs.bind(ns, code.get("files") or [])   # loaded unbound by load_local?
        return ns
    source = storage.read_range(code["uri"])
    actual = sha256_hex(source)
    if actual != sha:
        raise CodeMismatchError(f"job code at {code['uri']} has sha256 {actual[:12]}…, "
                                f"the task expects {sha[:12]}…")
    ns = load_source(source.decode("utf-8"), sha)
    udfs.bind(ns, code.get("files") or [])
    return _keep(sha, ns)


def load_local(source: str, sha: str) -> dict[str, Any]:
    """Namespace of a job module the caller holds (the driver: sort keys),
    through the same bounded cache as :func:`load`."""
    ns = _CACHE.get(sha)
    if ns is not None:
        _CACHE.move_to_end(sha)
        return ns
    return _keep(sha, load_source(source, sha))


def _keep(sha: str, ns: dict[str, Any]) -> dict[str, Any]:
    """Cache ``ns``, evicting the least recently used jobs beyond MAX_CACHED."""
    _CACHE[sha] = ns
    while len(_CACHE) > MAX_CACHED:
        old_sha, old = _CACHE.popitem(last=False)
        _release(old_sha, old)
    return ns


def _release(sha: str, ns: dict[str, Any]) -> None:
    """Free what an evicted job holds now, not at the next cyclic collection
    (its functions and namespace reference each other): the broadcast hash
    tables, and its source in ``linecache``."""
    bc = ns.get("_BC")
    if isinstance(bc, dict):
        bc.clear()
    _forget_lines(_filename(sha))


def _filename(sha: str) -> str:
    return f"<sqlmr-job-{sha[:12]}>"


def _forget_lines(filename: str) -> None:
    _LINES.pop(filename, None)
    linecache.cache.pop(filename, None)


def load_source(source: str, sha: str | None = None) -> dict[str, Any]:
    """Compile and run a job module's source; its lines show in tracebacks
    (for the last MAX_LINES modules loaded)."""
    sha = sha or sha256_hex(source.encode("utf-8"))
    filename = _filename(sha)
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    _LINES[filename] = None
    _LINES.move_to_end(filename)
    while len(_LINES) > MAX_LINES:
        _forget_lines(next(iter(_LINES)))
    ns: dict[str, Any] = {"__name__": f"sqlmr_job_{sha[:12]}"}
    exec(compile(source, filename, "exec"), ns)
    return ns
