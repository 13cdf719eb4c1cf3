"""``SELECT TRANSFORM (cols) USING 'command' AS (a, b INT) FROM …`` (Hive).

Each TRANSFORM query runs first as a job of its own: its map (or final)
tasks pipe their rows through the command (:mod:`runtime.transform`) and
write its output as tab-separated text into a scratch folder.  The query is
then replaced by ``SELECT a, b FROM <that folder as a table>``, so the rest
of the statement (GROUP BY over a derived table, CREATE TABLE AS) plans as
usual.  The command's files ship with the job: those named by ``ADD FILE``,
and any word of the command naming a file beside the query file or in the
current directory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
from dataclasses import dataclass

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.resolve import _start
from compiler.schema import Column, Table, normalize_type
from runtime import storage

NAME_PREFIX = "sqlmr_transform_"


@dataclass(frozen=True)
class ShippedFile:
    """A file a job's tasks receive (a TRANSFORM script), as a UDF's file is."""

    name: str      # what needs it, for messages
    file: str      # its name in the task's folder
    path: str
    sha256: str


def has_transform(tree: exp.Expression) -> bool:
    return tree.find(exp.QueryTransform) is not None


def output_columns(qt: exp.QueryTransform, sql: str) -> list[Column]:
    """The AS (…) columns: STRING unless typed."""
    schema = qt.args.get("schema")
    if not isinstance(schema, exp.Schema) or not schema.expressions:
        raise UnsupportedError("TRANSFORM without AS (column, …)", sql, _start(qt))
    cols = []
    for e in schema.expressions:
        if isinstance(e, exp.ColumnDef):
            kind = e.args.get("kind")
            try:
                typ = normalize_type(kind.sql(dialect="hive")) if kind is not None else "string"
            except ValueError as err:
                raise SqlError(str(err), sql, _start(e)) from None
            cols.append(Column(e.name, typ))
        else:
            cols.append(Column(e.name, "string"))
    names = [c.name.lower() for c in cols]
    if len(set(names)) != len(names):
        raise SqlError("TRANSFORM AS (…) names a column twice", sql, _start(schema))
    return cols


# words of a TRANSFORM command that name a script file (shipped, or an error)
SCRIPT_SUFFIXES = (".py", ".sh", ".pl", ".rb", ".awk", ".r", ".R", ".js")


def script_files(command: str, added: dict[str, str], base_dir: str | None,
                 sql: str) -> list[ShippedFile]:
    """The files the command's words name: ADD FILE ones, else files beside the
    query file (``base_dir``) or in the current directory."""
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise SqlError(f"TRANSFORM USING {command!r}: {e}", sql, 0) from None
    found: dict[str, str] = {}
    for w in words:
        name = os.path.basename(w)
        if name in added:
            found[name] = added[name]
            continue
        for folder in (base_dir, os.getcwd()):
            if folder and "/" not in w and os.path.isfile(os.path.join(folder, w)):
                found[name] = os.path.join(folder, w)
                break
        else:
            if "/" not in w and w.endswith(SCRIPT_SUFFIXES):   # a script the task would lack
                where = " or ".join(dict.fromkeys(f for f in (base_dir, os.getcwd()) if f))
                raise SqlError(f"TRANSFORM USING {command!r} names {w}, which is not beside "
                               f"the query ({where}) and was not added",
                               sql, max(0, sql.find(w)), f"ADD FILE 'path/to/{w}'; ships it "
                               "with the job")
    out = []
    for name, path in found.items():
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        out.append(ShippedFile(f"TRANSFORM USING {command!r}", name, os.path.abspath(path), sha))
    return out


def split(select: exp.Select, qt: exp.QueryTransform, sql: str) -> exp.Select:
    """The query whose rows feed the command: the TRANSFORM's inputs as columns."""
    if select.expressions != [qt]:
        raise UnsupportedError("TRANSFORM beside other columns of a SELECT", sql, _start(qt))
    for arg in ("group", "order", "limit", "distinct", "having", "sort", "cluster",
                "distribute", "windows"):
        if select.args.get(arg):
            raise UnsupportedError(f"{arg.upper()} in a TRANSFORM query (put the TRANSFORM "
                                   "in a derived table and the rest outside)", sql,
                                   _start(select.args[arg]) if isinstance(
                                       select.args[arg], exp.Expression) else 0)
    inner = select.copy()
    items = []
    for i, e in enumerate(qt.expressions):
        items.append(e.copy() if isinstance(e, exp.Star) else
                     exp.alias_(e.copy(), f"_col{i}", quoted=True))
    inner.set("expressions", items)
    return inner


def table_for(folder: str, columns: list[Column]) -> Table:
    """The command's output as a tab-separated text table (``\\N`` NULL)."""
    return Table(NAME_PREFIX + secrets.token_hex(4), columns, folder, "\t")


def replacement(table: Table) -> exp.Select:
    return exp.select(*[exp.column(exp.to_identifier(c.name, quoted=True))
                        for c in table.columns]).from_(table.name)


def innermost_first(tree: exp.Expression) -> list[exp.QueryTransform]:
    """TRANSFORMs of the tree, one nested in another's FROM coming first."""
    found = list(tree.find_all(exp.QueryTransform))
    return sorted(found, key=lambda q: -q.depth)


def remove_unaccepted(folder: str, accepted: set[str]) -> None:
    """Drop files of attempts the driver did not accept (retries, speculation)."""
    for uri, _ in storage.list_files(folder, {}):
        if uri not in accepted:
            storage.delete_prefix(uri)
