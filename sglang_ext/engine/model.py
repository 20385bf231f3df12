"""A small Qwen3 / Qwen3-MoE decoder in plain torch, with a per-layer KV cache.

Weight names follow the HF checkpoints (``model.layers.{i}.self_attn.q_proj.weight`` ...),
so a ``*.safetensors`` checkpoint loads with ``load_state_dict``.  Semantics follow HF
transformers 4.52: per-head RMSNorm on q and k before RoPE, ``rotate_half`` RoPE with
``rope_theta``, GQA, optional tied embeddings, and MoE layers chosen by
``decoder_sparse_step`` / ``mlp_only_layers`` with softmax -> top-k routing.

Fused ops (``Qwen3ForCausalLM.set_fused_ops``, on by default on CUDA): the RMSNorms (hidden
and per-head q/k), RoPE and the dense MLP's SiLU-and-mul run the project's Triton kernels
(``sglang_ext.kernels.norm`` / ``rope`` / ``activation``: float32 inside, one rounding);
off (CPU), plain torch in HF's order of operations. The one-expert MoE layer is always the
project's ``SingleExpertMoE`` (its own kernel dispatch).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sglang_ext.engine.attention import attend
from sglang_ext.layers.single_expert_moe import SingleExpertMoE

__all__ = [
    "ModelArgs",
    "DUMMY_PRESETS",
    "KVCache",
    "Qwen3ForCausalLM",
    "load_model",
    "rope_cos_sin",
    "rope_cos_sin_cache",
]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class ModelArgs:
    """The HF config fields this decoder uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    num_experts: int = 0
    num_experts_per_tok: int = 1
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False
    decoder_sparse_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.num_experts and not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok={self.num_experts_per_tok} not in 1..{self.num_experts}"
            )

    def is_moe_layer(self, i: int) -> bool:
        """HF Qwen3MoeDecoderLayer's rule."""
        return (
            i not in self.mlp_only_layers
            and self.num_experts > 0
            and (i + 1) % self.decoder_sparse_step == 0
        )

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> ModelArgs:
        mt = cfg.get("model_type")
        if mt not in ("qwen3", "qwen3_moe"):
            raise ValueError(f"model_type {mt!r} unsupported; this engine runs qwen3 and qwen3_moe")
        rs = cfg.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) not in (None, "default"):
            raise ValueError(f"rope_scaling {rs} unsupported; only default RoPE is implemented")
        if cfg.get("use_sliding_window"):
            raise ValueError("use_sliding_window=True unsupported; this engine does full attention")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in cfg.items() if k in names and v is not None}
        kw.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
        kw["mlp_only_layers"] = tuple(cfg.get("mlp_only_layers") or ())
        if mt == "qwen3":
            kw["num_experts"] = 0
        return cls(**kw)


# The CPU-sized bench shape (not a real model; the real shapes come from sglang_ext.presets).
_CPU_SHAPES: dict[str, dict[str, Any]] = {
    "tiny-moe-1e": dict(
        vocab_size=4096,
        hidden_size=256,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=512,
        moe_intermediate_size=512,
        num_experts=1,
        num_experts_per_tok=1,
    ),
}


def _preset_shapes() -> dict[str, dict[str, Any]]:
    """ModelArgs fields of every random-weight shape: the real one-expert presets
    (``sglang_ext.presets``, the one definition of the Qwen3 shapes) and the CPU bench shape."""
    from sglang_ext.presets import PRESETS, preset_config

    names = {f.name for f in dataclasses.fields(ModelArgs)}
    out = {}
    for name in PRESETS:
        args = ModelArgs.from_hf_config(preset_config(name))
        out[name] = {k: v for k, v in dataclasses.asdict(args).items() if k in names}
    return {**out, **_CPU_SHAPES}


DUMMY_PRESETS: dict[str, dict[str, Any]] = _preset_shapes()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.fused = False  # the Triton kernel (set_fused_ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            from sglang_ext.kernels.norm import rmsnorm

            return rmsnorm(x, self.weight, self.eps)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_cos_sin(args: ModelArgs, positions: torch.Tensor, dtype: torch.dtype):
    """positions: [T] -> cos, sin: [T, d] (HF default RoPE, computed in float32)."""
    d = args.head_dim
    inv = 1.0 / (
        args.rope_theta
        ** (torch.arange(0, d, 2, dtype=torch.int64, device=positions.device).float() / d)
    )
    freqs = positions.float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rope_cos_sin_cache(args: ModelArgs, positions: torch.Tensor) -> torch.Tensor:
    """positions: [T] -> float32 [T, d] rows ``cos | sin`` of half width (the Triton rope
    kernel's cache layout, neox pairs ``i, i + d/2`` = HF's ``rotate_half``)."""
    d = args.head_dim
    inv = 1.0 / (
        args.rope_theta
        ** (torch.arange(0, d, 2, dtype=torch.int64, device=positions.device).float() / d)
    )
    freqs = positions.float()[:, None] * inv[None, :]
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


