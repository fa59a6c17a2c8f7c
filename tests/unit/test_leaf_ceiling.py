"""bench.leaf_ceiling's pieces with tiny models: the after-question sequence against one unpadded
sequence written out by hand, the oracle's one-hot inputs and the every-leaf ranking (out-of-fold posteriors: test_image_probe)."""
from __future__ import annotations

import torch

from bench import leaf_ceiling
from tests.unit.test_models import tiny_vlm


def test_after_question_logits_match_an_unpadded_sequence():
    vlm = tiny_vlm(k=1)
    lm = vlm.lm
    feats = torch.randn(2, 1, vlm.encoder.dim)
    texts = ["Is there a dog in the image?", "Is there a cat?", "Is there an animal?"]
    owner = torch.tensor([0, 1, 1])
    with torch.no_grad():
        got = leaf_ceiling.after_question_logits(vlm, vlm.projector, feats, owner, texts)
        for q, (text, o) in enumerate(zip(texts, owner.tolist())):
            ids = list(lm.start_ids) + lm.tokens(f"Question: {text}") + lm.tokens("\nImage:")
            seq = torch.cat([lm.embed(torch.tensor(ids)), vlm.projector(feats[o]),
                             lm.embed(torch.tensor(lm.tokens("\nAnswer:")))])
            want = lm.model(inputs_embeds=seq[None]).logits[0, -1]
            assert torch.allclose(got[q], want, atol=1e-4), text


def test_after_question_logits_with_the_lm_held_in_bf16():
    vlm = tiny_vlm(k=1)
    feats = torch.randn(2, 1, vlm.encoder.dim)
    texts, owner = ["Is there a dog in the image?", "Is there a cat?"], torch.tensor([1, 0])
    with torch.no_grad():
        fp32 = leaf_ceiling.after_question_logits(vlm, vlm.projector, feats, owner, texts)
        vlm.lm.model.to(torch.bfloat16)
        bf16 = leaf_ceiling.after_question_logits(vlm, vlm.projector, feats, owner, texts)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16, fp32, atol=0.1)


def test_onehot_marks_each_images_shown_concept():
    x = leaf_ceiling.onehot(["cat", "dog", "fox"], ["dog", "fox", "dog"])
    assert x.shape == (3, 1, 3)
    assert x[:, 0].argmax(-1).tolist() == [1, 2, 1] and x.sum().item() == 3


def test_rank_every_leaf_counts_leaves_with_higher_log_odds_of_yes():
    vlm = tiny_vlm(k=1)
    names, texts = ["ant", "bee", "cat", "dog"], ["q-ant", "q-bee", "q-cat", "q-dog"]
    odds = {0: [0.1, 2.0, 1.0, -1.0], 1: [3.0, 2.0, 1.0, 0.0]}    # per image, per leaf
    yes, no = list(vlm.prompt.yes_ids), list(vlm.prompt.no_ids)

    def forward(vlm_, projector, x, owner, asked):
        assert asked == texts and owner.tolist() == [0] * 4 and len(x) == 1
        logits = torch.full((4, max(yes + no) + 1), -1e4)
        logits[:, yes] = torch.tensor(odds[int(x[0, 0, 0])])[:, None]     # every yes token alike
        logits[:, no] = 0.0
        return logits

    x = torch.tensor([0.0, 1.0, 1.0])[:, None, None]
    got = leaf_ceiling.rank_every_leaf(vlm, vlm.projector, forward, x, ["cat", "cat", "dog"], names, texts)
    # image 0: cat's 1.0 is beaten by bee -> rank 2; image 1: cat rank 3, dog rank 4
    assert got == {"rank_images": 3, "rank_top1": 0.0, "rank_top5": 1.0, "rank_median": 3, "ranks": [2, 3, 4]}


def test_rank_every_leaf_orders_leaves_as_predict_scores_them():
    torch.manual_seed(0)
    vlm = tiny_vlm(k=1)
    texts = ["Is there a dog in the image?", "Is there a cat in the image?", "Is there an owl in the image?",
             "Is there a bus in the image?"]
    names = ["dog", "cat", "owl", "bus"]
    feats = torch.randn(1, 1, vlm.encoder.dim)
    with torch.no_grad():
        p_yes = vlm.score(feats, [texts])[0].p_yes
    want = [int((p_yes > p_yes[j]).sum()) + 1 for j in range(4)]
    got = [leaf_ceiling.rank_every_leaf(vlm, vlm.projector, leaf_ceiling.features_logits, feats, [n], names,
                                        texts)["rank_median"] for n in names]
    assert got == want


