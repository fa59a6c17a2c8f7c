"""core.train with the tiny dataset and a tiny fake VLM: checkpoints, round trip, resume, validation, and
several runs trained together (train_many; the real joint LM pass is checked in tests/integration/test_models_real.py)."""
import dataclasses
import json
import shutil

import pytest
import torch

import fake_vlm
from core import paths, preflight, questions, rundata, runs, train
from core.models import checkpoint
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


def test_training_writes_a_complete_checkpoint_and_learns():
    fracs = []
    run_dir = train.train(_cfg(), progress=lambda f, m: fracs.append(f))
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["status"] == "finished" and ck["epoch"] == 3 and ck["finished"]
    assert [m["epoch"] for m in ck["metrics"]] == [1, 2, 3]
    losses = [m["train_loss"] for m in ck["metrics"]]
    assert losses[-1] < losses[0]                         # the fake is learnable: loss must fall
    assert ck["metrics"][-1]["val"]["hypernym_f1"] is not None
    assert ck["encoder"] == "efficientnet-lite2" and ck["lm"] == "smollm2-135m"
    assert ck["dataset"]["name"] == "tiny" and len(ck["dataset"]["table_sha256"]) == 64
    assert ck["condition"]["spec"] == "none" and ck["condition"]["report"]["condition"] == "none"
    assert ck["config"] == _cfg().to_dict() and ck["seed"] == 0
    assert isinstance(ck["git_commit"], str) and ck["git_commit"]
    assert ck["questions"]["train_kept"] == ck["questions"]["train"]   # condition none drops nothing
    assert (run_dir / "config.json").is_file() and (run_dir / "log").read_text().count("epoch") >= 3
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    info = runs.load_run(run_dir)
    assert info.finished and info.epoch == 3


def test_checkpoint_round_trip_gives_identical_projector_outputs():
    run_dir = train.train(_cfg(epochs=1))
    trained = fake_vlm.FakeVLM.instances[-1]
    info, loaded = checkpoint.load_trained(run_dir, "cpu")
    assert loaded is not trained
    with torch.no_grad():
        assert torch.equal(trained.projector(_probe()), loaded.projector(_probe()))
        fresh = fake_vlm.FakeVLM(_cfg())                  # untrained weights differ
        assert not torch.equal(fresh.projector(_probe()), loaded.projector(_probe()))


def test_resume_continues_from_epoch_2_and_matches_an_uninterrupted_run():
    straight = train.train(_cfg())
    straight_out = fake_vlm.FakeVLM.instances[-1].projector(_probe())

    def stop_after_first_epoch():
        ck = runs.checkpoint_json(run_dir)
        return ck.is_file() and json.loads(ck.read_text())["epoch"] == 1

    run_dir = runs.create_run_dir(_cfg())
    with pytest.raises(train.Cancelled) as exc:
        train.train(_cfg(), run_dir=run_dir, should_stop=stop_after_first_epoch)
    assert exc.value.epoch == 1 and exc.value.step == 0
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["status"] == "cancelled" and ck["epoch"] == 1 and len(ck["metrics"]) == 1

    train.train(_cfg(), run_dir=run_dir)
    resumed = fake_vlm.FakeVLM.instances[-1]
    steps_per_epoch = ck["steps_per_epoch"]
    assert resumed.loss_calls == 2 * steps_per_epoch          # epochs 2 and 3 only, not 1 again
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert [m["epoch"] for m in ck["metrics"]] == [1, 2, 3] and ck["status"] == "finished"
    assert len(ck["resumed"]) == 1 and ck["resumed"][0]["epoch"] == 1
    with torch.no_grad():
        assert torch.allclose(resumed.projector(_probe()), straight_out, atol=1e-6)
    assert json.loads(runs.checkpoint_json(straight).read_text())["metrics"][-1]["train_loss"] == \
        pytest.approx(ck["metrics"][-1]["train_loss"], abs=1e-6)


def test_resume_from_the_middle_of_an_epoch():
    straight = train.train(_cfg(epochs=2))
    straight_out = fake_vlm.FakeVLM.instances[-1].projector(_probe())
    calls = {"n": 0}

    def stop_at_step_3():
        calls["n"] += 1
        return calls["n"] == 4            # checked before each step: steps 0-2 ran

    run_dir = runs.create_run_dir(_cfg(epochs=2))
    with pytest.raises(train.Cancelled) as exc:
        train.train(_cfg(epochs=2), run_dir=run_dir, should_stop=stop_at_step_3)
    assert (exc.value.epoch, exc.value.step) == (0, 3)
    train.train(_cfg(epochs=2), run_dir=run_dir)
    with torch.no_grad():
        assert torch.allclose(fake_vlm.FakeVLM.instances[-1].projector(_probe()), straight_out, atol=1e-6)
    a = json.loads(runs.checkpoint_json(straight).read_text())["metrics"]
    b = json.loads(runs.checkpoint_json(run_dir).read_text())["metrics"]
    assert [m["train_loss"] for m in a] == pytest.approx([m["train_loss"] for m in b], abs=1e-6)


def test_finished_run_returns_immediately():
    run_dir = train.train(_cfg(epochs=1))
    before = runs.checkpoint_json(run_dir).read_bytes()
    n = len(fake_vlm.FakeVLM.instances)
    assert train.train(_cfg(epochs=1), run_dir=run_dir) == run_dir
    assert len(fake_vlm.FakeVLM.instances) == n          # no model was even built
    assert runs.checkpoint_json(run_dir).read_bytes() == before


def test_bad_config_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="random ablation ratio"):
        train.train(_cfg(condition="random:1.5"))
    with pytest.raises(ConfigError, match="lr must be"):
        train.train(_cfg(lr=0))
    with pytest.raises(ConfigError, match="unknown encoder"):
        train.train(_cfg(encoder="resnet-9000"))
    assert not (tmp_path / "runs").exists()


