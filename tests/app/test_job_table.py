"""The job table, the checkpoint table and the first-run box as a researcher with an imported dataset
meets them (a browser walk-through's reports): a sweep's running job stays listed and the rest of the
sweep is cancelled in one confirmed click; a failed job says its message, its traceback folded away;
checkpoints name their dataset; with the default dataset missing, Home says how to install it
rather than offering a first run that can only fail; the Data page names its own checkbox."""
from __future__ import annotations

import os

import pytest
from PIL import Image

from app_data import fake_run, own_datasets_dir
from core.config import TrainConfig
from core.jobs.store import JobStore
from test_pages import run_page
from ui import common

DATA = "app_pages/6_Data.py"


def import_mine(tmp_path, name: str = "mine") -> tuple:
    """A three-concept collection, no synsets (no WordNet needed), imported as `name`."""
    from core.data import things

    root = tmp_path / "photos"
    for i, concept in enumerate(("owl", "trout", "oak")):
        (root / concept).mkdir(parents=True, exist_ok=True)
        for j in range(3):
            Image.new("RGB", (32, 32), (40 * i + 10 * j, 90, 200 - 30 * i)).save(root / concept / f"{j}.png")
    table = tmp_path / "kinds.csv"
    table.write_text("concept,categories\nowl,animal;bird\ntrout,animal;fish\noak,plant\n")
    things.import_things(root, table, name)
    return root, table


@pytest.fixture
def only_mine(data_dir, tmp_path):
    """A datasets folder holding an imported `mine` and not the default `concepts`."""
    own_datasets_dir(data_dir, default=False)
    import_mine(tmp_path)
    return data_dir


@pytest.fixture
def mine_too(data_dir, tmp_path):
    """`concepts` (the session's) beside an imported `mine`, in the test's own datasets folder."""
    own_datasets_dir(data_dir)
    return import_mine(tmp_path)


def a_sweep(store: JobStore, n: int = 54) -> tuple[int, list[int]]:
    """A sweep job that has queued its `n` jobs (on `mine`), the oldest of them running."""
    specs = [("train", {"config": {"condition": "random:0.5", "seed": i, "dataset": "mine"}, "reuse": True})
             for i in range(n)]
    sweep = store.submit("sweep", {"name": "paper-cpu-mine", "jobs": [{"kind": k, "spec": s} for k, s in specs]})
    store.claim(os.getpid())
    store.finish(sweep, "succeeded", result={"children": []})
    children = store.submit_many(specs, parent_id=sweep)
    assert store.claim(os.getpid()).id == children[0]
    return sweep, children


