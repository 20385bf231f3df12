"""``ratio_to_sglang``: the engine's one-rank prefill over sglang's own TP-1 prefill of the
same checkpoint, prompt and dtype, both measured in the same bench run.

An engine ``sp_pp`` record at ``nprocs == 1`` is matched with the ``sp_pp_sglang`` record of
config ``tp1`` that has the same prompt length, dtype, preset, layer count, device and seed
(the seed picks both the random weights and the prompt tokens); anything else is refused.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["MATCH_KEYS", "SGLANG_BASELINE", "attach_ratio_to_sglang"]

logger = logging.getLogger(__name__)

SGLANG_BASELINE = "tp1"
"""the sglang config (``sglang_compare.SGLANG_CONFIGS``) the ratio is taken against"""

MATCH_KEYS = ("prompt_len", "dtype", "dummy_preset", "num_layers", "device", "seed")
"""config fields that must agree between an engine record and its sglang baseline"""


def _key(cfg: dict[str, Any]) -> tuple:
    return tuple(cfg.get(k) for k in MATCH_KEYS)


def _describe(key: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(MATCH_KEYS, key, strict=True))


def attach_ratio_to_sglang(
    engine_recs: list[dict[str, Any]], sglang_recs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Set ``metrics.ratio_to_sglang`` (engine prefill / sglang prefill), ``sglang_prefill_s``
    and ``sglang_command`` on every one-rank engine record, in place; return those records.

    Raises ``ValueError`` when a one-rank record has no tp1 baseline with the same
    ``MATCH_KEYS``, or when two baselines claim the same key.
    """
    base: dict[tuple, dict[str, Any]] = {}
    for rec in sglang_recs:
        if rec.get("bench") != "sp_pp_sglang":
            raise ValueError(f"record of bench {rec.get('bench')!r} given as an sglang baseline")
        cfg = rec["config"]
        if cfg.get("sglang_config") != SGLANG_BASELINE:
            continue
        k = _key(cfg)
        if k in base:
            raise ValueError(f"two sglang {SGLANG_BASELINE} records for {_describe(k)}")
        base[k] = rec
    out = []
    for rec in engine_recs:
        cfg = rec["config"]
        if rec.get("bench") != "sp_pp" or cfg.get("nprocs") != 1:
            continue
        k = _key(cfg)
        ref = base.get(k)
        if ref is None:
            have = "; ".join(_describe(b) for b in base) or "none"
            raise ValueError(
                f"no sglang {SGLANG_BASELINE} prefill for the engine record with {_describe(k)} "
                f"(sglang records: {have}): time sglang on the same prompt lengths, dtype, "
                f"preset, layers, device and seed (bench_sp_pp.py --sglang {SGLANG_BASELINE})"
            )
        eng_s = rec["metrics"]["measured_prefill_s"]
        sgl_s = ref["metrics"]["prefill_s"]
        if not sgl_s > 0:
            raise ValueError(f"sglang prefill {sgl_s!r} s for {_describe(k)} is not positive")
        rec["metrics"].update(
            ratio_to_sglang=eng_s / sgl_s,
            sglang_prefill_s=sgl_s,
            sglang_prefill_median_s=ref["metrics"].get("prefill_median_s"),
            sglang_command=ref["config"].get("command"),
        )
        logger.info(
            "P=%s engine %.4fs / sglang %s %.4fs = %.2f",
            cfg["prompt_len"],
            eng_s,
            SGLANG_BASELINE,
            sgl_s,
            eng_s / sgl_s,
        )
        out.append(rec)
    return out
