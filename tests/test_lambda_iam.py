"""The Lambda backend under the function's own least-privilege role, with IAM
enforced (moto's INITIAL_NO_AUTH_ACTION_COUNT): tasks run as the role (the
subprocess invoker assumes it), the caller may not read the data bucket, so a
query works only if the role was granted exactly what its tasks read; and a
task cannot reach outside its grants.  Also: grants that scale (one resource
per table, under IAM's size limit, merged across sessions), regions, billing
from either log format."""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from aws_fixtures import iam_account, iam_servers  # noqa: E402,F401
from difftest import (RK_COLUMNS, UV_COLUMNS, as_bytes, assert_same,  # noqa: E402
                      rankings_lines, uservisits_lines)
from sqlmr.aws import deploy, grants, invoker  # noqa: E402
from sqlmr.aws.config import AwsSetupError, resolve_settings  # noqa: E402
from sqlmr.backends.lambda_backend import LambdaBackend  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.render import summary_lines  # noqa: E402
from sqlmr.session import Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


# --------------------------------------------------------------------------- helpers

def write_tables(bucket: str, folder: Path) -> None:
    """uservisits and rankings shaped files, the same bytes on S3 (the data bucket)
    and in ``folder`` (the local backend's reference answer reads those)."""
    s3 = boto3.client("s3", region_name=REGION)
    rk = [rankings_lines(300, seed=200 + i) for i in range(2)]
    urls = [line.split(",", 1)[0] for lines in rk for line in lines]
    rnd = random.Random(7)
    files = {}
    for i in range(3):
        lines = []
        for line in uservisits_lines(700, seed=100 + i):
            f = line.split(",")
            if rnd.random() < 0.9:
                f[1] = rnd.choice(urls)
            lines.append(",".join(f))
        files[f"uservisits/part-{i:05d}"] = as_bytes(lines)
    for i, lines in enumerate(rk):
        files[f"rankings/part-{i:05d}"] = as_bytes(lines)
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=data)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def ddl(root: str) -> str:
    uv = ", ".join(f"{n} {t.upper()}" for n, t in UV_COLUMNS)
    rk = ", ".join(f"{n} {t.upper()}" for n, t in RK_COLUMNS)
    return ("DROP TABLE IF EXISTS uv; DROP TABLE IF EXISTS rk;"
            f"CREATE EXTERNAL TABLE uv ({uv}) LOCATION '{root}/uservisits';"
            f"CREATE EXTERNAL TABLE rk ({rk}) LOCATION '{root}/rankings';")


def amplab(name: str) -> str:
    sql = (REPO / "queries" / f"{name}.sql").read_text()
    return re.sub(r"\b(rankings|uservisits)\b",
                  lambda m: {"rankings": "rk", "uservisits": "uv"}[m.group(1)], sql)


def rows(settings: Settings, root: str, sql: str, stats: list | None = None) -> list[list]:
    s = Session(settings)
    try:
        list(s.execute(ddl(root)))
        results = list(s.execute(sql))
        res = results[-1]
        out = [list(r) for r in res.rows]
        if stats is not None:
            stats.append((res.stats, summary_lines(res, settings)))
        for r in results:
            r.close()
        return out
    finally:
        s.close()


def policy(account) -> dict:
    ls = resolve_settings({})
    return grants.current_policy(deploy._Aws(ls), ls)


@pytest.fixture
def data(iam_account, tmp_path):
    write_tables(iam_account.data_bucket, tmp_path)
    return iam_account, tmp_path


# --------------------------------------------------------------------------- the set-up

def test_the_caller_cannot_read_the_data_and_iam_is_enforced(data):
    account, _ = data
    s3 = boto3.client("s3", region_name=REGION)
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=account.data_bucket, Key="data/rankings/part-00000")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    # unknown keys are refused: IAM is checked on every request
    stranger = boto3.client("s3", region_name=REGION, aws_access_key_id="AKIAUNKNOWN000000000",
                            aws_secret_access_key="x")
    with pytest.raises(ClientError):
        stranger.list_objects_v2(Bucket=account.job_bucket)


# --------------------------------------------------------------------------- queries

@pytest.mark.parametrize("query, broadcast_mb", [("1a", 32), ("2a", 32), ("3a", 32),
                                                  ("3a", 0)],
                         ids=["1a", "2a", "3a-broadcast", "3a-reduce-side"])
