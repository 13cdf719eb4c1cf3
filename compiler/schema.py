"""Table schemas as the compiler sees them (pure data, no I/O).

>>> normalize_type("VARCHAR(10)"), normalize_type("decimal(10,2)"), normalize_type("Integer")
('string', 'double', 'int')
"""

from __future__ import annotations

from dataclasses import dataclass, field

# SQL type spelling -> the value type sqlmr computes with.
TYPE_ALIASES = {
    "string": "string", "varchar": "string", "char": "string", "text": "string",
    "int": "int", "integer": "int", "smallint": "int", "tinyint": "int",
    "bigint": "bigint", "long": "bigint",
    "double": "double", "float": "double", "decimal": "double", "real": "double",
    "numeric": "double", "double precision": "double",
    "date": "date", "boolean": "boolean", "bool": "boolean", "timestamp": "timestamp",
}

# sqlglot spelling of each type, for qualification and type annotation.
SQLGLOT_TYPES = {"string": "VARCHAR", "int": "INT", "bigint": "BIGINT", "double": "DOUBLE",
                 "date": "DATE", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP"}

NUMERIC = {"int", "bigint", "double"}

# The fast path of a scan converts fields with Python's int() / float(), which
# accept more than Hive's Java parsers (runtime.sqlfuncs.parse_*): spaces,
# '_' between digits, non-ASCII digits, 'inf' / 'nan', integers of any size.
# A converted field must also pass its type's check, written over ``{t}`` (the
# field's text) and ``{v}`` (its value), or the row takes the slow path, where
# the Java-exact parsers decide.  Cheap on the common case: an unsigned or
# '-'-signed ASCII integer in range; an ASCII, finite double without '_'.
FAST_CHECK = {
    "int": "{t}.isascii() and ({t}.isdigit() and {v} <= 2147483647 or "
           "{t}[:1] == '-' and {t}[1:].isdigit() and {v} >= -2147483648)",
    "bigint": "{t}.isascii() and ({t}.isdigit() and {v} <= 9223372036854775807 or "
              "{t}[:1] == '-' and {t}[1:].isdigit() and {v} >= -9223372036854775808)",
    "double": "{t}.isascii() and '_' not in {t} and -1e999 < {v} < 1e999",
}


def fast_check(typ: str, text: str, value: str, ascii_known: bool = False) -> str | None:
    """The fast path's test that field ``text`` converted to ``value`` is what
    Hive would read (None: the conversion is exact already); ``ascii_known``:
    the line is known to be ASCII, so that part of the test is left out.

    >>> fast_check("double", "f[3]", "c3")
    "(f[3].isascii() and '_' not in f[3] and -1e999 < c3 < 1e999)"
    >>> fast_check("double", "f[3]", "c3", ascii_known=True)
    "('_' not in f[3] and -1e999 < c3 < 1e999)"
    >>> fast_check("string", "f[0]", "c0") is None
    True
    """
    check = FAST_CHECK.get(typ)
    if check is None:
        return None
    if ascii_known:
        check = check.removeprefix("{t}.isascii() and ")
    return "(" + check.format(t=text, v=value) + ")"


def normalize_type(spelling: str) -> str:
    base = spelling.strip().lower().split("(")[0].strip()
    if base not in TYPE_ALIASES:
        raise ValueError(f"unsupported column type {spelling!r} "
                         f"(use STRING, INT, BIGINT, DOUBLE, DATE, TIMESTAMP or BOOLEAN)")
    return TYPE_ALIASES[base]


@dataclass(frozen=True)
class Column:
    name: str  # as the user spelt it
    type: str  # one of SQLGLOT_TYPES' keys


FORMAT_KINDS = ("text", "csv", "json")


@dataclass(frozen=True)
class Format:
    """How a table's files hold records (the field delimiter is
    :attr:`Table.delimiter`).

    - ``text``: Hive's delimited text (LazySimpleSerDe): one record a line,
      fields cut at the delimiter; ``escape`` is ESCAPED BY, ``null`` is NULL
      DEFINED AS.
    - ``csv``: quoted CSV (OpenCSVSerde): ``quote`` around a field that may hold
      the delimiter, doubled quotes and newlines; ``escape`` is escapeChar.
    - ``json``: JSON lines (Athena's JsonSerDe): one object a line, columns
      by key, case-insensitive.

    ``header_lines`` is TBLPROPERTIES ('skip.header.line.count'): lines skipped
    at the start of each file, never of each split.

    >>> Format.from_dict(Format("csv", header_lines=1).to_dict())
    Format(kind='csv', header_lines=1, quote='"', escape=None, null='\\\\N')
    >>> Format().to_dict()
    {}
    """

    kind: str = "text"
    header_lines: int = 0
    quote: str = '"'
    escape: str | None = None
    null: str = "\\N"

    def to_dict(self) -> dict:
        """Only what differs from the default (so old catalogs read the same)."""
        default = Format()
        return {k: v for k, v in self.__dict__.items() if getattr(default, k) != v}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Format":
        return cls(**(d or {}))


@dataclass
class Table:
    """A table over files: where they are, how a record splits into columns
    (:class:`Format`), and the Hive partition columns (``PARTITIONED BY``:
    values from ``col=value`` folder names, after the data columns)."""

    name: str
    columns: list[Column]
    location: str
    delimiter: str = ","
    builtin: bool = False
    properties: dict = field(default_factory=dict)
    format: Format = field(default_factory=Format)
    partition_columns: list[Column] = field(default_factory=list)

    @property
    def all_columns(self) -> list[Column]:
        """What a query sees: the data columns, then the partition columns."""
        return self.columns + self.partition_columns

    def column_index(self, name: str) -> int:
        """Index of a data column (a partition column is a KeyError)."""
        low = name.lower()
        for i, c in enumerate(self.columns):
            if c.name.lower() == low:
                return i
        raise KeyError(name)

    def partition_index(self, name: str) -> int | None:
        """Index of a partition column, None for any other name.

        >>> t = Table("t", [Column("a", "int")], "/x", partition_columns=[Column("dt", "date")])
        >>> t.partition_index("DT"), t.partition_index("a"), [c.name for c in t.all_columns]
        (0, None, ['a', 'dt'])
        """
        low = name.lower()
        for i, c in enumerate(self.partition_columns):
            if c.name.lower() == low:
                return i
        return None

    def sqlglot_schema(self, dialect: str = "hive") -> dict[str, str]:
        """Column -> type for sqlglot; names are quoted so that any legal
        identifier (``x; y``) resolves."""
        from sqlglot import exp
        return {exp.to_identifier(c.name.lower(), quoted=True).sql(dialect=dialect):
                SQLGLOT_TYPES[c.type] for c in self.all_columns}

    def to_dict(self) -> dict:
        return {"name": self.name, "columns": [[c.name, c.type] for c in self.columns],
                "location": self.location, "delimiter": self.delimiter,
                "builtin": self.builtin,
                "properties": self.properties,
                **({"format": self.format.to_dict()} if self.format.to_dict() else {}),
                **({"partition_columns": [[c.name, c.type] for c in self.partition_columns]}
                   if self.partition_columns else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "Table":
        return cls(name=d["name"], columns=[Column(n, t) for n, t in d["columns"]],
                   location=d["location"], delimiter=d.get("delimiter", ","),
                   builtin=d.get("builtin", False),
                   properties=d.get("properties", {}),
                   format=Format.from_dict(d.get("format")),
                   partition_columns=[Column(n, t) for n, t in d.get("partition_columns", [])])
