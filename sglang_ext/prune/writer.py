"""Stream the planned tensors into safetensors shards, checking everything written.

At most one shard's tensors are in memory at a time (``max_shard_size`` bounds it). Each tensor
is checked before writing (shape and dtype against the plan, finite values), hashed, and each
shard is re-read after writing and compared tensor by tensor with those hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .checkpoint import INDEX_NAME, SINGLE_NAME, SourceCheckpoint
from .plan import OutTensor

__all__ = ["group_shards", "tensor_digest", "write_checkpoint"]

logger = logging.getLogger(__name__)


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of the tensor's raw bytes (dtype and shape are checked separately)."""
    raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.sha256(raw).hexdigest()


def group_shards(plan: list[OutTensor], max_shard_size: int) -> list[list[OutTensor]]:
    """Split the plan, in order, into shards of at most ``max_shard_size`` bytes (a tensor larger
    than that gets a shard of its own, as in HF ``save_pretrained``)."""
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for t in plan:
        if shards[-1] and size + t.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return [s for s in shards if s]


def _produce(src: SourceCheckpoint, t: OutTensor) -> torch.Tensor:
    if t.op == "copy":
        return src.get(t.sources[0])
    if t.op == "row":
        return src.get_row(t.sources[0], t.row).clone()
    if t.op == "mean_rows":
        return src.get(t.sources[0]).double().mean(dim=0, keepdim=True).to(t.dtype)
    if t.op == "mean":
        acc = torch.zeros(t.shape, dtype=torch.float64)
        for name in t.sources:
            acc += src.get(name).double()
        return (acc / len(t.sources)).to(t.dtype)
    raise AssertionError(f"internal: unknown op {t.op!r}")


def _check(t: OutTensor, x: torch.Tensor) -> None:
    if tuple(x.shape) != t.shape or x.dtype != t.dtype:
        raise RuntimeError(
            f"internal: produced {t.name} as {list(x.shape)} {x.dtype}, "
            f"planned {list(t.shape)} {t.dtype}"
        )
    if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{t.name} (from {t.sources[0]}{' ...' if len(t.sources) > 1 else ''}) holds "
            "NaN or Inf values: the source checkpoint is corrupt"
        )


def _verify(path: Path, digests: dict[str, tuple[tuple[int, ...], torch.dtype, str]]) -> None:
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if keys != set(digests):
            raise RuntimeError(
                f"{path.name} re-read with tensors {sorted(keys ^ set(digests))} wrong"
            )
        for name, (shape, dtype, digest) in digests.items():
            x = f.get_tensor(name)
            if tuple(x.shape) != shape or x.dtype != dtype or tensor_digest(x) != digest:
                raise RuntimeError(f"{path.name}: {name} re-read differs from what was written")


def write_checkpoint(
    src: SourceCheckpoint, plan: list[OutTensor], out_dir: Path, max_shard_size: int
) -> dict[str, str]:
    """Write the plan into ``out_dir`` and return the weight map (tensor name -> file).

    One shard is written as ``model.safetensors``; several as ``model-0000i-of-0000n.safetensors``
    plus ``model.safetensors.index.json``.
    """
    shards = group_shards(plan, max_shard_size)
    n = len(shards)
    names = (
        [SINGLE_NAME] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    )
    weight_map: dict[str, str] = {}
    total = sum(t.nbytes for t in plan)
    with tqdm(total=total, unit="B", unit_scale=True, desc="prune", disable=None) as bar:
        for file, shard in zip(names, shards, strict=True):
            tensors: dict[str, torch.Tensor] = {}
            digests: dict[str, tuple[tuple[int, ...], torch.dtype, str]] = {}
            for t in shard:
                x = _produce(src, t).contiguous()
                _check(t, x)
                tensors[t.name] = x
                digests[t.name] = (t.shape, t.dtype, tensor_digest(x))
                weight_map[t.name] = file
                bar.update(t.nbytes)
            save_file(tensors, str(out_dir / file), metadata={"format": "pt"})
            del tensors
            _verify(out_dir / file, digests)
            logger.info("wrote and verified %s (%d tensors)", file, len(shard))
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return weight_map
