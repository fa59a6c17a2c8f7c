"""AppTest for the defects a browser walk-through reported with an imported dataset beside the
default one and a paper sweep's runs (random-init-LM controls among them): how the run pickers name
and preselect checkpoints, Geometry's trees on a dataset whose categories have no WordNet synset,
Browse's "—" scores and Split filter, and the Dataset picker Geometry opens on."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from app_data import fake_run, own_datasets_dir
from core import runs
from test_pages import run_page, small_cfg, texts


def _created(run_dir, minute: int):
    """Date a fake run (fake runs made in the same second would list in any order)."""
    path = runs.checkpoint_json(run_dir)
    record = json.loads(path.read_text())
    record["created"] = f"2026-12-07T00:{minute:02d}:00+00:00"
    path.write_text(json.dumps(record))
    return run_dir


def _pickers(page: str) -> list:
    at = run_page(page)
    key = {"app_pages/1_Predict.py": "predict_run", "app_pages/2_Browse.py": "browse_run",
           "app_pages/5_Geometry.py": "geometry_insight_run"}[page]
    return at, at.selectbox(key=key)


def test_every_run_picker_marks_random_init_lm_controls(data_dir):
    """Reported: Predict's options read "…_rndlm_s2_… — mine, random:1, seed 2, efficientnet-lite2 +
    smollm2-135m" with nothing saying the LM was never pretrained (Home says so)."""
    control = _created(fake_run(small_cfg(lm_init="random", condition="random:1", seed=2)), 1)
    _created(fake_run(small_cfg()), 2)
    for page in ("app_pages/1_Predict.py", "app_pages/2_Browse.py", "app_pages/5_Geometry.py"):
        _, box = _pickers(page)
        labels = {o for o in box.options if "dataset's images alone" not in o}
        marked = [o for o in labels if "random-init LM" in o]
        assert len(labels) == 2 and len(marked) == 1 and control.name in marked[0], (page, labels)
        assert all(" — concepts, " in o for o in labels), labels         # one label, the same on every page


def test_pickers_prefer_the_newest_pretrained_lm_run_under_none(data_dir):
    """Reported: with no default-config checkpoint Predict preselected the newest trained run, after a
    sweep a random-init control or a fully ablated run."""
    kept = _created(fake_run(small_cfg()), 1)
    _created(fake_run(small_cfg(condition="random:1")), 2)
    _created(fake_run(small_cfg(lm_init="random")), 3)                  # the newest
    at, box = _pickers("app_pages/1_Predict.py")
    assert box.value == kept.name
    assert "the newest run with a pretrained LM under condition none (all hypernym evidence kept) is " \
           "preselected" in texts(at)
    assert _pickers("app_pages/2_Browse.py")[1].value == kept.name
    assert _pickers("app_pages/5_Geometry.py")[1].value == kept.name


def test_pickers_fall_back_to_the_newest_pretrained_lm_run(data_dir):
    ablated = _created(fake_run(small_cfg(condition="random:1")), 1)
    _created(fake_run(small_cfg(lm_init="random")), 2)
    at, box = _pickers("app_pages/1_Predict.py")
    assert box.value == ablated.name
    assert "the newest run with a pretrained LM (none is under condition none) is preselected" in texts(at)


def test_pickers_fall_back_to_the_newest_when_every_lm_is_random_init(data_dir):
    _created(fake_run(small_cfg(lm_init="random")), 1)
    newest = _created(fake_run(small_cfg(lm_init="random", condition="random:1")), 2)
    at, box = _pickers("app_pages/1_Predict.py")
    assert box.value == newest.name
    assert "the newest trained run (every run here has a random-init LM) is preselected" in texts(at)


def _imported(data_dir, name: str = "mine"):
    """The fixture dataset as an imported collection: its categories have no WordNet synset."""
    source = own_datasets_dir(data_dir)
    target = data_dir / "datasets" / name
    target.mkdir()
    (target / "images").symlink_to(source / "images")
    for table in ("concepts.csv", "images.csv"):
        shutil.copyfile(source / table, target / table)
    with open(source / "categories.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(target / "categories.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "label", "synset"], lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "synset": ""} for r in rows)
    info = json.loads((source / "dataset.json").read_text())
    (target / "dataset.json").write_text(json.dumps({**info, "name": name, "source": "an import"}))


def _trees_of(dataset: str):
    """A core.clusters result over a dataset's images, from made-up vectors (no model)."""
    from core import clusters, geometry
    from core.data import datasets
    ds = datasets.load_dataset(dataset)
    concepts = [im.concept for im in ds.images]
    vectors = {s: np.random.default_rng(0).standard_normal((len(concepts), 6)) for s in clusters.SOURCES}
    labelings, _ = geometry.labelings(ds, 0)
    return {"format": 1, "run_id": "fake", "condition": "none", "seed": 0, "split": "test",
            "n_images": len(concepts), "sources": list(clusters.SOURCES), "notes": [],
            "levels": {level: clusters.level_result(ds, concepts, vectors, labelings, level, n_perm=5)
                       for level in clusters.LEVELS}}


