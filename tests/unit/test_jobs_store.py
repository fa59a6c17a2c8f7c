"""Job store: schema/migrations, atomic claims under concurrency, cancel, orphan requeue, run registry,
clear errors for unusable data dirs, and spec validation that needs no dataset."""
from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from core import paths
from core.jobs import kinds
from core.jobs.store import (MAX_ATTEMPTS, SCHEMA_VERSION, JobStore, JobStoreError, pid_alive,
                             read_log_tail)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    s = JobStore()
    yield s
    s.close()


def test_opens_in_wal_mode_with_current_schema_and_survives_reopen(store):
    assert store.path == paths.db_path()
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    job_id = store.submit("train", {"config": {"seed": 3}})
    store.close()
    again = JobStore()
    job = again.get(job_id)
    assert (job.kind, job.spec, job.status, job.attempts) == ("train", {"config": {"seed": 3}}, "queued", 0)
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_refuses_a_database_from_a_newer_version(tmp_path):
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JobStoreError, match="newer than this TaxoLens"):
        JobStore(db)


def test_unwritable_data_dir_names_the_path(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    monkeypatch.setenv("TAXOLENS_DATA", str(blocker))
    from core.paths import DataDirError     # said by the data folder itself, before the store opens
    with pytest.raises(DataDirError, match="not-a-dir is not a folder"):
        JobStore()


def test_full_disk_becomes_job_store_error(store):
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # simulates a full disk: no page can be added
    with pytest.raises(JobStoreError, match="full") as info:
        store.submit("train", {"blob": "x" * 200_000})
    assert str(store.path) in str(info.value)
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.list() == []  # the failed insert left nothing behind


def test_claim_takes_oldest_local_job_once(store):
    first = store.submit("train", {"n": 1})
    second = store.submit("train", {"n": 2})
    store.submit("train", {"n": 3}, backend="slurm", status="running")
    job = store.claim(worker_pid=os.getpid(), log_dir=paths.jobs_dir())
    assert job.id == first and job.status == "running" and job.attempts == 1
    assert job.log_path.endswith(f"job-{first}.log")
    assert store.claim(os.getpid()).id == second
    assert store.claim(os.getpid()) is None  # the slurm job is never claimed by a local worker


def _submit_and_claim(db: str, worker: int, n_submit: int, out) -> None:
    s = JobStore(db)
    for i in range(n_submit):
        s.submit("test", {"worker": worker, "i": i})
    claimed = []
    deadline = time.time() + 20
    while time.time() < deadline:
        job = s.claim(worker_pid=os.getpid())
        if job is None:
            if s.counts()["queued"] == 0 and len(s.list()) == 4 * n_submit:
                break
            time.sleep(0.01)
            continue
        claimed.append(job.id)
    out.put(claimed)


def test_concurrent_submit_and_claim_from_processes_claims_each_job_once(store):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_submit_and_claim, args=(str(store.path), w, 5, out)) for w in range(4)]
    for p in procs:
        p.start()
    claimed = [job_id for _ in procs for job_id in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(claimed) == sorted(j.id for j in store.list())
    assert len(claimed) == len(set(claimed)) == 20


def test_finish_only_by_the_current_attempt(store):
    job_id = store.submit("train", {})
    store.claim(111)
    assert store.requeue(job_id, "worker died")
    job = store.claim(222)
    assert job.attempts == 2
    assert not store.finish(job_id, "succeeded", result={"stale": True}, attempt=1)  # orphan of attempt 1
    assert store.get(job_id).status == "running"
    assert store.finish(job_id, "succeeded", result={"ok": 1}, attempt=2)
    done = store.get(job_id)
    assert (done.status, done.result, done.progress) == ("succeeded", {"ok": 1}, 1.0)
    assert not store.finish(job_id, "failed", error="late")  # finished jobs stay finished


def test_cancel_queued_running_and_finished(store):
    queued = store.submit("train", {})
    running = store.submit("train", {})
    finished = store.submit("train", {})
    assert store.request_cancel(queued) == "cancelled"
    store.claim(1)  # takes `running` (queued one is cancelled)
    assert store.get(running).status == "running"
    assert store.request_cancel(running) == "running"
    assert store.cancel_requested(running) and store.get(running).cancel_requested
    store.claim(1)
    store.finish(finished, "succeeded")
    assert store.request_cancel(finished) == "succeeded"
    assert store.get(finished).status == "succeeded"
    with pytest.raises(KeyError):
        store.request_cancel(9999)


def test_requeue_orphans_only_touches_dead_or_stale_workers(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_id, dead_id, stale_id, cancel_id = (store.submit("train", {"n": i}) for i in range(4))
    store.claim(os.getpid())                  # live worker, fresh heartbeat
    store.claim(dead.pid)                     # its worker is gone
    store.claim(os.getpid())
    store._conn.execute("UPDATE jobs SET heartbeat = heartbeat - 3600 WHERE id = ?", (stale_id,))
    store.claim(dead.pid)
    store.request_cancel(cancel_id)
    assert sorted(store.requeue_orphans()) == sorted([dead_id, stale_id])
    assert store.get(live_id).status == "running"
    requeued = store.get(dead_id)
    assert (requeued.status, requeued.worker_pid, requeued.attempts) == ("queued", None, 1)
    assert store.get(cancel_id).status == "cancelled"


def test_a_job_whose_worker_keeps_dying_is_failed_not_requeued_forever(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = store.submit("train", {})
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert store.claim(dead.pid).attempts == attempt
        store.requeue_orphans()
    job = store.get(job_id)
    assert job.status == "failed" and f"gave up after {MAX_ATTEMPTS} attempts" in job.error


def test_run_dir_is_fixed_at_first_set(store):
    job_id = store.submit("train", {})
    assert store.set_run_dir(job_id, "/runs/a") == "/runs/a"
    assert store.set_run_dir(job_id, "/runs/b") == "/runs/a"


def test_a_store_with_the_old_run_registry_is_migrated_without_it(tmp_path):
    """Schema 1 had a `runs` table (written by the runner, read by nothing); migration 2 drops it
    and keeps the jobs."""
    import sqlite3

    from core.jobs.store import MIGRATIONS
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO runs (run_id, run_dir, kind, config, created) VALUES ('r1', '/r', 'train', '{}', 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    old = JobStore(db)
    job_id = old.submit("train", {})
    assert old.schema_version() == SCHEMA_VERSION and old.get(job_id).status == "queued"
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "runs" not in tables and "runs_by_kind" not in tables and "jobs" in tables


def test_workers_register_and_expire(store):
    store.worker_beat(os.getpid(), 1)
    assert [w["pid"] for w in store.live_workers()] == [os.getpid()]
    store.worker_gone(os.getpid())
    assert store.live_workers() == []


def test_pid_alive_treats_zombies_as_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while pid_alive(child.pid) and time.time() < deadline:  # exited but not reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid()) and not pid_alive(None)


def test_log_tail_collapses_carriage_returns(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("one\ntwo\nbar 10%\rbar 50%\rbar 90%\nlast\n")
    assert read_log_tail(log, lines=3) == "two\nbar 90%\nlast"
    assert read_log_tail(tmp_path / "missing.log") == ""


@pytest.mark.parametrize("kind, spec, message", [
    ("nope", {}, "unknown job kind 'nope'"),
    ("train", [1, 2], "must be a JSON object"),
    ("train", {}, "missing config"),
    ("train", {"config": {"bogus": 1}}, "unknown training option"),
    ("train", {"config": {"epochs": 0}}, "epochs must be an integer"),
    ("train", {"config": {}, "extra": 1}, "unknown field"),
    ("train", {"config": {}, "eval_splits": ["holdout"]}, "splits must be"),
    ("baseline", {"baseline": "oracle"}, "baseline must be one of"),
    ("evaluate", {"run": "no-such-run"}, "no run 'no-such-run'"),
    ("coherence", {"seed": -1}, "seed must be an integer"),
    ("coherence", {"images": "test"}, "invalid coherence job: images must be 'train' or 'all', got 'test'"),
    ("coherence", {"images": None}, "images must be 'train' or 'all', got None"),
    ("sweep", {"preset": "nature"}, "unknown sweep preset"),
])
def test_invalid_specs_are_rejected_with_the_reason(store, kind, spec, message):
    with pytest.raises(kinds.JobSpecError, match=message):
        kinds.validate(kind, spec)


# -- a damaged store is refused when it opens, never read as fewer jobs or replaced (issue 12) --------

def _store_with_jobs(tmp_path, n: int = 40, running: int = 5):
    db = tmp_path / "jobs.db"
    s = JobStore(db)
    for i in range(n):
        s.submit("train", {"config": {"seed": i}, "note": "x" * 200})
    for _ in range(running):
        s.claim(1)
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")    # everything in the main file
    s.close()
    return db


def _page_of(db, name: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


def _patch_page(db, page: int, old: bytes, new: bytes) -> None:
    data = bytearray(db.read_bytes())
    start, end = (page - 1) * 4096, page * 4096
    chunk = bytes(data[start:end])
    assert old in chunk
    data[start:end] = chunk.replace(old, new)
    db.write_bytes(bytes(data))


def test_an_empty_database_file_is_refused_and_kept(tmp_path):
    db = tmp_path / "jobs.db"
    db.write_bytes(b"")
    with pytest.raises(JobStoreError, match=r"damaged \(the file is empty \(0 bytes\).*mv '") as info:
        JobStore(db)
    assert "\n" not in str(info.value)
    assert db.read_bytes() == b""                       # not turned into an empty store


def test_an_index_that_lost_its_running_rows_is_refused(tmp_path):
    """Reported: with the index damaged, `jobs list --status running` said "no jobs"."""
    db = _store_with_jobs(tmp_path)
    _patch_page(db, _page_of(db, "jobs_by_status"), b"running", b"runninh")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0  # the symptom
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"                             # quick_check misses it
    conn.close()
    with pytest.raises(JobStoreError, match=r"damaged \(integrity check: .*jobs_by_status"):
        JobStore(db)


def test_a_damaged_jobs_table_page_is_refused(tmp_path):
    db = _store_with_jobs(tmp_path)
    conn = sqlite3.connect(db)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    leaf = next(p for p in range(pages, 1, -1) if data[(p - 1) * 4096] == 0x0D)   # a table leaf page
    start = (leaf - 1) * 4096
    data[start + 3:start + 5] = (500).to_bytes(2, "big")                         # its cell count: garbage
    db.write_bytes(bytes(data))
    with pytest.raises(JobStoreError, match="damaged") as info:
        JobStore(db)
    assert "mv '" in str(info.value) and "\n" not in str(info.value)


def test_a_garbage_wal_is_refused_not_ignored(tmp_path):
    db = _store_with_jobs(tmp_path)
    wal = tmp_path / "jobs.db-wal"
    garbage = bytes(range(256)) * 32
    wal.write_bytes(garbage)
    with pytest.raises(JobStoreError, match=r"jobs.db-wal is not an SQLite write-ahead log.*mv '.*-wal'"):
        JobStore(db)
    assert wal.read_bytes() == garbage                  # left for the user to look at


def test_a_real_wal_and_a_checkpointed_empty_one_are_fine(tmp_path):
    from core.jobs.store import wal_header_ok

    db = tmp_path / "jobs.db"
    s = JobStore(db)
    s.submit("train", {})
    assert wal_header_ok((tmp_path / "jobs.db-wal").read_bytes()[:32])
    other = JobStore(db)                                # opens beside a live writer's log
    assert [j.id for j in other.list()] == [1]
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert (tmp_path / "jobs.db-wal").stat().st_size == 0
    JobStore(db).close()
    other.close()
    s.close()


def test_a_new_store_appears_complete_or_not_at_all(tmp_path):
    """Built aside and linked into place: no other process can see a 0-byte store (now refused)."""
    db = tmp_path / "fresh.db"
    s = JobStore(db)
    assert db.stat().st_size > 0 and s.schema_version() == SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("fresh.db")) == []
    s.close()


def test_the_cli_says_how_to_recover_in_one_line(tmp_path, monkeypatch, capsys):
    from core import cli

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    paths.db_path().write_bytes(b"")
    assert cli.main(["jobs", "list", "--status", "running"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "move it aside" in err


def test_the_worker_syncs_slurm_jobs_when_some_run_there(store, monkeypatch):
    from core.jobs import slurm, worker
    calls = []
    monkeypatch.setattr(slurm, "sync", lambda s: calls.append(s) or [])
    w = worker.Worker(concurrency=1, store=store)
    w._sync_slurm()                      # nothing running on Slurm: nothing to ask
    assert calls == []
    monkeypatch.setattr(store, "list", lambda **kw: [object()] if kw.get("backend") == "slurm" else [])
    w._sync_slurm()
    assert calls == [store]
    monkeypatch.setattr(slurm, "sync", lambda s: 1 / 0)
    w._sync_slurm()                      # a Slurm problem is logged, not raised


@pytest.mark.parametrize("reports, outcome", [([0.5, 1.0], "succeeded"), ([0.5, 0.9], "cancelled")])
def test_a_cancel_that_comes_after_the_work_is_done_leaves_the_job_succeeded(store, monkeypatch, reports, outcome):
    """A cancel requested while a job wrote its last results (its report of 1.0) used to list the
    finished job, results and all, as cancelled; a report short of 1.0 still cancels."""
    import os

    from core.jobs import runner

    def execute(spec, ctx):
        ctx.progress(reports[0], "half way")
        store.request_cancel(ctx.job_id)          # too late to stop what follows
        runner.time.sleep(runner.CANCEL_POLL_EVERY_S)   # the next report polls again
        ctx.progress(reports[1], "last report")
        return {"written": True}

    monkeypatch.setitem(kinds._KINDS, "test-finishes", kinds.JobKind("test-finishes", lambda s: s, execute,
                                                                     describe=lambda s: "test"))
    job_id = store.submit("test-finishes", {})
    store.claim(os.getpid())
    code = runner.run(job_id, 1, store)
    job = store.get(job_id)
    assert job.status == outcome and code == (runner.EXIT_OK if outcome == "succeeded" else runner.EXIT_CANCELLED)
    assert (job.result == {"written": True}) == (outcome == "succeeded")


def test_a_job_of_a_data_folder_copied_elsewhere_never_writes_into_the_old_one(store, monkeypatch, tmp_path):
    """A job fixes its output folder at its first start (absolute, in the job store). With the data
    folder copied elsewhere and TAXOLENS_DATA pointed at the copy, a requeued job resumed into the
    old folder. It now takes the copy's folder of the same name (a run, or baselines/<name>), else a
    new one; a folder under this data folder is kept as it was."""
    import os

    from core import paths
    from core.jobs import runner

    seen = []

    def execute(spec, ctx):
        seen.append(ctx.output_dir)
        return {}

    made = iter(range(100))
    monkeypatch.setitem(kinds._KINDS, "test-out", kinds.JobKind(
        "test-out", lambda s: s, execute, describe=lambda s: "test",
        make_output_dir=lambda spec: paths.runs_dir() / f"new-{next(made)}"))
    old = tmp_path / "old-data" / "runs"
    cases = {"kept": paths.runs_dir() / "mine", "copied run": old / "run-a", "copied baseline": old / "baselines" / "b",
             "not copied": old / "run-gone"}
    for here in (paths.runs_dir() / "mine", paths.runs_dir() / "run-a", paths.runs_dir() / "baselines" / "b"):
        here.mkdir(parents=True)
    expected = {"kept": paths.runs_dir() / "mine", "copied run": paths.runs_dir() / "run-a",
                "copied baseline": paths.runs_dir() / "baselines" / "b", "not copied": paths.runs_dir() / "new-0"}
    for name, stored in cases.items():
        job_id = store.submit("test-out", {})
        store.set_run_dir(job_id, stored)
        store.claim(os.getpid())
        assert runner.run(job_id, 1, store) == runner.EXIT_OK
        assert seen[-1] == expected[name] and store.get(job_id).run_dir == str(expected[name]), name
    assert not old.exists()
