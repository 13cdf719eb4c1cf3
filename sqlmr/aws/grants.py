"""Letting the function read the tables a job reads.

The function's role may read only the table locations its inline policy names
(``TablesRead``, see :func:`sqlmr.aws.deploy.role_policy`).  Before a job's
first task, the Lambda backend grants the locations of every object the job
reads (broadcast sides included) with :func:`ensure_table_access`, then waits
until the function can read them (:func:`wait_until_readable`).

One grant per table, not per folder: a partitioned table's ``k=v/`` folders
fold into the table's root (:func:`table_roots`), so the policy grows by one
resource per table and stays far below IAM's inline policy size limit; a
location inside another granted one adds nothing (:func:`compact`).

IAM has no conditional write, so two sessions granting at once could each
write the policy they read plus their own location, and one grant would be
lost.  :func:`ensure_table_access` therefore reads the policy back after
writing it, twice, the second time after a pause longer than a round trip (a
stale write of a session that read before ours has landed by then), and
writes again (after a random pause) until it holds what this session needs;
the backend's probe afterwards re-grants a grant lost even later.

>>> folder_of("s3://b/data/uservisits/part-00000"), folder_of("s3://b/one.csv")
('s3://b/data/uservisits/', 's3://b/one.csv')
>>> root_of("s3://b/t/dt=2024-01-01/hour=3/part-0")
's3://b/t/'
>>> covered("s3://b/data/uv/part-1", {"s3://b/data"}), covered("s3://b/datax/p", {"s3://b/data"})
(True, False)
>>> covered("s3://b/k", {"s3://b"})
True
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
from typing import Any, Callable, Iterable

from sqlmr.aws.config import AwsSetupError, LambdaSettings

# IAM's limit on the inline policies of one role (characters, white space not counted).
IAM_INLINE_POLICY_LIMIT = 10_240
# What sqlmr lets its policy grow to: room left for the fixed statements' growth.
POLICY_BUDGET = 8_192
# Read-modify-write rounds before a grant that keeps being overwritten gives up.
GRANT_ATTEMPTS = 12
# After writing, the policy must still hold our grant this long later (a stale
# write of a session that read before ours lands within its own round trip).
SETTLE_MIN_S = 0.3
SETTLE_MAX_S = 5.0
_PARTITION = re.compile(r"^[^=/]+=[^/]*$")
_sleep: Callable[[float], None] = time.sleep


class GrantError(AwsSetupError):
    """The function's role cannot be given (or does not get) access to a table."""


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def folder_of(uri: str) -> str:
    """The location to grant for an object: its folder (with a trailing ``/``), or
    the object itself when it sits at the top of its bucket."""
    bucket, key = _split(uri)
    if "/" in key:
        return f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def root_of(uri: str) -> str:
    """An object's folder without its trailing Hive partition folders (``k=v``):
    the root of a partitioned table."""
    folder = folder_of(uri)
    if not folder.endswith("/"):
        return folder
    bucket, key = _split(folder)
    parts = key.rstrip("/").split("/")
    while parts and _PARTITION.match(parts[-1]):
        parts.pop()
    return f"s3://{bucket}/" + ("/".join(parts) + "/" if parts else "")


def table_roots(splits: Iterable[dict]) -> dict[str, str]:
    """Each S3 object read → the location to grant for it: the longest folder
    shared by the roots of its table's objects in that bucket (one location per
    table however many partition folders it reads).

    >>> sorted(set(table_roots([{"uri": "s3://b/t/d=1/p", "table": "t"},
    ...                         {"uri": "s3://b/t/d=2/q", "table": "t"},
    ...                         {"uri": "s3://b/u/x/p", "table": "u"}]).values()))
    ['s3://b/t/', 's3://b/u/x/']
    """
    groups: dict[tuple, list[str]] = {}
    for sp in splits:
        uri = sp["uri"]
        if not uri.startswith("s3://"):
            continue
        groups.setdefault((sp.get("table") or "", _split(uri)[0]), []).append(uri)
    out: dict[str, str] = {}
    for (table, bucket), uris in groups.items():
        roots = sorted({root_of(u) for u in uris})
        if not table or any(not r.endswith("/") for r in roots):
            out.update({u: root_of(u) for u in uris})
            continue
        common = _split(roots[0])[1].split("/")[:-1]
        for r in roots[1:]:
            parts = _split(r)[1].split("/")[:-1]
            n = 0
            while n < min(len(common), len(parts)) and common[n] == parts[n]:
                n += 1
            common = common[:n]
        loc = f"s3://{bucket}/" + ("/".join(common) + "/" if common else "")
        out.update({u: loc for u in uris})
    return out


def covered(uri: str, locations: Iterable[str]) -> bool:
    """Is the object (or location) ``uri`` inside one of ``locations``?"""
    bucket, key = _split(uri)
    key = key.rstrip("/")
    for loc in locations:
        lb, lk = _split(loc)
        lk = lk.strip("/")
        if lb == bucket and (not lk or key == lk or key.startswith(lk + "/")):
            return True
    return False


def compact(locations: Iterable[str]) -> list[str]:
    """Locations without those inside another one (sorted).

    >>> compact(["s3://b/t/", "s3://b/t/d=1/", "s3://b/u/", "s3://c"])
    ['s3://b/t/', 's3://b/u/', 's3://c']
    """
    locs = sorted(set(locations), key=lambda loc: (len(loc.rstrip("/")), loc))
    kept: list[str] = []
    for loc in locs:
        if not covered(loc, kept) and not any(k.rstrip("/") == loc.rstrip("/") for k in kept):
            kept.append(loc)
    return sorted(kept)


