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
    assert list(table["answer"]) == ["no", "yes"]
    assert "Undecided" in texts(at)                           # the car answer has mass 0.3
    assert fake.asked == ["Is there a marsupial in the image?", "Is there a car in the image?"]  # cached after


def test_predict_streams_the_open_chain(data_dir, monkeypatch):
    at, _, digest = _predict_page(data_dir, monkeypatch)
    at.session_state[f"insight_upload0_{digest}"] = "Open-vocabulary chain"
    at.run()
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
    assert list(lifted["token"]) == ["␣dog"]
