"""core.models + core.models.registry with tiny random models (a 2-layer Llama / Gemma3 with a toy BPE
tokenizer, and a tiny conv "encoder"): pooling, the prompt, shared-prefix scoring against naive
full-sequence scoring, the answer-token loss, frozen parts, projector init, ids and their errors.

`tiny_vlm()` and `FakeEncoder` are importable by other tests that need a VLM without real weights.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core import rundata
from core.models import registry
from core.config import ConfigError, TrainConfig
from core.models import ModelUnavailableError, encoders, lms
from core.models.encoders import ImageEncoder, pool_tokens
from core.models.lms import LanguageModel, common_prefix_length
from core.models.projector import Projector
from core.models.vlm import START_TEXT, VLM, build_prompt

CORPUS = ["Question: Is there a dog in the image?\nAnswer: Yes", "Question: Is there a cat?\nAnswer: No",
          "Answer: yes", "Answer: no", "Is a dog a kind of animal? Answer: Yes", "an apple, a fruit, a tool"]


@functools.lru_cache(maxsize=2)
def tiny_tokenizer(bos: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>" if bos else None)


def tiny_causal_lm(arch: str, vocab: int, seed: int = 0, window: int = 64):
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    if arch == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          pad_token_id=0, tie_word_embeddings=True)
    else:
        cfg = Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                               max_position_embeddings=256, sliding_window=window, pad_token_id=0,
                               layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg).float().eval()


def tiny_lm(arch: str = "llama") -> LanguageModel:
    tok = tiny_tokenizer(bos=(arch == "gemma3"))
    return LanguageModel(f"tiny-{arch}", tiny_causal_lm(arch, len(tok)), tok)


class FakeEncoder(ImageEncoder):
    """16 px image -> 4x4 grid of 8-dim tokens; counts how many images it encoded."""

    def __init__(self, transform_id: str = "fake-16px"):
        super().__init__()
        torch.manual_seed(0)
        self.id, self.dim, self.image_size = "fake", 8, 16
        self.transform_id, self.weights_id = transform_id, "random"
        self.conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.calls = 0
        self.freeze()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        image = encoders.to_rgb(image).resize((16, 16))
        return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return self.conv(x).flatten(2).transpose(1, 2)


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_vlm(arch: str = "llama", kind: str = "gelu-mlp", k: int = 4, prompt: str = "plain") -> VLM:
    lm = tiny_lm(arch)
    if prompt == "chat":
        lm.tokenizer.chat_template = CHATML
    enc = FakeEncoder()
    return VLM(enc, lm, Projector(kind, enc.dim, lm.hidden_size, lm.token_norm()), k, prompt)


QUESTIONS = [["Is there a dog in the image?", "Is there an animal?", "Is there a cat in the image?"],
             ["Is there a fruit?"],
             ["Is there a tool in the image?", "Is a dog a kind of animal?"]]


def naive_answer_logits(vlm: VLM, feats: torch.Tensor, text: str) -> torch.Tensor:
    """Reference: one unpadded sequence written out piece by piece from the prompt's definition,
    the full LM forward, the last position's logits."""
    lm, prompt = vlm.lm, vlm.prompt

    def embed(ids):
        return lm.embed(torch.tensor(list(ids), dtype=torch.long))

    parts = [embed(prompt.head), vlm.prefix(feats.unsqueeze(0))[0], embed(prompt.between)]
    parts.append(embed(lm.tokens(prompt.suffix(text))))
    return lm.model(inputs_embeds=torch.cat(parts).unsqueeze(0)).logits[0, -1]


def naive_scores(vlm: VLM, feats: torch.Tensor, text: str) -> tuple[float, float]:
    logp = naive_answer_logits(vlm, feats, text).log_softmax(-1)
    yes = torch.logsumexp(logp[list(vlm.prompt.yes_ids)], 0)
    no = torch.logsumexp(logp[list(vlm.prompt.no_ids)], 0)
    return float(torch.sigmoid(yes - no)), float(yes.exp() + no.exp())


# ---------------------------------------------------------------- pooling

