"""Hostile input stays data, and the runtime package stays self-contained."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from difftest import UV_COLUMNS, Tables, as_bytes, uservisits_lines

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"

HOSTILE = [
    "'); import os; os.system('touch PWNED'); ('",
    '"""; __import__("os").system("touch PWNED"); """',
    "\\n__import__('os').system('touch PWNED')\\n",
    "x\\ny\\tz",
    "{__import__('os')}",
    "%s%r{0}",
]


@pytest.mark.parametrize("literal", HOSTILE)
def test_hostile_string_literal_is_compared_as_a_string(session, tmp_path, literal, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = Tables(session, tmp_path)
    lines = uservisits_lines(30, seed=2)
    t.add("uv", UV_COLUMNS, {"p": as_bytes(lines)})
    hive = literal.replace("\\", "\\\\").replace("'", "\\'")
    job = session.compile(f"SELECT sourceIP FROM uv WHERE searchWord = '{hive}' OR countryCode <> '{hive}'")
    # the literal appears in the code only as a Python string literal
    values = [n.value for n in ast.walk(ast.parse(job.source)) if isinstance(n, ast.Constant)]
    assert literal in values
    rows = t.sqlmr(f"SELECT COUNT(*) FROM uv WHERE searchWord = '{hive}'")
    assert rows == [[0]]
    rows = t.sqlmr(f"SELECT COUNT(*), MAX(CONCAT(countryCode, '{hive}')) FROM uv")
    assert rows[0][0] == 30 and rows[0][1].endswith(literal)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_identifiers_never_become_python_names(session, tmp_path):
    t = Tables(session, tmp_path)
    cols = [("`import os`", "string"), ("`x; y`", "int")]
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "p").write_text("a,1\nb,2\n")
    list(session.execute(f"CREATE EXTERNAL TABLE weird (`import os` STRING, `x; y` INT) LOCATION '{folder}'"))
    rows = t.sqlmr("SELECT `import os`, `x; y` + 1 AS `__class__` FROM weird WHERE `x; y` > 1")
    assert rows == [["b", 3]]
    assert cols  # the names above are legal column names, nothing more


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_runtime_imports_only_stdlib_and_boto3():
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "urllib3", "runtime"}  # boto3's closure ships in Lambda
    for path in sorted(RUNTIME.glob("*.py")):
        bad = _imports(path) - allowed
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_compiler_and_runtime_never_import_sqlmr():
    for pkg in ("compiler", "runtime"):
        for path in sorted((RUNTIME.parent / pkg).glob("*.py")):
            assert "sqlmr" not in _imports(path), f"{pkg}/{path.name} imports sqlmr"
    for path in sorted(RUNTIME.glob("*.py")):
        assert "compiler" not in _imports(path) and "sqlglot" not in _imports(path), path.name