def test_amplab_as_the_function_role_gives_the_local_answers(data, query, broadcast_mb):
    account, folder = data
    sql = amplab(query)
    common = dict(split_mb=0.04, reducers=3, broadcast_mb=broadcast_mb)
    want = rows(Settings(workers=2, **common), str(folder), sql)
    stats: list = []
    got = rows(Settings(backend="lambda", **common), f"s3://{account.data_bucket}/data", sql,
               stats)
    assert_same(got, want, ordered=query == "3a")
    assert len(got) > 0
    st, lines = stats[0]
    # metered from each invocation's report; the subprocess invoker's
    # durations are local wall time, so the cost line says estimate
    assert st.metered and not st.billed
    assert st.invocations >= st.map_tasks + st.reduce_tasks >= 1
    assert "(estimate:" in [ln for ln in lines if ln.startswith("Cost:")][0]
    # the role reads exactly the tables of the query, one location each
    have = grants.granted_locations(policy(account))
    tables = {"1a": ["rankings"], "2a": ["uservisits"], "3a": ["rankings", "uservisits"]}
    assert have == {f"s3://{account.data_bucket}/data/{t}/" for t in tables[query]}


def test_the_subprocess_invoker_runs_tasks_with_the_role_credentials_only(data):
    account, _ = data
    inv = invoker.SubprocessInvoker(timeout_s=60)
    info = deploy.ensure_deployed(resolve_settings({}))
    inv.use_role(deploy.allow_local_tasks(resolve_settings({})))
    env = inv._env("r")
    assert env["AWS_ACCESS_KEY_ID"] != account.key and env["AWS_SESSION_TOKEN"]
    assert account.secret not in env.values()
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == env["AWS_CONFIG_FILE"]
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                       aws_session_token=env["AWS_SESSION_TOKEN"])
    arn = sts.get_caller_identity()["Arn"]
    assert f":assumed-role/{info.role_arn.rsplit('/', 1)[1]}/" in arn


# --------------------------------------------------------------------------- what the role may not do

def test_a_table_outside_the_grants_fails_before_any_task(data, monkeypatch):
    account, _ = data
    monkeypatch.setenv("SQLMR_LAMBDA_GRANTS", "off")
    monkeypatch.setenv("SQLMR_TABLE_LOCATIONS", f"s3://{account.data_bucket}/data/rankings/")
    session = Session(Settings(backend="lambda", split_mb=0.04, reducers=2))
    try:
        list(session.execute(ddl(f"s3://{account.data_bucket}/data")))
        # granted by whoever deployed: works
        got = list(session.execute(amplab("1a")))[-1]
        assert len(list(got.rows)) > 0
        got.close()
        backend = session.backend()
        ran = sum(r.invocations for r in backend.reports)
        # a broadcast join whose big side is not granted: refused before any task
        with pytest.raises(grants.GrantError) as info:
            list(session.execute(amplab("3a")))
        msg = str(info.value)
        assert f"s3://{account.data_bucket}/data/uservisits/" in msg
        assert "SQLMR_TABLE_LOCATIONS" in msg and "sqlmr lambda deploy" in msg
        assert sum(r.invocations for r in backend.reports) == ran
    finally:
        session.close()
    keys = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=account.job_bucket, Prefix="sqlmr/jobs/").get("KeyCount", 0)
    assert keys == 0


_PROBE_CODE = b'''
def m(ctx):
    from runtime import s3
    out = []
    def attempt(what, fn):
        try:
            fn()
            out.append([what, "ok"])
        except Exception as e:
            out.append([what, type(e).__name__ + ": " + str(e)[:200]])
    p = ctx.event["params"]
    attempt("read granted", lambda: s3.read_range(p["granted"], 0, 10))
    attempt("read ungranted", lambda: s3.read_range(p["ungranted"], 0, 10))
    attempt("write job", lambda: s3.write_bytes(p["work"] + "mine", b"x"))
    attempt("write job bucket root", lambda: s3.write_bytes(p["job_root"], b"x"))
    attempt("write table", lambda: s3.write_bytes(p["table_write"], b"x"))
    attempt("delete table", lambda: s3.client().delete_object(
        Bucket=p["table_bucket"], Key=p["table_key"]))
    import json
    print("ACCESS " + json.dumps(out))
    ctx.writer().add(0, [len(out)])
'''