def test_pool_tokens_shapes_and_values():
    grid = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    assert pool_tokens(grid, 1).shape == (2, 1, 3)
    assert torch.allclose(pool_tokens(grid, 1)[:, 0], grid.mean(1))
    four = pool_tokens(grid, 4)                       # 4x4 grid -> 2x2 regions
    assert four.shape == (2, 4, 3)
    top_left = grid.reshape(2, 4, 4, 3)[:, :2, :2].mean(dim=(1, 2))
    assert torch.allclose(four[:, 0], top_left)
    assert pool_tokens(grid, 3).shape == (2, 3, 3)    # not square: 1-D pooling
    assert torch.equal(pool_tokens(grid, 16), grid)
    nine = torch.randn(1, 81, 5)
    assert pool_tokens(nine, 9).shape == (1, 9, 5) and pool_tokens(nine, 16).shape == (1, 16, 5)
    with pytest.raises(ValueError, match="cannot pool a 16-token grid to 17"):
        pool_tokens(grid, 17)
    with pytest.raises(ValueError, match="cannot pool"):
        pool_tokens(grid, 0)


def test_pooling_an_already_pooled_grid_is_identity():
    grid = torch.randn(3, 81, 7)
    pooled = pool_tokens(grid, 4)
    assert torch.equal(pool_tokens(pooled, 4), pooled)


# ---------------------------------------------------------------- tokens and embeddings

@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_answer_tokens_come_from_the_tokenizer(arch):
    lm = tiny_lm(arch)
    decoded = [lm.tokenizer.decode([i]) for i in lm.yes_ids + lm.no_ids]
    assert decoded[0].strip() in ("Yes", "Y") and decoded[0].startswith(" ")
    assert len(set(lm.yes_ids + lm.no_ids)) == len(lm.yes_ids) + len(lm.no_ids)
    assert lm.start_ids == ([1] if arch == "gemma3" else [])


def test_gemma_embed_includes_the_sqrt_hidden_scale_and_matches_token_input():
    lm = tiny_lm("gemma3")
    ids = torch.tensor([[1, 5, 9, 12, 40]])
    raw = lm.model.get_input_embeddings().weight[ids[0]]
    assert torch.allclose(lm.embed(ids)[0], raw * lm.hidden_size ** 0.5, rtol=1e-5)
    via_ids = lm.model(input_ids=ids).logits
    via_embeds = lm.model(inputs_embeds=lm.embed(ids)).logits
    assert torch.allclose(via_ids, via_embeds, atol=1e-5)


# ---------------------------------------------------------------- scoring

@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_shared_prefix_scoring_equals_naive_full_sequences(arch):
    vlm = tiny_vlm(arch)
    feats = torch.randn(3, 16, 8)
    scores = vlm.score(feats, QUESTIONS, batch_size=3)     # chunks split one image's questions
    with torch.no_grad():
        for i, texts in enumerate(QUESTIONS):
            ref = [naive_scores(vlm, feats[i], t) for t in texts]
            assert torch.allclose(scores[i].p_yes, torch.tensor([p for p, _ in ref]), atol=1e-4)
            assert torch.allclose(scores[i].mass, torch.tensor([m for _, m in ref]), atol=1e-4)


def test_prompts_longer_than_a_sliding_window_are_refused():
    tok = tiny_tokenizer(bos=True)
    lm = LanguageModel("tiny-gemma3", tiny_causal_lm("gemma3", len(tok), window=16), tok)
    enc = FakeEncoder()
    vlm = VLM(enc, lm, Projector("linear", enc.dim, lm.hidden_size, 1.0), 9)
    with pytest.raises(ValueError, match="exceeds the LM's 16-token sliding attention window"):
        vlm.score(torch.randn(1, 16, 8), [["Is there a dog in the image?"]])


def test_padded_full_sequence_path_equals_shared_prefix_path():
    vlm = tiny_vlm()
    feats = torch.randn(3, 16, 8)
    shared = vlm.score(feats, QUESTIONS)
    full = vlm.score(feats, QUESTIONS, share_prefix=False, batch_size=2)
    for a, b in zip(shared, full):
        assert torch.allclose(a.p_yes, b.p_yes, atol=1e-5) and torch.allclose(a.mass, b.mass, atol=1e-5)


