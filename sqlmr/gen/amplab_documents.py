"""The AMPLab ``documents`` table (query 4's crawl): a synthetic web crawl.

One text line per row (``documents (line STRING)``), in the layout of the
Common Crawl ARC sample the benchmark used: each page starts with a header line
of exactly five space-separated fields, ``url ip date mime length``, followed by
the page's lines (HTTP response headers, then HTML).  ``length`` is the bytes of
those lines, newlines included::

    http://<pageURL> 23.101.7.44 20120315094512 text/html 1873
    HTTP/1.1 200 OK
    Content-Type: text/html
    Content-Length: 1799
    <html><head><title>word word word</title></head><body>
    <p>word word … <a href=http://<pageURL> rel=nofollow>word</a></p>
    …
    </body></html>

Only header lines start with ``http``, no line is empty, and no line holds a
``\\001`` (the table's field delimiter), so ``line`` is always the whole line.

**Pages and links.**  Page ``d`` of the crawl is the rankings page ``j = d mod N
+ 1`` in rank order (a crawler reaches popular pages first; past ``N`` pages it
starts over).  A page holds Poisson(:data:`LINKS_MEAN`) links, each to page ``j``
with probability ``m_j / sum(m)``, ``m_j`` the page's class in the rankings model
(:func:`sqlmr.gen.amplab.page_class`): the same Zipf(0.5) link model that made
the pages' pageRank.  Links are written ``<a href=http://<pageURL> rel=nofollow>``
so the benchmark's ``https?://[^\\s]+`` matches exactly ``http://<pageURL>``.

**Size.**  The benchmark's crawl is 6.8 MB at ``tiny`` (SF 1,200 / 18 M pages),
29.0 GB at ``1node`` (SF 1) and 136.9 GB at ``5nodes`` (SF 5): not proportional
to the other tables.  :func:`target_bytes` interpolates those three points
log-linearly and grows in proportion to the scale beyond them; the page count is
that over the mean page size (:func:`mean_page_bytes`).

**Model answer.**  Query 4's ``url_counts_total`` has one row per distinct link
target, and each page's header URL is a link target too (the benchmark's UDF
scans the header line).  With Poisson link counts, page ``j`` is linked
independently with probability ``1 - exp(-T m_j / sum(m))``, ``T`` the expected
number of links; pages that were crawled always appear (:func:`model_rows`).
"""

from __future__ import annotations

import bisect
import math
import random
from datetime import datetime, timedelta
from functools import lru_cache

from sqlmr.gen import amplab_vocab as vocab

TINY_SCALE = 1200 / 18_000_000
#: (scale factor, bytes) the benchmark published for its crawl sample
SIZE_ANCHORS: tuple[tuple[float, float], ...] = ((TINY_SCALE, 6.8e6), (1.0, 29.0e9),
                                                 (5.0, 136.9e9))
BLOCK_PAGES = 1_000          # pages per independently seeded block
LINKS_MEAN = 8.0             # links per page, Poisson
PLAIN_LINES = (2, 10)        # paragraphs without a link per page, uniform
WORDS_PER_LINE = (4, 16)     # words per paragraph, uniform
CRAWL_START = datetime(2012, 1, 1)
CRAWL_SECONDS = 120 * 86_400
MIME = "text/html"


def target_bytes(scale: float) -> float:
    """Bytes of the crawl at a scale factor: the published sizes at tiny, 1node and
    5nodes, log-linear between them, proportional to the scale outside.

    >>> [round(target_bytes(s) / 1e6, 1) for s in (TINY_SCALE, 1, 5)]
    [6.8, 29000.0, 136900.0]
    >>> round(target_bytes(10) / target_bytes(5), 6), round(target_bytes(TINY_SCALE / 2) / 1e6, 1)
    (2.0, 3.4)
    """
    anchors = SIZE_ANCHORS
    if scale <= anchors[0][0]:
        return anchors[0][1] * scale / anchors[0][0]
    if scale >= anchors[-1][0]:
        return anchors[-1][1] * scale / anchors[-1][0]
    for (s0, b0), (s1, b1) in zip(anchors, anchors[1:]):
        if s0 <= scale <= s1:
            t = math.log(scale / s0) / math.log(s1 / s0)
            return math.exp(math.log(b0) + t * math.log(b1 / b0))
    raise AssertionError(scale)


def page_count(scale: float) -> int:
    """Pages of the crawl at a scale factor (at least one)."""
    return max(1, round(target_bytes(scale) / mean_page_bytes()))


# ------------------------------------------------------------------ the link model

