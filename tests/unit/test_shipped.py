"""The shipped default checkpoint (core.models.checkpoint export/install/fit) and runs.learning_note,
with the tiny dataset and the fake VLM."""
import json
from pathlib import Path

import pytest
import torch

import fake_vlm
from core import evaluate, paths, rundata, runs, train
from core.base import ConfigError
from core.config import TrainConfig
from core.data import datasets
from core.models import checkpoint


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    fake_vlm.install(monkeypatch)


def _trained(epochs=2):
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=epochs, batch_size=8, lr=0.05, device="cpu"))
    evaluate.evaluate(run_dir, "test")
    return run_dir


def test_export_writes_an_fp16_best_projector_and_install_loads_it(tmp_path):
    run_dir = _trained()
    evaluate.leaf_ranking(run_dir, "test")               # ships with it when there is one
    dest = checkpoint.export_shipped(run_dir, tmp_path / "shipped")
    names = sorted(str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file())
    assert names == sorted(checkpoint.SHIPPED_FILES)
    ck = json.loads((dest / "checkpoint" / "checkpoint.json").read_text())
    assert list(ck["files"]) == [runs.BEST_FILE] and "optimizer_groups" not in ck
    assert ck["run_id"] == run_dir.name and ck["shipped"]["dtype"] == "float16"
    state = runs.load_tensors(dest / "checkpoint" / runs.BEST_FILE, ck["files"][runs.BEST_FILE])
    assert all(v.dtype == torch.float16 for v in state.values())

    fits, why = checkpoint.shipped_fit(dest)
    assert fits, why
    import shutil
    shutil.rmtree(paths.runs_dir())                      # a fresh machine: no runs at all
    installed = checkpoint.install_shipped(dest)
    assert installed == paths.runs_dir() / run_dir.name
    assert checkpoint.install_shipped(dest) == installed                  # idempotent
    info, vlm = checkpoint.load_trained(installed, "cpu")
    assert info.finished and runs.load_metrics(installed, "test") is not None
    probe = torch.randn(5, fake_vlm.DIM, generator=torch.Generator().manual_seed(3))
    best = {k: v.float() for k, v in state.items()}
    ref = fake_vlm.FakeVLM(info.config)
    ref.load_projector_state(best)
    with torch.no_grad():
        assert torch.allclose(vlm.projector(probe), ref.projector(probe))


def _file_metadata(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_projector_files_describe_the_projector_shape_in_their_metadata(tmp_path):
    """Someone who opens the .safetensors alone (run or shipped) reads the projector's shape there."""
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu",
                                      projector_hidden=8, projector_tokens=2))
    evaluate.evaluate(run_dir, "test")
    dest = checkpoint.export_shipped(run_dir, tmp_path / "shipped")
    for path in (runs.checkpoint_dir(run_dir) / runs.BEST_FILE, dest / "checkpoint" / runs.BEST_FILE):
        meta = _file_metadata(path)
        assert meta["projector_tokens"] == "2" and meta["projector_hidden"] == "8", path
        assert meta["image_tokens"] == "1" and meta["prompt"] == "plain"
    lm_wide = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu",
                                      projector_hidden=0))
    assert _file_metadata(runs.checkpoint_dir(lm_wide) / runs.PROJECTOR_FILE)["projector_hidden"] == \
        "the LM's hidden size"


def test_shipped_checkpoint_for_changed_tables_does_not_fit(tmp_path, monkeypatch):
    dest = checkpoint.export_shipped(_trained(epochs=1), tmp_path / "shipped")
    monkeypatch.setattr(datasets, "version_sha256", lambda ds: "0" * 64)
    fits, why = checkpoint.shipped_fit(dest)
    assert not fits and "differs" in why
    assert checkpoint.install_shipped(dest) is None
    assert not checkpoint.shipped_fit(tmp_path / "nothing")[0]


