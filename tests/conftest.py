"""Shared fixtures: an isolated $SQLMR_HOME per test, the real AMPLab tiny data
(skipped cleanly when absent) and sessions over tables the tests create."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO.parent / "shared" / "amplab-tiny"

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def sqlmr_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("sqlmr-home")
    monkeypatch.setenv("SQLMR_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    return home


@pytest.fixture
def tiny() -> Path:
    if not (TINY / "rankings").is_dir() or not (TINY / "uservisits").is_dir():
        pytest.skip(f"AMPLab tiny data not found at {TINY}")
    return TINY


@pytest.fixture
def session():
    from sqlmr.config import Settings
    from sqlmr.session import Session
    s = Session(Settings(workers=2))
    yield s
    s.close()
