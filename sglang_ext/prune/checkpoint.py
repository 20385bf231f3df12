"""Read-only access to an HF safetensors checkpoint, one tensor at a time.

Tensors are read with ``safetensors.safe_open`` per tensor (open, copy one tensor out, close),
so nothing loads the whole model and no long-lived memory map accumulates resident pages. Handles both ``model.safetensors`` and sharded ``model-*-of-*.safetensors`` with
``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

__all__ = ["INDEX_NAME", "SINGLE_NAME", "SourceCheckpoint", "WEIGHT_SUFFIXES"]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".gguf")

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _open(path: Path) -> Any:
    try:
        return safe_open(str(path), framework="pt")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise ValueError(f"cannot read {path}: not a valid safetensors file ({e})") from e


class SourceCheckpoint:
    """A checkpoint directory opened read-only. Use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"source checkpoint {self.root} does not exist: check SRC")
        if not self.root.is_dir():
            raise NotADirectoryError(f"source {self.root} is a file; SRC must be a model directory")
        config_path = self.root / "config.json"
        if not config_path.is_file():
            raise ValueError(f"{self.root} has no config.json: SRC must be an HF model directory")
        self.config: dict[str, Any] = json.loads(config_path.read_text())

    @cached_property
    def weight_map(self) -> dict[str, str]:
        """Tensor name -> file, read on first use (so config checks come first)."""
        index = self.root / INDEX_NAME
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError(f"{index} has no weight_map: the checkpoint index is broken")
            missing = sorted({f for f in weight_map.values() if not (self.root / f).is_file()})
            if missing:
                raise FileNotFoundError(f"{index} lists shards that are missing: {missing}")
            return dict(weight_map)
        single = self.root / SINGLE_NAME
        if single.is_file():
            with _open(single) as f:
                return dict.fromkeys(f.keys(), SINGLE_NAME)
        if any(self.root.glob("*.bin")):
            raise ValueError(
                f"{self.root} holds .bin weights only: convert the checkpoint to safetensors first"
            )
        raise FileNotFoundError(f"{self.root} has neither {INDEX_NAME} nor {SINGLE_NAME}")

    @cached_property
    def _meta(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Tensor name -> (shape, safetensors dtype code), one header read per file."""
        meta: dict[str, tuple[tuple[int, ...], str]] = {}
        for file in self.shard_files:
            with _open(self.root / file) as f:
                for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                    if self.weight_map.get(name) == file:
                        sl = f.get_slice(name)
                        meta[name] = (tuple(sl.get_shape()), sl.get_dtype())
        missing = sorted(set(self.weight_map) - set(meta))
        if missing:
            raise ValueError(f"the index lists tensors absent from their shard: {missing[:5]}")
        return meta

    def __enter__(self) -> SourceCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between reads; kept for the context-manager form."""

    @property
    def shard_files(self) -> list[str]:
        return sorted(set(self.weight_map.values()))

    def _file(self, name: str) -> Path:
        try:
            return self.root / self.weight_map[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} is not in the checkpoint {self.root}") from None

    def shape(self, name: str) -> tuple[int, ...]:
        self._file(name)
        return self._meta[name][0]

    def dtype(self, name: str) -> torch.dtype:
        self._file(name)
        code = self._meta[name][1]
        if code not in _DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {code}, which this tool does not handle")
        return _DTYPES[code]

    def nbytes(self, name: str) -> int:
        numel = 1
        for d in self.shape(name):
            numel *= d
        return numel * torch.empty((), dtype=self.dtype(name)).element_size()

    # Each read opens the file, copies the one tensor out and closes it, so the memory map never
    # keeps more than that tensor resident (a long-lived handle would keep every page touched).
    def get(self, name: str) -> torch.Tensor:
        with _open(self._file(name)) as f:
            return f.get_tensor(name)

    def get_row(self, name: str, row: int) -> torch.Tensor:
        """``tensor[row:row+1]`` read without loading the rest."""
        with _open(self._file(name)) as f:
            return f.get_slice(name)[row : row + 1].clone()
