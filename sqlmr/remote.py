"""The CLI's side of the serverless driver: submit a query to the driver function,
wait for it (Ctrl-C asks whether to cancel it), print its result; and
``sqlmr results [ID]``.

The driver is always invoked asynchronously (``InvocationType=Event``): the CLI
polls the query's ``status.json``, so a query outlives the CLI (``--detach``)
and a driver invocation that dies is retried by Lambda.  With
``SQLMR_LAMBDA_INVOKER=subprocess`` the driver's real package runs in a process
on this machine as the driver's role, and Lambda's retries of a failed
asynchronous invocation (two) are done here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import IO, Any

from sqlmr.aws.config import AwsSetupError, LambdaSettings, resolve_settings
from sqlmr.results_store import DONE, QueryStore, list_queries, new_query_id

POLL_S = 1.0
# Lambda retries a failed asynchronous invocation twice.
ASYNC_RETRIES = 2

CATALOG_HELP = ("--driver lambda needs the catalog in S3, where the driver function reads "
                "it: set catalog = s3://bucket/prefix/ in $SQLMR_HOME/config (or "
                "SQLMR_CATALOG=s3://bucket/prefix/)")


def _subprocess_mode() -> bool:
    return (os.environ.get("SQLMR_LAMBDA_INVOKER") or "").lower() == "subprocess"


class DriverClient:
    """Starts the deployed driver function asynchronously."""

    def __init__(self, ls: LambdaSettings) -> None:
        from sqlmr.aws import driver_function
        self.ls = ls
        self.conf = driver_function.find_driver(ls)
        self.threads: list[threading.Thread] = []
        self.invocations = 0
        self._sub: Any = None
        if _subprocess_mode():
            self._sub = self._subprocess_invoker()

    def _subprocess_invoker(self):
        import shutil
        import tempfile
        import weakref

        from sqlmr.aws import deploy, driver_function, invoker
        aws = deploy._Aws(self.ls)
        role = self.conf["role"]
        driver_function._trust(aws, role.rsplit("/", 1)[1], [deploy.caller_principal(aws)])
        env = dict(self.conf["environment"])
        home = tempfile.mkdtemp(prefix="sqlmr-driver-home-")
        # the local stand-in's home goes with the client (a real driver's is /tmp on Lambda)
        weakref.finalize(self, shutil.rmtree, home, True)
        env.update({"SQLMR_LAMBDA_INVOKER": "subprocess",
                    "SQLMR_HOME": home,
                    "SQLMR_WORKER_ROLE_ARN": aws.iam.get_role(
                        RoleName=self.ls.role_name)["Role"]["Arn"]})
        for name in ("SQLMR_DRIVER_TEST_EXIT_AFTER_CHECKPOINT", "SQLMR_DRIVER_RESERVE_S",
                     "SQLMR_DRIVER_TIMEOUT_S"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        return invoker.SubprocessInvoker(
            timeout_s=900, package_dir=driver_function.extract_package(),
            handler=driver_function.HANDLER, function_name=self.conf["name"],
            role_arn=role, environment=env)

    def start(self, event: dict) -> None:
        """Invoke the driver with ``event`` and return at once."""
        if self._sub is None:
            import boto3
            boto3.session.Session(region_name=self.conf["region"]).client("lambda").invoke(
                FunctionName=self.conf["name"], InvocationType="Event",
                Payload=json.dumps(event).encode("utf-8"))
            self.invocations += 1
            return
        self._sub.use_role(self.conf["role"], self.conf["region"])

        def run() -> None:
            for _ in range(1 + ASYNC_RETRIES):
                self.invocations += 1
                r = self._sub.invoke(event)
                if not r.function_error:
                    return
        t = threading.Thread(target=run, name="sqlmr-driver", daemon=True)
        t.start()
        self.threads.append(t)


def check_catalog(catalog: str) -> None:
    if not catalog.startswith("s3://"):
        raise AwsSetupError(CATALOG_HELP)


def submit(script: str, settings, client: DriverClient | None = None) -> tuple[str, DriverClient]:
    """Send ``script`` to the driver function; the query id (and the client)."""
    from sqlmr.catalog import catalog_location
    from sqlmr.driver_handler import CLIENT_SETTINGS
    catalog = catalog_location(settings)
    check_catalog(catalog)
    ls = resolve_settings({})
    client = client or DriverClient(ls)
    qid = new_query_id()
    QueryStore(ls.bucket, qid).set_status("queued", statement=script)
    client.start({"query_id": qid, "statements": script, "catalog": catalog,
                  "settings": {k: getattr(settings, k) for k in CLIENT_SETTINGS}})
    return qid, client


def wait(store: QueryStore, err: IO[str], ask: Any = None) -> dict:
    """Poll until the query is over; on Ctrl-C ask whether to cancel it."""
    ask = ask or (lambda prompt: input(prompt))
    while True:
        try:
            st = store.status() or {}
            if st.get("state") in DONE:
                return st
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            try:
                answer = ask(f"\ncancel the remote query {store.query_id}? [y/N] ")
            except (KeyboardInterrupt, EOFError):
                answer = "n"
            if str(answer).strip().lower().startswith("y"):
                store.request_cancel()
                print(f"sqlmr: cancel requested for {store.query_id}", file=err)
            else:
                print(f"sqlmr: the query goes on; see it with: sqlmr results {store.query_id}",
                      file=err)
                return store.status() or {}


def print_query(store: QueryStore, settings, out: IO[str], err: IO[str]) -> int:
    """Print a finished query's result as the local driver would; exit status."""
    from sqlmr.cli import print_result
    from sqlmr.session import StatementResult
    st = store.status() or {}
    state = st.get("state")
    if state != "succeeded":
        what = st.get("error") or st.get("note") or ""
        print(f"sqlmr: query {store.query_id} {state or 'not found'}"
              + (f": {what}" if what else ""), file=err)
        return 0 if state in ("queued", "running") else 1
    stats = store.stats() or {}
    for msg in stats.get("messages", []):
        print(msg, file=err)
    if "columns" in stats:
        columns, rows = store.rows(stats.get("types"))
        res = StatementResult(kind="rows", columns=columns, types=stats.get("types") or [],
                              rows=rows, total_rows=len(rows))
        quiet = settings.updated(timing=False)
        print_result(res, quiet, None, out, err)
        if settings.timing:
            for line in stats.get("summary", []):
                print(line, file=err if settings.format in ("csv", "json")
                      or not out.isatty() else out)
    print(f"result: {store.uri('result.csv')}", file=err)
    return 0


