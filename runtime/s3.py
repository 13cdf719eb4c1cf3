"""S3 side of :mod:`runtime.storage`: the same operations on ``s3://bucket/key`` URIs.

This module ships inside the Lambda deployment package, so it uses only the
standard library and boto3 (which the Lambda Python runtime provides).

One boto3 client is cached per process.  It is created lazily and recreated
when the process forks or when the AWS environment it was built from changes
(``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, region, profile, access key), so
tests that point at a moto server and worker processes both get a correct
client.  botocore's own retries are switched off: every request goes through
:func:`_call`, which retries throttling (503 SlowDown and friends), server
errors and dropped connections with exponential backoff and full jitter for
as long as :data:`RETRY_PATIENCE_S` allows (several minutes: a storm of 503s
slows a job down, it never fails one that would succeed), but never past the
task's own deadline when it is known (:func:`set_deadline`), and counts every
request it sends (:mod:`runtime.s3stats`).

Errors a user can act on become :class:`StorageError` with a message saying
what to fix; a missing object becomes :class:`FileNotFoundError`, as it does
for local files.

>>> split_uri("s3://bucket/some/key")
('bucket', 'some/key')
>>> split_uri("s3://bucket")
('bucket', '')
>>> _hidden("a/_SUCCESS"), _hidden("a/.part.crc"), _hidden("a/part-00000")
(True, True, False)
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import boto3
from botocore.config import Config

from runtime.storage import MARKER, manifest_bytes, parse_manifest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from runtime import s3stats

try:  # urllib3 is what botocore streams bodies through
    from urllib3.exceptions import ProtocolError as _ProtocolError
except Exception:  # pragma: no cover - urllib3 always ships with botocore
    _ProtocolError = ConnectionError  # type: ignore[assignment,misc]

# Objects at or above this size are written with a multipart upload; below it,
# one PUT streamed from the file.  A PUT-class request costs as much as about
# 0.4 s of a 1 GB function, so each part is a cost: a combiner's output (at most
# 384 MiB) goes in one request, not 19 parts of 16 MiB and two more requests.
MULTIPART_THRESHOLD = 512 * 1024 * 1024
# Part size of a multipart upload (S3 minimum is 5 MiB, maximum 10,000 parts).
PART_SIZE = 64 * 1024 * 1024
# Parts uploaded at once by write_file (memory: this many parts in flight).
UPLOAD_THREADS = 2
MAX_PARTS = 10_000
# DeleteObjects takes at most 1,000 keys per request.
DELETE_BATCH = 1000
# CopyObject copies objects up to 5 GiB; larger ones are copied part by part
# (UploadPartCopy), in parts of COPY_PART_SIZE (at most 5 GiB each).
COPY_LIMIT = 5 * 1024 ** 3
COPY_PART_SIZE = 512 * 1024 * 1024

# Backoff: attempt n (0-based) sleeps uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**n)).
# A request is retried until RETRY_PATIENCE_S have passed since it was first
# sent (or until the task's deadline, see set_deadline), and at most
# MAX_ATTEMPTS times when that is set (SQLMR_S3_MAX_ATTEMPTS).
MAX_ATTEMPTS: int | None = int(os.environ["SQLMR_S3_MAX_ATTEMPTS"]) \
    if os.environ.get("SQLMR_S3_MAX_ATTEMPTS") else None
RETRY_PATIENCE_S = float(os.environ.get("SQLMR_S3_RETRY_PATIENCE_S") or 300.0)
BACKOFF_BASE = 0.1
BACKOFF_CAP = float(os.environ.get("SQLMR_S3_BACKOFF_CAP_S") or 20.0)
# A task gives up retrying this long before its deadline, to fail with S3's
# error rather than be killed by a timeout that says nothing.
DEADLINE_MARGIN_S = 5.0
_deadline: float | None = None   # time.monotonic() by which the task must end

# Indirections so tests can observe or replace sleeping and jitter.
_sleep: Callable[[float], None] = time.sleep
_random: Callable[[], float] = random.random

_RETRYABLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "PriorRequestNotComplete",
    "500", "502", "503", "504",
})
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AuthorizationHeaderMalformed",
})
_CONNECTION_ERRORS = (
    EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError,
    ResponseStreamingError, _ProtocolError, ConnectionError,
)

CREDENTIALS_HELP = ("set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "and AWS_REGION")


class StorageError(Exception):
    """An S3 problem the user has to fix (bucket, credentials, permissions) or that
    persisted through every retry."""


# --------------------------------------------------------------------------- client

_client_lock = threading.Lock()
_client: Any = None
_client_key: tuple | None = None

_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_CONFIG_FILE",
             "AWS_SHARED_CREDENTIALS_FILE")


def _env_key() -> tuple:
    return (os.getpid(),) + tuple(os.environ.get(k) for k in _ENV_KEYS)


def client():
    """The process's S3 client (created on first use, rebuilt if the env changed)."""
    global _client, _client_key
    key = _env_key()
    c = _client
    if c is not None and _client_key == key:
        return c
    with _client_lock:
        if _client is None or _client_key != key:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            config = Config(
                retries={"mode": "standard", "total_max_attempts": 1},  # we retry ourselves
                max_pool_connections=max(10, UPLOAD_THREADS * 2),
                connect_timeout=10,
                read_timeout=60,
            )
            _client = boto3.session.Session().client("s3", region_name=region or None,
                                                     config=config)
            _client_key = key
        return _client


