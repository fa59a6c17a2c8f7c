"""The VLM: frozen encoder + trained projector + frozen LM, the prompt, and yes/no scoring.

The prompt (defined here and nowhere else) comes in two formats (TrainConfig.prompt, recorded in
every checkpoint)::

    plain  [LM start tokens] "Image:" <k image tokens> "\nQuestion:" | " {question}\nAnswer:" -> " Yes" / " No"
    chat   <chat template up to the user's text> <k image tokens> "\n" | "{question}<end of user turn,
           start of assistant turn>" -> "Yes" / "No"
           `-------------------- prefix: once per image ------------' `--- suffix: per question ---'

- Image tokens never sit at position 0. The first position of a causal LM is its attention sink
  (every later token attends to it heavily, whatever it holds), and SmolLM2 puts no BOS before text,
  so today's image-first prompt had the image *be* the sink. Prismatic (and the paper) insert the
  image after the BOS token; TaxoLens puts it after the LM's start tokens plus a fixed start text
  ("Image:"), which also works for LMs without a BOS. Measured on the 60-concept starter subset:
  image first, 28 updates: leaf accuracy 0.52; image after "Image:", k = 1, 500 updates with warmup
  and cosine decay: leaf 0.83, hypernym 0.86.
- Image tokens: the encoder grid pooled to k = TrainConfig.image_tokens tokens, then projected.
  k = 1 is the global average pool, the feature EfficientNet was trained to classify from.
- chat: the LM's own chat template with the image and the question as the user's turn (SmolLM2's
  template adds its default system prompt); answers are "Yes"/"No" without a leading space, as an
  assistant turn starts.
- Pieces are tokenized separately (head, between, each suffix), in training and in scoring alike,
  so both see exactly the same token ids.

Training (`loss`): cross-entropy of the answer token (" Yes" / " No", or "Yes"/"No" for chat) only.
Each distinct image's prefix runs through the LM once with gradients on, its KV cache is gathered
for all of that image's questions and only the suffixes run (the same shared-prefix path as
scoring, so a training batch made of whole images costs fewer FLOPs per question). The LM head runs
only at the answer position: suffixes are left-padded *after* the prefix, so every row's answer
position is the last one (pads are masked; position ids skip them). Gradients reach the projector
only: every LM and encoder weight is frozen. `VLM.joint_loss` computes the losses of several VLMs that
share one LM (a sweep's runs, each with its own projector) in one LM pass over all their batches.

Scoring (`score`): log-probabilities of the answer candidates at the answer position;
log P(yes) = logsumexp over {" Yes", " yes"}, log P(no) over {" No", " no"} (no leading space for
chat). `p_yes` is normalised over the two; `mass` is the total probability of the candidate tokens
(evaluation counts mass < 0.5 as an illegal / undecided answer).

Device and precision: CUDA runs under bf16 autocast; CPU runs fp32. Training may hold the frozen
LM's weights in bf16 (`hold_lm_in_bf16`, TrainConfig.precision): the projector stays fp32 and its
output tokens are cast to the LM's dtype. On CPUs with AMX a bf16 matmul is ~9x an fp32 one, so a
training step of 128 questions runs 2.1x faster (23 -> 48 questions/s on 2 cores; bench/); P(yes)
moves by 0.007 on average (at most 0.1), which is why evaluation stays fp32.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.base import ConfigError, Progress
from core.models.encoders import ImageEncoder, pool_tokens
from core.models.lms import NO_WORDS, YES_WORDS, LanguageModel, answer_token, common_prefix_length
from core.models.projector import Projector

PROMPT_FORMATS = ("plain", "chat")
START_TEXT = "Image:"                    # plain: what precedes the image tokens (after the LM's start tokens)
SCORE_BATCH = 128                        # questions per LM forward when scoring
NAMING_FRAMES = ("Is there", "Are there")   # what a naming target starts with (questions.question_text)
QUESTION_START = 3                       # suffix tokens scoring groups by (" Is there a"), see score()
_IMAGE_MARK, _QUESTION_MARK = "\x00IMAGE\x00", "\x00QUESTION\x00"   # split points in a rendered chat template


@dataclass(frozen=True)
class Prompt:
    """Token ids of the fixed prompt pieces of one format, and the answer tokens in its context."""
    format: str
    head: tuple[int, ...]          # before the image tokens
    between: tuple[int, ...]       # after the image tokens, before every question
    before_question: str           # per-question suffix = before_question + question + after_question
    after_question: str
    yes_ids: tuple[int, ...]       # answer candidates; the first is the training target
    no_ids: tuple[int, ...]

    def suffix(self, question: str) -> str:
        return f"{self.before_question}{question}{self.after_question}"


def build_prompt(lm: LanguageModel, fmt: str = "plain") -> Prompt:
    """The prompt pieces of `fmt` for this LM's tokenizer (ConfigError when it cannot be built)."""
    tok = lm.tokenizer
    if fmt == "plain":
        start = list(lm.start_ids)
        return Prompt("plain", tuple(start + lm.tokens(START_TEXT)), tuple(lm.tokens("\nQuestion:")),
                      " ", "\nAnswer:", tuple(lm.yes_ids), tuple(lm.no_ids))
    if fmt != "chat":
        raise ConfigError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}, got {fmt!r}")
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"LM {lm.id} has no chat template; use the plain prompt format")

    def render(content: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                       add_generation_prompt=True)

    head, rest = render(f"{_IMAGE_MARK}\n{_QUESTION_MARK}").split(_IMAGE_MARK)
    between, after = rest.split(_QUESTION_MARK)

    def with_start(ids: list[int]) -> tuple[int, ...]:
        # A template that does not spell out the BOS gets the tokenizer's start tokens, as text would.
        start = list(lm.start_ids)
        return tuple(ids if not start or ids[:len(start)] == start else start + ids)

    context = after.rstrip(" ")   # answers follow the assistant header without a space
    yes = tuple(dict.fromkeys(answer_token(tok, w, context, space=False) for w in YES_WORDS))
    no = tuple(dict.fromkeys(answer_token(tok, w, context, space=False) for w in NO_WORDS))
    if set(yes) & set(no):
        raise ConfigError(f"LM {lm.id}: 'Yes' and 'No' start with the same token after its chat template")
    return Prompt("chat", with_start(lm.tokens(head)), tuple(lm.tokens(between)), "", after, yes, no)


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


