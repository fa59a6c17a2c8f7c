"""core.jobs.sweep_run (`taxolens sweep run`): a whole sweep in one process, resumable, on the tiny
dataset with the fake VLM."""
import json

import pytest

import fake_vlm
from core import runs
from core.cli import main
from core.jobs import sweep_run

SPEC = {"name": "tiny-grid", "base": {"dataset": "tiny", "epochs": 2, "batch_size": 8, "lr": 0.05, "device": "cpu"},
        "grids": [{"conditions": ["random", "cross"], "ratios": [0, 0.5], "seeds": [0, 1]},
                  {"conditions": ["random"], "ratios": [0.5], "lm_inits": ["random"], "seeds": [0]},
                  {"kind": "baseline", "baselines": ["majority"], "conditions": ["none"], "seeds": [0]}]}


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


def test_a_sweep_trains_together_evaluates_and_resumes_without_redoing_work():
    done = sweep_run.run_sweep(SPEC)
    assert len(done["runs"]) == 3 * 2 + 1 and done["evaluations"] == 7 and done["baselines"] == 1
    # the six pretrained-LM runs step together; the random-init LM run trains in its own group
    assert max(fake_vlm.FakeVLM.joint_calls) == 6 and 1 in fake_vlm.FakeVLM.joint_calls
    for d in map(runs.Path, done["runs"]):
        assert runs.read_json(runs.checkpoint_json(d))["status"] == "finished"
        assert (runs.eval_dir(d, "test") / runs.METRICS_JSON).is_file()
    manifest = json.loads(runs.Path(done["manifest"]).read_text())
    assert sorted(map(runs.located_path, manifest["runs"].values())) == sorted(done["runs"])
    assert not any(runs.Path(v).is_absolute() for v in manifest["runs"].values())   # relative to the runs folder
    assert set(done["seconds"]) == {"train", "evaluate", "baselines", "probes", "total"}

    built = len(fake_vlm.FakeVLM.instances)
    again = sweep_run.run_sweep(SPEC)
    assert again["runs"] == done["runs"] and again["evaluations"] == 0 and again["baselines"] == 0
    assert done["reused"] == 0 and again["reused"] == 7
    assert len(fake_vlm.FakeVLM.instances) == built          # nothing trained or evaluated again


def test_results_rows_cover_every_job_of_the_sweep_runs_and_baselines():
    before = sweep_run.results_rows(SPEC)
    assert len(before) == 7 + 1 and {r["status"] for r in before} == {"queued"}
    sweep_run.run_sweep(SPEC)
    rows = sweep_run.results_rows(SPEC)
    assert [r["kind"] for r in rows].count("baseline") == 1 and len(rows) == 8
    assert {r["status"] for r in rows} == {"succeeded"} and all(r["metrics"] for r in rows)
    (majority,) = [r for r in rows if r["kind"] == "baseline"]
    assert majority["baseline"] == "majority" and majority["condition"] == "none" and majority["prompt"] is None
    assert {r["prompt"] for r in rows if r["kind"] == "train"} == {"plain"}      # the default, filled in


def test_results_rows_read_a_sweeps_probes_from_disk():
    from core import probe
    spec = {"name": "probes", "grids": [{"kind": "probe", "lms": ["smollm2-135m", "gemma3-270m"], "seeds": [0]}]}
    runs.write_json(probe.out_dir("smollm2-135m", "concepts") / runs.METRICS_JSON,
                    {"kind": "probe", "lm": "smollm2-135m", "pairwise": 0.7, "per_category": {"animal": {}}})
    rows = {r["lm"]: r for r in sweep_run.results_rows(spec)}
    assert rows["smollm2-135m"]["status"] == "succeeded" and rows["gemma3-270m"]["status"] == "queued"
    assert rows["smollm2-135m"]["metrics"] == {"kind": "probe", "lm": "smollm2-135m", "pairwise": 0.7}
    assert rows["gemma3-270m"]["metrics"] is None and {r["kind"] for r in rows.values()} == {"probe"}


