"""The ``sqlmr`` command.

    sqlmr                          interactive SQL (REPL) on a terminal
    sqlmr -e "SQL[; SQL …]"         run statements
    sqlmr -f query.sql              run a script
    sqlmr gen amplab --scale SF …   generate AMPLab benchmark data
    sqlmr bench …                   reproduce the AMPLab benchmark table
    sqlmr lambda deploy|status|undeploy
    sqlmr clean                    remove scratch and staging left by dead jobs

Exit status: 0 ok, 1 query error, 2 usage error, 3 refused by --max-cost (its
estimate is over the limit; nothing ran), 4 stopped by --max-cost (the finished
tasks cost more than the limit), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from typing import IO, Callable

from compiler.errors import SqlError
from sqlmr import __version__
from sqlmr.backends import JobCancelledError, TaskFailedError
from sqlmr.config import FORMATS, Settings, load_settings, parse_value
from sqlmr.cost_guard import CostLimitError
from sqlmr.progress import ProgressBar
from sqlmr.render import (FILE_FORMATS, cancelled_lines, format_for_path, plural, rows_line,
                          summary_lines, table_text, take, write_output,
                          write_output_file)
from sqlmr.session import Session, StatementResult

SUBCOMMANDS = ("gen", "bench", "lambda", "clean", "run", "results", "schedule")
EXIT_COST_REFUSED = 3   # --max-cost: the estimate is over the limit, nothing ran
EXIT_COST_STOPPED = 4   # --max-cost: the running job passed the limit and was stopped
_terminated: list[int] = []  # the signal that stopped the script (SIGTERM), if any


def _on_sigterm(signum: int, frame) -> None:
    """SIGTERM (`timeout`, CI cancellation, `docker stop`) is handled like
    Ctrl-C: the job is cancelled, its workers stopped, its scratch removed."""
    _terminated.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt cleanup
    raise KeyboardInterrupt


def _handle_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding program): its business
        pass


def _setting_type(name: str, positive: bool = False) -> Callable[[str], object]:
    """An argparse type for a flag that sets ``name``: the same checks as the
    config file and SET, so ``--workers -1`` is a usage error (exit 2) before
    any work; ``positive`` also refuses 0 (a flag asks for a real count, the
    automatic choice is leaving the flag out)."""
    default = getattr(Settings(), name)

    def convert(text: str) -> object:
        try:
            if positive and type(default)(text) <= 0:
                raise argparse.ArgumentTypeError(
                    f"must be more than 0, not {text} (leave the flag out for the automatic "
                    "choice)")
        except ValueError:
            pass  # not a number: parse_value says so
        try:
            return parse_value(name, text, default)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sqlmr",
        description="SQL over large text data (CSV / logs on disk or S3), compiled to "
                    "MapReduce and run on a local process pool or AWS Lambda.",
        epilog="Subcommands: 'sqlmr gen --help', 'sqlmr bench --help', 'sqlmr lambda --help', 'sqlmr run --help'. "
               "State (catalog, history, default data) lives in $SQLMR_HOME (default ~/.sqlmr).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-e", "--execute", metavar="SQL", help="run these statements and exit")
    src.add_argument("-f", "--file", metavar="FILE", help="run the statements in FILE ('-' = stdin)")
    p.add_argument("--format", choices=list(FORMATS),
                   help="result format (csv/json: only data on stdout, timing on stderr)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the full result to FILE (format from its extension: "
                        + ", ".join(FILE_FORMATS) + "; else --format)")
    p.add_argument("--max-rows", type=_setting_type("max_rows"), metavar="N",
                   help="rows shown on a terminal (default 40, 0 = all); a pipe or file gets every row")
    p.add_argument("--workers", type=_setting_type("workers", positive=True), metavar="N",
                   help="local worker processes (default: cores)")
    p.add_argument("--backend", choices=["local", "lambda"], help="where tasks run (default local)")
    p.add_argument("--driver", choices=["local", "lambda"],
                   help="where the driver runs: here (default) or the driver function "
                        "(needs catalog = s3://…; see 'sqlmr results --help')")
    p.add_argument("--detach", action="store_true",
                   help="with --driver lambda: print the query id and return at once")
    p.add_argument("--dialect", type=_setting_type("dialect"), metavar="NAME",
                   help="SQL dialect for sqlglot (default hive)")
    p.add_argument("--split-mb", type=_setting_type("split_mb", positive=True), metavar="MB",
                   help="bytes per map split (default: from input size)")
    p.add_argument("--reducers", type=_setting_type("reducers", positive=True), metavar="N",
                   help="reduce tasks (default: from input size)")
    p.add_argument("--shuffle", choices=["auto", "direct", "combine"],
                   help="combiners between maps and reducers: auto (by planned request "
                        "count), direct (none) or combine (default auto)")
    p.add_argument("--reduce-mb", type=_setting_type("reduce_mb", positive=True), metavar="MB",
                   help="shuffled bytes per reducer (default: chosen per backend)")
    p.add_argument("--memory", type=_setting_type("memory_mb"), metavar="MB",
                   help="Lambda memory size for cost, 128-10240 (default 1769)")
    p.add_argument("--max-cost", type=_setting_type("max_cost"), metavar="DOLLARS",
                   help="refuse a query whose estimate is over DOLLARS (exit 3), and stop one "
                        "whose finished tasks cost more (exit 4); 0 = no limit")
    p.add_argument("--dry-run", action="store_true",
                   help="plan each query, list its splits and print its estimate; run and "
                        "deploy nothing, change no table")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="with --dry-run: list every split")
    p.add_argument("--strict", action="store_true", help="malformed rows are an error")
    p.add_argument("--keep-scratch", action="store_true", help="keep the job's scratch data")
    p.add_argument("--force", action="store_true",
                   help="INSERT OVERWRITE DIRECTORY may replace a folder holding files sqlmr "
                        "did not write (never /, home, $SQLMR_HOME, the current directory or "
                        "a table's location)")
    p.add_argument("--no-timing", action="store_true", help="do not print time and cost")
    p.add_argument("--stats", metavar="FILE",
                   help="write one JSON object for the run: per statement its stages (tasks, "
                        "bytes, task-seconds), counted S3 requests, invocations, GB-s, cost, "
                        "wall time")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"sqlmr {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as e:
        print(f"sqlmr: config: {e}", file=sys.stderr)
        return 2
    for name, value in (("format", args.format), ("max_rows", args.max_rows),
                        ("workers", args.workers), ("backend", args.backend),
                        ("dialect", args.dialect), ("split_mb", args.split_mb),
                        ("reducers", args.reducers), ("memory_mb", args.memory),
                        ("shuffle", args.shuffle), ("reduce_mb", args.reduce_mb),
                        ("max_cost", args.max_cost)):
        if value is not None:
            setattr(settings, name, value)
    if args.strict:
        settings.strict = True
    if args.keep_scratch:
        settings.keep_scratch = True
    if args.force:
        settings.force = True
    if args.no_timing:
        settings.timing = False
    if args.dry_run:
        settings.dry_run = True
    output_format = None
    if args.output is not None:
        # checked before any work: a query must not run for minutes to then fail here
        output_format, problem = check_output(args.output, args.format)
        if problem:
            print(f"sqlmr: {problem}", file=sys.stderr)
            return 2

    if args.stats is not None:
        folder = os.path.dirname(os.path.abspath(args.stats))
        if os.path.isdir(args.stats) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            print(f"sqlmr: --stats {args.stats}: cannot write a file there", file=sys.stderr)
            return 2

    if args.execute is not None:
        script = args.execute
    elif args.file is not None:
        try:
            script = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        except OSError as e:
            print(f"sqlmr: cannot read {args.file}: {e.strerror}", file=sys.stderr)
            return 2
        except UnicodeDecodeError:
            print(f"sqlmr: cannot read {args.file}: not a UTF-8 text file", file=sys.stderr)
            return 2
    elif sys.stdin.isatty():
        from sqlmr.repl import run_repl
        return run_repl(settings, debug=args.debug)
    else:
        script = sys.stdin.read()

    if args.detach and args.driver != "lambda":
        print("sqlmr: --detach needs --driver lambda", file=sys.stderr)
        return 2
    if args.driver == "lambda" and not settings.dry_run:  # a dry run plans here either way
        from sqlmr import remote
        return remote.run_cli(script, settings, args.detach)
    bar = ProgressBar()
    session = Session(settings, progress=lambda: bar)
    session.dry_run_splits = args.verbose
    if args.file not in (None, "-"):  # a script's paths are relative to its folder
        session.base_dir = os.path.dirname(os.path.abspath(args.file))
    _handle_sigterm()
    records: list[dict] | None = [] if args.stats is not None else None
    started = time.perf_counter()
    status = 1
    try:
        status = run_script(session, script, args.output, args.debug, bar,
                            output_format=output_format, stats=records)
        return 128 + _terminated[0] if _terminated and status == 130 else status
    finally:
        session.close()
        if records is not None:
            _write_stats(args.stats, records, time.perf_counter() - started,
                         session.settings, status)


def _write_stats(path: str, records: list[dict], wall_s: float, settings, status: int) -> None:
    from sqlmr import runstats
    record = runstats.run_record(records, wall_s, settings.backend)
    record = {"exit_status": status, **record}
    try:
        runstats.write(path, record)
    except OSError as e:
        print(f"sqlmr: --stats {path}: {e.strerror or e}", file=sys.stderr)


def check_output(path: str, explicit_format: str | None) -> tuple[str | None, str | None]:
    """``(format, problem)`` for ``--output path``: the format from the
    extension (else ``--format``), or why the file cannot be written."""
    if os.path.isdir(path):
        return None, (f"--output {path} is a folder; name a file "
                      f"(for example {os.path.join(path, 'out.csv')})")
    fmt = format_for_path(path, explicit_format)
    if fmt is None:
        return None, (f"cannot tell the format of --output {path} from its extension: name it "
                      f"{' or '.join(', '.join(FILE_FORMATS).rsplit(', ', 1))}, or give --format")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return None, f"--output {path}: folder {folder} does not exist"
    # a regular file is replaced by a temporary file renamed beside it: the
    # folder must be writable; a device or FIFO is written in place
    special = os.path.exists(path) and not os.path.isfile(path)
    target = path if special else os.path.dirname(os.path.realpath(path))
    if not os.access(target, os.W_OK):
        return None, f"--output {path}: permission denied"
    return fmt, None


def run_script(session: Session, script: str, output: str | None, debug: bool,
               bar: ProgressBar | None = None, out: IO[str] | None = None,
               err: IO[str] | None = None, output_format: str | None = None,
               stats: list[dict] | None = None) -> int:
    """Run every statement; stop at the first error (exit status 1).  ``stats``
    (a list) gets each finished statement's :func:`sqlmr.runstats.statement_record`."""
    out = out or sys.stdout
    err = err or sys.stderr
    results = session.execute(script)
    while True:
        started = time.perf_counter()
        try:
            result = next(results)
        except StopIteration:
            return 0
        except SqlError as e:
            _clear(bar)
            print(e.render(), file=err)
            return 1
        except TaskFailedError as e:
            _clear(bar)
            print(f"sqlmr: {task_error_text(e, debug)}", file=err)
            return 1
        except CostLimitError as e:
            _clear(bar)
            print(f"sqlmr: max_cost: {e}", file=err)
            return EXIT_COST_REFUSED if e.refused else EXIT_COST_STOPPED
        except (JobCancelledError, KeyboardInterrupt) as e:
            _clear(bar)
            print("sqlmr: " + ("terminated (SIGTERM): " if _terminated else "")
                  + "\n".join(cancelled_lines(e, time.perf_counter() - started,
                                              session.settings)), file=err)
            return 130
        except Exception as e:  # noqa: BLE001 — reported, with a traceback on --debug
            _clear(bar)
            if debug:
                traceback.print_exc(file=err)
            print(f"sqlmr: error: {_plain(e)}", file=err)
            return 1
        _clear(bar)
        try:
            print_result(result, session.settings, output, out, err, output_format=output_format)
        except KeyboardInterrupt:
            print("sqlmr: " + "\n".join(cancelled_lines(None, result.elapsed(), session.settings)),
                  file=err)
            return 130
        except OSError as e:
            if isinstance(e, BrokenPipeError):  # `sqlmr … | head`: the reader has enough
                _quiet_stdout()
                return 0
            if debug:
                traceback.print_exc(file=err)
            print(f"sqlmr: error: {_plain(e)}", file=err)
            return 1
        finally:
            result.close()
            if stats is not None:
                from sqlmr.runstats import statement_record
                stats.append(statement_record(result.statement, result.stats,
                                              session.settings, result.elapsed()))