def test_a_sweeps_running_job_is_listed_and_the_rest_of_the_sweep_cancels_in_one_confirmed_click(data_dir):
    store = JobStore()
    done = store.submit("train", {"config": {"condition": "none", "seed": 9}})     # an older, finished job
    store.claim(os.getpid())
    store.finish(done, "succeeded", result={})
    sweep, children = a_sweep(store)
    running = children[0]
    at = run_page(DATA)
    listed = [int(o.split()[0].lstrip("#")) for o in at.selectbox(key="job_detail_id").options]
    assert sorted(listed) == sorted([done, sweep, *children])       # 56 jobs: the running one among them
    at.selectbox(key="job_detail_id").select(running).run()
    assert not at.exception, [e.value for e in at.exception]

    assert at.button(key=f"sweep_cancel_{sweep}").disabled        # until the checkbox confirms it

    at.checkbox(key=f"sweep_cancel_sure_{sweep}").check().run()
    at.button(key=f"sweep_cancel_{sweep}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.counts()["queued"] == 0 and store.counts()["cancelled"] == len(children) - 1
    assert store.get(running).status == "running" and store.get(running).cancel_requested   # asked to stop
    assert store.get(done).status == "succeeded"                                           # not the sweep's
    said = [s.value for s in at.success]
    assert f"Sweep #{sweep}: cancelled {len(children) - 1} job(s); asked 1 running job(s) to stop." in said, said
    at.run()                                               # the table's next refresh
    assert all(c.key != f"sweep_cancel_sure_{sweep}" for c in at.checkbox)    # nothing left to cancel
    assert said[0] in [s.value for s in at.success]


def test_a_failed_jobs_details_say_its_message_and_fold_the_traceback(data_dir):
    store = JobStore()
    job = store.submit("train", {"config": {"condition": "none", "seed": 0}})
    store.claim(os.getpid())
    trace = ('Traceback (most recent call last):\n  File "/x/core/train.py", line 12, in train\n'
             '    raise ValueError("out of patience")\nValueError: out of patience')
    store.finish(job, "failed", error=f"ValueError: out of patience\n\n{trace}")
    at = run_page(DATA)
    assert at.selectbox(key="job_detail_id").value == job
    assert [e.value for e in at.error] == ["ValueError: out of patience"]
    (fold,) = [x for x in at.expander if x.label == "Traceback"]
    assert any('File "/x/core/train.py", line 12' in c.value for c in fold.code)
    (table,) = [d.value for d in at.dataframe if "job" in d.value.columns]
    assert table.loc[0, "message"] == "ValueError: out of patience"


def test_checkpoints_and_jobs_name_a_dataset_other_than_the_default(data_dir, mine_too):
    fake_run(TrainConfig(max_concepts=6, images_per_concept=3, epochs=1), evaluated=False)
    fake_run(TrainConfig(dataset="mine", epochs=1), evaluated=False)
    at = run_page()
    (table,) = [d.value for d in at.dataframe if "run" in d.value.columns]
    assert sorted(table["dataset"]) == ["concepts", "mine"]
    JobStore().submit("train", {"config": {"condition": "random:0.5", "seed": 0, "dataset": "mine"}})
    at = run_page()
    (jobs,) = [d.value for d in at.dataframe if "job" in d.value.columns]
    assert list(jobs["job"]) == ["train random:0.5 seed 0 on mine"]


def test_without_the_default_dataset_home_says_how_to_install_it_and_offers_no_first_run(only_mine):
    at = run_page()
    assert not [b for b in at.button if "first-run" in b.label]
    (box,) = [w.value for w in at.warning if "is not installed" in w.value]
    assert "**The default dataset, concepts, is not installed**" in box and "`make dataset`" in box
    assert "(**mine**)" in box                            # what can be trained meanwhile

    fake_run(TrainConfig(dataset="mine", epochs=1), evaluated=False)      # a run on the import
    common.refresh_runs()                                                 # the app's 5-second cache of runs
    at = run_page()
    assert not [b for b in at.button if "first-run" in b.label]
    (box,) = [w.value for w in at.warning if "is not installed" in w.value]
    assert "Predict uses the newest trained run" in box


def test_the_data_pages_name_clash_names_its_checkbox_and_the_cli_keeps_its_flag(data_dir, mine_too):
    from core.data import things
    from core.data.datasets import DatasetError

    root, table = mine_too
    at = run_page(DATA)
    at.text_input[0].input(str(root))
    at.text_input[1].input(str(table))
    at.text_input[2].input("mine")
    at.button[0].click().run()          # the form's submit button
    (error,) = [e.value for e in at.error]
    assert "a dataset named 'mine' already exists (choose another name, or tick *Replace the dataset of " \
           "that name*)" in error and "--replace" not in error
    assert any(c.label == "Replace the dataset of that name" for c in at.checkbox)
    with pytest.raises(DatasetError, match="replace it with --replace"):
        things.check_import(root, table, "mine")


def test_job_details_move_to_a_job_queued_since_the_last_look(data_dir):
    """Reported: after queueing a training job the details below the table kept showing the job picked
    before (#7's coherence log while #8 trained); a job picked by hand stays picked until a new one comes."""
    store = JobStore()
    first = store.submit("train", {"config": {"condition": "none", "seed": 0}})
    second = store.submit("train", {"config": {"condition": "none", "seed": 1}})
    at = run_page(DATA)
    at.selectbox(key="job_detail_id").set_value(first).run()
    at.run()
    assert at.selectbox(key="job_detail_id").value == first                   # no new job: the pick stays
    third = store.submit("train", {"config": {"condition": "none", "seed": 2}})
    at.run()
    assert at.selectbox(key="job_detail_id").value == third and second < third
    # a sweep's children, queued as it expands, do not take the details over from what was queued
    sweep = store.submit("sweep", {"name": "s", "jobs": []})
    at.run()
    assert at.selectbox(key="job_detail_id").value == sweep
    store.submit_many([("train", {"config": {"condition": "none", "seed": 3}})], parent_id=sweep)
    at.run()
    assert at.selectbox(key="job_detail_id").value == sweep
