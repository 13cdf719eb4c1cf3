"""pytest fixtures for AWS tests against a local moto server (no AWS account needed).

Use from a test module in ``tests/``::

    from aws_fixtures import moto_server, s3_bucket, aws_reset  # noqa: F401

``moto_server`` (session scope) starts ``moto.server.ThreadedMotoServer`` on
127.0.0.1 with a free port and points every boto3 client at it through
``AWS_ENDPOINT_URL``, with fake credentials and ``us-east-1``.  It also hides
the developer's own AWS config files and profile, so a test can never reach a
real account.  The environment is restored when the session ends.

``s3_bucket`` creates a fresh, uniquely named bucket for one test and empties
and deletes it afterwards.  ``aws_reset`` wipes all moto state (S3, IAM,
Lambda, Logs) before a test, for tests that need an empty account.
"""

from __future__ import annotations

import os
import urllib.request
import uuid

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that could lead boto3 to real credentials or another endpoint.
HIDDEN_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
              "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL_S3",
              "AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS",
              "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS")


def _reset_s3_client() -> None:
    try:
        from runtime import s3
    except Exception:  # pragma: no cover - boto3 missing
        return
    s3.reset_client()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The endpoint URL of a moto server on 127.0.0.1, with the AWS env pointing at it."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = str(tmp_path_factory.mktemp("aws-config") / "none")
    with pytest.MonkeyPatch.context() as mp:
        for name in HIDDEN_ENV:
            mp.delenv(name, raising=False)
        for name, value in FAKE_ENV.items():
            mp.setenv(name, value)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_CONFIG_FILE", nowhere)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        _reset_s3_client()
        try:
            yield endpoint
        finally:
            _reset_s3_client()
            server.stop()
    _reset_s3_client()


def _reset_moto(endpoint: str) -> None:
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@pytest.fixture
def aws_reset(moto_server):
    """An empty moto account for this test (all services reset before it runs)."""
    _reset_moto(moto_server)
    _reset_s3_client()
    yield moto_server


@pytest.fixture
def s3_bucket(moto_server):
    """Name of a fresh empty bucket on the moto server (deleted after the test)."""
    import boto3

    name = "sqlmr-test-" + uuid.uuid4().hex[:12]
    s3 = boto3.client("s3", region_name=os.environ["AWS_REGION"])
    s3.create_bucket(Bucket=name)
    _reset_s3_client()
    yield name
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            objs = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if objs:
                s3.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
        for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", ()):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        s3.delete_bucket(Bucket=name)
    except Exception:
        pass  # the bucket may have been deleted by the test, or moto reset


def run_lambda_locally(monkeypatch, bucket: str) -> None:
    """Point the lambda backend at ``bucket`` with tasks run by the real
    package in subprocesses, no waits for IAM propagation, and no deployment
    remembered from another test (call ``deploy.forget_deployments()`` after)."""
    from sqlmr.aws import deploy
    from sqlmr.backends import lambda_backend
    monkeypatch.setenv("SQLMR_BUCKET", bucket)
    monkeypatch.setenv("SQLMR_LAMBDA_INVOKER", "subprocess")
    monkeypatch.delenv("SQLMR_LAMBDA_MEMORY_MB", raising=False)
    monkeypatch.setattr(deploy, "_sleep", lambda s: None)
    monkeypatch.setattr(lambda_backend, "POLICY_PROPAGATION_S", 0.0)
    deploy.forget_deployments()
