"""Letting the function read the tables a job reads.

The function's role may read only the table locations its inline policy names
(``TablesRead``, see :func:`sqlmr.aws.deploy.role_policy`).  Before a job runs,
the Lambda backend calls :func:`ensure_table_access` with the objects its map
tasks read; locations not covered yet are added to the policy (with the ones
already there), so a query on a new S3 table works the first time.

>>> folder_of("s3://b/data/uservisits/part-00000"), folder_of("s3://b/one.csv")
('s3://b/data/uservisits', 's3://b/one.csv')
>>> covered("s3://b/data/uv/part-1", {"s3://b/data"}), covered("s3://b/datax/p", {"s3://b/data"})
(True, False)
>>> covered("s3://b/k", {"s3://b"})
True
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable

from sqlmr.aws.config import LambdaSettings


def folder_of(uri: str) -> str:
    """The location to grant for an object: its folder (the table's location), or the
    object itself when it sits at the top of its bucket."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if "/" in key:
        return f"s3://{bucket}/{key.rsplit('/', 1)[0]}"
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def covered(uri: str, locations: Iterable[str]) -> bool:
    """Is the object ``uri`` inside one of ``locations``?"""
    bucket, _, key = uri[len("s3://"):].partition("/")
    for loc in locations:
        lb, _, lk = loc[len("s3://"):].partition("/")
        lk = lk.strip("/")
        if lb == bucket and (not lk or key == lk or key.startswith(lk + "/")):
            return True
    return False


def granted_locations(policy: dict) -> set[str]:
    """Table locations an inline policy document lets the function read."""
    out: set[str] = set()
    for st in policy.get("Statement", []):
        if st.get("Sid") != "TablesRead":
            continue
        resources = st.get("Resource", [])
        for arn in [resources] if isinstance(resources, str) else resources:
            path = arn.split(":::", 1)[-1]
            if path.endswith("/*"):
                path = path[:-2]
            out.add("s3://" + path)
    return out


def current_policy(aws, settings: LambdaSettings) -> dict:
    """The role's inline policy document ({} when there is none)."""
    from botocore.exceptions import ClientError

    try:
        doc = aws.iam.get_role_policy(RoleName=settings.role_name,
                                      PolicyName=settings.policy_name)["PolicyDocument"]
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code")) == "NoSuchEntity":
            return {}
        raise
    if isinstance(doc, str):
        from urllib.parse import unquote
        doc = json.loads(unquote(doc))
    return doc


def ensure_table_access(settings: LambdaSettings, uris: Iterable[str]) -> list[str]:
    """Add the folders of ``uris`` (s3:// objects) not yet readable to the function's
    policy; returns the locations added ([] when nothing changed)."""
    from sqlmr.aws import deploy

    uris = [u for u in uris if u.startswith("s3://")]
    if not uris:
        return []
    aws = deploy._Aws(settings)
    settings = dataclasses.replace(settings, region=aws.region)
    have = granted_locations(current_policy(aws, settings))
    missing = sorted({folder_of(u) for u in uris if not covered(u, have)})
    if not missing:
        return []
    grant = dataclasses.replace(settings, table_locations=tuple(sorted(
        have | set(settings.table_locations) | set(missing))))
    deploy._friendly(deploy._ensure_role)(aws, grant, [])
    return missing
