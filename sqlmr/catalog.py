"""The table catalog: built-in AMPLab tables plus the user's external tables.

One interface (:class:`Catalog`), two stores of the same JSON document:

* a local file, by default ``$SQLMR_HOME/catalog.json``, written atomically
  (temp file + rename, so a reader or a crash never sees half a catalog).  A
  change is a read-modify-write under an exclusive ``flock`` on
  ``catalog.json.lock`` beside it, re-reading the catalog once the lock is
  held, so two processes changing the catalog at once never lose each
  other's tables;
* an S3 object (``catalog = s3://bucket/prefix/``, or ``$SQLMR_CATALOG``), so
  machines and functions share it: see :mod:`sqlmr.catalog_s3` (conditional
  writes instead of a lock).

:func:`open_catalog` picks the store from the settings.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError, suggest
from compiler.resolve import _start
from compiler.schema import Column, Format, Table, normalize_type
from compiler.udfs import Udf
from runtime import storage
from sqlmr import config

RANKINGS = [("pageURL", "string"), ("pageRank", "int"), ("avgDuration", "int")]
USERVISITS = [("sourceIP", "string"), ("destURL", "string"), ("visitDate", "date"),
              ("adRevenue", "double"), ("userAgent", "string"), ("countryCode", "string"),
              ("languageCode", "string"), ("searchWord", "string"), ("duration", "int")]
DOCUMENTS = [("line", "string")]
# documents is one whole line a row: its delimiter is a character the crawl never holds
DOCUMENTS_DELIMITER = "\x01"


# A table name is an identifier: ASCII letters, digits and underscores, not
# starting with a digit, at most 128 characters (Hive's rule).  A managed
# table's folder is named after it, so a name can never be a path.
TABLE_NAME_RULE = ("a table name is letters, digits and underscores (ASCII), "
                   "not starting with a digit, at most 128 characters")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_table_name(name: str, sql: str | None = None, offset: int | None = None) -> str:
    """``name`` when it is a valid table name, else a :class:`SqlError` naming it.

    >>> check_table_name("page_views2")
    'page_views2'
    >>> check_table_name("../../escape")
    Traceback (most recent call last):
    ...
    compiler.errors.SqlError: table name '../../escape' is not an identifier: a table name is letters, digits and underscores (ASCII), not starting with a digit, at most 128 characters
    """
    if not isinstance(name, str) or _TABLE_NAME.fullmatch(name) is None:
        raise SqlError(f"table name {name!r} is not an identifier: {TABLE_NAME_RULE}", sql, offset)
    return name


def builtin_tables() -> dict[str, Table]:
    data = config.default_data_dir()
    return {
        "rankings": Table("rankings", [Column(n, t) for n, t in RANKINGS],
                          storage.to_uri(str(data / "rankings")), builtin=True),
        "uservisits": Table("uservisits", [Column(n, t) for n, t in USERVISITS],
                            storage.to_uri(str(data / "uservisits")), builtin=True),
        "documents": Table("documents", [Column(n, t) for n, t in DOCUMENTS],
                           storage.to_uri(str(data / "documents")), DOCUMENTS_DELIMITER,
                           builtin=True),
    }


CATALOG_VERSION = 1  # the catalog format this sqlmr reads and writes


class CatalogError(RuntimeError):
    """The catalog file cannot be used: the message names it and what is wrong."""


def _json_kind(value: object) -> str:
    """JSON's name for the type of a decoded value."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


T = TypeVar("T")
# A change to the catalog: given the user's tables and functions (changed in
# place), whether to save them, and what the change returns.
Change = Callable[[dict[str, Table], dict[str, Udf]], tuple[bool, T]]


def catalog_location(settings: "config.Settings | None" = None) -> str:
    """Where the catalog lives: the ``catalog`` setting, else
    ``$SQLMR_CATALOG``, else "" (``$SQLMR_HOME/catalog.json``)."""
    chosen = settings.catalog if settings is not None else ""
    return chosen or os.environ.get("SQLMR_CATALOG", "")


def open_catalog(settings: "config.Settings | None" = None) -> "Catalog":
    """The catalog the settings name: an S3 object for ``s3://…``, else a
    local file (the default, ``$SQLMR_HOME/catalog.json``)."""
    where = catalog_location(settings)
    if storage.is_s3(where):
        from sqlmr.catalog_s3 import S3Catalog
        return S3Catalog(where)
    if where:
        path = Path(storage.to_path(where) if where.startswith("file://") else where)
        return Catalog(path.expanduser())
    return Catalog()


