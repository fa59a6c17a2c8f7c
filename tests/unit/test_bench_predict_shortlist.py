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
    ranked = [1, 2, 3, 4, 0]                # the ranker's order: bee, cat, dog, eel, ant
    assert ps.shortlist_rank(exact, ranked, NAMES, truth=2, m=None) == 2          # cat: behind ant
    assert ps.shortlist_rank(exact, ranked, NAMES, truth=2, m=3) == 1             # ant is not on the list
    assert ps.shortlist_rank(exact, ranked, NAMES, truth=0, m=3) == len(NAMES) + 1   # left out
    assert ps.shortlist_rank(exact, ranked, NAMES, truth=3, m=3) == 2
    tied = [0.5] * 5
    assert ps.shortlist_rank(tied, ranked, NAMES, truth=3, m=None) == 4           # ties go by name


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


def test_the_report_names_the_ranker_and_what_each_shortlist_keeps():
    r = {"run_id": "r", "images": 2, "leaves": 5, "ranker": "probe", "ranking_question": "full",
         "suffix_tokens": {"scored": 11.0, "ranked": 11.0}, "share_inside": {5: 0.0, 20: 0.5},
         "worst_rank": [30, 4], "true_leaf": {None: {"top1": 0.5, "top5": 0.5}, 5: {"top1": 1.0, "top5": 1.0},
                                             20: {"top1": 0.5, "top5": 1.0}},
         "max_abs_diff_p_yes": None, "median_abs_diff_max": None, "quick_seconds": 0.004, "fp32_seconds": 8.0}
    text = "\n".join(ps.lines(r))
    assert "probe shortlist vs full fp32 scoring" in text and "(2000x)" in text and "|dP|" not in text
    assert "shortlist   20: same top 5 and chain as full scoring on 50.0% of images; own leaf top-1 50.0%, top-5 100.0%" in text
    assert "SHORTLIST" not in text                    # the bf16 shortlist's size is not the probe's
    bf16 = dict(r, ranker="bf16", max_abs_diff_p_yes=0.2, median_abs_diff_max=0.1, quick_seconds=4.0)
    text = "\n".join(ps.lines(bf16))
    assert "(2.00x)" in text and "largest |dP| 0.200" in text and "bf16 pass asks the full question" in text
