"""The real default VLM (EfficientNet-Lite2 + SmolLM2-135M, untrained projector) on two dataset
images: probabilities and candidate mass are valid, shared-prefix scoring matches full sequences,
and the loss trains the projector only. Gemma3-270m (optional asset) checked when it is fetched."""
import pytest
import torch

from core import assets
from core.data import datasets
from core.models import registry
from core.config import TrainConfig
from core.images import load_image

QUESTIONS = ["Is there a dog in the image?", "Is there an animal in the image?",
             "Is there a vehicle in the image?", "Is there a musical instrument in the image?"]


def two_images():
    ds = datasets.load_dataset("concepts")
    return [ds.images_of(c)[0] for c in ("dog", "car") if c in ds.concepts] or ds.images[:2]


@pytest.fixture(scope="module")
def vlm():
    torch.manual_seed(0)
    return registry.create_vlm(TrainConfig(), "cpu")


def grids(vlm, items):
    x = torch.stack([vlm.encoder.preprocess(load_image(i.path)) for i in items])
    return vlm.encoder(x)


@pytest.mark.integration
def test_real_vlm_scores_are_probabilities_with_candidate_mass(vlm):
    feats = grids(vlm, two_images())
    assert feats.shape == (2, 81, 1280)
    shared = vlm.score(feats, [QUESTIONS, QUESTIONS[:2]])
    full = vlm.score(feats, [QUESTIONS, QUESTIONS[:2]], share_prefix=False)
    for s, f in zip(shared, full):
        print("p_yes", [round(v, 3) for v in s.p_yes.tolist()], "mass", [round(v, 3) for v in s.mass.tolist()])
        assert ((s.p_yes >= 0) & (s.p_yes <= 1)).all() and ((s.mass > 0) & (s.mass <= 1)).all()
        assert torch.allclose(s.p_yes, f.p_yes, atol=1e-4) and torch.allclose(s.mass, f.mass, atol=1e-4)


@pytest.mark.integration
def test_real_vlm_loss_trains_only_the_projector(vlm):
    feats = grids(vlm, two_images())
    loss = vlm.loss(feats, QUESTIONS[:2], [True, False])
    assert torch.isfinite(loss)
    loss.backward()
    trainable = [n for n, p in vlm.named_parameters() if p.grad is not None]
    assert trainable and all(n.startswith("projector.") for n in trainable)
    assert not any(p.requires_grad for p in vlm.lm.parameters())
    assert not any(p.requires_grad for p in vlm.encoder.parameters())
    image_tokens = vlm.prefix(feats)
    ratio = float(image_tokens.detach().norm(dim=-1).mean()) / vlm.lm.token_norm()
    assert 0.5 < ratio < 2.0                      # untrained image tokens sit at text-token scale


@pytest.mark.integration
def test_real_vlm_ranked_groups_add_a_listwise_term(vlm):
    feats = grids(vlm, two_images())
    plain = vlm.loss(feats, QUESTIONS[:2], [True, False], owner=[0, 1])
    groups = [(0, QUESTIONS), (1, QUESTIONS[2:])]                  # groups of different sizes
    both = vlm.loss(feats, QUESTIONS[:2], [True, False], owner=[0, 1], ranked=groups)
    yes, no = vlm.prompt.yes_ids[0], vlm.prompt.no_ids[0]
    by_hand = 0.0
    for row, texts in groups:              # margins scored one image at a time, full sequences
        with torch.no_grad():
            logits = vlm._answer_logits_shared(vlm.prefix_embeds(feats[row:row + 1]),
                                               torch.zeros(len(texts), dtype=torch.long), *vlm.suffix_ids(texts))
        margin = logits[:, yes] - logits[:, no]
        by_hand += float(-torch.log_softmax(margin, 0)[0])
    assert float(both.detach()) == pytest.approx(float(plain.detach()) + by_hand / len(groups), rel=1e-4)
    with pytest.raises(ValueError, match="at least two questions"):
        vlm.loss(feats, QUESTIONS[:2], [True, False], owner=[0, 1], ranked=[(0, QUESTIONS[:1])])


@pytest.mark.integration
def test_runs_sharing_one_lm_get_their_own_losses_and_gradients_from_one_joint_pass(vlm):
    """VLM.joint_loss (how train_many steps a sweep's runs together) against each run's own loss."""
    from core.models.vlm import VLM, LossBatch
    other = registry.vlm_sharing_frozen(TrainConfig(seed=1), vlm)
    assert other.lm is vlm.lm and other.encoder is vlm.encoder and other.projector is not vlm.projector
    feats = grids(vlm, two_images())
    batches = [LossBatch(feats, QUESTIONS[:3], [True, True, False], [0, 0, 1], [(1, QUESTIONS[1:])]),
               LossBatch(feats[1:], QUESTIONS, [False, True, False, True], [0, 0, 0, 0])]

    def grads(model):
        return torch.cat([p.grad.flatten() for p in model.projector.parameters()])

    alone = []
    for model, b in zip((vlm, other), batches):
        model.projector.zero_grad()
        loss = model.loss(b.features, b.texts, b.answers, owner=b.owner, ranked=b.ranked)
        loss.backward()
        alone.append((float(loss.detach()), grads(model)))
    vlm.projector.zero_grad()
    other.projector.zero_grad()
    joint = VLM.joint_loss([vlm, other], batches)
    torch.stack(joint).sum().backward()
    for (loss, grad), j, model in zip(alone, joint, (vlm, other)):
        assert float(j.detach()) == pytest.approx(loss, rel=1e-4)
        # the same up to float rounding (the joint batch pads to another width)
        assert float((grads(model) - grad).abs().max()) < 1e-3 * float(grad.abs().max())
    with pytest.raises(ValueError, match="share one LM"):
        VLM.joint_loss([vlm, registry.create_vlm(TrainConfig(lm_init="random"), "cpu")], batches)


