"""Refused commands leave nothing behind, and a job is refused at submit for whatever the direct
command refuses (issue 12, cases 3 and 5): models whose weights are not here, subsets that make a
shuffle or an ablation impossible, a GPU that is not there; a baseline stopped half-way; a train or
baseline job that fails or is cancelled before it saved anything."""
from __future__ import annotations

import json
import os

import pytest

from core import cli, paths, runs
from core.data import datasets
from core.config import TrainConfig
from core.jobs import JobStore, kinds, runner
from core.models import ModelUnavailableError
from tiny_concepts import tiny_dataset
from cli_checks import tree, refused


@pytest.fixture
def data_dir(data_dir, monkeypatch):
    """The shared empty data dir, whose dataset 'tiny' is the in-memory tiny dataset; offline, and
    with the bundled models' files already verified (as after `make assets`: the verification
    stamp under downloads/ is then not a new file)."""
    from core.models import registry

    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name="concepts": tiny_dataset() if name == "tiny" else real_load(name))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.check_weights(TrainConfig().encoder, TrainConfig().lm)
    return data_dir


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--lm", "nobody/nomodel"], "LM nobody/nomodel is not available offline"),
    (["train", "--encoder", "open_clip:ViT-B-32"], "open_clip weights for ViT-B-32:openai are not available"),
    (["train", "--encoder", "timm:resnet18"], "timm weights for resnet18 are not available"),
    (["probe-lm", "--lm", "nobody/nomodel"], "LM nobody/nomodel is not available offline"),
])
def test_models_without_weights_are_refused_before_a_run_folder_exists(argv, fragment, data_dir, capsys):
    """Reported: these (and `baseline lm_only`, which probe-lm replaced) exited 2 with a good message
    but left runs/<id>/config.json, listed as "new"."""
    refused(argv + ["--dataset", "tiny"], capsys, data_dir, fragment)
    assert runs.list_runs() == []


def test_checking_weights_writes_nothing_not_even_a_verification_stamp(tmp_path, monkeypatch, capsys):
    """On a data dir where the bundled weights were never verified, the check hashes them without
    recording it (downloads/verified.json is a cache of real use, not something a refusal leaves)."""
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name="concepts": tiny_dataset() if name == "tiny" else real_load(name))
    refused(["train", "--dataset", "tiny", "--lm", "nobody/nomodel"], capsys, tmp_path, "nobody/nomodel")
    assert list(tmp_path.iterdir()) == []


def test_a_train_that_fails_before_its_first_checkpoint_leaves_no_run(data_dir, monkeypatch, capsys):
    from core.models import checkpoint

    def weights_gone(cfg, device):   # e.g. deleted between the check and the load
        raise ModelUnavailableError("LM weights vanished")

    monkeypatch.setattr(checkpoint, "build_vlm", weights_gone)
    assert cli.main(["train", "--dataset", "tiny"]) == 2
    assert "vanished" in capsys.readouterr().err
    assert runs.list_runs() == [] and not any((data_dir / "runs").iterdir())


@pytest.mark.parametrize("projector_input", ["features", "features+posterior"])
def test_train_ship_refuses_a_projector_too_big_for_the_repository_before_training(projector_input, data_dir,
                                                                                    monkeypatch, capsys):
    """Found by an audit: `train --ship` of a features+posterior config (a 3.6 MB projector) trained
    for an hour and then the export refused it. The size follows from the config: refused first."""
    import fake_vlm
    from core.models import checkpoint

    fake_vlm.install(monkeypatch)
    repo_default = data_dir.parent / "assets" / "default-checkpoint"      # never the repository's own
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", repo_default)
    monkeypatch.setattr(checkpoint, "SHIPPED_MAX_BYTES", 1)
    argv = ["train", "--dataset", "tiny", "--projector-input", projector_input, "--ship"]
    message = refused(argv, capsys, data_dir, "taxolens ship RUN --dest DIR")
    assert f"({projector_input} input, {len(tiny_dataset().concepts)} concepts)" in message
    assert fake_vlm.FakeVLM.instances and runs.list_runs() == []      # built to be measured, never trained
    monkeypatch.setattr(checkpoint, "SHIPPED_MAX_BYTES", 10 ** 9)
    assert cli.main(argv + ["--epochs", "1", "--batch-size", "8"]) == 0
    assert [r.status for r in runs.list_runs()] == ["finished"] and (repo_default / "checkpoint").is_dir()


