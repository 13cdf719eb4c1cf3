"""Tables inferred from files: what a file in FROM (``'data/*.csv'``,
``read_csv(…)``, ``read_json(…)``) or a ``CREATE EXTERNAL TABLE`` without
columns reads.

The files are listed (a path, folder or glob; local, ``file://`` or
``s3://``) and sampled: the first :data:`sqlmr.infer.SAMPLE_BYTES` of the
first non-empty file (decompressed when ``.gz``), and of the next ones while
the sample is short (at most :data:`SAMPLE_FILES` files); then
:mod:`sqlmr.infer` decides the columns and the format: ``.csv`` / ``.tsv`` files (and ``read_csv``) are CSV with a
sniffed delimiter and header; ``.json`` / ``.jsonl`` / ``.ndjson`` (and
``read_json``) JSON lines; any other file is JSON when it starts with ``{``,
CSV when it has a header or quotes, else Hive delimited text.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from sqlglot import exp

from compiler.errors import SqlError
from compiler.schema import Column, Format, Table
from compiler.sources import FileSource, bind_sources, kind_of_name
from runtime import storage
from sqlmr import infer


SAMPLE_FILES = 8  # files the sample may start in, when the first ones are small


@dataclass(frozen=True)
class Hints:
    """What the user fixed; None: sniffed from the sample."""

    kind: str | None = None          # csv | json | text
    header: bool | None = None
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    null: str | None = None
    columns: tuple[Column, ...] | None = None

    @classmethod
    def of(cls, src: FileSource) -> "Hints":
        kind = None if src.reader == "auto" else src.reader
        return cls(kind or kind_of_name(src.path), src.header, src.delimiter, src.quote,
                   src.escape, src.null, src.columns)


def read_sample(uri: str, size: int) -> tuple[bytes, bool]:
    """``(bytes, whole)``: the start of a file (decompressed when it ends in
    ``.gz``) and whether that is all of it."""
    if uri.lower().endswith(".gz"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = bytearray()
        for chunk in storage.iter_range(uri, 0, None, 1 << 16):
            out += d.decompress(chunk, infer.SAMPLE_BYTES - len(out))
            if len(out) >= infer.SAMPLE_BYTES:
                return bytes(out), False
            if d.eof:
                break
        if not d.eof:
            raise EOFError("truncated gzip file (the compressed data ends mid-stream)")
        return bytes(out), True
    data = storage.read_range(uri, 0, min(size, infer.SAMPLE_BYTES))
    return data, size <= infer.SAMPLE_BYTES


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What listing or reading a location raises when the location is at fault."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, storage.InputError)
    try:
        from runtime.s3 import StorageError  # S3's: a bucket, credentials, permissions
    except ImportError:  # pragma: no cover - no boto3
        return errors
    return errors + (StorageError,)


def list_location(uri: str, shown: str) -> list[tuple[str, int]]:
    """The data files at a location, or a ValueError saying why there are none."""
    try:
        files = storage.list_files(uri)
    except FileNotFoundError:
        if storage.has_glob(uri):
            raise ValueError(f"no file matches {shown}") from None
        raise ValueError(f"no such file or folder: {shown}") from None
    except storage.InputError as e:
        raise ValueError(str(e)) from None
    except _storage_errors() as e:  # an S3 listing
        raise ValueError(f"cannot list {shown}: {getattr(e, 'strerror', None) or e}") from None
    if not files:
        raise ValueError(f"{shown} holds no data file (names starting with _ or . are skipped)")
    return files


def infer_table(name: str, uri: str, hints: Hints, shown: str | None = None) -> Table:
    """The table over the files at ``uri`` (see the module doc); a ValueError
    says why it cannot be inferred (no file, unreadable sample, not the format)."""
    shown = shown or uri
    files = list_location(uri, shown)
    # the first file that holds anything (an empty part file says nothing)
    first, size = next(((u, n) for u, n in files if n > 0), files[0])
    if size == 0:
        raise ValueError(f"cannot infer columns: {shown} holds only empty files")
    try:
        sample, whole = read_sample(first, size)
    except _storage_errors() as e:
        raise ValueError(f"cannot read a sample of {first}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    kind = hints.kind or kind_of_name(first)
    try:
        table = _infer(name, uri, hints, kind, sample, whole)
    except infer.SampleError as e:
        what = {"csv": "CSV", "json": "JSON lines"}.get(kind or "", "text")
        raise ValueError(f"cannot infer columns of {first} as {what}: {e}") from None
    if not whole or len(files) == 1:
        return table
    return _with_more_files(table, hints, sample, files, first)


def _with_more_files(table: Table, hints: Hints, sample: bytes,
                     files: list[tuple[str, int]], first: str) -> Table:
    """``table`` (inferred from all of the small file ``first``) typed again
    from the start of the next files as well, up to :data:`SAMPLE_FILES` files
    and :data:`sqlmr.infer.SAMPLE_BYTES` in all: the first file decides the
    format, the header and the names; the others widen the types.  A later
    file that cannot be read as that format leaves the first file's table."""
    fmt = table.format
    parts = [sample if sample.endswith(b"\n") else sample + b"\n"]
    budget = infer.SAMPLE_BYTES - len(sample)
    rest = [(u, n) for u, n in files if n > 0 and u != first][:SAMPLE_FILES - 1]
    for uri, size in rest:
        if budget <= 0:
            break
        try:
            data, whole = read_sample(uri, size)
        except _storage_errors():
            break  # the query names it when it reads it
        data = infer.complete_lines(data[:budget], whole and len(data) <= budget).encode()
        data = b"".join(data.splitlines(keepends=True)[fmt.header_lines:])
        if data and not data.endswith(b"\n"):
            data += b"\n"
        parts.append(data)
        budget -= len(data)
    if len(parts) == 1:
        return table
    again = Hints(kind=fmt.kind, header=bool(fmt.header_lines), delimiter=table.delimiter,
                  quote=fmt.quote, escape=fmt.escape, null=fmt.null, columns=hints.columns)
    try:
        wider = _infer(table.name, table.location, again, fmt.kind, b"".join(parts), True)
    except infer.SampleError:
        return table
    return wider if [c.name for c in wider.columns] == [c.name for c in table.columns] \
        or fmt.kind == "json" else table


