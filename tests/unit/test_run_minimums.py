"""What a run needs of its encoder grid and its data, refused before anything loads or is written
(audit items 1-3): image tokens the encoder's grid cannot give, a split too small for cluster trees,
datasets with one concept or without a val or test image (at import, at train, at evaluate)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import cli
from core.base import ConfigError
from core.config import TrainConfig
from core.data import datasets
from core.data.datasets import Category, Concept, Dataset, ImageItem
from tiny_concepts import tiny_dataset
from cli_checks import refused


def small_dataset(name: str, images: dict[str, int]) -> Dataset:
    """concept -> number of images; every concept an animal."""
    root = Path("/nonexistent") / name
    cats = {"animal": Category("animal", "animal", None)}
    concepts = {c: Concept(c, c, None, ("animal",)) for c in images}
    items = [ImageItem(f"{c}{i:02d}", c, f"style{i}", root / "images" / c / f"style{i}.png")
             for c, n in images.items() for i in range(n)]
    return Dataset(name=name, root=root, concepts=concepts, categories=cats, images=items)


SMALL = {"one": {"dog": 5}, "pairs": {"dog": 2, "cat": 2}, "singles": {"dog": 1, "cat": 1},
         "lopsided": {"dog": 3, "cat": 1}}


@pytest.fixture
def data_dir(data_dir, monkeypatch):
    """The empty data dir, with the in-memory 'tiny' set and the SMALL ones; offline; the bundled
    models' weights checked (as after `make assets`); loading a model is a failure of the test."""
    from core.models import checkpoint, registry

    real_load = datasets.load_dataset

    def load(name="concepts"):
        if name == "tiny":
            return tiny_dataset()
        if name in SMALL:
            return small_dataset(name, SMALL[name])
        return real_load(name)

    monkeypatch.setattr(datasets, "load_dataset", load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.check_weights(TrainConfig().encoder, TrainConfig().lm)

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded: the check came too late")

    monkeypatch.setattr(checkpoint, "build_vlm", no_models)
    monkeypatch.setattr(checkpoint, "load_trained", no_models)
    return data_dir


@pytest.mark.parametrize("tokens", ["82", "100", "256"])
def test_image_tokens_beyond_the_encoders_grid_are_refused_before_models_load(tokens, data_dir, capsys):
    """Reported: `train --image-tokens 100 --projector-tokens 1` passed the 1..256 range check, loaded
    the models and died with `ValueError: cannot pool a 81-token grid to 100 tokens`."""
    argv = ["--dataset", "tiny", "--image-tokens", tokens, "--projector-tokens", "1"]
    line = refused(["train", *argv], capsys, data_dir, "9x9 grid of 81 tokens")
    assert "efficientnet-lite2" in line and "[1, 81]" in line
    refused(["jobs", "submit", "train", *argv], capsys, data_dir, "9x9 grid of 81 tokens")   # not queued


def test_image_tokens_are_checked_against_each_named_encoders_grid(data_dir):
    from core import rundata

    rundata.check(TrainConfig(dataset="tiny", image_tokens=81, projector_tokens=1))       # the whole grid
    with pytest.raises(ConfigError, match="7x7 grid of 49 tokens"):
        rundata.check(TrainConfig(dataset="tiny", encoder="efficientnet-lite0", image_tokens=64, projector_tokens=1))
    with pytest.raises(ConfigError, match=r"grid_crop must be in \[1, 9\]"):
        rundata.check(TrainConfig(dataset="tiny", grid_crop=10))
    with pytest.raises(ConfigError, match="3x3 = 9 tokens"):
        rundata.check(TrainConfig(dataset="tiny", grid_crop=3, image_tokens=16, projector_tokens=1))


def test_the_named_encoders_grids_are_what_they_give():
    """EFFICIENTNET_GRIDS (known without weights) against the architecture itself."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from core.models.encoders import EFFICIENTNET_GRIDS, EFFICIENTNET_SIZES

    for variant, size in EFFICIENTNET_SIZES.items():
        with torch.no_grad():
            grid = EfficientNet.from_name(variant).eval().extract_features(torch.zeros(1, 3, size, size))
        assert tuple(grid.shape[-2:]) == (EFFICIENTNET_GRIDS[variant],) * 2


def test_a_grid_known_only_once_built_is_checked_with_a_config_error():
    """open_clip / timm grids are known once the encoder is built: a ConfigError (one line, exit 2)
    there, not pool_tokens' ValueError at the first batch."""
    from core.models import registry
    from test_models import tiny_vlm

    vlm = tiny_vlm(k=1)                       # FakeEncoder: a 4x4 grid
    assert vlm.encoder.grid_tokens == 16
    ok = registry.vlm_sharing_frozen(TrainConfig(image_tokens=16, projector_tokens=1), vlm)
    assert ok.n_tokens == 16
    with pytest.raises(ConfigError, match="4x4 grid of 16 tokens"):
        registry.vlm_sharing_frozen(TrainConfig(image_tokens=25, projector_tokens=1), vlm)


# -- 2: clusters of a split too small for a tree ---------------------------------------------------

def make_run(root: Path, name: str, **cfg) -> Path:
    run = root / "runs" / name
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig(**cfg).to_dict()))
    (run / "checkpoint" / "checkpoint.json").write_text(json.dumps({"status": "finished", "epoch": 1}))
    return run


