"""Prediction with the real default models on an image that is not in the dataset: leaf guesses
over the run's vocabulary, the best leaf's WordNet chain(s) leaf → root, and every category."""
import json

import pytest
from PIL import Image, ImageDraw

from core import taxonomy, train
from core.config import TrainConfig
from core.predict import Predictor


@pytest.mark.integration
def test_predict_on_an_outside_image_returns_a_chain(tmp_path):
    cfg = TrainConfig(max_concepts=4, images_per_concept=3, epochs=1, batch_size=16, seed=1, device="cpu")
    run_dir = train.train(cfg, run_dir=tmp_path / "run")
    image = Image.new("RGB", (300, 200), "white")                 # drawn here: in no dataset
    ImageDraw.Draw(image).ellipse((60, 30, 240, 170), fill=(200, 40, 40), outline="black", width=6)

    predictor = Predictor.load(run_dir)
    assert Predictor.load(run_dir) is predictor                   # loaded once, then reused
    pred = predictor.predict(image, top_k=3)
    vocab = predictor.dataset.concepts
    assert len(pred.leaves) == 3 and pred.best == pred.leaves[0]["concept"] in vocab
    assert [l["p_yes"] for l in pred.leaves] == sorted((l["p_yes"] for l in pred.leaves), reverse=True)
    assert {c["category"] for c in pred.categories} == set(predictor.dataset.categories)

    assert pred.chains, pred.notes
    best_synset = vocab[pred.best].synset
    for chain in pred.chains:
        assert chain[0].synset == best_synset and chain[-1].synset == "entity.n.01"
        assert all(0.0 <= n.p_yes <= 1.0 for n in chain)
        for parent in chain[1:]:
            assert taxonomy.is_ancestor(parent.synset, best_synset)
    cats = predictor.dataset.categories
    flagged = {n.category for chain in pred.chains for n in chain if n.is_category}
    own = {k for k in vocab[pred.best].categories if taxonomy.is_ancestor(cats[k].synset, best_synset)}
    assert own and own <= flagged <= set(cats)                   # its categories are marked on the chain
    json.dumps(pred.to_dict())                                    # JSON-able as promised

    # The leaf shortlist with the real bf16 copy of the LM: the leaves it keeps get full scoring's fp32 P(yes).
    full = predictor.predict(image, top_k=len(vocab), full=True)
    saved, predictor.shortlist = predictor.shortlist, 2
    try:
        short = predictor.predict(image, top_k=1)
    finally:
        predictor.shortlist = saved
    exact = {leaf["concept"]: leaf["p_yes"] for leaf in full.leaves}
    assert full.shortlist == 0 and short.shortlist == 2 and len(short.leaves) == 1
    assert short.leaves[0]["p_yes"] == pytest.approx(exact[short.best], abs=1e-5)
    assert [c["p_yes"] for c in short.categories] == pytest.approx([c["p_yes"] for c in full.categories], abs=1e-5)