def test_run_dir_with_another_config_is_refused():
    run_dir = train.train(_cfg(epochs=1))
    with pytest.raises(ConfigError, match="different config.*seed: 0 -> 1"):
        train.train(_cfg(epochs=1, seed=1), run_dir=run_dir)


def test_full_ablation_trains_on_leaf_questions_only():
    run_dir = train.train(_cfg(epochs=1, condition="random:1"))
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    data = rundata.prepare(_cfg(condition="random:1"))
    kept = data.training_questions()
    assert kept and all(q.kind == "leaf" for q in kept)
    assert ck["questions"]["train_kept"] == len(kept) < ck["questions"]["train"]
    assert ck["condition"]["report"]["removed_pairs"] > 0


def test_hard_negatives_follow_the_condition():
    # random:1 withholds every hypernym question, so the run is told of no siblings and hard
    # negatives add nothing; under none they add questions
    for condition, adds in (("none", True), ("random:1", False)):
        plain = rundata.prepare(_cfg(condition=condition)).questions["train"]
        hard = rundata.prepare(_cfg(condition=condition, hard_negatives=2)).questions["train"]
        assert (len(hard) > len(plain)) is adds and all(q in hard for q in plain)


def test_hard_negatives_add_training_questions_only():
    plain, hard = rundata.prepare(_cfg()), rundata.prepare(_cfg(hard_negatives=2))
    assert hard.questions["val"] == plain.questions["val"] and hard.questions["test"] == plain.questions["test"]
    extra = [q for q in hard.questions["train"] if q not in plain.questions["train"]]
    assert extra and all(q.kind == "leaf" and not q.answer for q in extra)
    run_dir = train.train(_cfg(epochs=1, hard_negatives=2))
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["questions"]["train_kept"] == len(hard.questions["train"]) and ck["config"]["hard_negatives"] == 2


class _Killed(BaseException):
    """What SIGKILL would do: nothing after this point runs."""


def _killed_after_epoch_1_checkpoint_json(run_dir, monkeypatch):
    """Train run_dir until epoch 1's checkpoint.json is written, killed before its files are moved."""
    real_replace = runs.os.replace              # os.replace itself: write_atomic uses it too

    def replace(src, dst):
        ck = runs.checkpoint_json(run_dir)
        if str(src).endswith(runs.STAGED_SUFFIX) and ck.is_file() and json.loads(ck.read_text())["epoch"] == 1:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(runs.os, "replace", replace)
    with pytest.raises(_Killed):
        train.train(_cfg(), run_dir=run_dir)
    monkeypatch.setattr(runs.os, "replace", real_replace)


def test_a_save_killed_between_its_checkpoint_json_and_its_files_loads_and_resumes(monkeypatch):
    straight = train.train(_cfg())
    straight_out = fake_vlm.FakeVLM.instances[-1].projector(_probe())
    run_dir = runs.create_run_dir(_cfg())
    _killed_after_epoch_1_checkpoint_json(run_dir, monkeypatch)
    ckdir = runs.checkpoint_dir(run_dir)
    assert all(runs.staged_path(ckdir / name).is_file() and not (ckdir / name).exists()   # pinned, not moved
               for name in (runs.PROJECTOR_FILE, runs.TRAIN_STATE_FILE, runs.BEST_FILE))
    info, loaded = checkpoint.load_trained(run_dir, "cpu")                # loads: epoch 1, the best so far
    assert info.epoch == 1
    with torch.no_grad():
        assert torch.equal(loaded.projector(_probe()), fake_vlm.FakeVLM.instances[-2].projector(_probe()))

    train.train(_cfg(), run_dir=run_dir)                                  # resumes with epoch 2, not 1
    with torch.no_grad():
        assert torch.allclose(fake_vlm.FakeVLM.instances[-1].projector(_probe()), straight_out, atol=1e-6)
    assert fake_vlm.FakeVLM.instances[-1].loss_calls == 2 * json.loads(
        runs.checkpoint_json(run_dir).read_text())["steps_per_epoch"]
    assert not list(ckdir.glob("*" + runs.STAGED_SUFFIX))                # the next save moved them all
    assert json.loads(runs.checkpoint_json(straight).read_text())["metrics"][-1]["train_loss"] == \
        pytest.approx(json.loads(runs.checkpoint_json(run_dir).read_text())["metrics"][-1]["train_loss"], abs=1e-6)


def test_a_second_kill_before_the_next_checkpoint_json_still_leaves_a_loadable_resumable_run(monkeypatch):
    """Killed after epoch 1's checkpoint.json (its files still staged), resumed, then killed again
    after epoch 2 staged its own files but before its JSON: the pinned epoch-1 files must not have
    been overwritten by epoch 2's staging."""
    straight = train.train(_cfg())
    straight_out = fake_vlm.FakeVLM.instances[-1].projector(_probe())
    run_dir = runs.create_run_dir(_cfg())
    _killed_after_epoch_1_checkpoint_json(run_dir, monkeypatch)
    real_write_json = runs.write_json

    def write_json(path, obj):
        if path == runs.checkpoint_json(run_dir) and obj.get("epoch") == 2:
            raise _Killed
        real_write_json(path, obj)

    monkeypatch.setattr(runs, "write_json", write_json)
    with pytest.raises(_Killed):
        train.train(_cfg(), run_dir=run_dir)
    monkeypatch.setattr(runs, "write_json", real_write_json)
    info, _ = checkpoint.load_trained(run_dir, "cpu")
    assert info.epoch == 1
    train.train(_cfg(), run_dir=run_dir)                 # resumes with epoch 2 and ends as if never killed
    with torch.no_grad():
        assert torch.allclose(fake_vlm.FakeVLM.instances[-1].projector(_probe()), straight_out, atol=1e-6)
    assert not list(runs.checkpoint_dir(run_dir).glob("*" + runs.STAGED_SUFFIX))


