"""What every server rank needs to know about the single-expert layer, as one typed object.

sglang spawns its ranks itself, so the environment is the only channel from the launcher to
them. The launcher builds a :class:`SingleExpertConfig` once (flags and user-facing
environment variables, :meth:`SingleExpertConfig.from_user_env`) and writes it as JSON into
one variable, ``SGLANG_EXT_CONFIG`` (:meth:`SingleExpertConfig.export`). Every rank reads it
once through :func:`rank_config` (cached). A process that no launcher of ours prepared (e.g.
``python -m sglang.bench_one_batch`` with the overlay on ``PYTHONPATH``) falls back to the
user-facing variables, so ``SINGLE_EXPERT_MODE=dp`` still works there.

User-facing variables (read only by :meth:`SingleExpertConfig.from_user_env`):

- ``SINGLE_EXPERT_MODE``: ``tp`` or ``dp`` (``--single-expert-mode`` wins);
- ``SINGLE_EXPERT_DP_ROUTING``: ``random`` (default) or ``round_robin``;
- ``SGLANG_EXT_FUSED_MLP``: ``0``/``false``/``off``/``no`` turns the measured fused-MLP
  dispatch off (cuBLAS everywhere); ``1``/``true``/``on``/``yes`` or unset keeps it.
- ``SGLANG_EXT_GRAPH_METADATA``: ``0`` (same spellings) leaves the Triton attention's decode
  metadata to sglang's host-side replay preparation (patch 0021 computes it inside the CUDA
  graph); ``1`` or unset keeps it in the graph.
- ``SGLANG_EXT_FUSED_NORM``: ``0`` (same spellings) keeps the decoder layer's two RMSNorms
  as kernels of their own; ``1`` or unset runs them inside the linears after them at decode
  on one GPU (patch 0023, ``sglang_ext.serving.fused_layer``).
- ``SGLANG_EXT_FUSED_ATTENTION``: ``0`` (same spellings) keeps the Qwen3 attention's q/k norm
  + rotary + KV write, its decode attention and the merge of its splits as three kernels;
  ``1`` or unset runs them as one at decode with the Triton backend (patch 0024,
  ``sglang_ext.kernels.decode_attention``).
- ``SGLANG_EXT_FUSED_INPUTS``: ``0`` (same spellings) keeps sglang's own small tensor ops
  for a decode step's bookkeeping (the new KV slots, the lengths, the graph's inputs); ``1``
  or unset runs them as one launch in ``prepare_for_decode`` and one in the graph replay's
  preparation on CUDA (patch 0025, ``sglang_ext.serving.decode_inputs``).
- ``SGLANG_EXT_PDL``: ``1`` (same spellings) launches our Triton kernels with programmatic
  dependent launch (``sglang_ext.kernels.pdl``) where the GPU (compute capability 9.0+) and
  Triton support it; ``0`` or unset: plain stream order (the default: on the H200 it did not
  pay, ``bench/results/h200/gpu_call29.log``, ``gpu_call39.log``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

__all__ = [
    "CONFIG_ENV",
    "DP_ROUTING_ENV",
    "FUSED_ATTENTION_ENV",
    "FUSED_INPUTS_ENV",
    "FUSED_MLP_ENV",
    "FUSED_NORM_ENV",
    "GRAPH_METADATA_ENV",
    "PDL_ENV",
    "SingleExpertConfig",
    "rank_config",
]

CONFIG_ENV = "SGLANG_EXT_CONFIG"
DP_ROUTING_ENV = "SINGLE_EXPERT_DP_ROUTING"
FUSED_ATTENTION_ENV = "SGLANG_EXT_FUSED_ATTENTION"
FUSED_INPUTS_ENV = "SGLANG_EXT_FUSED_INPUTS"
FUSED_MLP_ENV = "SGLANG_EXT_FUSED_MLP"
FUSED_NORM_ENV = "SGLANG_EXT_FUSED_NORM"
GRAPH_METADATA_ENV = "SGLANG_EXT_GRAPH_METADATA"
PDL_ENV = "SGLANG_EXT_PDL"
_OFF = ("0", "false", "off", "no")
_ON = ("1", "true", "on", "yes")


@dataclass(kw_only=True, slots=True, frozen=True)
class SingleExpertConfig:
    """The single-expert settings every rank uses; validated on construction."""

    mode: str | None = None
    """'tp' (shard the expert over the TP group), 'dp' (replicate it over the MoE
    expert-parallel group, split the tokens) or None (not asked for: a one-expert model
    runs 'tp')."""
    dp_routing: str = "random"
    """How 'dp' splits the tokens: 'random' (a seed all ranks share) or 'round_robin'."""
    fused_mlp: bool = True
    """Let the measured dispatch table pick a fused MLP kernel for the expert's shard
    (False: cuBLAS everywhere)."""
    graph_metadata: bool = True
    """Compute the Triton attention's decode metadata inside the CUDA graph (patch 0021;
    False: on the host before each replay, as sglang does)."""
    fused_norm: bool = True
    """At decode on one GPU, run the decoder layer's RMSNorms inside the linears after them
    (patch 0023; False: sglang's layer, each norm a kernel of its own)."""
    fused_attention: bool = True
    """At decode with the Triton attention backend, run the q/k norm, rotary, KV-cache write,
    attention and split merge as one kernel (patch 0024; False: three kernels, as before)."""
    fused_inputs: bool = True
    """On CUDA, run a decode step's bookkeeping (``prepare_for_decode``'s KV-slot write and
    length update, the graph replay's input copies) as one launch each (patch 0025; False:
    sglang's own small ops)."""
    pdl: bool = False
    """Launch our Triton kernels with programmatic dependent launch where the GPU and Triton
    support it (``sglang_ext.kernels.pdl``; False: plain stream order)."""

    def __post_init__(self) -> None:
        # imported here: sglang_ext.layers imports this module (for rank_config)
        from sglang_ext.layers.routing import DP_ROUTINGS
        from sglang_ext.layers.single_expert_moe import SINGLE_EXPERT_MODES

        if self.mode is not None and self.mode not in SINGLE_EXPERT_MODES:
            raise ValueError(
                f"mode={self.mode!r} is not a single-expert mode: use 'tp', 'dp' or None"
            )
        if self.dp_routing not in DP_ROUTINGS:
            raise ValueError(f"dp_routing={self.dp_routing!r}: use one of {DP_ROUTINGS}")
        for name in (
            "fused_attention", "fused_inputs", "fused_mlp", "fused_norm", "graph_metadata", "pdl"
        ):  # fmt: skip
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: use True or False")

    @classmethod
    def from_user_env(
        cls, environ: Mapping[str, str] | None = None, *, mode_flag: str | None = None
    ) -> SingleExpertConfig:
        """The config from ``--single-expert-mode`` (``mode_flag``, wins) and the
        user-facing variables; ValueError naming the variable for a bad value."""
        from sglang_ext.layers.routing import DP_ROUTINGS
        from sglang_ext.layers.single_expert_moe import resolve_single_expert_mode

        env = os.environ if environ is None else environ
        mode = resolve_single_expert_mode(mode_flag, environ=env)
        raw_routing = env.get(DP_ROUTING_ENV) or "random"
        routing = raw_routing.strip().lower()
        if routing not in DP_ROUTINGS:
            raise ValueError(
                f"environment variable {DP_ROUTING_ENV}={raw_routing!r} is not a dp routing: "
                f"use one of {DP_ROUTINGS}, or unset it for 'random'"
            )
        fused = _switch(env, FUSED_MLP_ENV, "0 (cuBLAS everywhere) or 1 (the measured "
                        "fused-MLP dispatch, the default)")  # fmt: skip
        in_graph = _switch(env, GRAPH_METADATA_ENV, "0 (attention metadata on the host, as "
                           "sglang) or 1 (inside the CUDA graph, the default)")  # fmt: skip
        norm = _switch(env, FUSED_NORM_ENV, "0 (each RMSNorm a kernel, as sglang) or 1 (inside "
                       "the linears at decode on one GPU, the default)")  # fmt: skip
        attention = _switch(env, FUSED_ATTENTION_ENV, "0 (q/k norm + rope, attention and "
                            "merge as three kernels) or 1 (one kernel at decode, the "
                            "default)")  # fmt: skip
        inputs = _switch(env, FUSED_INPUTS_ENV, "0 (a decode step's bookkeeping as sglang's "
                         "small ops) or 1 (one launch each on CUDA, the default)")  # fmt: skip
        pdl = _switch(env, PDL_ENV, "0 (plain stream order, the default) or 1 (programmatic "
                      "dependent launch where supported)", default=False)  # fmt: skip
        return cls(mode=mode, dp_routing=routing, fused_mlp=fused, fused_norm=norm,
                   fused_attention=attention, fused_inputs=inputs, graph_metadata=in_graph,
                   pdl=pdl)  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SingleExpertConfig:
        """Parse what :meth:`to_json` wrote; ValueError naming ``SGLANG_EXT_CONFIG``."""
        fix = (
            f"unset {CONFIG_ENV} (sglang_ext.launch_server writes it) or give a JSON object "
            f"with some of the keys {[f.name for f in dataclasses.fields(cls)]}"
        )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"environment variable {CONFIG_ENV} is not JSON ({e}): {fix}"
            ) from None
        if not isinstance(data, dict):
            raise ValueError(f"environment variable {CONFIG_ENV}={text!r} is not an object: {fix}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"environment variable {CONFIG_ENV}: unknown keys {unknown}: {fix}")
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"environment variable {CONFIG_ENV}: {e}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SingleExpertConfig:
        """``SGLANG_EXT_CONFIG`` if set, else the user-facing variables."""
        env = os.environ if environ is None else environ
        text = env.get(CONFIG_ENV)
        return cls.from_json(text) if text else cls.from_user_env(env)

    def export(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Write this config into ``SGLANG_EXT_CONFIG`` for the ranks sglang will spawn."""
        env = os.environ if environ is None else environ
        env[CONFIG_ENV] = self.to_json()
        rank_config.cache_clear()


def _switch(env: Mapping[str, str], name: str, choices: str, default: bool = True) -> bool:
    """An on/off variable (unset: on); ValueError naming it and the choices otherwise."""
    raw = env.get(name) or ("1" if default else "0")
    value = raw.strip().lower()
    if value not in _OFF + _ON:
        raise ValueError(f"environment variable {name}={raw!r}: use {choices}")
    return value in _ON


@functools.cache
def rank_config() -> SingleExpertConfig:
    """This process's config, read once (:meth:`SingleExpertConfig.from_env`)."""
    return SingleExpertConfig.from_env()