def test_clusters_of_a_one_image_split_is_a_config_error_before_the_model_loads(data_dir, capsys):
    """Reported: `taxolens clusters RUN` on a run whose test split has one image ended in a traceback
    (ValueError, exit 1) after loading the checkpoint."""
    from core import clusters

    run = make_run(data_dir, "lopsided-run", dataset="lopsided")        # test split: one dog image
    with pytest.raises(ConfigError, match="has 1 image"):
        clusters.compute(run, split="test", write=False)
    assert cli.main(["clusters", "lopsided-run"]) == 2
    err = capsys.readouterr().err
    assert "trees need at least 2" in err.strip().splitlines()[-1] and "Traceback" not in err


# -- 3: data too small to train on or to measure --------------------------------------------------

@pytest.mark.parametrize("dataset, fragment", [
    ("one", "dataset 'one' has 1 concept(s); a run needs at least 2"),
    ("pairs", "dataset 'pairs' has no val image"),
    ("singles", "dataset 'singles' has no val or test image"),
])
def test_a_dataset_too_small_for_a_run_is_refused_naming_what_is_missing(dataset, fragment, data_dir, capsys):
    """Reported: `train --dataset one` ran and reported "val leaf acc 0.000" / "n/a" with 0 test
    images, while `--max-concepts 1` and `--images-per-concept 2` were refused."""
    line = refused(["train", "--dataset", dataset], capsys, data_dir, fragment)
    if dataset != "one":
        assert "cat (" in line and "dog (" in line           # the concepts with too few images
    refused(["jobs", "submit", "train", "--dataset", dataset], capsys, data_dir, fragment)
    refused(["baseline", "majority", "--dataset", dataset], capsys, data_dir, fragment)


def test_the_refusal_names_the_split_the_run_asked_for(data_dir, capsys):
    line = refused(["train", "--dataset", "pairs", "--split-percent", "70,5,25"], capsys, data_dir,
                   "dataset 'pairs' has no val image")
    assert "split 70/5/25 within the concept" in line
    refused(["train", "--dataset", "tiny", "--split-percent", "70/30/0"], capsys, data_dir,
            "train, val and test each need a share above 0")


def test_a_dataset_with_every_split_is_trained_even_if_some_concepts_miss_one(data_dir):
    from core import rundata

    rundata.check(TrainConfig(dataset="lopsided"))       # cat has one image: it trains, dog is measured
    rundata.check(TrainConfig(dataset="tiny", max_concepts=2, images_per_concept=3))


def test_evaluate_refuses_a_run_with_nothing_to_measure(data_dir, capsys):
    """A run trained before the refusal: evaluate said exit 0 with every metric null."""
    from core import evaluate

    make_run(data_dir, "pairs-run", dataset="pairs")
    make_run(data_dir, "one-run", dataset="one")
    with pytest.raises(ConfigError, match="no val image"):
        evaluate.evaluate(data_dir / "runs" / "pairs-run", split="val")
    with pytest.raises(ConfigError, match="1 concept"):
        evaluate.evaluate(data_dir / "runs" / "one-run", split="test")
    with pytest.raises(ConfigError, match="no val image"):
        evaluate.leaf_ranking(data_dir / "runs" / "pairs-run", split="val")
    from core.jobs import kinds                  # an evaluate job is refused at submit the same way
    with pytest.raises(kinds.JobSpecError, match="pairs-run has no val image"):
        kinds.validate("evaluate", {"run": "pairs-run", "split": "val"})


def _collection(tmp_path, images: dict[str, int]):
    from PIL import Image

    root, colour = tmp_path / "collection", iter(range(10, 250, 7))
    for concept, n in images.items():
        (root / concept).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (20, 20), (next(colour), 0, 0)).save(root / concept / f"{i}.png")
    table = tmp_path / "categories.csv"
    table.write_text("concept,categories\n" + "".join(f"{c},animal\n" for c in images))
    return root, table


def test_importing_a_one_concept_collection_is_refused(tmp_path, data_dir):
    """Reported: `data import` of a one-concept collection succeeded; nothing can train on it."""
    from core.data import things
    from core.data.datasets import ImportValidationError

    root, table = _collection(tmp_path, {"dog": 5})
    for check in (lambda: things.check_import(root, table, "one"),      # what `jobs submit import` runs
                  lambda: things.import_things(root, table, "one")):
        with pytest.raises(ImportValidationError, match="lists 1 concept; a dataset needs at least 2"):
            check()
    assert not (data_dir / "datasets" / "one").exists()


def test_importing_concepts_with_too_few_images_names_them(tmp_path, data_dir, capsys):
    """Imported (more pictures may follow) with a note naming the concepts that miss a split;
    training then refuses while a split is empty, naming them again."""
    from core import rundata
    from core.data import things

    from core import datasets as datasets_cli

    root, table = _collection(tmp_path, {"dog": 2, "cat": 1, "owl": 3})
    assert datasets_cli.main(["import", str(root), str(table), "--name", "thin"]) == 0     # the CLI says it
    ds = datasets.load_dataset("thin")
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "cat (1), dog (2)" in note[0] and "owl" not in note[0]
    assert ds.info["import"]["few_images"] == {"cat": 1, "dog": 2}
    rundata.check(TrainConfig(dataset="thin"))            # owl has a val and a test image: trainable

    root, table = _collection(tmp_path / "b", {"dog": 2, "cat": 1})
    things.import_things(root, table, "thinner")
    with pytest.raises(ConfigError, match=r"dataset 'thinner' has no val image.*cat \(1\), dog \(2\)"):
        rundata.check(TrainConfig(dataset="thinner"))
