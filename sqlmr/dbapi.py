"""The Python API: a PEP 249 (DB-API 2.0) connection to a sqlmr session.

    con = sqlmr.connect()                       # $SQLMR_HOME's catalog, local backend
    cur = con.cursor()
    cur.execute("SELECT pageURL FROM rankings WHERE pageRank > ?", [100])
    cur.fetchmany(10)
    rel = con.sql("SELECT COUNT(*) AS n FROM uservisits")   # DuckDB-style
    rel.fetchall(), rel.stats.bytes_read, rel.show()

A statement runs through :meth:`Session.execute_one` (as in the CLI): its job
has run when ``execute`` returns, and its rows are streamed from the job's
outputs as they are fetched.  Parameters are bound as SQL literals
(:mod:`sqlmr.params`).  Every statement is committed when it ends, so
``commit()`` does nothing and ``rollback()`` is refused.
"""

from __future__ import annotations

import datetime
import inspect
import os
import sys
import weakref
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

from compiler.errors import SqlError, UnsupportedError
from compiler.statements import split_statements
from runtime.storage import InputError
from sqlmr import config
from sqlmr.backends import JobCancelledError, TaskFailedError
from sqlmr.catalog import Catalog, open_catalog
from sqlmr.cost_guard import CostLimitError
from sqlmr.driver import JobStats
from sqlmr.functions import udf_from_file
from sqlmr.params import ParameterError, ParameterTypeError, ParameterValueError, bind
from sqlmr.render import plural, summary_lines, table_text
from sqlmr.session import Session, StatementResult

apilevel = "2.0"
threadsafety = 1        # threads may share the module, not a connection
paramstyle = "qmark"    # also "named" (:name) when the parameters are a mapping


# ------------------------------------------------------------------ errors
class Warning(Exception):  # noqa: A001 — the name PEP 249 gives it
    """Not raised: warnings (malformed rows) are in a result's ``stats``."""


class Error(Exception):
    """Every error the API raises.  One that comes from a SQL error keeps its
    ``sql``, ``offset`` and ``hint``; ``str()`` shows the line and a caret."""

    sql: str | None = None
    offset: int | None = None
    hint: str | None = None


class InterfaceError(Error):
    """A closed connection or cursor was used."""


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    """Bad data: a malformed row with ``strict`` on; a parameter with no literal (inf, NaN)."""


class OperationalError(DatabaseError):
    """A task failed, the job was cancelled, or an input could not be read."""


class IntegrityError(DatabaseError):
    """Not raised: sqlmr has no constraints."""


class InternalError(DatabaseError):
    """An unexpected failure inside sqlmr."""


class ProgrammingError(DatabaseError):
    """A SQL error (syntax, unknown table or column), wrong parameters, no result set."""


class NotSupportedError(DatabaseError):
    """A construct sqlmr does not run yet, ``rollback()``, a parameter type without a literal."""


def _from_sql(cls: type[Error], e: SqlError) -> Error:
    err = cls(e.render())
    err.sql, err.offset, err.hint = e.sql, e.offset, e.hint
    return err


@contextmanager
def _translated() -> Iterator[None]:
    """sqlmr's exceptions as PEP 249's (the original is the ``__cause__``)."""
    try:
        yield
    except Error:
        raise
    except UnsupportedError as e:
        raise _from_sql(NotSupportedError, e) from e
    except SqlError as e:
        raise _from_sql(ProgrammingError, e) from e
    except ParameterError as e:
        raise ProgrammingError(str(e)) from e
    except ParameterValueError as e:
        raise DataError(str(e)) from e
    except ParameterTypeError as e:
        raise NotSupportedError(f"not supported yet: {e}") from e
    except TaskFailedError as e:
        kind, _, detail = e.message.partition(": ")
        if kind == "MalformedRowError":
            raise DataError(f"{detail} (strict is on; without it the bad field reads as "
                            "NULL)") from e
        raise OperationalError(e.render(with_traceback=True)) from e
    except JobCancelledError as e:
        raise OperationalError(f"the job was cancelled: {e}") from e
    except CostLimitError as e:   # max_cost: refused, or stopped
        raise OperationalError(f"max_cost: {e}") from e
    except (InputError, OSError) as e:
        raise OperationalError(str(e) or type(e).__name__) from e
    except Exception as e:  # noqa: BLE001 — a bug: still a DB-API error, with its cause
        raise InternalError(f"{type(e).__name__}: {e}") from e


