"""The job system: a persistent queue (SQLite) of train / evaluate / baseline / probe / coherence /
clusters / lens / import / sweep jobs (core.jobs.kinds), run by a separate worker process (or on
Slurm via submitit). What jobs produce is read from disk (core.runs).

    from core import jobs
    job_id = jobs.submit("train", {"config": cfg.to_dict()})   # validated; JobSpecError if not runnable
    jobs.ensure_worker()                                        # start a background worker if none
    jobs.JobStore().get(job_id).progress                        # live progress, status, result
    jobs.cancel(job_id)
    jobs.cancel_sweep(sweep_id)                                 # a sweep job and every job it queued
"""
from __future__ import annotations

from core.jobs.kinds import JobCancelled, JobContext, JobSpecError
from core.jobs.store import FINISHED, STATUSES, Job, JobStore, JobStoreError, error_parts, read_log_tail
from core.jobs import sweeps  # noqa: E402,F401  registers the sweep kind (sweeps imports kinds, not the reverse)
from core.jobs import sweep_run  # noqa: E402,F401  registers the sweep-run kind (a whole sweep as one job)


def ensure_worker(concurrency: int | None = None, store: JobStore | None = None) -> int:
    """Pid of a live worker, starting one in the background if none is alive (see core.jobs.worker)."""
    from core.jobs.worker import ensure_worker as ensure  # lazy: `python -m core.jobs.worker` stays clean
    return ensure(concurrency=concurrency, store=store)


def submit(kind: str, spec: dict, store: JobStore | None = None, parent_id: int | None = None) -> int:
    """Validate a job spec (JobSpecError with the reason if it cannot run) and queue it; returns its id."""
    from core.jobs import kinds
    normalized = kinds.validate(kind, spec)
    return (store or JobStore()).submit(kind, normalized, parent_id=parent_id)


def submit_all(kind: str, specs: list[dict], store: JobStore | None = None) -> list[int]:
    """Validate every spec, then queue them all (the Train form's seeds): when one cannot run,
    JobSpecError says why and none is queued. Returns their ids in order."""
    from core.jobs import kinds
    normalized = [kinds.validate(kind, spec) for spec in specs]
    store = store or JobStore()
    return [store.submit(kind, spec) for spec in normalized]


def cancel(job_id: int, store: JobStore | None = None) -> str:
    """Cancel a queued job now or ask a running one to stop (it is marked cancelled within seconds).
    Returns the job's status after the request."""
    store = store or JobStore()
    status = store.request_cancel(job_id)
    job = store.get(job_id)
    if status == "cancelled" and job.attempts:
        # requeued after a stop, its run saved "partial" for it: free that run for another job
        from core.jobs.worker import release_partial_run
        release_partial_run(job, "its job was cancelled while queued")
    if status == "running" and job.backend == "slurm":
        from core.jobs import slurm
        slurm.cancel_external(job)  # the next slurm.sync() marks it cancelled
    return status


def sweep_of(job: Job, store: JobStore | None = None) -> int | None:
    """The id of the sweep a job is, or belongs to (its parent, a sweep job), else None."""
    if job.kind == "sweep":
        return job.id
    if job.parent_id is None:
        return None
    try:
        return job.parent_id if (store or JobStore()).get(job.parent_id).kind == "sweep" else None
    except KeyError:
        return None


def sweep_remaining(sweep_id: int, store: JobStore | None = None) -> list[Job]:
    """A sweep's jobs still to cancel: the sweep job itself until it has queued its jobs, and its
    unfinished jobs whose cancel has not been asked yet."""
    store = store or JobStore()
    jobs = [store.get(sweep_id), *store.list(parent_id=sweep_id)]
    return [j for j in jobs if not j.done and not j.cancel_requested]


def cancel_sweep(sweep_id: int, store: JobStore | None = None) -> tuple[int, int]:
    """Cancel what remains of a sweep: the sweep job first (so it queues nothing more), then the
    queued jobs at once (before a stopping job frees the worker for them), then the running ones
    are asked to stop. Returns (cancelled now, asked to stop). Resubmitting the sweep reuses its
    finished runs and resumes the stopped ones."""
    store = store or JobStore()
    remaining = sweep_remaining(sweep_id, store)
    order = sorted(remaining, key=lambda j: (j.id != sweep_id, j.status == "running", j.id))
    outcomes = [cancel(j.id, store=store) for j in order]
    return outcomes.count("cancelled"), outcomes.count("running")


def describe(job: Job) -> str:
    """One-line human description of a job ("train random:0.5 seed 1")."""
    from core.jobs import kinds
    try:
        return kinds.get(job.kind).describe(job.spec)
    except (JobSpecError, KeyError, TypeError):
        return job.kind


__all__ = ["FINISHED", "STATUSES", "Job", "JobCancelled", "JobContext", "JobSpecError", "JobStore",
           "JobStoreError", "cancel", "describe", "ensure_worker", "read_log_tail", "submit"]