def test_a_task_cannot_reach_outside_its_grants(data):
    """The policy is not too wide: a task (as the role) reads the granted table
    and writes under the job prefix, and nothing else."""
    import hashlib
    import uuid

    account, folder = data
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=account.data_bucket, Key="secret/part-00000", Body=b"s,1\n")
    ls = resolve_settings({})
    deploy.ensure_deployed(ls)
    granted = f"s3://{account.data_bucket}/data/rankings/part-00000"
    assert grants.ensure_table_access(ls, [granted], grants.table_roots([{"uri": granted}])) \
        == [f"s3://{account.data_bucket}/data/rankings/"]
    inv = invoker.SubprocessInvoker(timeout_s=60)
    inv.use_role(deploy.allow_local_tasks(ls))
    job = uuid.uuid4().hex[:8]
    work = f"s3://{account.job_bucket}/sqlmr/jobs/{job}/"
    s3.put_object(Bucket=account.job_bucket, Key=f"sqlmr/jobs/{job}/job.py", Body=_PROBE_CODE)
    params = {"granted": granted, "ungranted": f"s3://{account.data_bucket}/secret/part-00000",
              "work": work, "job_root": f"s3://{account.job_bucket}/elsewhere/x",
              "table_write": f"s3://{account.data_bucket}/data/rankings/new",
              "table_bucket": account.data_bucket, "table_key": "data/rankings/part-00000"}
    event = {"v": 1, "job": job, "stage": 1, "kind": "map", "task": 0, "attempt": 0,
             "input": {"splits": []}, "partitions": 0, "work": work, "entry": "m",
             "code": {"uri": work + "job.py", "sha256": hashlib.sha256(_PROBE_CODE).hexdigest()},
             "strict": False, "params": params}
    r = inv.invoke(event)
    assert r.function_error is None, r.payload
    line = [ln for ln in r.log_tail.splitlines() if ln.startswith("ACCESS ")][0]
    got = dict(json.loads(line[len("ACCESS "):]))
    assert got["read granted"] == "ok" and got["write job"] == "ok"
    for what in ("read ungranted", "write job bucket root", "write table", "delete table"):
        assert re.search(r"AccessDenied|access denied", got[what]), (what, got[what])
    # the probe the backend waits with says the same
    assert inv.probe([granted]) == {}
    assert list(inv.probe([params["ungranted"]])) == [params["ungranted"]]



# --------------------------------------------------------------------------- grants that scale

def test_sixty_tables_and_sixty_partitions_stay_well_under_the_limit(iam_account):
    account = iam_account
    ls = resolve_settings({})
    deploy.ensure_deployed(ls)
    b = account.data_bucket
    parts = [{"uri": f"s3://{b}/warehouse/events/dt=2024-01-{d:02d}/hour={h}/part-0",
              "table": "events"} for d in range(1, 31) for h in (0, 12)]
    roots = grants.table_roots(parts)
    assert set(roots.values()) == {f"s3://{b}/warehouse/events/"}     # one per table
    assert grants.ensure_table_access(ls, list(roots), roots) == [f"s3://{b}/warehouse/events/"]
    tables = [{"uri": f"s3://{b}/warehouse/table_{i:02d}/part-00000", "table": f"t{i}"}
              for i in range(60)]
    roots = grants.table_roots(tables)
    assert len(grants.ensure_table_access(ls, list(roots), roots)) == 60
    doc = policy(account)
    assert grants.granted_locations(doc) == set(roots.values()) | {f"s3://{b}/warehouse/events/"}
    size = grants.policy_chars(doc)
    assert size < grants.POLICY_BUDGET < grants.IAM_INLINE_POLICY_LIMIT
    assert size < 6000, size
    # the role really reads a partition folder through the table's one grant
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=b, Key="warehouse/events/dt=2024-01-05/hour=0/part-0", Body=b"x\n")
    inv = invoker.SubprocessInvoker(timeout_s=60)
    inv.use_role(deploy.allow_local_tasks(ls))
    assert inv.probe([parts[8]["uri"]]) == {}
    # really too many: a clear error, and the policy as it was
    many = {f"s3://{b}/w/{'x' * 40}_{i:03d}/p": f"s3://{b}/w/{'x' * 40}_{i:03d}/"
            for i in range(200)}
    with pytest.raises(grants.GrantError) as info:
        grants.ensure_table_access(ls, list(many), many)
    msg = str(info.value)
    assert "10,240" in msg and "SQLMR_TABLE_LOCATIONS" in msg and "LimitExceeded" not in msg
    assert policy(account) == doc


def test_concurrent_sessions_granting_at_once_both_end_up_granted(iam_account):
    account = iam_account
    ls = resolve_settings({})
    deploy.ensure_deployed(ls)
    b = account.data_bucket
    errors: list = []
    barrier = threading.Barrier(3)

    def session(name: str) -> None:
        try:
            barrier.wait()
            for i in range(6):
                uri = f"s3://{b}/{name}/t{i}/part-0"
                grants.ensure_table_access(ls, [uri])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=session, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert grants.granted_locations(policy(account)) == {
        f"s3://{b}/{n}/t{i}/" for n in ("a", "b", "c") for i in range(6)}


def test_deploy_keeps_what_sessions_granted(iam_account):
    ls = resolve_settings({})
    deploy.ensure_deployed(ls)
    uri = f"s3://{iam_account.data_bucket}/data/rankings/part-00000"
    grants.ensure_table_access(ls, [uri])
    deploy.deploy(ls)
    assert grants.covered(uri, grants.granted_locations(policy(iam_account)))


# --------------------------------------------------------------------------- regions

