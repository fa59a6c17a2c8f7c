"""bench.predict_shortlist's shorter ranking questions: what the bf16 pass asks in place of the scored one."""
import pytest

from bench import predict_shortlist as ps
from core.questions import question_text


@pytest.mark.parametrize("label, short, bare", [
    ("dog", "Is there a dog?", "Is there a dog"),
    ("scissors", "Is there a pair of scissors?", "Is there a pair of scissors"),
    ("grapes", "Are there grapes?", "Are there grapes"),
])
def test_shorter_questions_end_where_the_name_does(label, short, bare):
    q = question_text(label)
    assert ps.ranking_question(q) == q
    assert ps.ranking_question(q, "short") == short
    assert ps.ranking_question(q, "bare") == bare


def test_unknown_kinds_and_other_question_forms_are_refused():
    with pytest.raises(ValueError, match="unknown ranking question"):
        ps.ranking_question(question_text("dog"), "tiny")
    with pytest.raises(ValueError, match="does not end in"):
        ps.ranking_question("Is this a dog?", "short")


NAMES = ["ant", "bee", "cat", "dog", "eel"]


def test_the_true_leaf_is_ranked_by_fp32_among_the_rankers_shortlist_only():
    exact = [0.9, 0.2, 0.8, 0.7, 0.1]       # fp32 P(yes): ant, cat, dog, bee, eel
    quick = [0.1, 0.5, 0.4, 0.3, 0.2]       # the ranker's order: bee, cat, dog, eel, ant
    assert ps.shortlist_rank(exact, quick, NAMES, truth=2, m=None) == 2          # cat: behind ant
    assert ps.shortlist_rank(exact, quick, NAMES, truth=2, m=3) == 1             # ant is not on the list
    assert ps.shortlist_rank(exact, quick, NAMES, truth=0, m=3) == len(NAMES) + 1   # left out
    assert ps.shortlist_rank(exact, quick, NAMES, truth=3, m=3) == 2
    tied = [0.5] * 5
    assert ps.shortlist_rank(tied, quick, NAMES, truth=3, m=None) == 4           # ties go by name


def test_the_probe_ranker_reads_the_projectors_probe_in_the_predictors_concept_order():
    from types import SimpleNamespace

    import torch

    from core.models.projector import Projector
    proj = Projector("gelu-mlp", 8, 16, 2.0, hidden=12, tokens=2, classes=len(NAMES))
    weight = torch.zeros(len(NAMES), 8)
    weight[3, 0] = 5.0                              # feature 0 says "dog"
    proj.posterior.set(torch.nn.Linear(8, len(NAMES)), torch.zeros(8), torch.ones(8))
    proj.posterior.weight.copy_(weight)
    proj.posterior.bias.zero_()
    p = SimpleNamespace(vlm=SimpleNamespace(projector=proj), concepts=NAMES, device=torch.device("cpu"),
                        info=SimpleNamespace(run_id="tiny"))
    grid = torch.zeros(1, 4, 8)
    grid[0, :, 0] = 1.0                              # every grid cell, so the pooled feature too
    post = ps.probe_posterior(p, grid)
    assert len(post) == len(NAMES) and abs(sum(post) - 1) < 1e-5
    assert max(range(len(NAMES)), key=post.__getitem__) == 3
    p.vlm.projector = Projector("gelu-mlp", 8, 16, 2.0, hidden=12, tokens=2)
    with pytest.raises(ValueError, match="no concept probe"):
        ps.probe_posterior(p, grid)
