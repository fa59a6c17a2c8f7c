"""`make app`: the Streamlit app and a job worker started and stopped together.

    python -m ui.app_runner --host 127.0.0.1 --port 8501

The app never trains in its own process; it submits jobs that the worker runs. So this launcher starts
`python -m core.jobs.worker` beside `streamlit run app.py`, restarts the worker if it dies, and stops
both on Ctrl-C, SIGTERM, or when either Streamlit exits. Children run in their own process groups
(Ctrl-C reaches only this launcher, which then stops them in order) and are told by the kernel to
exit if the launcher itself is killed. On a fresh data directory it also queues the default training
job once (ui.firstrun), so the Predict page becomes usable without any setup by hand.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core import paths
from core.base import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 15.0          # the worker checkpoints or requeues its job within this
WORKER_RESTARTS = 5          # more crashes than this in a row means something is broken: give up
PRELOAD_ENV = "TAXOLENS_PRELOAD"   # set for the app: it preloads Predict's checkpoint (ui.common.preload_predictor)
HEALTHY_AFTER_S = 60.0       # a worker that lived this long before exiting starts the count afresh


def _die_with_parent() -> None:
    """preexec_fn: own process group, and SIGTERM when the launcher dies (Linux; no-op elsewhere)."""
    os.setpgrp()
    die_with_parent(signal.SIGTERM)


def _start(cmd: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
    print(f"[taxolens] starting {name}: {' '.join(cmd)}", flush=True)
    return subprocess.Popen(cmd, cwd=ROOT, preexec_fn=_die_with_parent,
                            env={**os.environ, **env} if env else None)


def _stop(proc: subprocess.Popen | None, name: str) -> None:
    """SIGTERM to the child's whole group, then SIGKILL after the grace period."""
    if proc is None or proc.poll() is not None:
        return
    print(f"[taxolens] stopping {name} (pid {proc.pid})", flush=True)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        print(f"[taxolens] {name} did not stop in {STOP_GRACE_S:.0f} s; killing it", flush=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def streamlit_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            # Watching every imported file (torch, transformers, ...) costs a core on a small machine.
            "--server.fileWatcherType", "none"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "core.jobs.worker"]


def _live_workers() -> list[int]:
    """Pids of job workers already heartbeating on this host (another `make app` or `make worker`)."""
    from core.jobs.store import JobStore, JobStoreError
    try:
        store = JobStore()
        try:
            return [int(w["pid"]) for w in store.live_workers()]
        finally:
            store.close()
    except JobStoreError:
        return []


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.app_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--no-worker", action="store_true",
                        help="do not start a job worker (one is already running elsewhere)")
    parser.add_argument("--no-first-run", action="store_true",
                        help="skip the first-run job: installing the shipped checkpoint (or training a starter when it "
                             "does not fit) and computing the dataset's features and coherence")
    args = parser.parse_args(argv)

    paths.ensure_writable(paths.data_dir())
    if not args.no_first_run:
        from ui import firstrun
        from core.base import ConfigError
        try:
            print(f"[taxolens] {firstrun.ensure_default_checkpoint_job().describe()}", flush=True)
        except ConfigError as exc:   # e.g. no dataset yet: the app itself explains what to do
            print(f"[taxolens] could not queue the default training job: {exc}", flush=True)

    start_worker = not args.no_worker
    if start_worker:
        live = _live_workers()
        if live:
            print(f"[taxolens] a job worker is already running (pid {live[0]}); not starting another",
                  flush=True)
            start_worker = False

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    app = worker = None
    crashes, worker_started, exit_code = 0, 0.0, 0
    try:
        # The app preloads Predict's checkpoint on its first page view (ui.common.preload_predictor).
        app = _start(streamlit_command(args.host, args.port), "Streamlit", env={PRELOAD_ENV: "1"})
        if start_worker:
            worker, worker_started = _start(worker_command(), "job worker"), time.monotonic()
        print(f"[taxolens] open http://{args.host}:{args.port} (Ctrl-C stops the app and the worker)",
              flush=True)
        while True:
            time.sleep(0.5)
            if app.poll() is not None:
                print(f"[taxolens] Streamlit exited with code {app.returncode}", flush=True)
                exit_code = app.returncode or 0
                break
            if worker is not None and worker.poll() is not None:
                # a worker that ran a good while before dying is not "crashing in a row"
                crashes = 1 if time.monotonic() - worker_started > HEALTHY_AFTER_S else crashes + 1
                if crashes > WORKER_RESTARTS:
                    print(f"[taxolens] the job worker keeps exiting (code {worker.returncode}); "
                          f"jobs will stay queued. See {paths.jobs_dir()} for logs.", flush=True)
                    worker = None
                    continue
                delay = min(30, 2 ** (crashes - 1))
                print(f"[taxolens] job worker exited with code {worker.returncode}; restarting in "
                      f"{delay} s", flush=True)
                time.sleep(delay)
                worker, worker_started = _start(worker_command(), "job worker"), time.monotonic()
    except _Stop as stop:
        print(f"[taxolens] {stop} received", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(worker, "job worker")
        _stop(app, "Streamlit")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
