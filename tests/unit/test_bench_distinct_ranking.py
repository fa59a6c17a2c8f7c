"""bench.distinct_ranking's pieces: the integration test's image selection and the Wilson interval."""
from types import SimpleNamespace

import pytest

from bench import distinct_ranking as dr


def test_the_selection_takes_each_concepts_first_image_and_spaces_concepts_evenly():
    images = [SimpleNamespace(concept=c, id=i) for c, i in (("dog", "b"), ("dog", "a"), ("cat", "z"), ("ant", "q"))]
    data = SimpleNamespace(images=lambda split: images)
    assert {c: im.id for c, im in dr.first_test_image_per_concept(data).items()} == {"dog": "a", "cat": "z", "ant": "q"}
    concepts = [f"c{i:03d}" for i in range(385)]
    assert dr.evenly(concepts, 20) == [concepts[int(i * 385 / 20)] for i in range(20)]
    assert dr.evenly(concepts, 500) == concepts


def test_wilson_interval_by_hand():
    # 18 of 20: centre (0.9 + 1.96^2 / 40) / (1 + 1.96^2 / 20), half-width 1.96 sqrt(0.09/20 + 1.96^2/1600) / (same)
    assert dr.wilson(18, 20) == pytest.approx((0.6990, 0.9721), abs=1e-4)
    assert dr.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