def _run_queued_job(kind: str) -> None:
    """Run the one queued job of `kind` in this process, as the worker's child does."""
    import os

    from core.jobs import runner
    from core.jobs.store import JobStore
    store = JobStore()
    (job,) = store.list(kind=kind)
    assert store.claim(os.getpid()).id == job.id
    assert runner.run(job.id, 1, store) == 0, store.get(job.id).error


def test_geometry_trees_of_an_imported_dataset_open_on_concepts_and_say_why_first(data_dir, monkeypatch):
    """Reported: on an imported dataset "Compute the trees" ran the LM over every question and only
    then said "Too few categories with a WordNet synset to draw trees" (the default view)."""
    from types import SimpleNamespace

    from core import clusters, lens, predict
    _imported(data_dir)
    fake_run(small_cfg(dataset="mine"))
    computed = {}
    monkeypatch.setattr(lens, "load_cached", lambda run_dir: None)
    monkeypatch.setattr(clusters, "load_cached", lambda run_dir, split="test": computed.get(split))
    monkeypatch.setattr(clusters, "compute", lambda run_dir, split="test", **kw:
                        computed.setdefault(split, _trees_of("mine")))
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None:
                                                               SimpleNamespace(vlm=None)))
    at = run_page("app_pages/5_Geometry.py")
    at.selectbox(key="geometry_dataset").set_value("mine").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "categories have a WordNet synset" in texts(at) and "the trees are of concepts" in texts(at)
    at.button(key="trees_go").click().run()                               # said before computing
    assert not at.exception, [e.value for e in at.exception]
    _run_queued_job("clusters")                                           # as the worker would
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert computed and at.radio(key="trees_level").value == "concept"
    assert "Too few" not in texts(at)
    # the fake result, like one computed before clusters noted it, has no note: the page says why
    assert "No category of mine has a WordNet synset (an imported dataset's categories have none), so there " \
           "are no category trees; the concept trees are drawn." in texts(at)
    assert any('"WordNet"' in c.proto.spec for c in at.get("plotly_chart"))


def test_browse_says_why_a_hypernym_score_is_missing(data_dir):
    """Reported: "Seen hypernym macro-F1 —" with no reason when the condition removed every
    concept's hypernym questions; likewise unseen under none."""
    _created(fake_run(small_cfg()), 1)
    removed = _created(fake_run(small_cfg(condition="random:1")), 2)
    at = run_page("app_pages/2_Browse.py")                    # opens on the run under none
    assert {m.label: m.value for m in at.metric}["Unseen hypernym macro-F1"] == "—"
    assert "No unseen hypernym question in this run's test split: its condition (none) removed no " \
           "(concept, category) pair from training." in texts(at)
    at.selectbox(key="browse_run").set_value(removed.name).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Seen hypernym macro-F1"] == "—" and shown["Unseen hypernym macro-F1"] != "—"
    assert "No seen hypernym question in this run's test split: its condition (random:1) removed every " \
           "concept's hypernym questions." in texts(at)
    assert "No unseen hypernym question" not in texts(at)


def test_browse_shows_no_split_filter_without_a_run(data_dir):
    """Reported: with "none: a dataset's images alone" a greyed "test" Split chip stayed, filtering
    nothing."""
    fake_run(small_cfg())
    at = run_page("app_pages/2_Browse.py")
    assert at.multiselect(key="browse_splits_test").value == ["test"]
    at.selectbox(key="browse_run").set_value("none: a dataset's images alone").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any((m.key or "").startswith("browse_splits") for m in at.multiselect)
    assert len(at.get("image")) > 0


def test_geometry_opens_on_the_default_dataset_as_the_other_pages_do(data_dir):
    """Reported: Geometry's Dataset picker opened on the first name (bomtest), the others on concepts."""
    own_datasets_dir(data_dir, also=("bomtest",))
    assert run_page("app_pages/5_Geometry.py").selectbox(key="geometry_dataset").value == "concepts"
    assert run_page("app_pages/2_Browse.py").selectbox(key="browse_dataset").value == "concepts"


def test_browse_shows_a_run_of_another_dataset_version_without_a_split_filter(data_dir):
    """Its split map is empty (the split cannot be rebuilt on other images), and the default Split
    filter then hid every image."""
    from core import runs
    older = fake_run(small_cfg(seed=1), evaluated=True)
    ck = runs.read_json(runs.checkpoint_json(older))
    ck["dataset"]["table_sha256"] = "0" * 64                        # trained before the dataset was rebuilt
    runs.write_json(runs.checkpoint_json(older), ck)
    at = run_page("app_pages/2_Browse.py")
    assert at.selectbox(key="browse_run").value == older.name
    assert not any(m.label == "Split" for m in at.multiselect)
    assert "cannot be rebuilt here" in texts(at) and len(at.get("image")) > 0


