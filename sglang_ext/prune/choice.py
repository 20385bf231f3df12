"""Choosing the surviving expert of each MoE layer: a fixed index, the mean, or the most used.

``most-used`` runs the source model on CPU over calibration prompts and counts, per MoE layer,
how often the router puts each expert in its top-k (softmax then top-k, as HF
``Qwen3MoeSparseMoeBlock`` does). The forward streams the model one decoder layer at a time
(HF ``Qwen3MoeDecoderLayer`` built on the meta device, weights read from safetensors, float32),
so memory holds one layer plus the calibration activations, never the whole model.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import SourceCheckpoint
from .config import EXPERT_MEAN, EXPERT_MOST_USED, MoELayout, PruneConfig, moe_layout

__all__ = [
    "DEFAULT_PROMPTS",
    "calibration_prompts",
    "choose_experts",
    "count_router_choices",
]

logger = logging.getLogger(__name__)

DEFAULT_PROMPTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
    "Explain, step by step, how a hash table resolves collisions and what its lookup cost is.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Write a short poem about the sea at night, with the moon and a lonely lighthouse.",
    "Translate to French: I would like a cup of coffee and a croissant, please.",
    "What is 17 multiplied by 23? Show your reasoning before giving the final answer.",
    "In 1969, the Apollo 11 mission landed the first humans on the Moon; describe its crew.",
    "Summarize the main causes of inflation in a modern economy in three sentences.",
)


def calibration_prompts(cfg: PruneConfig) -> list[str]:
    """The prompts of ``--calibration-file`` and ``--calibration-prompts``, else the defaults."""
    prompts: list[str] = []
    if cfg.calibration_file is not None:
        if not cfg.calibration_file.is_file():
            raise FileNotFoundError(f"calibration file {cfg.calibration_file} does not exist")
        prompts += [
            ln.strip() for ln in cfg.calibration_file.read_text().splitlines() if ln.strip()
        ]
        if not prompts:
            raise ValueError(f"calibration file {cfg.calibration_file} holds no non-empty line")
    prompts += [p for p in cfg.calibration_prompts if p.strip()]
    return prompts or list(DEFAULT_PROMPTS)


def _causal_mask(t: int) -> torch.Tensor:
    # mask: [1, 1, T, T], additive (HF eager attention adds it to the scores)
    mask = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)
    return mask[None, None]


@torch.no_grad()
def count_router_choices(
    src: SourceCheckpoint, token_ids: list[list[int]]
) -> dict[int, torch.Tensor]:
    """Per MoE layer, ``counts[e]`` = how many (token, slot) top-k picks went to expert e."""
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import (
        Qwen3MoeDecoderLayer,
        Qwen3MoeRotaryEmbedding,
    )

    hf_cfg = Qwen3MoeConfig.from_dict(src.config)
    hf_cfg._attn_implementation = "eager"
    layout_moe = set(moe_layout(src.config).moe_layers)
    num_experts, top_k = hf_cfg.num_experts, hf_cfg.num_experts_per_tok
    rotary = Qwen3MoeRotaryEmbedding(hf_cfg)
    embed = src.get("model.embed_tokens.weight").float()
    top = max(max(ids) for ids in token_ids)
    if top >= embed.shape[0]:
        raise ValueError(
            f"the source tokenizer produced token id {top}, but the embedding has only "
            f"{embed.shape[0]} rows: SRC's tokenizer does not match its model"
        )
    hidden = [F.embedding(torch.tensor(ids), embed)[None] for ids in token_ids]  # [1, T, D]
    del embed
    aux = []
    for h in hidden:
        pos = torch.arange(h.shape[1])[None]
        aux.append((pos, rotary(h, pos), _causal_mask(h.shape[1])))

    counts: dict[int, torch.Tensor] = {}
    for i in range(max(layout_moe) + 1):
        prefix = f"model.layers.{i}."
        state = {
            n[len(prefix) :]: src.get(n).float() for n in src.weight_map if n.startswith(prefix)
        }
        with torch.device("meta"):
            layer = Qwen3MoeDecoderLayer(hf_cfg, i)
        layer.load_state_dict(state, strict=True, assign=True)
        layer.eval()
        del state
        hook = None
        if i in layout_moe:
            counts[i] = torch.zeros(num_experts, dtype=torch.int64)

            def _count(_mod: Any, _inp: Any, logits: torch.Tensor, i: int = i) -> None:
                probs = F.softmax(logits, dim=-1, dtype=torch.float)  # logits: [T, E]
                chosen = torch.topk(probs, top_k, dim=-1).indices
                counts[i] += torch.bincount(chosen.reshape(-1), minlength=num_experts)

            hook = layer.mlp.gate.register_forward_hook(_count)
        for j, (pos, pe, mask) in enumerate(aux):
            out = layer(hidden[j], attention_mask=mask, position_ids=pos, position_embeddings=pe)
            hidden[j] = out[0] if isinstance(out, tuple) else out
        if hook is not None:
            hook.remove()
        del layer
        logger.info("calibration: layer %d done", i)
    return counts


def _tokenize(src: SourceCheckpoint, prompts: list[str], max_tokens: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((src.root / f).is_file() for f in files):
        raise ValueError(
            f"--expert {EXPERT_MOST_USED} needs the source's tokenizer, but {src.root} has none "
            f"of {', '.join(files)}: add the tokenizer files or pick an expert index"
        )
    try:
        tok = AutoTokenizer.from_pretrained(str(src.root))
    except Exception as e:  # noqa: BLE001 - any load failure means the same thing here
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"--expert {EXPERT_MOST_USED} needs the source's tokenizer, but loading it from "
            f"{src.root} failed ({type(e).__name__}: {first}); fix the tokenizer or pick an index"
        ) from e
    ids = [tok(p, add_special_tokens=False)["input_ids"][:max_tokens] for p in prompts]
    return [x for x in ids if x]


def choose_experts(
    cfg: PruneConfig, src: SourceCheckpoint, layout: MoELayout
) -> tuple[dict[int, int | None], dict[str, Any] | None]:
    """``(choice, calibration_info)``: the kept expert per MoE layer (None = mean)."""
    if cfg.expert == EXPERT_MEAN:
        return {layer: None for layer in layout.moe_layers}, None
    if cfg.expert != EXPERT_MOST_USED:
        assert cfg.expert_index is not None
        if cfg.expert_index >= layout.num_experts:
            raise ValueError(
                f"--expert {cfg.expert_index} is out of range: the model has "
                f"{layout.num_experts} experts (0..{layout.num_experts - 1})"
            )
        return {layer: cfg.expert_index for layer in layout.moe_layers}, None
    prompts = calibration_prompts(cfg)
    token_ids = _tokenize(src, prompts, cfg.calibration_max_tokens)
    if not token_ids:
        raise ValueError("the calibration prompts tokenize to nothing: give non-empty prompts")
    counts = count_router_choices(src, token_ids)
    # argmax returns the first maximum: ties go to the lowest expert index.
    choice = {layer: int(torch.argmax(counts[layer])) for layer in layout.moe_layers}
    info = {
        "num_prompts": len(token_ids),
        "num_tokens": sum(len(x) for x in token_ids),
        "top_k": layout.top_k,
        "counts": {str(layer): counts[layer].tolist() for layer in layout.moe_layers},
    }
    return choice, info
