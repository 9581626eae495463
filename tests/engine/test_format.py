"""The one formatting module: its Wilson interval is scipy's, bit for bit, and the figures'
band is the same interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtri

from escalate.engine.numbers import Z95, wilson, wilson_band
from escalate.output.format import MISSING, number, percent


def test_z95_is_the_normal_quantile():
    assert float(ndtri(0.975)) == Z95


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1_000_000, 123_456_789])
def test_wilson_is_scipys_bit_for_bit(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n) == [float(ci.low), float(ci.high)], (k, n)


def test_the_figures_band_is_the_tables_interval():
    n = 10_000
    k = np.array([0, 1, 37, 5_000, 9_999, 10_000])
    low, high = wilson_band(k / n, n)
    expected = np.array([wilson(int(x), n) for x in k])
    np.testing.assert_allclose(low, expected[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(high, expected[:, 1], rtol=0, atol=1e-15)
    assert high[0] > 0 and low[-1] < 1  # not zero-width at p = 0 or 1, unlike p ± z se


def test_numbers_and_percents():
    assert percent(0.199499) == "19.95%" and percent(None) == MISSING
    assert number(297.2813) == "297.3" and number(0) == "0"
    assert number(1.5e-5) == "1.500e-05" and number(float("nan")) == MISSING


def test_a_metric_reads_as_a_percent_or_a_number_and_a_change_in_points_or_signed():
    """One rule for every table, sentence and figure: a probability in percent, its change
    in signed points; a swing's size unsigned; any other metric a number, a change signed."""
    from escalate.output.format import as_read, size_in_points

    assert as_read(0.1995, True) == "19.95%"
    assert as_read(-0.204, True, change=True) == "-20.4 pts"
    assert as_read(0.0004, True, change=True) == "+0.0 pts"
    assert as_read(163.61, False) == "163.6"
    assert as_read(12.5, False, change=True) == "+12.5"
    assert as_read(None, False, change=True) == as_read(float("nan"), True) == "—"
    assert size_in_points(0.204) == "20.4 pts" and size_in_points(None) == "—"


def test_a_probability_is_known_by_its_kind_not_its_prefix():
    from escalate.engine.metrics import is_probability

    assert is_probability("p_reached:war") and is_probability("p_on_at_horizon:mobilized@90")
    assert not is_probability("time_to_reach:war") and not is_probability("time_on:x")
    assert not is_probability("p_unknown:war")
