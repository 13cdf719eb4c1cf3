"""``sqlmr lambda deploy | status | undeploy``: manage sqlmr's Lambda function.

Settings come, highest first, from these options, then sqlmr's settings
(config files: ``memory_mb``, ``architecture``), then the environment
(``SQLMR_BUCKET``, ``AWS_REGION``, ``SQLMR_LAMBDA_*``).  Problems with the AWS
setup are one line on stderr saying what to set, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from sqlmr.aws.config import AwsSetupError, resolve_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="{deploy,status,undeploy,grant}")
    sub.required = True
    helps = {
        "deploy": "create or update the function for this runtime version (and its role, "
                  "log group and the job bucket's lifecycle rule); remove stale versions",
        "status": "show what is deployed",
        "undeploy": "remove everything deploy made (the job bucket and your data stay)",
        "grant": "let the worker and driver functions read a table location (s3://…/)",
    }
    for action, text in helps.items():
        sp = sub.add_parser(action, help=text, description=text)
        sp.add_argument("--bucket", metavar="NAME",
                        help="job bucket for scratch data and the package (env SQLMR_BUCKET)")
        sp.add_argument("--region", metavar="REGION", help="AWS region (env AWS_REGION)")
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        if action == "grant":
            sp.add_argument("locations", nargs="+", metavar="S3_URI",
                            help="table location(s) to grant, e.g. s3://bucket/tables/visits/")
        if action == "deploy":
            sp.add_argument("--memory", type=int, metavar="MB",
                            help="function memory, 128-10240 (default 1769 = one vCPU; "
                                 "env SQLMR_LAMBDA_MEMORY_MB)")
            sp.add_argument("--timeout", type=int, metavar="S",
                            help="function timeout, 1-900 s (default 900; env "
                                 "SQLMR_LAMBDA_TIMEOUT_S)")
            sp.add_argument("--arch", choices=["arm64", "x86_64"],
                            help="architecture (default arm64; env SQLMR_LAMBDA_ARCH)")
            sp.add_argument("--ephemeral", type=int, metavar="MB",
                            help="/tmp size, 512-10240 MB (default 1024)")
            sp.add_argument("--table-location", action="append", metavar="S3_URI",
                            dest="table_locations",
                            help="an s3:// table location the function may read (repeat; "
                                 "env SQLMR_TABLE_LOCATIONS)")


def _overrides(args: argparse.Namespace) -> dict:
    from sqlmr.backends.lambda_backend import lambda_overrides
    from sqlmr.config import load_settings

    try:
        out = lambda_overrides(load_settings())
    except ValueError as e:
        raise AwsSetupError(f"config: {e}") from None
    for name, attr in (("bucket", "bucket"), ("region", "region"), ("memory_mb", "memory"),
                       ("timeout_s", "timeout"), ("architecture", "arch"),
                       ("ephemeral_mb", "ephemeral"), ("table_locations", "table_locations")):
        value = getattr(args, attr, None)
        if value is not None:
            out[name] = value
    return out


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``sqlmr lambda ACTION``; 0 ok, 1 when AWS is not set up or a call failed."""
    from sqlmr.aws import deploy, driver_function

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = resolve_settings(_overrides(args))
        if args.action == "deploy":
            info = deploy.deploy(settings)
            drv = driver_function.deploy_driver(settings, info, _catalog())
            if args.json:
                print(json.dumps({**info.to_dict(), "driver": drv.function_name}, indent=2),
                      file=out)
            else:
                for note in info.notes + drv.notes:
                    print(note, file=out)
                print(f"ready: {info.function_name} in {info.region} "
                      f"(runtime {info.runtime_hash[:12]}); jobs write to "
                      f"s3://{info.bucket}/{settings.jobs_prefix}", file=out)
        elif args.action == "status":
            st = deploy.status(settings)
            try:
                driver = driver_function.find_driver(settings)["name"]
            except AwsSetupError:
                driver = None
            print(json.dumps({**st, "driver": driver}, indent=2, default=str) if args.json
                  else deploy.format_status(st) + f"\ndriver function: {driver or 'none'}",
                  file=out)
        elif args.action == "grant":
            added = driver_function.grant(settings, args.locations, _catalog())
            print(json.dumps({"added": added}) if args.json else
                  ("granted " + ", ".join(added) if added else "already granted"), file=out)
        elif args.action == "undeploy":
            from sqlmr import schedules
            removed = schedules.remove_all(settings)
            removed += driver_function.undeploy_driver(settings)
            removed += deploy.undeploy(settings)
            if args.json:
                print(json.dumps({"removed": removed}, indent=2), file=out)
            elif removed:
                for what in removed:
                    print(f"removed {what}", file=out)
            else:
                print("nothing to remove: sqlmr is not deployed here", file=out)
        else:  # pragma: no cover - argparse enforces the choices
            raise AssertionError(args.action)
    except AwsSetupError as e:
        print(f"sqlmr lambda: {e}", file=err)
        return 1
    except Exception as e:  # noqa: BLE001 — AWS said no: one line, not a traceback
        print(f"sqlmr lambda: {args.action} failed: {_one_line(e)}", file=err)
        return 1
    return 0


def _one_line(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


def _catalog() -> str:
    """The catalog the driver function reads (the config's, else $SQLMR_CATALOG)."""
    from sqlmr.catalog import catalog_location
    from sqlmr.config import load_settings
    return catalog_location(load_settings())
