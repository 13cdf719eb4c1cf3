"""Fidelity of ``sqlmr gen amplab``: format, distributions, determinism, model answers.

The comparisons with the real AMPLab ``/tiny/`` sample skip cleanly when
``../shared/amplab-tiny`` is absent.
"""

from __future__ import annotations

import argparse
import gzip
import math
import multiprocessing
import random
import re
import shutil
import struct
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from aws_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmr.gen import amplab
from sqlmr.gen.amplab import (expected_counts, generate, model_counts, model_tolerance,
                              scale_counts, tolerance)
from sqlmr.gen.javafloat import java_float_str, revenue_str, to_float32

TINY = Path(__file__).resolve().parents[2] / "shared" / "amplab-tiny"

IP = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
RANDOM_AGENT = re.compile(r"^[A-Z][a-z]{4,23}/\d\.\d$")


def _read(folder: Path, table: str) -> bytes:
    out = []
    for p in sorted((folder / table).iterdir()):
        if p.name.startswith("part-"):
            data = p.read_bytes()
            out.append(gzip.decompress(data) if p.name.endswith(".gz") else data)
    return b"".join(out)


def _rows(folder: Path, table: str) -> list[list[str]]:
    return [line.split(",") for line in _read(folder, table).decode().splitlines()]


@pytest.fixture(scope="module")
def sf001(tmp_path_factory):
    """SF 0.001 (18,000 pages, 150,000 visits), seed 0, in several files, two workers."""
    out = tmp_path_factory.mktemp("sf001")
    stats = generate(str(out), 0.001, seed=0, files=3, workers=2, progress=False)
    return out, stats


@pytest.fixture(scope="module")
def sf001_rows(sf001):
    out, _ = sf001
    return _rows(out, "rankings"), _rows(out, "uservisits")


def _tiny_rows():
    if not (TINY / "rankings").is_dir() or not (TINY / "uservisits").is_dir():
        pytest.skip(f"AMPLab tiny data not found at {TINY}")
    return _rows(TINY, "rankings"), _rows(TINY, "uservisits")


# ------------------------------------------------------------------ Float.toString

@pytest.mark.parametrize("value, text", [
    (0.001, "0.001"), (1.0e-4, "1.0E-4"), (0.5, "0.5"), (3.1352043e-05, "3.1352043E-5"),
    (0.0, "0.0"), (1.0, "1.0"), (0.1, "0.1"), (0.0024414062, "0.0024414062"),
    (9.999999e-4, "9.999999E-4"), (0.99999994, "0.99999994"), (100.0, "100.0"),
    (1.0e7, "1.0E7"), (-2.5, "-2.5"), (123456.7, "123456.7"),
    (1.17549435e-38, "1.1754944E-38"),  # shortest, as Java 19+ (Java 8-18: 1.17549435E-38)
    (1.4e-45, "1.4E-45"), (float("inf"), "Infinity"), (float("nan"), "NaN"),
])
def test_java_float_str_known_cases(value, text):
    assert java_float_str(value) == text


@pytest.mark.parametrize("k, text", [
    (40960, "0.0024414062"), (73728, "0.0043945312"), (2129920, "0.12695312"),  # exact ties
    (0, "0.0"), (1, "5.9604645E-8"), (16777, "9.999871E-4"), (16778, "0.0010000467"),
    (1 << 23, "0.5"), ((1 << 24) - 1, "0.99999994"), (5582065, "0.332717"),
])
def test_revenue_str_known_cases(k, text):  # as printed by Java 17
    assert revenue_str(k) == text


def test_revenue_str_agrees_with_the_general_formatter():
    rng = random.Random(7)
    ks = list(range(0, 20000)) + [1 << b for b in range(24)] + [(1 << b) + d for b in range(1, 24)
                                                            for d in (-1, 1)]
    ks += [rng.randrange(1 << 24) for _ in range(30000)] + [(1 << 24) - 1]
    for k in ks:
        assert revenue_str(k) == java_float_str(k / 2 ** 24), k


