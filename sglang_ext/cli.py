"""The one dataclass-to-CLI generator and the one size parser of the package.

Flags are the kebab-case field names (as in sglang's ``ServerArgs.add_cli_args``/``from_cli_args``).
A field's help comes from ``field(metadata={"help": ...})`` or, failing that, from the docstring
written under the field (the torchtitan convention). Optional per-field metadata:

- ``choices``: passed to argparse;
- ``parse``: the scalar parser (default: the field's type; ``float`` accepts ``inf``);
- ``comma``: a list field read as one comma-separated value (``--stage-split 2,2``) instead of
  several space-separated ones (``--qps 2 8 inf``);
- ``metavar``.

Size convention (one for the whole package, used by perf, engine and prune):

- a bare number is bytes: ``1024``;
- ``K``, ``M``, ``G``, ``T`` and ``KiB``, ``MiB``, ``GiB``, ``TiB`` are binary (powers of 1024),
  as nccl-tests reads ``-b 8 -e 128M``;
- ``KB``, ``MB``, ``GB``, ``TB`` are decimal (powers of 1000), as HF's ``max_shard_size="5GB"``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SizeError", "add_dataclass_args", "dataclass_from_args", "parse_float", "parse_size"]

T = TypeVar("T")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?(?:I?B)?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1}
for _i, _p in enumerate("KMGT", start=1):
    _UNITS[_p] = _UNITS[_p + "IB"] = 1024**_i
    _UNITS[_p + "B"] = 1000**_i


class SizeError(argparse.ArgumentTypeError, ValueError):
    """A size that cannot be read (a ``ValueError``, and argparse prints its message)."""


def parse_size(text: str | int) -> int:
    """Bytes from ``1024``, ``64K``/``64KiB`` (65536), ``16M``, ``1G`` or ``5GB`` (5e9).

    Raises ``SizeError`` (a ``ValueError`` that argparse reports as such) for anything else and
    for sizes that are not positive.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE_RE.match(str(text))
        if not m or m.group(2).upper() not in _UNITS:
            raise SizeError(
                f"cannot read size {text!r}: give bytes or e.g. 64K, 16M, 1G (binary), 5GB (decimal)"
            )
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise SizeError(f"size must be positive, got {text!r}")
    return value


def parse_float(text: str) -> float:
    """A float, accepting ``inf``."""
    return float(text)


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (``x: int`` then ``\"\"\"doc\"\"\"``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, IndexError, AttributeError):
            continue
        for a, b in zip(body, body[1:], strict=False):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
            ):
                docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, is_list) for ``int | None``, ``list[int]``, ``tuple[str, ...]`` and friends."""
    if isinstance(tp, str):
        tp = eval(tp, {**vars(typing), "Path": Path}, {})  # string annotations (__future__)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return typing.get_args(tp)[0], True
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return _base_type(args[0])
    return tp, False


def _comma_list(parse: Any) -> Any:
    def read(text: str) -> list:
        try:
            return [parse(x) for x in text.split(",") if x.strip()]
        except (ValueError, argparse.ArgumentTypeError) as e:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values, got {text!r}: {e}"
            ) from None

    return read


def add_dataclass_args(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    positional: tuple[str, ...] = (),
) -> None:
    """Add one ``--kebab-name`` flag per init field of dataclass ``cls`` (``positional`` ones bare)."""
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, is_list = _base_type(f.type)
        parse = f.metadata.get("parse") or (parse_float if tp is float else tp)
        help_ = f.metadata.get("help") or docs.get(f.name, "")
        if f.name in positional:
            parser.add_argument(f.name, type=parse, help=help_)
            continue
        kw: dict[str, Any] = {"help": help_, "dest": f.name}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default"] = f.default_factory()
        else:
            kw["required"] = True
        for key in ("choices", "metavar"):
            if key in f.metadata:
                kw[key] = f.metadata[key]
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif is_list and f.metadata.get("comma"):
            kw["type"] = _comma_list(parse)
        else:
            kw["type"] = parse
            if is_list:
                kw["nargs"] = "+"
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)


def dataclass_from_args(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the parsed flags (validation runs in its ``__post_init__``)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kw = {k: v for k, v in vars(ns).items() if k in fields}
    kw.update(overrides)
    for k, v in kw.items():
        if isinstance(v, list) and "tuple" in str(fields[k].type):
            kw[k] = tuple(v)
    return cls(**kw)
