"""core.runs: run layout, atomic writes, listing, default checkpoint, compatibility."""
import json
import re

import pytest
import torch

from core import runs
from core.config import ConfigError, TrainConfig


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    return tmp_path


def _finish(run_dir, status="finished", epoch=3, created="2026-01-01T00:00:00+00:00"):
    runs.write_json(runs.checkpoint_json(run_dir), {"status": status, "epoch": epoch, "created": created,
                                                    "metrics": [{"epoch": 1, "train_loss": 0.5}]})


def test_run_id_is_readable_and_unique():
    cfg = TrainConfig(condition="random:0.5", seed=7)
    ids = {runs.new_run_id(cfg) for _ in range(50)}
    assert len(ids) > 1
    assert all(re.fullmatch(r"\d{8}-\d{4}_random0\.5_s7_[0-9a-f]{4}", i) for i in ids)
    assert "_systematic-mammal+fish_" in runs.new_run_id(TrainConfig(condition="systematic:mammal+fish"))
    assert "_rndlm_" in runs.new_run_id(TrainConfig(lm_init="random"))


def test_create_and_load_run(data_dir):
    cfg = TrainConfig(seed=3, epochs=2)
    d = runs.create_run_dir(cfg)
    assert d.parent == data_dir / "runs"
    info = runs.load_run(d.name)
    assert info.config == cfg and info.status == "new" and info.epoch == 0 and not info.finished
    _finish(d, epoch=2)
    info = runs.load_run(d)
    assert info.finished and info.epoch == 2 and info.epoch_metrics[0]["train_loss"] == 0.5
    assert json.loads(json.dumps(info.to_dict()))["config"]["seed"] == 3


def test_missing_and_broken_runs_are_clear_errors(data_dir):
    with pytest.raises(runs.RunError, match="no run 'nope'"):
        runs.load_run("nope")
    d = runs.create_run_dir(TrainConfig())
    (d / "config.json").write_text("{not json")
    with pytest.raises(runs.RunError, match="not valid JSON"):
        runs.load_run(d)
    assert runs.list_runs() == []            # unreadable runs are skipped, not fatal
    assert issubclass(runs.RunError, ConfigError)
    newer = runs.create_run_dir(TrainConfig(seed=3))   # written by a TaxoLens with more options
    runs.write_json(newer / "config.json", {**TrainConfig().to_dict(), "ema_decay": 0.99})
    with pytest.raises(runs.RunError, match="unknown training option.*ema_decay"):
        runs.load_run(newer)
    assert runs.list_runs() == []


def test_list_runs_newest_first_and_skips_baselines(data_dir):
    a = runs.create_run_dir(TrainConfig(seed=1))
    b = runs.create_run_dir(TrainConfig(seed=2))
    _finish(a, created="2026-01-01T00:00:00+00:00")
    _finish(b, created="2026-02-01T00:00:00+00:00")
    runs.write_json(runs.baselines_dir() / "majority" / "config.json", TrainConfig().to_dict())
    assert [r.path for r in runs.list_runs()] == [b, a]


def test_default_checkpoint_ignores_seed_but_not_other_options(data_dir):
    assert runs.default_checkpoint() is None
    old = runs.create_run_dir(TrainConfig(seed=5))
    _finish(old, created="2026-01-01T00:00:00+00:00")
    other = runs.create_run_dir(TrainConfig(condition="random:0.5"))
    _finish(other, created="2026-03-01T00:00:00+00:00")
    unfinished = runs.create_run_dir(TrainConfig())
    _finish(unfinished, status="partial", epoch=1, created="2026-04-01T00:00:00+00:00")
    assert runs.default_checkpoint() == old


def test_default_checkpoint_is_the_best_on_validation_then_the_newest(data_dir):
    def finish(seed, created, score):
        d = runs.create_run_dir(TrainConfig(seed=seed))
        _finish(d, created=created)
        ck = runs.read_json(runs.checkpoint_json(d))
        runs.write_json(runs.checkpoint_json(d), {**ck, "best": {"epoch": 3, "score": score}})
        return d

    unscored = runs.create_run_dir(TrainConfig(seed=9))
    _finish(unscored, created="2026-05-01T00:00:00+00:00")         # newest, but no validation score
    best = finish(0, "2026-01-01T00:00:00+00:00", 0.84)
    finish(1, "2026-02-01T00:00:00+00:00", 0.81)
    assert runs.default_checkpoint() == best
    tie = finish(2, "2026-03-01T00:00:00+00:00", 0.84)
    assert runs.default_checkpoint() == tie


def test_check_compatible(data_dir):
    d = runs.create_run_dir(TrainConfig())
    runs.check_compatible(d, "efficientnet-lite2", "smollm2-135m")
    with pytest.raises(ConfigError, match="trained with encoder efficientnet-lite2 / LM smollm2-135m"):
        runs.check_compatible(d, "clip-vit-b32", "smollm2-135m")


