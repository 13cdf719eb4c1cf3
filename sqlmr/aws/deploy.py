"""Deploy, inspect and remove sqlmr's Lambda function and the few resources around it.

What :func:`deploy` makes, all named ``sqlmr-…`` and tagged ``sqlmr=managed``:

* IAM role ``sqlmr-lambda-role`` (trusted by lambda.amazonaws.com) with one inline
  policy ``sqlmr-lambda-policy``: read/write/delete under ``s3://BUCKET/sqlmr/jobs/``,
  list the job bucket, read the table locations it is given, and write its own
  CloudWatch log groups.
* the code object ``s3://BUCKET/sqlmr/deploy/sqlmr-runtime-<hash12>.zip`` (the
  record of what was deployed);
* the function ``sqlmr-runtime-<hash12>`` (one per runtime hash; python3.12,
  arm64, 1,769 MB, 900 s, 1,024 MB /tmp by default), created from the zip sent
  inline (Lambda never reads the bucket; from the object only above 50 MB);
* its log group ``/aws/lambda/sqlmr-runtime-<hash12>`` with a retention period;
* a lifecycle rule ``sqlmr-expire-jobs`` on the job bucket expiring ``sqlmr/jobs/``
  after one day (merged with the bucket's other rules).

Functions of older runtime hashes are removed by the next deploy (it says so).
:func:`undeploy` removes exactly these things and nothing else; the job bucket
itself is the user's and stays.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from sqlmr.aws import package
from sqlmr.aws.config import (
    CREDENTIALS_HELP,
    AwsSetupError,
    LambdaSettings,
    check_credentials,
)

TAG_KEY = "sqlmr"
TAG_VALUE = "managed"
HASH_TAG = "sqlmr-runtime-hash"

# CreateFunction right after CreateRole fails until IAM has propagated the role.
ROLE_PROPAGATION_ATTEMPTS = 12
ROLE_PROPAGATION_CAP_S = 10.0
_sleep: Callable[[float], None] = time.sleep

_ROLE_NOT_READY = "cannot be assumed"
_AUTH_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
               "ExpiredTokenException", "InvalidAccessKeyId", "SignatureDoesNotMatch",
               "AuthFailure"}


@dataclass
class DeployInfo:
    """The function a job should invoke, and what deploying it did."""
    function_name: str
    function_arn: str
    runtime_hash: str
    region: str
    bucket: str
    role_arn: str
    code_uri: str
    code_sha256: str = ""              # sha256 (hex) of the zip, "" if not built here
    created: bool = False              # this call created or updated the function
    removed: list[str] = field(default_factory=list)   # stale resources removed
    notes: list[str] = field(default_factory=list)     # what happened, one line each

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- plumbing

_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_sessions: dict[tuple, Any] = {}


def _session(region: str | None):
    """A boto3 session per region and AWS environment (reused: it caches service models)."""
    import boto3

    key = (region,) + tuple(os.environ.get(k) for k in _ENV_KEYS)
    if key not in _sessions:
        _sessions.clear()
        _sessions[key] = boto3.session.Session(region_name=region or None)
    return _sessions[key]


class _Aws:
    """boto3 clients for one region, created when first used."""

    def __init__(self, settings: LambdaSettings, need_bucket: bool = True):
        from botocore.config import Config

        session = _session(settings.region)
        check_credentials(session, settings if need_bucket else None)
        self.region = settings.region or session.region_name
        self.session = session
        self._config = Config(retries={"mode": "standard", "max_attempts": 6},
                              connect_timeout=10, read_timeout=70)
        self.partition = session.get_partition_for_region(self.region)
        self._account: str | None = None

    def _client(self, name: str):
        return self.session.client(name, region_name=self.region, config=self._config)

    @functools.cached_property
    def s3(self):
        from runtime import s3 as runtime_s3   # its requests count with the job's
        return runtime_s3.count_requests(self._client("s3"))

    @functools.cached_property
    def iam(self):
        return self._client("iam")

    @functools.cached_property
    def lam(self):
        return self._client("lambda")

    @functools.cached_property
    def logs(self):
        return self._client("logs")

    @functools.cached_property
    def sts(self):
        return self._client("sts")

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = self.sts.get_caller_identity()["Account"]
        return self._account


def _with(settings: LambdaSettings, **changes) -> LambdaSettings:
    import dataclasses
    return dataclasses.replace(settings, **changes)


def _code(e: Exception) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


def _friendly(fn):
    """Turn credential and permission failures into one AwsSetupError message."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

        try:
            return fn(*args, **kwargs)
        except NoCredentialsError as e:
            raise AwsSetupError(f"no AWS credentials found: {CREDENTIALS_HELP}, "
                                f"and AWS_REGION") from e
        except NoRegionError as e:
            raise AwsSetupError("no AWS region: set AWS_REGION") from e
        except ClientError as e:
            code = _code(e)
            op = getattr(e, "operation_name", "?")
            if code in _AUTH_CODES:
                raise AwsSetupError(f"AWS rejected the credentials ({code} on {op}): "
                                    f"{CREDENTIALS_HELP}") from e
            if "AccessDenied" in code or code == "403":
                raise AwsSetupError(
                    f"the AWS identity in use may not call {op} ({code}): give it the "
                    f"permissions listed in the README's 'Running on AWS' section") from e
            raise
    return wrapper


