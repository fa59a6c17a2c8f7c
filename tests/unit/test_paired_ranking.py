"""bench.paired_ranking's pairing and sign test on hand-made ranking rows (the ranking is core.evaluate's)."""
import pytest

from bench import paired_ranking as pr


def _rows(ranks, concept="dog"):
    return [{"image_id": f"im{i}", "labelled_concept": concept, "rank": r} for i, r in enumerate(ranks)]


def test_sign_test_matches_the_exact_binomial():
    assert pr.sign_test(0, 0) == 1.0
    assert pr.sign_test(5, 5) == 1.0
    assert pr.sign_test(6, 0) == pytest.approx(2 / 64)
    assert pr.sign_test(0, 6) == pr.sign_test(6, 0)
    assert pr.sign_test(63, 29) == pytest.approx(0.00051, abs=5e-5)   # the leaf stage vs its first stage


def test_paired_counts_images_ranked_higher_lower_and_level_on_shared_images_only():
    a = _rows([10, 3, 7, 1, 40])
    b = _rows([4, 3, 9, 1]) + [{"image_id": "other", "labelled_concept": "dog", "rank": 1}]
    got = pr.paired(a, b)
    assert (got["images"], got["b_higher"], got["b_lower"], got["same"]) == (4, 1, 1, 2)
    assert got["median_rank_change"] == 0
    assert got["sign_test_p"] == 1.0


def test_paired_refuses_rankings_that_label_an_image_differently_or_share_none():
    with pytest.raises(ValueError, match="different labelings"):
        pr.paired(_rows([1]), _rows([1], concept="cat"))
    with pytest.raises(ValueError, match="share no image"):
        pr.paired(_rows([1]), [{"image_id": "x", "labelled_concept": "dog", "rank": 1}])
