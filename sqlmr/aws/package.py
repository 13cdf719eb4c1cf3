"""The Lambda deployment package: the ``runtime/`` package source, zipped reproducibly.

The package holds every ``.py`` file of the ``runtime`` package (found through
``runtime.__file__``) and nothing else: no ``__pycache__``, no files from the
developer's environment.  The zip is byte-for-byte stable: entries sorted, every
timestamp 1980-01-01 00:00, permissions 0644, one compression level.

Two hashes come out of it:

* :func:`runtime_hash` — sha256 over the files' names and contents (plus a format
  version).  It names the deployed function (``sqlmr-runtime-<hash12>``), so two
  machines with the same ``runtime/`` share one function even if their zlib
  builds compress differently.
* the second value of :func:`build_package` — sha256 of the zip bytes themselves,
  the same digest Lambda reports (base64) as ``CodeSha256``.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

HANDLER = "runtime.handler.lambda_handler"
# Bump when the package layout changes in a way the file contents don't show.
PACKAGE_FORMAT = 1

_EPOCH = (1980, 1, 1, 0, 0, 0)
_MODE = 0o100644  # regular file, rw-r--r--


def runtime_dir() -> str:
    """Folder of the ``runtime`` package that is being shipped."""
    import runtime

    return os.path.dirname(os.path.abspath(runtime.__file__))


def package_files() -> list[tuple[str, str]]:
    """``(name in zip, local path)`` of every file shipped, sorted by name."""
    root = runtime_dir()
    out: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs
                         if d != "__pycache__" and not d.startswith(".")
                         and os.path.isfile(os.path.join(folder, d, "__init__.py")))
        for name in files:
            if not name.endswith(".py") or name.startswith("."):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(root)).replace(os.sep, "/")
            out.append((rel, path))
    out.sort()
    return out


def _contents() -> list[tuple[str, bytes]]:
    out = []
    for rel, path in package_files():
        with open(path, "rb") as f:
            out.append((rel, f.read()))
    return out


def _hash_contents(contents: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(f"sqlmr-runtime-package {PACKAGE_FORMAT}\n".encode())
    for rel, data in contents:
        h.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def runtime_hash() -> str:
    """sha256 (hex) of the shipped source: changes exactly when ``runtime/`` does."""
    return _hash_contents(_contents())


def package_name(hash_hex: str | None = None) -> str:
    """``sqlmr-runtime-<hash12>.zip`` for the current (or given) runtime hash."""
    return f"sqlmr-runtime-{(hash_hex or runtime_hash())[:12]}.zip"


def build_package() -> tuple[bytes, str]:
    """The deployment zip and the sha256 (hex) of its bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in _contents():
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.create_system = 3  # unix, so the permission bits are honoured
            info.external_attr = _MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    blob = buf.getvalue()
    return blob, hashlib.sha256(blob).hexdigest()
