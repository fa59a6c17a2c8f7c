"""core.evaluate with the tiny dataset and the fake VLM: output files, seen/unseen, baselines."""
import csv

import pytest

import fake_vlm
from core import evaluate, rundata, runs, train
from core.config import ConfigError, TrainConfig
from core.scoring import ROW_FIELDS
from tiny_concepts import tiny_dataset


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


def _cfg(**kw):
    base = dict(dataset="tiny", epochs=1, batch_size=8, lr=0.05, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_questions_and_metrics():
    cfg = _cfg(condition="random:0.5")
    run_dir = train.train(cfg)
    m = evaluate.evaluate(run_dir, "test")
    out = runs.eval_dir(run_dir, "test")
    rows = _rows(out / "questions.csv")
    data = rundata.prepare(cfg)
    assert len(rows) == len(data.questions["test"]) == m["n_questions"]
    assert tuple(rows[0]) == ROW_FIELDS
    assert {r["split"] for r in rows} == {"test"}
    hyper = [r for r in rows if r["kind"] == "hypernym"]
    unseen = {(q.concept, q.target) for q in data.questions["test"] if data.deprivation.is_unseen(q)}
    assert unseen and {(r["concept"], r["target"]) for r in hyper if r["seen"] == "False"} == unseen
    assert all((r["pred"] == "True") == (float(r["p_yes"]) > 0.5) for r in rows)
    assert m["hypernym"]["unseen"]["n"] == sum(r["seen"] == "False" for r in hyper) > 0
    assert set(m["hypernym"]["per_category"]) <= set(data.dataset.categories)
    assert m["hypernym"]["macro_f1"] is not None and m["undecided_rate"] == 0.0   # fake mass 0.9
    assert m["run_id"] == run_dir.name and m["split"] == "test"
    assert runs.load_metrics(run_dir, "test") == m


def test_a_run_from_before_the_paper_ablation_is_evaluated_as_pairs():
    """config.json says random:0.5, but its checkpoint recorded the former (pair) ablation."""
    run_dir = train.train(_cfg(condition="pairs:0.5"))
    config = runs.read_json(run_dir / "config.json")
    runs.write_json(run_dir / "config.json", {**config, "condition": "random:0.5"})
    m = evaluate.evaluate(run_dir, "test")
    assert m["config"]["condition"] == "pairs:0.5"
    pairs = rundata.prepare(_cfg(condition="pairs:0.5"))
    rows = _rows(runs.eval_dir(run_dir, "test") / "questions.csv")
    unseen = {(r["concept"], r["target"]) for r in rows if r["seen"] == "False"}
    assert unseen == {(q.concept, q.target) for q in pairs.questions["test"] if pairs.deprivation.is_unseen(q)}


def test_evaluate_under_a_shuffle_uses_the_labelled_concept():
    run_dir = train.train(_cfg(condition="cross"))
    evaluate.evaluate(run_dir, "val")
    rows = _rows(runs.eval_dir(run_dir, "val") / "questions.csv")
    assert any(r["concept"] != r["labelled_concept"] for r in rows)
    leaf_yes = [r for r in rows if r["kind"] == "leaf" and r["answer"] == "True"]
    assert all(r["target"] == r["labelled_concept"] for r in leaf_yes)
    assert all(r["seen"] == "True" for r in rows)          # shuffles remove nothing


def test_evaluate_rejects_unknown_split_and_untrained_run():
    run_dir = runs.create_run_dir(_cfg())
    with pytest.raises(runs.RunError, match="split must be"):
        evaluate.evaluate(run_dir, "dev")
    with pytest.raises(runs.RunError, match="no checkpoint yet"):
        evaluate.evaluate(run_dir, "test")


def test_majority_baseline_by_hand(tmp_path):
    cfg = _cfg()
    m = evaluate.baseline("majority", cfg, out_dir=tmp_path / "maj")
    data = rundata.prepare(cfg)
    train_q = data.training_questions()
    rows = _rows(tmp_path / "maj" / "eval" / "test" / "questions.csv")
    for kind in ("leaf", "hypernym"):
        yes = sum(q.answer for q in train_q if q.kind == kind)
        majority = yes > sum(1 for q in train_q if q.kind == kind) - yes
        assert {r["pred"] for r in rows if r["kind"] == kind} == {str(majority)}
    test_q = data.questions["test"]
    assert m["accuracy"] == pytest.approx(
        sum(q.answer == (sum(p.answer for p in train_q if p.kind == q.kind) * 2 >
                         sum(1 for p in train_q if p.kind == q.kind)) for q in test_q) / len(test_q))
    assert m["undecided_rate"] is None and m["kind"] == "majority"


def test_unknown_baseline():
    with pytest.raises(ConfigError, match="baseline must be one of majority, image-probe, got 'oracle'"):
        evaluate.baseline("oracle", _cfg())
    with pytest.raises(ConfigError, match="got 'lm_only'"):      # replaced by core.probe (probe-lm)
        evaluate.baseline("lm_only", _cfg())


def test_leaf_ranking_ranks_every_leaf_like_predict():
    run_dir = train.train(_cfg(epochs=3))
    result = evaluate.leaf_ranking(run_dir, "test", images=6)
    stored = runs.read_json(runs.eval_dir(run_dir, "test") / evaluate.RANKING_FILE)
    assert stored == result and result["images"] == 6 == len(result["rows"])
    assert result["vocabulary"] == 12 and result["of_images"] == len(rundata.prepare(_cfg()).images("test"))
    for row in result["rows"]:
        assert 1 <= row["rank"] <= 12 and len(row["top5"]) == 5
        assert (row["rank"] <= 5) == (row["labelled_concept"] in row["top5"])
        assert (row["rank"] == 1) == (row["top5"][0] == row["labelled_concept"])
    assert result["top1"] == sum(r["rank"] == 1 for r in result["rows"]) / 6 <= result["top5"]
    assert result["chance_top5"] == 5 / 12


def test_leaf_ranking_under_a_shuffle_ranks_the_labelled_concept():
    run_dir = train.train(_cfg(condition="cross"))
    rows = evaluate.leaf_ranking(run_dir, "test")["rows"]
    data = rundata.prepare(_cfg(condition="cross"))
    assert len(rows) == len(data.images("test"))
    assert all(r["labelled_concept"] == data.deprivation.labeling[r["concept"]] for r in rows)
    assert any(r["labelled_concept"] != r["concept"] for r in rows)


def test_leaf_ranking_without_write_leaves_the_recorded_ranking_alone():
    run_dir = train.train(_cfg(epochs=3))
    recorded = evaluate.leaf_ranking(run_dir, "test", images=2)
    side = evaluate.leaf_ranking(run_dir, "test", images=6, write=False)
    assert side["images"] == 6
    assert runs.read_json(runs.eval_dir(run_dir, "test") / evaluate.RANKING_FILE) == recorded


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_leaf_ranking_refuses_a_bad_image_count(bad):
    run_dir = train.train(_cfg())
    with pytest.raises(ConfigError, match="images"):
        evaluate.leaf_ranking(run_dir, "test", images=bad)
    assert not (runs.eval_dir(run_dir, "test") / evaluate.RANKING_FILE).exists()


def test_spaced_sample_is_evenly_spaced_in_id_order_and_all_when_not_smaller():
    from types import SimpleNamespace
    items = [SimpleNamespace(id=f"im{i:02d}") for i in reversed(range(10))]
    assert [im.id for im in evaluate.spaced_sample(items, 4)] == ["im00", "im02", "im05", "im07"]
    assert [im.id for im in evaluate.spaced_sample(items, None)] == [f"im{i:02d}" for i in range(10)]
    assert len(evaluate.spaced_sample(items, 10)) == len(evaluate.spaced_sample(items, 50)) == 10


def test_one_image_per_concept_is_its_first_by_id_and_concepts_are_spaced_evenly():
    from types import SimpleNamespace
    images = [SimpleNamespace(concept=c, id=i) for c, i in (("dog", "b"), ("dog", "a"), ("cat", "z"), ("ant", "q"))]
    assert {c: im.id for c, im in evaluate.first_image_per_concept(images).items()} == \
        {"ant": "q", "cat": "z", "dog": "a"}
    assert evaluate.evenly_spaced(list("abcdefghij"), 3) == ["a", "d", "g"]
    assert evaluate.evenly_spaced(list("abcdefghij"), 4) == ["a", "c", "f", "h"]
    assert evaluate.evenly_spaced(list("abc"), 5) == list("abc") and evaluate.evenly_spaced(list("abc"), None) == list("abc")


def test_scoring_reports_progress_inside_one_call():
    """Reported: `evaluate` sat at "encoding 56 val images" 0 % and jumped to 98 % when done: a split
    of up to 64 images is one VLM.score call, and its progress was not passed on."""
    from types import SimpleNamespace

    import torch

    from core import scoring
    from core.conditions import parse_condition
    from core.models.vlm import AnswerScores

    class HalfwayVLM:                         # reports half of its questions, then all of them
        def score(self, feats, texts_per_image, progress=None):
            for f in (0.5, 1.0):
                progress(f, "batch")
            return [AnswerScores(torch.full((len(t),), 0.7), torch.full((len(t),), 0.9)) for t in texts_per_image]

    qs = [SimpleNamespace(image_id=f"im{i // 3}", text=f"q{i}", concept="dog", target="dog", kind="leaf",
                          answer=True) for i in range(12)]
    seen = []
    rows = scoring.score(HalfwayVLM(), torch.zeros(4, 1, 2), {f"im{i}": i for i in range(4)}, qs,
                         parse_condition("none").apply(tiny_dataset(), 0), "test",
                         progress=lambda f, m: seen.append((f, m)))
    assert len(rows) == 12 and all(r["p_yes"] == pytest.approx(0.7) for r in rows)
    assert seen == [(0.5, "scored 6/12 test questions"), (1.0, "scored 12/12 test questions"),
                    (1.0, "scored 12/12 test questions")]
