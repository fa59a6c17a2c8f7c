"""Build the default dataset: curated tables in assets/ + emoji art in eleven styles → data/datasets/concepts.

The tables are the source of truth:
    assets/categories.csv   name, label, synset            THINGS-like hypernym categories
    assets/concepts.csv     name, label, synset, emoji, emoji_name
    assets/overrides.csv    concept, category, action (add|remove), reason
A concept's categories are computed: the category synsets among its WordNet ancestors, then the
overrides (where everyday usage differs from WordNet). An override's `concept` is a concept name, or
a synset name meaning every concept at or below that synset. Concepts left without a category are
dropped; so is a concept drawn in fewer than MIN_STYLES styles.

Styles, each a distinct artwork of the same emoji (found by its codepoints, `emoji` column):
noto (iconify SVG, else the 64 px PNG: the same art), twemoji (64 px PNG), fluent-3d (256 px WebP),
and as iconify SVGs fluent-flat, openmoji, and the older or rarer sets emojione, emojione-v1,
noto-v1, fxemoji (Firefox OS), streamline and fluent-high-contrast (black line art). The older sets
draw only some concepts, so a concept has 5 to 11 pictures (mean 8.5). Why eleven and not the first
five: with five, 3 training images per concept, the VLM overfits them (README, "Data"). Every
picture is normalised to RGB 224x224 on white.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core import paths, taxonomy
from core.base import Progress
from core.data.datasets import (DEFAULT_NAME, IMAGE_SIZE, Category, Concept, Dataset, DatasetError,
                                build_lock, load_dataset, normalize_image, publish, remember_chains, save_png,
                                staging)

BUILDER_VERSION = 1          # bump when the rendering changes, so `make dataset` rebuilds
MIN_STYLES = 4
# Drawn by an iconify package alone: style → its PACKAGES key (the same name).
ICONIFY_STYLES = ("fluent-flat", "openmoji", "emojione", "emojione-v1", "noto-v1", "fxemoji",
                  "streamline", "fluent-high-contrast")
STYLES = ("noto", "twemoji", "fluent-3d") + ICONIFY_STYLES
TABLES = ("categories.csv", "concepts.csv", "overrides.csv")

# npm package → folder prefix under data/sources/ (scoped names lose their '@' and '/').
PACKAGES = {
    "google": "emoji-datasource-google",
    "twitter": "emoji-datasource-twitter",
    "fluent-3d": "lobehub-fluent-emoji-3d",
    "fluent-flat": "iconify-json-fluent-emoji-flat",
    "openmoji": "iconify-json-openmoji",
    "noto-svg": "iconify-json-noto",
    "emojione": "iconify-json-emojione",
    "emojione-v1": "iconify-json-emojione-v1",
    "noto-v1": "iconify-json-noto-v1",
    "fxemoji": "iconify-json-fxemoji",
    "streamline": "iconify-json-streamline-emojis",
    "fluent-high-contrast": "iconify-json-fluent-emoji-high-contrast",
}
_CONCEPT_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


# --- tables ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tables:
    categories: list[dict]
    concepts: list[dict]
    overrides: list[dict]
    sha256: str


def read_tables(folder: Path | None = None) -> Tables:
    """Read and check the curated tables; DatasetError lists every problem at once."""
    folder = Path(folder or paths.ASSETS)
    columns = {"categories.csv": ("name", "label", "synset"),
               "concepts.csv": ("name", "label", "synset", "emoji"),
               "overrides.csv": ("concept", "category", "action", "reason")}
    rows, problems, digest = {}, [], hashlib.sha256()
    for table, needed in columns.items():
        path = folder / table
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"curated table {path} cannot be read ({exc.strerror})") from None
        digest.update(table.encode() + b"\0" + data + b"\0")
        reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}")
        rows[table] = [{k: (v or "").strip() for k, v in r.items()} for r in reader]

    categories, concepts, overrides = rows["categories.csv"], rows["concepts.csv"], rows["overrides.csv"]
    for kind, table in (("category", categories), ("concept", concepts)):
        seen: dict[str, set] = {"name": set(), "label": set(), "synset": set()}
        for i, r in enumerate(table, start=2):
            where = f"{kind} '{r['name']}' (line {i})"
            if not _CONCEPT_NAME.match(r["name"]):
                problems.append(f"{where}: name must be lowercase words joined by '_'")
            if not r["label"]:
                problems.append(f"{where}: empty label")
            try:
                r["synset"] = taxonomy.canonical_name(r["synset"])
            except taxonomy.TaxonomyError as exc:
                problems.append(f"{where}: {exc}")
            for key in seen:
                if r[key] in seen[key]:
                    problems.append(f"{where}: duplicate {key} '{r[key]}'")
                seen[key].add(r[key])
    category_synsets = {r["synset"] for r in categories}
    emojis: set[str] = set()
    for r in concepts:
        if r["synset"] in category_synsets:
            problems.append(f"concept '{r['name']}' has the synset of a category ({r['synset']})")
        key = emoji_key(r["emoji"])
        if not re.fullmatch(r"[0-9a-f]{4,6}(-[0-9a-f]{4,6})*", key):
            problems.append(f"concept '{r['name']}': emoji {r['emoji']!r} is not a codepoint sequence")
        elif key in emojis:
            problems.append(f"concept '{r['name']}': emoji {r['emoji']} is used twice")
        emojis.add(key)

    concept_names = {r["name"] for r in concepts}
    category_names = {r["name"] for r in categories}
    for i, r in enumerate(overrides, start=2):
        where = f"override line {i} ({r['concept']} / {r['category']})"
        if r["concept"] not in concept_names:
            try:
                r["concept"] = taxonomy.canonical_name(r["concept"])
            except taxonomy.TaxonomyError:
                problems.append(f"{where}: '{r['concept']}' is neither a concept nor a WordNet synset")
        if r["category"] not in category_names:
            problems.append(f"{where}: unknown category '{r['category']}'")
        if r["action"] not in ("add", "remove"):
            problems.append(f"{where}: action must be 'add' or 'remove', got '{r['action']}'")
        if not r["reason"]:
            problems.append(f"{where}: every override needs a reason")
    if problems:
        raise DatasetError("curated tables in assets/ have problems:\n" +
                           "\n".join(f"  - {p}" for p in problems))
    return Tables(categories, concepts, overrides, digest.hexdigest())


def wordnet_categories(tables: Tables) -> dict[str, tuple[str, ...]]:
    """concept → the categories whose synset is one of its WordNet ancestors (no overrides)."""
    out = {}
    for c in tables.concepts:
        above = taxonomy.ancestors(c["synset"])
        out[c["name"]] = tuple(k["name"] for k in tables.categories if k["synset"] in above)
    return out


def derive_categories(tables: Tables) -> dict[str, tuple[str, ...]]:
    """concept → categories (WordNet ancestors, then overrides), in categories.csv order.
    Concepts that end up with none map to (). An override that changes nothing is an error:
    it would document a difference that does not exist."""
    order = {k["name"]: i for i, k in enumerate(tables.categories)}
    members = {name: set(cats) for name, cats in wordnet_categories(tables).items()}
    problems = []
    for o in tables.overrides:
        targets = [c["name"] for c in tables.concepts if _override_applies(o["concept"], c)]
        changed = False
        for name in targets:
            before = len(members[name])
            if o["action"] == "add":
                members[name].add(o["category"])
            else:
                members[name].discard(o["category"])
            changed |= len(members[name]) != before
        if not changed:
            problems.append(f"override {o['concept']} / {o['category']} / {o['action']} changes no "
                            f"concept's categories")
    if problems:
        raise DatasetError("assets/overrides.csv: " + "; ".join(problems))
    return {name: tuple(sorted(cats, key=order.__getitem__)) for name, cats in members.items()}


def _override_applies(target: str, concept: dict) -> bool:
    if target == concept["name"]:
        return True
    return "." in target and (concept["synset"] == target or taxonomy.is_ancestor(target, concept["synset"]))


# --- image sources -----------------------------------------------------------------------------

def emoji_key(codepoints: str) -> str:
    """Lookup key for a codepoint sequence: lowercase, '-'-joined, variation selector FE0F dropped
    (packages disagree on whether to keep it)."""
    parts = [p for p in codepoints.strip().lower().replace("_", "-").split("-") if p and p != "fe0f"]
    return "-".join(parts)


class Sources:
    """The unpacked emoji packages under data/sources/ and how each style is drawn."""

    def __init__(self, root: Path | None = None):
        self.dirs = package_dirs(root)
        emoji = json.loads((self.dirs["google"] / "emoji.json").read_text())
        self.emoji = {emoji_key(e["unified"]): e for e in emoji}
        twitter = json.loads((self.dirs["twitter"] / "emoji.json").read_text())
        self.twitter = {emoji_key(e["unified"]): e for e in twitter}
        self.iconify = {k: IconSet(self.dirs[k]) for k in ("noto-svg",) + ICONIFY_STYLES}
        self.fluent_3d = {emoji_key(p.stem): p for p in (self.dirs["fluent-3d"] / "assets").glob("*.webp")}

    def render(self, style: str, codepoints: str) -> Image.Image | None:
        """The emoji in `style` as an RGBA image, or None when that package does not draw it."""
        key = emoji_key(codepoints)
        entry = self.emoji.get(key)
        if style == "noto":
            svg = self.iconify["noto-svg"].render(key, entry)
            if svg is not None:
                return svg
            return self._png(self.dirs["google"] / "img/google/64", entry, "has_img_google")
        if style == "twemoji":
            return self._png(self.dirs["twitter"] / "img/twitter/64", self.twitter.get(key),
                             "has_img_twitter")
        if style == "fluent-3d":
            path = self.fluent_3d.get(key)
            return _open_rgba(path) if path else None
        if style in ICONIFY_STYLES:
            return self.iconify[style].render(key, entry)
        raise ValueError(f"unknown style {style!r}")

    @staticmethod
    def _png(folder: Path, entry: dict | None, flag: str) -> Image.Image | None:
        if entry is None or not entry.get(flag):
            return None
        path = folder / entry["image"]
        return _open_rgba(path) if path.is_file() else None


def package_dirs(root: Path | None = None) -> dict[str, Path]:
    """PACKAGES key → its unpacked `package/` folder; DatasetError naming any that is missing."""
    root = Path(root or paths.sources_dir())
    dirs = {key: _package_dir(root, prefix) for key, prefix in PACKAGES.items()}
    missing = [PACKAGES[k] for k, d in dirs.items() if d is None]
    if missing:
        raise DatasetError(f"emoji image packages missing from {root}: {', '.join(missing)}; "
                           f"run `make assets`")
    return dirs


def package_versions(root: Path | None = None) -> list[str]:
    """The unpacked package folders in use, e.g. 'emoji-datasource-google-16.0.0'."""
    return sorted(d.parent.name for d in package_dirs(root).values())


def _package_dir(root: Path, prefix: str) -> Path | None:
    """data/sources/<prefix>-<version>/package, the highest version when several are unpacked."""
    found = []
    for d in root.glob(f"{prefix}-*"):
        version = d.name[len(prefix) + 1:]
        if re.fullmatch(r"\d+(\.\d+)*", version) and (d / "package").is_dir():
            found.append((tuple(int(x) for x in version.split(".")), d / "package"))
    return max(found)[1] if found else None


def _open_rgba(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGBA")


class IconSet:
    """An @iconify-json package: SVG bodies by icon name, and codepoints → icon names (chars.json).
    Names are also tried from the Unicode name ("DOG FACE" → "dog-face") and the short names."""

    def __init__(self, folder: Path):
        data = json.loads((folder / "icons.json").read_text())
        self.icons, self.aliases = data["icons"], data.get("aliases", {})
        self.default = {k: data.get(k, d) for k, d in (("width", 16), ("height", 16), ("left", 0), ("top", 0))}
        chars = json.loads((folder / "chars.json").read_text())
        self.by_codepoints = {emoji_key(k): v for k, v in chars.items()}

    def name_for(self, key: str, entry: dict | None) -> str | None:
        candidates = [self.by_codepoints.get(key)]
        if entry is not None:
            candidates.append(_slug(entry.get("name") or ""))
            candidates += [_slug(s) for s in entry.get("short_names", [])]
        return next((n for n in candidates if n and (n in self.icons or n in self.aliases)), None)

    def svg(self, name: str) -> str | None:
        flips = {"hFlip": False, "vFlip": False}
        rotate = 0
        for _ in range(8):                     # aliases can chain; a loop would be a broken package
            if name in self.icons:
                break
            alias = self.aliases.get(name)
            if alias is None:
                return None
            for k in flips:
                flips[k] ^= bool(alias.get(k, False))
            rotate += int(alias.get("rotate", 0))
            name = alias["parent"]
        else:
            return None
        icon = self.icons.get(name)
        if icon is None or rotate % 4:
            return None                        # no emoji we use is drawn rotated
        box = {k: icon.get(k, d) for k, d in self.default.items()}
        for k in flips:
            flips[k] ^= bool(icon.get(k, False))
        body = icon["body"]
        transforms = []
        if flips["hFlip"]:
            transforms.append(f"translate({2 * box['left'] + box['width']} 0) scale(-1 1)")
        if flips["vFlip"]:
            transforms.append(f"translate(0 {2 * box['top'] + box['height']}) scale(1 -1)")
        if transforms:
            body = f'<g transform="{" ".join(transforms)}">{body}</g>'
        return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'viewBox="{box["left"]} {box["top"]} {box["width"]} {box["height"]}" '
                f'width="{box["width"]}" height="{box["height"]}">{body}</svg>')

    def render(self, key: str, entry: dict | None, size: int = IMAGE_SIZE) -> Image.Image | None:
        name = self.name_for(key, entry)
        svg = self.svg(name) if name else None
        return rasterize_svg(svg, size) if svg else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rasterize_svg(svg: str, size: int = IMAGE_SIZE) -> Image.Image:
    """SVG text → RGBA image whose longer side is `size` (rendered at that size: crisp edges)."""
    import cairosvg

    match = re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"', svg)
    width, height = (float(match.group(1)), float(match.group(2))) if match else (1.0, 1.0)
    scale = size / max(width, height)
    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=round(width * scale),
                           output_height=round(height * scale))
    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGBA")


# --- the build ---------------------------------------------------------------------------------

def tables_sha256(folder: Path | None = None) -> str:
    """Hash of the three curated tables' bytes (the same digest `read_tables` records)."""
    folder = Path(folder or paths.ASSETS)
    digest = hashlib.sha256()
    for table in TABLES:
        try:
            digest.update(table.encode() + b"\0" + (folder / table).read_bytes() + b"\0")
        except OSError as exc:
            raise DatasetError(f"curated table {folder / table} cannot be read ({exc.strerror})") from None
    return digest.hexdigest()