def granted_locations(policy: dict) -> set[str]:
    """Table locations an inline policy document lets the function read (a
    folder granted only with ``folder/*`` comes back with its trailing ``/``)."""
    objects: set[str] = set()
    for st in policy.get("Statement", []):
        if st.get("Sid") != "TablesRead":
            continue
        resources = st.get("Resource", [])
        objects.update([resources] if isinstance(resources, str) else resources)
    out: set[str] = set()
    for arn in objects:
        path = arn.split(":::", 1)[-1]
        if path.endswith("/*"):
            base = path[:-2]
            if "/" not in base:
                out.add("s3://" + base)             # a whole bucket
            elif f"{arn[:-2]}" in objects:
                out.add("s3://" + base)             # an object or a folder
            else:
                out.add("s3://" + base + "/")       # a folder
        elif arn + "/*" not in objects:
            out.add("s3://" + path)
    return out


def policy_chars(policy: dict) -> int:
    """The size IAM counts: the JSON document without white space."""
    return len(json.dumps(policy, separators=(",", ":")))


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


def _too_big(size: int, locations: list[str]) -> GrantError:
    return GrantError(
        f"the function's role would need {len(locations)} table locations, a "
        f"{size:,}-character policy (IAM allows {IAM_INLINE_POLICY_LIMIT:,} for a role's "
        f"inline policies; sqlmr keeps to {POLICY_BUDGET:,}): keep tables under a few "
        f"common prefixes and grant those with SQLMR_TABLE_LOCATIONS=s3://bucket/prefix/ "
        f"(then sqlmr lambda deploy), or remove grants of old tables with sqlmr lambda "
        f"undeploy")


def policy_for(aws, settings: LambdaSettings, locations: Iterable[str]) -> dict:
    """The role's policy with these table locations, checked against the budget."""
    from sqlmr.aws import deploy

    locs = compact(set(locations) | set(settings.table_locations))
    policy = deploy.role_policy(dataclasses.replace(settings, table_locations=tuple(locs)),
                                aws.account, aws.region, aws.partition)
    size = policy_chars(policy)
    if size > POLICY_BUDGET:
        raise _too_big(size, locs)
    return policy


def ensure_table_access(settings: LambdaSettings, uris: Iterable[str],
                        locations: dict[str, str] | None = None) -> list[str]:
    """Grant the function read access to the objects ``uris`` (each at the location
    ``locations`` gives it, by default its folder); returns the locations added
    ([] when all were covered).  Merges with what other sessions granted: the
    policy is read back after each write and written again until it holds
    this session's locations."""
    from sqlmr.aws import deploy

    uris = [u for u in uris if u.startswith("s3://")]
    if not uris:
        return []
    locations = locations or {}
    aws = deploy._Aws(settings)
    settings = dataclasses.replace(settings, region=aws.region)
    wanted = {locations.get(u) or folder_of(u) for u in uris}
    added: list[str] = []
    wrote = settled = False
    settle = SETTLE_MIN_S
    for attempt in range(GRANT_ATTEMPTS):
        t0 = time.monotonic()
        have = granted_locations(current_policy(aws, settings))
        missing = sorted(loc for loc in wanted if not covered(loc, have))
        if not missing:
            if not wrote or settled:
                return added
            # A session that read the policy before our write may still write
            # its stale copy: look again once that could have happened.
            settled = True
            _sleep(settle * random.uniform(1.0, 1.5))
            continue
        settled = False
        policy = policy_for(aws, settings, have | set(missing))
        if not wrote:
            added = missing
        deploy._friendly(_put_policy)(aws, settings, policy)
        wrote = True
        # another session's read-modify-write takes about as long as ours
        settle = min(SETTLE_MAX_S, max(SETTLE_MIN_S, 3 * (time.monotonic() - t0)))
        _sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise GrantError(f"the function's policy kept changing while granting "
                     f"{', '.join(sorted(wanted))} ({GRANT_ATTEMPTS} tries): other sqlmr "
                     f"sessions are granting tables; run the query again")


def _put_policy(aws, settings: LambdaSettings, policy: dict) -> None:
    from botocore.exceptions import ClientError

    try:
        aws.iam.put_role_policy(RoleName=settings.role_name, PolicyName=settings.policy_name,
                                PolicyDocument=json.dumps(policy, sort_keys=True))
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("LimitExceeded", "LimitExceededException", "MalformedPolicyDocument"):
            raise _too_big(policy_chars(policy), sorted(granted_locations(policy))) from e
        raise


def wait_until_readable(probe: Callable[[list[str]], dict[str, str]], uris: list[str],
                        bound_s: float, regrant: Callable[[], Any] | None = None,
                        sleep: Callable[[float], None] | None = None,
                        clock: Callable[[], float] = time.monotonic) -> None:
    """Probe ``uris`` (``probe`` returns the unreadable ones with their errors)
    with exponential backoff until all are readable or ``bound_s`` has passed;
    ``regrant`` runs before each retry (a grant another session overwrote comes
    back).  Raises :class:`GrantError` naming the locations still unreadable."""
    sleep = sleep or _sleep
    start = clock()
    step = 0.25
    while True:
        denied = probe(uris)
        if not denied:
            return
        left = bound_s - (clock() - start)
        # a sliver left (under a microsecond) is none: a sleep that short may
        # not even move a float clock, and the loop would spin on it
        if left <= 1e-6:
            where = "; ".join(f"{u} ({e.splitlines()[0][:120]})" for u, e in sorted(denied.items()))
            raise GrantError(
                f"the function's role cannot read {where} after "
                f"{clock() - start:.0f} s: check that its bucket lets this account read "
                f"it (bucket policy, KMS key, another account's bucket), or run with "
                f"--backend local")
        sleep(min(left, step * (0.5 + random.random() / 2)))
        step = min(step * 2, 8.0)
        if regrant is not None:
            regrant()
