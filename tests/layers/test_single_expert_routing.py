"""Routing rules of the replicated (dp) single expert: partition, balance, determinism."""

import pytest
import torch

from sglang_ext.layers.routing import (
    random_owners,
    random_selection,
    round_robin_selection,
)


def _counts(selections, num_tokens):
    counts = torch.zeros(num_tokens, dtype=torch.int64)
    for sel in selections:
        counts.index_add_(0, sel.indices(), torch.ones(sel.count, dtype=torch.int64))
    return counts


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_tokens", [0, 1, 7, 33])
@pytest.mark.parametrize("offset", [0, 1, 5])
def test_round_robin_partitions_and_balances(world_size, num_tokens, offset):
    sels = [round_robin_selection(num_tokens, world_size, r, offset) for r in range(world_size)]
    counts = _counts(sels, num_tokens)
    assert torch.equal(counts, torch.ones(num_tokens, dtype=torch.int64)), counts
    # token i belongs to rank (i + offset) % W, as documented
    for rank, sel in enumerate(sels):
        assert all((int(i) + offset) % world_size == rank for i in sel.indices())
    sizes = [s.count for s in sels]
    assert max(sizes) - min(sizes) <= 1, sizes
    assert [len(s.indices()) for s in sels] == sizes


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("num_tokens", [1, 7, 33])
def test_random_partitions_and_is_deterministic(world_size, num_tokens):
    sels = [random_selection(num_tokens, world_size, r, seed=3, step=2) for r in range(world_size)]
    counts = _counts(sels, num_tokens)
    assert torch.equal(counts, torch.ones(num_tokens, dtype=torch.int64)), counts
    again = random_selection(num_tokens, world_size, 0, seed=3, step=2)
    assert torch.equal(again.indices(), sels[0].indices())


def test_random_depends_on_seed_and_step_and_covers_ranks():
    base = random_owners(256, 4, seed=0, step=0)
    assert not torch.equal(base, random_owners(256, 4, seed=0, step=1))
    assert not torch.equal(base, random_owners(256, 4, seed=1, step=0))
    # every rank gets a share; 256 tokens over 4 ranks: P(some rank < 32) is ~1e-7
    assert torch.bincount(base, minlength=4).min() >= 32


def test_gather_scatter_roundtrip():
    x = torch.arange(7 * 3, dtype=torch.float32).view(7, 3)
    for sel in (round_robin_selection(7, 3, 1, 2), random_selection(7, 3, 1, seed=0, step=0)):
        out = torch.zeros_like(x)
        sel.scatter_(out, sel.gather(x))
        idx = sel.indices()
        assert torch.equal(out[idx], x[idx])
        mask = torch.ones(7, dtype=torch.bool)
        mask[idx] = False
        assert torch.count_nonzero(out[mask]) == 0