def test_a_job_bucket_in_another_region_is_named(iam_account, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    far = iam_account.job_bucket.replace("jobs", "euro")
    s3.create_bucket(Bucket=far, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    monkeypatch.setenv("SQLMR_BUCKET", far)
    with pytest.raises(AwsSetupError) as info:
        deploy.deploy(resolve_settings({}))
    msg = str(info.value)
    assert f"{far!r} is in eu-west-1" in msg and "us-east-1" in msg
    assert "AWS_REGION=eu-west-1" in msg


def test_a_table_in_another_region_is_refused_before_any_task(data):
    account, _ = data
    s3 = boto3.client("s3", region_name=REGION)
    far = account.data_bucket.replace("data", "euro")
    s3.create_bucket(Bucket=far, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=far, Key="t/part-0", Body=b"a,1\n")
    session = Session(Settings(backend="lambda"))
    try:
        list(session.execute(f"CREATE EXTERNAL TABLE far (k STRING, n INT) "
                             f"LOCATION 's3://{far}/t'"))
        with pytest.raises(AwsSetupError) as info:
            list(session.execute("SELECT COUNT(*) FROM far"))
        assert sum(r.invocations for r in session.backend().reports) == 0
    finally:
        session.close()
    msg = str(info.value)
    assert f"s3://{far} is in eu-west-1" in msg and "data transfer" in msg
    assert not grants.covered(f"s3://{far}/t/part-0", grants.granted_locations(policy(account)))


def test_waiting_for_a_grant_probes_with_backoff_up_to_a_bound():
    """IAM propagates a grant within seconds (or, when a concurrent session's
    stale write dropped it, the re-grant brings it back): probe with growing
    pauses, and give up at the bound naming the location."""
    now = [0.0]
    sleeps: list[float] = []
    regrants: list[int] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    def probe_denying(n: int):
        calls = [0]

        def probe(uris):
            calls[0] += 1
            return {u: "AccessDenied: Forbidden" for u in uris} if calls[0] <= n else {}
        return probe

    uri = "s3://b/t/part-0"
    grants.wait_until_readable(probe_denying(4), [uri], 60.0, regrant=lambda: regrants.append(1),
                               sleep=sleep, clock=lambda: now[0])
    assert len(sleeps) == 4 and len(regrants) == 4
    assert sleeps[-1] > 4 * sleeps[0]                      # backing off
    sleeps.clear()
    with pytest.raises(grants.GrantError) as info:
        grants.wait_until_readable(probe_denying(10 ** 6), [uri], 30.0, sleep=sleep,
                                   clock=lambda: now[0])
    assert 29.9 <= sum(sleeps) <= 30.0 + 1e-9 and len(sleeps) < 20
    assert uri in str(info.value) and "AccessDenied" in str(info.value)
    # a clock far from zero (a float whose last bit is worth more than what is
    # left of the bound) still runs out: the wait never spins on a sliver
    for seed in range(50):
        random.seed(seed)
        now[0] = 1e6 + seed
        with pytest.raises(grants.GrantError):
            grants.wait_until_readable(probe_denying(10 ** 5), [uri], 30.0, sleep=sleep,
                                       clock=lambda: now[0])
    # bound 0: one probe, no wait
    sleeps.clear()
    with pytest.raises(grants.GrantError):
        grants.wait_until_readable(probe_denying(1), [uri], 0.0, sleep=sleep, clock=lambda: now[0])
    assert sleeps == []


def test_a_table_the_role_still_cannot_read_fails_before_any_task(data):
    """Granted, yet unreadable (here another policy on the role denies it, as an
    organisation's guard rail would): the probe finds out before the job."""
    account, _ = data
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=account.data_bucket, Key="guarded/part-0", Body=b"a,1\n")
    ls = resolve_settings({})
    deploy.ensure_deployed(ls)
    boto3.client("iam", region_name=REGION).put_role_policy(
        RoleName=ls.role_name, PolicyName="guard-rail", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Deny", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{account.data_bucket}/guarded/*"}]}))
    session = Session(Settings(backend="lambda"))
    try:
        list(session.execute(f"CREATE EXTERNAL TABLE guarded (k STRING, n INT) "
                             f"LOCATION 's3://{account.data_bucket}/guarded'"))
        with pytest.raises(grants.GrantError) as info:
            list(session.execute("SELECT k, COUNT(*) FROM guarded GROUP BY k"))
        assert sum(r.invocations for r in session.backend().reports) == 0
    finally:
        session.close()
    msg = str(info.value)
    assert f"cannot read s3://{account.data_bucket}/guarded/part-0" in msg
    assert "AccessDenied" in msg and "bucket policy" in msg
    assert s3.list_objects_v2(Bucket=account.job_bucket, Prefix="sqlmr/jobs/")["KeyCount"] == 0