# ----------------------------------------------------- types and constructors
class _TypeObject:
    """A PEP 249 type object: equal to each type code of its kind."""

    def __init__(self, name: str, *codes: str) -> None:
        self.name = name
        self.codes = frozenset(codes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypeObject):
            return other is self
        return isinstance(other, str) and other.upper() in self.codes

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<sqlmr type object {self.name}>"


STRING = _TypeObject("STRING", "STRING", "VARCHAR", "CHAR")
BINARY = _TypeObject("BINARY", "BINARY")
NUMBER = _TypeObject("NUMBER", "INT", "BIGINT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT",
                     "DECIMAL")
DATETIME = _TypeObject("DATETIME", "DATE", "TIMESTAMP")
ROWID = _TypeObject("ROWID")
BOOLEAN = _TypeObject("BOOLEAN", "BOOLEAN")

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 — PEP 249's names
    return datetime.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802
    return datetime.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802
    return datetime.datetime.fromtimestamp(ticks)


def _to_date(v: Any) -> Any:
    """A DATE value as :class:`datetime.date` (a text that is none stays text)."""
    if isinstance(v, str):
        try:
            return datetime.date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _to_timestamp(v: Any) -> Any:
    """A TIMESTAMP as :class:`datetime.datetime` (digits past microseconds dropped)."""
    if isinstance(v, str):
        try:
            return datetime.datetime.fromisoformat(v)
        except ValueError:
            return v
    return v


_CONVERTERS = {"date": _to_date, "timestamp": _to_timestamp}


# -------------------------------------------------------------- statistics
@dataclass(frozen=True)
class RunStats:
    """What running a statement's job took and cost (as the CLI's Time/Cost lines)."""

    seconds: float          # wall time of the statement's job (fetching not included)
    map_tasks: int
    reduce_tasks: int
    splits: int
    files: int
    bytes_read: int
    bytes_shuffled: int
    rows_read: int
    malformed: int          # rows read with a missing or unparsable field (as NULLs)
    lambda_cost: float      # dollars: an estimate locally, billed on Lambda
    athena_cost: float      # dollars Athena would charge for the same bytes
    billed: bool
    lines: tuple[str, ...]  # the lines the CLI prints after the statement
    job: JobStats

    @property
    def tasks(self) -> int:
        return self.map_tasks + self.reduce_tasks

    def __str__(self) -> str:
        return "\n".join(self.lines)

    @classmethod
    def of(cls, result: StatementResult, settings) -> "RunStats":
        st = result.stats
        assert st is not None
        lam = result.lambda_cost or st.lambda_cost(settings)
        return cls(result.seconds, st.map_tasks, st.reduce_tasks, st.splits, st.files,
                   st.bytes_read, st.bytes_shuffled, st.rows_read, st.malformed, lam.total,
                   result.athena_cost or 0.0, st.billed,
                   tuple(summary_lines(result, settings)), st)


# -------------------------------------------------------------- connection
def connect(home: str | os.PathLike | None = None, backend: str = "local",
            **settings: Any) -> "Connection":
    """A connection to the catalog under ``home`` (default ``$SQLMR_HOME``,
    else ``~/.sqlmr``), running jobs on ``backend`` (local or lambda).
    Keyword arguments are settings, as ``SET`` names them: ``workers=4``,
    ``strict=True``, ``dialect="duckdb"``; the config files give the rest."""
    home_path = None if home is None else os.path.abspath(os.path.expanduser(os.fspath(home)))
    with config.home_at(home_path):
        try:
            values = config.load_settings()
        except ValueError as e:
            raise OperationalError(f"config: {e}") from None
        for name, value in {"backend": backend, **settings}.items():
            text = ("on" if value else "off") if isinstance(value, bool) else str(value)
            try:
                values.set(name, text)
            except KeyError as e:
                raise ProgrammingError(e.args[0]) from None
            except ValueError as e:
                raise ProgrammingError(str(e)) from None
        catalog = open_catalog(values)
    return Connection(home_path, values, catalog)


