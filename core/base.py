"""What every layer of core shares, importing nothing of core: the user-facing error class, the
progress-callback type, and die_with_parent for child processes. A leaf, so that any module can
raise ConfigError or take a progress callback without importing the module that first needed it."""
from __future__ import annotations

import signal
from typing import Callable

PR_SET_PDEATHSIG = 1        # prctl option (linux/prctl.h)


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is shown as-is (CLI: exit code 2)."""


Progress = Callable[[float, str], None]
"""progress(fraction 0..1, message): how long-running functions report where they are."""

RESUME_LATER = "resume later"
"""What a should_stop() callback returns instead of True when the work stops to be resumed by the
same job (a job runner stopped by its worker): training then saves its runs as "partial", which
nothing else may claim (runs.ReusableRuns), not as "cancelled"."""


def whole_number(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high] (either bound optional; numpy integers too, as a
    DataFrame gives them; not a bool, a float or a string), else ConfigError naming `name`."""
    import operator
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        span = "" if low is None and high is None else f" >= {low}" if high is None else \
            f" <= {high}" if low is None else f" from {low} to {high}"
        raise ConfigError(f"{name} must be a whole number{span}, got {value!r}")
    return number


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child process: ask Linux to send `sig` when the parent dies (kill -9 included), so no
    orphan keeps running. A no-op where prctl is missing (macOS, Windows); callers that must not
    orphan a child there also poll their parent."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass
