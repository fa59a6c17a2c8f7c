"""The small things of issue 12, case 7: a job whose worker died says "worker gone" (not "running");
cancelling a cancelled job says "already cancelled"; `taxolens jobs list | head` ends quietly; the
CLI's predict keeps the image notes the app shows; the app listens on 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from core import cli, paths
from core.jobs import JobStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(data_dir):
    s = JobStore()
    yield s
    s.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_job_whose_worker_died_says_worker_gone(store, capsys):
    orphan, alive = store.submit("train", {"config": {}}), store.submit("train", {"config": {}})
    store.claim(_dead_pid())
    store.claim(os.getpid())                              # this process: alive, fresh heartbeat
    assert cli.main(["jobs", "list"]) == 0
    lines = {int(line.split()[0]): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "worker gone" in lines[orphan] and "requeues it" in lines[orphan]
    assert "worker gone" not in lines[alive] and " running " in lines[alive]
    assert cli.main(["jobs", "show", str(orphan)]) == 0
    out = capsys.readouterr().out
    assert "status    running, but its worker (pid" in out and "since the first" not in out

    store._conn.execute("UPDATE jobs SET heartbeat = heartbeat - 3600 WHERE id = ?", (alive,))
    assert cli.main(["jobs", "list", "--status", "running"]) == 0   # stale heartbeat: gone too
    assert capsys.readouterr().out.count("worker gone") == 2


def test_a_retried_jobs_elapsed_time_says_what_it_counts(store, capsys):
    job = store.submit("train", {"config": {}})
    store.claim(_dead_pid())
    store.requeue_orphans()                       # its worker died: a second attempt
    store.claim(os.getpid())
    assert cli.main(["jobs", "show", str(job)]) == 0
    assert "(since the first of 2 attempts, time between them included)" in capsys.readouterr().out


def test_the_app_job_table_says_worker_gone(store):
    pytest.importorskip("streamlit")
    from ui.jobs import job_rows

    store.submit("train", {"config": {}})
    store.claim(_dead_pid())
    assert job_rows(store.list())[0]["status"] == "worker gone"


def test_cancelling_a_cancelled_job_says_already(store, capsys):
    job_id = store.submit("train", {"config": {}})
    assert cli.main(["jobs", "cancel", str(job_id)]) == 0
    assert capsys.readouterr().out.strip() == f"job {job_id}: cancelled"
    assert cli.main(["jobs", "cancel", str(job_id)]) == 0
    assert capsys.readouterr().out.strip() == f"job {job_id}: already cancelled, nothing to cancel"


def test_cancelling_a_sweep_cancels_every_job_it_queued(store, capsys):
    """`jobs cancel --sweep N`: the sweep job and its unfinished jobs, queued ones at once, running
    ones asked to stop; finished ones and other sweeps' jobs untouched."""
    import os
    sweep = store.submit("sweep", {"conditions": ["none"]})
    kids = [store.submit("train", {"config": {}}, parent_id=sweep) for _ in range(3)]
    other = store.submit("train", {"config": {}})
    store.claim(os.getpid())                               # the sweep job runs (it expanded)
    done = kids[0]
    store.finish(done, "succeeded", result={})
    store.claim(os.getpid())                               # kids[1] running
    assert cli.main(["jobs", "cancel", "--sweep", str(kids[2])]) == 2
    assert "is not one; nothing cancelled" in capsys.readouterr().err
    assert cli.main(["jobs", "cancel", "--sweep", str(sweep)]) == 0
    assert capsys.readouterr().out.strip() == \
        f"sweep {sweep}: cancelled 1 job(s); asked 2 running job(s) to stop (they stop within seconds)"
    assert store.get(kids[2]).status == "cancelled" and store.get(kids[1]).cancel_requested
    assert store.get(done).status == "succeeded" and store.get(other).status == "queued"
    assert cli.main(["jobs", "cancel", "--sweep", str(sweep)]) == 0
    assert "nothing left to cancel" in capsys.readouterr().out


def test_a_sweep_cancelled_while_it_expands_queues_nothing(store):
    """cancel_sweep asks the running sweep job to stop and cancels the children it finds; children
    the expansion inserted after that would have run anyway."""
    import os

    from core.jobs import cancel_sweep
    sweep = store.submit("sweep", {"conditions": ["none"]})
    store.claim(os.getpid())
    assert cancel_sweep(sweep, store=store) == (0, 1)
    assert store.submit_many([("train", {"config": {}})] * 3, parent_id=sweep) == []
    assert store.list(parent_id=sweep) == []
    other = store.submit("sweep", {"conditions": ["none"]})       # not cancelled: expands as before
    assert len(store.submit_many([("train", {"config": {}})] * 2, parent_id=other)) == 2