def test_an_unfinished_run_ships_only_when_asked_and_says_where_it_stopped(tmp_path):
    with pytest.raises(train.Cancelled) as stopped:
        train.train(TrainConfig(dataset="tiny", epochs=3, batch_size=8, device="cpu"), should_stop=_stop_in_epoch(2))
    run_dir = stopped.value.run_dir
    evaluate.evaluate(run_dir, "test")
    with pytest.raises(runs.RunError, match="not finished"):
        checkpoint.export_shipped(run_dir, tmp_path / "shipped")
    dest = checkpoint.export_shipped(run_dir, tmp_path / "shipped", unfinished=True)
    ck = json.loads((dest / "checkpoint" / "checkpoint.json").read_text())
    assert ck["status"] == "finished" and ck["stopped"].startswith("stopped by hand after epoch 1 of 3")


def _stop_in_epoch(epoch: int):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 23 * (epoch - 1) + 2      # 23 updates per epoch on the tiny dataset
    return should_stop


def test_export_refuses_a_run_without_a_test_evaluation(tmp_path):
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, device="cpu"))
    with pytest.raises(runs.RunError, match="no test evaluation"):
        checkpoint.export_shipped(run_dir, tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()


def test_the_repositorys_checkpoint_refuses_a_projector_over_its_size_limit(tmp_path, monkeypatch):
    run_dir = _trained(epochs=1)
    repo_default = tmp_path / "assets" / "default-checkpoint"
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", repo_default)
    size = checkpoint.tensor_bytes(checkpoint.shipped_state(
        checkpoint.unpacked_state(runs.load_tensors(runs.checkpoint_dir(run_dir) / runs.BEST_FILE))))
    monkeypatch.setattr(checkpoint, "SHIPPED_MAX_BYTES", size - 1)
    with pytest.raises(runs.RunError, match="over the .* MB the repository's checkpoint"):
        checkpoint.export_shipped(run_dir)
    assert not repo_default.parent.exists()                  # refused before anything was written
    assert (checkpoint.export_shipped(run_dir, tmp_path / "elsewhere") / "checkpoint").is_dir()   # no limit there
    monkeypatch.setattr(checkpoint, "SHIPPED_MAX_BYTES", size)
    assert checkpoint.export_shipped(run_dir) == repo_default


@pytest.mark.parametrize("projector_input, fits", [("features", True), ("posterior", True),
                                                    ("features+posterior", False)])
def test_which_default_size_projectors_fit_the_repository(projector_input, fits, monkeypatch):
    """check_ships_to_repository at the real models' widths (EfficientNet-Lite2 1280, SmolLM2-135M
    576), 385 concepts and the default projector: the shipped recipe's input must fit."""
    from types import SimpleNamespace
    from core.models import registry

    lm = SimpleNamespace(hidden_size=576, token_norm=lambda: 1.0)

    def posterior_input(vlm, cfg, classes):
        vlm.projector = registry.create_projector(cfg, 1280, lm, classes)

    monkeypatch.setattr(checkpoint, "build_vlm",
                        lambda cfg, device: SimpleNamespace(projector=registry.create_projector(cfg, 1280, lm)))
    monkeypatch.setattr(registry, "use_posterior_input", posterior_input)
    cfg = TrainConfig(projector_input=projector_input)
    if fits:
        checkpoint.check_ships_to_repository(cfg, 385)
    else:
        with pytest.raises(ConfigError, match=r"would take 3\.\d\d MB shipped, over the 3 MB"):
            checkpoint.check_ships_to_repository(cfg, 385)


def test_learning_note_flags_unlearned_and_yes_biased_checkpoints(tmp_path):
    unevaluated = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, seed=1, device="cpu"))
    assert "not been evaluated" in (runs.learning_note(unevaluated) or "")
    run_dir = _trained(epochs=1)
    path = runs.eval_dir(run_dir, "test") / "metrics.json"
    m = json.loads(path.read_text())
    m["leaf"]["accuracy"], m["confusion"] = 0.93, {"tp": 40, "fp": 5, "fn": 10, "tn": 45}
    path.write_text(json.dumps(m))
    assert runs.learning_note(run_dir) is None
    m["leaf"]["accuracy"], m["confusion"] = 0.51, {"tp": 50, "fp": 43, "fn": 0, "tn": 7}
    path.write_text(json.dumps(m))
    note = runs.learning_note(run_dir)
    assert "0.51" in note and "93%" in note