def test_revenue_str_reads_back_and_is_shortest():
    rng = random.Random(8)
    for _ in range(20000):
        k = rng.randrange(1 << 24)
        s = revenue_str(k)
        assert to_float32(float(s)) == k / 2 ** 24
        digits = s.split("E")[0].replace(".", "").lstrip("0").rstrip("0") or "0"
        if len(digits) > 1:  # one digit fewer never reads back
            shorter = "%.*e" % (len(digits) - 2, k / 2 ** 24)
            assert to_float32(float(shorter)) != k / 2 ** 24, (k, s)


def test_tiny_adrevenue_strings_round_trip():
    _, visits = _tiny_rows()
    for row in visits:
        s = row[3]
        x = to_float32(float(s))
        k = x * 2 ** 24
        assert k == int(k)  # nextFloat values: multiples of 2**-24
        assert revenue_str(int(k)) == s
        assert java_float_str(x) == s


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                    reason="no JDK installed")
def test_revenue_str_matches_java(tmp_path):
    src = tmp_path / "F.java"
    src.write_text(
        "public class F { public static void main(String[] a) {\n"
        "  StringBuilder sb = new StringBuilder();\n"
        "  for (int k = 0; k < (1 << 24); k += (k < 40000 ? 1 : 211)) {\n"
        "    sb.append(k).append(' ').append(Float.toString(k / 16777216.0f)).append('\\n'); }\n"
        "  System.out.print(sb); } }\n")
    subprocess.run(["javac", str(src)], check=True, cwd=tmp_path, timeout=120)
    out = subprocess.run(["java", "-cp", str(tmp_path), "F"], check=True, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120).stdout
    lines = out.splitlines()
    assert len(lines) > 100000
    for line in lines:
        k, s = line.split()
        assert revenue_str(int(k)) == s, line


# ------------------------------------------------------------------ scale and size

def test_scale_arithmetic():
    assert scale_counts(1) == (18_000_000, 150_000_000)
    assert scale_counts(5) == (90_000_000, 750_000_000)
    assert scale_counts(0.001) == (18_000, 150_000)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            scale_counts(bad)


def test_sf0001_is_about_25_mb(sf001):
    out, stats = sf001
    total = sum(p.stat().st_size for t in amplab.TABLES for p in (out / t).iterdir())
    assert total == stats["bytes"]
    assert stats["rankings"]["rows"] == 18_000 and stats["uservisits"]["rows"] == 150_000
    assert 0.85 * 25e6 <= total <= 1.15 * 25e6
    # the size model used for estimates stays within 2% of what is written
    for t in amplab.TABLES:
        per_row = stats[t]["bytes"] / stats[t]["rows"]
        assert abs(per_row / amplab.ROW_BYTES[t] - 1) < 0.02, (t, per_row)


def test_row_sizes_match_tiny(sf001):
    _, stats = sf001
    _tiny_rows()
    for t, rows in (("rankings", 1200), ("uservisits", 10000)):
        tiny_bytes = len(_read(TINY, t))
        ours = stats[t]["bytes"] / stats[t]["rows"]
        assert abs(ours / (tiny_bytes / rows) - 1) < 0.04, (t, ours, tiny_bytes / rows)


# ------------------------------------------------------------------ determinism

def test_same_seed_same_bytes_whatever_the_files_and_workers(tmp_path):
    kw = dict(pages=23_457, visits=61_234, progress=False)
    a = tmp_path / "a"
    b = tmp_path / "b"
    c = tmp_path / "c"
    generate(str(a), 1, seed=5, files=1, workers=1, **kw)
    generate(str(b), 1, seed=5, files=7, workers=2, **kw)
    generate(str(c), 1, seed=5, files=3, workers=2, gzip=True, **kw)
    assert len(list((b / "uservisits").iterdir())) == 7
    assert all(p.name.endswith(".gz") for p in (c / "rankings").iterdir())
    for t in amplab.TABLES:
        assert _read(a, t) == _read(b, t) == _read(c, t)
    d = tmp_path / "d"
    generate(str(d), 1, seed=6, files=1, workers=1, **kw)
    for t in amplab.TABLES:
        assert _read(d, t) != _read(a, t)
    # a re-run with fewer files replaces the old parts and leaves no stale ones
    generate(str(b), 1, seed=5, files=2, workers=2, **kw)
    assert sorted(p.name for p in (b / "uservisits").iterdir()) == ["part-00000", "part-00001"]
    assert _read(b, "uservisits") == _read(a, "uservisits")


