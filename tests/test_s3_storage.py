"""runtime.storage on s3:// URIs, against a moto server on 127.0.0.1."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.exceptions import EndpointConnectionError, ResponseStreamingError  # noqa: E402

from aws_fixtures import moto_server, s3_bucket  # noqa: E402,F401
from runtime import s3, storage  # noqa: E402


def _raw_client():
    return boto3.client("s3", region_name=os.environ["AWS_REGION"])


def _count_calls(event: str) -> list[int]:
    """Count requests of one kind made by runtime.s3's client (e.g. 'ListObjectsV2')."""
    calls: list[int] = []
    s3.client().meta.events.register(f"before-call.s3.{event}",
                                     lambda **kw: calls.append(1))
    return calls


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kw):
        yield self.body


def _error_response(status: int, code: str) -> AWSResponse:
    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>injected by the test</Message></Error>").encode()
    return AWSResponse("http://injected", status, {"Content-Type": "application/xml"},
                       _Raw(body))


@pytest.fixture(autouse=True)
def fresh_client():
    """Each test gets its own client, so event hooks a test registers die with it."""
    s3.reset_client()
    yield
    s3.reset_client()


@pytest.fixture
def recorded_sleeps(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(s3, "_sleep", sleeps.append)
    return sleeps


# --------------------------------------------------------------------------- basics

def test_roundtrip_size_exists(s3_bucket):
    uri = f"s3://{s3_bucket}/t/a.txt"
    data = b"alpha,1\nbeta,2\r\ngamma,3\n"
    storage.write_bytes(uri, data)
    assert storage.exists(uri)
    assert storage.size(uri) == len(data)
    assert storage.read_range(uri) == data
    assert storage.exists(f"s3://{s3_bucket}/t")          # a prefix with objects
    assert storage.exists(f"s3://{s3_bucket}/t/")
    assert not storage.exists(f"s3://{s3_bucket}/t/missing")
    assert not storage.exists(f"s3://{s3_bucket}/t/a.tx")  # no prefix matching by accident
    with pytest.raises(FileNotFoundError):
        storage.size(f"s3://{s3_bucket}/t/missing")
    with pytest.raises(FileNotFoundError):
        storage.read_range(f"s3://{s3_bucket}/t/missing", 0, 10)
    # overwrite replaces the whole object
    storage.write_bytes(uri, b"new")
    assert storage.read_range(uri) == b"new"


def test_ranged_reads_and_iter_range(s3_bucket):
    uri = f"s3://{s3_bucket}/r/data.bin"
    data = bytes(range(256)) * 40  # 10,240 bytes
    storage.write_bytes(uri, data)
    for start, end in [(0, 1), (0, 100), (17, 4099), (10_000, 10_240), (10_239, None),
                       (5, None), (0, None), (10_000, 20_000)]:
        assert storage.read_range(uri, start, end) == data[start:end], (start, end)
    # empty and past-the-end ranges behave like local files
    assert storage.read_range(uri, 50, 50) == b""
    assert storage.read_range(uri, 20_000, None) == b""
    assert storage.read_range(uri, 10_240, 10_300) == b""

    chunks = list(storage.iter_range(uri, 3, 9_003, chunk=1000))
    assert b"".join(chunks) == data[3:9_003]
    assert [len(c) for c in chunks] == [1000] * 9
    chunks = list(storage.iter_range(uri, 100, None, chunk=4096))
    assert b"".join(chunks) == data[100:]
    assert all(len(c) <= 4096 for c in chunks)
    assert list(storage.iter_range(uri, 20_000, None)) == []

    empty = f"s3://{s3_bucket}/r/empty"
    storage.write_bytes(empty, b"")
    assert storage.size(empty) == 0
    assert storage.read_range(empty) == b""
    assert list(storage.iter_range(empty)) == []


def test_iter_range_resumes_after_dropped_connection(s3_bucket, monkeypatch, recorded_sleeps):
    uri = f"s3://{s3_bucket}/r/drop.bin"
    data = os.urandom(50_000)
    storage.write_bytes(uri, data)
    real_get = s3.client().get_object  # bound to the real client
    ranges: list[str] = []

    class Dropping:
        """A body that delivers one chunk, then loses the connection (first GET only)."""
        def __init__(self, body):
            self.body, self.reads = body, 0

        def read(self, n=-1):
            self.reads += 1
            if self.reads == 2:
                raise ResponseStreamingError(error="connection reset by peer")
            return self.body.read(n)

        def close(self):
            self.body.close()

    def get_object(**kw):
        ranges.append(kw.get("Range"))
        resp = real_get(**kw)
        if len(ranges) == 1:
            resp["Body"] = Dropping(resp["Body"])
        return resp

    real = s3.client()

    class Wrapper:
        def __getattr__(self, name):
            return get_object if name == "get_object" else getattr(real, name)

    wrapper = Wrapper()
    monkeypatch.setattr(s3, "client", lambda: wrapper)
    got = b"".join(storage.iter_range(uri, 1000, 41_000, chunk=7_000))
    assert got == data[1000:41_000]
    # first GET from 1000, the second resumes after the 7,000 bytes already yielded
    assert ranges == ["bytes=1000-40999", "bytes=8000-40999"]
    assert len(recorded_sleeps) == 1


def test_listing_paginates_skips_hidden_and_deletes_in_batches(s3_bucket):
    raw = _raw_client()
    keys = [f"tbl/part-{i:05d}" for i in range(1_105)]
    extras = ["tbl/_SUCCESS", "tbl/.part-00000.crc", "tbl/_temporary/0/part-99999",
              "tbl/sub/part-0", "tbl/sub/_SUCCESS", "tbl/", "tbl2/part-00000", "tblx"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: raw.put_object(Bucket=s3_bucket, Key=k, Body=b"x" * 3),
                      keys + extras))
    lists = _count_calls("ListObjectsV2")
    files = storage.list_files(f"s3://{s3_bucket}/tbl")
    assert len(lists) >= 2                       # more than 1,000 keys: several pages
    want = sorted([f"s3://{s3_bucket}/{k}" for k in keys] + [f"s3://{s3_bucket}/tbl/sub/part-0"])
    assert [u for u, _ in files] == want
    assert all(n == 3 for _, n in files)
    assert storage.list_files(f"s3://{s3_bucket}/tbl/") == files
    # a single key lists as itself (even when another key shares its prefix)
    assert storage.list_files(f"s3://{s3_bucket}/tblx") == [(f"s3://{s3_bucket}/tblx", 3)]
    with pytest.raises(FileNotFoundError):
        storage.list_files(f"s3://{s3_bucket}/nothing-here")

    deletes = _count_calls("DeleteObjects")
    storage.delete_prefix(f"s3://{s3_bucket}/tbl")
    assert len(deletes) == 2                     # 1,112 keys → two batches of ≤ 1,000
    left = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=s3_bucket).get("Contents", []))
    assert left == ["tbl2/part-00000", "tblx"]   # neighbours with the same leading text stay
    storage.delete_prefix(f"s3://{s3_bucket}/tbl")  # missing is fine
    storage.delete_prefix(f"s3://{s3_bucket}/tblx")  # a single object
    assert storage.list_files(f"s3://{s3_bucket}/") == [(f"s3://{s3_bucket}/tbl2/part-00000", 3)]
    with pytest.raises(s3.StorageError, match="refusing"):
        storage.delete_prefix(f"s3://{s3_bucket}/")


