"""KV-cache synchronisation after the pipelined prefill: every rank ends with all layers' KV.

A strategy turns "my stage's KV" into "every stage's KV" over one process group:

* ``pairwise``: one all_gather of each stage's KV (padded to the largest stage);
* ``ring``: N-1 neighbour steps, each forwarding the buffer received the step before.

A third strategy is a subclass with a ``name`` and an ``exchange``, added to ``STRATEGIES``.
:class:`BackgroundKVSync` runs a strategy on its own thread (and CUDA stream), starting as
soon as the compute thread says this stage's KV is final.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.distributed as dist

from sglang_ext.distributed import comm
from sglang_ext.engine.model import KVCache

__all__ = [
    "KVSyncStrategy",
    "PairwiseAllGather",
    "RingSync",
    "STRATEGIES",
    "get_strategy",
    "pack_stage_kv",
    "unpack_stage_kv",
    "BackgroundKVSync",
]

logger = logging.getLogger(__name__)


class KVSyncStrategy(ABC):
    name: ClassVar[str]

    @abstractmethod
    def exchange(
        self, local: torch.Tensor, stage_sizes: list[int], *, group: dist.ProcessGroup
    ) -> tuple[list[torch.Tensor], int]:
        """local: this rank's stage KV ``[n_layers_s, 2, P, Hkv, d]``.

        Returns every stage's buffer (index = stage = group rank, own included) and the
        bytes this rank put on the wire.
        """


class PairwiseAllGather(KVSyncStrategy):
    name = "pairwise"

    def exchange(self, local, stage_sizes, *, group):
        bufs = comm.all_gather_padded(local, stage_sizes, group=group)
        padded = max(stage_sizes) * local[0].numel() * local.element_size()
        return bufs, padded * (len(stage_sizes) - 1)


class RingSync(KVSyncStrategy):
    name = "ring"

    def exchange(self, local, stage_sizes, *, group):
        r, n = comm.group_rank(group), len(stage_sizes)
        bufs: list[torch.Tensor | None] = [None] * n
        bufs[r] = local
        sent = 0
        for t in range(n - 1):  # step t: pass on stage (r - t), receive stage (r - t - 1)
            s_idx, r_idx = (r - t) % n, (r - t - 1) % n
            bufs[r_idx] = local.new_empty((stage_sizes[r_idx], *local.shape[1:]))
            comm.ring_shift(bufs[s_idx], bufs[r_idx], group=group)
            sent += bufs[s_idx].numel() * bufs[s_idx].element_size()
        return bufs, sent  # type: ignore[return-value]


STRATEGIES: dict[str, type[KVSyncStrategy]] = {c.name: c for c in (PairwiseAllGather, RingSync)}


def get_strategy(name: str) -> KVSyncStrategy:
    if name not in STRATEGIES:
        raise ValueError(f"KV sync strategy {name!r} unknown; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name]()


def pack_stage_kv(caches: list[KVCache], layers: range, n_tokens: int) -> torch.Tensor:
    """-> [len(layers), 2, n_tokens, Hkv, d] (a copy)."""
    return torch.stack(
        [torch.stack([caches[i].k[:n_tokens], caches[i].v[:n_tokens]]) for i in layers]
    )


def unpack_stage_kv(caches: list[KVCache], layers: range, buf: torch.Tensor) -> None:
    n = buf.shape[2]
    for j, i in enumerate(layers):
        caches[i].k[:n].copy_(buf[j, 0])
        caches[i].v[:n].copy_(buf[j, 1])


class BackgroundKVSync:
    """Runs one strategy on a thread, after :meth:`kv_final` is called by the compute thread."""

    def __init__(
        self,
        strategy: KVSyncStrategy,
        caches: list[KVCache],
        stages: list[range],
        n_tokens: int,
        *,
        group: dist.ProcessGroup,
        device: torch.device,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.strategy, self.caches, self.stages, self.n_tokens = strategy, caches, stages, n_tokens
        self.group, self.device, self.clock = group, device, clock
        self.rank = comm.group_rank(group)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._event: torch.cuda.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.start_s = self.end_s = float("nan")
        self.bytes_sent = self.bytes_recv = 0
        self._thread = threading.Thread(target=self._run, name=f"kv-sync-{self.rank}", daemon=True)
        self._thread.start()

    def kv_final(self) -> None:
        """This stage's KV is complete (enqueued on the current stream, on CUDA)."""
        if self.stream is not None:
            self._event = torch.cuda.Event()
            self._event.record()
        self._ready.set()

    def _run(self) -> None:
        try:
            self._ready.wait()
            if self.stream is None:
                self._sync()
            else:
                torch.cuda.set_device(self.device)
                with torch.cuda.stream(self.stream):
                    self.stream.wait_event(self._event)
                    self._sync()
                self.stream.synchronize()
            self.end_s = self.clock()
        except BaseException as e:  # handed to the main thread by join()
            self.error = e

    def _sync(self) -> None:
        self.start_s = self.clock()
        mine = self.stages[self.rank]
        local = pack_stage_kv(self.caches, mine, self.n_tokens)
        bufs, self.bytes_sent = self.strategy.exchange(
            local, [len(s) for s in self.stages], group=self.group
        )
        for s, (layers, buf) in enumerate(zip(self.stages, bufs, strict=True)):
            if s != self.rank:
                unpack_stage_kv(self.caches, layers, buf)
                self.bytes_recv += buf.numel() * buf.element_size()

    def join(self, timeout_s: float) -> None:
        """Wait for the sync; re-raise its error; make its writes visible to the current stream."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"rank {self.rank}: KV sync ({self.strategy.name}) did not finish in {timeout_s}s"
            )
        if self.error is not None:
            raise RuntimeError(
                f"rank {self.rank}: KV sync ({self.strategy.name}) failed: {self.error}"
            ) from self.error
        if self.stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
