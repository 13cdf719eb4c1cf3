"""Java regular expressions, as Hive's RLIKE, REGEXP_EXTRACT, REGEXP_REPLACE
and SPLIT read them, run by Python's ``re``.

The two dialects agree on most syntax; :func:`translate` rewrites what Java
spells or means differently and refuses (:class:`RegexError`, naming the
construct) what ``re`` cannot do:

- ``\\d \\w \\s \\b`` and ``(?i)`` are ASCII in Java by default: patterns
  compile with ``re.ASCII``;
- ``.`` excludes every Java line terminator (``\\n \\r \\u0085 \\u2028
  \\u2029``), not only ``\\n`` (unless ``(?s)``);
- ``\\z`` is Python's ``\\Z``; Java's ``\\Z`` (before a final newline) becomes
  a lookahead; ``\\Q…\\E`` is quoted text; ``(?<name>…)`` and ``\\k<name>``
  are Python's ``(?P<name>…)`` and ``(?P=name)``; ``\\p{Alpha}`` and the
  other POSIX classes (``\\p{Lower} \\p{Upper} \\p{Digit} \\p{Alnum}
  \\p{Punct} \\p{Space} \\p{XDigit} \\p{Blank} \\p{Cntrl} \\p{ASCII}``) are
  spelt out; ``\\h \\v \\R \\e`` likewise;
- refused: other ``\\p{…}`` classes, nested or intersected character
  classes (``[a-z&&[^e]]``), ``\\G``, ``\\c``, ``\\V``.

A replacement (REGEXP_REPLACE) is Java's ``Matcher.appendReplacement``
template: ``$n`` / ``${name}`` insert a group, ``\\x`` is ``x``.

>>> translate(r"(?<y>\\d{4})-\\p{Upper}+\\z")
'(?P<y>\\\\d{4})-[A-Z]+\\\\Z'
>>> compile_java(r"a.c").search("a\\rc") is None
True
>>> python_replacement("[$1|${n}|\\\\$]", 1, {"n": 1})
'[\\\\g<1>|\\\\g<n>|$]'
"""

from __future__ import annotations

import re
from functools import lru_cache


class RegexError(ValueError):
    """A Java pattern sqlmr cannot run, or that is not a valid pattern."""


class RegexUnsupported(RegexError):
    """A valid Java construct ``re`` cannot run; the message names the construct."""


_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "Graph": "!-~", "Print": " -~", "Blank": " \\t", "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0b\\f\\r",
}
_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"
_ESCAPES = {  # Java escapes spelt differently in Python (outside a class; inside, the set)
    "h": ("[ \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000]",
          " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"),
    "v": ("[\\n\\x0b\\f\\r\\x85\\u2028\\u2029]", "\\n\\x0b\\f\\r\\x85\\u2028\\u2029"),
    "e": ("\\x1b", "\\x1b"),
}


