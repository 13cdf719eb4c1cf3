"""``sqlmr gen amplab``: the AMPLab Big Data Benchmark tables, at any scale.

Writes ``rankings/part-NNNNN`` and ``uservisits/part-NNNNN`` (``.gz`` with ``gzip=True``)
under a folder or ``s3://bucket/prefix`` in the benchmark's text format: comma-separated,
``\\n``-terminated, no header, no quoting, no field containing a comma::

    rankings    pageURL,pageRank,avgDuration
    uservisits  sourceIP,destURL,visitDate,adRevenue,userAgent,countryCode,languageCode,
                searchWord,duration

The model is HiBench's ``HiveData`` generator, which made the benchmark's data, as checked
against the real ``/tiny/`` sample:

- **Scale.**  Scale factor 1 is the benchmark's ``1node`` size: ``round(SF * 18,000,000)``
  pages and ``round(SF * 150,000,000)`` visits.  The benchmark's tables list 155 M visits
  per 18 M pages as the nominal size, but the data holds about 150 M (5nodes: ~752 M per
  90 M pages, 25.4 GB at 1node); 150/18 = 8.33 visits per page is also the ``/tiny/``
  sample's ratio (10,000 / 1,200).  SF 0.001 is about 27 MB.
- **rankings.**  pageURL: lowercase letters, length uniform 10-100, unique.  pageRank:
  page ``j`` of ``1..N`` (pages are then shuffled) gets Poisson(12.737 * m_j) with
  ``m_j = max(2, round(1.5 * sqrt(N / j)))``, which reproduces the published counts of
  ``pageRank > 1000 / 100 / 10``.  avgDuration: uniform 1-99.
- **uservisits.**  Each visit picks a page uniformly, so every destURL is exactly one
  pageURL.  sourceIP ``a.b.c.d``, uniform, ``a, d`` in 1-254 and ``b, c`` in 0-254.
  visitDate uniform over 1970-01-01 ... 2012-04-30.  adRevenue: ``Float.toString`` of a
  ``Random.nextFloat()``, i.e. ``k / 2**24`` for a uniform 24-bit ``k``
  (:mod:`sqlmr.gen.javafloat`).  userAgent, countryCode/languageCode, searchWord:
  drawn from the lists in :mod:`sqlmr.gen.amplab_vocab` (33 real agents with their
  observed weights plus 24% random ``Xxxxx/d.d`` agents, 106 country/language pairs,
  1,000 words).  duration uniform 1-10.

**Determinism.**  Rows are generated in blocks of :data:`BLOCK_ROWS`; each block draws
from its own ``random.Random`` seeded from ``(seed, table, block)`` by SHA-256, and the
URL of page ``r`` is a function of ``(seed, r)`` alone.  So the concatenated output is
byte-for-byte the same for a seed whatever the number of files or workers; files and
workers only decide which rows go where.

**URLs.**  pageURL ``r`` is 7 letters spelling ``(A*r + B) mod 26**7`` in base 26 (a
bijection, so URLs are unique for up to 26**7 = 8.0e9 pages), then a run of a seeded pool
of random letters whose offset and length (3-93, so 10-100 in all) come from a hash of
``r``.  A visit computes the URL of the page it picks without the list of all URLs.

**Speed.**  Pure Python, in parallel over a fork-based process pool.  Columns are drawn in
bulk (``getrandbits`` into ``array``), mapped through precomputed string tables by
C-level ``map``/``filter`` (rejection sampling keeps every draw exactly uniform), and
interleaved with extended-slice assignment and one ``''.join`` per block.

Model answers, computed analytically (:func:`expected_counts`, :func:`tolerance`), let a
benchmark check a measured row count against the data it ran on.
"""

from __future__ import annotations

import argparse
import bisect
import gzip as _gzip
import hashlib
import math
import os
import random
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter
from datetime import date, timedelta
from functools import lru_cache
from itertools import islice, repeat
from operator import mod, rshift
from typing import Any, Callable, Iterable

from sqlmr.gen import amplab_vocab as vocab
from sqlmr.gen.javafloat import revenue_str

# ---------------------------------------------------------------------------- constants

PAGES_PER_SF = 18_000_000
VISITS_PER_SF = 150_000_000
TABLES = ("rankings", "uservisits")          # the tables of queries 1-3
ALL_TABLES = TABLES + ("documents",)         # and query 4's crawl
BLOCK_ROWS = 10_000           # rows per independently seeded block
PIECE_BLOCKS = {"rankings": 10, "uservisits": 4, "documents": 3}  # blocks per task (~6-7 MB)
FILE_TARGET_BYTES = 128 << 20  # default part size (uncompressed)
# mean row size, for estimates (documents: a page of several lines)
ROW_BYTES = {"rankings": 62.0, "uservisits": 169.4, "documents": 2570.0}
GZIP_LEVEL = 1

LAMBDA_UNIT = 12.737          # pageRank_j ~ Poisson(LAMBDA_UNIT * m_j)
DATE_FIRST = date(1970, 1, 1)
DATE_LAST = date(2012, 4, 30)
DATE_DAYS = (DATE_LAST - DATE_FIRST).days + 1   # 15,461

URL_HEAD = 7                  # letters spelling a bijection of the page number
URL_SPACE = 26 ** URL_HEAD
URL_MIN, URL_MAX = 10, 100
POOL_BITS = 22                # random-letter pool the rest of each URL is cut from
URL_CACHE_MAX = 600_000       # up to this many pages, all URLs are kept in memory
_P61 = (1 << 61) - 1
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_INV_TABLE_MAX = 64           # m up to this: Poisson by inversion of a CDF table

