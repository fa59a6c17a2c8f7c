"""Download plumbing for core.assets: sha256 checks with a verification stamp, fetch-verify-refetch,
external tools with helpful errors, and atomic file/directory writes.

The stamp (`downloads/verified.json`) remembers, per file, the sha256 it was verified against with the
file's size and mtime, so a re-run of `make assets` does not re-hash hundreds of megabytes.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from tqdm import tqdm

from core import paths
from core.files import default_mode, write_atomic  # noqa: F401  (default_mode: assets and tests use it from here)

_HASH_BLOCK = 1 << 20
_SHOW_HASH_PROGRESS = 64 << 20  # hashing smaller files is too quick to be worth a progress bar


class AssetError(RuntimeError):
    """An asset is missing, corrupt or cannot be fetched; the message says what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, leave=False,
                                     desc=f"sha256 {path.name}", disable=size < _SHOW_HASH_PROGRESS) as bar:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _stamp_path() -> Path:
    return paths.downloads_dir() / "verified.json"


def _read_stamps() -> dict:
    try:
        return json.loads(_stamp_path().read_text())
    except (OSError, ValueError):
        return {}


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


# (path, sha256, size, mtime_ns) this process has hashed and found right: checks that may write
# no stamp (record=False: validating every job of a sweep plan) would otherwise hash the same model
# files once per job.
_verified_here: set[tuple] = set()


def is_verified(path: Path, sha256: str, record: bool = True) -> bool:
    """True when `path` exists and its content has this sha256. Uses the stamp when the file's
    size and mtime are unchanged since it was last verified; otherwise hashes it (and stamps it,
    unless record=False: a check that must write nothing, such as validating a refused command).
    A file this process already hashed, unchanged since, is not hashed again either way."""
    path = Path(path)
    if not path.is_file():
        return False
    key = {"sha256": sha256, **_file_key(path)}
    resolved = str(path.resolve())
    if _read_stamps().get(resolved) == key:
        return True
    here = (resolved, sha256, key["size"], key["mtime_ns"])
    if here not in _verified_here:
        if sha256_file(path) != sha256:
            return False
        _verified_here.add(here)
    if record:
        _stamp(path, sha256)
    return True


def _stamp(path: Path, sha256: str) -> None:
    stamps = _read_stamps()
    stamps[str(path.resolve())] = {"sha256": sha256, **_file_key(path)}
    try:
        write_atomic(_stamp_path(), json.dumps(stamps, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only data dir still works; files are just re-hashed next time


def fetch_verified(dest: Path, sha256: str, fetch: Callable[[Path], None], what: str) -> Path:
    """Make sure `dest` holds the file with this sha256. A missing or wrong file is (re)fetched by
    `fetch(dest)`; a download that does not match is deleted and fetched once more, and if it is
    still wrong the error names both hashes. A bad file is never left at `dest`."""
    dest = Path(dest)
    if is_verified(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    got = None
    for _attempt in range(2):
        dest.unlink(missing_ok=True)
        fetch(dest)
        if not dest.is_file():
            raise AssetError(f"fetching {what} produced no file at {dest}")
        got = sha256_file(dest)
        if got == sha256:
            _stamp(dest, sha256)
            return dest
        dest.unlink()
    raise AssetError(f"{what}: sha256 mismatch after two downloads (expected {sha256}, got {got}). "
                     f"The registry served different bytes than the pinned version; check your network/"
                     f"mirror, or update the pin in assets/sources.csv if the upstream file really changed.")


def require_tool(name: str, how_to_get: str) -> str:
    found = shutil.which(name)
    if not found:
        raise AssetError(f"{name} not found: {how_to_get}")
    return found


def run_tool(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    """Run an external command; on failure raise AssetError with the end of its output."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as exc:
        raise AssetError(f"{what} failed: cannot run {cmd[0]} ({exc.strerror})") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise AssetError(f"{what} failed ({' '.join(cmd[:3])} ... exit {done.returncode}):\n{tail}")
    return done.stdout


@functools.lru_cache(maxsize=1)
def publish_modes(root: Path) -> None:
    """Give `root` and everything under it the usual umask-based permissions (keeping exec bits)."""
    root = Path(root)
    root.chmod(default_mode(directory=True))
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(default_mode(directory=True))
        else:
            path.chmod(default_mode() | (path.stat().st_mode & 0o111 & default_mode(directory=True)))


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temp directory beside `final`; on success it replaces `final` in one rename
    (an old `final` is moved aside first and then deleted), on error it is removed. Readers see the
    old complete directory or the new complete one, never a half-written one."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        publish_modes(tmp)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temp directory inside the data dir (same filesystem as the targets, so renames are cheap)."""
    root = paths.ensure_writable(paths.downloads_dir())
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{prefix}.", suffix=".tmp"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (two `make assets` or two workers converting the same LM wait in turn)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
