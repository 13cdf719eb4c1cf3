"""The ``documents`` table of ``sqlmr gen amplab`` (AMPLab query 4's crawl) and
query 4's UDF, ``queries/url_count.py``: layout, link model, size, determinism,
the model answer, the table as sqlmr reads it, and the UDF against a plain
Python count of the same links."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from sqlmr.gen import amplab
from sqlmr.gen import amplab_documents as docs

QUERIES = Path(__file__).resolve().parents[1] / "queries"
LINK = re.compile(r"https?://[^\s]+")


def _text(folder: Path, table: str) -> str:
    return "".join(p.read_text() for p in sorted((folder / table).iterdir())
                   if p.name.startswith("part-"))


def _pages(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(header, lines after it) of each page; the layout says a page starts with
    a line of exactly five space-separated fields."""
    pages: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("http") and len(line.split(" ")) == 5:
            pages.append((line, []))
        else:
            assert pages, f"a line before the first header: {line!r}"
            pages[-1][1].append(line)
    return pages


@pytest.fixture(scope="module")
def tiny_crawl(tmp_path_factory):
    """The tiny scale (1,200 pages), all three tables, seed 0, two files, two workers."""
    out = tmp_path_factory.mktemp("tiny-crawl")
    stats = amplab.generate(str(out), docs.TINY_SCALE, seed=0, files=2, workers=2,
                            progress=False, tables=amplab.ALL_TABLES)
    urls = [line.split(",")[0] for line in _text(out, "rankings").splitlines()]
    return out, stats, urls, _text(out, "documents")


def test_tiny_crawl_is_the_published_size(tiny_crawl):
    out, stats, urls, text = tiny_crawl
    assert len(urls) == 1200
    size = len(text.encode())
    assert size == stats["documents"]["bytes"]
    assert abs(size / 6.8e6 - 1) < 0.03, size
    # the size model used for estimates is close to what is written
    assert abs(size / stats["documents"]["rows"] / amplab.ROW_BYTES["documents"] - 1) < 0.03
    assert [p.name for p in sorted((out / "documents").iterdir())] == ["part-00000", "part-00001"]


def test_sizes_follow_the_published_scales():
    assert docs.target_bytes(1) == pytest.approx(29.0e9)
    assert docs.target_bytes(5) == pytest.approx(136.9e9)
    assert docs.target_bytes(docs.TINY_SCALE) == pytest.approx(6.8e6)
    sizes = [docs.target_bytes(s) for s in (1e-5, docs.TINY_SCALE, 0.001, 0.1, 1, 3, 5, 20)]
    assert sizes == sorted(sizes)                           # grows with the scale
    assert docs.page_count(1) * docs.mean_page_bytes() == pytest.approx(29.0e9, rel=1e-6)


def test_every_page_starts_with_a_five_field_header(tiny_crawl):
    _, stats, urls, text = tiny_crawl
    assert text.endswith("\n") and "\x01" not in text and text.isascii()
    lines = text.split("\n")[:-1]
    assert all(lines), "no empty line"
    pages = _pages(lines)
    assert len(pages) == stats["documents"]["rows"] == docs.page_count(docs.TINY_SCALE)
    known = set(urls)
    for header, body in pages:
        url, ip, when, mime, length = header.split(" ")
        assert url.startswith("http://") and url[7:] in known
        assert re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", ip)
        assert re.fullmatch(r"2012\d{10}", when) and mime == "text/html"
        assert int(length) == sum(len(b) + 1 for b in body)     # bytes of the page's lines
        assert body[0] == "HTTP/1.1 200 OK" and body[-1] == "</body></html>"
        assert not any(b.startswith("http") for b in body)      # only headers start a page
    # the crawl visits pages in rank order: past 1,200 pages it starts over
    firsts = [h.split(" ")[0] for h, _ in pages]
    assert len(set(firsts)) == 1200 and firsts[:1200] == firsts[1200:2400]