def test_the_topk_arm_hands_its_inputs_to_the_projector_as_posteriors():
    from bench.leaf_ceiling import PosteriorFed
    from core.models.projector import Projector

    proj = Projector("gelu-mlp", 8, 16, 2.0, hidden=12, tokens=2, classes=5, topk=3)
    post = torch.softmax(torch.randn(4, 1, 5), -1)
    fed = PosteriorFed(proj)
    assert torch.equal(fed(post), proj(post, posteriors=True)) and fed(post).shape == (4, 2 + 3, 16)
    assert {n for n, _ in fed.named_parameters()} == {"projector." + n for n, _ in proj.named_parameters()}


def test_side_by_side_puts_each_images_feature_then_its_posterior_in_one_row():
    feats = torch.arange(6, dtype=torch.float16).reshape(2, 1, 3)         # the cache's fp16 grids
    post = torch.tensor([[[0.25, 0.75]], [[1.0, 0.0]]])
    x = leaf_ceiling.side_by_side(feats, post)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 5)
    assert x[1, 0].tolist() == [3.0, 4.0, 5.0, 1.0, 0.0]


def test_table_shows_unseen_and_seen_macro_f1_only_when_a_condition_gave_them():
    base = {"arm": "features", "epoch": 1, "train_seconds": 9.6, "val_leaf_accuracy": 0.8,
            "val_hypernym_accuracy": 0.6}
    plain = leaf_ceiling.table([base])
    assert "unseen" not in plain and plain.splitlines()[-1] == "| features | 0.800 | 0.800 / 0.600 | 10 |"
    ablated = leaf_ceiling.table([{**base, "val_unseen_category_f1": 0.55, "val_seen_category_f1": None,
                                   "val_unseen_chance_f1": 0.47}])
    assert ablated.splitlines()[0].endswith("unseen / seen macro-F1 (chance) |")
    assert ablated.splitlines()[-1].endswith("| 0.550 / – (0.470) |")


def test_split_norm_normalises_each_part_on_its_own():
    norm = leaf_ceiling.SplitNorm(3, 5)
    x = torch.tensor([[10.0, 20.0, 30.0, 0.9, 0.1]])
    y = norm(x)
    want = torch.cat([torch.nn.functional.layer_norm(x[:, :3], (3,)), torch.nn.functional.layer_norm(x[:, 3:], (2,))], -1)
    assert torch.allclose(y, want) and torch.allclose(y[:, 3:], torch.tensor([[1.0, -1.0]]), atol=1e-4)


def test_every_arm_named_posterior_is_listed_in_POSTERIOR_ARMS():
    # run() fits the probe and builds the posterior inputs only for POSTERIOR_ARMS
    assert set(leaf_ceiling.POSTERIOR_ARMS) <= set(leaf_ceiling.ARMS)
    assert all(("posterior" in arm) == (arm in leaf_ceiling.POSTERIOR_ARMS) for arm in leaf_ceiling.ARMS)


def test_run_trains_and_scores_every_posterior_arm_alone_under_a_condition(monkeypatch, tmp_path):
    # each arm on its own, as a queue of runs calls it (an arm missing from run()'s inputs was a KeyError)
    import fake_vlm
    from core.models import registry

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)
    monkeypatch.setattr(registry, "create_vlm", lambda cfg, device="cpu": tiny_vlm(k=1))
    for arm in ("features+posterior-norms", "features+posterior", "posterior"):
        rows = leaf_ceiling.run(concepts=0, epochs=1, arms=(arm,), condition="random:1", log=lambda s: None)
        assert [r["arm"] for r in rows] == [arm]
        assert rows[0]["val_unseen_share"] == 1.0 and rows[0]["val_seen_category_f1"] is None
        assert 0 <= rows[0]["val_unseen_category_f1"] <= 1 and 0 <= rows[0]["val_leaf_accuracy"] <= 1
