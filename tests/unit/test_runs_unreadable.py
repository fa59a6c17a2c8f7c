"""Run folders that cannot be read are named, never silently dropped, and a run whose config does not
validate is one of them rather than a finished run that reports count (audit item 4)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core import cli, runs
from core.config import TrainConfig


@pytest.fixture
def run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    return tmp_path / "runs"


def _run(root, name: str, config, checkpoint=None, metrics: dict | None = None):
    run = root / name
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    ck = {"status": "finished", "epoch": 1, "created": "2026-01-01T00:00:00+00:00"} if checkpoint is None else checkpoint
    (run / "checkpoint" / "checkpoint.json").write_text(ck if isinstance(ck, str) else json.dumps(ck))
    if metrics is not None:
        (run / "eval" / "test").mkdir(parents=True)
        (run / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics))
    return run


def _bad_runs(root):
    good = TrainConfig().to_dict()
    _run(root, "good", good)
    _run(root, "bad-config-json", "{not json")
    _run(root, "bad-checkpoint-json", good, checkpoint="{not json")
    _run(root, "bad-checkpoint-record", good, checkpoint={"status": "finished"})     # no epoch
    _run(root, "bad-config-value", {**good, "projector_hidden": "abc"}, metrics={"n_questions": 10})


def test_list_runs_names_every_unreadable_folder_with_its_reason(run_root, caplog):
    _bad_runs(run_root)
    unreadable = []
    assert [r.run_id for r in runs.list_runs(unreadable)] == ["good"]
    reasons = {path.name: why for path, why in unreadable}
    assert sorted(reasons) == ["bad-checkpoint-json", "bad-checkpoint-record", "bad-config-json", "bad-config-value"]
    assert "not valid JSON" in reasons["bad-config-json"] and "not valid JSON" in reasons["bad-checkpoint-json"]
    assert "not a checkpoint record" in reasons["bad-checkpoint-record"]
    assert "projector_hidden" in reasons["bad-config-value"]
    # without a list to fill: one note per folder (on stderr, where no logging is set up)
    with caplog.at_level(logging.WARNING, logger="core.runs"):
        assert [r.run_id for r in runs.list_runs()] == ["good"]
    notes = [r.getMessage() for r in caplog.records if r.name == "core.runs"]
    assert len(notes) == 4 and all(n.startswith("taxolens: note: run folder ") for n in notes)
    assert any("bad-config-value" in n and "projector_hidden" in n for n in notes)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.runs"):     # the app lists runs every few seconds
        runs.list_runs()
    assert not [r for r in caplog.records if r.name == "core.runs"]


def test_the_results_report_names_the_run_folders_it_could_not_count(run_root, capsys):
    from core import results

    _bad_runs(run_root)
    unreadable = []
    results.collect(unreadable=unreadable)
    assert sorted(u.split(":")[0] for u in unreadable) == ["bad-checkpoint-json", "bad-checkpoint-record",
                                                           "bad-config-json", "bad-config-value"]
    out = run_root.parent / "report.md"
    assert cli.main(["results", "report", "--out", str(out)]) == 0
    assert "Not counted: 4 run folder(s) that cannot be read: `bad-checkpoint-json:" in out.read_text()
    assert capsys.readouterr().err.count("is not counted: it cannot be read") == 4


def test_a_run_whose_config_does_not_validate_is_not_listed_or_counted(run_root, caplog, capsys):
    """Reported: `"projector_hidden": "abc"` was listed as finished and counted by `results report`."""
    from core import results

    _bad_runs(run_root)
    with pytest.raises(runs.RunError, match="projector_hidden"):
        runs.load_run("bad-config-value")
    with caplog.at_level(logging.WARNING, logger="core.runs"):
        assert cli.main(["runs", "--json"]) == 0
        assert "bad-config-value" not in [row["name"] for row in results.collect()]
    listed = [r["run_id"] for r in json.loads(capsys.readouterr().out)]
    assert listed == ["good"]
    assert any("bad-config-value" in r.getMessage() for r in caplog.records)


def test_the_notes_reach_stderr_without_any_logging_set_up(run_root, tmp_path):
    """What `taxolens runs` shows: Python's last-resort handler prints the bare note on stderr."""
    import os
    import subprocess
    import sys

    _run(run_root, "bad-config-json", "{not json")
    env = {**os.environ, "TAXOLENS_DATA": str(tmp_path)}
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "core", "runs"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=repo)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taxolens: note: run folder bad-config-json is left out")
