"""bench.ranking_calibration's arithmetic on hand-made margins (the scoring is the VLM's own)."""
import numpy as np
import pytest
import torch

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


def test_category_answers_lift_the_leaves_of_categories_the_model_says_yes_to():
    # leaves 0, 1 in category 0; leaf 2 in categories 0 and 1; leaf 3 in none
    membership = np.array([[1, 0], [1, 0], [1, 1], [0, 0]], float)
    test = np.array([[0.0, 1.0, 0.5, -1.0]])           # leaf 1 leads on its own answer
    cat = np.array([[4.0, -4.0]])                       # yes to category 0, no to category 1
    got = rc.with_categories(test, cat, membership, weights=(1.0,))
    (name, scores), = got.items()
    assert name == "plus 1 x its categories' mean log P(yes)"
    ls = rc.log_sigmoid
    assert np.allclose(scores[0], [ls(0.0) + ls(4.0), ls(1.0) + ls(4.0), ls(0.5) + (ls(4.0) + ls(-4.0)) / 2, ls(-1.0)])
    assert rc.ranks(scores, np.array([2])).tolist() == [4]          # its "no" category pulls leaf 2 last
    assert rc.ranks(scores, np.array([3])).tolist() == [3]          # a leaf with no category keeps its answer


def test_probe_split_groups_images_by_who_ranks_the_true_leaf_top_5():
    posterior = np.full((3, 8), 0.01)
    posterior[0, 0] = 0.9                               # confident and right
    posterior[1, :6] = [0.15, 0.3, 0.2, 0.1, 0.1, 0.1]  # spread, truth (0) 3rd
    posterior[2, 1:8] = [0.05] * 6 + [0.9]
    posterior[2, 0] = 0.001                             # truth below all seven others: rank 8
    model_ranks = np.array([1, 9, 3])
    split = rc.probe_split(posterior, model_ranks, np.array([0, 0, 0]))
    assert split["probe"].tolist() == [1, 3, 8]
    g = split["groups"]
    assert {k: v["images"] for k, v in g.items()} == {"both": 1, "probe only": 1, "model only": 1, "neither": 0}
    assert g["probe only"]["true share"] == 0.15 and g["probe only"]["largest share"] == 0.3
    assert g["neither"]["true share"] is None


def test_a_tempered_posterior_keeps_its_order_and_sharpens_below_one_and_softens_above():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert torch.allclose(rc.tempered(p, 1.0), p.double())
    sharp, soft = rc.tempered(p, 0.5), rc.tempered(p, 2.0)
    assert torch.allclose(sharp[0], torch.tensor([25, 9, 4], dtype=torch.double) / 38)     # p^2 renormalised
    for q in (sharp, soft):
        assert torch.allclose(q.sum(-1), torch.ones(2, dtype=torch.double))
        assert q.argmax(-1).tolist() == [0, 2]
    assert (sharp.max(-1).values > p.max(-1).values).all() and (soft.max(-1).values < p.max(-1).values).all()
    assert rc.tempered(torch.tensor([[1.0, 0.0]]), 0.01).tolist() == [[1.0, 0.0]]       # a zero share stays zero
    with pytest.raises(ValueError, match="temperature must be > 0"):
        rc.tempered(p, 0.0)


def test_bad_temperatures_are_refused_before_any_model_loads(capsys):
    for bad in ("0", "-1", "a,b", "nan"):
        with pytest.raises(SystemExit) as exit_:
            rc.main(["no/such/run", "--temperatures", bad])
        assert exit_.value.code == 2
        assert "--temperatures" in capsys.readouterr().err
