"""CREATE [TEMPORARY] FUNCTION name AS 'module.function' USING FILE 'module.py'
[RETURNS type]: a Python UDF, read here without being run.  A class with
init/step/merge/final is an aggregate UDF (see README "Your own Python").

The file is hashed (tasks check the same sha256) and parsed with :mod:`ast`
only: the driver never imports a user's file.  The return type is the
RETURNS clause's, else the function's (an aggregate's ``final``'s) ``-> T``
annotation, else STRING.
"""

from __future__ import annotations

import hashlib
import os

import sqlglot
from sqlglot import exp

from compiler.errors import SqlError, UnsupportedError
from compiler.schema import normalize_type
from compiler.udfs import (TYPES, Udf, aggregate_class, final_annotation, has_function,
                           return_annotation)
from runtime import storage
from sqlmr.catalog import resolve_location


def is_create_function(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "FUNCTION"


def udf_from_create(tree: exp.Create, sql: str, base_dir: str | None) -> tuple[Udf, bool]:
    """The function a CREATE FUNCTION statement names, and whether it is TEMPORARY."""
    name = tree.this.name if isinstance(tree.this, exp.Table) else ""
    props = tree.args.get("properties")
    props = props.expressions if props is not None else []
    temporary = any(isinstance(p, exp.TemporaryProperty) for p in props)
    using = [p for p in props if isinstance(p, exp.UsingProperty)]
    returns = [p for p in props if isinstance(p, exp.ReturnsProperty)]
    target = tree.args.get("expression")
    if not name or not isinstance(target, exp.Literal) or not target.is_string:
        raise SqlError("usage: CREATE [TEMPORARY] FUNCTION name AS 'module.function' "
                       "USING FILE 'module.py' [RETURNS type]", sql, 0)
    if len(using) != 1 or (using[0].args.get("kind") or "").upper() != "FILE":
        raise UnsupportedError("a Python function without USING FILE 'module.py' "
                               "(JAR and ARCHIVE are Hive's Java functions)", sql, 0)
    module, _, function = target.this.rpartition(".")
    path_text = using[0].this.name
    uri = resolve_location(path_text, base_dir)
    if storage.is_s3(uri):
        raise UnsupportedError("USING FILE on S3 (name a file on this machine)", sql, 0)
    path = storage.to_path(uri)
    stem = os.path.splitext(os.path.basename(path))[0]
    if not module or not function or module != stem or not path.endswith(".py"):
        raise SqlError(f"AS '{target.this}' must name a function of the file: "
                       f"'{stem}.<function>' for {path_text} (a .py file)", sql, 0)
    if not stem.isidentifier():
        raise SqlError(f"{path_text}: a module name must be a Python identifier", sql, 0)
    returned = None
    if returns:
        dt = returns[0].this
        returned = dt.sql(dialect="hive") if isinstance(dt, exp.DataType) else str(dt)
    try:
        udf = udf_from_file(name, function, path, returned, path_text)
    except ValueError as e:
        raise SqlError(str(e), sql, 0) from None
    return udf, temporary


def udf_from_file(name: str, function: str, path: str, returns: str | None,
                  shown: str | None = None) -> Udf:
    """The UDF ``name`` calling top-level ``function`` of the module file
    ``path``, checked with :mod:`ast` (never imported); ``returns`` a SQL
    type's spelling, else the function's annotation, else STRING.  Bad input
    is a ValueError saying what is wrong."""
    shown = shown or path
    check_function_name(name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {shown}: {e.strerror or e}") from None
    try:
        source = data.decode("utf-8")
        found = has_function(source, function)
        cls = aggregate_class(source, function)
    except (UnicodeDecodeError, SyntaxError, ValueError) as e:
        raise ValueError(f"{shown} is not a Python module ({e})") from None
    if not found:
        raise ValueError(f"{shown} defines no top-level function '{function}'")
    annotated = final_annotation(cls) if cls is not None else return_annotation(source, function)
    typ = normalize_type(returns) if returns else (annotated or "string")
    if typ not in TYPES:
        raise ValueError(f"a function returning {typ.upper()} is not supported yet")
    module = os.path.splitext(os.path.basename(path))[0]
    return Udf(name.lower(), module, function, os.path.abspath(path),
               hashlib.sha256(data).hexdigest(), typ, aggregate=cls is not None)


def check_function_name(name: str) -> None:
    """A UDF may not take the name of a function SQL already has."""
    try:
        call = sqlglot.parse_one(f"{name}(x)", read="hive")
    except sqlglot.errors.ParseError:
        call = None
    if not isinstance(call, exp.Anonymous) or not name.isidentifier():
        raise ValueError(f"'{name}' is the name of a built-in function or not a valid "
                         "function name; choose another")
