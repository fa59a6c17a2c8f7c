"""bench.posterior_standin's stand-in learner: it learns to answer leaf questions from posteriors that
carry the concept, not from ones that do not, and its arms are checked."""
import pytest
import torch

from bench import posterior_standin


def _posteriors(labels, classes, signal, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(labels), classes, generator=g) + signal * torch.nn.functional.one_hot(labels, classes)
    return logits.softmax(-1)


def test_the_stand_in_answers_from_posteriors_that_name_the_concept_and_not_from_noise():
    classes = 12
    y = torch.arange(classes).repeat(8)
    held_y = torch.arange(classes).repeat(3)
    informative = posterior_standin.stand_in(
        [_posteriors(y, classes, 6.0, 0)], y, {"test": (_posteriors(held_y, classes, 6.0, 1), held_y)},
        classes, epochs=40, seed=0)
    noise = posterior_standin.stand_in(
        [_posteriors(y, classes, 0.0, 0)], y, {"test": (_posteriors(held_y, classes, 0.0, 1), held_y)},
        classes, epochs=40, seed=0)
    assert informative["test"]["leaf_accuracy"] >= 0.9 and informative["test"]["recall"] >= 0.8
    assert noise["test"]["leaf_accuracy"] <= 0.7


def test_unknown_arms_are_refused():
    with pytest.raises(ValueError, match="arms must be among"):
        posterior_standin.run(arms=["logits"])


def test_top_k_counts_only_strictly_higher_scores_against_the_label():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.5, 0.0], [0.1, 0.2, 0.3]])
    assert posterior_standin.top_k(scores, torch.tensor([0, 1, 0])) == {"top1": 0.6667, "top5": 1.0}


def test_a_ranking_group_puts_the_own_leaf_first_then_mates_then_random_leaves():
    draw = torch.Generator().manual_seed(0)
    for mates in ([], [3], [1, 2, 3, 4, 5, 6]):
        group = posterior_standin.ranking_group(0, 10, mates, draw)
        negatives = group[1:]
        assert group[0] == 0 and len(negatives) == posterior_standin.RANK_NEGATIVES == len(set(negatives))
        assert 0 not in negatives
        assert set(negatives[:min(len(mates), 4)]) <= set(mates)          # every mate it can hold comes first


def test_the_ranking_arms_rank_every_leaf_from_informative_posteriors_with_posterior_targets(monkeypatch):
    classes = 12
    y = torch.arange(classes).repeat(8)
    held_y = torch.arange(classes).repeat(3)
    mates = [[(c + 1) % classes, (c + 2) % classes] for c in range(classes)]
    held = {"test": (_posteriors(held_y, classes, 6.0, 1), held_y)}
    seen = []
    real = posterior_standin.listwise_loss
    monkeypatch.setattr(posterior_standin, "listwise_loss",
                        lambda margins, targets=(): seen.append([t.detach() for t in targets]) or real(margins, targets))
    for soft in (0.0, 1.0):
        seen.clear()
        result = posterior_standin.stand_in([_posteriors(y, classes, 6.0, 0)], y, held, classes, epochs=40,
                                            seed=0, mates=mates, rank_soft=soft)
        assert result["test"]["every_leaf_top5"] >= 0.9 and result["test"]["every_leaf_top1"] >= 0.6
        targets = torch.stack([t for call in seen for t in call]) if soft else None
        if soft:      # the posterior's shares over each group: a distribution, mostly on the own leaf
            assert torch.allclose(targets.sum(1), torch.ones(len(targets)))
            assert bool((targets[:, 0] < 1).all()) and targets[:, 0].mean() > 0.5
        else:
            assert seen and all(call == [] for call in seen)        # hard: all on the own leaf
        noise = posterior_standin.stand_in(
            [_posteriors(y, classes, 0.0, 0)], y, {"test": (_posteriors(held_y, classes, 0.0, 1), held_y)},
            classes, epochs=40, seed=0, mates=mates, rank_soft=soft)
        assert noise["test"]["every_leaf_top1"] <= 0.3