def test_train_ship_refuses_a_repository_folder_it_may_not_replace_before_training(data_dir, monkeypatch, capsys):
    """Shipping replaces the repository's default-checkpoint folder; one holding other files was
    refused only at export, after the training it would have shipped. Refused first now."""
    import fake_vlm

    fake_vlm.install(monkeypatch)
    repo_default = data_dir.parent / "assets" / "default-checkpoint"
    (repo_default / "notes").mkdir(parents=True)
    (repo_default / "notes" / "mine.txt").write_text("keep me")
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINT", repo_default)
    message = refused(["train", "--dataset", "tiny", "--ship"], capsys, data_dir, "not a shipped checkpoint")
    assert f"--ship writes {repo_default}: " in message and "--dest" not in message
    assert runs.list_runs() == [] and (repo_default / "notes" / "mine.txt").read_text() == "keep me"


def test_a_baseline_stopped_half_way_leaves_no_folder(data_dir, monkeypatch, capsys):
    """Reported: a cancelled baseline left its config.json."""
    import core.evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(core.evaluate, "baseline", interrupted)
    assert cli.main(["baseline", "majority", "--dataset", "tiny"]) == cli.EXIT_INTERRUPTED
    capsys.readouterr()
    assert list(runs.baselines_dir().iterdir()) == []


@pytest.fixture
def job_env(data_dir, monkeypatch):
    """A job store in the data dir, and tiny fakes for the model and feature cache."""
    import fake_vlm
    fake_vlm.install(monkeypatch)
    store = JobStore()
    yield store
    store.close()


def _run_job(store, kind: str, spec: dict, cancel: bool = False) -> tuple[int, str]:
    """Run one attempt of a job in-process, as the worker's child does; (exit code, output dir)."""
    job_id = store.submit(kind, spec)
    store.claim(os.getpid())
    if cancel:
        store.request_cancel(job_id)
    code = runner.run(job_id, 1, store)
    return code, store.get(job_id).run_dir


def test_a_cancelled_baseline_job_leaves_no_folder(job_env, monkeypatch):
    import core.evaluate

    def cancelled(*args, **kwargs):
        raise kinds.JobCancelled("cancelled while scoring")

    monkeypatch.setattr(core.evaluate, "baseline", cancelled)
    code, out = _run_job(job_env, "baseline", {"baseline": "majority", "config": {"dataset": "tiny"}})
    assert code == runner.EXIT_CANCELLED and job_env.get(1).status == "cancelled"
    assert out and not os.path.exists(out) and list(runs.baselines_dir().iterdir()) == []


def test_a_train_job_that_fails_before_a_checkpoint_leaves_no_run(job_env, monkeypatch):
    import core.train

    def broken(cfg, run_dir=None, progress=None, should_stop=None):
        raise RuntimeError("out of memory while loading the LM")

    monkeypatch.setattr(core.train, "train", broken)
    code, out = _run_job(job_env, "train", {"config": {"dataset": "tiny"}, "eval_splits": ["test"]})
    assert code == runner.EXIT_FAILED and "out of memory" in job_env.get(1).error
    assert out and not os.path.exists(out) and runs.list_runs() == []


def test_a_train_job_cancelled_before_training_leaves_no_run(job_env):
    spec = {"config": TrainConfig(dataset="tiny", epochs=1, device="cpu").to_dict(), "eval_splits": []}
    code, out = _run_job(job_env, "train", spec, cancel=True)   # stops at its first progress report
    assert code == runner.EXIT_CANCELLED and out and not os.path.exists(out)


def test_a_cancelled_train_job_with_a_checkpoint_is_kept_to_resume(job_env, monkeypatch):
    write_json = runs.write_json

    def cancel_after_first_epoch(path, obj):   # the user cancels once epoch 1 is saved
        write_json(path, obj)
        if path.name == runs.CHECKPOINT_JSON and obj.get("status") == "partial":
            job_env.request_cancel(1)

    monkeypatch.setattr(runs, "write_json", cancel_after_first_epoch)
    monkeypatch.setattr(runner, "CANCEL_POLL_EVERY_S", 0.0)      # the fake trains in well under 1 s
    spec = {"config": TrainConfig(dataset="tiny", epochs=3, batch_size=8, device="cpu").to_dict(),
            "eval_splits": []}
    code, out = _run_job(job_env, "train", spec)
    assert code == runner.EXIT_CANCELLED
    info = runs.load_run(out)
    assert info.epoch >= 1 and info.status in ("partial", "cancelled")   # resumable: kept


def test_the_dataset_lock_file_goes_away_and_still_excludes(data_dir):
    with datasets.build_lock("mine"):
        lock = paths.datasets_dir() / ".mine.lock"
        assert lock.is_file()
        with pytest.raises(datasets.DatasetError, match="being written by another process"):
            with datasets.build_lock("mine"):
                pass
        assert lock.is_file()                  # the refused second writer did not remove it
    assert not lock.exists()
    with datasets.build_lock("mine"):          # and it can be taken again
        pass
    assert list(paths.datasets_dir().iterdir()) == []


