"""Reported: Home and Browse headlined "Leaf accuracy 0.908" while Predict, which ranks every leaf,
called a dog "cat 0.98"; the run's own eval/test/ranking.json said top-1 0.425. The yes/no leaf
accuracy asks each image about its own leaf and one random other leaf, the ranking about all of them:
Predict (under the checkpoint picker) and Browse (headline metrics) show the ranking beside it, with
what each measures, and nothing made up when the run was never ranked."""
from __future__ import annotations

from app_data import fake_run
from core import runs
from test_pages import run_page, small_cfg, texts

RANKING = {"split": "test", "images": 40, "of_images": 639, "vocabulary": 385, "chance_top1": 1 / 385,
           "chance_top5": 5 / 385, "top1": 0.425, "top5": 0.55, "median_rank": 3, "mean_p_yes": 0.1,
           "rows": [{"image_id": f"im{i}", "rank": 1 + i % 7} for i in range(40)]}


def ranked_run(ranking: dict | None = RANKING):
    run_dir = fake_run(small_cfg(seed=7))
    if ranking is not None:
        runs.write_json(runs.eval_dir(run_dir, "test") / runs.RANKING_FILE, {**ranking, "run_id": run_dir.name})
    return run_dir


def test_browse_shows_the_every_leaf_ranking_beside_leaf_accuracy(data_dir):
    ranked_run()
    at = run_page("app_pages/2_Browse.py")
    metrics = {m.label: m for m in at.metric}
    assert metrics["Every-leaf top-1"].value == "0.425" and metrics["Every-leaf top-5"].value == "0.550"
    assert metrics["Median rank"].value == "3 of 385"
    assert metrics["Test images ranked"].value == "40 of 639"
    assert "one random other leaf" in metrics["Leaf accuracy"].proto.help
    shown = texts(at)
    assert "Yes/no leaf accuracy asks each test image about its own leaf and about one random other leaf" in shown
    assert "asks about all 385 leaves, as Predict does" in shown and "Ranked: 40 test images." in shown


def test_browse_without_a_ranking_adds_no_ranking_numbers(data_dir):
    ranked_run(None)
    at = run_page("app_pages/2_Browse.py")
    labels = [m.label for m in at.metric]
    assert "Leaf accuracy" in labels
    assert not [label for label in labels if "Every-leaf" in label or "ranked" in label]
    assert "every leaf" not in texts(at).lower()


def test_browse_ignores_an_unreadable_ranking(data_dir):
    run_dir = ranked_run(None)
    runs.write_text(runs.eval_dir(run_dir, "test") / runs.RANKING_FILE, "[1, 2]")
    at = run_page("app_pages/2_Browse.py")
    assert not at.error and not [m for m in at.metric if "Every-leaf" in m.label]


def test_predict_shows_the_checkpoints_ranking_under_the_picker(data_dir):
    ranked_run()
    at = run_page("app_pages/1_Predict.py")
    shown = texts(at)
    assert "yes/no leaf accuracy **1.000**" in shown        # fake_run answers every leaf question right
    assert "every leaf asked of 40 test images: top-1 **0.425**, top-5 **0.550**, median rank 3 of 385" in shown
    assert "about its own leaf and about one random other leaf" in shown
    assert "asks about all 385 leaves, as Predict does" in shown


def test_predict_says_when_the_ranking_was_not_measured(data_dir):
    ranked_run(None)
    at = run_page("app_pages/1_Predict.py")
    shown = texts(at)
    assert "yes/no leaf accuracy **1.000**" in shown
    assert "every-leaf ranking not measured" in shown
    assert "top-1 **" not in shown


def test_predict_says_nothing_for_an_unevaluated_checkpoint(data_dir):
    run_dir = fake_run(small_cfg(seed=7), evaluated=False)
    at = run_page("app_pages/1_Predict.py")
    assert at.selectbox(key="predict_run").value == run_dir.name          # the page is on that checkpoint
    assert "This checkpoint on its test images" not in texts(at) and "leaf accuracy" not in texts(at).lower()
