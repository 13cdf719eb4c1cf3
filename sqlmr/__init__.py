"""sqlmr: SQL over text files, compiled to MapReduce.

``sqlmr.connect()`` opens a PEP 249 connection; this package is also the
DB-API module (``sqlmr.apilevel``, ``sqlmr.ProgrammingError``, …), loaded on
first use so the CLI and the workers do not pay for it.
"""

__version__ = "0.1.0"

_DBAPI = frozenset({
    "connect", "Connection", "Cursor", "Relation", "RunStats", "apilevel", "threadsafety",
    "paramstyle", "Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
    "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
    "NotSupportedError", "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "BOOLEAN", "Date",
    "Time", "Timestamp", "Binary", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks"})


def __getattr__(name: str):
    if name in ("MRJob", "MRStep"):   # MapReduce jobs in Python (sqlmr.mrjob)
        from sqlmr import mrjob
        return getattr(mrjob, name)
    if name in _DBAPI:
        from sqlmr import dbapi
        return getattr(dbapi, name)
    raise AttributeError(f"module 'sqlmr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_DBAPI])
