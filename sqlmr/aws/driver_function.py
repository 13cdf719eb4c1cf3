"""The driver function: sqlmr's driver as a second Lambda function (``--driver lambda``).

The worker function's package is ``runtime/`` only; the driver's adds ``sqlmr/``,
``compiler/`` and ``sqlglot`` (pure Python; boto3 is in Lambda's runtime), zipped
as reproducibly as the worker's (sorted entries, fixed timestamps and modes).
Its handler is :func:`sqlmr.driver_handler.lambda_handler`.

What :func:`deploy_driver` makes, beside what :func:`sqlmr.aws.deploy.deploy`
makes for the worker (all tagged ``sqlmr=managed``):

* the worker's siblings at the smaller memories the planner gives some task
  kinds (``sqlmr-runtime-<hash12>-1024mb`` …, see
  :meth:`~sqlmr.aws.config.LambdaSettings.sibling_memories`): the driver may
  not deploy, so they are made here;
* IAM role ``sqlmr-driver-role`` with one inline policy ``sqlmr-driver-policy``:
  invoke the worker function and its siblings (and itself, to continue a
  long query), read the catalog, read/write ``sqlmr/jobs/`` and ``sqlmr/results/``, read the table
  locations the worker is granted, write its logs.  No IAM action at all:
  grants are made from the user's machine (``sqlmr lambda grant s3://…``);
* the function ``sqlmr-driver-<hash12>`` (one per package hash), from the zip
  inline up to 50 MB, else from its S3 object; a package over Lambda's 250 MB
  unzipped limit is refused before anything is made.

>>> p = driver_policy(_settings_for_doc(), "123456789012", "us-east-1",
...                   worker_arn="arn:aws:lambda:us-east-1:123456789012:function:sqlmr-runtime-x",
...                   worker_role_arn="arn:aws:iam::123456789012:role/sqlmr-lambda-role",
...                   catalog="s3://b/cat/", tables=["s3://data/uv/"])
>>> sorted(st["Sid"] for st in p["Statement"])  # doctest: +NORMALIZE_WHITESPACE
['CatalogList', 'CatalogRead', 'InvokeFunctions', 'JobBucketList', 'JobsAndResults',
 'Logs', 'TablesList0', 'TablesRead']
>>> any(a.startswith("iam:") for st in p["Statement"] for a in st["Action"])
False
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

from sqlmr.aws.config import AwsSetupError, LambdaSettings, sized_name

HANDLER = "sqlmr.driver_handler.lambda_handler"
PACKAGE_FORMAT = 1
# The top-level packages shipped: sqlmr's own and the one it needs beyond boto3.
PACKAGES = ("compiler", "runtime", "sqlmr", "sqlglot")
# Folders never shipped.
SKIP_FOLDERS = frozenset({"__pycache__"})
# Lambda's limits for a .zip package: 50 MB uploaded directly, 250 MB unzipped.
INLINE_ZIP_BYTES = 50 * 2**20
UNZIPPED_LIMIT_BYTES = 250 * 2**20
RESULTS_PREFIX = "sqlmr/results/"

_EPOCH = (1980, 1, 1, 0, 0, 0)
_MODE = 0o100644


def _settings_for_doc() -> LambdaSettings:
    return LambdaSettings(region="us-east-1", bucket="jobs")


def role_name(settings: LambdaSettings) -> str:
    return f"{settings.prefix}driver-role"


def policy_name(settings: LambdaSettings) -> str:
    return f"{settings.prefix}driver-policy"


def function_prefix(settings: LambdaSettings) -> str:
    return f"{settings.prefix}driver-"


# --------------------------------------------------------------------------- package

def _package_root(name: str) -> str:
    import importlib
    mod = importlib.import_module(name)
    return os.path.dirname(os.path.abspath(mod.__file__))


def package_files() -> list[tuple[str, str]]:
    """``(name in zip, local path)`` of every ``.py`` file shipped, sorted."""
    out: list[tuple[str, str]] = []
    for pkg in PACKAGES:
        root = _package_root(pkg)
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_FOLDERS and not d.startswith(".")
                             and os.path.isfile(os.path.join(folder, d, "__init__.py")))
            for name in files:
                if name.endswith(".py") and not name.startswith("."):
                    path = os.path.join(folder, name)
                    rel = os.path.relpath(path, os.path.dirname(root)).replace(os.sep, "/")
                    out.append((rel, path))
    out.sort()
    return out


def build_package() -> tuple[bytes, str, int]:
    """The driver's zip, the sha256 (hex) of its shipped files (names the
    function) and its unzipped size in bytes.  Byte-for-byte stable."""
    h = hashlib.sha256(f"sqlmr-driver-package {PACKAGE_FORMAT}\n".encode())
    buf = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, path in package_files():
            with open(path, "rb") as f:
                data = f.read()
            unzipped += len(data)
            h.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.create_system = 3
            info.external_attr = _MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buf.getvalue(), h.hexdigest(), unzipped


def check_size(zipped: int, unzipped: int) -> str:
    """How the package is uploaded ("inline" or "s3"), or why it cannot be.

    >>> check_size(3_000_000, 12_000_000), check_size(60 * 2**20, 200 * 2**20)
    ('inline', 's3')
    >>> check_size(1, 300 * 2**20)
    Traceback (most recent call last):
    ...
    sqlmr.aws.config.AwsSetupError: the driver package is 300.0 MB unzipped, over Lambda's 250 MB limit
    """
    if unzipped > UNZIPPED_LIMIT_BYTES:
        raise AwsSetupError(f"the driver package is {unzipped / 2**20:.1f} MB unzipped, over "
                            f"Lambda's {UNZIPPED_LIMIT_BYTES // 2**20} MB limit")
    return "inline" if zipped <= INLINE_ZIP_BYTES else "s3"


def extract_package() -> str:
    """The driver zip extracted once per process (the subprocess invoker's /var/task)."""
    from sqlmr.aws.invoker import extract_zip
    blob, digest, _ = build_package()
    return extract_zip(blob, digest, "sqlmr-driver")


# --------------------------------------------------------------------------- policy

def driver_policy(settings: LambdaSettings, account: str, region: str, *, worker_arn: str,
                  worker_role_arn: str, catalog: str, tables: list[str],
                  partition: str = "aws", local_tasks: bool = False,
                  sibling_arns: tuple[str, ...] = ()) -> dict:
    """The driver role's inline policy: invoke the worker, its ``sibling_arns``
    (the same code at smaller memories) and itself, read the catalog and the
    granted tables, read/write the job and results prefixes.
    ``local_tasks``: the subprocess stand-in runs worker tasks as the worker's
    role, so the driver may assume that role (in place of lambda:InvokeFunction)."""
    from sqlmr.aws import deploy

    p, b = partition, settings.bucket
    fn = f"arn:{p}:lambda:{region}:{account}:function:"
    log_groups = (f"arn:{p}:logs:{region}:{account}:log-group:"
                  f"/aws/lambda/{function_prefix(settings)}*")
    statements: list[dict[str, Any]] = [
        {"Sid": "InvokeFunctions", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
         "Resource": [worker_arn, *sibling_arns, f"{fn}{function_prefix(settings)}*"]},
        {"Sid": "JobsAndResults", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                    "s3:AbortMultipartUpload"],
         "Resource": [f"arn:{p}:s3:::{b}/{settings.jobs_prefix}*",
                      f"arn:{p}:s3:::{b}/{RESULTS_PREFIX}*"]},
        {"Sid": "JobBucketList", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:{p}:s3:::{b}"]},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_groups, log_groups + ":*"]},
    ]
    if catalog.startswith("s3://"):
        cb, ck = deploy._split_s3(catalog)
        ck = ck if ck.endswith(".json") else (ck + "/catalog.json").lstrip("/")
        statements.append({"Sid": "CatalogRead", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": [f"arn:{p}:s3:::{cb}/{ck}"]})
        statements.append({"Sid": "CatalogList", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": [f"arn:{p}:s3:::{cb}"],
                           "Condition": {"StringLike": {"s3:prefix": [ck]}}})
    if local_tasks:
        # "*": IAM stand-ins check non-S3 actions against "*" only; the worker's
        # role is still the only one that trusts the driver's (its trust policy)
        statements.append({"Sid": "RunWorkerTasksLocally", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"], "Resource": ["*"]})
    # the tables: the same statements as the worker's (TablesRead, TablesList*)
    worker = deploy.role_policy(LambdaSettings(region=region, bucket=b,
                                               table_locations=tuple(tables)),
                                account, region, partition)
    statements += [st for st in worker["Statement"] if st["Sid"].startswith("Tables")]
    return {"Version": "2012-10-17", "Statement": statements}


# --------------------------------------------------------------------------- deploy

@dataclass
class DriverInfo:
    function_name: str
    function_arn: str
    role_arn: str
    package_bytes: int
    unzipped_bytes: int
    upload: str
    environment: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _local_tasks() -> bool:
    return (os.environ.get("SQLMR_LAMBDA_INVOKER") or "").lower() == "subprocess"


def _ensure_role(aws, settings: LambdaSettings, notes: list[str]) -> str:
    from sqlmr.aws import deploy
    name = role_name(settings)
    tags = deploy._role_tags(aws, name)
    if tags is None:
        arn = aws.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(deploy.role_trust_policy()),
            Description="Execution role of sqlmr's driver function (made by sqlmr lambda deploy)",
            Tags=deploy._tags_list({deploy.TAG_KEY: deploy.TAG_VALUE}))["Role"]["Arn"]
        notes.append(f"created IAM role {name}")
        return arn
    if not deploy._managed(tags):
        raise AwsSetupError(f"an IAM role named {name!r} exists but sqlmr did not create it "
                            f"(no tag {deploy.TAG_KEY}={deploy.TAG_VALUE}); remove or rename it")
    return aws.iam.get_role(RoleName=name)["Role"]["Arn"]


def _trust(aws, role: str, principals: list[str]) -> None:
    """Add IAM ``principals`` to ``role``'s trust policy (the subprocess stand-in)."""
    from urllib.parse import unquote

    from sqlmr.aws import deploy
    doc = aws.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(unquote(doc))
    have = deploy.trusted_principals(doc)
    if not set(principals) <= set(have):
        aws.iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(
            deploy.role_trust_policy(have + principals)))


def put_driver_policy(aws, settings: LambdaSettings, worker_arn: str, catalog: str) -> None:
    """Write the driver's policy with the tables the worker is granted now."""
    from sqlmr.aws import grants
    tables = sorted(grants.granted_locations(grants.current_policy(aws, settings))
                    | set(settings.table_locations))
    worker_role = aws.iam.get_role(RoleName=settings.role_name)["Role"]["Arn"]
    doc = driver_policy(settings, aws.account, aws.region, worker_arn=worker_arn,
                        worker_role_arn=worker_role, catalog=catalog, tables=tables,
                        partition=aws.partition, local_tasks=_local_tasks(),
                        sibling_arns=tuple(sized_name(worker_arn, mb)
                                           for mb in settings.sibling_memories()))
    aws.iam.put_role_policy(RoleName=role_name(settings), PolicyName=policy_name(settings),
                            PolicyDocument=json.dumps(doc, sort_keys=True))
    if _local_tasks():
        # the stand-in driver (a session of the driver's role) assumes the
        # worker's role: trusted as the role, and as that session by name
        # (which a principal may name too, and which IAM stand-ins compare)
        arn = aws.iam.get_role(RoleName=role_name(settings))["Role"]["Arn"]
        _trust(aws, settings.role_name, [arn, session_principal(arn)])


def session_principal(role_arn: str) -> str:
    """The assumed-role session the subprocess invoker opens with ``role_arn``.

    >>> session_principal("arn:aws:iam::123456789012:role/sqlmr-driver-role")
    'arn:aws:sts::123456789012:assumed-role/sqlmr-driver-role/sqlmr-subprocess-tasks'
    """
    m = role_arn.split(":")
    return (f"arn:{m[1]}:sts::{m[4]}:assumed-role/{m[5].split('/', 1)[1]}/"
            f"sqlmr-subprocess-tasks")


def environment(settings: LambdaSettings, worker_name: str, catalog: str) -> dict[str, str]:
    """The driver function's environment variables."""
    env = {"SQLMR_BUCKET": settings.bucket or "", "SQLMR_WORKER_FUNCTION": worker_name,
           "SQLMR_HOME": "/tmp/sqlmr", "SQLMR_LAMBDA_MEMORY_MB": str(settings.memory_mb),
           "SQLMR_LAMBDA_ARCH": settings.architecture}
    if settings.sibling_memories():   # memory MB=function, for the tasks given less memory
        env["SQLMR_WORKER_SIZED"] = ",".join(f"{mb}={sized_name(worker_name, mb)}"
                                             for mb in settings.sibling_memories())
    if catalog:
        env["SQLMR_CATALOG"] = catalog
    return env


def deploy_driver(settings: LambdaSettings, worker, catalog: str) -> DriverInfo:
    """Create or update the driver function for this package (``worker``: the
    worker's :class:`~sqlmr.aws.deploy.DeployInfo`); remove drivers of older packages."""
    from sqlmr.aws import deploy
    aws = deploy._Aws(settings)
    settings = deploy._with(settings, region=aws.region)
    notes: list[str] = []
    blob, digest, unzipped = build_package()
    upload = check_size(len(blob), unzipped)
    name = f"{function_prefix(settings)}{digest[:12]}"
    role_arn = _ensure_role(aws, settings, notes)
    for mb in settings.sibling_memories():   # the driver runs tasks in them, and cannot deploy
        sibling = deploy.ensure_deployed(settings, mb)
        notes += sibling.notes
    put_driver_policy(aws, settings, worker.function_arn, catalog)
    env = environment(settings, worker.function_name, catalog)
    code_key = f"{settings.deploy_prefix}{name}.zip"
    code: dict[str, Any] = {"ZipFile": blob}
    if upload == "s3":
        aws.s3.put_object(Bucket=settings.bucket, Key=code_key, Body=blob,
                          Tagging=f"{deploy.TAG_KEY}={deploy.TAG_VALUE}")
        code = {"S3Bucket": settings.bucket, "S3Key": code_key}
    kwargs = {"Role": role_arn, "Handler": HANDLER, "Runtime": settings.python_runtime,
              "MemorySize": settings.memory_mb, "Timeout": 900,
              "Environment": {"Variables": env},
              "Description": "sqlmr driver (plans and runs jobs on the worker function)"}
    existing = deploy._get_function(aws, name)
    if existing is None:
        from botocore.exceptions import ClientError
        for attempt in range(deploy.ROLE_PROPAGATION_ATTEMPTS):
            try:
                conf = aws.lam.create_function(
                    FunctionName=name, Code=code, Architectures=[settings.architecture],
                    Tags={deploy.TAG_KEY: deploy.TAG_VALUE}, **kwargs)
                break
            except ClientError as e:
                msg = str(e.response.get("Error", {}).get("Message", ""))
                if (deploy._ROLE_NOT_READY in msg
                        and attempt + 1 < deploy.ROLE_PROPAGATION_ATTEMPTS):
                    deploy._sleep(deploy._backoff(attempt))
                    continue
                raise
        notes.append(f"created driver function {name} ({len(blob):,} byte package, "
                     f"{unzipped:,} bytes unzipped, uploaded {upload})")
    else:
        if not deploy._managed(existing.get("Tags") or {}):
            raise AwsSetupError(f"a Lambda function named {name!r} exists but sqlmr did not "
                                f"create it; remove it")
        deploy._wait(aws, name, "function_active_v2")
        conf = aws.lam.update_function_configuration(FunctionName=name, **kwargs)
        notes.append(f"driver function {name} is deployed")
    deploy._wait(aws, name, "function_active_v2")
    for other in _driver_functions(aws, settings):
        if other != name:
            aws.lam.delete_function(FunctionName=other)
            notes.append(f"removed stale driver function {other}")
    return DriverInfo(name, conf["FunctionArn"], role_arn, len(blob), unzipped, upload, env,
                      notes)


def _driver_functions(aws, settings: LambdaSettings) -> list[str]:
    from sqlmr.aws import deploy
    out = []
    for page in aws.lam.get_paginator("list_functions").paginate():
        for conf in page.get("Functions", []):
            if conf["FunctionName"].startswith(function_prefix(settings)) and deploy._managed(
                    aws.lam.list_tags(Resource=conf["FunctionArn"]).get("Tags", {})):
                out.append(conf["FunctionName"])
    return sorted(out)


def find_driver(settings: LambdaSettings) -> dict:
    """The deployed driver function's configuration (name, ARN, role, environment),
    or :class:`AwsSetupError` saying to deploy."""
    from sqlmr.aws import deploy
    aws = deploy._Aws(settings)
    names = _driver_functions(aws, settings)
    if not names:
        raise AwsSetupError("no driver function is deployed: run sqlmr lambda deploy")
    conf = aws.lam.get_function_configuration(FunctionName=names[-1])
    return {"name": conf["FunctionName"], "arn": conf["FunctionArn"], "role": conf["Role"],
            "environment": (conf.get("Environment") or {}).get("Variables", {}),
            "region": aws.region}


def undeploy_driver(settings: LambdaSettings) -> list[str]:
    """Remove the driver functions and role :func:`deploy_driver` made."""
    from sqlmr.aws import deploy
    aws = deploy._Aws(settings, need_bucket=False)
    removed = []
    for name in _driver_functions(aws, settings):
        aws.lam.delete_function(FunctionName=name)
        removed.append(f"function {name}")
    role = role_name(settings)
    if deploy._managed(deploy._role_tags(aws, role)):
        for pname in aws.iam.list_role_policies(RoleName=role).get("PolicyNames", []):
            aws.iam.delete_role_policy(RoleName=role, PolicyName=pname)
            removed.append(f"policy {pname} of role {role}")
        aws.iam.delete_role(RoleName=role)
        removed.append(f"IAM role {role}")
    return removed


def grant(settings: LambdaSettings, locations: list[str], catalog: str) -> list[str]:
    """Let the worker and the driver read the table ``locations`` (from the user's
    machine: the driver may not change IAM); the locations added."""
    from sqlmr.aws import deploy, grants
    for loc in locations:
        if not loc.startswith("s3://"):
            raise AwsSetupError(f"{loc!r} is not an s3:// location")
    added = grants.ensure_table_access(settings, locations, {u: u for u in locations})
    aws = deploy._Aws(settings)
    settings = deploy._with(settings, region=aws.region)
    if _driver_functions(aws, settings):
        worker = deploy.ensure_deployed(settings)
        put_driver_policy(aws, settings, worker.function_arn, catalog)
    return added
