"""Prune a Qwen3-MoE checkpoint to one expert per MoE layer: the entry point.

Order of work: check SRC and DST (nothing is written if either is wrong), read the config and
check the expert tensors, choose the experts, then write everything into a temporary directory
next to DST and rename it into place. Any failure removes the temporary directory, so DST is
either complete or absent. SRC is only ever opened for reading.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .checkpoint import INDEX_NAME, WEIGHT_SUFFIXES, SourceCheckpoint
from .choice import choose_experts
from .config import (
    EXPERT_MEAN,
    EXPERT_MOST_USED,
    PruneConfig,
    moe_layout,
    parse_size,
    single_expert_config,
)
from .plan import build_plan, check_experts
from .writer import write_checkpoint

__all__ = ["INFO_NAME", "check_paths", "prune"]

logger = logging.getLogger(__name__)

INFO_NAME = "prune_info.json"
_SKIP_NAMES = {"config.json", INDEX_NAME, INFO_NAME, ".git", ".cache", ".gitattributes"}


def check_paths(src: Path, dst: Path) -> tuple[Path, Path]:
    """Resolve SRC and DST and refuse any pair that could write into SRC or clobber data."""
    if not src.exists():
        raise FileNotFoundError(f"source checkpoint {src} does not exist: check SRC")
    if not src.is_dir():
        raise NotADirectoryError(f"source {src} is not a directory: SRC must be a model directory")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r:
        raise ValueError(f"DST {dst} is SRC: choose a new directory outside the source")
    if dst_r.is_relative_to(src_r):
        raise ValueError(f"DST {dst} is inside SRC {src}: choose a directory outside the source")
    if src_r.is_relative_to(dst_r):
        raise ValueError(f"SRC {src} is inside DST {dst}: choose a DST that does not contain SRC")
    if dst_r.exists():
        if not dst_r.is_dir():
            raise FileExistsError(f"DST {dst} exists and is a file: choose a new directory")
        if any(dst_r.iterdir()):
            raise FileExistsError(f"DST {dst} is not empty: choose a new or empty directory")
    return src_r, dst_r


def _extra_files(src_root: Path) -> list[Path]:
    """Non-weight files and folders to copy (tokenizer, generation config, README, ...)."""
    return [
        p
        for p in sorted(src_root.iterdir())
        if p.name not in _SKIP_NAMES
        and not p.name.endswith(WEIGHT_SUFFIXES)
        and not p.name.endswith(".index.json")
    ]


def _copy(path: Path, into: Path) -> None:
    if path.is_dir():  # no weights from sub-folders (e.g. original/): they would be stale
        ignore = shutil.ignore_patterns(*(f"*{s}" for s in WEIGHT_SUFFIXES), ".git", ".cache")
        shutil.copytree(path, into / path.name, symlinks=False, ignore=ignore)
    else:
        shutil.copy2(path, into / path.name)  # follows symlinks (HF cache snapshots)


def _finish(tmp: Path, dst: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it 0700
    if dst.exists():
        dst.rmdir()  # checked empty in check_paths
    os.replace(tmp, dst)


def prune(cfg: PruneConfig) -> Path:
    """Write the one-expert checkpoint described by ``cfg`` and return its directory."""
    src_root, dst = check_paths(cfg.src, cfg.dst)
    with SourceCheckpoint(src_root) as src:
        new_config = single_expert_config(src.config)
        layout = moe_layout(src.config)
        if cfg.expert_index is not None and cfg.expert_index >= layout.num_experts:
            raise ValueError(
                f"--expert {cfg.expert_index} is out of range: the model has "
                f"{layout.num_experts} experts (0..{layout.num_experts - 1})"
            )
        check_experts(src, layout, mean=cfg.expert == EXPERT_MEAN)
        choice, calibration = choose_experts(cfg, src, layout)
        plan = build_plan(src, layout, choice)
        extras = _extra_files(src_root)
        need = sum(t.nbytes for t in plan)
        dst.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dst.parent).free
        if need > free:
            raise OSError(
                f"DST needs about {need / 1e9:.2f} GB but {dst.parent} has {free / 1e9:.2f} GB free"
            )

        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
        try:
            for p in extras:
                _copy(p, tmp)
            (tmp / "config.json").write_text(json.dumps(new_config, indent=2) + "\n")
            weight_map = write_checkpoint(src, plan, tmp, parse_size(cfg.max_shard_size))
            info = _info(cfg, src_root, src.config, layout.moe_layers, choice, calibration)
            info["tensors_written"] = len(weight_map)
            info["bytes_written"] = need
            info["files"] = sorted(set(weight_map.values()))
            (tmp / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
            _finish(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("pruned %s -> %s (%s)", src_root, dst, cfg.expert)
    return dst


def _info(
    cfg: PruneConfig,
    src_root: Path,
    src_config: dict[str, Any],
    moe_layers: tuple[int, ...],
    choice: dict[int, int | None],
    calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    method = cfg.expert if cfg.expert in (EXPERT_MEAN, EXPERT_MOST_USED) else "index"
    return {
        "tool": "sglang_ext.prune",
        "source": str(src_root),
        "method": method,
        "expert_arg": cfg.expert,
        "original": {
            k: src_config.get(k) for k in ("num_experts", "num_experts_per_tok", "norm_topk_prob")
        },
        "moe_layers": list(moe_layers),
        "experts_per_layer": {
            str(layer): (EXPERT_MEAN if e is None else e) for layer, e in sorted(choice.items())
        },
        "calibration": calibration,
    }
