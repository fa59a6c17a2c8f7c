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
