"""A small pure-torch decoder (Qwen/Llama shaped) for profiling where transformers is absent.

Module names follow HF (``model.layers.{i}.self_attn``, ``.mlp``, ``.input_layernorm``)
so the same ``layer_pattern`` selects its layers.  An optional ``group`` all-reduces each
layer's output, standing in for tensor-parallel communication.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["ToyDecoder"]


class _Attn(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(d, 3 * d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        b, t, d = x.shape
        q, k, v = self.qkv_proj(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.o_proj(o.transpose(1, 2).reshape(b, t, d))


class _MLP(nn.Module):
    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(d, 2 * ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(g) * u)


class _Layer(nn.Module):
    def __init__(self, d: int, ff: int, heads: int, group: dist.ProcessGroup | None) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(d)
        self.self_attn = _Attn(d, heads)
        self.post_attention_layernorm = nn.RMSNorm(d)
        self.mlp = _MLP(d, ff)
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        x = x + self.mlp(self.post_attention_layernorm(x))
        if self.group is not None:
            dist.all_reduce(x, group=self.group)
        return x


class _Body(nn.Module):
    def __init__(
        self,
        vocab: int,
        d: int,
        ff: int,
        heads: int,
        n_layers: int,
        group: dist.ProcessGroup | None,
    ) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(_Layer(d, ff, heads, group) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d)


class ToyDecoder(nn.Module):
    def __init__(
        self,
        *,
        vocab: int = 1024,
        hidden: int = 256,
        ffn: int = 1024,
        heads: int = 4,
        layers: int = 4,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.model = _Body(vocab, hidden, ffn, heads, layers, group)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # ids: [B, T]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))