@dataclass(slots=True)
class KVCache:
    """One layer's cache, flashinfer NHD layout. k, v: [max_len, Hkv, d]."""

    k: torch.Tensor
    v: torch.Tensor


class Attention(nn.Module):
    def __init__(self, a: ModelArgs) -> None:
        super().__init__()
        H, Hkv, d, D, b = (
            a.num_attention_heads,
            a.num_key_value_heads,
            a.head_dim,
            a.hidden_size,
            a.attention_bias,
        )
        self.H, self.Hkv, self.d = H, Hkv, d
        self.q_proj = nn.Linear(D, H * d, bias=b)
        self.k_proj = nn.Linear(D, Hkv * d, bias=b)
        self.v_proj = nn.Linear(D, Hkv * d, bias=b)
        self.o_proj = nn.Linear(H * d, D, bias=b)
        self.q_norm = RMSNorm(d, a.rms_norm_eps)
        self.k_norm = RMSNorm(d, a.rms_norm_eps)
        self.fused = False  # Triton rope (set_fused_ops)

    def forward(self, x, rope, cache: KVCache, start: int, backend: str) -> torch.Tensor:
        """rope: ``(cos, sin)`` [T, d] each (torch), or ``(index, cos_sin)`` (fused: [T] rows
        of the float32 [T, d] cache of :func:`rope_cos_sin_cache`)."""
        T = x.shape[0]  # x: [T, D]
        q = self.q_norm(self.q_proj(x).view(T, self.H, self.d))  # [T, H, d]
        k = self.k_norm(self.k_proj(x).view(T, self.Hkv, self.d))  # [T, Hkv, d]
        v = self.v_proj(x).view(T, self.Hkv, self.d)
        if self.fused:
            from sglang_ext.kernels.rope import apply_rope_inplace

            apply_rope_inplace(rope[0], q, k, self.d, rope[1], True)
        else:
            c, s = rope[0][:, None, :], rope[1][:, None, :]
            q = q * c + _rotate_half(q) * s
            k = k * c + _rotate_half(k) * s
        cache.k[start : start + T] = k
        cache.v[start : start + T] = v
        end = start + T
        o = attend(backend, q, cache.k[:end], cache.v[:end], start)  # [T, H, d]
        return self.o_proj(o.reshape(T, self.H * self.d))


