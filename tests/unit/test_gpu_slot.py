"""bench.gpu_bundle and bench.gpu_slot: what makes a run trained on a borrowed GPU machine (without
the images, the encoder or the LM package there) load and evaluate here like a run trained here."""
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import fake_vlm
from bench import gpu_bundle, gpu_slot
from core import evaluate, features, paths, runs, train
from core.config import TrainConfig
from core.models import checkpoint, registry


class _Holder(nn.Module):
    """What checkpoint.frozen_checksum reads: named parameters, less the projector's."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder, self.projector = encoder, nn.Linear(1, 1)


def _bundle(tmp_path, encoder) -> tuple:
    part = tmp_path / "part"
    part.mkdir()
    spec = {"id": "efficientnet-lite2", "dim": 7, "image_size": 9, "transform_id": "t", "weights_id": "w.pth"}
    (part / gpu_bundle.BUNDLE_JSON).write_text(json.dumps(
        {"encoder": spec, "images": [["images/dog/noto.png", "ab" * 32]]}))
    save_file({str(i): t for i, t in enumerate(gpu_bundle.encoder_prefixes(encoder))},
              part / "encoder_prefix.safetensors")
    return part, spec


def test_the_stand_in_encoder_has_the_real_ones_frozen_checksum_and_finds_images_by_recorded_sha(
        tmp_path, monkeypatch):
    real = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5000, 2))   # one weight > 4096 values
    part, spec = _bundle(tmp_path, real)
    # activate() patches these module globals; monkeypatch puts them back after the test
    monkeypatch.setattr(features, "file_sha256", features.file_sha256)
    monkeypatch.setattr(registry, "_encoder_weights", registry._encoder_weights)
    monkeypatch.setitem(registry.ENCODER_BUILDERS, "efficientnet", registry.ENCODER_BUILDERS["efficientnet"])
    gpu_bundle.activate([part])

    stand = registry.create_encoder("efficientnet-lite2")
    assert (stand.id, stand.dim, stand.weights_id, stand.transform_id) == ("efficientnet-lite2", 7, "w.pth", "t")
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
    registry.check_weights("efficientnet-lite2")             # no package needed for the weights either


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


def test_per_update_interpolates_between_the_calibrated_sizes():
    cal = {1: 0.05, 3: 0.06, 14: 0.17}
    assert gpu_slot._per_update(cal, 3) == pytest.approx(0.06)
    assert gpu_slot._per_update(cal, 14) == pytest.approx(0.17)
    assert gpu_slot._per_update(cal, 8) == pytest.approx(0.11)
    assert gpu_slot._per_update(cal, 2) == pytest.approx(0.055)
    assert gpu_slot._per_update(cal, 30) == pytest.approx(0.33)       # extrapolated along the last segment


def test_packed_runs_come_back_loadable_with_fp16_weights_and_unfinished_ones_without(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    fake_vlm.install(monkeypatch)
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu"))
    evaluate.evaluate(run_dir, "test")
    unfinished = runs.create_run_dir(TrainConfig(dataset="tiny", seed=5, device="cpu"))
    _, vlm = checkpoint.load_trained(run_dir, "cpu")
    before = {k: v.clone() for k, v in vlm.projector_state().items()}

    out = tmp_path / "out"
    out.mkdir()
    packed = gpu_slot._pack(paths.runs_dir(), out)
    assert packed["runs_with_weights"] == [run_dir.name] and packed["runs_without"] == [unfinished.name]
    assert all(p.stat().st_size <= gpu_slot.PART_BYTES for p in out.iterdir())

    shutil.rmtree(paths.runs_dir())                          # here: none of the runs yet
    back = gpu_slot.unpack(out)
    assert sorted(back["added"]) == sorted([run_dir.name, unfinished.name])
    assert gpu_slot.unpack(out)["already_here"] == back["added"]      # a second unpack changes nothing
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert list(ck["files"]) == [runs.BEST_FILE] and "float16" in ck["transport"]["best"]
    _, vlm = checkpoint.load_trained(run_dir, "cpu")       # the recorded sha256 matches the fp16 file
    for k, v in vlm.projector_state().items():
        assert torch.equal(v, before[k].to(torch.float16).float())
    assert runs.load_metrics(run_dir, "test") is not None
    assert not (unfinished / "checkpoint").exists()