def test_a_batchs_common_question_start_runs_once_with_the_prefix(monkeypatch):
    vlm = tiny_vlm()
    feats = torch.randn(2, 16, 8)
    asked = [["Is there a dog in the image?", "Is there a cat in the image?"], ["Is there a tool in the image?"]]
    widths = []
    real = vlm._answer_logits_shared

    def spy(prefix, owner, ids, mask):
        widths.append((prefix.shape[1], ids.shape[1]))
        return real(prefix, owner, ids, mask)

    monkeypatch.setattr(vlm, "_answer_logits_shared", spy)
    shared = vlm.score(feats, asked)
    rows = [vlm.lm.tokens(vlm.prompt.suffix(t)) for t in asked[0] + asked[1]]
    start = common_prefix_length(rows)
    assert start >= 1                                     # " Is there a" (as this tokenizer splits it)
    assert widths == [(vlm.prefix_embeds(feats[:1]).shape[1] + start, max(len(r) for r in rows) - start)]
    full = vlm.score(feats, asked, share_prefix=False)
    for a, b in zip(shared, full):
        assert torch.allclose(a.p_yes, b.p_yes, atol=1e-5) and torch.allclose(a.mass, b.mass, atol=1e-5)


def test_scores_are_probabilities_whatever_the_batching():
    vlm = tiny_vlm()
    feats = torch.randn(3, 16, 8)
    for s, p in zip(vlm.score(feats, QUESTIONS), [s.p_yes for s in vlm.score(feats, QUESTIONS, batch_size=2)]):
        assert s.p_yes.dtype == torch.float32 and torch.allclose(s.p_yes, p, atol=1e-5)
        assert ((s.p_yes >= 0) & (s.p_yes <= 1)).all() and ((s.mass > 0) & (s.mass <= 1)).all()
    assert [len(s.p_yes) for s in vlm.score(feats, QUESTIONS)] == [3, 1, 2]


def test_scores_come_back_in_the_order_asked_whatever_the_question_lengths():
    vlm = tiny_vlm()
    feats = torch.randn(2, 16, 8)
    texts = ["Is there a dog in the image?", "Is there a very long named thing in the image?",
             "Is there an ox in the image?", "Is there a small red garden tool in the image?"]
    one_by_one = [[float(vlm.score(feats[i:i + 1], [[t]])[0].p_yes[0]) for t in texts] for i in range(2)]
    together = vlm.score(feats, [texts, texts[::-1]], batch_size=3)
    assert torch.allclose(together[0].p_yes, torch.tensor(one_by_one[0]), atol=1e-5)
    assert torch.allclose(together[1].p_yes, torch.tensor(one_by_one[1][::-1]), atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_image_tokens_never_come_first(arch):
    """Position 0 is the LM's attention sink: the image goes after the start tokens + "Image:"."""
    vlm = tiny_vlm(arch)
    head = list(vlm.prompt.head)
    assert head == vlm.lm.start_ids + vlm.lm.tokens(START_TEXT) and len(head) >= 1
    embeds = vlm.prefix_embeds(torch.randn(2, 16, 8))
    assert embeds.shape[1] == len(head) + 4 + len(vlm.prompt.between)
    assert torch.allclose(embeds[0, :len(head)], vlm.lm.embed(torch.tensor(head)))


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_chat_prompt_scoring_equals_naive_full_sequences(arch):
    vlm = tiny_vlm(arch, prompt="chat")
    p = vlm.prompt
    text = vlm.lm.tokenizer.decode(list(p.head) + list(p.between))
    assert "<|im_start|>user" in text and text.endswith("\n")
    assert p.suffix("Is there a dog?").endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert not vlm.lm.tokenizer.decode([p.yes_ids[0]]).startswith(" ")     # "Yes", no leading space
    assert set(p.yes_ids).isdisjoint(p.no_ids)
    if arch == "gemma3":                       # the template does not write <bos>: the start tokens are added
        assert p.head[0] == 1
    feats = torch.randn(3, 16, 8)
    scores = vlm.score(feats, QUESTIONS, batch_size=3)
    with torch.no_grad():
        for i, texts in enumerate(QUESTIONS):
            ref = [naive_scores(vlm, feats[i], t) for t in texts]
            assert torch.allclose(scores[i].p_yes, torch.tensor([q for q, _ in ref]), atol=1e-4)


def test_chat_prompt_without_a_template_is_a_config_error():
    lm = tiny_lm()
    lm.tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        build_prompt(lm, "chat")
    with pytest.raises(ConfigError, match="prompt format"):
        build_prompt(lm, "fancy")


def test_image_changes_the_scores():
    vlm = tiny_vlm()
    a = vlm.score(torch.randn(1, 16, 8), [QUESTIONS[0]])[0].p_yes
    b = vlm.score(torch.randn(1, 16, 8) * 3, [QUESTIONS[0]])[0].p_yes
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------- loss and gradients

@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_loss_is_cross_entropy_of_the_answer_token_only(arch):
    vlm = tiny_vlm(arch)
    feats = torch.randn(3, 16, 8)
    texts = ["Is there a dog in the image?", "Is there a fruit?", "Is a dog a kind of animal?"]
    answers = [True, False, True]
    loss = vlm.loss(feats, texts, answers)
    target = torch.tensor([vlm.prompt.yes_ids[0] if a else vlm.prompt.no_ids[0] for a in answers])
    logits = torch.stack([naive_answer_logits(vlm, feats[i], t) for i, t in enumerate(texts)])
    assert torch.allclose(loss, F.cross_entropy(logits, target), atol=1e-5)
    flipped = vlm.loss(feats, texts, [not a for a in answers])
    assert not torch.allclose(loss, flipped)
    assert torch.allclose(vlm.loss(feats, texts, torch.tensor(answers)), loss)


@pytest.mark.parametrize("prompt", ["plain", "chat"])
def test_shared_prefix_loss_equals_one_image_per_question(prompt):
    """A batch of whole images (owner[q] = image of question q) gives the same loss and the same
    projector gradient as repeating each image once per question."""
    vlm = tiny_vlm(prompt=prompt)
    feats = torch.randn(2, 16, 8)
    texts = ["Is there a dog in the image?", "Is there a fruit?", "Is there a cat?", "Is a dog a kind of animal?"]
    answers, owner = [True, False, True, False], torch.tensor([0, 0, 1, 0])
    shared = vlm.loss(feats, texts, answers, owner=owner)
    shared.backward()
    g_shared = [p.grad.clone() for p in vlm.projector.parameters()]
    vlm.projector.zero_grad()
    repeated = vlm.loss(feats[owner], texts, answers)
    repeated.backward()
    assert torch.allclose(shared, repeated, atol=1e-5)
    for a, b in zip(g_shared, (p.grad for p in vlm.projector.parameters())):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="owner"):
        vlm.loss(feats, texts, answers, owner=torch.tensor([0, 0, 2, 0]))


