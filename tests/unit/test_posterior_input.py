"""projector_input = "posterior": the projector's frozen concept probe in front of its MLP, the
out-of-fold inputs training feeds past it, and the config's checks."""
import re

import pytest
import torch

from core.base import ConfigError
from core.config import TrainConfig
from core.models import checkpoint, registry
from core.models.projector import Projector
from core.models.vlm import LossBatch, VLM
from tests.unit.test_models import tiny_vlm

D, C = 8, 5


def _fitted(seed: int = 0) -> Projector:
    proj = Projector("gelu-mlp", D, 16, 2.0, seed=seed, hidden=12, tokens=2, classes=C)
    torch.manual_seed(seed + 1)
    proj.posterior.set(torch.nn.Linear(D, C), torch.randn(D), torch.rand(D) + 0.5)
    return proj


def test_the_probe_runs_in_front_unless_training_hands_posteriors_past_it():
    proj = _fitted()
    x = torch.randn(3, 1, D)
    posterior = proj.posterior(x)
    assert posterior.shape == (3, 1, C) and torch.allclose(posterior.sum(-1), torch.ones(3, 1))
    assert torch.allclose(proj(x), proj(posterior, posteriors=True))
    assert proj(x).shape == (3, 2, 16)
    with pytest.raises(ValueError, match="posterior inputs need"):
        Projector("gelu-mlp", D, 16, 2.0)(posterior, posteriors=True)


def test_the_probe_is_state_but_never_trained():
    proj = _fitted()
    assert {"posterior.weight", "posterior.bias", "posterior.mean", "posterior.std"} <= set(proj.state_dict())
    assert all(not n.startswith("posterior") for n, _ in proj.named_parameters())
    assert proj.net[0].in_features == C and proj.norm.normalized_shape == (C,)
    with pytest.raises(ValueError, match="does not fit"):
        proj.posterior.set(torch.nn.Linear(D, C + 1), torch.zeros(D), torch.ones(D))
    with pytest.raises(ValueError, match="cannot also start as a probe"):
        proj.init_as_probe(torch.randn(10, D), torch.zeros(10, dtype=torch.long), C)


@pytest.mark.parametrize("projector_input", ["posterior", "features+posterior"])
def test_training_loss_on_posteriors_equals_the_loss_on_the_features_they_come_from(projector_input):
    # features+posterior: training's rows are the feature, then its posterior
    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input=projector_input, projector_hidden=None, projector_tokens=1)
    registry.use_posterior_input(vlm, cfg, C)
    torch.manual_seed(0)
    vlm.projector.posterior.set(torch.nn.Linear(vlm.encoder.dim, C), torch.zeros(vlm.encoder.dim),
                                torch.ones(vlm.encoder.dim))
    feats = torch.randn(2, 1, vlm.encoder.dim)
    texts, answers, owner = ["Is there a dog?", "Is there a cat?", "Is there a fox?"], [True, False, True], [0, 1, 1]
    on_feats = VLM.joint_loss([vlm], [LossBatch(feats, texts, answers, owner)])[0]
    post = vlm.projector.with_posterior(feats)
    assert post.shape[-1] == C + (vlm.encoder.dim if projector_input == "features+posterior" else 0)
    on_post = VLM.joint_loss([vlm], [LossBatch(post, texts, answers, owner, posteriors=True)])[0]
    assert torch.allclose(on_feats, on_post, atol=1e-5)
    on_post.backward()
    assert vlm.projector.net[0].weight.grad is not None
    assert all(p.grad is not None for p in vlm.projector.norm.parameters())     # both norms, when split


def test_a_checkpoint_sizes_the_projector_by_its_stored_probe():
    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input="posterior", projector_hidden=None, projector_tokens=1)
    registry.use_posterior_input(vlm, cfg, 7)
    vlm.projector.posterior.bias.fill_(0.25)
    state = vlm.projector_state()
    fresh = tiny_vlm(k=1)
    checkpoint.fit_posterior_input(fresh, cfg, state)
    fresh.load_projector_state(state)
    assert fresh.projector.classes == 7 and torch.equal(fresh.projector.posterior.bias, torch.full((7,), 0.25))
    plain = tiny_vlm(k=1)
    checkpoint.fit_posterior_input(plain, TrainConfig(), plain.projector_state())     # features: untouched
    assert plain.projector.posterior is None


