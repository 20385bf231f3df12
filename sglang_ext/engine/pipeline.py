"""Stage split (contiguous layer ranges), chunk schedules and the chunk x stage pipeline.

Two chunk schedules:

- ``fixed``: chunks of ``chunk_size`` tokens (the last one may be short);
- ``balanced``: as many chunks, cut so that each costs the same under causal attention. A chunk
  ``[a, b)`` costs ``(b - a) + r * pairs(a, b)``, where ``pairs`` counts the (query, key) pairs it
  attends to (``sum_{i=a}^{b-1} (i + 1)``) and ``r`` is the attention cost of one pair relative to
  the per-token linear cost (projections, MLP): later chunks, which see a longer prefix, get fewer
  tokens. The idea is KV-Runahead's context-level partitioning (arXiv:2405.05329).
"""

from __future__ import annotations

import math

__all__ = [
    "CHUNK_SCHEDULES",
    "chunk_cost",
    "flow_shop_makespan",
    "pipeline_makespan",
    "schedule",
    "split_chunks",
    "split_chunks_balanced",
    "split_layers",
]

CHUNK_SCHEDULES = ("fixed", "balanced")


def split_layers(n_layers: int, n_stages: int, explicit: list[int] | None = None) -> list[range]:
    """Contiguous layer ranges, one per stage.

    Balanced by default (the first ``n_layers % n_stages`` stages get one more layer);
    ``explicit`` gives the layer count of each stage.
    """
    if n_stages < 1:
        raise ValueError(f"need at least one stage, got {n_stages}")
    if explicit is not None:
        if len(explicit) != n_stages or sum(explicit) != n_layers or min(explicit) < 1:
            raise ValueError(
                f"--stage-split {explicit} must give {n_stages} stages (one per rank), each >= 1 layer, "
                f"summing to the model's {n_layers} layers"
            )
        sizes = list(explicit)
    else:
        if n_stages > n_layers:
            raise ValueError(f"{n_stages} stages but only {n_layers} layers; use fewer ranks")
        base, extra = divmod(n_layers, n_stages)
        sizes = [base + (s < extra) for s in range(n_stages)]
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


def split_chunks(n_tokens: int, chunk_size: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of ``chunk_size``; the last one may be short."""
    if n_tokens < 1 or chunk_size < 1:
        raise ValueError(f"need n_tokens >= 1 and chunk_size >= 1, got {n_tokens}, {chunk_size}")
    return [(s, min(s + chunk_size, n_tokens)) for s in range(0, n_tokens, chunk_size)]


def chunk_cost(a: int, b: int, attn_ratio: float) -> float:
    """Cost of chunk ``[a, b)`` in units of one token's linear work (see the module docstring)."""
    pairs = (b - a) * (a + b + 1) / 2  # sum of (i + 1) for i in a..b-1
    return (b - a) + attn_ratio * pairs


def split_chunks_balanced(n_tokens: int, n_chunks: int, attn_ratio: float) -> list[tuple[int, int]]:
    """``n_chunks`` contiguous [start, end) ranges of (as nearly as integers allow) equal cost.

    The cumulative cost ``C(x) = x + r * x * (x + 1) / 2`` is inverted at ``k * C(P) / K``;
    every chunk keeps at least one token.
    """
    if n_tokens < 1 or not 1 <= n_chunks <= n_tokens:
        raise ValueError(
            f"need 1 <= n_chunks <= n_tokens, got n_chunks={n_chunks}, n_tokens={n_tokens}"
        )
    if attn_ratio < 0:
        raise ValueError(f"attn_ratio must be >= 0, got {attn_ratio}")
    r = attn_ratio
    total = chunk_cost(0, n_tokens, r)

    def inverse(y: float) -> float:  # x with C(x) = y
        if r == 0:
            return y
        b = 1 + r / 2
        return (-b + math.sqrt(b * b + 2 * r * y)) / r

    cuts = [0]
    for k in range(1, n_chunks):
        x = round(inverse(k * total / n_chunks))
        cuts.append(min(max(x, cuts[-1] + 1), n_tokens - (n_chunks - k)))
    cuts.append(n_tokens)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def pipeline_makespan(chunk_stage_s: list[float], n_stages: int, hop_s: float = 0.0) -> float:
    """End of the last chunk on the last stage when chunk k costs ``chunk_stage_s[k]`` on every
    stage (a flow shop: stage s starts chunk k once it has finished chunk k-1 and stage s-1
    has finished chunk k and sent it, ``hop_s`` later)."""
    return flow_shop_makespan([list(chunk_stage_s)] * n_stages, hop_s)


def flow_shop_makespan(stage_chunk_s: list[list[float]], hop_s: float = 0.0) -> float:
    """:func:`pipeline_makespan` with its own cost per stage: ``stage_chunk_s[s][k]`` is chunk
    k on stage s (e.g. measured in a run)."""
    if not stage_chunk_s or len({len(row) for row in stage_chunk_s}) != 1:
        raise ValueError("stage_chunk_s needs one row per stage, all with the same chunk count")
    done = [0.0] * len(stage_chunk_s)  # done[s]: when stage s finished its latest chunk
    for k in range(len(stage_chunk_s[0])):
        for s, row in enumerate(stage_chunk_s):
            ready = done[s - 1] + hop_s if s else 0.0
            done[s] = max(done[s], ready) + row[k]
    return done[-1]


def schedule(n_chunks: int, n_stages: int) -> list[list[tuple[int, int]]]:
    """Time steps of the fill-drain pipeline: step t holds the (stage, chunk) pairs with s + c == t.

    Stage s works on chunk c while stage s-1 works on chunk c+1; there are
    ``n_chunks + n_stages - 1`` steps, of which each stage is busy ``n_chunks``.
    """
    return [
        [(s, t - s) for s in range(n_stages) if 0 <= t - s < n_chunks]
        for t in range(n_chunks + n_stages - 1)
    ]
