"""AWS settings for the Lambda backend, resolved from overrides, environment and config.

Precedence, highest first: ``overrides`` (the session's settings from
``sqlmr.config`` and CLI flags; ``None`` values are ignored) → environment
variables → defaults.  sqlmr's config files reach these settings through the
overrides, so there is one configuration format.

=====================  =============================  =================
setting                environment                    default
=====================  =============================  =================
region                 AWS_REGION, AWS_DEFAULT_REGION (none: required)
bucket                 SQLMR_BUCKET                   (none: required)
memory_mb              SQLMR_LAMBDA_MEMORY_MB         1769 (one vCPU)
timeout_s              SQLMR_LAMBDA_TIMEOUT_S         900
ephemeral_mb           SQLMR_LAMBDA_EPHEMERAL_MB      1024
architecture           SQLMR_LAMBDA_ARCH              arm64
concurrency            SQLMR_LAMBDA_CONCURRENCY       1000
python_runtime         SQLMR_LAMBDA_RUNTIME           python3.12
prefix                 SQLMR_LAMBDA_PREFIX            sqlmr-
log_retention_days     SQLMR_LAMBDA_LOG_DAYS          14
table_locations        SQLMR_TABLE_LOCATIONS (comma)  ()
grants                 SQLMR_LAMBDA_GRANTS            auto
=====================  =============================  =================

``grants``: ``auto`` adds the tables a job reads to the function's policy;
``off`` grants nothing (the role reads ``table_locations`` and whatever its
owner granted), for identities that may not change IAM policies.

>>> s = resolve_settings({"region": "eu-west-1", "bucket": "b1", "memory_mb": 3008}, env={})
>>> s.memory_mb, s.architecture, s.timeout_s, s.role_name, s.function_name("0123456789abcdef")
(3008, 'arm64', 900, 'sqlmr-lambda-role', 'sqlmr-runtime-0123456789ab')
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

CREDENTIALS_HELP = ("set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
REGION_HELP = "set AWS_REGION (e.g. AWS_REGION=us-east-1)"
BUCKET_HELP = ("set SQLMR_BUCKET to an S3 bucket you own in that region, for job scratch data "
               "and the deployment package (create one with: aws s3 mb s3://NAME)")

ARCHITECTURES = ("arm64", "x86_64")


class AwsSetupError(Exception):
    """AWS is not set up for sqlmr: the message says what to set."""


def sized_name(function_name: str, memory_mb: int) -> str:
    """The sibling of task function ``function_name`` that runs tasks at ``memory_mb``.

    >>> sized_name("sqlmr-runtime-0123456789ab", 1024)
    'sqlmr-runtime-0123456789ab-1024mb'
    """
    return f"{function_name}-{memory_mb}mb"


@dataclass(frozen=True)
class LambdaSettings:
    region: str | None = None
    bucket: str | None = None
    memory_mb: int = 1769
    timeout_s: int = 900
    ephemeral_mb: int = 1024
    architecture: str = "arm64"
    concurrency: int = 1000
    python_runtime: str = "python3.12"
    prefix: str = "sqlmr-"
    log_retention_days: int = 14
    table_locations: tuple[str, ...] = field(default_factory=tuple)
    grants: str = "auto"

    # Fixed names (derived from the prefix).
    @property
    def role_name(self) -> str:
        return f"{self.prefix}lambda-role"

    @property
    def policy_name(self) -> str:
        return f"{self.prefix}lambda-policy"

    @property
    def lifecycle_rule_id(self) -> str:
        return f"{self.prefix}expire-jobs"

    @property
    def function_prefix(self) -> str:
        return f"{self.prefix}runtime-"

    def function_name(self, runtime_hash: str, memory_mb: int | None = None) -> str:
        """The task function of a runtime; tasks given less memory than
        ``memory_mb`` run in a sibling function of that size (``…-1024mb``)."""
        base = f"{self.function_prefix}{runtime_hash[:12]}"
        if memory_mb and memory_mb != self.memory_mb:
            return sized_name(base, memory_mb)
        return base

    def sibling_memories(self) -> tuple[int, ...]:
        """The memories below ``memory_mb`` the planner may give a task kind
        (:func:`sqlmr.splits.lambda_memories`): one sibling function each.

        >>> LambdaSettings(memory_mb=1769).sibling_memories(), LambdaSettings(memory_mb=512).sibling_memories()
        ((1024, 1280, 1536), ())
        """
        from sqlmr.splits import lambda_memories
        return tuple(m for m in lambda_memories(self.memory_mb) if m != self.memory_mb)

    # Where things live in the job bucket.
    deploy_prefix: str = "sqlmr/deploy/"
    jobs_prefix: str = "sqlmr/jobs/"

    # CREATE TABLE AS without LOCATION on the Lambda backend (sqlmr.session)
    warehouse_prefix: str = "sqlmr/warehouse/"

    def jobs_uri(self) -> str:
        return f"s3://{self.bucket}/{self.jobs_prefix}"

    def warehouse_uri(self) -> str:
        return f"s3://{self.bucket}/{self.warehouse_prefix}"

    def log_group(self, function_name: str) -> str:
        return f"/aws/lambda/{function_name}"


_ENV = {
    "bucket": ("SQLMR_BUCKET",),
    "memory_mb": ("SQLMR_LAMBDA_MEMORY_MB",),
    "timeout_s": ("SQLMR_LAMBDA_TIMEOUT_S",),
    "ephemeral_mb": ("SQLMR_LAMBDA_EPHEMERAL_MB",),
    "architecture": ("SQLMR_LAMBDA_ARCH",),
    "concurrency": ("SQLMR_LAMBDA_CONCURRENCY",),
    "python_runtime": ("SQLMR_LAMBDA_RUNTIME",),
    "prefix": ("SQLMR_LAMBDA_PREFIX",),
    "log_retention_days": ("SQLMR_LAMBDA_LOG_DAYS",),
    "table_locations": ("SQLMR_TABLE_LOCATIONS",),
    "grants": ("SQLMR_LAMBDA_GRANTS",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
}
_INT_FIELDS = ("memory_mb", "timeout_s", "ephemeral_mb", "concurrency", "log_retention_days")
_FIELDS = {f.name for f in dataclasses.fields(LambdaSettings)}


def _coerce(name: str, value: Any) -> Any:
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise AwsSetupError(f"{name} must be a whole number, got {value!r}") from None
    if name == "table_locations":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        return tuple(v for v in value if v)
    return str(value) if value is not None else None


def _validate(s: LambdaSettings) -> None:
    problems = []
    if not 128 <= s.memory_mb <= 10240:
        problems.append(f"memory_mb {s.memory_mb} is outside Lambda's 128–10240 MB")
    if not 1 <= s.timeout_s <= 900:
        problems.append(f"timeout_s {s.timeout_s} is outside Lambda's 1–900 s")
    if not 512 <= s.ephemeral_mb <= 10240:
        problems.append(f"ephemeral_mb {s.ephemeral_mb} is outside Lambda's 512–10240 MB")
    if s.architecture not in ARCHITECTURES:
        problems.append(f"architecture {s.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if s.concurrency < 1:
        problems.append(f"concurrency {s.concurrency} must be at least 1")
    minor = s.python_runtime[len("python3."):]
    if not (s.python_runtime.startswith("python3.") and minor.isdigit() and int(minor) >= 12):
        problems.append(f"python_runtime {s.python_runtime!r}: Lambda accepts new functions "
                        f"on python3.12 or newer")
    if not s.prefix or not s.prefix.startswith("sqlmr"):
        problems.append(f"prefix {s.prefix!r} must start with 'sqlmr' (undeploy finds "
                        f"resources by it)")
    if s.grants not in ("auto", "off"):
        problems.append(f"grants {s.grants!r} is auto or off")
    for loc in s.table_locations:
        if not loc.startswith("s3://"):
            problems.append(f"table location {loc!r} is not an s3:// URI")
    if problems:
        raise AwsSetupError("invalid Lambda settings: " + "; ".join(problems))


def resolve_settings(overrides: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None) -> LambdaSettings:
    """Settings from ``overrides`` (``None`` values ignored) > environment > defaults.

    ``overrides`` is where the session's own settings (``sqlmr.config``: config
    files, ``\\set``, flags) come in, e.g. ``{"memory_mb": s.memory_mb,
    "architecture": s.architecture}``.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, keys in _ENV.items():
        for key in keys:
            if env.get(key):
                values[name] = env[key]
                break
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise AwsSetupError(f"unknown Lambda setting {name!r}; known: "
                                f"{', '.join(sorted(_FIELDS))}")
        if value is not None:
            values[name] = value
    settings = LambdaSettings(**{k: _coerce(k, v) for k, v in values.items()})
    _validate(settings)
    return settings


def check_credentials(session, settings: LambdaSettings | None = None) -> None:
    """Raise :class:`AwsSetupError` naming everything missing: credentials, region, bucket.

    Looks only at local configuration (no request is made): ``session`` is a
    ``boto3.session.Session``.  The region and bucket are checked when
    ``settings`` is given (the region also counts if the session has one).
    """
    missing = []
    try:
        creds = session.get_credentials()
    except Exception as e:  # a broken profile or config file
        raise AwsSetupError(f"AWS credentials could not be loaded ({e}): {CREDENTIALS_HELP}, "
                            f"and AWS_REGION") from e
    if creds is None or not getattr(creds, "access_key", None):
        missing.append(("AWS credentials", CREDENTIALS_HELP))
    region = (settings.region if settings else None) or getattr(session, "region_name", None)
    if not region:
        missing.append(("an AWS region", REGION_HELP))
    if settings is not None and not settings.bucket:
        missing.append(("a job bucket", BUCKET_HELP))
    if missing:
        what = ", ".join(m for m, _ in missing)
        how = "; ".join(h for _, h in missing)
        raise AwsSetupError(f"sqlmr's Lambda backend needs {what}: {how}")
