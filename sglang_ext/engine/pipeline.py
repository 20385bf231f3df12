"""Stage split (contiguous layer ranges) and the chunk x stage schedule of the SP+PP prefill."""

from __future__ import annotations

__all__ = ["split_layers", "split_chunks", "schedule"]


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


def schedule(n_chunks: int, n_stages: int) -> list[list[tuple[int, int]]]:
    """Time steps of the fill-drain pipeline: step t holds the (stage, chunk) pairs with s + c == t.

    Stage s works on chunk c while stage s-1 works on chunk c+1; there are
    ``n_chunks + n_stages - 1`` steps, of which each stage is busy ``n_chunks``.
    """
    return [
        [(s, t - s) for s in range(n_stages) if 0 <= t - s < n_chunks]
        for t in range(n_chunks + n_stages - 1)
    ]
