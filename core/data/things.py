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
or non-noun synsets, CSV rows without a folder, folders without a CSV row, empty folders, file names
that are not UTF-8, files that are not readable images, and pictures that are byte-identical after
normalisation. What the names alone show is found before any image is read (check_import, what a
queued job is refused for); a name that is taken or a CSV that cannot be used stops the import there,
without the slow pass over the images. Images are normalised like the default set (RGB 224x224 on
white) into a staging folder that only becomes the dataset when no problem was found.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from core import files, taxonomy
from core.base import Progress
from core.data.datasets import (DEFAULT_NAME, Category, Concept, Dataset, ImportValidationError, build_lock,
                                check_name, dataset_dir, normalize_image, publish, readable, save_png, staging)
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


_POS = {"v": "a verb", "a": "an adjective", "s": "an adjective", "r": "an adverb"}


def read_table(csv_path: Path, problems: list[str], refused: set[str] | None = None) -> dict[str, dict] | None:
    """concept → {"categories": [...], "synset": str | None, "line": int}; problems appended, never
    raised. None when the table cannot be used at all (no such file, not UTF-8 text, no concept and
    categories columns, no rows): then no row can be matched to a folder. `refused` collects the
    concept names of rows refused for their name, so their folders are not also "without a row"."""
    delimiter = "\t" if csv_path.suffix.lower() == ".tsv" else ","
    try:   # regular files only, through a cap: a FIFO or /dev/zero must not hang the import
        text = files.read_text(csv_path, files.MAX_TABLE_BYTES, encoding="utf-8-sig")
    except files.FileReadError as exc:
        problems.append(f"{csv_path}: {_unusable(exc)}")
        return None
    # csv.reader over the text itself (not its lines): a quoted field may hold a line break, and
    # line_num then counts every physical line. Blank lines come out as [] rows, so the line after
    # the previous row's last is where a row starts.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        while True:
            line = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if row:
                rows.append((line, row))
    except csv.Error as exc:
        problems.append(f"{csv_path.name} line {reader.line_num}: not valid CSV ({exc})")
        return None
    header = [h.strip().lower() for h in rows[0][1]] if rows else []
    if "concept" not in header or "categories" not in header:
        problems.append(f"{csv_path}: the header must name the columns concept,categories[,synset] "
                        f"(found: {', '.join(header) or 'nothing'})")
        return None
    if len(rows) == 1:
        problems.append(f"{csv_path}: no concept rows")
        return None
    table: dict[str, dict] = {}
    wordnet_ok: bool | None = None      # checked at the first synset
    for line, values in rows[1:]:
        row = dict(zip(header, values))
        concept = (row.get("concept") or "").strip()
        where = f"{csv_path.name} line {line}"
        if not concept:
            problems.append(f"{where}: empty concept name")
            continue
        if not _NAME.match(concept):
            problems.append(f"{where}: concept '{concept}' must be lowercase letters, digits, '_' or '-'")
            if refused is not None:
                refused.add(concept)
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
                found = taxonomy.synset(synset)
            except taxonomy.TaxonomyError as exc:
                problems.append(f"{where}: concept '{concept}': {exc}")
            else:
                if found.pos() != "n":
                    problems.append(f"{where}: concept '{concept}': synset '{synset}' is "
                                    f"{_POS.get(found.pos(), 'no noun')}; a concept's synset must be a "
                                    f"WordNet 3.0 noun{_nouns_like(found)}")
                synset = found.name()
        table[concept] = {"categories": list(dict.fromkeys(categories)), "synset": synset, "line": line}
    return table


def _unusable(exc: files.FileReadError) -> str:
    """Why the CSV cannot be read, in the words of an import (without the path)."""
    reason = exc.reason.replace("utf-8-sig", "UTF-8")       # a BOM is allowed, not asked for
    if exc.kind == "missing":
        return "the CSV file does not exist"
    if exc.kind == "folder":
        return "is a folder; give the CSV file (columns concept,categories[,synset])"
    if reason.startswith("is not UTF-8"):
        return f"{reason}; save it as UTF-8"
    return reason if reason.startswith("cannot be read") else f"cannot be read ({reason})"


def _nouns_like(synset) -> str:
    """", e.g. run.n.01, run.n.02" — noun synsets of the synset's first word — or "" when it has none."""
    word = synset.lemmas()[0].name()
    nouns = [s.name() for s in taxonomy.wn().synsets(word, pos="n")[:3]]
    return f", e.g. {', '.join(nouns)}" if nouns else ""