def test_blocks_are_independent_of_the_slice():
    m = amplab.Model(3, 50_000, 50_000)
    whole = m.text("uservisits", 0, 30_000)
    parts = m.text("uservisits", 0, 12_345) + m.text("uservisits", 12_345, 30_000)
    assert whole == parts
    whole = m.text("rankings", 0, 30_000)
    parts = m.text("rankings", 0, 9_999) + m.text("rankings", 9_999, 30_000)
    assert whole == parts


# ------------------------------------------------------------------ rankings model

def test_page_class_is_the_rounded_formula():
    rng = random.Random(1)
    for n in (1200, 18_000, 18_000_000, 90_000_000):
        for j in [1, 2, 3, n, n - 1] + [rng.randint(1, n) for _ in range(2000)]:
            assert amplab.page_class(j, n) == max(2, math.floor(1.5 * math.sqrt(n / j) + 0.5))


def test_q1_counts_match_the_model(sf001_rows):
    rankings, _ = sf001_rows
    ranks = [int(r[1]) for r in rankings]
    for q, x in (("1a", 1000), ("1b", 100), ("1c", 10)):
        got = sum(1 for v in ranks if v > x)
        want = expected_counts(0.001)[q]
        assert abs(got - want) <= tolerance(q, 0.001), (q, got, want)


def test_q1_counts_at_200k_pages(tmp_path):
    n = 200_000
    generate(str(tmp_path), 1, pages=n, visits=1, workers=2, progress=False)
    ranks = [int(r[1]) for r in _rows(tmp_path, "rankings")]
    assert len(ranks) == n
    want = model_counts(n, 1)
    for q, x in (("1a", 1000), ("1b", 100), ("1c", 10)):
        got = sum(1 for v in ranks if v > x)
        assert abs(got - want[q]) <= model_tolerance(n, 1, q), (q, got, want[q])
    # and at a threshold in the bulk (64% of pages have mean 25.5)
    p = [amplab._poisson_sf(25, amplab.LAMBDA_UNIT * m) for m, _ in amplab._q1_classes(n)]
    mean = sum(c * pi for (_, c), pi in zip(amplab._q1_classes(n), p))
    sd = math.sqrt(sum(c * pi * (1 - pi) for (_, c), pi in zip(amplab._q1_classes(n), p)))
    assert abs(sum(1 for v in ranks if v > 25) - mean) < 5 * sd


def test_poisson_tail():
    for lam in (3.5, 25.474, 100.0, 300.0):
        pmf = [math.exp(-lam)]
        for k in range(1, 1200):
            pmf.append(pmf[-1] * lam / k)
        for x in (0, 10, 25, 40, 100, 150, 400):
            direct = sum(pmf[x + 1:])
            assert math.isclose(amplab._poisson_sf(x, lam), direct, rel_tol=1e-9, abs_tol=1e-15)
    assert math.isclose(amplab._poisson_sf(1000, 1000.0), 0.4915906328313, rel_tol=1e-9)
    assert amplab._poisson_sf(1000, 81_000.0) == 1.0


def test_poisson_sampler_large_means():
    rng = random.Random(11)
    for lam in (815.2, 1000.0, 5000.0):
        xs = [amplab.poisson_ptrs(lam, rng.random) for _ in range(20000)]
        mean = sum(xs) / len(xs)
        var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
        assert abs(mean - lam) < 5 * math.sqrt(lam / len(xs))
        assert abs(var / lam - 1) < 5 * math.sqrt(2 / len(xs))
        p = amplab._poisson_sf(int(lam), lam)
        frac = sum(1 for x in xs if x > int(lam)) / len(xs)
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / len(xs))


