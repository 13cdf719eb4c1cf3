"""The REPL's backslash and dot commands: one registry of name, help and handler.

As pgcli's special commands are: each command is a function registered with
:func:`special`, which records every spelling, the argument text and the help
line.  The REPL dispatches through :data:`COMMAND_BY_NAME` (aliases included),
``\\?`` lists :data:`COMMANDS` in registration order, and the completer reads
the same entries (names, help, what the argument is).

A handler gets the REPL and the :class:`Invocation`; it returns None to give
the query buffer back to the prompt, :data:`QUIT`, :data:`CLEAR` (an empty
prompt) or text to put in the prompt.

>>> [c.names[0] for c in COMMANDS][:4]
['\\\\?', '\\\\q', '\\\\dt', '\\\\d']
>>> COMMAND_BY_NAME["\\\\help"] is COMMAND_BY_NAME[".help"]
True
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sqlmr.repl import Repl

MODES = ("table", "csv", "json", "markdown")

QUIT = object()    # leave the REPL
CLEAR = object()   # the prompt starts empty (the query buffer is dropped)


@dataclass(frozen=True)
class Invocation:
    name: str       # the spelling typed (``\\o``, ``.output``)
    arg: str        # the rest of the line, stripped (and without a final ';')
    buffer: str     # SQL typed on the lines before the command (psql's query buffer)


Handler = Callable[["Repl", Invocation], object]


@dataclass(frozen=True)
class CommandSpec:
    names: tuple[str, ...]      # every spelling shown, first is the one help lists first
    args: str                   # help text for the arguments
    help: str
    handler: Handler
    arg_kind: str = ""          # completion: table | file | mode | onoff | setting | expanded | pset
    aliases: tuple[str, ...] = ()   # also accepted, neither listed nor completed
    raw: bool = False           # the argument is kept verbatim (a shell command: ';' stays)
    glued: bool = False         # \ofile, \xon, \!ls: the argument may follow the name directly


COMMANDS: list[CommandSpec] = []


def special(names: tuple[str, ...], args: str = "", help: str = "", arg_kind: str = "",
            aliases: tuple[str, ...] = (), raw: bool = False, glued: bool = False
            ) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of command ``names``."""
    def register(fn: Handler) -> Handler:
        COMMANDS.append(CommandSpec(tuple(names), args, help, fn, arg_kind, tuple(aliases),
                                    raw, glued))
        return fn
    return register


# ---------------------------------------------------------------- commands
# Registration order is the order of \? and of name completion.

@special(("\\?", ".help"), help="this help", aliases=("\\h", "\\help"))
def _help(repl: Repl, cmd: Invocation) -> object:
    repl.show_help()
    return None


@special(("\\q", ".quit", ".exit"), help="quit (Ctrl-D on an empty line also quits)")
def _quit(repl: Repl, cmd: Invocation) -> object:
    return QUIT


@special(("\\dt", ".tables"), help="list tables (also SHOW TABLES;)")
def _tables(repl: Repl, cmd: Invocation) -> object:
    repl.list_tables()
    return None


@special(("\\d", ".schema"), "[TABLE]",
         "columns of TABLE or of a file ('path'; also DESCRIBE …;); alone: list tables",
         "table", aliases=("\\d+",))
def _describe(repl: Repl, cmd: Invocation) -> object:
    arg = cmd.arg.strip().rstrip(";").strip() if cmd.arg else ""
    if arg.startswith("'"):  # a file: \d 'data/*.csv'
        repl.show_statement(f"DESCRIBE {arg}", footer=False)
    elif arg:
        repl.show_statement(f"DESCRIBE {ident(arg)}", footer=False)
    else:
        repl.list_tables()
    return None


@special(("\\timing", ".timer"), "[on|off]", "show time and cost after each query", "onoff")
def _timing(repl: Repl, cmd: Invocation) -> object:
    value = repl.onoff(cmd.arg, repl.settings.timing, cmd.name)
    if value is not None:
        repl.settings.timing = value
        repl.say(f"Timing is {'on' if value else 'off'}.")
    return None


@special(("\\x",), "[on|off|auto]", "expanded rows: one line per column", "expanded", glued=True)
def _expanded(repl: Repl, cmd: Invocation) -> object:
    repl.set_expanded(cmd.arg)
    return None


@special((".mode",), "table|csv|json|markdown", "how results are printed", "mode")
def _mode(repl: Repl, cmd: Invocation) -> object:
    if not cmd.arg:
        repl.say(f"mode: {repl.settings.format}")
    elif cmd.arg.lower() in MODES:
        repl.settings.format = cmd.arg.lower()
    else:
        repl.say(f"unknown mode {cmd.arg!r}: use {', '.join(MODES)}", err=True)
    return None


