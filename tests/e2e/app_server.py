"""The app started as `make app` runs it (ui.app_runner: Streamlit + job worker, no first-run job)
on a free port, for the browser tests and the screenshot scripts; stopped with SIGINT like Ctrl-C."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class AppDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(data: Path, log_path: Path, timeout_s: float = 90):
    """Yields the app's URL once /_stcore/health answers ok; AppDidNotStart (with the log's end)
    when it exits or does not answer within timeout_s."""
    port = free_port()
    log = open(log_path, "w")
    env = dict(os.environ, TAXOLENS_DATA=str(data), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ui.app_runner", "--host", "127.0.0.1", "--port", str(port),
                             "--no-first-run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AppDidNotStart(f"the app did not start: {Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
