"""Storage behind a URI: local files (``file://`` or a plain path) and S3 (``s3://``).

Every byte a task or the driver reads or writes goes through these functions,
so tables, shuffle objects and outputs can live in either place.  The S3 side
lives in :mod:`runtime.s3` (boto3, imported only when an ``s3://`` URI is used).

>>> to_path("file:///tmp/x")
'/tmp/x'
>>> is_s3("s3://bucket/key"), is_s3("/tmp/x")
(True, False)
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import stat
import tempfile
from typing import Iterator
from urllib.parse import unquote

CHUNK = 1 << 20  # bytes per read when streaming a range
# The marker a sqlmr write leaves last in the folder it wrote: a JSON manifest
# naming its files (on S3 a reader takes only those, see runtime.s3.list_files).
# Defined in runtime.s3 (imported lazily there); the same text here.
MARKER = "_SUCCESS"
WRITER = "sqlmr"


def manifest_bytes(names: list[str]) -> bytes:
    """The text of a ``_SUCCESS`` manifest naming ``names``."""
    import json
    return (json.dumps({"writer": WRITER, "files": names}) + "\n").encode()


def parse_manifest(data: bytes) -> list[str] | None:
    """The files a ``_SUCCESS`` manifest names; None for any other marker
    (Hadoop's and Spark's are empty).

    >>> parse_manifest(manifest_bytes(["part-00000"])), parse_manifest(b"")
    (['part-00000'], None)
    """
    import json
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("writer") != WRITER:
        return None
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def to_path(uri: str) -> str:
    """Local filesystem path of a ``file://`` URI or plain path."""
    if uri.startswith("file://"):
        return unquote(uri[len("file://"):])
    return uri


def to_uri(path_or_uri: str) -> str:
    """Normalise a location the user typed into a URI (absolute ``file://`` or
    ``s3://``).  A ``%`` in a path is written ``%25``, so that :func:`to_path`
    gives the path back (a Hive partition folder ``c=A%3AB`` is a real name).

    >>> to_uri("/d/c=A%3AB"), to_path(to_uri("/d/c=A%3AB"))
    ('file:///d/c=A%253AB', '/d/c=A%3AB')
    """
    if is_s3(path_or_uri) or path_or_uri.startswith("file://"):
        return path_or_uri
    return "file://" + os.path.abspath(os.path.expanduser(path_or_uri)).replace("%", "%25")


def join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name.lstrip("/")


def _s3():
    from runtime import s3  # boto3 only when S3 is used
    return s3


def size(uri: str) -> int:
    if is_s3(uri):
        return _s3().size(uri)
    return os.path.getsize(to_path(uri))


def exists(uri: str) -> bool:
    if is_s3(uri):
        return _s3().exists(uri)
    return os.path.exists(to_path(uri))


class InputError(Exception):
    """An input cannot be listed or read as planned: an unreadable folder or
    file, a broken or looping symbolic link, corrupt or truncated compressed
    data, a file changed since the query was planned.  The data's fault, not
    the machine's: a retry would fail the same way, so it is not an OSError
    (which backends retry)."""


def list_files(uri: str, stamps: dict[str, object] | None = None) -> list[tuple[str, int]]:
    """Data files under a location, sorted, as ``(uri, size)``.

    A location is a single file or a folder/prefix.  Names starting with ``_`` or
    ``.`` (``_SUCCESS``, ``.crc``) are skipped, as Hive does; sub-folders are read
    recursively, symbolic links followed.  Raises FileNotFoundError when nothing
    is there, and InputError naming the path when anything in it cannot be
    listed or read (permissions, a broken or looping link): a query must not
    answer from part of its input.  ``stamps`` (when given) gets each file's
    version as planned, :func:`stamp` of it, to check before reading.
    """
    if has_glob(uri):
        try:
            return list_glob(uri, stamps)
        except FileNotFoundError:
            if not exists(uri):  # else a name that holds '[' or '*' itself
                raise
    if is_s3(uri):
        return _s3().list_files(uri, stamps)
    path = to_path(uri)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _location_error(path, e) from None
    out: list[tuple[str, int]] = []
    if stat.S_ISDIR(st.st_mode):
        _walk(path, out, {os.path.realpath(path)}, stamps)
    elif stat.S_ISREG(st.st_mode):
        _add_file(path, st, out, stamps)
    out.sort()
    return out


