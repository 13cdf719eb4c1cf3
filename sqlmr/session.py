"""A session: runs statements against the catalog with one backend and settings.

The CLI, the REPL and the benchmark all go through :meth:`Session.execute`,
which yields one :class:`StatementResult` per statement of a script.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.explain import render as render_explain
from compiler.job import Job, compile_select, parse_one
from compiler.resolve import _start
from compiler.schema import Column, Table
from compiler.statements import split_statements
from compiler.udfs import Udf
from runtime import s3stats, storage
from runtime.shuffle import TextValueError
from sqlmr import config
from sqlmr import scratch as scratch_space
from sqlmr import cost as costs
from sqlmr.backends import Backend, TaskFailedError
from sqlmr.catalog import (Catalog, check_table_name, open_catalog, delete_managed_files,
                           format_description, resolve_location, storage_properties,
                           table_from_create, warehouse_location)
from sqlmr.config import Settings
from sqlmr.cost_guard import check_estimate
from sqlmr import partitions
from sqlmr.driver import (JobResult, JobStats, estimate, new_job_id, plan_files, plan_job,
                          run_job)
from sqlmr.files import bind_files
from compiler.sizes import size_text
from sqlmr.functions import is_create_function, udf_from_create
from sqlmr.transform import (has_transform, innermost_first, output_columns,
                             remove_unaccepted, replacement, script_files, split, table_for)
from sqlmr.render import plural
from sqlmr.table_writes import check_empty, check_protected_folder, check_table_overlap
from sqlmr.table_writes import commit as _commit
from sqlmr.table_writes import discard as _discard
from sqlmr.table_writes import replaced_contents
from sqlmr.table_writes import staging_for as _staging
from sqlmr.table_writes import write_rows as _write_rows
from sqlmr.writers import unique_names


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
    # when the statement started: rows are read lazily, so the printer takes the
    # time once the last row is written (see :meth:`elapsed`)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Wall seconds from the statement's start until now."""
        return time.perf_counter() - self.started

    def close(self) -> None:
        if self.job is not None:
            self.job.close()


ProgressFactory = Callable[[], Callable[[str, int, int, int], None] | None]

_LEAD = re.compile(r"\s*(\w+)(?:\s+(\w+))?", re.S)
_REPL_COMMAND = re.compile(r"\s*(?:\\\S|\.[a-z]+\b)")   # \d, \dt, .tables: the REPL's own
# Words a statement may start with: what sqlmr runs, and what it refuses by
# name ("not supported yet: …") rather than as a misspelling
_STATEMENT_WORDS = frozenset({
    "SELECT", "WITH", "FROM", "CREATE", "DROP", "INSERT", "EXPLAIN", "SET", "SHOW", "DESCRIBE", "ADD",
    "DESC", "VALUES", "TABLE", "UPDATE", "DELETE", "MERGE", "ALTER", "USE", "LOAD", "ANALYZE",
    "TRUNCATE", "GRANT", "REVOKE", "CACHE", "UNCACHE", "REFRESH", "MSCK", "PRAGMA", "COPY",
    "BEGIN", "COMMIT", "ROLLBACK", "START", "CALL", "EXECUTE", "PREPARE", "COMMENT", "RESET",
    "ATTACH", "DETACH", "INSTALL", "SUMMARIZE", "PIVOT", "UNPIVOT", "REPLACE", "UPSERT"})


