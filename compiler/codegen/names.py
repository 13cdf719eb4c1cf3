"""Names in generated code, allocated so that two bindings cannot collide.

A module's top-level names are of three kinds, each with its own rule:

- *claimed* names (the prelude's helpers, task entry points, loaders, sort
  keys) are claimed once; claiming a taken name is an error, never a silent
  rebinding;
- *constants* (IN sets, LIKE patterns, rows of NULLs) are interned by value
  and named :data:`~compiler.exprs.CONST_PREFIX` and a number, a shape no
  claimed name may have;
- nothing else is bound at the top level.

A task function's locals are *fixed* names its code is written with (``g``,
``acc``, ``out`` …), which may not shadow a top-level name nor look like a
fresh one, and *fresh* names: a prefix letter and a number from one counter
per function (``j3``, ``x4``; temporaries of expressions ``_t5_0``).

>>> m = ModuleNames()
>>> m.claim("s1_map"), m.const("frozenset((1,))"), m.const("frozenset((1,))")
('s1_map', '_C0', '_C0')
>>> m.claim("s1_map")
Traceback (most recent call last):
...
compiler.codegen.names.NameClash: 's1_map' is already bound in the generated module
>>> m.claim("_C7")
Traceback (most recent call last):
...
compiler.codegen.names.NameClash: '_C7' has the shape of a generated constant
>>> loc = LocalNames(m)
>>> loc.fresh("j"), loc.fresh("x"), loc.tmp_prefix()
('j1', 'x2', '_t3_')
>>> loc.fixed("s1_map")
Traceback (most recent call last):
...
compiler.codegen.names.NameClash: local 's1_map' would shadow a module-level name
"""

from __future__ import annotations

import re

from compiler.exprs import CONST_PREFIX, intern_const

_CONST = re.compile(re.escape(CONST_PREFIX) + r"\d+")
# join keys, record values, projections, matches, probed values, window partition values and results
FRESH_PREFIXES = ("j", "x", "o", "m", "y", "wp", "wv")
_FRESH = re.compile(r"(?:(?:" + "|".join(FRESH_PREFIXES) + r")\d+|_t\d+_\d*)")


class NameClash(AssertionError):
    """Generated code would bind one name twice (a bug in code generation)."""


class ModuleNames:
    """The top-level names of one generated module."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.consts: dict[str, str] = {}   # name -> value code, in interning order
        self.locals: set[str] = set()      # fixed locals of every function so far

    def claim(self, name: str) -> str:
        """Bind ``name`` at the top level; it must be free and not shaped as a constant."""
        if _CONST.fullmatch(name):
            raise NameClash(f"{name!r} has the shape of a generated constant")
        if name in self.taken:
            raise NameClash(f"{name!r} is already bound in the generated module")
        if name in self.locals or _FRESH.fullmatch(name):
            raise NameClash(f"{name!r} is a local name of the generated functions")
        self.taken.add(name)
        return name

    def const(self, value_code: str) -> str:
        """The constant holding ``value_code`` (one per distinct value)."""
        return intern_const(self.consts, value_code)

    def __contains__(self, name: str) -> bool:
        return name in self.taken or name in self.consts


class LocalNames:
    """The locals of one task function and of the loaders it calls."""

    def __init__(self, module: ModuleNames) -> None:
        self.module = module
        self.n = 0
        self.fixed_names: set[str] = set()

    def fresh(self, prefix: str) -> str:
        """A new local: ``prefix`` (one of :data:`FRESH_PREFIXES`) and a number."""
        if prefix not in FRESH_PREFIXES:
            raise NameClash(f"{prefix!r} is not a prefix of fresh locals")
        self.n += 1
        return f"{prefix}{self.n}"

    def tmp_prefix(self) -> str:
        """A prefix for one expression compiler's temporaries (``_t<n>_<i>``)."""
        self.n += 1
        return f"_t{self.n}_"

    def fixed(self, *names: str) -> None:
        """Declare locals the code is written with (re-declaring one is fine:
        each names one variable of the function)."""
        for name in names:
            if name in self.module:
                raise NameClash(f"local {name!r} would shadow a module-level name")
            if _FRESH.fullmatch(name) or _CONST.fullmatch(name):
                raise NameClash(f"local {name!r} has the shape of a fresh or constant name")
            self.fixed_names.add(name)
            self.module.locals.add(name)
