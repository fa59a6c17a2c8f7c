"""bench.runs_table: one markdown row per run, its cells read from the run's own files."""
import json

import pytest

import fake_vlm
from tiny_concepts import tiny_dataset
from bench import runs_table
from core import evaluate, runs, train
from core.config import TrainConfig


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


def test_row_shows_options_curve_and_test_numbers(capsys):
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=2, batch_size=8, lr=0.05, device="cpu",
                                      fresh_negatives=False))
    before = runs_table.row(runs.load_run(run_dir)).split(" | ")
    assert before[-4:-1] == ["–", "–", "–"]                   # no test evaluation yet
    m = evaluate.evaluate(run_dir, "test")
    cells = runs_table.row(runs.load_run(run_dir)).strip("| ").split(" | ")
    ck = json.loads(runs.checkpoint_json(run_dir).read_text())
    assert cells[0] == run_dir.name and cells[6] == "epochs=2, batch_size=8, lr=0.05, fresh_negatives=False"
    assert cells[2] == f"{len(tiny_dataset().images)} (5 styles)"           # the tiny set: style0..style4
    assert cells[8] == " ".join(f"{e['val_leaf_accuracy']:.2f}" for e in ck["metrics"])
    assert cells[9:12] == [f"{m['leaf']['accuracy']:.3f}", f"{m['leaf']['concept_macro_f1']:.3f}",
                           f"{m['hypernym']['seen']['category_macro_f1']:.3f}"]
    capsys.readouterr()                                         # training's epoch lines
    assert runs_table.main([str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == runs_table.HEADER.splitlines()[0] and out[2].startswith(f"| {run_dir.name} |")


def test_a_run_with_every_hypernym_removed_names_its_condition_and_has_no_seen_number():
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu",
                                      condition="random:1"))
    evaluate.evaluate(run_dir, "test")
    cells = runs_table.row(runs.load_run(run_dir)).strip("| ").split(" | ")
    assert "condition=random:1" in cells[6] and cells[11] == "–"
