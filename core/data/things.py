"""Bring your own collection: import a folder in THINGS layout as a TaxoLens dataset.

Layout: `<root>/<concept>/<image file>` (one folder per concept, any number of images), plus a CSV
with a header and one row per concept:

    concept,categories[,synset]
    aardvark,animal
    apple,food;fruit,apple.n.01

`categories` are ';'-separated names (free text, e.g. the 27 THINGS high-level categories; spaces
become '_' in the name and stay in the label); `synset` is optional (a WordNet 3.0 noun synset).
A `.tsv` file is read tab-separated. Hidden files (".DS_Store") are skipped.

Everything is checked before anything is kept, and every problem is reported in one
ImportValidationError: unreadable CSV rows, duplicate concepts, concepts without categories, unknown
synsets, CSV rows without a folder, folders without a CSV row, empty folders, files that are not
readable images, and pictures that are byte-identical after normalisation. Images are normalised like
the default set (RGB 224x224 on white) into a staging folder that only becomes the dataset when no
problem was found.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from core import files, taxonomy
from core.base import Progress
from core.data.datasets import (DEFAULT_NAME, Category, Concept, Dataset, ImportValidationError, build_lock,
                                check_name, dataset_dir, normalize_image, publish, save_png, staging)
from core.images import ImageError, load_image

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
STYLE = "photo"         # what an import calls its images unless told (--style): THINGS' are photos
_STYLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _\-]{0,39}$")
MIN_CONCEPTS = 2        # a run's "no" leaf questions ask about other concepts (core.rundata checks runs by it)
# Each concept's images are split within it (60/20/20 unless a run's split_percent says otherwise;
# core.questions.split_images): one image only trains, two give a test image, three give one in
# every split. Fewer is imported (more pictures may
# follow) with a note; training refuses a dataset with an empty split and names these concepts.
IMAGES_FOR_EVERY_SPLIT = 3


def _category_name(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip().lower())


def _label(name: str) -> str:
    # THINGS tells homonyms apart with a digit ("bat1", "bat2"); the question uses the plain word.
    return re.sub(r"\d+$", "", name).replace("_", " ").strip() or name


def read_table(csv_path: Path, problems: list[str]) -> dict[str, dict]:
    """concept → {"categories": [...], "synset": str | None}; problems appended, never raised."""
    delimiter = "\t" if csv_path.suffix.lower() == ".tsv" else ","
    try:   # regular files only, through a cap: a FIFO or /dev/zero must not hang the import
        text = files.read_text(csv_path, files.MAX_TABLE_BYTES, encoding="utf-8-sig")
    except files.FileReadError as exc:
        problems.append(f"{csv_path}: the CSV file does not exist" if exc.kind == "missing"
                        else f"{csv_path}: cannot be read as UTF-8 text ({exc.reason})")
        return {}
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "concept" not in header or "categories" not in header:
        problems.append(f"{csv_path}: the header must name the columns concept,categories[,synset] "
                        f"(found: {', '.join(header) or 'nothing'})")
        return {}
    reader.fieldnames = header
    table: dict[str, dict] = {}
    wordnet_ok: bool | None = None      # checked at the first synset
    for line, row in enumerate(reader, start=2):
        concept = (row.get("concept") or "").strip()
        where = f"{csv_path.name} line {line}"
        if not concept:
            problems.append(f"{where}: empty concept name")
            continue
        if not _NAME.match(concept):
            problems.append(f"{where}: concept '{concept}' must be lowercase letters, digits, '_' or '-'")
            continue
        if concept in table:
            problems.append(f"{where}: duplicate concept '{concept}' (first on line {table[concept]['line']})")
            continue
        categories = [_category_name(k) for k in (row.get("categories") or "").split(";") if k.strip()]
        if not categories:
            problems.append(f"{where}: concept '{concept}' has no categories")
        bad = [k for k in categories if not _NAME.match(k)]
        if bad:
            problems.append(f"{where}: bad category name(s) {', '.join(repr(k) for k in bad)}")
        synset = (row.get("synset") or "").strip() or None
        if synset is not None and wordnet_ok is None:
            try:
                taxonomy.wn()
                wordnet_ok = True
            except taxonomy.TaxonomyError as exc:           # said once, not once per concept
                wordnet_ok = False
                problems.append(f"{csv_path}: the synset column needs WordNet: {exc}")
        if synset is not None and wordnet_ok:
            try:
                synset = taxonomy.canonical_name(synset)
            except taxonomy.TaxonomyError as exc:
                problems.append(f"{where}: concept '{concept}': {exc}")
        table[concept] = {"categories": list(dict.fromkeys(categories)), "synset": synset, "line": line}
    if not table and not problems:
        problems.append(f"{csv_path}: no concept rows")
    return table


def _entries(folder: Path, problems: list[str]) -> list[Path] | None:
    """The folder's entries, sorted, hidden ones skipped; None (and a problem) when it cannot be read."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        problems.append(f"{folder}: cannot be read ({exc.strerror or exc})")
        return None


