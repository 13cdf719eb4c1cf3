"""The Lambda deployment package, settings, and deploy / status / undeploy against moto."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: E402,F401
from sqlmr.aws import config, deploy, package  # noqa: E402
from sqlmr.aws.config import AwsSetupError, LambdaSettings, resolve_settings  # noqa: E402

REGION = "us-east-1"


# --------------------------------------------------------------------------- package

def test_package_is_reproducible_and_holds_runtime_sources_only():
    blob1, sha1 = package.build_package()
    blob2, sha2 = package.build_package()
    assert blob1 == blob2 and sha1 == sha2
    assert sha1 == hashlib.sha256(blob1).hexdigest()
    assert len(blob1) < 5 * 1024 * 1024          # Lambda allows 50 MB zipped
    zf = zipfile.ZipFile(io.BytesIO(blob1))
    names = zf.namelist()
    assert names == sorted(names)
    assert "runtime/__init__.py" in names and "runtime/s3.py" in names
    assert "runtime/storage.py" in names and "runtime/events.py" in names
    assert all(n.startswith("runtime/") and n.endswith(".py") for n in names)
    assert not any("__pycache__" in n for n in names)
    assert sum(i.file_size for i in zf.infolist()) < 250 * 1024 * 1024  # unzipped limit
    for info in zf.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
    # exactly the .py files of the runtime package, byte for byte
    root = package.runtime_dir()
    on_disk = sorted("runtime/" + os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
                     for d, _, files in os.walk(root) if "__pycache__" not in d
                     for f in files if f.endswith(".py"))
    assert names == on_disk
    with open(os.path.join(root, "s3.py"), "rb") as f:
        assert zf.read("runtime/s3.py") == f.read()
    assert package.package_name().startswith("sqlmr-runtime-")
    assert package.package_name() == f"sqlmr-runtime-{package.runtime_hash()[:12]}.zip"


def test_runtime_hash_follows_the_source(tmp_path, monkeypatch):
    copy = tmp_path / "runtime"
    shutil.copytree(package.runtime_dir(), copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(package, "runtime_dir", lambda: str(copy))
    h1 = package.runtime_hash()
    assert h1 == package.runtime_hash() and len(h1) == 64
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "s3.cpython-311.pyc").write_bytes(b"junk")
    (copy / "notes.txt").write_text("not shipped")
    assert package.runtime_hash() == h1              # nothing but .py sources counts
    with open(copy / "s3.py", "a") as f:
        f.write("\n# changed\n")
    h2 = package.runtime_hash()
    assert h2 != h1
    blob, _ = package.build_package()
    assert zipfile.ZipFile(io.BytesIO(blob)).read("runtime/s3.py").endswith(b"# changed\n")


def test_package_is_self_contained(tmp_path):
    blob, _ = package.build_package()
    target = tmp_path / "pkg"
    zipfile.ZipFile(io.BytesIO(blob)).extractall(target)
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__")
                     for n in zipfile.ZipFile(io.BytesIO(blob)).namelist())
    code = (
        "import sys, importlib\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "import runtime.storage, runtime.s3\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"assert runtime.s3.__file__.startswith({str(target)!r}), runtime.s3.__file__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlmr', 'compiler', 'sqlglot', 'duckdb', 'tabulate', 'prompt_toolkit'))\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n")
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


# --------------------------------------------------------------------------- settings

def test_settings_defaults_env_overrides(tmp_path):
    s = resolve_settings({}, env={"SQLMR_HOME": str(tmp_path)})
    assert (s.region, s.bucket, s.memory_mb, s.timeout_s, s.ephemeral_mb, s.architecture,
            s.concurrency, s.prefix, s.python_runtime) == \
        (None, None, 1769, 900, 1024, "arm64", 1000, "sqlmr-", "python3.12")
    env = {"SQLMR_HOME": str(tmp_path), "AWS_DEFAULT_REGION": "eu-west-1",
           "SQLMR_BUCKET": "my-bucket", "SQLMR_LAMBDA_MEMORY_MB": "3008",
           "SQLMR_LAMBDA_ARCH": "x86_64", "SQLMR_TABLE_LOCATIONS": "s3://t1/a, s3://t2"}
    s = resolve_settings({}, env=env)
    assert (s.region, s.bucket, s.memory_mb, s.architecture) == \
        ("eu-west-1", "my-bucket", 3008, "x86_64")
    assert s.table_locations == ("s3://t1/a", "s3://t2")
    env["AWS_REGION"] = "us-west-2"  # AWS_REGION wins over AWS_DEFAULT_REGION
    s = resolve_settings({"memory_mb": 512, "bucket": None}, env=env)
    assert (s.region, s.memory_mb, s.bucket) == ("us-west-2", 512, "my-bucket")
    s = resolve_settings({"timeout_s": "300", "architecture": "arm64"}, env=env)
    assert (s.timeout_s, s.architecture) == (300, "arm64")


@pytest.mark.parametrize("overrides, words", [
    ({"memory_mb": 64}, "memory_mb"),
    ({"timeout_s": 901}, "timeout_s"),
    ({"ephemeral_mb": 100}, "ephemeral_mb"),
    ({"architecture": "sparc"}, "architecture"),
    ({"python_runtime": "python3.9"}, "python3.12"),
    ({"python_runtime": "python3.11"}, "python3.12"),
    ({"memory_mb": "lots"}, "whole number"),
    ({"prefix": "other-"}, "prefix"),
    ({"table_locations": ["/local/path"]}, "s3://"),
    ({"colour": "red"}, "unknown"),
])
def test_bad_settings_are_named(overrides, words, tmp_path):
    with pytest.raises(AwsSetupError, match=words):
        resolve_settings(overrides, env={"SQLMR_HOME": str(tmp_path)})
    assert resolve_settings({"python_runtime": "python3.13"},
                            env={"SQLMR_HOME": str(tmp_path)}).python_runtime == "python3.13"


def test_check_credentials_names_what_to_set(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session()
    with pytest.raises(AwsSetupError) as info:
        config.check_credentials(session, LambdaSettings())
    msg = str(info.value)
    for word in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                 "SQLMR_BUCKET"):
        assert word in msg, msg
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b",
                                    region_name="us-east-1")
    config.check_credentials(session)
    config.check_credentials(session, LambdaSettings(bucket="b1"))
    with pytest.raises(AwsSetupError, match="SQLMR_BUCKET") as info:
        config.check_credentials(session, LambdaSettings())
    assert "AWS_PROFILE" not in str(info.value)


def test_role_policy_is_least_privilege():
    s = LambdaSettings(region=REGION, bucket="jobs-bkt",
                       table_locations=("s3://data-bkt/tables/rankings", "s3://whole-bkt",
                                        "s3://jobs-bkt/tables/uv"))
    doc = deploy.role_policy(s, "123456789012", REGION)
    text = json.dumps(doc)
    assert '"*"' not in text and "s3:*" not in text and "logs:*" not in text
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["JobScratch"]["Resource"] == ["arn:aws:s3:::jobs-bkt/sqlmr/jobs/*"]
    assert set(by_sid["JobScratch"]["Action"]) == {"s3:GetObject", "s3:PutObject",
                                                   "s3:DeleteObject", "s3:AbortMultipartUpload"}
    assert by_sid["JobBucketList"]["Resource"] == ["arn:aws:s3:::jobs-bkt"]
    assert by_sid["TablesRead"]["Action"] == ["s3:GetObject"]     # tables are read only
    assert set(by_sid["TablesRead"]["Resource"]) == {
        "arn:aws:s3:::data-bkt/tables/rankings", "arn:aws:s3:::data-bkt/tables/rankings/*",
        "arn:aws:s3:::whole-bkt/*", "arn:aws:s3:::jobs-bkt/tables/uv",
        "arn:aws:s3:::jobs-bkt/tables/uv/*"}
    lists = [st for st in doc["Statement"] if st["Sid"].startswith("TablesList")]
    data = [st for st in lists if st["Resource"] == ["arn:aws:s3:::data-bkt"]][0]
    assert data["Condition"]["StringLike"]["s3:prefix"] == ["tables/rankings",
                                                            "tables/rankings/*"]
    whole = [st for st in lists if st["Resource"] == ["arn:aws:s3:::whole-bkt"]][0]
    assert "Condition" not in whole
    assert len(lists) == 2                          # the job bucket is listed already
    logs = by_sid["Logs"]
    assert set(logs["Action"]) == {"logs:CreateLogGroup", "logs:CreateLogStream",
                                   "logs:PutLogEvents"}
    assert all(r.startswith("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/"
                            "sqlmr-runtime-") for r in logs["Resource"])
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert not any(a.startswith(("iam:", "lambda:")) for a in actions)


def test_a_table_folder_is_one_resource_and_the_trust_policy_adds_principals():
    s = LambdaSettings(region=REGION, bucket="jobs-bkt",
                       table_locations=("s3://data-bkt/tables/events/",))
    doc = deploy.role_policy(s, "123456789012", REGION)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert by_sid["TablesRead"]["Resource"] == ["arn:aws:s3:::data-bkt/tables/events/*"]
    lists = [st for st in doc["Statement"] if st["Sid"].startswith("TablesList")]
    assert lists[0]["Condition"]["StringLike"]["s3:prefix"] == ["tables/events/*"]
    trust = deploy.role_trust_policy(["arn:aws:iam::123456789012:user/u"])
    [st] = trust["Statement"]
    assert st["Principal"] == {"Service": "lambda.amazonaws.com",
                               "AWS": ["arn:aws:iam::123456789012:user/u"]}
    assert deploy.trusted_principals(trust) == ["arn:aws:iam::123456789012:user/u"]
    assert deploy.trusted_principals(deploy.role_trust_policy()) == []


# --------------------------------------------------------------------------- deploy

def _clients():
    return {name: boto3.client(name, region_name=REGION)
            for name in ("s3", "iam", "lambda", "logs")}


def _everything(c, bucket):
    """A snapshot of the account's resources that these tests care about."""
    rules = []
    try:
        rules = c["s3"].get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except c["s3"].exceptions.ClientError:
        pass
    return {
        "functions": sorted(f["FunctionName"] for f in c["lambda"].list_functions()["Functions"]),
        "roles": sorted(r["RoleName"] for r in c["iam"].list_roles()["Roles"]),
        "objects": sorted(o["Key"] for o in
                          c["s3"].list_objects_v2(Bucket=bucket).get("Contents", [])),
        "rules": sorted(r["ID"] for r in rules),
        "log_groups": sorted(g["logGroupName"] for g in
                             c["logs"].describe_log_groups()["logGroups"]),
    }


