"""Datasets: concepts, their hypernym categories and their images, on disk and in memory.

A dataset lives in `paths.datasets_dir()/<name>/`:

    dataset.json     name, source, created, table_sha256, counts (+ source-specific facts)
    concepts.csv     name, label, synset, categories (";"-joined category names)
    categories.csv   name, label, synset
    images.csv       id, concept, style, path (relative to the dataset folder)
    images/<concept>/<file>.png   RGB 224x224 on white

`ImageItem.id` is sha256(file bytes)[:16], so it names the picture, not where it lies. A dataset is
always written into a staging folder beside its final place and swapped in with renames, so a
reader never sees a half-written one (staging, publish, build_lock: what the two writers share).
The default set is built from the curated tables in `assets/` by core.data.build; collections in
THINGS layout come in through core.data.things. Command line: `python -m core.datasets`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image

from core import paths

DEFAULT_NAME = "concepts"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
IMAGE_SIZE = 224


class DatasetError(ValueError):
    """A dataset is missing, malformed or cannot be built; the message is for the user."""


class ImportValidationError(DatasetError):
    """Every problem found in a collection to import, reported together; nothing was written."""

    def __init__(self, problems: Sequence[str], name: str = ""):
        # One line each (the CLI prints one problem per line) and plain UTF-8: a file name that is
        # not UTF-8 reaches here as surrogate escapes, which neither SQLite (the job's error) nor a
        # UTF-8 file can take.
        self.problems = [" ".join(readable(str(p)).splitlines()) for p in problems]
        what = f"import of '{name}'" if name else "import"
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{what} refused, {len(self.problems)} problem(s):\n{listed}")


def readable(text: str) -> str:
    """`text` with the bytes of a file name that is not UTF-8 (surrogate escapes) shown as \\xNN:
    safe to print, to store and to write as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:          # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problem_lines(message: object) -> str:
    """A user-facing error for a terminal: one line, except that a list of problems (lines "  - …",
    as ImportValidationError and the default set's build write it) keeps one problem per line."""
    head, *items = re.split(r"\n[ \t]*- ", str(message))
    return "\n".join([" ".join(head.split()), *(f"  - {' '.join(item.split())}" for item in items)])


@dataclass(frozen=True)
class Concept:
    name: str                      # id used everywhere ("ice_cream")
    label: str                     # words used in questions ("ice cream")
    synset: str | None
    categories: tuple[str, ...]    # category names, in categories.csv order


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    synset: str | None


@dataclass(frozen=True)
class ImageItem:
    id: str                        # sha256(file bytes)[:16]
    concept: str
    style: str
    path: Path                     # absolute


