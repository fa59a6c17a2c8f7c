"""core.train.train_many: several runs in one process, each recorded and resumable as if trained
alone (tiny dataset, fake VLM; the real joint LM pass is checked in tests/integration/test_models_real.py)."""
import json

import pytest
import torch

import fake_vlm
from core import paths, runs, train
from core.config import ConfigError, TrainConfig


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


def _cfg(**kw):
    base = dict(dataset="tiny", epochs=3, batch_size=8, lr=0.05, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _probe():
    return torch.randn(5, fake_vlm.DIM, generator=torch.Generator().manual_seed(3))


def _checkpoint(run_dir):
    return json.loads(runs.checkpoint_json(run_dir).read_text())


def _outputs(run_dir):
    from core.models import checkpoint
    _, vlm = checkpoint.load_trained(run_dir, "cpu")
    with torch.no_grad():
        return vlm.projector(_probe())


CONFIGS = [_cfg(), _cfg(seed=1, condition="random:0.5"), _cfg(epochs=2, condition="random:1")]


def test_runs_trained_together_match_the_same_runs_trained_alone():
    alone = [train.train(c) for c in CONFIGS]
    fake_vlm.FakeVLM.joint_calls = []
    together = train.train_many(CONFIGS)
    assert len(set(together) | set(alone)) == 6                       # a run directory each
    # one shared step per update while all three train; the 2-epoch run stops first
    assert max(fake_vlm.FakeVLM.joint_calls) == 3 and min(fake_vlm.FakeVLM.joint_calls) >= 1
    for a, t, cfg in zip(alone, together, CONFIGS):
        ca, ct = _checkpoint(a), _checkpoint(t)
        assert ct["status"] == "finished" and ct["config"] == cfg.to_dict()
        assert [m["epoch"] for m in ct["metrics"]] == [m["epoch"] for m in ca["metrics"]]
        assert [m["train_loss"] for m in ct["metrics"]] == pytest.approx([m["train_loss"] for m in ca["metrics"]], abs=1e-6)
        assert [m["val_selection"] for m in ct["metrics"]] == pytest.approx([m["val_selection"] for m in ca["metrics"]])
        assert ct["questions"] == ca["questions"] and ct["total_steps"] == ca["total_steps"]
        assert torch.allclose(_outputs(a), _outputs(t), atol=1e-6)
        assert all(m["train_seconds"] > 0 for m in ct["metrics"])


def test_a_random_init_lm_is_its_own_group():
    keys = {train.share_key(c) for c in [_cfg(), _cfg(seed=1), _cfg(lm_init="random"), _cfg(lm_init="random", seed=1)]}
    assert len(keys) == 3              # one pretrained LM for both seeds; a random LM per seed
    assert train.share_key(_cfg(image_tokens=4)) != train.share_key(_cfg())
    fake_vlm.FakeVLM.joint_calls = []
    train.train_many([_cfg(epochs=1), _cfg(epochs=1, lm_init="random")])
    assert set(fake_vlm.FakeVLM.joint_calls) == {1}                   # two groups, one after the other


def test_cancelled_together_then_each_resumed_alone_matches_uninterrupted_runs():
    straight = [train.train(c) for c in CONFIGS[:2]]
    dirs = [runs.create_run_dir(c) for c in CONFIGS[:2]]
    calls = {"n": 0}

    def stop_at_step_5():
        calls["n"] += 1
        return calls["n"] == 6

    with pytest.raises(train.Cancelled):
        train.train_many(CONFIGS[:2], dirs, should_stop=stop_at_step_5)
    for d in dirs:
        ck = _checkpoint(d)
        assert ck["status"] == "cancelled" and (ck["epoch"], ck["step"]) == (0, 5)
    for cfg, d, s in zip(CONFIGS[:2], dirs, straight):
        train.train(cfg, run_dir=d)
        assert torch.allclose(_outputs(d), _outputs(s), atol=1e-6)
        assert [m["train_loss"] for m in _checkpoint(d)["metrics"]] == \
            pytest.approx([m["train_loss"] for m in _checkpoint(s)["metrics"]], abs=1e-6)


def test_finished_runs_return_without_building_a_model_and_bad_configs_fail_first(tmp_path):
    dirs = train.train_many([_cfg(epochs=1), _cfg(epochs=1, seed=1)])
    n = len(fake_vlm.FakeVLM.instances)
    assert train.train_many([_cfg(epochs=1), _cfg(epochs=1, seed=1)], dirs) == dirs
    assert len(fake_vlm.FakeVLM.instances) == n
    before = sorted(paths.runs_dir().iterdir())
    with pytest.raises(ConfigError, match="random ablation ratio"):
        train.train_many([_cfg(seed=5), _cfg(condition="random:1.5")])
    assert sorted(paths.runs_dir().iterdir()) == before            # checked before any run dir is made
    with pytest.raises(ValueError, match="2 configs but 1 run"):
        train.train_many([_cfg(), _cfg(seed=1)], [None])
