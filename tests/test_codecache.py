"""The per-process code cache stays bounded over many jobs: namespaces,
their broadcast hash tables and linecache entries (REPL workers and warm
Lambdas run job after job)."""

from __future__ import annotations

import linecache
import traceback

import pytest

from runtime import codecache, storage


@pytest.fixture(autouse=True)
def empty_cache():
    for sha, ns in list(codecache._CACHE.items()):
        codecache._release(sha, ns)
    codecache._CACHE.clear()
    for name in list(codecache._LINES):
        codecache._forget_lines(name)
    yield


def job_source(i: int) -> str:
    """A module shaped like a generated job: a broadcast cache ``_BC`` that its
    loader fills with a big table, and a function that can fail."""
    return (f"_BC = {{}}\nJOB = {i}\n"
            "def _load_small(ctx):\n"
            "    d = _BC.get(ctx)\n"
            "    if d is None:\n"
            "        d = _BC[ctx] = {k: [k] for k in range(20000)}\n"
            "    return d\n"
            "def fail():\n"
            "    raise ValueError('job ' + str(JOB))\n")


def put(tmp_path, i: int) -> dict:
    src = job_source(i).encode()
    uri = storage.to_uri(str(tmp_path / f"job{i}.py"))
    storage.write_bytes(uri, src)
    return {"uri": uri, "sha256": codecache.sha256_hex(src)}


def job_lines() -> list[str]:
    return [k for k in linecache.cache if str(k).startswith("<sqlmr-job-")]


def test_many_jobs_keep_a_bounded_cache(tmp_path):
    held = []
    for i in range(40):
        ns = codecache.load(put(tmp_path, i))
        ns["_load_small"](("job", "small"))
        held.append(ns)
        assert len(codecache._CACHE) <= codecache.MAX_CACHED
        assert len(job_lines()) <= codecache.MAX_LINES
    # evicted jobs hold no broadcast table, even if someone still references them
    assert sum(len(ns["_BC"]) for ns in held) == codecache.MAX_CACHED
    assert all(ns["_BC"] for ns in held[-codecache.MAX_CACHED:])
    # the driver's loads go through the same bounds
    for i in range(40, 60):
        codecache.load_local(job_source(i), codecache.sha256_hex(job_source(i).encode()))
    assert len(codecache._CACHE) <= codecache.MAX_CACHED
    assert len(job_lines()) <= codecache.MAX_LINES
    for i in range(60, 80):
        codecache.load_source(job_source(i))
    assert len(job_lines()) <= codecache.MAX_LINES


def test_recently_used_job_stays_cached(tmp_path):
    a, b, c = (put(tmp_path, i) for i in range(3))
    ns_a = codecache.load(a)
    codecache.load(b)
    assert codecache.load(a) is ns_a   # a used again: b is now the oldest
    codecache.load(c)
    assert codecache.load(a) is ns_a
    assert b["sha256"] not in codecache._CACHE


def test_cached_job_tracebacks_show_its_source(tmp_path):
    ns = codecache.load(put(tmp_path, 7))
    try:
        ns["fail"]()
    except ValueError as e:
        text = "".join(traceback.format_exception(e))
    assert "raise ValueError('job ' + str(JOB))" in text


def test_mismatched_code_is_refused(tmp_path):
    code = put(tmp_path, 1)
    with pytest.raises(codecache.CodeMismatchError):
        codecache.load({"uri": code["uri"], "sha256": "0" * 64})
