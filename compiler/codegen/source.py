"""Building indented Python source, and the few displays every part needs."""

from __future__ import annotations

from compiler.exprs import Code


class Src:
    """Indented source builder: ``src("line")`` appends at the current level."""

    def __init__(self, level: int = 0) -> None:
        self.lines: list[str] = []
        self.level = level

    def __call__(self, line: str = "") -> "Src":
        self.lines.append(("    " * self.level + line) if line else "")
        return self

    def indent(self) -> "Src":
        self.level += 1
        return self

    def dedent(self) -> "Src":
        self.level -= 1
        return self

    def block(self, sub: "Src") -> "Src":
        """Place a separately generated block (written from level 0) here."""
        pad = "    " * self.level
        self.lines.extend(pad + line if line else line for line in sub.lines)
        return self

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def tuple_code(items: list[str]) -> str:
    """A tuple display valid at any width.

    >>> tuple_code([]), tuple_code(["a"]), tuple_code(["a", "b"])
    ('()', '(a,)', '(a, b)')
    """
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def key_code(items: list[str]) -> str:
    """A shuffle or hash key: one value as itself, several as a tuple.

    >>> key_code(["j1"]), key_code(["j1", "j2"])
    ('j1', '(j1, j2,)')
    """
    return items[0] if len(items) == 1 else "(" + ", ".join(items) + ",)"


def key_expr(codes: list[Code]) -> str:
    """A group key: no key is the constant 0 (a scalar aggregate's one group)."""
    if not codes:
        return "0"
    return key_code([c.code for c in codes])
