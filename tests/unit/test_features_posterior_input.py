"""projector_input = "features+posterior": the feature and its probe's posterior side by side, each
through a LayerNorm of its own; training's out-of-fold rows, the checkpoint, the ranking targets and
the config's checks."""
import pytest
import torch

from core.base import ConfigError
from core.config import TrainConfig
from core.models import checkpoint, registry
from core.models.projector import Projector, SplitNorm
from tests.unit.test_models import tiny_vlm

D, C = 8, 5


def _fitted(topk: int = 0) -> Projector:
    proj = Projector("gelu-mlp", D, 16, 2.0, hidden=12, tokens=2, classes=C, topk=topk, keep_features=True)
    torch.manual_seed(1)
    proj.posterior.set(torch.nn.Linear(D, C), torch.randn(D), torch.rand(D) + 0.5)
    return proj


def test_the_mlp_reads_the_feature_then_its_posterior_each_normalised_on_its_own():
    proj = _fitted()
    assert proj.net[0].in_features == D + C and isinstance(proj.norm, SplitNorm)
    x = torch.randn(3, 1, D)
    row = proj.with_posterior(x)
    assert row.shape == (3, 1, D + C) and torch.equal(row[..., :D], x)
    assert torch.allclose(row[..., D:], proj.posterior(x))
    assert torch.allclose(proj(x), proj(row, posteriors=True)) and proj(x).shape == (3, 2, 16)
    normed = proj.norm(row)
    want = torch.cat([torch.nn.functional.layer_norm(x, (D,)), torch.nn.functional.layer_norm(row[..., D:], (C,))], -1)
    assert torch.allclose(normed, want, atol=1e-5)           # the LayerNorms start as identity affines
    # the feature matters: the same posterior with another feature gives other tokens
    other = torch.cat([torch.randn(3, 1, D), row[..., D:]], -1)
    assert not torch.allclose(proj(other, posteriors=True), proj(row, posteriors=True))


def test_topk_tokens_come_from_the_posterior_columns_of_the_row():
    proj = _fitted(topk=2)
    proj.set_concept_rows(torch.arange(C, dtype=torch.float32)[:, None].expand(C, 16) * 10)
    x = torch.randn(4, 1, D)
    out = proj(x)
    assert out.shape == (4, 2 + 2, 16)
    assert torch.allclose(out[:, 2:], proj.concept_tokens(proj.posterior(x)))


def test_keep_features_needs_classes_and_a_config_builds_it():
    assert not Projector("gelu-mlp", D, 16, 2.0, keep_features=True).keep_features     # no probe, no row
    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input="features+posterior", projector_hidden=None, projector_tokens=1)
    registry.use_posterior_input(vlm, cfg, C)
    assert vlm.projector.keep_features and vlm.projector.net[0].in_features == vlm.encoder.dim + C
    with pytest.raises(ValueError, match="use_posterior_input needs"):
        registry.use_posterior_input(vlm, TrainConfig(), C)


def test_a_checkpoint_round_trips_with_both_norms():
    vlm = tiny_vlm(k=1)
    cfg = TrainConfig(projector_input="features+posterior", projector_hidden=None, projector_tokens=1)
    registry.use_posterior_input(vlm, cfg, 7)
    with torch.no_grad():
        vlm.projector.norm.second.weight.fill_(3.0)
        vlm.projector.posterior.bias.fill_(0.25)
    state = checkpoint.unpacked_state(checkpoint.shipped_state(vlm.projector_state()))
    fresh = tiny_vlm(k=1)
    checkpoint.fit_posterior_input(fresh, cfg, state)
    fresh.load_projector_state(state)
    assert fresh.projector.keep_features and fresh.projector.classes == 7
    assert torch.equal(fresh.projector.norm.second.weight, torch.full((7,), 3.0))
    # a posterior-only config cannot load it: its MLP reads C columns, not D + C
    other = tiny_vlm(k=1)
    checkpoint.fit_posterior_input(other, TrainConfig(projector_input="posterior", projector_hidden=None,
                                                      projector_tokens=1), state)
    with pytest.raises(ValueError):
        other.load_projector_state(state)


@pytest.mark.parametrize("clash", [dict(image_tokens=4), dict(grid_crop=3), dict(projector_init="probe")])
def test_it_refuses_what_its_global_pool_probe_cannot_read(clash):
    with pytest.raises(ConfigError, match="projector_input 'features\\+posterior' reads a probe"):
        TrainConfig(projector_input="features+posterior", **clash).validate()


def test_topk_and_rank_soft_accept_it():
    cfg = TrainConfig(projector_input="features+posterior", projector_topk=3, rank_soft=0.5, rank_negatives=2)
    assert cfg.validate().reads_posterior
    assert not TrainConfig().reads_posterior and TrainConfig(projector_input="posterior").reads_posterior


def test_posterior_inputs_put_each_feature_before_its_out_of_fold_posterior(tmp_path, monkeypatch):
    import fake_vlm
    from core import train
    from tests.unit.test_posterior_input import TINY_VIEWS, posterior_inputs_case

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)
    cfg = TrainConfig(projector_input="features+posterior", **TINY_VIEWS)
    data, vlm, feats, views = posterior_inputs_case(cfg)
    n, classes = len(feats), len(data.dataset.concepts)
    rows, view_rows, fit = train.posterior_inputs(cfg, vlm, data, feats, views)
    alone_cfg = TrainConfig(projector_input="posterior", **TINY_VIEWS)
    alone_vlm = posterior_inputs_case(alone_cfg)[1]      # its projector reads the posterior alone
    post, view_post, _ = train.posterior_inputs(alone_cfg, alone_vlm, data, feats, views)
    assert fit["kind"] == "features+posterior"
    assert rows.shape == (n, 1, vlm.encoder.dim + classes) and view_rows.shape == (n, 3, 1, vlm.encoder.dim + classes)
    assert torch.equal(rows[..., :vlm.encoder.dim], feats) and torch.allclose(rows[..., vlm.encoder.dim:], post)
    assert torch.equal(view_rows[..., :vlm.encoder.dim], views) and torch.allclose(view_rows[..., vlm.encoder.dim:], view_post)