@pytest.mark.integration
def test_real_vlm_with_the_lm_held_in_bf16_gives_the_fp32_loss_and_gradient():
    torch.manual_seed(0)
    vlm = registry.create_vlm(TrainConfig(), "cpu")
    feats = grids(vlm, two_images())
    texts, answers, owner = QUESTIONS * 2, [True, True, False, False] * 2, [0] * 4 + [1] * 4

    def loss_and_grad():
        vlm.projector.zero_grad()
        loss = vlm.loss(feats, texts, answers, owner=owner)
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in vlm.projector.parameters()])

    loss32, grad32 = loss_and_grad()
    vlm.hold_lm_in_bf16()
    assert all(p.dtype == torch.bfloat16 for p in vlm.lm.parameters())
    assert all(p.dtype == torch.float32 for p in vlm.projector.parameters())   # trained in fp32
    loss16, grad16 = loss_and_grad()
    print("loss fp32", loss32, "bf16", loss16, "grad cosine", float(torch.cosine_similarity(grad32, grad16, 0)))
    assert abs(loss16 - loss32) < 0.05 * max(1.0, loss32)
    assert float(torch.cosine_similarity(grad32, grad16, 0)) > 0.95
    p = vlm.score(feats[:1], [QUESTIONS])[0].p_yes
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.integration
def test_gemma3_embeddings_are_scaled_and_scoring_works():
    try:
        folder = assets.lm_dir("gemma3-270m")
    except assets.AssetError as exc:
        pytest.skip(f"optional asset gemma3-270m not fetched: {exc}")
    lm = registry.create_lm(str(folder))
    assert lm.start_ids == [lm.tokenizer.bos_token_id]
    ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokens("A dog is an animal")])
    raw = lm.model.get_input_embeddings().weight[ids[0]]
    assert torch.allclose(lm.embed(ids)[0], raw * lm.hidden_size ** 0.5, rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(lm.model(input_ids=ids).logits, lm.model(inputs_embeds=lm.embed(ids)).logits,
                              atol=1e-3)
    enc = registry.create_encoder("efficientnet-lite0")
    from core.models.projector import Projector
    from core.models.vlm import VLM

    vlm = VLM(enc, lm, Projector("linear", enc.dim, lm.hidden_size, lm.token_norm()), 4)
    feats = grids(vlm, two_images()[:1])
    s = vlm.score(feats, [QUESTIONS[:2]])[0]
    f = vlm.score(feats, [QUESTIONS[:2]], share_prefix=False)[0]
    assert ((s.p_yes >= 0) & (s.p_yes <= 1)).all() and torch.allclose(s.p_yes, f.p_yes, atol=1e-4)


@pytest.mark.integration
def test_open_clip_vision_tower_from_a_local_checkpoint(tmp_path):
    import open_clip
    from PIL import Image

    torch.manual_seed(0)
    torch.save(open_clip.create_model("ViT-S-32", pretrained=None).state_dict(), tmp_path / "vit.pt")
    enc = registry.create_encoder(f"open_clip:ViT-S-32:{tmp_path / 'vit.pt'}")
    grid = enc(enc.preprocess(Image.new("RGBA", (64, 40), (0, 128, 0, 200))).unsqueeze(0))
    assert grid.shape == (1, 49, 384) and enc.dim == 384      # 7x7 patch tokens, no CLS
    assert not any(p.requires_grad for p in enc.parameters())


def test_loading_the_bundled_lm_draws_no_progress_bar_and_leaves_the_setting_as_it_was(capfd, monkeypatch):
    """transformers drew a "Loading weights" bar for a sub-second local load into every CLI command's
    output and job log. Only that bar goes: the hub's download bars and transformers' own switch and
    hook are as they were, also when the load fails."""
    import huggingface_hub.utils as hub_utils
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    before = (hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
              hf_logging._tqdm_hook)
    seen = []

    def load(*args, **kwargs):           # the hub's bars, asked for during the load
        seen.append(hub_utils.are_progress_bars_disabled("huggingface_hub.http_get"))
        return real(*args, **kwargs)
    real = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", load)
    capfd.readouterr()
    registry.create_lm(TrainConfig().lm)
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err
    assert seen == [before[1]]                                   # a download would still show its bar
    assert (hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
            hf_logging._tqdm_hook) == before

    def fail(*args, **kwargs):
        raise OSError("disk gone")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fail)
    with pytest.raises(OSError):
        registry.create_lm(TrainConfig().lm)
    assert hf_logging._tqdm_hook is before[2]