def test_poisson_tables():
    for m in (2, 3, 10, 64):
        cdf = amplab._poisson_cdf(m)
        lam = amplab.LAMBDA_UNIT * m
        mean = sum((1 - c) for c in cdf[:-1])  # E[X] = sum P(X > k)
        assert abs(mean - lam) < 1e-6 * lam


def test_pageurls_unique_and_shaped(sf001_rows):
    rankings, visits = sf001_rows
    urls = [r[0] for r in rankings]
    assert len(set(urls)) == len(urls) == 18_000
    assert all(re.fullmatch(r"[a-z]{10,100}", u) for u in urls)
    lengths = Counter(len(u) for u in urls)
    assert min(lengths) == 10 and max(lengths) == 100
    assert abs(sum(len(u) for u in urls) / len(urls) - 55) < 1.0
    assert all(1 <= int(r[2]) <= 99 for r in rankings)
    assert {int(r[2]) for r in rankings} == set(range(1, 100))


def test_url_heads_are_a_bijection():
    m = amplab.Model(0, 10, 10)
    url = m.url_function()
    heads = {url(r)[:amplab.URL_HEAD] for r in range(0, 40_000_000, 97)}
    assert len(heads) == len(range(0, 40_000_000, 97))


def test_every_desturl_joins_exactly_one_pageurl(sf001_rows):
    rankings, visits = sf001_rows
    pages = Counter(r[0] for r in rankings)
    dest = Counter(v[1] for v in visits)
    assert all(pages[u] == 1 for u in dest)
    # uniform page choice: distinct pages hit ~ N (1 - exp(-M/N))
    n, m = 18_000, 150_000
    want = n * -math.expm1(m * math.log1p(-1 / n))
    assert abs(len(dest) - want) < 5 * math.sqrt(n * math.exp(-m / n)) + 1


# ------------------------------------------------------------------ uservisits model

def test_q2_groups_match_the_model(sf001_rows):
    _, visits = sf001_rows
    for q, x in (("2a", 8), ("2b", 10), ("2c", 12)):
        got = len({v[0][:x] for v in visits})
        want = expected_counts(0.001)[q]
        assert abs(got - want) <= tolerance(q, 0.001), (q, got, want)


def test_q3_join_rows_match_the_model(sf001_rows):
    _, visits = sf001_rows
    for q, end in amplab.Q3_END.items():
        lo, hi = "1980-01-01", end.isoformat()
        got = sum(1 for v in visits if lo <= v[2] <= hi)
        want = expected_counts(0.001)["join_" + q]
        assert abs(got - want) <= tolerance("join_" + q, 0.001), (q, got, want)


def test_uservisits_fields(sf001_rows):
    _, visits = sf001_rows
    assert all(len(v) == 9 for v in visits)
    a_vals, d_vals = Counter(), Counter()
    for v in visits[:50000]:
        a, b, c, d = (int(x) for x in IP.match(v[0]).groups())
        assert 1 <= a <= 254 and 0 <= b <= 254 and 0 <= c <= 254 and 1 <= d <= 254
        a_vals[a] += 1
        d_vals[d] += 1
        x = float(v[3])
        assert 0.0 <= x < 1.0
        assert 1 <= int(v[8]) <= 10
        assert len(v[5]) == 3 and v[6].startswith(v[5] + "-") and len(v[6]) == 6
    assert set(a_vals) == set(range(1, 255)) and set(d_vals) == set(range(1, 255))
    dates = sorted({v[2] for v in visits})
    assert dates[0] >= "1970-01-01" and dates[-1] <= "2012-04-30"
    assert dates[0] < "1970-01-10" and dates[-1] > "2012-04-20"
    days = (date(2012, 4, 30) - date(1970, 1, 1)).days + 1
    assert len(dates) > days * 0.99  # 150,000 visits over 15,461 days hit almost all
    assert Counter(v[8] for v in visits).keys() == {str(i) for i in range(1, 11)}


