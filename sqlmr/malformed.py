"""What malformed rows look like, and the DDL that would read them.

Tasks count, per table, the malformed rows, those that are the first line of
a file and those holding a double quote (``malformed_rows:<table>`` … in the
job's counters).  When most of a table's malformed rows are first lines of
files, or a malformed first line holds the column names, the files likely
start with a header line; when most hold quotes, a
text table is likely reading quoted CSV.  The warning then says so and shows
the CREATE statement that would read the files.

>>> from compiler.schema import Column, Table
>>> t = Table("visits", [Column("ip", "string"), Column("n", "int")], "file:///d")
>>> counters = {"malformed_rows:visits": 3, "malformed_first_lines:visits": 3}
>>> print(malformed_hints(counters, "ip,n", {"visits": t})[0])
Warning: 3 malformed rows of visits are the first line of a file, as a header line is (its fields are the column names: 'ip,n'); this DDL skips it:
  CREATE EXTERNAL TABLE visits (ip STRING, n INT) ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' LOCATION 'file:///d' TBLPROPERTIES ('skip.header.line.count'='1')
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from compiler.schema import Format, Table
from sqlmr.render import plural


def _sql_char(c: str) -> str:
    """A one-character delimiter as Hive DDL spells it."""
    if c == "\t":
        return "\\t"
    if c == "'":
        return "\\'"
    if c == "\\":
        return "\\\\"
    if not c.isprintable():
        return f"\\{ord(c):03o}"
    return c


def table_ddl(table: Table) -> str:
    """The CREATE EXTERNAL TABLE statement of ``table`` (one line).

    >>> from compiler.schema import Column
    >>> print(table_ddl(Table("t", [Column("a", "string")], "/d", "|", format=Format("csv", header_lines=1))))
    CREATE EXTERNAL TABLE t (a STRING) ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' STORED AS CSV LOCATION '/d' TBLPROPERTIES ('skip.header.line.count'='1')
    """
    fmt = table.format
    cols = ", ".join(f"{c.name} {c.type.upper()}" for c in table.columns)
    parts = [f"CREATE EXTERNAL TABLE {table.name} ({cols})"]
    if fmt.kind != "json":
        row = f"ROW FORMAT DELIMITED FIELDS TERMINATED BY '{_sql_char(table.delimiter)}'"
        if fmt.escape is not None:
            row += f" ESCAPED BY '{_sql_char(fmt.escape)}'"
        if fmt.null != Format().null:
            row += " NULL DEFINED AS '" + fmt.null.replace("'", "\\'") + "'"
        parts.append(row)
    if fmt.kind != "text":
        parts.append(f"STORED AS {fmt.kind.upper()}")
    parts.append("LOCATION '" + table.location.replace("'", "\\'") + "'")
    if fmt.header_lines:
        parts.append(f"TBLPROPERTIES ('skip.header.line.count'='{fmt.header_lines}')")
    return " ".join(parts)


def _looks_like_names(line: str, table: Table) -> bool:
    """Whether most fields of ``line`` are the table's column names."""
    try:
        fields = next(csv.reader(io.StringIO(line), delimiter=table.delimiter), [])
    except csv.Error:
        fields = line.split(table.delimiter)
    names = {c.name.lower() for c in table.columns}
    hits = sum(f.strip().strip('"').lower() in names for f in fields)
    return hits * 2 >= max(1, len(table.columns))


def malformed_hints(counters: dict, first_line: str, tables: dict[str, Table]) -> list[str]:
    """Warnings for tables whose malformed rows look like header lines or
    quoted CSV, each with the DDL that would read the files."""
    out = []
    for key, rows in sorted(counters.items()):
        if not key.startswith("malformed_rows:") or not rows:
            continue
        name = key.split(":", 1)[1]
        table = tables.get(name)
        if table is None:
            continue
        firsts = counters.get("malformed_first_lines:" + name, 0)
        quoted = counters.get("malformed_quoted:" + name, 0)
        fmt = table.format
        named = bool(firsts and first_line) and _looks_like_names(first_line, table)
        # most malformed rows are first lines, or a first line names the columns
        header = (firsts * 2 > rows or named) and not fmt.header_lines
        as_csv = quoted * 2 > rows and fmt.kind == "text"
        if not (header or as_csv):
            continue
        fixed = table.format
        what = []
        if header:
            fixed = replace(fixed, header_lines=1)
            names = (f"its fields are the column names: {first_line[:80]!r}" if named
                     else f"first: {first_line[:80]!r}")
            what.append(f"{plural(firsts, 'malformed row')} of {table.name} "
                        f"{'is' if firsts == 1 else 'are'} the first line of a file, "
                        f"as a header line is ({names})")
        if as_csv:
            fixed = replace(fixed, kind="csv", escape=None)
            what.append(f"{plural(quoted, 'malformed row')} of {table.name} "
                        f"{'holds' if quoted == 1 else 'hold'} double quotes, as quoted CSV does")
        does = "skips it" if not as_csv else "reads quoted CSV" + (
            " and skips the header" if header else "")
        out.append(f"Warning: {'; '.join(what)}; this DDL {does}:\n"
                   f"  {table_ddl(replace(table, format=fixed))}")
    return out
