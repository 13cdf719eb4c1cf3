"""Where CREATE TABLE AS and INSERT OVERWRITE DIRECTORY may write, and how
their files are committed.

A write never deletes what sqlmr did not create:

* CREATE TABLE AS writes only into a folder that is missing or empty
  (hidden and ``_`` names count: ``.git`` or ``_archive`` make it not empty);
  its commit is a rename that fails rather than replace anything.
* INSERT OVERWRITE DIRECTORY refuses ``/``, the home directory or a folder
  above it, ``$SQLMR_HOME`` (inside or above), the current directory or a
  folder above it; and it replaces only a folder that is empty or holds an
  earlier sqlmr output (its ``_SUCCESS`` marker lists every file in it).
  ``force`` replaces a folder holding other files, and nothing else.
* Neither writes into, or over, the location of a catalogued table or of an
  input of the query: the table would read its own output.

The folder a commit writes holds ``part-NNNNN`` files and, except for a
managed table on a local disk (whose DROP deletes only its part files), a
``_SUCCESS`` file holding a small JSON manifest of them.  Readers skip ``_``
names.

Where the files are staged and how they are committed:

* Local destination: tasks write into a hidden folder beside it, which is
  renamed into place (Lambda tasks stage on S3; the driver then downloads
  the accepted files into that folder first).
* S3 destination: tasks write under a staging prefix (on the Lambda backend
  the job's scratch prefix ``s3://$SQLMR_BUCKET/sqlmr/jobs/``, the only place
  the function's role may write; on the local backend a hidden
  ``_sqlmr-staging-*`` prefix inside the destination).  The driver commits
  inside S3 with the user's credentials, no byte passing through it:

  1. an intent object ``_sqlmr-commit-<token>`` lists the new and the old files;
  2. each accepted file is copied (CopyObject, UploadPartCopy above 5 GiB) to
     ``part-NNNNN-<token>``, a name no earlier commit used;
  3. the ``_SUCCESS`` manifest naming them is written: the commit point.
     Readers take only the files a manifest names (runtime.s3.list_files), so
     they see the old table or the new one whole, never a mix;
  4. the old files, the intent and the staging objects are deleted.

  An error before step 3 deletes the copies; a driver killed during the
  commit leaves its intent, which the next run (or ``sqlmr clean``) finds in
  the dead driver's claim (:mod:`sqlmr.scratch`) and rolls back (no manifest
  names the copies yet) or forward (deletes the old files).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from compiler.errors import SqlError
from compiler.schema import Table
from runtime import storage
from runtime.shuffle import text_lines
from sqlmr import config

MARKER = storage.MARKER
INTENT = "_sqlmr-commit-"
COPY_THREADS = 8  # CopyObject requests in flight during an S3 commit
FORCE_HINT = "--force (or SET force = on) replaces a folder holding other files"


# ------------------------------------------------------------------ paths

def _canonical(uri: str) -> str:
    """A location for comparing with others: a local path resolved (symlinks,
    ``..``), an S3 URI without a trailing slash."""
    if storage.is_s3(uri):
        return uri.rstrip("/")
    return os.path.realpath(storage.to_path(uri))


def _within(inner: str, outer: str) -> bool:
    """Whether canonical location ``inner`` is ``outer`` or inside it."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _shown(uri: str) -> str:
    return uri if storage.is_s3(uri) else storage.to_path(uri)


def _overlap(target: str, location: str) -> str | None:
    """How canonical ``target`` relates to canonical ``location``, if at all."""
    if target == location:
        return "is"
    if _within(target, location):
        return "is inside"
    if _within(location, target):
        return "contains"
    return None


def check_table_overlap(uri: str, tables: Iterable[Table], text: str, what: str) -> None:
    """Refuse writing at ``uri`` when it is, is inside or contains the location
    of one of ``tables`` (the query's inputs and every catalogued table)."""
    target = _canonical(uri)
    seen: set[str] = set()
    for t in tables:
        if t.name.lower() in seen:
            continue
        seen.add(t.name.lower())
        relation = _overlap(target, _canonical(t.location))
        if relation is not None:
            raise SqlError(f"{what} {_shown(uri)} {relation} the location of table {t.name} "
                           f"({_shown(t.location)}); refusing to write there", text, None,
                           "write to a folder of its own, outside every table's location")


