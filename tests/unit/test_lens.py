"""core.lens with a tiny random LM and a fake encoder: a projector trained to put an image on a known
token's embedding has that token nearest; one trained to make the LM say a known token after the
image has it on top of the logit lens. Plus the "writes the word" token rules."""
from __future__ import annotations

from pathlib import Path

import torch

from core import lens as lens_mod
from core.data.datasets import Category, Concept, Dataset
from test_models import tiny_lm, tiny_vlm


def two_images(vlm) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 16, vlm.encoder.dim)


def target_ids(vlm) -> list[int]:
    return [vlm.lm.tokens(" dog")[0], vlm.lm.tokens(" tool")[0]]


def test_projector_trained_onto_token_embeddings_has_them_nearest():
    vlm = tiny_vlm(kind="linear", k=1)
    feats, targets = two_images(vlm), target_ids(vlm)
    goal = vlm.lm.embed(torch.tensor(targets)).detach()
    opt = torch.optim.Adam(vlm.projector.parameters(), lr=0.05)
    for _ in range(60):
        loss = 1 - torch.nn.functional.cosine_similarity(vlm.prefix(feats)[:, 0], goal).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    lens = lens_mod.Lens(vlm)
    for i, target in enumerate(targets):
        view = lens.image(feats[i:i + 1], top=3)
        assert view["image_tokens"][0]["nearest"][0]["id"] == target
        assert view["image_tokens"][0]["nearest"][0]["score"] > 0.95
    near, _ = lens.token_sets(feats, top=1)
    assert near == [{targets[0]}, {targets[1]}]


def test_projector_trained_to_say_a_token_tops_the_logit_lens():
    vlm = tiny_vlm(kind="linear", k=1)
    feats, targets = two_images(vlm), target_ids(vlm)
    lens = lens_mod.Lens(vlm)
    opt = torch.optim.Adam(vlm.projector.parameters(), lr=0.05)
    for _ in range(60):
        embeds = vlm.prefix_embeds(feats, with_question=False)
        logits = vlm.lm.model(inputs_embeds=embeds).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for i, target in enumerate(targets):
        view = lens.image(feats[i], top=5)
        # a random 2-layer LM spreads its mass thinly: the target is on top, far above the text alone
        assert view["next"][0]["id"] == target
        assert view["lifted"][0]["id"] == target and view["lifted"][0]["log_ratio"] > 0.5
        probs = lens.next_probs(feats[i:i + 1])[0]
        assert abs(float(probs.sum()) - 1) < 1e-4


def test_image_view_is_json_able_and_shows_spaces():
    import json
    vlm = tiny_vlm(k=4)
    view = lens_mod.Lens(vlm).image(two_images(vlm)[:1], top=4)
    assert len(view["image_tokens"]) == 4 and all(len(t["nearest"]) == 4 for t in view["image_tokens"])
    json.dumps(view)
    assert lens_mod.shown(" dog") == "␣dog" and lens_mod.shown("") == "∅"


def test_first_token_rule_and_concept_words(data_dir):
    lm = tiny_lm()
    ids = lens_mod.first_token_ids(lm, ["dog", "tool"])
    assert lm.tokens(" dog")[0] in ids and lm.tokens(" tool")[0] in ids
    # a word the toy vocabulary splits into short pieces: its first piece is too short to count
    assert not {i for i in lens_mod.first_token_ids(lm, ["xq"]) if len(lm.tokenizer.decode([i]).strip()) < 2}
    ds = Dataset("t", Path("."), {"dog": Concept("dog", "dog", "dog.n.01", ("animal",))},
                 {"animal": Category("animal", "animal", "animal.n.01")}, [])
    names, hypers = lens_mod.concept_words(ds, "dog")
    assert names[0] == "dog" and "domestic dog" in names
    assert {"animal", "canine", "carnivore", "mammal"} <= set(hypers)
    assert not {"entity", "physical entity", "object", "whole"} & set(hypers)    # too general to count
    targets = lens_mod.WordTargets(lm, ds)
    name_ids, hyper_ids = targets("dog")
    assert not name_ids & hyper_ids
    assert targets.hits({lm.tokens(" dog")[0]}, "dog") == {"name": True, "hypernym": False}


def test_category_shares_count_every_category_of_an_image():
    ds = Dataset("t", Path("."), {"dog": Concept("dog", "dog", None, ("animal", "mammal")),
                                  "cup": Concept("cup", "cup", None, ("container",))},
                 {k: Category(k, k, None) for k in ("animal", "mammal", "container")}, [])
    rows = [{"image_id": "a", "concept": "dog", "labelled_as": "dog", "nearest_true_name": True,
             "nearest_true_hypernym": False, "nearest_chance_name": False, "nearest_chance_hypernym": False},
            {"image_id": "b", "concept": "dog", "labelled_as": "dog", "nearest_true_name": False,
             "nearest_true_hypernym": True, "nearest_chance_name": False, "nearest_chance_hypernym": False},
            {"image_id": "c", "concept": "cup", "labelled_as": "cup", "nearest_true_name": False,
             "nearest_true_hypernym": False, "nearest_chance_name": True, "nearest_chance_hypernym": False}]
    shares = {r["category"]: r for r in lens_mod.category_shares(ds, rows)}
    assert shares["all"]["n"] == 3 and shares["mammal"]["n"] == 2
    assert shares["mammal"]["nearest_true_name"] == 0.5 and shares["mammal"]["nearest_true_any"] == 1.0
    assert shares["container"]["nearest_chance_any"] == 1.0 and shares["all"]["nearest_true_any"] == 2 / 3
