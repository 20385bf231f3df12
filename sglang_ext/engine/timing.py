"""Per-rank timing record of one prefill + decode run (seconds since a barrier-aligned t0)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

__all__ = ["RankTimings", "Clock"]


class Clock:
    """Seconds since construction (construct it right after a barrier on every rank)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.wall_t0 = time.time()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


@dataclass(kw_only=True, slots=True)
class RankTimings:
    """What one rank measured; all ``*_s`` instants are seconds since the common t0."""

    rank: int
    world_size: int
    stage_layers: list[int]
    """[first, last+1) layer of this rank's stage"""
    prompt_len: int
    n_chunks: int
    prefill_start_s: float = 0.0
    prefill_end_s: float = 0.0
    """last-token logits available on this rank"""
    chunk_compute_s: list[float] = field(default_factory=list)
    """compute of each chunk on this stage"""
    chunk_recv_wait_s: list[float] = field(default_factory=list)
    """time blocked receiving each chunk from the previous stage"""
    kv_final_s: float = 0.0
    """this stage's KV complete"""
    kv_sync_start_s: float = 0.0
    kv_sync_end_s: float = 0.0
    kv_sync_bytes_sent: int = 0
    kv_sync_bytes_recv: int = 0
    decode_start_s: float = 0.0
    decode_end_s: float = 0.0
    decode_steps: int = 0
    total_s: float = 0.0

    @property
    def compute_s(self) -> float:
        return sum(self.chunk_compute_s)

    @property
    def prefill_s(self) -> float:
        return self.prefill_end_s - self.prefill_start_s

    def metrics(self) -> dict:
        """The record's ``metrics``: raw fields plus derived ones, units in the names."""
        d = dataclasses.asdict(self)
        dec = self.decode_end_s - self.decode_start_s
        d.update(
            prefill_s=self.prefill_s,
            compute_s=self.compute_s,
            bubble_s=self.prefill_s - self.compute_s,
            kv_sync_s=self.kv_sync_end_s - self.kv_sync_start_s,
            decode_s=dec,
            decode_tok_per_s=self.decode_steps / dec if dec > 0 and self.decode_steps else None,
        )
        return d