def check_protected_folder(uri: str, text: str) -> None:
    """Refuse an overwrite target that is ``/``, the home directory or above
    it, ``$SQLMR_HOME`` or inside or above it, or the current directory or
    above it (``force`` never overrides these)."""
    if storage.is_s3(uri):
        if not uri[len("s3://"):].partition("/")[2].strip("/"):  # s3://bucket itself
            raise SqlError(f"INSERT OVERWRITE DIRECTORY {uri}: refusing to replace a whole "
                           "bucket", text, None, "name a prefix of its own for the output")
        return
    target = _canonical(uri)
    what = f"INSERT OVERWRITE DIRECTORY {storage.to_path(uri)}"
    hint = "name a folder of its own for the output"
    if target == "/":
        raise SqlError(f"{what}: refusing to replace the root folder /", text, None, hint)
    checks = [
        (os.path.realpath(os.path.expanduser("~")), "your home directory", False),
        (os.path.realpath(str(config.home())), "$SQLMR_HOME", True),
        (os.path.realpath(os.getcwd()), "the current directory", False),
    ]
    for folder, name, inside_too in checks:
        if target == folder:
            raise SqlError(f"{what}: refusing to replace {name} ({folder})", text, None, hint)
        if _within(folder, target):
            raise SqlError(f"{what}: refusing to replace a folder that contains {name} "
                           f"({folder})", text, None, hint)
        if inside_too and _within(target, folder):
            raise SqlError(f"{what}: refusing to write inside {name} ({folder}), where sqlmr "
                           "keeps its catalog and tables", text, None, hint)


# --------------------------------------------------------------- contents

def entries(uri: str, skip: str | None = None) -> list[str] | None:
    """Everything in the folder at ``uri``, hidden and ``_`` names included (on
    S3: every key under the prefix, relative to it); None when it does not
    exist.  ``skip``: a relative prefix left out (S3 staging)."""
    if storage.is_s3(uri):
        from runtime import s3
        bucket, key = s3.split_uri(uri)
        key = key.rstrip("/")
        if key and s3._head(bucket, key, uri, probe=True) is not None:
            raise SqlError(f"{uri} is an object, not a folder (prefix)")
        prefix = key + "/" if key else ""
        names = [o["Key"][len(prefix):] for o in s3._list(bucket, prefix, uri)]
        names = [n for n in names if n and not (skip and n.startswith(skip))]
        return sorted(names) if names else None
    path = storage.to_path(uri)
    if os.path.isdir(path):
        return sorted(os.listdir(path))
    if os.path.islink(path):
        raise SqlError(f"{path} is a symlink to {os.readlink(path)}, which does not exist "
                       "or cannot be reached", hint="remove the link, or point it at a folder")
    if os.path.lexists(path):
        raise SqlError(f"{path} is a file, not a folder")
    return None


def manifest(uri: str) -> list[str] | None:
    """The files an earlier sqlmr write listed in its ``_SUCCESS`` marker at
    ``uri``; None when there is no such marker."""
    if storage.is_s3(uri):
        from runtime import s3  # from the listing when it can: see s3.folder_manifest
        return s3.folder_manifest(uri)
    try:
        data = storage.read_range(storage.join(uri, MARKER))
    except OSError:
        return None
    return storage.parse_manifest(data)