def _name_taken(name: str, replace: bool) -> str | None:
    if dataset_dir(name).exists() and not replace:
        return f"a dataset named '{name}' already exists (choose another name, or replace it with --replace)"
    return None


def _folders(root: Path, problems: list[str]) -> dict[str, Path]:
    folders = {}
    for entry in _entries(root, problems) or []:
        if entry.is_dir():
            folders[entry.name] = entry
        else:
            problems.append(f"{entry}: a file directly in the root; images go in <root>/<concept>/")
    return folders


def _plan(root, csv_path, name: str, replace: bool,
          style: str = STYLE) -> tuple[Path, Path, dict, dict[str, Path] | None, list[str]]:
    """What an import can check before it reads any image: the name, the style, the CSV, the
    folders and that they match. (root, csv_path, table, folders or None when root is no folder,
    problems)."""
    root, csv_path = Path(root).expanduser(), Path(csv_path).expanduser()
    check_name(name)
    problems: list[str] = []
    if not isinstance(style, str) or not _STYLE.match(style):
        problems.append(f"style {style!r}: one to 40 letters, digits, spaces, '_' or '-' (e.g. photo, sketch, "
                        "line drawing), starting with a letter or digit")
    if name == DEFAULT_NAME:          # `make dataset` rebuilds it from assets/, over an import
        problems.append(f"'{DEFAULT_NAME}' is the default dataset's name (`make dataset` builds it from "
                        f"assets/ and would replace an import); choose another name")
    elif _name_taken(name, replace):
        problems.append(_name_taken(name, replace))
    table = read_table(csv_path, problems)
    if not root.is_dir():
        problems.append(f"{root}: the image folder does not exist" if not root.exists() else
                        f"{root}: not a folder; give the folder that holds one subfolder of images per concept")
        return root, csv_path, table, None, problems
    folders = _folders(root, problems)
    for concept in table:
        if concept not in folders:
            problems.append(f"concept '{concept}' ({csv_path.name} line {table[concept]['line']}): "
                            f"missing folder {root / concept}")
    for folder in folders:
        if folder not in table:
            problems.append(f"folder {root / folder} has no row in {csv_path.name}")
    if 0 < len(table) < MIN_CONCEPTS:
        problems.append(f"{csv_path.name} lists {len(table)} concept; a dataset needs at least {MIN_CONCEPTS} "
                        f"(every leaf question's \"no\" asks about another concept)")
    return root, csv_path, table, folders, problems


def check_import(root, csv_path, name: str, replace: bool = False, style: str = STYLE) -> None:
    """ImportValidationError for every problem found without reading an image (what a queued import
    job is refused for at once); import_things checks the images as well."""
    *_, problems = _plan(root, csv_path, name, replace, style)
    if problems:
        raise ImportValidationError(problems, name)


