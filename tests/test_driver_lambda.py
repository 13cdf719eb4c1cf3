"""The serverless driver (``--driver lambda``) end to end on moto with IAM enforced:
the driver function's real package runs in a subprocess as the driver's role and
starts the worker's real package in subprocesses as the worker's role.

Answers are compared with the local driver's on the same S3 tables (AMPLab
1a–3c, tiny data); a driver killed after its first checkpoint is resumed
without its finished stage's tasks running again; a driver short of time
continues in a new invocation; schedules are made and removed on moto's
EventBridge Scheduler."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402

from aws_fixtures import FAKE_ENV, enforced_module_bucket, iam_servers  # noqa: E402,F401
from conftest import TINY  # noqa: E402
from difftest import RK_COLUMNS, UV_COLUMNS, assert_same  # noqa: E402
from sqlmr import remote, results_store, schedules  # noqa: E402
from sqlmr.aws import cli as aws_cli  # noqa: E402
from sqlmr.aws import driver_function  # noqa: E402
from sqlmr.aws.config import resolve_settings  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.session import Session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUERIES = ["1a", "1b", "1c", "2a", "2b", "2c", "3a", "3b", "3c"]


def _ddl(bucket: str, name: str, columns, folder: str) -> str:
    cols = ", ".join(f"{n} {t.upper()}" for n, t in columns)
    return f"CREATE EXTERNAL TABLE {name} ({cols}) LOCATION 's3://{bucket}/{folder}/'"


class Deployed:
    def __init__(self, bucket: str, catalog: str) -> None:
        self.bucket = bucket
        self.catalog = catalog


@pytest.fixture(scope="module")
def deployed(enforced_module_bucket, tmp_path_factory):  # noqa: F811
    if not (TINY / "rankings").is_dir():
        pytest.skip(f"AMPLab tiny data not found at {TINY}")
    bucket = enforced_module_bucket
    catalog = f"s3://{bucket}/catalog/"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SQLMR_CATALOG", catalog)
        mp.setenv("SQLMR_HOME", str(tmp_path_factory.mktemp("home")))
        s3 = boto3.client("s3", region_name=FAKE_ENV["AWS_REGION"])
        for table in ("rankings", "uservisits"):
            for f in sorted((TINY / table).iterdir()):
                s3.put_object(Bucket=bucket, Key=f"data/{table}/{f.name}", Body=f.read_bytes())
        s3.put_object(Bucket=bucket, Key="other/rankings/part-00000",
                      Body=(TINY / "rankings" / "part-00000").read_bytes())
        s = Session(Settings(catalog=catalog))
        try:
            for sql in (_ddl(bucket, "rk", RK_COLUMNS, "data/rankings"),
                        _ddl(bucket, "uv", UV_COLUMNS, "data/uservisits"),
                        _ddl(bucket, "other_rk", RK_COLUMNS, "other/rankings")):
                list(s.execute(sql))
        finally:
            s.close()
        out, err = io.StringIO(), io.StringIO()
        assert cli("lambda", "deploy", out=out, err=err) == 0, err.getvalue()
        assert "created driver function sqlmr-driver-" in out.getvalue()
        out, err = io.StringIO(), io.StringIO()
        assert cli("lambda", "grant", f"s3://{bucket}/data/", out=out, err=err) == 0, \
            err.getvalue()
        yield Deployed(bucket, catalog)


def cli(*argv: str, out=None, err=None) -> int:
    import argparse
    if argv[0] == "lambda":
        p = argparse.ArgumentParser()
        aws_cli.add_arguments(p)
        return aws_cli.run(p.parse_args(list(argv[1:])), out=out, err=err)
    if argv[0] == "results":
        p = argparse.ArgumentParser()
        remote.add_results_arguments(p)
        return remote.results_main(p.parse_args(list(argv[1:])), out=out, err=err)
    if argv[0] == "schedule":
        p = argparse.ArgumentParser()
        schedules.add_arguments(p)
        return schedules.main(p.parse_args(list(argv[1:])), out=out, err=err)
    raise AssertionError(argv)


def query(name: str) -> str:
    """An AMPLab query over the S3 tables (rankings and uservisits are built-in names)."""
    sql = (REPO / "queries" / f"{name}.sql").read_text()
    return re.sub(r"\b(rankings|uservisits)\b",
                  lambda m: {"rankings": "rk", "uservisits": "uv"}[m.group(1)], sql)


def local_rows(catalog: str, sql: str) -> list[list]:
    s = Session(Settings(catalog=catalog, workers=2))
    try:
        res = list(s.execute(sql))[-1]
        rows = [list(r) for r in res.rows]
        res.close()
        return rows
    finally:
        s.close()


def csv_rows(text: str, types: list) -> list[list]:
    lines = list(csv.reader(io.StringIO(text)))
    return [[results_store.typed(v, t) for v, t in zip(r, types)] for r in lines[1:]]


def remote_run(sql: str, catalog: str, detach: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = remote.run_cli(sql, Settings(catalog=catalog, format="csv"), detach, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def stats_of(bucket: str, qid: str) -> dict:
    return results_store.QueryStore(bucket, qid).stats() or {}


def query_id(err: str) -> str:
    m = re.search(r"query (q-[0-9a-f-]+) runs", err) or re.search(r"started (q-[0-9a-f-]+)", err)
    assert m, err
    return m.group(1)


# --------------------------------------------------------------------------- package

def test_driver_package_is_reproducible_and_within_lambda_limits():
    a, ha, unzipped = driver_function.build_package()
    b, hb, _ = driver_function.build_package()
    assert a == b and ha == hb
    names = {rel.split("/")[0] for rel, _ in driver_function.package_files()}
    assert names == {"compiler", "runtime", "sqlmr", "sqlglot"}
    assert driver_function.check_size(len(a), unzipped) == "inline"
    assert len(a) < driver_function.INLINE_ZIP_BYTES and unzipped < 250 * 2**20


def test_a_local_catalog_is_refused_with_what_to_set(monkeypatch, capsys):
    from sqlmr.cli import main
    monkeypatch.delenv("SQLMR_CATALOG", raising=False)
    assert main(["--driver", "lambda", "-e", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "catalog = s3://bucket/prefix/" in err and "SQLMR_CATALOG" in err
    assert main(["--detach", "-e", "SELECT 1"]) == 2
    assert "--detach needs --driver lambda" in capsys.readouterr().err


def test_the_cli_flag_runs_on_the_driver_function(deployed, capsys):
    from sqlmr.cli import main
    assert main(["--driver", "lambda", "--format", "csv", "-e",
                 "SELECT COUNT(*) AS n FROM rk"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "n"
    assert [[int(out.splitlines()[1])]] == local_rows(deployed.catalog, "SELECT COUNT(*) FROM rk")
    assert "runs on sqlmr-driver-" in err and "result: s3://" in err


def test_deploy_makes_the_worker_siblings_the_driver_invokes(deployed, monkeypatch):
    """The driver may not deploy: `sqlmr lambda deploy` makes the smaller-memory
    siblings, names them in the driver's environment and lets its role invoke
    them (and no other function of the worker's)."""
    from urllib.parse import unquote

    from sqlmr.aws import deploy, invoker
    from sqlmr.driver_handler import worker_invoker
    settings = resolve_settings({})
    aws = deploy._Aws(settings)
    conf = driver_function.find_driver(settings)
    worker = conf["environment"]["SQLMR_WORKER_FUNCTION"]
    sized = {int(mb): name for mb, name in (item.split("=") for item in
             conf["environment"]["SQLMR_WORKER_SIZED"].split(","))}
    assert sized == {mb: f"{worker}-{mb}mb" for mb in (1024, 1280, 1536)}
    functions = {f["FunctionName"]: f for f in aws.lam.list_functions()["Functions"]}
    for mb, name in sized.items():
        assert functions[name]["MemorySize"] == mb
    doc = aws.iam.get_role_policy(RoleName=driver_function.role_name(settings),
                                  PolicyName=driver_function.policy_name(settings))
    policy = doc["PolicyDocument"]
    policy = json.loads(unquote(policy)) if isinstance(policy, str) else policy
    invoke = next(st for st in policy["Statement"] if st["Sid"] == "InvokeFunctions")
    worker_arn = functions[worker]["FunctionArn"]
    assert invoke["Resource"][:4] == [worker_arn] + [f"{worker_arn}-{mb}mb"
                                                     for mb in (1024, 1280, 1536)]
    # the driver's invoker sends a task to the sibling of the memory its event asks for
    monkeypatch.delenv("SQLMR_LAMBDA_INVOKER", raising=False)
    for name, value in conf["environment"].items():
        monkeypatch.setenv(name, value)
    inv = worker_invoker()
    assert isinstance(inv, invoker.BotoInvoker)
    assert inv.function_name == worker and inv.sized == sized


def test_the_local_stand_in_drivers_home_goes_with_its_client(deployed):
    """The subprocess stand-in gives the driver a temporary SQLMR_HOME; it is
    removed when the client is, not left in the temp folder."""
    import gc
    import os
    client = remote.DriverClient(resolve_settings({}))
    home = client._sub.environment["SQLMR_HOME"]
    assert os.path.isdir(home)
    del client
    gc.collect()
    assert not os.path.exists(home)


# --------------------------------------------------------------------------- answers

@pytest.mark.parametrize("name", QUERIES)
def test_amplab_answers_match_the_local_driver(deployed, name):
    sql = query(name)
    code, out, err = remote_run(sql, deployed.catalog)
    assert code == 0, err
    qid = query_id(err)
    st = stats_of(deployed.bucket, qid)
    got = csv_rows(out, st["types"])
    want = local_rows(deployed.catalog, sql)
    assert len(got) == len(want), err
    assert_same(got, want, ordered="ORDER BY" in sql.upper())
    assert st["tasks_invoked"] > 0 and st["tasks_from_checkpoint"] == 0
    # scratch cleaned: nothing left under the job prefix for this query
    assert not _keys(deployed.bucket, "sqlmr/jobs/")


def _keys(bucket: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", region_name=FAKE_ENV["AWS_REGION"])
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_detach_then_results_returns_the_same_rows(deployed):
    sql = query("2a")
    code, out, err = remote_run(sql, deployed.catalog, detach=True)
    assert code == 0, err
    qid = out.strip()
    assert results_store.valid_query_id(qid)
    out2, err2 = io.StringIO(), io.StringIO()
    assert cli("results", qid, "--wait", out=out2, err=err2) == 0, err2.getvalue()
    st = stats_of(deployed.bucket, qid)
    # the printed table is for people: compare the stored rows
    _, got = results_store.QueryStore(deployed.bucket, qid).rows(st["types"])
    assert_same(got, local_rows(deployed.catalog, sql), ordered=False)
    assert "sourceIP" in out2.getvalue() or "substr" in out2.getvalue().lower()
    listing = io.StringIO()
    assert cli("results", out=listing) == 0
    assert any(line.startswith(qid + "\t") and "\tsucceeded\t" in line
               for line in listing.getvalue().splitlines())
    status = io.StringIO()
    assert cli("results", qid, "--status", out=status) == 0
    assert json.loads(status.getvalue())["state"] == "succeeded"


def test_a_table_not_granted_names_the_grant_command(deployed):
    code, out, err = remote_run("SELECT COUNT(*) FROM other_rk", deployed.catalog)
    assert code == 1
    assert f"sqlmr lambda grant s3://{deployed.bucket}/other/" in err, err


# --------------------------------------------------------------------------- checkpoints

def test_a_driver_killed_after_stage_one_is_resumed_without_redoing_it(deployed, monkeypatch):
    sql = query("3a")
    code, _, err = remote_run(sql, deployed.catalog)
    assert code == 0, err
    clean = stats_of(deployed.bucket, query_id(err))
    monkeypatch.setenv("SQLMR_DRIVER_TEST_EXIT_AFTER_CHECKPOINT", "1")
    client_box = []
    real = remote.DriverClient

    def keep(ls):
        c = real(ls)
        client_box.append(c)
        return c
    monkeypatch.setattr(remote, "DriverClient", keep)
    code, out, err = remote_run(sql, deployed.catalog)
    assert code == 0, err
    qid = query_id(err)
    store = results_store.QueryStore(deployed.bucket, qid)
    st = store.stats()
    # the first invocation died after its first checkpoint; Lambda's retry resumed
    assert client_box[0].invocations == 2
    assert store.status()["attempts"] == 2 and st["attempts"] == 2
    ckpt = store.checkpoint()
    assert ckpt["stages"] == ["stage 1 map", "stage 1 reduce"] and len(ckpt["works"]) == 2
    # the first checkpoint's tasks (stage 1's maps) came from it, the rest ran once
    assert st["tasks_from_checkpoint"] == clean["map_tasks"] > 0
    assert st["tasks_invoked"] == clean["tasks_invoked"] - clean["map_tasks"] > 0
    assert_same(csv_rows(out, st["types"]), local_rows(deployed.catalog, sql), ordered=True)
    assert not _keys(deployed.bucket, "sqlmr/jobs/")


def test_a_driver_short_of_time_continues_in_a_new_invocation(deployed, monkeypatch):
    monkeypatch.setenv("SQLMR_DRIVER_RESERVE_S", "100000")   # always "short of time"
    sql = query("3a")
    code, out, err = remote_run(sql, deployed.catalog)
    assert code == 0, err
    qid = query_id(err)
    store = results_store.QueryStore(deployed.bucket, qid)
    st = store.stats()
    phases = len(store.checkpoint()["stages"])
    # a new invocation after each phase; the last one finds every phase done
    assert phases >= 2 and st["attempts"] == phases + 1
    assert st["tasks_from_checkpoint"] > 0
    assert_same(csv_rows(out, st["types"]), local_rows(deployed.catalog, sql), ordered=True)


# --------------------------------------------------------------------------- schedules

def test_schedule_add_list_remove_and_a_scheduled_run(deployed, tmp_path):
    report = tmp_path / "report.sql"
    report.write_text(query("1a"))
    out, err = io.StringIO(), io.StringIO()
    assert cli("schedule", "add", "nightly", "--cron", "0 3 * * ? *", "-f", str(report),
               out=out, err=err) == 0, err.getvalue()
    listing = io.StringIO()
    assert cli("schedule", "list", out=listing) == 0
    assert "nightly\tcron(0 3 * * ? *)\tENABLED" in listing.getvalue()
    ls = resolve_settings({})
    sched = boto3.client("scheduler", region_name=FAKE_ENV["AWS_REGION"])
    target = sched.get_schedule(Name="sqlmr-nightly")["Target"]
    assert target["Arn"] == driver_function.find_driver(ls)["arn"]
    event = json.loads(target["Input"])
    # what the scheduler sends, its time filled in
    event["scheduled_time"] = "2026-12-02T03:00:00Z"
    client = remote.DriverClient(ls)
    client.start(event)
    client.threads[-1].join()
    store = results_store.QueryStore(deployed.bucket, "nightly/20261202T030000Z")
    assert store.status()["state"] == "succeeded", store.status()
    st = store.stats()
    _, got = store.rows(st["types"])
    assert_same(got, local_rows(deployed.catalog, query("1a")), ordered=False)
    assert _keys(deployed.bucket, "sqlmr/results/nightly/20261202T030000Z/")
    out = io.StringIO()
    assert cli("schedule", "remove", "nightly", out=out) == 0
    listing = io.StringIO()
    assert cli("schedule", "list", out=listing) == 0
    assert "nightly" not in listing.getvalue()
    # undeploy removes the schedules sqlmr made
    assert cli("schedule", "add", "again", "--cron", "0 4 * * ? *", "-f", str(report)) == 0
    removed = schedules.remove_all(ls)
    assert "schedule sqlmr-again" in removed
    assert schedules.list_schedules(ls) == []


# --------------------------------------------------------------------------- cancel

def test_a_cancelled_query_runs_no_task(deployed):
    ls = resolve_settings({})
    client = remote.DriverClient(ls)
    qid = results_store.new_query_id()
    store = results_store.QueryStore(deployed.bucket, qid)
    store.set_status("queued")
    store.request_cancel()
    client.start({"query_id": qid, "statements": query("2a"), "catalog": deployed.catalog})
    client.threads[-1].join()
    st = store.status()
    assert st["state"] == "cancelled", st
    assert client.invocations == 1 and store.stats() is None
    assert not _keys(deployed.bucket, "sqlmr/jobs/")


def test_ctrl_c_while_waiting_asks_and_sets_the_cancel_marker(deployed, monkeypatch):
    store = results_store.QueryStore(deployed.bucket, results_store.new_query_id())
    store.set_status("running")
    calls = []

    def interrupted(s):
        calls.append(s)
        if len(calls) == 1:
            raise KeyboardInterrupt
        store.set_status("cancelled")   # what the driver does when it sees the marker
    monkeypatch.setattr(remote.time, "sleep", interrupted)
    asked = []
    err = io.StringIO()
    st = remote.wait(store, err, ask=lambda prompt: asked.append(prompt) or "y")
    assert asked and "cancel the remote query" in asked[0]
    assert store.cancel_requested() and st["state"] == "cancelled"
    # answering no leaves the query running
    other = results_store.QueryStore(deployed.bucket, results_store.new_query_id())
    other.set_status("running")
    calls.clear()
    monkeypatch.setattr(remote.time, "sleep", lambda s: (_ for _ in ()).throw(KeyboardInterrupt))
    st = remote.wait(other, err, ask=lambda prompt: "n")
    assert st["state"] == "running" and not other.cancel_requested()
    assert f"sqlmr results {other.query_id}" in err.getvalue()


# --------------------------------------------------------------------------- least privilege

def test_the_driver_role_may_not_change_iam_or_read_outside_its_grants(deployed):
    ls = resolve_settings({})
    remote.DriverClient(ls)   # (the stand-in: this identity may assume the driver's role)
    from sqlmr.aws import invoker
    role = driver_function.find_driver(ls)["role"]
    c = invoker.assume_role(role, wait_s=0)
    kw = dict(region_name=FAKE_ENV["AWS_REGION"], aws_access_key_id=c["key"],
              aws_secret_access_key=c["secret"], aws_session_token=c["token"])
    iam = boto3.client("iam", **kw)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        iam.put_role_policy(RoleName=ls.role_name, PolicyName="x", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    assert "AccessDenied" in str(e.value)
    s3 = boto3.client("s3", **kw)
    with pytest.raises(ClientError):
        s3.get_object(Bucket=deployed.bucket, Key="other/rankings/part-00000")
    assert s3.get_object(Bucket=deployed.bucket, Key="data/rankings/part-00000")["Body"].read()


# --------------------------------------------------------------------------- undeploy (last)

def test_undeploy_removes_the_driver_its_role_and_the_schedules(deployed, tmp_path):
    report = tmp_path / "r.sql"
    report.write_text("SELECT 1")
    assert cli("schedule", "add", "weekly", "--cron", "0 5 ? * MON *", "-f", str(report)) == 0
    out, err = io.StringIO(), io.StringIO()
    assert cli("lambda", "undeploy", out=out, err=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "removed schedule sqlmr-weekly" in text
    assert "removed function sqlmr-driver-" in text and "removed IAM role sqlmr-driver-role" in text
    ls = resolve_settings({})
    assert schedules.list_schedules(ls) == []
    with pytest.raises(Exception, match="sqlmr lambda deploy"):
        driver_function.find_driver(ls)