def request_kind(operation: str) -> str:
    """The :mod:`runtime.s3stats` kind of an S3 API operation (by S3's price
    classes: reads of objects and settings are GETs, writes PUTs).

    >>> [request_kind(o) for o in ("GetObject", "HeadBucket", "UploadPart",
    ...  "ListObjectsV2", "DeleteObjects", "AbortMultipartUpload", "GetBucketLifecycleConfiguration")]
    ['get', 'head', 'put', 'list', 'delete', 'delete', 'get']
    """
    for prefix, kind in (("Get", "get"), ("Head", "head"), ("List", "list"),
                         ("Delete", "delete"), ("Abort", "delete")):
        if operation.startswith(prefix):
            return kind
    return "put"   # Put*, Create*, UploadPart, CompleteMultipartUpload, Copy*


def count_requests(s3_client: Any) -> Any:
    """Count every request another boto3 S3 client sends (each of botocore's
    own retries too) with this module's; returns the client."""
    def counted(request: Any = None, event_name: str = "", **kw: Any) -> None:
        context = getattr(request, "context", None) or {}
        attempt = (context.get("retries") or {}).get("attempt", 1)
        s3stats.count(request_kind(event_name.rsplit(".", 1)[-1]), retry=attempt > 1)

    s3_client.meta.events.register("before-send.s3", counted)
    return s3_client


def reset_client() -> None:
    """Forget the cached client (the next call builds a new one from the environment)."""
    global _client, _client_key
    with _client_lock:
        _client = None
        _client_key = None


# --------------------------------------------------------------------------- helpers

def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in S3 URI: {uri!r}")
    return bucket, key


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _hidden(rel: str) -> bool:
    """A key (relative to the listed prefix) is hidden if any part starts with _ or ."""
    return any(part.startswith(("_", ".")) for part in rel.split("/") if part)


def _error_code(e: ClientError) -> str:
    err = e.response.get("Error", {}) or {}
    code = str(err.get("Code") or "")
    if not code:
        code = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _retryable(e: BaseException) -> bool:
    if isinstance(e, ClientError):
        return _error_code(e) in _RETRYABLE_CODES or _status(e) in (500, 502, 503, 504)
    return isinstance(e, _CONNECTION_ERRORS)


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return _random() * min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt))


