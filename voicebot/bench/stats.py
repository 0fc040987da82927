"""The benchmarks' one percentile definition, and the summary table row built on it.

Percentiles interpolate linearly between the two nearest ranks - numpy's default
(``method="linear"``), ``statistics.quantiles(method="inclusive")``, Excel's
``PERCENTILE.INC``: the 50th percentile is the median, the 0th the minimum and
the 100th the maximum, and one value is every percentile of itself.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linearly interpolated."""
    return _interpolated(sorted(values), p)


def summary(
    values: Sequence[float],
    points: Sequence[float] = (50, 90, 99),
    *,
    digits: int = 3,
    mean: bool = False,
    maximum: bool = True,
) -> dict[str, float]:
    """``{"n", "avg"?, "p50", ..., "max"?}`` of ``values``, rounded to ``digits``.

    Keys are ``n``, then ``avg`` with ``mean``, one ``p<point>`` per point
    (``p50``, ``p99.9``), then ``max`` with ``maximum``. No values: ``{"n": 0}``.
    """
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    row: dict[str, float] = {"n": len(ordered)}
    if mean:
        row["avg"] = round(statistics.fmean(ordered), digits)
    for point in points:
        row[f"p{point:g}"] = round(_interpolated(ordered, point), digits)
    if maximum:
        row["max"] = round(ordered[-1], digits)
    return row


def _interpolated(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0-100")
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)
