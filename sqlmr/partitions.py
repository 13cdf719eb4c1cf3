"""A partitioned table's partitions, found by listing its location.

Hive lays a table partitioned by ``(dt, country)`` out as folders
``<location>/dt=2024-01-01/country=US/…``.  sqlmr keeps no list of partitions:
each query (and ``SHOW PARTITIONS`` / ``MSCK REPAIR TABLE``) lists the
location and reads the partitions off the folder names:

- a partition is a path of ``name=value`` folders, one per partition column
  in the declared order (names compared case-insensitively), holding at least
  one file, directly or in sub-folders;
- values are unescaped as Hive escapes them (``%3A`` is ``:``; a ``%XX`` run
  is read as UTF-8), and ``__HIVE_DEFAULT_PARTITION__`` (or an empty value)
  is NULL; a value that does not parse as its column's type is NULL, as
  Hive's reader makes it (:func:`runtime.sqlfuncs.partition_value`);
- a file not under a full partition path is not part of the table, and
  names starting with ``_`` or ``.`` are skipped as everywhere.

>>> files = [("file:///d/dt=2024-01-02/c=A%253AB/f", 5), ("file:///d/dt=2024-01-01/c=US/f", 7),
...          ("file:///d/dt=2024-01-01/stray", 3), ("file:///d/DT=__HIVE_DEFAULT_PARTITION__/c=x/f", 2)]
>>> cols = [Column("dt", "date"), Column("c", "string")]
>>> found = partitions_of("file:///d", cols, files)
>>> [(p.name, p.values, p.bytes) for p in found.partitions], found.ignored
([('dt=2024-01-01/c=US', ['2024-01-01', 'US'], 7), ('dt=2024-01-02/c=A%3AB', ['2024-01-02', 'A:B'], 5), ('dt=__HIVE_DEFAULT_PARTITION__/c=x', [None, 'x'], 2)], 1)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from compiler.errors import SqlError
from compiler.schema import Column
from compiler.sizes import size_text
from runtime import storage

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def unescape(text: str) -> str:
    """A folder name's text as Hive escaped it (FileUtils.escapePathName):
    ``%XX`` is the byte XX (runs read as UTF-8); nothing else changes.

    >>> unescape("A%3AB%2Fc+d%"), unescape("M%C3%BCnchen")
    ('A:B/c+d%', 'München')
    """
    return unquote(text) if "%" in text else text


@dataclass
class Partition:
    name: str                          # dt=2024-01-01/country=US, spelt as the folders are
    values: list[str | None]           # unescaped text per column; None: NULL
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.files)


@dataclass
class Partitions:
    partitions: list[Partition]        # sorted by name
    ignored: int = 0                   # files outside any full partition path

    @property
    def files(self) -> list[tuple[str, int]]:
        return [f for p in self.partitions for f in p.files]

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


def partition_path(folders: list[str], columns: list[Column]) -> tuple[str, list] | None:
    """(partition name, values) of the folders a file is in, or None when
    they do not start with one ``name=value`` folder per partition column.

    >>> partition_path(["Year=2024", "c=%5F"], [Column("year", "int"), Column("c", "string")])
    ('year=2024/c=%5F', ['2024', '_'])
    >>> partition_path(["c=x", "year=1"], [Column("year", "int"), Column("c", "string")]) is None
    True
    """
    if len(folders) < len(columns):
        return None
    names, values = [], []
    for folder, col in zip(folders, columns):
        key, eq, value = folder.partition("=")
        if not eq or unescape(key).lower() != col.name.lower():
            return None
        text = unescape(value)
        values.append(None if text in (DEFAULT_PARTITION, "") else text)
        names.append(f"{col.name.lower()}={value}")
    return "/".join(names), values


def _relative(location: str, uri: str) -> list[str] | None:
    """The path parts of ``uri`` below ``location``."""
    if storage.is_s3(location):
        prefix = location.rstrip("/") + "/"
        return uri[len(prefix):].split("/") if uri.startswith(prefix) else None
    rel = os.path.relpath(storage.to_path(uri), storage.to_path(location))
    return None if rel.startswith("..") else rel.split(os.sep)


def partitions_of(location: str, columns: list[Column],
                  files: list[tuple[str, int]]) -> Partitions:
    """The partitions the listed ``files`` of a table at ``location`` make up."""
    found: dict[str, Partition] = {}
    ignored = 0
    for uri, size in files:
        parts = _relative(location, uri)
        where = partition_path(parts[:-1], columns) if parts else None
        if where is None:
            ignored += 1
            continue
        name, values = where
        found.setdefault(name, Partition(name, values)).files.append((uri, size))
    return Partitions(sorted(found.values(), key=lambda p: p.name), ignored)


def list_partitions(table, list_files) -> Partitions:
    """The partitions of ``table`` now (``list_files(table)``: its files)."""
    return partitions_of(table.location, table.partition_columns, list_files(table))


_STATEMENT = re.compile(r"\s*(?:(SHOW)\s+PARTITIONS|MSCK\s+(?:REPAIR\s+)?TABLE)\s+"
                        r"([`\"]?)(\w+)\2\s*;?\s*$", re.I)


def parse_statement(text: str) -> tuple[str, str, int]:
    """``("show" | "repair", table name, its offset)`` of ``SHOW PARTITIONS t``
    or ``MSCK [REPAIR] TABLE t``.

    >>> parse_statement("show partitions uv"), parse_statement("MSCK REPAIR TABLE `uv`")
    (('show', 'uv', 16), ('repair', 'uv', 19))
    """
    m = _STATEMENT.match(text)
    if m is None:
        lead = len(text) - len(text.lstrip())
        if text.lstrip()[:4].upper() == "MSCK":
            raise SqlError("usage: MSCK [REPAIR] TABLE table_name (ADD / DROP / SYNC "
                           "PARTITIONS are not needed: partitions are found at query time)",
                           text, lead)
        raise SqlError("usage: SHOW PARTITIONS table_name (a PARTITION (…) filter is not "
                       "supported yet: use SELECT DISTINCT over the partition columns)",
                       text, lead)
    return ("show" if m.group(1) else "repair"), m.group(3), m.start(3)


MSCK_SHOWN = 20  # partitions MSCK REPAIR TABLE names (SHOW PARTITIONS lists them all)


def repair_message(table, found: Partitions) -> str:
    """What ``MSCK REPAIR TABLE`` says: the partitions a query would read now."""
    n = len(found.partitions)
    msg = (f"table {table.name}: {n} partition{'s' if n != 1 else ''} "
           f"({len(found.files)} file{'s' if len(found.files) != 1 else ''}, "
           f"{size_text(found.bytes)}) under {table.location}")
    if found.ignored:
        msg += (f"; {found.ignored} file{'s' if found.ignored != 1 else ''} outside "
                f"{'/'.join(c.name.lower() + '=…' for c in table.partition_columns)} folders "
                "ignored")
    lines = [msg + (":" if n else ".")] + [f"  {p.name}" for p in found.partitions[:MSCK_SHOWN]]
    if n > MSCK_SHOWN:
        lines.append(f"  … and {n - MSCK_SHOWN} more (SHOW PARTITIONS {table.name} lists them all)")
    lines.append("Nothing to record: sqlmr finds a table's partitions each time a query runs.")
    return "\n".join(lines)