def _translate(e: BaseException, what: str, bucket: str) -> BaseException:
    """A clearer exception for an error that will not go away by retrying."""
    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(f"no usable AWS credentials for {what}: {CREDENTIALS_HELP}")
    if isinstance(e, ClientError):
        code = _error_code(e)
        if code == "NoSuchBucket":
            return StorageError(
                f"S3 bucket {bucket!r} does not exist ({what}). Create it, or point sqlmr at "
                f"a bucket you own: set SQLMR_BUCKET for job data, or fix the table location; "
                f"also check AWS_REGION and AWS_ENDPOINT_URL")
        if code in _CREDENTIAL_CODES:
            return StorageError(f"AWS rejected the credentials for {what} ({code}): "
                                f"{CREDENTIALS_HELP}")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return StorageError(
                f"access denied to {what} (bucket {bucket!r}): the AWS identity in use needs "
                f"s3:GetObject/PutObject/DeleteObject/ListBucket there; check AWS_PROFILE or "
                f"AWS_ACCESS_KEY_ID")
    return e


def set_deadline(seconds_left: float | None) -> None:
    """The task running in this process must end within ``seconds_left``
    (None: no deadline known): retries stop in time to report S3's error."""
    global _deadline
    _deadline = None if seconds_left is None else time.monotonic() + seconds_left


class Retrying:
    """The retry budget of one request: how many attempts, how long waited.

    Time spent counts the real time since the first attempt or the sleeps asked
    for, whichever is more (tests replace sleeping with recording)."""

    __slots__ = ("attempt", "t0", "slept")

    def __init__(self) -> None:
        self.attempt = 0
        self.t0 = time.monotonic()
        self.slept = 0.0

    def wait(self) -> bool:
        """Sleep before the next attempt; False when the budget is spent."""
        if MAX_ATTEMPTS is not None and self.attempt + 1 >= MAX_ATTEMPTS:
            return False
        delay = backoff_delay(self.attempt)
        now = time.monotonic()
        spent = max(now - self.t0, self.slept)
        if spent + delay > RETRY_PATIENCE_S:
            return False
        if _deadline is not None and now + delay > _deadline - DEADLINE_MARGIN_S:
            return False
        from runtime import readahead
        readahead.note_retry()   # a read-ahead piece in backoff is not hedged
        _sleep(delay)
        self.slept += delay
        self.attempt += 1
        return True

    def gave_up(self, what: str, e: BaseException) -> StorageError:
        spent = max(time.monotonic() - self.t0, self.slept)
        return StorageError(f"S3 kept failing for {what} after {self.attempt + 1} attempts "
                            f"over {spent:.0f} s: {e}")


def _call(op: Callable[[], Any], what: str, bucket: str, translate: bool = True,
          kind: str | None = "get") -> Any:
    """Run ``op`` (one S3 request of ``kind``, see :mod:`runtime.s3stats`;
    None: ``op`` makes its own counted calls), retrying throttling and
    connection errors (see :class:`Retrying`).

    Errors that retrying cannot fix are raised as :func:`_translate` makes them
    (a ClientError is raised as it is when ``translate`` is false, for callers
    that look at its code themselves).
    """
    budget = Retrying()
    while True:
        if kind is not None:
            s3stats.count(kind, retry=budget.attempt > 0)
        elif budget.attempt:
            s3stats.count_retry()
        try:
            return op()
        except (ClientError, BotoCoreError, ConnectionError, _ProtocolError) as e:
            if _retryable(e):
                if budget.wait():
                    continue
                raise budget.gave_up(what, e) from e
            if not translate and isinstance(e, ClientError):
                raise
            raise _translate(e, what, bucket) from e


def _bucket_exists(bucket: str) -> bool:
    """False only when S3 says the bucket is missing (403 etc. count as existing)."""
    try:
        _call(lambda: client().head_bucket(Bucket=bucket), f"s3://{bucket}", bucket,
              translate=False, kind="head")
        return True
    except ClientError as e:
        if _error_code(e) in ("NoSuchBucket", "404", "NotFound") or _status(e) == 404:
            return False
        if _error_code(e) in ("AccessDenied", "403") or _status(e) == 403:
            return True
        raise _translate(e, f"s3://{bucket}", bucket) from e