GLOB_CHARS = "*?["


def has_glob(uri: str) -> bool:
    """Whether a location is a glob pattern (``*``, ``?``, ``[…]``).

    >>> has_glob("s3://b/logs/*.csv"), has_glob("/data/x.csv")
    (True, False)
    """
    return any(c in uri for c in GLOB_CHARS)


def split_glob(uri: str) -> tuple[str, str]:
    """``(folder, pattern)``: the folder before the first glob character and
    the pattern relative to it.

    >>> split_glob("s3://b/logs/2024-*/*.csv"), split_glob("file:///d/*.json")
    (('s3://b/logs', '2024-*/*.csv'), ('file:///d', '*.json'))
    """
    first = min(uri.index(c) for c in GLOB_CHARS if c in uri)
    cut = uri.rfind("/", 0, first)
    return uri[:cut], uri[cut + 1:]


def glob_match(pattern: str, rel: str) -> bool:
    """Whether the ``/``-separated relative path ``rel`` matches a glob as
    DuckDB and the shell read it: each folder name by :func:`fnmatch.fnmatchcase`
    (``*``, ``?``, ``[…]`` within the name), ``**`` any number of folders; a
    file inside a matched folder matches.

    >>> [glob_match("2024-*/**/*.csv", p) for p in ("2024-01/a.csv", "2024-01/x/y/a.csv", "2023-01/a.csv", "2024-01/a.json")]
    [True, True, False, False]
    >>> glob_match("day=[0-9]", "day=7/part-0"), glob_match("*.csv", "x/a.csv")
    (True, False)
    """
    return _match_parts(pattern.split("/"), rel.split("/"))


def _match_parts(pats: list[str], parts: list[str]) -> bool:
    if not pats:
        return True  # the rest is inside a matched folder
    if not parts:
        return all(p == "**" for p in pats)
    if pats[0] == "**":
        return _match_parts(pats[1:], parts) or _match_parts(pats, parts[1:])
    return fnmatch.fnmatchcase(parts[0], pats[0]) and _match_parts(pats[1:], parts[1:])


def list_glob(uri: str, stamps: dict[str, object] | None = None) -> list[tuple[str, int]]:
    """The data files a glob location matches (a matched folder: every data
    file in it), sorted; FileNotFoundError when it matches none.  Locally only
    the folders the pattern can reach are listed."""
    folder, pattern = split_glob(uri)
    if is_s3(uri):
        try:
            listed = _s3().list_files(folder + "/", stamps)
        except FileNotFoundError:
            listed = []
        out = [(u, n) for u, n in listed if glob_match(pattern, u[len(folder) + 1:])]
    else:
        out = []
        base = to_path(folder) or "/"
        seen: set[str] = set()
        for rel in _glob_local(base, pattern.split("/")):
            full = os.path.join(base, rel)
            if full not in seen:
                seen.add(full)
                out.extend(list_files(full, stamps))
        out = sorted(set(out))
    if not out:
        raise FileNotFoundError(f"no file matches {uri}")
    return out


def _glob_local(folder: str, parts: list[str]) -> Iterator[str]:
    """Relative paths under ``folder`` matching the glob ``parts`` (one per
    folder level); hidden names (``_``, ``.``) only when a part spells them."""
    head, rest = parts[0], parts[1:]
    if not os.path.isdir(folder):
        return
    if head == "**":
        if rest:
            yield from _glob_local(folder, rest)
        for name in _names(folder):
            if not name.startswith(("_", ".")) and os.path.isdir(os.path.join(folder, name)):
                for rel in _glob_local(os.path.join(folder, name), parts):
                    yield name + "/" + rel
        return
    for name in _names(folder):
        if name.startswith(("_", ".")) and not head.startswith(name[0]):
            continue
        if not fnmatch.fnmatchcase(name, head):
            continue
        if not rest:
            yield name
        else:
            for rel in _glob_local(os.path.join(folder, name), rest):
                yield name + "/" + rel