@lru_cache(maxsize=16)
def link_classes(pages: int) -> tuple[tuple[int, int, int], ...]:
    """``(m, first j, last j)`` of each page class, rank order: pages ``j`` with
    ``page_class(j) == m`` are exactly ``first..last``.

    >>> link_classes(1000)[:2], link_classes(1000)[-1]
    (((47, 1, 1), (34, 2, 2)), (2, 361, 1000))
    """
    out = []
    hi = pages
    m = 2
    while hi >= 1:
        lo = min(pages, 9 * pages // (2 * m + 1) ** 2)  # j <= lo  <=>  m_j > m
        if lo < hi:
            out.append((m, lo + 1, hi))
        hi = lo
        m += 1
    return tuple(reversed(out))


@lru_cache(maxsize=16)
def _link_table(pages: int) -> tuple[list[float], tuple[tuple[int, int, int], ...], float]:
    """Cumulative link weight after each class, the classes, the total weight."""
    classes = link_classes(pages)
    cum, acc = [], 0.0
    for m, lo, hi in classes:
        acc += m * (hi - lo + 1)
        cum.append(acc)
    return cum, classes, acc


def link_share(pages: int, j: int) -> float:
    """Probability that a link points at page ``j`` (rank order).

    >>> round(sum(link_share(500, j) for j in range(1, 501)), 9)
    1.0
    """
    from sqlmr.gen.amplab import page_class
    return page_class(j, pages) / _link_table(pages)[2]


def model_rows(pages: int, crawled: int, links_mean: float = LINKS_MEAN) -> tuple[float, float]:
    """(mean, variance) of the distinct link targets of a crawl of ``crawled`` pages
    over ``pages`` pages: query 4's ``url_counts_total`` rows.

    >>> model_rows(1200, 5000)
    (1200.0, 0.0)
    >>> mean, var = model_rows(1_000_000, 10); round(mean), 0 < var < 100
    (90, True)
    """
    cum, classes, total = _link_table(pages)
    seen = min(crawled, pages)          # pages j = 1..seen are crawled: always present
    links = crawled * links_mean
    mean, var = float(seen), 0.0
    for m, lo, hi in classes:
        n = hi - max(lo, seen + 1) + 1
        if n <= 0:
            continue
        q = -math.expm1(-links * m / total)
        mean += n * q
        var += n * q * (1 - q)
    return mean, var


# --------------------------------------------------------------------- the text

def _poisson_cdf(lam: float) -> list[float]:
    cdf, acc, k = [], 0.0, 0
    while acc < 1 - 1e-15 and k < lam + 20 * math.sqrt(lam) + 30:
        acc += math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
        cdf.append(acc)
        k += 1
    cdf[-1] = 1.0
    return cdf


@lru_cache(maxsize=None)
def _links_cdf() -> list[float]:
    return _poisson_cdf(LINKS_MEAN)


class Crawl:
    """The pages of one dataset: ``model`` (a :class:`sqlmr.gen.amplab.Model`)
    gives the pageURLs and the page shuffle; ``count`` pages."""

    def __init__(self, model, count: int) -> None:
        self.model, self.count = model, count
        n = model.pages
        self._inverse = pow(model.shuffle_mul, -1, n) if n > 1 else 0

    def row_of(self, j: int) -> int:
        """The rankings row holding page ``j`` (rank order, 1-based)."""
        m = self.model
        return (j - 1 - m.shuffle_add) * self._inverse % m.pages

    def block(self, block: int, lo: int, hi: int) -> str:
        """Pages ``lo..hi`` (offsets within the block) of block ``block``."""
        model = self.model
        start = block * BLOCK_PAGES
        n = min(BLOCK_PAGES, self.count - start)
        rng = random.Random(_seed(model.seed, block))
        rand, randrange, choices, shuffle = rng.random, rng.randrange, rng.choices, rng.shuffle
        words = vocab.SEARCH_WORDS
        cum, classes, total = _link_table(model.pages)
        links_cdf = _links_cdf()
        pages, inverse, sa = model.pages, self._inverse, model.shuffle_add
        from sqlmr.gen.amplab import URL_CACHE_MAX
        if pages <= URL_CACHE_MAX:
            list(model.urls_of(range(0)))       # fills the model's list of every URL
            url = model._urls.__getitem__
        else:
            url = model.url_function()
        bisect_right = bisect.bisect_right
        w_lo, w_hi = WORDS_PER_LINE
        p_lo, p_hi = PLAIN_LINES
        out: list[str] = []
        for d in range(start, start + n):
            r = (d % pages - sa) * inverse % pages
            src = url(r)
            nlinks = bisect_right(links_cdf, rand())
            flags = [True] * nlinks + [False] * (p_lo + randrange(p_hi - p_lo + 1))
            shuffle(flags)
            body = [f"<html><head><title>{' '.join(choices(words, k=3))}</title></head><body>\n"]
            for is_link in flags:
                text = " ".join(choices(words, k=w_lo + randrange(w_hi - w_lo + 1)))
                if is_link:
                    u = rand() * total
                    c = min(bisect_right(cum, u), len(classes) - 1)
                    m, first, last = classes[c]
                    j = min(last, first + int((u - (cum[c - 1] if c else 0.0)) / m))
                    t = (j - 1 - sa) * inverse % pages
                    dest = url(t)
                    body.append(f"<p>{text} <a href=http://{dest} rel=nofollow>"
                                f"{words[randrange(len(words))]}</a></p>\n")
                else:
                    body.append(f"<p>{text}</p>\n")
            body.append("</body></html>\n")
            html = "".join(body)
            html_len = len(html)
            content = ("HTTP/1.1 200 OK\nContent-Type: text/html\n"
                       f"Content-Length: {html_len}\n{html}")
            ip = (f"{1 + randrange(254)}.{randrange(255)}.{randrange(255)}."
                  f"{1 + randrange(254)}")
            when = (CRAWL_START + timedelta(seconds=randrange(CRAWL_SECONDS))).strftime(
                "%Y%m%d%H%M%S")
            if lo <= d - start < hi:
                out.append(f"http://{src} {ip} {when} {MIME} {len(content)}\n{content}")
        return "".join(out)


def _seed(seed: int, block: int) -> int:
    from sqlmr.gen.amplab import _seed_int
    return _seed_int(seed, "documents", block)


@lru_cache(maxsize=None)
def mean_page_bytes() -> float:
    """Mean bytes of a page, measured once on 4,000 pages of a fixed dataset (a
    page's size does not depend on the seed or the number of pages)."""
    from sqlmr.gen.amplab import Model
    crawl = Crawl(Model(12345, 100_000, 1), 4 * BLOCK_PAGES)
    text = "".join(crawl.block(b, 0, BLOCK_PAGES) for b in range(4))
    return len(text.encode("ascii")) / crawl.count
