"""A rebuilt dataset (new images, so other splits) makes what was measured on the old one stale:
results leave it out and say so, sweeps train again instead of reusing it, baselines are not found.
On the tiny dataset with the fake VLM; the dataset's version is what datasets.version_sha256 says."""
import pytest

import fake_vlm
from core import evaluate, results, runs
from core.config import TrainConfig
from core.data import datasets
from core.jobs import sweep_run

SPEC = {"name": "versions", "base": {"dataset": "tiny", "epochs": 1, "batch_size": 8, "lr": 0.05, "device": "cpu"},
        "grids": [{"conditions": ["random"], "ratios": [0], "seeds": [0]},
                  {"kind": "baseline", "baselines": ["majority"], "conditions": ["none"], "seeds": [0]}]}


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


@pytest.fixture
def version(monkeypatch):
    """The installed dataset's version; set ["now"] to simulate a rebuild."""
    state = {"now": "v1"}
    monkeypatch.setattr(datasets, "version_sha256", lambda ds: state["now"])
    return state


def test_a_run_and_baseline_of_an_earlier_dataset_are_left_out_and_named(version):
    done = sweep_run.run_sweep(SPEC)
    left: list[str] = []
    assert {r["kind"] for r in results.collect(left)} == {"train", "baseline"} and left == []

    version["now"] = "v2"
    left = []
    assert results.collect(left) == []
    (run_dir,) = done["runs"]
    assert left[0] == runs.Path(run_dir).name and left[1].startswith("baselines/majority_tiny_")
    report = results.report_markdown([], left_out=left)
    assert "Left out: 2 run(s) and baseline(s)" in report and f"`{left[0]}`" in report


def test_a_sweep_trains_again_after_a_rebuild_rather_than_reuse_a_run_of_the_old_dataset(version):
    (old,) = sweep_run.run_sweep(SPEC)["runs"]
    saved = runs.checkpoint_json(runs.Path(old)).stat().st_mtime_ns
    other = {**SPEC, "name": "another"}
    assert sweep_run.run_sweep(other)["runs"] == [old]            # same dataset: reused

    version["now"] = "v2"
    (new,) = sweep_run.run_sweep(SPEC)["runs"]                    # its own manifest's run, now stale
    assert new != old and runs.read_json(runs.checkpoint_json(runs.Path(new)))["status"] == "finished"
    assert runs.checkpoint_json(runs.Path(old)).stat().st_mtime_ns == saved      # the old run is kept
    third = {**SPEC, "name": "third"}
    version["now"] = "v3"
    (newest,) = sweep_run.run_sweep(third)["runs"]                # another sweep's stale run: not reused
    assert newest not in (old, new)


def test_a_baseline_is_found_only_on_the_dataset_version_it_measured(version):
    cfg = TrainConfig(dataset="tiny", device="cpu")
    evaluate.baseline("majority", cfg)
    folder = evaluate.find_baseline_dir("majority", cfg)
    metrics_path = runs.eval_dir(folder, "test") / runs.METRICS_JSON
    assert runs.read_json(metrics_path)["dataset_sha256"] == "v1"

    version["now"] = "v2"
    assert evaluate.find_baseline_dir("majority", cfg) is None
    evaluate.baseline("majority", cfg)                            # measured again: found again
    assert evaluate.find_baseline_dir("majority", cfg) == folder

    written = runs.read_json(metrics_path)                        # written before baselines recorded it
    del written["dataset_sha256"]
    runs.write_json(metrics_path, written)
    assert evaluate.find_baseline_dir("majority", cfg) is None


def test_nothing_installed_under_the_name_means_nothing_to_compare_with(monkeypatch):
    def missing(name="tiny"):
        raise datasets.DatasetError(f"no dataset {name}")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    versions = runs.DatasetVersions()
    assert versions.installed("gone") is None and versions.current("gone", "anything")
    assert versions.checkpoint_is_current({"dataset": {"name": "gone", "table_sha256": "old"}})


def test_sweep_show_lists_a_run_of_the_old_dataset_as_queued_and_a_damaged_one_stops_the_sweep(version):
    (old,) = sweep_run.run_sweep(SPEC)["runs"]
    assert {r["status"] for r in sweep_run.results_rows(SPEC) if r["kind"] == "train"} == {"succeeded"}
    version["now"] = "v2"
    (row,) = [r for r in sweep_run.results_rows(SPEC) if r["kind"] == "train"]
    assert row["status"] == "queued" and row["metrics"] is None
    runs.checkpoint_json(runs.Path(old)).write_text("{not json")
    with pytest.raises(runs.RunError):
        sweep_run.run_sweep(SPEC)


def test_the_default_checkpoint_is_never_a_run_of_the_old_dataset(version):
    cfg = TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu")
    from core import train
    run_dir = train.train(cfg)
    assert runs.default_checkpoint(cfg) == run_dir
    version["now"] = "v2"
    assert runs.default_checkpoint(cfg) is None


def test_a_baseline_summarized_again_keeps_the_dataset_version_it_measured(version):
    cfg = TrainConfig(dataset="tiny", device="cpu")
    evaluate.baseline("majority", cfg)
    folder = evaluate.find_baseline_dir("majority", cfg)
    path = runs.eval_dir(folder, "test") / runs.METRICS_JSON
    stored = runs.read_json(path)
    del stored["leaf"]                                   # an older headline: summarized again
    runs.write_json(path, stored)
    again = results.load_eval(folder, "test")
    assert again["recomputed"] and again["dataset_sha256"] == "v1"
    assert [r["kind"] for r in results.collect()] == ["baseline"]


def test_the_figures_command_counts_and_names_what_it_left_out(version, tmp_path, capsys, monkeypatch):
    import json

    from core import cli, paper_figures

    monkeypatch.setattr(paper_figures, "export_problem", lambda: "no export in this test")
    (run_dir,) = sweep_run.run_sweep(SPEC)["runs"]
    capsys.readouterr()
    assert cli.main(["results", "figures", "--out", str(tmp_path / "now"), "--csv-only"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["left_out"] == 0 and "left out" not in captured.err

    version["now"] = "v2"
    assert cli.main(["results", "figures", "--out", str(tmp_path / "later"), "--csv-only"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["left_out"] == 2
    assert "left out 2 run(s) and baseline(s)" in captured.err and runs.Path(run_dir).name in captured.err


def test_left_out_names_names_the_first_ten_and_counts_the_rest():
    names = [f"r{i}" for i in range(13)]
    assert results.left_out_names(names[:2], "`") == "`r0`, `r1`"
    assert results.left_out_names(names).endswith("r9 and 3 more") and "r10" not in results.left_out_names(names)


def test_taxolens_runs_marks_a_run_of_another_dataset_version(version, capsys):
    """Reported: after `data import --replace`, `taxolens runs` listed the old runs' numbers unmarked."""
    import json

    from core import cli
    (run_dir,) = sweep_run.run_sweep(SPEC)["runs"]
    capsys.readouterr()
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out
    assert runs.Path(run_dir).name in out and "another version" not in out
    version["now"] = "v2"
    assert cli.main(["runs"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if runs.Path(run_dir).name in x)
    assert line.endswith("  *")
    assert cli.main(["runs", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["current_dataset"] is False and row["dataset"] == "tiny"
