"""Running the same job specs on a Slurm cluster through submitit (the local worker stays the default).

    cfg = SlurmConfig(partition="gpu", gpus_per_node=1, timeout_min=240, account="lab")
    job_id = submit("train", spec, cfg)      # validated like a local job; recorded in the job store
    sync()                                   # later: pull finished results into the store

The compute node runs the job kind's own executor (core.jobs.kinds), so a GPU node writes the same
run directory, checkpoints and metrics as the CPU worker. Cancelling writes a marker file next to
the outcome file, which the job polls at each progress report and stops at, like a local job; the
scancel / SIGINT that also goes out cannot be relied on alone (submitit's local controller ignores
SIGINT when it inherited SIGINT ignored, as in a background job of a non-interactive shell, and the
job then ran to its end). Requirements: the repository and the
data directory (TAXOLENS_DATA) on a filesystem the nodes share, and the same Python environment.
The node never opens the SQLite store (SQLite must not be shared over NFS); it writes its outcome to
a JSON file next to submitit's logs and sync() reads it on the submitting machine. The output
directory is fixed at submit time and the job is submitit-checkpointable, so a preempted or
timed-out training job is requeued by Slurm and resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import files, paths
from core.base import ConfigError
from core.jobs import kinds
from core.jobs.store import Job, JobStore, ensure_dir, pid_alive, read_log_tail

CLUSTERS = ("slurm", "local", "debug")
# Slurm states after which a job will not write anything any more.
TERMINAL_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                   "OUT_OF_MEMORY", "TIMEOUT", "PREEMPTED"}


class SlurmUnavailable(ConfigError):
    """Slurm was asked for on a machine without it."""


@dataclass
class SlurmConfig:
    """Where and how big: the usual sbatch options, plus submitit's cluster choice ("local" runs
    the job as a local subprocess through the same code path; tests use it)."""
    partition: str | None = None
    account: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 240
    cluster: str = "slurm"
    folder: str | None = None                       # submitit logs; default jobs_dir()/slurm
    additional: dict[str, Any] = field(default_factory=dict)   # e.g. {"constraint": "a100"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SlurmConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown Slurm option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d).validate()

    def validate(self) -> "SlurmConfig":
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"cluster must be one of {', '.join(CLUSTERS)}, got {self.cluster!r}")
        for name, lo, hi in (("gpus_per_node", 0, 64), ("cpus_per_task", 1, 4096), ("mem_gb", 1, 1 << 20),
                             ("timeout_min", 1, 525600)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if not isinstance(self.additional, dict):
            raise ConfigError("additional Slurm parameters must be a mapping of sbatch option -> value")
        return self

    def log_folder(self) -> Path:
        return Path(self.folder) if self.folder else paths.jobs_dir() / "slurm"


def make_executor(cfg: SlurmConfig):
    """A submitit AutoExecutor for the config (imports submitit only when used)."""
    import submitit

    folder = ensure_dir(cfg.log_folder())
    if cfg.cluster == "slurm" and shutil.which("srun") is None:
        raise SlurmUnavailable("Slurm is not available here (no `srun` on PATH): submit from a cluster "
                               "login node, or use cluster 'local' to run the same path on this machine")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cfg.cluster)
    params: dict[str, Any] = {"timeout_min": cfg.timeout_min, "gpus_per_node": cfg.gpus_per_node,
                              "cpus_per_task": cfg.cpus_per_task, "mem_gb": cfg.mem_gb, "name": "taxolens"}
    if cfg.cluster == "slurm":
        params.update(slurm_partition=cfg.partition, slurm_account=cfg.account,
                      slurm_additional_parameters=dict(cfg.additional) or None)
    executor.update_parameters(**params)
    return executor


CANCEL_POLL_EVERY_S = 1.0   # at most one stat of the shared file system per second and job
RESIGNAL_AFTER_S = 10.0     # sync() repeats a cancel's signal no more often than this


def _cancel_marker(outcome_path: str | Path) -> Path:
    """Where a cancel request for the job with this outcome file is left (job-<id>.outcome.cancel)."""
    return Path(outcome_path).with_suffix(".cancel")


class RemoteJob:
    """The callable submitit pickles and runs on the node: one job kind's executor on one spec.
    It records its outcome in `outcome_path` (JSON) and is checkpointable (requeued on preemption
    or timeout with the same output directory, so training resumes)."""

    def __init__(self, job_id: int, kind: str, spec: dict, output_dir: str | None, data_dir: str,
                 outcome_path: str):
        self.job_id, self.kind, self.spec = job_id, kind, spec
        self.output_dir, self.data_dir, self.outcome_path = output_dir, data_dir, outcome_path

    def __call__(self) -> dict:
        os.environ["TAXOLENS_DATA"] = self.data_dir
        marker = _cancel_marker(self.outcome_path)
        polled = {"at": -CANCEL_POLL_EVERY_S, "stop": False}

        def should_stop() -> bool:
            now = time.monotonic()
            if not polled["stop"] and now - polled["at"] >= CANCEL_POLL_EVERY_S:
                polled["at"], polled["stop"] = now, marker.exists()
            return polled["stop"]

        def progress(fraction: float, message: str = "") -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {100 * fraction:5.1f}% {message}", flush=True)
            if should_stop():   # steps without a should_stop of their own stop at their next report
                raise kinds.JobCancelled(f"job {self.job_id} cancelled")

        ctx = kinds.JobContext(job_id=self.job_id, progress=progress, should_stop=should_stop,
                               output_dir=Path(self.output_dir) if self.output_dir else None)
        kind = kinds.get(self.kind)
        try:
            result = kind.execute(self.spec, ctx)
        except BaseException as exc:
            kinds.discard_output(kind, self.output_dir)
            if isinstance(exc, KeyboardInterrupt) or kinds.is_cancellation(exc):
                # KeyboardInterrupt: how submitit's local executor cancels; JobCancelled: our marker
                _write_json(Path(self.outcome_path), {"status": "cancelled"})
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return {"cancelled": True}
            _write_json(Path(self.outcome_path), {"status": "failed", "error": f"{type(exc).__name__}: {exc}"
                                                  f"\n\n{traceback.format_exc()[-4000:]}"})
            raise
        _write_json(Path(self.outcome_path), {"status": "succeeded", "result": result})
        return result

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def _write_json(path: Path, obj: Any) -> None:
    files.write_atomic(path, json.dumps(obj))


def _outcome_path(cfg: SlurmConfig, job_id: int) -> Path:
    return cfg.log_folder() / f"job-{job_id}.outcome.json"


def _submit_validated(store: JobStore, executor, cfg: SlurmConfig, items: list[tuple[str, dict]],
                      parent_id: int | None) -> list[int]:
    records = []
    for kind, spec in items:
        job_id = store.submit(kind, spec, parent_id=parent_id, backend="slurm", status="running")
        maker = kinds.get(kind).make_output_dir
        output_dir = store.set_run_dir(job_id, maker(spec)) if maker else None
        records.append(RemoteJob(job_id, kind, spec, output_dir, str(paths.data_dir()),
                                 str(_outcome_path(cfg, job_id))))
    with executor.batch():  # one sbatch array for a sweep
        submitted = [executor.submit(r) for r in records]
    for record, sj in zip(records, submitted):
        store.set_external_id(record.job_id, json.dumps({"cluster": cfg.cluster, "job_id": str(sj.job_id),
                                                          "folder": str(sj.paths.folder),
                                                          "outcome": record.outcome_path}))
    return [r.job_id for r in records]


def submit(kind: str, spec: dict, cfg: SlurmConfig, store: JobStore | None = None, executor=None) -> int:
    """Validate a job spec like a local submission and send it to Slurm; returns the store's job id.
    A sweep is expanded here and each child becomes its own Slurm job (one array)."""
    cfg.validate()
    normalized = kinds.validate(kind, spec, here=False)   # before the store or a folder is created
    executor = executor or make_executor(cfg)
    store = store or JobStore()
    if kind != "sweep":
        return _submit_validated(store, executor, cfg, [(kind, normalized)], parent_id=None)[0]
    sweep_id = store.submit("sweep", normalized, backend="slurm", status="running")
    children = _submit_validated(store, executor, cfg, [(j["kind"], j["spec"]) for j in normalized["jobs"]],
                                 parent_id=sweep_id)
    store.finish(sweep_id, "succeeded", result={"children": children})
    return sweep_id


def _ended_without_outcome(ext: dict) -> str | None:
    """If the cluster says the job is over (without our outcome file), its state; else None."""
    if ext["cluster"] == "slurm":
        import submitit
        state = submitit.SlurmJob(folder=ext["folder"], job_id=ext["job_id"]).state
        return state if state.split()[0] in TERMINAL_STATES else None
    return None if pid_alive(int(ext["job_id"])) else "EXITED"  # local/debug: the job id is a pid


def sync(store: JobStore | None = None) -> list[int]:
    """Bring Slurm jobs' outcomes into the store, and
    pass on cancellations (scancel). Returns the ids of jobs that finished since the last sync."""
    store = store or JobStore()
    finished = []
    for job in store.list(status="running", backend="slurm"):
        if not job.external_id:
            continue
        ext = json.loads(job.external_id)
        if job.cancel_requested:
            cancel_external(job)
        outcome_file = Path(ext["outcome"])
        if outcome_file.is_file():
            outcome = json.loads(outcome_file.read_text())
            if outcome["status"] == "succeeded":
                store.finish(job.id, "succeeded", result=outcome["result"])
            elif outcome["status"] == "cancelled" or job.cancel_requested:
                store.finish(job.id, "cancelled", error="cancelled by request")
            else:
                store.finish(job.id, "failed", error=outcome.get("error"))
            finished.append(job.id)
            continue
        state = _ended_without_outcome(ext)
        if state is not None:
            if job.cancel_requested or state.startswith("CANCELLED"):
                store.finish(job.id, "cancelled", error=f"cancelled on the cluster ({state})")
            else:
                err = _job_paths(ext).stderr
                store.finish(job.id, "failed", error=f"cluster job ended as {state} without a result\n\n"
                                                     f"{read_log_tail(err, lines=30)}")
            finished.append(job.id)
    return finished


def cancel_external(job: Job) -> None:
    """Ask a job submitted through submitit to stop: the cancel marker it polls (its own, reliable
    way out), then scancel, or SIGINT to the local controller. sync() calls this on every pass
    while the job runs; the signal is repeated at most every RESIGNAL_AFTER_S, because a second
    SIGINT landing during submitit's own cleanup cuts that cleanup short."""
    if not job.external_id:
        return
    ext = json.loads(job.external_id)
    marker = _cancel_marker(ext["outcome"])
    try:
        if time.time() - marker.stat().st_mtime < RESIGNAL_AFTER_S:
            return
    except FileNotFoundError:
        pass
    _write_json(marker, {"cancel_requested": time.time()})   # (re)written: its mtime spaces signals
    if ext["cluster"] == "slurm":
        import submitit
        submitit.SlurmJob(folder=ext["folder"], job_id=ext["job_id"]).cancel(check=False)
    elif pid_alive(int(ext["job_id"])):
        import signal
        os.kill(int(ext["job_id"]), signal.SIGINT)  # what submitit's LocalJob.cancel sends


def log_path(job: Job) -> Path | None:
    """submitit's stdout log of a Slurm job (where its progress lines go)."""
    if not job.external_id:
        return None
    return _job_paths(json.loads(job.external_id)).stdout


def _job_paths(ext: dict):
    from submitit.core.utils import JobPaths
    return JobPaths(ext["folder"], job_id=ext["job_id"])
