"""Per-request seeded sampling (OpenAI's ``seed``, ``/generate``'s ``sampling_seed``).

sglang 0.4.7 accepts ``seed`` on the OpenAI routes and ignores it. Here a seeded row's
token is drawn by inverse-CDF sampling from the same top-k / top-p / min-p filtered
distribution sglang's torch sampler uses, with the uniform taken from a generator
seeded by ``(seed, position)``: the same seed and prompt give the same tokens whatever
else is in the batch, and every TP rank draws the same token. Unseeded rows keep
sglang's own draw.

The patched ``SamplingBatchInfo`` keeps ``sampling_seeds`` (int64, -1 = unseeded, or
None when no row is seeded) through ``filter_batch``/``merge_batch`` with the helpers
below; the patched model runner stores each row's sequence length as the position.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["batch_seeds", "filter_seeds", "merge_seeds", "resample_seeded_"]

_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: spreads (seed, position) over the seed space


def batch_seeds(reqs: list[Any], device: Any) -> torch.Tensor | None:
    """The rows' seeds (-1 for none), or None when no request of the batch has one."""
    seeds = [getattr(r.sampling_params, "sampling_seed", None) for r in reqs]
    if all(s is None for s in seeds):
        return None
    return torch.tensor([-1 if s is None else int(s) for s in seeds], dtype=torch.int64).to(device)


def filter_seeds(seeds: torch.Tensor | None, keep: torch.Tensor) -> torch.Tensor | None:
    return None if seeds is None else seeds[keep]


def merge_seeds(a: torch.Tensor | None, n_a: int, b: torch.Tensor | None, n_b: int, device):
    """Concatenate two batches' seeds, filling an unseeded side with -1."""
    if a is None and b is None:
        return None
    if a is None:
        a = torch.full((n_a,), -1, dtype=torch.int64, device=device)
    if b is None:
        b = torch.full((n_b,), -1, dtype=torch.int64, device=device)
    return torch.cat([a, b])


def _uniform(seed: int, position: int) -> float:
    g = torch.Generator().manual_seed((seed * _MIX + position) % (2**63))
    return float(torch.rand((), generator=g, dtype=torch.float64))


def resample_seeded_(
    token_ids: torch.Tensor, probs: torch.Tensor, info: Any, positions: torch.Tensor | None
) -> None:
    """Overwrite ``token_ids[i]`` for every seeded row ``i`` with its seeded draw."""
    seeds = getattr(info, "sampling_seeds", None)
    if seeds is None or positions is None:
        return
    rows = (seeds >= 0).nonzero().flatten().tolist()
    if not rows:
        return
    seeds_l, pos_l = seeds.tolist(), positions.tolist()
    for i in rows:
        p_sort, idx = probs[i].sort(descending=True)
        p_sort = p_sort.double().clone()
        top_k = int(info.top_ks[i])
        p_sort[top_k:] = 0.0
        above = torch.cumsum(p_sort, 0) - p_sort
        p_sort[above > float(info.top_ps[i])] = 0.0
        min_p = float(info.min_ps[i])
        if min_p > 0:
            p_sort[p_sort < p_sort[0] * min_p] = 0.0
        cdf = torch.cumsum(p_sort, 0)
        u = _uniform(seeds_l[i], int(pos_l[i])) * float(cdf[-1])
        k = min(int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype))[0]), len(cdf) - 1)
        token_ids[i] = idx[k].to(token_ids.dtype)
