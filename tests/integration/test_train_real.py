"""Training and evaluation with the real default encoder and LM on a tiny subset of the default
dataset: a few steps make the loss fall, and evaluation returns per-category F1s."""
import csv
import json

import pytest

from core import questions, rundata, runs, train
from core.config import TrainConfig
from core.evaluate import evaluate

TINY = dict(max_concepts=4, images_per_concept=3, epochs=3, batch_size=8, lr=3e-3, seed=0, device="cpu")


@pytest.mark.integration
def test_few_steps_lower_the_loss_and_evaluation_scores_every_category(tmp_path):
    cfg = TrainConfig(**TINY)
    run_dir = train.train(cfg, run_dir=tmp_path / "run")      # outside data/runs: no stray test runs
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    losses = [m["train_loss"] for m in ck["metrics"]]
    print("train loss per epoch", losses)
    assert ck["status"] == "finished" and len(losses) == 3
    assert losses[-1] < losses[0]

    m = evaluate(run_dir, "test")
    data = rundata.prepare(cfg)
    asked = {q.target for q in data.questions["test"] if q.kind == "hypernym"}
    per_cat = m["hypernym"]["per_category"]
    assert set(per_cat) == asked and all(0.0 <= (v["accuracy"] or 0.0) <= 1.0 for v in per_cat.values())
    assert any(v["f1"] is not None for v in per_cat.values())
    assert m["n_questions"] == len(data.questions["test"])
    with open(runs.eval_dir(run_dir, "test") / "questions.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(0.0 <= float(r["p_yes"]) <= 1.0 and 0.0 < float(r["mass"]) <= 1.0 for r in rows)


@pytest.mark.integration
def test_a_posterior_input_run_trains_evaluates_ships_and_loads_with_its_probe(tmp_path):
    import torch
    from core import features, image_probe
    from core.models import checkpoint

    # rank_mined: mining scores the training images' out-of-fold posteriors through the real LM;
    # rank_soft: the real joint loss with posterior-spread ranking targets over those groups
    cfg = TrainConfig(**{**TINY, "epochs": 1}, projector_input="posterior", rank_mined=2, mine_pool=3,
                      rank_soft=0.5)
    run_dir = train.train(cfg, run_dir=tmp_path / "run")
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["projector_input"]["classes"] == 4 and ck["projector_input"]["images"] > 0
    m = evaluate(run_dir, "test")
    assert m["n_questions"] > 0

    shipped = checkpoint.export_shipped(run_dir, dest=tmp_path / "shipped")
    state = runs.load_tensors(shipped / "checkpoint" / runs.BEST_FILE)
    assert state["posterior.weight.int8"].dtype == torch.int8 and state["posterior.std"].dtype == torch.float32
    assert state["net.0.weight"].dtype == torch.float16
    _, vlm = checkpoint.load_trained(shipped)
    assert vlm.projector.classes == 4

    # The stored probe is the one fitted on the TRAIN images: it names most of them right.
    data = rundata.prepare(cfg)
    items = data.images("train")
    x = features.FeatureCache(vlm.encoder).get(items, pool=1)
    names = sorted(data.dataset.concepts)
    truth = torch.tensor([names.index(im.concept) for im in items])
    assert (vlm.projector.posterior(x)[:, 0].argmax(-1) == truth).float().mean() > 0.9
    # ... and the same fit as image_probe's on these images
    head, _, _ = image_probe.fit_softmax(x[:, 0], truth, 4, cfg.seed)
    assert torch.allclose(vlm.projector.posterior.bias.float(), head.bias, atol=1e-2)
    # Scoring posteriors (what training and its mining hand over) answers as scoring the features
    texts = [[questions.question_text(data.dataset.concepts[c].label) for c in names]] * 2
    direct = vlm.score(x[:2], texts)
    through = vlm.score(vlm.projector.posterior(x[:2]), texts, posteriors=True)
    for a, b in zip(direct, through):
        assert torch.allclose(a.p_yes, b.p_yes, atol=1e-4)


@pytest.mark.integration
def test_a_features_and_posterior_run_trains_evaluates_ships_and_loads(tmp_path):
    import torch
    from core import features
    from core.models import checkpoint

    # rank_mined scores the training rows (feature, then out-of-fold posterior) through the real LM;
    # rank_soft reads the posterior columns of those rows
    cfg = TrainConfig(**{**TINY, "epochs": 1}, projector_input="features+posterior", rank_mined=2, mine_pool=3,
                      rank_soft=0.5)
    run_dir = train.train(cfg, run_dir=tmp_path / "run")
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["projector_input"]["kind"] == "features+posterior" and ck["projector_input"]["classes"] == 4
    assert evaluate(run_dir, "test")["n_questions"] > 0
    shipped = checkpoint.export_shipped(run_dir, dest=tmp_path / "shipped")
    _, vlm = checkpoint.load_trained(shipped)
    assert vlm.projector.keep_features and vlm.projector.net[0].in_features == vlm.encoder.dim + 4
    data = rundata.prepare(cfg)
    x = features.FeatureCache(vlm.encoder).get(data.images("train")[:2], pool=1)
    texts = [[questions.question_text(data.dataset.concepts[c].label) for c in sorted(data.dataset.concepts)]] * 2
    direct = vlm.score(x, texts)
    through = vlm.score(vlm.projector.with_posterior(x), texts, posteriors=True)
    for a, b in zip(direct, through):
        assert torch.allclose(a.p_yes, b.p_yes, atol=1e-4)
    # the tempered-posterior ranking hands each image's feature with its posterior past the probe
    from bench import ranking_calibration
    assert ranking_calibration.main([str(run_dir), "--images", "2", "--val-images", "0",
                                     "--temperatures", "0.5"]) == 0


@pytest.mark.integration
def test_a_posterior_input_run_with_augmented_views_fits_its_probe_on_them(tmp_path):
    import torch
    from core import augment, features, image_probe

    cfg = TrainConfig(**{**TINY, "epochs": 1}, projector_input="posterior", augment_views=1)
    run_dir = train.train(cfg, run_dir=tmp_path / "run")
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["projector_input"]["views"] == 1 and 0 <= ck["projector_input"]["views_out_of_fold_top1"] <= 1
    from core.models import checkpoint
    _, vlm = checkpoint.load_trained(run_dir)
    data = rundata.prepare(cfg)
    items = data.images("train")
    views = [row[0] for row in augment.view_items(items, 1)]
    cache = features.FeatureCache(vlm.encoder)
    x = torch.cat([cache.get(items, pool=1)[:, 0], cache.get(views, pool=1)[:, 0]])
    names = sorted(data.dataset.concepts)
    truth = torch.tensor([names.index(im.concept) for im in items] * 2)
    head, _, _ = image_probe.fit_softmax(x, truth, 4, cfg.seed)      # every image, then every view
    stored = vlm.projector.posterior
    assert torch.allclose(stored.bias.float(), head.bias, atol=1e-4)
    assert torch.allclose(stored.weight.float(), head.weight, atol=1e-4)
    alone, _, _ = image_probe.fit_softmax(x[:len(items)], truth[:len(items)], 4, cfg.seed)
    assert not torch.allclose(stored.weight.float(), alone.weight, atol=1e-4)      # not the images alone
    assert evaluate(run_dir, "test")["n_questions"] > 0
