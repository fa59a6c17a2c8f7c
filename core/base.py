"""What every layer of core shares, importing nothing of core: the user-facing error class and the
progress-callback type. A leaf, so that any module can raise ConfigError or take a progress
callback without importing the module that first needed it."""
from __future__ import annotations

from typing import Callable


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is shown as-is (CLI: exit code 2)."""


Progress = Callable[[float, str], None]
"""progress(fraction 0..1, message): how long-running functions report where they are."""
