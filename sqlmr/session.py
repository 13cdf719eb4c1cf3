"""A session: runs statements against the catalog with one backend and settings.

The CLI, the REPL and the benchmark all go through :meth:`Session.execute`,
which yields one :class:`StatementResult` per statement of a script.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.explain import render as render_explain
from compiler.job import Job, compile_select, parse_one
from compiler.statements import Statement, split_statements
from runtime import storage
from sqlmr import config
from sqlmr import cost as costs
from sqlmr.backends import Backend
from sqlmr.catalog import Catalog, table_from_create
from sqlmr.config import Settings
from sqlmr.driver import JobResult, JobStats, estimate, plan_job, run_job


@dataclass
class StatementResult:
    kind: str                                  # rows | message | explain
    statement: str = ""
    columns: list[str] = field(default_factory=list)
    types: list[str | None] = field(default_factory=list)
    rows: Iterable[list] = ()
    total_rows: int = 0
    message: str = ""
    stats: JobStats | None = None
    lambda_cost: costs.LambdaCost | None = None
    athena_cost: float | None = None
    seconds: float = 0.0
    job: JobResult | None = None

    def close(self) -> None:
        if self.job is not None:
            self.job.close()


ProgressFactory = Callable[[], Callable[[str, int, int, int], None] | None]

_LEAD = re.compile(r"\s*(\w+)(?:\s+(\w+))?", re.S)


class Session:
    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None,
                 progress: ProgressFactory | None = None) -> None:
        self.settings = settings or config.load_settings()
        self.catalog = catalog or Catalog()
        self.progress = progress
        self._backend: Backend | None = None
        self._backend_key: tuple | None = None

    # ------------------------------------------------------------- backend
    def backend(self) -> Backend:
        key = (self.settings.backend, self.settings.effective_workers())
        if self._backend is not None and self._backend_key == key:
            return self._backend
        self.close()
        if self.settings.backend == "local":
            from sqlmr.backends.local import LocalBackend
            self._backend = LocalBackend(self.settings.effective_workers())
        elif self.settings.backend == "lambda":
            try:
                from sqlmr.backends.lambda_backend import LambdaBackend
            except ImportError as e:
                raise SqlError(f"the lambda backend is not available: {e}") from None
            self._backend = LambdaBackend(self.settings)
        else:
            raise SqlError(f"unknown backend '{self.settings.backend}' (local or lambda)")
        self._backend_key = key
        return self._backend

    def scratch(self) -> str:
        if self.settings.backend == "lambda":
            return self.backend().scratch  # type: ignore[attr-defined]
        return storage.to_uri(str(config.home() / "jobs"))

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # ----------------------------------------------------------- statements
    def execute(self, script: str) -> Iterator[StatementResult]:
        """Run each statement of ``script`` in turn; errors name their place in
        the script."""
        for st in split_statements(script, self.settings.dialect):
            try:
                yield self.execute_one(st.text)
            except SqlError as e:
                raise e.shifted(script, st.offset) if e.sql == st.text else e

    def execute_one(self, text: str) -> StatementResult:
        m = _LEAD.match(text)
        first = (m.group(1) or "").upper() if m else ""
        second = (m.group(2) or "").upper() if m else ""
        if first == "SHOW" and second == "TABLES":
            return self._show_tables(text)
        if first in ("DESCRIBE", "DESC"):
            return self._describe(text)
        if first == "EXPLAIN":
            return self._explain(text)
        if first == "SET":
            return self._set(text)
        tree = parse_one(text, self.settings.dialect)
        if isinstance(tree, exp.Create):
            return self._create(tree, text)
        if isinstance(tree, exp.Drop):
            return self._drop(tree, text)
        if isinstance(tree, (exp.Select, exp.Union)):
            return self.run_select(text, tree)
        raise UnsupportedError(f"{tree.key.upper()} statements", text, 0)

    # -------------------------------------------------------------- queries
    def compile(self, text: str, tree: exp.Expression | None = None) -> Job:
        tables = self.catalog.tables()
        return compile_select(text, tables, self.settings.dialect, tree,
                              sizes=_TableSizes(tables),
                              broadcast_bytes=int(self.settings.broadcast_mb * 2**20))

    def _prepare(self, job: Job) -> None:
        """First use of a built-in table generates the embedded default dataset."""
        if any(t.builtin for t in job.tables.values()):
            ensure_default_data()

    def run_select(self, text: str, tree: exp.Expression | None = None) -> StatementResult:
        t0 = time.perf_counter()
        job = self.compile(text, tree)
        self._prepare(job)
        progress = self.progress() if self.progress else None
        try:
            plans = plan_job(job, self.settings)
        except FileNotFoundError as e:
            raise SqlError(str(e)) from None
        result = run_job(job, self.settings, self.backend(), self.scratch(), progress, plans)
        stats = result.stats
        return StatementResult(
            "rows", text, result.columns, result.types, result.rows(), result.total_rows,
            stats=stats, lambda_cost=stats.lambda_cost(self.settings),
            athena_cost=costs.athena_cost(stats.bytes_read or sum(p.bytes for p in plans)),
            seconds=time.perf_counter() - t0, job=result)

    def _explain(self, text: str) -> StatementResult:
        m = re.match(r"\s*EXPLAIN(\s+CODE\b)?", text, re.I | re.S)
        code = bool(m.group(1))
        inner_offset = m.end()
        inner = text[inner_offset:]
        lead = len(inner) - len(inner.lstrip())
        inner = inner.strip()
        if not inner:
            raise SqlError("EXPLAIN needs a SELECT statement", text, len(text))
        try:
            job = self.compile(inner)
        except SqlError as e:
            if e.sql == inner:
                raise e.shifted(text, inner_offset + lead) from None
            raise
        if code:
            return StatementResult("explain", text, message=job.source.rstrip("\n"))
        self._prepare(job)
        try:
            plans = plan_job(job, self.settings)
        except FileNotFoundError as e:
            raise SqlError(str(e)) from None
        est, lam = estimate(plans, self.settings)
        s = self.settings
        summary = [
            f"Plan: {est.map_tasks} map tasks over {est.splits} splits, "
            f"{est.reduce_tasks} reduce tasks; input {_mb(est.bytes_read)}",
            f"Estimate on Lambda ({s.memory_mb} MB, {s.architecture}): "
            f"~{lam.gb_seconds:.1f} GB-s, {lam.requests} requests, {lam.gets} S3 GET, "
            f"{lam.puts} S3 PUT/LIST = {costs.money(lam.total)}",
            f"Athena for the same bytes: {costs.money(costs.athena_cost(est.bytes_read))} "
            f"($5/TB, 10 MB minimum)",
        ]
        for st, p in zip(job.stages, plans):
            st.sorted = job.sorted  # type: ignore[attr-defined]
        return StatementResult("explain", text,
                               message=render_explain(job.stages, [p.facts() for p in plans],
                                                      summary))

    # ------------------------------------------------------------------ DDL
    def _create(self, tree: exp.Create, text: str) -> StatementResult:
        if tree.args.get("expression") is not None:
            raise UnsupportedError("CREATE TABLE … AS SELECT", text, 0)
        if (tree.args.get("kind") or "").upper() != "TABLE":
            raise UnsupportedError(f"CREATE {tree.args.get('kind')}", text, 0)
        table = table_from_create(tree, text)
        created = self.catalog.create(table, if_not_exists=bool(tree.args.get("exists")))
        if not created:
            return StatementResult("message", text, message=f"table {table.name} already exists, skipped")
        note = ""
        if not storage.is_s3(table.location) and not storage.exists(table.location):
            note = f" (note: {storage.to_path(table.location)} does not exist yet)"
        return StatementResult("message", text, message=f"created table {table.name} "
                               f"({len(table.columns)} columns) at {table.location}{note}")

    def _drop(self, tree: exp.Drop, text: str) -> StatementResult:
        if (tree.args.get("kind") or "").upper() != "TABLE":
            raise UnsupportedError(f"DROP {tree.args.get('kind')}", text, 0)
        names = [t.name for t in tree.args.get("tables") or [tree.this]]
        dropped = []
        for name in names:
            if self.catalog.drop(name, if_exists=bool(tree.args.get("exists"))) is not None:
                dropped.append(name)
        msg = ("dropped table " + ", ".join(dropped) + " (its files are kept)") if dropped \
            else "nothing dropped"
        return StatementResult("message", text, message=msg)

    def _show_tables(self, text: str) -> StatementResult:
        rows = []
        for t in sorted(self.catalog.tables().values(), key=lambda t: t.name.lower()):
            cols = ", ".join(c.name for c in t.columns)
            rows.append([t.name, cols if len(cols) <= 48 else cols[:47] + "…",
                         t.location + (" (built-in)" if t.builtin else "")])
        return StatementResult("rows", text, ["table", "columns", "location"],
                               ["string"] * 3, rows, len(rows))

    def _describe(self, text: str) -> StatementResult:
        m = re.match(r"\s*(?:DESCRIBE|DESC)\s+(?:TABLE\s+)?([`\"]?)(\w+)\1\s*$", text, re.I)
        if not m:
            raise SqlError("usage: DESCRIBE table_name", text, 0)
        try:
            t = self.catalog.get(m.group(2))
        except SqlError as e:
            raise SqlError(e.message, text, m.start(2), e.hint) from None
        rows = [[c.name, c.type.upper()] for c in t.columns]
        msg = f"location: {t.location}, fields terminated by {t.delimiter!r}"
        return StatementResult("rows", text, ["column", "type"], ["string", "string"], rows,
                               len(rows), message=msg)

    def _set(self, text: str) -> StatementResult:
        m = re.match(r"\s*SET\s+([\w.\-]+)\s*(?:=|\s|TO\s)\s*(.+?)\s*$", text, re.I | re.S)
        if not m:
            if re.match(r"\s*SET\s*$", text, re.I):
                rows = [[k, str(v)] for k, v in self.settings.items()]
                return StatementResult("rows", text, ["setting", "value"], ["string"] * 2, rows, len(rows))
            raise SqlError("usage: SET name = value", text, 0)
        try:
            self.settings.set(m.group(1), m.group(2).strip("'\""))
        except (KeyError, ValueError) as e:
            raise SqlError(str(e).strip('"'), text, m.start(1)) from None
        return StatementResult("message", text, message=f"{m.group(1)} = {getattr(self.settings, m.group(1).replace('-', '_').lower())}")


class _TableSizes(dict):
    """Input bytes of a table, listed when the compiler first asks (it asks only
    about the tables a join reads); None when the location cannot be listed."""

    def __init__(self, tables: dict) -> None:
        super().__init__()
        self._tables = tables

    def get(self, name: str, default=None):
        if name not in self:
            t = self._tables.get(name)
            size = None
            if t is not None:
                try:
                    if t.builtin:
                        ensure_default_data()
                    size = sum(n for _, n in storage.list_files(t.location))
                except (FileNotFoundError, OSError):
                    size = None
            self[name] = size
        value = dict.get(self, name)
        return default if value is None else value


def ensure_default_data() -> None:
    """Generate the embedded AMPLab sample under ``$SQLMR_HOME/data/amplab`` if empty."""
    data = config.default_data_dir()
    if (data / "rankings").is_dir() and any((data / "rankings").iterdir()) and \
            (data / "uservisits").is_dir() and any((data / "uservisits").iterdir()):
        return
    from sqlmr.gen.amplab import ensure_default
    ensure_default(str(data))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"
