"""AMPLab Big Data Benchmark query 4's UDF: count the links of each crawled page.

Reads the ``documents`` table's lines on stdin (Hive TRANSFORM: one input column
a line).  A line that starts with ``http`` and has exactly five space-separated
fields is a page header (ARC: ``url ip date mime length``) and starts a page;
every ``https?://[^\\s]+`` in the page's lines, its header included, is a link.
Writes ``sourcePage<TAB>destPage<TAB>count`` for each distinct link of a page.
Lines before the first header belong to the page ``NONE``.

As the benchmark's ``url_count.py``, in Python 3, with one difference: the
original prints a page's counts once it has read the next header, under that
next page's name; here they go under their own page.  The links and their
counts are the same, so ``SUM(count) … GROUP BY destPage`` is too.
"""

import re
import sys

URL = re.compile(r"https?://[^\s]+")


def main(lines, out) -> None:
    page = "NONE"
    counts: dict[str, int] = {}
    for line in lines:
        if line[0:4] == "http" and len(line.split(" ")) == 5:
            for url, count in counts.items():
                out.write(f"{page}\t{url}\t{count}\n")
            page = line.split(" ")[0]
            counts = {}
        for url in URL.findall(line):
            counts[url] = counts.get(url, 0) + 1
    for url, count in counts.items():
        out.write(f"{page}\t{url}\t{count}\n")


if __name__ == "__main__":
    main(sys.stdin, sys.stdout)
