"""Predictor's leaf shortlist: a bf16 copy of the LM ranks every leaf, and only its top `shortlist`
are scored (in fp32) and ranked. With the real bf16 pass on tiny models, and with a scripted quick
pass that shows which leaves the fp32 pass is asked about. And what a probe-posterior projector
reads (Prediction.reads), shown beside the answers."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from core.data.datasets import Category, Concept, Dataset
from core.predict import Predictor
from core.questions import question_text
from test_models import tiny_vlm

NAMES = ["dog", "cat", "horse", "cow", "sheep", "goat", "pig", "wolf"]


def predictor(shortlist: int) -> Predictor:
    concepts = {n: Concept(n, n, f"{n}.n.01", ("animal",)) for n in NAMES}
    ds = Dataset("t", Path("."), concepts, {"animal": Category("animal", "animal", "animal.n.01")}, [])
    p = Predictor(SimpleNamespace(run_id="tiny"), tiny_vlm(k=1), ds, torch.device("cpu"))
    p.shortlist = shortlist
    return p


def asked(p: Predictor) -> list[list[str]]:
    """Record the texts of every fp32 scoring call."""
    calls, exact = [], p._p_yes

    def record(feats, texts, progress=None):
        calls.append(list(texts))
        return exact(feats, texts, progress)
    p._p_yes = record
    return calls


def test_bf16_twin_shares_the_trained_parts_and_scores_close_to_fp32():
    vlm = tiny_vlm(k=1)
    twin = vlm.bf16_twin()
    assert twin.projector is vlm.projector and twin.encoder is vlm.encoder
    assert {p.dtype for p in twin.lm.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in vlm.lm.model.parameters()} == {torch.float32}      # the original untouched
    feats = torch.randn(1, 16, 8)
    texts = [question_text(n) for n in NAMES]
    exact = vlm.score(feats, [texts])[0].p_yes
    quick = twin.score(feats, [texts])[0].p_yes
    assert not torch.equal(exact, quick) and (exact - quick).abs().max() < 0.05


def test_the_shortlist_ranks_only_the_leaves_the_quick_pass_puts_first_in_fp32(data_dir):
    image = Image.new("RGB", (20, 20), "red")
    full = predictor(0).predict(image, top_k=len(NAMES))
    exact = {leaf["concept"]: leaf["p_yes"] for leaf in full.leaves}
    assert full.shortlist == 0

    p = predictor(3)
    order = sorted(NAMES, key=lambda n: exact[n])                # the quick pass ranks worst first
    p.quick_p_yes = lambda feats, texts: [float(order.index(n)) for n in p.concepts]
    calls = asked(p)
    pred = p.predict(image, top_k=2)
    assert pred.shortlist == 3
    assert sorted(calls[0]) == sorted(question_text(n) for n in order[-3:])    # fp32 asks 3 leaves only
    assert [leaf["concept"] for leaf in pred.leaves] == sorted(order[-3:], key=lambda n: -exact[n])[:2]
    assert all(leaf["p_yes"] == pytest.approx(exact[leaf["concept"]], abs=1e-6) for leaf in pred.leaves)
    assert [c["p_yes"] for c in pred.categories] == pytest.approx([c["p_yes"] for c in full.categories], abs=1e-6)

    calls.clear()
    everything = p.predict(image, top_k=2, full=True)           # full scoring stays one call away
    assert everything.shortlist == 0 and sorted(calls[0]) == sorted(question_text(n) for n in NAMES)
    assert [leaf["concept"] for leaf in everything.leaves] == [leaf["concept"] for leaf in full.leaves[:2]]


def test_the_real_quick_pass_keeps_the_fp32_top_leaves_here(data_dir):
    image = Image.new("RGB", (20, 20), "blue")
    full = predictor(0).predict(image, top_k=3)
    p = predictor(6)
    pred = p.predict(image, top_k=3)
    assert pred.shortlist == 6 and p._quick_vlm is not None
    assert [leaf["concept"] for leaf in pred.leaves] == [leaf["concept"] for leaf in full.leaves]
    assert predictor(6).predict(image, top_k=8).shortlist == 0    # asking for every leaf scores every leaf


def test_what_the_lm_reads_is_the_probe_posterior_of_the_pooled_image_for_a_posterior_projector(data_dir):
    from core.models.projector import Projector

    image = Image.new("RGB", (20, 20), "red")
    p = predictor(0)
    assert p.predict(image).reads == []                           # a projector that reads the features
    lm, enc = p.vlm.lm, p.vlm.encoder
    p.vlm.projector = Projector("gelu-mlp", enc.dim, lm.hidden_size, lm.token_norm(), classes=len(NAMES))
    probe = p.vlm.projector.posterior
    weight = torch.randn(len(NAMES), enc.dim)
    with torch.no_grad():                                          # mean 0, std 1: no standardising
        probe.weight.copy_(weight)
        probe.bias.copy_(torch.arange(len(NAMES), dtype=torch.float32))   # columns: NAMES sorted
    pred = p.predict(image, top_k=3)
    # what the projector is given, written out: the mean of the 4x4 grid through the softmax regression
    grid = p.encode(image)[0]
    share = torch.softmax(weight @ grid.mean(0) + torch.arange(len(NAMES), dtype=torch.float32), -1)
    expected = sorted(zip(sorted(NAMES), share.tolist()), key=lambda cs: -cs[1])[:3]
    assert [r["concept"] for r in pred.reads] == [c for c, _ in expected]
    assert [r["share"] for r in pred.reads] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert pred.reads[0]["label"] == pred.reads[0]["concept"]
    assert pred.to_dict()["reads"] == pred.reads


def test_a_prediction_reports_its_progress_to_the_end():
    """Reported: `taxolens predict` sat silent for 39-79 s; its bar follows these calls."""
    seen = []
    predictor(shortlist=0).predict(Image.new("RGB", (40, 40), (90, 30, 200)), top_k=3,
                                   progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1] == "encoding the image"
    assert any(m.startswith("leaves: scored") for _, m in seen)
    assert any(m.startswith("categories and chain: scored") for _, m in seen)


def test_the_chain_ends_at_the_best_guess_under_its_own_label_and_probability():
    """Reported: "Best guess: pig, P(yes) 1.00" over a chain ending in "hog 0.95": the chain asked its
    leaf again under WordNet's name for the synset (pig.n.01 is hog.n.03)."""
    concepts = {"pig": Concept("pig", "pig", "pig.n.01", ("animal",))}
    ds = Dataset("t", Path("."), concepts, {"animal": Category("animal", "animal", "animal.n.01")}, [])
    p = Predictor(SimpleNamespace(run_id="tiny"), tiny_vlm(k=1), ds, torch.device("cpu"))
    calls = asked(p)
    pred = p.predict(Image.new("RGB", (40, 40), (200, 120, 120)), top_k=1)
    assert pred.best == "pig" and pred.chains
    for chain in pred.chains:
        assert chain[0].synset == "hog.n.03" and chain[0].label == "pig"
        assert chain[0].p_yes == pred.leaves[0]["p_yes"]
        assert chain[-1].synset == "entity.n.01"
    asked_texts = [t for c in calls for t in c]
    assert question_text("hog") not in asked_texts and asked_texts.count(question_text("pig")) == 1