@dataclass
class LossBatch:
    """One run's training batch (the arguments of VLM.loss)."""
    features: torch.Tensor
    texts: Sequence[str]
    answers: Sequence[bool] | torch.Tensor
    owner: torch.Tensor | Sequence[int] | None = None
    ranked: Sequence[tuple[int, Sequence[str]]] = ()
    named: Sequence[tuple[int, str]] = ()    # (image row, "Is there a dog"): the naming term
    name_weight: float = 0.0
    posteriors: bool = False                 # features are concept posteriors (VLM.prefix)
    rank_targets: Sequence[torch.Tensor] = ()   # per ranked group, a target distribution (default: its first)


def listwise_loss(margins: Sequence[torch.Tensor], targets: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """The ranking term: per group, the cross-entropy of a softmax over its yes-minus-no margins
    against a target distribution over the group's questions (default: all on the first, the image's
    own leaf); the mean over groups."""
    padded = torch.nn.utils.rnn.pad_sequence(list(margins), batch_first=True, padding_value=float("-inf"))
    if not targets:
        return F.cross_entropy(padded, torch.zeros(len(margins), dtype=torch.long, device=padded.device))
    if len(targets) != len(margins) or any(len(t) != len(m) for t, m in zip(targets, margins)):
        raise ValueError("rank_targets needs one target per question of every ranked group")
    target = torch.nn.utils.rnn.pad_sequence([t.to(padded) for t in targets], batch_first=True)
    logp = padded.log_softmax(-1)
    return -torch.where(target > 0, target * logp, torch.zeros_like(logp)).sum(-1).mean()


def spread_targets(share: torch.Tensor, s: float) -> torch.Tensor:
    """rank_soft's targets for listwise_loss: (G, n) posterior mass of each group's questions (own
    leaf first) -> (1 - s) on the own leaf plus s spread by that mass, renormalised per group; a
    group whose mass is 0 keeps the hard target."""
    total = share.sum(1, keepdim=True)
    own = torch.zeros_like(share)
    own[:, 0] = 1.0
    return (1 - s) * own + s * torch.where(total > 0, share / total.clamp_min(1e-30), own)


class VLM(nn.Module):
    """encoder -> pool to k tokens -> projector -> LM. Only `projector` has trainable weights.
    The encoder and LM are submodules (so checksums and .to() see them) that refuse train mode."""

    def __init__(self, encoder: ImageEncoder, lm: LanguageModel, projector: Projector, n_tokens: int,
                 prompt: str = "plain"):
        super().__init__()
        if projector.in_dim != encoder.dim or projector.out_dim != lm.hidden_size:
            raise ValueError(f"projector {projector.in_dim}->{projector.out_dim} does not join encoder "
                             f"dim {encoder.dim} to LM hidden size {lm.hidden_size}")
        self.encoder, self.lm, self.projector = encoder, lm, projector
        self.n_tokens = int(n_tokens)
        self.prompt = build_prompt(lm, prompt)
        # Sliding-window attention (Gemma3: 512) counts padded slots too, so padded prompts must
        # fit in the window for padded and unpadded rows to see the same tokens.
        self._window = getattr(lm.model.config, "sliding_window", None) or None
        self._id_tensors: dict = {}

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    def hold_lm_in_bf16(self) -> None:
        """Cast the frozen LM to bf16 (for training; see the module docstring). On the CPU its
        attention switches to the eager implementation: the fused CPU attention's bf16 backward
        took 35 % of a training step on ~20-token sequences, the eager one's matmuls a few %."""
        self.lm.model.to(torch.bfloat16)
        if self.device.type == "cpu":
            self.lm.model.set_attn_implementation("eager")

    def bf16_twin(self) -> "VLM":
        """This VLM with a bf16 copy of the frozen LM, sharing the encoder and the projector: a quick
        first pass for scoring where bf16 matmuls are native (core.predict's leaf shortlist). On the
        CPU its attention is the eager implementation: 385 leaf questions scored in 3.2 s against
        3.7 s with the fused one (2 cores with AMX)."""
        model = copy.deepcopy(self.lm.model).to(torch.bfloat16)
        if self.device.type == "cpu":
            model.set_attn_implementation("eager")
        lm = LanguageModel(self.lm.id, model, self.lm.tokenizer, self.lm.init)
        return VLM(self.encoder, lm, self.projector, self.n_tokens, self.prompt.format)

    # ------------------------------------------------------------ prompt pieces

    def prefix(self, features: torch.Tensor, posteriors: bool = False) -> torch.Tensor:
        """(B, N, D) encoder grid (or already pooled to k) -> (B, k, H) image tokens. posteriors:
        `features` are already a posterior projector's concept posteriors (B, k, C)."""
        feats = features.to(self.device, torch.float32)
        return self.projector(feats if posteriors else pool_tokens(feats, self.n_tokens), posteriors=posteriors)

    def prefix_embeds(self, features: torch.Tensor, with_question: bool = True,
                      posteriors: bool = False) -> torch.Tensor:
        """(B, P, H): the prompt up to where questions differ: start tokens and text, the image
        tokens and (with_question) the text before each question."""
        image = self.prefix(features, posteriors)
        head = self._embed_ids(self.prompt.head, image.shape[0])
        parts = [head, image.to(head.dtype)]   # autocast makes the projector's output bf16
        if with_question and self.prompt.between:
            parts.append(self._embed_ids(self.prompt.between, image.shape[0]))
        return torch.cat(parts, dim=1)

    def _embed_ids(self, ids: Sequence[int], batch: int) -> torch.Tensor:
        key = (tuple(ids), self.device)
        cached = self._id_tensors.get(key)
        if cached is None:      # the prompt's fixed pieces: copied to the device once, not every step
            cached = self._id_tensors[key] = torch.tensor(list(ids), device=self.device, dtype=torch.long)
        emb = self.lm.embed(cached)
        return emb.unsqueeze(0).expand(batch, -1, -1)

    def suffix_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded suffix token ids (Q, L) and their mask (1 = real token)."""
        return self._pad([self.lm.tokens(self.prompt.suffix(t)) for t in texts])

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
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
        return self._suffix_logits(prefix, ids, mask, keep=1)[:, -1]

    def _suffix_logits(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
        """Logits at the last `keep` positions of [prefix][left-padded suffix] sequences, one full LM
        pass (pads masked, position ids skipping them): (Q, keep, V)."""
        self._check_window(prefix.shape[1] + ids.shape[1])
        embeds = torch.cat([prefix, self.lm.embed(ids).to(prefix.dtype)], dim=1)
        attention = torch.cat([torch.ones(prefix.shape[:2], dtype=mask.dtype, device=mask.device), mask], dim=1)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.model(inputs_embeds=embeds, attention_mask=attention, position_ids=positions,
                            use_cache=False, logits_to_keep=keep)
        return out.logits

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
        yes = torch.logsumexp(logp[:, list(self.prompt.yes_ids)], dim=-1)
        no = torch.logsumexp(logp[:, list(self.prompt.no_ids)], dim=-1)
        return torch.sigmoid(yes - no), yes.exp() + no.exp()

    # ------------------------------------------------------------ training

    def loss(self, features: torch.Tensor, texts: Sequence[str], answers,
             owner: torch.Tensor | Sequence[int] | None = None,
             ranked: Sequence[tuple[int, Sequence[str]]] = (), named: Sequence[tuple[int, str]] = (),
             name_weight: float = 0.0, rank_targets: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """Mean cross-entropy of the answer token over a batch of questions. features (G, N, D)
        holds G distinct images and owner[q] the image of question q (default: one image per
        question, owner = 0..Q-1). Each image's prefix runs once; its KV cache (gradients flowing
        through it) is shared by that image's questions.

        ranked: (image row, [true question, other questions...]) groups. Each adds a
        listwise term: the cross-entropy of a softmax over the group's yes-minus-no logits with the
        true question as the target, so the image's own leaf must out-score the others. The yes/no
        term alone never compares two questions about one image; this one does, without changing
        the share of yes and no answers the yes/no term sees. rank_targets: per group, a target
        distribution over its questions instead (listwise_loss).

        named: (image row, "Is there a dog") pairs, the image's concept. They add name_weight times
        the mean of _naming_nll: the LM continuing "Is there" with the image's concept name."""
        return VLM.joint_loss([self], [LossBatch(features, texts, answers, owner, ranked, named, name_weight,
                                                 rank_targets=rank_targets)])[0]


    def _check_batch(self, b: "LossBatch") -> tuple[list[int], list[bool]]:
        """The batch's owner rows and answers, after checking they fit its images (ValueError)."""
        features, texts, answers, owner = b.features, b.texts, b.answers, b.owner
        answers = [bool(a) for a in (answers.tolist() if torch.is_tensor(answers) else answers)]
        if owner is None:
            if not (len(texts) == len(answers) == features.shape[0]):
                raise ValueError(f"loss needs one text and answer per image, got {features.shape[0]} images, "
                                 f"{len(texts)} texts, {len(answers)} answers")
            owner = range(len(texts))
        owner = torch.as_tensor(owner, dtype=torch.long).tolist()
        if not (len(texts) == len(answers) == len(owner)) or len(owner) == 0 or \
                min(owner) < 0 or max(owner) >= features.shape[0]:
            raise ValueError(f"loss needs one text, answer and owner image per question, got "
                             f"{len(texts)} texts, {len(answers)} answers, {len(owner)} owners for "
                             f"{features.shape[0]} images")
        if any(len(group) < 2 or not 0 <= int(row) < features.shape[0] for row, group in b.ranked):
            raise ValueError("each ranked group needs an image row and at least two questions")
        return owner, answers

    # ------------------------------------------------------------ several runs, one LM pass

    @staticmethod
    def joint_loss(vlms: Sequence["VLM"], batches: Sequence[LossBatch]) -> list[torch.Tensor]:
        """VLM.loss of each (vlm, batch) pair, computed in one pass of the shared frozen LM: every run's
        image prefixes (through its own projector) and question suffixes are stacked into one batch.
        The runs share the LM, the prompt and the prefix length (core.train.step_key groups them so);
        their projectors are disjoint, so the gradient of sum(losses) reaches each projector exactly as
        its own loss would. This is how a sweep trains many runs at once (core.train.train_many): one
        large batch instead of many small ones, which is what keeps a GPU busy."""
        if len(vlms) != len(batches) or not vlms:
            raise ValueError(f"joint_loss needs one batch per VLM, got {len(vlms)} VLMs and {len(batches)} batches")
        first = vlms[0]
        for v in vlms[1:]:
            if v.lm is not first.lm or v.prompt != first.prompt or v.n_tokens != first.n_tokens:
                raise ValueError("joint_loss needs VLMs that share one LM, prompt and number of image tokens")
        prefixes, owners, texts, spans, named = [], [], [], [], []
        images = 0
        yes, no = first.prompt.yes_ids[0], first.prompt.no_ids[0]
        with autocast(first.device):
            for vlm, b in zip(vlms, batches):
                owner, answers = vlm._check_batch(b)
                group_rows = [int(row) for row, group in b.ranked for _ in group]
                prefixes.append(vlm.prefix_embeds(b.features, posteriors=b.posteriors))
                owners += [images + int(o) for o in owner] + [images + r for r in group_rows]
                start = len(texts)
                texts += list(b.texts) + [t for _, group in b.ranked for t in group]
                named_from = len(named)
                if b.named and b.name_weight:
                    if not all(0 <= int(row) < b.features.shape[0] for row, _ in b.named):
                        raise ValueError("each named image row must be one of the batch's images")
                    named += [(images + int(row), text) for row, text in b.named]
                spans.append((start, len(b.texts), [len(g) for _, g in b.ranked], answers,
                              slice(named_from, len(named)), b.name_weight, b.rank_targets))
                images += b.features.shape[0]
            if len({p.shape[1] for p in prefixes}) > 1:
                raise ValueError("joint_loss needs image prefixes of one length; got "
                                 f"{sorted({p.shape[1] for p in prefixes})} (top-k concept tokens lengthen them)")
            prefix = torch.cat(prefixes)
            logits = first._answer_logits_shared(prefix, torch.tensor(owners, device=first.device),
                                                 *first.suffix_ids(texts)).float()
            naming = (first._naming_nll(prefix[torch.tensor([r for r, _ in named], device=first.device)],
                                        [t for _, t in named]) if named else None)
        losses = []
        for start, n, sizes, answers, names, name_weight, rank_targets in spans:
            target = torch.tensor([yes if a else no for a in answers], device=first.device)
            loss = F.cross_entropy(logits[start:start + n], target)
            if sizes:
                rows = logits[start + n:start + n + sum(sizes)]
                loss = loss + listwise_loss((rows[:, yes] - rows[:, no]).split(sizes), rank_targets)
            if names.stop > names.start:
                loss = loss + name_weight * naming[names].mean()
            losses.append(loss)
        return losses

    def _naming_nll(self, prefix: torch.Tensor, questions: Sequence[str]) -> torch.Tensor:
        """Per image (R,): the summed negative log-likelihood of the words after "Is there" or "Are
        there" ("a dog" of "Is there a dog"), read from [prefix][text] in one LM pass: the LM asked
        to say what the image shows, a softmax over its whole vocabulary."""
        rows, starts = [], []
        for q in questions:
            frame = " ".join(q.split(" ")[:2])
            start = self.lm.tokens(self.prompt.before_question + frame)
            row = self.lm.tokens(self.prompt.before_question + q)
            if frame not in NAMING_FRAMES or row[:len(start)] != start or len(row) <= len(start):
                raise ValueError(f"naming targets must be questions that start with "
                                 f"{' or '.join(map(repr, NAMING_FRAMES))}, got {q!r}")
            rows.append(row)
            starts.append(len(start))
        ids, mask = self._pad(rows)
        width = ids.shape[1]
        # logits[:, c] (suffix column c) predicts column c + 1; rows are left-padded to `width`.
        logp = self._suffix_logits(prefix, ids, mask, keep=width)[:, :-1].float().log_softmax(-1)
        nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        first_target = torch.tensor([width - len(r) + n for r, n in zip(rows, starts)], device=ids.device)
        column = torch.arange(1, width, device=ids.device)
        return (nll * (column >= first_target[:, None])).sum(-1)

    # ------------------------------------------------------------ scoring

    @torch.no_grad()
    def score(self, features: torch.Tensor, texts_per_image: Sequence[Sequence[str]],
              batch_size: int = SCORE_BATCH, share_prefix: bool = True,
              progress: Progress | None = None, posteriors: bool = False) -> list[AnswerScores]:
        """Yes/no scores of every image's questions: features (B, N, D) and B lists of texts.
        posteriors: features are a posterior projector's concept posteriors (training's inputs)."""
        if len(texts_per_image) != features.shape[0]:
            raise ValueError(f"{features.shape[0]} images but {len(texts_per_image)} question lists")
        pairs = [(i, t) for i, texts in enumerate(texts_per_image) for t in texts]
        # Each image's questions grouped by how they start (" Is there a", " Are there", ...), then
        # shortest first: a batch's common start joins the prefix that runs once (_score_chunk), and
        # left padding to a batch's longest suffix is wasted work (13 % of the tokens when one image
        # is asked every leaf of the default dataset in name order). Images stay together, so a
        # batch still runs few distinct prefixes.
        tokens = {t: self.lm.tokens(self.prompt.suffix(t)) for t in {t for _, t in pairs}}
        order = sorted(range(len(pairs)), key=lambda j: (pairs[j][0], tuple(tokens[pairs[j][1]][:QUESTION_START]),
                                                         len(tokens[pairs[j][1]])))
        p_all, m_all = torch.empty(len(pairs)), torch.empty(len(pairs))
        for start in range(0, len(pairs), batch_size):
            where = order[start:start + batch_size]
            chunk = [pairs[j] for j in where]
            images = sorted({i for i, _ in chunk})
            row = {img: r for r, img in enumerate(images)}
            owner = torch.tensor([row[i] for i, _ in chunk], device=self.device)
            with autocast(self.device):
                prefix = self.prefix_embeds(features[images], posteriors=posteriors)
                p, m = self._score_chunk(prefix, owner, [tokens[t] for _, t in chunk], share_prefix)
            p_all[where], m_all[where] = p, m
            if progress is not None:
                done = start + len(chunk)
                progress(done / len(pairs), f"scored {done}/{len(pairs)} questions")
        out, at = [], 0
        for texts in texts_per_image:
            out.append(AnswerScores(p_all[at:at + len(texts)], m_all[at:at + len(texts)]))
            at += len(texts)
        return out

    def _score_chunk(self, prefix: torch.Tensor, owner: torch.Tensor, rows: list[list[int]],
                     share_prefix: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """P(yes) and candidate mass of one batch: rows are the questions' suffix token ids (score()
        tokenized each distinct question once)."""
        if share_prefix:
            # The tokens every suffix of the chunk starts with (" Is there a") join the shared
            # prefix: they run once per image instead of once per question. Each suffix keeps at
            # least its last token, where the answer is read. Suffixes are tokenized on their own
            # either way, so the sequences, and the answers, are the ones full scoring sees.
            common = common_prefix_length(rows)
            if common:
                start = self._embed_ids(rows[0][:common], prefix.shape[0]).to(prefix.dtype)
                prefix = torch.cat([prefix, start], dim=1)
            ids, mask = self._pad([r[common:] for r in rows])
            logits = self._answer_logits_shared(prefix, owner, ids, mask)
        else:
            ids, mask = self._pad(rows)
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


