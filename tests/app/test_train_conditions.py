"""The Train form's ablation preview: what random:r removes on the page's dataset, said before
anything is queued (a walk-through found r = 0.5 leaving no seen hypernym question on a small
collection, with nothing said until after training)."""
from __future__ import annotations

import re

from test_pages import run_page, texts


def test_random_ablation_says_what_it_removes_here(data_dir):
    """On the fixture's 12 concepts r = 0.1, 0.25 and 0.5 all take 4 (every small category gives one
    up), so r = 0.1 removes far more than r and the page says why."""
    at = run_page("app_pages/3_Train.py")
    at.button_group(key="train_condition").set_value("random").run()
    for r, more in ((0.1, True), (0.25, False), (0.5, False)):
        at.slider(key="train_ratio").set_value(r).run()
        assert not at.exception, [e.value for e in at.exception]
        assert "On **concepts** (all 12 concepts, seed 0): 4 concepts (33%) lose all their hypernym questions" \
            in texts(at), texts(at)
        assert (f"more than r = {r:g}: each category gives up max(1, int(n·r))" in texts(at)) is more
    at.slider(key="train_ratio").set_value(0.0).run()
    assert not re.search(r"\d+ concepts \(\d+%\) lose all", texts(at))


def test_removal_summary_counts_the_concepts_that_lose_a_hypernym_question(data_dir):
    from core.conditions import removal_summary
    from core.data import datasets

    ds = datasets.load_dataset("concepts")
    n = len(ds.concepts)
    assert n == 12, "the fixture changed: recount the literals below"
    assert removal_summary(ds, "none") == {"concepts": 0, "of": n}
    assert removal_summary(ds, "random:1") == {"concepts": n, "of": n}
    # a literal, not the ablation's own count: the 4 the Train page's note names on this fixture above
    assert removal_summary(ds, "random:0.5") == {"concepts": 4, "of": n}
    assert removal_summary(ds, "systematic:1")["concepts"] == n      # one category: every concept loses its pair


def test_the_sweep_tab_warns_when_conditions_collapse_on_its_data(data_dir):
    """A walk-through: at the smoke scale random:0.25, 0.5 and 0.75 removed the same pairs (most
    categories of a small subset have one or two members), trained one run three times, and Results
    drew a flat curve that read like a finding. On the fixture's 12 concepts, by hand: r = 0.25 and
    0.5 take the same 4 concepts at every seed, and at smoke random:1 and systematic:5 remove every
    pair alike."""
    at = run_page("app_pages/3_Train.py")
    expected = {"smoke": ["random:0.25 = random:0.5 (seeds 0, 1, 2)", "random:1 = systematic:5 (seeds 0, 1, 2)"],
                "cpu": ["random:0.25 = random:0.5 (seeds 0, 1, 2)"]}
    for scale, groups in expected.items():
        at.selectbox(key="sweep_scale").set_value(scale).run()
        assert not at.exception, [e.value for e in at.exception]
        (text,) = [w.value for w in at.warning if "remove the same pairs" in w.value]
        assert text.count(" = ") == sum(g.count(" = ") for g in groups) and all(g in text for g in groups), text
        # the max(1, int(n·r)) reason only where every group is of random:r
        assert ("max(1, int(n·r))" in text) is (scale == "cpu")


def test_results_say_when_conditions_trained_the_same_data(data_dir):
    """The same walk-through: Results drew the flat smoke-scale curve as if it were a finding. Its
    runs' recorded reports show which conditions removed the same pairs; the page says so."""
    from app_data import fake_run
    from core import results
    from test_pages import small_cfg

    for condition in ("random:0.25", "random:0.5", "random:1"):
        fake_run(small_cfg(condition=condition))
    # on the 6-concept subset r = 0.25 and 0.5 sample one concept per category alike; r = 1 takes all
    assert results.same_removal(results.collect()) == {("random:0.25", "random:0.5"): [0]}
    at = run_page("app_pages/4_Results.py")
    (warning,) = [w.value for w in at.warning if "removed the same pairs" in w.value]
    assert "random:0.25 = random:0.5 (seed 0)" in warning
