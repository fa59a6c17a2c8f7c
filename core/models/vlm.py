"""The VLM: frozen encoder + trained projector + frozen LM, the prompt, and yes/no scoring.

The prompt (defined here and nowhere else)::

    [LM start tokens] <k image tokens> "Question:" | " {text}\\nAnswer:"  ->  " Yes" / " No"
    `------------ prefix: once per image ---------'  `-- suffix: per question --'

- LM start tokens: whatever the tokenizer puts before text (Gemma <bos>; SmolLM2 none).
- Image tokens: the encoder grid pooled to k = TrainConfig.image_tokens tokens, then projected.
- No chat template. Measured zero-shot on SmolLM2-135M-Instruct (16 "Is a X a kind of Y?" questions,
  text only): every format tried was at chance (0.50-0.56 accuracy), but the formats differ in how
  much probability lands on the answer tokens: "Question: {q} Answer:" 0.10, "Question: {q}\\nAnswer:"
  0.31, the chat template (answers without a leading space) 0.40, a leading <|endoftext|> 0.18. The
  newline form keeps the " Yes"/" No" answer tokens and the plain-text shape the projector is trained
  on; the chat template's small mass gain is not worth its 30 extra tokens per question.
- Text-only path (LM-only baseline): the same prompt with no image tokens:
  "Question: Is a dog a kind of animal?\\nAnswer:".
- Pieces are tokenized separately ("Question:" and " {text}\\nAnswer:"), in training and in scoring
  alike, so both see exactly the same token ids.

Training (`loss`): cross-entropy of the answer token " Yes" / " No" only. The LM head runs only at
the answer position: suffixes are left-padded *after* the prefix, so every row's answer position is
the last one and `logits_to_keep=1` gives exactly those logits (pads are masked; position ids skip
them). Gradients reach the projector only: every LM and encoder weight is frozen.

Scoring (`score`): log-probabilities of the answer candidates at the answer position;
log P(yes) = logsumexp over {" Yes", " yes"}, log P(no) over {" No", " no"}. `p_yes` is normalised
over the two; `mass` is the total probability of the candidate tokens (evaluation counts
mass < 0.5 as an illegal / undecided answer). Each image's prefix runs through the LM once; its KV
cache is then gathered for all of that image's questions, and only the suffixes run.

Device: CUDA runs under bf16 autocast; CPU runs fp32.

The number of image tokens k (TrainConfig.image_tokens) defaults to 4: a 2x2 grid of image regions.
Measured with SmolLM2-135M + EfficientNet-Lite2 (9x9 grid), gelu-mlp, on this project's 2-core CPU
while other jobs ran (load average 7-10), so as CPU-milliseconds of process time per item (wall
time was about 1.8x that):

    k    prompt tokens   training, batch 32   scoring 16 images x 8 q      1 image x 128 q
                         (cpu-ms/example)     shared / batched (cpu-ms/q)  shared / batched
    4    17              350-400              120-130 / 110-120            110-126 / 109-124
    16   29              680                  138 / 157                    112 / 156

A training step costs in proportion to the prompt length, which at k <= 4 is mostly the question:
k = 1 (14 tokens) would save at most ~15 % and lose all spatial layout, k = 16 costs 1.7x per step.
So k = 4. The shared prefix is kept as the scoring path: at k = 4 it ties with batching whole
sequences on CPU (the prefix is only 6 of 17 tokens and the KV gather costs about what it saves),
at k = 16 it is up to 30 % faster, and the Predictor asks ~450 questions of one image. On an H100
(bf16) this scoring runs 134 questions/s and training 281 examples/s (docs/results-cpu.md).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.models.encoders import ImageEncoder, pool_tokens
from core.models.lms import LanguageModel
from core.models.projector import Projector

QUESTION_PREFIX = "Question:"
ANSWERS = {True: " Yes", False: " No"}   # what training teaches; scoring also counts " yes" / " no"
SCORE_BATCH = 128                        # questions per LM forward when scoring

Progress = Callable[[float, str], None]


def suffix_text(text: str) -> str:
    """The per-question part of the prompt."""
    return f" {text}\nAnswer:"


def prompt_text(text: str, image_tokens: int = 0) -> str:
    """The whole prompt as readable text, image tokens shown as <image> (for logs and the app)."""
    return "<image>" * image_tokens + QUESTION_PREFIX + suffix_text(text)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class AnswerScores:
    """Yes/no scores of Q questions (float32, CPU)."""
    p_yes: torch.Tensor      # (Q,) P(yes) / (P(yes) + P(no))
    mass: torch.Tensor       # (Q,) P(yes) + P(no) over the candidate tokens; < 0.5 = illegal

    def pairs(self) -> list[tuple[float, float]]:
        return list(zip(self.p_yes.tolist(), self.mass.tolist()))


class VLM(nn.Module):
    """encoder -> pool to k tokens -> projector -> LM. Only `projector` has trainable weights.
    The encoder and LM are submodules (so checksums and .to() see them) that refuse train mode."""

    def __init__(self, encoder: ImageEncoder, lm: LanguageModel, projector: Projector, n_tokens: int):
        super().__init__()
        if projector.in_dim != encoder.dim or projector.out_dim != lm.hidden_size:
            raise ValueError(f"projector {projector.in_dim}->{projector.out_dim} does not join encoder "
                             f"dim {encoder.dim} to LM hidden size {lm.hidden_size}")
        self.encoder, self.lm, self.projector = encoder, lm, projector
        self.n_tokens = int(n_tokens)
        self._question_ids = lm.tokens(QUESTION_PREFIX)
        # Sliding-window attention (Gemma3: 512) counts padded slots too, so padded prompts must
        # fit in the window for padded and unpadded rows to see the same tokens.
        self._window = getattr(lm.model.config, "sliding_window", None) or None

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    # ------------------------------------------------------------ prompt pieces

    def prefix(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, D) encoder grid (or already pooled to k) -> (B, k, H) image tokens."""
        feats = features.to(self.device, torch.float32)
        return self.projector(pool_tokens(feats, self.n_tokens))

    def prefix_embeds(self, features: torch.Tensor | None, batch: int = 1) -> torch.Tensor:
        """(B, P, H): start tokens, image tokens (none when features is None), "Question:"."""
        image = self.prefix(features) if features is not None else None
        if image is not None:
            batch = image.shape[0]
        question = self._embed_ids(self._question_ids, batch)
        parts = [self._embed_ids(self.lm.start_ids, batch)] if self.lm.start_ids else []
        if image is not None:
            parts.append(image.to(question.dtype))   # autocast makes the projector's output bf16
        return torch.cat(parts + [question], dim=1)

    def _embed_ids(self, ids: list[int], batch: int) -> torch.Tensor:
        emb = self.lm.embed(torch.tensor(ids, device=self.device))
        return emb.unsqueeze(0).expand(batch, -1, -1)

    def suffix_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded suffix token ids (Q, L) and their mask (1 = real token)."""
        rows = [self.lm.tokens(suffix_text(t)) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.lm.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------ LM passes

    def _check_window(self, length: int) -> None:
        if self._window is not None and length > self._window:
            raise ValueError(f"a {length}-token prompt exceeds the LM's {self._window}-token sliding attention "
                             f"window; use fewer image tokens or shorter questions")

    def _answer_logits_full(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits at the answer position of [prefix][left-padded suffix] sequences: (Q, V)."""
        self._check_window(prefix.shape[1] + ids.shape[1])
        embeds = torch.cat([prefix, self.lm.embed(ids).to(prefix.dtype)], dim=1)
        attention = torch.cat([torch.ones(prefix.shape[:2], dtype=mask.dtype, device=mask.device), mask], dim=1)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.model(inputs_embeds=embeds, attention_mask=attention, position_ids=positions,
                            use_cache=False, logits_to_keep=1)
        return out.logits[:, -1]

    def _answer_logits_shared(self, prefix: torch.Tensor, owner: torch.Tensor, ids: torch.Tensor,
                              mask: torch.Tensor) -> torch.Tensor:
        """Same logits, but each distinct prefix (G, P, H) runs once; its KV cache is gathered
        for the questions (owner[q] = prefix row of question q) and only the suffixes run."""
        g, p = prefix.shape[:2]
        self._check_window(p + ids.shape[1])
        ones = torch.ones((g, p), dtype=mask.dtype, device=mask.device)
        cache = self.lm.model(inputs_embeds=prefix, attention_mask=ones, use_cache=True,
                              logits_to_keep=1).past_key_values
        cache.reorder_cache(owner.to(prefix.device))
        attention = torch.cat([ones[:1].expand(len(owner), -1), mask], dim=1)
        positions = p + (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.model(inputs_embeds=self.lm.embed(ids).to(prefix.dtype), attention_mask=attention,
                            position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    def _candidates(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = logits.float().log_softmax(-1)
        yes = torch.logsumexp(logp[:, self.lm.yes_ids], dim=-1)
        no = torch.logsumexp(logp[:, self.lm.no_ids], dim=-1)
        return torch.sigmoid(yes - no), yes.exp() + no.exp()

    # ------------------------------------------------------------ training

    def loss(self, features: torch.Tensor, texts: Sequence[str], answers) -> torch.Tensor:
        """Mean cross-entropy of the answer token (" Yes" / " No") for a batch of (image, question)
        pairs: features (B, N, D), texts and answers of length B."""
        answers = [bool(a) for a in (answers.tolist() if torch.is_tensor(answers) else answers)]
        if not (len(texts) == len(answers) == features.shape[0]):
            raise ValueError(f"loss needs one text and answer per image, got {features.shape[0]} images, "
                             f"{len(texts)} texts, {len(answers)} answers")
        target = torch.tensor([self.lm.yes_id if a else self.lm.no_id for a in answers], device=self.device)
        with autocast(self.device):
            logits = self._answer_logits_full(self.prefix_embeds(features), *self.suffix_ids(texts))
        return F.cross_entropy(logits.float(), target)

    # ------------------------------------------------------------ scoring

    @torch.no_grad()
    def score(self, features: torch.Tensor, texts_per_image: Sequence[Sequence[str]],
              batch_size: int = SCORE_BATCH, share_prefix: bool = True,
              progress: Progress | None = None) -> list[AnswerScores]:
        """Yes/no scores of every image's questions: features (B, N, D) and B lists of texts."""
        if len(texts_per_image) != features.shape[0]:
            raise ValueError(f"{features.shape[0]} images but {len(texts_per_image)} question lists")
        pairs = [(i, t) for i, texts in enumerate(texts_per_image) for t in texts]
        p_all, m_all = torch.empty(len(pairs)), torch.empty(len(pairs))
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            images = sorted({i for i, _ in chunk})
            row = {img: r for r, img in enumerate(images)}
            owner = torch.tensor([row[i] for i, _ in chunk], device=self.device)
            with autocast(self.device):
                prefix = self.prefix_embeds(features[images])
                p, m = self._score_chunk(prefix, owner, [t for _, t in chunk], share_prefix)
            p_all[start:start + len(chunk)], m_all[start:start + len(chunk)] = p, m
            if progress is not None:
                done = start + len(chunk)
                progress(done / len(pairs), f"scored {done}/{len(pairs)} questions")
        out, at = [], 0
        for texts in texts_per_image:
            out.append(AnswerScores(p_all[at:at + len(texts)], m_all[at:at + len(texts)]))
            at += len(texts)
        return out

    def p_yes(self, features: torch.Tensor, texts_per_image: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """P(yes) of every image's questions (one tensor per image)."""
        return [s.p_yes for s in self.score(features, texts_per_image)]

    @torch.no_grad()
    def score_text(self, texts: Sequence[str], batch_size: int = SCORE_BATCH,
                   progress: Progress | None = None) -> AnswerScores:
        """The LM alone, no image tokens: "Question: {text}\\nAnswer:" (the LM-only baseline)."""
        p_all, m_all = torch.empty(len(texts)), torch.empty(len(texts))
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            with autocast(self.device):
                prefix = self.prefix_embeds(None)
                owner = torch.zeros(len(chunk), dtype=torch.long, device=self.device)
                p, m = self._score_chunk(prefix, owner, chunk, share_prefix=True)
            p_all[start:start + len(chunk)], m_all[start:start + len(chunk)] = p, m
            if progress is not None:
                done = start + len(chunk)
                progress(done / len(texts), f"scored {done}/{len(texts)} questions")
        return AnswerScores(p_all, m_all)

    def p_yes_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.score_text(texts).p_yes

    def _score_chunk(self, prefix: torch.Tensor, owner: torch.Tensor, texts: list[str],
                     share_prefix: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.suffix_ids(texts)
        if share_prefix:
            logits = self._answer_logits_shared(prefix, owner, ids, mask)
        else:
            logits = self._answer_logits_full(prefix[owner], ids, mask)
        p, m = self._candidates(logits)
        return p.cpu(), m.cpu()

    # ------------------------------------------------------------ checkpoints

    def projector_state(self) -> dict[str, torch.Tensor]:
        """The trained weights (CPU, contiguous): what a checkpoint's projector.safetensors holds."""
        return {k: v.detach().cpu().contiguous() for k, v in self.projector.state_dict().items()}

    def load_projector_state(self, state: dict[str, torch.Tensor]) -> None:
        own = self.projector.state_dict()
        bad = sorted(set(own) ^ set(state)) + sorted(k for k in own if k in state and own[k].shape != state[k].shape)
        if bad:
            raise ValueError(f"projector weights do not fit this {self.projector.kind} projector "
                             f"({self.projector.in_dim}->{self.projector.out_dim}): mismatched {', '.join(bad)}")
        self.projector.load_state_dict({k: v.to(self.device) for k, v in state.items()})
