"""Invariants of an ``moe_align_block_size`` result (shared by the in-process tests and the
fake-CUDA worker).  Checked from the definition, not against another implementation."""

import torch


def check_alignment(
    topk_ids: torch.Tensor,
    e: int,
    bs: int,
    sorted_ids: torch.Tensor,
    expert_ids: torch.Tensor,
    n_post: torch.Tensor,
) -> None:
    """Raise AssertionError naming the first broken invariant."""
    flat = topk_ids.reshape(-1).tolist()
    n = len(flat)
    total = int(n_post.item())
    counts = [sum(1 for x in flat if x == ex) for ex in range(e)]
    assert total == sum((c + bs - 1) // bs * bs for c in counts), "padded total"
    assert total % bs == 0
    body = sorted_ids[:total].tolist()
    real = [t for t in body if t != n]
    wanted = sorted(i for i, x in enumerate(flat) if 0 <= x < e)
    assert sorted(real) == wanted, "every routed token must appear exactly once"
    assert all(t == n for t in sorted_ids[total:].tolist()), "slots past the total = numel"
    blocks = expert_ids[: total // bs].tolist()
    assert blocks == sorted(blocks), "blocks must be grouped by ascending expert"
    for b, ex in enumerate(blocks):
        toks = [t for t in body[b * bs : (b + 1) * bs] if t != n]
        assert toks, f"block {b} holds only padding"
        assert all(flat[t] == ex for t in toks), f"block {b}: expert {ex} vs tokens {toks}"
    assert blocks == [ex for ex in range(e) for _ in range((counts[ex] + bs - 1) // bs)]
