"""bench.distinct_ranking's Wilson interval (its image selection is core.evaluate's, tested there)."""
import pytest

from bench import distinct_ranking as dr


def test_wilson_interval_by_hand():
    # 18 of 20: centre (0.9 + 1.96^2 / 40) / (1 + 1.96^2 / 20), half-width 1.96 sqrt(0.09/20 + 1.96^2/1600) / (same)
    assert dr.wilson(18, 20) == pytest.approx((0.6990, 0.9721), abs=1e-4)
    assert dr.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)     # 1.96^2 / (10 + 1.96^2)
