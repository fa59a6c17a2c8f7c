"""The Data page under AppTest: the datasets here with their concepts, and an import of a small
collection from the form, refused at once for what can be checked and queued as a job otherwise;
and Browse showing an imported dataset's images before any run is trained on it."""
from __future__ import annotations

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_data import own_datasets_dir
from core import paths
from core.jobs import kinds
from core.jobs.store import JobStore

APP = str(paths.ROOT / "app.py")
PAGE = "app_pages/6_Data.py"


@pytest.fixture
def own_datasets(data_dir):
    """The test's own datasets folder (the session's is shared by every app test): an import here
    must not show up on other tests' pages."""
    own_datasets_dir(data_dir)
    return data_dir


def run_page(page: str = PAGE) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def collection(tmp_path):
    root = tmp_path / "photos"
    for i, concept in enumerate(("owl", "trout", "oak")):
        for j in range(2):
            (root / concept).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (40 * i + 10 * j, 90, 200 - 30 * i)).save(root / concept / f"{j}.png")
    table = tmp_path / "kinds.csv"
    table.write_text("concept,categories,synset\nowl,animal;bird,owl.n.01\ntrout,animal;fish,\noak,plant,\n")
    return root, table


def fill(at: AppTest, root, table, name: str) -> AppTest:
    at.text_input[0].input(str(root))
    at.text_input[1].input(str(table))
    at.text_input[2].input(name)
    at.button[0].click()          # the form's submit button
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_data_page_lists_the_datasets_and_their_concepts(data_dir):
    at = run_page()
    (table,) = [d for d in at.dataframe if "dataset" in d.value.columns]
    row = table.value.set_index("dataset").loc["concepts"]
    assert row["concepts"] > 0 and row["images"] >= row["concepts"] and row["categories"] > 0
    assert at.selectbox(key="data_dataset").value == "concepts"
    concepts = [d for d in at.dataframe if "asked as" in d.value.columns]
    assert concepts and len(concepts[0].value) == row["concepts"]
    assert any("**Run the study on it:** choose *concepts*" in m.value and "sweep `paper-cpu`" in m.value
               for m in at.markdown)


def test_an_import_from_the_form_is_refused_at_once_or_queued_and_the_job_makes_the_dataset(own_datasets, tmp_path):
    root, table = collection(tmp_path)
    at = fill(run_page(), tmp_path / "nowhere", table, "mine")
    (error,) = at.error
    assert error.value.startswith("Not queued") and "the image folder does not exist" in error.value
    assert "refused, 1 problem(s):\n  - " in error.value          # a markdown list: one problem per line
    assert JobStore().list() == []

    at.text_input(key="data_import_style").input("sketch")
    at = fill(at, root, table, "mine")
    assert "Queued import job" in at.success[0].value
    (job,) = JobStore().list()
    assert job.kind == "import" and job.spec["root"] == str(root) and job.spec["style"] == "sketch"
    kinds.get("import").execute(job.spec, kinds.JobContext(job.id, lambda f, m: None, lambda: False))

    at = run_page()
    listed = [d for d in at.dataframe if "dataset" in d.value.columns][0].value.set_index("dataset")
    assert listed.loc["mine", "concepts"] == 3 and listed.loc["mine", "images"] == 6
    at.selectbox(key="data_dataset").select("mine").run()
    assert any("3 concept(s) have fewer than 3 images" in w.value for w in at.warning)   # 2 each: no val image
    concepts = [d for d in at.dataframe if "asked as" in d.value.columns][0].value
    assert sorted(concepts["concept"]) == ["oak", "owl", "trout"]
    assert concepts.set_index("concept").loc["owl", "categories"] == "animal, bird"
    assert any("`taxolens sweep submit paper --dataset mine`, sweep `paper-cpu-mine`" in m.value for m in at.markdown)


def test_an_empty_form_is_refused_in_its_own_words(own_datasets, tmp_path):
    """Reported: "Not queued: invalid import job: root must be a non-empty string, got ''" named the
    job's fields, and only the first empty one."""
    root, _ = collection(tmp_path)
    at = fill(run_page(), root, "", "")
    (error,) = at.error
    assert error.value == "Not queued: fill in “Concept table (CSV)” and “Dataset name”."
    assert JobStore().list() == []


def test_browse_shows_an_imported_dataset_alone_beside_evaluated_runs(own_datasets, tmp_path):
    from app_data import fake_run
    from core.config import TrainConfig
    from core.data import things

    fake_run(TrainConfig(max_concepts=6, images_per_concept=3, epochs=1), evaluated=True)
    root, table = collection(tmp_path)
    things.import_things(root, table, "mine")
    at = run_page("app_pages/2_Browse.py")
    assert at.selectbox(key="browse_run").value is not None              # the evaluated run first
    at.selectbox(key="browse_run").select("none: a dataset's images alone").run()
    at.selectbox(key="browse_dataset").select("mine").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(str(m.value) for m in (*at.markdown, *at.caption))
    assert "6 image(s)" in shown and shown.count("owl · photo") == 2, shown[:600]     # the import's, not concepts


def test_an_import_job_that_fails_is_said_on_the_page(own_datasets, tmp_path):
    """The images are read by the job: a broken one fails it, and the page says so once it ends."""
    from core.data.datasets import ImportValidationError

    root, table = collection(tmp_path)
    (root / "oak" / "1.png").write_bytes(b"not a picture")
    at = fill(run_page(), root, table, "mine")
    assert "Queued import job" in at.success[0].value                 # nothing wrong before the images
    (job,) = JobStore().list()
    with pytest.raises(ImportValidationError) as err:                # what the worker's attempt meets
        kinds.get("import").execute(job.spec, kinds.JobContext(job.id, lambda f, m: None, lambda: False))
    JobStore().finish(job.id, "failed", error=str(err.value))
    at.run()                                                          # the page's watch sees the job end
    assert not at.exception, [e.value for e in at.exception]
    said = [e.value for e in at.error]
    assert any(f"Import job #{job.id} of **mine** failed; nothing was kept" in e and "oak/1.png" in e
               for e in said), said


def test_home_names_the_imported_datasets(own_datasets, tmp_path):
    from core.data import things

    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "Also here" not in " ".join(c.value for c in at.caption)          # the default set alone
    root, table = collection(tmp_path)
    things.import_things(root, table, "mine")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any(c.value.startswith("Also here: **mine**") for c in at.caption), [c.value for c in at.caption]
