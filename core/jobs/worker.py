"""The job worker: `python -m core.jobs.worker [--concurrency N]`, and ensure_worker() for the app.

A separate long-lived process that claims queued jobs atomically and runs each attempt in a child
process (core.jobs.runner) whose output goes to paths.jobs_dir()/job-<id>.log. The child reports
progress and its outcome to the store itself; the worker supervises:

- heartbeats for itself and its running jobs (a job whose worker dies is requeued by the next
  worker that starts; training then resumes from the run's last checkpoint);
- cancellation: the child polls the store and stops cooperatively; if it has not exited after
  `cancel_grace_s` it gets SIGTERM, then SIGKILL, and the job is marked cancelled;
- a child that dies without recording an outcome (segfault, OOM kill) → failed with its exit code.
SIGTERM / Ctrl-C stop the worker: its children stop at their next step (training saves where it
stands; core.jobs.runner) and their jobs are requeued, not failed.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import files, paths
from core.config import number_arg
from core.jobs.runner import EXIT_STOPPED
from core.jobs.store import Job, JobStore, JobStoreError, ensure_dir, pid_alive, read_log_tail

HEARTBEAT_EVERY_S = 5.0
ORPHAN_SCAN_EVERY_S = 30.0
SLURM_SYNC_EVERY_S = 15.0     # pull Slurm outcomes into the store, so the app shows them without the CLI


# How long a job stopped by SIGTERM has to save before SIGKILL: a training step of the full dataset
# takes ~6 s on 2 CPU cores, then its state is written. Under `make app`'s own grace (15 s).
KILL_GRACE_S = 12.0


def default_concurrency() -> int:
    """One job per two cores: a training job already uses two threads well (1 on a 2-core box)."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def pid_file() -> Path:
    return paths.jobs_dir() / "worker.pid"


@dataclass
class _Slot:
    job: Job
    process: subprocess.Popen
    cancel_seen: float | None = None
    signals_sent: list[str] = field(default_factory=list)
    stopping_for_shutdown: bool = False


def release_partial_run(job: Job, why: str) -> None:
    """A train job that will not run again (cancelled, failed) frees the run it saved "partial" to
    resume (runs.release_partial); any other job has none."""
    if job.kind == "train" and job.run_dir:
        from core import runs
        runs.release_partial(runs.located_path(job.run_dir), why=why)