@pytest.mark.parametrize("clash", [dict(image_tokens=4), dict(grid_crop=3),
                                   dict(projector_init="probe")])
def test_posterior_input_refuses_what_its_global_pool_probe_cannot_read(clash):
    with pytest.raises(ConfigError, match="projector_input 'posterior'"):
        TrainConfig(projector_input="posterior", **clash).validate()


def test_projector_input_must_be_a_known_one():
    with pytest.raises(ConfigError, match="projector_input must be"):
        TrainConfig(projector_input="logits").validate()
    TrainConfig(projector_input="posterior").validate()


def test_a_shipped_state_stores_the_probe_weight_as_int8_rows_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(C, D) * torch.tensor([0.01, 0.1, 1.0, 10.0, 0.0])[:, None]     # rows of every scale, one zero
    state = {"posterior.weight": w, "posterior.std": torch.full((D,), 1e-6), "net.0.weight": torch.randn(3, C)}
    stored = checkpoint.shipped_state(state)
    assert stored["posterior.weight.int8"].dtype == torch.int8 and "posterior.weight" not in stored
    assert stored["posterior.std"].dtype == torch.float32 and bool((stored["posterior.std"] > 0).all())
    assert stored["net.0.weight"].dtype == torch.float16
    back = checkpoint.unpacked_state(stored)
    assert set(back) == set(state)
    step = w.abs().amax(-1, keepdim=True) / 127
    assert bool(((back["posterior.weight"] - w).abs() <= step / 2 + 1e-7).all())
    assert torch.equal(back["posterior.weight"][-1], torch.zeros(D))


def test_the_app_offers_a_run_of_the_shipped_recipe_but_not_of_another_option(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from core import runs
    from core.config import SHIPPED_RECIPE

    def run(name, cfg, score):
        return SimpleNamespace(run_id=name, path=tmp_path / name, finished=True, config=cfg,
                               checkpoint={"best": {"score": score}})

    shipped, leaf_only = TrainConfig(seed=0, **SHIPPED_RECIPE).split_leaf_only()
    listed = [run("first", shipped, 0.80), run("leaf", shipped.leaf_stage("first", **leaf_only), 0.81),
              run("other", TrainConfig(seed=0, projector_init="probe"), 0.99)]
    monkeypatch.setattr(runs, "list_runs", lambda: listed)
    monkeypatch.setattr(runs.DatasetVersions, "checkpoint_is_current", lambda self, ck, name=None: True)
    assert runs.default_checkpoint() == tmp_path / "leaf"          # its first stage is superseded
    assert runs.default_checkpoint(TrainConfig()) is None          # asked for the features recipe only


TINY_VIEWS = dict(dataset="tiny", augment_views=2, projector_hidden=None, projector_tokens=1, device="cpu")


def posterior_inputs_case(cfg: TrainConfig):
    """What train.posterior_inputs reads for a posterior-reading `cfg` on the tiny dataset (with the
    fake VLM installed): its run data, a tiny VLM given that input, and seeded training features with
    two random views each, (N, 1, D) and (N, 1 + V, 1, D)."""
    from core import rundata

    data = rundata.prepare(cfg)
    n = len(data.images("train"))
    vlm = tiny_vlm(k=1)
    registry.use_posterior_input(vlm, cfg, len(data.dataset.concepts))
    torch.manual_seed(0)
    feats = torch.randn(n, 1, vlm.encoder.dim)
    views = torch.cat([feats[:, None], torch.randn(n, 2, 1, vlm.encoder.dim)], 1)
    return data, vlm, feats, views


def test_posterior_inputs_fit_the_probe_on_views_and_train_on_their_out_of_fold_posteriors(tmp_path, monkeypatch):
    import fake_vlm
    from core import image_probe, train

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)
    cfg = TrainConfig(projector_input="posterior", **TINY_VIEWS)
    data, vlm, feats, views = posterior_inputs_case(cfg)
    n, classes = len(feats), len(data.dataset.concepts)
    fits = []
    real_fit = image_probe.fit_softmax
    monkeypatch.setattr(image_probe, "fit_softmax", lambda x, y, c, seed=0, on_step=None: (
        fits.append(len(x)), real_fit(x, y, c, seed, on_step))[1])
    posteriors, view_posteriors, fit = train.posterior_inputs(cfg, vlm, data, feats, views)
    assert fits[0] == 3 * n                            # the projector's own probe: every image and view
    assert posteriors.shape == (n, 1, classes) and view_posteriors.shape == (n, 3, 1, classes)
    assert not torch.allclose(view_posteriors[:, 1], posteriors)   # its views are answered on their own
    x = feats[:, 0]
    y = torch.tensor([sorted(data.dataset.concepts).index(im.concept) for im in data.images("train")])
    expected = image_probe.out_of_fold(x, y, classes, seed=cfg.seed, views=views[:, 1:, 0])
    assert torch.allclose(view_posteriors[:, :, 0], expected)
    assert fit["views"] == 2 and 0 <= fit["views_out_of_fold_top1"] <= 1
    plain, none, plain_fit = train.posterior_inputs(cfg, vlm, data, feats)           # without views: as before
    assert none is None and "views" not in plain_fit
    assert torch.allclose(plain[:, 0], image_probe.out_of_fold(x, y, classes, seed=cfg.seed))


