"""Every page under Streamlit's AppTest: it loads without an exception, shows its key widgets, and
turns bad input into a readable message. Runs here are written by app_data.fake_run (no weights),
so nothing loads a model; predicting with a real checkpoint is covered by tests/e2e."""
from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_data import fake_geometry, fake_run, own_datasets_dir
from core import paths, runs
from core.config import TrainConfig

APP = str(paths.ROOT / "app.py")
TIMEOUT = 60


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()   # registers the st.navigation pages
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    for kind in (at.info, at.warning, at.error, at.success):
        parts += [e.value for e in kind]
    return "\n".join(str(p) for p in parts)


def small_cfg(**kw) -> TrainConfig:
    return TrainConfig(max_concepts=6, images_per_concept=3, epochs=1, **kw)


def png_bytes(color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, format="PNG")
    return buf.getvalue()


def test_home_shows_dataset_models_and_links(data_dir):
    at = run_page()
    assert at.title[0].value.endswith("TaxoLens")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Concepts"] == "12" and metrics["Images"] == "36"
    assert not at.error
    shown = texts(at)
    assert "No trained checkpoint yet" in shown          # first-run box on a fresh data dir
    assert "No checkpoints yet." in shown
    assert len(at.get("page_link")) == 6                  # Predict, Browse, Train, Results, Geometry, Data


def test_home_lists_checkpoints(data_dir):
    fake_run(small_cfg())
    at = run_page()
    frames = [df.value for df in at.dataframe]
    assert any("run" in f.columns and len(f) == 1 for f in frames)


def test_home_lists_each_checkpoints_test_numbers(data_dir):
    """Reported: the Home table named runs but no result, so comparing checkpoints meant opening
    Results or Predict for each. fake_run answers every leaf question right and the hypernym
    questions of every third test image wrong; only the evaluated run has numbers."""
    from core import runs
    evaluated = fake_run(small_cfg(condition="random:0.5"))
    runs.write_json(runs.eval_dir(evaluated, "test") / runs.RANKING_FILE,
                    {"images": 20, "vocabulary": 6, "top1": 0.35, "top5": 0.55, "median_rank": 4, "rows": []})
    bare = fake_run(small_cfg(seed=1), evaluated=False)
    at = run_page()
    (table,) = [df.value for df in at.dataframe if "run" in df.value.columns]
    table = table.set_index("run")
    done, never = table.loc[evaluated.name], table.loc[bare.name]
    assert done["leaf acc."] == 1.0 and done["top-5"] == 0.55
    recorded = json.loads((runs.eval_dir(evaluated, "test") / runs.METRICS_JSON).read_text())["hypernym"]
    assert recorded["seen"]["category_macro_f1"] != recorded["unseen"]["category_macro_f1"]
    assert done["seen macro-F1"] == recorded["seen"]["category_macro_f1"]
    assert done["unseen macro-F1"] == recorded["unseen"]["category_macro_f1"]
    assert never[["leaf acc.", "seen macro-F1", "unseen macro-F1", "top-5"]].isna().all()


def test_home_without_dataset_explains_how_to_build_it(data_dir):
    (data_dir / "datasets").unlink()
    at = run_page()
    assert any("make dataset" in w.value for w in at.warning)


def test_predict_without_checkpoint_offers_the_first_run(data_dir):
    at = run_page("app_pages/1_Predict.py")
    assert "No trained checkpoint yet" in texts(at)
    assert any(b.label == "Train the first-run model now" for b in at.button)
    assert not at.get("file_uploader")


def test_predict_offers_the_shipped_checkpoint_when_it_fits_and_was_not_installed(data_dir, monkeypatch):
    """Reported: an app started without `make app`'s first step (`streamlit run app.py`,
    --no-first-run) said the shipped checkpoint "is not used: shipped checkpoint ... fits dataset
    'concepts'" and offered only to train a starter."""
    from core.jobs import JobStore
    from core.models import checkpoint
    monkeypatch.setattr(checkpoint, "shipped_fit", lambda source=None: (True, "fits"))
    shipped = runs.read_json(runs.checkpoint_json(paths.SHIPPED_CHECKPOINT))["run_id"]
    at = run_page("app_pages/1_Predict.py")
    shown = texts(at)
    assert f"The checkpoint that ships with TaxoLens ({shipped}, test leaf accuracy " in shown
    assert "is not used" not in shown and not at.get("file_uploader")
    assert {b.label for b in at.button} >= {"Use the shipped checkpoint", "Train the first-run model instead"}
    at.button(key="first_run_install").click().run()
    assert not at.exception
    assert runs.checkpoint_version(data_dir / "runs" / shipped) == runs.checkpoint_version(paths.SHIPPED_CHECKPOINT)
    assert [j.kind for j in JobStore().list()] == ["coherence"]     # nothing trained; the features job queued
    assert "No default checkpoint here yet" not in texts(at)


def test_after_a_failed_first_run_the_shipped_checkpoint_is_offered_and_queues_the_features(data_dir, monkeypatch):
    from core.jobs import JobStore
    from core.models import checkpoint
    from ui import firstrun
    monkeypatch.setattr(checkpoint, "shipped_fit", lambda source=None: (True, "fits"))
    store = JobStore()
    failed = firstrun.submit_default_job(store)           # the first run, then it failed
    store.claim(worker_pid=1)
    store.finish(failed, "failed", error="out of memory", attempt=1)
    at = run_page("app_pages/1_Predict.py")
    at.button(key="first_run_install").click().run()
    assert not at.exception
    assert [j.kind for j in sorted(JobStore().list(), key=lambda j: j.id)] == ["train", "coherence"]


def test_predict_reports_each_bad_upload_by_name(data_dir):
    fake_run(small_cfg())
    at = run_page("app_pages/1_Predict.py")
    assert at.selectbox(key="predict_run").value is not None
    uploader = at.get("file_uploader")[0]
    uploader.set_value([("empty.png", b"", "image/png"), ("notes.png", b"just text", "image/png"),
                        ("cut.png", png_bytes()[:40], "image/png")])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(e.startswith("empty.png: the file is empty") for e in errors)
    assert any(e.startswith("notes.png: not a supported image") for e in errors)
    assert any(e.startswith("cut.png:") for e in errors)
    assert len(errors) == 3