def task_error_text(e: TaskFailedError, debug: bool) -> str:
    """A failed task for a person: a malformed row under --strict is the data's
    fault, one line naming file, byte offset and row; other failures keep the
    worker's traceback (a bug report needs it); --debug shows every frame."""
    kind, _, detail = e.message.partition(": ")
    if kind == "MalformedRowError" and not debug:
        return f"error: {detail} (--strict; without it the bad field reads as NULL)"
    return e.render(with_traceback=True)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _plain(e: Exception) -> str:
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.strerror}: {e.filename}"
    return str(e) or type(e).__name__


def _clear(bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.clear()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_result(result: StatementResult, settings, output: str | None, out: IO[str],
                 err: IO[str], expanded: bool = False, output_format: str | None = None) -> None:
    """Print one statement's result in the session's format.

    Only a terminal gets a preview (``max_rows``); a pipe or file gets every
    row in every format, as psql does.  Status lines (messages, ``wrote …``,
    Time and Cost) go to stderr whenever stdout is a data stream: not a
    terminal, or csv/json."""
    fmt = settings.format
    tty = _isatty(out)
    data_only = fmt in ("csv", "json")
    info = out if tty and not data_only else err
    if result.kind == "explain":
        print(result.message, file=out)
        return
    if result.kind == "rows":
        rows = result.rows
        if output:
            ffmt = output_format or format_for_path(output, fmt) or fmt
            # a temporary file renamed on success: a failure keeps the old file
            n = write_output_file(output, ffmt, result.columns, rows, result.types)
            print(f"wrote {plural(n, 'row')} to {output}", file=info)
        elif data_only:
            write_output(fmt, result.columns, rows, out, result.types)
        else:
            limit = settings.max_rows if tty and settings.max_rows > 0 else None
            shown = list(rows) if limit is None else take(rows, limit)[0]
            if expanded:
                from sqlmr.render import expanded_text
                print(expanded_text(result.columns, shown), file=out)
            else:
                print(table_text(result.columns, shown, result.types, fmt), file=out)
            # psql's footer belongs to a table; a markdown file stays pure markdown
            print(rows_line(max(result.total_rows, len(shown)), len(shown)),
                  file=out if fmt == "table" else info)
        out.flush()
    if result.message:
        print(result.message, file=info)
    if settings.timing and result.stats is not None:
        result.seconds = result.elapsed()   # wall time until the last row was written
        for line in summary_lines(result, settings):
            print(line, file=info)
    else:  # warnings are not timing: --no-timing keeps them
        from sqlmr.render import warning_lines
        for line in warning_lines(result):
            print(line, file=info)


def _subcommand(name: str, argv: list[str]) -> int:
    if name == "gen":
        from sqlmr.gen import amplab
        p = argparse.ArgumentParser(prog="sqlmr gen", description="Generate benchmark data.")
        p.add_argument("dataset", choices=["amplab"])
        amplab.add_arguments(p)
        args = p.parse_args(argv)
        return amplab.run(args)
    if name == "bench":
        from sqlmr import bench
        p = argparse.ArgumentParser(prog="sqlmr bench",
                                    description="Reproduce the AMPLab Big Data Benchmark table.")
        bench.add_arguments(p)
        return bench.run(p.parse_args(argv))
    if name == "lambda":
        from sqlmr.aws import cli as aws_cli
        p = argparse.ArgumentParser(prog="sqlmr lambda",
                                    description="Deploy and manage sqlmr's Lambda function.")
        aws_cli.add_arguments(p)
        return aws_cli.run(p.parse_args(argv))
    if name == "results":
        from sqlmr import remote
        p = argparse.ArgumentParser(prog="sqlmr results",
                                    description="List the serverless driver's queries, show "
                                                "one's status or print its result.")
        remote.add_results_arguments(p)
        return remote.results_main(p.parse_args(argv))
    if name == "schedule":
        from sqlmr import schedules
        p = argparse.ArgumentParser(prog="sqlmr schedule",
                                    description="Run a query on a schedule (EventBridge "
                                                "Scheduler invokes the driver function).")
        schedules.add_arguments(p)
        return schedules.main(p.parse_args(argv))
    if name == "run":
        from sqlmr import mrjob
        p = argparse.ArgumentParser(prog="sqlmr run",
                                    description="Run a MapReduce job written in Python "
                                                "(a class deriving from sqlmr.MRJob).")
        mrjob.add_arguments(p)
        return mrjob.main(p.parse_args(argv))
    if name == "clean":
        p = argparse.ArgumentParser(
            prog="sqlmr clean",
            description="Remove job scratch under $SQLMR_HOME/jobs, hidden staging folders and "
                        "S3 staging left by sqlmr runs that are no longer alive, and finish or "
                        "undo their unfinished S3 commits (a live job's are kept).")
        p.parse_args(argv)
        from sqlmr import scratch
        paths, size = scratch.sweep(unclaimed=True)
        print(f"removed {plural(paths, 'folder')} ({size / 1e6:.1f} MB) left by finished or "
              f"dead jobs" if paths else "nothing to clean")
        return 0
    raise AssertionError(name)


if __name__ == "__main__":
    sys.exit(main())
