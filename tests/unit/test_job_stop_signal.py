"""A job attempt stopped by SIGTERM or SIGINT (core.jobs.runner): a stopping worker sends the first,
Ctrl-C in the terminal of `make app` the second. The job stops at its next step as a cancel would,
keeps what it saved, records no outcome (so the worker requeues it), and a training job's next
attempt resumes from the step it had reached, not from its last epoch. The fake VLM and the tiny
dataset; the signal is sent to this process, as the worker sends it to the runner's."""
import os
import signal

import pytest

import fake_vlm
from core import runs, train
from core.jobs import kinds, runner
from test_jobs_store import store  # noqa: F401 - the fixture: a job store in a fresh data folder


def _training_job(store, monkeypatch, at_third_step) -> int:
    """A claimed train job on the tiny dataset with the fake VLM; at_third_step(job_id) runs right
    after the third update (inside epoch 1, before any epoch checkpoint)."""
    fake_vlm.install(monkeypatch)
    config = {"dataset": "tiny", "epochs": 2, "batch_size": 4, "lr": 0.05, "device": "cpu"}
    job_id = store.submit("train", {"config": config, "eval_splits": []})
    store.claim(os.getpid())
    step, taken = train._Run.step, []

    def step_then(self, loss):
        step(self, loss)
        taken.append(1)
        if len(taken) == 3:
            at_third_step(job_id)

    monkeypatch.setattr(train._Run, "step", step_then)
    return job_id


def _register(monkeypatch, name, execute, make_output_dir=None):
    monkeypatch.setitem(kinds._KINDS, name, kinds.JobKind(name, lambda s: s, execute, describe=lambda s: "test",
                                                          make_output_dir=make_output_dir))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_job_stops_at_its_next_step_records_nothing_and_keeps_its_output(store, monkeypatch, tmp_path, sig):
    steps = []

    def execute(spec, ctx):
        (ctx.output_dir / "saved").write_text("state")
        for i in range(5):
            ctx.progress(i / 5, f"step {i}")
            steps.append(i)
            if i == 1:
                os.kill(os.getpid(), sig)          # handled between bytecodes: the step itself goes on
        return {"done": True}

    out = tmp_path / "out"
    _register(monkeypatch, "test-stop", execute, make_output_dir=lambda spec: out.mkdir() or out)
    before = {s: signal.getsignal(s) for s in runner.STOP_SIGNALS}
    job_id = store.submit("test-stop", {})
    store.claim(os.getpid())
    assert runner.run(job_id, 1, store) == runner.EXIT_STOPPED
    assert steps == [0, 1]                          # stopped at the report after the signal
    job = store.get(job_id)
    assert job.status == "running" and job.error is None and job.result is None   # the worker decides
    assert (out / "saved").read_text() == "state"
    assert {s: signal.getsignal(s) for s in runner.STOP_SIGNALS} == before
    assert store.requeue(job_id, "requeued: worker stopped")   # what a stopping worker then does


def test_a_cancel_enforced_by_sigterm_saves_the_run_as_cancelled(store, monkeypatch):
    """The worker sends SIGTERM to a cancelled job that has not stopped within its grace: that stop
    is the cancel, so the run is saved as "cancelled" (resumable by anyone), not "partial"."""
    def cancel_then_signal(job_id):
        store.request_cancel(job_id)
        os.kill(os.getpid(), signal.SIGTERM)        # before the runner's next cancel poll is due

    job_id = _training_job(store, monkeypatch, cancel_then_signal)
    assert runner.run(job_id, 1, store) == runner.EXIT_CANCELLED
    assert store.get(job_id).status == "cancelled"
    assert runs.read_json(runs.checkpoint_json(store.get(job_id).run_dir))["status"] == "cancelled"