class Session:
    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None,
                 progress: ProgressFactory | None = None) -> None:
        self.settings = settings or config.load_settings()
        self.catalog = catalog or open_catalog(self.settings)
        self.progress = progress
        # relative paths (FROM 'file', LOCATION) are relative to this folder
        # (a script's own with ``sqlmr -f``), else to the current directory
        self.base_dir: str | None = None
        self._backend: Backend | None = None
        self._backend_key: tuple | None = None
        self.functions: dict[str, Udf] = {}   # CREATE TEMPORARY FUNCTION, by lower-case name
        self.added_files: dict[str, str] = {}  # ADD FILE: name -> path
        self._transient: list[str] = []       # TRANSFORM outputs of the last statement
        self._requests0: dict | None = None   # S3 requests counted when the statement began
        self._extra_tables: dict[str, Table] = {}
        # --dry-run: tables the script's CREATE statements would make, so its
        # later statements plan against them (never written to the catalog)
        self._dry_tables: dict[str, Table] = {}
        self.dry_run_splits = False           # a dry run lists every split (-v)

    # ------------------------------------------------------------- backend
    def backend(self) -> Backend:
        key = (self.settings.backend, self.settings.effective_workers())
        if self._backend is not None and self._backend_key == key:
            return self._backend
        self._close_backend()
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

    def _warehouse(self, name: str) -> str:
        """Where a CREATE TABLE AS without LOCATION writes: on the Lambda
        backend ``s3://$SQLMR_BUCKET/sqlmr/warehouse/<name>`` (its tasks cannot
        reach this machine), else ``$SQLMR_HOME/warehouse/<name>``."""
        if self.settings.backend == "lambda":
            ls = getattr(self.backend(), "lambda_settings", None)
            if ls is not None and ls.bucket:
                return warehouse_location(name, ls.warehouse_uri())
        return warehouse_location(name)

    def close(self) -> None:
        self._drop_transient()
        self._close_backend()

    def _close_backend(self) -> None:
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
        self._requests0 = s3stats.snapshot()   # the statement's S3 requests count from here
        self._drop_transient()
        m = _LEAD.match(text)
        first = (m.group(1) or "").upper() if m else ""
        second = (m.group(2) or "").upper() if m else ""
        if first == "ADD" and second in ("FILE", "FILES"):
            return self._add_file(text)
        if first == "SHOW" and second == "TABLES":
            return self._show_tables(text)
        if first == "SHOW" and second == "FUNCTIONS":
            return self._show_functions(text)
        if (first == "SHOW" and second == "PARTITIONS") or first == "MSCK":
            return self._partitions(text)
        if first in ("DESCRIBE", "DESC"):
            return self._describe(text)
        if first == "EXPLAIN":
            return self._explain(text)
        if first == "SET":
            return self._set(text)
        if _REPL_COMMAND.match(text):
            self._repl_command(text)
        if first and first not in _STATEMENT_WORDS:
            # `SELEC 1` would parse as an aliased expression and fail further on
            self._not_a_statement(text, m.group(1))
        tree = parse_one(text, self.settings.dialect)
        if is_create_function(tree):
            return self._create_function(tree, text)
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() == "FUNCTION":
            return self._drop_function(tree, text)
        if isinstance(tree, exp.Create) and tree.args.get("expression") is not None:
            return self._create_as(tree, text)
        if isinstance(tree, exp.Insert):
            return self._insert(tree, text)
        if isinstance(tree, exp.Create):
            return self._create(tree, text)
        if isinstance(tree, exp.Drop):
            return self._drop(tree, text)
        if isinstance(tree, (exp.Select, exp.SetOperation)):
            return self.run_select(text, tree)
        if isinstance(tree, (exp.Condition, exp.Alias, exp.Paren, exp.Tuple)):
            # `SELEC x` parses as an expression with an alias: not a statement at all
            self._not_a_statement(text, first or text.strip().split(None, 1)[0])
        raise UnsupportedError(f"{tree.key.upper()} statements", text, 0)

    @staticmethod
    def _repl_command(text: str) -> None:
        """A REPL command (``\\d``, ``.tables``) in a script or ``-e``, where
        only SQL runs: say so and what SQL does the same."""
        lead = len(text) - len(text.lstrip())
        word = text.split(None, 1)[0]
        raise SqlError(f"'{word}' is a command of the interactive REPL; a script or -e runs SQL only",
                       text, lead, "in SQL: DESCRIBE TABLE (\\d TABLE), SHOW TABLES (\\dt), "
                       "SET name = value (\\set), SHOW FUNCTIONS")

    @staticmethod
    def _not_a_statement(text: str, word: str) -> None:
        lead = len(text) - len(text.lstrip())
        raise SqlError(f"syntax error: '{word}' does not start a statement sqlmr knows",
                       text, lead, "statements: SELECT, EXPLAIN, CREATE [EXTERNAL] TABLE, "
                       "DROP TABLE, INSERT OVERWRITE DIRECTORY, SHOW TABLES, DESCRIBE, "
                       "SHOW PARTITIONS, MSCK REPAIR TABLE, SET, CREATE [TEMPORARY] FUNCTION, "
                       "DROP FUNCTION, SHOW FUNCTIONS, ADD FILE")

    # -------------------------------------------------------------- queries
    def compile(self, text: str, tree: exp.Expression | None = None) -> Job:
        if tree is None:
            tree = parse_one(text, self.settings.dialect)
        if has_transform(tree):
            if self.settings.dry_run:
                raise UnsupportedError("a dry run of a TRANSFORM query (it would run the "
                                       "command to plan the rest)", text, 0)
            tree = self._run_transforms(text, tree)
        tables = self.catalog.tables()
        tables.update(self._dry_tables)
        tables.update(self._extra_tables)
        tables.update(bind_files(tree, text, set(tables), self.base_dir))
        refuse_unsupported_sources(tree, text)
        return compile_select(text, tables, self.settings.dialect, tree,
                              sizes=_TableSizes(tables),
                              broadcast_bytes=int(self.settings.broadcast_mb * 2**20),
                              functions=self.all_functions())

    # ------------------------------------------------------------ TRANSFORM
    def _add_file(self, text: str) -> StatementResult:
        m = re.match(r"\s*ADD\s+FILES?\s+(.+?)\s*$", text, re.I | re.S)
        if not m:
            raise SqlError("usage: ADD FILE path", text, 0)
        added = []
        for word in shlex.split(m.group(1)):
            path = os.path.join(self.base_dir or os.getcwd(), os.path.expanduser(word))
            if not os.path.isfile(path):
                raise SqlError(f"ADD FILE: {word} is not a file", text, m.start(1))
            self.added_files[os.path.basename(path)] = os.path.abspath(path)
            added.append(os.path.abspath(path))
        return StatementResult("message", text, message="added " + ", ".join(added))

    def _run_transforms(self, text: str, tree: exp.Expression) -> exp.Expression:
        """Run each TRANSFORM query (innermost first) as a job writing the
        command's output to a scratch folder; the statement then reads that
        folder as a table in its place."""
        tree = tree.copy()
        for qt in innermost_first(tree):
            select = qt.parent
            if not isinstance(select, exp.Select):
                raise UnsupportedError("TRANSFORM outside a SELECT list", text, _start(qt))
            columns = output_columns(qt, text)
            inner = split(select, qt, text)
            command = qt.args["command_script"].name
            files = script_files(command, self.added_files, self.base_dir, text)
            job = self.compile(text, inner)
            folder = storage.join(self.scratch(), "transform-" + new_job_id()) + "/"
            scratch_space.register(folder)   # a dead driver's is swept by the next job
            self._transient.append(folder)
            spec = {"prefix": folder, "delimiter": "\t", "width": len(job.columns),
                    "transform": {"command": command, "width": len(columns)}}
            self._prepare(job)
            plans = self._plan(job)
            check_estimate(plans, self.settings)
            result = run_job(job, self.settings, self.backend(), self.scratch(),
                             self.progress() if self.progress else None, plans, text=spec,
                             files=files)
            try:
                remove_unaccepted(folder, {o["uri"] for o in result.outputs})
            finally:
                result.close()
            table = table_for(folder, columns)
            self._extra_tables[table.name.lower()] = table
            new = replacement(table)
            if select is tree:
                tree = new
            else:
                select.replace(new)
        return tree

    def _drop_transient(self) -> None:
        for folder in self._transient:
            storage.delete_prefix(folder)
        self._transient = []
        self._extra_tables = {}

    # ------------------------------------------------------------ functions
    def all_functions(self) -> dict[str, Udf]:
        """The Python UDFs statements may call: permanent ones, shadowed by
        this session's temporary ones of the same name."""
        return {**self.catalog.functions(), **self.functions}

    def _create_function(self, tree: exp.Create, text: str) -> StatementResult:
        udf, temporary = udf_from_create(tree, text, self.base_dir)
        if self.settings.dry_run and not temporary:   # a temporary one changes only this session
            return StatementResult("message", text, message=(
                f"dry run: would create function {udf.name} from {udf.path}; "
                "the catalog is not changed"))
        if temporary:
            self.functions[udf.name] = udf
        elif not self.catalog.create_function(udf, if_not_exists=bool(tree.args.get("exists"))):
            return StatementResult("message", text, message=f"function {udf.name} exists")
        kind = "temporary function" if temporary else "function"
        return StatementResult("message", text, message=(
            f"created {kind} {udf.name} ({'aggregate' if udf.aggregate else 'scalar'}, returns "
            f"{udf.returns.upper()}): {udf.module}.{udf.function} from {udf.path} "
            f"(sha256 {udf.sha256[:12]}…)"))

    def _drop_function(self, tree: exp.Drop, text: str) -> StatementResult:
        names = [t.name for t in tree.args.get("tables") or [tree.this]]
        exists = bool(tree.args.get("exists"))
        if self.settings.dry_run and not tree.args.get("temporary"):
            return StatementResult("message", text, message=(
                f"dry run: would drop function {', '.join(names)}; the catalog is not changed"))
        dropped = []
        for name in names:
            if tree.args.get("temporary"):
                if self.functions.pop(name.lower(), None) is None and not exists:
                    raise SqlError(f"temporary function '{name}' does not exist", text, 0)
                dropped.append(name)
            elif self.catalog.drop_function(name, if_exists=exists) is not None:
                dropped.append(name)
        msg = "dropped function " + ", ".join(dropped) if dropped else "nothing dropped"
        return StatementResult("message", text, message=msg)

    def _show_functions(self, text: str) -> StatementResult:
        rows = []
        for scope, funcs in (("permanent", self.catalog.functions()),
                             ("temporary", self.functions)):
            for u in sorted(funcs.values(), key=lambda u: u.name):
                rows.append([u.name, u.returns.upper(), f"{u.module}.{u.function}", u.path,
                             u.sha256[:12], scope, "aggregate" if u.aggregate else "scalar"])
        return StatementResult("rows", text, ["function", "returns", "python", "file",
                                              "sha256", "scope", "kind"],
                               ["string"] * 7, rows, len(rows))

    def _prepare(self, job: Job) -> None:
        """First use of a built-in table generates the embedded default dataset."""
        used = [t.name.lower() for t in job.tables.values() if t.builtin]
        if used:
            ensure_default_data(used)

    def run_select(self, text: str, tree: exp.Expression | None = None) -> StatementResult:
        t0 = time.perf_counter()
        job = self.compile(text, tree)
        self._prepare(job)
        progress = self.progress() if self.progress else None
        if self.settings.dry_run:
            return self._dry_run(text, self._plan(job), "print the result")
        plans = self._plan(job)
        check_estimate(plans, self.settings)  # before the backend: nothing deployed
        result = run_job(job, self.settings, self.backend(), self.scratch(), progress, plans,
                         counted_from=self._requests0)
        stats = result.stats
        return StatementResult(
            "rows", text, result.columns, result.types, result.rows(), result.total_rows,
            stats=stats, lambda_cost=stats.lambda_cost(self.settings),
            athena_cost=costs.athena_cost(stats.bytes_read or sum(p.bytes for p in plans)),
            seconds=time.perf_counter() - t0, job=result, started=t0)

    def _plan(self, job: Job) -> list:
        try:
            return plan_job(job, self.settings)
        except FileNotFoundError as e:
            unwritten = [t.name for t in job.tables.values()
                         if t.name.lower() in self._dry_tables and not storage.exists(t.location)]
            if self.settings.dry_run and unwritten:  # a dry CREATE TABLE AS wrote nothing
                raise SqlError(f"dry run: not planned: it reads {', '.join(unwritten)}, which an "
                               "earlier statement would write (its splits are not known before "
                               "that)") from None
            raise SqlError(str(e)) from None

    def _dry_run(self, text: str, plans: list, action: str) -> StatementResult:
        from sqlmr.dry_run import dry_run_text
        return StatementResult("explain", text, message=dry_run_text(
            plans, self.settings, action, self.dry_run_splits))

    def _explain(self, text: str) -> StatementResult:
        m = re.match(r"\s*EXPLAIN(\s+CODE\b)?", text, re.I | re.S)
        code = bool(m.group(1))
        inner_offset = m.end()
        inner = text[inner_offset:]
        lead = len(inner) - len(inner.lstrip())
        inner = inner.strip()
        if not inner:
            raise SqlError("EXPLAIN needs a SELECT statement", text, len(text))
        move = None
        try:
            tree = parse_one(inner, self.settings.dialect)
            if has_transform(tree):
                raise UnsupportedError("EXPLAIN of a TRANSFORM query (it would run the "
                                       "command to plan the rest)", inner, 0)
            query, move = _write_target(tree, inner, self.base_dir, self._warehouse)
            job = self.compile(inner, query)
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
            f"Plan: {plural(est.map_tasks, 'map task')} over {plural(est.splits, 'split')}, "
            f"{plural(est.reduce_tasks, 'reduce task')}; input {size_text(est.bytes_read)}",
            f"Estimate on Lambda ({est.memory_text(s.memory_mb)}, {s.architecture}): "
            f"~{lam.gb_seconds:.1f} GB-s, {plural(lam.requests, 'request')}, {lam.gets:,} S3 GET, "
            f"{lam.puts:,} S3 PUT/LIST = {costs.money(lam.total)}",
            f"Athena for the same bytes: {costs.money(costs.athena_cost(est.bytes_read))} "
            f"($5/TB, 10 MB minimum)",
        ] + ([f"max_cost {costs.money(s.max_cost)}: the estimate is "
              + ("over it, a run would be refused" if lam.total > s.max_cost else "within it")]
             if s.max_cost > 0 else []) + [f"Note: {n}" for n in job.notes]
        for st, p in zip(job.stages, plans):
            st.sorted = job.sorted  # type: ignore[attr-defined]
        message = render_explain(job.stages, [p.facts() for p in plans], summary)
        if move is not None:
            how = ("the final tasks write text files" if job.limit is None and not job.sorted
                   else "the driver writes the merged rows as one text file")
            # a function replacement: the user's path is text, never a regex template
            where = ("a staging prefix under the job's scratch" if self.settings.backend == "lambda"
                     else "a hidden staging folder")
            moved = (f"  Stage: Stage-0\n    Move Operator ({how} into {where}, "
                     f"committed to {move})")
            message = re.sub(r"  Stage: Stage-0\n    Fetch Operator[^\n]*", lambda _: moved,
                             message)
        return StatementResult("explain", text, message=message)

    # ------------------------------------------------- CREATE TABLE AS, INSERT
    def _create_as(self, tree: exp.Create, text: str) -> StatementResult:
        """``CREATE TABLE name [ROW FORMAT …] [LOCATION …] AS SELECT …``: write the
        result as a text table, then register it."""
        t0 = time.perf_counter()
        if (tree.args.get("kind") or "").upper() != "TABLE":
            raise UnsupportedError(f"CREATE {tree.args.get('kind')} … AS SELECT", text, 0)
        target = tree.this
        if isinstance(target, exp.Schema):
            raise SqlError("CREATE TABLE … AS SELECT takes its columns from the query: "
                           "leave out the column list", text, _start(target))
        if target.args.get("db") is not None:
            raise UnsupportedError("database-qualified table names", text, _start(target))
        name = check_table_name(target.name, text, _start(target))
        query = tree.args["expression"]
        if not isinstance(query, (exp.Select, exp.SetOperation)):
            raise UnsupportedError(f"{query.key.upper()} in CREATE TABLE … AS", text, _start(query))
        delimiter, location = storage_properties(tree.args.get("properties"), text,
                                                 (exp.ExternalProperty,))
        existing = self.catalog.tables().get(name.lower())
        if existing is not None:
            if tree.args.get("exists"):
                return StatementResult("message", text,
                                       message=f"table {existing.name} already exists, skipped")
            if existing.builtin:
                raise SqlError(f"'{name}' is a built-in table; choose another name", text,
                               _start(target))
            raise SqlError(f"table '{name}' already exists", text, _start(target),
                           "DROP TABLE it first, or use CREATE TABLE IF NOT EXISTS")
        managed = location is None
        uri = self._warehouse(name) if managed else resolve_location(location, self.base_dir)
        job = self.compile(text, query)
        columns = _table_columns(job, text)
        table = Table(name, columns, uri, delimiter, properties={"managed": True} if managed else {})
        planned = self._plan_write(job, text, uri, overwrite=False)
        if self.settings.dry_run:
            self._dry_tables[name.lower()] = table
            return self._dry_run(text, planned[1], f"write the result to {uri}, then register "
                                 f"table {name} ({plural(len(columns), 'column')}: "
                                 + ", ".join(f"{c.name} {c.type.upper()}" for c in columns) + ")")
        # a managed table on a local disk gets no _SUCCESS marker (its DROP
        # deletes only part files); on S3 readers need the manifest
        written = self._write_result(job, text, uri, delimiter, overwrite=False,
                                     marker=not managed or storage.is_s3(uri), planned=planned)
        try:
            self.catalog.create(table)
        except BaseException:
            if managed:
                storage.delete_prefix(uri)
            raise
        return self._written(text, f"created table {name} ({plural(len(columns), 'column')}, "
                             f"{_files(written)}) at {uri}", written, t0)

    def _insert(self, tree: exp.Insert, text: str) -> StatementResult:
        """``INSERT OVERWRITE [LOCAL] DIRECTORY 'path' [ROW FORMAT …] SELECT …``:
        replace the folder's files with the result; nothing is registered."""
        t0 = time.perf_counter()
        target = tree.this
        if not isinstance(target, exp.Directory) or not tree.args.get("overwrite"):
            raise UnsupportedError("INSERT into a table (INSERT OVERWRITE DIRECTORY 'path' "
                                   "SELECT … and CREATE TABLE … AS SELECT … write results)", text, 0)
        query = tree.args["expression"]
        if not isinstance(query, (exp.Select, exp.SetOperation)):
            raise UnsupportedError(f"{query.key.upper()} in INSERT", text, _start(query))
        props = exp.Properties(expressions=[target.args["row_format"]]) \
            if target.args.get("row_format") is not None else None
        delimiter, _ = storage_properties(props, text)
        uri = resolve_location(target.this.name, self.base_dir)
        job = self.compile(text, query)
        planned = self._plan_write(job, text, uri, overwrite=True)
        if self.settings.dry_run:
            return self._dry_run(text, planned[1], f"replace the files at {uri} with the result"
                                 + (f" ({planned[0]})" if planned[0] else ""))
        written = self._write_result(job, text, uri, delimiter, overwrite=True, planned=planned)
        replaced = f" ({written.replaced})" if written.replaced else ""
        return self._written(text, f"wrote {_files(written)} to {uri}{replaced}", written, t0)

    def _written(self, text: str, message: str, written, t0: float) -> StatementResult:
        """The result of a statement that wrote a query's rows as files."""
        return StatementResult(
            "message", text, message=message, stats=written.stats,
            lambda_cost=written.stats.lambda_cost(self.settings),
            athena_cost=costs.athena_cost(written.stats.bytes_read),
            seconds=time.perf_counter() - t0, started=t0)

    def _plan_write(self, job: Job, text: str, uri: str, overwrite: bool) -> tuple[str, list]:
        """The checks a write to ``uri`` passes before its job runs, and the
        job's plan: (what an overwrite would replace, plans)."""
        self._prepare(job)
        from sqlmr import scratch
        # a dead driver's half-done commit (here, say) is resolved first
        scratch.sweep(s3=storage.is_s3(uri) or self.settings.backend == "lambda")
        what = "INSERT OVERWRITE DIRECTORY" if overwrite else "LOCATION"
        if overwrite:
            check_protected_folder(uri, text)
        check_table_overlap(uri, [*job.tables.values(), *self.catalog.tables().values()],
                            text, what)
        replaced = ""
        if overwrite:
            replaced, _ = replaced_contents(uri, self.settings.force, text)
        else:
            check_empty(uri, text)
        return replaced, self._plan(job)

    def _write_result(self, job: Job, text: str, uri: str, delimiter: str,
                      overwrite: bool, marker: bool = True,
                      planned: tuple[str, list] | None = None) -> "_Written":
        """Run ``job`` and leave its result as delimited text files at ``uri``.

        Checked before the job runs (see :mod:`sqlmr.table_writes`): never at
        or around a table's location; a CREATE TABLE AS only into a missing or
        empty folder; an overwrite never of a protected folder, and of one
        holding files sqlmr did not write only with ``force``.

        Atomic from the reader's view: files are written to a staging folder
        and appear together when it is committed (a rename on local disks; on
        S3 server-side copies, then the manifest; see :mod:`sqlmr.table_writes`).
        Nothing half-written stays behind after an error or Ctrl-C."""
        replaced, plans = planned or self._plan_write(job, text, uri, overwrite)
        check_estimate(plans, self.settings)  # before the backend: nothing deployed
        # Lambda tasks may write only under the job prefix: they stage there
        staging = _staging(uri, self.scratch() if self.settings.backend == "lambda" else None)
        width = len(job.columns)
        # unordered and unlimited results: every final task writes its own file;
        # otherwise the driver merges (ORDER BY, LIMIT) and writes one file
        direct = job.limit is None and not job.sorted
        spec = {"prefix": staging, "delimiter": delimiter, "width": width} if direct else None
        progress = self.progress() if self.progress else None
        try:
            result = run_job(job, self.settings, self.backend(), self.scratch(), progress,
                             plans, text=spec, counted_from=self._requests0)
            try:
                if direct:
                    parts = [o["uri"] for o in result.outputs if o["records"][0]]
                    rows = sum(o["records"][0] for o in result.outputs)
                else:
                    parts, rows = _write_rows(result.rows(), staging, delimiter, width)
            finally:
                result.close()
            files = _commit(staging, parts, uri, overwrite, marker, self.settings.force)
        except TextValueError as e:
            _discard(staging)
            raise SqlError(str(e)) from None
        except TaskFailedError as e:
            _discard(staging)
            if "TextValueError: " in e.message:  # a value the text format cannot hold
                raise SqlError(e.message.split("TextValueError: ", 1)[1]) from None
            raise
        except BaseException:
            _discard(staging)
            raise
        try:  # what is left: attempts not accepted, files copied (S3)
            _discard(staging)
        except Exception:  # noqa: BLE001 - committed; the claim has it swept later
            pass
        if storage.is_s3(uri):  # a copy per file, the intent and the manifest: PUT-priced
            result.stats.puts += files + 2
        return _Written(rows, files, result.stats, replaced)

    # ------------------------------------------------------------------ DDL
    def _create(self, tree: exp.Create, text: str) -> StatementResult:
        if (tree.args.get("kind") or "").upper() != "TABLE":
            raise UnsupportedError(f"CREATE {tree.args.get('kind')}", text, 0)
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if tree.args.get("exists") and isinstance(target, exp.Table) and \
                target.name.lower() in self.catalog.tables():
            # before any inference: the files need not be readable to skip
            return StatementResult("message", text,
                                   message=f"table {target.name} already exists, skipped")
        table = table_from_create(tree, text, self.base_dir, self.catalog)
        if self.settings.dry_run:
            return self._dry_create(table, bool(tree.args.get("exists")), text)
        created = self.catalog.create(table, if_not_exists=bool(tree.args.get("exists")))
        if not created:
            return StatementResult("message", text, message=f"table {table.name} already exists, skipped")
        note = ""
        if not storage.is_s3(table.location) and not storage.exists(table.location):
            note = f" (note: {storage.to_path(table.location)} does not exist yet)"
        what = plural(len(table.columns), 'column')
        if not isinstance(tree.this, exp.Schema):  # inferred or copied: say what it got
            what += (": " + ", ".join(f"{c.name} {c.type.upper()}" for c in table.columns)
                     + "; " + format_description(table))
        if table.partition_columns:
            what += f", partitioned by {', '.join(c.name for c in table.partition_columns)}"
        return StatementResult("message", text, message=f"created table {table.name} "
                               f"({what}) at {table.location}{note}")

    def _dry_create(self, table: Table, if_not_exists: bool, text: str) -> StatementResult:
        """CREATE TABLE in a dry run: checked as the catalog would, and seen
        by the script's later statements, but not registered."""
        key = check_table_name(table.name).lower()
        existing = self.catalog.tables().get(key) or self._dry_tables.get(key)
        if existing is not None and existing.builtin:
            raise SqlError(f"'{table.name}' is a built-in table; choose another name", text, 0)
        if existing is not None:
            if if_not_exists:
                return StatementResult("message", text, message=(
                    f"dry run: table {table.name} already exists, would skip"))
            raise SqlError(f"table '{table.name}' already exists", text, 0,
                           "DROP TABLE it first, or use CREATE EXTERNAL TABLE IF NOT EXISTS")
        self._dry_tables[key] = table
        cols = ", ".join(f"{c.name} {c.type.upper()}" for c in table.all_columns)
        return StatementResult("message", text, message=(
            f"dry run: would create table {table.name} ({cols}; {format_description(table)}) "
            f"at {table.location}; the catalog is not changed"))

    def _dry_drop(self, names: list[str], if_exists: bool, text: str) -> StatementResult:
        said = []
        for name in names:
            table = self.catalog.tables().get(name.lower()) or self._dry_tables.get(name.lower())
            if table is not None and table.builtin:
                raise SqlError(f"'{name}' is a built-in table and cannot be dropped", text, 0)
            if table is None:
                if if_exists:
                    continue
                self.catalog.get(name)   # the catalog's error, with a suggestion
            self._dry_tables.pop(name.lower(), None)
            files = "and its files" if table.properties.get("managed") else "its files are kept"
            said.append(f"{name} ({files})")
        return StatementResult("message", text, message=(
            "dry run: would drop table " + ", ".join(said) + "; the catalog is not changed"
            if said else "dry run: nothing to drop"))

    def _drop(self, tree: exp.Drop, text: str) -> StatementResult:
        if (tree.args.get("kind") or "").upper() != "TABLE":
            raise UnsupportedError(f"DROP {tree.args.get('kind')}", text, 0)
        names = [t.name for t in tree.args.get("tables") or [tree.this]]
        if self.settings.dry_run:
            return self._dry_drop(names, bool(tree.args.get("exists")), text)
        dropped = []
        deleted = []
        for name in names:
            table = self.catalog.drop(name, if_exists=bool(tree.args.get("exists")))
            if table is not None:
                dropped.append(name)
                if delete_managed_files(table):  # only a managed table's own files
                    deleted.append(name)
        if not dropped:
            msg = "nothing dropped"
        elif deleted and len(deleted) == len(dropped):
            msg = "dropped table " + ", ".join(dropped) + " and its files"
        else:
            msg = "dropped table " + ", ".join(dropped) + " (its files are kept)"
        return StatementResult("message", text, message=msg)

    def _show_tables(self, text: str) -> StatementResult:
        rows = []
        for t in sorted(self.catalog.tables().values(), key=lambda t: t.name.lower()):
            cols = ", ".join(c.name for c in t.all_columns)
            rows.append([t.name, cols if len(cols) <= 48 else cols[:47] + "…",
                         t.location + (" (built-in)" if t.builtin else "")])
        return StatementResult("rows", text, ["table", "columns", "location"],
                               ["string"] * 3, rows, len(rows))

    def _describe(self, text: str) -> StatementResult:
        q = re.match(r"\s*(?:DESCRIBE|DESC)\s+(?=(SELECT|WITH|FROM|'))", text, re.I | re.S)
        if q:
            return self._describe_query(text, q.end(), q.group(1) == "'")
        m = re.match(r"\s*(?:DESCRIBE|DESC)\s+(?:TABLE\s+)?([`\"]?)(\w+)\1\s*$", text, re.I)
        if not m:
            raise SqlError("usage: DESCRIBE table_name", text, 0)
        try:
            t = self.catalog.get(m.group(2))
        except SqlError as e:
            raise SqlError(e.message, text, m.start(2), e.hint) from None
        rows = [[c.name, c.type.upper()] for c in t.all_columns]
        if t.partition_columns:  # as Hive lists them
            rows += [["", ""], ["# Partition Information", ""]]
            rows += [[c.name, c.type.upper()] for c in t.partition_columns]
        msg = f"location: {t.location}, {format_description(t)}"
        return StatementResult("rows", text, ["column", "type"], ["string", "string"], rows,
                               len(rows), message=msg)

    def _partitions(self, text: str) -> StatementResult:
        """``SHOW PARTITIONS t`` (one row per partition, sorted) or ``MSCK
        [REPAIR] TABLE t`` (what a query would find: partitions are found
        when a query runs, so there is nothing to record)."""
        kind, name, at = partitions.parse_statement(text)
        try:
            table = self.catalog.get(name)
        except SqlError as e:
            raise SqlError(e.message, text, at, e.hint) from None
        if not table.partition_columns:
            raise SqlError(f"table '{table.name}' is not partitioned", text, at,
                           "a table declared with PARTITIONED BY (col TYPE, …) has partitions")
        try:
            found = partitions.list_partitions(table, plan_files)
        except FileNotFoundError as e:
            raise SqlError(str(e)) from None
        if kind == "show":
            rows = [[p.name] for p in found.partitions]
            return StatementResult("rows", text, ["partition"], ["string"], rows, len(rows))
        return StatementResult("message", text, message=partitions.repair_message(table, found))

    def _describe_query(self, text: str, at: int, path: bool) -> StatementResult:
        """``DESCRIBE SELECT …``: the query's output columns and their types;
        ``DESCRIBE 'path'`` those of ``SELECT * FROM 'path'``."""
        inner = text[at:]
        if path:
            inner = "SELECT * FROM " + inner
            at -= len("SELECT * FROM ")
        try:
            job = self.compile(inner)
        except SqlError as e:
            if e.sql == inner:
                raise SqlError(e.message, text, None if e.offset is None else
                               max(0, e.offset + at), e.hint) from None
            raise
        rows = [[n, (t or "string").upper()] for n, t in zip(job.columns, job.types)]
        catalog = self.catalog.tables()
        files = [t for t in job.tables.values() if t.name.lower() not in catalog]
        msg = "; ".join(f"{t.name}: {format_description(t)} at {t.location}" for t in files)
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
        if m.group(1).lower() == "catalog":   # later statements use the catalog named
            self.catalog = open_catalog(self.settings)
        return StatementResult("message", text, message=f"{m.group(1)} = {getattr(self.settings, m.group(1).replace('-', '_').lower())}")


