"""One job attempt, run in its own process: `python -m core.jobs.runner <job_id> <attempt>`.

The worker starts this as a child with stdout/stderr going to the job's log, so killing it is
clean and a crash cannot take the worker down. It fixes the job's output directory on the first
attempt (a retry reuses it, which is how training resumes from its last checkpoint), reports
progress to the store, polls the store for cancellation, and records the outcome: succeeded with
the result, cancelled, or failed with the traceback. Only the attempt it was started for may write
the outcome, so an orphan of a dead worker cannot overwrite a retry.

SIGTERM (a stopping worker: `jobs worker --stop`, or `make app`'s launcher on Ctrl-C, which signals
the worker's whole process group) and SIGINT (Ctrl-C on a foreground `make worker`) stop the job
at its next step, as a cancel does: training saves where it stands (as "partial", core.base.RESUME_LATER),
an import unwinds through its staging folder. The attempt then records nothing and keeps its
output, and exits EXIT_STOPPED; the worker requeues the job and the next attempt resumes there.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from core.base import RESUME_LATER, die_with_parent
from core.jobs import kinds
from core.jobs.store import TRACEBACK_MARK, JobStore, JobStoreError

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
EXIT_STOPPED = 143          # stopped by SIGTERM or SIGINT, nothing recorded (128 + SIGTERM, as a shell reports it)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PROGRESS_EVERY_S = 0.5   # store writes are throttled; the log gets every message
CANCEL_POLL_EVERY_S = 1.0


def run(job_id: int, attempt: int, store: JobStore | None = None) -> int:
    store = store or JobStore()
    job = store.get(job_id)
    if job.status != "running" or job.attempts != attempt:
        print(f"job {job_id} attempt {attempt}: not mine to run (status {job.status}, "
              f"attempt {job.attempts})", flush=True)
        return EXIT_FAILED
    parent = os.getppid()
    last = {"progress": 0.0, "cancel_poll": 0.0, "cancelled": False, "signal": None, "signal_at": -1.0}

    # A store that is briefly locked or unwritable must not kill hours of training: progress and
    # the cancel poll are best effort (the log still gets every line); the outcome is not.
    def progress(fraction: float, message: str = "") -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {100 * fraction:5.1f}% {message}", flush=True)
        now = time.monotonic()
        if now - last["progress"] >= PROGRESS_EVERY_S or fraction >= 1.0:
            last["progress"] = now
            try:
                store.set_progress(job_id, fraction, message)
            except JobStoreError as exc:
                print(f"(progress not recorded: {exc})", flush=True)

    def should_stop() -> bool | str:
        now = time.monotonic()
        # polled at most every CANCEL_POLL_EVERY_S, and once after a signal: a worker enforcing a
        # cancel sends SIGTERM too, and that stop is a cancel
        due = now - last["cancel_poll"] >= CANCEL_POLL_EVERY_S or last["cancel_poll"] < last["signal_at"]
        if not last["cancelled"] and due:
            last["cancel_poll"] = now
            try:
                last["cancelled"] = store.cancel_requested(job_id)
            except JobStoreError as exc:
                print(f"(cancel poll failed: {exc})", flush=True)
            last["cancelled"] = last["cancelled"] or os.getppid() != parent
        if last["cancelled"]:
            return True
        # stopped to be requeued: training saves as "partial", which this job resumes
        return RESUME_LATER if last["signal"] is not None else False

    def progress_and_cancel(fraction: float, message: str = "") -> None:
        progress(fraction, message)
        # steps without a should_stop of their own stop at their next report; a report that the
        # work is done (1.0) does not: a cancel that came too late leaves the job succeeded, as its
        # results are all written
        if fraction < 1.0 - 1e-9 and should_stop():
            raise kinds.JobCancelled(f"job {job_id} cancelled")

    def stop_signalled(signum, frame) -> None:     # noqa: ARG001
        first = last["signal"] is None
        last["signal"] = signal.Signals(signum).name           # first: a print may fail in a handler
        last["signal_at"] = time.monotonic()
        if first:
            try:
                print(f"{last['signal']}: stopping at the next step", flush=True)
            except (OSError, RuntimeError):
                pass

    kind = kinds.get(job.kind)
    print(f"== job {job_id} ({job.kind}) attempt {attempt}, pid {os.getpid()}", flush=True)
    output_dir = None
    previous = {sig: signal.signal(sig, stop_signalled) for sig in STOP_SIGNALS} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        if kind.make_output_dir is not None:
            if job.run_dir is None:
                output_dir = store.set_run_dir(job_id, kind.make_output_dir(job.spec))
            else:        # fixed by an earlier attempt; in a copied data folder, the copy's own
                from core import runs
                here = runs.located_path(job.run_dir)
                output_dir = job.run_dir if here == job.run_dir else \
                    store.move_run_dir(job_id, here or kind.make_output_dir(job.spec))
            print(f"output directory: {output_dir}", flush=True)
        ctx = kinds.JobContext(
            job_id=job_id, progress=progress_and_cancel, should_stop=should_stop,
            output_dir=None if output_dir is None else Path(output_dir),
            submit_children=lambda items: store.submit_many(items, parent_id=job_id))
        result = kind.execute(job.spec, ctx)
    except BaseException as exc:  # noqa: BLE001 — every outcome must be recorded
        if should_stop() == RESUME_LATER:
            # Stopped, not cancelled: what it saved is where the next attempt resumes.
            print(f"stopped by {last['signal']} ({type(exc).__name__}); no outcome recorded: the worker "
                  f"requeues the job, which resumes from what was saved", flush=True)
            return EXIT_STOPPED
        kinds.discard_output(kind, output_dir)
        if kinds.is_cancellation(exc):
            print(f"cancelled: {exc}", flush=True)
            store.finish(job_id, "cancelled", error="cancelled by request", attempt=attempt)
            return EXIT_CANCELLED
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        store.finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}{TRACEBACK_MARK}{text[-4000:]}",
                     attempt=attempt)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return EXIT_FAILED
    else:
        store.finish(job_id, "succeeded", result=result, attempt=attempt)
        print(f"== job {job_id} succeeded", flush=True)
        return EXIT_OK
    finally:        # after the outcome is written: a signal now must not kill a finished job's record
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m core.jobs.runner <job_id> <attempt>", file=sys.stderr)
        return 2
    die_with_parent(signal.SIGKILL)   # no orphan runs a job that is about to be requeued
    return run(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
