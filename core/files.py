"""Reading files a user points at: regular files only, and never more than a cap.

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
from pathlib import Path

MB = 1 << 20
# Caps for the small text files a user hands the CLI (configs, job and sweep specs, import tables).
MAX_JSON_BYTES = 16 * MB
MAX_TABLE_BYTES = 64 * MB


class FileReadError(ValueError):
    """A user-supplied file that cannot be read safely. `kind` is one of missing, folder, special,
    too_big, unreadable; `reason` says it in words (without the path)."""

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


def _size(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n} bytes"