def test_learning_note_reads_the_leaf_ranking_when_there_is_one():
    run_dir = _trained(epochs=1)
    path = runs.eval_dir(run_dir, "test") / "metrics.json"
    m = json.loads(path.read_text())
    m["leaf"]["accuracy"], m["confusion"] = 0.93, {"tp": 40, "fp": 5, "fn": 10, "tn": 45}
    path.write_text(json.dumps(m))
    ranking = runs.eval_dir(run_dir, "test") / runs.RANKING_FILE
    ranking.write_text(json.dumps({"top5": 0.25, "images": 20}))
    note = runs.learning_note(run_dir)
    assert note and "top 5 for only 25% of 20 test images" in note and "leaf accuracy" not in note
    ranking.write_text(json.dumps({"top5": 0.75, "images": 20}))
    assert runs.learning_note(run_dir) is None
    assert runs.load_ranking(run_dir)["top5"] == 0.75


def test_ship_command_ranks_every_leaf_first_when_the_run_has_no_ranking(tmp_path, capsys):
    from core import cli
    run_dir = _trained(epochs=1)
    ranking = runs.eval_dir(run_dir, "test") / runs.RANKING_FILE
    assert not ranking.is_file()
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "shipped")]) == 0
    n_test = len(rundata.prepare(runs.load_run(run_dir).config).images("test"))
    written = json.loads(ranking.read_text())
    assert written["images"] == min(n_test, 40)
    assert json.loads((tmp_path / "shipped" / "eval" / "test" / runs.RANKING_FILE).read_text()) == written
    stamp = ranking.stat().st_mtime_ns                    # already ranked on enough images: kept as is
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "again")]) == 0
    assert ranking.stat().st_mtime_ns == stamp


def _saved_again(run_dir):
    """checkpoint.json as a resumed run's next save leaves it (train.py: `updated` is the save's time)."""
    ck = runs.read_json(runs.checkpoint_json(run_dir))
    runs.write_json(runs.checkpoint_json(run_dir), {**ck, "updated": "2099-01-01T00:00:00+00:00"})


def test_a_ranking_made_before_the_run_resumed_is_not_read_as_its_checkpoints(tmp_path, capsys):
    from core import cli
    run_dir = _trained(epochs=1)
    m = runs.load_metrics(run_dir, "test")                # evaluated as learned, so the ranking decides
    m["leaf"]["accuracy"], m["confusion"] = 0.95, {"tp": 10, "fp": 1, "tn": 10, "fn": 1}
    runs.write_json(runs.eval_dir(run_dir, "test") / runs.METRICS_JSON, m)
    ranked = evaluate.leaf_ranking(run_dir, "test")
    assert ranked["checkpoint"] == runs.checkpoint_version(run_dir) is not None
    path = runs.eval_dir(run_dir, "test") / runs.RANKING_FILE
    runs.write_json(path, {**ranked, "top5": 0.25})
    assert "top 5 for only 25%" in runs.learning_note(run_dir)

    _saved_again(run_dir)
    assert runs.load_ranking(run_dir) is None and runs.ranking_summary(run_dir) is None
    assert runs.load_ranking(run_dir, stale=True)["top5"] == 0.25
    # neither the old ranking nor the old evaluation speaks for it: the note says to evaluate again
    assert "trained further after its test evaluation" in runs.learning_note(run_dir)
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "shipped")]) == 2   # nor does it ship
    assert "trained further after its test evaluation; run `taxolens evaluate" in capsys.readouterr().err
    assert not (tmp_path / "shipped").exists() and runs.load_ranking(run_dir) is None   # nothing ranked first

    m["checkpoint"] = runs.checkpoint_version(run_dir)
    runs.write_json(runs.eval_dir(run_dir, "test") / runs.METRICS_JSON, m)   # evaluated again
    assert runs.learning_note(run_dir) is None             # the stale ranking is left out
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "shipped")]) == 0
    fresh = runs.load_ranking(run_dir)                    # ranked again before shipping, not copied
    assert fresh["checkpoint"] == runs.checkpoint_version(run_dir) and "2099" in fresh["checkpoint"]
    shipped = tmp_path / "shipped"
    assert runs.load_ranking(shipped)["checkpoint"] == runs.checkpoint_version(shipped) == fresh["checkpoint"]