def refuse_unsupported_sources(tree: exp.Expression, text: str) -> None:
    """Say plainly what a query reads that sqlmr cannot: a table function in
    FROM (which has no table name at all)."""
    for t in tree.find_all(exp.Table):
        if isinstance(t.this, exp.Func):
            at = _start(t.this)
            spelt = text[at:].split("(", 1)[0].strip() if at is not None else ""
            name = spelt if re.fullmatch(r"[\w.]+", spelt) else t.this.sql().split("(", 1)[0]
            raise UnsupportedError(f"table functions in FROM ({name}(…)); 'path', "
                                   "read_csv('path', …) and read_json('path') read files",
                                   text, _start(t.this))


_QUERIES = (exp.Select, exp.SetOperation)


def _write_target(tree: exp.Expression, text: str, base_dir: str | None = None,
                  warehouse: Callable[[str], str] = warehouse_location
                  ) -> tuple[exp.Expression, str | None]:
    """The query of a statement EXPLAIN is asked about, and where a CREATE
    TABLE AS / INSERT OVERWRITE DIRECTORY would write it (None for a SELECT)."""
    if isinstance(tree, exp.Create) and isinstance(tree.args.get("expression"), _QUERIES):
        _, location = storage_properties(tree.args.get("properties"), text, (exp.ExternalProperty,))
        uri = (warehouse(tree.this.name) if location is None
               else resolve_location(location, base_dir))
        return tree.args["expression"], f"{uri}, then table {tree.this.name} is registered"
    if isinstance(tree, exp.Insert) and isinstance(tree.this, exp.Directory) and \
            isinstance(tree.args.get("expression"), _QUERIES):
        return tree.args["expression"], resolve_location(tree.this.this.name, base_dir)
    return tree, None


