"""Where sqlmr keeps its state, and the settings a session runs with.

State lives under ``$SQLMR_HOME`` (default ``~/.sqlmr``): the catalog, the REPL
history, the embedded default dataset and job scratch space, so a test or a
user can isolate it by pointing ``SQLMR_HOME`` elsewhere.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator

# A home chosen by the Python API (``sqlmr.connect(home=…)``) for the work of
# one connection; per thread, so connections with other homes do not mix.
_home_override: ContextVar[Path | None] = ContextVar("sqlmr_home", default=None)


def home() -> Path:
    override = _home_override.get()
    if override is not None:
        return override
    return Path(os.environ.get("SQLMR_HOME") or Path.home() / ".sqlmr").expanduser()


@contextmanager
def home_at(path: str | os.PathLike | None) -> Iterator[None]:
    """:func:`home` is ``path`` inside the block (unchanged when None)."""
    if path is None:
        yield
        return
    token = _home_override.set(Path(path).expanduser().absolute())
    try:
        yield
    finally:
        _home_override.reset(token)


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
    shuffle: str = "auto"             # auto | direct | combine (combiners between maps and reducers)
    reduce_mb: float = 0.0            # shuffled bytes per reducer; 0 = chosen per backend
    strict: bool = False              # malformed rows fail the query
    max_rows: int = 40                # rows shown by the table renderer
    format: str = "table"             # table | csv | json | markdown
    timing: bool = True               # print time and cost after each statement
    keep_scratch: bool = False        # keep a job's scratch data for debugging
    broadcast_mb: float = 32.0        # joins: broadcast a side smaller than this
    force: bool = False               # INSERT OVERWRITE DIRECTORY may replace other files
    max_cost: float = 0.0             # dollars a query may cost (estimate and counted); 0 = no limit
    dry_run: bool = False             # plan and estimate queries, run nothing
    catalog: str = ""                 # where the catalog lives: s3://bucket/prefix/ or a file;
                                      # "" = $SQLMR_CATALOG, else $SQLMR_HOME/catalog.json

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
        setattr(self, name, parse_value(name, text, getattr(self, name)))

    def items(self) -> list[tuple[str, object]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


# Numeric settings: (smallest, largest) allowed, and what the smallest means when
# it is a sentinel.  One table serves the config file, SET, \\set and the CLI flags.
LIMITS: dict[str, tuple[float, float | None, str]] = {
    "workers": (0, None, "0 = one per core"),
    "reducers": (0, None, "0 = chosen from the input size"),
    "split_mb": (0, None, "0 = chosen from the input size"),
    "reduce_mb": (0, None, "0 = chosen per backend"),
    "max_rows": (0, None, "0 = no limit"),
    "broadcast_mb": (0, None, "0 = never broadcast"),
    "memory_mb": (128, 10240, "Lambda's range"),
    "max_cost": (0, None, "0 = no limit"),
}
FORMATS = ("table", "csv", "json", "markdown")
SHUFFLES = ("auto", "direct", "combine")


def parse_value(name: str, text: str, current: object) -> object:
    """``text`` as a value of setting ``name`` (typed like ``current``), or a
    ValueError that names the setting and the value.

    >>> parse_value("workers", "4", 0), parse_value("timing", "off", True)
    (4, False)
    >>> parse_value("workers", "abc", 0)
    Traceback (most recent call last):
    ...
    ValueError: workers needs a whole number, not 'abc'
    >>> parse_value("workers", "-1", 0)
    Traceback (most recent call last):
    ...
    ValueError: workers must be 0 or more (0 = one per core), not -1
    """
    value: object
    if isinstance(current, bool):
        low = text.lower()
        if low not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name} is on or off, not {text!r}")
        value = low in ("on", "true", "1", "yes")
    elif isinstance(current, int):
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{name} needs a whole number, not {text!r}") from None
    elif isinstance(current, float):
        try:
            # a price may be written as one: max_cost = $0.50
            value = float(text[1:] if name == "max_cost" and text.startswith("$") else text)
        except ValueError:
            raise ValueError(f"{name} needs a number, not {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} needs a finite number, not {text!r}")
    else:
        value = text
    if name in LIMITS:
        low_, high, note = LIMITS[name]
        if value < low_ or (high is not None and value > high):  # type: ignore[operator]
            shown = f"{low_:g}–{high:g}" if high is not None else f"{low_:g} or more"
            verb = "be" if high is None else "be in"
            raise ValueError(f"{name} must {verb} {shown} ({note}), not {text}")
    if name == "backend" and value not in ("local", "lambda"):
        raise ValueError(f"backend is local or lambda, not {text!r}")
    if name == "shuffle" and value not in SHUFFLES:
        raise ValueError(f"shuffle is auto, direct or combine, not {text!r}")
    if name == "format" and value not in FORMATS:
        raise ValueError(f"format is table, csv, json or markdown, not {text!r}")
    if name == "dialect":
        check_dialect(text)
    if name == "catalog" and value and not (
            str(value).startswith(("s3://", "file://", "/", "~")) and value != "s3://"):
        raise ValueError(f"catalog is s3://bucket/prefix/ or the absolute path of a file "
                         f"('' = $SQLMR_HOME/catalog.json), not {text!r}")
    return value


def check_dialect(name: str) -> None:
    """A ValueError unless sqlglot knows the dialect ``name``."""
    from sqlglot.dialects.dialect import Dialect
    try:
        Dialect.get_or_raise(name)
    except ValueError as e:
        raise ValueError(f"dialect: {e}".rstrip(".")) from None


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
                raise ValueError(f"{path} line {n}: expected 'name = value', not {line!r}")
            key, value = (x.strip() for x in line.split("=", 1))
            try:
                s.set(key, value)
            except KeyError as e:
                raise ValueError(f"{path} line {n}: {e.args[0]}") from None
            except ValueError as e:
                raise ValueError(f"{path} line {n} ({key} = {value}): {e}") from None
    if os.environ.get("SQLMR_CATALOG"):  # for one run, over the config files
        s.catalog = os.environ["SQLMR_CATALOG"]
    return s
