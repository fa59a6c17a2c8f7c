"""AppTest for the views of issue 11: on Predict, asking any question, the open-vocabulary chain and
the logit lens of one image; on Geometry, category trees against WordNet and the logit lens per
category. Predictors and results are stand-ins (no model loads): the computations themselves are
tested in tests/unit/test_clusters.py, test_lens.py, test_predict_open.py and tests/integration."""
from __future__ import annotations

import hashlib

import numpy as np

from streamlit.testing.v1 import AppTest

from test_pages import APP, _FakePredictor, png_bytes, small_cfg, texts
from app_data import fake_run

TIMEOUT = 180          # generous: these pages draw several charts, and CI machines are shared


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


class _InsightPredictor(_FakePredictor):
    """Answers, an open walk in two steps and a lens view, all made up."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace
        self.dataset = SimpleNamespace(concepts={})
        self.asked = []

    def ask(self, image, questions):
        from core.predict import Answer, as_question
        self.asked += list(questions)
        return [Answer(as_question(q), 0.91 if "marsupial" in q else 0.12, 0.95 if "marsupial" in q else 0.3)
                for q in questions]

    def open_chain_steps(self, image, threshold=0.5, beam=2, budget=300, start="entity.n.01", **kw):
        from core.predict import ChainNode, OpenChain, OpenNode
        nodes = {"entity.n.01": OpenNode("entity.n.01", "entity", None, None, None, None, 0, True)}
        walk = OpenChain("entity.n.01", threshold, beam, budget, True, nodes, [], 0)
        for depth, (name, label, p) in enumerate([("animal.n.01", "animal", 0.8),
                                                  ("marsupial.n.01", "marsupial", 0.7)], start=1):
            parent = "entity.n.01" if depth == 1 else "animal.n.01"
            nodes[name] = OpenNode(name, label, p, 0.9, 0.3, parent, depth, True, name == "animal.n.01",
                                   "animal" if name == "animal.n.01" else None)
            walk.questions += 3
            chain = [ChainNode(n, nodes[n].label, nodes[n].p_yes, nodes[n].is_category, nodes[n].category)
                     for n in (["marsupial.n.01"] if depth == 2 else []) + ["animal.n.01"]]
            walk.chains = [chain]
            if depth == 2:
                walk.done, walk.stopped = True, "no hyponym in the beam is confident"
            yield walk

    def lens(self, image, top=10):
        tok = lambda i, text, s: {"id": i, "text": text, "shown": text.replace(" ", "␣"), "score": s}
        return {"image_tokens": [{"index": 0, "norm": 12.0, "norm_ratio": 6.0,
                                  "nearest": [tok(1, " dog", 0.4), tok(2, " puppy", 0.3)]}],
                "next": [tok(3, ",", 0.3), tok(1, " dog", 0.1)], "baseline_next": [tok(4, "\n", 0.2)],
                "lifted": [{**tok(1, " dog", 0.1), "baseline": 0.001, "log_ratio": 4.6}], "token_norm": 2.0}


def _predict_page(data_dir, monkeypatch):
    from core import predict
    fake = _InsightPredictor()
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
    fake_run(small_cfg(seed=7))
    at = run_page("app_pages/1_Predict.py")
    data = png_bytes("blue")
    at.get("file_uploader")[0].set_value([("roo.png", data, "image/png")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at, fake, hashlib.sha256(data).hexdigest()


def test_predict_answers_any_question_typed_in(data_dir, monkeypatch):
    at, fake, digest = _predict_page(data_dir, monkeypatch)
    assert "Ask about anything" in texts(at)
    at.text_input(key=f"ask_text_upload0_{digest}").set_value("marsupial")
    next(b for b in at.button if b.label == "Ask").click().run()
    at.text_input(key=f"ask_text_upload0_{digest}").set_value("Is there a car in the image?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "question" in df.value.columns)
    assert list(table["question"]) == ["Is there a car in the image?", "Is there a marsupial in the image?"]
    assert list(table["answer"]) == ["undecided", "yes"]      # the car answer has mass 0.3: neither
    assert "Undecided" in texts(at)
    at.text_input(key=f"ask_text_upload0_{digest}").set_value("?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert "'?' has no words to ask about" in texts(at)
    assert fake.asked == ["Is there a marsupial in the image?", "Is there a car in the image?"]  # cached after


def test_predict_streams_the_open_chain(data_dir, monkeypatch):
    at, _, digest = _predict_page(data_dir, monkeypatch)
    at.session_state[f"insight_upload0_{digest}"] = "Open-vocabulary chain"
    at.run()
    # preselected where the best guess's chain passes (dog -> ... -> organism), not the root
    assert at.button(key=f"open_go_upload0_{digest}").label == "Walk WordNet from organism"
    at.selectbox(key=f"open_start_upload0_{digest}").set_value("entity.n.01").run()
    assert at.button(key=f"open_go_upload0_{digest}").label == "Walk WordNet from the root (entity)"
    at.button(key=f"open_go_upload0_{digest}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at)
    assert "**Open-vocabulary chain:** marsupial (0.70) → animal (0.80)" in shown
    charts = at.get("plotly_chart")
    assert len(charts) == 3                                  # chain, categories, the open chain
    at.run()                                                 # a rerun shows the finished walk, not a new one
    assert "marsupial (0.70)" in texts(at) and not at.exception


def test_predict_shows_the_logit_lens(data_dir, monkeypatch):
    at, _, digest = _predict_page(data_dir, monkeypatch)
    at.session_state[f"insight_upload0_{digest}"] = "Where the image lands in the LM"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "6.0× as long as a typical text token" in texts(at)
    assert len(at.get("plotly_chart")) == 2 + 3               # nearest, next, next without the image
    lifted = next(df.value for df in at.dataframe if "log ratio" in df.value.columns)
    assert list(lifted["token"]) == ["␣dog"] and list(lifted["marked"]) == [""]
    # the fake's vocabulary has no words to mark: the caption says no bar is coloured
    assert "None of the tokens below is one of them: every bar is grey." in texts(at)


# --- Geometry: trees against WordNet, the logit lens per category ----------------------------------

def _fake_clusters_result(run_dir, split="test", sources=("encoder", "projector", "answers")):
    """A real core.clusters result over the test data set's concepts, from made-up vectors."""
    from core import clusters, geometry
    from core.data import datasets
    ds = datasets.load_dataset("concepts")
    concepts = [im.concept for im in ds.images]
    rng = np.random.default_rng(0)
    vectors = {s: rng.standard_normal((len(concepts), 6)) for s in sources}
    labelings, _ = geometry.labelings(ds, 0)
    return {"format": 1, "run_id": "fake", "condition": "none", "seed": 0, "split": split,
            "n_images": len(concepts), "sources": list(sources), "notes": [],
            "levels": {level: clusters.level_result(ds, concepts, vectors, labelings, level, n_perm=20)
                       for level in clusters.LEVELS}}