@dataclass
class _Written:
    rows: int
    files: int
    stats: JobStats
    replaced: str = ""   # what an overwrite replaced, said in its message


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _table_columns(job: Job, text: str) -> list[Column]:
    """Columns of a table made from a query: its output names (an unnamed
    expression is ``_c<i>``, as in Hive; a repeated name gets ``_1``, ``_2``
    …, as in DuckDB) and value types (unknown: STRING)."""
    names = [name if _NAME.match(name) else f"_c{i}" for i, name in enumerate(job.columns)]
    return [Column(name, typ or "string") for name, typ in zip(unique_names(names), job.types)]


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
                        ensure_default_data([t.name.lower()])
                    size = sum(n for _, n in storage.list_files(t.location))
                except (FileNotFoundError, OSError):
                    size = None
                except storage.InputError as e:  # unreadable: named with its table
                    raise SqlError(f"table '{name}': {e}") from None
            self[name] = size
        value = dict.get(self, name)
        return default if value is None else value


def ensure_default_data(tables: Iterable[str] = ("rankings", "uservisits")) -> None:
    """Generate the embedded AMPLab sample under ``$SQLMR_HOME/data/amplab`` if empty:
    rankings and uservisits, and documents once a query reads it."""
    data = config.default_data_dir()
    want = {"rankings", "uservisits"} | set(tables)
    if all((data / t).is_dir() and any((data / t).iterdir()) for t in want):
        return
    from sqlmr.gen.amplab import ALL_TABLES, ensure_default
    ensure_default(str(data), tables=[t for t in ALL_TABLES if t in want])


def _files(written) -> str:
    return f"{plural(written.rows, 'row')} in {plural(written.files, 'file')}"


