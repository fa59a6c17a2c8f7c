"""ui.firstrun: the default training job is queued exactly once, and only when it is needed."""
from __future__ import annotations

import pytest

from core import jobs, runs
from ui import firstrun
from core.config import TrainConfig
from core.jobs.store import JobStore


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    # Submitting a real train job validates it against the dataset and model registry; here only
    # the queueing logic is under test, so skip validation but keep the real store.
    submitted = []

    def submit(kind, spec, store=None, parent_id=None):
        submitted.append((kind, spec))
        return (store or JobStore()).submit(kind, spec, parent_id=parent_id)

    monkeypatch.setattr(jobs, "submit", submit)
    monkeypatch.setattr(runs, "default_checkpoint", lambda config=None: None)
    s = JobStore()
    s.submitted = submitted
    yield s
    s.close()


def test_fresh_data_dir_queues_the_default_job_once(store):
    state = firstrun.ensure_default_checkpoint_job(store)
    assert not state.ready and state.job is not None and state.job.status == "queued"
    assert store.submitted == [("train", {"config": runs.first_run_config().to_dict()})]
    assert "queued" in state.describe()
    again = firstrun.ensure_default_checkpoint_job(store)
    assert again.job.id == state.job.id
    assert len(store.submitted) == 1 and len(store.list()) == 1


def test_a_failed_first_run_is_reported_not_retried(store):
    job_id = firstrun.ensure_default_checkpoint_job(store).job.id
    store.claim(worker_pid=1)
    store.finish(job_id, "failed", error="out of memory")
    state = firstrun.ensure_default_checkpoint_job(store)
    assert state.job.id == job_id and state.job.status == "failed"
    assert "failed: out of memory" in state.describe()
    assert len(store.list()) == 1
    retry = firstrun.submit_default_job(store)          # the app's "Train again" button
    assert firstrun.state(store).job.id == retry != job_id


def test_existing_default_checkpoint_means_no_training_only_the_prepare_job(store, monkeypatch, tmp_path):
    monkeypatch.setattr(runs, "default_checkpoint", lambda config=None: tmp_path / "runs" / "r1")
    state = firstrun.ensure_default_checkpoint_job(store)
    assert state.ready and state.describe() == "default checkpoint ready: r1"
    assert store.submitted == [("coherence", {"dataset": "concepts", "encoder": TrainConfig().encoder, "seed": 0})]
    firstrun.ensure_default_checkpoint_job(store)
    assert len(store.list()) == 1                       # queued once


def test_a_shipped_checkpoint_that_fits_is_installed_instead_of_training(store, monkeypatch, tmp_path):
    from core.models import checkpoint
    installed = tmp_path / "runs" / "shipped"
    monkeypatch.setattr(checkpoint, "install_shipped", lambda source=None: installed)
    state = firstrun.ensure_default_checkpoint_job(store)
    assert [kind for kind, _ in store.submitted] == ["coherence"]
    assert state.job.kind == "coherence"


def test_a_shipped_checkpoint_that_does_not_fit_says_why(store, monkeypatch):
    from core.models import checkpoint
    monkeypatch.setattr(checkpoint, "shipped_fit", lambda source=None: (False, "its dataset tables differ"))
    state = firstrun.ensure_default_checkpoint_job(store)
    assert [kind for kind, _ in store.submitted] == ["train"]
    assert state.shipped_note == "its dataset tables differ"


def test_a_default_job_queued_by_hand_is_adopted(store):
    manual = store.submit("train", {"config": TrainConfig(seed=3).to_dict()})
    store.submit("train", {"config": TrainConfig(epochs=1).to_dict()})   # not the default config
    state = firstrun.ensure_default_checkpoint_job(store)
    assert state.job.id == manual
    assert store.submitted == []


def test_marker_of_a_deleted_job_store_does_not_block_a_new_first_run(store, tmp_path):
    firstrun.ensure_default_checkpoint_job(store)
    store.close()
    (tmp_path / "taxolens.db").unlink()
    fresh = JobStore()
    fresh.submitted = store.submitted
    state = firstrun.ensure_default_checkpoint_job(fresh)
    assert state.job is not None and state.job.status == "queued"
    assert len(store.submitted) == 2
    fresh.close()


def test_first_run_trains_a_starter_checkpoint_on_cpu(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = runs.first_run_config()
    assert (cfg.max_concepts, cfg.max_steps) == (60, 500)
    assert cfg.encoder == TrainConfig().encoder and cfg.lm == TrainConfig().lm
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runs.first_run_config() == TrainConfig()


def test_starter_checkpoint_counts_as_ready(store, monkeypatch, tmp_path):
    starter = tmp_path / "runs" / "starter"
    monkeypatch.setattr(runs, "default_checkpoint",
                        lambda config=None: starter if config == runs.first_run_config() else None)
    assert firstrun.state(store).checkpoint == starter