def test_tensors_round_trip_and_hash_check(tmp_path):
    t = {"w": torch.arange(6.0).reshape(2, 3), "step": torch.tensor([4])}
    sha = runs.save_tensors(tmp_path / "x.safetensors", t, {"kind": "test"})
    back = runs.load_tensors(tmp_path / "x.safetensors", sha)
    assert torch.equal(back["w"], t["w"]) and torch.equal(back["step"], t["step"])
    runs.save_tensors(tmp_path / "x.safetensors", {"w": torch.zeros(1)})
    with pytest.raises(runs.RunError, match="does not match"):
        runs.load_tensors(tmp_path / "x.safetensors", sha)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(runs.RunError, match="not a readable safetensors"):
        runs.load_tensors(tmp_path / "bad.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))   # no temp files left behind


def test_write_json_refuses_nan_without_touching_old_file(tmp_path):
    p = tmp_path / "m.json"
    runs.write_json(p, {"a": 1})
    with pytest.raises(ValueError):
        runs.write_json(p, {"a": float("nan")})
    assert json.loads(p.read_text()) == {"a": 1}


def test_load_metrics(data_dir):
    d = runs.create_run_dir(TrainConfig())
    assert runs.load_metrics(d) is None
    runs.write_json(runs.eval_dir(d, "test") / "metrics.json", {"accuracy": 0.75})
    assert runs.load_metrics(d.name, "test") == {"accuracy": 0.75}
    assert runs.load_run(d).evaluated == ["test"]
    with pytest.raises(runs.RunError, match="split must be"):
        runs.load_metrics(d, "dev")


def test_follows_recipe_matches_the_default_and_shipped_recipes_and_their_leaf_stages_only():
    from core.config import SHIPPED_RECIPE

    asked = TrainConfig(seed=2, device="cpu", **SHIPPED_RECIPE)
    shipped, leaf_only = asked.split_leaf_only()                         # as --leaf-stage trains it
    assert leaf_only == {"rank_soft": 1.0} and shipped.rank_soft == 0.0
    assert runs.follows_recipe(TrainConfig(seed=1))
    assert runs.follows_recipe(shipped)                                  # seed and device do not matter
    assert runs.follows_recipe(shipped.leaf_stage("first", **leaf_only))
    assert not runs.follows_recipe(shipped.leaf_stage("first"))         # the leaf stage before rank_soft
    assert not runs.follows_recipe(asked)                                # rank_soft in the first stage
    assert not runs.follows_recipe(TrainConfig(augment_views=2))        # half the shipped recipe
    assert not runs.follows_recipe(TrainConfig(lr=3e-4))                # the leaf stage's lr, not its stage
    only_features = [TrainConfig()]
    assert not runs.follows_recipe(shipped, only_features)
    assert runs.follows_recipe(TrainConfig().leaf_stage("first"), only_features)


def test_a_run_killed_before_its_first_checkpoint_json_is_discarded_with_what_it_wrote():
    """A first save killed after staging its tensors (NAME.next) and before checkpoint.json: the
    folder holds config.json, a log and staged or moved tensors, none of them a checkpoint."""
    run_dir = runs.create_run_dir(TrainConfig(seed=1))
    ckdir = runs.checkpoint_dir(run_dir)
    (run_dir / "log").write_text("started\n")
    for name in (runs.PROJECTOR_FILE, runs.TRAIN_STATE_FILE, runs.BEST_FILE):
        runs.save_tensors(runs.staged_path(ckdir / name), {"w": torch.zeros(2)})
    runs.save_tensors(ckdir / runs.PROJECTOR_FILE, {"w": torch.zeros(2)})
    assert runs.discard_unstarted(run_dir) and not run_dir.exists()

    kept = runs.create_run_dir(TrainConfig(seed=2))                      # a saved run is kept whole
    _finish(kept, status="partial", epoch=1)
    runs.save_tensors(runs.staged_path(runs.checkpoint_dir(kept) / runs.BEST_FILE), {"w": torch.zeros(2)})
    assert not runs.discard_unstarted(kept) and runs.staged_path(runs.checkpoint_dir(kept) / runs.BEST_FILE).exists()

    mine = runs.create_run_dir(TrainConfig(seed=3))                      # a file we did not write stays
    (mine / "notes.txt").write_text("mine")
    assert not runs.discard_unstarted(mine) and (mine / "notes.txt").read_text() == "mine"


def test_a_run_path_that_is_not_here_points_to_the_run_of_that_id(data_dir, tmp_path, monkeypatch):
    """Reported: with TAXOLENS_DATA elsewhere, the README's `taxolens evaluate data/runs/<id>` said only
    "no run", though the run was there under its id."""
    run_dir = runs.create_run_dir(TrainConfig(seed=1))
    monkeypatch.chdir(tmp_path / "runs")                     # data/runs/<id> does not exist from here
    with pytest.raises(runs.RunError, match=f"holds it: pass its id {run_dir.name}"):
        runs.resolve_run_dir(f"data/runs/{run_dir.name}")
    with pytest.raises(runs.RunError, match="`taxolens runs` lists the runs in"):
        runs.resolve_run_dir("no-such-run")
    assert runs.resolve_run_dir(run_dir.name) == run_dir.resolve()


def test_git_commit_says_when_the_checkout_has_uncommitted_changes(tmp_path):
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    assert runs.git_commit(tmp_path) == "unknown"                      # not a checkout
    git("init", "-q")
    (tmp_path / "train.py").write_text("lr = 1e-3\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert runs.git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files change no code that ran\n")
    assert runs.git_commit(tmp_path) == head
    (tmp_path / "train.py").write_text("lr = 3e-4\n")
    assert runs.git_commit(tmp_path) == f"{head}-dirty"