def test_cancelling_a_known_and_an_unknown_job_cancels_neither_and_names_the_unknown(store, capsys):
    """A typo among the ids cancels nothing (it used to cancel the ids before and after it)."""
    job_id = store.submit("train", {"config": {}})
    assert cli.main(["jobs", "cancel", "99999", str(job_id)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "taxolens jobs: error: no job with id 99999; nothing cancelled"
    assert store.get(job_id).status == "queued"


def test_a_closed_pipe_ends_the_listing_quietly(store):
    """Reported: `taxolens jobs list | head` printed a BrokenPipeError traceback."""
    with store._conn:
        store._conn.executemany("INSERT INTO jobs (kind, spec, created) VALUES ('train', '{}', ?)",
                                [(time.time(),)] * 3000)   # far more output than a pipe buffers
    env = dict(os.environ, TAXOLENS_DATA=str(paths.data_dir()), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "core", "jobs", "list", "--limit", "3000"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().split()[:2] == [b"id", b"status"]
    proc.stdout.close()                                   # what `head -1` does after its line
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=300)
    assert err == "", err
    assert code == 141                                    # 128 + SIGPIPE, as for `yes | head`


def test_predict_prints_the_image_notes(data_dir, monkeypatch, capsys):
    """Reported: the CLI's predict dropped the CMYK / 16-bit / animation notes the app shows."""
    from core import predict

    calls = []

    class Stub:
        def predict(self, image, top_k=5, full=False, progress=None):
            calls.append(full)
            return type("P", (), {"to_dict": lambda self: {"best": "dog", "notes": []}})()

    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, path, device=None: Stub()))
    run = data_dir / "runs" / "r1"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({}))
    (run / "checkpoint" / "checkpoint.json").write_text(json.dumps({"status": "finished", "epoch": 1}))
    image = data_dir / "cmyk.jpg"
    cmyk = Image.new("CMYK", (40, 40), (0, 128, 0, 0))
    cmyk.paste((0, 0, 200, 0), (0, 0, 20, 20))            # not one flat colour: one note, not two
    cmyk.save(image)
    assert cli.main(["predict", str(image), "--run", "r1"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["image_notes"] == ["CMYK image converted to RGB"]
    assert "note: CMYK image converted to RGB" in err
    assert cli.main(["predict", str(image), "--run", "r1", "--full"]) == 0       # every leaf in fp32
    assert calls == [False, True]


def test_streamlit_run_directly_listens_on_localhost_only():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


@pytest.mark.parametrize("argv, out, code", [
    (["jobs", "show", "999"], "no job with id 999", 2),
    (["jobs", "logs", "999"], "no job with id 999", 2),
    (["jobs", "cancel", "7"], "no job with id 7", 2),
    (["sweep", "show", "3"], "no job with id 3", 2),
    (["jobs", "list"], "no jobs", 0),
])
def test_reading_commands_create_no_job_store(argv, out, code, data_dir, capsys):
    assert not paths.db_path().exists()
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert out in captured.out + captured.err
    assert not paths.db_path().exists()


def test_a_bad_job_spec_file_is_one_clear_line_and_nothing_is_written(data_dir, tmp_path, capsys):
    bad = tmp_path / "spec.json"
    for content, fragment in (("[1, 2]", "must hold a JSON object"), ("{not json", "is not readable JSON")):
        bad.write_text(content)
        assert cli.main(["jobs", "submit", "train", "--spec", str(bad)]) == 2
        assert f"job spec {bad} " in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "train", "--spec", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not paths.db_path().exists()


def test_submitting_a_baseline_or_evaluation_without_its_subject_names_the_flag(data_dir, capsys, monkeypatch):
    """Reported: `jobs submit baseline` said "baseline job spec is missing baseline" without naming
    --baseline, and the positional form of `taxolens baseline majority` was refused."""
    assert cli.main(["jobs", "submit", "baseline"]) == 2
    assert "missing baseline (on the command line: BASELINE or --baseline)" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "evaluate"]) == 2
    assert "missing run (on the command line: RUN or --run)" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "baseline", "majority", "--baseline", "image-probe"]) == 2
    assert "two baselines given" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "evaluate", "some_run", "--run", "other_run"]) == 2   # positional as `evaluate RUN`
    assert "two runs given" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "evaluate", "no_such_run"]) == 2
    assert "no run 'no_such_run'" in capsys.readouterr().err
    assert not paths.db_path().exists()
    from core.data import datasets
    from tiny_concepts import tiny_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": tiny_dataset())
    assert cli.main(["jobs", "submit", "baseline", "majority", "--dataset", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["baseline"] == "majority"
