"""Where TaxoLens keeps its data: the one place that knows the data directory layout.

Everything lives under one git-ignored folder, `data/` beside the code unless TAXOLENS_DATA points
elsewhere (tests point it at a temp dir for isolated job stores). Functions, not constants, so a
changed environment variable takes effect without re-importing.

Every file or folder name made from a user-supplied string (an encoder id, a dataset name, a run id,
a condition, an uploaded file's name) goes through `slug`, `safe_name` or `child` below, so no such
string can point a path outside its folder (`..`, an absolute path, a separator).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from core.base import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"  # curated tables, tracked in git
SHIPPED_CHECKPOINT = ASSETS / "default-checkpoint"   # the small trained default run that ships in the repo


class DataDirError(ConfigError):
    """TAXOLENS_DATA set to something that cannot be the data folder (CLI: one line, exit 2)."""


def data_dir() -> Path:
    """The data folder: TAXOLENS_DATA, else data/ beside the code. An empty TAXOLENS_DATA is refused,
    not read as unset: it is most often a variable that was meant to hold a study's folder
    (`TAXOLENS_DATA=$STUDY` with $STUDY unset), and falling back to the repository's own data would
    mix that study's runs into it (and Path("") is the current folder, worse still). One that exists
    and is not a folder (a file, a FIFO) is refused too: "no runs under <file>/runs" hid the mistake."""
    value = os.environ.get("TAXOLENS_DATA")
    if value == "":
        raise DataDirError("TAXOLENS_DATA is set but empty; unset it to use the repository's data folder "
                           f"({ROOT / 'data'}), or set it to a folder")
    path = Path(value if value is not None else ROOT / "data").resolve()
    if path.exists() and not path.is_dir():
        said = f"TAXOLENS_DATA={value}" if value is not None else f"the data folder {path}"
        raise DataDirError(f"{said} is not a folder; set TAXOLENS_DATA to a folder")
    return path


def own_data_dir() -> bool:
    """Whether the data folder is this repository's own data/ (not a study kept elsewhere)."""
    return data_dir() == (ROOT / "data").resolve()


def default_report() -> Path:
    """Where `results report` and `sweep run` write: the repository's docs/results.md for its own
    data; results.md in the data folder for a study kept elsewhere (TAXOLENS_DATA), which must never
    overwrite the repository's report with its own runs."""
    return ROOT / "docs" / "results.md" if own_data_dir() else data_dir() / "results.md"


def default_figures_dir() -> Path:
    """Where `results figures` writes, on the same rule: artifacts/figures or <data folder>/figures."""
    return ROOT / "artifacts" / "figures" if own_data_dir() else data_dir() / "figures"


def downloads_dir() -> Path:
    """Raw downloads (npm tarballs, .deb files, wheels) kept for sha256 checks and re-unpacking."""
    return data_dir() / "downloads"


def sources_dir() -> Path:
    """Unpacked image sources: sources/<package-name>-<version>/package/..."""
    return data_dir() / "sources"


def models_dir() -> Path:
    """Converted model weights, e.g. models/smollm2-135m/ (safetensors + tokenizer)."""
    return data_dir() / "models"


def nltk_dir() -> Path:
    """nltk data root; WordNet 3.0 lives in corpora/wordnet/."""
    return data_dir() / "nltk_data"


def datasets_dir() -> Path:
    return data_dir() / "datasets"


def features_dir() -> Path:
    """Encoder feature cache, keyed by encoder id + transform + image content hash."""
    return data_dir() / "features"


def augmented_dir() -> Path:
    """Augmented views of training images (core.augment), one folder per augmentation recipe."""
    return data_dir() / "augmented"


def runs_dir() -> Path:
    """Training runs (checkpoints, evaluations) and standalone results (baselines, coherence)."""
    return data_dir() / "runs"


def jobs_dir() -> Path:
    """Job logs and the worker's pid/heartbeat files."""
    return data_dir() / "jobs"


def db_path() -> Path:
    """SQLite job store."""
    return data_dir() / "taxolens.db"


def probe_write(folder: Path) -> None:
    """OSError unless a file can be created in `folder`: a real one, created and removed at once,
    since access() says yes to root even where nothing can be (/proc, a read-only mount). Uniquely
    named: two processes probing one folder must not race on one file."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
        pass


def ensure_writable(path: Path) -> Path:
    """Create `path` (a directory) and check it is writable, with a clear error if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_write(path)
    except OSError as exc:
        raise PermissionError(f"TaxoLens data directory {path} is not writable ({exc.strerror}). "
                              f"Set TAXOLENS_DATA to a writable folder.") from exc
    return path


# ---------------------------------------------------------------- names from user strings

class UnsafeNameError(ValueError):
    """A string used as a file or folder name would leave its folder (separator, '.', '..')."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_NAME = 120   # well under the 255 bytes of common file systems, leaving room for suffixes


def is_plain_name(name: object) -> bool:
    """True for a single path component: no separator, NUL or control character, not '.' or '..',
    not hidden, not empty, at most MAX_NAME characters."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME and name not in (".", "..")
            and not name.startswith(".") and not any(c in name for c in "/\\\0")
            and name.isprintable())


def slug(text: str) -> str:
    """A readable, lossy name part: lowercase letters, digits and . + -, other runs become '-',
    no leading dot ("systematic:mammal+fish" -> "systematic-mammal+fish")."""
    return re.sub(r"[^a-z0-9.+-]+", "-", str(text).lower()).strip("-.")[:MAX_NAME] or "x"


def safe_name(text: str) -> str:
    """A file name that stands for `text` one to one: `text` itself when it is already a plain name
    of safe characters, else a readable slug of it plus a hash of the original (so two ids never
    share a name, and none can leave its folder)."""
    text = str(text)
    if is_plain_name(text) and not _UNSAFE.search(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    readable = _UNSAFE.sub("-", text).strip("-.")[:MAX_NAME - 13]
    return f"{readable}-{digest}" if readable else digest


def child(root: Path, name: str, what: str = "name") -> Path:
    """root / name for a name looked up as given (a run id, a dataset name); UnsafeNameError unless
    it is a single plain path component."""
    if not is_plain_name(name):
        raise UnsafeNameError(f"{what} {name!r} is not a plain name (no '/', '\\', '..' or leading '.')")
    return Path(root) / name
