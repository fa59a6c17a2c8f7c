"""bench.ranking_calibration's arithmetic on hand-made margins (the scoring is the VLM's own)."""
import numpy as np

from bench import ranking_calibration as rc


def test_ranks_count_strictly_higher_leaves_so_ties_count_against_the_truth():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.0, 1.0, 2.0]])
    assert rc.ranks(scores, np.array([0, 1, 0])).tolist() == [1, 1, 3]


def test_subtracting_a_question_prior_reorders_leaves_that_say_yes_to_everything():
    # leaf 1 answers yes to every image; after the prior of a content-free image the truth wins
    test = np.array([[2.0, 5.0, -3.0], [-2.0, 5.0, 1.0]])
    null = np.array([[0.0, 6.0, -1.0], [0.0, 6.0, -1.0]])
    val = np.array([[0.0, 5.0, -2.0], [0.0, 5.5, 0.0]])
    truth = np.array([0, 2])
    got = {name: rc.ranks(s, truth).tolist() for name, s in rc.methods(test, val, null).items()}
    assert got["raw P(yes)"] == [2, 2]
    assert got["minus the mean image's answer"] == [1, 1]
    assert got["minus the mean over 2 val images"] == [1, 1]
    assert "z-score over 2 val images" in got and len(got) == 5
    assert set(rc.methods(test, val[:0], null)) == {"raw P(yes)", "minus the mean image's answer",
                                                     "minus the zero feature's answer"}


def test_summary_reads_top1_top5_and_the_median():
    assert rc.summary(np.array([1, 3, 9, 20])) == "top-1 0.250  top-5 0.500  median rank 6"