def test_links_are_pageurls_with_the_zipf_link_model(tiny_crawl):
    _, _, urls, text = tiny_crawl
    links = Counter(m[7:] for line in text.splitlines() if not line.startswith("http")
                    for m in LINK.findall(line))
    total = sum(links.values())
    assert set(links) <= set(urls)
    pages = len(text.split("\nhttp://")) if text.startswith("http") else 0
    assert abs(total / pages - docs.LINKS_MEAN) < 0.3          # Poisson(8) links a page
    # the most linked page is page 1 of the rank order, with its model share
    crawl = docs.Crawl(amplab.Model(0, 1200, 1), 1)
    top = urls[crawl.row_of(1)]
    assert links.most_common(1)[0][0] == top
    share = docs.link_share(1200, 1)
    expected = share * total
    assert abs(links[top] - expected) < 5 * math.sqrt(expected * (1 - share)), (links[top], expected)
    # and the bottom class (m = 2, 64% of the pages) gets its share of the links
    bottom = {urls[crawl.row_of(j)] for j in range(1, 1201) if amplab.page_class(j, 1200) == 2}
    low = sum(links[u] for u in bottom)
    p = sum(docs.link_share(1200, j) for j in range(1, 1201) if amplab.page_class(j, 1200) == 2)
    assert abs(low - p * total) < 5 * math.sqrt(total * p * (1 - p))
    assert p < 0.5 < len(bottom) / 1200                      # skewed: most pages, few links


def test_same_seed_same_crawl_whatever_the_files_and_workers(tmp_path):
    kw = dict(pages=5_000, visits=10, documents=2_345, progress=False, tables=["documents"])
    amplab.generate(str(tmp_path / "a"), 1, seed=4, files=1, workers=1, **kw)
    amplab.generate(str(tmp_path / "b"), 1, seed=4, files=3, workers=2, **kw)
    amplab.generate(str(tmp_path / "c"), 1, seed=5, files=1, workers=1, **kw)
    a, b, c = (_text(tmp_path / x, "documents") for x in "abc")
    assert a == b and a != c
    assert not (tmp_path / "a" / "rankings").exists()         # only the tables asked for
    m = amplab.Model(4, 5_000, 1, 2_345)
    assert m.text("documents", 0, 2_345) == a
    assert m.text("documents", 0, 1_234) + m.text("documents", 1_234, 2_345) == a


def test_distinct_link_targets_match_the_model(tmp_path):
    """Query 4's answer size: with fewer pages crawled than exist, the distinct
    link targets (headers included) are within the model's 5 sd."""
    for pages, crawled, seed in ((50_000, 3_000, 1), (20_000, 40_000, 2), (300, 90, 3)):
        m = amplab.Model(seed, pages, 1, crawled)
        targets = set(LINK.findall(m.text("documents", 0, crawled)))
        mean, var = docs.model_rows(pages, crawled)
        assert abs(len(targets) - mean) <= 5 * math.sqrt(var) + 1, (pages, crawled, len(targets), mean)


def test_link_classes_are_the_page_classes():
    for n in (1, 2, 7, 1200, 9_999):
        got = {j: m for m, lo, hi in docs.link_classes(n) for j in range(lo, hi + 1)}
        assert got == {j: amplab.page_class(j, n) for j in range(1, n + 1)}


def test_builtin_documents_table_reads_whole_lines(tiny_crawl, tmp_path):
    """The built-in definition (one STRING column, '\\001' delimiter) as the printed
    DDL declares it: sqlmr reads each line whole, commas and all."""
    from sqlmr.catalog import builtin_tables
    from sqlmr.config import Settings
    from sqlmr.malformed import table_ddl
    from sqlmr.session import Session
    builtin = builtin_tables()["documents"]
    assert [(c.name, c.type) for c in builtin.columns] == [("line", "string")]
    assert builtin.delimiter == "\x01" and builtin.location.endswith("/documents")
    out, stats, _, text = tiny_crawl
    ddl = [table_ddl(t) for t in amplab.table_definitions(stats, "t_")]
    assert len(ddl) == 3 and "t_documents" in ddl[2]
    s = Session(Settings(workers=2))
    try:
        list(s.execute(ddl[2]))
        res = s.execute_one("SELECT COUNT(*), SUM(LENGTH(line)), "
                            "SUM(CASE WHEN line LIKE 'http%' THEN 1 ELSE 0 END) FROM t_documents")
        rows = list(res.rows)
        res.close()
    finally:
        s.close()
    lines = text.split("\n")[:-1]
    assert [list(r) for r in rows] == [[len(lines), sum(map(len, lines)),
                                        stats["documents"]["rows"]]]


# ------------------------------------------------------------------ url_count.py

