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

import os
import shutil
import tempfile
from typing import Iterator
from urllib.parse import unquote

CHUNK = 1 << 20  # bytes per read when streaming a range


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def to_path(uri: str) -> str:
    """Local filesystem path of a ``file://`` URI or plain path."""
    if uri.startswith("file://"):
        return unquote(uri[len("file://"):])
    return uri


def to_uri(path_or_uri: str) -> str:
    """Normalise a location the user typed into a URI (absolute ``file://`` or ``s3://``)."""
    if is_s3(path_or_uri) or path_or_uri.startswith("file://"):
        return path_or_uri
    return "file://" + os.path.abspath(os.path.expanduser(path_or_uri))


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


def list_files(uri: str) -> list[tuple[str, int]]:
    """Data files under a location, sorted, as ``(uri, size)``.

    A location is a single file or a folder/prefix.  Names starting with ``_`` or
    ``.`` (``_SUCCESS``, ``.crc``) are skipped, as Hive does; sub-folders are read
    recursively.
    """
    if is_s3(uri):
        return _s3().list_files(uri)
    path = to_path(uri)
    if os.path.isfile(path):
        return [(to_uri(path), os.path.getsize(path))]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such file or folder: {path}")
    out: list[tuple[str, int]] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in sorted(files):
            if name.startswith(("_", ".")):
                continue
            full = os.path.join(root, name)
            out.append((to_uri(full), os.path.getsize(full)))
    out.sort()
    return out


def read_range(uri: str, start: int = 0, end: int | None = None) -> bytes:
    """Bytes ``[start, end)`` of an object (to its end when ``end`` is None)."""
    if end is not None and end <= start:
        return b""
    if is_s3(uri):
        return _s3().read_range(uri, start, end)
    with open(to_path(uri), "rb") as f:
        f.seek(start)
        return f.read() if end is None else f.read(end - start)


def iter_range(uri: str, start: int = 0, end: int | None = None,
               chunk: int = CHUNK) -> Iterator[bytes]:
    """Stream bytes ``[start, end)`` in chunks, without holding the range in memory."""
    if is_s3(uri):
        yield from _s3().iter_range(uri, start, end, chunk)
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
