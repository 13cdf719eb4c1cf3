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
    "date": "date", "boolean": "boolean", "bool": "boolean",
}

# sqlglot spelling of each type, for qualification and type annotation.
SQLGLOT_TYPES = {"string": "VARCHAR", "int": "INT", "bigint": "BIGINT", "double": "DOUBLE",
                 "date": "DATE", "boolean": "BOOLEAN"}

NUMERIC = {"int", "bigint", "double"}


def normalize_type(spelling: str) -> str:
    base = spelling.strip().lower().split("(")[0].strip()
    if base not in TYPE_ALIASES:
        raise ValueError(f"unsupported column type {spelling!r} "
                         f"(use STRING, INT, BIGINT, DOUBLE, DATE or BOOLEAN)")
    return TYPE_ALIASES[base]


@dataclass(frozen=True)
class Column:
    name: str  # as the user spelt it
    type: str  # one of SQLGLOT_TYPES' keys


@dataclass
class Table:
    """A text table: where its files are and how a line splits into columns."""

    name: str
    columns: list[Column]
    location: str
    delimiter: str = ","
    builtin: bool = False
    properties: dict = field(default_factory=dict)

    def column_index(self, name: str) -> int:
        low = name.lower()
        for i, c in enumerate(self.columns):
            if c.name.lower() == low:
                return i
        raise KeyError(name)

    def sqlglot_schema(self, dialect: str = "hive") -> dict[str, str]:
        """Column -> type for sqlglot; names are quoted so that any legal
        identifier (``x; y``) resolves."""
        from sqlglot import exp
        return {exp.to_identifier(c.name.lower(), quoted=True).sql(dialect=dialect):
                SQLGLOT_TYPES[c.type] for c in self.columns}

    def to_dict(self) -> dict:
        return {"name": self.name, "columns": [[c.name, c.type] for c in self.columns],
                "location": self.location, "delimiter": self.delimiter,
                "builtin": self.builtin,
                "properties": self.properties}

    @classmethod
    def from_dict(cls, d: dict) -> "Table":
        return cls(name=d["name"], columns=[Column(n, t) for n, t in d["columns"]],
                   location=d["location"], delimiter=d.get("delimiter", ","),
                   builtin=d.get("builtin", False),
                   properties=d.get("properties", {}))