def test_a_staged_file_that_checkpoint_json_does_not_pin_is_ignored():
    run_dir = train.train(_cfg(epochs=1))
    with torch.no_grad():
        before = checkpoint.load_trained(run_dir, "cpu")[1].projector(_probe())
    path = runs.checkpoint_dir(run_dir) / runs.BEST_FILE
    runs.save_tensors(runs.staged_path(path), {k: v + 1 for k, v in runs.load_tensors(path).items()})  # killed before the JSON
    with torch.no_grad():
        assert torch.equal(checkpoint.load_trained(run_dir, "cpu")[1].projector(_probe()), before)
    path.unlink()                   # neither file is the pinned one: an error, not the staged file
    with pytest.raises(runs.RunError, match="missing checkpoint file"):
        checkpoint.load_trained(run_dir, "cpu")


def test_tampered_checkpoint_is_detected():
    run_dir = train.train(_cfg(epochs=1))
    path = runs.checkpoint_dir(run_dir) / runs.BEST_FILE       # the projector evaluation loads
    runs.save_tensors(path, {k: v + 1 for k, v in runs.load_tensors(path).items()})
    with pytest.raises(runs.RunError, match="does not match"):
        checkpoint.load_trained(run_dir, "cpu")


def test_a_missing_projector_file_is_reported_before_the_frozen_models_load(monkeypatch):
    run_dir = train.train(_cfg(epochs=1))
    (runs.checkpoint_dir(run_dir) / runs.BEST_FILE).unlink()

    def no_models(*args, **kwargs):
        raise AssertionError("the frozen models were built first")

    monkeypatch.setattr(checkpoint, "build_vlm", no_models)
    with pytest.raises(runs.RunError, match="missing checkpoint file .*best.safetensors"):
        checkpoint.load_trained(run_dir, "cpu")


def test_changed_frozen_model_is_detected(monkeypatch):
    run_dir = train.train(_cfg(epochs=1))
    from core.models import registry
    monkeypatch.setattr(registry, "create_vlm", lambda cfg, device="cpu": fake_vlm.FakeVLM(cfg, device, 99))
    with pytest.raises(runs.RunError, match="frozen encoder/LM"):
        checkpoint.load_trained(run_dir, "cpu")


def test_cuda_request_without_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        checkpoint.resolve_device("cuda")


def test_a_device_torch_does_not_know_is_a_config_error_not_torchs_list():
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:<n>, got 'tpu'"):
        checkpoint.resolve_device("tpu")
    assert checkpoint.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("asked, native, want", [("bf16", False, "bf16"), ("fp32", True, "fp32"),
                                                 ("auto", True, "bf16"), ("auto", False, "fp32")])
def test_precision_is_resolved_applied_and_recorded(asked, native, want, monkeypatch):
    monkeypatch.setattr(checkpoint, "cpu_has_native_bf16", lambda: native)
    run_dir = train.train(_cfg(epochs=1, precision=asked))
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["precision"] == want and ck["config"]["precision"] == asked
    assert fake_vlm.FakeVLM.instances[-1].lm_in_bf16 == (want == "bf16")


def test_precision_auto_is_bf16_on_cuda_and_unknown_names_are_refused():
    assert checkpoint.resolve_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="precision must be auto, bf16, fp32"):
        _cfg(precision="fp16").validate()


# ---------------------------------------------------------------- recipe

def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_zero():
    cfg = _cfg(lr=1e-3, warmup=0.1)
    lrs = [train.lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)      # 10 warmup updates
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[55] == pytest.approx(0.5e-3, rel=0.05) and lrs[-1] < 1e-5
    assert train.lr_at(0, 100, _cfg(lr=1e-3, warmup=0)) == pytest.approx(1e-3)