def naive_naming_nll(vlm: VLM, feats: torch.Tensor, question: str) -> torch.Tensor:
    """Reference: one unpadded [prompt up to the question][question] sequence, the full LM forward,
    the summed -log P of each question token after "Is there"."""
    lm, prompt = vlm.lm, vlm.prompt

    def embed(ids):
        return lm.embed(torch.tensor(list(ids), dtype=torch.long))

    ids = lm.tokens(prompt.before_question + question)
    start = len(lm.tokens(prompt.before_question + " ".join(question.split(" ")[:2])))
    parts = [embed(prompt.head), vlm.prefix(feats.unsqueeze(0))[0], embed(prompt.between), embed(ids)]
    logp = lm.model(inputs_embeds=torch.cat(parts).unsqueeze(0)).logits[0].log_softmax(-1)
    first = len(parts[0]) + len(parts[1]) + len(parts[2])       # where the question's tokens begin
    return -sum(logp[first + j - 1, ids[j]] for j in range(start, len(ids)))


@pytest.mark.parametrize("arch,prompt", [("llama", "plain"), ("gemma3", "plain"), ("llama", "chat")])
def test_naming_term_is_the_words_after_is_there(arch, prompt):
    """named pairs add name_weight x the mean over images of -log P(words after "Is there" | image),
    with rows of different lengths padded in one pass, and the gradient reaches the projector."""
    vlm = tiny_vlm(arch, prompt=prompt)
    feats = torch.randn(2, 16, 8)
    texts, answers = ["Is there a cat?", "Is there a fruit?"], [True, False]
    named = [(0, "Is there a dog"), (1, "Are there apples")]
    plain = vlm.loss(feats, texts, answers)
    with_names = vlm.loss(feats, texts, answers, named=named, name_weight=0.5)
    expected = torch.stack([naive_naming_nll(vlm, feats[r], q) for r, q in named]).mean()
    assert expected > 0
    assert torch.allclose(with_names - plain, 0.5 * expected, atol=1e-4)
    assert torch.allclose(vlm.loss(feats, texts, answers, named=named, name_weight=0.0), plain)
    vlm.projector.zero_grad()
    (with_names - plain).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vlm.projector.parameters())


