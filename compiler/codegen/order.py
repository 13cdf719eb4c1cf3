"""Sort keys: the functions ordered outputs are sorted and merged by."""

from __future__ import annotations

from compiler.plan import OrderKey
from compiler.codegen.source import Src


def sortkey(src: Src, order: list[OrderKey], name: str = "sortkey") -> None:
    """``<name>(row)``: a tuple that orders rows as ORDER BY says, NULLs placed
    first or last per key.  NaN sorts above every number, as in Hive (and
    DuckDB): without that rank a NaN, which compares false with everything,
    would leave the rows around it out of order."""
    src(f"def {name}(r):")
    src.indent()
    parts = []
    for n, o in enumerate(order):
        src(f"v{n} = r[{o.index}]")
        value = f"F.Desc(v{n})" if o.desc else f"v{n}"
        null_rank, val_rank = ("0", "1") if o.nulls_first else ("1", "0")
        nan_rank = "-1" if o.desc else "1"
        parts.append(f"(({null_rank}, 0) if v{n} is None else ({val_rank}, 0, {value}) if v{n} == v{n} "
                     f"else ({val_rank}, {nan_rank}))")
    src("return (" + ", ".join(parts) + ",)")
    src.dedent()
    src()
