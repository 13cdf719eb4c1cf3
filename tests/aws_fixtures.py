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
Lambda, Logs) before a test and after it, for tests that need an empty account.
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
              "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_SCHEDULER")


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
    """An empty moto account for this test: all services reset before it runs, and
    after, so what it made (roles, functions) never meets a later test."""
    _reset_moto(moto_server)
    _reset_s3_client()
    yield moto_server
    _reset_moto(moto_server)
    _reset_s3_client()


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


# --------------------------------------------------------------------------- IAM enforced
#
# The account as a real one behaves: S3, IAM, STS (and Logs) on a moto server that
# checks every request against IAM (INITIAL_NO_AUTH_ACTION_COUNT), Lambda's control
# plane on a second, non-enforcing one (moto's IAM enforcement garbles some of
# Lambda's REST calls, and its Lambda checks a function's role against its own IAM).
# The caller is an IAM user who may do everything except read the data bucket's
# objects, so a query only works if its tasks read as the function's role.

CALLER = "sqlmr-user"
FUNCTION_ROLE = "sqlmr-lambda-role"
DRIVER_ROLE = "sqlmr-driver-role"
_UNLIMITED = "1000000000"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(env_extra: dict[str, str]):
    """A ``python -m moto.server`` process on 127.0.0.1 (its own state); (proc, url)."""
    import subprocess
    import sys
    import time

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/moto-api/data.json", timeout=2) as r:
                r.read()
            return proc, url
        except Exception:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the moto server did not start")


def set_iam_enforcement(endpoint: str, after: str | int) -> None:
    """Let ``after`` more requests through unchecked, then enforce IAM (moto's
    INITIAL_NO_AUTH_ACTION_COUNT, set on a running server)."""
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", method="POST",
                                 data=str(after).encode(),
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@pytest.fixture(scope="session")
def iam_servers():
    """(enforcing S3/IAM/STS endpoint, non-enforcing Lambda endpoint), each a moto
    server process on 127.0.0.1 for the whole test session."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    main, main_url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": _UNLIMITED})
    try:
        lam, lam_url = _start_moto({})
    except BaseException:
        main.kill()
        raise
    try:
        yield main_url, lam_url
    finally:
        for p in (main, lam):
            p.terminate()
            try:
                p.wait(timeout=10)
            except Exception:
                p.kill()


class IamAccount:
    """What :func:`iam_account` made: endpoints, buckets, the caller's keys."""

    def __init__(self, endpoint: str, lambda_endpoint: str, job_bucket: str,
                 data_bucket: str, key: str, secret: str) -> None:
        self.endpoint = endpoint
        self.lambda_endpoint = lambda_endpoint
        self.job_bucket = job_bucket
        self.data_bucket = data_bucket
        self.key = key
        self.secret = secret

    def client(self, name: str):
        """A boto3 client of the caller (the IAM user)."""
        import boto3
        return boto3.client(name, region_name=FAKE_ENV["AWS_REGION"])

    def admin(self, name: str):
        """A client that gets through only while enforcement is off (set-up)."""
        import boto3
        return boto3.client(name, region_name=FAKE_ENV["AWS_REGION"],
                            endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing")


def _caller_policy(data_bucket: str | None) -> dict:
    allow = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    if data_bucket is None:
        return {"Version": "2012-10-17", "Statement": allow}
    return {"Version": "2012-10-17", "Statement": allow + [
        {"Effect": "Deny", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{data_bucket}/*"}]}


@pytest.fixture
def iam_account(iam_servers, tmp_path_factory, monkeypatch):
    """A fresh account with IAM enforced (see above): a job bucket and a data bucket
    the caller may not read, the caller's credentials in the environment, the
    Lambda backend pointed at the job bucket with tasks run as the function's
    role by the subprocess invoker."""
    yield from _enforced_account(iam_servers, tmp_path_factory, monkeypatch, deny_data=True)


@pytest.fixture
def enforced_bucket(iam_servers, tmp_path_factory, monkeypatch):
    """Like :func:`iam_account`, but the caller may read everything (the tests'
    reference answers and injected invokers run as the caller): the name of the
    job bucket, where tests put their tables too.  Tasks of a deploying backend
    still run as the function's role, with IAM enforced."""
    for account in _enforced_account(iam_servers, tmp_path_factory, monkeypatch,
                                     deny_data=False):
        yield account.job_bucket


@pytest.fixture(scope="module")
def enforced_module_bucket(iam_servers, tmp_path_factory):
    """:func:`enforced_bucket` for a whole test module."""
    with pytest.MonkeyPatch.context() as mp:
        for account in _enforced_account(iam_servers, tmp_path_factory, mp, deny_data=False):
            yield account.job_bucket


def _enforced_account(iam_servers, tmp_path_factory, monkeypatch, deny_data: bool):
    import json

    import boto3

    endpoint, lambda_endpoint = iam_servers
    set_iam_enforcement(endpoint, _UNLIMITED)
    _reset_moto(endpoint)
    _reset_moto(lambda_endpoint)
    region = FAKE_ENV["AWS_REGION"]
    admin = {n: boto3.client(n, region_name=region, endpoint_url=endpoint,
                             aws_access_key_id="testing", aws_secret_access_key="testing")
             for n in ("iam", "s3")}
    suffix = uuid.uuid4().hex[:10]
    job_bucket, data_bucket = f"sqlmr-jobs-{suffix}", f"sqlmr-data-{suffix}"
    for b in (job_bucket, data_bucket):
        admin["s3"].create_bucket(Bucket=b)
    admin["iam"].create_user(UserName=CALLER)
    admin["iam"].put_user_policy(UserName=CALLER, PolicyName="all-but-reading-data",
                                 PolicyDocument=json.dumps(_caller_policy(
                                     data_bucket if deny_data else None)))
    key = admin["iam"].create_access_key(UserName=CALLER)["AccessKey"]
    # moto's Lambda checks the function's role against its own IAM (the worker's
    # and the driver function's)
    for role in (FUNCTION_ROLE, DRIVER_ROLE):
        boto3.client("iam", region_name=region, endpoint_url=lambda_endpoint,
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_role(
            RoleName=role, AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]}))
    set_iam_enforcement(endpoint, 0)

    from sqlmr.aws import deploy
    from sqlmr.backends import lambda_backend
    nowhere = str(tmp_path_factory.mktemp("aws-config") / "none")
    for name in HIDDEN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_endpoint)
    # moto's IAM enforcement garbles the scheduler's signed REST calls too
    monkeypatch.setenv("AWS_ENDPOINT_URL_SCHEDULER", lambda_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", nowhere)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SQLMR_BUCKET", job_bucket)
    monkeypatch.setenv("SQLMR_LAMBDA_INVOKER", "subprocess")
    for name in ("SQLMR_LAMBDA_MEMORY_MB", "SQLMR_TABLE_LOCATIONS", "SQLMR_LAMBDA_GRANTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(deploy, "_sleep", lambda s: None)
    monkeypatch.setattr(lambda_backend, "POLICY_PROPAGATION_S", 0.0)
    deploy.forget_deployments()
    deploy._sessions.clear()
    _reset_s3_client()
    boto3.DEFAULT_SESSION = None   # it keeps the credentials it first found
    try:
        yield IamAccount(endpoint, lambda_endpoint, job_bucket, data_bucket,
                         key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        deploy.forget_deployments()
        deploy._sessions.clear()
        set_iam_enforcement(endpoint, _UNLIMITED)
        _reset_s3_client()
        boto3.DEFAULT_SESSION = None
