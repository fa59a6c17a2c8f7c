"""No path escapes: every file or folder name made from a user string (encoder id, dataset name, run
id, condition, image name) stays a single component inside the data folder, whatever `..`,
absolute path or separator the string holds (issue 12, case 1)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core import cli, geometry, paths, runs
from core.data import datasets, things
from core.config import TrainConfig
from core.jobs import kinds
from tiny_concepts import tiny_dataset

NASTY = ["..", "../x", "../../../../../x/ck.safetensors", "/etc/passwd", "/tmp/abs/x", "a/b", "a\\b",
         ".", ".hidden", "", "x\0y", "line\nbreak", "a" * 300]


def plain(name: str) -> bool:
    """One path component that cannot climb or hide (checked here independently of core.paths)."""
    return (bool(name) and name not in (".", "..") and not name.startswith(".")
            and not any(c in name for c in "/\\\0\n") and len(name) <= 255)


def inside(path: Path, root: Path) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("text", NASTY)
def test_names_from_user_strings_are_one_plain_component(text):
    for name in (paths.safe_name(text), paths.slug(text)):
        assert paths.is_plain_name(name) and plain(name), name
        assert (Path("/root") / name).parent == Path("/root")
    if not paths.is_plain_name(text):
        with pytest.raises(paths.UnsafeNameError):
            paths.child(Path("/root"), text)


def test_safe_name_keeps_plain_ids_and_tells_others_apart():
    assert paths.safe_name("efficientnet-lite2") == "efficientnet-lite2"     # existing caches keep their name
    a, b = paths.safe_name("timm:x:../a/ck.pt"), paths.safe_name("timm:x:../b/ck.pt")
    assert a != b and a.startswith("timm-x-") and len(a) <= paths.MAX_NAME


@pytest.fixture
def tiny_data(data_dir, monkeypatch):
    """data_dir whose dataset 'tiny' is the in-memory tiny dataset; features are random (no encoder)."""
    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name="concepts": tiny_dataset() if name == "tiny" else real_load(name))
    monkeypatch.setattr(geometry, "pooled_features", lambda ds, enc, device=None, progress=None:
                        np.random.default_rng(0).normal(size=(len(ds.images), 4)))
    return data_dir


@pytest.mark.parametrize("encoder", ["../../../../../x/ck.safetensors", "/ABS/x/ck.safetensors"])
def test_coherence_with_a_checkpoint_path_in_the_encoder_id_writes_only_inside(tiny_data, tmp_path,
                                                                               monkeypatch, capsys, encoder):
    """The reported escape: `taxolens coherence --encoder timm:resnet10t:../../../../../x/ck.safetensors`
    wrote coherence.csv and meta.json outside the data folder, and so did the coherence job."""
    checkpoint = tmp_path / "x" / "ck.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    cwd = tmp_path / "a" / "b" / "c" / "d" / "e"      # ../../../../../x is tmp_path/x, beside data/
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    encoder_id = "timm:resnet10t:" + encoder.replace("/ABS", str(tmp_path))
    before = files_under(tmp_path)

    assert cli.main(["coherence", "--dataset", "tiny", "--encoder", encoder_id]) == 0, capsys.readouterr().err
    spec = kinds.validate("coherence", {"dataset": "tiny", "encoder": encoder_id, "seed": 1})
    ctx = kinds.JobContext(job_id=1, progress=lambda f, m="": None, should_stop=lambda: False)
    result = kinds.get("coherence").execute(spec, ctx)

    new = files_under(tmp_path) - before
    assert new and all(inside(tmp_path / f, tiny_data) for f in new), sorted(new)
    out = Path(json.loads(capsys.readouterr().out)["csv"])
    assert out.parent.parent == tiny_data / "runs" / "coherence"
    assert Path(result["run_dir"]).parent == tiny_data / "runs" / "coherence"


@pytest.mark.parametrize("name", NASTY)
def test_dataset_names_never_become_paths(data_dir, tmp_path, name):
    with pytest.raises(datasets.DatasetError):
        datasets.dataset_dir(name)
    with pytest.raises(datasets.DatasetError):
        things.import_things(tmp_path, tmp_path / "t.csv", name)
    assert not (data_dir / "datasets").exists() or list((data_dir / "datasets").iterdir()) == []


def _make_run(root: Path, epoch: int = 1) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    if epoch:
        (root / "checkpoint").mkdir()
        (root / "checkpoint" / "checkpoint.json").write_text(json.dumps({"status": "finished", "epoch": 1}))
    return root


def test_a_run_id_is_looked_up_only_inside_the_runs_folder(data_dir, tmp_path, monkeypatch, capsys):
    """`../escape` must not find data/escape (or anything else) as a run under runs/."""
    _make_run(data_dir / "escape")
    run = _make_run(data_dir / "runs" / "real")      # runs/ exists, so runs/../escape would resolve
    monkeypatch.chdir(tmp_path)                      # where ../escape does not exist either
    for ref in ("../escape", "..", "../../" + data_dir.name + "/escape"):
        with pytest.raises(runs.RunError):
            runs.resolve_run_dir(ref)
        with pytest.raises(kinds.JobSpecError):
            kinds.validate("evaluate", {"run": ref})
        assert cli.main(["evaluate", ref]) == 2
        assert "no run" in capsys.readouterr().err
    assert runs.resolve_run_dir("real") == run.resolve()   # plain ids and explicit paths still work
    assert runs.resolve_run_dir(str(run)) == run.resolve()


@pytest.mark.parametrize("condition", ["systematic:../../x", "systematic:/etc", "random:0.5/../../y",
                                       "cross\\..\\z", ".."])
def test_conditions_in_run_and_baseline_names_are_slugs(data_dir, condition):
    cfg = TrainConfig(condition=condition)
    for name in (runs.new_run_id(cfg), runs.condition_slug(condition), runs._slug(condition)):
        assert plain(name), name
    assert runs.create_run_dir(cfg).parent == data_dir / "runs"
    d = kinds.get("baseline").make_output_dir({"baseline": "majority", "config": cfg.to_dict()})
    assert d.parent == runs.baselines_dir() and plain(d.name)


@pytest.mark.parametrize("file_name", ["...png", "a\\..\\b.png", "-rf .png", "x\ny.png"])
def test_prediction_file_names_are_safe(data_dir, tmp_path, monkeypatch, capsys, file_name):
    from PIL import Image

    from core import predict

    class Stub:
        def predict(self, image, top_k=5, full=False, progress=None):
            return type("P", (), {"to_dict": lambda self: {"best": "dog"}})()

    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, path, device=None: Stub()))
    _make_run(data_dir / "runs" / "r1")
    image = tmp_path / file_name
    Image.new("RGB", (8, 8)).save(image, format="PNG")
    assert cli.main(["predict", str(image), "--run", "r1"]) == 0, capsys.readouterr().err
    out = Path(json.loads(capsys.readouterr().out)["output"])
    assert out.parent == data_dir / "runs" / "predictions" and plain(out.name)
    assert out.is_file()