def test_multipart_write_file_and_write_bytes(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3, "PART_SIZE", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024 + 12_345)  # 3 parts: 5 + 5 + 2.01 MiB
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    parts = _count_calls("UploadPart")
    puts = _count_calls("PutObject")
    uri = f"s3://{s3_bucket}/big/file.bin"
    storage.write_file(uri, str(local))
    assert len(parts) == 3 and not puts
    assert s3.put_requests(len(data)) == 3 + 2          # create, 3 parts, complete
    assert storage.size(uri) == len(data)
    assert storage.read_range(uri) == data
    etag = _raw_client().head_object(Bucket=s3_bucket, Key="big/file.bin")["ETag"]
    assert etag.strip('"').endswith("-3")        # S3's mark of a 3-part upload

    uri2 = f"s3://{s3_bucket}/big/bytes.bin"
    storage.write_bytes(uri2, bytearray(data))
    assert len(parts) == 6
    assert storage.read_range(uri2, 5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10) == \
        data[5 * 1024 * 1024 - 10:5 * 1024 * 1024 + 10]

    small = tmp_path / "small.bin"
    small.write_bytes(b"tiny")
    storage.write_file(f"s3://{s3_bucket}/big/small.bin", str(small))
    assert len(puts) == 1 and len(parts) == 6
    assert not _raw_client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_a_file_put_retried_after_a_503_sends_the_whole_file_again(s3_bucket, tmp_path,
                                                                    recorded_sleeps):
    """Below the multipart threshold a file is one PUT streamed from disk; a retry
    starts from the file's beginning (no truncated or empty object)."""
    data = os.urandom(3 * 1024 * 1024 + 7)
    local = tmp_path / "out.bin"
    local.write_bytes(data)
    sent: list[int] = []

    def flaky(**kw):
        sent.append(1)
        return _error_response(503, "SlowDown") if len(sent) <= 2 else None
    s3.client().meta.events.register("before-send.s3.PutObject", flaky)
    uri = f"s3://{s3_bucket}/out/file.bin"
    storage.write_file(uri, str(local))
    assert len(sent) == 3 and len(recorded_sleeps) == 2
    assert storage.read_range(uri) == data
    assert s3.put_requests(len(data)) == 1


