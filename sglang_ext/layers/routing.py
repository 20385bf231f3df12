"""Token-to-replica routing for the replicated ("dp") single expert.

In dp mode every rank holds the whole expert and sees the same hidden states (as under TP,
where the attention output is replicated on every TP rank). Each token must be computed by
exactly one replica, so that summing the ranks' outputs (the caller's all-reduce) gives every
token's output once. The rules below are pure functions of (num_tokens, world_size, rank,
seed, step, offset): every rank evaluates them identically and no communication is needed.

- ``round_robin``: token ``i`` goes to rank ``(i + offset) % world_size``. Balanced to within
  one token; the caller advances ``offset`` by the tokens already routed, so a stream of
  one-token decode steps still rotates over the ranks. A rank's tokens form a strided slice,
  so no index tensor is built and no host sync happens.
- ``random``: each token picks a rank uniformly and independently from a CPU
  ``torch.Generator`` seeded with ``mix(seed, step)``. CPU generation makes the draw identical
  on every rank whatever its device (CUDA generators may differ across GPU models), at the
  cost of one small host-to-device copy of this rank's token indices per call. Loads are
  balanced only in expectation (binomial), like sglang's "dynamic" EP dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "DP_ROUTINGS",
    "ReplicaSelection",
    "random_owners",
    "random_selection",
    "round_robin_selection",
    "full_selection",
]

DP_ROUTINGS = ("random", "round_robin")

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads (seed, step) pairs over seeds
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ReplicaSelection:
    """The tokens one rank computes, out of ``num_tokens``.

    Either the strided slice ``start::stride`` (``index is None``) or the sorted token
    indices in ``index`` (int64, on the device of the hidden states).
    """

    num_tokens: int
    start: int = 0
    stride: int = 1
    index: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """How many tokens this rank computes."""
        if self.index is not None:
            return int(self.index.numel())
        if self.start >= self.num_tokens:
            return 0
        return (self.num_tokens - self.start + self.stride - 1) // self.stride

    def indices(self) -> torch.Tensor:
        """This rank's token indices as a CPU int64 tensor (for checks and logging)."""
        if self.index is not None:
            return self.index.cpu()
        if self.count == 0:
            return torch.empty(0, dtype=torch.int64)
        return torch.arange(self.start, self.num_tokens, self.stride, dtype=torch.int64)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """x: [T, H] -> this rank's rows [count, H] (a view for a strided selection)."""
        if self.index is not None:
            return x.index_select(0, self.index)
        return x[self.start :: self.stride]

    def scatter_(self, out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Write ``rows`` [count, H] into this rank's rows of ``out`` [T, H], in place."""
        if self.index is not None:
            return out.index_copy_(0, self.index, rows)
        out[self.start :: self.stride] = rows
        return out


def full_selection(num_tokens: int) -> ReplicaSelection:
    """Every token (world size 1)."""
    return ReplicaSelection(num_tokens=num_tokens)


def round_robin_selection(
    num_tokens: int, world_size: int, rank: int, offset: int = 0
) -> ReplicaSelection:
    """Token i -> rank (i + offset) % world_size; rank r owns i = (r - offset) mod W, +W, ..."""
    start = (rank - offset) % world_size
    return ReplicaSelection(num_tokens=num_tokens, start=start, stride=world_size)


def _mix(seed: int, step: int) -> int:
    return (seed * _GOLDEN + step) & _MASK64


def random_owners(num_tokens: int, world_size: int, seed: int, step: int) -> torch.Tensor:
    """The owning rank of every token, [T] int64 on CPU, identical on every rank."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(_mix(seed, step))
    return torch.randint(0, world_size, (num_tokens,), generator=gen, dtype=torch.int64)


def random_selection(
    num_tokens: int,
    world_size: int,
    rank: int,
    *,
    seed: int,
    step: int,
    device: torch.device | str = "cpu",
) -> ReplicaSelection:
    """This rank's share of a uniform random token-to-rank draw (see module docstring)."""
    owners = random_owners(num_tokens, world_size, seed, step)
    index = (owners == rank).nonzero().flatten()  # sorted, CPU
    return ReplicaSelection(num_tokens=num_tokens, index=index.to(device))