def _sample(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def replaced_contents(uri: str, force: bool, text: str | None = None,
                      skip: str | None = None) -> tuple[str, list[str]]:
    """What an overwrite of ``uri`` replaces: ``(description, names)``;
    ``("", [])`` for a missing or empty folder.  A folder holding anything
    but an earlier sqlmr output is refused unless ``force``."""
    names = entries(uri, skip)
    if not names:
        return "", []
    listed = manifest(uri) if MARKER in names else None
    ours = set() if listed is None else set(listed) | {MARKER}
    foreign = [n for n in names if n not in ours]
    if not foreign:
        files = [n for n in names if n != MARKER]
        return f"replaced an earlier sqlmr output ({_plural(len(files), 'file')})", names
    if force:
        return (f"replaced {_plural(len(names), 'entry', 'entries')} because of --force: "
                f"{_sample(names)}", names)
    raise SqlError(f"INSERT OVERWRITE DIRECTORY {_shown(uri)}: the folder holds "
                   f"{_plural(len(foreign), 'file')} sqlmr did not write ({_sample(foreign)}); "
                   f"refusing to replace {'it' if len(foreign) == 1 else 'them'}", text, None,
                   f"empty it or choose another folder; {FORCE_HINT}")


def check_empty(uri: str, text: str | None = None, skip: str | None = None) -> None:
    """Refuse a CREATE TABLE AS location that holds anything at all."""
    names = entries(uri, skip)
    if names:
        raise SqlError(f"location {_shown(uri)} is not empty ({_sample(names)})", text, None,
                       "choose another LOCATION, or empty it first; CREATE TABLE AS never "
                       "replaces files")


# ---------------------------------------------------------------- writing

def staging_for(uri: str, job_prefix: str | None = None) -> str:
    """Where the files of a write to ``uri`` are staged, claimed so that the
    next run removes it if this driver dies (:mod:`sqlmr.scratch`).

    ``job_prefix`` (the Lambda backend's ``s3://…/sqlmr/jobs/``): under it,
    where the function may write.  Otherwise a hidden folder next to (local)
    or inside (S3) the destination: readers skip names starting with '.' or '_'."""
    from sqlmr import scratch
    token = secrets.token_hex(4)
    if job_prefix is not None and storage.is_s3(job_prefix):
        staging = storage.join(job_prefix, f"staging-{token}") + "/"
    elif storage.is_s3(uri):
        staging = storage.join(uri, f"_sqlmr-staging-{token}") + "/"
    else:
        path = os.path.realpath(storage.to_path(uri))
        parent, base = os.path.split(path)
        staging = storage.to_uri(os.path.join(parent, f".{base}.sqlmr-staging-{token}")) + "/"
    scratch.register(staging)
    return staging


def discard(staging: str) -> None:
    """Delete a staging folder or prefix and drop it from this driver's claim."""
    from sqlmr import scratch
    storage.delete_prefix(staging)
    scratch.release(staging)


def write_rows(rows, staging: str, delimiter: str, width: int) -> tuple[list[str], int]:
    """Write result rows as one text file in ``staging`` (the driver-side path)."""
    uri = storage.join(staging, "driver-00000")
    n = 0
    from sqlmr import scratch  # its folder in $TMPDIR is swept if this driver is killed
    with tempfile.NamedTemporaryFile(prefix="sqlmr-result-", delete=False,
                                     dir=scratch.temp_dir()) as f:
        try:
            batch: list = []
            for r in rows:
                batch.append(r)
                if len(batch) >= 4096:
                    f.write(text_lines(batch, delimiter, width))
                    n += len(batch)
                    batch = []
            f.write(text_lines(batch, delimiter, width))
            n += len(batch)
        except BaseException:
            f.close()
            os.unlink(f.name)  # an error or Ctrl-C leaves no result file in $TMPDIR
            raise
    try:
        storage.write_file(uri, f.name)
    finally:
        os.unlink(f.name)
    return [uri], n


def commit(staging: str, parts: list[str], uri: str, overwrite: bool, marker: bool = True,
           force: bool = False) -> int:
    """Give the accepted files their final names and make them appear at
    ``uri`` together; returns the number of files.

    Without ``overwrite`` the destination must still be missing or empty;
    with it, its contents are checked again (they may have changed while the
    job ran) and replaced only as :func:`replaced_contents` allows.  On S3
    the manifest is always written (``marker`` is for local managed tables):
    readers rely on it."""
    if storage.is_s3(uri):
        return _commit_s3(staging, parts, uri, overwrite, force)
    if any(storage.is_s3(p) for p in parts):
        # Lambda tasks staged the files on S3: bring them beside the destination
        local = staging_for(uri)
        try:
            fetched = []
            for i, src in enumerate(parts):
                fetched.append(storage.join(local, f"fetched-{i:05d}"))
                storage.copy(src, fetched[-1])
            return _commit_local(local, fetched, uri, overwrite, marker, force)
        finally:
            discard(local)  # renamed away on success; a half-fetched folder otherwise
    return _commit_local(staging, parts, uri, overwrite, marker, force)


def _commit_local(staging: str, parts: list[str], uri: str, overwrite: bool, marker: bool,
                  force: bool) -> int:
    """Rename the files to ``part-00000`` … in the staging folder, then the
    folder onto the destination (an approved old folder steps aside first)."""
    names = [f"part-{i:05d}" for i in range(len(parts))]
    folder = storage.to_path(staging).rstrip("/")
    os.makedirs(folder, exist_ok=True)
    keep = set(names)
    for src, name in zip(parts, names):
        os.replace(storage.to_path(src), os.path.join(folder, name))
    for leftover in os.listdir(folder):  # attempts the driver did not accept
        if leftover not in keep:
            p = os.path.join(folder, leftover)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    if marker:
        with open(os.path.join(folder, MARKER), "wb") as f:
            f.write(storage.manifest_bytes(names))
    dest = os.path.realpath(storage.to_path(uri))
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise SqlError(f"{dest} is a file, not a folder")
    if overwrite:
        _, old_names = replaced_contents(uri, force)
        if old_names:
            old = folder + ".old"
            os.replace(dest, old)          # the approved old folder steps aside,
            os.replace(folder, dest)       # the new one takes its name,
            shutil.rmtree(old, ignore_errors=True)
            return len(parts)
    try:
        os.replace(folder, dest)  # onto a missing or empty folder only
    except OSError as e:
        raise SqlError(f"location {dest} is no longer empty ({e.strerror}); nothing was "
                       "replaced", hint="choose another LOCATION, or empty it first") from None
    return len(parts)


def _before_manifest() -> None:
    """Called between the copies and the manifest of an S3 commit (a test
    replaces it to fail or kill the driver there)."""


def _commit_s3(staging: str, parts: list[str], uri: str, overwrite: bool, force: bool) -> int:
    """The S3 commit described in the module docstring: intent, server-side
    copies under new names, manifest, then the old files go."""
    from runtime import s3
    from sqlmr import scratch
    inside = uri.rstrip("/") + "/"
    skip = staging[len(inside):] if staging.startswith(inside) else None
    if overwrite:
        _, old_names = replaced_contents(uri, force, skip=skip)
    else:
        check_empty(uri, skip=skip)
        old_names = []
    token = secrets.token_hex(4)
    names = [f"part-{i:05d}-{token}" for i in range(len(parts))]
    old = [n for n in old_names if n != MARKER]
    intent = storage.join(uri, INTENT + token)
    scratch.register(intent)  # a driver killed from here on is cleaned up by the next run
    storage.write_bytes(intent, json.dumps({"writer": storage.WRITER, "new": names,
                                            "old": old}).encode())
    try:
        pool = ThreadPoolExecutor(max_workers=max(1, min(COPY_THREADS, len(parts))))
        try:
            list(pool.map(lambda pair: s3.copy(pair[0], storage.join(uri, pair[1])),
                          zip(parts, names)))
        finally:  # on an error or Ctrl-C no further copy starts; the running ones end
            pool.shutdown(wait=True, cancel_futures=True)
        _before_manifest()
        storage.write_bytes(storage.join(uri, MARKER), storage.manifest_bytes(names))
    except BaseException:
        # rolled back, or forward if the manifest did land (a PUT whose answer
        # was lost); if S3 cannot be reached the intent stays claimed for the
        # next run
        try:
            recover_commit(intent)
            scratch.release(intent)
        except Exception:
            pass
        raise
    s3.delete_keys(uri, old + [INTENT + token])
    scratch.release(intent)
    return len(parts)


_INTENT_NAME = re.compile(re.escape(INTENT) + r"[0-9a-f]+$")


def recover_commit(intent: str) -> None:
    """Finish what a dead driver's S3 commit left (its intent object at
    ``intent``): roll forward (delete the old files) when the manifest names
    the new ones, else roll back (delete the copies); then the intent."""
    from runtime import s3
    uri, _, name = intent.rpartition("/")
    if not storage.is_s3(intent) or not _INTENT_NAME.fullmatch(name):
        return
    token = name[len(INTENT):]
    names = entries(uri) or []
    if name not in names:
        return  # the commit finished
    # the copies are known by their names (the intent may be unreadable to
    # this user: s3:GetObject is not needed to list, copy or delete)
    new = [n for n in names if (m := s3.COMMITTED_PART.fullmatch(n)) and m.group(2) == token]
    listed = manifest(uri)
    if listed is not None and set(new) <= set(listed) and (new or not listed):
        try:  # roll forward: the old files the intent lists go
            doc = json.loads(storage.read_range(intent).decode("utf-8"))
            old = [n for n in doc.get("old") or [] if isinstance(n, str)]
        except (OSError, ValueError, UnicodeDecodeError, AttributeError, s3.StorageError):
            old = []  # not readable: they stay, unlisted by the manifest, so unread
        s3.delete_keys(uri, [n for n in old if n not in set(listed)])
    else:
        s3.delete_keys(uri, new)
    s3.delete_keys(uri, [name])