def test_naming_term_rejects_other_questions_and_rows():
    vlm = tiny_vlm()
    feats = torch.randn(2, 16, 8)
    with pytest.raises(ValueError, match="start with 'Is there' or 'Are there'"):
        vlm.loss(feats, ["Is there a cat?"], [True], owner=[0], named=[(0, "Is a dog a kind of animal?")],
                 name_weight=1.0)
    with pytest.raises(ValueError, match="named image row"):
        vlm.loss(feats, ["Is there a cat?"], [True], owner=[0], named=[(2, "Is there a dog?")], name_weight=1.0)


def test_loss_rejects_mismatched_batches():
    vlm = tiny_vlm()
    with pytest.raises(ValueError, match="one text and answer per image"):
        vlm.loss(torch.randn(2, 16, 8), ["a?"], [True, False])


def test_gradients_reach_only_the_projector():
    vlm = tiny_vlm()
    vlm.train()
    loss = vlm.loss(torch.randn(4, 16, 8), ["Is there a dog?"] * 4, [True, False, True, False])
    loss.backward()
    projector = {id(p) for p in vlm.projector.parameters()}
    for name, p in vlm.named_parameters():
        if id(p) in projector:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert not vlm.lm.training and not vlm.lm.model.training and not vlm.encoder.training
    assert vlm.projector.training


def test_projector_steps_lower_the_loss():
    vlm = tiny_vlm(k=1)
    feats = torch.randn(8, 16, 8)
    texts, answers = ["Is there a dog?"] * 8, [i % 2 == 0 for i in range(8)]
    opt = torch.optim.Adam(vlm.projector.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = vlm.loss(feats, texts, answers)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] - 0.02


# ---------------------------------------------------------------- projector

@pytest.mark.parametrize("kind", ["linear", "gelu-mlp", "gelu-mlp-norm"])
@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_initial_image_tokens_have_the_norm_of_token_embeddings(kind, scale):
    lm = tiny_lm()
    proj = Projector(kind, 8, lm.hidden_size, lm.token_norm(), seed=3)
    with torch.no_grad():
        out = proj(torch.randn(64, 8) * scale + scale)
    ratio = float(out.norm(dim=-1).mean()) / lm.token_norm()
    assert 0.6 < ratio < 1.6


def test_norm_projector_keeps_every_token_at_the_word_norm_while_it_trains():
    proj = Projector("gelu-mlp-norm", 8, 16, 2.5, seed=0)
    opt = torch.optim.AdamW(proj.parameters(), lr=0.1)
    x, target = torch.randn(32, 3, 8), torch.randn(32, 3, 16) * 50
    first = None
    for _ in range(20):                          # pulled toward huge targets, the norm cannot follow
        loss = ((proj(x) - target) ** 2).mean()
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        norms = proj(x * 1000).norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, 2.5), atol=1e-4)
    assert float(loss.detach()) < first          # the direction still learns
    assert list(proj.state_dict()) == list(Projector("gelu-mlp", 8, 16, 2.5).state_dict())


def test_projector_is_seeded_and_kinds_are_checked():
    a, b = Projector("gelu-mlp", 8, 16, 1.0, seed=1), Projector("gelu-mlp", 8, 16, 1.0, seed=1)
    c = Projector("gelu-mlp", 8, 16, 1.0, seed=2)
    assert torch.equal(a.net[0].weight, b.net[0].weight) and not torch.equal(a.net[0].weight, c.net[0].weight)
    assert len(Projector("linear", 8, 16, 1.0).net) == 1
    with pytest.raises(ValueError, match="projector must be one of linear, gelu-mlp"):
        Projector("mlp3", 8, 16, 1.0)


def test_projector_state_round_trip_and_mismatch():
    vlm, other = tiny_vlm(), tiny_vlm()
    with torch.no_grad():
        vlm.projector.net[0].weight.add_(1.0)
    other.load_projector_state(vlm.projector_state())
    feats = torch.randn(1, 16, 8)
    assert torch.equal(vlm.prefix(feats), other.prefix(feats))
    with pytest.raises(ValueError, match="do not fit this linear projector"):
        tiny_vlm(kind="linear").load_projector_state(vlm.projector_state())


def test_vlm_checks_dimensions():
    lm, enc = tiny_lm(), FakeEncoder()
    with pytest.raises(ValueError, match="does not join"):
        VLM(enc, lm, Projector("linear", 9, lm.hidden_size, 1.0), 4)