def test_a_ranking_recorded_without_its_checkpoint_is_judged_by_file_time():
    run_dir = _trained(epochs=1)
    ranked = evaluate.leaf_ranking(run_dir, "test")
    path = runs.eval_dir(run_dir, "test") / runs.RANKING_FILE
    runs.write_json(path, {k: v for k, v in ranked.items() if k != "checkpoint"})   # older code's record
    assert runs.load_ranking(run_dir)["top5"] == ranked["top5"]
    ck = runs.checkpoint_json(run_dir).stat().st_mtime_ns
    import os
    os.utime(path, ns=(ck - 10**9, ck - 10**9))           # written before the checkpoint's last save
    assert runs.load_ranking(run_dir) is None and runs.load_ranking(run_dir, stale=True) is not None


def test_the_shipped_checkpoints_ranking_is_of_its_own_checkpoint():
    shipped = paths.SHIPPED_CHECKPOINT
    assert runs.load_ranking(shipped)["checkpoint"] == runs.checkpoint_version(shipped)
    # and so is its evaluation, whatever order a checkout or a copy gives its files' times
    assert runs.load_metrics(shipped)["checkpoint"] == runs.checkpoint_version(shipped)
    assert runs.evaluation_is_current(shipped, "test")


def test_an_evaluation_is_judged_by_the_checkpoint_it_records_not_by_file_times():
    """Reported: re-shipping a run rewrites its checkpoint.json (new export time) but not its
    metrics.json; a checkout then gives checkpoint.json the newer time, and a file-time rule called
    the shipped evaluation stale. A data folder copied without its times did the same at random."""
    import os
    run_dir = _trained(epochs=1)
    metrics_path = runs.eval_dir(run_dir, "test") / runs.METRICS_JSON
    assert runs.load_metrics(run_dir)["checkpoint"] == runs.checkpoint_version(run_dir)
    ck = runs.checkpoint_json(run_dir).stat().st_mtime_ns
    os.utime(metrics_path, ns=(ck - 10**9, ck - 10**9))   # older on disk, of the same checkpoint
    assert runs.evaluation_is_current(run_dir, "test")
    assert "trained further" not in (runs.learning_note(run_dir) or "")
    _saved_again(run_dir)                                   # the checkpoint moved on: stale, whatever the times
    os.utime(metrics_path)
    assert not runs.evaluation_is_current(run_dir, "test")
    assert "trained further after its test evaluation" in runs.learning_note(run_dir)


