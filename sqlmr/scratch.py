"""Scratch space that outlives no job: claims, sweeping and temporary files.

A driver that is killed (SIGKILL, a crash, a power cut) cannot clean up after
itself, so every driver process *claims* what it creates: job scratch folders
under ``$SQLMR_HOME/jobs``, hidden staging folders beside CREATE TABLE AS /
INSERT targets, and its temporary folder in ``$TMPDIR``.  The claim is one
file per process, ``$SQLMR_HOME/claims/<pid>-<token>.claim``, listing
those paths one per line (and the S3 staging prefixes and commit intents of
writes to S3, see :mod:`sqlmr.table_writes`; a line ``-<uri>`` releases one
that is done), with an exclusive ``flock`` held for the life of the process.
The kernel drops the lock when the process (and any worker that inherited the
descriptor) is gone, so a claim whose lock can be taken belongs to a dead
driver: :func:`sweep` removes what it lists (and resolves its commits).  A live job's claim is
locked, so its files are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Iterator

from runtime import storage
from sqlmr import config

CLAIMS = "claims"  # beside jobs/, which holds only job folders
# Only paths of these shapes are ever removed from a dead claim (a corrupt or
# hand-edited claim file must not make sqlmr delete anything else).
_STAGING = re.compile(r"^(\..+\.sqlmr-staging-[0-9a-f]+|_sqlmr-staging-[0-9a-f]+)$")
_TEMP = re.compile(r"^sqlmr-tmp-\d+-[0-9a-f]+$")
# S3 shapes: a staging prefix inside a destination or under the job prefix, and
# the intent object of a commit (rolled back or forward, never just deleted)
_S3_STAGING = re.compile(
    r"^s3://[^/]+/(?:.+/_sqlmr-staging-[0-9a-f]+|sqlmr/jobs/staging-[0-9a-f]+)/$")
_S3_INTENT = re.compile(r"^s3://[^/]+/.+/_sqlmr-commit-[0-9a-f]+$")

_lock = threading.Lock()
_claim: "_Claim | None" = None
_temp_dir: str | None = None


@dataclass
class _Claim:
    """This process's open, locked claim file."""
    home: str
    fd: int
    path: str
    pid: int = field(default_factory=os.getpid)


def jobs_dir(home: str | None = None) -> str:
    """The folder holding job scratch folders (and the claims)."""
    return os.path.join(home or str(config.home()), "jobs")


def claims_dir(home: str | None = None) -> str:
    """The folder holding the drivers' claim files."""
    return os.path.join(home or str(config.home()), CLAIMS)


