"""Frozen causal language models, and the few facts about their tokenizers that the prompt needs.

    LanguageModel(lm_id, model, tokenizer, init)   frozen (no gradients, eval mode) HF causal LM
    load_lm(lm_id, source, init, seed, gguf_file)  pretrained weights, or the same architecture with
                                                   seeded random weights (the random-init control)

Image tokens enter the LM through `inputs_embeds`, so they must live where the LM's own token
embeddings live. Gemma multiplies its embedding table by sqrt(hidden_size) inside the embedding
module (Gemma3TextScaledWordEmbedding), and a model fed `inputs_embeds` skips that module; so
`embed(ids)` always goes through `model.get_input_embeddings()`, which includes any such scale, and
`token_norm()` (what the projector's initial outputs are scaled to) is measured on `embed`'s output.
Text and image tokens are therefore in the same, scaled, space for every architecture.

The answer tokens (" Yes" / " No" and the other capitalisation " yes" / " no") are read from the
tokenizer in context (after "Answer:"), never hard-coded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from core.base import ConfigError
from core.models import ModelUnavailableError, hub_offline

ANSWER_CONTEXT = "Answer:"
YES_WORDS = ("Yes", "yes")      # the first is the training target
NO_WORDS = ("No", "no")


def answer_token(tokenizer, word: str, context: str = ANSWER_CONTEXT, space: bool = True) -> int:
    """The token that starts `word` (after a space when `space`) right after `context`: how the
    prompt ends. Read from the tokenizer in context, never hard-coded."""
    ctx = tokenizer.encode(context, add_special_tokens=False)
    answer = f" {word}" if space else word
    full = tokenizer.encode(f"{context}{answer}", add_special_tokens=False)
    if len(full) <= len(ctx) or full[:len(ctx)] != ctx:
        raise ConfigError(f"this tokenizer merges {context[-12:]!r} with {answer!r}, so the answer cannot "
                          f"be scored as one next token")
    return full[len(ctx)]


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all sequences share, leaving each at least one token of its own
    (where the next-token or answer logits are read): what a shared-prefix pass can run once."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for i in range(max(n, 0)):
        if any(s[i] != first[i] for s in seqs):
            return i
    return max(n, 0)


def leading_special_ids(tokenizer) -> list[int]:
    """Tokens the tokenizer puts before any text (Gemma: <bos>; SmolLM2: none). A prompt fed as
    embeddings must start with them just as a tokenized one would."""
    plain = tokenizer.encode("x", add_special_tokens=False)
    full = tokenizer.encode("x", add_special_tokens=True)
    n = len(full) - len(plain)
    if n <= 0 or full[n:] != plain:
        return []
    return full[:n]


class LanguageModel(nn.Module):
    """A frozen HF causal LM with its tokenizer. Never trained, never switched to train mode."""

    def __init__(self, lm_id: str, model: nn.Module, tokenizer, init: str = "pretrained"):
        super().__init__()
        self.id, self.init = lm_id, init
        self.model = model
        self.tokenizer = tokenizer
        self.hidden_size = model.get_input_embeddings().embedding_dim
        self.start_ids = leading_special_ids(tokenizer)
        self.yes_ids = _distinct(answer_token(tokenizer, w) for w in YES_WORDS)
        self.no_ids = _distinct(answer_token(tokenizer, w) for w in NO_WORDS)
        if set(self.yes_ids) & set(self.no_ids):
            raise ConfigError(f"LM {lm_id}: ' Yes' and ' No' start with the same token")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)   # only ever masked out
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LanguageModel":
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def yes_id(self) -> int:
        return self.yes_ids[0]

    @property
    def no_id(self) -> int:
        return self.no_ids[0]

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> input embeddings, including any scale the architecture applies (Gemma)."""
        return self.model.get_input_embeddings()(ids.to(self.device))

    @torch.no_grad()
    def name_embeddings(self, names: list[str]) -> torch.Tensor:
        """(len(names), H) fp32 on the CPU: each name's mean input embedding, tokenized with a leading
        space as it follows "Is there" in a question."""
        return torch.stack([self.embed(torch.tensor(self.tokens(" " + n))).float().mean(0).cpu() for n in names])

    @torch.no_grad()
    def token_norm(self) -> float:
        """Median L2 norm of the (scaled) input embeddings over the vocabulary."""
        vocab = self.model.get_input_embeddings().num_embeddings
        norms = [self.embed(torch.arange(s, min(s + 16384, vocab))).float().norm(dim=-1).cpu()
                 for s in range(0, vocab, 16384)]
        return float(torch.cat(norms).median())


def _distinct(ids) -> list[int]:
    out: list[int] = []
    for i in ids:
        if i not in out:
            out.append(i)
    return out


def _quiet_weight_loading(hf_logging):
    """A transformers tqdm hook that draws no "Loading weights" bar and leaves every other bar, and
    any hook already set, as they were."""
    previous = getattr(hf_logging, "_tqdm_hook", None)

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights":
            return hf_logging.EmptyTqdm(*args, **kwargs)
        return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)
    return hook


def load_lm(lm_id: str, source: str | Path, init: str = "pretrained", seed: int = 0,
            gguf_file: str | None = None) -> LanguageModel:
    """Load an LM from a local folder, a hub repo id, or a folder + GGUF file name (dequantized).
    init="random": the same architecture and tokenizer with frozen random weights drawn from
    `seed` (HF's own initializer), the control for what pretraining contributes."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if init not in ("pretrained", "random"):
        raise ConfigError(f"lm_init must be 'pretrained' or 'random', got {init!r}")
    from transformers.utils import logging as hf_logging

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if init == "pretrained":
        # transformers draws a "Loading weights" bar for a local load of under a second, in every
        # CLI command's output and job log. Only that bar is dropped (through transformers' tqdm
        # hook, for this load alone): its global switch would also hide the hub's download bar.
        set_hook = getattr(hf_logging, "set_tqdm_hook", None)
        previous = set_hook(_quiet_weight_loading(hf_logging)) if set_hook else None
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
        finally:
            if set_hook:
                set_hook(previous)
    else:
        config = AutoConfig.from_pretrained(source, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if gguf_file:
        # Dequantized to plain tensors; a leftover quantizer would refuse .to(device) and training.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return LanguageModel(lm_id, model.float(), tokenizer, init)


def hub_lm_source(repo_id: str) -> str:
    """Where to load a hub LM from: its cached snapshot folder if it was downloaded before, the
    repo id if the hub is reachable, else a clear ModelUnavailableError."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(hit, str) and any(Path(hit).parent.glob("*.safetensors")):
        return str(Path(hit).parent)
    if hub_offline():
        raise ModelUnavailableError(
            f"LM {repo_id} is not available offline: pass a local folder (config.json, safetensors, "
            f"tokenizer) or a .gguf file path as the LM id")
    return repo_id