class MLP(nn.Module):
    def __init__(self, D: int, inter: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(D, inter, bias=False)
        self.up_proj = nn.Linear(D, inter, bias=False)
        self.down_proj = nn.Linear(inter, D, bias=False)
        self.fused = False  # one GEMM for gate|up and the Triton SiLU-and-mul (set_fused_ops)
        self._w13: tuple[tuple[int, ...], torch.Tensor] | None = None

    def _gate_up_weight(self) -> torch.Tensor:
        """[2I, D] = gate_proj | up_proj, rebuilt when either weight changes (load_state_dict)."""
        g, u = self.gate_proj.weight, self.up_proj.weight
        key = (g._version, u._version, g.data_ptr(), u.data_ptr())
        if self._w13 is None or self._w13[0] != key:
            self._w13 = (key, torch.cat((g, u)))
        return self._w13[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            from sglang_ext.kernels.activation import gated_act

            gu = F.linear(x, self._gate_up_weight())  # [T, 2I]
            h = torch.empty(gu.shape[:-1] + (gu.shape[-1] // 2,), dtype=x.dtype, device=x.device)
            return self.down_proj(gated_act(gu, h, "silu"))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


# HF expert projection -> SingleExpertMoE shard id (w1, w3: rows of w13_weight; w2: w2_weight)
_HF_EXPERT = (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2"))


class OneExpertMoE(nn.Module):
    """HF Qwen3MoeSparseMoeBlock with one expert, computed by the project's ``SingleExpertMoE``
    (tp mode at TP 1, so its measured kernel dispatch): softmax over one router logit is exactly
    1, so the block is the expert's SwiGLU MLP and the router is not computed.

    Checkpoint names stay HF's (``gate.weight``, ``experts.0.{gate,up,down}_proj.weight``):
    loading maps them into ``experts.w13_weight`` / ``experts.w2_weight`` through
    ``SingleExpertMoE.weight_loader`` (as sglang loads them); ``state_dict`` maps them back.
    """

    def __init__(self, a: ModelArgs) -> None:
        super().__init__()
        if a.num_experts != 1:
            raise ValueError(f"OneExpertMoE needs num_experts=1, got {a.num_experts}")
        self.gate = nn.Linear(a.hidden_size, 1, bias=False)  # kept for the checkpoint only
        self.experts = SingleExpertMoE(
            hidden_size=a.hidden_size,
            intermediate_size=a.moe_intermediate_size,
            mode="tp",
            rank=0,
            world_size=1,
        )
        self.register_load_state_dict_pre_hook(OneExpertMoE._load_hf_names)
        self.register_state_dict_post_hook(OneExpertMoE._save_hf_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, D]
        return self.experts(x)

    @staticmethod
    def _load_hf_names(module: OneExpertMoE, state: dict, prefix: str, *_: Any) -> None:
        keys = {name: f"{prefix}experts.0.{name}.weight" for name, _ in _HF_EXPERT}
        present = [k for k in keys.values() if k in state]
        if not present:  # native names, or none: load_state_dict reports what is missing
            return
        if len(present) < len(keys):
            raise ValueError(
                f"checkpoint has {present} but not {sorted(set(keys.values()) - set(present))}: "
                "an expert needs gate_proj, up_proj and down_proj"
            )
        e = module.experts
        for name, shard in _HF_EXPERT:
            param = e.w2_weight if shard == "w2" else e.w13_weight
            e.weight_loader(param, state.pop(keys[name]), keys[name], shard, 0)
        state[f"{prefix}experts.w13_weight"] = e.w13_weight.detach()
        state[f"{prefix}experts.w2_weight"] = e.w2_weight.detach()

    @staticmethod
    def _save_hf_names(module: OneExpertMoE, state: dict, prefix: str, *_: Any) -> None:
        w13 = state.pop(f"{prefix}experts.w13_weight")
        w2 = state.pop(f"{prefix}experts.w2_weight")
        inter = w2.shape[1]  # the inverse of weight_loader at TP 1; clones: no shared storage
        state[f"{prefix}experts.0.gate_proj.weight"] = w13[:inter].clone()
        state[f"{prefix}experts.0.up_proj.weight"] = w13[inter:].clone()
        state[f"{prefix}experts.0.down_proj.weight"] = w2.clone()


class SparseMoE(nn.Module):
    """HF Qwen3MoeSparseMoeBlock: softmax over experts, top-k, optional renormalisation."""

    def __init__(self, a: ModelArgs) -> None:
        super().__init__()
        self.top_k, self.norm_topk_prob = a.num_experts_per_tok, a.norm_topk_prob
        self.gate = nn.Linear(a.hidden_size, a.num_experts, bias=False)
        self.experts = nn.ModuleList(
            MLP(a.hidden_size, a.moe_intermediate_size) for _ in range(a.num_experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, D]
        w = F.softmax(self.gate(x), dim=-1, dtype=torch.float)
        w, idx = torch.topk(w, self.top_k, dim=-1)  # [T, k]
        if self.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        w = w.to(x.dtype)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(idx == e)
            if tok.numel():
                out.index_add_(0, tok, expert(x[tok]) * w[tok, slot, None])
        return out


class DecoderLayer(nn.Module):
    def __init__(self, a: ModelArgs, i: int) -> None:
        super().__init__()
        self.self_attn = Attention(a)
        if not a.is_moe_layer(i):
            self.mlp: nn.Module = MLP(a.hidden_size, a.intermediate_size)
        elif a.num_experts == 1:
            self.mlp = OneExpertMoE(a)
        else:
            self.mlp = SparseMoE(a)
        self.input_layernorm = RMSNorm(a.hidden_size, a.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(a.hidden_size, a.rms_norm_eps)

    def forward(self, x, rope, cache: KVCache, start: int, backend: str) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, cache, start, backend)
        return x + self.mlp(self.post_attention_layernorm(x))


class Embedding(nn.Module):
    """nn.Embedding without the init (a normal_ on the meta device costs seconds of import)."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class _Body(nn.Module):
    def __init__(self, a: ModelArgs) -> None:
        super().__init__()
        self.embed_tokens = Embedding(a.vocab_size, a.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(a, i) for i in range(a.num_hidden_layers))
        self.norm = RMSNorm(a.hidden_size, a.rms_norm_eps)


class Qwen3ForCausalLM(nn.Module):
    """Batch-1 decoder; callers run any contiguous slice of layers on a chunk."""

    def __init__(self, a: ModelArgs) -> None:
        super().__init__()
        self.args = a
        self.fused_ops = False
        self.model = _Body(a)
        self.lm_head = nn.Linear(a.hidden_size, a.vocab_size, bias=False)
        if a.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def set_fused_ops(self, on: bool) -> Qwen3ForCausalLM:
        """Triton norms / rope / SiLU-and-mul (CUDA tensors) or plain torch; returns self."""
        if on:
            import sglang_ext.kernels.activation  # noqa: F401  (a clear ImportError now)
            import sglang_ext.kernels.norm  # noqa: F401
            import sglang_ext.kernels.rope  # noqa: F401
        self.fused_ops = on
        for mod in self.modules():
            if isinstance(mod, RMSNorm | Attention | MLP):
                mod.fused = on
        return self

    def new_cache(self, max_len: int) -> list[KVCache]:
        a, p = self.args, self.lm_head.weight
        shape = (max_len, a.num_key_value_heads, a.head_dim)
        return [
            KVCache(
                torch.zeros(shape, dtype=p.dtype, device=p.device),
                torch.zeros(shape, dtype=p.dtype, device=p.device),
            )
            for _ in range(a.num_hidden_layers)
        ]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(ids)  # [T] -> [T, D]

    def run_layers(
        self, x, layers: range, caches: list[KVCache], start: int, backend: str
    ) -> torch.Tensor:
        """Run ``layers`` on x: [T, D] whose first token is at position ``start``."""
        pos = torch.arange(start, start + x.shape[0], device=x.device)
        if self.fused_ops:
            rope = (torch.arange(x.shape[0], device=x.device), rope_cos_sin_cache(self.args, pos))
        else:
            rope = rope_cos_sin(self.args, pos, x.dtype)
        for i in layers:
            x = self.model.layers[i](x, rope, caches[i], start, backend)
        return x

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model.norm(h))  # [T, D] -> [T, V]


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ValueError(
            f"no *.safetensors under {path}; save the model with save_pretrained(safe_serialization=True)"
        )
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def load_model(
    model_path: str | None,
    *,
    dummy_preset: str | None = None,
    num_layers: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    fused_ops: bool | None = None,
) -> Qwen3ForCausalLM:
    """Load an HF checkpoint, or build a preset shape with random weights (same on every rank).

    ``fused_ops``: the Triton norm / rope / activation kernels (None: on CUDA only)."""
    if (model_path is None) == (dummy_preset is None):
        raise ValueError("give exactly one of --model-path and --dummy-preset")
    if model_path is not None:
        path = Path(model_path)
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise ValueError(f"{cfg_file} not found; --model-path must be an HF checkpoint folder")
        args = ModelArgs.from_hf_config(json.loads(cfg_file.read_text()))
    else:
        if dummy_preset not in DUMMY_PRESETS:
            raise ValueError(
                f"--dummy-preset {dummy_preset!r} unknown; choose one of {sorted(DUMMY_PRESETS)}"
            )
        args = ModelArgs(**DUMMY_PRESETS[dummy_preset])
    if num_layers is not None:
        if not 1 <= num_layers <= args.num_hidden_layers:
            raise ValueError(f"--num-layers {num_layers} not in 1..{args.num_hidden_layers}")
        args.num_hidden_layers = num_layers
    if torch.device(device).type == "cuda":  # big shapes: allocate once, no init kernels
        with torch.device("meta"):
            model = Qwen3ForCausalLM(args)
        model = model.to(dtype).to_empty(device=device)
    else:  # the meta path imports torch's symbolic-shape machinery (~1s a process)
        model = Qwen3ForCausalLM(args).to(dtype)
    if args.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    if model_path is not None:
        state = _checkpoint_state(Path(model_path))
        if args.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        state = {k: v for k, v in state.items() if not _beyond(k, args.num_hidden_layers)}
        res = model.load_state_dict(state, strict=False)
        missing = [
            k for k in res.missing_keys if not (args.tie_word_embeddings and k == "lm_head.weight")
        ]
        if missing or res.unexpected_keys:
            raise ValueError(
                f"checkpoint {model_path} does not match: missing {missing[:8]}, unexpected {res.unexpected_keys[:8]}"
            )
    else:
        g = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02, generator=g)
    if fused_ops is None:
        fused_ops = torch.device(device).type == "cuda"
    return model.set_fused_ops(fused_ops).eval().requires_grad_(False)


def _beyond(key: str, n_layers: int) -> bool:
    parts = key.split(".")
    return len(parts) > 2 and parts[1] == "layers" and int(parts[2]) >= n_layers
