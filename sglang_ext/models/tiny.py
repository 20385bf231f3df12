"""The embedded default model: a tiny Qwen3-MoE with one expert, built locally.

Random weights (fixed seed) and the offline Qwen3-style tokenizer of
``sglang_ext.presets.tokenizer``; float32, so that CPU serving can be compared
token for token with HF transformers. Cached under ``$SGLANG_EXT_CACHE/models``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from sglang_ext.cache import build_once, cache_dir

__all__ = ["TinyMoEConfig", "build_tiny_moe", "default_model_path"]

logger = logging.getLogger(__name__)
_BUILDER_VERSION = 1


@dataclass(kw_only=True, slots=True)
class TinyMoEConfig:
    """Shapes of a tiny Qwen3-MoE; defaults are the server's embedded default."""

    num_experts: int = 1
    """Routed experts per MoE layer (1: the single-expert model)."""
    num_experts_per_tok: int = 1
    """Router top-k."""
    hidden_size: int = 128
    """Model width."""
    moe_intermediate_size: int = 128
    """Expert MLP width (divisible by TP 2, 4 and 8)."""
    num_hidden_layers: int = 2
    """Decoder layers, all MoE."""
    num_attention_heads: int = 4
    """Query heads."""
    num_key_value_heads: int = 4
    """KV heads (divisible by TP 2 and 4)."""
    head_dim: int = 32
    """Per-head width."""
    tokenizer_vocab: int = 1000
    """Ordinary tokens of the local tokenizer (26 Qwen3 added tokens follow)."""
    initializer_range: float = 0.1
    """Weight init std: larger than HF's 0.02 so greedy choices are decisive."""
    seed: int = 0
    """Weights seed."""

    def __post_init__(self):
        if self.num_experts < 1 or not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"need 1 <= num_experts_per_tok ({self.num_experts_per_tok}) <= "
                f"num_experts ({self.num_experts})"
            )

    def key(self) -> str:
        parts = [f"v{_BUILDER_VERSION}", f"e{self.num_experts}", f"h{self.hidden_size}"]
        parts += [f"l{self.num_hidden_layers}", f"s{self.seed}"]
        return "tiny-qwen3-moe-" + "-".join(parts)


def build_tiny_moe(dst: str | Path, cfg: TinyMoEConfig | None = None) -> Path:
    """Write the model (config, safetensors, tokenizer) into ``dst`` (must not exist)."""
    import torch
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    from sglang_ext.presets.tokenizer import build_tokenizer, special_token_ids

    cfg = cfg or TinyMoEConfig()
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} is not empty; pick a new directory")
    build_tokenizer(dst, vocab_size=cfg.tokenizer_vocab)
    ids = special_token_ids(cfg.tokenizer_vocab)
    vocab = cfg.tokenizer_vocab + 26
    vocab += -vocab % 64  # pad the embedding like real checkpoints do
    hf_cfg = Qwen3MoeConfig(
        vocab_size=vocab,
        hidden_size=cfg.hidden_size,
        intermediate_size=2 * cfg.hidden_size,
        moe_intermediate_size=cfg.moe_intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        num_experts=cfg.num_experts,
        num_experts_per_tok=cfg.num_experts_per_tok,
        norm_topk_prob=True,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        initializer_range=cfg.initializer_range,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        torch_dtype="float32",
    )
    torch.manual_seed(cfg.seed)
    model = Qwen3MoeForCausalLM(hf_cfg).to(torch.float32).eval()
    model.save_pretrained(dst, safe_serialization=True)
    (dst / "sglang_ext_model.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return dst


def default_model_path(cfg: TinyMoEConfig | None = None) -> Path:
    """The cached embedded default (built on first use, atomically)."""
    cfg = cfg or TinyMoEConfig()

    def build(out: Path) -> None:
        logger.info("building the embedded default model (%s)", cfg.key())
        build_tiny_moe(out, cfg)

    return build_once(cache_dir() / "models" / cfg.key(), build, done="config.json")
