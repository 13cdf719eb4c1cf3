"""The interactive SQL REPL: ``sqlmr`` with no arguments on a terminal.

psql / duckdb CLI / pgcli habits: a statement runs when it ends with ``;``
(Enter otherwise continues it on a new line, Alt-Enter always does);
backslash and dot commands run on Enter; history in ``$SQLMR_HOME/history``
with fish-style suggestions and Ctrl-R search; SQL highlighting; completion
of keywords, functions, tables and the columns of the statement's tables.
Ctrl-C cancels a running query (or clears the line) and never exits; Ctrl-D on
an empty line exits.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from typing import IO, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.shortcuts import CompleteStyle
from prompt_toolkit.styles import Style

from compiler.errors import SqlError
from compiler.statements import is_complete
from sqlmr import __version__, config
from sqlmr.backends import JobCancelledError, TaskFailedError
from sqlmr.config import Settings
from sqlmr.progress import ProgressBar
from sqlmr.render import (cancelled_lines, expanded_text, format_for_path, plural, replaced_file,
                          rows_line, summary_lines, table_text, take, write_output, write_rows)
from sqlmr.repl_commands import (CLEAR, COMMANDS, MODES, QUIT, Invocation, path_arg)
from sqlmr.repl_commands import parse as parse_command
from sqlmr.repl_complete import ReplLexer, SqlCompleter, scan
from sqlmr.session import Session, StatementResult

PROMPT = "sqlmr> "
CONTINUATION = "...> "   # right-aligned under the prompt: "  ...> "

STYLE = Style.from_dict({
    "prompt": "bold",
    "continuation": "#888888",
    "pygments.literal.number": "#0088aa",
    "pygments.comment": "italic #888888",
})

def run_repl(settings: Settings, debug: bool = False, input=None, output=None) -> int:
    """Run the REPL until ``\\q`` or Ctrl-D; returns the exit status (0).

    ``input`` / ``output`` are prompt_toolkit Input / Output objects (tests pass
    a pipe input and a DummyOutput); results go to ``sys.stdout``, errors and
    the progress bar to ``sys.stderr``.
    """
    if output is None and not _isatty(sys.stdout):
        # `sqlmr > results.txt`: the prompt stays on the terminal, results go to the file
        from prompt_toolkit.output import create_output
        output = create_output(always_prefer_tty=True)
    _ctrl_c_interrupts()
    repl = Repl(settings, debug, input, output)
    try:
        return repl.run()
    finally:
        repl.close()


def _ctrl_c_interrupts() -> None:
    """Ctrl-C cancels a statement even when sqlmr was started with SIGINT
    ignored (a shell starts a background command so, and Python then keeps
    ignoring it): a person at the prompt presses it to stop a job."""
    try:
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:   # not the main thread (an embedding program's REPL)
        pass


class Repl:
    def __init__(self, settings: Settings, debug: bool = False, input=None, output=None) -> None:
        self.settings = settings
        self.debug = debug
        self.bar = ProgressBar()
        self.session = Session(settings, progress=lambda: self.bar)
        self.expanded = "off"          # off | on | auto
        self.pager = True
        self.output_file: str | None = None   # \o FILE
        self.once_file: str | None = None     # .once FILE
        self.last_statement = ""
        self.last_error = ""
        self.prompt = self._make_prompt(input, output)

    # ------------------------------------------------------------ streams
    @property
    def out(self) -> IO[str]:
        return sys.stdout

    @property
    def err(self) -> IO[str]:
        return sys.stderr

    def say(self, *lines: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        for line in lines:
            print(line, file=stream)
        stream.flush()

    # ------------------------------------------------------------- prompt
    def _make_prompt(self, input, output) -> PromptSession:
        history_path = config.home() / "history"
        try:
            history_path.parent.mkdir(parents=True, exist_ok=True)
            history = _SafeFileHistory(str(history_path))
        except OSError:
            history = InMemoryHistory()

        kb = KeyBindings()

        @kb.add("enter", filter=has_focus(DEFAULT_BUFFER))
        def _enter(event) -> None:
            b = event.current_buffer
            state = b.complete_state
            if state is not None and state.current_completion is not None:
                b.complete_state = None          # take the highlighted completion
                return
            if self.ready(b.text):
                b.validate_and_handle()
            else:
                b.newline(copy_margin=True)

        @kb.add("escape", "enter", filter=has_focus(DEFAULT_BUFFER))
        def _alt_enter(event) -> None:
            event.current_buffer.newline(copy_margin=False)

        def continuation(width: int, line_number: int, wrap_count: int):
            if wrap_count:   # a long line wrapped by the terminal: indent, no new "...>"
                return " " * width
            return FormattedText([("class:continuation", CONTINUATION.rjust(width))])

        completer = SqlCompleter(lambda: self.session.catalog.tables(),
                                 lambda: [n for n, _ in self.settings.items()],
                                 lambda: self.settings.dialect)
        return PromptSession(
            multiline=True, prompt_continuation=continuation, history=history,
            auto_suggest=AutoSuggestFromHistory(), lexer=ReplLexer(), completer=completer,
            complete_while_typing=True, complete_style=CompleteStyle.COLUMN,
            key_bindings=kb, enable_open_in_editor=True, tempfile_suffix=".sql",
            style=STYLE, include_default_pygments_style=True, search_ignore_case=True,
            input=input, output=output)

    def ready(self, text: str) -> bool:
        """Does Enter run ``text`` (rather than continue it on a new line)?"""
        stripped = text.strip()
        if not stripped:
            return True
        if text.lstrip().startswith("."):
            return True
        if stripped.rstrip(";").strip().lower() in ("quit", "exit", "help") and "\n" not in stripped:
            return True
        if _command_line(text) is not None:
            return True
        return self._complete(text)

    def _complete(self, text: str) -> bool:
        try:
            return is_complete(text, self.settings.dialect)
        except Exception:  # noqa: BLE001 — e.g. an unknown dialect set by \set
            return is_complete(text, "hive")

    # --------------------------------------------------------------- loop
    def run(self) -> int:
        try:
            self.welcome()
        except KeyboardInterrupt:
            pass
        default = ""
        while True:
            try:
                text = self.prompt.prompt([("class:prompt", PROMPT)], default=default)
            except KeyboardInterrupt:
                default = ""
                continue
            except EOFError:
                break
            default = ""
            try:
                outcome = self.handle(text)
            except KeyboardInterrupt:
                self.cancelled()
                continue
            if outcome is QUIT or getattr(self, "reader_gone", False):
                break
            if isinstance(outcome, str):
                default = outcome
        return 0

    def close(self) -> None:
        self.bar.clear()
        self.session.close()

    def welcome(self) -> None:
        s = self.settings
        where = (f"{s.backend} backend, {s.effective_workers()} workers" if s.backend == "local"
                 else f"{s.backend} backend ({s.memory_mb} MB {s.architecture})")
        to_err = not _isatty(self.out)   # results redirected: keep the greeting on screen
        self.say(f"sqlmr {__version__} · {where} · type \\? for help, \\q to quit; "
                    f"statements end with ;", err=to_err)
        try:
            tables = sorted(self.session.catalog.tables().values(), key=lambda t: t.name.lower())
        except Exception as e:  # noqa: BLE001 — say it and go on
            self.say(f"warning: {_plain(e)}", err=True)
            return
        user = [t.name for t in tables if not t.builtin]
        builtin = [t.name for t in tables if t.builtin]
        parts = []
        if user:
            parts.append(", ".join(user))
        if builtin:
            parts.append("built-in " + ", ".join(builtin) + (
                "" if _default_data_ready() else " (sample data generated on first use)"))
        self.say("Tables: " + "; ".join(parts), err=to_err)

    def handle(self, text: str):
        """Run what the user entered; returns QUIT, text to put back in the
        prompt, or None."""
        stripped = text.strip()
        if not stripped:
            return None
        if stripped.startswith("."):
            return self.command(stripped, "")
        if stripped.rstrip(";").strip().lower() in ("quit", "exit") and "\n" not in stripped:
            return QUIT
        if stripped.rstrip(";").strip().lower() == "help" and "\n" not in stripped:
            return self.command("\\?", "")
        cmd = _command_line(text)
        if cmd is not None:
            buffer, line = cmd
            return self.command(line.strip(), buffer)
        if not self._complete(text):
            return text  # e.g. back from the editor without ';': keep editing
        self.last_statement = stripped
        self.run_sql(text)
        return None

    # ----------------------------------------------------------- commands
    def command(self, line: str, buffer: str):
        """A backslash or dot command, run through the command registry
        (:mod:`sqlmr.repl_commands`); ``buffer`` is SQL typed before it (psql's
        query buffer), given back to the prompt afterwards."""
        spec, name, arg = parse_command(line)
        keep = buffer if buffer.strip() else None
        if spec is None:
            self.say(f"invalid command {name}: type \\? for help", err=True)
            return keep
        outcome = spec.handler(self, Invocation(name, arg, buffer))
        if outcome is None:
            return keep
        return None if outcome is CLEAR else outcome

    def list_tables(self) -> None:
        """``\\dt``: name, location and the columns, cut to fit the terminal."""
        try:
            tables = sorted(self.session.catalog.tables().values(), key=lambda t: t.name.lower())
        except Exception as e:  # noqa: BLE001
            self.show_error(e)
            return
        rows = [[t.name, t.location + (" (built-in)" if t.builtin else ""),
                 ", ".join(f"{c.name} {c.type.upper()}" for c in t.all_columns)] for t in tables]
        if _isatty(self.out):
            used = len(table_text(["table", "location", "columns"], [r[:2] + [""] for r in rows]
                                  ).split("\n")[0])
            room = max(20, _columns() - used - 1)
            for r in rows:
                if len(r[2]) > room:
                    r[2] = r[2][:room - 1] + "…"
        self.page(table_text(["table", "location", "columns"], rows))

    def show_help(self) -> None:
        rows = []
        for c in COMMANDS:
            names = ", ".join(n + (" " + c.args if c.args else "") for n in c.names)
            rows.append((names, c.help))
        width = max(len(r[0]) for r in rows)
        lines = ["Statements end with ';' (Enter continues a statement; Alt-Enter always adds "
                 "a line):",
                 "  SELECT …;  EXPLAIN [CODE] SELECT …;  CREATE EXTERNAL TABLE …;  DROP TABLE t;",
                 "  SHOW TABLES;  DESCRIBE t;  SHOW PARTITIONS t;  MSCK REPAIR TABLE t;",
                 "  SET name = value;", ""]
        lines += [f"  {a.ljust(width)}  {b}" for a, b in rows]
        lines += ["",
                  "Keys: Tab completes · → takes the grey suggestion · Ctrl-R searches history · "
                  "Ctrl-X Ctrl-E edits in $EDITOR",
                  "      Ctrl-C cancels a running query or clears the line · Ctrl-D quits"]
        self.say(*lines)

    def onoff(self, arg: str, current: bool, name: str) -> bool | None:
        if not arg:
            return not current
        low = arg.lower()
        if low in ("on", "true", "1", "yes"):
            return True
        if low in ("off", "false", "0", "no"):
            return False
        self.say(f"{name}: expected on or off, not {arg!r}", err=True)
        return None

    def set_expanded(self, arg: str) -> None:
        low = arg.lower()
        if not arg:
            self.expanded = "off" if self.expanded != "off" else "on"
        elif low in ("on", "off", "auto"):
            self.expanded = low
        else:
            self.say(f"\\x: expected on, off or auto, not {arg!r}", err=True)
            return
        self.say("Expanded display is " + ("used automatically." if self.expanded == "auto"
                                               else f"{self.expanded}."))

    def set_output(self, arg: str) -> None:
        if not arg:
            if self.output_file:
                self.say(f"Output goes to the screen again (results were written to "
                            f"{self.output_file}).")
            self.output_file = None
            return
        path = path_arg(arg)
        try:
            if not os.path.exists(path) or os.path.isfile(path):
                with open(path, "w", encoding="utf-8"):
                    pass
        except OSError as e:
            self.say(f"{arg}: {e.strerror}", err=True)
            return
        self.output_file = path
        self.say(f"Results go to {path} ({self._file_format(path)}); \\o alone sends them "
                    f"to the screen again.")

    def set_setting(self, arg: str) -> None:
        if not arg:
            items = self.settings.items()
            width = max(len(k) for k, _ in items)
            self.say(*(f"{k.ljust(width)} = {_setting_text(v)}" for k, v in items))
            return
        parts = arg.split(None, 1)
        name = parts[0]
        if len(parts) == 1:
            key = name.replace("-", "_").lower()
            if hasattr(self.settings, key) and key in dict(self.settings.items()):
                self.say(f"{key} = {_setting_text(getattr(self.settings, key))}")
            else:
                self.say(f"unknown setting '{name}' (\\set lists them)", err=True)
            return
        value = parts[1].strip().strip("'\"")
        try:
            self.settings.set(name, value)   # checks the value (range, dialect, …)
        except KeyError as e:
            self.say(str(e.args[0]), err=True)
            return
        except ValueError as e:
            self.say(str(e), err=True)
            return
        key = name.replace("-", "_").lower()
        self.say(f"{key} = {_setting_text(getattr(self.settings, key))}",
                    err=self.settings.format in ("csv", "json"))

    def pset(self, arg: str) -> None:
        parts = arg.split()
        if parts and parts[0] == "pager":
            value = self.onoff(parts[1] if len(parts) > 1 else "", self.pager, "\\pset pager")
            if value is not None:
                self.pager = value
                self.say(f"Pager usage is {'on' if value else 'off'}.")
        elif parts and parts[0] == "format" and len(parts) > 1 and parts[1] in MODES:
            self.settings.format = parts[1]
        elif parts and parts[0] == "expanded":
            self.set_expanded(parts[1] if len(parts) > 1 else "")
        else:
            self.say("usage: \\pset pager on|off", err=True)

    def edit(self, path: str | None, buffer: str):
        """``\\e``: the statement being typed (or the last one, or FILE) in
        $EDITOR; the edited text comes back to the prompt to be run with Enter."""
        if path is not None:
            try:
                text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
            except OSError as e:
                self.say(f"{path}: {e.strerror}", err=True)
                return buffer or None
            if not _run_editor(path):
                self.say("the editor failed; nothing changed", err=True)
                return buffer or None
            text = open(path, encoding="utf-8").read()
        else:
            text = buffer if buffer.strip() else self.last_statement
            edited = _edit_text(text)
            if edited is None:
                self.say("no editor found: set $EDITOR (or $VISUAL)", err=True)
                return buffer or None
            text = edited
        return text.rstrip("\n") or None

    def run_file(self, path: str) -> None:
        try:
            script = open(path, encoding="utf-8").read()
        except OSError as e:
            self.say(f"{path}: {e.strerror}", err=True)
            return
        except UnicodeDecodeError:
            self.say(f"{path}: not a UTF-8 text file", err=True)
            return
        self.run_sql(script, source=path)

    # ------------------------------------------------------------ queries
    def run_sql(self, script: str, source: str | None = None) -> bool:
        """Run each statement; stop at an error or Ctrl-C.  True when all ran."""
        results = self.session.execute(script)
        try:
            while True:
                started = time.perf_counter()
                try:
                    result = next(results)
                except StopIteration:
                    return True
                except (JobCancelledError, KeyboardInterrupt) as e:
                    self.cancelled(e, time.perf_counter() - started)
                    return False
                except Exception as e:  # noqa: BLE001 — shown, and the session goes on
                    self._clear_bar()
                    self.show_error(e, source)
                    return False
                self._clear_bar()
                try:
                    self.show_result(result)
                except KeyboardInterrupt:
                    self.cancelled(None, result.elapsed())
                    return False
                except BrokenPipeError:  # `sqlmr | head`: the reader has gone, as for cat
                    from sqlmr.cli import _quiet_stdout
                    _quiet_stdout()
                    self.reader_gone = True
                    return False
                except Exception as e:  # noqa: BLE001
                    self.show_error(e, source)
                    return False
                finally:
                    _close_quietly(result)
        finally:
            results.close()

    def show_statement(self, sql: str, footer: bool = True) -> None:
        try:
            result = self.session.execute_one(sql)
        except Exception as e:  # noqa: BLE001
            self.show_error(e)
            return
        try:
            self.show_result(result, footer=footer, to_file=False)
        finally:
            _close_quietly(result)

    def cancelled(self, e: BaseException | None = None, seconds: float | None = None) -> None:
        """Ctrl-C: say so, with the time the statement ran and what it cost."""
        self._clear_bar()
        if seconds is None:
            self.say("cancelled", err=True)
        else:
            self.say(*cancelled_lines(e, seconds, self.settings), err=True)

    def _clear_bar(self) -> None:
        self.bar.clear()
        if self.bar.enabled:
            # also wipe a "^C" the terminal echoed after the bar
            self.err.write("\r\x1b[K")
            self.err.flush()

    def show_error(self, e: BaseException, source: str | None = None) -> None:
        if isinstance(e, SqlError):
            text = fit_error(e.render(), _columns())
            self.last_error = e.render()
        elif isinstance(e, TaskFailedError):
            text = e.render(with_traceback=self.debug)
            self.last_error = e.render(with_traceback=True)
        else:
            text = f"error: {_plain(e)}"
            self.last_error = "".join(traceback.format_exception(e))
            if self.debug:
                text = self.last_error.rstrip() + "\n" + text
        if source:
            text = f"{source}:\n{text}"
        self.say(text, err=True)

    def show_result(self, result: StatementResult, footer: bool = True, to_file: bool = True
                    ) -> None:
        s = self.settings
        target = (self.once_file or self.output_file) if to_file else None
        # csv / json on stdout are data: the status lines (messages, SET's echo,
        # Time, Cost) go to stderr so a copied or redirected stream holds data only
        status = s.format in ("csv", "json")
        if result.kind == "message":
            pass
        elif target and result.kind in ("rows", "explain"):
            n = self.write_file(target, result)
            if result.kind == "rows":
                self.say(f"wrote {plural(n, 'row')} to {target}", err=status)
            else:
                self.say(f"wrote the plan to {target}", err=status)
            if self.once_file:
                self.once_file = None
        elif result.kind == "explain":
            self.page(result.message)
            return
        else:
            limit = s.max_rows if s.max_rows > 0 else None
            if limit is None:
                shown = list(result.rows)
            else:
                shown, _ = take(result.rows, limit)
            self.page(self.format_rows(result, shown))
            if footer:
                total = max(result.total_rows, len(shown))
                if len(shown) < total:
                    self.say(f"({plural(total, 'row')}, first {len(shown):,} shown; "
                                f"\\set max_rows N shows more, \\o FILE writes them all)",
                                err=status)
                else:
                    self.say(rows_line(total, len(shown)), err=status)
        if result.message:
            self.say(result.message, err=status)
        if s.timing and result.stats is not None:
            result.seconds = result.elapsed()   # wall time until the last row was shown
            width = _columns() if _isatty(self.out) else 0
            self.say(*(wrap_summary(line, width) for line in summary_lines(result, s)),
                        err=status)
        else:  # warnings are not timing: \timing off keeps them
            from sqlmr.render import warning_lines
            for line in warning_lines(result):
                self.say(line, err=status)

    def format_rows(self, result: StatementResult, rows: list[list]) -> str:
        fmt = self.settings.format
        if fmt in ("csv", "json"):
            buf = io.StringIO()
            write_rows(fmt, result.columns, rows, buf, result.types)
            return buf.getvalue().rstrip("\n")
        table = table_text(result.columns, rows, result.types, fmt)
        expanded = self.expanded == "on" or (
            self.expanded == "auto" and fmt == "table" and rows
            and max(len(x) for x in table.split("\n")) > _columns())
        if expanded:
            return expanded_text(result.columns, rows) if rows else "(no rows)"
        return table

    def write_file(self, path: str, result: StatementResult) -> int:
        """Write a result to FILE without leaving half a result behind: into a
        temp file next to it, renamed over FILE once complete (for ``\\o`` the
        temp file starts as a copy of what FILE holds, so results accumulate)."""
        append = self.output_file == path and not self.once_file
        with replaced_file(path, keep=append, commit=_sigint_deferred) as f:
            return self._write_result(path, result, f)

    def _write_result(self, path: str, result: StatementResult, f: IO[str]) -> int:
        if result.kind == "explain":
            f.write(result.message + "\n")
            return 0
        fmt = self._file_format(path)
        return write_output(fmt, result.columns, result.rows, f, result.types)

    def _file_format(self, path: str) -> str:
        """The extension's format (``.csv``, ``.tsv``, …), else the session's."""
        return format_for_path(path, self.settings.format) or self.settings.format

    # ------------------------------------------------------------- paging
    def page(self, text: str) -> None:
        """Print, through a pager when it is taller or wider than the terminal
        (``less -S`` scrolls sideways instead of wrapping table rows)."""
        out = self.out
        if self.pager and _isatty(out) and _isatty(sys.stdin):
            size = shutil.get_terminal_size()
            lines = text.split("\n")
            if len(lines) > size.lines - 2 or max(map(len, lines)) > size.columns:
                cmd = _pager_command()
                if cmd and _run_pager(cmd, text + "\n"):
                    return
        print(text, file=out)
        out.flush()


# ------------------------------------------------------------------ helpers

class _SafeFileHistory(FileHistory):
    """A history file that cannot be written (read-only home, full disk) costs
    the history, not the session."""

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError:
            pass


def _command_line(text: str) -> tuple[str, str] | None:
    """``(buffer, command)`` when the last line of ``text`` is a backslash
    command (not inside a string or comment of the SQL before it)."""
    body = text.rstrip()
    if not body:
        return None
    cut = body.rfind("\n") + 1
    line = body[cut:]
    if not line.lstrip().startswith("\\"):
        return None
    if scan(body[:cut])[1] != "code":
        return None
    return body[:cut], line


def _setting_text(v: object) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _plain(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.strerror}: {e.filename}"
    return str(e) or type(e).__name__


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns() -> int:
    return shutil.get_terminal_size().columns


def _default_data_ready() -> bool:
    data = config.default_data_dir()
    return all((data / t).is_dir() and any((data / t).iterdir()) for t in ("rankings", "uservisits"))


def _close_quietly(result: StatementResult) -> None:
    try:
        result.close()
    except Exception:  # noqa: BLE001 — scratch cleanup must not hide the result
        pass


def fit_error(text: str, width: int) -> str:
    """Trim the ``LINE n:`` line of an error (and move its caret) so it fits
    the terminal, psql-style with ``...`` where text was cut.

    >>> line, caret, msg = fit_error("LINE 1: " + "x" * 50 + "BAD" + "y" * 50 + "\\n"
    ...                              + " " * 58 + "^\\nerror: e", 40).split("\\n")
    >>> line, line[caret.index("^"):caret.index("^") + 3], len(line), msg
    ('LINE 1: ...xxxxxxxxxxxxxBADyyyyyyyyyy...', 'BAD', 40, 'error: e')
    """
    lines = text.split("\n")
    if len(lines) < 2 or not lines[0].startswith("LINE ") or len(lines[0]) <= width \
            or not lines[1].endswith("^") or width < 30:
        return text
    head = lines[0].index(": ") + 2
    body = lines[0][head:]
    caret = len(lines[1]) - 1 - head
    avail = width - head - 6
    start = max(0, min(caret - avail // 2, len(body) - avail))
    end = start + avail
    shown = ("..." if start else "") + body[start:end] + ("..." if end < len(body) else "")
    col = head + (3 if start else 0) + caret - start
    return "\n".join([lines[0][:head] + shown, " " * col + "^"] + lines[2:])


def wrap_summary(line: str, width: int) -> str:
    """Break a long summary line at its `` · `` separators to fit ``width``.

    >>> print(wrap_summary("Cost: Lambda $1 (estimate) · Athena $2 for the same bytes", 40))
    Cost: Lambda $1 (estimate)
      · Athena $2 for the same bytes
    """
    if width <= 0 or len(line) <= width:
        return line
    parts = line.split(" · ")
    lines = [parts[0]]
    for p in parts[1:]:
        if len(lines[-1]) + 3 + len(p) <= width:
            lines[-1] += " · " + p
        else:
            lines.append("  · " + p)
    return "\n".join(lines)


def _pager_command() -> str | None:
    pager = os.environ.get("PAGER")
    if pager is not None:
        return pager.strip() or None
    if shutil.which("less"):
        return "less -SRFX"
    if shutil.which("more"):
        return "more"
    return None


def _run_pager(cmd: str, text: str) -> bool:
    """Pipe ``text`` through the pager (Ctrl-C belongs to the pager meanwhile)."""
    env = dict(os.environ)
    env.setdefault("LESS", "-SRFX")
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, env=env,
                                    encoding="utf-8", errors="replace")
        except OSError:
            return False
        try:
            proc.stdin.write(text)
            proc.stdin.close()
        except BrokenPipeError:   # the user quit the pager early
            pass
        proc.wait()
        return True
    finally:
        signal.signal(signal.SIGINT, old)


def _editor_commands() -> list[str]:
    return [e for e in (os.environ.get("VISUAL"), os.environ.get("EDITOR"),
                        "/usr/bin/editor", "/usr/bin/nano", "/usr/bin/vi", "/usr/bin/vim")
            if e]


def _run_editor(path: str) -> bool:
    for e in _editor_commands():
        try:
            return subprocess.call(shlex.split(e) + [path]) == 0
        except OSError:
            continue
    return False


def _edit_text(text: str) -> str | None:
    fd, path = tempfile.mkstemp(suffix=".sql", prefix="sqlmr-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + ("\n" if text and not text.endswith("\n") else ""))
        if not _run_editor(path):
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()
    finally:
        os.unlink(path)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C for the moment it takes to rename a finished file."""
    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda *a: got.append(1))
    except ValueError:   # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt
