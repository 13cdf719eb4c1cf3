"""The ``sqlmr`` command.

    sqlmr                          interactive SQL (REPL) on a terminal
    sqlmr -e "SQL[; SQL …]"         run statements
    sqlmr -f query.sql              run a script
    sqlmr gen amplab --scale SF …   generate AMPLab benchmark data
    sqlmr bench …                   reproduce the AMPLab benchmark table
    sqlmr lambda deploy|status|undeploy

Exit status: 0 ok, 1 query error, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import IO

from compiler.errors import SqlError
from sqlmr import __version__
from sqlmr.backends import JobCancelledError, TaskFailedError
from sqlmr.config import load_settings
from sqlmr.progress import ProgressBar
from sqlmr.render import (format_for_path, rows_line, summary_lines, table_text, take,
                          write_rows)
from sqlmr.session import Session, StatementResult

SUBCOMMANDS = ("gen", "bench", "lambda")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sqlmr",
        description="SQL over large text data (CSV / logs on disk or S3), compiled to "
                    "MapReduce and run on a local process pool or AWS Lambda.",
        epilog="Subcommands: 'sqlmr gen --help', 'sqlmr bench --help', 'sqlmr lambda --help'. "
               "State (catalog, history, default data) lives in $SQLMR_HOME (default ~/.sqlmr).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-e", "--execute", metavar="SQL", help="run these statements and exit")
    src.add_argument("-f", "--file", metavar="FILE", help="run the statements in FILE ('-' = stdin)")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"],
                   help="result format (csv/json: only data on stdout, timing on stderr)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the full result to FILE (format from its extension)")
    p.add_argument("--max-rows", type=int, metavar="N", help="rows to display (default 40)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: cores)")
    p.add_argument("--backend", choices=["local", "lambda"], help="where tasks run (default local)")
    p.add_argument("--dialect", metavar="NAME", help="SQL dialect for sqlglot (default hive)")
    p.add_argument("--split-mb", type=float, metavar="MB", help="bytes per map split (default: from input size)")
    p.add_argument("--reducers", type=int, metavar="N", help="reduce tasks (default: from input size)")
    p.add_argument("--memory", type=int, metavar="MB", help="Lambda memory size for cost (default 1769)")
    p.add_argument("--strict", action="store_true", help="malformed rows are an error")
    p.add_argument("--keep-scratch", action="store_true", help="keep the job's scratch data")
    p.add_argument("--no-timing", action="store_true", help="do not print time and cost")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"sqlmr {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as e:
        print(f"sqlmr: config: {e}", file=sys.stderr)
        return 2
    for name, value in (("format", args.format), ("max_rows", args.max_rows),
                        ("workers", args.workers), ("backend", args.backend),
                        ("dialect", args.dialect), ("split_mb", args.split_mb),
                        ("reducers", args.reducers), ("memory_mb", args.memory)):
        if value is not None:
            setattr(settings, name, value)
    if args.strict:
        settings.strict = True
    if args.keep_scratch:
        settings.keep_scratch = True
    if args.no_timing:
        settings.timing = False

    if args.execute is not None:
        script = args.execute
    elif args.file is not None:
        try:
            script = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        except OSError as e:
            print(f"sqlmr: cannot read {args.file}: {e.strerror}", file=sys.stderr)
            return 2
    elif sys.stdin.isatty():
        from sqlmr.repl import run_repl
        return run_repl(settings, debug=args.debug)
    else:
        script = sys.stdin.read()

    bar = ProgressBar()
    session = Session(settings, progress=lambda: bar)
    try:
        return run_script(session, script, args.output, args.debug, bar)
    finally:
        session.close()


def run_script(session: Session, script: str, output: str | None, debug: bool,
               bar: ProgressBar | None = None, out: IO[str] | None = None,
               err: IO[str] | None = None) -> int:
    """Run every statement; stop at the first error (exit status 1)."""
    out = out or sys.stdout
    err = err or sys.stderr
    results = session.execute(script)
    while True:
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
            print(f"sqlmr: {e.render(with_traceback=True)}", file=err)
            return 1
        except JobCancelledError:
            _clear(bar)
            print("sqlmr: cancelled", file=err)
            return 130
        except KeyboardInterrupt:
            _clear(bar)
            print("sqlmr: cancelled", file=err)
            return 130
        except Exception as e:  # noqa: BLE001 — reported, with a traceback on --debug
            _clear(bar)
            if debug:
                traceback.print_exc(file=err)
            print(f"sqlmr: error: {_plain(e)}", file=err)
            return 1
        _clear(bar)
        try:
            print_result(result, session.settings, output, out, err)
        except KeyboardInterrupt:
            print("sqlmr: cancelled", file=err)
            return 130
        finally:
            result.close()


def _plain(e: Exception) -> str:
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.strerror}: {e.filename}"
    return str(e) or type(e).__name__


def _clear(bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.clear()


def print_result(result: StatementResult, settings, output: str | None, out: IO[str],
                 err: IO[str], expanded: bool = False) -> None:
    """Print one statement's result in the session's format."""
    fmt = settings.format
    data_only = fmt in ("csv", "json")
    info = err if data_only else out
    if result.kind == "explain":
        print(result.message, file=out)
        return
    if result.kind == "message":
        print(result.message, file=info)
        return
    rows = result.rows
    if output:
        with open(output, "w", encoding="utf-8", newline="") as f:
            n = write_rows(format_for_path(output, fmt), result.columns, rows, f, result.types)
        print(f"wrote {n:,} rows to {output}", file=info)
    elif data_only:
        write_rows(fmt, result.columns, rows, out, result.types)
    else:
        shown, _ = take(rows, settings.max_rows)
        if expanded:
            from sqlmr.render import expanded_text
            print(expanded_text(result.columns, shown), file=out)
        else:
            print(table_text(result.columns, shown, result.types, fmt), file=out)
        print(rows_line(result.total_rows, len(shown)), file=out)
    if result.message:
        print(result.message, file=info)
    if settings.timing and result.stats is not None:
        for line in summary_lines(result, settings):
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
    raise AssertionError(name)


if __name__ == "__main__":
    sys.exit(main())