def build_sha256(tables_hash: str, package_versions: list[str]) -> str:
    """What the built dataset is a function of: the tables, the packages and the rendering. Cheap
    (no WordNet, no image decoding), so an up-to-date `make dataset` returns at once."""
    facts = {"tables": tables_hash, "packages": package_versions, "builder": BUILDER_VERSION,
             "size": IMAGE_SIZE, "styles": STYLES, "min_styles": MIN_STYLES}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def is_up_to_date(build_hash: str) -> bool:
    try:
        ds = load_dataset(DEFAULT_NAME)
    except DatasetError:
        return False
    return ds.info.get("table_sha256") == build_hash and all(im.path.is_file() for im in ds.images)


def build_default_dataset(progress: Progress | None = None, force: bool = False) -> Dataset:
    """Build data/datasets/concepts from the curated tables in assets/ and the emoji image
    packages (a quick no-op when it exists and the tables are unchanged, unless force)."""
    from tqdm import tqdm

    build_hash = build_sha256(tables_sha256(), package_versions())
    with build_lock(DEFAULT_NAME):
        if not force and is_up_to_date(build_hash):
            ds = load_dataset(DEFAULT_NAME)
            remember_chains(ds.concepts.values())       # a data dir built before chains were remembered
            if progress:
                progress(1.0, "dataset is up to date")
            return ds
        tables = read_tables()
        sources = Sources()
        members = derive_categories(tables)
        todo = [c for c in tables.concepts if members[c["name"]]]
        without_category = sorted(c["name"] for c in tables.concepts if not members[c["name"]])
        too_few_styles: dict[str, list[str]] = {}
        concepts, rows, owner = [], [], {}
        with staging(DEFAULT_NAME) as stage:
            for i, c in enumerate(tqdm(todo, desc="rendering concepts", unit="concept")):
                drawn = {s: im for s in STYLES if (im := sources.render(s, c["emoji"])) is not None}
                if len(drawn) < MIN_STYLES:
                    too_few_styles[c["name"]] = sorted(drawn)
                    continue
                for style, image in drawn.items():
                    rel = f"images/{c['name']}/{style}.png"
                    image_id = save_png(normalize_image(image), stage / rel)
                    if image_id in owner:
                        raise DatasetError(f"{c['name']}/{style} is the same picture as "
                                           f"{owner[image_id]}: check the emoji column")
                    owner[image_id] = f"{c['name']}/{style}"
                    rows.append((image_id, c["name"], style, rel))
                concepts.append(Concept(c["name"], c["label"], c["synset"], members[c["name"]]))
                if progress:
                    progress((i + 1) / len(todo), f"rendered {c['name']}")
            categories = [Category(k["name"], k["label"], k["synset"]) for k in tables.categories]
            extra = {"table_sha256": build_hash, "styles": list(STYLES), "image_size": IMAGE_SIZE,
                     "packages": package_versions(), "builder_version": BUILDER_VERSION,
                     "dropped": {"without_category": without_category, "too_few_styles": too_few_styles}}
            return publish(stage, DEFAULT_NAME, "emoji (assets/concepts.csv)", concepts, categories,
                           rows, extra)