# ---------------------------------------------------------------- random init

def test_random_init_is_seeded_frozen_and_differs_from_pretrained(tmp_path):
    lm = tiny_lm()
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    pre = lms.load_lm("x", tmp_path)
    r1, r2 = lms.load_lm("x", tmp_path, init="random", seed=1), lms.load_lm("x", tmp_path, init="random", seed=1)
    r3 = lms.load_lm("x", tmp_path, init="random", seed=2)
    w = lambda m: m.model.get_input_embeddings().weight          # noqa: E731
    assert torch.equal(w(pre), w(lm)) and not torch.equal(w(r1), w(pre))
    assert torch.equal(w(r1), w(r2)) and not torch.equal(w(r1), w(r3))
    assert r1.init == "random" and not any(p.requires_grad for p in r1.parameters())
    assert r1.yes_ids == pre.yes_ids
    with pytest.raises(ConfigError, match="lm_init"):
        lms.load_lm("x", tmp_path, init="zeros")


# ---------------------------------------------------------------- registry

def test_registry_accepts_named_and_structured_ids(tmp_path, monkeypatch):
    # Checking must never load a model.
    monkeypatch.setattr(lms, "load_lm", lambda *a, **k: pytest.fail("loaded an LM"))
    monkeypatch.setattr(encoders, "EfficientNetLite", lambda *a, **k: pytest.fail("loaded an encoder"))
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"x")
    for eid in ["efficientnet-lite2", "efficientnet-lite0", "open_clip:ViT-B-32",
                "open_clip:ViT-B-32:laion2b_s34b_b79k", f"open_clip:ViT-B-32:{ckpt}", "timm:resnet18",
                "timm:vit_tiny_patch16_224.augreg_in21k", f"timm:resnet18:{ckpt}"]:
        registry.check_encoder_id(eid)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for lid in ["smollm2-135m", "gemma3-270m", "HuggingFaceTB/SmolLM2-135M", str(folder), str(gguf)]:
        registry.check_lm_id(lid)


@pytest.mark.parametrize("eid, message", [
    ("resnet", "unknown encoder 'resnet'; valid: efficientnet-lite2, efficientnet-lite0, open_clip:"),
    ("", "non-empty"),
    ("open_clip:NoSuchArch", "unknown open_clip architecture 'NoSuchArch'"),
    ("open_clip:ViT-B-32:no_such_tag", "neither an open_clip tag of ViT-B-32"),
    ("timm:no_such_net", "unknown timm model 'no_such_net'"),
    ("timm:resnet18:/no/such/file.pt", "does not exist"),
    ("clip:ViT-B-32", "unknown encoder"),
])
def test_bad_encoder_ids_raise_one_line_config_errors(eid, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        registry.check_encoder_id(eid)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("lid, message", [
    ("smollm3", "unknown LM 'smollm3'; valid: smollm2-135m, gemma3-270m, a hub id"),
    ("/no/such/model.gguf", "GGUF file '/no/such/model.gguf' does not exist"),
    ("a/b/c", "unknown LM"),
    ("", "non-empty"),
])
def test_bad_lm_ids_raise_one_line_config_errors(lid, message):
    with pytest.raises(ConfigError, match=message) as err:
        registry.check_lm_id(lid)
    assert "\n" not in str(err.value)


def test_lm_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="has no config.json"):
        registry.check_lm_id(str(tmp_path))


def test_config_validate_deep_uses_the_registry(monkeypatch):
    with pytest.raises(ConfigError, match="unknown encoder 'nope'"):
        rundata.check(TrainConfig(encoder="nope"))