# -- case 5: a job gets the checks of its command, before it is queued ------------------------------

def _no_cuda() -> bool:
    import torch
    return not torch.cuda.is_available()


CASES = [
    (["train", "--dataset", "tiny", "--max-concepts", "3", "--condition", "systematic:5"],
     ["jobs", "submit", "train", "--dataset", "tiny", "--max-concepts", "3", "--condition", "systematic:5"],
     "more categories than dataset 'tiny' has (4)"),
    (["probe-lm", "--dataset", "tiny", "--lm", "nobody/nomodel"],
     ["jobs", "submit", "probe", "--dataset", "tiny", "--lm", "nobody/nomodel"],
     "LM nobody/nomodel is not available offline"),
    (["baseline", "majority", "--dataset", "tiny", "--max-concepts", "3", "--condition", "systematic:5"],
     ["jobs", "submit", "baseline", "--baseline", "majority", "--dataset", "tiny", "--max-concepts", "3",
      "--condition", "systematic:5"], "more categories than dataset 'tiny' has (4)"),
    (["coherence", "--dataset", "tiny", "--images", "test"],
     ["jobs", "submit", "coherence", "--dataset", "tiny", "--images", "test"],
     "images must be 'train' or 'all', got 'test'"),
    (["coherence", "--dataset", "tiny", "--encoder", "timm:resnet18"],
     ["jobs", "submit", "coherence", "--dataset", "tiny", "--encoder", "timm:resnet18"],
     "timm weights for resnet18 are not available"),
    pytest.param(["train", "--dataset", "tiny", "--device", "cuda"],
                 ["jobs", "submit", "train", "--dataset", "tiny", "--device", "cuda"], "no CUDA GPU",
                 marks=pytest.mark.skipif(not _no_cuda(), reason="this machine has a CUDA GPU")),
]


@pytest.mark.parametrize("direct, submit, fragment", CASES)
def test_a_job_is_refused_at_submit_for_what_its_command_refuses(direct, submit, fragment, data_dir, capsys):
    """Reported: `jobs submit coherence --max-concepts 8` was queued and failed later ("no two
    concepts share a category set") while `taxolens coherence --max-concepts 8` refused at once."""
    refused(direct, capsys, data_dir, fragment)
    before = tree(data_dir)
    assert cli.main(submit) == 2
    out, err = capsys.readouterr()
    assert fragment in err and out == ""
    assert tree(data_dir) == before            # not queued: not even a job store was created


def test_submit_all_queues_every_spec_or_none(data_dir):
    """The Train form queues one job per seed: a later seed's spec that cannot run (here one whose
    systematic condition asks for more categories than the dataset has) used to leave the earlier
    seeds queued."""
    from core import jobs
    good = {"config": TrainConfig(dataset="tiny", max_concepts=3, seed=0).to_dict()}
    bad = {"config": TrainConfig(dataset="tiny", max_concepts=3, seed=1, condition="systematic:5").to_dict()}
    with pytest.raises(kinds.JobSpecError, match=r"more categories than dataset 'tiny' has \(4\)"):
        jobs.submit_all("train", [good, bad])
    assert JobStore().list() == []
    ids = jobs.submit_all("train", [good, {"config": TrainConfig(dataset="tiny", max_concepts=3, seed=1).to_dict()}])
    assert [JobStore().get(i).spec["config"]["seed"] for i in ids] == [0, 1]


def test_a_subset_without_a_within_shuffle_is_queued_for_its_other_columns(data_dir, capsys):
    """It used to be refused ("no two concepts share a category set"), so the coherence table of a
    small setting's subset could not be made at all; its within column now stays empty instead."""
    from core.jobs.store import JobStore
    assert cli.main(["jobs", "submit", "coherence", "--dataset", "tiny", "--max-concepts", "3"]) == 0
    assert "queued" in capsys.readouterr().out
    (job,) = JobStore().list(kind="coherence")
    assert job.spec["max_concepts"] == 3 and job.spec["dataset"] == "tiny"


def test_slurm_jobs_skip_only_the_checks_of_this_machine(data_dir):
    spec = {"config": {"dataset": "tiny", "device": "cuda"}}
    if _no_cuda():
        with pytest.raises(kinds.JobSpecError, match="no CUDA GPU"):
            kinds.validate("train", spec)
    assert kinds.validate("train", spec, here=False)["config"]["device"] == "cuda"   # the node has one
    with pytest.raises(kinds.JobSpecError, match="more categories than"):         # data checks stay
        kinds.validate("train", {"config": {"dataset": "tiny", "max_concepts": 3,
                                            "condition": "systematic:5"}}, here=False)
    sweep = {"base": {"dataset": "tiny", "max_concepts": 3}, "conditions": ["systematic:5"]}
    with pytest.raises(kinds.JobSpecError, match="more categories than"):         # and reach sweeps
        kinds.validate("sweep", sweep)


