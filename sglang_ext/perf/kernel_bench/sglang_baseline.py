"""sglang 0.4.7's ``fused_experts`` at E=1, top-1, as the kernel bench's baseline.

:func:`import_fused_moe` sets sglang up the way ``sglang_ext.launch_server`` does: the
patched copy of the installed sglang first on the path (``patching.overlay``) and, where the
real ``sgl_kernel`` is missing, the project's one stand-in for it (``sglang_ext.compat``,
the same ops the server runs).  Call it before anything imports sglang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from .roofline import InputSet

__all__ = ["activate_sglang", "import_fused_moe", "sglang_impls"]

logger = logging.getLogger(__name__)


def activate_sglang() -> list[str]:
    """Put the patched sglang (and, without sgl_kernel, the stand-in) first on the path, as
    ``launch_server`` does; notes on what was set up (for the records)."""
    from sglang_ext import compat
    from sglang_ext.patching import overlay

    notes = []
    overlay.activate(overlay.ensure_patched_sglang())
    notes.append("patched sglang overlay (sglang_ext.patching.overlay)")
    if compat.need_standin():
        overlay.activate(Path(compat.standin_path()))
        notes.append(f"sgl_kernel: the sglang_ext.compat stand-in ({compat.standin_path()})")
    else:
        notes.append("sgl_kernel: the installed package")
    return notes


def import_fused_moe() -> tuple[object, list[str]]:
    """sglang's ``fused_moe`` module and notes on how it was set up (for the records)."""
    notes = activate_sglang()
    from sglang.srt.layers.moe.fused_moe_triton import fused_moe

    for note in notes:
        logger.info("sglang baseline: %s", note)
    return fused_moe, notes


def sglang_impls(
    fm, m: int, sets: list[InputSet], *, pieces: bool = False
) -> tuple[dict[str, tuple[Callable, bool]], dict]:
    """fused_experts at E=1 top-1 (and with ``pieces`` its parts): name -> (call, graphable),
    and the MoE config sglang picked."""
    import triton.language as tl

    s0 = sets[0]
    dev, dtype = s0.x.device, s0.x.dtype
    inter = s0.w2.shape[1]
    topk_w = torch.ones(m, 1, device=dev, dtype=torch.float32)
    topk_ids = torch.zeros(m, 1, device=dev, dtype=torch.int32)
    w1s = {id(s): s.w13[None] for s in sets}  # [E=1, 2I, H]
    w2s = {id(s): s.w2[None] for s in sets}  # [E=1, H, I]
    config = fm.try_get_optimal_moe_config(w1s[id(s0)].shape, w2s[id(s0)].shape, 1, None, m)
    impls = {
        "sglang_fused_experts": (
            lambda s: fm.fused_experts(
                s.x, w1s[id(s)], w2s[id(s)], topk_w, topk_ids, inplace=False
            ),
            True,
        )
    }
    if not pieces:
        return impls, config
    sorted_ids, expert_ids, ntp = fm.moe_align_block_size(topk_ids, config["BLOCK_SIZE_M"], 1)
    cache1 = torch.empty(m, 1, 2 * inter, device=dev, dtype=dtype)
    cache2 = torch.empty(m, inter, device=dev, dtype=dtype)
    ctype = tl.bfloat16 if dtype == torch.bfloat16 else tl.float16
    quant = dict(
        use_fp8_w8a8=False,
        use_int8_w8a8=False,
        use_int8_w8a16=False,
        use_int4_w4a16=False,
        per_channel_quant=False,
        block_shape=None,
    )

    def gemm1(s):
        fm.invoke_fused_moe_kernel(
            s.x,
            w1s[id(s)],
            cache1,
            None,
            None,
            None,
            topk_w,
            topk_ids,
            sorted_ids,
            expert_ids,
            ntp,
            False,
            1,
            config,
            compute_type=ctype,
            **quant,
        )

    def act(s):
        fm.silu_and_mul(cache1.view(-1, 2 * inter), cache2)

    def gemm2(s):
        fm.invoke_fused_moe_kernel(
            cache2,
            w2s[id(s)],
            s.out[None],
            None,
            None,
            None,
            topk_w,
            topk_ids,
            sorted_ids,
            expert_ids,
            ntp,
            True,
            1,
            config,
            compute_type=ctype,
            **quant,
        )

    impls.update(
        {
            "sglang_moe_align": (
                lambda s: fm.moe_align_block_size(topk_ids, config["BLOCK_SIZE_M"], 1),
                True,
            ),
            "sglang_gemm1": (gemm1, True),
            "sglang_silu_and_mul": (act, True),
            "sglang_gemm2": (gemm2, True),
            "sglang_gemms": (lambda s: (gemm1(s), act(s), gemm2(s)), True),
        }
    )
    return impls, config