def test_the_manifest_names_each_runs_directory_until_it_is_gone():
    import shutil

    from core.config import TrainConfig
    planned = sweep_run.plan(SPEC)
    cfgs = [TrainConfig.from_dict(j["spec"]["config"]) for j in planned["jobs"] if j["kind"] == "train"]
    first = sweep_run.run_dirs(planned["name"], cfgs)
    assert len(set(first)) == len(cfgs)
    assert sweep_run.run_dirs(planned["name"], cfgs) == first         # a rerun resumes the same runs
    shutil.rmtree(first[0])
    again = sweep_run.run_dirs(planned["name"], cfgs)
    assert again[1:] == first[1:] and again[0] != first[0] and again[0].is_dir()


def test_a_run_another_sweep_finished_is_reused_not_trained_again():
    done = sweep_run.run_sweep(SPEC)
    other = {**SPEC, "name": "overlapping", "grids": [{"conditions": ["cross", "within"], "seeds": [0]}]}
    cross = [d for d in done["runs"] if "_cross_s0_" in d]
    saved = runs.checkpoint_json(runs.Path(cross[0])).stat().st_mtime_ns
    again = sweep_run.run_sweep(other)
    assert len(cross) == 1 and cross[0] in again["runs"]      # the finished cross run, not a new one
    assert runs.checkpoint_json(runs.Path(cross[0])).stat().st_mtime_ns == saved     # not trained again
    within = [d for d in again["runs"] if d not in done["runs"]]
    assert len(within) == 1 and "_within_s0_" in within[0]


def test_an_unfinished_run_of_another_sweep_or_a_damaged_manifest_is_not_reused():
    from core.config import TrainConfig
    cfg = TrainConfig.from_dict(sweep_run.plan({**SPEC, "grids": [{"conditions": ["cross"], "seeds": [0]}]})
                                ["jobs"][0]["spec"]["config"])
    folder = sweep_run.manifest_path("x").parent
    unfinished = runs.create_run_dir(cfg)                    # named by another sweep, never finished
    runs.write_json(folder / "other.json", {"name": "other", "runs": {sweep_run.manifest_key(cfg): str(unfinished)}})
    (folder / "garbled.json").write_text("{not json")
    runs.write_json(folder / "odd.json", [1, 2])
    (mine,) = sweep_run.run_dirs("mine", [cfg])
    assert mine != unfinished and mine.is_dir()


