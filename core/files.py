"""Reading files a user points at: regular files only, and never more than a cap; the one atomic
file writer every module uses (write_atomic: a temp file beside the target, then os.replace); and
check_output_target, the check every output option (--out, --csv, --report, --dest, --run-dir) runs
before any work.

A path may name a device (/dev/zero never ends), a FIFO (opening one blocks until a writer comes) or
a symlink to either, and st_size is 0 for all of them, so a size check alone does not help. Here the
file is opened non-blocking, the *opened* file is fstat'ed (no swap between the check and the read),
anything but a regular file is refused, and the read goes through the cap (one byte more than
allowed tells "too big" apart from "exactly the limit").
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

from core import paths

MB = 1 << 20
# Caps for the small text files a user hands the CLI (configs, job and sweep specs, import tables).
MAX_JSON_BYTES = 16 * MB
MAX_TABLE_BYTES = 64 * MB


class FileReadError(ValueError):
    """A user-supplied file that cannot be read safely. `kind` is one of missing, folder, special,
    too_big, unreadable, invalid_json; `reason` says it in words (without the path)."""

    def __init__(self, path: Path, kind: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.kind, self.reason = Path(path), kind, reason


class FileWriteError(OSError):
    """An output path that cannot take what is to be written there (a FIFO or device, a folder where
    a file is meant or the other way round, a parent that is a file, no write permission). An
    OSError, so callers that already catch failed writes still do; `reason` says it without the
    path, and str() is "<path>: <reason>"."""

    def __init__(self, path: str | os.PathLike, reason: str, errno_: int | None = None):
        super().__init__(errno_, reason, str(path))
        self.path, self.reason = Path(path), reason

    def __str__(self) -> str:
        return f"{self.filename}: {self.reason}" if self.filename else self.reason

    def __reduce__(self):          # picklable (a job's error may cross a process boundary)
        return type(self), (self.filename, self.reason, self.errno)


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The contents of a regular file of at most `max_bytes`; FileReadError otherwise."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for regular files.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileReadError(path, "missing", "no such file") from None
    except IsADirectoryError:
        raise FileReadError(path, "folder", "is a folder, not a file") from None
    except OSError as exc:
        raise FileReadError(path, "unreadable", f"cannot be read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise FileReadError(path, "folder", "is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise FileReadError(path, "special", f"is {_kind_of(mode)}, not a regular file")
        chunks, total = [], 0
        while total <= max_bytes:
            try:
                chunk = os.read(fd, min(max_bytes + 1 - total, 4 * MB))
            except OSError as exc:
                if exc.errno == errno.EISDIR:
                    raise FileReadError(path, "folder", "is a folder, not a file") from None
                raise FileReadError(path, "unreadable", f"cannot be read ({exc.strerror or exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileReadError(path, "too_big", f"is larger than the {_size(max_bytes)} limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, max_bytes: int, encoding: str = "utf-8") -> str:
    """read_bytes decoded; a decoding problem is a FileReadError too."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileReadError(Path(path), "unreadable", f"is not {encoding} text ({exc.reason} at byte "
                                                      f"{exc.start})") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES):
    """read_text parsed as JSON; invalid JSON is a FileReadError too (kind "invalid_json")."""
    import json

    try:
        return json.loads(read_text(path, max_bytes))
    except json.JSONDecodeError as exc:
        raise FileReadError(Path(path), "invalid_json", str(exc)) from None


def _size(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n} bytes"


# ---------------------------------------------------------------- writing atomically

def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give under the current umask (mkstemp/mkdtemp use
    0600/0700, which would hide shared data from other users of the data dir)."""
    return (0o777 if directory else 0o666) & ~_umask()


def write_atomic(path: Path, data: bytes | str | None = None, *,
                 write: Callable[[str], None] | None = None, fsync: bool = True) -> None:
    """Write `path` so that a reader sees the old file or the new one, never half of either: the
    content goes to a temp file in the same folder (created with its parents), which then replaces
    `path` with the usual umask-based mode. Either `data` (bytes, or str as UTF-8; flushed to disk
    first when fsync) or `write(tmp_path)`, for writers that want a file name (safetensors, numpy;
    that temp name ends with the target's suffix). The temp file is removed on any failure."""
    path = Path(path)
    if (data is None) == (write is None):
        raise TypeError("write_atomic takes either data or write")
    _refuse_non_regular(path)
    suffix = ".tmp" + (path.suffix if write is not None else "")     # numpy.savez appends .npz otherwise
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:     # named by the target, not by the temp file the user never asked for
        raise FileWriteError(path, f"cannot be written ({exc.strerror or exc})", exc.errno) from exc
    try:
        if write is None:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        else:
            os.close(fd)
            write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refuse_non_regular(path: Path) -> None:
    """FileWriteError when `path` exists (symlinks followed) and is not a regular file: os.replace
    would swap a FIFO or a device node for a plain file (and fail on a folder)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:            # missing (or unreachable: mkdir / mkstemp say why)
        return
    if stat.S_ISDIR(mode):
        raise FileWriteError(path, "is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise FileWriteError(path, f"is {_kind_of(mode)}, not a regular file")


def check_output_target(path: str | os.PathLike, folder: bool = False) -> Path:
    """`path` as a Path when a file (folder=True: a folder) can be written there; FileWriteError
    otherwise: an empty path, an existing thing of the other kind or not a regular file, a parent
    that is a file, or a nearest existing folder this process cannot create files in. Writes
    nothing that stays (the write test is a temp file, removed at once), so a command runs it
    before its work, and a result is not lost after hours to a path that cannot take it."""
    if str(path) == "":        # Path("") is ".", the current folder: never what was meant
        raise FileWriteError(path, "an empty path names no " + ("folder" if folder else "file"))
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None:
        if folder and not stat.S_ISDIR(mode):
            raise FileWriteError(path, ("is a file" if stat.S_ISREG(mode) else f"is {_kind_of(mode)}")
                                 + "; give a folder")
        if not folder and stat.S_ISDIR(mode):
            raise FileWriteError(path, "is a directory; give a file name such as docs/results.md")
        if not folder:
            _refuse_non_regular(path)
    # the nearest existing ancestor must be a folder this process can create files in
    parent = path.absolute() if mode is not None and folder else path.absolute().parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FileWriteError(path, f"{parent} is {'a file' if parent.is_file() else 'not a folder'}, "
                                   f"so nothing can be written under it")
    try:
        paths.probe_write(parent)
    except OSError as exc:
        raise FileWriteError(path, f"no file can be created in {parent} ({exc.strerror or exc})", exc.errno) from None
    return path