def run_cli(script: str, settings, detach: bool, out: IO[str] | None = None,
            err: IO[str] | None = None) -> int:
    """``sqlmr --driver lambda``: submit, then wait and print (or print the id)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        qid, client = submit(script, settings)
    except AwsSetupError as e:
        print(f"sqlmr: {e}", file=err)
        return 2
    store = QueryStore(client.ls.bucket, qid)
    if detach:
        print(qid, file=out)
        print(f"sqlmr: started {qid}; see it with: sqlmr results {qid}", file=err)
        return 0
    print(f"sqlmr: query {qid} runs on {client.conf['name']}", file=err)
    st = wait(store, err)
    if st.get("state") not in DONE:
        return 130
    return print_query(store, settings, out, err)


def add_results_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query_id", nargs="?", metavar="ID",
                   help="a query's id (or SCHEDULE/TIMESTAMP); none: list the queries")
    p.add_argument("--status", action="store_true", help="show the status only")
    p.add_argument("--wait", action="store_true", help="wait until the query is over")
    p.add_argument("--cancel", action="store_true", help="ask the driver to cancel the query")


def results_main(args: argparse.Namespace, out: IO[str] | None = None,
                 err: IO[str] | None = None) -> int:
    """``sqlmr results [ID]``."""
    from sqlmr.config import load_settings
    out, err = out or sys.stdout, err or sys.stderr
    try:
        ls = resolve_settings({})
        if not ls.bucket:
            raise AwsSetupError("set SQLMR_BUCKET (the job bucket the driver writes results to)")
        settings = load_settings()
        if not args.query_id:
            for st in list_queries(ls.bucket):
                print(f"{st.get('query_id')}\t{st.get('state')}\t{st.get('submitted', '')}\t"
                      f"{' '.join(str(st.get('statement', '')).split())[:60]}", file=out)
            return 0
        store = QueryStore(ls.bucket, args.query_id)
        if args.cancel:
            store.request_cancel()
            print(f"cancel requested for {args.query_id}", file=out)
            return 0
        if args.wait:
            wait(store, err)
        st = store.status()
        if st is None:
            print(f"sqlmr results: no query {args.query_id} in s3://{ls.bucket}/sqlmr/results/",
                  file=err)
            return 1
        if args.status:
            print(json.dumps(st, indent=1), file=out)
            return 0
        return print_query(store, settings, out, err)
    except (AwsSetupError, ValueError) as e:
        print(f"sqlmr results: {e}", file=err)
        return 2