def _open_claim() -> _Claim:
    """Create and lock this process's claim file; it becomes visible (under
    its final name) only once locked, so a sweeper never takes it for dead."""
    home = str(config.home())
    folder = claims_dir(home)
    os.makedirs(folder, exist_ok=True)
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = os.path.join(folder, name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    final = os.path.join(folder, name + ".claim")
    os.rename(tmp, final)
    return _Claim(home, fd, final)


def register(path_or_uri: str) -> None:
    """Record that this process owns ``path_or_uri`` (a local folder, or an S3
    staging prefix or commit intent) until it exits or :func:`release` s it;
    call it *before* creating it.  Other S3 URIs are not recorded (the Lambda
    backend's job scratch has its own lifecycle rule)."""
    if storage.is_s3(path_or_uri):
        if not (_S3_STAGING.match(path_or_uri) or _S3_INTENT.match(path_or_uri)):
            return
        line = path_or_uri
    else:
        line = os.path.abspath(storage.to_path(path_or_uri).rstrip("/"))
    if "\n" in line:
        return  # cannot be listed one per line; such a name is never made by sqlmr
    _append(line)


def release(uri: str) -> None:
    """Say that an S3 prefix or intent :func:`register` ed is gone (local
    folders need not be: their absence is seen)."""
    if storage.is_s3(uri) and "\n" not in uri:
        _append("-" + uri)


def _append(line: str) -> None:
    global _claim
    with _lock:
        # a forked child must not append to its parent's claim, nor a claim
        # of another $SQLMR_HOME (tests switch homes within one process)
        if _claim is None or _claim.pid != os.getpid() or _claim.home != str(config.home()):
            if _claim is not None and _claim.pid == os.getpid():
                os.close(_claim.fd)  # another home: one open claim per process, not one per home
            _claim = _open_claim()
        os.write(_claim.fd, (line + "\n").encode("utf-8", "surrogateescape"))


def _pending_s3(listed: list[str]) -> list[str]:
    """The S3 entries of a claim not released, intents first (a commit is
    resolved before its staging goes)."""
    released = {line[1:] for line in listed if line.startswith("-")}
    out = [line for line in listed if storage.is_s3(line) and line not in released]
    return sorted(set(out), key=lambda u: (not _S3_INTENT.match(u), u))


def _sweep_s3(uri: str) -> None:
    """Resolve a dead driver's commit intent, or delete its staging prefix."""
    if _S3_INTENT.match(uri):
        from sqlmr.table_writes import recover_commit
        recover_commit(uri)
    elif _S3_STAGING.match(uri):
        storage.delete_prefix(uri)


def _removable(path: str, home: str) -> bool:
    """Whether a path listed in a dead claim is of a shape sqlmr creates."""
    parent, base = os.path.split(path)
    if not os.path.isabs(path) or base in ("", ".", ".."):
        return False
    if parent == jobs_dir(home):
        return True
    return bool(_STAGING.match(base) or _TEMP.match(base))


def _size(path: str) -> int:
    """Bytes under ``path`` (best effort, for the report)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _remove(path: str) -> int:
    """Remove a file or folder; returns the bytes it held (0 if absent)."""
    if not os.path.lexists(path):
        return 0
    if os.path.isdir(path) and not os.path.islink(path):
        size = _size(path)
        shutil.rmtree(path, ignore_errors=True)
        return size
    size = os.lstat(path).st_size
    with contextlib.suppress(OSError):
        os.unlink(path)
    return size


def _live_paths(claims: str) -> set[str]:
    """Paths listed by live claims (read without the lock, a torn last line
    ignored: a folder is registered before it is created)."""
    live: set[str] = set()
    for name in os.listdir(claims):
        if name.endswith(".claim"):
            with contextlib.suppress(OSError):
                with open(os.path.join(claims, name), encoding="utf-8",
                          errors="surrogateescape") as f:
                    live.update(line.rstrip("\n") for line in f if line.endswith("\n"))
    return live


def sweep(home: str | None = None, unclaimed: bool = False) -> tuple[int, int]:
    """Remove what dead drivers left behind; returns ``(paths, bytes)`` removed.

    Every claim whose lock can be taken belongs to a dead process: the paths
    it lists are removed, then the claim.  With ``unclaimed`` (``sqlmr clean``)
    job folders under ``jobs/`` that no live claim lists are removed too:
    those of ``--keep-scratch`` runs and of older sqlmr versions."""
    home = home or str(config.home())
    claims = claims_dir(home)
    removed = size = 0
    try:
        names = os.listdir(claims)
    except OSError:
        names = []
    mine = _claim.path if _claim is not None and _claim.pid == os.getpid() else None
    for name in names:
        path = os.path.join(claims, name)
        if path == mine or not name.endswith((".claim", ".tmp")):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live driver holds it
            if os.fstat(fd).st_nlink == 0:
                continue  # another sweeper removed it meanwhile
            with os.fdopen(os.dup(fd), encoding="utf-8", errors="surrogateescape") as f:
                listed = [line.rstrip("\n") for line in f if line.strip()]
            for p in listed:
                if _removable(p, home) and os.path.lexists(p):
                    size += _remove(p)
                    removed += 1
            kept = False
            for uri in _pending_s3(listed):
                try:
                    _sweep_s3(uri)
                    removed += 1
                except Exception:  # S3 unreachable now: the claim stays for the next run
                    kept = True
            if not kept:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        finally:
            os.close(fd)
    if unclaimed and os.path.isdir(jobs_dir(home)):
        live = _live_paths(claims) if os.path.isdir(claims) else set()
        for name in os.listdir(jobs_dir(home)):
            p = os.path.join(jobs_dir(home), name)
            if p not in live:
                n = _remove(p)
                removed += 1
                size += n
    return removed, size


def _at_exit() -> None:
    """On a normal exit: remove this process's temporary folder, and its claim
    when nothing it lists is left (else the next run's sweep removes that)."""
    claim = _claim
    if claim is None or claim.pid != os.getpid():
        return
    if _temp_dir is not None:
        _remove(_temp_dir)
    with contextlib.suppress(OSError):
        with open(claim.path, encoding="utf-8", errors="surrogateescape") as f:
            listed = [line.rstrip("\n") for line in f if line.strip()]
        if not any(os.path.lexists(p) for p in listed) and not _pending_s3(listed):
            os.unlink(claim.path)


atexit.register(_at_exit)


def temp_dir() -> str:
    """This process's own folder in ``$TMPDIR`` (claimed: swept if it dies)."""
    global _temp_dir
    with _lock:
        if _temp_dir is not None and os.path.isdir(_temp_dir) and \
                os.path.basename(_temp_dir).startswith(f"sqlmr-tmp-{os.getpid()}-"):
            return _temp_dir
    path = os.path.join(tempfile.gettempdir(), f"sqlmr-tmp-{os.getpid()}-{secrets.token_hex(4)}")
    register(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    with _lock:
        _temp_dir = path
    return path


@contextlib.contextmanager
def temp_file(prefix: str) -> Iterator[IO[bytes]]:
    """A temporary file (open for binary writing) that is removed on every way
    out of the ``with`` block: success, error, Ctrl-C or SIGTERM; after a
    SIGKILL its claimed folder is swept by the next run."""
    f = tempfile.NamedTemporaryFile(prefix=prefix, dir=temp_dir(), delete=False)
    try:
        with f:
            yield f
    finally:
        with contextlib.suppress(OSError):
            os.unlink(f.name)