def _fake_lens_result():
    from core import lens
    from core.data import datasets
    ds = datasets.load_dataset("concepts")
    rows = []
    for i, im in enumerate(ds.images):
        row = {"image_id": im.id, "concept": im.concept, "labelled_as": im.concept}
        for view in ("nearest", "next"):
            for who in ("true", "chance"):
                row[f"{view}_{who}_name"] = who == "true" and i % 2 == 0
                row[f"{view}_{who}_hypernym"] = i % 3 == 0
        rows.append(row)
    return {"format": 1, "run_id": "fake", "shuffled": False, "top": 10, "n_images": len(rows), "token_norm": 2.0,
            "image_token_norm": 30.0, "categories": lens.category_shares(ds, rows), "images": rows,
            "examples": {im.concept: ["␣dog", "␣cat"] for im in ds.images},
            "common": [{"id": 1, "shown": "␣slit", "share": 1.0}, {"id": 2, "shown": "␣dog", "share": 0.5}]}


def test_geometry_draws_trees_beside_wordnet_with_scores(data_dir, monkeypatch):
    from core import clusters, lens
    fake_run(small_cfg())
    result = _fake_clusters_result(None)
    monkeypatch.setattr(clusters, "load_cached", lambda run_dir, split="test": result)
    monkeypatch.setattr(lens, "load_cached", lambda run_dir: _fake_lens_result())
    at = run_page("app_pages/5_Geometry.py")
    assert any(s.value == "Category clustering as trees, against WordNet" for s in at.subheader)
    scores = next(df.value for df in at.dataframe if "cophenetic r" in df.value.columns)
    assert set(scores["labeling"]) == {"original", "cross", "within"}
    assert "membership only (random vectors)" in set(scores["view"])
    charts = at.get("plotly_chart")
    titles = [c.proto.spec for c in charts]
    assert any('"WordNet"' in t for t in titles) and any("encoder features, original labels" in t for t in titles)
    assert "equals *original* by construction" in texts(at)
    at.radio(key="trees_level").set_value("concept").run()
    at.selectbox(key="trees_source").set_value("answers").run()
    at.selectbox(key="trees_labeling").set_value("cross").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("answer profiles, cross labels" in c.proto.spec for c in at.get("plotly_chart"))
    assert {b.label for b in at.get("download_button")} >= {"Scores (CSV)", "These two trees (Newick)",
                                                           "Everything (JSON)"}
    # the logit lens per category, below
    assert any(s.value == "Where the images land in the LM" for s in at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Chance (either)"] == "33%" and metrics["Name"] == "50%"
    assert "15.0× as long as a typical text token" in texts(at)
    assert "␣slit (100%), ␣dog (50%)" in texts(at) and "the same words" in texts(at)


def test_geometry_offers_to_compute_trees_and_lens(data_dir, monkeypatch):
    from core import clusters, lens
    fake_run(small_cfg())
    calls = []
    monkeypatch.setattr(clusters, "load_cached", lambda run_dir, split="test": None)
    monkeypatch.setattr(lens, "load_cached", lambda run_dir: None)
    monkeypatch.setattr(clusters, "compute", lambda run_dir, **kw: calls.append(kw["sources"]))
    from core import predict
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: _InsightPredictor()))
    _InsightPredictor.vlm = None
    at = run_page("app_pages/5_Geometry.py")
    box = at.checkbox(key="trees_answers")
    assert "category questions" in box.label and box.value is True        # a small run: cheap enough
    assert at.button(key="lens_go").label.startswith("Compute (")
    assert "taxolens clusters" in texts(at) and "taxolens lens" in texts(at)
    box.uncheck().run()
    at.button(key="trees_go").click().run()            # a job: it outlives the page, a widget touched
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    from core.jobs.store import JobStore
    (job,) = JobStore().list(kind="clusters")
    assert job.spec["sources"] == ["encoder", "projector"] and job.spec["split"] == "test" and calls == []
    assert not any(b.key == "trees_go" for b in at.button)                # its progress instead
    at.button(key="lens_go").click().run()
    assert [j.spec["run"] for j in JobStore().list(kind="lens")] == [job.spec["run"]]


def test_geometry_notes_a_damaged_test_evaluation_and_still_offers_its_views(data_dir, monkeypatch):
    """Found by an audit: Geometry (and Predict, beside each answer) read the learning note with
    runs.learning_note, which raises on an unreadable metrics.json, so the section ended in an
    error; runs.answer_warning makes it a reason not to trust the views instead."""
    from core import clusters, lens, predict, runs
    run_dir = fake_run(small_cfg())
    (runs.eval_dir(run_dir, "test") / runs.METRICS_JSON).write_text("{not json")
    monkeypatch.setattr(clusters, "load_cached", lambda run_dir, split="test": None)
    monkeypatch.setattr(lens, "load_cached", lambda run_dir: None)
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: _InsightPredictor()))
    _InsightPredictor.vlm = None
    at = run_page("app_pages/5_Geometry.py")
    assert not at.error, [e.value for e in at.error]
    assert any("test evaluation cannot be read" in w.value for w in at.warning)
    assert at.button(key="trees_go") and at.button(key="lens_go")