def test_predict_preselects_the_first_run_checkpoint_over_newer_runs(data_dir):
    first = fake_run(runs.first_run_config())
    fake_run(small_cfg(seed=3), evaluated=False)
    at = run_page("app_pages/1_Predict.py")
    assert at.selectbox(key="predict_run").value == first.name


def test_browse_and_geometry_open_on_the_checkpoint_predict_opens_on(data_dir):
    """Reported: Browse and Geometry opened on the newest run (a fully ablated one) while Predict
    opened on the default checkpoint."""
    first = fake_run(runs.first_run_config())
    fake_run(small_cfg(seed=3, condition="random:1"))           # newer, evaluated
    predict = run_page("app_pages/1_Predict.py").selectbox(key="predict_run")
    assert predict.value == first.name
    assert all(" — concepts, " in o for o in predict.options)        # which dataset each checkpoint knows
    browse = run_page("app_pages/2_Browse.py").selectbox(key="browse_run")
    assert browse.value == first.name
    assert all(" — concepts, " in o for o in browse.options if "dataset's images alone" not in o)
    geometry = run_page("app_pages/5_Geometry.py")
    # before a coherence table is cached; after, "geometry_run" goes through the same choose_run
    assert geometry.selectbox(key="geometry_insight_run").value == first.name


def test_geometry_maps_the_preselected_checkpoint_once_coherence_is_cached(data_dir, monkeypatch):
    """With a coherence table cached, the projector map's run ("geometry_run") opens on the checkpoint
    Predict opens on, and choosing another run maps that one."""
    import numpy as np

    from core import geometry
    from core.data import datasets
    first = fake_run(runs.first_run_config())
    newer = fake_run(small_cfg(seed=3, condition="random:1"))
    mapped = []

    def features(ds, *args, **kwargs):
        return np.random.default_rng(len(ds.images)).normal(size=(len(ds.images), 8)).astype("float32")

    def outputs(ds, run_dir):
        mapped.append(runs.Path(run_dir))
        return features(ds)

    monkeypatch.setattr(geometry, "pooled_features", features)        # no encoder, no weights
    monkeypatch.setattr(geometry, "projector_outputs", outputs)
    monkeypatch.setattr(geometry, "embed_2d", lambda X, method="umap", seed=0: np.asarray(X)[:, :2])
    cfg = runs.first_run_config()
    geometry.coherence_table(datasets.load_dataset(cfg.dataset), cfg.encoder, 0)
    at = run_page("app_pages/5_Geometry.py")
    box = at.selectbox(key="geometry_run")
    assert box.value == first.name and mapped == [first]
    assert any(s.value == "Visual coherence per category" for s in at.subheader)
    box.set_value(newer.name).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="geometry_run").value == newer.name and mapped[-1] == newer


