"""Per-layer per-op profiling of any ``nn.Module`` with torch.profiler (Kineto).

Forward hooks open a ``record_function`` range ``layer::<name>`` around every module
whose qualified name matches ``layer_pattern`` (decoder layers) and ``op::<name>``
around each of their direct children (attention, MLP, norms).  No synchronize per op:
Kineto records CPU ops and GPU kernels; one Chrome trace per rank is written as
``{name}_rank{r}.json`` and analysed by :mod:`trace_analysis`.  The profiler's own
overhead is measured: the same iterations without profiler and hooks, wall time per
iteration (one device synchronize per iteration, none inside).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from .trace_analysis import LAYER_PREFIX, OP_PREFIX, analyze_trace

__all__ = ["ProfileConfig", "label_modules", "profile_model"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class ProfileConfig:
    """What to profile and where the traces go."""

    name: str = field(default="profile", metadata={"help": "trace name: {name}_rank{r}.json"})
    layer_pattern: str = field(
        default=r"(^|\.)layers\.\d+$",
        metadata={"help": "regex on module names selecting decoder layers"},
    )
    label_children: bool = field(
        default=True, metadata={"help": "also label each layer's direct children"}
    )
    warmup: int = field(default=2, metadata={"help": "untimed iterations first"})
    iters: int = field(
        default=5, metadata={"help": "profiled (and unprofiled, for overhead) iterations"}
    )
    out_dir: str = field(default="bench/results/traces", metadata={"help": "trace folder"})
    record_shapes: bool = field(default=True, metadata={"help": "shapes (needed for comm bytes)"})
    profile_memory: bool = field(default=True, metadata={"help": "memory events"})

    def __post_init__(self) -> None:
        try:
            re.compile(self.layer_pattern)
        except re.error as e:
            raise ValueError(f"layer_pattern {self.layer_pattern!r} is not a regex: {e}") from e
        if self.iters < 1 or self.warmup < 0:
            raise ValueError(f"need iters >= 1, warmup >= 0; got {self.iters}, {self.warmup}")
        if not re.fullmatch(r"[\w.-]+", self.name):
            raise ValueError(f"name {self.name!r} must be a plain file-name stem")


@contextlib.contextmanager
def label_modules(
    model: nn.Module, layer_pattern: str, *, label_children: bool = True
) -> Iterator[list[str]]:
    """Register the labelling hooks; yields the labelled layer names; removes hooks on exit."""
    rx = re.compile(layer_pattern)
    targets: list[tuple[str, nn.Module]] = []
    layer_names = []
    for name, mod in model.named_modules():
        if name and rx.search(name):
            layer_names.append(name)
            targets.append((LAYER_PREFIX + name, mod))
            if label_children:
                targets += [(f"{OP_PREFIX}{name}.{c}", m) for c, m in mod.named_children()]
    if not layer_names:
        sample = [n for n, _ in model.named_modules()][:12]
        raise ValueError(
            f"no module name matches layer_pattern {layer_pattern!r}; names look like {sample}"
        )
    handles = []
    for label, mod in targets:
        stack: list[Any] = []

        def pre(_m, _a, label=label, stack=stack) -> None:
            rf = record_function(label)
            rf.__enter__()
            stack.append(rf)

        def post(_m, _a, _o, stack=stack) -> None:
            stack.pop().__exit__(None, None, None)

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield layer_names
    finally:
        for h in handles:
            h.remove()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], Any], n: int, device: torch.device) -> float:
    """Mean wall seconds per iteration, one synchronize per iteration."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
        _sync(device)
    return (time.perf_counter() - t0) / n


def profile_model(
    model: nn.Module,
    step: Callable[[], Any],
    cfg: ProfileConfig,
    *,
    rank: int = 0,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Profile ``cfg.iters`` calls of ``step`` (which runs ``model``); returns the analysis."""
    device = device or next(model.parameters()).device
    for _ in range(cfg.warmup):
        step()
    base_s = _timed(step, cfg.iters, device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out = Path(cfg.out_dir) / f"{cfg.name}_rank{rank}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with label_modules(model, cfg.layer_pattern, label_children=cfg.label_children) as names:
        with profile(
            activities=acts, record_shapes=cfg.record_shapes, profile_memory=cfg.profile_memory
        ) as prof:
            prof_s = _timed(step, cfg.iters, device)
    prof.export_chrome_trace(str(out))
    itemsize = next(model.parameters()).element_size()
    res = analyze_trace(out, default_itemsize=itemsize)
    res.update(
        {
            "trace": str(out),
            "rank": rank,
            "labelled_layers": names,
            "iters": cfg.iters,
            "iter_ms": base_s * 1e3,
            "profiled_iter_ms": prof_s * 1e3,
            "profiler_overhead_pct": (prof_s / base_s - 1) * 100,
        }
    )
    if device.type == "cuda":
        res["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    logger.info(
        "rank %d: %d layers, %.2f ms/iter, profiler overhead %.0f%%, trace %s",
        rank,
        len(names),
        base_s * 1e3,
        res["profiler_overhead_pct"],
        out,
    )
    return res