def test_a_cancelled_job_that_is_also_signalled_is_recorded_as_cancelled(store, monkeypatch, tmp_path):
    def execute(spec, ctx):
        ctx.progress(0.1, "started")
        store.request_cancel(ctx.job_id)            # the worker's SIGTERM comes after its cancel grace
        os.kill(os.getpid(), signal.SIGTERM)
        ctx.progress(0.2, "next")
        return {}

    _register(monkeypatch, "test-cancel-stop", execute)
    job_id = store.submit("test-cancel-stop", {})
    store.claim(os.getpid())
    assert runner.run(job_id, 1, store) == runner.EXIT_CANCELLED
    assert store.get(job_id).status == "cancelled"


def test_a_training_job_stopped_mid_epoch_resumes_from_the_step_it_saved(store, monkeypatch):
    step = train._Run.step
    job_id = _training_job(store, monkeypatch, lambda job_id: os.kill(os.getpid(), signal.SIGTERM))
    assert runner.run(job_id, 1, store) == runner.EXIT_STOPPED
    run_dir = store.get(job_id).run_dir
    ck = runs.read_json(runs.checkpoint_json(run_dir))
    # saved where it stood, as "partial": its own job resumes it, so no other job may claim it
    assert ck["status"] == "partial" and (ck["epoch"], ck["step"]) == (0, 3)
    assert runs.ReusableRuns().take(runs.load_run(run_dir).config) is None

    monkeypatch.setattr(train._Run, "step", step)
    assert store.requeue(job_id, "requeued: worker stopped")
    job = store.claim(os.getpid())
    assert runner.run(job_id, job.attempts, store) == runner.EXIT_OK
    job = store.get(job_id)
    assert job.status == "succeeded" and job.result["resumed"] and job.run_dir == run_dir
    ck = runs.read_json(runs.checkpoint_json(run_dir))
    assert ck["status"] == "finished" and ck["resumed"][0]["epoch"] == 0 and ck["resumed"][0]["step"] == 3


def test_a_stopped_job_cancelled_while_queued_frees_its_partial_run(store, monkeypatch):
    """Its run was saved "partial" for it to resume; cancelled before it ran again, nothing would
    ever resume that run (reuse jobs take only "cancelled" ones). The cancel now marks it so."""
    from core.jobs import cancel
    job_id = _training_job(store, monkeypatch, lambda job_id: os.kill(os.getpid(), signal.SIGTERM))
    assert runner.run(job_id, 1, store) == runner.EXIT_STOPPED
    assert store.requeue(job_id, "requeued: worker stopped")
    run_dir = store.get(job_id).run_dir
    assert cancel(job_id, store=store) == "cancelled"
    assert runs.read_json(runs.checkpoint_json(run_dir))["status"] == "cancelled"
    assert str(runs.ReusableRuns().take(runs.load_run(run_dir).config)) == run_dir


def test_a_cancel_that_races_the_stop_frees_the_partial_run(store, monkeypatch):
    """The job saved its run "partial" and exited "stopped" (143), but its cancel came in before
    the worker reaped it: the worker records it cancelled, so no attempt will resume the run; the
    run is freed as a cancel mid-run leaves it."""
    from types import SimpleNamespace
    from core.jobs import worker as worker_mod
    job_id = _training_job(store, monkeypatch, lambda job_id: os.kill(os.getpid(), signal.SIGTERM))
    assert runner.run(job_id, 1, store) == runner.EXIT_STOPPED
    run_dir = store.get(job_id).run_dir
    assert runs.read_json(runs.checkpoint_json(run_dir))["status"] == "partial"
    store.request_cancel(job_id)
    w = worker_mod.Worker(concurrency=1, store=store)
    w.slots[job_id] = worker_mod._Slot(job=store.get(job_id),
                                       process=SimpleNamespace(poll=lambda: runner.EXIT_STOPPED))
    w._reap()
    assert store.get(job_id).status == "cancelled"
    assert runs.read_json(runs.checkpoint_json(run_dir))["status"] == "cancelled"
    assert str(runs.ReusableRuns().take(runs.load_run(run_dir).config)) == run_dir