def test_geometry_coherence_is_over_the_training_images_and_says_so(data_dir, monkeypatch):
    """The paper's coherence (each category's training images under the seed's split) is what the
    page shows first; the radio switches to all images, computed from the cached features."""
    from core import geometry
    from core.data import datasets

    fake_geometry(monkeypatch)
    cfg = runs.first_run_config()
    ds = datasets.load_dataset(cfg.dataset)
    train = geometry.coherence_table(ds, cfg.encoder, 0)
    assert not geometry.is_cached(ds, cfg.encoder, 0, "all")
    at = run_page("app_pages/5_Geometry.py")
    assert at.radio(key="geometry_coherence_images").value == "train"
    assert "among the category's training images (seed 0's split), as the paper defines coherence" in texts(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Macro mean, original"] == f"{train.loc['all', 'original']:.3f}"
    at.radio(key="geometry_coherence_images").set_value("all").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "among all of the category's images" in texts(at) and geometry.is_cached(ds, cfg.encoder, 0, "all")
    everything = geometry.coherence_table(ds, cfg.encoder, 0, images="all")
    assert {m.label: m.value for m in at.metric}["Macro mean, original"] == f"{everything.loc['all', 'original']:.3f}"
    assert everything.loc["all", "original"] != train.loc["all", "original"]
    # the bars over another split's training images (the scatter below always uses its runs' own)
    at.radio(key="geometry_coherence_images").set_value("train").run()
    at.text_input(key="geometry_coherence_split").set_value("70/5/25").run()
    assert not at.exception, [e.value for e in at.exception]
    paper = geometry.coherence_table(ds, cfg.encoder, 0, split_percent="70/5/25")
    assert "training images (seed 0's 70/5/25 split), as the paper defines coherence, under each" in texts(at)
    assert {m.label: m.value for m in at.metric}["Macro mean, original"] == f"{paper.loc['all', 'original']:.3f}"
    at.text_input(key="geometry_coherence_split").set_value("50/50").run()
    assert any("split_percent must be" in e.value and "showing the 60/20/20 split" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}["Macro mean, original"] == f"{train.loc['all', 'original']:.3f}"


def test_geometry_coherence_vs_f1_is_one_models_runs_of_one_setting(data_dir, monkeypatch):
    """Reported (browser walk-through): under random:0 the chart averaged the pretrained LM's runs
    with its random-init control ("mean over 6 run(s)"), and runs of another split were left out
    silently. Now one setting and one model at a time, and a setting of another split is plotted
    against its own split's training images."""
    from core import geometry, results
    from core.data import datasets

    fake_geometry(monkeypatch)
    for seed in (0, 1):
        fake_run(small_cfg(seed=seed, condition="random:0.5"))
        fake_run(small_cfg(seed=seed, condition="random:0.5", lm_init="random"))
    fake_run(small_cfg(condition="random:0.5", split_percent="70/5/25"))
    cfg = runs.first_run_config()
    ds = datasets.load_dataset(cfg.dataset)
    geometry.coherence_table(ds, cfg.encoder, 0)
    at = run_page("app_pages/5_Geometry.py")
    assert at.radio(key="geometry_model").options == ["pretrained LM", "random-init LM"]
    assert "macro-F1 of the pretrained LM's 2 run(s) under random:0.5" in texts(at)
    at.radio(key="geometry_model").set_value("random-init LM").run()
    assert "macro-F1 of the random-init LM's 2 run(s) under random:0.5" in texts(at)
    other = next(k for k in results.settings([r for r in results.collect() if r["kind"] == "train"])
                 if dict(k)["split_percent"] == "70/5/25")
    assert any("split_percent=70/5/25" in o for o in at.selectbox(key="geometry_setting").options)
    at.selectbox(key="geometry_setting").set_value(other).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "(seed 0's 70/5/25 split), as the paper defines coherence (the runs' own split); macro-F1 of the " \
           "pretrained LM's 1 run(s)" in texts(at)
    assert geometry.is_cached(ds, cfg.encoder, 0, split_percent="70/5/25")


def test_browse_shows_grid_filters_and_run_scores(data_dir):
    fake_run(small_cfg())
    at = run_page("app_pages/2_Browse.py")
    assert at.selectbox(key="browse_run").value is not None
    from core.data import datasets
    ds = datasets.load_dataset("concepts")
    assert at.multiselect(key="browse_categories").options == sorted(c.label for c in ds.categories.values())
    assert at.radio(key="browse_correct").value == "any"
    labels = {m.label for m in at.metric}
    assert {"Leaf accuracy", "Leaf macro-F1 per concept", "Seen hypernym macro-F1", "Unseen hypernym macro-F1"} <= labels
    n_images = len(at.get("image"))
    at.radio(key="browse_correct").set_value("some wrong").run()
    assert not at.exception
    assert 0 < len(at.get("image")) < n_images
    scored = [c.value for c in at.caption if ":material/" in c.value]
    assert scored and all(":red[:material/cancel:]" in c for c in scored)
    at.radio(key="browse_correct").set_value("any")
    at.radio(key="browse_seen").set_value("with unseen").run()           # the condition "none" removed nothing
    assert not at.exception and "No question of the test split is about a (concept, category) pair" in texts(at)


def test_browse_without_runs_shows_the_dataset(data_dir):
    at = run_page("app_pages/2_Browse.py")
    assert "No evaluated run yet" in texts(at)
    assert len(at.get("image")) > 0


def test_train_form_explains_invalid_choices_before_queueing(data_dir):
    at = run_page("app_pages/3_Train.py")
    assert at.get("button_group")          # the condition picker
    at.button_group(key="train_condition").set_value("systematic").run()
    at.radio(key="train_systematic_how").set_value("these categories").run()
    form_buttons = [b for b in at.button if b.label == "Queue training"]
    assert form_buttons
    form_buttons[0].click().run()
    assert not at.exception
    assert any(e.value.startswith("Not queued:") for e in at.error)
    from core.jobs.store import JobStore
    assert JobStore().list() == []


def test_train_form_refuses_what_only_the_jobs_check_finds_and_keeps_the_page(data_dir, monkeypatch):
    """Found by an audit: the job's own checks (device, chat template, the data of each seed) ran
    outside the form's refusal, so "cuda" on a machine without one replaced the whole page, the
    Sweep tab and the jobs table with "The Train page: invalid train job: …"."""
    import torch
    from core.jobs.store import JobStore
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    at = run_page("app_pages/3_Train.py")
    next(s for s in at.selectbox if s.label == "Device").set_value("cuda")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = at.error
    assert error.value.startswith("Not queued:") and "no CUDA GPU" in error.value
    assert any(b.label == "Queue the sweep" for b in at.button)          # the rest of the page is still there
    assert JobStore().list() == []


def test_predict_offers_to_evaluate_a_checkpoint_without_a_test_evaluation(data_dir):
    """Found by an audit: the note beside every answer said "evaluate it (Train page or `taxolens
    evaluate`)", and the Train page has no such control. Predict queues the evaluate job itself."""
    from core.jobs.store import JobStore
    evaluated = fake_run(small_cfg(seed=3))
    assert not any(b.label == "Evaluate it on its test split" for b in run_page("app_pages/1_Predict.py").button)
    shutil.rmtree(runs.eval_dir(evaluated, "test"))
    at = run_page("app_pages/1_Predict.py")
    next(b for b in at.button if b.label == "Evaluate it on its test split").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    (job,) = JobStore().list(kind="evaluate")
    assert job.spec == {"run": str(evaluated), "split": "test"}
    assert not any(b.label == "Evaluate it on its test split" for b in at.button)     # its progress instead


def test_an_offered_job_queued_behind_a_busy_worker_says_which_job_it_waits_for(data_dir):
    """Geometry's trees, lens and Predict's evaluation are jobs: on a 2-core machine the worker runs
    one at a time, and "waiting for the worker" did not say it waits for an hour-long training run."""
    import os

    from core.jobs.store import JobStore
    fake_run(small_cfg(seed=3), evaluated=False)
    store = JobStore()
    store.worker_beat(os.getpid(), 1)                     # a live worker with one slot...
    busy = store.submit("train", {"config": small_cfg(seed=4).to_dict()})
    store.claim(os.getpid())                              # ...taken by a training job
    at = run_page("app_pages/1_Predict.py")
    next(b for b in at.button if b.label == "Evaluate it on its test split").click().run()
    assert not at.exception, [e.value for e in at.exception]
    bars = [p.proto.text for p in at.get("progress")]
    assert any(f"waiting for job #{busy} (train none seed 4) to finish: the worker here runs 1 job at a time" in t
               for t in bars), bars
    assert not any("No job worker is running" in w.value for w in at.warning)


def test_predict_offers_no_evaluation_while_the_training_job_evaluates_its_run(data_dir):
    """Found by a review: a train job marks its run finished, then evaluates it for minutes; the
    offer in that window queued a second evaluation of the same run."""
    import os

    from core.jobs.store import JobStore
    run_dir = fake_run(small_cfg(seed=3), evaluated=False)
    store = JobStore()
    job_id = store.submit("train", {"config": small_cfg(seed=3).to_dict()})
    store.claim(os.getpid())
    store.set_run_dir(job_id, run_dir)
    at = run_page("app_pages/1_Predict.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not any(b.label == "Evaluate it on its test split" for b in at.button)
    assert f"Its test evaluation comes from job #{job_id} (train), still running." in texts(at)


def test_train_form_rejects_bad_seeds(data_dir):
    at = run_page("app_pages/3_Train.py")
    at.text_input[0].set_value("0, x")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("seeds: 'x' is not a seed" in e.value for e in at.error)


def test_train_form_refuses_in_its_own_words(data_dir):
    """The refusal of a bad split named `split_percent`, where the field reads "Split %"."""
    at = run_page("app_pages/3_Train.py")
    next(t for t in at.text_input if t.label.startswith("Split %")).set_value("50/50")
    next(b for b in at.button if b.label == "Queue training").click().run()
    (error,) = at.error
    assert error.value.startswith("Not queued: “Split % (train/val/test)” must be") and "split_percent" not in error.value
    from core.jobs.store import JobStore
    assert JobStore().list() == []


def test_train_page_lists_jobs(data_dir):
    from core.jobs.store import JobStore
    store = JobStore()
    job_id = store.submit("train", {"config": small_cfg().to_dict(), "eval_splits": ["test"]})
    at = run_page("app_pages/3_Train.py")
    table = next(df.value for df in at.dataframe if "progress" in df.value.columns)
    assert list(table["id"]) == [job_id]
    assert at.selectbox(key="job_detail_id").value == job_id
    assert any(b.label == "Cancel job" for b in at.button)
    next(b for b in at.button if b.label == "Cancel job").click().run()
    assert store.get(job_id).status == "cancelled"


def test_results_compares_runs_and_offers_csv(data_dir):
    for seed in (0, 1):
        fake_run(small_cfg(condition="random:0.5", seed=seed))
        fake_run(small_cfg(condition="none", seed=seed))
    at = run_page("app_pages/4_Results.py")
    assert at.selectbox(key="results_setting").value is not None
    charts = at.get("plotly_chart")
    assert len(charts) >= 3
    assert len(at.get("download_button")) >= 2
    assert "4 training run(s)" in texts(at)


def test_results_summarize_older_evaluations_again_or_leave_them_out(data_dir):
    from core import runs
    fake_run(small_cfg(seed=0))
    redone = fake_run(small_cfg(seed=1))
    stale = fake_run(small_cfg(seed=2))
    for run in (redone, stale):
        path = runs.eval_dir(run, "test") / "metrics.json"
        metrics = runs.read_json(path)
        del metrics["hypernym"]["unseen"]["category_macro_f1"]
        runs.write_json(path, metrics)
    (runs.eval_dir(stale, "test") / "questions.csv").unlink()       # nothing to summarize again
    at = run_page("app_pages/4_Results.py")
    assert any("written by an older TaxoLens" in w.value and stale.name in w.value for w in at.warning)
    assert "2 training run(s)" in texts(at)
    # summarized again once, by whichever page read it first (Home's table here), and written back
    from core import metrics
    assert metrics.is_current(runs.read_json(runs.eval_dir(redone, "test") / "metrics.json"))


def test_results_leave_out_and_name_runs_of_another_dataset_version(data_dir):
    from core import runs
    fake_run(small_cfg(seed=0))
    older = fake_run(small_cfg(seed=1))
    ck = runs.read_json(runs.checkpoint_json(older))
    ck["dataset"]["table_sha256"] = "0" * 64                        # trained before the dataset was rebuilt
    runs.write_json(runs.checkpoint_json(older), ck)
    at = run_page("app_pages/4_Results.py")
    assert any("another version of their dataset" in i.value and older.name in i.value for i in at.info)
    assert "1 training run(s)" in texts(at)


def test_results_show_the_lm_probe_beside_the_vlm(data_dir):
    from core import metrics, paths, runs
    run = fake_run(small_cfg(condition="random:0.5"))
    cats = list(runs.read_json(runs.eval_dir(run, "test") / "metrics.json")["hypernym"]["per_category"])
    per_category = {k: {"chat_macro_f1": i / len(cats), "plain_macro_f1": 0.4, "pairwise": 0.5, "sentence": 0.6,
                        "chat_accuracy": 0.5, "plain_accuracy": 0.5} for i, k in enumerate(cats)}
    runs.write_json(paths.runs_dir() / "probes" / "smollm2-135m_concepts" / "metrics.json",
                    {"kind": "probe", "lm": "smollm2-135m", "lm_init": "pretrained", "dataset": "concepts",
                     "chat_macro_f1": 0.61, "plain_macro_f1": 0.4, "pairwise": 0.5, "sentence": 0.6,
                     "chat_accuracy": 0.5, "plain_accuracy": 0.5, "notes": [], "per_category": per_category})
    at = run_page("app_pages/4_Results.py")
    assert at.selectbox(key="results_probe_condition").value == "random:0.5"
    assert any(m.value == "0.610" for m in at.metric)
    import json
    figs = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    (scatter,) = [f for f in figs if f.get("xaxis", {}).get("title", {}).get("text") == "LM probe: chat_macro_f1"]
    title = scatter["title"]["text"]
    assert "Spearman" in title or "correlation undefined" in title


def test_results_compare_lms_and_prompt_formats_of_the_setting(data_dir):
    for prompt in ("plain", "chat"):
        for condition in ("random:0", "random:1"):
            fake_run(small_cfg(condition=condition, prompt=prompt))
    at = run_page("app_pages/4_Results.py")
    assert "Which LM and prompt format" in [h.value for h in at.subheader]
    (table,) = [d.value for d in at.dataframe if "unseen macro-F1 (r = 1)" in d.value.columns]
    assert sorted(table["prompt"]) == ["chat", "plain"] and set(table["seeds r = 0 / r = 1"]) == {"1 / 1"}


def test_results_without_runs_says_what_to_do(data_dir):
    at = run_page("app_pages/4_Results.py")
    assert "No evaluated runs yet" in texts(at)


def test_geometry_offers_the_coherence_job_when_nothing_is_cached(data_dir):
    at = run_page("app_pages/5_Geometry.py")
    assert at.selectbox(key="geometry_encoder").value
    assert at.radio(key="geometry_method").value == "umap"
    assert any(b.label == "Compute features and coherence" for b in at.button)
    next(b for b in at.button if b.key == "geometry_queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from core.jobs.store import JobStore
    (job,) = JobStore().list(kind="coherence")
    assert (job.spec["images"], job.spec["split_percent"], job.spec["seed"]) == ("train", "60/20/20", 0)
    assert not any(b.key == "geometry_queue" for b in at.button)         # queued: its progress instead


@pytest.mark.parametrize("page", ["app_pages/1_Predict.py", "app_pages/2_Browse.py", "app_pages/3_Train.py",
                                  "app_pages/4_Results.py", "app_pages/5_Geometry.py", "app_pages/6_Data.py"])
def test_pages_explain_a_missing_dataset(data_dir, page):
    fake_run(small_cfg(), evaluated=True)
    (data_dir / "datasets").unlink()
    at = run_page(page)
    assert not [e.value for e in at.error if "failed unexpectedly" in e.value]
    said = [m.value for m in (*at.warning, *at.error, *at.info)]
    assert any("concepts" in m and "dataset" in m for m in said), said      # not a silently blank page


class _FakePredictor:
    """Stands in for core.predict.Predictor (no models): a fixed prediction for any image."""
    concepts = ["dog"]

    def __init__(self, shortlist: int = 0, reads: list | None = None, leaves: list | None = None,
                 categories: list | None = None):
        self.seen, self.full, self.shortlist, self.reads = [], [], shortlist, reads or []
        self.leaves = leaves or [{"concept": "dog", "label": "dog", "p_yes": 0.9}]
        self.categories = categories or [{"category": "animal", "label": "animal", "p_yes": 0.8, "of_best": True}]

    def predict(self, image, top_k=5, full=False):
        from core.predict import ChainNode, Prediction
        self.seen.append(image.size)
        self.full.append(full)
        chain = [ChainNode("dog.n.01", "dog", 0.9, False), ChainNode("canine.n.02", "canine", 0.7, False),
                 ChainNode("animal.n.01", "animal", 0.8, True, "animal"),
                 ChainNode("organism.n.01", "organism", 0.6, False)]
        return Prediction("fake", "dog", self.leaves, [chain],
                          self.categories,
                          shortlist=0 if full else self.shortlist, reads=self.reads)


def test_predict_shows_good_uploads_next_to_bad_ones(data_dir, monkeypatch):
    from core import predict
    fake = _FakePredictor()
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
    fake_run(small_cfg(seed=7))
    at = run_page("app_pages/1_Predict.py")
    at.get("file_uploader")[0].set_value([("good.png", png_bytes("blue"), "image/png"),
                                          ("bad.webp", b"RIFF0000WEBPjunk", "image/webp")])
    at.run()
    assert not at.exception
    assert [e.value.split(":")[0] for e in at.error] == ["bad.webp"]
    assert any("Best guess:** dog" in m.value for m in at.markdown)
    assert "close call" not in texts(at)
    assert len(at.get("plotly_chart")) == 2                  # chain + category scores
    assert fake.seen == [(32, 32)]


def _predict_one_upload(monkeypatch, fake: _FakePredictor) -> AppTest:
    """The Predict page after one upload, answered by `fake`."""
    from core import predict
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
    fake_run(small_cfg(seed=7))
    at = run_page("app_pages/1_Predict.py")
    at.get("file_uploader")[0].set_value([("one.png", png_bytes("green"), "image/png")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_predict_says_when_the_best_guess_is_a_close_call(data_dir, monkeypatch):
    """Reported: "Best guess: frog P(yes) 0.97" was stated flatly with kangaroo at 0.95 below it."""
    leaves = [{"concept": c, "label": c, "p_yes": p} for c, p in (("dog", 0.97), ("wolf", 0.95), ("cat", 0.91))]
    at = _predict_one_upload(monkeypatch, _FakePredictor(leaves=leaves))
    # 0.91 is 0.06 below: not within it
    assert "A close call: wolf 0.95 is within 0.05 of it; the chain is drawn for the best guess only." in texts(at)


def test_predict_shows_the_top_categories_and_the_rest_in_a_table(data_dir, monkeypatch):
    """Reported: 40 category bars stacked ~800 px tall in the narrow column, 30 of them at 0.00."""
    cats = [{"category": f"c{i}", "label": f"cat {i}", "p_yes": 1 - i / 40, "of_best": i == 30} for i in range(40)]
    at = _predict_one_upload(monkeypatch, _FakePredictor(categories=cats))
    bars = next(c for c in at.get("plotly_chart") if '"orientation":"h"' in c.proto.spec.replace(" ", ""))
    import json
    shown = json.loads(bars.proto.spec)["data"][0]["y"]
    assert len(shown) == 13 and "cat 30" in shown and "cat 12" not in shown      # top 12 + the best leaf's own
    assert any("(top 12 of 40, and the best guess's own)" in m.value for m in at.markdown)
    assert at.expander and at.expander[0].label == "All 40 categories"
    assert len(next(df.value for df in at.dataframe if "category" in df.value.columns)) == 40


def test_the_gallery_marks_each_image_with_the_checkpoints_split(data_dir, monkeypatch):
    """Reported: nothing said whether a gallery image had been trained on."""
    from core import predict, rundata
    from core.data import datasets
    run_dir = fake_run(small_cfg(seed=7))
    split = rundata.image_split(runs.load_run(run_dir).config)
    ds = datasets.load_dataset("concepts")
    concept = next(c for c in sorted(ds.concepts) if any(im.id in split for im in ds.images_of(c)))
    fake = _FakePredictor()
    fake.concepts = [concept]                       # the checkpoint's vocabulary: this one concept
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
    at = run_page("app_pages/1_Predict.py")
    at.session_state["predict_tab"] = "Pick from the dataset"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    images = ds.images_of(concept)
    radio = at.radio(key=f"gallery_pick_{concept}")
    assert radio.options == [f"{im.style} · {split[im.id]}" if im.id in split else im.style for im in images]
    assert f"(a {split[images[0].id]} image of this checkpoint)" in texts(at)


def test_predict_shows_what_a_posterior_projector_reads_beside_the_answers(data_dir, monkeypatch):
    from core import predict
    reads = [{"concept": "wolf", "label": "wolf", "share": 0.6}, {"concept": "dog", "label": "dog", "share": 0.3}]
    fake_run(small_cfg(seed=7))
    for given, shown, colour in ((reads, True, "blue"), ([], False, "red")):     # predictions are cached per image
        import streamlit as st
        st.cache_resource.clear()                          # the page caches its predictor per checkpoint
        fake = _FakePredictor(reads=given)
        monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
        at = run_page("app_pages/1_Predict.py")
        at.get("file_uploader")[0].set_value([("good.png", png_bytes(colour), "image/png")])
        at.run()
        assert not at.exception
        assert any(m.value == "**What the LM reads**" for m in at.markdown) == shown
        tables = [d.value for d in at.dataframe]
        assert len(tables) == 1 + shown
        if shown:
            assert list(tables[1]["concept"]) == ["wolf", "dog"] and list(tables[1]["share"]) == [0.6, 0.3]


def test_predict_offers_every_leaf_in_fp32_when_it_shortlisted(data_dir, monkeypatch):
    from core import predict
    fake = _FakePredictor(shortlist=40)
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: fake))
    fake_run(small_cfg(seed=7))
    at = run_page("app_pages/1_Predict.py")
    at.get("file_uploader")[0].set_value([("good.png", png_bytes("blue"), "image/png")])
    at.run()
    (toggle,) = [t for t in at.toggle if t.label == "Score every leaf in fp32"]
    assert fake.full == [False] and not toggle.value
    toggle.set_value(True).run()
    assert not at.exception and fake.full == [False, True]
    assert [t.value for t in at.toggle if t.label == "Score every leaf in fp32"] == [True]   # stays to switch back
    import streamlit as st
    st.cache_resource.clear()                              # the page caches its predictor per checkpoint
    none = _FakePredictor(shortlist=0)
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: none))
    at = run_page("app_pages/1_Predict.py")
    at.get("file_uploader")[0].set_value([("other.png", png_bytes("red"), "image/png")])
    at.run()
    assert none.full == [False] and not [t for t in at.toggle if t.label == "Score every leaf in fp32"]
    # and where there is no switch, the page says every leaf was scored and why (a walk-through looked for it)
    assert any("every leaf scored in full (the bf16 leaf shortlist" in c.value for c in at.caption)
    st.cache_resource.clear()
    small = _FakePredictor(shortlist=20)            # a bf16 CPU, but a vocabulary within the shortlist
    small.predict = lambda image, top_k=5, full=False: _FakePredictor.predict(small, image, top_k, True)
    monkeypatch.setattr(predict.Predictor, "load", classmethod(lambda cls, run_dir, device=None: small))
    at = run_page("app_pages/1_Predict.py")
    at.get("file_uploader")[0].set_value([("third.png", png_bytes("green"), "image/png")])
    at.run()
    assert any("no larger than the bf16 leaf shortlist" in c.value for c in at.caption)


def test_train_form_queues_one_job_per_seed(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    at.button_group(key="train_condition").set_value("random").run()
    at.text_input[0].set_value("0-2")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Queued 3 training job(s)" in s.value for s in at.success)
    jobs = JobStore().list()
    assert sorted(j.spec["config"]["seed"] for j in jobs) == [0, 1, 2]
    assert {j.spec["config"]["condition"] for j in jobs} == {"random:0.5"}


def test_train_form_passes_prompt_hard_negatives_and_ranking_options(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(s for s in at.selectbox if s.label == "Prompt").set_value("chat")
    next(n for n in at.number_input if n.label == "Hard negatives").set_value(3)
    next(n for n in at.number_input if n.label == "Ranking negatives").set_value(7)
    next(n for n in at.number_input if n.label == "Ranking: share of siblings").set_value(0.5)
    next(n for n in at.number_input if n.label == "Mined ranking negatives").set_value(2)
    next(n for n in at.number_input if n.label == "Mining pool").set_value(9)
    next(s for s in at.selectbox if s.label == "Projector input").set_value("posterior")
    next(n for n in at.number_input if n.label == "Ranking: posterior share").set_value(0.5)
    fresh = next(c for c in at.checkbox if c.label == "Fresh negatives each epoch")
    fresh.set_value(not fresh.value)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["prompt"] == "chat" and job.spec["config"]["hard_negatives"] == 3
    assert job.spec["config"]["fresh_negatives"] is (not TrainConfig().fresh_negatives)
    assert job.spec["config"]["rank_negatives"] == 7 and job.spec["config"]["rank_siblings"] == 0.5
    assert job.spec["config"]["rank_mined"] == 2 and job.spec["config"]["mine_pool"] == 9
    assert job.spec["config"]["rank_soft"] == 0.5 and job.spec["config"]["projector_input"] == "posterior"


def test_train_form_passes_dropout_grid_crop_concept_mixup_name_loss_and_precision(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(n for n in at.number_input if n.label == "Naming loss weight").set_value(0.25)
    next(n for n in at.number_input if n.label == "Input dropout").set_value(0.3)
    next(n for n in at.number_input if n.label == "Grid crop (0 = whole image)").set_value(7)
    next(n for n in at.number_input if n.label == "Concept mixup").set_value(0.5)
    next(s for s in at.selectbox if s.label == "LM precision in training").set_value("fp32")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    cfg = job.spec["config"]
    assert (cfg["dropout"], cfg["grid_crop"], cfg["concept_mixup"], cfg["name_loss"], cfg["precision"]) == \
        (0.3, 7, 0.5, 0.25, "fp32")


def test_train_form_passes_the_split_and_refuses_one_without_a_test_share(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    split = next(t for t in at.text_input if t.label == "Split % (train/val/test)")
    assert split.value == "60/20/20"
    split.set_value("90/10/0")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("each need a share above 0" in e.value for e in at.error)
    assert not JobStore().list()
    next(t for t in at.text_input if t.label == "Split % (train/val/test)").set_value("70, 5, 25")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["split_percent"] == "70/5/25"


def test_train_form_passes_the_projector_options_and_refuses_a_hidden_width_for_linear(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(n for n in at.number_input if n.label == "Projector hidden width (0 = the LM's)").set_value(1152)
    next(n for n in at.number_input if n.label == "LM tokens per image token").set_value(4)
    next(s for s in at.selectbox if s.label == "Projector start").set_value("probe")
    next(s for s in at.selectbox if s.label == "Projector").set_value("linear")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("needs a gelu-mlp projector" in e.value for e in at.error)
    assert not JobStore().list()
    next(s for s in at.selectbox if s.label == "Projector").set_value("gelu-mlp")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    cfg = job.spec["config"]
    assert (cfg["projector_hidden"], cfg["projector_tokens"], cfg["projector_init"]) == (1152, 4, "probe")


def test_train_form_passes_the_posterior_input_and_refuses_it_with_several_image_tokens(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(s for s in at.selectbox if s.label == "Projector input").set_value("posterior")
    next(n for n in at.number_input if n.label == "Image tokens").set_value(4)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("“Projector input” 'posterior'" in e.value for e in at.error)
    assert not JobStore().list()
    next(n for n in at.number_input if n.label == "Image tokens").set_value(1)
    next(n for n in at.number_input if n.label == "Top-k concept tokens").set_value(5)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["projector_input"] == "posterior" and job.spec["config"]["projector_topk"] == 5
    next(s for s in at.selectbox if s.label == "Projector input").set_value("features")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("“Top-k concept tokens” needs “Projector input” 'posterior'" in e.value for e in at.error)
    assert len(JobStore().list()) == 1


def test_train_form_passes_augmented_views_and_refuses_them_with_a_grid_crop(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(n for n in at.number_input if n.label == "Augmented views").set_value(3)
    next(n for n in at.number_input if n.label == "Grid crop (0 = whole image)").set_value(7)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("“Augmented views” and “Grid crop (0 = whole image)” cannot be combined" in e.value for e in at.error)
    assert not JobStore().list()
    next(n for n in at.number_input if n.label == "Grid crop (0 = whole image)").set_value(0)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["augment_views"] == 3


def test_train_form_passes_line_art_views(data_dir):
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    next(n for n in at.number_input if n.label == "Line-art views").set_value(2)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["line_art_views"] == 2


def test_train_form_starts_a_second_stage_from_a_trained_run(data_dir):
    from core.jobs.store import JobStore
    first = fake_run(TrainConfig(seed=0), evaluated=False)
    at = run_page("app_pages/3_Train.py")
    start = next(s for s in at.selectbox if s.label == "Start from run")
    assert first.name in start.options
    start.set_value(first.name)
    next(t for t in at.text_input if t.label == "Seeds").set_value("0, 1")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert at.error and "differs in seed (0 there, 1 here)" in at.error[0].value    # seed 1 has no first stage
    assert not JobStore().list()
    next(t for t in at.text_input if t.label == "Seeds").set_value("0")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["init_from"] == first.name


def test_train_form_starts_at_the_shipped_recipe_and_queues_its_two_stages_as_leaf_stage_trains_them(data_dir):
    """The shipped recipe's starts fill the form, and what the form does not show (patience) comes
    with them: both queued stages follow the recipe, as `taxolens train --leaf-stage` trains it."""
    import dataclasses

    from core.config import LEAF_STAGE, SHIPPED_RECIPE
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    at.radio(key="train_start").set_value("the shipped recipe, leaf stage").run()
    assert any("No finished first stage of the shipped recipe" in i.value for i in at.info)
    at.radio(key="train_start").set_value("the shipped recipe, first stage").run()
    assert next(n for n in at.number_input if n.label == "Line-art views").value == 2
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    first = TrainConfig.from_dict(job.spec["config"])
    assert runs.follows_recipe(first, [TrainConfig(**SHIPPED_RECIPE)]) and not first.init_from
    assert first.rank_soft == 0.0 and first.line_art_views == 2       # rank_soft waits for the leaf stage

    done = fake_run(dataclasses.replace(first, seed=1), evaluated=False)     # that job on seed 1, finished
    for newer in (TrainConfig(seed=0), first.leaf_stage(done.name)):    # a default run; a leaf stage
        ck = runs.checkpoint_json(fake_run(newer, evaluated=False))        # without rank_soft: not offered
        runs.write_json(ck, {**runs.read_json(ck), "created": "2099-01-01T00:00:00+00:00"})   # newest
    at = run_page("app_pages/3_Train.py")
    at.radio(key="train_start").set_value("the shipped recipe, leaf stage").run()
    assert not any("No finished first stage" in i.value for i in at.info)
    assert next(s for s in at.selectbox if s.label == "Start from run").value == done.name
    assert next(t for t in at.text_input if t.label == "Seeds").value == "1"       # the first stage's seed
    next(s for s in at.selectbox if s.label == "Start from run").set_value("none (a fresh projector)")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("starts from its first stage" in e.value for e in at.error)
    assert len(JobStore().list()) == 1
    next(s for s in at.selectbox if s.label == "Start from run").set_value(done.name)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    queued = [TrainConfig.from_dict(j.spec["config"]) for j in JobStore().list()]
    assert len(queued) == 2
    (leaf,) = [c for c in queued if c.init_from]
    assert leaf.init_from == done.name and leaf.seed == 1 and leaf.rank_soft == 1.0
    assert leaf.patience == LEAF_STAGE["patience"] and runs.follows_recipe(leaf, [TrainConfig(**SHIPPED_RECIPE)])


def test_train_form_refuses_models_without_weights(data_dir, monkeypatch):
    from ui import common
    rows = [{"model": "smollm2-135m", "kind": "language model", "version": "x", "license": "x",
             "weights present": False, "note": "missing: run `make assets`"},
            {"model": "efficientnet-lite2", "kind": "image encoder", "version": "x", "license": "x",
             "weights present": True, "note": ""}]
    monkeypatch.setattr(common, "model_rows", lambda: rows)
    at = run_page("app_pages/3_Train.py")
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert any("weights of smollm2-135m are not on this machine" in e.value for e in at.error)


def _guarded_script():
    import streamlit as st

    from core.config import ConfigError
    from ui import common

    with common.guard("The demo"):
        raise ConfigError("epochs must be an integer in [1, 1000], got 0")
    with common.guard("The other demo"):
        raise RuntimeError("boom")
    st.write("the rest of the page still runs")


def test_guard_shows_one_line_per_error_and_keeps_the_page_going():
    at = AppTest.from_function(_guarded_script, default_timeout=TIMEOUT).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors[0] == "The demo: epochs must be an integer in [1, 1000], got 0"
    assert errors[1].startswith("The other demo failed unexpectedly (RuntimeError: boom)")
    assert "Traceback" not in "".join(errors)
    assert at.markdown[-1].value == "the rest of the page still runs"


def small_preset(name, scale="cpu", base=None):
    """A grid the fixture dataset can hold, under the paper preset's name (with its base, named as
    sweeps.preset names it)."""
    from core.jobs import sweeps
    spec = {"name": f"paper-{scale}", "scale": scale, "grids": [{"conditions": ["random"], "ratios": [0.5],
                                                                 "seeds": [0, 1]}]}
    return sweeps._with_base(spec, base) if base else spec


def test_sweep_form_queues_the_sweep_on_the_dataset_the_page_shows(data_dir, monkeypatch):
    """Reported: the Sweep tab ignored the page's Dataset list, so on an imported collection it
    queued the default dataset's paper sweep."""
    from core.jobs import sweeps
    from core.jobs.store import JobStore
    own_datasets_dir(data_dir, also=("other",))     # a second dataset: the fixture set under another name
    at = run_page("app_pages/3_Train.py")
    at.selectbox(key="train_dataset").set_value("other").run()
    assert any(" jobs in the paper preset at scale cpu on dataset **other** (sweep `paper-cpu-other`; whole "
               "categories removed: systematic:1, systematic:3); " in c.value    # a quarter and half of its 5
               for c in at.caption), [c.value for c in at.caption]
    monkeypatch.setattr(sweeps, "preset", small_preset)
    at.selectbox(key="sweep_scale").set_value("smoke").run()
    next(b for b in at.button if b.label == "Queue the sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (sweep,) = JobStore().list()
    assert sweep.spec["source"] == {"preset": "paper", "scale": "smoke", "base": {"dataset": "other"}}
    assert sweep.spec["name"] == "paper-smoke-other"
    assert {j["spec"]["config"]["dataset"] for j in sweep.spec["jobs"]} == {"other"}


def test_the_train_page_trains_an_imported_dataset_that_is_the_only_one(data_dir):
    """Reported (browser walk-through): with only an imported dataset on the machine the Train page
    showed no Dataset list and said "dataset 'concepts' not found", so it could not be trained on."""
    from core.jobs.store import JobStore
    own_datasets_dir(data_dir, default=False, also=("mine",))
    at = run_page("app_pages/3_Train.py")
    # (the fixture's few concepts make some sweep conditions remove the same pairs: that warning may show)
    assert not [w.value for w in at.warning if "remove the same pairs" not in w.value]
    assert any("on dataset **mine** (sweep `paper-cpu-mine`; " in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Queue training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = JobStore().list()
    assert job.spec["config"]["dataset"] == "mine"


def test_sweep_form_queues_the_paper_grid_as_jobs_or_as_one_job(data_dir, monkeypatch):
    from core.jobs import sweeps
    from core.jobs.store import JobStore
    at = run_page("app_pages/3_Train.py")
    preset = next(s for s in at.selectbox if s.label == "Preset")
    assert preset.options == list(sweeps.PRESETS) and preset.value == "paper"
    preset.set_value("lms").run()
    assert any("The **lms** preset" in m.value for m in at.markdown)
    assert any(" jobs in the lms preset at scale cpu on dataset **concepts** (sweep `lms-cpu`); " in c.value
               and "no run of this size and these models has finished" in c.value for c in at.caption)
    assert "cpu: concepts: 80, images per concept: all" in next(s for s in at.selectbox if s.label == "Scale").options
    next(s for s in at.selectbox if s.label == "Preset").set_value("paper").run()
    at.selectbox(key="sweep_scale").set_value("smoke").run()              # the caption follows the scale
    assert any(" jobs in the paper preset at scale smoke on dataset " in c.value for c in at.caption)
    assert not JobStore().list()                                          # choosing queues nothing
    at.selectbox(key="sweep_scale").set_value("cpu").run()
    bad = next(b for b in at.button if b.label == "Queue the sweep").click().run()
    assert "more categories than dataset" in bad.error[0].value       # the fixture set has 5 categories
    # a grid this fixture can hold, under the paper preset's name
    monkeypatch.setattr(sweeps, "preset", small_preset)
    next(s for s in at.selectbox if s.label == "Scale").set_value("smoke")
    next(b for b in at.button if b.label == "Queue the sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    next(c for c in at.checkbox if c.label.startswith("As one job")).set_value(True)
    next(b for b in at.button if b.label == "Queue the sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    sweep, one = sorted(JobStore().list(), key=lambda j: j.id)
    assert sweep.kind == "sweep" and sweep.spec["source"] == {"preset": "paper", "scale": "smoke"}
    assert one.kind == "sweep-run" and one.spec["source"]["name"] == "paper-smoke"
    assert one.spec["jobs"] == len(sweep.spec["jobs"])


def test_the_ratio_curve_says_what_is_missing_instead_of_drawing_one_dot(data_dir):
    """Reported: with only a `none` run the "Against the ablation ratio r" chart showed one dot at
    r = 0, a caption naming lines it did not draw, and no word of what was missing."""
    fake_run(small_cfg(seed=0))
    import streamlit as st
    at = run_page("app_pages/4_Results.py")
    assert any(i.value.startswith("Only r = 0 (`none`) so far in this setting: the curve needs two ratios")
               for i in at.info), [i.value for i in at.info]
    charts = len(at.get("plotly_chart"))
    fake_run(small_cfg(seed=0, condition="random:0.5"))
    st.cache_data.clear()                      # the page reads results through a cache
    at = run_page("app_pages/4_Results.py")
    assert not any("so far in this setting" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) > charts                 # the curve is drawn now


def test_predict_warns_beside_the_answers_that_a_blank_picture_has_nothing_to_recognise(data_dir, monkeypatch):
    """Reported: a fully transparent PNG's "one flat colour" note was a grey caption above a bold
    "Best guess: pig P(yes) 1.00"; a researcher reads the answer, not the caption."""
    at = _predict_one_upload(monkeypatch, _FakePredictor())          # png_bytes: one flat colour
    assert any(w.value == "The picture is one flat colour: there is nothing in it to recognise, so any answer "
                          "is a guess." for w in at.warning), [w.value for w in at.warning]