def _tags_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _managed(tags: dict[str, str] | None) -> bool:
    return bool(tags) and tags.get(TAG_KEY) == TAG_VALUE


def _code_key(settings: LambdaSettings, function_name: str) -> str:
    return f"{settings.deploy_prefix}{function_name}.zip"


def _hash12(settings: LambdaSettings, function_name: str) -> str:
    return function_name[len(settings.function_prefix):]


# --------------------------------------------------------------------------- policy

def role_trust_policy(principals: list[str] | tuple[str, ...] = ()) -> dict:
    """Who may assume the function's role: Lambda, and the IAM ``principals``
    that run tasks on their own machine as the function (the subprocess invoker,
    :func:`allow_local_tasks`).  One statement: IAM reads the principals of a
    statement as "any of these"."""
    principal: dict[str, Any] = {"Service": "lambda.amazonaws.com"}
    if principals:
        principal["AWS"] = sorted(set(principals))
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}


def trusted_principals(doc: dict) -> list[str]:
    """The IAM principals (not services) a trust policy lets assume the role."""
    out: list[str] = []
    for st in doc.get("Statement", []):
        aws_p = (st.get("Principal") or {}).get("AWS") if isinstance(
            st.get("Principal"), dict) else None
        out += [aws_p] if isinstance(aws_p, str) else list(aws_p or [])
    return sorted(set(out))


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def role_policy(settings: LambdaSettings, account: str, region: str,
                partition: str = "aws") -> dict:
    """The function's inline policy: the least it needs to run sqlmr tasks."""
    p = partition
    b = settings.bucket
    log_groups = (f"arn:{p}:logs:{region}:{account}:log-group:"
                  f"/aws/lambda/{settings.function_prefix}*")
    statements: list[dict[str, Any]] = [
        {"Sid": "JobScratch", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                    "s3:AbortMultipartUpload"],
         "Resource": [f"arn:{p}:s3:::{b}/{settings.jobs_prefix}*"]},
        {"Sid": "JobBucketList", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:{p}:s3:::{b}"]},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_groups, log_groups + ":*"]},
    ]
    objects: list[str] = []
    listing: dict[str, set[str] | None] = {}   # bucket → allowed prefixes (None: all)
    for loc in sorted(set(settings.table_locations)):
        tb, key = _split_s3(loc)
        if key:
            # a folder (trailing /, as grants makes them) is granted by one
            # resource; a location that may be an object or a folder by two
            folder = loc.endswith("/")
            objects += [f"arn:{p}:s3:::{tb}/{key}/*"] + (
                [] if folder else [f"arn:{p}:s3:::{tb}/{key}"])
            if tb not in listing:
                listing[tb] = set()
            if listing[tb] is not None:
                listing[tb].update({f"{key}/*"} if folder else {key, f"{key}/*"})
        else:
            objects.append(f"arn:{p}:s3:::{tb}/*")
            listing[tb] = None
    if objects:
        statements.append({"Sid": "TablesRead", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": sorted(set(objects))})
    for i, (tb, prefixes) in enumerate(sorted(listing.items())):
        if tb == b:
            continue  # the job bucket is listable already
        st: dict[str, Any] = {"Sid": f"TablesList{i}", "Effect": "Allow",
                              "Action": ["s3:ListBucket"], "Resource": [f"arn:{p}:s3:::{tb}"]}
        if prefixes is not None:
            st["Condition"] = {"StringLike": {"s3:prefix": sorted(prefixes)}}
        statements.append(st)
    return {"Version": "2012-10-17", "Statement": statements}


def lifecycle_rule(settings: LambdaSettings) -> dict:
    return {"ID": settings.lifecycle_rule_id, "Filter": {"Prefix": settings.jobs_prefix},
            "Status": "Enabled", "Expiration": {"Days": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}


# --------------------------------------------------------------------------- pieces

def _check_bucket(aws: _Aws, settings: LambdaSettings) -> None:
    from botocore.exceptions import ClientError

    try:
        aws.s3.head_bucket(Bucket=settings.bucket)
    except ClientError as e:
        code = _code(e)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise AwsSetupError(
                f"the job bucket {settings.bucket!r} does not exist: create it in "
                f"{aws.region} (aws s3 mb s3://{settings.bucket} --region {aws.region}) or "
                f"set SQLMR_BUCKET to a bucket you own") from e
        if code in ("403", "AccessDenied"):
            raise AwsSetupError(
                f"no access to the job bucket {settings.bucket!r} (it may belong to another "
                f"account): set SQLMR_BUCKET to a bucket you own") from e
        raise
    where = bucket_region(aws, settings.bucket)
    if where is not None and where != aws.region:
        raise AwsSetupError(
            f"the job bucket {settings.bucket!r} is in {where} but the function would run "
            f"in {aws.region}: set AWS_REGION={where}, or SQLMR_BUCKET to a bucket in "
            f"{aws.region} (aws s3 mb s3://NAME --region {aws.region})")


def bucket_region(aws: _Aws, bucket: str) -> str | None:
    """The region of ``bucket`` (GetBucketLocation), None when we may not ask (or
    it does not exist: reading it says so)."""
    from botocore.exceptions import ClientError

    try:
        loc = aws.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except ClientError as e:
        if _code(e) in ("403", "AccessDenied", "AllAccessDisabled", "404", "NoSuchBucket"):
            return None
        raise
    # us-east-1 answers no constraint; old buckets in eu-west-1 answer "EU"
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(loc, loc)


def caller_principal(aws: _Aws) -> str:
    """The IAM principal of the credentials in use, as a trust policy names it:
    a user's ARN, or the role ARN of an assumed-role session."""
    arn = aws.sts.get_caller_identity()["Arn"]
    m = re.match(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/", arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn


def allow_local_tasks(settings: LambdaSettings) -> str:
    """Let the identity in use assume the function's role (to run tasks on this
    machine exactly as the function would: the subprocess invoker); returns the
    role's ARN.  Adds that principal to the role's trust policy once."""
    aws = _Aws(settings)
    settings = _with(settings, region=aws.region)
    return _friendly(_allow_local_tasks)(aws, settings)


def _allow_local_tasks(aws: _Aws, settings: LambdaSettings) -> str:
    from urllib.parse import unquote

    role = aws.iam.get_role(RoleName=settings.role_name)["Role"]
    doc = role["AssumeRolePolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(unquote(doc))
    me = caller_principal(aws)
    have = trusted_principals(doc)
    if me not in have:
        aws.iam.update_assume_role_policy(
            RoleName=settings.role_name,
            PolicyDocument=json.dumps(role_trust_policy(have + [me])))
    return role["Arn"]


def _role_tags(aws: _Aws, name: str) -> dict[str, str] | None:
    """The role's tags, or None when there is no such role."""
    from botocore.exceptions import ClientError

    try:
        resp = aws.iam.list_role_tags(RoleName=name)
    except ClientError as e:
        if _code(e) == "NoSuchEntity":
            return None
        raise
    return {t["Key"]: t["Value"] for t in resp.get("Tags", [])}


def _ensure_role(aws: _Aws, settings: LambdaSettings, notes: list[str]) -> tuple[str, bool]:
    """Create or refresh the execution role; returns (arn, newly created)."""
    name = settings.role_name
    tags = _role_tags(aws, name)
    created = False
    if tags is None:
        resp = aws.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(role_trust_policy()),
            Description="Execution role of sqlmr's Lambda tasks (made by sqlmr lambda deploy)",
            Tags=_tags_list({TAG_KEY: TAG_VALUE}))
        arn = resp["Role"]["Arn"]
        created = True
        notes.append(f"created IAM role {name}")
    else:
        if not _managed(tags):
            raise AwsSetupError(f"an IAM role named {name!r} exists but sqlmr did not create "
                                f"it (no tag {TAG_KEY}={TAG_VALUE}); remove or rename it")
        arn = aws.iam.get_role(RoleName=name)["Role"]["Arn"]
    from sqlmr.aws import grants
    # keep what sessions granted (they may be running): grants only grow until undeploy
    have = grants.granted_locations(grants.current_policy(aws, settings)) if not created \
        else set()
    grants._put_policy(aws, settings, grants.policy_for(aws, settings, have))
    return arn, created


def _ensure_log_group(aws: _Aws, settings: LambdaSettings, function_name: str,
                      notes: list[str]) -> None:
    from botocore.exceptions import ClientError

    group = settings.log_group(function_name)
    try:
        aws.logs.create_log_group(logGroupName=group,
                                  tags={TAG_KEY: TAG_VALUE, "sqlmr-function": function_name})
        notes.append(f"created log group {group}")
    except ClientError as e:
        if _code(e) != "ResourceAlreadyExistsException":
            raise
    aws.logs.put_retention_policy(logGroupName=group,
                                  retentionInDays=settings.log_retention_days)


def _get_function(aws: _Aws, name: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return aws.lam.get_function(FunctionName=name)
    except ClientError as e:
        if _code(e) == "ResourceNotFoundException":
            return None
        raise


def _function_kwargs(settings: LambdaSettings, role_arn: str) -> dict:
    return {"Role": role_arn, "Handler": package.HANDLER, "Runtime": settings.python_runtime,
            "MemorySize": settings.memory_mb, "Timeout": settings.timeout_s,
            "EphemeralStorage": {"Size": settings.ephemeral_mb},
            "Description": "sqlmr MapReduce task runner"}


def _config_drift(conf: dict, settings: LambdaSettings, role_arn: str) -> dict:
    """UpdateFunctionConfiguration arguments that would bring ``conf`` to ``settings``."""
    want = _function_kwargs(settings, role_arn)
    have = {"Role": conf.get("Role"), "Handler": conf.get("Handler"),
            "Runtime": conf.get("Runtime"), "MemorySize": conf.get("MemorySize"),
            "Timeout": conf.get("Timeout"),
            "EphemeralStorage": {"Size": (conf.get("EphemeralStorage") or {}).get("Size", 512)},
            "Description": conf.get("Description")}
    return {k: v for k, v in want.items() if have.get(k) != v}


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, at least half the step so IAM gets time."""
    step = min(ROLE_PROPAGATION_CAP_S, 1.0 * 2 ** attempt)
    return step / 2 + random.random() * step / 2


# Lambda takes a zip of up to 50 MB inline (CreateFunction's ZipFile); a bigger one
# is created from its S3 object.
INLINE_ZIP_BYTES = 50 * 2**20


def _code_arg(settings: LambdaSettings, code_key: str, blob: bytes) -> dict:
    """CreateFunction's ``Code``: the zip itself when small enough (no S3 read by
    Lambda, so no bucket policy or region in the way), else its S3 object."""
    if len(blob) <= INLINE_ZIP_BYTES:
        return {"ZipFile": blob}
    return {"S3Bucket": settings.bucket, "S3Key": code_key}


def _create_function(aws: _Aws, settings: LambdaSettings, name: str, role_arn: str,
                     code_key: str, runtime_hash: str, blob: bytes = b"") -> dict:
    from botocore.exceptions import ClientError

    kwargs = _function_kwargs(settings, role_arn)
    kwargs.update(FunctionName=name, Code=_code_arg(settings, code_key, blob),
                  Architectures=[settings.architecture], Publish=False,
                  Tags={TAG_KEY: TAG_VALUE, HASH_TAG: runtime_hash})
    for attempt in range(ROLE_PROPAGATION_ATTEMPTS):
        try:
            return aws.lam.create_function(**kwargs)
        except ClientError as e:
            msg = str(e.response.get("Error", {}).get("Message", ""))
            if (_code(e) == "InvalidParameterValueException" and _ROLE_NOT_READY in msg
                    and attempt + 1 < ROLE_PROPAGATION_ATTEMPTS):
                _sleep(_backoff(attempt))
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _wait(aws: _Aws, name: str, waiter: str) -> None:
    aws.lam.get_waiter(waiter).wait(FunctionName=name,
                                    WaiterConfig={"Delay": 2, "MaxAttempts": 150})


def _get_lifecycle(aws: _Aws, bucket: str) -> tuple[list[dict], dict]:
    """The bucket's lifecycle rules and the extra top-level settings to send back."""
    from botocore.exceptions import ClientError

    try:
        resp = aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as e:
        if _code(e) == "NoSuchLifecycleConfiguration":
            return [], {}
        raise
    extra = {}
    if resp.get("TransitionDefaultMinimumObjectSize"):
        extra["TransitionDefaultMinimumObjectSize"] = resp["TransitionDefaultMinimumObjectSize"]
    return list(resp.get("Rules", [])), extra


def _put_lifecycle(aws: _Aws, bucket: str, rules: list[dict], extra: dict) -> None:
    if rules:
        aws.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules}, **extra)
    else:
        aws.s3.delete_bucket_lifecycle(Bucket=bucket)


def _ensure_lifecycle(aws: _Aws, settings: LambdaSettings, notes: list[str]) -> None:
    ours = lifecycle_rule(settings)
    rules, extra = _get_lifecycle(aws, settings.bucket)
    current = [r for r in rules if r.get("ID") == ours["ID"]]
    if current and all(current[0].get(k) == v for k, v in ours.items()):
        return
    rules = [r for r in rules if r.get("ID") != ours["ID"]] + [ours]
    _put_lifecycle(aws, settings.bucket, rules, extra)
    notes.append(f"lifecycle rule {ours['ID']} on s3://{settings.bucket}: "
                 f"{settings.jobs_prefix} expires after 1 day")


def _sqlmr_functions(aws: _Aws, settings: LambdaSettings) -> list[dict]:
    """Configurations of the functions sqlmr made (name prefix and tag), with 'Tags'."""
    out = []
    for page in aws.lam.get_paginator("list_functions").paginate():
        for conf in page.get("Functions", []):
            if not conf["FunctionName"].startswith(settings.function_prefix):
                continue
            tags = aws.lam.list_tags(Resource=conf["FunctionArn"]).get("Tags", {})
            if _managed(tags):
                out.append(dict(conf, Tags=tags))
    out.sort(key=lambda c: c["FunctionName"])
    return out


def _log_group_tags(aws: _Aws, group: dict) -> dict[str, str]:
    arn = group.get("arn", "")
    if arn.endswith(":*"):
        arn = arn[:-2]
    try:
        return aws.logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
    except Exception:
        return aws.logs.list_tags_log_group(logGroupName=group["logGroupName"]).get("tags", {})


def _sqlmr_log_groups(aws: _Aws, settings: LambdaSettings,
                      function_names: set[str] = frozenset()) -> list[str]:
    """Log groups sqlmr made (tagged), plus those of the given sqlmr functions."""
    out = []
    for page in aws.logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=f"/aws/lambda/{settings.function_prefix}"):
        for group in page.get("logGroups", []):
            name = group["logGroupName"]
            fn = name[len("/aws/lambda/"):]
            if fn in function_names or _managed(_log_group_tags(aws, group)):
                out.append(name)
    return sorted(out)


def _delete_log_group(aws: _Aws, group: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        aws.logs.delete_log_group(logGroupName=group)
        return True
    except ClientError as e:
        if _code(e) == "ResourceNotFoundException":
            return False
        raise


def _object_managed(aws: _Aws, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        tags = aws.s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    except ClientError as e:
        if _code(e) in ("NoSuchKey", "404"):
            return False
        raise
    return _managed({t["Key"]: t["Value"] for t in tags})


def _sqlmr_code_objects(aws: _Aws, settings: LambdaSettings) -> list[str]:
    """Keys of the deployment zips sqlmr uploaded (name pattern and tag)."""
    keys = []
    prefix = settings.deploy_prefix + settings.function_prefix
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket,
                                                                 Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".zip") and _object_managed(aws, settings.bucket, obj["Key"]):
                keys.append(obj["Key"])
    return sorted(keys)


def _remove_function(aws: _Aws, settings: LambdaSettings, name: str) -> list[str]:
    """Delete a sqlmr function, its log group and its code object; what was removed."""
    from botocore.exceptions import ClientError

    removed = []
    try:
        aws.lam.delete_function(FunctionName=name)
        removed.append(f"function {name}")
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise
    group = settings.log_group(name)
    if _delete_log_group(aws, group):
        removed.append(f"log group {group}")
    if settings.bucket:
        key = _code_key(settings, name)
        if _object_managed(aws, settings.bucket, key):
            aws.s3.delete_object(Bucket=settings.bucket, Key=key)
            removed.append(f"s3://{settings.bucket}/{key}")
    return removed


# --------------------------------------------------------------------------- public

def _of_runtime(name: str, settings: LambdaSettings, rhash: str) -> bool:
    """Whether ``name`` is a task function of runtime ``rhash`` (of any memory)."""
    base = settings.function_name(rhash)
    return name == base or (name.startswith(base + "-") and name.endswith("mb"))


@_friendly
def deploy(settings: LambdaSettings, memory_mb: int | None = None) -> DeployInfo:
    """Make sure the function for the current runtime hash exists, is configured as
    ``settings`` say and is Active; remove sqlmr functions of older hashes.
    ``memory_mb``: the sibling function of that memory (tasks a stage gives
    less memory than the function's), named by :meth:`LambdaSettings.function_name`."""
    aws = _Aws(settings)
    settings = _with(settings, region=aws.region)
    _check_bucket(aws, settings)
    notes: list[str] = []
    rhash = package.runtime_hash()
    blob, zip_sha = package.build_package()
    name = settings.function_name(rhash, memory_mb)
    cache_key = _cache_key(settings, rhash, memory_mb)
    if memory_mb:
        settings = _with(settings, memory_mb=memory_mb)

    role_arn, _ = _ensure_role(aws, settings, notes)
    _ensure_log_group(aws, settings, name, notes)

    code_key = _code_key(settings, name)
    aws.s3.put_object(Bucket=settings.bucket, Key=code_key, Body=blob,
                      Tagging=f"{TAG_KEY}={TAG_VALUE}&{HASH_TAG}={rhash}")
    code_uri = f"s3://{settings.bucket}/{code_key}"

    existing = _get_function(aws, name)
    changed = False
    if existing is None:
        conf = _create_function(aws, settings, name, role_arn, code_key, rhash, blob)
        notes.append(f"created function {name} ({settings.python_runtime}, "
                     f"{settings.architecture}, {settings.memory_mb} MB, {len(blob):,} byte "
                     f"package)")
        changed = True
    else:
        conf = existing["Configuration"]
        tags = existing.get("Tags") or {}
        if not _managed(tags):
            raise AwsSetupError(f"a Lambda function named {name!r} exists but sqlmr did not "
                                f"create it (no tag {TAG_KEY}={TAG_VALUE}); remove it")
        _wait(aws, name, "function_active_v2")
        if tags.get(HASH_TAG) != rhash or conf.get("Architectures", ["x86_64"]) != \
                [settings.architecture]:
            conf = aws.lam.update_function_code(
                FunctionName=name, **_code_arg(settings, code_key, blob),
                Architectures=[settings.architecture])
            aws.lam.tag_resource(Resource=conf["FunctionArn"],
                                 Tags={TAG_KEY: TAG_VALUE, HASH_TAG: rhash})
            _wait(aws, name, "function_updated_v2")
            notes.append(f"updated the code of {name}")
            changed = True
        drift = _config_drift(conf, settings, role_arn)
        if drift:
            conf = aws.lam.update_function_configuration(FunctionName=name, **drift)
            _wait(aws, name, "function_updated_v2")
            notes.append(f"updated {name}: {', '.join(sorted(drift))}")
            changed = True
        if not changed:
            notes.append(f"function {name} is already deployed")
    _wait(aws, name, "function_active_v2")
    _ensure_lifecycle(aws, settings, notes)

    removed: list[str] = []
    for other in _sqlmr_functions(aws, settings):
        if not _of_runtime(other["FunctionName"], settings, rhash):
            gone = _remove_function(aws, settings, other["FunctionName"])
            removed += gone
            notes.append(f"removed stale {other['FunctionName']} (runtime "
                         f"{other['Tags'].get(HASH_TAG, '?')[:12]}): {', '.join(gone)}")
    info = DeployInfo(function_name=name, function_arn=conf["FunctionArn"], runtime_hash=rhash,
                      region=aws.region, bucket=settings.bucket, role_arn=role_arn,
                      code_uri=code_uri, code_sha256=zip_sha, created=changed,
                      removed=removed, notes=notes)
    _ready[cache_key] = info
    return info


_ready: dict[tuple, DeployInfo] = {}


def forget_deployments() -> None:
    """Drop what :func:`ensure_deployed` remembers (e.g. after the function vanished)."""
    _ready.clear()


def _cache_key(settings: LambdaSettings, rhash: str, memory_mb: int | None = None) -> tuple:
    return (settings, rhash, memory_mb if memory_mb != settings.memory_mb else None)


@_friendly
def ensure_deployed(settings: LambdaSettings, memory_mb: int | None = None) -> DeployInfo:
    """The function for the current runtime (``memory_mb``: its sibling of that
    memory), deploying it first if needed.

    Cheap when it is already there: one GetFunction per process and settings.
    """
    rhash = package.runtime_hash()
    if memory_mb == settings.memory_mb:
        memory_mb = None
    key = _cache_key(settings, rhash, memory_mb)
    cached = _ready.get(key)
    if cached is not None:
        return cached
    aws = _Aws(settings)
    name = settings.function_name(rhash, memory_mb)
    settings = _with(settings, region=aws.region, **({"memory_mb": memory_mb} if memory_mb else {}))
    existing = _get_function(aws, name)
    if existing is not None:
        conf = existing["Configuration"]
        tags = existing.get("Tags") or {}
        role_arn = conf.get("Role", "")
        if (_managed(tags) and tags.get(HASH_TAG) == rhash
                and conf.get("State") == "Active"
                and conf.get("LastUpdateStatus") in (None, "Successful")
                and conf.get("Architectures", ["x86_64"]) == [settings.architecture]
                and not _config_drift(conf, settings, role_arn)
                and role_arn.endswith(f"/{settings.role_name}")):
            info = DeployInfo(
                function_name=name, function_arn=conf["FunctionArn"], runtime_hash=rhash,
                region=aws.region, bucket=settings.bucket, role_arn=role_arn,
                code_uri=f"s3://{settings.bucket}/{_code_key(settings, name)}",
                notes=[f"function {name} is already deployed"])
            _ready[key] = info
            return info
    info = deploy(_with(settings, memory_mb=key[0].memory_mb), memory_mb)
    _ready[key] = info
    return info


@_friendly
def status(settings: LambdaSettings) -> dict:
    """What is deployed: functions (current and stale), role, code objects, lifecycle rule."""
    aws = _Aws(settings, need_bucket=False)
    settings = _with(settings, region=aws.region)
    rhash = package.runtime_hash()
    name = settings.function_name(rhash)
    functions = []
    for conf in _sqlmr_functions(aws, settings):
        fhash = conf["Tags"].get(HASH_TAG, "")
        functions.append({
            "name": conf["FunctionName"], "runtime_hash": fhash,
            "current": _of_runtime(conf["FunctionName"], settings, rhash) and fhash == rhash,
            "state": conf.get("State"), "python_runtime": conf.get("Runtime"),
            "architecture": (conf.get("Architectures") or ["x86_64"])[0],
            "memory_mb": conf.get("MemorySize"), "timeout_s": conf.get("Timeout"),
            "ephemeral_mb": (conf.get("EphemeralStorage") or {}).get("Size"),
            "code_size": conf.get("CodeSize"), "last_modified": conf.get("LastModified")})
    role_tags = _role_tags(aws, settings.role_name)
    role = None
    if _managed(role_tags):
        role = {"name": settings.role_name,
                "arn": aws.iam.get_role(RoleName=settings.role_name)["Role"]["Arn"],
                "policies": aws.iam.list_role_policies(
                    RoleName=settings.role_name).get("PolicyNames", [])}
    code_objects: list[str] = []
    lifecycle = False
    if settings.bucket:
        code_objects = [f"s3://{settings.bucket}/{k}"
                        for k in _sqlmr_code_objects(aws, settings)]
        rules, _ = _get_lifecycle(aws, settings.bucket)
        lifecycle = any(r.get("ID") == settings.lifecycle_rule_id for r in rules)
    current = [f for f in functions if f["current"] and f["name"] == name]
    return {
        "region": aws.region, "bucket": settings.bucket, "account": aws.account,
        "runtime_hash": rhash, "function": name,
        "deployed": bool(current) and current[0]["state"] == "Active",
        "functions": functions,
        "stale": [f["name"] for f in functions if not f["current"]],
        "role": role, "code_objects": code_objects,
        "log_groups": _sqlmr_log_groups(aws, settings, {f["name"] for f in functions}),
        "lifecycle_rule": lifecycle,
        "settings": {"memory_mb": settings.memory_mb, "timeout_s": settings.timeout_s,
                     "ephemeral_mb": settings.ephemeral_mb,
                     "architecture": settings.architecture,
                     "python_runtime": settings.python_runtime,
                     "concurrency": settings.concurrency},
    }


def format_status(st: dict) -> str:
    """``status()`` as a few human-readable lines."""
    lines = [f"region {st['region']}, account {st['account']}, job bucket "
             f"{st['bucket'] or '(SQLMR_BUCKET not set)'}",
             f"runtime {st['runtime_hash'][:12]}: function {st['function']} "
             f"{'deployed' if st['deployed'] else 'not deployed'}"]
    for f in st["functions"]:
        mark = "current" if f["current"] else "stale (removed by the next deploy)"
        lines.append(f"  {f['name']}: {f['state']}, {f['python_runtime']} {f['architecture']}, "
                     f"{f['memory_mb']} MB, {f['timeout_s']} s, /tmp {f['ephemeral_mb']} MB "
                     f"— {mark}")
    lines.append(f"role: {st['role']['name'] if st['role'] else 'none'}")
    for uri in st["code_objects"]:
        lines.append(f"code: {uri}")
    for group in st["log_groups"]:
        lines.append(f"log group: {group}")
    lines.append("lifecycle rule on sqlmr/jobs/: " + ("yes" if st["lifecycle_rule"] else "no"))
    return "\n".join(lines)


@_friendly
def undeploy(settings: LambdaSettings) -> list[str]:
    """Remove everything :func:`deploy` made (and nothing else); what was removed."""
    from botocore.exceptions import ClientError

    aws = _Aws(settings, need_bucket=False)
    settings = _with(settings, region=aws.region)
    removed: list[str] = []
    functions = [c["FunctionName"] for c in _sqlmr_functions(aws, settings)]
    for name in functions:
        removed += _remove_function(aws, settings, name)
    for group in _sqlmr_log_groups(aws, settings, set(functions)):
        if _delete_log_group(aws, group):
            removed.append(f"log group {group}")

    role_tags = _role_tags(aws, settings.role_name)
    if _managed(role_tags):
        role = settings.role_name
        for pname in aws.iam.list_role_policies(RoleName=role).get("PolicyNames", []):
            aws.iam.delete_role_policy(RoleName=role, PolicyName=pname)
            removed.append(f"policy {pname} of role {role}")
        for att in aws.iam.list_attached_role_policies(RoleName=role).get(
                "AttachedPolicies", []):
            aws.iam.detach_role_policy(RoleName=role, PolicyArn=att["PolicyArn"])
        aws.iam.delete_role(RoleName=role)
        removed.append(f"IAM role {role}")

    if settings.bucket:
        try:
            keys = _sqlmr_code_objects(aws, settings)
        except ClientError as e:
            if _code(e) != "NoSuchBucket":
                raise
            keys = []
        for key in keys:
            aws.s3.delete_object(Bucket=settings.bucket, Key=key)
            removed.append(f"s3://{settings.bucket}/{key}")
        if keys or _bucket_present(aws, settings.bucket):
            rules, extra = _get_lifecycle(aws, settings.bucket)
            kept = [r for r in rules if r.get("ID") != settings.lifecycle_rule_id]
            if len(kept) != len(rules):
                _put_lifecycle(aws, settings.bucket, kept, extra)
                removed.append(f"lifecycle rule {settings.lifecycle_rule_id} on "
                               f"s3://{settings.bucket}")
    _ready.clear()
    return removed


def _bucket_present(aws: _Aws, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        aws.s3.head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False