@pytest.fixture
def no_sleep(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(deploy, "_sleep", sleeps.append)
    deploy.forget_deployments()
    yield sleeps
    deploy.forget_deployments()


@pytest.fixture
def account(aws_reset, s3_bucket, no_sleep):
    """An account holding some things sqlmr did not make, which must survive it."""
    c = _clients()
    c["s3"].put_object(Bucket=s3_bucket, Key="keep/me.csv", Body=b"1,2\n")
    c["s3"].put_object(Bucket=s3_bucket, Key="sqlmr/deploy/notes.txt", Body=b"mine")
    c["s3"].put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={
        "Rules": [{"ID": "keep-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                   "Expiration": {"Days": 30}}]})
    role = c["iam"].create_role(RoleName="other-role", AssumeRolePolicyDocument=json.dumps(
        deploy.role_trust_policy()))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(e, c):\n    return 1\n")
    c["lambda"].create_function(FunctionName="other-fn", Runtime="python3.12", Role=role,
                                Handler="app.handler", Code={"ZipFile": buf.getvalue()})
    c["lambda"].create_function(FunctionName="sqlmr-runtime-notours", Runtime="python3.12",
                                Role=role, Handler="app.handler",
                                Code={"ZipFile": buf.getvalue()})
    c["logs"].create_log_group(logGroupName="/aws/lambda/other-fn")
    return s3_bucket


def _settings(bucket, **kw):
    return LambdaSettings(region=REGION, bucket=bucket, **kw)


def test_deploy_status_redeploy_undeploy(account, monkeypatch):
    c = _clients()
    before = _everything(c, account)
    s = _settings(account, table_locations=("s3://data-bkt/rankings",))

    info = deploy.deploy(s)
    rhash = package.runtime_hash()
    assert info.created and info.runtime_hash == rhash
    assert info.function_name == f"sqlmr-runtime-{rhash[:12]}"
    assert info.code_uri == f"s3://{account}/sqlmr/deploy/{info.function_name}.zip"
    fn = c["lambda"].get_function(FunctionName=info.function_name)
    conf = fn["Configuration"]
    assert conf["State"] == "Active"
    assert (conf["Runtime"], conf["Architectures"], conf["MemorySize"], conf["Timeout"],
            conf["EphemeralStorage"]["Size"], conf["Handler"]) == \
        ("python3.12", ["arm64"], 1769, 900, 1024, "runtime.handler.lambda_handler")
    assert fn["Tags"] == {"sqlmr": "managed", "sqlmr-runtime-hash": rhash}
    assert conf["Role"] == info.role_arn and info.role_arn.endswith("/sqlmr-lambda-role")
    blob = c["s3"].get_object(Bucket=account, Key=info.code_uri.split("/", 3)[3])["Body"].read()
    assert hashlib.sha256(blob).hexdigest() == info.code_sha256 == package.build_package()[1]
    role_tags = c["iam"].list_role_tags(RoleName="sqlmr-lambda-role")["Tags"]
    assert {"Key": "sqlmr", "Value": "managed"} in role_tags
    policy = c["iam"].get_role_policy(RoleName="sqlmr-lambda-role",
                                      PolicyName="sqlmr-lambda-policy")["PolicyDocument"]
    if isinstance(policy, str):
        policy = json.loads(policy)
    assert policy == deploy.role_policy(s, "123456789012", REGION)
    rules = {r["ID"]: r for r in
             c["s3"].get_bucket_lifecycle_configuration(Bucket=account)["Rules"]}
    assert set(rules) == {"keep-logs", "sqlmr-expire-jobs"}      # merged, not clobbered
    assert rules["sqlmr-expire-jobs"]["Filter"] == {"Prefix": "sqlmr/jobs/"}
    assert rules["sqlmr-expire-jobs"]["Expiration"] == {"Days": 1}
    group = c["logs"].describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{info.function_name}")["logGroups"][0]
    assert group["retentionInDays"] == 14

    st = deploy.status(s)
    assert st["deployed"] and st["function"] == info.function_name and st["stale"] == []
    assert [f["name"] for f in st["functions"]] == [info.function_name]  # not "notours"
    assert st["role"]["name"] == "sqlmr-lambda-role" and st["lifecycle_rule"]
    assert st["code_objects"] == [info.code_uri]
    assert info.function_name in deploy.format_status(st)

    # deploying again changes nothing; ensure_deployed finds it without deploying
    again = deploy.deploy(s)
    assert not again.created and again.removed == []
    deploy.forget_deployments()
    calls = []
    monkeypatch.setattr(deploy, "deploy", lambda settings: calls.append(1))
    ready = deploy.ensure_deployed(s)
    assert ready.function_arn == info.function_arn and not ready.created and calls == []
    monkeypatch.undo()
    monkeypatch.setattr(deploy, "_sleep", lambda s: None)

    # a stage's smaller memory: a sibling function of that size, the same code;
    # the main one stays as it was, and both are current
    small = deploy.ensure_deployed(s, 1024)
    assert small.created and small.function_name == f"{info.function_name}-1024mb"
    conf = c["lambda"].get_function(FunctionName=small.function_name)["Configuration"]
    assert (conf["MemorySize"], conf["State"], conf["Role"]) == (1024, "Active", info.role_arn)
    assert c["lambda"].get_function(
        FunctionName=info.function_name)["Configuration"]["MemorySize"] == 1769
    assert deploy.ensure_deployed(s, 1024) is small and deploy.ensure_deployed(s, 1769) is ready
    st = deploy.status(s)
    assert st["deployed"] and st["stale"] == []
    assert sorted(f["name"] for f in st["functions"]) == [info.function_name,
                                                          small.function_name]
    assert not deploy.deploy(s).removed                  # a redeploy keeps the sibling

    # the runtime changes: a new function; the old ones go, and deploy says so
    new_hash = hashlib.sha256(b"another runtime").hexdigest()
    monkeypatch.setattr(package, "runtime_hash", lambda: new_hash)
    st = deploy.status(s)
    assert not st["deployed"] and sorted(st["stale"]) == [info.function_name,
                                                          small.function_name]
    info2 = deploy.ensure_deployed(s)
    assert info2.created and info2.function_name == f"sqlmr-runtime-{new_hash[:12]}"
    assert f"function {info.function_name}" in info2.removed
    assert f"function {small.function_name}" in info2.removed
    assert f"log group /aws/lambda/{small.function_name}" in info2.removed
    assert f"s3://{account}/sqlmr/deploy/{info.function_name}.zip" in info2.removed
    assert any("stale" in n and info.function_name in n for n in info2.notes)
    st = deploy.status(s)
    assert [f["name"] for f in st["functions"]] == [info2.function_name] and st["deployed"]
    assert st["code_objects"] == [info2.code_uri]

    # new settings reconfigure the same function
    s2 = _settings(account, memory_mb=3008, timeout_s=300)
    assert deploy.ensure_deployed(s2).created
    conf = c["lambda"].get_function(FunctionName=info2.function_name)["Configuration"]
    assert (conf["MemorySize"], conf["Timeout"]) == (3008, 300)

    removed = deploy.undeploy(s2)
    assert f"function {info2.function_name}" in removed
    assert "IAM role sqlmr-lambda-role" in removed
    assert f"s3://{account}/{info2.code_uri.split('/', 3)[3]}" in removed
    assert f"lifecycle rule sqlmr-expire-jobs on s3://{account}" in removed
    assert f"log group /aws/lambda/{info2.function_name}" in removed
    assert _everything(c, account) == before                     # exactly as it was
    assert deploy.undeploy(s2) == []                             # nothing left to remove
    st = deploy.status(s2)
    assert not st["deployed"] and st["functions"] == [] and st["role"] is None
    assert st["code_objects"] == [] and not st["lifecycle_rule"]


def test_create_function_waits_for_the_role_to_propagate(account, no_sleep, monkeypatch):
    attempts = []

    def not_yet(**kw):
        attempts.append(1)
        if len(attempts) <= 3:
            body = json.dumps({"Type": "User", "message": "The role defined for the function "
                               "cannot be assumed by Lambda."}).encode()

            class Raw:
                def stream(self, **kw):
                    yield body
            return AWSResponse("http://injected", 400, {
                "x-amzn-ErrorType": "InvalidParameterValueException",
                "Content-Type": "application/json"}, Raw())
        return None

    real_init = deploy._Aws.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        self.lam = self._client("lambda")  # a client of this test's own
        self.lam.meta.events.register("before-send.lambda.CreateFunction", not_yet)

    monkeypatch.setattr(deploy._Aws, "__init__", init)
    info = deploy.deploy(_settings(account))
    assert info.created and len(attempts) == 4
    assert len(no_sleep) == 3
    for i, d in enumerate(no_sleep):  # backoff grows, jittered within [step/2, step]
        step = min(deploy.ROLE_PROPAGATION_CAP_S, 2 ** i)
        assert step / 2 <= d <= step
    deploy.undeploy(_settings(account))


def test_deploy_explains_missing_bucket_and_credentials(aws_reset, no_sleep, monkeypatch):
    with pytest.raises(AwsSetupError) as info:
        deploy.deploy(_settings("sqlmr-missing-bucket-77"))
    assert "sqlmr-missing-bucket-77" in str(info.value) and "SQLMR_BUCKET" in str(info.value)
    with pytest.raises(AwsSetupError, match="SQLMR_BUCKET"):
        deploy.deploy(LambdaSettings(region=REGION))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsSetupError) as info:
        deploy.deploy(_settings("any-bucket"))
    assert "AWS_PROFILE" in str(info.value) and "AWS_ACCESS_KEY_ID" in str(info.value)
    assert not _clients()["lambda"].list_functions()["Functions"]


def test_foreign_role_with_our_name_is_left_alone(account, no_sleep):
    c = _clients()
    c["iam"].create_role(RoleName="sqlmr-lambda-role",
                         AssumeRolePolicyDocument=json.dumps(deploy.role_trust_policy()))
    with pytest.raises(AwsSetupError, match="did not create"):
        deploy.deploy(_settings(account))
    deploy.undeploy(_settings(account))
    assert "sqlmr-lambda-role" in [r["RoleName"] for r in c["iam"].list_roles()["Roles"]]
