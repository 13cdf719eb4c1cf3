"""Where the serverless driver leaves a query's result, and how it is read back.

Under ``s3://$SQLMR_BUCKET/sqlmr/results/<query-id>/`` (a scheduled run's id is
``<schedule>/<timestamp>``):

* ``status.json`` — ``{"query_id", "state", "statement", "submitted", "updated",
  "error"}``; state is ``queued``, ``running``, ``succeeded``, ``failed`` or
  ``cancelled``;
* ``result.csv`` — the last query's rows, a header line first (NULL as an empty field);
* ``stats.json`` — columns, types, row count, messages, the statistics summary lines;
* ``cancel`` — a marker the CLI writes to cancel; the driver checks it between
  task launches;
* ``checkpoint.json`` — the task results of every finished stage, so a driver
  that stopped (or died) is continued without running them again.

>>> result_prefix("b", "q-1"), valid_query_id("nightly/20261202T030000Z"), valid_query_id("../x")
('s3://b/sqlmr/results/q-1/', True, False)
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
from typing import Any


RESULTS_PREFIX = "sqlmr/results/"
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
DONE = ("succeeded", "failed", "cancelled")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._:-]*)?$")


def new_query_id() -> str:
    return "q-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def valid_query_id(qid: str) -> bool:
    return bool(_ID.match(qid or "")) and ".." not in qid


def result_prefix(bucket: str, query_id: str) -> str:
    return f"s3://{bucket}/{RESULTS_PREFIX}{query_id}/"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_client: Any = None


def _s3():
    global _client
    if _client is None:
        import boto3
        _client = boto3.session.Session().client("s3")
    return _client


def reset_client() -> None:
    """Forget the S3 client (its credentials and endpoint): tests switch accounts."""
    global _client
    _client = None


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def read_bytes(uri: str) -> bytes | None:
    """The object's bytes, None when there is no such object."""
    from botocore.exceptions import ClientError
    bucket, key = _split(uri)
    try:
        return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def write_bytes(uri: str, data: bytes) -> None:
    bucket, key = _split(uri)
    _s3().put_object(Bucket=bucket, Key=key, Body=data)


def _read_json(uri: str) -> Any | None:
    data = read_bytes(uri)
    return None if data is None else json.loads(data)


def write_json(uri: str, doc: Any) -> None:
    write_bytes(uri, json.dumps(doc, indent=1, default=str).encode("utf-8"))


class QueryStore:
    """One query's objects under its results prefix."""

    def __init__(self, bucket: str, query_id: str) -> None:
        if not valid_query_id(query_id):
            raise ValueError(f"not a query id: {query_id!r}")
        self.bucket = bucket
        self.query_id = query_id
        self.prefix = result_prefix(bucket, query_id)

    def uri(self, name: str) -> str:
        return self.prefix + name

    def status(self) -> dict | None:
        return _read_json(self.uri("status.json"))

    def set_status(self, state: str, **fields: Any) -> dict:
        doc = dict(self.status() or {"query_id": self.query_id, "submitted": _now()})
        doc.update(fields, state=state, updated=_now())
        write_json(self.uri("status.json"), doc)
        return doc

    def cancel_requested(self) -> bool:
        return read_bytes(self.uri("cancel")) is not None

    def request_cancel(self) -> None:
        write_json(self.uri("cancel"), {"requested": _now()})

    def checkpoint(self) -> dict | None:
        return _read_json(self.uri("checkpoint.json"))

    def save_checkpoint(self, doc: dict) -> None:
        write_json(self.uri("checkpoint.json"), doc)

    def write_result(self, columns: list[str], rows, types: list) -> int:
        from sqlmr.writers import write_delimited
        buf = io.StringIO()
        n = write_delimited(list(columns), rows, buf)
        write_bytes(self.uri("result.csv"), buf.getvalue().encode("utf-8"))
        return n

    def write_stats(self, doc: dict) -> None:
        write_json(self.uri("stats.json"), doc)

    def stats(self) -> dict | None:
        return _read_json(self.uri("stats.json"))

    def rows(self, types: list | None = None) -> tuple[list[str], list[list]]:
        """The result's columns and rows, values typed back by ``types``."""
        text = (read_bytes(self.uri("result.csv")) or b"").decode("utf-8")
        reader = csv.reader(io.StringIO(text))
        columns = next(reader, [])
        types = list(types or [None] * len(columns))
        return columns, [[typed(v, t) for v, t in zip(r, types)] for r in reader]


def typed(text: str, sql_type: str | None) -> Any:
    """A CSV field as the value of its column's type (empty: NULL).

    >>> typed("3", "bigint"), typed("2.5", "double"), typed("true", "boolean"), typed("", "string")
    (3, 2.5, True, None)
    """
    if text == "":
        return None
    t = (sql_type or "").lower()
    try:
        if t in ("bigint", "int", "integer", "smallint", "tinyint", "long"):
            return int(text)
        if t in ("double", "float", "real") or t.startswith("decimal"):
            return float(text)
    except ValueError:
        return text
    if t in ("boolean", "bool"):
        return text == "true"
    return text


def list_queries(bucket: str) -> list[dict]:
    """The status of every query under the results prefix (newest first)."""
    out = []
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                               Prefix=RESULTS_PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/status.json"):
                doc = _read_json(f"s3://{bucket}/{obj['Key']}")
                if doc:
                    out.append(doc)
    out.sort(key=lambda d: d.get("submitted", ""), reverse=True)
    return out
