"""Counts of the S3 requests this process has sent, by kind.

:mod:`runtime.s3` counts every request it sends (a retried request once per
time it is sent, and once more under ``retries``); a task reports what it sent
while it ran (:func:`since` a :func:`snapshot` taken at its start), and the
driver its own listings, code uploads, result reads and deletes the same way.
This module imports nothing heavy, so a task over local files pays nothing
for it.

Kinds, by S3's price classes: ``get`` (GetObject), ``head`` (HeadObject,
HeadBucket: priced as GETs), ``put`` (PutObject and multipart create, part and
complete), ``list`` (ListObjectsV2, priced as PUTs), ``delete``
(DeleteObjects, AbortMultipartUpload: free).

>>> before = snapshot()
>>> count("get"); count("get", retry=True); count("list")
>>> since(before) == {"get": 2, "list": 1, "retries": 1}
True
"""

from __future__ import annotations

import threading

KINDS = ("get", "head", "put", "list", "delete")

_lock = threading.Lock()
_counts: dict[str, int] = {k: 0 for k in (*KINDS, "retries")}


def count(kind: str, retry: bool = False) -> None:
    """One request of ``kind`` was sent (``retry``: it repeats a failed one)."""
    with _lock:
        _counts[kind] = _counts.get(kind, 0) + 1
        if retry:
            _counts["retries"] += 1


def count_retry() -> None:
    """A request is sent again by a caller that counts the request itself."""
    with _lock:
        _counts["retries"] += 1


def snapshot() -> dict[str, int]:
    """The counts so far (for :func:`since`)."""
    with _lock:
        return dict(_counts)


def since(before: dict[str, int]) -> dict[str, int]:
    """Requests sent after ``before`` was taken, only the kinds with any."""
    now = snapshot()
    return {k: n - before.get(k, 0) for k, n in now.items() if n - before.get(k, 0)}


def merge(more: dict[str, int] | None) -> None:
    """Count in this process what another one sent on its behalf (the access
    probe, which runs in the function but answers to the driver)."""
    with _lock:
        add(_counts, more)


def add(total: dict[str, int], more: dict[str, int] | None) -> dict[str, int]:
    """``total`` with ``more``'s counts added (in place; returns it).

    >>> add({"get": 1}, {"get": 2, "put": 1})
    {'get': 3, 'put': 1}
    """
    for k, n in (more or {}).items():
        total[k] = total.get(k, 0) + n
    return total
