"""The curated tables, category derivation, the built default dataset, subsets and the on-disk format.

Tests of the built dataset read it with load_dataset() (CI runs `make dataset` before pytest)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core import paths, taxonomy
from core.data import build, datasets
from core.data.datasets import Category, Concept, Dataset, DatasetError, ImageItem

EMOJI_GROUPS_ALLOWED = {"Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects"}


@pytest.fixture(scope="module")
def tables():
    return build.read_tables()


@pytest.fixture(scope="module")
def members(tables):
    return build.derive_categories(tables)


@pytest.fixture(scope="module")
def built():
    return datasets.load_dataset()


# --- curated tables ----------------------------------------------------------------------------

def test_every_synset_in_the_tables_exists(tables):
    for row in tables.concepts + tables.categories:
        assert taxonomy.synset(row["synset"]).pos() == "n", row


def _override_targets(override, concept) -> bool:
    target = override["concept"]
    if target == concept["name"]:
        return True
    return "." in target and (target == concept["synset"] or taxonomy.is_ancestor(target, concept["synset"]))


def test_categories_are_wordnet_ancestors_or_a_listed_override(tables, members):
    by_name = {k["name"]: k for k in tables.categories}
    for concept in tables.concepts:
        got = set(members[concept["name"]])
        for name, category in by_name.items():
            in_wordnet = taxonomy.is_ancestor(category["synset"], concept["synset"])
            if in_wordnet == (name in got):
                continue
            action = "add" if name in got else "remove"
            assert any(o["category"] == name and o["action"] == action and _override_targets(o, concept)
                       for o in tables.overrides), (concept["name"], name, action)


def test_overrides_are_few_and_each_has_a_reason(tables):
    assert len(tables.overrides) <= 5
    for o in tables.overrides:
        assert len(o["reason"].split()) >= 8, o


def test_table_sizes(tables, members):
    assert len(tables.concepts) >= 300
    assert all(members[c["name"]] for c in tables.concepts), "a concept row without any category"
    assert len(tables.categories) >= 25
    for category in tables.categories:
        n = sum(category["name"] in cats for cats in members.values())
        assert n >= 5, (category["name"], n)


def test_concepts_are_objects_not_faces_people_flags_or_symbols(tables):
    # Unicode's own grouping: smileys, people and body, flags and symbols are all outside these.
    sources = build.Sources()
    for concept in tables.concepts:
        entry = sources.emoji[build.emoji_key(concept["emoji"])]
        assert entry["category"] in EMOJI_GROUPS_ALLOWED, (concept["name"], entry["category"])


def test_a_concept_may_belong_to_several_categories(members):
    assert set(members["dog"]) == {"animal", "mammal", "carnivore"}
    assert "container" not in members["car"]               # the wheeled-vehicle override
    assert "weapon" in members["bomb"]                     # the bomb override


def _write_tables(folder: Path, categories: str, concepts: str, overrides: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "categories.csv").write_text(categories)
    (folder / "concepts.csv").write_text(concepts)
    (folder / "overrides.csv").write_text(overrides)
    return folder


def test_read_tables_reports_every_problem_at_once(tmp_path):
    folder = _write_tables(
        tmp_path,
        "name,label,synset\nmammal,mammal,mammal.n.01\nbird,bird,no_such_thing.n.01\n",
        "name,label,synset,emoji\ndog,dog,dog.n.01,1f415\ndog,hound,cat.n.01,1f408\n"
        "Bad Name,x,mammal.n.01,xyz\n",
        "concept,category,action,reason\ndog,fish,maybe,\n")
    with pytest.raises(DatasetError) as err:
        build.read_tables(folder)
    message = str(err.value)
    for expected in ("unknown WordNet synset 'no_such_thing.n.01'", "duplicate name 'dog'",
                     "name must be lowercase", "has the synset of a category", "not a codepoint",
                     "unknown category 'fish'", "action must be 'add' or 'remove'", "needs a reason"):
        assert expected in message


def test_an_override_that_changes_nothing_is_an_error(tmp_path):
    folder = _write_tables(
        tmp_path, "name,label,synset\nmammal,mammal,mammal.n.01\n",
        "name,label,synset,emoji\ndog,dog,dog.n.01,1f415\n",
        "concept,category,action,reason\ndog,mammal,add,a dog is already a mammal in WordNet anyway\n")
    with pytest.raises(DatasetError, match="changes no concept"):
        build.derive_categories(build.read_tables(folder))


def test_a_synset_override_reaches_every_concept_below_it(tmp_path):
    folder = _write_tables(
        tmp_path, "name,label,synset\nmammal,mammal,mammal.n.01\ncarnivore,carnivore,carnivore.n.01\n",
        "name,label,synset,emoji\ndog,dog,dog.n.01,1f415\ncat,cat,cat.n.01,1f408\ncow,cow,cow.n.01,1f404\n",
        "concept,category,action,reason\ncanine.n.02,carnivore,remove,test row: canines lose their carnivore category\n")
    got = build.derive_categories(build.read_tables(folder))
    assert got == {"dog": ("mammal",), "cat": ("mammal", "carnivore"), "cow": ("mammal",)}


# --- image sources and normalisation -----------------------------------------------------------

def test_every_style_draws_the_dog():
    sources = build.Sources()
    for style in build.STYLES:
        image = sources.render(style, "1f415")
        assert image is not None and image.mode == "RGBA", style
        assert image.getchannel("A").getextrema()[1] == 255, style      # something is drawn


def test_emoji_key_ignores_the_variation_selector():
    assert build.emoji_key("2708-FE0F") == build.emoji_key("2708") == "2708"


def test_iconify_aliases_resolve_with_flips(tmp_path):
    (tmp_path / "icons.json").write_text(json.dumps({
        "prefix": "t", "width": 10, "height": 10,
        "icons": {"left-hand": {"body": '<path d="M0 0h5v10H0z"/>'}},
        "aliases": {"right-hand": {"parent": "left-hand", "hFlip": True}}}))
    (tmp_path / "chars.json").write_text(json.dumps({"1f91a": "right-hand"}))
    icons = build.IconSet(tmp_path)
    assert icons.name_for("1f91a", None) == "right-hand"
    assert 'scale(-1 1)' in icons.svg("right-hand")
    image = icons.render("1f91a", None, size=20)
    assert image.size == (20, 20)
    assert image.getpixel((15, 10))[3] == 255 and image.getpixel((4, 10))[3] == 0   # drawn mirrored


def test_normalize_image_fits_centres_and_whitens():
    wide = Image.new("RGBA", (100, 50), (255, 0, 0, 255))
    wide.paste((0, 0, 0, 0), (0, 0, 10, 50))                      # a transparent strip on the left
    out = datasets.normalize_image(wide)
    assert out.mode == "RGB" and out.size == (224, 224)
    assert out.getpixel((112, 10)) == (255, 255, 255)             # letterbox above the content
    assert out.getpixel((112, 112)) == (255, 0, 0)
    assert out.getpixel((5, 112)) == (255, 255, 255)              # transparency became white
    assert out.getpixel((112, 56 + 2))[1] < 10 and out.getpixel((112, 56 - 2)) == (255, 255, 255)


# --- the built default dataset -----------------------------------------------------------------

def test_built_dataset_sizes(built):
    assert len(built.concepts) >= 300
    assert len(built.categories) >= 25
    for category in built.categories:
        assert len(built.concepts_in(category)) >= 5, category


def test_every_concept_has_four_images_in_distinct_styles(built):
    for concept in built.concepts:
        styles = [im.style for im in built.images_of(concept)]
        assert len(styles) >= build.MIN_STYLES and len(set(styles)) == len(styles), concept
        assert set(styles) <= set(build.STYLES)


def test_image_ids_are_content_hashes_and_never_shared(built):
    owners: dict[str, str] = {}
    for im in built.images:
        data = im.path.read_bytes()
        assert hashlib.sha256(data).hexdigest()[:16] == im.id, im.path
        assert owners.setdefault(im.id, im.concept) == im.concept, (im.id, im.concept)
    sample = built.images[:: max(1, len(built.images) // 25)]
    for im in sample:
        with Image.open(im.path) as picture:
            assert picture.mode == "RGB" and picture.size == (224, 224)


def test_built_dataset_matches_the_tables(built, members):
    assert built.info["table_sha256"] == build.build_sha256(
        build.tables_sha256(), build.package_versions()), "stale: run `make dataset`"
    for name, concept in built.concepts.items():
        assert concept.categories == members[name]


def test_rebuild_is_a_quick_no_op_when_up_to_date(built, monkeypatch):
    monkeypatch.setattr(build, "read_tables", lambda *a: pytest.fail("tables re-read"))
    calls = []
    again = build.build_default_dataset(progress=lambda f, m: calls.append((f, m)))
    assert again.info["created"] == built.info["created"] and calls == [(1.0, "dataset is up to date")]


def test_summary(built):
    s = built.summary()
    assert s["concepts"] == len(built.concepts) and s["images"] == len(built.images)
    assert s["styles"] == sorted(build.STYLES)
    assert s["images_per_concept"]["min"] >= 4
    assert s["concepts_per_category"]["mammal"] == len(built.concepts_in("mammal"))


def test_subset_of_the_real_dataset_keeps_every_category(built):
    sub = built.subset(max_concepts=len(built.categories), images_per_concept=3, seed=1)
    assert len(sub.concepts) == len(built.categories)
    assert set(sub.categories) == set(built.categories)
    assert all(len(sub.images_of(c)) == 3 for c in sub.concepts)


# --- subsets (in memory) -----------------------------------------------------------------------

def _toy_dataset() -> Dataset:
    cats = {"a": ("x",), "b": ("x",), "c": ("x", "y"), "d": ("z",), "e": ("x",), "f": ("x",)}
    categories = {k: Category(k, k, None) for k in "xyz"}
    concepts = {c: Concept(c, c, None, ks) for c, ks in cats.items()}
    images = [ImageItem(f"{c}{i}", c, f"s{i}", Path(f"/toy/{c}/{i}.png")) for c in cats for i in range(5)]
    return Dataset("toy", Path("/toy"), concepts, categories, images)


def test_subset_is_deterministic_and_covers_rare_categories():
    ds = _toy_dataset()
    first = ds.subset(max_concepts=2, images_per_concept=2, seed=7)
    again = ds.subset(max_concepts=2, images_per_concept=2, seed=7)
    assert [im.id for im in first.images] == [im.id for im in again.images]
    assert set(first.concepts) == {"c", "d"}                 # the only way to keep x, y and z
    assert set(first.categories) == {"x", "y", "z"}
    assert all(len(first.images_of(c)) == 2 for c in first.concepts)
    picks = {tuple(sorted(ds.subset(max_concepts=4, seed=s).concepts)) for s in range(10)}
    assert len(picks) > 1                                     # the seed matters


def test_subset_without_limits_is_everything_and_bad_limits_are_refused():
    ds = _toy_dataset()
    assert [im.id for im in ds.subset().images] == [im.id for im in ds.images]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DatasetError):
            ds.subset(max_concepts=bad)
        with pytest.raises(DatasetError):
            ds.subset(images_per_concept=bad)


def test_images_of_and_concepts_in_reject_unknown_names():
    ds = _toy_dataset()
    assert ds.concepts_in("x") == ["a", "b", "c", "e", "f"]
    with pytest.raises(KeyError):
        ds.images_of("zebra")
    with pytest.raises(KeyError):
        ds.concepts_in("w")


# --- on-disk format ----------------------------------------------------------------------------

def _publish_tiny(name: str, colour=(0, 128, 0)) -> Dataset:
    with datasets.staging(name) as stage:
        image_id = datasets.save_png(Image.new("RGB", (224, 224), colour), stage / "images/dog/a.png")
        return datasets.publish(stage, name, "test", [Concept("dog", "dog", "dog.n.01", ("mammal",))],
                                [Category("mammal", "mammal", "mammal.n.01")],
                                [(image_id, "dog", "a", "images/dog/a.png")])


def test_publish_round_trip_and_replace(data_dir):
    ds = _publish_tiny("tiny")
    assert datasets.list_datasets() == ["tiny"]
    assert ds.images[0].path == data_dir / "datasets/tiny/images/dog/a.png" and ds.images[0].path.is_file()
    assert ds.concepts["dog"].categories == ("mammal",) and ds.info["counts"]["images"] == 1
    again = _publish_tiny("tiny", colour=(0, 0, 255))
    assert again.images[0].id != ds.images[0].id
    assert sorted(p.name for p in (data_dir / "datasets").iterdir() if not p.name.endswith(".lock")) == ["tiny"]


def test_a_failed_write_leaves_nothing_behind(data_dir):
    with pytest.raises(RuntimeError):
        with datasets.staging("tiny") as stage:
            (stage / "half.csv").write_text("x")
            raise RuntimeError("boom")
    assert datasets.list_datasets() == []
    assert not [p for p in (data_dir / "datasets").iterdir() if p.name.startswith(".staging")]


def test_missing_dataset_says_how_to_get_it(data_dir):
    with pytest.raises(DatasetError, match="make dataset"):
        datasets.load_dataset()
    with pytest.raises(DatasetError, match="core.datasets import"):
        datasets.load_dataset("mine")
    with pytest.raises(DatasetError, match="bad dataset name"):
        datasets.load_dataset("../etc")


def test_damaged_dataset_is_a_clear_error(data_dir):
    ds = _publish_tiny("tiny")
    (ds.root / "images.csv").write_text("id,concept\n")
    with pytest.raises(DatasetError, match="lacks column"):
        datasets.load_dataset("tiny")
    shutil.rmtree(ds.root)
    assert datasets.list_datasets() == []


def test_module_cli_prints_user_errors_in_one_message(data_dir):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "core.datasets", "summary", "nosuch"], cwd=paths.ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "dataset 'nosuch' not found" in done.stderr
