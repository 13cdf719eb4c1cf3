"""Sizes for people (shared by the planner's reasons and EXPLAIN)."""

from __future__ import annotations


def size_text(n: float) -> str:
    """Bytes for people (decimal units).

    >>> size_text(999), size_text(1_700_000), size_text(2.5e9)
    ('999 B', '1.7 MB', '2.5 GB')
    """
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
