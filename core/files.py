"""Reading files a user points at: regular files only, and never more than a cap; and the one
atomic file writer every module uses (write_atomic: a temp file beside the target, then os.replace).

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
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + (path.suffix if write is not None else "")     # numpy.savez appends .npz otherwise
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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