def _topk(k: int = 2) -> Projector:
    proj = Projector("gelu-mlp", D, 16, 2.0, hidden=12, tokens=2, classes=C, topk=k)
    proj.set_concept_rows(torch.arange(C, dtype=torch.float32)[:, None].expand(C, 16) * 10)
    return proj


def test_topk_tokens_are_the_posteriors_most_likely_concepts_in_rank_order_after_the_mlps():
    proj = _topk()
    torch.nn.init.zeros_(proj.share.weight)
    torch.nn.init.zeros_(proj.share.bias)
    post = torch.tensor([[[0.1, 0.05, 0.6, 0.05, 0.2]], [[0.0, 0.7, 0.0, 0.3, 0.0]]])    # (2, 1, C)
    out = proj(post, posteriors=True)
    assert out.shape == (2, 2 + 2, 16)
    assert torch.allclose(out[:, :2], proj._project(post))                 # the MLP's two tokens first
    assert torch.equal(out[0, 2:, 0], torch.tensor([20.0, 40.0]))          # concepts 2, then 4
    assert torch.equal(out[1, 2:, 0], torch.tensor([10.0, 30.0]))          # concepts 1, then 3
    torch.nn.init.ones_(proj.share.weight)                                 # the share reaches its token
    shifted = proj(post, posteriors=True)[0, 2:, 0] - torch.tensor([20.0, 40.0])
    p = torch.tensor([0.6, 0.2])
    assert torch.allclose(shifted, p + p.log() / 10, atol=1e-5)


def test_topk_rows_and_share_are_trained_and_the_mlp_scale_is_set_as_without_them():
    proj = _topk()
    names = {n for n, _ in proj.named_parameters()}
    assert {"concept_rows", "share.weight", "share.bias"} <= names
    plain = Projector("gelu-mlp", D, 16, 2.0, hidden=12, tokens=2, classes=C)
    assert torch.equal(plain.net[-1].weight, proj.net[-1].weight)          # same init, same output scale
    post = torch.softmax(torch.randn(3, 1, C), -1)
    proj(post, posteriors=True)[:, 2:].sum().backward()
    assert proj.concept_rows.grad is not None and proj.share.weight.grad is not None
    with pytest.raises(ValueError, match="do not fit"):
        proj.set_concept_rows(torch.zeros(C + 1, 16))
    with pytest.raises(ValueError, match="top-k concept tokens need"):
        Projector("gelu-mlp", D, 16, 2.0, classes=C, topk=C + 1)
    with pytest.raises(ValueError, match="top-k concept tokens need"):
        Projector("gelu-mlp", D, 16, 2.0, topk=2)


