"""core.image_probe on the tiny dataset with concept-dependent fake features: the probe learns the
leaves, answers hypernyms only through memberships training asserted, and picks thresholds on VAL."""
import pytest

import fake_vlm
from core import evaluate, image_probe, rundata
from core.config import TrainConfig


@pytest.fixture(autouse=True)
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)


def _cfg(**kw):
    return TrainConfig(**{"dataset": "tiny", "seed": 0, "device": "cpu", **kw})


def test_best_threshold_maximises_accuracy():
    assert image_probe.best_threshold([]) == 0.5
    t = image_probe.best_threshold([(0.1, False), (0.2, False), (0.7, True), (0.9, True)])
    assert 0.2 < t < 0.7
    t = image_probe.best_threshold([(0.3, True), (0.3, True), (0.1, False)])      # ties stay together
    assert 0.1 < t < 0.3
    assert image_probe.best_threshold([(0.5, True), (0.6, True)]) < 0.5               # all yes
    assert image_probe.best_threshold([(0.5, False), (0.6, False)]) > 0.6             # all no


def test_probe_learns_leaves_from_the_encoder_alone():
    data = rundata.prepare(_cfg())
    probe = image_probe.fit(data, encoder=None)
    ranking = probe.ranking(data, "test")
    assert ranking["top1"] >= 0.9 and ranking["vocabulary"] == len(data.dataset.concepts)
    rows = probe.rows(data, "test")
    leaf = [r for r in rows if r["kind"] == "leaf"]
    right = [(r["p_yes"] > 0.5) == (r["answer"] in (True, "True")) for r in leaf]
    assert leaf and sum(right) >= 0.85 * len(leaf)          # chance: 0.5
    # hypernyms through memberships training showed: "Is there a mammal?" gets the probability
    # of every concept training asked "Is there a mammal?" about, and answered yes
    shown_as_mammal = {q.concept for q in data.training_questions()
                       if q.kind == "hypernym" and q.target == "mammal" and q.answer}
    assert probe.members["mammal"] == shown_as_mammal == {"dog", "cat", "squirrel"}
    items = data.images("test")
    probs = probe.probabilities(items)
    row = {im.id: i for i, im in enumerate(items)}
    qs, scores = probe.question_scores(data, "test")
    checked = 0
    for q, s in zip(qs, scores):
        if q.kind == "hypernym" and q.target == "mammal":
            want = sum(float(probs[row[q.image_id], probe.concepts.index(c)]) for c in shown_as_mammal)
            assert s == pytest.approx(want, abs=1e-6)
            checked += 1
    assert checked

def test_under_full_ablation_the_probe_knows_no_category():
    data = rundata.prepare(_cfg(condition="random:1"))
    probe = image_probe.fit(data, encoder=None)
    assert probe.members == {}                                   # training asked no hypernym question
    qs, scores = probe.question_scores(data, "test")
    assert all(s == 0.0 for q, s in zip(qs, scores) if q.kind == "hypernym")


def test_thresholds_are_chosen_on_the_validation_questions():
    data = rundata.prepare(_cfg())
    probe = image_probe.fit(data, encoder=None)

    def best_on(split, kind):
        qs, scores = probe.question_scores(data, split)
        return image_probe.best_threshold([(s, q.answer) for q, s in zip(qs, scores)
                                           if q.kind == kind and data.deprivation.keeps(q)])
    assert probe.thresholds == {kind: best_on("val", kind) for kind in ("leaf", "hypernym")}
    assert probe.thresholds != {kind: best_on("train", kind) for kind in ("leaf", "hypernym")}   # splits differ here


def test_image_probe_baseline_writes_metrics_with_its_ranking(tmp_path):
    m = evaluate.baseline("image-probe", _cfg(), out_dir=tmp_path / "probe")
    assert m["kind"] == "image-probe" and m["leaf"]["accuracy"] >= 0.85
    assert m["ranking"]["top1"] >= 0.9 and set(m["thresholds"]) == {"leaf", "hypernym"}
    assert (tmp_path / "probe" / "eval" / "test" / "questions.csv").is_file()