def _missing(uri: str, bucket: str) -> BaseException:
    """The exception for a 404 on ``uri``: a missing bucket or a missing object."""
    if not _bucket_exists(bucket):
        return _translate(ClientError({"Error": {"Code": "NoSuchBucket"}}, "HeadBucket"),
                          uri, bucket)
    return FileNotFoundError(f"no such S3 object: {uri}")


def _is_404(e: ClientError) -> bool:
    return _error_code(e) in ("404", "NoSuchKey", "NotFound") or _status(e) == 404


def _head(bucket: str, key: str, uri: str, probe: bool = False) -> dict | None:
    """HeadObject, or None when the object does not exist (bucket exists).

    With ``probe`` (asking "is this a single object?" before listing a prefix), a
    403 also means None: without s3:ListBucket on that exact name S3 answers a
    missing key with 403, and the listing that follows reports real denials.
    """
    try:
        return _call(lambda: client().head_object(Bucket=bucket, Key=key), uri, bucket,
                     translate=False, kind="head")
    except ClientError as e:
        if _is_404(e):
            m = _missing(uri, bucket)
            if isinstance(m, FileNotFoundError):
                return None
            raise m from e
        if probe and (_error_code(e) in ("403", "AccessDenied") or _status(e) == 403):
            return None
        raise _translate(e, uri, bucket) from e


# --------------------------------------------------------------------------- reading

def size(uri: str) -> int:
    bucket, key = split_uri(uri)
    head = _head(bucket, key, uri) if key else None
    if head is None:
        raise FileNotFoundError(f"no such S3 object: {uri}")
    return int(head["ContentLength"])


def exists(uri: str) -> bool:
    """True for an object, or for a prefix ("folder") with at least one object under it."""
    bucket, key = split_uri(uri)
    if not key:
        return _bucket_exists(bucket)
    if not key.endswith("/") and _head(bucket, key, uri, probe=True) is not None:
        return True
    prefix = key if key.endswith("/") else key + "/"
    resp = _call(lambda: client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1),
                 uri, bucket, kind="list")
    return bool(resp.get("KeyCount") or resp.get("Contents"))


def _list(bucket: str, prefix: str, uri: str) -> Iterator[dict]:
    """Every object under ``prefix`` (all pages)."""
    token = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        resp = _call(lambda: client().list_objects_v2(**kwargs), uri, bucket, kind="list")
        yield from resp.get("Contents", ())
        if not resp.get("IsTruncated"):
            return
        token = resp.get("NextContinuationToken")
        if not token:  # pragma: no cover - S3 always sends one with IsTruncated
            return


def list_files(uri: str, stamps: dict[str, object] | None = None) -> list[tuple[str, int]]:
    """Data objects at ``uri`` (one object, or everything under the prefix), sorted.

    ``s3://b/dir`` is the object ``dir`` if it exists, else the prefix ``dir/``.
    Keys with a path part starting with ``_`` or ``.`` (relative to the prefix) and
    folder markers (keys ending in ``/``) are skipped, and so is, in a folder
    holding sqlmr's ``_SUCCESS`` manifest, every file it does not name (see
    :func:`_listed_by_manifests`).  Raises FileNotFoundError when nothing at
    all exists there.  ``stamps`` (when given) gets each
    object's ETag, to read exactly that version later.
    """
    bucket, key = split_uri(uri)
    if key and not key.endswith("/"):
        head = _head(bucket, key, uri, probe=True)
        if head is not None:
            if stamps is not None and head.get("ETag"):
                stamps[uri] = head["ETag"]
            return [(uri, int(head["ContentLength"]))]
        prefix = key + "/"
    else:
        prefix = key
    for attempt in range(MANIFEST_ATTEMPTS):
        objects = list(_list(bucket, prefix, uri))
        if not objects:
            if prefix and not _bucket_exists(bucket):
                raise _missing(uri, bucket)
            raise FileNotFoundError(f"no such file or folder: {uri}")
        listed = _listed_by_manifests(bucket, prefix, objects)
        if listed is not None:
            break
        _sleep(backoff_delay(attempt))  # a commit is under way: list again
    else:
        from runtime.storage import InputError
        raise InputError(f"{uri}: its _SUCCESS manifest names files that are not there "
                         f"(listed {MANIFEST_ATTEMPTS} times): something other than sqlmr "
                         f"deleted them; write the folder again")
    out: list[tuple[str, int]] = []
    for obj in objects:
        k = obj["Key"]
        rel = k[len(prefix):]
        if not rel or k.endswith("/") or _hidden(rel) or not listed(rel):
            continue
        out.append((_uri(bucket, k), int(obj["Size"])))
        if stamps is not None and obj.get("ETag"):
            stamps[out[-1][0]] = obj["ETag"]
    out.sort()
    return out


