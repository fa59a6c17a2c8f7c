"""Predictor.ask and the open-vocabulary chain, with a tiny VLM and a scripted answerer: a model that
says yes to exactly the kangaroo's WordNet chain must walk down to kangaroo, streaming as it goes,
within its question budget; the blank-image contrast stops a yes-to-everything LM."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from core import taxonomy
from core.data.datasets import Category, Concept, Dataset
from core.predict import Answer, Predictor, as_question
from test_models import naive_scores, tiny_vlm


def predictor() -> Predictor:
    ds = Dataset("t", Path("."), {"dog": Concept("dog", "dog", "dog.n.01", ("animal", "mammal"))},
                 {"animal": Category("animal", "animal", "animal.n.01"),
                  "mammal": Category("mammal", "mammal", "mammal.n.01")}, [])
    return Predictor(SimpleNamespace(run_id="tiny"), tiny_vlm(k=1), ds, torch.device("cpu"))


def scripted(p: Predictor, yes: set[str], blank: float = 0.3, default: float = 0.1):
    """Answer P(yes)=0.9 for the labels in `yes`, `default` otherwise; a blank image gets `blank`."""
    calls = []

    def ask(image, questions):
        calls.append(list(questions))
        return [Answer(as_question(q), 0.9 if q in yes else default, 0.95) for q in questions]
    p.ask = ask
    p._blank_answers = lambda questions: [blank] * len(questions)
    return calls


def test_as_question():
    assert as_question("marsupial") == "Is there a marsupial in the image?"
    assert as_question("  is there   a dog here? ") == "Is there a dog here?"
    assert as_question("apples") == "Are there apples in the image?"
    with pytest.raises(ValueError, match="empty"):
        as_question("   ")
    with pytest.raises(ValueError, match="no words to ask about"):
        as_question(" ?! ")
    long = "Is there " + "a very " * 40 + "dog?"       # reported: 12,000 words ran for minutes
    with pytest.raises(ValueError, match=f"a question of {len(long)} characters: ask one short"):
        as_question(long)
    assert as_question("x" * 150).startswith("Is there")


def test_an_answer_below_the_metrics_mass_is_undecided_in_its_dict_too():
    from core import metrics
    low, high = Answer("Is there a car?", 0.9, metrics.UNDECIDED_MASS - 0.01), Answer("Is there a dog?", 0.2, 0.9)
    assert low.undecided and not high.undecided
    assert low.to_dict()["undecided"] is True and high.to_dict() == {"question": "Is there a dog?", "p_yes": 0.2,
                                                                    "mass": 0.9, "undecided": False}


def test_ask_scores_any_question_with_the_real_prefix():
    p = predictor()
    image = Image.new("RGB", (20, 20), "red")
    answers = p.ask(image, ["marsupial", "Is there a dog in the image?"])
    assert [a.question for a in answers] == ["Is there a marsupial in the image?", "Is there a dog in the image?"]
    feats = p.features(image)[0]
    with torch.no_grad():                  # the answers are the model's: one full pass per question agrees
        for a in answers:
            assert (a.p_yes, a.mass) == pytest.approx(naive_scores(p.vlm, feats, a.question), abs=1e-5)
    assert p.vlm.encoder.calls == 1
    p.ask(image, ["wombat"])
    assert p.vlm.encoder.calls == 1                     # the image's features are remembered


def test_open_chain_walks_down_to_a_concept_outside_the_vocabulary(data_dir):
    p = predictor()
    chain = taxonomy.hypernym_chains("kangaroo.n.01")[0]   # kangaroo ... entity (the shortest chain)
    calls = scripted(p, {taxonomy.display_name(s) for s in chain})
    steps = list(p.open_chain_steps(Image.new("RGB", (8, 8)), beam=1, budget=1000))
    assert [s.questions for s in steps] == sorted(s.questions for s in steps)   # streamed, growing
    walk = steps[-1]
    assert walk.done and not any(s.done for s in steps[:-1])
    assert walk.stopped == "no hyponym in the beam is confident"
    assert [n.synset for n in walk.chains[0]] == chain[:-1]          # kangaroo -> ... -> physical entity
    mammal = next(n for n in walk.chains[0] if n.synset == "mammal.n.01")
    assert mammal.is_category and mammal.category == "mammal"
    assert walk.questions == sum(len(c) for c in calls)
    for node in walk.nodes.values():
        if node.parent:
            assert node.synset in taxonomy.hyponyms(node.parent)
    # beam 1: only the chain's nodes were expanded, so every question is about a child of one of them
    asked_parents = {n.parent for n in walk.nodes.values() if n.parent}
    assert asked_parents <= set(chain)


def test_a_category_without_a_synset_is_marked_on_the_chain_by_its_wording(data_dir):
    """Reported (browser walk-through): on an imported dataset (free-text categories, no synsets)
    the chain's legend promised "◆ = a dataset category" and marked none, though its "reptile" node
    asks the very question of the category "reptile"."""
    ds = Dataset("t", Path("."), {"lizard": Concept("lizard", "lizard", "lizard.n.01", ("reptile", "pet"))},
                 {"reptile": Category("reptile", " Reptile ", None), "pet": Category("pet", "pet", None)}, [])
    p = Predictor(SimpleNamespace(run_id="tiny"), tiny_vlm(k=1), ds, torch.device("cpu"))
    chain = taxonomy.hypernym_chains("lizard.n.01")[0]
    scripted(p, {taxonomy.display_name(s) for s in chain})
    walk = p.open_chain(Image.new("RGB", (8, 8)), beam=1, budget=1000)
    marked = {n.synset: n.category for n in walk.chains[0] if n.is_category}
    assert marked == {"reptile.n.01": "reptile"}            # by wording, case and spacing aside; "pet" is not on it
    assert p._category_of("animal.n.01", "animal") == (False, None)


def test_open_chain_respects_its_budget_and_the_blank_image(data_dir):
    p = predictor()
    scripted(p, set(), default=0.9, blank=0.3)             # yes to everything
    walk = p.open_chain(Image.new("RGB", (8, 8)), beam=2, budget=40)
    assert walk.questions == 40 and walk.stopped == "the budget of 40 questions is spent"
    p = predictor()
    scripted(p, set(), default=0.9, blank=0.95)            # ... but no more than for a blank image
    walk = p.open_chain(Image.new("RGB", (8, 8)), beam=2, budget=40)
    assert walk.chains == [] and walk.questions == 3       # the three children of the root
    assert "with more P(yes) than for a blank image" in walk.notes[0]
    with pytest.raises(ValueError, match="threshold"):
        p.open_chain(Image.new("RGB", (8, 8)), threshold=2)


def test_open_chain_is_json_able(data_dir):
    import json
    p = predictor()
    scripted(p, {"physical entity", "object"})
    walk = p.open_chain(Image.new("RGB", (8, 8)), budget=60)
    json.dumps(walk.to_dict())
    assert walk.to_dict()["chains"][0][0]["label"] == "object"


def test_a_walk_into_abstraction_says_why_it_means_nothing(data_dir):
    p = predictor()
    scripted(p, {"abstraction", "attribute"})
    walk = p.open_chain(Image.new("RGB", (8, 8)), budget=60)
    assert [n.label for n in walk.chains[0]][-1] == "abstraction"
    assert any("runs through abstraction" in note for note in walk.notes)


def test_the_library_calls_refuse_what_a_notebook_user_might_pass(data_dir):
    """Reported from a notebook: ask(image, "mammal") asked one question per character, [None] was
    asked as "Is there a None ...?", a verb start walked verb hyponyms, a bad threshold raised only at
    the first step of the generator, and lens(top=-1) failed inside torch."""
    p = predictor()
    image = Image.new("RGB", (20, 20), "red")
    assert [a.question for a in p.ask(image, "mammal")] == ["Is there a mammal in the image?"]
    reports = []
    p.ask(image, [f"thing {i}" for i in range(40)], progress=lambda f, m: reports.append(f))
    assert reports and reports[-1] == pytest.approx(1.0)        # a long list says where it is
    for bad in ([None], [123]):
        with pytest.raises(ValueError, match="a question is text"):
            p.ask(image, bad)
    with pytest.raises(ValueError, match="start must be a noun synset"):
        p.open_chain_steps(image, start="run.v.01")           # raised at the call, not at next()
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        p.open_chain_steps(image, threshold=2)
    for top in (-1, 0, 100_000, "3"):
        with pytest.raises(ValueError, match="top must be a whole number from 1 to 1000"):
            p.lens(image, top=top)
    for top_k in ("3", 0, 2.5):
        with pytest.raises(ValueError, match="top_k must be a whole number >= 1"):
            p.predict(image, top_k=top_k)
    import numpy as np
    assert len(p.lens(image, top=np.int64(3))["image_tokens"][0]["nearest"]) == 3   # a DataFrame's integer
    assert repr(p).startswith("Predictor('tiny', 1 leaves, 2 categories")
