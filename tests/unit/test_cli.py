"""The command line: help for every command, and bad arguments -> one stderr line, exit 2, and
nothing written under the data directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli, paths
from core.config import TrainConfig
from tiny_concepts import tiny_dataset
from cli_checks import tree

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("train", "evaluate", "baseline", "probe-lm", "predict", "coherence", "runs", "results")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An isolated data dir whose dataset 'tiny' is the in-memory tiny dataset."""
    from core.data import datasets

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name="concepts": tiny_dataset() if name == "tiny" else real_load(name))
    return tmp_path


def fails_cleanly(argv, capsys, root: Path, fragment: str) -> str:
    before = tree(root)
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("taxolens") and "error:" in lines[0]
    assert fragment in lines[0], lines[0]
    assert out == ""
    assert tree(root) == before, "a failed command wrote files"
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert "usage: taxolens " + command in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--condition", "random:1.5"], "[0, 1]"),
    (["train", "--condition", "random:-0.2"], "[0, 1]"),
    (["train", "--condition", "sideways"], "unknown condition"),
    (["train", "--epochs", "zero"], "invalid int value"),
    (["train", "--epochs", "0"], "epochs must be an integer"),
    (["train", "--lm-init", "warm"], "lm_init"),
    (["train", "--device", "tpu"], "device"),
    (["train", "--images-per-concept", "2"], "images_per_concept"),
    (["baseline", "median"], "invalid choice"),
    (["baseline", "lm_only"], "invalid choice"),
    (["probe-lm", "--lm-init", "warm"], "invalid choice"),
    (["probe-lm", "--device", "tpu"], "invalid choice"),
    (["probe-lm", "--seed", "-1"], "seed"),
    (["results"], "required"),
    (["baseline", "majority", "--condition", "random:2"], "[0, 1]"),
    (["evaluate", "no-such-run"], "no run 'no-such-run'"),
    (["evaluate", "x", "--split", "dev"], "invalid choice"),
    (["evaluate", "x", "--leaf-ranking", "-1"], "must be an integer"),
    (["evaluate", "x", "--leaf-ranking", "all"], "invalid int value"),
    (["train", "--hard-negatives", "-1"], "hard_negatives must be an integer"),
    (["predict", "missing.png"], "missing.png"),
    (["coherence", "--seed", "-1"], "seed"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments(argv, fragment, data_dir, capsys):
    fails_cleanly(argv, capsys, data_dir, fragment)


def test_config_file_errors(data_dir, tmp_path_factory, capsys):
    elsewhere = tmp_path_factory.mktemp("cfg")
    bad = elsewhere / "bad.json"
    bad.write_text("{not json")
    fails_cleanly(["train", "--config", str(bad)], capsys, data_dir, "not readable JSON")
    unknown = elsewhere / "unknown.json"
    unknown.write_text(json.dumps({"epochs": 1, "colour": "red"}))
    fails_cleanly(["train", "--config", str(unknown)], capsys, data_dir, "unknown training option(s): colour")
    fails_cleanly(["train", "--config", str(elsewhere / "nope.json")], capsys, data_dir, "does not exist")


def make_run(root: Path, name: str, epoch: int, **cfg) -> Path:
    run = root / "runs" / name
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig(**cfg).to_dict()))
    if epoch:
        (run / "checkpoint" / "checkpoint.json").write_text(json.dumps({"status": "finished",
                                                                         "epoch": epoch}))
    return run


def test_run_without_checkpoint(data_dir, capsys):
    make_run(data_dir, "fresh", epoch=0)
    fails_cleanly(["evaluate", "fresh"], capsys, data_dir, "no trained checkpoint")
    img = data_dir / "dog.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(img)
    fails_cleanly(["predict", str(img), "--run", "fresh"], capsys, data_dir, "no trained checkpoint")
    fails_cleanly(["predict", str(img)], capsys, data_dir, "no finished run")