# A listing that disagrees with a manifest is taken again this many times.
MANIFEST_ATTEMPTS = 6


def _listed_by_manifests(bucket: str, prefix: str,
                         objects: list[dict]) -> Callable[[str], bool] | None:
    """Which keys (relative to ``prefix``) a reader takes, given sqlmr's
    ``_SUCCESS`` manifests among ``objects``: in a folder holding one, only
    the files it names (a commit copies new files in under new names, writes
    the manifest last, then deletes the old files, so a reader sees the old
    or the new table whole, never a mix).  Empty markers (Hadoop, Spark) and
    markers sqlmr did not write change nothing.  None when a manifest names a
    file the listing lacks: the listing predates a commit, list again."""
    present = {o["Key"][len(prefix):] for o in objects}
    children: dict[str, list[str]] = {}
    for rel in present:
        folder, _, name = rel.rpartition("/")
        children.setdefault(folder, []).append(name)
    folders: dict[str, set[str]] = {}
    for o in objects:
        rel = o["Key"][len(prefix):]
        folder, _, name = rel.rpartition("/")
        if name != MARKER or not int(o.get("Size") or 0) or _hidden(folder):
            continue
        names = _manifest_names(bucket, o, children.get(folder, []))
        if names is None:
            continue
        base = folder + "/" if folder else ""
        if any(base + n not in present for n in names):
            return None
        folders[base] = {base + n for n in names}
    if not folders:
        return lambda rel: True

    def listed(rel: str) -> bool:
        base = max((f for f in folders if rel.startswith(f)), key=len, default=None)
        return base is None or rel in folders[base]
    return listed


# The files of an S3 commit: part-<index>-<commit token> (sqlmr.table_writes)
COMMITTED_PART = re.compile(r"part-(\d{5,})-([0-9a-f]{8})")


def _md5(data: bytes) -> str:
    try:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    except TypeError:  # pragma: no cover - Python < 3.9
        return hashlib.md5(data).hexdigest()


def _manifest_names(bucket: str, marker: dict, siblings: list[str]) -> list[str] | None:
    """The files the ``_SUCCESS`` object ``marker`` (a listing entry) names.

    Its text is fixed by the files of one commit, so when the listing's ETag
    (the MD5 of a plainly or SSE-S3 stored object) is that of the manifest of
    the ``part-NNNNN-<token>`` files of one token among ``siblings``, those
    are the files, and the driver needs no s3:GetObject on the table (it has
    none where the function alone may read).  Otherwise the marker is read;
    one that cannot be read, beside no file of an sqlmr commit, is taken for
    another tool's (Spark's S3A committer writes a JSON ``_SUCCESS`` too)."""
    etag = str(marker.get("ETag") or "").strip('"')
    by_token: dict[str, list[tuple[int, str]]] = {}
    for name in siblings:
        m = COMMITTED_PART.fullmatch(name)
        if m:
            by_token.setdefault(m.group(2), []).append((int(m.group(1)), name))
    candidates = [[n for _, n in sorted(parts)] for parts in by_token.values()] + [[]]
    for names in candidates:
        if _md5(manifest_bytes(names)) == etag:
            return names
    uri = _uri(bucket, marker["Key"])
    try:
        return parse_manifest(read_range(uri))
    except StorageError as e:
        if not by_token:  # no file of an sqlmr commit here: another tool's marker
            return None
        from runtime.storage import InputError
        raise InputError(f"cannot read sqlmr's manifest {uri}, which says which files "
                         f"belong to the folder: {e}") from None


