"""MapReduce jobs in Python on the driver: ``WordCount.run(...)`` and ``sqlmr run``.

A job is a stage of the usual kind per step: map tasks over the input's
splits (a later step: over the previous step's output), a shuffle by key,
reduce tasks.  Its generated module binds the user's class
(the file ships with the job, content addressed and sha256-checked in every
task, as a UDF's file does) and calls :mod:`runtime.mrjob`; ``sqlmr run``
never imports the user's file on the driver (the class is found with ``ast``).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import IO, Callable

from compiler.errors import SqlError
from compiler.job import Job
from compiler.plan import Scan
from compiler.schema import Column, Table
from compiler.stages import Phase, RowsIn, Stage, TableIn
from compiler.udfs import Udf
from runtime import mrjob as runtime_mrjob
from runtime import storage
from runtime.mrjob import MRStep  # noqa: F401  (sqlmr.MRStep)
from sqlmr.config import Settings, load_settings
from sqlmr.driver import JobStats, run_job


class MRJobDefinitionError(SqlError):
    """A job file or class sqlmr cannot run (said before any task runs)."""


class MRJob(runtime_mrjob.MRJob):
    """A MapReduce job: override ``mapper(line)``, ``reducer(key, values)``
    and optionally ``combiner(key, values)``; run it with :meth:`run`."""

    @classmethod
    def run(cls, input: str, output: str | None = None, backend: str | None = None,
            **settings: object) -> "MRResult":
        """Run the job over the files at ``input``; lines ``key\\tvalue`` are
        written as part files under ``output`` (else returned in the result).
        ``settings`` are sqlmr settings (``reducers``, ``split_mb``, ``workers``…)."""
        if runtime_mrjob.IN_TASK:   # the job's file imported in a task: define, never run
            return None  # type: ignore[return-value]
        path = inspect.getsourcefile(cls)
        if path is None or cls.__qualname__ != cls.__name__:
            raise MRJobDefinitionError(f"{cls.__name__}: a job must be a top-level class of a "
                                       f".py file (the file is shipped to the tasks)")
        steps = 1
        if cls.steps is not runtime_mrjob.MRJob.steps:
            try:
                steps = len(runtime_mrjob.steps_of(cls()))
            except runtime_mrjob.MRJobError as e:
                raise MRJobDefinitionError(f"{cls.__name__}: {e}") from None
        s = load_settings()
        if backend is not None:
            s.backend = backend
        for name, value in settings.items():
            if not hasattr(s, name):
                raise MRJobDefinitionError(f"unknown setting {name!r}")
            setattr(s, name, value)
        from sqlmr.progress import ProgressBar
        bar = ProgressBar() if sys.stderr.isatty() else None
        try:
            result = run_file(path, cls.__name__, input, output, s, progress=bar, steps=steps)
        finally:
            if bar is not None:
                bar.clear()
        if s.timing:
            for line in summary_lines(result, s):
                print(line, file=sys.stderr)
        return result


@dataclass
class MRResult:
    """What a job did: its statistics and where its output went (or its lines)."""

    stats: JobStats
    lines: list[str]            # the output lines when no output folder was named
    parts: list[str]            # the part files written under the output folder
    lambda_cost: object = None


def find_job_class(path: str) -> tuple[str, int]:
    """The name of the one class of the file deriving from ``MRJob`` and its
    number of steps, read with ``ast`` (the file is not run on the driver)."""
    try:
        source = open(path, encoding="utf-8").read()
    except OSError as e:
        raise MRJobDefinitionError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        tree = ast.parse(source, path)
    except SyntaxError as e:
        raise MRJobDefinitionError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Name) and b.id == "MRJob")
                or (isinstance(b, ast.Attribute) and b.attr == "MRJob") for b in node.bases):
            found.append(node)
    if len(found) != 1:
        raise MRJobDefinitionError(
            f"{path}: expected one class deriving from MRJob, found "
            f"{len(found) or 'none'}{': ' + ', '.join(c.name for c in found) if found else ''}")
    cls = found[0]
    defs = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "steps"]
    if not defs:
        return cls.name, 1
    counts = {len(r.value.elts) for r in ast.walk(defs[-1])
              if isinstance(r, ast.Return) and isinstance(r.value, (ast.List, ast.Tuple))}
    if len(counts) != 1 or 0 in counts:
        raise MRJobDefinitionError(
            f"{path}: {cls.name}.steps() must return a list of MRStep(...) written out "
            f"(sqlmr counts the steps without running the file)")
    return cls.name, counts.pop()


def job_module(module: str, class_name: str, sha256: str, steps: int = 1) -> str:
    """The generated module of a job: the user's class bound in the task."""
    return f'''"""MapReduce job {module}.{class_name}."""
import sys
import types
from runtime import mrjob as _mr
_mr.IN_TASK = True
try:
    import sqlmr
except ImportError:  # a Lambda task: the runtime's base classes stand in for sqlmr's
    sqlmr = sys.modules["sqlmr"] = types.ModuleType("sqlmr")
try:
    sqlmr.MRJob, sqlmr.MRStep
except Exception:  # noqa: BLE001 — an sqlmr without them (or that cannot load them)
    sqlmr.MRJob, sqlmr.MRStep = _mr.MRJob, _mr.MRStep
from runtime.udfs import Unbound

JOB = Unbound({class_name!r}, {module!r}, {class_name!r}, {sha256!r})
''' + "".join(f'''

def mr_map_{i}(ctx):
    _mr.map_task(ctx, JOB, {i})


def mr_reduce_{i}(ctx):
    _mr.reduce_task(ctx, JOB, {i}, final={i == steps - 1})
''' for i in range(steps))