def _url_count(lines: list[str]) -> list[tuple[str, str, int]]:
    proc = subprocess.run([sys.executable, str(QUERIES / "url_count.py")],
                          input="".join(line + "\n" for line in lines), capture_output=True,
                          text=True, check=True)
    out = []
    for row in proc.stdout.splitlines():
        source, dest, count = row.split("\t")
        out.append((source, dest, int(count)))
    return out


def _oracle(lines: list[str]) -> Counter:
    """(page, link) -> count: every https?:// match of each page's lines, header
    included; a page starts at a line of five space-separated fields."""
    counts: Counter = Counter()
    page = "NONE"
    for line in lines:
        if line.startswith("http") and len(line.split(" ")) == 5:
            page = line.split(" ")[0]
        for link in re.findall(r"https?://[^\s]+", line):
            counts[page, link] += 1
    return counts


def test_url_count_matches_a_plain_count(tiny_crawl):
    _, _, _, text = tiny_crawl
    lines = text.split("\n")[:-1]
    got = _url_count(lines)
    merged = Counter()
    for s, d, c in got:
        merged[s, d] += c
    assert merged == _oracle(lines)
    # the pages repeat past 1,200 (the crawl starts over), so a page's rows come twice
    assert len(got) > len(merged)


def test_url_count_over_split_input_gives_the_same_totals(tiny_crawl):
    """As map tasks see it: the lines cut anywhere, each part counted on its own;
    SUM(count) GROUP BY destPage is unchanged."""
    _, _, _, text = tiny_crawl
    lines = text.split("\n")[:-1][:20_000]
    whole = Counter()
    for _, d, c in _url_count(lines):
        whole[d] += c
    parts = Counter()
    cut = 7_777  # inside a page
    assert not (lines[cut].startswith("http") and len(lines[cut].split(" ")) == 5)
    rows = _url_count(lines[:cut]) + _url_count(lines[cut:])
    for _, d, c in rows:
        parts[d] += c
    assert parts == whole
    assert any(s == "NONE" for s, _, _ in _url_count(lines[cut:]))   # before its first header


def test_url_count_edge_cases():
    lines = ["no page yet http://a.example/x",
             "http://p1 1.2.3.4 20120101000000 text/html 10",
             "see https://b.example/y and http://b.example/y and https://b.example/y",
             "http://not a header line",                             # four fields: a link line
             "http://p2 1.2.3.4 20120101000000 text/html 10",
             "plain text, no link"]
    got = sorted(_url_count(lines))
    assert got == sorted([("NONE", "http://a.example/x", 1),
                          ("http://p1", "http://p1", 1), ("http://p1", "https://b.example/y", 2),
                          ("http://p1", "http://b.example/y", 1), ("http://p1", "http://not", 1),
                          ("http://p2", "http://p2", 1)])
    assert Counter({(s, d): c for s, d, c in got}) == _oracle(lines)
    assert _url_count([]) == []


def test_query_4_parses_as_hive():
    text = (QUERIES / "4.sql").read_text()
    trees = [t for t in sqlglot.parse(text, read="hive") if t is not None]
    assert [type(t).__name__ for t in trees] == ["Drop", "Drop", "Create", "Create"]
    partial, total = trees[2], trees[3]
    assert partial.this.name == "url_counts_partial" and total.this.name == "url_counts_total"
    transform = partial.find(exp.QueryTransform)
    assert transform is not None
    assert transform.args["command_script"].name == "python3 url_count.py"
    assert [c.name for c in transform.args["schema"].expressions] == \
        ["sourcePage", "destPage", "cnt"]
    assert partial.args["expression"].find(exp.Table).name == "documents"
    assert total.find(exp.Sum) is not None and total.args["expression"].args.get("group")
    assert [t.name for t in total.find_all(exp.Table)][-1] == "url_counts_partial"


def test_cli_writes_the_crawl_and_its_ddl(tmp_path, capsys):
    out = tmp_path / "o"
    assert amplab.main(["--scale", "0.00005", "--out", str(out), "--files", "1",
                        "--workers", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    pages = docs.page_count(0.00005)
    assert f"{pages:,} documents pages" in captured.err
    assert [p.name for p in (out / "documents").iterdir()] == ["part-00000"]
    ddl = captured.out.splitlines()
    assert len(ddl) == 3 and ddl[2].startswith("CREATE EXTERNAL TABLE amplab_documents "
                                               "(line STRING)")
    assert "FIELDS TERMINATED BY '\\001'" in ddl[2]