_STATE: dict[str, Any] = {}   # the model of the current generate() call, inherited by forks


def scale_counts(scale: float) -> tuple[int, int]:
    """(pages, visits) at a scale factor.

    >>> scale_counts(1)
    (18000000, 150000000)
    >>> scale_counts(0.001)
    (18000, 150000)
    """
    if not (scale > 0) or math.isinf(scale):
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    pages = max(1, round(scale * PAGES_PER_SF))
    visits = max(1, round(scale * VISITS_PER_SF))
    if pages > URL_SPACE:
        raise ValueError(f"scale {scale} is too large: at most {URL_SPACE:,} pages")
    return pages, visits


def _seed_int(*parts: object) -> int:
    """A seed integer from parts, the same in every process and on every machine."""
    text = "sqlmr-amplab:" + ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


# ------------------------------------------------------------------ random column draws

_BIG_ENDIAN = sys.byteorder == "big"


def _words(rng: random.Random, code: str, count: int) -> array:
    """``count`` uniform unsigned integers of the array type ``code`` ('H', 'I', 'Q')."""
    a = array(code)
    size = a.itemsize
    if count:
        a.frombytes(rng.getrandbits(8 * size * count).to_bytes(size * count, "little"))
        if _BIG_ENDIAN:
            a.byteswap()
    return a


def _draw16(rng: random.Random, n: int, limit: int) -> list[int]:
    """``n`` integers uniform in ``[0, limit)``, ``limit <= 65536``, by rejection."""
    if limit == 65536:
        return list(_words(rng, "H", n))
    out: list[int] = []
    accept = limit.__gt__
    while len(out) < n:
        need = n - len(out)
        count = need * 65536 // limit + (need >> 5) + 32
        out.extend(islice(filter(accept, _words(rng, "H", count)), need))
    return out


def _replicate(items: list[str]) -> list[str]:
    """``items`` repeated to fill as much of 0..65535 as divides evenly (for _draw16)."""
    return items * (65536 // len(items))


def _weighted(items: list[tuple[str, float]], total: int) -> list[str]:
    """A table of ``total`` entries holding each item in proportion to its weight
    (largest remainder), so one uniform index draws with those weights."""
    wsum = sum(w for _, w in items)
    exact = [(s, w * total / wsum) for s, w in items]
    counts = [int(x) for _, x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - counts[i]), i))
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    table: list[str] = []
    for (s, _), c in zip(items, counts):
        table.extend([s] * c)
    return table


# ------------------------------------------------------------------------ fixed tables

@lru_cache(maxsize=None)
def _tables() -> dict[str, list[str]]:
    """String tables independent of the seed; each entry carries its separators."""
    ab = [f"{a}.{b}." for a in range(1, 255) for b in range(255)]
    cd = [f"{c}.{d}," for c in range(255) for d in range(1, 255)]
    dates = [f",{DATE_FIRST + timedelta(days=i)}," for i in range(DATE_DAYS)]
    agents = [(f",{a},", float(w)) for a, w in vocab.USER_AGENTS]
    share = vocab.RANDOM_AGENT_WEIGHT / vocab.RANDOM_AGENT_COUNT
    agents += [(f",{a},", share) for a in random_agents()]
    pairs = [f"{c},{l}," for c, l, w in vocab.COUNTRY_LANGUAGES for _ in range(w)]
    word_dur = [f"{w},{d}\n" for w in vocab.SEARCH_WORDS for d in range(1, 11)]
    avg = [f",{d}\n" for d in range(1, 100)]
    return {
        "ab": _replicate(ab), "cd": _replicate(cd), "date": _replicate(dates),
        "agent": _weighted(agents, 65536), "pair": _replicate(pairs),
        "word_dur": _replicate(word_dur), "avg": _replicate(avg),
    }


@lru_cache(maxsize=None)
def random_agents() -> tuple[str, ...]:
    """The random ``Xxxxx/d.d`` user agents (fixed, like HiBench's agent list file)."""
    rng = random.Random(_seed_int("random-agents"))
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < vocab.RANDOM_AGENT_COUNT:
        n = rng.randint(5, 24)
        name = rng.choice(_LETTERS).upper() + "".join(rng.choices(_LETTERS, k=n - 1))
        agent = f"{name}/{rng.randrange(10)}.{rng.randrange(10)}"
        if agent not in seen:
            seen.add(agent)
            out.append(agent)
    return tuple(out)


@lru_cache(maxsize=None)
def _heads() -> list[str]:
    """All 3-letter strings, in base-26 order (small enough to stay in the CPU cache)."""
    return [a + b + c for a in _LETTERS for b in _LETTERS for c in _LETTERS]


@lru_cache(maxsize=None)
def _poisson_cdf(m: int) -> list[float]:
    """CDF of Poisson(LAMBDA_UNIT * m) for k = 0.. until it reaches 1 (last entry 1.0)."""
    lam = LAMBDA_UNIT * m
    log_lam = math.log(lam)
    top = int(lam + 14 * math.sqrt(lam) + 30)
    cdf: list[float] = []
    acc = 0.0
    for k in range(top + 1):
        acc += math.exp(-lam + k * log_lam - math.lgamma(k + 1))
        cdf.append(acc)
    cdf[-1] = 1.0
    return cdf


def poisson_ptrs(lam: float, uniform: Callable[[], float]) -> int:
    """One Poisson(lam) draw, lam >= 10, by Hormann's transformed rejection (PTRS, 1993)."""
    slam = math.sqrt(lam)
    log_lam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_inv_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = uniform() - 0.5
        v = uniform()
        us = 0.5 - abs(u)
        if us <= 0.0 or v <= 0.0:
            continue
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + log_inv_alpha - math.log(a / (us * us) + b)
                <= -lam + k * log_lam - math.lgamma(k + 1)):
            return k


