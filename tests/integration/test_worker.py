"""The worker as separate processes: exactly-once execution under two workers, cancel (cooperative
and forced), failures, SIGTERM requeue, kill -9 recovery, ensure_worker, and a real training job
killed mid-run that resumes from its epoch checkpoint.

Quick cases use the TEST-ONLY `test-echo` kind (tests/integration/jobkinds_testonly.py), which
appends one line per execution to a marker file so executions can be counted.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core import paths, runs
from core.jobs import JobStore, cancel, submit
from core.jobs.store import pid_alive





def start_worker(*args: str) -> subprocess.Popen:
    log = open(paths.data_dir() / f"worker-{time.monotonic_ns()}.out", "w")
    return subprocess.Popen([sys.executable, "-m", "core.jobs.worker", *args], stdout=log,
                            stderr=subprocess.STDOUT, cwd=paths.ROOT)


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def executions(marker: Path) -> Counter:
    return Counter(int(line.split()[0]) for line in marker.read_text().splitlines()) if marker.exists() else Counter()


def _submit_five(data_dir: str, marker: str, out) -> None:
    os.environ["TAXOLENS_DATA"] = data_dir
    out.put([submit("test-echo", {"marker": marker}) for _ in range(5)])


def test_twenty_submissions_from_four_processes_run_exactly_once_with_two_workers(env):
    marker = env / "marker"
    JobStore()  # create the schema before the racing processes
    workers = [start_worker("--concurrency", "1", "--idle-exit", "4") for _ in range(2)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    submitters = [ctx.Process(target=_submit_five, args=(str(paths.data_dir()), str(marker), out))
                  for _ in range(4)]
    for p in submitters:
        p.start()
    ids = [i for _ in submitters for i in out.get(timeout=60)]
    for p in submitters:
        p.join(timeout=30)
    for w in workers:
        w.wait(timeout=120)
    store = JobStore()
    assert len(set(ids)) == 20
    assert executions(marker) == Counter({i: 1 for i in ids})
    jobs = [store.get(i) for i in ids]
    assert {j.status for j in jobs} == {"succeeded"} and {j.attempts for j in jobs} == {1}
    assert len({j.worker_pid for j in jobs}) == 2  # both workers took part


def test_failure_is_recorded_and_the_worker_goes_on(env):
    bad = submit("test-echo", {"marker": str(env / "m"), "fail": True})
    good = submit("test-echo", {"marker": str(env / "m")})
    worker = start_worker("--idle-exit", "2")
    worker.wait(timeout=60)
    store = JobStore()
    failed = store.get(bad)
    assert failed.status == "failed" and "test-echo was asked to fail" in failed.error
    assert "Traceback" in failed.error and "Traceback" in Path(failed.log_path).read_text()
    assert store.get(good).status == "succeeded"


def test_cancel_a_running_job_cooperatively_and_a_stubborn_one_by_signal(env):
    store = JobStore()
    polite = submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.5, "steps": 200})
    stubborn = submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.5, "steps": 200,
                                    "ignore_sigterm": True})
    queued = submit("test-echo", {"marker": str(env / "m")})
    worker = start_worker("--concurrency", "2", "--cancel-grace", "1")
    try:
        wait_for(lambda: store.get(polite).progress > 0, what="progress of the first job")
        wait_for(lambda: store.get(stubborn).status == "running", what="second job to start")
        assert "step" in store.get(polite).message
        assert cancel(polite) == "running"
        assert cancel(stubborn) == "running"
        assert cancel(queued) in ("cancelled", "running", "succeeded")
        wait_for(lambda: store.get(polite).done, timeout=30, what="cooperative cancel")
        wait_for(lambda: store.get(stubborn).done, timeout=30, what="SIGTERM/SIGKILL fallback")
    finally:
        stop(worker)
    assert store.get(polite).status == "cancelled"
    forced = store.get(stubborn)
    assert forced.status == "cancelled" and "SIGKILL" in forced.error  # it ignored cancel and SIGTERM
    assert executions(env / "m")[polite] == 1


def test_sigterm_requeues_and_kill9_recovery_reruns(env):
    store = JobStore()
    job_id = submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.5, "steps": 200})
    worker = start_worker()
    wait_for(lambda: store.get(job_id).progress > 0, what="job to run")
    stop(worker)  # graceful stop: the interrupted job goes back to the queue, not to failed
    assert store.get(job_id).status == "queued"

    worker = start_worker()
    wait_for(lambda: len(executions_pids(env / "m")) == 2, what="second attempt to start")
    assert store.get(job_id).attempts == 2
    child_pid = int(executions_pids(env / "m")[-1])
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    wait_for(lambda: not pid_alive(child_pid), timeout=10, what="the job process to die with its worker")
    assert store.get(job_id).status == "running"  # nobody was left to record anything

    worker = start_worker()
    try:
        wait_for(lambda: store.get(job_id).attempts == 3, what="orphan requeued and claimed")
        cancel(job_id)
        wait_for(lambda: store.get(job_id).done, what="cancel")
    finally:
        stop(worker)
    assert executions(env / "m")[job_id] == 3
    assert "attempt 3" in Path(store.get(job_id).log_path).read_text()


def executions_pids(marker: Path) -> list[str]:
    return [line.split()[1] for line in marker.read_text().splitlines()]


def test_ensure_worker_starts_one_and_reuses_it(env):
    from core.jobs import ensure_worker
    store = JobStore()
    pid = ensure_worker()
    try:
        assert ensure_worker() == pid
        wait_for(lambda: store.live_workers(), what="worker heartbeat")
        assert ensure_worker() == pid
        assert (paths.jobs_dir() / "worker.pid").read_text().strip() == str(pid)
        job_id = submit("test-echo", {"marker": str(env / "m")})
        wait_for(lambda: store.get(job_id).status == "succeeded", what="the job to run")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), timeout=30, what="worker exit")


@pytest.fixture()
def real_data_env(tmp_path, monkeypatch):
    """An isolated job store and runs dir that still sees the real dataset, models and feature cache."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("datasets", "models", "nltk_data", "features"):
        source = paths.ROOT / "data" / name
        if name != "features" and not source.is_dir():
            pytest.skip(f"needs {source} (run `make dataset`)")
        source.mkdir(exist_ok=True)
        (data / name).symlink_to(source)
    monkeypatch.setenv("TAXOLENS_DATA", str(data))
    return data