class Worker:
    def __init__(self, concurrency: int | None = None, poll_s: float = 0.5, cancel_grace_s: float = 5.0,
                 kill_grace_s: float = KILL_GRACE_S, idle_exit_s: float | None = None, store: JobStore | None = None):
        self.concurrency = concurrency or default_concurrency()
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.poll_s = poll_s
        self.cancel_grace_s = cancel_grace_s
        self.kill_grace_s = kill_grace_s
        self.idle_exit_s = idle_exit_s
        self.store = store or JobStore()
        self.pid = os.getpid()
        self.slots: dict[int, _Slot] = {}
        self._stop = False
        self._last_beat = self._last_scan = self._last_sync = 0.0

    # -- lifecycle --------------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def run(self) -> None:
        log_dir = ensure_dir(paths.jobs_dir())
        self._write_pid_file()
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self._say(f"worker {self.pid} started (concurrency {self.concurrency}, store {self.store.path})")
        for job_id in self.store.requeue_orphans():
            self._say(f"requeued job {job_id} left running by a dead worker")
        idle_since = time.monotonic()
        try:
            while not self._stop:
                try:
                    idle_since = self._tick(log_dir, idle_since)
                except JobStoreError as exc:  # e.g. locked for 30 s or disk full: wait, then retry
                    self._say(f"job store problem, retrying in 5 s: {exc}")
                    time.sleep(5)
                    continue
                if idle_since is None:
                    break
                time.sleep(self.poll_s)
        finally:
            self._shutdown()

    def _tick(self, log_dir: Path, idle_since: float) -> float | None:
        """One pass of the supervision loop; returns when it last had work, or None to exit."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY_S:
            self.store.worker_beat(self.pid, self.concurrency)
            self.store.heartbeat(list(self.slots), self.pid)
            self._last_beat = now
        if now - self._last_scan >= ORPHAN_SCAN_EVERY_S:
            if self._last_scan:  # the startup scan already ran
                for job_id in self.store.requeue_orphans():
                    self._say(f"requeued job {job_id} left running by a dead worker")
            self._last_scan = now
        if now - self._last_sync >= SLURM_SYNC_EVERY_S:
            self._sync_slurm()
            self._last_sync = now
        self._reap()
        self._enforce_cancels()
        while len(self.slots) < self.concurrency and not self._stop:
            job = self.store.claim(self.pid, log_dir)
            if job is None:
                break
            self._start(job)
        if self.slots:
            return time.monotonic()
        if self.idle_exit_s is not None and time.monotonic() - idle_since >= self.idle_exit_s:
            self._say(f"idle for {self.idle_exit_s:.0f}s, exiting")
            return None
        return idle_since

    def _sync_slurm(self) -> None:
        """Slurm jobs' outcomes and cancellations (core.jobs.slurm.sync), when any is running there;
        a Slurm problem is logged, never fatal to the local queue."""
        if not self.store.list(status="running", backend="slurm", limit=1):
            return
        from core.jobs import slurm
        try:
            for job_id in slurm.sync(self.store):
                self._say(f"Slurm job {job_id} finished")
        except JobStoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - submitit missing, sacct failing, ...
            self._say(f"could not sync Slurm jobs: {exc}")

    def _shutdown(self) -> None:
        for slot in self.slots.values():
            slot.stopping_for_shutdown = True
            self._signal(slot, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace_s
        while self.slots and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for slot in list(self.slots.values()):
            self._signal(slot, signal.SIGKILL)
            slot.process.wait()
        self._reap()
        try:
            self.store.worker_gone(self.pid)
        except JobStoreError as exc:
            self._say(f"could not unregister: {exc}")
        try:
            if pid_file().read_text().strip() == str(self.pid):
                pid_file().unlink()
        except OSError:
            pass
        self._say(f"worker {self.pid} stopped")

    # -- children ---------------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        log = open(job.log_path, "a", buffering=1)
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {job.attempts} "
                  f"on worker {self.pid} =====\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        threads = str(max(1, (os.cpu_count() or 1) // self.concurrency))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
        process = subprocess.Popen(
            [sys.executable, "-m", "core.jobs.runner", str(job.id), str(job.attempts)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=paths.ROOT, env=env)
        log.close()  # the child holds its own descriptor
        self.slots[job.id] = _Slot(job, process)
        self._say(f"job {job.id} ({job.kind}) attempt {job.attempts} started as pid {process.pid}")

    def _signal(self, slot: _Slot, sig: signal.Signals) -> None:
        if slot.process.poll() is None:
            slot.process.send_signal(sig)
            slot.signals_sent.append(sig.name)

    def _enforce_cancels(self) -> None:
        now = time.monotonic()
        for job_id, slot in self.slots.items():
            if slot.cancel_seen is None:
                if self.store.cancel_requested(job_id):
                    slot.cancel_seen = now
                continue
            waited = now - slot.cancel_seen
            if waited >= self.cancel_grace_s + self.kill_grace_s:
                self._signal(slot, signal.SIGKILL)
            elif waited >= self.cancel_grace_s and "SIGTERM" not in slot.signals_sent:
                self._signal(slot, signal.SIGTERM)

    def _reap(self) -> None:
        for job_id, slot in list(self.slots.items()):
            code = slot.process.poll()
            if code is None:
                continue
            del self.slots[job_id]
            job = self.store.get(job_id)
            if job.status == "running" and job.attempts == slot.job.attempts:
                # The child died without recording an outcome.
                if slot.stopping_for_shutdown:
                    self.store.requeue(job_id, "requeued: worker stopped")
                elif code == EXIT_STOPPED and not job.cancel_requested:
                    # its process alone was stopped (`kill PID`): it saved where it stood, as on a shutdown
                    self.store.requeue(job_id, "requeued: its process was stopped by a signal")
                elif job.cancel_requested:
                    self.store.finish(job_id, "cancelled", error=f"cancelled (stopped with "
                                      f"{', '.join(slot.signals_sent) or 'exit'})", attempt=job.attempts)
                else:
                    tail = read_log_tail(job.log_path, lines=30)
                    self.store.finish(job_id, "failed", attempt=job.attempts,
                                      error=f"job process exited with code {code} without a result"
                                            f"\n\n{tail}")
                job = self.store.get(job_id)
                if job.status in ("cancelled", "failed"):   # killed before it could clean up itself
                    release_partial_run(job, f"its job was {job.status} as it stopped")
                    self._discard(job)
            self._say(f"job {job_id} {job.status} (exit code {code})")

    def _discard(self, job: Job) -> None:
        from core.jobs import kinds
        try:
            kinds.discard_output(kinds.get(job.kind), job.run_dir)
        except kinds.JobSpecError:          # a kind no longer registered: nothing to ask
            pass

    # -- bookkeeping ------------------------------------------------------------------------------

    def _write_pid_file(self) -> None:
        files.write_atomic(pid_file(), f"{self.pid}\n", fsync=False)

    def _say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_worker(concurrency: int | None = None, store: JobStore | None = None) -> int:
    """Pid of a live worker on this host, starting one in the background if none is alive (its own
    output goes to jobs_dir()/worker.log). Safe to call from several app sessions at once."""
    store = store or JobStore()
    jobs_dir = ensure_dir(paths.jobs_dir())
    with open(jobs_dir / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # serializes check-and-start across processes
        live = store.live_workers()
        if live:
            return int(live[0]["pid"])
        try:
            recorded = int(pid_file().read_text().strip())
        except (OSError, ValueError):
            recorded = None
        if recorded and pid_alive(recorded):
            return recorded  # started moments ago, not yet heartbeating
        cmd = [sys.executable, "-m", "core.jobs.worker"]
        if concurrency:
            cmd += ["--concurrency", str(concurrency)]
        with open(jobs_dir / "worker.log", "a") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=paths.ROOT, start_new_session=True)
        pid_file().write_text(f"{process.pid}\n")
        return process.pid


def _is_worker(pid: int) -> bool | None:
    """The process is alive and is a TaxoLens worker (its command line names core.jobs.worker);
    None where that cannot be read (no /proc: not Linux)."""
    if not pid_alive(pid):
        return False
    if not Path("/proc/self/cmdline").exists():
        return None
    try:
        return b"core.jobs.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_workers(store: JobStore | None = None, wait_s: float = 60.0) -> list[int]:
    """SIGTERM every live worker on this host (their running jobs are stopped and requeued, so a
    worker started later resumes them) and wait up to `wait_s` for them to exit; returns their pids.
    Raises JobStoreError naming those still alive after the wait."""
    store = store or JobStore()
    pids = sorted({int(w["pid"]) for w in store.live_workers()})
    try:
        recorded = int(pid_file().read_text().strip())
        if recorded not in pids and _is_worker(recorded):      # unverifiable (None) is not enough here
            pids.append(recorded)           # started moments ago, not yet heartbeating
    except (OSError, ValueError):
        pass
    # a heartbeating pid reused since by another process is left alone (ours where /proc is not there)
    pids = [p for p in pids if _is_worker(p) is not False]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            raise JobStoreError(f"worker {pid} belongs to another user; it cannot be stopped from here") from exc
    deadline = time.monotonic() + wait_s
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in pids if pid_alive(p)]
    if alive:
        raise JobStoreError(f"worker(s) {', '.join(map(str, alive))} still running {wait_s:.0f} s after SIGTERM; "
                            f"`kill -9 {' '.join(map(str, alive))}` stops them at once (their jobs are requeued "
                            f"when a worker next starts)")
    return pids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.jobs.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=number_arg(int, 1, 256), default=None,
                        help=f"jobs run at once (default {default_concurrency()} on this machine)")
    parser.add_argument("--idle-exit", type=number_arg(float, 0, 1e9), default=None, metavar="SECONDS",
                        help="exit after this long with nothing to do (default: run until stopped)")
    parser.add_argument("--cancel-grace", type=number_arg(float, 0, 1e6), default=5.0, metavar="SECONDS",
                        help="how long a cancelled job may take to stop by itself before SIGTERM")
    args = parser.parse_args(argv)
    try:
        Worker(concurrency=args.concurrency, idle_exit_s=args.idle_exit, cancel_grace_s=args.cancel_grace).run()
    except (JobStoreError, paths.DataDirError) as exc:       # DataDirError: TAXOLENS_DATA not a folder
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