def test_hub_weights_give_a_clear_error_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(encoders, "_hub_cached", lambda repo, names: None)
    with pytest.raises(ModelUnavailableError, match=r"open_clip weights for ViT-B-32:laion2b_s34b_b79k are "
                                                    r"not available offline: pass a local checkpoint path as "
                                                    r"open_clip:ViT-B-32:/path/to/ckpt.pt"):
        registry.create_encoder("open_clip:ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(ModelUnavailableError, match="timm weights for resnet18 are not available offline"):
        registry.create_encoder("timm:resnet18")
    with pytest.raises(ModelUnavailableError, match="LM someorg/no-such-model is not available offline"):
        registry.create_lm("someorg/no-such-model")
    assert issubclass(ModelUnavailableError, ConfigError)


def test_timm_encoder_from_a_local_checkpoint(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "a.safetensors")
    enc = registry.create_encoder(f"timm:resnet10t:{tmp_path / 'a.safetensors'}")
    x = enc.preprocess(Image.new("RGBA", (50, 80), (255, 0, 0, 100))).unsqueeze(0)
    assert x.shape == (1, 3, 176, 176)
    assert enc(x).shape == (1, 36, 512) and enc.dim == 512
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    torch.manual_seed(1)
    save_file(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "b.safetensors")
    other = registry.create_encoder(f"timm:resnet10t:{tmp_path / 'b.safetensors'}")
    assert other.cache_key != enc.cache_key and other.transform_id == enc.transform_id


def test_efficientnet_preprocessing_pads_to_square_on_white():
    enc = registry.create_encoder("efficientnet-lite2")
    x = enc.preprocess(Image.new("RGBA", (100, 50), (0, 0, 0, 0)))
    assert x.shape == (3, 260, 260)
    assert torch.allclose(x, torch.full_like(x, (255 - 127) / 128))    # transparent -> white
    assert enc(x.unsqueeze(0)).shape == (1, 81, 1280) and enc.dim == 1280
    assert registry.create_encoder("efficientnet-lite0")(torch.zeros(1, 3, 224, 224)).shape == (1, 49, 1280)


def test_create_vlm_wires_parts_from_the_config(monkeypatch):
    monkeypatch.setattr(registry, "create_encoder", lambda eid, device="cpu": FakeEncoder())
    monkeypatch.setattr(registry, "create_lm", lambda lid, init="pretrained", device="cpu", seed=0: tiny_lm())
    vlm = registry.create_vlm(TrainConfig(projector="linear", image_tokens=9, projector_tokens=1, seed=5), "cpu")
    assert vlm.n_tokens == 9 and vlm.projector.kind == "linear"
    assert vlm.prefix(torch.randn(2, 16, 8)).shape == (2, 9, vlm.lm.hidden_size)
    again = registry.create_vlm(TrainConfig(projector="linear", image_tokens=9, projector_tokens=1, seed=5), "cpu")
    assert torch.equal(vlm.projector.net[0].weight, again.projector.net[0].weight)


def test_projector_dropout_acts_only_while_training_and_adds_no_weights():
    plain, dropped = Projector("gelu-mlp", 8, 16, 1.0, seed=1), Projector("gelu-mlp", 8, 16, 1.0, seed=1, dropout=0.5)
    assert list(plain.state_dict()) == list(dropped.state_dict())
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in dropped.state_dict().items())
    x = torch.randn(64, 8)
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))                  # evaluation never drops
    dropped.train()
    torch.manual_seed(0)
    assert not torch.allclose(dropped(x), plain(x))           # training does


def test_crop_grid_takes_one_random_square_window_per_image():
    from core.models.encoders import crop_grid
    grid = torch.arange(2 * 81, dtype=torch.float32).view(2, 81, 1).expand(2, 81, 3)
    torch.manual_seed(0)
    out = crop_grid(grid, 7)
    assert out.shape == (2, 49, 3)
    for b in range(2):
        idx = out[b, :, 0].long() - 81 * b
        rows, cols = idx // 9, idx % 9
        assert rows.max() - rows.min() == 6 and cols.max() - cols.min() == 6     # a 7x7 block
        assert len(set(zip(rows.tolist(), cols.tolist()))) == 49
    torch.manual_seed(0)
    assert torch.equal(crop_grid(grid, 7), out)                                 # seeded: resumable
    assert crop_grid(grid, 9) is grid
    with pytest.raises(ValueError, match="cannot crop a 10x10 window from a 81-token grid"):
        crop_grid(grid, 10)


# ---------------------------------------------------------------- projector sizes