def _checkpoint(run_dir: str) -> dict:
    path = Path(run_dir) / "checkpoint" / "checkpoint.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.mark.integration
def test_kill_9_during_real_training_resumes_from_the_epoch_checkpoint(real_data_env):
    config = dict(max_concepts=4, images_per_concept=3, epochs=2, batch_size=4, lr=3e-3, seed=0, device="cpu")
    store = JobStore()
    job_id = submit("train", {"config": config})
    worker = start_worker()
    try:
        wait_for(lambda: store.get(job_id).run_dir, what="the run directory to be fixed")
        run_dir = store.get(job_id).run_dir
        # Kill inside epoch 2, after epoch 1's checkpoint was written.
        wait_for(lambda: _checkpoint(run_dir).get("epoch", 0) >= 1 and "epoch 2/2 step" in store.get(job_id).message,
                 timeout=900, what="training to reach epoch 2")  # generous: a busy CI box is slow
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    at_kill = _checkpoint(run_dir)
    assert at_kill["status"] == "partial" and at_kill["epoch"] >= 1
    assert store.get(job_id).status == "running"           # orphaned, nothing recorded

    worker = start_worker("--idle-exit", "2")
    worker.wait(timeout=900)
    job = store.get(job_id)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.run_dir == run_dir     # same run directory on the retry
    final = _checkpoint(run_dir)
    assert final["status"] == "finished" and [m["epoch"] for m in final["metrics"]] == [1, 2]
    resumed_at = final["resumed"][-1]["epoch"]
    assert resumed_at == at_kill["epoch"]                   # completed epochs were kept...
    epochs_redone = (at_kill["epoch"] + 1) - resumed_at     # ...only the interrupted one ran again
    assert epochs_redone <= 1
    print(f"killed in epoch {at_kill['epoch'] + 1} (step {at_kill['step']} saved), resumed at epoch "
          f"{resumed_at + 1}; epochs redone: {epochs_redone}")
    assert job.result["metrics"]["test"]["n_questions"] > 0
    assert runs.load_run(run_dir).finished