def test_epoch_batches_keep_images_together_and_replay_exactly():
    data = rundata.prepare(_cfg())
    qs = data.training_questions()
    batches = train.epoch_batches(qs, 8, seed=0, epoch=1)
    assert len(batches) == -(-len(qs) // 8) and all(len(b) == 8 for b in batches[:-1])
    assert sorted(i for b in batches for i in b) == list(range(len(qs)))
    flat = [qs[i].image_id for b in batches for i in b]
    runs_of_image = sum(1 for a, b in zip(flat, flat[1:]) if a != b) + 1
    assert runs_of_image == len({q.image_id for q in qs})          # each image's questions contiguous
    assert batches == train.epoch_batches(qs, 8, seed=0, epoch=1)
    assert batches != train.epoch_batches(qs, 8, seed=0, epoch=2)


def test_early_stopping_keeps_the_best_epoch(monkeypatch):
    """Validation gets worse after epoch 2: training stops after `patience` more epochs and the
    checkpoint evaluation loads is epoch 2's projector."""
    scores = iter([0.6, 0.8, 0.7, 0.75, 0.9, 0.9])
    monkeypatch.setattr(train, "selection_score", lambda val: next(scores))
    saved = {}
    real_save = runs.save_tensors

    def spy(path, tensors, metadata=None):
        if path.name == runs.staged_path(runs.BEST_FILE).name:       # written staged, then moved into place
            saved[len(saved)] = {k: v.clone() for k, v in tensors.items()}
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(runs, "save_tensors", spy)
    run_dir = train.train(_cfg(epochs=6, patience=2))
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["status"] == "finished" and ck["epoch"] == 4 and ck["best"] == {"epoch": 2, "score": 0.8}
    assert ck["stopped"].startswith("early") and len(saved) == 2            # best after epochs 1 and 2
    assert all(m["val_leaf_accuracy"] is not None for m in ck["metrics"])
    _, loaded = checkpoint.load_trained(run_dir, "cpu")
    for k, v in loaded.projector_state().items():
        assert torch.equal(v, saved[1][k])


def test_max_steps_caps_the_updates():
    said, logged = [], []
    run_dir = train.train(_cfg(epochs=5, max_steps=30, patience=0), progress=lambda f, m: said.append(m),
                          log=logged.append)
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["total_steps"] == 30 and ck["metrics"][-1]["updates"] == 30 and ck["status"] == "finished"
    # Reported: "epoch 1/1 step 9/28" and then it stopped at 10 updates. The count goes to where it stops.
    assert ck["steps_per_epoch"] == 23, "the tiny dataset's epoch length changed: recount the lines below"
    steps = [m.split(" loss")[0] for m in said if " step " in m]
    assert steps == [f"epoch 1/2 step {i}/23" for i in range(1, 24)] + [f"epoch 2/2 step {i}/7" for i in range(1, 8)]
    assert [line.split(":")[0] for line in logged] == ["epoch 1", "epoch 2"]
    assert all("val leaf acc" in line and "best epoch" in line for line in logged)


def test_old_checkpoint_format_is_refused():
    run_dir = train.train(_cfg(epochs=1))
    path = runs.checkpoint_json(run_dir)
    ck = json.loads(path.read_text())
    ck["format"] = 1
    path.write_text(json.dumps(ck))
    with pytest.raises(runs.RunError, match="older TaxoLens"):
        checkpoint.load_trained(run_dir, "cpu")


def test_grid_crop_trains_on_windows_and_refuses_a_window_larger_than_the_grid(monkeypatch):
    crops, given = [], []
    real_crop, real_loss = train.crop_grid, fake_vlm.FakeVLM.joint_loss

    def crop(grid, side):
        out = real_crop(grid, side)
        crops.append((tuple(grid.shape[1:]), out))
        return out

    def loss(vlms, batches):                 # what the loss is given
        given.extend(b.features for b in batches)
        return real_loss(vlms, batches)
    monkeypatch.setattr(train, "crop_grid", crop)
    monkeypatch.setattr(fake_vlm.FakeVLM, "joint_loss", staticmethod(loss))
    run_dir = train.train(_cfg(epochs=1, grid_crop=1))
    windows = [out for shape, out in crops if shape == (4, fake_vlm.DIM)]    # the fake encoder's 2 x 2 grid
    assert given and len(windows) >= len(given)
    assert all(f.shape[1:] == (1, fake_vlm.DIM) for f in given)
    assert all(any(f.shape == w.shape and torch.equal(f, w) for w in windows) for f in given)   # windows, each step
    assert json.loads(runs.checkpoint_json(run_dir).read_text())["status"] == "finished"
    with pytest.raises(ConfigError, match="grid_crop does not fit encoder efficientnet-lite2: cannot crop a 3x3 window from a 4-token grid"):
        train.train(_cfg(epochs=1, grid_crop=3))


def test_fresh_negatives_ask_new_leaf_negatives_every_epoch(monkeypatch):
    plain, fresh = rundata.prepare(_cfg(fresh_negatives=False)), rundata.prepare(_cfg(fresh_negatives=True))
    assert fresh.training_questions(0) == plain.training_questions()
    assert fresh.training_questions(1) != fresh.training_questions(0)
    assert len(fresh.training_questions(1)) == len(fresh.training_questions(0))
    assert plain.training_questions(1) == plain.training_questions(0)    # off: the same every epoch
    seen = {}
    real = train.epoch_batches

    def spy(questions, batch_size, seed, epoch):
        seen[epoch] = sorted((q.image_id, q.target) for q in questions if q.kind == "leaf" and not q.answer)
        return real(questions, batch_size, seed, epoch)

    monkeypatch.setattr(train, "epoch_batches", spy)
    run_dir = train.train(_cfg(epochs=2, fresh_negatives=True))
    assert seen[0] != seen[1] and len(seen[0]) == len(seen[1])
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["config"]["fresh_negatives"] is True and ck["status"] == "finished"


def test_rank_negatives_rank_each_batch_image_against_random_leaves():
    run_dir = train.train(_cfg(epochs=2, rank_negatives=3))
    vlm = fake_vlm.FakeVLM.instances[-1]
    data = rundata.prepare(_cfg())
    own = {q.text for q in data.questions["train"] if q.kind == "leaf" and q.answer}
    groups = [g for call in vlm.ranked_seen for g in call]
    assert len(vlm.ranked_seen) == vlm.loss_calls and all(vlm.ranked_seen)   # every update ranks
    assert all(len(texts) == 4 and len(set(texts)) == 4 for _, texts in groups)
    assert {texts[0] for _, texts in groups} <= own                          # an image's own leaf first
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert ck["config"]["rank_negatives"] == 3 and ck["status"] == "finished"
    again = train.train(_cfg(epochs=2, rank_negatives=3, seed=0), run_dir=runs.create_run_dir(_cfg(epochs=2, rank_negatives=3)))
    assert fake_vlm.FakeVLM.instances[-1].ranked_seen == vlm.ranked_seen     # seeded: the same draws


def test_rank_siblings_draw_ranking_negatives_from_known_category_mates():
    from core import questions
    train.train(_cfg(epochs=1, rank_negatives=2, rank_siblings=1.0))
    vlm = fake_vlm.FakeVLM.instances[-1]
    data = rundata.prepare(_cfg())
    known = questions.known_categories(data.dataset, data.deprivation)
    concept_of = {questions.question_text(c.label): name for name, c in data.dataset.concepts.items()}
    groups = [texts for call in vlm.ranked_seen for _, texts in call]
    assert groups and all(len(t) == 3 for t in groups)
    with_siblings = 0
    for texts in groups:
        mine = known[concept_of[texts[0]]]
        mates = {c for c, cats in known.items() if cats & mine} - {concept_of[texts[0]]}
        # as many negatives are known siblings as there are (two at most), never a hidden one
        assert len({concept_of[t] for t in texts[1:]} & mates) == min(2, len(mates))
        with_siblings += bool(mates)
    assert with_siblings


def test_rank_mined_adds_the_leaves_the_current_projector_most_says_yes_to():
    cfg = _cfg(epochs=1, rank_negatives=1, rank_mined=2, mine_pool=4)
    train.train(cfg)
    vlm = fake_vlm.FakeVLM.instances[-1]
    assert vlm.loss_calls and len(vlm.scored) == vlm.loss_calls + 1           # one mining pass per update, then validation
    for groups, mined in zip(vlm.ranked_seen, vlm.scored):
        assert len(groups) == len(mined)
        for (_, texts), (pool, p_yes) in zip(groups, mined):
            assert len(texts) == 4 and len(set(texts)) == 4 and len(pool) >= 2
            top = sorted(range(len(pool)), key=lambda i: -p_yes[i])[:2]
            assert texts[2:] == [pool[i] for i in top]                          # the two it most says yes to
    train.train(cfg, run_dir=runs.create_run_dir(cfg))
    assert fake_vlm.FakeVLM.instances[-1].ranked_seen == vlm.ranked_seen       # seeded pools: the same mining


def test_rank_mined_alone_ranks_against_mined_leaves_only():
    train.train(_cfg(epochs=1, rank_mined=3, mine_pool=5))
    vlm = fake_vlm.FakeVLM.instances[-1]
    assert vlm.loss_calls and len(vlm.scored) == vlm.loss_calls + 1
    for groups, mined in zip(vlm.ranked_seen, vlm.scored):
        for (_, texts), (pool, p_yes) in zip(groups, mined):
            assert len(pool) == 5 and texts[1:] == [pool[i] for i in sorted(range(5), key=lambda i: -p_yes[i])[:3]]


def test_rank_mined_resumed_from_the_middle_of_an_epoch_mines_the_same():
    cfg = _cfg(epochs=2, rank_negatives=1, rank_mined=2, mine_pool=4)
    train.train(cfg)
    straight = fake_vlm.FakeVLM.instances[-1].ranked_seen
    calls = {"n": 0}

    def stop_at_step_3():
        calls["n"] += 1
        return calls["n"] == 4            # checked before each step: steps 0-2 ran

    run_dir = runs.create_run_dir(cfg)
    with pytest.raises(train.Cancelled):
        train.train(cfg, run_dir=run_dir, should_stop=stop_at_step_3)
    before = fake_vlm.FakeVLM.instances[-1].ranked_seen
    train.train(cfg, run_dir=run_dir)
    assert before + fake_vlm.FakeVLM.instances[-1].ranked_seen == straight


@pytest.mark.parametrize("condition, projector_input", [("none", "posterior"), ("cross", "posterior"),
                                                       ("none", "features+posterior")])
def test_rank_soft_spreads_each_ranking_target_by_the_images_posterior(condition, projector_input):
    cfg = _cfg(epochs=1, rank_negatives=2, rank_siblings=1.0, rank_soft=0.5, projector_input=projector_input,
               projector_hidden=None, projector_tokens=1, condition=condition)
    train.train(cfg)
    vlm = fake_vlm.FakeVLM.instances[-1]
    data = rundata.prepare(cfg)
    column = {questions.question_text(data.dataset.concepts[c].label): j
              for c, j in rundata.posterior_columns(data.dataset).items()}
    assert len(vlm.rank_targets_seen) == vlm.loss_calls and all(vlm.rank_targets_seen)
    for groups, targets, inputs in zip(vlm.ranked_seen, vlm.rank_targets_seen, vlm.ranked_inputs_seen):
        assert len(groups) == len(targets) == len(inputs)
        for (_, texts), target, row in zip(groups, targets, inputs):
            # the image's input is its (out-of-fold) posterior, after its feature with features+posterior;
            # half the target follows the posterior over the group
            posterior = row[-len(column):]
            assert len(row) == len(column) + (fake_vlm.DIM if projector_input == "features+posterior" else 0)
            share = posterior[[column[t] for t in texts]]
            expected = 0.5 * share / share.sum() + torch.tensor([0.5] + [0.0] * (len(texts) - 1))
            assert torch.allclose(torch.tensor(target), expected, atol=1e-6) and sum(target) == pytest.approx(1.0)
    # the out-of-fold probe mostly knows the concept an image is shown as: the spread half of the
    # targets leans to the own leaf (first), not to the negatives (under a cross shuffle too)
    spread = torch.tensor([t for call in vlm.rank_targets_seen for t in call]) * 2 - torch.tensor([1.0, 0, 0])
    assert spread[:, 0].mean() > 2 * spread[:, 1:].mean()
    train.train(_cfg(epochs=1, rank_negatives=2, projector_input="posterior", projector_hidden=None, projector_tokens=1))
    hard = fake_vlm.FakeVLM.instances[-1]
    assert hard.rank_targets_seen == [[]] * hard.loss_calls          # off: all on the own leaf, as before


@pytest.mark.parametrize("bad, message", [
    (dict(rank_soft=0.5, projector_input="posterior"), "needs ranking groups"),
    (dict(rank_soft=0.5, rank_negatives=2), "needs projector_input = posterior"),
    (dict(rank_soft=1.5, rank_negatives=2, projector_input="posterior"), "rank_soft"),
])
def test_rank_soft_refuses_a_config_it_cannot_act_on(bad, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**bad).validate()


@pytest.mark.parametrize("condition", ["none", "cross"])
def test_name_loss_names_every_batch_image_as_the_concept_it_is_shown_as(condition):
    """Each update's named pairs: every image of the batch once, with its own yes leaf question up to
    the name ("Is there a dog"), under a shuffled labeling the concept the image is shown as."""
    data = rundata.prepare(_cfg(condition=condition))
    own = {q.text for q in data.questions["train"] if q.kind == "leaf" and q.answer}
    train.train(_cfg(epochs=2, condition=condition, name_loss=0.5))
    calls = fake_vlm.FakeVLM.instances[-1].named_seen
    assert calls
    checked = 0
    for named, owner, texts, answers, weight in calls:
        assert weight == 0.5 and sorted(row for row, _ in named) == sorted(set(owner))
        for row, text in named:
            assert text + " in the image?" in own
            # a batch is cut at 8 questions, so an image's yes leaf question may lie in the next one
            yes_leaf = [t for t, a, o in zip(texts, answers, owner) if o == row and a and t in own]
            assert yes_leaf in ([], [text + " in the image?"])
            checked += bool(yes_leaf)
    assert checked > len(calls)
    if condition == "cross":     # most images are shown as another concept, so naming the true one fails above
        shown = [questions.naming_text(data.dataset, im, data.deprivation.labeling) for im in data.images("train")]
        true = [questions.naming_text(data.dataset, im, None) for im in data.images("train")]
        assert sum(a != b for a, b in zip(shown, true)) > len(true) / 2
    train.train(_cfg(epochs=1, condition=condition))
    assert all(not named for named, *_ in fake_vlm.FakeVLM.instances[-1].named_seen)


def test_name_loss_is_checked():
    for bad in (-0.1, 11, "x"):
        with pytest.raises(ConfigError, match="name_loss"):
            _cfg(name_loss=bad).validate()


# ---------------------------------------------------------------- train_many: runs trained together

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
    fake_vlm.FakeVLM.joint_calls = []
    train.train_many([_cfg(epochs=1, seed=s) for s in range(3)], together=2)
    assert max(fake_vlm.FakeVLM.joint_calls) == 2                     # at most 2 runs per pass
    with pytest.raises(ConfigError, match="together must be a positive number"):
        train.train_many([_cfg()], together=0)


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


def test_a_progress_callback_that_cancels_saves_every_run_where_it_stood():
    from core.jobs.kinds import JobCancelled
    straight = [train.train(c) for c in CONFIGS[:2]]
    dirs = [runs.create_run_dir(c) for c in CONFIGS[:2]]
    calls = {"n": 0}

    def progress(fraction, message):          # what the job runner's callback does on cancel
        calls["n"] += 1
        if calls["n"] == 4:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        train.train_many(CONFIGS[:2], dirs, progress=progress)
    for d in dirs:
        ck = _checkpoint(d)
        assert ck["status"] == "cancelled" and ck["step"] > 0          # not back to the epoch's start
    for cfg, d, s in zip(CONFIGS[:2], dirs, straight):
        train.train(cfg, run_dir=d)
        assert torch.allclose(_outputs(d), _outputs(s), atol=1e-6)


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


def test_a_resumed_optimizer_keeps_its_state_but_runs_the_way_this_device_does():
    # saved by a run that used fused AdamW (as on a GPU), restored into this machine's plain one
    saved_params = [torch.nn.Parameter(torch.ones(3))]
    saved = torch.optim.AdamW(saved_params, lr=0.01, fused=True)
    saved_params[0].grad = torch.full((3,), 0.5)
    saved.step()
    tensors, groups = train._optimizer_tensors(saved)
    assert groups[0]["fused"] is True
    params = [torch.nn.Parameter(torch.ones(3))]
    here = torch.optim.AdamW(params, lr=0.5)
    train._restore_optimizer(here, tensors, groups)
    assert here.param_groups[0]["fused"] is None and here.param_groups[0]["lr"] == 0.01
    assert torch.equal(here.state[params[0]]["exp_avg"], saved.state[saved_params[0]]["exp_avg"])


# ---------------------------------------------------------------- projector_init: probe

def test_probe_init_fits_the_first_layer_to_the_training_images_concepts_and_records_it():
    run_dir = train.train(_cfg(epochs=1, lr=1e-12, projector_init="probe", projector_hidden=16))
    ck = _checkpoint(run_dir)
    data = rundata.prepare(_cfg())
    items = data.images("train")
    assert ck["projector_init"]["classes"] == len(data.dataset.concepts) == 12
    assert ck["projector_init"]["images"] == len(items)
    _, vlm = checkpoint.load_trained(run_dir, "cpu")
    concepts = sorted(data.dataset.concepts)
    feats = torch.stack([fake_vlm.FakeCache(vlm.encoder).get([im])[0] for im in items]).mean(1)
    with torch.no_grad():         # the first 12 hidden units are the probe's logits: they name each image
        logits = vlm.projector.net[0](vlm.projector.norm(feats))[:, :12]
    named = [concepts[j] for j in logits.argmax(-1).tolist()]
    right = sum(n == im.concept for n, im in zip(named, items)) / len(items)
    # what the run recorded; far above chance (1/12) on the fake's 6-dimensional features
    assert right == pytest.approx(ck["projector_init"]["train_accuracy"], abs=1e-3) and right >= 0.5
    assert "fitted as a concept probe" in (run_dir / "log").read_text()


def test_probe_init_needs_a_hidden_unit_per_concept_and_no_init_from():
    with pytest.raises(ConfigError, match="12 concepts do not fit the projector's 8 hidden units"):
        train.train(_cfg(epochs=1, projector_init="probe", projector_hidden=8))
    with pytest.raises(ConfigError, match="choose one"):
        _cfg(projector_init="probe", init_from="x").validate()
    with pytest.raises(ConfigError, match="needs a gelu-mlp projector"):
        _cfg(projector_init="probe", projector="linear").validate()


def test_a_probe_started_first_stage_has_a_leaf_stage_that_starts_from_its_projector():
    first = train.train(_cfg(epochs=1, projector_init="probe", projector_hidden=16))
    stage = _cfg(epochs=1, projector_init="probe", projector_hidden=16).leaf_stage(first.name)
    assert stage.projector_init == "random" and stage.init_from == first.name
    second = train.train(dataclasses.replace(stage, lr=1e-12))        # lr ~0: weights stay put
    ck = _checkpoint(second)
    assert ck["init_from"]["run_id"] == first.name and "projector_init" not in ck
    _, stage1 = checkpoint.load_trained(first, "cpu")
    _, stage2 = checkpoint.load_trained(second, "cpu")
    with torch.no_grad():
        assert torch.allclose(stage2.projector(_probe()), stage1.projector(_probe()), atol=1e-5)


# ---------------------------------------------------------------- init_from: a second training stage

def test_init_from_starts_from_the_other_runs_best_projector_and_records_it():
    first = train.train(_cfg(epochs=2))
    _, stage1 = checkpoint.load_trained(first, "cpu")
    second = train.train(_cfg(epochs=1, lr=1e-12, init_from=str(first)))    # lr ~0: weights stay put
    ck = _checkpoint(second)
    src = _checkpoint(first)
    assert ck["init_from"]["run_id"] == first.name and ck["init_from"]["file"] == runs.BEST_FILE
    assert ck["init_from"]["sha256"] == src["files"][runs.BEST_FILE]
    assert ck["init_from"]["epoch"] == src["best"]["epoch"] and ck["config"]["init_from"] == str(first)
    _, stage2 = checkpoint.load_trained(second, "cpu")
    fresh = train.train(_cfg(epochs=1, lr=1e-12))
    _, scratch = checkpoint.load_trained(fresh, "cpu")
    with torch.no_grad():
        assert torch.allclose(stage2.projector(_probe()), stage1.projector(_probe()), atol=1e-5)
        assert not torch.allclose(scratch.projector(_probe()), stage1.projector(_probe()), atol=1e-3)
    assert "projector from run " + first.name in (second / "log").read_text()


def test_init_from_a_resumed_run_keeps_its_own_checkpoint():
    first = train.train(_cfg(epochs=1))
    cfg = _cfg(epochs=2, init_from=str(first))
    run_dir = runs.create_run_dir(cfg)
    with pytest.raises(train.Cancelled):
        train.train(cfg, run_dir=run_dir, should_stop=lambda: True)   # stops at once, saves
    before = _checkpoint(run_dir)["init_from"]
    shutil.rmtree(first)            # a started run needs no source: its checkpoint holds the projector
    with pytest.raises(ConfigError, match="init_from"):
        preflight.check_config(cfg)                                # a new run from it cannot start
    assert preflight.check_config(cfg, started=True) == cfg
    train.train(cfg, run_dir=run_dir)                              # resumes: no second init
    after = _checkpoint(run_dir)
    assert after["init_from"] == before and after["status"] == "finished" and after["resumed"]


@pytest.mark.parametrize("change, message", [
    (dict(seed=1), r"differs in seed \(0 there, 1 here\)"),
    (dict(condition="random:0.5"), "differs in condition"),
    (dict(prompt="chat"), "differs in prompt"),
    (dict(projector_tokens=3), r"differs in projector_tokens \(\d there, 3 here\)"),
    (dict(projector_hidden=32), "differs in projector_hidden"),
    (dict(split_percent="70/5/25"), r"differs in split_percent \('60/20/20' there, '70/5/25' here\)"),
    (dict(projector_input="posterior", projector_topk=2),
     r"differs in projector_input \('features' there, 'posterior' here\), projector_topk \(0 there, 2 here\)"),
])
def test_init_from_refuses_a_run_with_other_models_data_or_condition(change, message):
    first = train.train(_cfg(epochs=1))
    cfg = _cfg(epochs=1, init_from=str(first), **change)
    with pytest.raises(ConfigError, match=message):
        rundata.check(cfg)
    with pytest.raises(ConfigError, match=message):
        train.train(cfg)


def test_init_from_names_a_missing_or_untrained_run():
    with pytest.raises(ConfigError, match="init_from: no run 'nope'"):
        rundata.check(_cfg(init_from="nope"))
    with pytest.raises(ConfigError, match="init_from must be a run id"):
        _cfg(init_from=" ").validate()
    empty = runs.create_run_dir(_cfg())
    with pytest.raises(ConfigError, match="has no checkpoint yet"):
        rundata.check(_cfg(init_from=str(empty)))


# ---------------------------------------------------------------- concept mixup

def _batch_features(monkeypatch) -> list[torch.Tensor]:
    """Every image's features as the training loss receives them, one tensor per batch image."""
    seen = []
    real = fake_vlm.FakeVLM.joint_loss

    def spy(vlms, batches):
        seen.extend(f.clone() for f in batches[0].features)
        return real(vlms, batches)

    monkeypatch.setattr(fake_vlm.FakeVLM, "joint_loss", staticmethod(spy))
    return seen


def test_concept_mixup_puts_each_image_between_two_images_of_its_concept(monkeypatch):
    from core import features
    seen = _batch_features(monkeypatch)
    cfg = _cfg(epochs=2, concept_mixup=1.0)
    run_dir = train.train(cfg)
    items = rundata.prepare(cfg).images("train")
    cache, row_of = features.image_features(fake_vlm.FakeVLM.instances[-1], items)
    own = {}
    for im in items:
        own.setdefault(im.concept, []).append(cache[row_of[im.id]])
    assert all(len(fs) >= 2 for fs in own.values())           # every image has a mate to mix with

    def between_two_of_one_concept(f):
        for fs in own.values():
            for a in fs:
                for b in fs:
                    d = (a - b).flatten()
                    if d.norm() > 0:
                        lam = float((f - b).flatten() @ d / (d @ d))
                        if 0 <= lam <= 1 and torch.allclose(f, lam * a + (1 - lam) * b, atol=1e-5):
                            return True
        return False

    cached = [g for fs in own.values() for g in fs]
    assert seen and not any(torch.equal(f, g) for f in seen for g in cached)   # all mixed at share 1
    assert all(between_two_of_one_concept(f) for f in seen)
    assert _checkpoint(run_dir)["config"]["concept_mixup"] == 1.0


def _straight_and_resumed_match(cfg):
    """Train cfg straight through, and again cancelled after step 3 then resumed: the same projector.
    Returns the straight run."""
    straight = train.train(cfg)
    run_dir = runs.create_run_dir(cfg)
    calls = {"n": 0}

    def stop_at_step_3():
        calls["n"] += 1
        return calls["n"] == 4

    with pytest.raises(train.Cancelled):
        train.train(cfg, run_dir=run_dir, should_stop=stop_at_step_3)
    train.train(cfg, run_dir=run_dir)
    torch.testing.assert_close(_outputs(run_dir), _outputs(straight))
    return straight


def test_concept_mixup_draws_the_same_mixes_when_resumed(monkeypatch):
    straight = _straight_and_resumed_match(_cfg(epochs=2, concept_mixup=0.5))
    assert not torch.allclose(_outputs(straight), _outputs(train.train(_cfg(epochs=2))))   # mixing changed it


def test_concept_mixup_off_trains_on_the_cached_features_and_the_share_is_checked(monkeypatch):
    from core import features
    seen = _batch_features(monkeypatch)
    train.train(_cfg(epochs=1))
    items = rundata.prepare(_cfg()).images("train")
    cache, _ = features.image_features(fake_vlm.FakeVLM.instances[-1], items)
    assert seen and all(any(torch.equal(f, g) for g in cache) for f in seen)
    for bad in (1.5, -0.1, True):
        with pytest.raises(ConfigError, match="concept_mixup"):
            _cfg(concept_mixup=bad).validate()


# ---------------------------------------------------------------- augmented views

def _train_and_view_features(cfg):
    from core import augment, features
    items = rundata.prepare(cfg).images("train")
    vlm = fake_vlm.FakeVLM.instances[-1]
    own, _ = features.image_features(vlm, items)
    views = augment.view_items(items, cfg.augment_views)
    extra, _ = features.image_features(vlm, [v for row in views for v in row])
    per_image = [[own[i]] + [extra[i * cfg.augment_views + j] for j in range(cfg.augment_views)]
                 for i in range(len(items))]
    return per_image


def test_augment_views_show_every_image_as_itself_and_each_view_in_turn(monkeypatch):
    seen = _batch_features(monkeypatch)
    cfg = _cfg(epochs=3, augment_views=2, fresh_negatives=False)
    run_dir = train.train(cfg)
    per_image = _train_and_view_features(cfg)
    assert all(not torch.equal(a, b) for fs in per_image for a, b in ((fs[0], fs[1]), (fs[0], fs[2]), (fs[1], fs[2])))

    def which(f):
        return [(i, v) for i, fs in enumerate(per_image) for v, g in enumerate(fs) if torch.equal(f, g)]

    shown = [which(f) for f in seen]
    assert all(len(w) == 1 for w in shown)                 # every batch image is one image's own or a view
    by_image: dict = {}
    for ((i, v),) in shown:
        by_image.setdefault(i, set()).add(v)
    assert by_image and all(vs == {0, 1, 2} for vs in by_image.values())   # 3 epochs: each shown as all 3
    assert _checkpoint(run_dir)["config"]["augment_views"] == 2


def test_line_art_views_join_the_views_shown_in_turn(monkeypatch):
    seen = _batch_features(monkeypatch)
    cfg = _cfg(epochs=3, augment_views=1, line_art_views=1, fresh_negatives=False)
    run_dir = train.train(cfg)
    from core import augment, features
    items = rundata.prepare(cfg).images("train")
    vlm = fake_vlm.FakeVLM.instances[-1]
    own, _ = features.image_features(vlm, items)
    rows = augment.view_items(items, 1, line_art=1)
    assert all(len(row) == 2 for row in rows)
    extra, _ = features.image_features(vlm, [v for row in rows for v in row])
    per_image = [[own[i], extra[2 * i], extra[2 * i + 1]] for i in range(len(items))]
    by_image: dict = {}
    for f in seen:
        for i, fs in enumerate(per_image):
            for v, g in enumerate(fs):
                if torch.equal(f, g):
                    by_image.setdefault(i, set()).add(v)
    assert by_image and all(vs == {0, 1, 2} for vs in by_image.values())   # 3 epochs: itself, the view, the drawing
    assert _checkpoint(run_dir)["config"]["line_art_views"] == 1
    for bad in (3, -1, 1.5):
        with pytest.raises(ConfigError, match="line_art_views"):
            _cfg(line_art_views=bad).validate()
    with pytest.raises(ConfigError, match="line_art_views and grid_crop"):
        _cfg(line_art_views=1, grid_crop=4).validate()


def test_augment_views_replay_exactly_when_resumed():
    straight = _straight_and_resumed_match(_cfg(epochs=2, augment_views=2))
    assert not torch.allclose(_outputs(straight), _outputs(train.train(_cfg(epochs=2))))   # the views changed it


def test_augment_views_are_checked():
    for bad in (-1, 17, 1.5, True):
        with pytest.raises(ConfigError, match="augment_views"):
            _cfg(augment_views=bad).validate()
    with pytest.raises(ConfigError, match="augment_views and grid_crop cannot be combined"):
        _cfg(augment_views=2, grid_crop=1).validate()


def test_the_train_command_prints_each_epochs_line_whole(capsys):
    """Reported: the CLI showed an epoch's validation line only as its progress bar's message, cut at
    70 characters ("val leaf acc 0.464, hypernym acc 0.418, best epo")."""
    from core import cli
    assert cli.main(["train", "--dataset", "tiny", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                     "--no-eval"]) == 0
    err = capsys.readouterr().err
    lines = [line.split("\r")[-1] for line in err.splitlines() if "best epoch" in line]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"], err[-2000:]
    assert all(line.endswith(("best epoch 1", "best epoch 2")) and "val leaf acc" in line for line in lines)
