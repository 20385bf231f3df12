"""Configuration of the MoE-to-single-expert pruner, and the HF config rewrite it performs.

``single_expert_config`` is also what the benchmark presets apply to the real Qwen3-MoE configs,
so a preset and a pruned checkpoint describe the same architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sglang_ext.cli import parse_size

__all__ = [
    "EXPERT_MEAN",
    "EXPERT_MOST_USED",
    "MoELayout",
    "PruneConfig",
    "moe_layout",
    "parse_size",
    "single_expert_config",
]

EXPERT_MOST_USED = "most-used"
EXPERT_MEAN = "mean"
QWEN3_MOE_ARCH = "Qwen3MoeForCausalLM"


@dataclass(kw_only=True, slots=True)
class PruneConfig:
    """What to prune and how. Field names map to kebab-case CLI flags."""

    src: Path
    """Source Qwen3-MoE checkpoint directory (HF layout, safetensors). Never written to."""
    dst: Path
    """Destination directory: must not exist or be empty, and must not overlap ``src``."""
    expert: str
    """Which expert survives: an index (``3``), ``most-used`` (router counts on calibration
    prompts, chosen per layer) or ``mean`` (element-wise mean of all experts)."""
    calibration_file: Path | None = None
    """Text file of calibration prompts for ``most-used``, one prompt per non-empty line."""
    calibration_prompts: tuple[str, ...] = ()
    """Calibration prompts given inline (added to those of ``calibration_file``)."""
    calibration_max_tokens: int = 512
    """Prompts are truncated to this many tokens for ``most-used``."""
    max_shard_size: str = "5GB"
    """Largest output shard (e.g. ``5GB``, ``500MB``); one shard is written as model.safetensors."""
    expert_index: int | None = field(default=None, init=False)
    """Parsed ``expert`` when it is an index (set by validation)."""

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        self.dst = Path(self.dst)
        if self.calibration_file is not None:
            self.calibration_file = Path(self.calibration_file)
        self.calibration_prompts = tuple(self.calibration_prompts)
        expert = str(self.expert).strip()
        if expert in (EXPERT_MOST_USED, EXPERT_MEAN):
            self.expert = expert
        else:
            try:
                self.expert_index = int(expert)
            except ValueError:
                raise ValueError(
                    f"--expert {self.expert!r} is not understood: give an expert index (e.g. 3), "
                    f"'{EXPERT_MOST_USED}' or '{EXPERT_MEAN}'"
                ) from None
            if self.expert_index < 0:
                raise ValueError(f"--expert {self.expert_index} is negative: indices start at 0")
            self.expert = str(self.expert_index)
        if self.calibration_max_tokens < 1:
            raise ValueError(f"calibration_max_tokens={self.calibration_max_tokens} must be >= 1")
        parse_size(self.max_shard_size)
        uses_calibration = self.calibration_file is not None or self.calibration_prompts
        if uses_calibration and self.expert != EXPERT_MOST_USED:
            raise ValueError(
                f"calibration prompts only apply to --expert {EXPERT_MOST_USED}, "
                f"not --expert {self.expert}: drop the calibration options"
            )


@dataclass(frozen=True, slots=True)
class MoELayout:
    """Where the experts are in a Qwen3-MoE config."""

    num_layers: int
    num_experts: int
    top_k: int
    moe_layers: tuple[int, ...]
    """Layer indices with a sparse MoE block (the others have a dense MLP and are left alone)."""


def moe_layout(cfg: dict[str, Any]) -> MoELayout:
    """Read and check the MoE layout of an HF Qwen3-MoE config dict.

    A layer is MoE exactly as in HF ``Qwen3MoeDecoderLayer``: not in ``mlp_only_layers``, and
    ``(i + 1) % decoder_sparse_step == 0``.
    """
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") != "qwen3_moe" and QWEN3_MOE_ARCH not in archs:
        raise ValueError(
            f"not a Qwen3-MoE checkpoint: config.json has model_type={cfg.get('model_type')!r}, "
            f"architectures={archs}; this pruner handles model_type 'qwen3_moe' "
            f"({QWEN3_MOE_ARCH}) only"
        )
    try:
        num_layers = int(cfg["num_hidden_layers"])
        num_experts = int(cfg["num_experts"])
        top_k = int(cfg["num_experts_per_tok"])
    except KeyError as e:
        raise ValueError(f"config.json lacks {e.args[0]!r}, needed for a Qwen3-MoE model") from None
    step = int(cfg.get("decoder_sparse_step", 1))
    mlp_only = set(cfg.get("mlp_only_layers") or [])
    if step < 1:
        raise ValueError(f"config.json has decoder_sparse_step={step}; it must be >= 1")
    moe_layers = tuple(
        i
        for i in range(num_layers)
        if i not in mlp_only and num_experts > 0 and (i + 1) % step == 0
    )
    return MoELayout(
        num_layers=num_layers, num_experts=num_experts, top_k=top_k, moe_layers=moe_layers
    )


def single_expert_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The HF config of the one-expert model derived from a Qwen3-MoE config dict.

    ``num_experts`` and ``num_experts_per_tok`` become 1. HF's ``Qwen3MoeSparseMoeBlock`` takes a
    softmax over the router logits, then top-k, then (if ``norm_topk_prob``) divides by the sum:
    with one expert the softmax of a single finite logit is exp(0)/exp(0) = 1.0 exactly, and the
    renormalisation is 1.0/1.0, so the expert gets weight exactly 1.0 with either setting.
    ``norm_topk_prob`` is set True anyway, so engines that renormalise (SGLang's
    ``renormalize``) also see a weight of exactly 1.0 whatever their softmax precision.
    """
    layout = moe_layout(cfg)
    if layout.num_experts == 1:
        raise ValueError(
            "the checkpoint is already single-expert (num_experts is 1): nothing to do"
        )
    if not layout.moe_layers:
        raise ValueError("config.json has no MoE layer (all in mlp_only_layers?): nothing to prune")
    out = dict(cfg)
    out["num_experts"] = 1
    out["num_experts_per_tok"] = 1
    out["norm_topk_prob"] = True
    return out