def folder_manifest(uri: str) -> list[str] | None:
    """The files sqlmr's ``_SUCCESS`` manifest at the top of the folder
    ``uri`` names (None: no such manifest), from a listing (see
    :func:`_manifest_names`)."""
    bucket, key = split_uri(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    objects = [o for o in _list(bucket, prefix, uri) if "/" not in o["Key"][len(prefix):]]
    marker = next((o for o in objects if o["Key"][len(prefix):] == MARKER), None)
    if marker is None or not int(marker.get("Size") or 0):
        return None
    return _manifest_names(bucket, marker, [o["Key"][len(prefix):] for o in objects])


def _range_header(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _get(bucket: str, key: str, uri: str, start: int, end: int | None,
         etag: str | None = None) -> Any | None:
    """GetObject for a range; None when the range starts past the end of the
    object.  ``etag``: only that version (another one is an InputError)."""
    if start == 0 and end is None:
        kwargs = {"Bucket": bucket, "Key": key}
    else:
        kwargs = {"Bucket": bucket, "Key": key, "Range": _range_header(start, end)}
    if etag:
        kwargs["IfMatch"] = etag
    try:
        return _call(lambda: client().get_object(**kwargs), uri, bucket)
    except ClientError as e:
        if etag and (_error_code(e) == "PreconditionFailed" or _status(e) == 412):
            from runtime.storage import InputError
            raise InputError(f"{uri} changed while the query ran (it is no longer the "
                             f"object listed when the query was planned, ETag {etag}); "
                             f"run the query again once nothing is writing to it") from None
        if _error_code(e) == "InvalidRange" or _status(e) == 416:
            return None
        if _is_404(e):
            raise _missing(uri, bucket) from e
        raise


def read_range(uri: str, start: int = 0, end: int | None = None,
               etag: str | None = None) -> bytes:
    """Bytes ``[start, end)`` of an object (to its end when ``end`` is None)."""
    if end is not None and end <= start:
        return b""
    bucket, key = split_uri(uri)

    def op() -> bytes:
        resp = _get(bucket, key, uri, start, end, etag)
        if resp is None:
            return b""
        with resp["Body"] as body:
            return body.read()

    # The body read can fail mid-way (dropped connection): retry the whole GET.
    return _call(op, uri, bucket, kind=None)


def iter_range(uri: str, start: int = 0, end: int | None = None,
               chunk: int = 1 << 20, etag: str | None = None) -> Iterator[bytes]:
    """Stream bytes ``[start, end)`` in chunks of at most ``chunk`` bytes.

    A connection dropped mid-stream is resumed with a new ranged GET from the
    first byte not yet yielded (bounded retries with backoff).
    """
    if end is not None and end <= start:
        return
    bucket, key = split_uri(uri)
    pos = start
    budget = Retrying()
    while end is None or pos < end:
        resp = _get(bucket, key, uri, pos, end, etag)
        if resp is None:
            return
        body = resp["Body"]
        try:
            while end is None or pos < end:
                n = chunk if end is None else min(chunk, end - pos)
                data = body.read(n)
                if not data:  # object shorter than the range asked for: that's all
                    return
                pos += len(data)
                budget = Retrying()
                yield data
            return
        except _CONNECTION_ERRORS as e:
            if not budget.wait():
                raise budget.gave_up(f"reading {uri}", e) from e
            s3stats.count_retry()
        finally:
            body.close()


# --------------------------------------------------------------------------- writing

def _part_size(total: int, part: int | None = None) -> int:
    """Parts of ``part`` (default PART_SIZE) bytes, grown if needed to stay
    within 10,000 parts."""
    need = -(-total // MAX_PARTS)
    return max(part or PART_SIZE, 5 * 1024 * 1024, need)


def put_requests(size: float, threshold: int | None = None, part: int | None = None) -> int:
    """PUT-class requests that writing an object of ``size`` bytes takes: one
    PUT, or a multipart upload's create, parts and complete (``threshold`` and
    ``part`` default to this module's; the cost model passes its own).

    >>> put_requests(0), put_requests(384 << 20), put_requests(600 << 20)
    (1, 1, 12)
    """
    if size < (threshold or MULTIPART_THRESHOLD):
        return 1
    return math.ceil(size / _part_size(math.ceil(size), part)) + 2


def _multipart(bucket: str, key: str, uri: str, total: int,
               read_part: Callable[[int, int], bytes], threads: int) -> None:
    """Multipart upload of ``total`` bytes; ``read_part(offset, n)`` supplies the data."""
    psize = _part_size(total)
    offsets = list(range(0, total, psize))
    up = _call(lambda: client().create_multipart_upload(Bucket=bucket, Key=key), uri, bucket,
               kind="put")
    upload_id = up["UploadId"]

    def put(i: int) -> dict:
        off = offsets[i]
        data = read_part(off, min(psize, total - off))
        resp = _call(lambda: client().upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                                  PartNumber=i + 1, Body=data), uri, bucket,
                     kind="put")
        return {"PartNumber": i + 1, "ETag": resp["ETag"]}

    try:
        if threads > 1 and len(offsets) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(offsets))) as pool:
                parts = list(pool.map(put, range(len(offsets))))
        else:
            parts = [put(i) for i in range(len(offsets))]
        _call(lambda: client().complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}),
            uri, bucket, kind="put")
    except BaseException:
        try:
            s3stats.count("delete")
            client().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            pass  # the lifecycle rule's AbortIncompleteMultipartUpload cleans up leftovers
        raise


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object (PUT, or multipart at MULTIPART_THRESHOLD and above).

    S3 makes the object visible only when the write completes, so readers see the
    old object or the new one.
    """
    bucket, key = split_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"not an object URI: {uri!r}")
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if len(view) < MULTIPART_THRESHOLD:
        body = bytes(view)
        _call(lambda: client().put_object(Bucket=bucket, Key=key, Body=body), uri, bucket,
              kind="put")
        return
    mv = memoryview(view)
    _multipart(bucket, key, uri, len(mv), lambda off, n: bytes(mv[off:off + n]), threads=1)


def write_file(uri: str, local_path: str) -> None:
    """Upload a local file (multipart, parts in parallel, at MULTIPART_THRESHOLD and above)."""
    bucket, key = split_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"not an object URI: {uri!r}")
    total = os.path.getsize(local_path)
    if total < MULTIPART_THRESHOLD:
        with open(local_path, "rb") as f:
            def put() -> Any:   # streamed from the file, from its start on every attempt
                f.seek(0)
                return client().put_object(Bucket=bucket, Key=key, Body=f, ContentLength=total)
            _call(put, uri, bucket, kind="put")
        return
    fd = os.open(local_path, os.O_RDONLY)
    try:
        def read_part(off: int, n: int) -> bytes:
            return os.pread(fd, n, off)
        _multipart(bucket, key, uri, total, read_part, threads=UPLOAD_THREADS)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- copying

def copy(src: str, dst: str, size: int | None = None) -> str:
    """Copy the object ``src`` to ``dst`` inside S3 (no byte passes through
    this process): CopyObject up to COPY_LIMIT, a multipart upload of
    UploadPartCopy ranges above it.  Returns the new object's ETag."""
    sb, sk = split_uri(src)
    db, dk = split_uri(dst)
    if not dk or dk.endswith("/"):
        raise ValueError(f"not an object URI: {dst!r}")
    if size is None:
        head = _head(sb, sk, src)
        if head is None:
            raise FileNotFoundError(f"no such S3 object: {src}")
        size = int(head["ContentLength"])
    source = {"Bucket": sb, "Key": sk}
    if size <= COPY_LIMIT:
        resp = _call(lambda: client().copy_object(Bucket=db, Key=dk, CopySource=source),
                     f"copying {src} to {dst}", db)
        return str(resp.get("CopyObjectResult", {}).get("ETag", ""))
    return _multipart_copy(source, db, dk, dst, size)