def build_job(path: str, class_name: str, input: str, steps: int = 1) -> tuple[Job, Udf]:
    """The job of a job class (a stage per step, each reading the previous
    one's output), and its file to ship."""
    module = os.path.splitext(os.path.basename(path))[0]
    if not module.isidentifier():
        raise MRJobDefinitionError(f"{path}: the file name must be a Python module name")
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    table = Table("input", [Column("line", "string")], storage.to_uri(input))
    scan = Scan(table, "input", [0], None)
    stages: list[Stage] = []
    for i in range(steps):
        source_in = TableIn(scan) if i == 0 else RowsIn(stages[-1], [])
        stages.append(Stage(i + 1, maps=[Phase("map", source_in, [], None, f"mr_map_{i}")],
                            reduce=Phase("reduce", source_in, [], None, f"mr_reduce_{i}"),
                            reads=stages[-1:], tables=["input"]))
    source = job_module(module, class_name, sha, steps)
    job = Job(sql=f"{module}.{class_name}", stages=stages, source=source,
              columns=["key", "value"], types=["string", "string"], width=2, sorted=False,
              limit=None, tables={"input": table})
    return job, Udf(class_name, module, class_name, os.path.abspath(path), sha, "string")


def run_file(path: str, class_name: str, input: str, output: str | None, settings: Settings,
             progress: Callable | None = None, steps: int = 1) -> MRResult:
    """Run a job class of a file; output lines go to part files under ``output``."""
    from sqlmr.session import Session
    from sqlmr.table_writes import check_empty
    job, udf = build_job(path, class_name, input, steps)
    out_uri = storage.to_uri(output) if output else None
    if out_uri is not None:
        check_empty(out_uri)
    session = Session(settings, progress=progress)
    try:
        try:
            result = run_job(job, settings, session.backend(), session.scratch(), progress,
                             files=[udf])
        except FileNotFoundError:
            raise MRJobDefinitionError(f"input {input} does not exist") from None
        try:
            lines: list[str] = []
            parts: list[str] = []
            for i, o in enumerate(result.outputs):
                text = "".join(f"{k}\t{v}\n" for k, v in result._stream(o))
                if out_uri is None:
                    lines.extend(text.splitlines())
                else:
                    part = storage.join(out_uri, f"part-{i:05d}")
                    storage.write_bytes(part, text.encode("utf-8"))
                    parts.append(part)
        finally:
            result.close()
        return MRResult(result.stats, lines, parts, result.stats.lambda_cost(settings))
    finally:
        session.close()


def add_arguments(p) -> None:
    p.add_argument("file", help="a .py file with one class deriving from sqlmr.MRJob")
    p.add_argument("--input", "-i", required=True, help="a file or folder (local or s3://)")
    p.add_argument("--output", "-o", help="an empty or new folder for the part files "
                                          "(default: print the lines)")
    p.add_argument("--backend", choices=["local", "lambda"])
    p.add_argument("--workers", type=int)
    p.add_argument("--split-mb", type=float)
    p.add_argument("--reducers", type=int)
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--debug", action="store_true")


def main(args, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``sqlmr run``: exit status 0, 1 (the job failed) or 2 (bad job file)."""
    from sqlmr.backends import TaskFailedError
    from sqlmr.cli import task_error_text
    from sqlmr.progress import ProgressBar
    out = out or sys.stdout
    err = err or sys.stderr
    settings = load_settings()
    for name in ("backend", "workers", "split_mb", "reducers"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    bar = ProgressBar()
    try:
        name, steps = find_job_class(args.file)
        result = run_file(args.file, name, args.input, args.output, settings,
                          progress=lambda *a: bar(*a), steps=steps)
    except SqlError as e:
        bar.clear()
        print(e.render(), file=err)
        return 2
    except TaskFailedError as e:
        bar.clear()
        print(f"sqlmr: {task_error_text(e, args.debug)}", file=err)
        return 1
    except Exception as e:  # noqa: BLE001 — one line, the traceback on --debug
        bar.clear()
        if args.debug:
            raise
        print(f"sqlmr: error: {e}", file=err)
        return 1
    bar.clear()
    for line in result.lines:
        print(line, file=out)
    if result.parts:
        print(f"wrote {len(result.parts)} part files to {args.output}", file=err)
    if not args.no_timing:
        for line in summary_lines(result, settings):
            print(line, file=err)
    return 0


def summary_lines(result: MRResult, settings: Settings) -> list[str]:
    """Time, tasks and the cost line, as after a query."""
    from sqlmr import cost, render
    from sqlmr.session import StatementResult
    shown = StatementResult("message", stats=result.stats, lambda_cost=result.lambda_cost,
                            athena_cost=cost.athena_cost(result.stats.bytes_read),
                            seconds=result.stats.seconds)
    return render.summary_lines(shown, settings)
