"""Small statistics on association results, with no Hail: lambda GC, expected quantiles.

>>> round(lambda_gc([0.5, 0.5, 0.5]), 3)
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

GENOME_WIDE = 5e-8
SUGGESTIVE = 1e-5
_CHI2_MEDIAN = float(stats.chi2.ppf(0.5, 1))   # 0.4549...


def lambda_gc(p_values: Sequence[float] | np.ndarray) -> float:
    """Genomic inflation: median chi-square (1 df) of the p-values over its null median.

    Missing and non-finite p-values are ignored; raises ValueError when none is left.

    >>> round(lambda_gc(np.linspace(0.001, 0.999, 999)), 2)
    1.0
    """
    p = np.asarray(p_values, dtype=float)
    p = p[np.isfinite(p) & (p > 0) & (p <= 1)]
    if p.size == 0:
        raise ValueError("lambda_gc: no finite p-values in (0, 1]")
    return float(stats.chi2.isf(np.median(p), 1) / _CHI2_MEDIAN)


def expected_p(n: int) -> np.ndarray:
    """Expected p-values of n null tests, ascending ((i - 0.5) / n), for QQ plots.

    >>> expected_p(4).tolist()
    [0.125, 0.375, 0.625, 0.875]
    """
    return (np.arange(1, n + 1) - 0.5) / n