@dataclass
class Dataset:
    name: str
    root: Path
    concepts: dict[str, Concept]
    categories: dict[str, Category]
    images: list[ImageItem]
    info: dict = field(default_factory=dict, repr=False)   # dataset.json as read

    def images_of(self, concept: str) -> list[ImageItem]:
        if concept not in self.concepts:
            raise KeyError(f"unknown concept {concept!r} in dataset '{self.name}'")
        return [im for im in self.images if im.concept == concept]

    def concepts_in(self, category: str) -> list[str]:
        if category not in self.categories:
            raise KeyError(f"unknown category {category!r} in dataset '{self.name}'")
        return sorted(c.name for c in self.concepts.values() if category in c.categories)

    def effective_limits(self, max_concepts: int | None, images_per_concept: int | None) -> tuple:
        """(max_concepts, images_per_concept) with each limit this dataset does not reach as None:
        subset() then keeps everything it would keep without it."""
        most = max(Counter(im.concept for im in self.images if im.concept in self.concepts).values(),
                   default=0)        # one pass over the images, not one per concept
        return (None if max_concepts is not None and max_concepts >= len(self.concepts) else max_concepts,
                None if images_per_concept is not None and images_per_concept >= most else images_per_concept)

    def subset(self, max_concepts: int | None = None, images_per_concept: int | None = None,
               seed: int = 0) -> "Dataset":
        """A smaller dataset, the same for the same arguments. Concepts are picked so that every
        category keeps at least one concept while max_concepts allows (rarest categories first),
        the rest at random; each concept keeps up to images_per_concept of its images at random.
        Categories left without concepts are dropped."""
        for arg, value in (("max_concepts", max_concepts), ("images_per_concept", images_per_concept)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DatasetError(f"{arg} must be a positive integer or None, got {value!r}")
        names = sorted(self.concepts)
        if max_concepts is not None and max_concepts < len(names):
            keep = _covering_choice(self, max_concepts, random.Random(f"subset:{seed}"))
        else:
            keep = set(names)
        images = []
        for concept in sorted(keep):
            own = sorted(self.images_of(concept), key=lambda im: im.id)
            if images_per_concept is not None and images_per_concept < len(own):
                rng = random.Random(f"subset:{seed}:{concept}")
                own = sorted(rng.sample(own, images_per_concept), key=lambda im: im.id)
            images.extend(own)
        order = {im.id: i for i, im in enumerate(self.images)}
        images.sort(key=lambda im: order[im.id])
        concepts = {n: self.concepts[n] for n in names if n in keep}
        used = {k for c in concepts.values() for k in c.categories}
        categories = {k: v for k, v in self.categories.items() if k in used}
        info = dict(self.info, subset={"max_concepts": max_concepts,
                                       "images_per_concept": images_per_concept, "seed": seed})
        return Dataset(self.name, self.root, concepts, categories, images, info)

    def summary(self) -> dict:
        """Counts for the CLI and the app: concepts, images, categories, styles, and per category
        its number of concepts; images per concept as min / mean / max."""
        per_concept = [len(self.images_of(c)) for c in self.concepts] or [0]
        return {
            "name": self.name,
            "source": self.info.get("source", ""),
            "concepts": len(self.concepts),
            "images": len(self.images),
            "categories": len(self.categories),
            "styles": sorted({im.style for im in self.images}),
            "images_per_concept": {"min": min(per_concept), "max": max(per_concept),
                                   "mean": round(sum(per_concept) / len(per_concept), 2)},
            "concepts_per_category": {k: len(self.concepts_in(k)) for k in self.categories},
        }


def _covering_choice(ds: Dataset, k: int, rng: random.Random) -> set[str]:
    members = {cat: ds.concepts_in(cat) for cat in ds.categories}
    chosen: set[str] = set()
    covered: set[str] = set()
    # Rarest categories first: they have the fewest concepts that can stand in for them.
    order = sorted((cat for cat in members if members[cat]), key=lambda c: (len(members[c]), c))
    for cat in order:
        if len(chosen) == k:
            break
        if cat in covered:
            continue
        pick = rng.choice(members[cat])
        chosen.add(pick)
        covered.update(ds.concepts[pick].categories)
    rest = sorted(set(ds.concepts) - chosen)
    chosen.update(rng.sample(rest, k - len(chosen)))
    return chosen


# --- reading -----------------------------------------------------------------------------------

def version_sha256(ds: Dataset) -> str:
    """Which version of the dataset this is (what checkpoints record as `table_sha256` and
    runs.DatasetVersions compares): hash of its tables (not the pixels: image ids are already content hashes; not
    dataset.json, whose build timestamp changes on an identical rebuild)."""
    h = hashlib.sha256()
    for name in ("concepts.csv", "categories.csv", "images.csv"):
        p = Path(ds.root) / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def dataset_dir(name: str) -> Path:
    check_name(name)
    return paths.datasets_dir() / name


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DatasetError(f"bad dataset name {name!r}: use 1-64 lowercase letters, digits, '_' or "
                           f"'-', starting with a letter or digit")
    return name


def list_datasets() -> list[str]:
    """Names of the complete datasets on disk (those with a dataset.json), sorted."""
    root = paths.datasets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and NAME_PATTERN.match(p.name) and (p / "dataset.json").is_file())


def load_dataset(name: str = DEFAULT_NAME) -> Dataset:
    root = dataset_dir(name)
    if not (root / "dataset.json").is_file():
        hint = ("run `make dataset` (or `python -m core.datasets build`)" if name == DEFAULT_NAME
                else "import it with `python -m core.datasets import <root> <csv> --name " + name + "`")
        have = list_datasets()
        known = f" (available: {', '.join(have)})" if have else ""
        raise DatasetError(f"dataset '{name}' not found in {paths.datasets_dir()}{known}: {hint}")
    try:
        info = json.loads((root / "dataset.json").read_text())
        categories = {}
        for row in _read_csv(root / "categories.csv", ("name", "label", "synset")):
            categories[row["name"]] = Category(row["name"], row["label"], row["synset"] or None)
        concepts = {}
        for row in _read_csv(root / "concepts.csv", ("name", "label", "synset", "categories")):
            cats = tuple(k for k in row["categories"].split(";") if k)
            unknown = [k for k in cats if k not in categories]
            if unknown:
                raise DatasetError(f"concept '{row['name']}' has unknown categories {unknown}")
            concepts[row["name"]] = Concept(row["name"], row["label"], row["synset"] or None, cats)
        images = []
        for row in _read_csv(root / "images.csv", ("id", "concept", "style", "path")):
            if row["concept"] not in concepts:
                raise DatasetError(f"image {row['id']} belongs to unknown concept '{row['concept']}'")
            images.append(ImageItem(row["id"], row["concept"], row["style"], root / row["path"]))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise DatasetError(f"dataset '{name}' in {root} is damaged ({exc}): rebuild or re-import "
                           f"it") from None
    return Dataset(name, root, concepts, categories, images, info)


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}")
        return list(reader)


