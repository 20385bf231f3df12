"""Point-to-point and collective helpers; every function takes ``group`` and group ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "send",
    "isend",
    "recv",
    "broadcast",
    "all_gather_padded",
    "ring_shift",
    "group_rank",
    "group_size",
]


def group_rank(group: dist.ProcessGroup) -> int:
    return dist.get_rank(group=group)


def group_size(group: dist.ProcessGroup) -> int:
    return dist.get_world_size(group=group)


def _g(group: dist.ProcessGroup, r: int) -> int:
    return dist.get_global_rank(group, r)


def send(t: torch.Tensor, dst: int, *, group: dist.ProcessGroup) -> None:
    dist.send(t.contiguous(), _g(group, dst), group=group)


def isend(t: torch.Tensor, dst: int, *, group: dist.ProcessGroup) -> dist.Work:
    return dist.isend(t.contiguous(), _g(group, dst), group=group)


def recv(buf: torch.Tensor, src: int, *, group: dist.ProcessGroup) -> torch.Tensor:
    dist.recv(buf, _g(group, src), group=group)
    return buf


def broadcast(t: torch.Tensor, src: int, *, group: dist.ProcessGroup) -> torch.Tensor:
    dist.broadcast(t, _g(group, src), group=group)
    return t


def all_gather_padded(
    t: torch.Tensor, sizes: list[int], *, group: dist.ProcessGroup
) -> list[torch.Tensor]:
    """All-gather along dim 0 where rank r holds ``sizes[r]`` rows (padded to the max)."""
    n = max(sizes)
    r = group_rank(group)
    assert t.shape[0] == sizes[r], (t.shape, sizes, r)
    if t.shape[0] < n:
        t = torch.cat([t, t.new_zeros((n - t.shape[0], *t.shape[1:]))])
    out = [torch.empty_like(t) for _ in sizes]
    dist.all_gather(out, t.contiguous(), group=group)
    return [o[:s] for o, s in zip(out, sizes, strict=True)]


def ring_shift(send_buf: torch.Tensor, recv_buf: torch.Tensor, *, group: dist.ProcessGroup) -> None:
    """Send to rank+1 and receive from rank-1 at once (grouped, so NCCL cannot deadlock)."""
    r, n = group_rank(group), group_size(group)
    ops = [
        dist.P2POp(dist.isend, send_buf.contiguous(), _g(group, (r + 1) % n), group),
        dist.P2POp(dist.irecv, recv_buf, _g(group, (r - 1) % n), group),
    ]
    for w in dist.batch_isend_irecv(ops):
        w.wait()
