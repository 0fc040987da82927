"""The benchmarks' one percentile: numpy's default (linear) definition, and the summary row."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from voicebot.bench.stats import percentile, summary

POINTS = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, 3.0, 4.0],
        [10.0, 0.5, 7.25, 3.0, 3.0, 100.0, -2.0],
        list(range(101)),
        [0.1, 0.2],
        np.random.default_rng(3).lognormal(0, 1, 1000).tolist(),
    ],
)
def test_agrees_with_numpy(values: list[float]) -> None:
    for p in POINTS:
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12)


def test_known_values() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]  # unsorted input is sorted first
    assert percentile(reversed(values), 40) == 29.0  # rank 1.6: 20 + 0.6 x 15
    assert percentile(values, 50) == 35.0 == statistics.median(values)
    assert percentile(values, 90) == 46.0  # rank 3.6: 40 + 0.6 x 10
    assert percentile(values, 0) == 15.0 and percentile(values, 100) == 50.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5  # between the middle two
    assert statistics.quantiles(values, n=10, method="inclusive")[8] == pytest.approx(46.0)


def test_one_value_is_every_percentile() -> None:
    assert [percentile([7.5], p) for p in (0, 50, 99, 100)] == [7.5] * 4


def test_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize("p", [-1, 100.5, float("nan")])
def test_outside_0_to_100_is_an_error(p: float) -> None:
    with pytest.raises(ValueError, match="outside 0-100"):
        percentile([1.0, 2.0], p)


def test_summary_row() -> None:
    values = [float(v) for v in range(1, 11)]
    assert summary(values) == {"n": 10, "p50": 5.5, "p90": 9.1, "p99": 9.91, "max": 10.0}
    assert summary(values, (50, 80), digits=1, mean=True, maximum=False) == {
        "n": 10,
        "avg": 5.5,
        "p50": 5.5,
        "p80": 8.2,
    }
    assert list(summary(values, (99.9,))) == ["n", "p99.9", "max"]


def test_summary_of_nothing_counts_nothing() -> None:
    assert summary([]) == {"n": 0}