class Connection:
    """A session with its catalog, settings and backend (a local process pool
    is started by the first query and stopped by :meth:`close`)."""

    Warning, Error, InterfaceError, DatabaseError = Warning, Error, InterfaceError, DatabaseError
    DataError, OperationalError, IntegrityError = DataError, OperationalError, IntegrityError
    InternalError, ProgrammingError, NotSupportedError = (InternalError, ProgrammingError,
                                                          NotSupportedError)

    def __init__(self, home: str | None, settings: config.Settings, catalog: Catalog) -> None:
        self.home = home
        self._session: Session | None = Session(settings, catalog)
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()

    @property
    def settings(self) -> config.Settings:
        return self._live().settings

    @property
    def closed(self) -> bool:
        return self._session is None

    def _live(self) -> Session:
        if self._session is None:
            raise InterfaceError("the connection is closed")
        return self._session

    @contextmanager
    def _work(self) -> Iterator[Session]:
        """Inside: the connection's home, and sqlmr's errors as PEP 249's."""
        session = self._live()
        with config.home_at(self.home), _translated():
            yield session

    def cursor(self) -> "Cursor":
        self._live()
        cur = Cursor(self)
        self._cursors.add(cur)
        return cur

    def execute(self, operation: str, parameters: Sequence | Mapping | None = None) -> "Cursor":
        """A new cursor that has run ``operation`` (as sqlite3 and DuckDB offer)."""
        return self.cursor().execute(operation, parameters)

    def sql(self, query: str, params: Sequence | Mapping | None = None) -> "Relation":
        """Run one statement and return its result (DuckDB's ``con.sql``)."""
        return Relation(self.execute(query, params))

    def create_function(self, name: str, fn: Callable, return_type: str | None = None) -> None:
        """Register ``fn`` as the session's SQL function ``name`` (as
        ``CREATE TEMPORARY FUNCTION``): the tasks import ``fn``'s module file,
        shipped by content like the job's code, and call ``fn`` per row (None
        for NULL).  ``fn`` must be a top-level function of a ``.py`` file; its
        return type is ``return_type`` (a SQL type), else its ``-> T``
        annotation, else STRING.  A top-level class with init/step/merge/final
        is an aggregate UDF (README, "Your own Python")."""
        session = self._live()
        path, function = _shippable(fn)
        try:
            udf = udf_from_file(name, function, path, return_type)
        except ValueError as e:
            raise ProgrammingError(f"create_function({name!r}): {e}") from None
        session.functions[udf.name] = udf

    def commit(self) -> None:
        """Nothing to do: every statement is committed when it ends."""
        self._live()

    def rollback(self) -> None:
        self._live()
        raise NotSupportedError("rollback: every statement is committed when it ends; "
                                "there is no transaction to roll back")

    def close(self) -> None:
        """Close every cursor (their scratch data is removed) and stop the backend."""
        if self._session is None:
            return
        for cur in list(self._cursors):
            cur.close()
        session, self._session = self._session, None
        with config.home_at(self.home):
            session.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass


def _shippable(fn: Callable) -> tuple[str, str]:
    """The module file and name of a function the tasks can import by
    itself; a clear refusal for one they cannot (a lambda, a nested function
    or closure, a builtin, one defined in the REPL or ``python -c``)."""
    if not (inspect.isfunction(fn) or inspect.isclass(fn)):   # a class: an aggregate UDF
        raise NotSupportedError(f"create_function: {fn!r} is not a Python function "
                                "defined with def (or an aggregate class) in a .py file")
    where = f"{fn.__qualname__}"
    if fn.__name__ == "<lambda>":
        raise NotSupportedError("create_function: a lambda cannot be shipped to the tasks; "
                                "define the function with def at the top level of a .py file")
    if fn.__qualname__ != fn.__name__ or getattr(fn, "__closure__", None):
        raise NotSupportedError(f"create_function: {where} is nested in another function or "
                                "class (or a closure); the tasks can import only a top-level "
                                "function of a .py file")
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    if not path or not path.endswith(".py") or not os.path.isfile(path):
        raise NotSupportedError(f"create_function: {where} was not defined in a .py file "
                                "(the REPL, python -c, a notebook cell?); the tasks import "
                                "the function's file: move it into a module")
    if getattr(sys.modules.get(fn.__module__), fn.__name__, None) is not fn:
        raise NotSupportedError(f"create_function: {where} is not what its module "
                                f"{fn.__module__} binds to that name")
    return path, fn.__name__