# --- writing -----------------------------------------------------------------------------------

def remove_leftovers(name: str) -> list[Path]:
    """Remove the staging folders (and the old copy a swap had not yet deleted) that a killed writer
    of dataset `name` left beside it; the removed paths. Call it only while holding build_lock(name):
    every writer stages under that lock, so no live writer's folder can be among them."""
    parent = paths.datasets_dir()
    # Exact names only: ".staging-a-<hex>" must not match the folders of a dataset named "a-b".
    pattern = re.compile(rf"^\.(staging|old)-{re.escape(name)}-[0-9a-f]{{8}}$")
    final_there = (parent / name).is_dir()
    removed = []
    for entry in sorted(parent.iterdir()) if parent.is_dir() else ():
        kind = pattern.match(entry.name)
        # An .old- copy without the dataset beside it is the only copy left (killed between publish's
        # two renames): kept, not ours to delete.
        if kind and entry.is_dir() and (kind.group(1) == "staging" or final_there):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def staging(name: str):
    """A fresh folder beside the dataset's final place (same file system, so the final move is a
    rename); removed again unless `publish` moved it into place. Used inside build_lock(name), which
    clears the ones a killed writer left (remove_leftovers)."""
    check_name(name)
    parent = paths.ensure_writable(paths.datasets_dir())
    stage = parent / f".staging-{name}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir()           # inside the try: an interrupt right after it still removes the folder
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, name: str, source: str, concepts: Iterable[Concept],
            categories: Iterable[Category], images: Iterable[tuple[str, str, str, str]],
            extra: dict | None = None) -> Dataset:
    """Write the tables into `stage` (images already there; rows are (id, concept, style, relative
    path)), then swap it in for data/datasets/<name>. Returns the loaded dataset."""
    concepts, categories, images = list(concepts), list(categories), list(images)
    _write_csv(stage / "categories.csv", ("name", "label", "synset"),
               [(k.name, k.label, k.synset or "") for k in categories])
    _write_csv(stage / "concepts.csv", ("name", "label", "synset", "categories"),
               [(c.name, c.label, c.synset or "", ";".join(c.categories)) for c in concepts])
    _write_csv(stage / "images.csv", ("id", "concept", "style", "path"), images)
    info = {"name": name, "source": source,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(extra or {}),
            "counts": {"concepts": len(concepts), "categories": len(categories), "images": len(images)}}
    (stage / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    remember_chains(concepts)

    final = dataset_dir(name)
    old = final.with_name(f".old-{name}-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)           # directories cannot be replaced in one step when non-empty
    os.replace(stage, final)
    shutil.rmtree(old, ignore_errors=True)
    return load_dataset(name)


def remember_chains(concepts: Iterable[Concept]) -> None:
    """Chain the concepts' synsets once, into core.taxonomy.CHAINS_FILE: Predict then draws a
    leaf's hypernym chain without loading WordNet (a no-op when they are all there)."""
    from core import taxonomy

    taxonomy.remember_chains([c.synset for c in concepts if c.synset])


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def normalize_image(image: Image.Image) -> Image.Image:
    """Any picture → RGB IMAGE_SIZE x IMAGE_SIZE: scaled to fit (aspect kept), centred, and
    alpha-composited on plain white (so transparent emoji and photos look alike to an encoder)."""
    rgba = image.convert("RGBA")
    scale = IMAGE_SIZE / max(rgba.size)
    if scale != 1:
        size = tuple(max(1, round(side * scale)) for side in rgba.size)
        rgba = rgba.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGBA", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((IMAGE_SIZE - rgba.width) // 2, (IMAGE_SIZE - rgba.height) // 2))
    return canvas.convert("RGB")


def save_png(image: Image.Image, path: Path) -> str:
    """Write `image` as PNG and return its id, sha256(file bytes)[:16]."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()[:16]


@contextmanager
def build_lock(name: str):
    """One writer per dataset name at a time (two `make dataset` runs would race otherwise). The
    lock file is removed again on the way out, so a refused import leaves nothing behind; what a
    killed writer of the name left (its lock file, staging folder) is cleared once the lock is held."""
    import fcntl

    lock_path = paths.ensure_writable(paths.datasets_dir()) / f".{check_name(name)}.lock"
    while True:
        handle = open(lock_path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatasetError(f"dataset '{name}' is being written by another process; wait for it "
                               f"to finish") from None
        # The previous holder unlinks the file before it unlocks; if it did so after we opened it,
        # we hold a lock on a file nobody else can see: open the path again.
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        # A lock file left by a killed writer is not held: opened and locked above, like a fresh one,
        # and unlinked below. Its staging folder is cleared here.
        remove_leftovers(name)
        yield
    finally:
        lock_path.unlink(missing_ok=True)          # while still locked: see the loop above
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