def test_sweep_run_command_writes_the_report(tmp_path, capsys):
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({**SPEC, "grids": SPEC["grids"][:1]}))
    report = tmp_path / "results.md"
    assert main(["sweep", "run", str(spec), "--report", str(report)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 6 and out["report"] == str(report)
    assert "random:0.5" in report.read_text()
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 0
    assert "6 jobs (a dry run: nothing queued or trained)" in capsys.readouterr().out


def test_sweep_show_lists_a_sweep_run_here_by_its_name_or_its_spec(tmp_path, capsys):
    """Reported: after `sweep run` the results could be read only in results.md; `sweep show <name>`
    was "invalid int value"."""
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({**SPEC, "grids": SPEC["grids"][:1]}))
    assert main(["sweep", "show", "tiny-grid"]) == 2
    assert "no sweep 'tiny-grid'" in capsys.readouterr().err
    assert main(["sweep", "show", str(spec)]) == 0                       # by its spec, before it ran
    assert "sweep tiny-grid: 6 jobs; 6 queued" in capsys.readouterr().out
    assert main(["sweep", "run", str(spec), "--no-report"]) == 0
    assert json.loads(capsys.readouterr().out)["show"] == "taxolens sweep show tiny-grid"
    for by in ("tiny-grid", str(spec)):
        assert main(["sweep", "show", by]) == 0
        out = capsys.readouterr().out
        assert "sweep tiny-grid: 6 jobs; 6 succeeded" in out and "random:0.5" in out
    assert main(["sweep", "show", "nope"]) == 2
    assert "the name of a sweep run here (tiny-grid)" in capsys.readouterr().err
    assert main(["sweep", "show", "tiny-grid", "--scale", "full"]) == 2
    old = sweep_run.manifest_path("older")          # a manifest from before grids were recorded
    runs.write_json(old, {"name": "older", "runs": {}})
    capsys.readouterr()
    assert main(["sweep", "show", "older"]) == 2
    assert "ran before sweeps recorded their grid: give its spec" in capsys.readouterr().err
    assert main(["sweep", "show", "nope"]) == 2
    assert "(tiny-grid)" in capsys.readouterr().err             # the older one is not offered


def test_sweep_run_and_show_take_the_dataset_and_options_from_the_command_line(tmp_path, capsys):
    """A sweep on another dataset than its spec's, and with another option, from the command line
    (`--dataset`, `--set`): its runs are on that data, and it is named and shown by it."""
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({**SPEC, "base": {k: v for k, v in SPEC["base"].items() if k != "dataset"},
                                "grids": SPEC["grids"][:1]}))
    assert main(["sweep", "run", str(spec), "--dataset", "tiny", "--set", "batch_size=4", "--no-report"]) == 0
    out = json.loads(capsys.readouterr().out)
    name = out["show"].split()[-1]
    assert name.startswith("tiny-grid-tiny-") and out["runs"] == 6
    manifest = json.loads(sweep_run.manifest_path(name).read_text())
    for run_dir in map(runs.located_path, manifest["runs"].values()):
        cfg = runs.read_json(runs.Path(run_dir) / runs.CONFIG_JSON)
        assert (cfg["dataset"], cfg["batch_size"], cfg["epochs"]) == ("tiny", 4, 2)
    for by in ([name], [str(spec), "--dataset", "tiny", "--set", "batch_size=4"]):
        assert main(["sweep", "show", *by]) == 0
        assert f"sweep {name}: 6 jobs; 6 succeeded" in capsys.readouterr().out
    assert main(["sweep", "show", name, "--dataset", "tiny"]) == 2
    assert "--dataset and --set go with a spec" in capsys.readouterr().err
    assert main(["sweep", "show", "1", "--set", "epochs=2"]) == 2
    assert "go with a spec; a sweep job knows its own" in capsys.readouterr().err
    assert main(["sweep", "submit", str(spec), "--dataset", "tiny", "--set", "dataset=x", "--dry-run"]) == 2
    assert "--dataset tiny and --set dataset=x disagree" in capsys.readouterr().err
    for bad, message in (("epoch=2", "give FIELD=VALUE with a training option"), ("epochs=two", "epochs takes int"),
                         ("fresh_negatives=maybe", "takes true or false"), ("lr", "give FIELD=VALUE")):
        assert main(["sweep", "submit", str(spec), "--set", bad, "--dry-run"]) == 2
        assert message in capsys.readouterr().err


def test_a_dry_run_lists_the_plan_where_a_model_is_missing_and_says_so(tmp_path, capsys, monkeypatch):
    """Reported: `sweep run lms --dry-run` refused to list its plan without Gemma's weights."""
    from core.models import registry
    from core.base import ConfigError

    def missing(encoder=None, lm=None):
        raise ConfigError("gemma3-270m is not fetched")

    monkeypatch.setattr(registry, "check_weights", missing)
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({**SPEC, "grids": SPEC["grids"][:1]}))
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "6 jobs (a dry run: nothing queued or trained)" in out and "not runnable on this machine as it is" in err
    assert "gemma3-270m is not fetched" in err
    assert main(["sweep", "run", str(spec)]) == 2                     # the real run still refuses
    spec.write_text(json.dumps({**SPEC, "grids": [{"conditions": ["random"], "ratios": [7], "seeds": [0]}]}))
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 2         # a plan that is wrong anywhere
    assert "random ablation ratio" in capsys.readouterr().err


