"""Scheduled queries: ``sqlmr schedule add NAME --cron '0 3 * * ? *' -f report.sql``.

A schedule is an EventBridge Scheduler schedule named ``sqlmr-NAME`` whose
target is the driver function, with the statements (and the catalog) in its
input.  Each run's result and statistics land under
``s3://$SQLMR_BUCKET/sqlmr/results/NAME/<scheduled time>/``.  The scheduler
invokes the function as the role ``sqlmr-scheduler-role`` (may invoke the
driver function, nothing else).  ``sqlmr lambda undeploy`` removes every
``sqlmr-`` schedule and that role.

>>> schedule_input("nightly", "SELECT 1", "s3://b/c/")["scheduled_time"]
'<aws.scheduler.scheduled-time>'
>>> cron_expression("0 3 * * ? *")
'cron(0 3 * * ? *)'
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import IO

from sqlmr.aws.config import AwsSetupError, LambdaSettings, resolve_settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,50}$")


def schedule_name(settings: LambdaSettings, name: str) -> str:
    return f"{settings.prefix}{name}"


def scheduler_role(settings: LambdaSettings) -> str:
    return f"{settings.prefix}scheduler-role"


def cron_expression(cron: str) -> str:
    """EventBridge's ``cron(…)`` (six fields) from what the user wrote."""
    cron = cron.strip()
    if cron.startswith(("cron(", "rate(", "at(")):
        return cron
    if len(cron.split()) != 6:
        raise ValueError(f"--cron {cron!r}: EventBridge cron has six fields "
                         f"(minutes hours day-of-month month day-of-week year), "
                         f"e.g. '0 3 * * ? *'")
    return f"cron({cron})"


def schedule_input(name: str, statements: str, catalog: str, settings: dict | None = None) -> dict:
    """The driver's event for a scheduled run (the scheduler fills in the time)."""
    return {"schedule": name, "scheduled_time": "<aws.scheduler.scheduled-time>",
            "statements": statements, "catalog": catalog, "settings": settings or {}}


def _clients(ls: LambdaSettings):
    from sqlmr.aws import deploy
    aws = deploy._Aws(ls)
    return aws, aws._client("scheduler")


def _ensure_role(aws, ls: LambdaSettings, driver_arn: str) -> str:
    from sqlmr.aws import deploy
    name = scheduler_role(ls)
    if deploy._role_tags(aws, name) is None:
        aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
            Description="EventBridge Scheduler invokes sqlmr's driver function",
            Tags=deploy._tags_list({deploy.TAG_KEY: deploy.TAG_VALUE}))
    aws.iam.put_role_policy(RoleName=name, PolicyName=f"{ls.prefix}scheduler-policy",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                                "Resource": [driver_arn]}]}))
    return aws.iam.get_role(RoleName=name)["Role"]["Arn"]


def add(ls: LambdaSettings, name: str, cron: str, statements: str, catalog: str) -> str:
    from sqlmr import remote
    from sqlmr.aws import driver_function
    if not _NAME.match(name):
        raise ValueError(f"schedule name {name!r}: letters, digits, '.', '_', '-' (up to 51)")
    remote.check_catalog(catalog)
    expr = cron_expression(cron)
    driver = driver_function.find_driver(ls)
    aws, sched = _clients(ls)
    role = _ensure_role(aws, ls, driver["arn"])
    sched.create_schedule(
        Name=schedule_name(ls, name), ScheduleExpression=expr,
        FlexibleTimeWindow={"Mode": "OFF"}, State="ENABLED",
        Description=f"sqlmr scheduled query {name}",
        Target={"Arn": driver["arn"], "RoleArn": role,
                "Input": json.dumps(schedule_input(name, statements, catalog))})
    return schedule_name(ls, name)


def list_schedules(ls: LambdaSettings) -> list[dict]:
    """sqlmr's schedules: name (without the prefix), expression, state, target."""
    _, sched = _clients(ls)
    out = []
    for page in sched.get_paginator("list_schedules").paginate(NamePrefix=ls.prefix):
        for s in page.get("Schedules", []):
            full = sched.get_schedule(Name=s["Name"], GroupName=s.get("GroupName", "default"))
            out.append({"name": s["Name"][len(ls.prefix):], "expression":
                        full.get("ScheduleExpression"), "state": full.get("State"),
                        "target": full.get("Target", {}).get("Arn"),
                        "input": json.loads(full.get("Target", {}).get("Input") or "{}")})
    return sorted(out, key=lambda d: d["name"])


def remove(ls: LambdaSettings, name: str) -> None:
    from botocore.exceptions import ClientError
    _, sched = _clients(ls)
    try:
        sched.delete_schedule(Name=schedule_name(ls, name))
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise ValueError(f"no schedule {name!r}") from None
        raise


def remove_all(ls: LambdaSettings) -> list[str]:
    """Delete every sqlmr schedule and the scheduler's role (undeploy)."""
    from sqlmr.aws import deploy
    aws, sched = _clients(ls)
    removed = []
    for s in list_schedules(ls):
        sched.delete_schedule(Name=schedule_name(ls, s["name"]))
        removed.append(f"schedule {schedule_name(ls, s['name'])}")
    role = scheduler_role(ls)
    if deploy._managed(deploy._role_tags(aws, role)):
        for p in aws.iam.list_role_policies(RoleName=role).get("PolicyNames", []):
            aws.iam.delete_role_policy(RoleName=role, PolicyName=p)
        aws.iam.delete_role(RoleName=role)
        removed.append(f"IAM role {role}")
    return removed


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="{add,list,remove}")
    sub.required = True
    a = sub.add_parser("add", help="run a query file on a schedule")
    a.add_argument("name")
    a.add_argument("--cron", required=True, help="EventBridge cron, e.g. '0 3 * * ? *' (UTC)")
    a.add_argument("-f", "--file", required=True, metavar="FILE", help="the statements to run")
    sub.add_parser("list", help="list sqlmr's schedules")
    r = sub.add_parser("remove", help="remove a schedule")
    r.add_argument("name")


def main(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    from sqlmr.catalog import catalog_location
    from sqlmr.config import load_settings
    out, err = out or sys.stdout, err or sys.stderr
    try:
        ls = resolve_settings({})
        if args.action == "add":
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
            full = add(ls, args.name, args.cron, text, catalog_location(load_settings()))
            print(f"created schedule {full}: results under s3://{ls.bucket}/sqlmr/results/"
                  f"{args.name}/<time>/", file=out)
        elif args.action == "list":
            for s in list_schedules(ls):
                print(f"{s['name']}\t{s['expression']}\t{s['state']}", file=out)
        else:
            remove(ls, args.name)
            print(f"removed schedule {schedule_name(ls, args.name)}", file=out)
    except (AwsSetupError, ValueError, OSError) as e:
        print(f"sqlmr schedule: {e}", file=err)
        return 2
    return 0