def test_out_of_fold_posteriors_never_see_their_own_row(monkeypatch):
    import torch
    x = torch.arange(23, dtype=torch.float32)[:, None].repeat(1, 3)     # row i holds the value i
    y = torch.zeros(23, dtype=torch.long)
    predicted = []

    def fake_fit(fx, fy, classes, seed=0):
        seen = set(fx[:, 0].long().tolist())

        def head(z):
            rows = z[:, 0].long().tolist()
            assert not seen & set(rows), "a row predicted by a probe fitted on it"
            predicted.extend(rows)
            return torch.stack([z[:, 0] / 10, torch.zeros(len(z))], -1)     # P(class 0) rises with the row
        return head, torch.zeros(3), torch.ones(3)

    monkeypatch.setattr(image_probe, "fit_softmax", fake_fit)
    out = image_probe.out_of_fold(x, y, 2, folds=5)
    assert sorted(predicted) == list(range(23)) and out.shape == (23, 2)
    assert torch.allclose(out[:, 0], torch.sigmoid(torch.arange(23.0) / 10))    # each lands in its own row


def test_out_of_fold_probes_still_classify_separable_clusters():
    import torch
    torch.manual_seed(0)
    x = torch.cat([torch.randn(20, 4) + 4, torch.randn(20, 4) - 4])
    y = torch.tensor([0] * 20 + [1] * 20)
    oof = image_probe.out_of_fold(x, y, 2)
    assert (oof.argmax(-1) == y).all()
    assert torch.allclose(oof.sum(-1), torch.ones(40))


def test_out_of_fold_views_join_the_fit_and_are_held_out_with_their_image(monkeypatch):
    import torch
    n, v = 23, 2
    x = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n), torch.zeros(n)], -1)
    views = torch.stack([torch.stack([torch.arange(n, dtype=torch.float32), torch.full((n,), j + 1.0),
                                      torch.zeros(n)], -1) for j in range(v)], 1)   # (n, v, 3): image i, view j+1
    y = torch.arange(n) % 3
    fitted, predicted = [], []

    def fake_fit(fx, fy, classes, seed=0):
        assert torch.equal(fy, y[fx[:, 0].long()]), "a view fitted with another image's label"
        seen = set(fx[:, 0].long().tolist())
        fitted.append((len(fx), len(fy), sorted(set(fx[:, 1].long().tolist()))))

        def head(z):
            assert not seen & set(z[:, 0].long().tolist()), "an image's rendering predicted by a probe fitted on it"
            predicted.extend(zip(z[:, 0].long().tolist(), z[:, 1].long().tolist()))
            return torch.stack([z[:, 0] / 10 + z[:, 1], torch.zeros(len(z)), torch.full((len(z),), -1e9)], -1)
        return head, torch.zeros(3), torch.ones(3)

    monkeypatch.setattr(image_probe, "fit_softmax", fake_fit)
    out = image_probe.out_of_fold(x, y, 3, folds=5, views=views)
    assert out.shape == (n, 1 + v, 3)
    held = [len(range(k, n, 5)) for k in range(5)]
    assert fitted == [((n - h) * (1 + v), (n - h) * (1 + v), [0, 1, 2]) for h in held]   # images and views fit
    assert sorted(predicted) == [(i, j) for i in range(n) for j in range(1 + v)]
    expected = torch.sigmoid(torch.arange(n, dtype=torch.float32)[:, None] / 10 + torch.arange(1.0 + v))
    assert torch.allclose(out[..., 0], expected)              # image i's view j lands in row i, column j
    with pytest.raises(ValueError, match="views must be"):
        image_probe.out_of_fold(x, y, 3, views=views[:5])
