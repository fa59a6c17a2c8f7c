"""Importing a collection in THINGS layout: the happy path, and every kind of problem reported at once
with nothing written."""
from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image

from core import paths, taxonomy
from core import datasets as datasets_cli
from core.data import datasets, things
from core.data.datasets import DatasetError, ImportValidationError


def _png(path, colour, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def make_collection(tmp_path, rows="concept,categories,synset\n"
                    "aardvark,animal,aardvark.n.01\nbat2,animal;sports equipment,\n"
                    "apple,food;fruit,apple.n.01\n"):
    """Three concepts with two or three tiny images each (all different colours)."""
    root = tmp_path / "object_images"
    colour = iter(range(10, 250, 20))
    for concept, n in (("aardvark", 3), ("bat2", 2), ("apple", 2)):
        for i in range(n):
            _png(root / concept / f"{concept}_{i:02d}.jpg", (next(colour), 0, 0))
    csv_path = tmp_path / "categories.csv"
    csv_path.write_text(rows)
    return root, csv_path


def _nothing_written(data_dir):
    """Not even the lock file: a refused import used to leave datasets/.<name>.lock (issue 12)."""
    folder = data_dir / "datasets"
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    return leftovers == []


def test_import_a_small_collection(tmp_path, data_dir):
    root, csv_path = make_collection(tmp_path)
    progress = []
    ds = things.import_things(root, csv_path, "mine", progress=lambda f, m: progress.append(f))
    assert sorted(ds.concepts) == ["aardvark", "apple", "bat2"]
    assert ds.concepts["apple"].categories == ("food", "fruit")
    assert ds.concepts["apple"].synset == "apple.n.01" and ds.concepts["bat2"].synset is None
    assert ds.concepts["bat2"].label == "bat"                      # THINGS homonym digit dropped
    assert ds.categories["sports_equipment"].label == "sports equipment"
    assert len(ds.images) == 7 and len(ds.images_of("aardvark")) == 3
    for im in ds.images:
        data = im.path.read_bytes()
        assert hashlib.sha256(data).hexdigest()[:16] == im.id
        with Image.open(im.path) as picture:
            assert picture.mode == "RGB" and picture.size == (224, 224)
    assert progress[-1] == 1.0
    assert datasets.load_dataset("mine").summary()["images"] == 7
    assert datasets.list_datasets() == ["mine"]
    remembered = json.loads(taxonomy.chains_path().read_text())   # Predict's chains, without WordNet
    assert set(remembered) == {"aardvark.n.01", "apple.n.01"} and remembered["apple.n.01"][0][-1] == "entity.n.01"


def test_tsv_and_transparent_images(tmp_path, data_dir):
    root, _ = make_collection(tmp_path)
    _png(root / "apple" / "cutout.png", (0, 200, 0, 0), mode="RGBA")      # fully transparent
    tsv = tmp_path / "categories.tsv"
    tsv.write_text("concept\tcategories\naardvark\tanimal\nbat2\tanimal\napple\tfruit\n")
    ds = things.import_things(root, tsv, "mine")
    cutout = next(im for im in ds.images if im.path.name == "cutout.png")
    with Image.open(cutout.path) as picture:
        assert picture.getpixel((112, 112)) == (255, 255, 255)


def test_every_problem_is_reported_at_once_and_nothing_is_written(tmp_path, data_dir):
    rows = ("concept,categories,synset\n"
            "aardvark,animal,aardvark.n.01\n"
            "aardvark,animal,\n"                          # duplicate concept
            "bat2,,\n"                                    # no categories
            "apple,fruit,applesauce.n.99\n"               # unknown synset
            "zebra,animal,\n")                            # no folder
    root, csv_path = make_collection(tmp_path, rows)
    (root / "aardvark" / "notes.txt").write_text("not an image")             # non-image file
    (root / "apple" / "broken.png").write_bytes(
        (root / "apple" / "apple_00.jpg").read_bytes()[:40])                 # truncated image
    _png(root / "unlisted" / "x.png", (1, 2, 3))                             # folder without a row
    (root / "empty").mkdir()                                                 # another one, empty
    (root / ".DS_Store").write_text("finder junk")                           # hidden: ignored

    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    problems = err.value.problems
    expected = ["duplicate concept 'aardvark'", "'bat2' has no categories",
                "unknown WordNet synset 'applesauce.n.99'", "missing folder", "notes.txt",
                "broken.png", "unlisted has no row", "empty has no row"]
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    assert len(problems) == len(expected)
    assert "8 problem(s)" in str(err.value) and all(p in str(err.value) for p in problems)
    assert _nothing_written(data_dir)


@pytest.mark.parametrize("damage, expected", [
    (lambda root, csv: (root / "apple").rename(root / "apple_renamed"), "missing folder"),
    (lambda root, csv: (root / "bat2" / "bat2_00.jpg").write_bytes(b"GIF89a-not-really"), "bat2_00.jpg"),
    (lambda root, csv: csv.write_text("concept,categories\naardvark,animal\nbat2, ;\napple,fruit\n"),
     "no categories"),
    (lambda root, csv: csv.write_text("concept,categories,synset\naardvark,animal,nope.n.01\n"
                                      "bat2,animal,\napple,fruit,\n"), "unknown WordNet synset"),
    (lambda root, csv: csv.write_text("concept,categories\naardvark,animal\nbat2,animal\n"
                                      "apple,fruit\napple,food\n"), "duplicate concept"),
    (lambda root, csv: csv.write_text("concept,categories\naardvark,animal\nbat2,animal\n"),
     "apple has no row"),
    (lambda root, csv: csv.write_text("name,kinds\naardvark,animal\n"), "header must name"),
    (lambda root, csv: (root / "bat2" / "copy.png").write_bytes((root / "bat2" / "bat2_00.jpg").read_bytes()),
     "same picture as"),
    (lambda root, csv: [p.unlink() for p in (root / "bat2").iterdir()], "holds no images"),
])
def test_each_problem_kind_alone(tmp_path, data_dir, damage, expected):
    root, csv_path = make_collection(tmp_path)
    damage(root, csv_path)
    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    assert any(expected in p for p in err.value.problems), err.value.problems
    assert _nothing_written(data_dir)


def test_a_missing_wordnet_is_one_problem_not_one_per_concept(tmp_path, data_dir, monkeypatch):
    """Reported: an import into a data dir without WordNet repeated the same message for every concept."""
    root, csv_path = make_collection(tmp_path)        # two of the three rows name a synset
    monkeypatch.setattr(paths, "nltk_dir", lambda: tmp_path / "no-wordnet")
    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    about = [p for p in err.value.problems if "WordNet 3.0 not found" in p]
    assert len(about) == 1 and "synset column needs WordNet" in about[0], err.value.problems
    assert _nothing_written(data_dir)


def test_existing_name_is_kept_unless_replace(tmp_path, data_dir):
    root, csv_path = make_collection(tmp_path)
    first = things.import_things(root, csv_path, "mine")
    (root / "apple" / "apple_00.jpg").unlink()
    with pytest.raises(ImportValidationError, match="already exists .*with --replace"):
        things.import_things(root, csv_path, "mine")
    assert len(datasets.load_dataset("mine").images) == len(first.images)
    again = things.import_things(root, csv_path, "mine", replace=True)
    assert len(again.images) == len(first.images) - 1


def test_bad_name_and_missing_root(tmp_path, data_dir):
    root, csv_path = make_collection(tmp_path)
    with pytest.raises(DatasetError, match="bad dataset name"):
        things.import_things(root, csv_path, "My Set")
    with pytest.raises(ImportValidationError, match="image folder does not exist"):
        things.import_things(tmp_path / "nowhere", csv_path, "mine")
    with pytest.raises(ImportValidationError, match="not a folder; give the folder that holds"):
        things.import_things(csv_path, csv_path, "mine")          # a file where the folder goes
    assert _nothing_written(data_dir)


def test_cli_import_reports_problems_with_exit_code_2(tmp_path, data_dir, capsys):
    root, csv_path = make_collection(tmp_path)
    (root / "extra").mkdir()
    assert datasets_cli.main(["import", str(root), str(csv_path), "--name", "mine"]) == 2
    err = capsys.readouterr().err
    assert "extra has no row" in err and "\ntaxolens data import: " in err     # like every command
    (root / "extra").rmdir()
    assert datasets_cli.main(["import", str(root), str(csv_path), "--name", "mine"]) == 0
    assert "3 concepts, 7 images" in capsys.readouterr().out


def test_a_synset_none_of_whose_hypernyms_is_a_category_is_named_not_refused(tmp_path, data_dir, capsys):
    """Reported: `cat,animal;mammal,kat.n.01` (the khat shrub) imported without a word, so Predict
    would draw a shrub's chain for it."""
    rows = ("concept,categories,synset\naardvark,animal,aardvark.n.01\nbat2,animal;sports equipment,\n"
            "apple,animal;mammal,kat.n.01\n")                   # a wrong synset: khat, a plant and a drug
    root, csv_path = make_collection(tmp_path, rows)
    assert datasets_cli.main(["import", str(root), str(csv_path), "--name", "mine"]) == 0
    err = capsys.readouterr().err
    assert "note: for 1 concept(s) none of the categories is a WordNet hypernym of the synset given" in err
    assert "apple: kat.n.01 is a stimulant" in err and "aardvark" not in err     # aardvark.n.01 is an animal
    (u,) = datasets.load_dataset("mine").info["import"]["unconfirmed_synsets"]
    assert u["concept"] == "apple" and u["categories"] == ["animal", "mammal"]


# -- the import as a job (the app's Data page, `taxolens jobs submit import`) -------------------

def test_an_import_job_is_refused_at_submit_for_what_can_be_checked_without_the_images(tmp_path, data_dir):
    from core.jobs import kinds

    root, csv_path = make_collection(tmp_path)
    (root / "unlisted").mkdir()
    with pytest.raises(kinds.JobSpecError) as err:
        kinds.validate("import", {"root": str(root), "csv": str(csv_path), "name": "mine"})
    assert "unlisted has no row" in str(err.value)
    for spec, said in ((
            {"root": str(root), "csv": str(csv_path), "name": "Mine"}, "bad dataset name"),
            ({"root": str(tmp_path / "nowhere"), "csv": str(csv_path), "name": "mine"}, "does not exist"),
            ({"root": str(root), "csv": str(csv_path)}, "missing name (on the command line: --name)"),
            ({"root": str(root), "csv": str(csv_path), "name": "mine", "replace": "yes"}, "true or false"),
            ({"root": "", "csv": str(csv_path), "name": "mine"}, "non-empty string"),
            ({"root": str(root), "csv": str(csv_path), "name": "concepts", "replace": True},
             "'concepts' is the default dataset's name")):
        with pytest.raises(kinds.JobSpecError) as err:
            kinds.validate("import", spec)
        assert said in str(err.value), (spec, str(err.value))
    assert _nothing_written(data_dir)


def test_an_import_job_imports_with_progress_and_a_cancelled_one_leaves_nothing(tmp_path, data_dir, monkeypatch):
    from core.jobs import kinds

    root, csv_path = make_collection(tmp_path)
    monkeypatch.chdir(tmp_path)
    spec = kinds.validate("import", {"root": root.name, "csv": csv_path.name, "name": "mine"})
    assert spec == {"root": str(root), "csv": str(csv_path), "name": "mine", "replace": False,
                    "style": "photo"}   # absolute
    calls = []

    def progress(fraction, message):      # as the runner's progress_and_cancel once a cancel is asked
        calls.append(fraction)
        if len(calls) == 3:
            raise kinds.JobCancelled("job 1 cancelled")
    cancelled = kinds.JobContext(1, progress, lambda: False)
    with pytest.raises(kinds.JobCancelled):
        kinds.get("import").execute(spec, cancelled)
    assert _nothing_written(data_dir)                         # no dataset, no staging folder, no lock

    seen = []
    result = kinds.get("import").execute(spec, kinds.JobContext(2, lambda f, m: seen.append(f), lambda: False))
    assert result["dataset"] == "mine" and result["metrics"] == {"concepts": 3, "categories": 4, "images": 7}
    assert result["few_images"] == {"apple": 2, "bat2": 2}            # no val image for those two
    assert seen[-1] == 1.0 and datasets.list_datasets() == ["mine"]
    with pytest.raises(kinds.JobSpecError, match="already exists"):
        kinds.validate("import", spec)
    assert kinds.validate("import", {**spec, "replace": True})["replace"] is True
    assert kinds.get("import").describe(spec) == "import mine from object_images"


def test_jobs_submit_import_takes_the_data_import_arguments(tmp_path, data_dir, capsys, monkeypatch):
    from core import cli
    from core.jobs.store import JobStore

    root, csv_path = make_collection(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["jobs", "submit", "import", root.name, csv_path.name]) == 2
    assert "missing name (on the command line: --name)" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "import", root.name, csv_path.name, "--name", "mine"]) == 0
    assert "queued: import mine from object_images" in capsys.readouterr().out
    (job,) = JobStore().list()
    assert job.kind == "import" and job.spec == {"root": str(root), "csv": str(csv_path), "name": "mine",
                                                 "replace": False, "style": "photo"}