def page_class(j: int, pages: int) -> int:
    """m_j = max(2, round(1.5 * sqrt(N / j))) with round half up, in exact integers.

    >>> [page_class(j, 1_000_000) for j in (1, 2, 100, 360_000, 360_001)]
    [1500, 1061, 150, 3, 2]
    """
    return max(2, (math.isqrt(9 * pages // j) + 1) // 2)


# ------------------------------------------------------------------------------ model

class Model:
    """The seeded constants of one dataset: URL construction and the page shuffle."""

    def __init__(self, seed: int, pages: int, visits: int, documents: int = 0):
        self.seed, self.pages, self.visits, self.documents = seed, pages, visits, documents
        rng = random.Random(_seed_int(seed, "model"))
        self.url_mul = rng.randrange(URL_SPACE // 3, URL_SPACE)
        while math.gcd(self.url_mul, 26) != 1:
            self.url_mul += 1
        self.url_add = rng.randrange(URL_SPACE)
        self.hash_mul = rng.randrange(1 << 40, _P61)
        self.hash_add = rng.randrange(_P61)
        pool_len = (1 << POOL_BITS) + URL_MAX
        # letters from random bytes: keep bytes < 234 = 9 * 26 (unbiased), map to a-z
        table = bytes(ord(_LETTERS[i % 26]) for i in range(234)) + bytes(22)
        drop = bytes(range(234, 256))
        letters = b""
        while len(letters) < pool_len:
            raw = rng.getrandbits(8 * 2 * pool_len).to_bytes(2 * pool_len, "little")
            letters += raw.translate(table, drop)
        self.pool = letters[:pool_len].decode("ascii")
        # the page shuffle: row r holds page j = (shuffle_mul * r + shuffle_add) mod N + 1
        mul = rng.randrange(pages // 3, pages) if pages > 3 else 1
        while math.gcd(mul, pages) != 1:
            mul += 1
        self.shuffle_mul, self.shuffle_add = mul, rng.randrange(pages)
        self._urls: list[str] | None = None

    # -- URLs
    def url_function(self) -> Callable[[int], str]:
        """``url(r)``: the pageURL of rankings row ``r``."""
        l3 = _heads()
        l1 = list(_LETTERS)
        pool = self.pool
        a, c, hm, ha = self.url_mul, self.url_add, self.hash_mul, self.hash_add
        space, p61, span = URL_SPACE, _P61, URL_MAX - URL_MIN + 1
        tail_min = URL_MIN - URL_HEAD
        pool_mask = (1 << POOL_BITS) - 1

        def url(r: int) -> str:
            v = (r * a + c) % space  # 7 base-26 digits: 3 + 3 + 1 letters
            h = (r * hm + ha) % p61
            o = (h >> 8) & pool_mask
            return (l3[v % 17576] + l3[v // 17576 % 17576] + l1[v // 308915776]
                    + pool[o:o + tail_min + h % span])
        return url

    def urls_of(self, rows: Iterable[int]) -> Iterable[str]:
        if self.pages <= URL_CACHE_MAX:
            if self._urls is None:
                self._urls = list(map(self.url_function(), range(self.pages)))
            return map(self._urls.__getitem__, rows)
        return map(self.url_function(), rows)

    # -- rankings
    def rankings_block(self, block: int, lo: int, hi: int) -> str:
        """Rows ``lo..hi`` (offsets within the block) of rankings block ``block``."""
        t = _tables()
        start = block * BLOCK_ROWS
        n = min(BLOCK_ROWS, self.pages - start)
        rng = random.Random(_seed_int(self.seed, "rankings", block))
        uniform = rng.random
        us = [uniform() for _ in range(n)]
        avg = _draw16(rng, n, len(t["avg"]))
        pages, m3 = self.pages, 9 * self.pages // 25  # j <= m3  <=>  m_j >= 3
        sm, sa = self.shuffle_mul, self.shuffle_add
        cdf2 = _poisson_cdf(2)
        isqrt, bisect_right = math.isqrt, bisect.bisect_right
        ranks: list[int] = []
        append = ranks.append
        for r, u in zip(range(start, start + n), us):
            j = (sm * r + sa) % pages + 1
            if j > m3:
                append(bisect_right(cdf2, u))
                continue
            m = (isqrt(9 * pages // j) + 1) // 2
            if m <= _INV_TABLE_MAX:
                append(bisect_right(_poisson_cdf(m), u))
            else:  # rare: large means, by rejection from the same stream (in row order)
                append(poisson_ptrs(LAMBDA_UNIT * m, uniform))
        k = hi - lo
        out: list[str | None] = [None] * (3 * k)
        out[0::3] = self.urls_of(range(start + lo, start + hi))
        out[1::3] = map(",%d".__mod__, ranks[lo:hi])
        out[2::3] = map(t["avg"].__getitem__, avg[lo:hi])
        return "".join(out)  # type: ignore[arg-type]

    # -- uservisits
    def uservisits_block(self, block: int, lo: int, hi: int) -> str:
        """Rows ``lo..hi`` (offsets within the block) of uservisits block ``block``."""
        t = _tables()
        start = block * BLOCK_ROWS
        n = min(BLOCK_ROWS, self.visits - start)
        rng = random.Random(_seed_int(self.seed, "uservisits", block))
        ab = _draw16(rng, n, len(t["ab"]))
        cd = _draw16(rng, n, len(t["cd"]))
        page = _words(rng, "Q", n)
        day = _draw16(rng, n, len(t["date"]))
        rev = _words(rng, "I", n)
        agent = _words(rng, "H", n)
        pair = _draw16(rng, n, len(t["pair"]))
        word = _draw16(rng, n, len(t["word_dur"]))
        k = hi - lo
        out: list[str | None] = [None] * (8 * k)
        out[0::8] = map(t["ab"].__getitem__, ab[lo:hi])
        out[1::8] = map(t["cd"].__getitem__, cd[lo:hi])
        out[2::8] = self.urls_of(map(mod, page[lo:hi], repeat(self.pages)))
        out[3::8] = map(t["date"].__getitem__, day[lo:hi])
        out[4::8] = map(revenue_str, map(rshift, rev[lo:hi], repeat(8)))
        out[5::8] = map(t["agent"].__getitem__, agent[lo:hi])
        out[6::8] = map(t["pair"].__getitem__, pair[lo:hi])
        out[7::8] = map(t["word_dur"].__getitem__, word[lo:hi])
        return "".join(out)  # type: ignore[arg-type]

    # -- documents (pages of the crawl, several lines each)
    def documents_block(self, block: int, lo: int, hi: int) -> str:
        from sqlmr.gen.amplab_documents import Crawl
        return Crawl(self, self.documents).block(block, lo, hi)

    def rows(self, table: str) -> int:
        """Rows of a table (documents: pages, each of several lines)."""
        return {"rankings": self.pages, "uservisits": self.visits,
                "documents": self.documents}[table]

    def text(self, table: str, start: int, end: int) -> str:
        """Rows ``start..end`` of a table, as text."""
        make = {"rankings": self.rankings_block, "uservisits": self.uservisits_block,
                "documents": self.documents_block}[table]
        size = block_rows(table)
        parts = []
        row = start
        while row < end:
            block, lo = divmod(row, size)
            hi = min(size, end - block * size)
            parts.append(make(block, lo, hi))
            row = block * size + hi
        return "".join(parts)


def block_rows(table: str) -> int:
    """Rows of a table per independently seeded block."""
    if table == "documents":
        from sqlmr.gen.amplab_documents import BLOCK_PAGES
        return BLOCK_PAGES
    return BLOCK_ROWS


# ------------------------------------------------------------------- model answers

@lru_cache(maxsize=64)
def _q1_classes(pages: int) -> tuple[tuple[int, int], ...]:
    """(m, number of pages with m_j == m) for all classes, exactly."""
    out = []
    below = pages  # pages with m_j >= m are j <= 9N / (2m-1)^2
    for m in range(3, page_class(1, pages) + 2):
        at_least = min(pages, 9 * pages // (2 * m - 1) ** 2)
        out.append((m - 1, below - at_least))
        below = at_least
    return tuple((m, c) for m, c in out if c)


def _poisson_sf(x: int, lam: float) -> float:
    """P(Poisson(lam) > x)."""
    if lam <= 0:
        return 0.0
    log_lam = math.log(lam)

    def pmf(k: int) -> float:
        return math.exp(-lam + k * log_lam - math.lgamma(k + 1))
    if lam > x:  # sum the lower tail k = x, x-1, ... down from the mode side
        total, k = 0.0, x
        while k >= 0:
            p = pmf(k)
            total += p
            if p < total * 1e-17 or (p == 0.0 and k < lam - 40 * math.sqrt(lam)):
                break
            k -= 1
        return max(0.0, 1.0 - total)
    total, k = 0.0, x + 1
    while True:
        p = pmf(k)
        total += p
        if p < total * 1e-17 or p == 0.0:
            return total
        k += 1


@lru_cache(maxsize=64)
def _q1(pages: int, threshold: int) -> tuple[float, float]:
    """(mean, variance) of #{pageRank > threshold}."""
    mean = var = 0.0
    for m, count in _q1_classes(pages):
        p = _poisson_sf(threshold, LAMBDA_UNIT * m)
        mean += count * p
        var += count * p * (1 - p)
    return mean, var


@lru_cache(maxsize=None)
def _ip_prefix_structure(length: int) -> tuple[list[tuple[int, Counter]], Counter]:
    """How SUBSTR(sourceIP, 1, length) groups the IP space.

    Returns ``(split, short)``: ``split`` lists, per length L of ``"a.b."`` (with the
    number of (a, b) of that length), a Counter {multiplicity: number of distinct
    prefixes} of ``"c.d"[:length - L]`` over the 64,770 (c, d); ``short`` is a Counter
    {number of (a, b): prefixes} for prefixes within ``"a.b."``.
    """
    ab_len: Counter = Counter()
    short_groups: Counter = Counter()
    for a in range(1, 255):
        for b in range(255):
            s = f"{a}.{b}."
            if len(s) >= length:
                short_groups[s[:length]] += 1
            else:
                ab_len[len(s)] += 1
    split = []
    for L, n_ab in sorted(ab_len.items()):
        r = length - L
        groups = Counter(f"{c}.{d}"[:r] for c in range(255) for d in range(1, 255))
        split.append((n_ab, Counter(groups.values())))
    return split, Counter(short_groups.values())


@lru_cache(maxsize=64)
def _q2(visits: int, length: int) -> tuple[float, float]:
    """(mean, variance) of the number of distinct SUBSTR(sourceIP, 1, length).

    Groups fall in classes of equal probability p (n groups each).  With M visits a
    group is hit with probability q = 1 - (1-p)^M; the count of groups hit has mean
    sum n q and variance sum n q (1 - q) + sum over ordered pairs of distinct groups of
    cov = (1-p-p')^M - (1-p)^M (1-p')^M = (1-p)^M (1-p')^M expm1(M log1p(-pp'/((1-p)(1-p')))).
    """
    n_ab = 254 * 255
    n_cd = 255 * 254
    split, short = _ip_prefix_structure(length)
    classes: Counter = Counter()
    for ab_count, mults in split:
        for mult, groups in mults.items():
            classes[mult / (n_ab * n_cd)] += ab_count * groups
    for mult, groups in short.items():
        classes[mult / n_ab] += groups
    m = float(visits)
    info = [(n, p, m * math.log1p(-p)) for p, n in classes.items()]  # log (1-p)^M
    mean = var = 0.0
    for n, p, lm in info:
        q = -math.expm1(lm)
        mean += n * q
        var += n * q * (1 - q)
    for n1, p1, l1 in info:
        for n2, p2, l2 in info:
            pairs = n1 * (n2 - 1) if p1 == p2 else n1 * n2
            if pairs:
                joint = m * math.log1p(-p1 * p2 / ((1 - p1) * (1 - p2)))
                cov = math.exp(l1 + l2) * math.expm1(joint)
                var += pairs * cov
    return mean, max(var, 0.0)


Q3_END = {"3a": date(1980, 4, 1), "3b": date(1983, 1, 1), "3c": date(2010, 1, 1)}
Q3_START = date(1980, 1, 1)


def _q3(visits: int, query: str) -> tuple[float, float]:
    days = (Q3_END[query] - Q3_START).days + 1
    p = days / DATE_DAYS
    return visits * p, visits * p * (1 - p)


def model_counts(pages: int, visits: int) -> dict[str, float]:
    """Expected result sizes for a dataset of ``pages`` pages and ``visits`` visits.

    Keys: ``1a/1b/1c`` (rows with pageRank > 1000/100/10), ``2a/2b/2c`` (groups of
    SUBSTR(sourceIP, 1, 8/10/12)), ``join_3a/3b/3c`` (visits in Q3's date window, i.e.
    join rows, BETWEEN inclusive), ``rankings``, ``uservisits``.
    """
    out: dict[str, float] = {}
    for q, x in (("1a", 1000), ("1b", 100), ("1c", 10)):
        out[q] = _q1(pages, x)[0]
    for q, x in (("2a", 8), ("2b", 10), ("2c", 12)):
        out[q] = _q2(visits, x)[0]
    for q in Q3_END:
        out["join_" + q] = _q3(visits, q)[0]
    out["rankings"] = pages
    out["uservisits"] = visits
    return out


def expected_counts(scale: float) -> dict[str, float]:
    """The model's expected result sizes at a scale factor (see :func:`model_counts`).

    >>> e = expected_counts(1)
    >>> round(e["1a"]), round(e["1b"]), round(e["1c"]), e["rankings"], e["uservisits"]
    (6577, 666516, 17994977, 18000000, 150000000)
    """
    return model_counts(*scale_counts(scale))


def model_sd(pages: int, visits: int, query: str) -> float:
    """Standard deviation of a :func:`model_counts` entry over random datasets."""
    q = query.removeprefix("join_")
    if q in ("rankings", "uservisits"):
        return 0.0
    if q in ("1a", "1b", "1c"):
        return math.sqrt(_q1(pages, {"1a": 1000, "1b": 100, "1c": 10}[q])[1])
    if q in ("2a", "2b", "2c"):
        return math.sqrt(_q2(visits, {"2a": 8, "2b": 10, "2c": 12}[q])[1])
    if q in Q3_END:
        return math.sqrt(_q3(visits, q)[1])
    raise KeyError(query)


def model_tolerance(pages: int, visits: int, query: str, sigmas: float = 5.0) -> float:
    """Acceptable absolute deviation of a measured count from :func:`model_counts`."""
    sd = model_sd(pages, visits, query)
    return 0.0 if sd == 0 else sigmas * sd + 1.0


def tolerance(query: str, scale: float, sigmas: float = 5.0) -> float:
    """Acceptable absolute deviation of a measured row/group count from
    ``expected_counts(scale)[query]``: ``sigmas`` standard deviations of the model's
    sampling distribution, plus one (an exact count for ``rankings``/``uservisits``).
    Divide by the expected count for a relative figure.

    >>> tolerance("rankings", 1), 0 < tolerance("1a", 1) < 500
    (0.0, True)
    """
    return model_tolerance(*scale_counts(scale), query, sigmas)


# ------------------------------------------------------------------------ the writer

def _storage():
    from runtime import storage  # local import: storage pulls in nothing heavy
    return storage


def _plan(model: Model, files: dict[str, int]) -> list[tuple[str, int, int, int, int]]:
    """Tasks ``(table, file, piece, start_row, end_row)`` in output order.

    File ``f`` of ``K`` holds rows ``f*R//K .. (f+1)*R//K``; inside a file, pieces are cut
    at multiples of PIECE_BLOCKS blocks, so only pieces at file edges start or end
    inside a block.
    """
    tasks = []
    for table in files:
        rows, k = model.rows(table), files[table]
        step = PIECE_BLOCKS[table] * block_rows(table)
        for f in range(k):
            lo, hi = f * rows // k, (f + 1) * rows // k
            cuts = [lo] + list(range((lo // step + 1) * step, hi, step)) + [hi]
            pieces = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a] or [(lo, hi)]
            for i, (a, b) in enumerate(pieces):
                tasks.append((table, f, i, a, b))
    return tasks


def _piece_path(folder: str, table: str, f: int, i: int) -> str:
    return os.path.join(folder, f".{table}-{f:05d}-{i:05d}.piece-{_STATE['token']}")


def _run_task(task: tuple[str, int, int, int, int]) -> tuple[tuple, int, int, int, str]:
    """Worker side: write one piece to its own file in the staging folder.

    Returns ``(task, rows, text bytes, stored bytes, piece path)``; the parent joins a
    file's pieces once all are written, so no data travels through the parent.
    """
    table, f, i, start, end = task
    model: Model = _STATE["model"]
    data = model.text(table, start, end).encode("ascii")
    n = len(data)
    if _STATE["gzip"]:
        data = _gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    path = _piece_path(_STATE["staging"][table], table, f, i)
    with open(path, "wb") as fh:
        fh.write(data)
    return task, end - start, n, len(data), path


def _concat(paths: list[str], dest: str) -> None:
    """``dest`` = the pieces one after another (kernel-side copy where available)."""
    with open(dest, "wb") as out:
        for p in paths:
            with open(p, "rb") as src:
                size = os.fstat(src.fileno()).st_size
                done = 0
                try:
                    while done < size:
                        n = os.copy_file_range(src.fileno(), out.fileno(), size - done)
                        if n == 0:
                            break
                        done += n
                except (AttributeError, OSError):
                    src.seek(done)
                    out.seek(0, os.SEEK_END)
                    shutil.copyfileobj(src, out, 1 << 20)


def default_files(table: str, rows: int) -> int:
    """Part files per table when not given: about FILE_TARGET_BYTES of text each."""
    return max(1, math.ceil(rows * ROW_BYTES[table] / FILE_TARGET_BYTES))


class _Progress:
    """``[#####     ] 45%  120 MB  38 MB/s`` on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: float, enabled: bool, stream=None):
        self.total, self.enabled = max(total, 1.0), enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, done: float, written: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        frac = min(1.0, done / self.total)
        width = 30
        bar = "#" * int(frac * width)
        rate = written / 1e6 / max(now - self.start, 1e-9)
        self.stream.write(f"\r[{bar:<{width}}] {frac:4.0%}  {written / 1e6:,.0f} MB"
                          f"  {rate:,.1f} MB/s ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _part_name(f: int, gz: bool) -> str:
    return f"part-{f:05d}" + (".gz" if gz else "")


def generate(out: str, scale: float, seed: int = 0, files: int | None = None,
             gzip: bool = False, workers: int | None = None,
             progress: bool | None = None, *, pages: int | None = None,
             visits: int | None = None, documents: int | None = None,
             tables: Iterable[str] = TABLES) -> dict:
    """Write the AMPLab tables under ``out`` (a folder, ``file://`` or ``s3://`` URI).

    ``tables``: which of :data:`ALL_TABLES` (default rankings and uservisits;
    ``sqlmr gen amplab`` writes all three).

    ``files`` part files per table (default: about 128 MB of text each); ``workers``
    processes (default: one per core); ``progress`` draws a bar on stderr (default: when
    stderr is a terminal).  ``pages``/``visits``/``documents`` override the counts the
    scale gives (documents: pages of the crawl).
    Each part appears atomically (written under a hidden name, then renamed; on S3,
    uploaded whole); ``part-*`` files of an earlier run that this one did not write are
    removed.

    Returns ``{"rankings": {"rows", "bytes", "stored_bytes", "files"}, "uservisits":
    {...}, "rows", "bytes", "seconds", "mb_per_s", "path", "scale", "seed", "workers",
    "tables"}`` (a table not written has no entry)
    (bytes count the text; stored_bytes what was written, which differs with gzip).
    """
    t0 = time.monotonic()
    n_pages, n_visits = scale_counts(scale)
    n_pages = n_pages if pages is None else int(pages)
    n_visits = n_visits if visits is None else int(visits)
    tables = tuple(t for t in ALL_TABLES if t in set(tables))
    if not tables:
        raise ValueError(f"no table to write (tables are {', '.join(ALL_TABLES)})")
    n_docs = 0
    if "documents" in tables:
        from sqlmr.gen.amplab_documents import page_count
        n_docs = page_count(scale) if documents is None else int(documents)
        if n_docs < 1:
            raise ValueError("need at least 1 document")
    if not 1 <= n_pages <= URL_SPACE or n_visits < 1:
        raise ValueError(f"need 1 to {URL_SPACE:,} pages and at least 1 visit")
    if files is not None and files < 1:
        raise ValueError(f"files must be at least 1, not {files}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    storage = _storage()
    is_s3 = storage.is_s3(out)
    root = out if is_s3 else storage.to_path(out)
    model = Model(seed, n_pages, n_visits, n_docs)
    nfiles = {t: min(files if files is not None else default_files(t, model.rows(t)),
                     model.rows(t)) for t in tables}
    tasks = _plan(model, nfiles)
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    import multiprocessing
    if multiprocessing.current_process().daemon or \
            "fork" not in multiprocessing.get_all_start_methods():
        workers = 1  # a pool worker cannot start a pool; workers inherit the model by fork
    if progress is None:
        progress = sys.stderr.isatty()
    bar = _Progress(sum(model.rows(t) * ROW_BYTES[t] for t in tables), bool(progress))

    tmpdir = tempfile.mkdtemp(prefix="sqlmr-gen-") if is_s3 else None
    staging = {t: tmpdir if is_s3 else os.path.join(root, t) for t in tables}
    _STATE.clear()
    _STATE.update(model=model, gzip=gzip, staging=staging,
                  token=f"{os.getpid()}-{random.getrandbits(32):08x}")
    _tables()  # built before forking, shared by the workers
    _heads()
    if n_pages <= URL_CACHE_MAX:
        list(model.urls_of(range(0)))

    stats: dict[str, Any] = {t: {"rows": 0, "bytes": 0, "stored_bytes": 0,
                                 "files": nfiles[t]} for t in tables}
    pieces_left = Counter((t[0], t[1]) for t in tasks)
    pieces: dict[tuple[str, int], dict[int, str]] = {}
    done_est = 0.0
    written = 0

    def finish(table: str, f: int) -> None:
        parts = [pieces[table, f][i] for i in sorted(pieces[table, f])]
        name = _part_name(f, gzip)
        if is_s3:
            local = os.path.join(tmpdir, f"{table}-{name}")
            if len(parts) == 1:
                os.replace(parts[0], local)
            else:
                _concat(parts, local)
            storage.write_file(storage.join(storage.join(root, table), name), local)
            os.unlink(local)
        else:
            final = os.path.join(root, table, name)
            if len(parts) == 1:
                os.replace(parts[0], final)
            else:
                tmp = _piece_path(staging[table], table, f, 99999)
                _concat(parts, tmp)
                os.replace(tmp, final)
        for p in parts:
            if os.path.exists(p):
                os.unlink(p)
        del pieces[table, f]

    def consume(result) -> None:
        nonlocal done_est, written
        (table, f, i, _a, _b), rows, nbytes, stored, path = result
        pieces.setdefault((table, f), {})[i] = path
        st = stats[table]
        st["rows"] += rows
        st["bytes"] += nbytes
        st["stored_bytes"] += stored
        written += nbytes
        done_est += rows * ROW_BYTES[table]
        pieces_left[table, f] -= 1
        if not pieces_left[table, f]:
            finish(table, f)
        bar.update(done_est, written)

    pool = None
    try:
        if not is_s3:
            for t in tables:
                os.makedirs(os.path.join(root, t), exist_ok=True)
        if workers == 1:
            for task in tasks:
                consume(_run_task(task))
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            for result in pool.imap_unordered(_run_task, tasks):
                consume(result)
            pool.close()
            pool.join()
            pool = None
        _remove_stale(storage, root, is_s3, nfiles, gzip)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            _remove_pieces(staging, _STATE["token"])
        _STATE.clear()
        bar.update(done_est, written, final=True)
        bar.close()
    seconds = time.monotonic() - t0
    total_bytes = sum(stats[t]["bytes"] for t in tables)
    stats.update(rows=sum(stats[t]["rows"] for t in tables), bytes=total_bytes,
                 seconds=seconds, mb_per_s=total_bytes / 1e6 / max(seconds, 1e-9),
                 path=out, scale=scale, seed=seed, workers=workers, tables=list(tables))
    return stats


def _remove_pieces(staging: dict[str, str], token: str) -> None:
    """Delete this run's leftover piece files (after an error or interrupt)."""
    for folder in set(staging.values()):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and name.endswith(".piece-" + token):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass


def _remove_stale(storage, root: str, is_s3: bool, nfiles: dict[str, int], gz: bool) -> None:
    """Delete ``part-*`` files of an earlier run that this run did not write."""
    for t in nfiles:
        keep = {_part_name(f, gz) for f in range(nfiles[t])}
        if is_s3:
            try:
                listed = storage.list_files(storage.join(root, t))
            except FileNotFoundError:
                continue
            for uri, _size in listed:
                name = uri.rsplit("/", 1)[-1]
                if name.startswith("part-") and name not in keep:
                    storage.delete_prefix(uri)
        else:
            folder = os.path.join(root, t)
            for name in os.listdir(folder):
                if name.startswith("part-") and name not in keep:
                    os.unlink(os.path.join(folder, name))


# --------------------------------------------------------------------- default data

def has_data(path: str, tables: Iterable[str] = TABLES) -> bool:
    """Whether ``path`` holds part files for each of ``tables``."""
    storage = _storage()
    for t in tables:
        loc = storage.join(path, t) if storage.is_s3(path) else \
            os.path.join(storage.to_path(path), t)
        try:
            listed = storage.list_files(loc)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not any(u.rsplit("/", 1)[-1].startswith("part-") for u, _ in listed):
            return False
    return True


def ensure_default(path: str, scale: float = 0.001, tables: Iterable[str] = TABLES) -> bool:
    """Generate a small dataset at ``path`` unless it already holds ``tables`` (the
    ones missing are generated; documents only when asked for: it is the largest).

    Returns True when this call generated it.  Safe when processes race: each generates
    into its own hidden folder inside ``path`` and renames the table folders into place;
    a loser finds the folder taken and discards its copy (the data is identical: same
    seed, same scale).
    """
    tables = tuple(tables)
    if has_data(path, tables):
        return False
    storage = _storage()
    if storage.is_s3(path):
        raise ValueError("the default dataset lives on a local path, not S3")
    path = storage.to_path(path)
    os.makedirs(path, exist_ok=True)
    missing = tuple(t for t in tables if not has_data(path, (t,)))
    pages, visits = scale_counts(scale)
    sizes = {"rankings": pages * ROW_BYTES["rankings"],
             "uservisits": visits * ROW_BYTES["uservisits"]}
    if "documents" in missing:
        from sqlmr.gen.amplab_documents import target_bytes
        sizes["documents"] = target_bytes(scale)
    est = sum(sizes[t] for t in missing) / 1e6
    print(f"sqlmr: generating the AMPLab sample data (scale {scale:g}, ~{est:,.0f} MB) "
          f"in {path}", file=sys.stderr, flush=True)
    _remove_abandoned(path)
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=path)
    installed = False
    try:
        generate(tmp, scale, seed=0, files=1, tables=missing)
        for t in missing:
            try:  # atomic; fails if another process already put a non-empty folder there
                os.rename(os.path.join(tmp, t), os.path.join(path, t))
                installed = True
            except OSError:
                pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not has_data(path, tables):
        raise RuntimeError(f"could not install the AMPLab sample data in {path}: "
                           f"its {'/, '.join(tables)}/ folder holds other files")
    return installed


def _remove_abandoned(path: str, age: float = 3600.0) -> None:
    """Delete ``.gen-*`` folders that a crashed generation left more than ``age`` s ago."""
    now = time.time()
    for name in os.listdir(path):
        full = os.path.join(path, name)
        try:
            if name.startswith(".gen-") and now - os.path.getmtime(full) > age:
                shutil.rmtree(full, ignore_errors=True)
        except OSError:
            pass


# ---------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sqlmr gen amplab``."""
    parser.add_argument("--scale", type=float, required=True, metavar="SF",
                        help="scale factor: 1 = 18 M rankings + 150 M uservisits (~26.5 GB) "
                             "+ a 29.0 GB crawl (documents); 0.001 = ~27 + 72 MB")
    parser.add_argument("--out", required=True, metavar="DIR|s3://bucket/prefix",
                        help="where to write rankings/, uservisits/ and documents/")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--files", type=int, default=None, metavar="K",
                        help="part files per table (default: ~128 MB each)")
    parser.add_argument("--gzip", action="store_true", help="write gzip-compressed parts")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: one per core)")
    parser.add_argument("--no-progress", dest="progress", action="store_const",
                        const=False, default=None, help="no progress bar")
    parser.add_argument("--prefix", default="amplab_", metavar="P",
                        help="table names in the printed CREATE EXTERNAL TABLE statements: "
                             "P + rankings / uservisits / documents (default amplab_)")
    parser.add_argument("--register", action="store_true",
                        help="also register the tables in the catalog")


def table_definitions(stats: dict, prefix: str = "amplab_") -> list:
    """The external tables over what :func:`generate` wrote (``stats`` is its
    result), named ``prefix + rankings`` / ``prefix + uservisits`` (/ ``prefix +
    documents``, one ``line`` column cut at no character of the text: ``\\001``).

    >>> [(t.name, t.location, len(t.columns)) for t in table_definitions({"path": "s3://b/sf1"})]
    [('amplab_rankings', 's3://b/sf1/rankings', 3), ('amplab_uservisits', 's3://b/sf1/uservisits', 9)]
    >>> [t.delimiter for t in table_definitions({"path": "/d", "tables": ALL_TABLES})]
    [',', ',', '\\x01']
    """
    from compiler.schema import Column, Table
    from runtime import storage
    from sqlmr.catalog import DOCUMENTS, DOCUMENTS_DELIMITER, RANKINGS, USERVISITS
    root = storage.to_uri(stats["path"])
    cols = {"rankings": RANKINGS, "uservisits": USERVISITS, "documents": DOCUMENTS}
    return [Table(prefix + name, [Column(n, t) for n, t in cols[name]], storage.join(root, name),
                  DOCUMENTS_DELIMITER if name == "documents" else ",")
            for name in stats.get("tables", TABLES)]


def register(tables: list) -> None:
    """Register ``tables`` in the catalog; one of the same name is replaced
    only when it reads the same location (a rerun), else a ValueError."""
    from sqlmr.catalog import open_catalog
    from sqlmr.config import load_settings
    catalog = open_catalog(load_settings())
    existing = catalog.tables()
    for t in tables:
        old = existing.get(t.name.lower())
        if old is not None and (old.builtin or old.location != t.location):
            raise ValueError(f"table {old.name} exists already (at {old.location}): DROP TABLE "
                             f"it, or choose other names with --prefix")
        catalog.create(t, replace=True)


def run(args: argparse.Namespace) -> int:
    """Run ``sqlmr gen amplab``; returns the exit status."""
    progress = getattr(args, "progress", None)
    prefix = getattr(args, "prefix", "amplab_")
    from sqlmr.catalog import check_table_name
    try:  # before any work: a --prefix that makes no table name
        for table in ALL_TABLES:
            check_table_name(prefix + table)
    except Exception as e:  # noqa: BLE001
        print(f"sqlmr gen: error: --prefix {prefix!r}: {e}", file=sys.stderr)
        return 2
    try:
        stats = generate(args.out, args.scale, seed=args.seed, files=args.files,
                         gzip=args.gzip, workers=args.workers, progress=progress,
                         tables=ALL_TABLES)
    except ValueError as e:
        print(f"sqlmr gen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sqlmr gen: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # storage and OS errors: one line, no traceback
        print(f"sqlmr gen: error: {e}", file=sys.stderr)
        return 1
    print(summary(stats), file=sys.stderr)
    from sqlmr.malformed import table_ddl
    tables = table_definitions(stats, prefix)
    # the DDL is the data of this command (stdout): `> tables.sql` keeps it
    print("\n".join(table_ddl(t) + ";" for t in tables))
    if getattr(args, "register", False):
        try:
            register(tables)
        except Exception as e:  # noqa: BLE001 — one line, no traceback
            print(f"sqlmr gen: error: {e}", file=sys.stderr)
            return 1
        print("registered tables " + ", ".join(t.name for t in tables), file=sys.stderr)
    return 0


def summary(stats: dict) -> str:
    parts = [f"{stats[t]['rows']:,} {t}" for t in TABLES if t in stats]
    text = " + ".join(parts) + " rows" if parts else ""
    if "documents" in stats:
        text += (", " if text else "") + f"{stats['documents']['rows']:,} documents pages"
    return (f"sqlmr gen amplab: {text}, "
            f"{stats['bytes'] / 1e6:,.1f} MB in {stats['seconds']:.1f} s "
            f"({stats['mb_per_s']:,.1f} MB/s) -> {stats['path']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqlmr gen amplab",
                                     description="Generate the AMPLab benchmark tables.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
