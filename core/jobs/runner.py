"""One job attempt, run in its own process: `python -m core.jobs.runner <job_id> <attempt>`.

The worker starts this as a child with stdout/stderr going to the job's log, so killing it is
clean and a crash cannot take the worker down. It fixes the job's output directory on the first
attempt (a retry reuses it, which is how training resumes from its last checkpoint), reports
progress to the store, polls the store for cancellation, and records the outcome: succeeded with
the result, cancelled, or failed with the traceback. Only the attempt it was started for may write
the outcome, so an orphan of a dead worker cannot overwrite a retry.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

from core.base import die_with_parent
from core.jobs import kinds
from core.jobs.store import TRACEBACK_MARK, JobStore, JobStoreError

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
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
    last = {"progress": 0.0, "cancel_poll": 0.0, "cancelled": False}

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

    def should_stop() -> bool:
        now = time.monotonic()
        if not last["cancelled"] and now - last["cancel_poll"] >= CANCEL_POLL_EVERY_S:
            last["cancel_poll"] = now
            try:
                last["cancelled"] = store.cancel_requested(job_id)
            except JobStoreError as exc:
                print(f"(cancel poll failed: {exc})", flush=True)
            last["cancelled"] = last["cancelled"] or os.getppid() != parent
        return last["cancelled"]

    def progress_and_cancel(fraction: float, message: str = "") -> None:
        progress(fraction, message)
        # steps without a should_stop of their own stop at their next report; a report that the
        # work is done (1.0) does not: a cancel that came too late leaves the job succeeded, as its
        # results are all written
        if fraction < 1.0 - 1e-9 and should_stop():
            raise kinds.JobCancelled(f"job {job_id} cancelled")

    kind = kinds.get(job.kind)
    print(f"== job {job_id} ({job.kind}) attempt {attempt}, pid {os.getpid()}", flush=True)
    output_dir = None
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
    store.finish(job_id, "succeeded", result=result, attempt=attempt)
    print(f"== job {job_id} succeeded", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m core.jobs.runner <job_id> <attempt>", file=sys.stderr)
        return 2
    die_with_parent(signal.SIGKILL)   # no orphan runs a job that is about to be requeued
    return run(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