def test_a_sweep_as_one_job_is_checked_at_submit_runs_and_shows_its_results(tmp_path, capsys):
    from core.jobs import JobStore, kinds
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({**SPEC, "grids": SPEC["grids"][:1]}))
    with pytest.raises(kinds.JobSpecError, match="random ablation ratio"):
        kinds.validate("sweep-run", {"source": {**SPEC, "grids": [{"conditions": ["random:7"]}]}})
    assert main(["sweep", "submit", str(spec), "--together", "2"]) == 2          # only with --one-job
    assert main(["sweep", "submit", str(spec), "--one-job", "--together", "2"]) == 0
    (job,) = JobStore().list()
    assert job.kind == "sweep-run" and job.spec["together"] == 2 and job.spec["jobs"] == 6
    stops = iter([False] * 3 + [True] * 1000)            # cancelled after three updates ...
    ctx = kinds.JobContext(job.id, lambda f, m: None, lambda: next(stops))
    with pytest.raises(BaseException) as exc:
        kinds.get("sweep-run").execute(job.spec, ctx)
    assert kinds.is_cancellation(exc.value)
    from core import paths
    started = [d for d in paths.runs_dir().iterdir() if (d / "config.json").is_file()]
    assert started and all(runs.checkpoint_json(d).is_file() for d in started)   # no empty run folders
    manifest = json.loads(sweep_run.manifest_path(job.spec["name"]).read_text())
    assert sorted(map(runs.located_path, manifest["runs"].values())) == sorted(map(str, started))
    ctx = kinds.JobContext(job.id, lambda f, m: None, lambda: False)
    result = kinds.get("sweep-run").execute(job.spec, ctx)        # ... and resumed by running it again
    assert result["runs"] == 6 and result["evaluations"] == 6
    capsys.readouterr()
    assert main(["sweep", "show", str(job.id)]) == 0
    out = capsys.readouterr().out
    assert "6 jobs; 6 succeeded" in out and "random:0.5" in out
    assert "NaN" not in out and "–" in out                 # random:0 has no unseen pairs: a dash, as the report


def _run_queued(store) -> list:
    """Run every queued job in-process, as the worker's children would, until none is left."""
    import os

    from core.jobs import runner
    done = []
    while (job := store.claim(os.getpid())) is not None:
        assert runner.run(job.id, job.attempts, store) == runner.EXIT_OK
        done.append(store.get(job.id))
    return done


def test_a_submitted_sweep_reuses_what_sweep_run_finished_and_trains_the_rest(tmp_path):
    """Reported: `sweep submit` (one job per run) trained again every config `sweep run` had finished."""
    from core.jobs import JobStore
    from core.jobs import submit
    seed0 = {**SPEC, "name": "seed0", "grids": [{**SPEC["grids"][0], "seeds": [0]}, SPEC["grids"][2]]}
    done = sweep_run.run_sweep(seed0)                        # 3 runs and the majority baseline
    saved = {d: runs.checkpoint_json(runs.Path(d)).stat().st_mtime_ns for d in done["runs"]}
    baseline_folders = sorted(runs.baselines_dir().iterdir())
    built = len(fake_vlm.FakeVLM.instances)

    store = JobStore()
    sweep_id = submit("sweep", {**SPEC, "grids": [SPEC["grids"][0], SPEC["grids"][2]]}, store=store)
    jobs = _run_queued(store)
    children = [j for j in jobs if j.parent_id == sweep_id]
    assert len(children) == 6 + 1 and {j.status for j in children} == {"succeeded"}
    trained = [j for j in children if j.kind == "train"]
    reused = [j for j in trained if j.result.get("reused")]
    assert sorted(j.run_dir for j in reused) == sorted(done["runs"])          # seed 0: the same folders
    assert all(j.spec["config"]["seed"] == 0 for j in reused) and len(reused) == 3
    assert {d: runs.checkpoint_json(runs.Path(d)).stat().st_mtime_ns for d in done["runs"]} == saved
    for j in reused:                                         # their metrics, read back, not evaluated again
        assert j.result["metrics"]["test"] == runs.load_metrics(j.run_dir, "test")
    fresh = [j for j in trained if not j.result.get("reused")]
    assert len(fresh) == 3 and not {j.run_dir for j in fresh} & set(done["runs"])
    assert all(j.spec["config"]["seed"] == 1 and runs.is_finished(j.run_dir) for j in fresh)
    assert len(fake_vlm.FakeVLM.instances) > built           # seed 1 did train
    (majority,) = [j for j in children if j.kind == "baseline"]
    assert sorted(runs.baselines_dir().iterdir()) == baseline_folders       # no second majority folder
    assert majority.run_dir in map(str, baseline_folders) and majority.result["metrics"]["test"]
    assert majority.result["reused"] is True
    # `sweep show spec.json` (no `sweep run` manifest names the submitted runs): every one is found on disk
    rows = sweep_run.results_rows({**SPEC, "grids": [SPEC["grids"][0], SPEC["grids"][2]]})
    assert {r["status"] for r in rows} == {"succeeded"} and len(rows) == 7