class Cursor:
    """Runs statements and fetches their rows (tuples), streamed from the job's
    outputs: a row is read when it is fetched."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self.description: tuple[tuple, ...] | None = None
        self.rowcount = -1
        self.lastrowid = None                # sqlmr has no row ids
        self.stats: RunStats | None = None   # the job's statistics (None: no job ran)
        self.message = ""                    # what a statement said (created table …)
        self._result: StatementResult | None = None
        self._rows: Iterator[Sequence] | None = None
        self._peeked: deque[Sequence] = deque()
        self._convert: list | None = None
        self._closed = False

    # --------------------------------------------------------- executing
    def execute(self, operation: str, parameters: Sequence | Mapping | None = None) -> "Cursor":
        """Run one statement, with ``?`` (a sequence) or ``:name`` (a mapping)
        parameters; returns the cursor."""
        self._check()
        self._reset()
        if not isinstance(operation, str):
            raise ProgrammingError(f"the statement is a str, not {type(operation).__name__}")
        with self.connection._work() as session:
            dialect = session.settings.dialect
            statement = _one_statement(operation, dialect)
            text = bind(statement, parameters, dialect)
            if len(split_statements(text, dialect)) != 1:  # cannot happen: literals are quoted
                raise InternalError("binding the parameters changed the statement count")
            result = session.execute_one(text)
        self._take(result)
        return self

    def executemany(self, operation: str,
                    seq_of_parameters: Sequence[Sequence | Mapping]) -> None:
        """Run ``operation`` once per parameter set; no result set is kept,
        ``rowcount`` is the sum of the statements' (-1 if one is unknown)."""
        total, runs = 0, 0
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            runs += 1
            total = -1 if total < 0 or self.rowcount < 0 else total + self.rowcount
        self._check()
        self._reset()
        self.rowcount = total if runs else -1

    def _take(self, result: StatementResult) -> None:
        session = self.connection._live()
        self._result = result
        self.message = result.message if result.kind != "explain" else ""
        self.stats = RunStats.of(result, session.settings) if result.stats is not None else None
        if result.kind == "rows":
            types = [(t or "string").upper() for t in result.types]
            self.description = tuple((name, code, None, None, None, None, None)
                                     for name, code in zip(result.columns, types))
            self.rowcount = result.total_rows
            self._rows = iter(result.rows)
            convert = [_CONVERTERS.get(t.lower()) for t in types]
            self._convert = convert if any(convert) else None
        elif result.kind == "explain":
            lines = result.message.split("\n")
            self.description = (("plan", "STRING", None, None, None, None, None),)
            self.rowcount = len(lines)
            self._rows = iter([(line,) for line in lines])

    def _reset(self) -> None:
        if self._result is not None:
            with config.home_at(self.connection.home):
                self._result.close()
        self._result = None
        self._rows = None
        self._peeked.clear()
        self._convert = None
        self.description = None
        self.rowcount = -1
        self.stats = None
        self.message = ""

    # ---------------------------------------------------------- fetching
    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self.connection._live()

    def _source(self) -> Iterator[Sequence]:
        self._check()
        if self._rows is None:
            raise ProgrammingError("no result set: execute a statement that returns rows "
                                   "first" + (f" (the last one said: {self.message})"
                                              if self.message else ""))
        return self._rows

    def _raw(self, n: int | None) -> list[Sequence]:
        """Up to ``n`` rows (all when None) as the job wrote them."""
        rows = self._source()
        out: list[Sequence] = []
        while self._peeked and (n is None or len(out) < n):
            out.append(self._peeked.popleft())
        if n is not None and len(out) >= n:
            return out
        with self.connection._work():
            for row in rows:
                out.append(row)
                if n is not None and len(out) >= n:
                    break
            else:
                self._finished()
        return out

    def _peek(self, n: int | None) -> list[Sequence]:
        """The next ``n`` rows (all when None), left to be fetched."""
        more = self._raw(None if n is None else max(0, n - len(self._peeked)))
        self._peeked.extend(more)
        return list(self._peeked)[:n] if n is not None else list(self._peeked)

    def _finished(self) -> None:
        """Every row has been read: the job's scratch data can go now."""
        if self._result is not None:
            self._result.close()

    def _out(self, rows: list[Sequence]) -> list[tuple]:
        convert = self._convert
        if convert is None:
            return [tuple(r) for r in rows]
        return [tuple(v if f is None else f(v) for f, v in zip(convert, r)) for r in rows]

    def fetchone(self) -> tuple | None:
        rows = self._raw(1)
        return self._out(rows)[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        n = self.arraysize if size is None else size
        if n < 0:
            raise ProgrammingError(f"fetchmany size must be 0 or more, not {n}")
        return self._out(self._raw(n)) if n else []

    def fetchall(self) -> list[tuple]:
        return self._out(self._raw(None))

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> tuple:
        rows = self._rows
        if self._peeked or rows is None or self._closed or self.connection.closed:
            row = self.fetchone()  # the checks and their errors
            if row is None:
                raise StopIteration
            return row
        try:  # the common case without fetchone's per-row checks
            raw = next(rows)
        except StopIteration:
            self._finished()
            raise
        except Exception:  # noqa: BLE001 — translated as fetchone would
            with _translated():
                raise
        convert = self._convert
        if convert is None:
            return tuple(raw)
        return tuple(v if f is None else f(v) for f, v in zip(convert, raw))

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored (PEP 249)."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """Accepted and ignored (PEP 249)."""

    def close(self) -> None:
        """Drop the result (its scratch data is removed); later use is an error."""
        if self._closed:
            return
        self._reset()
        self._closed = True

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # a cursor dropped with rows unread: its job's scratch data goes with it
        try:
            if not self._closed and self._result is not None:
                self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown, closed connection
            pass


def _one_statement(operation: str, dialect: str) -> str:
    statements = split_statements(operation, dialect)
    if not statements:
        raise ProgrammingError("no statement to execute")
    if len(statements) > 1:
        raise ProgrammingError(f"execute runs one statement; this text holds "
                               f"{len(statements)} (run them one at a time)")
    return statements[0].text


class Relation:
    """A statement's result from :meth:`Connection.sql`: rows streamed as they
    are fetched (each row once), its columns and types, and :attr:`stats`."""

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    @property
    def columns(self) -> list[str]:
        return [d[0] for d in self._cursor.description or ()]

    @property
    def types(self) -> list[str]:
        return [d[1] for d in self._cursor.description or ()]

    @property
    def description(self) -> tuple[tuple, ...] | None:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def stats(self) -> RunStats | None:
        return self._cursor.stats

    @property
    def message(self) -> str:
        return self._cursor.message

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        return self._cursor.fetchmany(size)

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._cursor)

    def df(self):
        """The rows not fetched yet as a pandas DataFrame."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Relation.df() needs pandas, which is not installed "
                              "(pip install pandas); fetchall() gives the rows as tuples") \
                from None
        return pandas.DataFrame.from_records(self.fetchall(), columns=self.columns)

    fetchdf = df

    def show(self, max_rows: int | None = None, file: IO[str] | None = None) -> None:
        """Print the first rows as the CLI's table (``max_rows``, default the
        setting, 0 = all), then the statement's message and Time/Cost lines;
        the rows shown are still there to fetch."""
        out = file or sys.stdout
        cur = self._cursor
        cur._check()
        if cur._result is not None and cur._result.kind == "explain":
            print(cur._result.message, file=out)   # as the CLI prints a plan
        elif cur.description is not None:
            if max_rows is None:
                max_rows = cur.connection.settings.max_rows
            shown = cur._peek(max_rows or None)
            types = [t.lower() for t in self.types]
            print(table_text(self.columns, shown, types), file=out)
            total = max(cur.rowcount, len(shown))
            print(f"({plural(total, 'row')}" + (f", first {len(shown):,} shown)"
                                               if len(shown) < total else ")"), file=out)
        if cur.message:
            print(cur.message, file=out)
        if cur.stats is not None:
            for line in cur.stats.lines:
                print(line, file=out)

    def close(self) -> None:
        self._cursor.close()

    def __repr__(self) -> str:
        return f"<sqlmr Relation columns={self.columns} rows={self.rowcount}>"
