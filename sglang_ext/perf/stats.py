"""Summary statistics with the names ``sglang.bench_serving`` uses (mean/median/std/pNN)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["summarize", "PERCENTILES"]

PERCENTILES = (90, 95, 99)


def summarize(
    values: Sequence[float], name: str, *, scale: float = 1000.0, unit: str = "ms"
) -> dict[str, float]:
    """``{mean_<name>_<unit>, median_, std_, p90_, p95_, p99_, max_}`` of ``values * scale``.

    Percentiles use numpy's default linear interpolation, as bench_serving does.
    An empty input gives zeros (bench_serving's ``np.mean(x or 0)`` convention).
    """
    a = np.asarray(values if len(values) else [0.0], dtype=np.float64) * scale
    out = {
        f"mean_{name}_{unit}": float(a.mean()),
        f"median_{name}_{unit}": float(np.median(a)),
        f"std_{name}_{unit}": float(a.std()),
    }
    for p in PERCENTILES:
        out[f"p{p}_{name}_{unit}"] = float(np.percentile(a, p))
    out[f"max_{name}_{unit}"] = float(a.max())
    return out
