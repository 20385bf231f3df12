"""Generate argparse flags from a config dataclass, and build the dataclass back.

Flags are the kebab-case field names; help comes from ``field(metadata={"help": ...})``
(the spirit of sglang's ``ServerArgs.add_cli_args``/``from_cli_args``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

__all__ = ["add_dataclass_args", "dataclass_from_args", "parse_float", "parse_size"]

T = TypeVar("T")


def parse_float(text: str) -> float:
    """Parse a float, accepting ``inf``."""
    return float(text)


def parse_size(text: str) -> int:
    """Bytes from ``1024``, ``64K``, ``16M`` or ``1G`` (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text and text[-1].upper() in units:
            return int(float(text[:-1]) * units[text[-1].upper()])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (e.g. 1024, 64K, 16M, 1G)"
        ) from None


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, is_list) for ``int | None``, ``list[int]`` and friends."""
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {})  # annotations are strings under `from __future__`
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return typing.get_args(tp)[0], True
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return _base_type(args[0])
    return tp, False


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, skip: tuple = ()) -> None:
    """Add one ``--kebab-name`` flag per field of dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp, is_list = _base_type(f.type)
        kw: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default"] = f.default_factory()
        else:
            kw["required"] = True
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = f.metadata.get("parse") or (parse_float if tp is float else tp)
            if is_list:
                kw["nargs"] = "+"
        parser.add_argument(flag, **kw)


def dataclass_from_args(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the parsed flags (validation runs in its ``__post_init__``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: v for k, v in vars(ns).items() if k in names}
    kw.update(overrides)
    for k, v in kw.items():
        if isinstance(v, list) and any(
            f.name == k and "tuple" in str(f.type) for f in dataclasses.fields(cls)
        ):
            kw[k] = tuple(v)
    return cls(**kw)
