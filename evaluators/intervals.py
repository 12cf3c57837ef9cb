"""Bootstrap intervals over test identities, and the per-image outcomes they are computed from.

Images of one identity are not independent (same face, same difficulty), so the interval resamples
*identities* with replacement (a cluster bootstrap) and recomputes the rate from their images.
"""

from __future__ import annotations

import numpy as np


def identity_bootstrap(values: np.ndarray, identity: np.ndarray, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(values) when identities are resampled with replacement.

    values: (N,) per-image outcomes in [0, 1] (NaN rows are ignored); identity: (N,) identity ids.
    Returns (lo, hi); (NaN, NaN) without any finite value.
    """
    values, identity = np.asarray(values, dtype=np.float64), np.asarray(identity)
    keep = np.isfinite(values)
    values, identity = values[keep], identity[keep]
    if len(values) == 0:
        return float("nan"), float("nan")
    ids, inverse = np.unique(identity, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(ids), size=(resamples, len(ids)))
    rates = sums[draw].sum(1) / counts[draw].sum(1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(rates, [tail, 100 - tail])
    return float(lo), float(hi)


#: per-image outcome columns of results/<data>/per_image/*.csv, in order
PER_IMAGE_COLUMNS = ["index", "identity", "target_value", "source_read", "target_read", "id_cos", "id_match",
                     "others_kept", "success", "cf_l1"]