def test_projector_tokens_turn_each_pooled_token_into_m_word_sized_lm_tokens():
    lm, enc = tiny_lm(), FakeEncoder()
    proj = Projector("gelu-mlp", enc.dim, lm.hidden_size, lm.token_norm(), seed=1, tokens=3)
    x = torch.randn(5, 2, enc.dim)
    with torch.no_grad():
        out, flat = proj(x), proj.net(proj.norm(x))
    assert out.shape == (5, 6, lm.hidden_size)
    # token j of pooled token i is the j-th slice of the last Linear's outputs for that token
    assert torch.equal(out[:, 4], flat[:, 1, lm.hidden_size:2 * lm.hidden_size])
    assert 0.6 < float(out.norm(dim=-1).mean()) / lm.token_norm() < 1.6
    vlm = VLM(enc, lm, proj, 2)
    feats = torch.randn(3, 16, 8)
    shared = vlm.score(feats, QUESTIONS)
    full = vlm.score(feats, QUESTIONS, share_prefix=False, batch_size=2)
    for a, b in zip(shared, full):
        assert torch.allclose(a.p_yes, b.p_yes, atol=1e-5)
    with torch.no_grad():
        ref = [naive_scores(vlm, feats[0], t)[0] for t in QUESTIONS[0]]
    assert torch.allclose(shared[0].p_yes, torch.tensor(ref), atol=1e-4)


def test_projector_hidden_width_is_an_option_and_sizes_are_checked():
    assert Projector("gelu-mlp", 8, 16, 1.0).net[0].out_features == 16          # default: the LM's width
    wide = Projector("gelu-mlp-norm", 8, 16, 1.0, hidden=64)
    assert (wide.net[0].out_features, wide.net[2].in_features, wide.net[2].out_features) == (64, 64, 16)
    assert Projector("linear", 8, 16, 1.0, tokens=2).net[0].out_features == 32
    with pytest.raises(ValueError, match="must be positive"):
        Projector("gelu-mlp", 8, 16, 1.0, tokens=0)
    for bad, message in [(dict(projector="linear", projector_hidden=64), "needs a gelu-mlp projector"),
                         (dict(projector_tokens=0), "projector_tokens"),
                         (dict(image_tokens=81, projector_tokens=4), "324 image tokens per image")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad).validate()


def test_create_vlm_passes_the_projector_sizes(monkeypatch):
    monkeypatch.setattr(registry, "create_encoder", lambda eid, device="cpu": FakeEncoder())
    monkeypatch.setattr(registry, "create_lm", lambda lid, init="pretrained", device="cpu", seed=0: tiny_lm())
    vlm = registry.create_vlm(TrainConfig(projector_hidden=40, projector_tokens=2, image_tokens=4), "cpu")
    assert vlm.projector.net[0].out_features == 40
    assert vlm.prefix(torch.randn(2, 16, 8)).shape == (2, 8, vlm.lm.hidden_size)


def test_listwise_loss_defaults_to_the_first_question_and_follows_a_target_distribution():
    from core.models.vlm import listwise_loss
    margins = [torch.tensor([2.0, 0.5, -1.0]), torch.tensor([0.0, 1.0])]
    padded = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, float("-inf")]])
    hard = listwise_loss(margins)
    assert torch.allclose(hard, torch.nn.functional.cross_entropy(padded, torch.zeros(2, dtype=torch.long)))
    assert torch.allclose(listwise_loss(margins, [torch.tensor([1.0, 0, 0]), torch.tensor([1.0, 0])]), hard)
    soft = [torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.6, 0.4])]
    expected = -sum((t * m.log_softmax(0)).sum() for t, m in zip(soft, margins)) / 2
    assert torch.isfinite(listwise_loss(margins, soft)) and torch.allclose(listwise_loss(margins, soft), expected)
    with pytest.raises(ValueError, match="one target per question"):
        listwise_loss(margins, [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])])
    leaves = [m.clone().requires_grad_(True) for m in margins]
    listwise_loss(leaves, soft).backward()                 # the -inf padding leaves every gradient finite
    assert all(torch.isfinite(m.grad).all() and m.grad.abs().sum() > 0 for m in leaves)


def test_spread_targets_put_the_hard_share_on_the_own_leaf_and_spread_the_rest_by_mass():
    from core.models.vlm import spread_targets
    share = torch.tensor([[0.2, 0.6, 0.2], [0.0, 0.0, 0.0]])
    target = spread_targets(share, 0.5)
    assert torch.allclose(target[0], torch.tensor([0.5 + 0.5 * 0.2, 0.5 * 0.6, 0.5 * 0.2]))
    assert torch.equal(target[1], torch.tensor([1.0, 0.0, 0.0]))          # no mass: the hard target
    assert torch.allclose(spread_targets(share[:1], 1.0), share[:1] / share[:1].sum())