def test_uservisits_vocabulary_matches_tiny(sf001_rows):
    _, visits = sf001_rows
    _, tiny = _tiny_rows()
    assert {(v[5], v[6]) for v in visits} == {(v[5], v[6]) for v in tiny}
    assert {v[7] for v in visits} == {v[7] for v in tiny}
    real_tiny = {v[4] for v in tiny if not RANDOM_AGENT.match(v[4])}
    ours = Counter(v[4] for v in visits)
    assert real_tiny <= set(ours)
    assert not any("," in a for a in ours)
    # share of random `Xxxxx/d.d` agents: 24% in the sample
    frac = sum(c for a, c in ours.items() if RANDOM_AGENT.match(a)) / len(visits)
    tiny_frac = sum(1 for v in tiny if RANDOM_AGENT.match(v[4])) / len(tiny)
    assert abs(frac - tiny_frac) < 0.015
    # the most common agent and its weight
    top, count = ours.most_common(1)[0]
    assert top == "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
    assert abs(count / len(visits) - 0.1315) < 0.01


def test_field_lengths_match_tiny(sf001_rows):
    rankings, visits = sf001_rows
    t_rankings, t_visits = _tiny_rows()

    def hist(rows, col):
        c = Counter(len(r[col]) for r in rows)
        return {k: v / len(rows) for k, v in c.items()}

    for col in (0, 1, 2, 3, 5, 6, 8):  # sourceIP, destURL, date, adRevenue, codes, duration
        ours, theirs = hist(visits, col), hist(t_visits, col)
        assert min(ours) <= min(theirs) + (1 if col in (0, 3) else 0)
        assert max(ours) >= max(theirs) - (1 if col in (0, 3) else 0)
        for k, p in theirs.items():
            if p > 0.02:  # the common lengths agree within 3 sampling sd of the sample
                assert abs(ours.get(k, 0) - p) < 3 * math.sqrt(p * (1 - p) / 10000) + 0.005, \
                    (col, k, ours.get(k), p)
    sci = sum(1 for v in visits if "E" in v[3]) / len(visits)
    assert 0.0003 < sci < 0.002  # ~0.1% of values < 1e-3 print in scientific notation
    ours, theirs = hist(rankings, 0), hist(t_rankings, 0)
    assert min(ours) == min(theirs) == 10 and max(ours) == max(theirs) == 100
    ranks = [int(r[1]) for r in t_rankings]
    assert min(ranks) > 10  # the tiny sample: every pageRank > 10, as the model says


# ------------------------------------------------------------------ model answers

def test_model_reproduces_the_tiny_answers():
    """The real tiny data's known answers (REFERENCE.md) lie within the model's spread."""
    known = {"1a": 0, "1b": 45, "1c": 1200, "2a": 9651, "2b": 9991, "2c": 10000,
             "join_3a": 58, "join_3b": 726, "join_3c": 7083}
    want = model_counts(1200, 10000)
    for q, v in known.items():
        assert abs(v - want[q]) <= model_tolerance(1200, 10000, q, sigmas=3), (q, v, want[q])


def test_model_reproduces_published_5nodes_counts():
    want = model_counts(90_000_000, 752_000_000)
    published = {"1a": 32_888, "1b": 3_331_851, "1c": 89_974_976, "2a": 2_067_313}
    for q, v in published.items():
        assert abs(v - want[q]) <= model_tolerance(90_000_000, 752_000_000, q), (q, v, want[q])


def test_expected_counts_shape():
    e = expected_counts(1)
    assert set(e) >= {"1a", "1b", "1c", "2a", "2b", "2c", "rankings", "uservisits"}
    assert e["1a"] < e["1b"] < e["1c"] < e["rankings"]
    assert e["2a"] < e["2b"] < e["2c"] < e["uservisits"]
    assert round(e["2a"]) == 1_952_361
    assert tolerance("rankings", 1) == 0
    assert 0 < tolerance("2c", 1) / e["2c"] < 1e-3