def import_things(root, csv_path, name: str, progress: Progress | None = None,
                  replace: bool = False, style: str = STYLE) -> Dataset:
    """Import `<root>/<concept>/<image>` plus a CSV `concept,categories[,synset]` as dataset
    `name`, every image of the given `style` (how the pictures were made: shown beside each image
    and in the summary). Validates everything first; ImportValidationError lists every problem."""
    from tqdm import tqdm

    root, csv_path, table, folders, problems = _plan(root, csv_path, name, replace, style)
    if folders is None:
        raise ImportValidationError(problems, name)

    listing = {c: _entries(folders[c], problems) for c in table if c in folders}
    total = sum(len(v or ()) for v in listing.values())
    with build_lock(name), staging(name) as stage:
        taken = _name_taken(name, replace)     # again under the lock: another import may have
        if taken and taken not in problems:     # finished since _plan looked (two workers, CLI and job)
            problems.append(taken)
        rows, owner, done = [], {}, 0
        for concept, paths in tqdm(listing.items(), desc="importing concepts", unit="concept"):
            if paths is None:                   # unreadable: already a problem
                continue
            if not paths:
                problems.append(f"folder {folders[concept]} holds no images")
            saved_as: dict[str, Path] = {}
            for path in paths:
                done += 1
                if path.is_dir():
                    problems.append(f"{path}: a folder inside a concept folder (images only)")
                    continue
                stem = path.stem
                if stem in saved_as:
                    problems.append(f"{path} and {saved_as[stem]} would both be saved as "
                                    f"{concept}/{stem}.png: rename one")
                    continue
                saved_as[stem] = path
                try:
                    image = normalize_image(load_image(path, name=f"{concept}/{path.name}"))
                except (ImageError, OSError) as exc:
                    problems.append(f"unreadable or non-image file {exc}")
                    continue
                rel = f"images/{concept}/{stem}.png"
                image_id = save_png(image, stage / rel)
                if image_id in owner:
                    problems.append(f"{path} is the same picture as {owner[image_id]}")
                    continue
                owner[image_id] = path
                rows.append((image_id, concept, style, rel))
                if progress and total:
                    progress(done / total, f"imported {concept}/{path.name}")
        if problems:
            raise ImportValidationError(problems, name)
        category_names = sorted({k for t in table.values() for k in t["categories"]})
        categories = [Category(k, k.replace("_", " "), None) for k in category_names]
        concepts = [Concept(c, _label(c), t["synset"], tuple(t["categories"]))
                    for c, t in sorted(table.items())]
        few = few_images(rows)
        ds = publish(stage, name, f"THINGS-layout import of {root}", concepts, categories, rows,
                     {"import": {"root": str(root), "csv": str(csv_path),
                                 "unconfirmed_synsets": unconfirmed_synsets(table), "few_images": few}})
    return ds


def few_images(rows) -> dict[str, int]:
    """concept -> its number of images, for concepts with too few for an image in every split
    (IMAGES_FOR_EVERY_SPLIT); rows are (image_id, concept, style, rel) as imported."""
    from collections import Counter
    counts = Counter(row[1] for row in rows)
    return {c: n for c, n in sorted(counts.items()) if n < IMAGES_FOR_EVERY_SPLIT}


def few_images_note(few: dict[str, int]) -> str:
    """One line about the concepts of few_images: what they lack and what a run does about it."""
    listed = ", ".join(f"{c} ({n})" for c, n in list(few.items())[:10]) + \
        (f" and {len(few) - 10} more" if len(few) > 10 else "")
    return (f"{len(few)} concept(s) have fewer than {IMAGES_FOR_EVERY_SPLIT} images, so not one in each of "
            f"train, val and test (1 image: train only; 2: train and test): {listed}. They are trained on but "
            f"not measured in every split; a run refuses the dataset while its val or test split is empty.")


def unconfirmed_synsets(table: dict[str, dict]) -> list[dict]:
    """Concepts whose synset has none of their categories among the words of its WordNet hypernyms
    (or itself): {"concept", "synset", "categories", "hypernyms"} each. Not refused -- a category
    can be named unlike any WordNet word (on the default set 13 of 385 concepts are so, e.g. "light
    source") -- but a typo in the synset column (cat -> kat.n.01, the khat shrub) gives Predict a
    wrong hypernym chain without a word, so the import names them."""
    found = []
    for concept, t in sorted(table.items()):
        if not t["synset"]:
            continue
        try:
            above = sorted(taxonomy.ancestors(t["synset"]))
            words = {w.lower() for s in [t["synset"], *above] for w in taxonomy.lemma_names(s)}
        except taxonomy.TaxonomyError:
            continue
        if not any(k.replace("_", " ").lower() in words for k in t["categories"]):
            chain = taxonomy.hypernym_chains(t["synset"])
            found.append({"concept": concept, "synset": t["synset"], "categories": t["categories"],
                          "hypernyms": [taxonomy.display_name(s) for s in (chain[0][1:6] if chain else [])]})
    return found