def test_results_name_finished_runs_without_a_test_evaluation(data_dir):
    """A walk-through: a sweep run cancelled during its test evaluation was listed as finished on
    Home and left out of Results without a word."""
    fake_run(small_cfg(seed=0))
    stopped = fake_run(small_cfg(seed=1), evaluated=False)
    at = run_page("app_pages/4_Results.py")
    (note,) = [i.value for i in at.info if "have no test evaluation" in i.value]
    assert note.startswith("1 finished run(s)") and stopped.name in note and "taxolens evaluate" in note


@pytest.mark.parametrize("page", ["app_pages/1_Predict.py", "app_pages/5_Geometry.py"])
def test_a_picked_run_stays_picked_when_its_next_epoch_renames_it(data_dir, page):
    """Found by an audit: the pickers' options were the runs' labels, which carry an unfinished
    run's epoch count; after its next epoch the remembered label was gone and the picker went back
    to the preselected checkpoint, so the next answers came from a model nobody chose. The second
    rerun sends back the label shown before, as a browser does."""
    import streamlit as st
    kept = _created(fake_run(small_cfg()), 1)
    training = _created(fake_run(small_cfg(seed=5, condition="random:1"), status="partial", evaluated=False), 2)
    at, box = _pickers(page)
    assert box.value == kept.name
    box.set_value(training.name).run()
    box = at.selectbox(key=box.key)
    shown = box.options[box.index]
    for epoch in (2, 3):
        record = runs.read_json(runs.checkpoint_json(training))
        record.update(epoch=epoch, metrics=record["metrics"] + [{"epoch": epoch, "loss": 0.4}])
        runs.write_json(runs.checkpoint_json(training), record)
        st.cache_data.clear()                                   # the runs list is re-read every 5 s
        if epoch == 2:
            at.run()
        else:
            box.set_value(shown).run()                          # the label shown before, sent back
        assert not at.exception, [e.value for e in at.exception]
        box = at.selectbox(key=box.key)
        assert box.value == training.name and f"partial, {epoch} epoch(s)" in box.options[box.index]
        shown = box.options[box.index]


def test_browse_split_filter_follows_the_evaluated_split(data_dir):
    """Found by an audit: switching "Evaluated split" from test to val left Split on [test] (a keyed
    multiselect keeps its value when only its default changes), so the grid showed unscored images."""
    run_dir = fake_run(small_cfg())
    shutil.copytree(runs.eval_dir(run_dir, "test"), runs.eval_dir(run_dir, "val"))
    at = run_page("app_pages/2_Browse.py")
    assert at.selectbox(key="browse_eval_split").value == "test"
    at.selectbox(key="browse_eval_split").set_value("val").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.multiselect if m.label == "Split"] == [["val"]]


def test_browse_without_the_evaluations_answers_shows_the_dataset_and_says_why(data_dir):
    """Found by an audit: metrics.json without questions.csv (an older version's evaluation) ended
    the page in "[Errno 2] No such file or directory"."""
    run_dir = fake_run(small_cfg())
    (runs.eval_dir(run_dir, "test") / runs.QUESTIONS_CSV).unlink()
    at = run_page("app_pages/2_Browse.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("has no test evaluation" in w.value and "dataset's images alone" in w.value for w in at.warning)
    assert len(at.get("image")) > 0


def test_a_runs_split_is_rebuilt_once_its_dataset_is_replaced(data_dir):
    """Found by an audit: the run's image split was cached by the checkpoint's time alone, so after
    "Replace the dataset" Browse kept filtering by a split of images the run was never trained on.
    Here the replacement is what the run's record and the installed dataset.json's time then say."""
    import os
    from core import paths
    run_dir = fake_run(small_cfg())
    at = run_page("app_pages/2_Browse.py")
    assert any(m.label == "Split" for m in at.multiselect)
    ck = runs.read_json(runs.checkpoint_json(run_dir))
    ck["dataset"]["table_sha256"] = "0" * 64                        # another version than the installed one
    runs.write_json(runs.checkpoint_json(run_dir), ck)              # ("updated" as it was: not trained again)
    table = paths.datasets_dir() / "concepts" / "dataset.json"       # the session's copy, shared by tests
    was = table.stat()
    os.utime(table, (was.st_atime, was.st_mtime + 60))
    try:
        import streamlit as st
        st.cache_data.clear()                                       # the runs list is re-read every 5 s
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not any(m.label == "Split" for m in at.multiselect) and "cannot be rebuilt here" in texts(at)
    finally:
        os.utime(table, (was.st_atime, was.st_mtime))