class Catalog:
    """The catalog in a local file (:class:`sqlmr.catalog_s3.S3Catalog`
    keeps the same document in S3, with the same methods)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config.home() / "catalog.json"
        self.newer_version: int | None = None  # set when the file is of a newer format

    @property
    def where(self) -> str:
        """The catalog's place, as messages name it."""
        return str(self.path)

    # ------------------------------------------------------------ storage
    def _read_raw(self) -> bytes | None:
        """The catalog document as stored (None: there is none yet)."""
        if not self.path.exists():
            return None
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise self._damaged(f"cannot be read ({e.strerror or e})") from None

    def _load_user(self) -> dict[str, Table]:
        return self._parse_tables(self._read_raw())

    def _parse_tables(self, raw: bytes | None) -> dict[str, Table]:
        """The user's tables.  A catalog that cannot be read is a
        :class:`CatalogError` naming the file and what is wrong with it; one
        written by a newer sqlmr is read where its tables still make sense,
        and :meth:`_save_user` then refuses to replace it."""
        if raw is None:
            return {}
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._damaged("is not UTF-8 text (binary garbage?)") from None
        except json.JSONDecodeError as e:
            raise self._damaged(f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        if not isinstance(doc, dict):
            raise self._damaged(f"holds a JSON {_json_kind(doc)}, not an object with \"tables\"")
        version = doc.get("version", CATALOG_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._damaged(f"has version {version!r}, not a positive whole number")
        self.newer_version = version if version > CATALOG_VERSION else None
        tables = doc.get("tables", {})
        if not isinstance(tables, dict):
            raise self._damaged(f"has \"tables\" as a JSON {_json_kind(tables)}, not an object")
        out = {}
        for key, value in tables.items():
            try:
                if not isinstance(value, dict):
                    raise TypeError(f"a JSON {_json_kind(value)}, not an object")
                for field in ("name", "location"):
                    if field in value and not isinstance(value[field], str):
                        raise TypeError(f"its {field} is a JSON {_json_kind(value[field])}, "
                                        "not a string")
                out[key] = Table.from_dict(value)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                what = f"misses field {e}" if isinstance(e, KeyError) else f"is malformed ({e})"
                if self.newer_version is not None:
                    what += (f"; the file is version {self.newer_version}, written by a newer "
                             "sqlmr")
                raise self._damaged(f"has table entry {key!r} that {what}") from None
        return out

    def _load_functions(self) -> dict[str, Udf]:
        return self._parse_functions(self._read_raw())

    def _parse_functions(self, raw: bytes | None) -> dict[str, Udf]:
        """The permanent Python functions (CREATE FUNCTION), by lower-case name."""
        if raw is None:
            return {}
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._load_user()   # says what is wrong with the file (a subclass may not mind)
            return {}
        functions = doc.get("functions", {}) if isinstance(doc, dict) else {}
        try:
            return {k: Udf(**v) for k, v in functions.items()}
        except (TypeError, AttributeError) as e:
            raise self._damaged(f"has a malformed \"functions\" entry ({e})") from None

    def _damaged(self, problem: str) -> CatalogError:
        """The error for a catalog file that cannot be used, with what to do."""
        backup = self.backup_path()
        if backup.exists():
            todo = (f"the last good catalog is in {backup}: copy it over {self.path.name} "
                    f"to restore it")
        else:
            todo = "repair it, or move it away to start with an empty catalog"
        return CatalogError(f"the catalog {self.path} {problem}; {todo}")

    def backup_path(self) -> Path:
        """``catalog.json.bak``: the catalog as it was before its last change."""
        return self.path.with_name(self.path.name + ".bak")

    def _save_user(self, tables: dict[str, Table],
                   functions: dict[str, Udf] | None = None) -> None:
        """Replace the catalog file (call with :meth:`_locked` held, after
        :meth:`_load_user`).  The file it replaces is kept as
        ``catalog.json.bak``; a catalog of a newer version is never replaced."""
        self._refuse_newer()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._write_atomically(self.backup_path(), self.path.read_bytes())
        functions = self._load_functions() if functions is None else functions
        self._write_atomically(self.path, self._document(tables, functions))

    def _refuse_newer(self) -> None:
        newer = self.newer_version
        if newer is not None:
            raise CatalogError(f"the catalog {self.where} is version {newer}, written by a "
                               f"newer sqlmr (this one writes version {CATALOG_VERSION}); not "
                               "changing it: use the newer sqlmr for changes")

    @staticmethod
    def _document(tables: dict[str, Table], functions: dict[str, Udf]) -> bytes:
        """The catalog document (JSON) of these tables and functions."""
        doc: dict = {"version": CATALOG_VERSION,
                     "tables": {k: t.to_dict() for k, t in sorted(tables.items())}}
        if functions:
            doc["functions"] = {k: asdict(u) for k, u in sorted(functions.items())}
        return json.dumps(doc, indent=1).encode("utf-8")

    def _change(self, change: "Change[T]") -> T:
        """Apply ``change`` to the catalog as it is now, and save it when the
        change says so: under the lock, so no other writer's change is lost."""
        with self._locked():
            user = self._load_user()  # as it is now, with every other writer's change
            functions = self._load_functions()
            save, result = change(user, functions)
            if save:
                self._save_user(user, functions)
        return result

    def _write_atomically(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` by temp file and rename: a reader or a
        crash sees the old file or the new, never half of one."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # the new name never points at unwritten data
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive lock every catalog change takes: load, change and
        save inside it.  ``flock`` is released when the descriptor closes, also
        when the process dies, so a crashed writer never blocks the next."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -------------------------------------------------------------- reads
    def tables(self) -> dict[str, Table]:
        """All tables by lower-case name (user tables shadow nothing: names are unique)."""
        out = builtin_tables()
        for name, t in self._load_user().items():
            out[name] = t
        return out

    def get(self, name: str) -> Table:
        t = self.tables().get(name.lower())
        if t is None:
            raise SqlError(f"table '{name}' does not exist", None, None,
                           suggest(name, [t.name for t in self.tables().values()]))
        return t

    def functions(self) -> dict[str, Udf]:
        """The permanent Python functions by lower-case name."""
        return self._load_functions()

    # ------------------------------------------------------------- writes
    def create_function(self, udf: Udf, if_not_exists: bool = False) -> bool:
        """Register a permanent Python function (False: it existed, IF NOT EXISTS)."""
        def change(user: dict, functions: dict) -> tuple[bool, bool]:
            if udf.name in functions:
                if if_not_exists:
                    return False, False
                raise SqlError(f"function '{udf.name}' already exists",
                               hint="DROP FUNCTION it first")
            functions[udf.name] = udf
            return True, True
        return self._change(change)

    def drop_function(self, name: str, if_exists: bool = False) -> Udf | None:
        def change(user: dict, functions: dict) -> tuple[bool, Udf | None]:
            udf = functions.pop(name.lower(), None)
            if udf is None:
                if if_exists:
                    return False, None
                raise SqlError(f"function '{name}' does not exist",
                               hint=suggest(name, list(functions)))
            return True, udf
        return self._change(change)

    def create(self, table: Table, if_not_exists: bool = False, replace: bool = False) -> bool:
        """Register a table; returns False when it existed and IF NOT EXISTS was given."""
        key = check_table_name(table.name).lower()
        if key in builtin_tables():
            raise SqlError(f"'{table.name}' is a built-in table; choose another name")
        def change(user: dict, functions: dict) -> tuple[bool, bool]:
            if key in user and not replace:
                if if_not_exists:
                    return False, False
                raise SqlError(f"table '{table.name}' already exists",
                               hint="DROP TABLE it first, or use CREATE EXTERNAL TABLE IF NOT EXISTS")
            user[key] = table
            return True, True
        return self._change(change)

    def drop(self, name: str, if_exists: bool = False) -> Table | None:
        key = name.lower()
        if key in builtin_tables():
            raise SqlError(f"'{name}' is a built-in table and cannot be dropped")
        def change(user: dict, functions: dict) -> tuple[bool, Table | None]:
            if key not in user:
                if if_exists:
                    return False, None
                raise SqlError(f"table '{name}' does not exist",
                               hint=suggest(name, [t.name for t in [*builtin_tables().values(), *user.values()]]))
            return True, user.pop(key)
        return self._change(change)


# ------------------------------------------------------------------- DDL

_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\\\": "\\", "\\|": "|"}


def parse_delimiter(text: str) -> str:
    """Hive's FIELDS TERMINATED BY spelling to the character.

    >>> parse_delimiter(','), parse_delimiter('\\\\t'), parse_delimiter('\\\\001'), parse_delimiter('\\t')
    (',', '\\t', '\\x01', '\\t')
    """
    if text in _ESCAPES:
        return _ESCAPES[text]
    if len(text) == 4 and text[0] == "\\" and text[1:].isdigit():
        return chr(int(text[1:], 8))
    if len(text) != 1:
        raise ValueError(f"a field delimiter is one character, not {text!r}")
    return text


def table_from_create(create: exp.Create, sql: str, base_dir: str | None = None,
                      catalog: "Catalog | None" = None) -> Table:
    """A :class:`Table` from ``CREATE EXTERNAL TABLE … [ROW FORMAT …] [STORED AS …]
    LOCATION … [TBLPROPERTIES …]`` (formats: :func:`table_storage`); without a
    column list, from ``LIKE other`` or inferred from the files."""
    schema = create.this
    if not isinstance(schema, exp.Schema):
        return _table_without_columns(create, sql, base_dir, catalog or Catalog())
    name = schema.this.name
    if schema.this.args.get("db") is not None:
        raise UnsupportedError("database-qualified table names", sql, _start(schema.this))
    check_table_name(name, sql, _start(schema.this))
    columns = []
    seen = set()
    for cd in schema.expressions:
        if not isinstance(cd, exp.ColumnDef):
            raise UnsupportedError(f"table constraint {cd.sql()}", sql, _start(cd))
        kind = cd.args.get("kind")
        if kind is None:
            raise SqlError(f"column '{cd.name}' needs a type", sql, _start(cd))
        try:
            typ = normalize_type(kind.sql(dialect="hive"))
        except ValueError as e:
            raise SqlError(str(e), sql, _start(cd)) from None
        if cd.name.lower() in seen:
            raise SqlError(f"column '{cd.name}' is declared twice", sql, _start(cd))
        seen.add(cd.name.lower())
        columns.append(Column(cd.name, typ))
    props = create.args.get("properties")
    partition_columns = partitioned_by(props, {c.name.lower() for c in columns}, sql)
    delimiter, location, fmt = table_storage(props, sql, (exp.PartitionedByProperty,))
    if location is None:
        raise SqlError("CREATE EXTERNAL TABLE needs LOCATION 'folder | file:// | s3://…'",
                       sql, _start(create))
    return Table(name, columns, resolve_location(location, base_dir), delimiter,
                 format=fmt, partition_columns=partition_columns)


def partitioned_by(props: exp.Properties | None, data_columns: set[str],
                   sql: str) -> list[Column]:
    """The partition columns of ``PARTITIONED BY (dt STRING, …)``: typed, named
    apart from each other and from the data columns (``data_columns``, lower
    case), as Hive requires."""
    out: list[Column] = []
    for p in (props.expressions if props else []):
        if not isinstance(p, exp.PartitionedByProperty):
            continue
        items = p.this.expressions if isinstance(p.this, exp.Schema) else [p.this]
        for cd in items:
            if not isinstance(cd, exp.ColumnDef) or cd.args.get("kind") is None:
                name = cd.name if isinstance(cd, (exp.ColumnDef, exp.Identifier, exp.Column)) \
                    else cd.sql(dialect="hive")
                raise SqlError(f"partition column '{name}' needs a type, e.g. PARTITIONED BY "
                               f"({name} STRING)", sql, _start(cd))
            try:
                typ = normalize_type(cd.args["kind"].sql(dialect="hive"))
            except ValueError as e:
                raise SqlError(str(e), sql, _start(cd)) from None
            low = cd.name.lower()
            if low in data_columns:
                raise SqlError(f"partition column '{cd.name}' is also a data column; a "
                               "partition column's values come from folder names, so it "
                               "needs a name of its own", sql, _start(cd))
            if any(c.name.lower() == low for c in out):
                raise SqlError(f"partition column '{cd.name}' is declared twice", sql,
                               _start(cd))
            out.append(Column(cd.name, typ))
    return out


def _table_without_columns(create: exp.Create, sql: str, base_dir: str | None,
                           catalog: "Catalog") -> Table:
    """``CREATE TABLE t2 LIKE t LOCATION '…'`` (t's definition over other
    files), or ``CREATE EXTERNAL TABLE t [ROW FORMAT …] [STORED AS CSV|JSON|TEXTFILE]
    [TBLPROPERTIES ('skip.header.line.count'='1')] LOCATION '…'`` with the
    columns (and what is not given of the format) inferred from a sample."""
    target = create.this
    if not isinstance(target, exp.Table) or target.args.get("db") is not None:
        raise UnsupportedError("database-qualified table names", sql, _start(target))
    name = check_table_name(target.name, sql, _start(target))
    props = list(create.args["properties"].expressions) if create.args.get("properties") else []
    like = next((p for p in props if isinstance(p, exp.LikeProperty)), None)
    if like is not None:
        return _table_like(name, like, props, sql, base_dir, catalog)
    delimiter, location, fmt = table_storage(exp.Properties(expressions=props), sql)
    if location is None:
        raise SqlError("CREATE EXTERNAL TABLE without columns infers them from its files: "
                       "it needs LOCATION 'folder | file | glob | s3://…'", sql, _start(create))
    # what the statement fixes is kept; the rest is sniffed from a sample
    kind_given = any(isinstance(p, (exp.RowFormatSerdeProperty, exp.RowFormatDelimitedProperty))
                     or isinstance(p, exp.FileFormatProperty) and p.name != "" for p in props)
    header_given = any(type(p) is exp.Property and p.name.lower() == "skip.header.line.count"
                       for p in props)
    delimiter_given = any(
        isinstance(p, exp.RowFormatDelimitedProperty) and p.args.get("fields") is not None
        or isinstance(p, exp.RowFormatSerdeProperty) and any(
            q.name.lower() in ("separatorchar", "field.delim", "serialization.format")
            for q in (p.args["serde_properties"].expressions
                      if p.args.get("serde_properties") is not None else []))
        for p in props)
    if header_given and fmt.header_lines > 1:
        raise UnsupportedError(f"'skip.header.line.count'='{fmt.header_lines}' on a table whose "
                               "columns are inferred (0 or 1)", sql, _start(create))
    from sqlmr.files import Hints, infer_table
    hints = Hints(kind=fmt.kind if kind_given else None,
                  header=bool(fmt.header_lines) if header_given else None,
                  delimiter=delimiter if delimiter_given else None,
                  quote=fmt.quote if kind_given else None,
                  escape=fmt.escape, null=fmt.null if kind_given else None)
    try:
        return infer_table(name, resolve_location(location, base_dir), hints, location)
    except ValueError as e:
        at = next((_start(p) for p in props if isinstance(p, exp.LocationProperty)), None)
        raise SqlError(str(e), sql, at) from None


def _table_like(name: str, like: exp.LikeProperty, props: list, sql: str,
                base_dir: str | None, catalog: "Catalog") -> Table:
    """``CREATE [EXTERNAL] TABLE name LIKE other LOCATION '…'``: other's columns,
    format and partition columns over the files at LOCATION.  Without LOCATION
    it is refused: the copy would read other's own files (or a warehouse
    folder nothing writes)."""
    source = like.this
    try:
        original = catalog.get(source.name)
    except SqlError as e:
        raise SqlError(e.message, sql, _start(source), e.hint) from None
    location = None
    for p in props:
        if isinstance(p, exp.LocationProperty):
            location = p.this.name
        elif not isinstance(p, (exp.LikeProperty, exp.ExternalProperty)):
            raise UnsupportedError(f"{p.sql(dialect='hive')} with LIKE (LIKE copies the "
                                   "format too; give only LOCATION)", sql, _start(p))
    if location is None:
        raise SqlError(f"CREATE TABLE {name} LIKE {original.name} needs LOCATION '…': the "
                       f"new table reads its own files ({original.name} reads "
                       f"{original.location})", sql, _start(like))
    return Table(name, list(original.columns), resolve_location(location, base_dir),
                 original.delimiter, format=original.format,
                 partition_columns=list(original.partition_columns))


def resolve_location(location: str, base_dir: str | None = None) -> str:
    """A LOCATION as a URI: ``s3://`` and ``file://`` as given, a path relative
    to ``base_dir`` (default: the current directory)."""
    if not (storage.is_s3(location) or location.startswith("file://")):
        location = os.path.join(base_dir or os.getcwd(), os.path.expanduser(location))
    return storage.to_uri(location)


def warehouse_dir() -> Path:
    """The folder holding managed tables (CREATE TABLE AS without LOCATION)."""
    return config.home() / "warehouse"


def warehouse_location(name: str, root: str | None = None) -> str:
    """Where ``CREATE TABLE name AS SELECT`` writes when no LOCATION is given:
    ``$SQLMR_HOME/warehouse/<name>``, always a folder directly inside the
    warehouse (checked on the resolved path, so a symlink cannot lead out);
    ``root`` (the Lambda backend's ``s3://$SQLMR_BUCKET/sqlmr/warehouse/``):
    ``<root>/<name>`` instead.

    >>> warehouse_location("Sales", "s3://b/sqlmr/warehouse/")
    's3://b/sqlmr/warehouse/sales'
    """
    if root is not None:
        return storage.join(root, check_table_name(name).lower())
    folder = warehouse_dir() / check_table_name(name).lower()
    if not _is_managed_folder(str(folder), name):
        raise SqlError(f"the warehouse folder of table {name} ({folder}) resolves to "
                       f"{os.path.realpath(folder)}, outside the warehouse {warehouse_dir()}",
                       hint="remove that link, or give the table a LOCATION")
    return storage.to_uri(str(folder))


def _is_managed_folder(path: str, name: str) -> bool:
    """Whether ``path`` resolves to exactly ``<warehouse>/<name>``: the only
    folder sqlmr creates (and may delete) for a managed table."""
    if _TABLE_NAME.fullmatch(name) is None:
        return False
    want = os.path.join(os.path.realpath(warehouse_dir()), name.lower())
    return os.path.realpath(path) == want


_PART_FILE = re.compile(r"part-\d{5,}")
_S3_WAREHOUSE = re.compile(r"s3://[^/]+/sqlmr/warehouse/([a-z_][a-z0-9_]*)/?")


def delete_managed_files(table: Table) -> bool:
    """Delete the files of a dropped managed table; True when its folder is gone.

    Only what sqlmr created goes: the table must be managed (CREATE TABLE AS
    without LOCATION; an external table's files are never touched), its
    location must resolve to ``<warehouse>/<name>``, and within it only the
    ``part-NNNNN`` files a CREATE TABLE AS commits are deleted; the folder is
    removed when nothing else is left in it.  On S3 the location must be
    ``s3://<bucket>/sqlmr/warehouse/<name>`` and its ``part-NNNNN-<token>``
    files and ``_SUCCESS`` manifest are deleted (the manifest first: the files
    are never listed by a manifest that lost one)."""
    if not table.properties.get("managed"):
        return False
    if storage.is_s3(table.location):
        return _delete_managed_s3(table)
    path = storage.to_path(table.location)
    if not _is_managed_folder(path, table.name) or os.path.islink(path):
        return False
    if not os.path.isdir(path):
        return not os.path.exists(path)
    for entry in os.listdir(path):
        p = os.path.join(path, entry)
        if _PART_FILE.fullmatch(entry) and os.path.isfile(p) and not os.path.islink(p):
            os.unlink(p)
    try:
        os.rmdir(path)
    except OSError:  # something sqlmr did not write is in it: kept
        return False
    return True


def _delete_managed_s3(table: Table) -> bool:
    from runtime import s3
    m = _S3_WAREHOUSE.fullmatch(table.location)
    if m is None or m.group(1) != table.name.lower():
        return False
    bucket, key = s3.split_uri(table.location)
    prefix = key.rstrip("/") + "/"
    names = [o["Key"][len(prefix):] for o in s3._list(bucket, prefix, table.location)]
    ours = [n for n in names if n == storage.MARKER] + \
        [n for n in names if s3.COMMITTED_PART.fullmatch(n)]
    s3.delete_keys(table.location, ours)
    return len(ours) == len(names)


def storage_properties(props: exp.Properties | None, sql: str,
                       allowed: tuple = ()) -> tuple[str, str | None]:
    """(field delimiter, LOCATION or None) from the properties of a statement
    that writes delimited text (CREATE TABLE AS, INSERT OVERWRITE DIRECTORY):
    ROW FORMAT DELIMITED FIELDS TERMINATED BY, STORED AS TEXTFILE, LOCATION;
    any other format is refused."""
    delimiter, location, fmt, where = _table_storage(props, sql, allowed)
    if fmt != Format() and where is not None:
        raise UnsupportedError(f"{where.sql(dialect='hive')} when writing a table "
                               "(results are written as delimited text)", sql, _start(where))
    return delimiter, location


def table_storage(props: exp.Properties | None, sql: str,
                  allowed: tuple = ()) -> tuple[str, str | None, Format]:
    """(field delimiter, LOCATION or None, :class:`Format`) of CREATE EXTERNAL
    TABLE's properties:

    - ``ROW FORMAT DELIMITED FIELDS TERMINATED BY 'c' ESCAPED BY 'e' NULL
      DEFINED AS 'n' LINES TERMINATED BY '\\n'``, ``STORED AS TEXTFILE``;
    - ``ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde' [WITH
      SERDEPROPERTIES ('separatorChar'=…, 'quoteChar'=…, 'escapeChar'=…)]``,
      or ``STORED AS CSV``;
    - ``ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'`` (or Hive's
      JsonSerDe), ``STORED AS JSON`` / ``JSONFILE``;
    - ``TBLPROPERTIES ('skip.header.line.count'='N')``.

    >>> import sqlglot
    >>> q = "CREATE EXTERNAL TABLE t (a INT) STORED AS CSV LOCATION 'x' TBLPROPERTIES ('skip.header.line.count'='1')"
    >>> table_storage(sqlglot.parse_one(q, read="hive").args["properties"], q)
    (',', 'x', Format(kind='csv', header_lines=1, quote='"', escape=None, null='\\\\N'))
    """
    delimiter, location, fmt, _ = _table_storage(props, sql, allowed)
    return delimiter, location, fmt


def format_description(table: Table) -> str:
    """How DESCRIBE tells a table's format.

    >>> print(format_description(Table("t", [], "/d", "|", format=Format("csv", header_lines=1))))
    CSV, fields terminated by '|', quote '"', header lines 1
    >>> format_description(Table("t", [], "/d"))
    "fields terminated by ','"
    """
    fmt = table.format
    parts = [] if fmt.kind == "text" else [fmt.kind.upper()]
    if fmt.kind != "json":
        parts.append(f"fields terminated by {table.delimiter!r}")
    if fmt.kind == "csv":
        parts.append(f"quote {fmt.quote!r}")
    if fmt.escape is not None:
        parts.append(f"escaped by {fmt.escape!r}")
    if fmt.null != Format().null:
        parts.append(f"NULL defined as {fmt.null!r}")
    if fmt.header_lines:
        parts.append(f"header lines {fmt.header_lines}")
    return ", ".join(parts)


SERDE_KINDS = {
    "org.apache.hadoop.hive.serde2.opencsvserde": "csv",
    "org.openx.data.jsonserde.jsonserde": "json",
    "org.apache.hive.hcatalog.data.jsonserde": "json",
    "org.apache.hadoop.hive.serde2.jsonserde": "json",
    "org.apache.hadoop.hive.serde2.lazy.lazysimpleserde": "text",
}
STORED_KINDS = {"TEXTFILE": "text", "CSV": "csv", "JSON": "json", "JSONFILE": "json"}
# SERDEPROPERTIES sqlmr reads, by format: property -> Format field (or "delimiter")
SERDE_PROPERTIES = {
    "csv": {"separatorchar": "delimiter", "quotechar": "quote", "escapechar": "escape"},
    "text": {"field.delim": "delimiter", "serialization.format": "delimiter",
             "escape.delim": "escape", "serialization.null.format": "null"},
    "json": {},
}
# table properties that say nothing about how to read the files (Athena writes them)
IGNORED_TBLPROPERTIES = {"classification", "has_encrypted_data", "external"}


def _table_storage(props: exp.Properties | None, sql: str, allowed: tuple
                   ) -> tuple[str, str | None, Format, exp.Expression | None]:
    """:func:`table_storage`, and the property that set a format other than
    plain text (for a refusal)."""
    delimiter = ","
    location = None
    kind = None            # set by ROW FORMAT SERDE or STORED AS
    kind_from: exp.Expression | None = None
    fields: dict = {}      # Format fields set
    where: exp.Expression | None = None

    def one_char(node: exp.Expression, text: str, what: str) -> str:
        try:
            return parse_delimiter(text)
        except ValueError:
            raise SqlError(f"{what} is one character, not {text!r}", sql, _start(node)) from None

    def set_kind(k: str, node: exp.Expression) -> None:
        nonlocal kind, kind_from, where
        if kind is not None and k != kind:
            raise SqlError(f"{node.sql(dialect='hive')} reads {k} but "
                           f"{kind_from.sql(dialect='hive')} reads {kind}", sql, _start(node))
        kind, kind_from = k, node
        if k != "text":
            where = node

    for p in (props.expressions if props else []):
        if isinstance(p, allowed):
            continue
        if isinstance(p, exp.RowFormatDelimitedProperty):
            for key in ("collection_items", "map_keys"):
                if p.args.get(key) is not None:
                    raise UnsupportedError(f"ROW FORMAT DELIMITED … {key.upper().replace('_', ' ')}",
                                           sql, _start(p))
            lines = p.args.get("lines")
            if lines is not None and lines.name not in ("\n", "\\n"):
                raise UnsupportedError(f"LINES TERMINATED BY {lines.sql(dialect='hive')} "
                                       "(lines end with '\\n')", sql, _start(p))
            if p.args.get("fields") is not None:
                delimiter = one_char(p, p.args["fields"].name, "a field delimiter")
            if p.args.get("escaped") is not None:
                fields["escape"] = one_char(p, p.args["escaped"].name, "ESCAPED BY")
                where = where or p
            if p.args.get("null") is not None:
                fields["null"] = p.args["null"].name
                where = where or p
        elif isinstance(p, exp.RowFormatSerdeProperty):
            serde = p.this.name
            k = SERDE_KINDS.get(serde.lower())
            if k is None:
                raise UnsupportedError(f"ROW FORMAT SERDE '{serde}' (sqlmr reads OpenCSVSerde, "
                                       "JsonSerDe and LazySimpleSerDe)", sql, _start(p))
            set_kind(k, p)
            known = SERDE_PROPERTIES[k]
            sp = p.args.get("serde_properties")
            for prop in (sp.expressions if sp is not None else []):
                name = prop.this.name if isinstance(prop.this, exp.Expression) else str(prop.this)
                value = prop.args["value"].name
                target = known.get(name.lower())
                if target is None:
                    raise UnsupportedError(f"SERDEPROPERTIES '{name}' of {serde}", sql,
                                           _start(prop))
                if target == "delimiter":
                    delimiter = one_char(prop, value, f"'{name}'")
                elif target == "null":
                    fields["null"] = value
                    where = where or p
                else:
                    fields[target] = one_char(prop, value, f"'{name}'")
                    where = where or p
        elif isinstance(p, exp.LocationProperty):
            location = p.this.name
        elif isinstance(p, exp.ExternalProperty):
            pass
        elif isinstance(p, exp.FileFormatProperty):
            name = p.name.upper()
            if name == "":
                continue
            if name not in STORED_KINDS or not isinstance(p.this, exp.Var):
                raise UnsupportedError(f"STORED AS {p.this.sql(dialect='hive')} (sqlmr reads "
                                       "TEXTFILE, CSV and JSON)", sql, _start(p))
            set_kind(STORED_KINDS[name], p)
        elif isinstance(p, exp.Property) and isinstance(p.this, exp.Literal):
            key = p.this.name
            value = p.args["value"].name if p.args.get("value") is not None else ""
            if key.lower() == "skip.header.line.count":
                if not value.strip().isdigit():
                    raise SqlError(f"'skip.header.line.count' is a number of lines, not "
                                   f"{value!r}", sql, _start(p))
                fields["header_lines"] = int(value)
                where = where or p
            elif key.lower() not in IGNORED_TBLPROPERTIES:
                raise UnsupportedError(f"TBLPROPERTIES ('{key}'='{value}')", sql, _start(p))
        else:
            raise UnsupportedError(f"table property {p.sql(dialect='hive')}", sql, _start(p))
    kind = kind or "text"
    if kind == "json" and "escape" in fields:
        raise UnsupportedError("ESCAPED BY for JSON", sql, _start(where))
    if kind == "csv":   # CSV records are cut at byte level: one-byte characters
        for what, c in (("delimiter", delimiter), ("quote", fields.get("quote", '"')),
                        ("escape", fields.get("escape") or "")):
            if c and not c.isascii():
                raise UnsupportedError(f"a non-ASCII CSV {what} ({c!r})", sql, _start(where))
    fmt = Format(kind, **fields)
    return delimiter, location, fmt, where
