"""The default checkpoint that ships in the repo (assets/default-checkpoint), with the real models.

It must fit the installed dataset, load, and show grounding well above chance in its own test
evaluation; the app's "has not learned" note must agree with that evaluation. The issue's bar for a
checkpoint that claims to have learned (no note): on 20 held-out TEST images of distinct concepts it
names the true concept among its top 5 leaves and a true category among its top 3 categories, each
on at least 80 % of them. A checkpoint the app flags as not learned is not held to that bar (the
flag is what the user sees). The 20 images are always asked: the category bar holds, and a leaf
top 5 short of its bar is an expected failure (xfail, with the numbers) only while the checkpoint's
recorded ranking is short of it too. Twenty images are a small sample: `python -m
bench.distinct_ranking RUN` asks the same kind of image (each concept's first test image) for every
concept. For `pvsoft1_s0` (2026-12-06): 18 of these 20 in the top 5, 244 of all 385 (0.634); for
`fc97` (2026-12-07, shipped since): 18 of the 20, 291 of all 385 (0.756)."""
import pytest

from core import evaluate, metrics, paths, rundata, runs
from core.models import checkpoint
from core.predict import Predictor

N_IMAGES = 20          # held-out images of distinct concepts (bench/distinct_ranking.TEST_IMAGES)
BAR = 0.8            # the share of those images with the true leaf in the top 5 (category: top 3)


@pytest.mark.integration
def test_shipped_checkpoint_fits_loads_and_is_above_chance():
    fits, why = checkpoint.shipped_fit()
    assert fits, why
    info, vlm = checkpoint.load_trained(paths.SHIPPED_CHECKPOINT, "cpu")   # frozen-weight checksum checked here
    # `taxolens train --ship` of the default config or the shipped recipe, or either with --leaf-stage
    assert info.finished and runs.follows_recipe(info.config), info.config
    m = runs.load_metrics(paths.SHIPPED_CHECKPOINT, "test")
    assert metrics.is_current(m)
    h = metrics.headline(m)
    print({k: h[k] for k in ("leaf_accuracy", "leaf_concept_f1", "seen_category_f1", "seen_chance_f1")})
    assert h["leaf_accuracy"] >= 0.7                                   # chance: 0.5 (one yes, one no per image)
    assert h["seen_category_f1"] >= h["seen_chance_f1"] + 0.25
    note = runs.learning_note(paths.SHIPPED_CHECKPOINT)
    c = m["confusion"]
    yes_rate = (c["tp"] + c["fp"]) / sum(c.values())
    ranking = runs.load_ranking(paths.SHIPPED_CHECKPOINT)         # every leaf asked, as Predict does
    assert ranking is not None and ranking["images"] >= 20 and ranking["vocabulary"] == len(
        rundata.load_subset(info.config)[0].concepts)
    print({k: ranking[k] for k in ("images", "top1", "top5", "median_rank", "chance_top5")})
    learned = h["leaf_accuracy"] >= runs.LEARNED_LEAF_ACCURACY and yes_rate <= runs.YES_RATE_LIMIT \
        and ranking["top5"] >= runs.LEARNED_TOP5
    assert (note is None) == learned, note


@pytest.fixture(scope="module")
def held_out():
    """The shipped run's data, its 20 chosen test images, its Predictor and the predictions made so
    far (filled by `predicted`): each image is predicted once, by whichever test asks first."""
    note = runs.learning_note(paths.SHIPPED_CHECKPOINT)
    if note is not None:
        pytest.skip(f"the shipped checkpoint is flagged in the app as not learned ({note}), so the "
                    f"issue's top-5 / top-3 bar does not apply to it yet")
    info = runs.load_run(paths.SHIPPED_CHECKPOINT)
    data = rundata.prepare(info.config)
    by_concept = evaluate.first_image_per_concept(data.images("test"))       # as bench/distinct_ranking
    chosen = [by_concept[c] for c in evaluate.evenly_spaced(sorted(by_concept), N_IMAGES)]
    return {"data": data, "chosen": chosen, "predictor": Predictor.load(paths.SHIPPED_CHECKPOINT), "done": {}}


def predicted(held_out, i: int):
    done = held_out["done"]
    if i not in done:
        done[i] = held_out["predictor"].predict(held_out["chosen"][i].path, top_k=5)
    return done[i]


# One test per image, so the file holds many small tests: `make test`'s xdist scheduler gives a
# worker another file whenever 2 or fewer of its assigned tests are left, and one 6-minute test
# used to pull the worker tests in behind it on the same core (8 min 11 s; 2026-12-06).
@pytest.mark.integration
@pytest.mark.parametrize("i", range(N_IMAGES))
def test_shipped_checkpoint_answers_a_held_out_image_with_a_ranked_leaf_list_chain_and_categories(held_out, i):
    pred = predicted(held_out, i)
    dataset = held_out["data"].dataset
    im = held_out["chosen"][i]
    leaves = [leaf["concept"] for leaf in pred.leaves]
    p_leaves = [leaf["p_yes"] for leaf in pred.leaves]
    p_categories = [c["p_yes"] for c in pred.categories]
    print(f"{im.concept:>18} ({im.style}): top-5 {leaves}; top-3 categories "
          f"{sorted(c['category'] for c in pred.categories[:3])}")
    assert len(set(leaves)) == 5 and set(leaves) <= set(dataset.concepts) and pred.best == leaves[0]
    assert p_leaves == sorted(p_leaves, reverse=True) and all(0.0 <= p <= 1.0 for p in p_leaves)
    assert {c["category"] for c in pred.categories} == set(dataset.categories)
    assert p_categories == sorted(p_categories, reverse=True)
    leaf_synset = dataset.concepts[pred.best].synset            # the default dataset's are WordNet synsets
    assert pred.chains and all(chain[0].synset == leaf_synset and chain[-1].synset == "entity.n.01"
                               for chain in pred.chains)


@pytest.mark.integration
def test_shipped_checkpoint_grounds_held_out_images(held_out):
    recorded = runs.load_ranking(paths.SHIPPED_CHECKPOINT)
    dataset = held_out["data"].dataset
    top1 = top5 = cat3 = 0
    for i, im in enumerate(held_out["chosen"]):
        pred = predicted(held_out, i)
        leaves = [leaf["concept"] for leaf in pred.leaves]
        cats = {c["category"] for c in pred.categories[:3]}
        top1 += leaves[0] == im.concept
        top5 += im.concept in leaves
        cat3 += bool(set(dataset.concepts[im.concept].categories) & cats)
    print(f"top-1 leaf {top1}/{N_IMAGES}, top-5 leaf {top5}/{N_IMAGES}, category in top 3 {cat3}/{N_IMAGES}")
    assert cat3 >= BAR * N_IMAGES
    if top5 < BAR * N_IMAGES:
        # Short of the leaf bar: known, and recorded as such, or this is a regression.
        assert recorded["top5"] < BAR, f"top-5 {top5}/{N_IMAGES} here, {recorded['top5']:.0%} recorded"
        pytest.xfail(f"the right leaf in the top 5 for {top5}/{N_IMAGES} images ({recorded['top5']:.0%} of "
                     f"{recorded['images']} in the recorded ranking): trusted by the app (>= "
                     f"{runs.LEARNED_TOP5:.0%}), short of the issue's bar of {BAR:.0%}")
