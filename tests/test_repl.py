"""The REPL driven through prompt_toolkit's pipe input (keys in, results on
stdout / stderr), and its completer on Document objects."""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from sqlmr import __version__
from sqlmr.backends import JobCancelledError
from sqlmr.config import Settings, load_settings
from sqlmr.repl import Repl, run_repl
from sqlmr.repl_complete import SqlCompleter
from sqlmr.session import Session, StatementResult

ENTER = "\r"
ALT_ENTER = "\x1b\r"
CTRL_C = "\x03"
CTRL_D = "\x04"

DDL = ("CREATE EXTERNAL TABLE Sales (regionName STRING, itemCount INT, price DOUBLE) "
       "ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' LOCATION '{path}'")
ROWS = ["north,3,1.5", "south,5,2.25", "north,7,0.5", "east,1,10.0", "west,2,4.0"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SQLMR_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PAGER", raising=False)
    data = tmp_path / "sales"
    data.mkdir()
    (data / "part-0.csv").write_text("\n".join(ROWS) + "\n")
    s = Session(Settings(workers=2))
    try:
        list(s.execute(DDL.format(path=data)))
    finally:
        s.close()
    return home


def drive(keys: str, settings: Settings | None = None, debug: bool = False) -> int:
    """Type ``keys`` into a REPL (they should end with Ctrl-D)."""
    with create_pipe_input() as inp:
        inp.send_text(keys)
        return run_repl(settings or Settings(workers=2), debug=debug, input=inp,
                        output=DummyOutput())


def table_count(out: str) -> int:
    return len(re.findall(r"^\(\d+ rows?\)$", out, re.M))


# ------------------------------------------------------------------ running

def test_multi_line_statement_runs_once_when_it_ends_with_semicolon(home, capsys):
    code = drive("SELECT regionName, itemCount" + ENTER + "FROM Sales" + ENTER
                 + "WHERE itemCount > 2" + ENTER + "ORDER BY itemCount;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert code == 0
    assert table_count(out) == 1
    assert "(3 rows)" in out
    assert out.index("| north") < out.index("| south")
    assert "Time: " in out and "Cost: Lambda" in out
    # the whole statement is one history entry, lines kept
    history = (home / "history").read_text()
    assert "+SELECT regionName, itemCount\n+FROM Sales\n+WHERE itemCount > 2\n+ORDER BY itemCount;" \
        in history


def test_semicolon_in_a_string_or_comment_does_not_end_the_statement(home, capsys):
    drive("SELECT regionName FROM Sales WHERE regionName <> ';'" + ENTER
          + "AND itemCount > 4 -- not yet;" + ENTER
          + ";" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert table_count(out) == 1
    assert "(2 rows)" in out
    history = (home / "history").read_text()
    assert "+SELECT regionName FROM Sales WHERE regionName <> ';'\n+AND itemCount > 4 -- not yet;\n+;" \
        in history


def test_alt_enter_inserts_a_newline_even_after_a_semicolon(home, capsys):
    drive("SELECT regionName FROM Sales WHERE itemCount = 3;" + ALT_ENTER
          + "SELECT price FROM Sales WHERE itemCount = 1;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert table_count(out) == 2
    assert "| north" in out and "10.0" in out
    history = (home / "history").read_text()
    assert "+SELECT regionName FROM Sales WHERE itemCount = 3;\n" \
           "+SELECT price FROM Sales WHERE itemCount = 1;" in history


def test_ctrl_d_exits_with_status_0_and_prints_the_welcome(home, capsys):
    assert drive(CTRL_D) == 0
    captured = capsys.readouterr()
    assert captured.out == ""   # stdout is not a terminal here: the greeting goes to stderr
    out = captured.err
    first = out.splitlines()[0]
    assert f"sqlmr {__version__}" in first and "local backend, 2 workers" in first
    assert "\\? for help" in first and "\\q to quit" in first
    assert "Sales" in out.splitlines()[1] and "rankings" in out.splitlines()[1]


def test_quit_commands(home):
    for keys in ("\\q" + ENTER, ".quit" + ENTER, ".exit" + ENTER, "quit" + ENTER):
        assert drive(keys) == 0  # no Ctrl-D needed: the command ends the REPL


def test_ctrl_c_clears_the_line_and_does_not_exit(home, capsys):
    code = drive("SELECT nothing FROM nowhere" + CTRL_C + CTRL_C
                 + "SELECT count(*) FROM Sales;" + ENTER + CTRL_D)
    captured = capsys.readouterr()
    assert code == 0
    assert "(1 row)" in captured.out and re.search(r"^\|\s+5 \|$", captured.out, re.M)
    assert "nowhere" not in captured.err


def test_errors_show_the_line_and_a_caret_and_the_repl_goes_on(home, capsys):
    drive("SELECT regionName," + ENTER + "  itemCont FROM Sales;" + ENTER
          + "SELECT count(*) FROM Sales;" + ENTER + CTRL_D)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("LINE 2: "))
    assert lines[i] == "LINE 2:   itemCont FROM Sales;"
    assert lines[i + 1].index("^") == lines[i].index("itemCont")
    assert lines[i + 2].startswith("error: ") and "itemCont" in lines[i + 2]
    assert "itemCount" in captured.err  # the suggestion
    assert "Traceback" not in captured.err
    assert "(1 row)" in captured.out


def test_other_errors_are_one_line_and_tracebacks_only_with_debug(home, capsys, tmp_path):
    keys = (f"CREATE EXTERNAL TABLE gone (a STRING) LOCATION '{tmp_path}/missing';" + ENTER
            + "SELECT a FROM gone;" + ENTER + CTRL_D)
    drive(keys)
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


# ----------------------------------------------------------------- commands

def test_backslash_and_dot_commands(home, capsys):
    settings = Settings(workers=2)
    drive("\\dt" + ENTER + ".tables;" + ENTER + "\\d sales" + ENTER + ".schema Sales" + ENTER
          + "\\?" + ENTER + "\\set workers 3" + ENTER + "\\set" + ENTER
          + "\\set nosuch 1" + ENTER + "\\set max_rows lots" + ENTER + "\\nosuch" + ENTER
          + CTRL_D, settings)
    captured = capsys.readouterr()
    out = captured.out
    assert out.count("| Sales ") == 2                          # \dt and .tables
    assert out.count("| regionName | STRING |") == 2           # \d and .schema
    assert "fields terminated by ','" in out
    assert "\\timing [on|off], .timer [on|off]" in out         # the help
    assert settings.workers == 3
    assert re.search(r"^workers\s+= 3$", out, re.M)            # \set lists settings
    assert "unknown setting 'nosuch'" in captured.err
    assert "max_rows needs a whole number, not 'lots'" in captured.err
    assert "invalid command \\nosuch" in captured.err
    assert "Traceback" not in captured.err


def test_timing_expanded_and_max_rows(home, capsys):
    drive("\\timing off" + ENTER + "\\x" + ENTER
          + "SELECT regionName, itemCount FROM Sales WHERE itemCount = 5;" + ENTER
          + "\\x off" + ENTER + ".timer on" + ENTER + "\\set max_rows 2" + ENTER
          + "SELECT itemCount FROM Sales ORDER BY itemCount;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    first, second = out.split("Expanded display is off.")
    assert "Timing is off." in first and "Time: " not in first
    assert "-[ RECORD 1 ]" in first and re.search(r"^regionName \| south$", first, re.M)
    assert "(5 rows, first 2 shown; \\set max_rows N shows more" in second
    assert "|           1 |" in second and "|           2 |" in second
    assert "|           3 |" not in second
    assert "Time: " in second


def test_expanded_auto_when_the_table_is_wider_than_the_terminal(home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "26")
    drive("\\x auto" + ENTER + "SELECT regionName, itemCount FROM Sales WHERE itemCount = 3;"
          + ENTER + "SELECT itemCount FROM Sales WHERE itemCount = 5;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert "Expanded display is used automatically." in out
    assert re.search(r"^regionName \| north$", out, re.M)      # 30 columns wide: expanded
    assert re.search(r"^\|\s+5 \|$", out, re.M)                # narrow: a table


def test_set_dialect_is_checked(home, capsys):
    settings = Settings(workers=2)
    drive("\\set dialect nosuch" + ENTER + "\\set dialect duckdb" + ENTER + CTRL_D, settings)
    captured = capsys.readouterr()
    assert "Unknown dialect 'nosuch'" in captured.err
    assert settings.dialect == "duckdb"


def test_mode_csv_json_markdown(home, capsys):
    drive(".mode csv" + ENTER + "SELECT regionName, price FROM Sales WHERE itemCount = 3;" + ENTER
          + ".mode json" + ENTER + "SELECT itemCount FROM Sales WHERE itemCount = 3;" + ENTER
          + ".mode markdown" + ENTER + "SELECT itemCount FROM Sales WHERE itemCount = 3;" + ENTER
          + ".mode nonsense" + ENTER + CTRL_D)
    captured = capsys.readouterr()
    out = captured.out
    assert "regionName,price\nnorth,1.5\n" in out
    assert '[\n {"itemCount": 3}\n]' in out
    assert "|   itemCount |\n|-------------|\n|           3 |\n(1 row)" in out
    assert "unknown mode 'nonsense'" in captured.err


def test_csv_mode_keeps_status_lines_out_of_stdout(home, capsys):
    """In csv / json mode stdout holds data only: SET's echo, row counts, Time
    and Cost go to stderr."""
    drive(".mode csv" + ENTER + "SET max_rows = 7;" + ENTER + "\\set workers 2" + ENTER
          + "SELECT regionName FROM Sales WHERE itemCount = 3;" + ENTER + CTRL_D)
    captured = capsys.readouterr()
    assert captured.out.endswith("regionName\nnorth\n"), captured.out
    assert "max_rows = 7" in captured.err and "workers = 2" in captured.err
    assert "(1 row)" in captured.err and "Time: " in captured.err


def test_create_table_as_prints_time_and_cost(home, capsys):
    drive("CREATE TABLE big_sales AS SELECT regionName FROM Sales WHERE itemCount > 2;" + ENTER
          + CTRL_D)
    out = capsys.readouterr().out
    assert "created table big_sales (1 column, 3 rows in 1 file)" in out
    assert "Time: " in out and "S3 PUT planned)" in out


def test_output_file_collects_later_results_until_reset(home, capsys, tmp_path):
    target = tmp_path / "out" / "result.csv"
    target.parent.mkdir()
    drive(f"\\o {target}" + ENTER
          + "SELECT regionName FROM Sales WHERE itemCount = 3;" + ENTER
          + "SELECT itemCount FROM Sales WHERE itemCount > 6;" + ENTER
          + "\\o" + ENTER
          + "SELECT price FROM Sales WHERE itemCount = 1;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert target.read_text() == "regionName\nnorth\nitemCount\n7\n"
    assert f"wrote 1 row to {target}" in out
    assert "|    10.0 |" in out  # the last result is on the screen
    assert sorted(os.listdir(target.parent)) == ["result.csv"]  # no temp files left


def test_once_and_output_spellings(home, capsys, tmp_path):
    once = tmp_path / "once.json"
    out_file = tmp_path / "all.txt"
    drive(f".once {once}" + ENTER + "SELECT itemCount FROM Sales WHERE itemCount = 3;" + ENTER
          + "SELECT itemCount FROM Sales WHERE itemCount = 5;" + ENTER
          + f".output {out_file}" + ENTER
          + "SELECT itemCount FROM Sales WHERE itemCount = 7;" + ENTER
          + ".output" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert once.read_text() == '[\n {"itemCount": 3}\n]\n'
    assert "|           5 |" in out                   # .once applied to one result only
    assert "|           7 |" in out_file.read_text()  # .txt: a table
    assert "|           7 |" not in out


def test_a_cancelled_result_leaves_no_half_written_file(home, capsys, tmp_path):
    """Ctrl-C while rows stream into a \\o file: the file keeps what it had."""
    target = tmp_path / "keep.csv"
    target.write_text("before\n")
    with create_pipe_input() as inp:
        repl = Repl(Settings(workers=2), input=inp, output=DummyOutput())
    try:
        repl.output_file = str(target)

        def rows():
            yield ["a"]
            raise KeyboardInterrupt

        result = StatementResult("rows", "SELECT x", ["x"], ["string"], rows(), 2)
        with pytest.raises(KeyboardInterrupt):
            repl.show_result(result)
        assert target.read_text() == "before\n"
        assert os.listdir(tmp_path).count("keep.csv") == 1
        assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    finally:
        repl.close()


def test_a_cancelled_job_prints_cancelled_and_the_repl_goes_on(home, capsys, monkeypatch):
    calls = []
    real = Session.run_select

    def run_select(self, text, tree=None):
        calls.append(text)
        if len(calls) == 1:
            raise JobCancelledError("cancelled")
        return real(self, text, tree)

    monkeypatch.setattr(Session, "run_select", run_select)
    code = drive("SELECT count(*) FROM Sales;" + ENTER + "SELECT count(*) FROM Sales;" + ENTER
                 + CTRL_D)
    captured = capsys.readouterr()
    assert code == 0
    assert re.match(r"cancelled after \d+\.\d\d s$", captured.err.strip().splitlines()[-1])
    assert table_count(captured.out) == 1


def test_include_file_runs_a_script_and_stops_at_an_error(home, capsys, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text(textwrap.dedent("""\
        -- two queries and a mistake
        SELECT count(*) FROM Sales;
        SELECT regionName FROM Sales
        WHERE itemCount = 7;
        SELECT bogus FROM Sales;
        SELECT 'never' FROM Sales;
    """))
    drive(f"\\i {script}" + ENTER + f".read {script}" + ENTER + "\\i /no/such/file.sql" + ENTER
          + CTRL_D)
    captured = capsys.readouterr()
    assert table_count(captured.out) == 4
    assert "never" not in captured.out
    assert captured.err.count("LINE 5: SELECT bogus FROM Sales;") == 2
    assert "/no/such/file.sql: No such file or directory" in captured.err


def test_backslash_command_after_sql_keeps_the_query_buffer(home, capsys):
    # psql habit: "\d t" in the middle of a statement; the typed SQL comes back
    drive("SELECT regionName" + ENTER + "\\d Sales" + ENTER + "FROM Sales WHERE itemCount = 1;"
          + ENTER + CTRL_D)
    out = capsys.readouterr().out
    assert "| regionName | STRING |" in out
    assert "| east" in out


def test_edit_command_puts_the_edited_statement_back_in_the_prompt(home, capsys, tmp_path,
                                                                    monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\n"
                      "path = sys.argv[1]\n"
                      "text = open(path).read()\n"
                      "open(path, 'w').write(text.replace('= 3', '= 5'))\n")
    monkeypatch.setenv("VISUAL", f"{sys.executable} {editor}")
    drive("SELECT regionName FROM Sales WHERE itemCount = 3;" + ENTER + "\\e" + ENTER + ENTER
          + CTRL_D)
    out = capsys.readouterr().out
    assert "| north" in out and "| south" in out


def test_settings_from_the_config_file_apply(home, capsys):
    (home / "config").write_text("max_rows = 1\ntiming = off\n")
    drive("SELECT itemCount FROM Sales;" + ENTER + CTRL_D, load_settings())
    out = capsys.readouterr().out
    assert "(5 rows, first 1 shown;" in out
    assert "Time: " not in out


# --------------------------------------------------------------- completion

@pytest.fixture
def completer(home):
    return SqlCompleter(lambda: Session(Settings()).catalog.tables(),
                        lambda: [n for n, _ in Settings().items()])


def complete(completer, text: str, cursor: int | None = None, requested: bool = False):
    doc = Document(text, len(text) if cursor is None else cursor)
    return [c.text for c in completer.get_completions(
        doc, CompleteEvent(completion_requested=requested))]


def test_completes_table_names_after_from_and_join(completer):
    assert complete(completer, "SELECT * FROM ") == ["documents", "rankings", "Sales", "uservisits"]
    assert complete(completer, "SELECT * FROM sa") == ["Sales"]
    assert complete(completer, "select * from rankings r join u") == ["uservisits"]
    assert complete(completer, "SELECT * FROM rankings, s") == ["Sales"]
    assert complete(completer, "DESCRIBE ra") == ["rankings"]
    assert complete(completer, "DROP TABLE IF EXISTS S") == ["Sales"]
    assert complete(completer, "CREATE EXTERNAL TABLE S") == []


def test_completes_columns_of_the_statements_tables(completer):
    text = "SELECT reg FROM Sales"   # the column first, then the functions that match
    assert complete(completer, text, len("SELECT reg")) == ["regionName", "regexp_extract",
                                                            "regexp_replace"]
    text = "SELECT item FROM Sales WHERE pri"
    assert complete(completer, text) == ["price"]
    assert complete(completer, text, len("SELECT item"))[0] == "itemCount"
    # columns of every table the statement names, in the user's spelling
    text = "SELECT s.regionName, pa FROM Sales s JOIN rankings r ON r.pageURL = s.regionName"
    assert complete(completer, text, len("SELECT s.regionName, pa")) == ["pageURL", "pageRank"]
    # alias / table qualifiers narrow to that table
    assert complete(completer, "SELECT r. FROM rankings r", len("SELECT r.")) == [
        "pageURL", "pageRank", "avgDuration"]
    assert complete(completer, "SELECT Sales.i FROM Sales", len("SELECT Sales.i")) == ["itemCount"]
    # no columns of tables the statement does not name
    assert "pageURL" not in complete(completer, "SELECT pa FROM Sales", len("SELECT pa"))


def test_completes_keywords_and_functions_in_the_users_case(completer):
    assert "SUBSTR" in complete(completer, "SELECT SU")
    assert "substr" in complete(completer, "select su")
    assert "GROUP BY" in complete(completer, "SELECT a FROM Sales GR")
    assert "COALESCE" in complete(completer, "SELECT COAL")
    # nothing pops up on a bare space unless asked for (Tab)
    assert complete(completer, "SELECT ") == []
    assert "COUNT" in complete(completer, "SELECT ", requested=True)


def test_no_completion_inside_strings_or_comments(completer):
    assert complete(completer, "SELECT * FROM Sales WHERE regionName = 'no") == []
    assert complete(completer, "SELECT * FROM Sales -- reg") == []


def test_completes_commands_and_their_arguments(completer, tmp_path):
    assert complete(completer, "\\d") == ["\\dt"]
    assert complete(completer, ".ta") == [".tables"]
    assert complete(completer, ".mode c") == ["csv"]
    assert complete(completer, "\\d sa") == ["Sales"]
    assert complete(completer, ".schema r") == ["rankings"]
    assert complete(completer, "\\set work") == ["workers"]
    assert complete(completer, "\\set backend l") == ["local", "lambda"]
    (tmp_path / "queries.sql").write_text("")
    assert complete(completer, f"\\i {tmp_path}/quer") == ["ies.sql"]


def test_help_lists_the_command_registry_and_dispatch_uses_it(home, capsys, monkeypatch):
    """One registry (name, help, handler): \\? lists every entry, and a command
    registered there runs without any other change."""
    from sqlmr import repl_commands
    calls = []
    spec = repl_commands.CommandSpec(("\\hello",), "[WHO]", "say hello",
                                     lambda repl, cmd: calls.append((cmd.name, cmd.arg)))
    monkeypatch.setattr(repl_commands, "COMMANDS", repl_commands.COMMANDS + [spec])
    monkeypatch.setitem(repl_commands.COMMAND_BY_NAME, "\\hello", spec)
    monkeypatch.setattr("sqlmr.repl.COMMANDS", repl_commands.COMMANDS)
    drive("\\?" + ENTER + "\\hello world;" + ENTER + CTRL_D)
    out = capsys.readouterr().out
    for c in repl_commands.COMMANDS:
        assert ", ".join(n + (" " + c.args if c.args else "") for n in c.names) in out
        assert c.help in out
    assert calls == [("\\hello", "world")]