def test_q2_model_against_simulation():
    rng = random.Random(3)
    m = 4000
    runs = []
    for _ in range(60):
        ips = [f"{rng.randint(1, 254)}.{rng.randint(0, 254)}.{rng.randint(0, 254)}."
               f"{rng.randint(1, 254)}" for _ in range(m)]
        runs.append(len({ip[:8] for ip in ips}))
    mean = sum(runs) / len(runs)
    want = model_counts(1, m)["2a"]
    sd = amplab.model_sd(1, m, "2a")
    assert abs(mean - want) < 5 * sd / math.sqrt(len(runs))
    emp_sd = math.sqrt(sum((r - mean) ** 2 for r in runs) / (len(runs) - 1))
    assert 0.6 < emp_sd / sd < 1.5


# ------------------------------------------------------------------ default data, CLI

def _ensure(path: str) -> bool:
    return amplab.ensure_default(path, scale=0.0002)


def test_ensure_default_generates_once_and_survives_a_race(tmp_path, capsys):
    path = tmp_path / "data" / "amplab"
    assert amplab.ensure_default(str(path), scale=0.0002) is True
    assert "generating" in capsys.readouterr().err
    assert amplab.ensure_default(str(path), scale=0.0002) is False
    ref = {t: _read(path, t) for t in amplab.TABLES}
    assert not [p for p in path.iterdir() if p.name.startswith(".")]

    raced = tmp_path / "raced"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ensure, args=(str(raced),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for t in amplab.TABLES:
        assert _read(raced, t) == ref[t]
        assert [p.name for p in (raced / t).iterdir()] == ["part-00000"]
    assert not [p for p in raced.iterdir() if p.name.startswith(".")]


def test_cli_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=["amplab"])
    amplab.add_arguments(parser)
    args = parser.parse_args(["amplab", "--scale", "0.0001", "--out", str(tmp_path / "o"),
                              "--seed", "2", "--files", "2", "--workers", "2", "--gzip"])
    assert amplab.run(args) == 0
    err = capsys.readouterr().err
    assert "1,800 rankings" in err and "15,000 uservisits" in err and "MB/s" in err
    assert sorted(p.name for p in (tmp_path / "o" / "uservisits").iterdir()) == \
        ["part-00000.gz", "part-00001.gz"]
    bad = parser.parse_args(["amplab", "--scale", "-1", "--out", str(tmp_path / "x")])
    assert amplab.run(bad) == 2
    assert "scale" in capsys.readouterr().err


def test_progress_bar_format():
    import io
    buf = io.StringIO()
    bar = amplab._Progress(100.0, True, buf)
    bar.update(45.0, 120_000_000, final=True)
    bar.close()
    text = buf.getvalue()
    assert re.match(r"^\r\[#{13} {17}\]  45%  120 MB  [\d,.]+ MB/s \n$", text), text
    buf = io.StringIO()
    quiet = amplab._Progress(100.0, False, buf)
    quiet.update(50.0, 1, final=True)
    quiet.close()
    assert buf.getvalue() == ""


def test_generate_to_s3(tmp_path, request):
    pytest.importorskip("moto")
    pytest.importorskip("boto3")
    bucket = request.getfixturevalue("s3_bucket")
    from runtime import storage
    uri = f"s3://{bucket}/amplab"
    kw = dict(pages=3000, visits=20_000, seed=1, workers=2, progress=False)
    generate(uri, 1, files=3, **kw)
    generate(uri, 1, files=2, **kw)  # re-run: stale part-00002 removed
    local = tmp_path / "local"
    generate(str(local), 1, files=1, **kw)
    for t in amplab.TABLES:
        listed = storage.list_files(f"{uri}/{t}")
        assert [u.rsplit("/", 1)[-1] for u, _ in listed] == ["part-00000", "part-00001"]
        data = b"".join(storage.read_range(u) for u, _ in listed)
        assert data == _read(local, t)


def test_struct_sanity():
    # the generator relies on these array item sizes
    from array import array
    assert array("H").itemsize == 2 and array("I").itemsize == 4 and array("Q").itemsize == 8
    assert struct.calcsize("<f") == 4
