"""Where sqlmr keeps its state, and the settings a session runs with.

State lives under ``$SQLMR_HOME`` (default ``~/.sqlmr``): the catalog, the REPL
history, the embedded default dataset and job scratch space, so a test or a
user can isolate it by pointing ``SQLMR_HOME`` elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("SQLMR_HOME") or Path.home() / ".sqlmr").expanduser()


def default_data_dir() -> Path:
    return home() / "data" / "amplab"


@dataclass
class Settings:
    backend: str = "local"            # local | lambda
    workers: int = 0                  # local processes; 0 = one per core
    memory_mb: int = 1769             # Lambda memory used for cost (1,769 MB = 1 vCPU)
    architecture: str = "arm64"       # Lambda architecture used for cost
    dialect: str = "hive"
    split_mb: float = 0.0             # bytes per map split; 0 = chosen from the input size
    reducers: int = 0                 # reduce tasks; 0 = chosen from the input size
    strict: bool = False              # malformed rows fail the query
    max_rows: int = 40                # rows shown by the table renderer
    format: str = "table"             # table | csv | json | markdown
    timing: bool = True               # print time and cost after each statement
    keep_scratch: bool = False        # keep a job's scratch data for debugging
    broadcast_mb: float = 32.0        # joins: broadcast a side smaller than this

    def effective_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def updated(self, **changes) -> "Settings":
        return replace(self, **changes)

    def set(self, name: str, text: str) -> None:
        """Set a setting from text (``\\set workers 4``), converting to its type."""
        name = name.replace("-", "_").lower()
        known = {f.name: f for f in fields(self)}
        if name not in known:
            raise KeyError(f"unknown setting '{name}' (settings: {', '.join(sorted(known))})")
        current = getattr(self, name)
        if isinstance(current, bool):
            low = text.lower()
            if low not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{name} is on or off, not {text!r}")
            value: object = low in ("on", "true", "1", "yes")
        elif isinstance(current, int):
            value = int(text)
        elif isinstance(current, float):
            value = float(text)
        else:
            value = text
        if name == "backend" and value not in ("local", "lambda"):
            raise ValueError("backend is local or lambda")
        if name == "format" and value not in ("table", "csv", "json", "markdown"):
            raise ValueError("format is table, csv, json or markdown")
        setattr(self, name, value)

    def items(self) -> list[tuple[str, object]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def config_paths() -> list[Path]:
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [xdg / "sqlmr" / "config", home() / "config"]


def load_settings() -> Settings:
    """Defaults overridden by ``~/.config/sqlmr/config`` then ``$SQLMR_HOME/config``
    (lines ``name = value``; ``#`` comments)."""
    s = Settings()
    for path in config_paths():
        if not path.is_file():
            continue
        for n, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=" not in line:
                raise ValueError(f"{path}:{n}: expected 'name = value'")
            key, value = (x.strip() for x in line.split("=", 1))
            try:
                s.set(key, value)
            except (KeyError, ValueError) as e:
                raise ValueError(f"{path}:{n}: {e}") from None
    return s