def test_a_valid_job_is_still_queued(data_dir, capsys):
    assert cli.main(["jobs", "submit", "coherence", "--dataset", "tiny", "--seed", "2", "--json"]) == 0
    job, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)   # then a "no worker" hint
    assert job["status"] == "queued" and job["spec"]["seed"] == 2
    assert job["spec"]["images"] == "train"                           # the paper's coherence by default


def test_a_coherence_job_over_all_images_keeps_the_choice(data_dir, capsys):
    assert cli.main(["jobs", "submit", "coherence", "--dataset", "tiny", "--images", "all", "--json"]) == 0
    job, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert job["spec"]["images"] == "all" and job["spec"]["seed"] == 0
    assert kinds.get("coherence").describe(job["spec"]) == "coherence tiny efficientnet-lite2 seed 0 (all images)"
    assert cli.main(["jobs", "submit", "coherence", "--dataset", "tiny", "--split-percent", "0.7/0.05/0.25",
                     "--json"]) == 0
    job, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert (job["spec"]["images"], job["spec"]["split_percent"]) == ("train", "70/5/25")    # one spelling
    assert kinds.get("coherence").describe(job["spec"]) == "coherence tiny efficientnet-lite2 seed 0 (split 70/5/25)"
    assert cli.main(["jobs", "submit", "coherence", "--dataset", "tiny", "--images", "all", "--split-percent",
                     "70/5/25", "--json"]) == 0
    job, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert "split_percent" not in job["spec"]        # every image: no split, so one spec per table


def test_the_chat_prompt_needs_an_lm_with_a_chat_template(tmp_path):
    from core.config import ConfigError
    from core.models import registry
    folder = tmp_path / "base-lm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    with pytest.raises(ConfigError, match="has no chat template .*plain prompt"):
        registry.check_chat_template(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    registry.check_chat_template(str(folder))                     # in tokenizer_config.json
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    registry.check_chat_template(str(folder))                     # or beside it, as SmolLM2 ships it
    registry.check_chat_template("org/some-model")                # a hub id: known only once it loads


def test_clusters_and_lens_jobs_run_what_their_commands_run(job_env, data_dir, monkeypatch, capsys):
    """Geometry's trees and logit lens ran inside the page, so touching any widget threw minutes of
    LM questions away: they are jobs now, queued from the page or by `jobs submit clusters|lens`."""
    from core import clusters, lens
    assert cli.main(["train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "8"]) == 0
    (run,) = runs.list_runs()
    capsys.readouterr()
    asked = []
    monkeypatch.setattr(clusters, "compute", lambda run_dir, split, sources, progress:
                        asked.append(("clusters", run_dir, split, sources)) or {"levels": {}})
    monkeypatch.setattr(clusters, "score_table", lambda result: [])
    monkeypatch.setattr(lens, "summarize", lambda run_dir, progress: asked.append(("lens", run_dir)) or {"n_images": 4})
    assert cli.main(["jobs", "submit", "clusters", run.run_id, "--sources", "answers,encoder"]) == 0
    assert cli.main(["jobs", "submit", "lens", "--run", run.run_id]) == 0
    assert "queued: clusters " in capsys.readouterr().out
    for job in reversed(job_env.list()):             # oldest first, as the worker takes them
        assert job_env.claim(os.getpid()).id == job.id and runner.run(job.id, 1, job_env) == 0
    assert asked == [("clusters", str(run.path), "test", ["encoder", "answers"]), ("lens", str(run.path))]
    assert job_env.list(kind="lens")[0].result["n_images"] == 4


@pytest.mark.parametrize("argv, fragment", [
    (["jobs", "submit", "clusters", "nosuchrun"], "no run 'nosuchrun'"),
    (["jobs", "submit", "clusters", "RUN", "--sources", "encoder,pixels"], "sources must be a list drawn from"),
    (["jobs", "submit", "lens"], "lens job spec is missing run"),
])
def test_clusters_and_lens_jobs_are_refused_at_submit(argv, fragment, job_env, data_dir, capsys):
    if "RUN" in argv:                              # a trained run, refused for what else the spec says
        assert cli.main(["train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "8"]) == 0
        argv = [runs.list_runs()[0].run_id if a == "RUN" else a for a in argv]
        capsys.readouterr()
    assert cli.main(argv) == 2
    assert fragment in capsys.readouterr().err and job_env.list() == []
