"""The catalog as an S3 object (``catalog = s3://bucket/prefix/``, or
``$SQLMR_CATALOG``), so every machine and function pointed at it sees the
same tables.

The document is the local catalog's (``<prefix>/catalog.json``); only the
concurrency differs.  There is no lock: a change is optimistic.  It reads the
object and its ETag, applies the change, and writes the new document with a
conditional PutObject, ``If-Match: <ETag read>`` (``If-None-Match: *`` when
there was no catalog yet).  S3 refuses the write (412 Precondition Failed, or
409 ConditionalRequestConflict while another conditional write is in flight)
when someone else changed the catalog since it was read; the change is then
applied again to the catalog as it now is and written again, with a jittered
backoff, a bounded number of times.  So two writers never lose each other's
tables, and a change that no longer applies (the table now exists) fails as
it would have under the local file's lock.  Before each change the document
it replaces is copied to ``<prefix>/catalog.json.bak``.

>>> S3Catalog("s3://b/team/").where, S3Catalog("s3://b").where
('s3://b/team/catalog.json', 's3://b/catalog.json')
"""

from __future__ import annotations

import random
import time
from typing import Callable

from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

from runtime import s3
from sqlmr.catalog import Catalog, CatalogError, Change, T

# Conflicting writers: how often a change is tried before giving up.
MAX_ATTEMPTS = 25
BACKOFF_BASE = 0.02
BACKOFF_CAP = 1.0
_sleep: Callable[[float], None] = time.sleep

WHERE_TO_SET = ("the catalog setting (catalog = s3://bucket/prefix/ in $SQLMR_HOME/config) or "
                "SQLMR_CATALOG; leave both unset for the local catalog")


class S3Catalog(Catalog):
    """:class:`sqlmr.catalog.Catalog` with its document in S3."""

    def __init__(self, uri: str) -> None:
        key_uri = uri if uri.endswith(".json") else uri.rstrip("/") + "/catalog.json"
        self.bucket, self.key = s3.split_uri(key_uri)
        self.object_uri = f"s3://{self.bucket}/{self.key}"
        self.newer_version = None
        self.conflicts = 0   # conditional writes refused (another writer was first)

    @property
    def where(self) -> str:
        return self.object_uri

    def backup_uri(self) -> str:
        return self.object_uri + ".bak"

    # ------------------------------------------------------------ requests
    def _error(self, e: BaseException, doing: str) -> CatalogError:
        """A catalog error saying what to fix, for an S3 request that failed."""
        where = f"the catalog {self.object_uri}"
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return CatalogError(f"{where} cannot be {doing}: no usable AWS credentials; "
                                f"{s3.CREDENTIALS_HELP} (the catalog's place is {WHERE_TO_SET})")
        if isinstance(e, ClientError):
            code = s3._error_code(e)
            if code == "NoSuchBucket":
                return CatalogError(f"{where} cannot be {doing}: S3 bucket {self.bucket!r} does "
                                    f"not exist; create it, or name a bucket you own in "
                                    f"{WHERE_TO_SET}")
            if code in s3._CREDENTIAL_CODES:
                return CatalogError(f"{where} cannot be {doing}: AWS rejected the credentials "
                                    f"({code}); {s3.CREDENTIALS_HELP}")
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return CatalogError(f"{where} cannot be {doing}: access denied; the AWS identity "
                                    f"in use needs s3:GetObject and s3:PutObject on it")
        if isinstance(e, s3.StorageError):  # credentials, or S3 failing on every retry
            return CatalogError(f"{where} cannot be {doing}: {e} (the catalog's place is "
                                f"{WHERE_TO_SET})")
        return CatalogError(f"{where} cannot be {doing}: {e}")

    def _get(self) -> tuple[bytes | None, str | None]:
        """The document and its ETag; (None, None) when there is no catalog yet."""
        try:
            resp = s3._call(lambda: s3.client().get_object(Bucket=self.bucket, Key=self.key),
                            self.object_uri, self.bucket, translate=False)
            with resp["Body"] as body:
                return body.read(), resp["ETag"]
        except ClientError as e:
            if s3._error_code(e) in ("NoSuchKey", "404", "NotFound"):
                return None, None
            raise self._error(e, "read") from None
        except (NoCredentialsError, PartialCredentialsError, s3.StorageError) as e:
            raise self._error(e, "read") from None

    def _put(self, key: str, data: bytes, **condition: str) -> bool:
        """PutObject; False when S3 refuses it for its condition (someone
        else wrote the catalog since it was read)."""
        try:
            s3._call(lambda: s3.client().put_object(Bucket=self.bucket, Key=key, Body=data,
                                                    ContentType="application/json",
                                                    **condition),
                     f"s3://{self.bucket}/{key}", self.bucket, translate=False)
            return True
        except ClientError as e:
            code = s3._error_code(e)
            if condition and (code in ("PreconditionFailed", "ConditionalRequestConflict")
                              or s3._status(e) in (409, 412)):
                return False
            raise self._error(e, "written") from None
        except (NoCredentialsError, PartialCredentialsError, s3.StorageError) as e:
            raise self._error(e, "written") from None

    # ------------------------------------------------------------- storage
    def _read_raw(self) -> bytes | None:
        return self._get()[0]

    def _damaged(self, problem: str) -> CatalogError:
        return CatalogError(f"the catalog {self.object_uri} {problem}; the catalog before its "
                            f"last change is {self.backup_uri()} (if it exists): copy it over "
                            f"the catalog to restore it, or repair it")

    def _change(self, change: "Change[T]") -> T:
        """Read, apply, conditionally write; on a conflict, again from the read."""
        for attempt in range(MAX_ATTEMPTS):
            raw, etag = self._get()
            user = self._parse_tables(raw)
            functions = self._parse_functions(raw)
            save, result = change(user, functions)
            if not save:
                return result
            self._refuse_newer()
            if raw is not None:
                self._put(self.key + ".bak", raw)
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            if self._put(self.key, self._document(user, functions), **condition):
                return result
            self.conflicts += 1
            _sleep(random.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))
        raise CatalogError(f"the catalog {self.object_uri} kept changing under this change "
                           f"({MAX_ATTEMPTS} conditional writes refused); try again")

    def _save_user(self, tables, functions=None) -> None:  # pragma: no cover - by _change only
        raise AssertionError("an S3 catalog is written by _change")

    def _locked(self):  # pragma: no cover - no lock: conditional writes
        raise AssertionError("an S3 catalog takes no lock")