def test_the_model_counts_the_put_requests_the_runtime_makes():
    """bench_model's CodeFacts reads the runtime's upload sizes: the same count for
    any object size, at and around the thresholds."""
    from sqlmr.bench_model import code_facts
    facts = code_facts()
    for size in (0, 1, s3.PART_SIZE, s3.MULTIPART_THRESHOLD - 1, s3.MULTIPART_THRESHOLD,
                 s3.MULTIPART_THRESHOLD + 1, 3 * s3.MULTIPART_THRESHOLD + 12_345):
        assert facts.put_requests(size) == s3.put_requests(size), size


def test_failed_multipart_upload_is_aborted(s3_bucket, tmp_path, monkeypatch, recorded_sleeps):
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3, "PART_SIZE", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "MAX_ATTEMPTS", 2)
    s3.client().meta.events.register("before-send.s3.UploadPart",
                                     lambda **kw: _error_response(500, "InternalError"))
    with pytest.raises(s3.StorageError, match="after 2 attempts"):
        storage.write_bytes(f"s3://{s3_bucket}/big/fail.bin", b"z" * (7 * 1024 * 1024))
    assert not _raw_client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert not storage.exists(f"s3://{s3_bucket}/big/fail.bin")


# --------------------------------------------------------------------------- retries

def test_slowdown_is_retried_with_jittered_exponential_backoff(s3_bucket, monkeypatch,
                                                                recorded_sleeps):
    jitter = iter([0.9, 0.1, 0.5])
    monkeypatch.setattr(s3, "_random", lambda: next(jitter))
    sent: list[int] = []

    def flaky(**kw):
        sent.append(1)
        if len(sent) <= 3:
            return _error_response(503, "SlowDown")
        return None  # let the real request through

    s3.client().meta.events.register("before-send.s3.PutObject", flaky)
    uri = f"s3://{s3_bucket}/retry/ok"
    storage.write_bytes(uri, b"payload")
    assert len(sent) == 4
    base = s3.BACKOFF_BASE
    assert recorded_sleeps == pytest.approx([0.9 * base, 0.1 * base * 2, 0.5 * base * 4])
    assert storage.read_range(uri) == b"payload"


def test_backoff_is_bounded_and_gives_up(s3_bucket, monkeypatch, recorded_sleeps):
    monkeypatch.setattr(s3, "MAX_ATTEMPTS", 6)
    monkeypatch.setattr(s3, "_random", lambda: 1.0)  # the largest delay full jitter can pick
    monkeypatch.setattr(s3, "BACKOFF_CAP", 0.5)
    sent: list[int] = []

    def always_503(**kw):
        sent.append(1)
        return _error_response(503, "SlowDown")

    s3.client().meta.events.register("before-send.s3.GetObject", always_503)
    with pytest.raises(s3.StorageError, match="after 6 attempts"):
        storage.read_range(f"s3://{s3_bucket}/anything", 0, 10)
    assert len(sent) == 6 and len(recorded_sleeps) == 5
    assert recorded_sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])  # capped