def _copy_part_size(total: int) -> int:
    """Parts of COPY_PART_SIZE, grown if needed to stay within 10,000 parts
    (never above 5 GiB: S3's largest part)."""
    return min(max(COPY_PART_SIZE, 5 * 1024 * 1024, -(-total // MAX_PARTS)), 5 * 1024 ** 3)


def _multipart_copy(source: dict, bucket: str, key: str, uri: str, total: int) -> str:
    """Copy ``total`` bytes of ``source`` to ``bucket/key`` by UploadPartCopy."""
    psize = _copy_part_size(total)
    offsets = list(range(0, total, psize))
    what = f"copying s3://{source['Bucket']}/{source['Key']} to {uri}"
    up = _call(lambda: client().create_multipart_upload(Bucket=bucket, Key=key), what, bucket)
    upload_id = up["UploadId"]

    def put(i: int) -> dict:
        off = offsets[i]
        last = min(off + psize, total) - 1
        resp = _call(lambda: client().upload_part_copy(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=i + 1,
            CopySource=source, CopySourceRange=f"bytes={off}-{last}"), what, bucket)
        return {"PartNumber": i + 1, "ETag": resp["CopyPartResult"]["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, len(offsets))) as pool:
            parts = list(pool.map(put, range(len(offsets))))
        resp = _call(lambda: client().complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}),
            what, bucket)
        return str(resp.get("ETag", ""))
    except BaseException:
        try:
            client().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            pass  # the lifecycle rule's AbortIncompleteMultipartUpload cleans up leftovers
        raise


def delete_keys(uri: str, names: list[str]) -> None:
    """Delete the objects ``names`` (relative to the prefix ``uri``); missing is fine."""
    bucket, key = split_uri(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    keys = [prefix + n for n in names]
    for i in range(0, len(keys), DELETE_BATCH):
        _delete_batch(bucket, keys[i:i + DELETE_BATCH], uri)


# --------------------------------------------------------------------------- deleting

def delete_prefix(uri: str) -> None:
    """Delete the object ``uri`` and everything under ``uri/``; missing is fine.

    Refuses a bare bucket (``s3://bucket`` or ``s3://bucket/``): that would empty it.
    """
    bucket, key = split_uri(uri)
    if not key.strip("/"):
        raise StorageError(f"refusing to delete every object in bucket {bucket!r} ({uri})")
    prefix = key if key.endswith("/") else key + "/"
    keys: list[str] = []
    if not key.endswith("/"):
        if _head(bucket, key, uri, probe=True) is not None:
            keys.append(key)
    keys.extend(obj["Key"] for obj in _list(bucket, prefix, uri))
    for i in range(0, len(keys), DELETE_BATCH):
        _delete_batch(bucket, keys[i:i + DELETE_BATCH], uri)


def _delete_batch(bucket: str, keys: list[str], uri: str) -> None:
    pending = keys
    budget = Retrying()
    while pending:
        batch = [{"Key": k} for k in pending]
        resp = _call(lambda: client().delete_objects(
            Bucket=bucket, Delete={"Objects": batch, "Quiet": True}), uri, bucket,
            kind="delete")
        errors = resp.get("Errors") or []
        if not errors:
            return
        retry = [e["Key"] for e in errors if e.get("Code") in _RETRYABLE_CODES]
        fatal = [e for e in errors if e.get("Code") not in _RETRYABLE_CODES]
        if fatal:
            e0 = fatal[0]
            raise StorageError(f"could not delete {len(fatal)} object(s) under {uri}: "
                               f"{e0.get('Key')}: {e0.get('Code')} {e0.get('Message', '')}")
        if not budget.wait():
            raise StorageError(f"S3 kept failing to delete {len(retry)} object(s) under {uri}")
        pending = retry