def translate(pattern: str) -> str:
    """The Python spelling of a Java pattern (see the module's notes)."""
    out: list[str] = []
    in_class = False
    class_start = 0  # index in ``out`` of the current class's first item
    dotall = bool(re.search(r"\(\?[a-zA-Z]*s", pattern))
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise RegexError("the pattern ends with a lone backslash")
            c = pattern[i + 1]
            i += 2
            if c == "Q":
                end = pattern.find("\\E", i)
                text = pattern[i:] if end < 0 else pattern[i:end]
                out.append("".join(re.escape(x) for x in text))
                i = n if end < 0 else end + 2
            elif c in "pP":
                name, i = _class_name(pattern, i)
                if name not in _POSIX:
                    raise RegexUnsupported(f"\\{c}{{{name}}} in a regular expression (the POSIX "
                                           f"classes are: {', '.join(sorted(_POSIX))})")
                if in_class:
                    if c == "P":
                        raise RegexUnsupported(f"\\P{{{name}}} inside a character class")
                    out.append(_POSIX[name])
                else:
                    out.append(("[^" if c == "P" else "[") + _POSIX[name] + "]")
            elif c in _ESCAPES:
                out.append(_ESCAPES[c][1 if in_class else 0])
            elif c == "R" and not in_class:
                out.append("(?:\\r\\n|[\\n\\x0b\\f\\r\\x85\\u2028\\u2029])")
            elif c == "z" and not in_class:
                out.append("\\Z")
            elif c == "Z" and not in_class:
                out.append("(?=(?:\\r\\n|[\\n\\r\\x85\\u2028\\u2029])?\\Z)")
            elif c == "k" and pattern.startswith("<", i):
                end = pattern.find(">", i)
                if end < 0:
                    raise RegexError("\\k<name> is not closed")
                out.append(f"(?P={pattern[i + 1:end]})")
                i = end + 1
            elif c == "x" and pattern.startswith("{", i):
                end = pattern.find("}", i)
                try:
                    out.append(re.escape(chr(int(pattern[i + 1:end], 16))))
                except ValueError:
                    raise RegexError(f"bad \\x{{…}} escape in {pattern!r}") from None
                i = end + 1
            elif c == "0":
                digits = re.match(r"[0-7]{1,3}", pattern[i:])
                if not digits or (len(digits.group()) == 3 and digits.group()[0] > "3"):
                    digits = re.match(r"[0-7]{1,2}", pattern[i:])
                if not digits:
                    raise RegexError("\\0 must be followed by octal digits")
                out.append(re.escape(chr(int(digits.group(), 8))))
                i += len(digits.group())
            elif c in "GcHVXN":
                raise RegexUnsupported(f"\\{c} in a regular expression")
            else:
                out.append("\\" + c)
            continue
        if in_class:
            if ch == "[":
                raise RegexUnsupported("nested character classes ([a[b]]) in a regular expression")
            if ch == "&" and pattern.startswith("&&", i):
                raise RegexUnsupported("character class intersection (&&) in a regular expression")
            if ch == "]" and len(out) > class_start:
                in_class = False
            # literal in Java; doubled, Python may read them as set operations
            out.append("\\" + ch if ch in "|~&" else ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            class_start = len(out)
            if pattern.startswith("]", i):  # a leading ']' is a literal in Java too
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("?<", i + 1) and pattern[i + 3:i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
            continue
        if ch == "." and not dotall:
            out.append(_DOT)
            i += 1
            continue
        out.append(ch)
        i += 1
    if in_class:
        raise RegexError(f"unclosed character class in {pattern!r}")
    return "".join(out)


def _class_name(pattern: str, i: int) -> tuple[str, int]:
    """The name after ``\\p`` / ``\\P`` (``{Alpha}`` or one letter) and where it ends."""
    if pattern.startswith("{", i):
        end = pattern.find("}", i)
        if end < 0:
            raise RegexError("\\p{…} is not closed")
        name = pattern[i + 1:end]
        return (name[2:] if name.startswith("Is") and name[2:] in _POSIX else name), end + 1
    if i < len(pattern):
        return pattern[i], i + 1
    raise RegexError("\\p needs a class name")


@lru_cache(maxsize=256)
def compile_java(pattern: str) -> re.Pattern:
    """A Java pattern compiled for Python (cached: a column of patterns reuses them)."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as e:
        raise RegexError(f"invalid regular expression {pattern!r}: {e}") from None


def python_replacement(template: str, groups: int, names: dict[str, int]) -> str:
    """Java's replacement template as ``re.sub``'s: ``$n`` takes the most
    digits that still name a group (as Matcher.appendReplacement does); a
    ``$`` naming no group is an error, as in Java."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "\\":
            if i + 1 >= n:
                raise RegexError("the replacement ends with a lone backslash")
            out.append(template[i + 1].replace("\\", "\\\\"))
            i += 2
        elif ch == "$":
            if template.startswith("{", i + 1):
                end = template.find("}", i)
                name = template[i + 2:end] if end > 0 else ""
                if name not in names:
                    raise RegexError(f"the replacement names no group {name!r}")
                out.append(f"\\g<{name}>")
                i = end + 1
                continue
            j = i + 1
            if j >= n or not template[j].isdigit() or int(template[j]) > groups:
                raise RegexError(f"illegal group reference in the replacement {template!r}")
            number = int(template[j])
            j += 1
            while j < n and template[j].isdigit() and number * 10 + int(template[j]) <= groups:
                number = number * 10 + int(template[j])
                j += 1
            out.append(f"\\g<{number}>")
            i = j
        else:
            out.append("\\\\" if ch == "\\" else ch)
            i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_replacement(pattern: str, template: str) -> tuple[re.Pattern, str]:
    rx = compile_java(pattern)
    return rx, python_replacement(template, rx.groups, rx.groupindex)


def java_split(rx: re.Pattern, s: str) -> list[str]:
    """``String.split(regex, -1)``: trailing empty strings kept, and no empty
    first item from a zero-width match at the start (Java 8).

    >>> java_split(re.compile(","), "a,b,"), java_split(re.compile(""), "abc")
    (['a', 'b', ''], ['a', 'b', 'c', ''])
    """
    out: list[str] = []
    pos = 0
    for m in rx.finditer(s):
        if m.end() == 0:
            continue
        out.append(s[pos:m.start()])
        pos = m.end()
    out.append(s[pos:])
    return out