@special(("\\o", ".output"), "[FILE]", "send all later results to FILE; alone: back to the screen",
         "file", glued=True)
def _output(repl: Repl, cmd: Invocation) -> object:
    repl.set_output(cmd.arg)
    return None


@special((".once",), "FILE", "send the next result to FILE", "file")
def _once(repl: Repl, cmd: Invocation) -> object:
    if not cmd.arg:
        repl.say("usage: .once FILE", err=True)
    else:
        repl.once_file = path_arg(cmd.arg)
    return None


@special(("\\i", ".read"), "FILE", "run the statements in FILE", "file", glued=True)
def _read(repl: Repl, cmd: Invocation) -> object:
    if not cmd.arg:
        repl.say(f"usage: {cmd.name} FILE", err=True)
    else:
        repl.run_file(path_arg(cmd.arg))
    return None


@special(("\\e",), "[FILE]", "edit the last statement (or FILE) in $EDITOR", "file", glued=True)
def _edit(repl: Repl, cmd: Invocation) -> object:
    text = repl.edit(path_arg(cmd.arg) if cmd.arg else None, cmd.buffer)
    return CLEAR if text is None else text


@special(("\\set",), "[NAME VALUE]",
         "list settings, or change one (workers, max_rows, backend, …)", "setting")
def _set(repl: Repl, cmd: Invocation) -> object:
    repl.set_setting(cmd.arg)
    return None


@special(("\\pset",), "pager on|off", "page results taller or wider than the screen (default on)",
         "pset")
def _pset(repl: Repl, cmd: Invocation) -> object:
    repl.pset(cmd.arg)
    return None


@special(("\\r",), help="clear the statement being typed")
def _reset(repl: Repl, cmd: Invocation) -> object:
    repl.say("Query buffer reset (cleared).")
    return CLEAR


@special(("\\errverbose",), help="the last error in full (with the remote traceback)")
def _errverbose(repl: Repl, cmd: Invocation) -> object:
    repl.say(repl.last_error or "There is no previous error.", err=bool(repl.last_error))
    return None


@special(("\\!", ".shell"), "COMMAND", "run a shell command", aliases=(".system",), raw=True,
         glued=True)
def _shell(repl: Repl, cmd: Invocation) -> object:
    if cmd.arg:
        subprocess.call(cmd.arg, shell=True)
    return None


# ------------------------------------------------------------------ lookup

# every accepted spelling (aliases too) -> its command
COMMAND_BY_NAME: dict[str, CommandSpec] = {n: c for c in COMMANDS for n in c.names + c.aliases}
# spellings whose argument is kept verbatim, and two-character names an argument may follow
RAW_NAMES = {n for c in COMMANDS if c.raw for n in c.names + c.aliases}
GLUED_NAMES = {n for c in COMMANDS if c.glued for n in c.names if n.startswith("\\") and len(n) == 2}


def parse(line: str) -> tuple[CommandSpec | None, str, str]:
    """``(command, name, argument)`` of a command line; the command is None
    for a name no command has.

    >>> spec, name, arg = parse("\\\\ofile.csv;")
    >>> name, arg, spec.names[0]
    ('\\\\o', 'file.csv', '\\\\o')
    >>> parse("\\\\! echo a;")[1:], parse(".tables;")[1:]
    (('\\\\!', 'echo a;'), ('.tables', ''))
    """
    name, _, arg = line.partition(" ")
    if name not in RAW_NAMES:
        name, arg = name.rstrip(";"), arg.strip().rstrip(";")   # ".tables;", "\\d t;"
    if name.startswith("\\") and len(name) > 2 and name[:2] in GLUED_NAMES \
            and name not in COMMAND_BY_NAME:
        name, arg = name[:2], (name[2:] + " " + arg).strip()   # \ofile, \xon, \!ls
    return COMMAND_BY_NAME.get(name), name, arg.strip()


# --------------------------------------------------------------- arguments

def ident(name: str) -> str:
    """A table name as typed (bare or quoted) as a backquoted identifier."""
    name = name.strip().rstrip(";").strip()
    if name.startswith(("`", '"')) and name.endswith(name[0]) and len(name) > 1:
        name = name[1:-1]
    return f"`{name}`"


def path_arg(arg: str) -> str:
    """A file argument: shell quoting removed, ``~`` expanded."""
    arg = arg.strip()
    try:
        parts = shlex.split(arg)
    except ValueError:
        parts = [arg]
    return os.path.expanduser(parts[0] if len(parts) == 1 else arg)