def _infer(name: str, uri: str, hints: Hints, kind: str | None, sample: bytes,
           whole: bool) -> Table:
    if kind is None:
        kind = "json" if infer.looks_like_json(sample) else None
    if kind == "json":
        columns = list(hints.columns) if hints.columns else infer.infer_json(sample, whole)
        return Table(name, columns, uri, format=Format("json"))
    if kind == "text":  # Hive delimited text: no quoting, \N is NULL
        null = "\\N" if hints.null is None else hints.null
        columns, fmt, delim = infer.infer_csv(sample, whole, hints.delimiter,
                                              bool(hints.header), None, hints.escape, null)
        if hints.columns:
            columns = list(hints.columns)
        return Table(name, columns, uri, delim,
                     format=Format("text", header_lines=fmt.header_lines, escape=hints.escape,
                                   null=null))
    quote = '"' if hints.quote is None else hints.quote
    if hints.columns:  # DuckDB: given columns turn sniffing off; no header unless said
        text = infer.complete_lines(sample, whole)
        delim = hints.delimiter or infer.sniff_delimiter(text, quote or None)
        header = bool(hints.header)
        fmt = Format("csv", header_lines=int(header), quote=quote, escape=hints.escape,
                     null="" if hints.null is None else hints.null)
        return Table(name, list(hints.columns), uri, delim, format=fmt)
    null = "" if hints.null is None else hints.null
    columns, fmt, delim = infer.infer_csv(sample, whole, hints.delimiter, hints.header,
                                          quote, hints.escape, null)
    if quote == "":  # CSV without quoting is delimited text
        return Table(name, columns, uri, delim,
                     format=Format("text", fmt.header_lines, escape=hints.escape, null=null))
    if kind is None and hints.header is None:
        # a file of unknown kind is CSV only when it shows it (a header a type
        # proves, or quotes); else Hive's delimited text, as sqlmr's own tables
        text = infer.complete_lines(sample, whole)
        # (a header over columns that are all text is only DuckDB's guess)
        proven = fmt.header_lines and not all(c.type == "string" for c in columns)
        if not proven and not infer.looks_quoted(text, quote or '"'):
            columns, delim = infer.infer_text(sample, whole, delim)
            return Table(name, columns, uri, delim)
        if not proven:
            columns, fmt, delim = infer.infer_csv(sample, whole, delim, False, quote,
                                                  hints.escape)
    return Table(name, columns, uri, delim, format=fmt)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def source_name(src: FileSource) -> str:
    """The table name a file source is known by in messages and EXPLAIN: its
    path, or its call as written; never a catalogued table's name (those are
    identifiers).

    >>> source_name(FileSource("auto", "data/x.csv", "x", "'data/x.csv'"))
    'data/x.csv'
    >>> source_name(FileSource("auto", "logs", "logs", "'logs'"))
    './logs'
    """
    if src.reader != "auto":
        return src.spelling
    return "./" + src.path if _IDENT.fullmatch(src.path) else src.path


def bind_files(tree: exp.Expression, sql: str, catalog_names: set[str],
               base_dir: str | None = None) -> dict[str, Table]:
    """Infer a table for every file source of ``tree`` and point the query at
    it (see :func:`compiler.sources.bind_sources`); errors point at the source."""
    from sqlmr.catalog import resolve_location
    made: dict[str, Table] = {}

    def bind(src: FileSource) -> Table:
        if src.spelling in made:
            return made[src.spelling]
        name = source_name(src)
        taken = {t.name.lower() for t in made.values()} | catalog_names
        base, k = name, 1
        while name.lower() in taken:  # 'A.csv' and 'a.csv' are two files
            k += 1
            name = f"{base} ({k})"
        try:
            uri = resolve_location(src.path, base_dir)
            made[src.spelling] = infer_table(name, uri, Hints.of(src), src.path)
        except ValueError as e:
            raise SqlError(str(e), sql, src.offset) from None
        return made[src.spelling]

    return bind_sources(tree, sql, lambda n: n.lower() in catalog_names, bind)
