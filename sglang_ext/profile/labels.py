"""Per-layer, per-op ``record_function`` labels on a served model, put in by module hooks.

Hooks are registered on the model sglang's ``ModelRunner`` built and removed on exit, so
the model's code and numerics are untouched. Labels (Kineto ``user_annotation`` ranges on
the CPU, ``gpu_user_annotation`` twins on the GPU):

- ``layer::L<i>``: decoder layer ``i`` (modules named ``...layers.<i>``);
- ``op::L<i>.<op>``: an op inside it, named by :data:`OP_NAMES` (a module shared by the
  layers, such as sglang's cached rotary embedding, is labelled with the layer it runs in);
- ``op::<op>``: the model's parts outside the layers (embedding, final norm, logits),
  and the step's own parts around the model's forward, :data:`STEP_PARTS` (put in by the
  rank's step, not by hooks);
- ``block::L<i>.attn`` / ``block::L<i>.moe``: containers, used only to say where a
  collective ran (the MoE block's collective is the token exchange).

:class:`ModelLabeler` also keeps the current (layer, block) so the communication
recorder can tag each collective with it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from torch import nn
from torch.profiler import record_function

__all__ = [
    "OP_NAMES",
    "OUTSIDE_NAMES",
    "BLOCK_NAMES",
    "STEP_PARTS",
    "ModelLabeler",
    "label_model",
]

# child path inside a decoder layer -> op label
OP_NAMES = {
    "input_layernorm": "input_norm",
    "post_attention_layernorm": "post_attn_norm",
    "self_attn.qkv_proj": "qkv_proj",
    "self_attn.q_norm": "qk_norm",
    "self_attn.k_norm": "qk_norm",
    "self_attn.rotary_emb": "rotary",
    "self_attn.attn": "attention",
    "self_attn.o_proj": "o_proj",
    "mlp.gate": "routing",
    "mlp.experts": "expert_mlp",
}
BLOCK_NAMES = {"self_attn": "attn", "mlp": "moe"}
# module path suffix outside the layers -> label
OUTSIDE_NAMES = {
    "embed_tokens": "embed",
    "model.norm": "final_norm",
    "logits_processor": "logits",
}
# the step's parts outside the model's forward -> what each holds
STEP_PARTS = {
    "batch_prep": "ScheduleBatch prepare_for_extend/decode and ForwardBatch.init_new",
    "dp_prepare": "DP attention: the scheduler's all_gather of every DP rank's token counts",
    "sample": "ModelRunner.sample: the next tokens from the logits",
}
_LAYER_RX = re.compile(r"(^|\.)layers\.(\d+)$")


class ModelLabeler:
    """Where the forward is now: the layer index and block being run (None outside)."""

    def __init__(self) -> None:
        self.layer: int | None = None
        self.block: str | None = None
        self.layer_names: list[str] = []


def _targets(model: nn.Module) -> list[tuple[nn.Module, str, Any]]:
    """(module, kind, key) for every module to label; kind in layer/op/block/outside."""
    out: list[tuple[nn.Module, str, Any]] = []
    for name, mod in model.named_modules():
        m = _LAYER_RX.search(name)
        if m:
            idx = int(m.group(2))
            out.append((mod, "layer", (idx, name)))
            for child, sub in mod.named_modules():
                if child in OP_NAMES:
                    out.append((sub, "op", OP_NAMES[child]))
                elif child in BLOCK_NAMES:
                    out.append((sub, "block", BLOCK_NAMES[child]))
            continue
        for suffix, label in OUTSIDE_NAMES.items():
            if name == suffix or name.endswith("." + suffix):
                out.append((mod, "outside", label))
    return out


@contextlib.contextmanager
def label_model(model: nn.Module) -> Iterator[ModelLabeler]:
    """Install the hooks; yield the labeler; remove every hook on exit."""
    where = ModelLabeler()
    targets = _targets(model)
    layers = sorted({key for _, kind, key in targets if kind == "layer"})
    if not layers:
        sample = [n for n, _ in model.named_modules()][:12]
        raise ValueError(f"no decoder layers (modules named '...layers.<i>') in {sample}")
    where.layer_names = [name for _, name in layers]
    handles = []
    seen: set[tuple[int, str]] = set()
    for mod, kind, key in targets:
        if (id(mod), kind) in seen:  # a module shared by the layers: hook it once
            continue
        seen.add((id(mod), kind))
        stack: list[Any] = []

        def pre(_m, _a, kind=kind, key=key, stack=stack) -> None:
            if kind == "layer":
                where.layer, where.block = key[0], None
                label = f"layer::L{key[0]}"
            elif kind == "block":
                where.block = key
                label = f"block::L{where.layer}.{key}"
            elif kind == "op":
                label = f"op::L{where.layer}.{key}" if where.layer is not None else f"op::{key}"
            else:
                label = f"op::{key}"
            rf = record_function(label)
            rf.__enter__()
            stack.append((rf, kind))

        def post(_m, _a, _o, stack=stack) -> None:
            rf, kind = stack.pop()
            rf.__exit__(None, None, None)
            if kind == "layer":
                where.layer, where.block = None, None
            elif kind == "block":
                where.block = None

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield where
    finally:
        for h in handles:
            h.remove()