def test_a_dry_run_says_which_runs_are_finished_or_stopped_here(capsys):
    from core import train
    from core.config import TrainConfig
    two = {**SPEC, "name": "two", "grids": [{"conditions": ["cross", "within"], "seeds": [0]}]}
    cross, within = (TrainConfig.from_dict(j["spec"]["config"]) for j in sweep_run.plan(two)["jobs"])
    done = train.train(cross)
    stops = iter([False] * 3 + [True] * 1000)
    with pytest.raises(train.Cancelled) as stopped:
        train.train(within, should_stop=lambda: next(stops))
    capsys.readouterr()
    assert main(["sweep", "submit", _spec_file(two), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs (a dry run: nothing queued or trained); 1 of its runs is finished here and would be reused" in out
    assert f"train cross seed 0 on tiny  (reuses {done.name})" in out
    assert f"train within seed 0 on tiny  (resumes {runs.Path(stopped.value.run_dir).name})" in out
    assert runs.read_json(runs.checkpoint_json(runs.Path(stopped.value.run_dir)))["status"] == "cancelled"  # not claimed


def test_conditions_that_remove_the_same_pairs_on_the_data_are_named(capsys):
    """Reported: on a collection of 2-concept categories random:0.25 and random:0.5 both remove one
    concept per category, trained twice and were listed as two conditions. Here the case every
    dataset has: none and random:0 both remove nothing."""
    from core.jobs import sweeps
    grid = {**SPEC, "name": "same", "grids": [{"conditions": ["none", "random:0", "random:1", "cross"], "seeds": [0]}]}
    assert sweeps.same_data_notes(sweep_run.plan(grid)["jobs"]) == [
        "none and random:0 remove the same pairs and label alike on tiny (seed 0, smollm2-135m): they train "
        "the same run twice under two names"]
    assert main(["sweep", "submit", _spec_file(grid), "--dry-run"]) == 0
    assert "taxolens sweep: note: none and random:0 remove the same pairs" in capsys.readouterr().err
    distinct = {**grid, "grids": [{"conditions": ["random:0.5", "random:1", "cross", "within"], "seeds": [0, 1]}]}
    assert sweeps.same_data_notes(sweep_run.plan(distinct)["jobs"]) == []


def _spec_file(spec: dict) -> str:
    from core import paths
    path = paths.data_dir() / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_a_run_trained_by_hand_is_reused_by_a_sweep_and_a_plain_train_job_trains_anew():
    from core import train
    from core.config import TrainConfig
    from core.jobs import JobStore, kinds
    from core.jobs import submit
    one = {**SPEC, "name": "one", "grids": [{"conditions": ["cross"], "seeds": [0]}]}
    (job,) = sweep_run.plan(one)["jobs"]
    by_hand = train.train(TrainConfig.from_dict(job["spec"]["config"]))   # `taxolens train`, no sweep
    assert sweep_run.run_sweep(one)["runs"] == [str(by_hand)]
    assert job["spec"]["reuse"] is True
    store = JobStore()
    plain = submit("train", {"config": job["spec"]["config"]}, store=store)    # `jobs submit train`
    (ran,) = _run_queued(store)
    assert ran.id == plain and ran.run_dir != str(by_hand) and not ran.result.get("reused")
    with pytest.raises(kinds.JobSpecError, match="reuse must be true or false"):
        kinds.validate("train", {"config": job["spec"]["config"], "reuse": "yes"})


def test_a_scale_limit_the_dataset_does_not_reach_is_the_whole_dataset(tmp_path):
    """Reported: the `cpu` scale's max_concepts 80 on a 6-concept dataset trained again a run trained
    by hand without a limit (the same data), and the report then listed the two as different settings."""
    import dataclasses

    from core import train
    from core.config import TrainConfig
    from core.data import datasets
    from core.jobs import kinds
    one = {**SPEC, "name": "one", "grids": [{"conditions": ["cross"], "seeds": [0]}]}     # scale cpu: 80
    (job,) = sweep_run.plan(one)["jobs"]
    n = len(datasets.load_dataset("tiny").concepts)
    assert n < 80 and job["spec"]["config"]["max_concepts"] is None                      # recorded as all
    by_hand = train.train(TrainConfig.from_dict(job["spec"]["config"]))                 # no limit given
    assert sweep_run.run_sweep(one)["runs"] == [str(by_hand)]                           # reused
    (row,) = sweep_run.results_rows(one)
    assert row["status"] == "succeeded"
    base = TrainConfig.from_dict(job["spec"]["config"])
    def recorded(**limits):
        return kinds.validate("train", {"config": dataclasses.replace(base, **limits).to_dict()})["config"]
    assert recorded(max_concepts=n)["max_concepts"] is None
    assert recorded(max_concepts=n - 1)["max_concepts"] == n - 1                         # a real subset
    assert recorded(images_per_concept=1000)["images_per_concept"] is None
    assert recorded(images_per_concept=3)["images_per_concept"] == 3


def test_a_run_cancelled_by_hand_is_resumed_by_a_sweep_not_started_over():
    """Reported: a sweep job cancelled after its first epoch, submitted again, trained a new folder
    from scratch and left the cancelled run listed forever."""
    from core import train
    from core.config import TrainConfig
    from core.jobs import JobStore, submit
    one = {**SPEC, "name": "one", "grids": [{"conditions": ["cross"], "seeds": [0]}]}
    (job,) = sweep_run.plan(one)["jobs"]
    cfg = TrainConfig.from_dict(job["spec"]["config"])
    stops = iter([False] * 3 + [True] * 1000)
    with pytest.raises(train.Cancelled) as stopped:
        train.train(cfg, should_stop=lambda: next(stops))
    cancelled = runs.Path(stopped.value.run_dir)
    assert runs.read_json(runs.checkpoint_json(cancelled))["status"] == "cancelled"
    partial = runs.create_run_dir(cfg)                # another, "partial": maybe training right now
    runs.write_json(runs.checkpoint_json(partial), {**runs.read_json(runs.checkpoint_json(cancelled)),
                                                    "status": "partial", "updated": "9999"})
    store = JobStore()
    submit("sweep", one, store=store)
    ran = [j for j in _run_queued(store) if j.kind == "train"]
    assert [j.run_dir for j in ran] == [str(cancelled)] and not ran[0].result.get("reused")
    assert ran[0].result["resumed"] is True          # so its wall time times no whole run (time_estimate)
    record = runs.read_json(runs.checkpoint_json(cancelled))
    assert record["status"] == "finished" and record["resumed"]          # went on where it stopped
    assert sweep_run.run_sweep(one)["runs"] == [str(cancelled)]          # and `sweep run` takes it, finished


def test_runs_recorded_before_limits_were_normalised_are_still_found():
    """Review: a manifest and a config.json written before a limit the data does not reach was
    recorded as none (max_concepts 80 on the tiny dataset) must still name the same run."""
    from core.config import TrainConfig
    one = {**SPEC, "name": "old", "grids": [{"conditions": ["cross"], "seeds": [0]}]}
    (done,) = map(runs.Path, sweep_run.run_sweep(one)["runs"])
    path = sweep_run.manifest_path("old")
    manifest = json.loads(path.read_text())
    (key,) = manifest["runs"]
    old_cfg = {**json.loads(key), "max_concepts": 80}                      # as written before
    runs.write_json(done / "config.json", old_cfg)
    runs.write_json(path, {"name": "old", "runs": {json.dumps(old_cfg, sort_keys=True): str(done)}})
    assert sweep_run.run_sweep(one)["runs"] == [str(done)]                 # its own manifest still names it
    (row,) = sweep_run.results_rows(one)
    assert row["status"] == "succeeded"
    other = {**one, "name": "other"}                                       # another sweep: found by its record
    assert sweep_run.run_sweep(other)["runs"] == [str(done)]
    cfg = TrainConfig.from_dict(sweep_run.plan(one)["jobs"][0]["spec"]["config"])
    import dataclasses
    assert runs.ReusableRuns().take(dataclasses.replace(cfg, device="auto")) == done      # device aside


def test_a_cancelled_run_is_claimed_by_one_taker_only():
    """Review: two jobs starting at once could both resume the same cancelled run."""
    from core import train
    from core.config import TrainConfig
    cfg = TrainConfig.from_dict(sweep_run.plan({**SPEC, "grids": [{"conditions": ["cross"], "seeds": [0]}]})
                                ["jobs"][0]["spec"]["config"])
    stops = iter([False] * 3 + [True] * 1000)
    with pytest.raises(train.Cancelled) as stopped:
        train.train(cfg, should_stop=lambda: next(stops))
    first, second = runs.ReusableRuns(), runs.ReusableRuns()               # both indexed it as cancelled
    assert first.take(cfg) == runs.Path(stopped.value.run_dir)
    assert second.take(cfg) is None                                        # already claimed
    assert runs.read_json(runs.checkpoint_json(runs.Path(stopped.value.run_dir)))["status"] == "partial"
    assert runs.ReusableRuns().take(cfg) is None                           # and never taken again until it finishes


def test_a_data_folder_copied_elsewhere_keeps_its_sweeps_and_never_writes_into_the_old_one(tmp_path, monkeypatch):
    """Reported (browser walk-through): manifests named runs by absolute path, so a data folder
    copied elsewhere (TAXOLENS_DATA pointed at the copy) would resume and rewrite the old folder's
    runs. Entries are now relative to the runs folder; an absolute one from an older manifest is
    found by its folder name here."""
    import shutil

    from core import paths
    one = {**SPEC, "name": "moved", "grids": [{"conditions": ["cross"], "seeds": [0]}]}
    (done,) = map(runs.Path, sweep_run.run_sweep(one)["runs"])
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(paths.data_dir(), copy, symlinks=True)
    monkeypatch.setenv("TAXOLENS_DATA", str(copy))
    (again,) = map(runs.Path, sweep_run.run_sweep(one)["runs"])
    assert again == copy / "runs" / done.name and again != done            # the copy's own run, reused
    manifest = sweep_run.manifest_path("moved")
    (key,) = json.loads(manifest.read_text())["runs"]
    runs.write_json(manifest, {"name": "moved", "runs": {key: str(done)}, "source": one})   # an older, absolute entry
    assert sweep_run.run_sweep(one)["runs"] == [str(copy / "runs" / done.name)]
    (row,) = sweep_run.results_rows(one)
    assert row["status"] == "succeeded"
    shutil.rmtree(copy / "runs" / done.name)
    runs.write_json(manifest, {"name": "moved", "runs": {key: str(done)}, "source": one})   # absolute, not here
    old = runs.checkpoint_json(done).stat().st_mtime_ns
    (fresh,) = map(runs.Path, sweep_run.run_sweep(one)["runs"])
    assert fresh.parent == copy / "runs" and fresh != done                 # never the old folder
    assert runs.checkpoint_json(done).stat().st_mtime_ns == old
    assert runs.located_path("../../elsewhere/run") is None            # a hand-edited entry stays inside


def test_same_data_seeds_fold_seeds_and_lm_inits():
    """The Sweep tab's warning names each condition set once, with the seeds where it collapses."""
    from core.jobs import sweeps
    grid = {**SPEC, "name": "fold", "grids": [{"conditions": ["none", "random:0", "random:1"], "seeds": [0, 1],
                                               "lm_inits": ["pretrained", "random"]}]}
    assert sweeps.same_data_seeds(sweep_run.plan(grid)["jobs"]) == {("none", "random:0"): [0, 1]}


def test_sweep_show_gives_each_setting_of_a_custom_sweep_its_own_table(tmp_path, capsys):
    """Reviewed: two grids differing only in their config (epochs 1 and 2) came out of `sweep show`
    as one group averaged over n = 2 "seeds"."""
    spec = tmp_path / "two.json"
    spec.write_text(json.dumps({"name": "two-settings", "base": SPEC["base"], "grids": [
        {"conditions": ["random"], "ratios": [0], "seeds": [0], "config": {"epochs": 1}},
        {"conditions": ["random"], "ratios": [0], "seeds": [0], "config": {"epochs": 2}},
        {"kind": "baseline", "baselines": ["majority"], "conditions": ["none"], "seeds": [0]}]}))
    assert main(["sweep", "run", str(spec), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["sweep", "show", "two-settings", "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "· 1 epoch" in out and "· 2 epochs" in out           # one titled table per setting
    import pandas as pd
    table = pd.read_csv(tmp_path / "t.csv")
    train = table[table["kind"] == "train"]
    assert set(train["n_seeds"]) == {1} and train["setting"].nunique() == 2
    assert set(table[table["kind"] == "baseline"]["setting"]) == set(train["setting"])   # beside each