def test_full_jitter_spreads_delays():
    delays = [s3.backoff_delay(4) for _ in range(200)]
    top = min(s3.BACKOFF_CAP, s3.BACKOFF_BASE * 16)
    assert all(0 <= d <= top for d in delays)
    assert len(set(delays)) > 150 and min(delays) < top / 4 and max(delays) > top * 3 / 4


def test_connection_errors_are_retried(s3_bucket, recorded_sleeps):
    sent: list[int] = []

    def drop(request, **kw):
        sent.append(1)
        if len(sent) <= 2:
            raise EndpointConnectionError(endpoint_url=request.url)

    s3.client().meta.events.register("before-send.s3.ListObjectsV2", drop)
    storage.write_bytes(f"s3://{s3_bucket}/c/part-0", b"1")
    assert storage.list_files(f"s3://{s3_bucket}/c") == [(f"s3://{s3_bucket}/c/part-0", 1)]
    assert len(sent) == 3 and len(recorded_sleeps) == 2


def test_access_denied_is_not_retried(s3_bucket, recorded_sleeps):
    s3.client().meta.events.register("before-send.s3.PutObject",
                                     lambda **kw: _error_response(403, "AccessDenied"))
    with pytest.raises(s3.StorageError, match="access denied"):
        storage.write_bytes(f"s3://{s3_bucket}/x", b"1")
    assert recorded_sleeps == []


# --------------------------------------------------------------------------- errors

def test_missing_bucket_names_the_bucket(moto_server):
    uri = "s3://sqlmr-no-such-bucket-4242/data/part-0"
    for call in (lambda: storage.read_range(uri, 0, 10), lambda: storage.size(uri),
                 lambda: storage.list_files("s3://sqlmr-no-such-bucket-4242/data"),
                 lambda: storage.write_bytes(uri, b"x"),
                 lambda: storage.exists(uri)):
        with pytest.raises(s3.StorageError) as info:
            call()
        msg = str(info.value)
        assert "sqlmr-no-such-bucket-4242" in msg and "SQLMR_BUCKET" in msg, msg


def test_missing_credentials_message(moto_server, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(s3.StorageError) as info:
        storage.read_range("s3://any-bucket/key", 0, 10)
    msg = str(info.value)
    assert "AWS_PROFILE" in msg and "AWS_ACCESS_KEY_ID" in msg and "AWS_SECRET_ACCESS_KEY" in msg
    assert "AWS_REGION" in msg


def test_client_is_cached_and_follows_the_endpoint(moto_server, monkeypatch):
    c1 = s3.client()
    assert s3.client() is c1
    assert c1.meta.endpoint_url == moto_server
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    c2 = s3.client()
    assert c2 is not c1 and c2.meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    c3 = s3.client()
    assert c3.meta.endpoint_url == moto_server
    s3.reset_client()
    assert s3.client() is not c3


def test_bad_uris():
    with pytest.raises(ValueError):
        s3.split_uri("s3:///key")
    with pytest.raises(ValueError):
        s3.split_uri("/tmp/x")


def test_forbidden_head_falls_back_to_listing(s3_bucket, recorded_sleeps):
    """Without s3:ListBucket on a name, S3 answers HEAD of a missing key with 403; a
    prefix must still list (the Lambda role may list only table prefixes)."""
    storage.write_bytes(f"s3://{s3_bucket}/t/part-0", b"abc")
    s3.client().meta.events.register("before-send.s3.HeadObject",
                                     lambda **kw: _error_response(403, "AccessDenied"))
    assert storage.list_files(f"s3://{s3_bucket}/t") == [(f"s3://{s3_bucket}/t/part-0", 3)]
    assert storage.exists(f"s3://{s3_bucket}/t")
    with pytest.raises(s3.StorageError, match="access denied"):
        storage.size(f"s3://{s3_bucket}/t/part-0")
    assert recorded_sleeps == []


def test_the_planner_assumes_the_depths_the_runtime_has():
    """The planner's constants (sqlmr.splits) mirror what the runtime does."""
    from runtime import readahead, shuffle
    from sqlmr import splits
    assert splits.LAMBDA_COMBINE_DEPTH == shuffle.COMBINE_FETCHES
    assert splits.LAMBDA_FETCH_DEPTH == readahead.SHUFFLE_DEPTH
    assert splits.LAMBDA_GET_BYTES == readahead.CHUNK
