"""Summary statistics with the names ``sglang.bench_serving`` uses (mean/median/std/pNN),
and the spread of repeated measurements (Student-t confidence interval).

Repeats: ``spread(values)`` gives the mean, the sample standard deviation (ddof 1) and
the half-width of the two-sided ``confidence`` interval of the mean,
``t_{(1+c)/2, n-1} * s / sqrt(n)`` (scipy's Student t).  Two configurations differ beyond
their spread when their intervals do not overlap (:func:`compare_spread`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["summarize", "PERCENTILES", "Spread", "spread", "compare_spread", "serving_points"]

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


@dataclass(frozen=True, slots=True)
class Spread:
    """Mean of ``n`` repeats with its sample std and confidence-interval half-width."""

    n: int
    mean: float
    std: float
    ci_half: float
    confidence: float

    @property
    def low(self) -> float:
        return self.mean - self.ci_half

    @property
    def high(self) -> float:
        return self.mean + self.ci_half


def spread(values: Sequence[float], confidence: float = 0.95) -> Spread:
    """Mean, sample std and the Student-t CI half-width of ``values``.

    One value has no spread: std and half-width are NaN.  Non-finite values are an error.
    """
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("spread() of no values")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"spread() needs finite values, got {a.tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if a.size == 1:
        return Spread(1, float(a[0]), math.nan, math.nan, confidence)
    from scipy import stats

    s = float(a.std(ddof=1))
    t = float(stats.t.ppf((1 + confidence) / 2, a.size - 1))
    return Spread(int(a.size), float(a.mean()), s, t * s / math.sqrt(a.size), confidence)


def compare_spread(a: Spread, b: Spread) -> bool | None:
    """True if the two intervals do not overlap; None when either has no spread (n = 1)."""
    if math.isnan(a.ci_half) or math.isnan(b.ci_half):
        return None
    return a.high < b.low or b.high < a.low


def _qps_key(q: Any) -> float:
    return float(q)


def serving_points(
    records: Iterable[dict[str, Any]], metrics: Sequence[str], confidence: float = 0.95
) -> dict[str, list[dict[str, Any]]]:
    """Serving records grouped by configuration label and offered QPS, repeats pooled.

    Returns ``{label: [{"qps": q, "n": repeats, "<metric>": Spread, ...}, ...]}`` sorted by
    QPS (``inf`` last).  A metric missing or non-finite in some repeat is left out of
    that point.
    """
    groups: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("bench") != "serve":
            continue
        c = r.get("config", {})
        label = str(c.get("label") or c.get("base_url") or "serve")
        groups[label][_qps_key(c.get("qps", math.inf))].append(r["metrics"])
    out: dict[str, list[dict[str, Any]]] = {}
    for label, by_qps in groups.items():
        pts = []
        for q in sorted(by_qps):
            ms = by_qps[q]
            pt: dict[str, Any] = {"qps": q, "n": len(ms)}
            for k in metrics:
                vals = [m[k] for m in ms if isinstance(m.get(k), int | float)]
                if vals and all(math.isfinite(v) for v in vals):
                    pt[k] = spread(vals, confidence)
            pts.append(pt)
        out[label] = pts
    return out