def _names(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it)
    except OSError as e:
        raise InputError(f"cannot list folder {folder}: {e.strerror}") from None


def _location_error(path: str, e: OSError) -> Exception:
    """What is wrong with a location that cannot be stat'ed, said as it is."""
    if e.errno == errno.ELOOP:
        return InputError(f"location {path} is a symbolic link loop")
    if e.errno == errno.ENOENT:
        link = _broken_link(path)
        if link:
            where = "is" if link == path else f"is inside {link}, which is"
            return InputError(f"location {path} {where} a broken symbolic link to "
                              f"{os.readlink(link)}")
        return FileNotFoundError(f"no such file or folder: {path}")
    return InputError(f"cannot read location {path}: {e.strerror}")


def _broken_link(path: str) -> str | None:
    """The first component of ``path`` that is a symbolic link to nothing."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i])
        if os.path.islink(p) and not os.path.exists(p):
            return p
    return None


def _walk(folder: str, out: list[tuple[str, int]], seen: set[str],
          stamps: dict[str, object] | None) -> None:
    """Every data file under ``folder`` into ``out``; any folder or file that
    cannot be listed or read is an InputError (os.walk would skip it)."""
    try:
        with os.scandir(folder) as it:
            names = sorted(entry.name for entry in it)
    except OSError as e:
        raise InputError(f"cannot list folder {folder}: {e.strerror}") from None
    for name in names:
        if name.startswith(("_", ".")):
            continue
        full = os.path.join(folder, name)
        try:
            st = os.stat(full)
        except OSError as e:
            raise _entry_error(full, e) from None
        if stat.S_ISDIR(st.st_mode):
            real = os.path.realpath(full)
            if real in seen:  # a link back to a folder being read, or read already
                raise InputError(f"{full} is a symbolic link loop (it leads to {real}, "
                                 f"which is read already)")
            seen.add(real)
            _walk(full, out, seen, stamps)
        elif stat.S_ISREG(st.st_mode):
            _add_file(full, st, out, stamps)


def _entry_error(full: str, e: OSError) -> InputError:
    if e.errno == errno.ELOOP:
        return InputError(f"{full} is a symbolic link loop")
    if e.errno == errno.ENOENT and os.path.islink(full):
        return InputError(f"{full} is a broken symbolic link to {os.readlink(full)}")
    return InputError(f"cannot read {full}: {e.strerror}")


def _add_file(path: str, st: os.stat_result, out: list[tuple[str, int]],
              stamps: dict[str, object] | None) -> None:
    """A data file, once it is known that it can be opened for reading."""
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    uri = to_uri(path)
    out.append((uri, st.st_size))
    if stamps is not None:
        stamps[uri] = st.st_mtime_ns


def changed(uri: str, size: int, stamp: object) -> str | None:
    """How a file differs from what was planned (``size`` and ``stamp`` from
    :func:`list_files`), or None when it can still be read as planned: a file
    that grew was appended to, and its first ``size`` bytes are read.  S3 reads
    are pinned to the planned ETag instead (a changed object fails the GET)."""
    if is_s3(uri):
        return None
    path = to_path(uri)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "it no longer exists"
    except OSError as e:
        return f"it cannot be read now: {e.strerror}"
    if st.st_size < size:
        return f"{size:,} bytes when the query was planned, {st.st_size:,} now"
    if st.st_size == size and stamp is not None and st.st_mtime_ns != stamp:
        return "rewritten since the query was planned (same size, new modification time)"
    return None


def read_range(uri: str, start: int = 0, end: int | None = None,
               etag: str | None = None) -> bytes:
    """Bytes ``[start, end)`` of an object (to its end when ``end`` is None);
    ``etag`` (S3) reads only that version of the object."""
    if end is not None and end <= start:
        return b""
    if is_s3(uri):
        return _s3().read_range(uri, start, end, etag)
    with open(to_path(uri), "rb") as f:
        f.seek(start)
        return f.read() if end is None else f.read(end - start)


def iter_range(uri: str, start: int = 0, end: int | None = None,
               chunk: int = CHUNK, etag: str | None = None) -> Iterator[bytes]:
    """Stream bytes ``[start, end)`` in chunks, without holding the range in
    memory; ``etag`` (S3) reads only that version of the object."""
    if is_s3(uri):
        yield from _s3().iter_range(uri, start, end, chunk, etag)
        return
    with open(to_path(uri), "rb") as f:
        f.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            n = chunk if remaining is None else min(chunk, remaining)
            data = f.read(n)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


def _s3_read(uri: str, start: int, end: int, etag: str | None) -> bytes:
    return _s3().read_range(uri, start, end, etag)


def iter_range_ahead(uri: str, start: int = 0, end: int | None = None,
                     chunk: int = CHUNK, etag: str | None = None) -> Iterator[bytes]:
    """As :func:`iter_range`, but an S3 range is fetched ahead of the reader
    on a few threads, in ranged GETs of :data:`runtime.readahead.CHUNK`
    (hedged when one is slow), so the reader computes while the next bytes
    download.  A local file is read as :func:`iter_range` reads it."""
    if not is_s3(uri) or end is None:
        yield from iter_range(uri, start, end, chunk, etag)
        return
    from runtime import readahead
    pieces = readahead.pieces_of([(uri, start, end, etag)], max(chunk, readahead.CHUNK))
    for _, data in readahead.fetch(pieces, _s3_read):
        if len(data) <= chunk:
            yield data
        else:
            for i in range(0, len(data), chunk):
                yield data[i:i + chunk]


def iter_ranges_ahead(ranges: list[tuple[str, int, int]],
                      chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """``(index in ranges, bytes)`` of many ranges ``(uri, start, end)``, in
    order: on S3 up to :data:`runtime.readahead.SHUFFLE_DEPTH` GETs in flight
    at once (what a reducer fetching a range of every map output needs);
    local files one after another."""
    if not any(is_s3(r[0]) for r in ranges):
        for i, (uri, start, end) in enumerate(ranges):
            for data in iter_range(uri, start, end, chunk):
                yield i, data
        return
    from runtime import readahead
    pieces = readahead.pieces_of([(u, s, e, None) for u, s, e in ranges],
                                 max(chunk, readahead.CHUNK))
    yield from readahead.fetch(pieces, _s3_read, depth=readahead.SHUFFLE_DEPTH)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object atomically: readers see the old object or the new one."""
    if is_s3(uri):
        _s3().write_bytes(uri, data)
        return
    path = to_path(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_file(uri: str, local_path: str) -> None:
    """Upload/copy a local file to ``uri`` (multipart on S3 for large files)."""
    if is_s3(uri):
        _s3().write_file(uri, local_path)
        return
    path = to_path(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp-" + str(os.getpid())
    shutil.copyfile(local_path, tmp)
    os.replace(tmp, path)


def copy(src: str, dst: str) -> None:
    """Copy an object: inside S3 when both are there (nothing passes through
    this process), else by streaming it."""
    if is_s3(src) and is_s3(dst):
        _s3().copy(src, dst)
        return
    if not is_s3(dst):
        path = to_path(dst)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = path + ".tmp-" + str(os.getpid())
        try:
            with open(tmp, "wb") as f:
                for chunk in iter_range(src):
                    f.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    write_file(dst, to_path(src))


def delete_prefix(uri: str) -> None:
    """Remove everything under a folder/prefix; missing is fine."""
    if is_s3(uri):
        _s3().delete_prefix(uri)
        return
    path = to_path(uri)
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)
