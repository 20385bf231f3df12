"""Triton kernels: the fused SwiGLU MLP shard for the single-expert TP MoE."""

from .fused_mlp_ref import swiglu_mlp_ref

__all__ = ["swiglu_mlp_ref"]