def test_an_import_names_its_images_style(tmp_path, data_dir, capsys):
    """Every import was "photo" (emoji showed as "butterfly · photo"): `--style`, the job's "style"
    and the Data page's field name it; a style that is not a short word is refused before any image
    is read."""
    from core import cli
    from core.data import datasets, things
    from core.jobs.store import JobStore

    root, csv_path = make_collection(tmp_path)
    with pytest.raises(datasets.ImportValidationError, match="style 'a,b'"):
        things.check_import(root, csv_path, "mine", style="a,b")
    assert cli.main(["data", "import", str(root), str(csv_path), "--name", "mine", "--style", "line drawing"]) == 0
    assert "styles: line drawing" in capsys.readouterr().out
    assert {im.style for im in datasets.load_dataset("mine").images} == {"line drawing"}
    assert cli.main(["jobs", "submit", "import", str(root), str(csv_path), "--name", "other", "--style", "sketch"]) == 0
    assert JobStore().list()[0].spec["style"] == "sketch"
    assert cli.main(["jobs", "submit", "import", str(root), str(csv_path), "--name", "third", "--style", ""]) == 2


def test_an_unreadable_folder_is_a_problem_not_a_crash(tmp_path, data_dir, monkeypatch):
    """Reported in review: an unreadable image folder raised PermissionError, so the Data page said
    "failed unexpectedly" instead of "Not queued", and inside the job ended on it alone."""
    from pathlib import Path

    from core.jobs import kinds

    root, csv_path = make_collection(tmp_path)
    real = Path.iterdir

    def iterdir(self):
        if self.name in ("apple", "locked"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    assert [p for p in err.value.problems if "apple" in p] == [f"{root / 'apple'}: cannot be read (Permission denied)"]
    locked = tmp_path / "locked"
    locked.mkdir()
    with pytest.raises(kinds.JobSpecError, match="locked: cannot be read"):
        kinds.validate("import", {"root": str(locked), "csv": str(csv_path), "name": "mine"})
    assert _nothing_written(data_dir)


def test_the_paper_sweep_counts_an_imported_datasets_categories_again_after_a_re_import(tmp_path, data_dir):
    """The count behind the paper preset's systematic ablation is cached per dataset version (the
    Train page resolves the preset on every rerun); a re-import with other categories counts anew."""
    from core.jobs import sweeps

    def systematic(scale="full"):
        return sorted(j["spec"]["config"]["condition"] for j in sweeps.expand(sweeps.preset("paper", scale, {"dataset": "mine"}))
                      if j["kind"] == "train" and j["spec"]["config"]["condition"].startswith("systematic")
                      and j["spec"]["config"]["seed"] == 0 and j["spec"]["config"]["lm_init"] == "pretrained")

    root, csv_path = make_collection(tmp_path)           # 4 categories: animal, sports equipment, food, fruit
    things.import_things(root, csv_path, "mine")
    assert systematic() == ["systematic:1", "systematic:2"]
    csv_path.write_text("concept,categories,synset\naardvark,animal;mammal;wild;burrower,\nbat2,animal;sports equipment;"
                        "wood;club,\napple,food;fruit;tree;red,\n")        # 12 categories
    things.import_things(root, csv_path, "mine", replace=True)
    assert systematic() == ["systematic:3", "systematic:6"]
    # a malformed limit in a spec is its validation's to refuse, not a crash of the cached count
    bad = sweeps.resolve({"preset": "paper", "base": {"dataset": "mine", "max_concepts": [5]}})
    assert sorted({j["spec"]["config"]["condition"] for j in sweeps.expand(bad)
                   if j["spec"].get("config", {}).get("condition", "").startswith("systematic")}) == \
        ["systematic:10", "systematic:20"]                     # the default count: nothing was read
    from core.jobs import kinds
    with pytest.raises(kinds.JobSpecError, match="max_concepts"):
        sweeps.normalize(bad)