def test_train_into_other_runs_directory(data_dir, capsys):
    run = make_run(data_dir, "other", epoch=1, dataset="tiny", seed=3)
    argv = ["train", "--dataset", "tiny", "--seed", "4", "--run-dir", str(run)]
    line = fails_cleanly(argv, capsys, data_dir, "different config")
    assert "seed: 3 -> 4" in line


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--dataset", "tiny", "--condition", "systematic:9"], "more categories than"),
    (["train", "--dataset", "tiny", "--condition", "systematic:mammal+reptile"], "unknown category 'reptile'"),
    (["train", "--dataset", "tiny", "--encoder", "no-such-encoder"], "no-such-encoder"),
    (["train", "--dataset", "tiny", "--lm", "no-such-lm"], "no-such-lm"),
    (["probe-lm", "--dataset", "tiny", "--lm", "gpt-17"], "gpt-17"),
    (["probe-lm", "--dataset", "nope"], "dataset 'nope' not found"),
    (["coherence", "--dataset", "tiny", "--encoder", "no-such-encoder"], "no-such-encoder"),
    (["train", "--dataset", "nope"], "dataset 'nope' not found"),
    (["coherence", "--dataset", "nope"], "dataset 'nope' not found"),
])
def test_bad_ids_and_dataset_dependent_checks(argv, fragment, data_dir, capsys):
    fails_cleanly(argv, capsys, data_dir, fragment)


def test_checkpoint_for_another_model(data_dir, capsys):
    from core.models import registry

    cfg = TrainConfig()
    other_encoder = next(e for e in registry.ENCODERS if e != cfg.encoder)
    other_lm = next(m for m in registry.LMS if m != cfg.lm)
    make_run(data_dir, "trained", epoch=1)
    fails_cleanly(["evaluate", "trained", "--encoder", other_encoder], capsys, data_dir,
                  "cannot be used with encoder")
    img = data_dir / "dog.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(img)
    line = fails_cleanly(["predict", str(img), "--run", "trained", "--lm", other_lm], capsys, data_dir,
                         "cannot be used with")
    assert other_lm in line