@pytest.mark.integration
def test_sweep_job_expands_into_its_children_once(real_data_env):
    from core.jobs import runner, sweeps
    store = JobStore()
    sweep_id = submit("sweep", {"preset": "paper", "scale": "smoke"}, store=store)
    expected = sweeps.expand(sweeps.preset("paper", "smoke"))
    assert len(store.get(sweep_id).spec["jobs"]) == len(expected) == 54         # 3 of them the image-probe baseline
    job = store.claim(worker_pid=os.getpid())
    assert job.id == sweep_id
    assert runner.run(sweep_id, job.attempts, store=store) == runner.EXIT_OK
    children = sorted(store.list(parent_id=sweep_id), key=lambda j: j.id)
    assert store.get(sweep_id).result == {"children": [c.id for c in children]}
    assert [(c.kind, c.spec) for c in children] == [(j["kind"], j["spec"]) for j in store.get(sweep_id).spec["jobs"]]
    assert Counter(c.kind for c in children) == {"train": 48, "baseline": 6}
    assert {c.status for c in children} == {"queued"}
    # A retried expansion (worker died after inserting) adds no duplicates.
    assert store.submit_many([("train", {})], parent_id=sweep_id) == [c.id for c in children]
    from core import results
    rows = sweeps.sweep_results(store, sweep_id)
    assert len(rows) == 54 and results.aggregate(rows).empty   # nothing finished yet


def test_a_job_process_stopped_by_sigterm_alone_is_requeued_and_run_again(env):
    """`kill PID` of one job's process, its worker going on: the job stops at its next step, saves,
    records nothing (exit 143), and the worker requeues it rather than marking it failed."""
    store = JobStore()
    job_id = submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.3, "steps": 10})
    worker = start_worker()
    try:
        wait_for(lambda: store.get(job_id).progress > 0, what="the job to report progress")
        os.kill(int(executions_pids(env / "m")[-1]), signal.SIGTERM)
        wait_for(lambda: store.get(job_id).status == "succeeded", timeout=60, what="the requeued job to finish")
    finally:
        stop(worker)
    job = store.get(job_id)
    assert job.attempts == 2 and executions(env / "m")[job_id] == 2
    log = Path(job.log_path).read_text()
    assert "stopped by SIGTERM" in log and job.error is None        # requeued, not failed, then done


def test_jobs_worker_status_and_stop_a_background_worker_whose_job_is_requeued(env, capsys):
    """Reported: nothing stopped a worker that `--start-worker` (or `make app`) had started, and
    `jobs worker --stop` was an unknown argument."""
    from core.cli import main
    long = submit("test-echo", {"marker": str(env / "m"), "sleep_s": 0.5, "steps": 200})
    worker = start_worker()
    store = JobStore()
    wait_for(lambda: store.get(long).status == "running", what="the job to start")
    assert main(["jobs", "worker", "--status"]) == 0
    out = capsys.readouterr().out
    assert f"worker pid {worker.pid}" in out and f"running job(s) {long}" in out
    assert main(["jobs", "worker", "--stop"]) == 0
    assert f"stopped worker(s) {worker.pid}" in capsys.readouterr().out
    assert worker.wait(timeout=5) == 0 and not pid_alive(worker.pid)
    assert store.get(long).status == "queued"                 # requeued, not failed: it resumes later
    assert main(["jobs", "worker", "--status"]) == 0
    assert "no worker is running" in capsys.readouterr().out
    assert main(["jobs", "worker", "--stop"]) == 0
    assert "no worker was running" in capsys.readouterr().out
    assert main(["jobs", "worker", "--stop", "--concurrency", "2"]) == 2


def test_stop_leaves_alone_a_process_that_took_a_dead_workers_recorded_pid(env):
    """Review: the pid file outlives a crashed worker; its pid may be another process's now."""
    from core.jobs.worker import pid_file, stop_workers
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file().parent.mkdir(parents=True, exist_ok=True)
        pid_file().write_text(f"{other.pid}\n")
        assert stop_workers(JobStore(), wait_s=1) == [] and other.poll() is None      # still running
    finally:
        other.kill()
        other.wait()