def _entries(folder: Path, problems: list[str]) -> list[Path] | None:
    """The folder's entries, sorted, hidden ones skipped; None (and a problem) when it cannot be read."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        problems.append(f"{folder}: cannot be read ({exc.strerror or exc})")
        return None


def _not_utf8(path: Path) -> str | None:
    """The problem of a name that is not valid UTF-8 (it can be neither written to images.csv nor
    stored as a job's progress), or None. Shown with \\x escapes for the bytes that are not UTF-8."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        what = "folder" if path.is_dir() else "file"
        return f"{readable(str(path))}: the {what} name is not valid UTF-8; rename it"
    return None


def _name_taken(name: str, replace: bool) -> str | None:
    """The problem of a dataset `name` that exists already and is not to be replaced, or None."""
    if dataset_dir(name).exists() and not replace:
        return f"a dataset named '{name}' already exists (choose another name, or replace it with --replace)"
    return None


def _folders(root: Path, problems: list[str]) -> dict[str, Path]:
    """The root's sub-folders by name; a file directly in it, or a name that is not UTF-8, is a problem."""
    folders = {}
    for entry in _entries(root, problems) or []:
        bad = _not_utf8(entry)
        if bad:
            problems.append(bad)
        elif entry.is_dir():
            folders[entry.name] = entry
        else:
            problems.append(f"{entry}: a file directly in the root; images go in <root>/<concept>/")
    return folders


def _image_files(concept: str, folder: Path, problems: list[str]) -> list[Path] | None:
    """The files of a concept folder to read as its images; what their names alone show (not UTF-8,
    a sub-folder, two files saved as one <stem>.png, no file at all) is a problem. None when the
    folder cannot be read."""
    paths = _entries(folder, problems)
    if paths is None:
        return None
    if not paths:
        problems.append(f"folder {folder} holds no images")
    found, saved_as = [], {}
    for path in paths:
        bad = _not_utf8(path)
        if bad:
            problems.append(bad)
        elif path.is_dir():
            problems.append(f"{path}: a folder inside a concept folder (images only)")
        elif path.stem in saved_as:
            problems.append(f"{path} and {saved_as[path.stem]} would both be saved as {concept}/{path.stem}.png: "
                            f"rename one")
        else:
            saved_as[path.stem] = path
            found.append(path)
    return found


@dataclass
class _Plan:
    """What an import knows before it reads an image."""
    root: Path
    csv_path: Path
    table: dict[str, dict]
    images: dict[str, list[Path] | None] = field(default_factory=dict)   # concept → its files to read
    problems: list[str] = field(default_factory=list)
    # A problem that makes reading the images pointless (the name, the style, a CSV or a root that
    # cannot be used): the import stops before its slow pass instead of reporting it hours later.
    stop: bool = False


def _plan(root, csv_path, name: str, replace: bool, style: str = STYLE) -> _Plan:
    """What an import can check before it reads any image: the name, the style, the CSV, the
    folders, the file names in them and that folders and rows match."""
    root, csv_path = Path(root).expanduser(), Path(csv_path).expanduser()
    check_name(name)
    plan = _Plan(root, csv_path, {})
    problems = plan.problems
    if not isinstance(style, str) or not _STYLE.match(style):
        problems.append(f"style {style!r}: one to 40 letters, digits, spaces, '_' or '-' (e.g. photo, sketch, "
                        "line drawing), starting with a letter or digit")
    if name == DEFAULT_NAME:          # `make dataset` rebuilds it from assets/, over an import
        problems.append(f"'{DEFAULT_NAME}' is the default dataset's name (`make dataset` builds it from "
                        f"assets/ and would replace an import); choose another name")
    elif _name_taken(name, replace):
        problems.append(_name_taken(name, replace))
    plan.stop = bool(problems)
    refused: set[str] = set()
    table = read_table(csv_path, problems, refused)
    plan.stop = plan.stop or table is None
    plan.table = table or {}
    if not root.is_dir():
        problems.append(f"{root}: the image folder does not exist" if not root.exists() else
                        f"{root}: not a folder; give the folder that holds one subfolder of images per concept")
        plan.stop = True
        return plan
    folders = _folders(root, problems)
    if table is not None:             # else every folder would be "without a row": the CSV is the problem
        for concept in table:
            if concept not in folders:
                problems.append(f"concept '{concept}' ({csv_path.name} line {table[concept]['line']}): "
                                f"missing folder {root / concept}")
        for folder in folders:
            if folder not in table and folder not in refused:
                problems.append(f"folder {root / folder} has no row in {csv_path.name}")
        if 0 < len(table) < MIN_CONCEPTS:
            problems.append(f"{csv_path.name} lists {len(table)} concept; a dataset needs at least {MIN_CONCEPTS} "
                            f"(every leaf question's \"no\" asks about another concept)")
    plan.images = {c: _image_files(c, folders[c], problems) for c in plan.table if c in folders}
    return plan


def check_import(root, csv_path, name: str, replace: bool = False, style: str = STYLE) -> None:
    """ImportValidationError for every problem found without reading an image (what a queued import
    job is refused for at once); import_things checks the images as well."""
    plan = _plan(root, csv_path, name, replace, style)
    if plan.problems:
        raise ImportValidationError(plan.problems, name)


def import_things(root, csv_path, name: str, progress: Progress | None = None,
                  replace: bool = False, style: str = STYLE) -> Dataset:
    """Import `<root>/<concept>/<image>` plus a CSV `concept,categories[,synset]` as dataset
    `name`, every image of the given `style` (how the pictures were made: shown beside each image
    and in the summary). Validates everything first; ImportValidationError lists every problem."""
    from tqdm import tqdm

    plan = _plan(root, csv_path, name, replace, style)
    root, csv_path, table, problems = plan.root, plan.csv_path, plan.table, plan.problems
    if plan.stop:
        raise ImportValidationError(problems, name)
    total = sum(len(v or ()) for v in plan.images.values())
    with build_lock(name), staging(name) as stage:
        taken = _name_taken(name, replace)     # again under the lock: another import may have
        if taken:                               # finished since _plan looked (two workers, CLI and job)
            raise ImportValidationError([*problems, taken], name)
        rows, owner, done = [], {}, 0
        for concept, paths in tqdm(plan.images.items(), desc="importing concepts", unit="concept"):
            for path in paths or ():            # None: unreadable, already a problem
                done += 1
                try:
                    image = normalize_image(load_image(path, name=f"{concept}/{path.name}"))
                except (ImageError, OSError) as exc:
                    problems.append(f"unreadable or non-image file {exc}")
                    continue
                rel = f"images/{concept}/{path.stem}.png"
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
