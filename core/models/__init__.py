"""The model parts of a TaxoLens VLM: frozen image encoders (encoders.py), frozen language models
(lms.py), the trained projector (projector.py) and their assembly with the prompt and the yes/no
scoring (vlm.py). Ids are turned into these objects by core.models.registry, the one factory.

This file holds what the parts share: the error for weights that cannot be had on this machine, and
the cheap check whether a model hub could be asked at all (so an offline machine gets a clear
message at once instead of minutes of download retries).
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from core.base import ConfigError


class ModelUnavailableError(ConfigError):
    """Weights for a valid model id are neither on disk nor downloadable from here."""


def hub_offline() -> bool:
    """True when the Hugging Face hub cannot be reached: HF_HUB_OFFLINE is set, or a TCP connection
    to the endpoint fails within 3 s. Checked before any download so failures are quick and clear."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=3.0):
            return False
    except OSError:
        return True
