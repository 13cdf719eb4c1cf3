"""Random queries over the supported grammar, each compared with DuckDB.

A seeded generator (``querygen``) writes each query twice: in sqlmr's Hive
dialect and in DuckDB SQL that means the same under Hive's semantics.  Every
seed also picks the plan's knobs (reducers, broadcast threshold, split size),
so one seed checks one query under one plan.  The suite runs a fixed range of
seeds; more are run with, for example::

    SQLMR_RANDOM_SEEDS=0:5000 pytest tests/test_random_queries.py

A failure prints the seed, both SQL texts and the rows that differ;
``python tests/querygen.py SEED`` prints the case again.
"""

from __future__ import annotations

import os

import pytest

import querygen
from difftest import Tables


def seed_range(default: str) -> range:
    lo, hi = os.environ.get("SQLMR_RANDOM_SEEDS", default).split(":")
    return range(int(lo), int(hi))


def module_session(home):
    """A session with a catalog of its own (the tables live for the module,
    longer than a test's $SQLMR_HOME)."""
    from sqlmr.catalog import Catalog
    from sqlmr.config import Settings
    from sqlmr.session import Session
    return Session(Settings(workers=2), catalog=Catalog(home / "catalog.json"))


@pytest.fixture(scope="module")
def gen_tables(tmp_path_factory):
    session = module_session(tmp_path_factory.mktemp("random-home"))
    t = Tables(session, tmp_path_factory.mktemp("random"))
    querygen.add_gen_tables(t)
    yield t
    session.close()


@pytest.fixture(scope="module")
def amplab_tables(tmp_path_factory):
    from conftest import TINY
    if not (TINY / "rankings").is_dir():
        pytest.skip(f"AMPLab tiny data not found at {TINY}")
    session = module_session(tmp_path_factory.mktemp("random-amplab-home"))
    t = Tables(session, tmp_path_factory.mktemp("random-amplab"))
    querygen.add_amplab_tables(t, TINY)
    yield t
    session.close()


def run_seeds(tables: Tables, seeds: range, schema: str, stress: bool = False,
              shapes: bool = False) -> None:
    """Run every seed; fail once, listing every disagreement."""
    failures = []
    defaults = {k: getattr(tables.session.settings, k) for k in ("reducers", "broadcast_mb", "split_mb")}
    for seed in seeds:
        case = querygen.generate(seed, schema, stress=stress, shapes=shapes)
        try:
            report = querygen.run_case(tables, case)
        finally:
            querygen.apply_settings(tables.session, defaults)
        if report:
            failures.append(report)
    assert not failures, f"{len(failures)} of {len(seeds)} random queries disagree with DuckDB:\n\n" + \
        "\n\n".join(failures[:10])


# Seeds in slices, so a failure names a narrow range and slices run in order.
GEN_SLICES = [(i, i + 50) for i in range(0, 300, 50)]


@pytest.mark.parametrize("lo,hi", GEN_SLICES, ids=[f"seeds{lo}-{hi}" for lo, hi in GEN_SLICES])
def test_random_queries_on_generated_tables(gen_tables, lo, hi):
    run_seeds(gen_tables, slice_seeds(lo, hi), "gen")


def slice_seeds(lo: int, hi: int) -> range:
    """The seeds of one slice, or with SQLMR_RANDOM_SEEDS set, those seeds in
    the first slice (the others skip)."""
    if "SQLMR_RANDOM_SEEDS" in os.environ:
        if lo:
            pytest.skip("SQLMR_RANDOM_SEEDS runs in the first slice")
        return seed_range("")
    return range(lo, hi)


SHAPE_SLICES = [(i, i + 50) for i in range(0, 150, 50)]


@pytest.mark.parametrize("lo,hi", SHAPE_SLICES, ids=[f"seeds{lo}-{hi}" for lo, hi in SHAPE_SLICES])
def test_random_with_union_and_no_from_queries(gen_tables, lo, hi):
    """WITH (a CTE read once, twice, by another CTE), UNION [ALL] of scans,
    aggregates, joins, SELECT without FROM and limited branches (ordered,
    limited, or read by an outer query), and SELECT without FROM."""
    run_seeds(gen_tables, slice_seeds(lo, hi), "gen", shapes=True)


def test_random_queries_with_generated_names_stressed(gen_tables):
    """Aggregates over joins with many IN lists, LIKE patterns and 12-30
    aggregates: generated code binds many constants, locals and slots."""
    run_seeds(gen_tables, seed_range("0:40") if "SQLMR_RANDOM_SEEDS" in os.environ else range(40),
              "gen", stress=True)


def test_random_queries_on_amplab_tiny(amplab_tables):
    """The real AMPLab /tiny/ tables: 10,000 visits, 1,200 pages."""
    run_seeds(amplab_tables, seed_range("0:25") if "SQLMR_RANDOM_SEEDS" in os.environ else range(25),
              "amplab")


def test_random_with_union_and_no_from_queries_on_amplab_tiny(amplab_tables):
    run_seeds(amplab_tables, seed_range("0:25") if "SQLMR_RANDOM_SEEDS" in os.environ else range(25),
              "amplab", shapes=True)


def test_generator_is_deterministic():
    """A seed is a complete reproduction: the same seed, the same case."""
    for seed in (0, 7, 123):
        a, b = querygen.generate(seed), querygen.generate(seed)
        assert (a.sqlmr, a.duck, a.settings) == (b.sqlmr, b.duck, b.settings)
    assert querygen.generate(1).sqlmr != querygen.generate(2).sqlmr
    a, b = querygen.generate(5, shapes=True), querygen.generate(5, shapes=True)
    assert (a.sqlmr, a.duck) == (b.sqlmr, b.duck) and a.sqlmr != querygen.generate(5).sqlmr
