"""Slurm path through submitit's local executor: the same RemoteJob callable, pickled and run in a
separate process, its outcome pulled back by sync() into the job store and run registry; the sbatch
options a real cluster would get; cancellation."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from core import paths
from core.config import ConfigError
from core.jobs import JobStore, cancel, slurm
from core.jobs.store import pid_alive

LOCAL = dict(cluster="local", gpus_per_node=0, cpus_per_task=1, mem_gb=1, timeout_min=5)


@pytest.fixture()
def env(env, monkeypatch):
    """The shared job-test env (tests/integration/conftest.py), run from the repo root as submitit's
    local executor expects."""
    monkeypatch.chdir(paths.ROOT)
    return env


def sync_until_done(store: JobStore, job_ids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slurm.sync(store)
        if all(store.get(i).done for i in job_ids):
            return
        time.sleep(0.3)
    raise AssertionError(f"jobs {job_ids} not finished after {timeout}s")


def test_local_executor_round_trip_success_and_failure(env):
    store = JobStore()
    cfg = slurm.SlurmConfig(**LOCAL)
    ok = slurm.submit("test-echo", {"marker": str(env / "m"), "steps": 3}, cfg, store=store)
    bad = slurm.submit("test-echo", {"marker": str(env / "m"), "fail": True}, cfg, store=store)
    assert store.get(ok).backend == "slurm" and store.get(ok).status == "running"
    assert store.claim(worker_pid=os.getpid()) is None  # a local worker never takes a Slurm job
    sync_until_done(store, [ok, bad])
    done, failed = store.get(ok), store.get(bad)
    assert done.status == "succeeded" and done.result == {"echo": ok}
    assert failed.status == "failed" and "test-echo was asked to fail" in failed.error
    log = slurm.log_path(done).read_text()
    assert "100.0% step 3/3" in log  # progress lines reach submitit's log
    pids = {int(line.split()[0]): int(line.split()[1]) for line in (env / "m").read_text().splitlines()}
    assert set(pids) == {ok, bad} and os.getpid() not in pids.values()  # ran in other processes


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_cancel_reaches_the_running_process(env, sigint):
    """Cancelling stops the job at its next step. With SIGINT ignored, as a background job of a
    non-interactive shell inherits it (how `make test` once failed here: "jobs [1] not finished
    after 60s"), submitit's controller never sees the SIGINT, so the job must stop on its own.
    The job would take 200 s to finish by itself; the deadlines are events on a loaded machine."""
    store = JobStore()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN if sigint == "ignored" else signal.SIG_DFL)
    try:   # the controller process started by submit inherits this disposition
        job_id = slurm.submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.5, "steps": 400},
                              slurm.SlurmConfig(**LOCAL), store=store)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not (env / "m").exists() and time.monotonic() < deadline:   # the job has started
            time.sleep(0.2)
        assert (env / "m").exists(), "the job never started"
        assert cancel(job_id, store=store) == "running"
        sync_until_done(store, [job_id], timeout=120)
        assert store.get(job_id).status == "cancelled"
        controller = int(json.loads(store.get(job_id).external_id)["job_id"])
        deadline = time.monotonic() + 120
        while pid_alive(controller) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(controller)  # the local "cluster job" really ended
    finally:
        slurm.cancel_external(store.get(job_id))  # never leave a job running if an assert failed


def test_sbatch_script_carries_partition_account_gpus_and_time(env, tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    cfg = slurm.SlurmConfig(partition="gpu", account="lab", gpus_per_node=2, timeout_min=90,
                            additional={"constraint": "a100"})
    script = slurm.make_executor(cfg)._executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu", "--account=lab", "--gpus-per-node=2", "--time=90", "--constraint=a100"):
        assert f"#SBATCH {line}" in script


def test_config_errors_are_clear(env, monkeypatch):
    with pytest.raises(ConfigError, match="unknown Slurm option"):
        slurm.SlurmConfig.from_dict({"gpus": 1})
    with pytest.raises(ConfigError, match="timeout_min must be"):
        slurm.SlurmConfig(timeout_min=0).validate()
    monkeypatch.setenv("PATH", str(env))  # no srun anywhere
    with pytest.raises(slurm.SlurmUnavailable, match="no `srun`"):
        slurm.make_executor(slurm.SlurmConfig())


@pytest.mark.integration
def test_real_majority_baseline_round_trip(tmp_path, monkeypatch, capsys):
    """A real job kind (majority baseline on a small subset: no model needed) through submitit."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("datasets", "nltk_data"):
        source = paths.ROOT / "data" / name
        if not source.is_dir():
            pytest.skip(f"needs {source} (run `make dataset`)")
        (data / name).symlink_to(source)
    monkeypatch.setenv("TAXOLENS_DATA", str(data))
    monkeypatch.chdir(paths.ROOT)
    from core import cli
    # through the command line, as a user submits it (`jobs submit baseline majority --slurm ...`)
    assert cli.main(["jobs", "submit", "baseline", "majority", "--max-concepts", "8", "--condition", "random:0.5",
                     "--seed", "1", "--slurm", "--cluster", "local", "--gpus", "0", "--cpus", "1", "--mem-gb", "1",
                     "--time", "5"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("(submitit, on this machine)"), line          # not "(Slurm)": nothing went to Slurm
    store = JobStore()
    job_id = int(line.split()[1])
    out_dir = Path(store.get(job_id).run_dir)
    assert out_dir.parent == paths.runs_dir() / "baselines"   # fixed at submit, before the node runs
    sync_until_done(store, [job_id], timeout=120)
    job = store.get(job_id)
    assert job.status == "succeeded", job.error
    on_disk = json.loads((out_dir / "eval" / "test" / "metrics.json").read_text())
    assert job.result["metrics"]["test"]["n_questions"] == on_disk["n_questions"] > 0
    assert job.result["run_dir"] == str(out_dir)
    assert json.loads((out_dir / "config.json").read_text())["baseline"] == "majority"
    assert job.result["metrics"]["test"]["accuracy"] == on_disk["accuracy"]
    # `jobs show` names the log `jobs logs` reads (it said "log -") and leaves attempts to the scheduler
    capsys.readouterr()
    assert cli.main(["jobs", "show", str(job_id)]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = lines[1:next(i for i, line in enumerate(lines) if line.startswith("  spec"))]
    shown = dict(line.strip().split(None, 1) for line in fields)
    assert shown["attempts"] == "- (Slurm's own)" and shown["log"] == str(slurm.log_path(job))