def test_train_leaf_stage_trains_a_second_run_from_the_first_and_ships_that_one(tmp_path, monkeypatch, capsys):
    from core import cli, preflight
    from core.config import LEAF_STAGE
    monkeypatch.setattr(preflight, "check_weights", lambda *a, **k: None)     # the fake VLM needs none
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", tmp_path / "shipped")
    argv = ["train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "8", "--lr", "0.05",
            "--device", "cpu", "--leaf-stage", "--ship"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["first_stage"]["run_dir"], out["run_dir"]
    assert first != second and out["shipped_to"] == str(tmp_path / "shipped")
    cfg = runs.load_run(second).config
    assert cfg == TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu").leaf_stage(out["first_stage"]["run_id"])
    assert cfg.rank_negatives == LEAF_STAGE["rank_negatives"] and runs.load_run(cfg.init_from).path == Path(first)
    assert runs.load_run(second).epoch == LEAF_STAGE["epochs"] and out["test"] and out["first_stage"]["test"]
    shipped = json.loads((tmp_path / "shipped" / "checkpoint" / "checkpoint.json").read_text())
    assert shipped["run_id"] == out["run_id"] and shipped["init_from"]["run_id"] == out["first_stage"]["run_id"]


def test_a_leaf_stage_run_is_offered_as_a_default_checkpoint_and_another_second_stage_is_not():
    import dataclasses
    import shutil
    cfg = TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu")
    first = train.train(cfg)
    train.train(dataclasses.replace(cfg, init_from=first.name, lr=0.01))     # a second stage, not the leaf stage
    stage = train.train(cfg.leaf_stage(first.name))
    ck_file = runs.checkpoint_dir(first) / "checkpoint.json"
    ck = json.loads(ck_file.read_text())
    ck["best"]["score"] = 2.0                          # the first stage scoring best on validation
    ck_file.write_text(json.dumps(ck))
    assert runs.default_checkpoint(cfg) == stage       # the leaf stage is still offered over its own first stage
    shutil.rmtree(first)                # as on a fresh clone: the shipped leaf stage without its first stage
    assert runs.default_checkpoint(cfg) == stage


def test_train_leaf_stage_gives_rank_soft_to_the_leaf_stage_alone(tmp_path, monkeypatch, capsys):
    from core import cli, preflight
    from core.config import LEAF_STAGE
    monkeypatch.setattr(preflight, "check_weights", lambda *a, **k: None)     # the fake VLM needs none
    argv = ["train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "8", "--lr", "0.05", "--device", "cpu",
            "--projector-input", "posterior", "--projector-tokens", "1", "--projector-hidden", "0",
            "--rank-soft", "0.5", "--leaf-stage", "--no-eval"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = runs.load_run(out["first_stage"]["run_dir"]).config, runs.load_run(out["run_dir"]).config
    assert first.rank_soft == 0.0 and first.rank_negatives == 0           # the first stage ranks nothing
    assert second.rank_soft == 0.5 and second.rank_negatives == LEAF_STAGE["rank_negatives"]
    assert cli.main(argv[:-2]) != 0                                        # without --leaf-stage: refused
    assert "rank_soft needs ranking groups" in capsys.readouterr().err


def test_predict_without_a_run_installs_the_shipped_checkpoint_and_answers_with_it(tmp_path, monkeypatch, capsys):
    """Reported: the README's first `taxolens predict photo.jpg` failed on a fresh clone ("no finished
    run") until `make app` had installed the shipped checkpoint."""
    import shutil
    from PIL import Image
    from core import cli, predict, preflight
    monkeypatch.setattr(preflight, "check_weights", lambda *a, **k: None)     # the fake VLM needs none
    loaded = []

    class Stub:              # what is loaded is the point here; Predictor's answers have tests of their own
        def predict(self, image, top_k=5, full=False, progress=None):
            return type("P", (), {"to_dict": lambda self: {"best": "dog", "notes": []}})()

    monkeypatch.setattr(predict.Predictor, "load",
                        classmethod(lambda cls, path, device=None: loaded.append(Path(path)) or Stub()))
    run_dir = _trained(epochs=1)                 # not the default config: default_checkpoint() finds none
    assert runs.default_checkpoint() is None
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "shipped")]) == 0
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", tmp_path / "shipped")
    shutil.rmtree(paths.runs_dir())              # a fresh clone, before `make app` ever ran
    img = tmp_path / "dog.png"
    Image.new("RGB", (32, 32), (120, 90, 60)).save(img)
    capsys.readouterr()
    assert cli.main(["predict", str(img)]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["run_id"] == run_dir.name
    installed = paths.runs_dir() / run_dir.name
    assert loaded == [installed] and (installed / "checkpoint" / "checkpoint.json").is_file()


def test_predict_warns_on_the_command_line_when_the_checkpoint_has_not_learned(tmp_path, monkeypatch, capsys):
    """Reported: `train` warned that its checkpoint had not learned, `predict` then answered "bus"
    for a dog with no word of it, though the Predict page says so beside every answer."""
    from PIL import Image
    from core import cli, predict, preflight
    monkeypatch.setattr(preflight, "check_weights", lambda *a, **k: None)

    class Stub:
        def predict(self, image, top_k=5, full=False, progress=None):
            return type("P", (), {"to_dict": lambda self: {"best": "dog", "notes": []}})()

    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, path, device=None: Stub()))
    run_dir = _trained(epochs=1)
    img = tmp_path / "dog.png"
    Image.new("RGB", (32, 32)).save(img)
    note = runs.learning_note(run_dir)
    assert note is not None                                   # one epoch of the fake: not learned
    capsys.readouterr()
    assert cli.main(["predict", str(img), "--run", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warning"] == note and f"taxolens predict: warning: {note}" in err

    ranking = runs.eval_dir(run_dir, "test") / runs.RANKING_FILE
    ranking.write_text("[1, 2]")                              # a damaged evaluation: answered, and said
    assert cli.main(["predict", str(img), "--run", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert "test evaluation cannot be read" in json.loads(out)["warning"] and "is not a leaf ranking" in err
    ranking.unlink()

    m = runs.load_metrics(run_dir, "test")                    # the same run, evaluated as learned
    m["leaf"]["accuracy"], m["confusion"] = 0.95, {"tp": 10, "fp": 1, "tn": 10, "fn": 1}
    runs.write_json(runs.eval_dir(run_dir, "test") / runs.METRICS_JSON, m)
    assert runs.learning_note(run_dir) is None
    assert cli.main(["predict", str(img), "--run", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in json.loads(out) and "warning" not in err


def test_predict_without_a_run_says_why_the_shipped_checkpoint_cannot_stand_in(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from core import cli
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", tmp_path / "nothing-shipped")
    img = tmp_path / "dog.png"
    Image.new("RGB", (32, 32)).save(img)
    assert cli.main(["predict", str(img)]) == 2
    err = capsys.readouterr().err
    assert "no finished run" in err and f"no shipped checkpoint in {tmp_path / 'nothing-shipped'}" in err
    assert f"there is no trained run in {paths.runs_dir()}" in err
    assert not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())
    mine = _trained(epochs=1)              # a run of another config: named, for --run
    assert cli.main(["predict", str(img)]) == 2
    assert f"pass --run RUN_ID (runs with a checkpoint here: {mine.name};" in capsys.readouterr().err


def test_ship_refuses_a_destination_it_would_delete(tmp_path, capsys):
    """Reported: `ship --dest` replaced whatever folder it was given (the runs folder, the run's own
    folder, a folder of the user's files) with the export."""
    from core import cli
    run_dir = _trained(epochs=1)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    a_file = tmp_path / "afile.txt"
    a_file.write_text("x")
    for dest, why in ((precious, "not a shipped checkpoint"), (paths.runs_dir(), "holds or sits inside the run"),
                      (run_dir, "holds or sits inside the run"), (run_dir / "checkpoint", "sits inside the run"),
                      (a_file, "is a file")):
        before = sorted(p.name for p in Path(dest).parent.iterdir())
        assert cli.main(["ship", str(run_dir), "--dest", str(dest)]) == 2, dest
        assert why in capsys.readouterr().err, dest
        assert sorted(p.name for p in Path(dest).parent.iterdir()) == before      # no .old, no temp folder
    assert (precious / "thesis.tex").read_text() == "x" and a_file.read_text() == "x"
    assert runs.load_run(run_dir).finished and (runs.checkpoint_dir(run_dir) / runs.PROJECTOR_FILE).is_file()
    shipped = tmp_path / "shipped"
    for _ in range(2):                           # a new folder, then an earlier shipped checkpoint: replaced
        assert cli.main(["ship", str(run_dir), "--dest", str(shipped)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert (shipped.stat().st_mode & 0o777) == 0o755


def test_ship_refuses_a_run_whose_test_evaluation_is_damaged(tmp_path, capsys):
    from core import cli
    run_dir = _trained(epochs=1)
    (runs.eval_dir(run_dir, "test") / runs.METRICS_JSON).write_text("{")
    assert cli.main(["ship", str(run_dir), "--dest", str(tmp_path / "shipped")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err and not (tmp_path / "shipped").exists()


def test_predictor_load_without_a_run_installs_the_shipped_checkpoint_or_says_why_not(tmp_path, monkeypatch):
    import shutil
    from core.predict import Predictor
    run_dir = _trained(epochs=1)
    shipped = checkpoint.export_shipped(run_dir, tmp_path / "shipped")
    shutil.rmtree(paths.runs_dir())                      # a fresh clone: nothing trained here
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", shipped)
    p = Predictor.load()
    assert p.info.path == paths.runs_dir() / run_dir.name and checkpoint.shipped_installed()

    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", tmp_path / "nothing-shipped")
    shutil.rmtree(paths.runs_dir())
    with pytest.raises(runs.RunError, match=r"no trained run to load: .*no shipped checkpoint in .*nothing-shipped"):
        Predictor.load()
