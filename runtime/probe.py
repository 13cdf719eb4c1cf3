"""The access probe: may this function's role read these objects?

The driver invokes the function with ``{"probe": [uri, ...]}`` after it granted
the role new table locations, until every answer is empty (IAM has applied the
grant) or its patience runs out.  Only objects on S3 are probed; a HEAD is all
it costs (s3:GetObject, the permission the tasks need).
"""

from __future__ import annotations

from runtime import s3, s3stats


def readable(uris: list[str]) -> dict[str, dict[str, str]]:
    """``{"probe": {uri: ""}}`` for the objects the role may read, ``"Code:
    message"`` for the others (a missing object is not a permission problem: "")."""
    from botocore.exceptions import BotoCoreError, ClientError

    out: dict[str, str] = {}
    requests0 = s3stats.snapshot()
    for uri in uris:
        bucket, key = s3.split_uri(uri)
        try:
            # through runtime.s3's retries: a 503 storm is waited out, not a denial
            s3._call(lambda: s3.client().head_object(Bucket=bucket, Key=key), uri, bucket,
                     translate=False, kind="head")
            out[uri] = ""
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound") or status == 404:
                out[uri] = ""
            else:
                out[uri] = f"{'AccessDenied' if status == 403 else code}: {e}"
        except (BotoCoreError, s3.StorageError) as e:
            out[uri] = f"{type(e).__name__}: {e}"
    return {"probe": out, "s3": s3stats.since(requests0)}
