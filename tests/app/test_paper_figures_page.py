"""The paper's figures on the Results page (AppTest) and from `taxolens results figures`, on a fake
grid of runs written to a throwaway data dir (tests/app/paper_data.py): every figure drawn with its
downloads, the empty states naming the command that makes what is missing, and the CLI's files.
The computations are tested on hand-made rows in tests/unit/test_paper_figures.py."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from paper_data import fake_coherence, fake_grid
from test_pages import APP
from test_results import fake_probe

TIMEOUT = 240


def results_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/4_Results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _titles(at) -> list[str]:
    return [s.value for s in at.subheader]


def test_every_paper_figure_is_drawn_with_its_downloads(data_dir):
    from core import datasets
    fake_grid(conditions=("none", "random:0.5", "random:1", "systematic:1", "cross"), seeds=(0, 1))
    ds = datasets.load_dataset("concepts")
    fake_coherence(ds)
    fake_probe("smollm2-135m", "concepts", {k: 0.2 + 0.1 * i for i, k in enumerate(sorted(ds.categories))})
    at = results_page()
    assert "The paper's figures" in [h.value for h in at.header]
    for title in ("Unseen macro-F1 against the share of hypernyms seen", "Per-category F1 against visual coherence",
                  "Per-category F1 against the LM probe", "F1 by hypernym depth", "Leaf F1 per concept"):
        assert title in _titles(at)
    keys = {b.key for b in at.get("download_button")}
    for name in ("ablation", "coherence", "probe", "depth", "leaf"):
        assert {f"pf_csv_{name}", f"pf_svg_{name}", f"pf_png_{name}"} <= keys, name
    specs = [json.dumps(s, ensure_ascii=False) for s in _charts(at)]
    assert any("random-init LM · systematic" in s for s in specs)
    assert any("Spearman" in s for s in specs)
    # the per-category figures follow the pickers
    assert at.selectbox(key="pf_model").options == ["pretrained LM", "random-init LM"]
    at.selectbox(key="pf_condition").set_value("random:1").run()
    assert not at.exception
    assert any("pretrained LM · random:1" in json.dumps(s, ensure_ascii=False) for s in _charts(at))
    at.selectbox(key="pf_model").set_value("random-init LM").run()
    assert not at.exception and at.selectbox(key="pf_condition").value is not None


def test_missing_runs_coherence_and_probe_name_the_commands(data_dir):
    fake_grid(conditions=("none",), seeds=(0,), lm_inits=("pretrained",))
    at = results_page()
    infos = " ".join(i.value for i in at.info)
    assert "taxolens sweep submit paper --scale cpu --set max_concepts=8 --set epochs=1`" in infos   # this setting's runs
    assert "taxolens coherence --dataset concepts --encoder efficientnet-lite2" in infos
    assert "taxolens probe-lm --lm smollm2-135m --dataset concepts" in infos
    # nothing is unseen under `none`: the page shows all questions and says so
    assert at.segmented_control(key="pf_block").value == "all"
    assert "Leaf F1 per concept" in _titles(at) and "F1 by hypernym depth" in _titles(at)
    keys = {b.key for b in at.get("download_button")}
    assert {"pf_csv_leaf", "pf_svg_leaf", "pf_csv_coherence"} <= keys
    assert "pf_csv_ablation" not in keys and "pf_svg_coherence" not in keys     # no data, no figure
    labels = {b.key: b.label for b in at.get("download_button")}
    assert labels["pf_csv_coherence"] == "F1 only (CSV)" and labels["pf_csv_leaf"] == "Data (CSV)"


def test_a_missing_coherence_table_is_one_click_away(data_dir):
    """The coherence figure named only a command; the page now queues the table the setting's runs
    call for (their dataset, encoder, split and subset size) and follows the job."""
    from core.jobs.store import JobStore
    fake_grid(conditions=("none",), seeds=(0,), lm_inits=("pretrained",), split_percent="70/5/25")
    at = results_page()
    assert any("--split-percent 70/5/25" in i.value for i in at.info)
    next(b for b in at.button if b.key == "pf_coherence_queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = JobStore().list(kind="coherence")
    assert (job.spec["dataset"], job.spec["images"], job.spec["split_percent"], job.spec["max_concepts"]) == \
        ("concepts", "train", "70/5/25", 8)
    assert not any(b.key == "pf_coherence_queue" for b in at.button)        # queued: its progress instead
    assert any("Coherence job #" in str(p.proto) for p in at.get("progress"))


def test_a_missing_lm_probe_is_one_click_away(data_dir):
    """Results named only `taxolens probe-lm` for the probe column, and the smoke sweep queues no
    probe: the page queues the probe of the setting's LM on its dataset and follows the job."""
    from core.jobs.store import JobStore
    fake_grid(conditions=("none",), seeds=(0,), lm_inits=("pretrained",))
    at = results_page()
    next(b for b in at.button if b.key == "results_probe_queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = JobStore().list(kind="probe")
    assert (job.spec["lm"], job.spec["dataset"], job.spec["lm_init"]) == ("smollm2-135m", "concepts", "pretrained")
    assert not any(b.key == "results_probe_queue" for b in at.button)
    assert any("LM probe job #" in str(p.proto) for p in at.get("progress"))


def test_a_probe_that_finished_meanwhile_is_read_not_offered_again(data_dir):
    """Review: the results the page read are cached for 10 s; a probe job that succeeded meanwhile
    left the page offering it again (a click queued a duplicate)."""
    import os

    from core.jobs.store import JobStore
    fake_grid(conditions=("none",), seeds=(0,), lm_inits=("pretrained",))
    at = results_page()
    next(b for b in at.button if b.key == "results_probe_queue").click().run()
    store = JobStore()
    (job,) = store.list(kind="probe")
    store.claim(os.getpid())
    fake_probe("smollm2-135m", "concepts", {"animal": 0.5})
    store.finish(job.id, "succeeded", result={})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(b.key == "results_probe_queue" for b in at.button)
    assert not any("No LM probe of smollm2-135m" in i.value for i in at.info)
    titles = [json.loads(c.proto.spec).get("layout", {}).get("xaxis", {}).get("title", {}).get("text")
              for c in at.get("plotly_chart")]
    assert any(t and t.startswith("LM alone: chat_macro_f1 per category") for t in titles)   # the probe is shown


def test_a_setting_of_baselines_alone_offers_no_probe_that_cannot_run(data_dir):
    """Review: with only a baseline evaluated the setting names no LM, and the button queued a probe
    of LM None ("Not queued: invalid probe job")."""
    from paper_data import cfg
    from test_results import fake_baseline
    fake_baseline("majority", cfg())
    at = results_page()
    assert not any(b.key == "results_probe_queue" for b in at.button)
    assert any("No LM probe of this LM" in i.value for i in at.info)


def test_cli_writes_csv_and_figures_per_setting(data_dir, tmp_path, capsys, monkeypatch):
    import pandas as pd

    from core import cli, paper_figures

    fake_grid(conditions=("random:0.5", "systematic:1"), seeds=(0, 1), lm_inits=("pretrained",))
    monkeypatch.setattr(paper_figures, "to_image", lambda fig, fmt, **kw: f"<{fmt}>".encode())
    monkeypatch.setattr(paper_figures, "export_problem", lambda: None)
    out = tmp_path / "figs"
    assert cli.main(["results", "figures", "--out", str(out)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["export"] == "ok" and len(manifest["settings"]) == 1
    for name in ("ablation", "depth", "leaf"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.svg").read_bytes() == b"<svg>"
    assert (out / "leaf.png").read_bytes() == b"<png>"
    ablation = pd.read_csv(out / "ablation.csv")
    assert set(ablation["condition"]) == {"random:0.5", "systematic:1"} and set(ablation["n_seeds"]) == {2}
    assert "coherence" in manifest["settings"][0]["notes"]          # no coherence table: CSV only, and why
    assert not (out / "coherence.svg").exists()
    assert cli.main(["results", "figures", "--out", str(out / "ablation.csv")]) == 2   # a file, not a folder


def test_cli_without_export_writes_the_data_and_says_why(data_dir, tmp_path, capsys, monkeypatch):
    from core import cli, paper_figures

    fake_grid(conditions=("random:0.5",), seeds=(0,), lm_inits=("pretrained",))
    monkeypatch.setattr(paper_figures, "export_problem", lambda: "PNG/SVG export needs the `kaleido` package")
    assert cli.main(["results", "figures", "--out", str(tmp_path / "f")]) == 0
    captured = capsys.readouterr()
    assert "only CSV written" in captured.err and (tmp_path / "f" / "ablation.csv").is_file()
    assert not list((tmp_path / "f").glob("*.svg"))