def test_projector_topk_needs_the_posterior_input():
    with pytest.raises(ConfigError, match="projector_topk needs projector_input 'posterior'"):
        TrainConfig(projector_topk=3).validate()
    with pytest.raises(ConfigError, match="projector_topk"):
        TrainConfig(projector_input="posterior", projector_topk=-1).validate()
    TrainConfig(projector_input="posterior", projector_topk=5).validate()


def test_a_topk_checkpoint_round_trips_with_its_rows_stored_as_int8():
    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input="posterior", projector_hidden=None, projector_tokens=1, projector_topk=3)
    registry.use_posterior_input(vlm, cfg, 7)
    assert vlm.projector.topk == 3 and vlm.projector.concept_rows.shape == (7, vlm.lm.hidden_size)
    stored = checkpoint.shipped_state(vlm.projector_state())
    assert stored["concept_rows.int8"].dtype == torch.int8 and "concept_rows" not in stored
    state = checkpoint.unpacked_state(stored)
    fresh = tiny_vlm(k=1)
    checkpoint.fit_posterior_input(fresh, cfg, state)
    fresh.load_projector_state(state)
    step = vlm.projector.concept_rows.abs().amax(-1, keepdim=True) / 127
    assert bool(((fresh.projector.concept_rows - vlm.projector.concept_rows).abs() <= step / 2 + 1e-6).all())
    feats = torch.randn(2, 1, vlm.encoder.dim)
    assert vlm.prefix(feats).shape == fresh.prefix(feats).shape == (2, 1 + 3, vlm.lm.hidden_size)


def test_posterior_inputs_start_the_topk_rows_at_the_concepts_name_embeddings(tmp_path, monkeypatch):
    import fake_vlm
    from core import rundata, train

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)
    cfg = TrainConfig(dataset="tiny", projector_input="posterior", projector_hidden=None, projector_tokens=1,
                      projector_topk=2, device="cpu")
    data = rundata.prepare(cfg)
    vlm = tiny_vlm(k=1)
    registry.use_posterior_input(vlm, cfg, len(data.dataset.concepts))
    feats = torch.randn(len(data.images("train")), 1, vlm.encoder.dim)
    train.posterior_inputs(cfg, vlm, data, feats)
    column = rundata.posterior_columns(data.dataset)
    for concept, j in column.items():
        ids = vlm.lm.tokens(" " + data.dataset.concepts[concept].label)
        expected = vlm.lm.embed(torch.tensor(ids)).float().mean(0)
        assert torch.allclose(vlm.projector.concept_rows[j], expected, atol=1e-6), concept


def test_runs_with_and_without_topk_tokens_step_apart_and_one_lm_pass_refuses_to_mix_them():
    from core import train

    plain = TrainConfig(projector_input="posterior")
    topk = TrainConfig(projector_input="posterior", projector_topk=5)
    assert train.share_key(plain) == train.share_key(topk)      # one frozen LM and encoder
    assert train.step_key(plain) != train.step_key(topk)        # but prefixes of 4 and 4 + 5 tokens
    assert train.step_key(plain) == train.step_key(TrainConfig(projector_input="posterior", seed=1))
    assert train.step_key(TrainConfig(projector_tokens=1)) != train.step_key(TrainConfig(projector_tokens=4))

    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input="posterior", projector_hidden=None, projector_tokens=1)
    registry.use_posterior_input(vlm, cfg, C)
    with_topk = VLM(vlm.encoder, vlm.lm, registry.create_projector(
        TrainConfig(projector_input="posterior", projector_hidden=None, projector_tokens=1, projector_topk=2),
        vlm.encoder.dim, vlm.lm, classes=C), 1)
    post = torch.softmax(torch.randn(2, 1, C), -1)
    batch = LossBatch(post, ["Is there a dog?", "Is there a cat?"], [True, False], [0, 1], posteriors=True)
    assert len(VLM.joint_loss([vlm, vlm], [batch, batch])) == 2
    with pytest.raises(ValueError, match=r"image prefixes of one length; got \[(\d+), (\d+)\]") as err:
        VLM.joint_loss([vlm, with_topk], [batch, batch])
    short, long = map(int, re.search(r"got \[(\d+), (\d+)\]", str(err.value)).groups())
    assert long - short == 2                                    # the two top-k tokens