def test_results_report_writes_markdown_even_without_runs(data_dir, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("report") / "results.md"
    assert cli.main(["results", "report", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["train_results"] == 0
    text = out.read_text()
    assert text.startswith("# TaxoLens results") and "No evaluated training runs yet" in text
    fails_cleanly(["results", "report", "--out", str(data_dir)], capsys, data_dir, "is a directory")


def test_a_study_in_its_own_data_folder_writes_its_report_there_not_over_the_repositorys(data_dir, capsys,
                                                                                         monkeypatch):
    """Reported: with TAXOLENS_DATA elsewhere, `results report` and `sweep run` still wrote
    <repo>/docs/results.md, replacing the repository's report with the study's runs."""
    repo_report = paths.ROOT / "docs" / "results.md"
    before = repo_report.read_bytes() if repo_report.exists() else None
    assert cli.main(["results", "report"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(data_dir / "results.md")
    assert (data_dir / "results.md").read_text().startswith("# TaxoLens results")
    assert (repo_report.read_bytes() if repo_report.exists() else None) == before
    assert paths.default_figures_dir() == data_dir / "figures"
    monkeypatch.setenv("TAXOLENS_DATA", str(paths.ROOT / "data"))      # the repository's own data: its docs
    assert paths.default_report() == repo_report and paths.default_figures_dir() == paths.ROOT / "artifacts" / "figures"


def test_runs_lists_nothing_in_an_empty_data_dir(data_dir, capsys):
    assert cli.main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_runs_table_says_once_what_its_f1_columns_are(data_dir, capsys):
    """Reported: every row ended "(per-category macro-F1)", though the leaf column is per concept."""
    make_run(data_dir, "a", epoch=1)
    make_run(data_dir, "b", epoch=1, seed=1)
    assert cli.main(["runs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("macro-F1" not in line for line in lines[:2])
    assert lines[-1].startswith("leaf acc: test leaf questions answered right; F1: their yes/no macro-F1 per "
                                "concept; seen, unseen: per-category")
    assert " leaf acc     -  F1     -  seen     -  unseen     -" in lines[0]      # never evaluated


def test_module_entry_point_exit_code(tmp_path):
    """`python -m core` really exits 2 with one stderr line, and writes nothing."""
    env = dict(os.environ, TAXOLENS_DATA=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--condition", "random:7"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "[0, 1]" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_flags_come_from_every_trainconfig_field():
    import dataclasses

    from core.cli import common
    from core.config import TrainConfig
    assert set(common.TRAIN_HELP) == {f.name for f in dataclasses.fields(TrainConfig)}
    args = cli.build_parser().parse_args(["train", "--max-steps", "3", "--lm-init", "random"])
    assert common.train_overrides(args) == {"max_steps": 3, "lm_init": "random"}
    on = cli.build_parser().parse_args(["train", "--fresh-negatives"])           # a bool field: a switch
    off = cli.build_parser().parse_args(["train", "--no-fresh-negatives"])
    assert common.train_overrides(on) == {"fresh_negatives": True}
    assert common.train_overrides(off) == {"fresh_negatives": False}


def test_the_shipped_command_trains_the_shipped_recipe_and_is_the_one_the_readme_gives():
    """The Train page shows SHIPPED_COMMAND; the README's copy of it is checked here, so neither
    drifts from core.config.SHIPPED_RECIPE when the recipe changes."""
    from core.cli import common
    from core.config import SHIPPED_COMMAND, SHIPPED_RECIPE
    program, *argv = SHIPPED_COMMAND.split()
    args = cli.build_parser().parse_args(argv)
    assert program == "taxolens" and args.leaf_stage and args.ship
    assert common.train_overrides(args) == SHIPPED_RECIPE
    readme = " ".join((paths.ROOT / "README.md").read_text().split())      # its lines wrap anywhere
    assert f"`{SHIPPED_COMMAND}`" in readme


def test_data_and_assets_are_subcommands(data_dir, capsys):
    assert cli.main(["data", "list"]) == 0
    assert cli.main(["data", "summary", "nosuch"]) == 2
    assert "not found" in capsys.readouterr().err


def test_coherence_is_over_the_training_images_unless_asked_for_all(data_dir, capsys, monkeypatch):
    import numpy as np

    from core import geometry, questions
    feats = np.random.default_rng(0).normal(size=(len(tiny_dataset().images), 4))
    monkeypatch.setattr(geometry, "pooled_features", lambda ds, enc, device=None, progress=None: feats)
    ds = tiny_dataset()
    split = questions.split_images(ds, 1)
    train = [i for i, it in enumerate(ds.images) if split[it.id] == "train"]
    out = {}
    for flag in ([], ["--images", "train"], ["--images", "all"]):
        assert cli.main(["coherence", "--dataset", "tiny", "--seed", "1", *flag]) == 0
        out[" ".join(flag)] = json.loads(capsys.readouterr().out)
    assert out[""] == out["--images train"]
    default, everything = out[""], out["--images all"]
    assert (default["images"], default["n_images"]) == ("train", len(train))
    assert (everything["images"], everything["n_images"]) == ("all", len(ds.images))
    assert default["csv"] != everything["csv"] and "__train__" in default["csv"] and "__all__" in everything["csv"]
    assert default["all"]["original"] == pytest.approx(
        np.nanmean(list(geometry.coherence(ds, feats[train], indices=train).values())))
    assert everything["all"]["original"] == pytest.approx(np.nanmean(list(geometry.coherence(ds, feats).values())))
    assert default["all"]["original"] != pytest.approx(everything["all"]["original"])
    fails_cleanly(["coherence", "--dataset", "tiny", "--images", "val"], capsys, data_dir,
                  "images must be 'train' or 'all', got 'val'")
    # the training images of another split: those a run with --split-percent 70,5,25 trains on (20
    # images per concept: 12 of them in train at 60/20/20, 14 at 70/5/25)
    from core.data import datasets
    ds = tiny_dataset(images_per_concept=20)
    feats = np.random.default_rng(1).normal(size=(len(ds.images), 4))
    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": ds)
    paper = questions.split_images(ds, 1, (0.7, 0.05, 0.25))
    paper_train = [i for i, it in enumerate(ds.images) if paper[it.id] == "train"]
    assert len(paper_train) == 14 * len(ds.concepts) != sum(v == "train" for v in questions.split_images(ds, 1).values())
    assert cli.main(["coherence", "--dataset", "tiny", "--seed", "1", "--split-percent", "70,5,25"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["n_images"] == len(paper_train) and "__train-70-5-25__" in other["csv"]
    assert other["all"]["original"] == pytest.approx(
        np.nanmean(list(geometry.coherence(ds, feats[paper_train], indices=paper_train).values())))
    fails_cleanly(["coherence", "--dataset", "tiny", "--split-percent", "90/10/0"], capsys, data_dir,
                  "train, val and test each need a share above 0")


@pytest.mark.parametrize("command", ["lens", "clusters", "coherence"])
def test_a_device_that_does_not_exist_is_refused_by_name(command, data_dir, capsys):
    """Reported: `lens RUN --device tpu` and `clusters RUN --device CUDA` ended in a torch traceback."""
    argv = [command] + ([] if command == "coherence" else ["somerun"]) + ["--device", "tpu"]
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(argv)
    assert stop.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["lens", "clusters"])
def test_cuda_on_a_machine_without_it_is_one_line_before_the_run_is_read(command, data_dir, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fails_cleanly([command, "no-such-run", "--device", "cuda"], capsys, data_dir, "no CUDA GPU is available")


@pytest.mark.parametrize("record", [[1, 2], {}, {"status": "finished"}, {"status": "finished", "epoch": "two"}, {"epoch": None},
                                    {"epoch": 1, "metrics": "x"}])
def test_a_checkpoint_record_of_the_wrong_shape_is_named_not_a_traceback(record, data_dir, capsys):
    """Reported: a checkpoint.json of valid JSON but the wrong shape ended `predict`, `evaluate` and
    `runs` in an AttributeError / ValueError traceback, and one such run broke every listing."""
    make_run(data_dir, "good", epoch=1)
    bad = make_run(data_dir, "bad", epoch=1)
    (bad / "checkpoint" / "checkpoint.json").write_text(json.dumps(record))
    fails_cleanly(["evaluate", "bad"], capsys, data_dir, "is not a checkpoint record")
    assert cli.main(["runs", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ["good"]


def test_a_damaged_evaluation_is_noted_and_the_other_runs_still_listed(data_dir, capsys):
    for name in ("one", "two"):
        make_run(data_dir, name, epoch=1)
    metrics = data_dir / "runs" / "one" / "eval" / "test" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("[1]")
    assert cli.main(["runs", "--json"]) == 0
    out, err = capsys.readouterr()
    assert sorted(r["run_id"] for r in json.loads(out)) == ["one", "two"]
    assert "is not an evaluation" in err
    from core import results
    assert results.load_eval(data_dir / "runs" / "one") is None


def test_sigterm_asks_training_to_stop_after_the_step_as_ctrl_c_does():
    """Reported: `timeout 60 taxolens train ...` (SIGTERM, as Slurm's time limit sends) left a run
    folder holding only config.json; SIGTERM now stops at the next step, saved and resumable."""
    import os
    import signal
    from core.cli.common import StopFlag
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop()                                    # the training loop polls this between steps
        with pytest.raises(KeyboardInterrupt):           # a second signal aborts at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_output_path_that_cannot_be_written_is_refused_before_the_work(data_dir, tmp_path_factory, capsys):
    """Reported: `results report --out photo.png/x.md` and `sweep run SPEC --report photo.png/r.md`
    failed with a traceback when writing, the sweep only after running every job."""
    elsewhere = tmp_path_factory.mktemp("out")
    a_file = elsewhere / "photo.png"
    a_file.write_bytes(b"x")
    fails_cleanly(["results", "report", "--out", str(a_file / "x.md")], capsys, data_dir, "is a file, so nothing")
    fails_cleanly(["results", "report", "--out", str(elsewhere)], capsys, data_dir, "is a directory")
    fails_cleanly(["results", "figures", "--out", str(a_file / "sub")], capsys, data_dir, "is a file, so nothing")
    fails_cleanly(["results", "figures", "--out", str(a_file)], capsys, data_dir, "is a file; give a folder")
    spec = elsewhere / "spec.json"
    spec.write_text(json.dumps({"kind": "baseline", "baselines": ["majority"], "conditions": ["none"],
                                "config": {"dataset": "tiny"}}))
    fails_cleanly(["sweep", "run", str(spec), "--report", str(a_file / "r.md")], capsys, data_dir, "is a file, so nothing")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["photo.png", "spec.json"]
