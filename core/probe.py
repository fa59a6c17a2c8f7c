"""What the language model alone knows about the dataset's taxonomy: `taxolens probe-lm`.

The probe asks the frozen LM about the dataset's own (concept, category) pairs — every concept with
each category it is in (yes) and as many categories it is not in (no, drawn by seed) — four ways:

    chat      the paper's LM-only question: the user turn "Is a dog a kind of animal?" through the
              LM's chat template (generation prompt on, thinking off); the next-token distribution
              over "Yes", "No", "yes", "no" (no leading space); yes when P(Yes) > P(No)
    plain     the same question as "Question: {q}\\nAnswer:" with " Yes" / " No" (the former
              LM-only baseline's format)
    pairwise  for a concept, a true category t and a wrong category w: is P(yes | t) > P(yes | w)?
              (chat format where the LM has a template, else plain; both are recorded)
    sentence  log p("a dog is an animal") > log p("a dog is a vehicle"), summing the log-probability
              of every token of the sentence after the LM's start token

Yes/no scores are summarized per category (yes/no macro-F1 and accuracy, beside a fair coin's
macro-F1 on the same questions) and averaged over categories; pairwise and sentence shares are per
true category and pooled. Written atomically to runs/probes/<lm-slug>_<dataset>[...]/probe.csv and
metrics.json. LM calls are batched: left padding, an attention mask and position ids that skip the
pads, and the LM head only at the last position for next-token questions.
"""
from __future__ import annotations

import csv
import io
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core import metrics, paths, runs
from core.base import ConfigError, Progress
from core.taxonomy import with_article

CHAT_WORDS = ("Yes", "No", "yes", "no")       # the paper's options, no leading space
PLAIN_WORDS = ("Yes", "No")                   # read with a leading space, after "Answer:"
BATCH = 32
MIN_SHARED = 8      # a shorter shared prefix costs more (cache copy per batch) than it saves
CSV_FIELDS = ("concept", "category", "answer", "question", "chat_p_yes", "chat_pred", "chat_mass",
              "plain_p_yes", "plain_pred", "plain_mass", "sentence", "sentence_logprob")


def question(concept_label: str, category_label: str) -> str:
    """'Is a dog a kind of animal?': the hypernymy question about a concept's name."""
    return f"Is {with_article(concept_label)} a kind of {category_label}?"


def plain_prompt(q: str) -> str:
    return f"Question: {q}\nAnswer:"


def category_phrase(label: str) -> str:
    """The category as a noun phrase, worded as the image questions word it ('an animal',
    'an item of clothing', 'food')."""
    from core.questions import question_text

    text = question_text(label)
    m = re.fullmatch(r"(?:Is|Are) there (.+) in the image\?", text)
    return m.group(1) if m else with_article(label)


def sentence(concept_label: str, category_label: str) -> str:
    """'a dog is an animal'."""
    return f"{with_article(concept_label)} is {category_phrase(category_label)}"


@dataclass(frozen=True)
class Pair:
    concept: str
    category: str
    answer: bool


def probe_pairs(ds, seed: int = 0) -> list[Pair]:
    """Every concept with each of its categories (yes), and as many categories it is not in (no),
    drawn per concept from a generator seeded by (seed, concept): a pure function of (ds, seed)."""
    used = sorted({k for c in ds.concepts.values() for k in c.categories})
    pairs: list[Pair] = []
    for name in sorted(ds.concepts):
        own = list(dict.fromkeys(ds.concepts[name].categories))
        labels = {ds.categories[k].label for k in own}
        outside = [k for k in used if k not in own and ds.categories[k].label not in labels]
        rng = random.Random(f"probe:{seed}:{name}")
        pairs += [Pair(name, k, True) for k in own]
        pairs += [Pair(name, k, False) for k in sorted(rng.sample(outside, min(len(own), len(outside))))]
    return pairs


# ---------------------------------------------------------------- prompts and answer tokens

def chat_template_name(tokenizer) -> str | None:
    """'chat template' when the tokenizer has one, else None (the probe is then plain-only)."""
    return "chat template" if getattr(tokenizer, "chat_template", None) else None


def chat_prompt(tokenizer, q: str) -> str:
    """The question as the only user turn, through the LM's chat template, generation prompt on.
    Templates that can think (Qwen3) are asked not to, as in the paper; others ignore the flag."""
    return tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=False)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def next_token_id(tokenizer, context: str, word: str) -> int:
    """The token that starts `word` right after `context` (read in context, never hard-coded:
    tokenizers differ in how they split a word after a newline or a special token)."""
    head = _encode(tokenizer, context)
    full = _encode(tokenizer, context + word)
    if len(full) <= len(head) or full[:len(head)] != head:
        raise ConfigError(f"this tokenizer merges {context[-12:]!r} with {word!r}, so the answer cannot "
                          f"be read as one next token")
    return full[len(head)]


def start_ids(lm) -> list[int]:
    """What a sentence is conditioned on: the tokenizer's own start tokens (Gemma <bos>), else its
    BOS or EOS token, so the first word has a probability too."""
    if lm.start_ids:
        return list(lm.start_ids)
    tok = lm.tokenizer
    for token_id in (tok.bos_token_id, tok.eos_token_id):
        if token_id is not None:
            return [int(token_id)]
    return []


# ---------------------------------------------------------------- batched LM calls

def _batches(seqs: Sequence[Sequence[int]], batch_size: int):
    """Index batches of similar length (less padding), longest first."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def _left_padded(seqs: list[Sequence[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[row, width - len(s):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)      # pads do not shift the real tokens' positions
    return ids.to(device), mask.to(device), positions.to(device)


def next_token_logprobs(lm, seqs: Sequence[Sequence[int]], token_ids: Sequence[int],
                        batch_size: int = BATCH, progress: Progress | None = None, share_prefix: bool = True):
    """(N, len(token_ids)) log-probabilities of each candidate as the next token after each
    sequence (log-softmax over the whole vocabulary). The prefix every sequence shares (a chat
    template's system turn) runs once per batch and its KV cache serves every row; the rest is
    left-padded after it, so each row's last position is its own last token."""
    import torch

    out = torch.empty(len(seqs), len(token_ids))
    wanted = torch.tensor(list(token_ids), dtype=torch.long)
    from core.models.lms import common_prefix_length
    shared = common_prefix_length(seqs) if share_prefix else 0
    shared = shared if shared >= MIN_SHARED else 0
    prefix = torch.tensor([list(seqs[0][:shared])], dtype=torch.long, device=lm.device) if shared else None
    done = 0
    with torch.no_grad():
        for idx in _batches(seqs, batch_size):
            ids, mask, pos = _left_padded([seqs[i][shared:] for i in idx], lm.pad_id, lm.device)
            kwargs = {"use_cache": False}       # no KV cache to build for rows read once
            if prefix is not None:
                cache = lm.model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
                cache.reorder_cache(torch.zeros(len(idx), dtype=torch.long, device=lm.device))
                mask = torch.cat([torch.ones((len(idx), shared), dtype=mask.dtype, device=mask.device), mask], 1)
                kwargs = {"past_key_values": cache, "use_cache": True}
                pos = pos + shared
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1,
                              **kwargs).logits
            logp = logits[:, -1].float().log_softmax(-1).cpu()
            out[idx] = logp[:, wanted]
            done += len(idx)
            if progress is not None:
                progress(done / len(seqs), f"{done}/{len(seqs)}")
    return out


def sequence_logprobs(lm, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                      batch_size: int = BATCH, progress: Progress | None = None) -> list[float]:
    """Sum of log p(continuation token | everything before it) for each (context, continuation).
    With an empty context the first token has nothing to be predicted from and is left out."""
    import torch

    seqs = [list(c) + list(t) for c, t in zip(contexts, continuations)]
    out = [0.0] * len(seqs)
    done = 0
    with torch.no_grad():
        for idx in _batches(seqs, batch_size):
            ids, mask, pos = _left_padded([seqs[i] for i in idx], lm.pad_id, lm.device)
            logp = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                            use_cache=False).logits.float().log_softmax(-1)
            width = ids.shape[1]
            for row, i in enumerate(idx):
                n = len(continuations[i]) - (0 if contexts[i] else 1)
                # token at position p is predicted by the logits at p - 1
                positions = torch.arange(width - n, width, device=logp.device)
                out[i] = float(logp[row, positions - 1, ids[row, positions]].sum())
            done += len(idx)
            if progress is not None:
                progress(done / len(seqs), f"{done}/{len(seqs)}")
    return out


# ---------------------------------------------------------------- the probe

def probe(lm, ds, seed: int = 0, progress: Progress | None = None, batch_size: int = BATCH) -> tuple[list[dict], dict]:
    """(rows, metrics) of the probe of `lm` (core.models.lms.LanguageModel) on dataset `ds`."""
    report = progress or (lambda f, m: None)
    tok = lm.tokenizer
    pairs = probe_pairs(ds, seed)
    if not pairs:
        raise ConfigError(f"dataset '{ds.name}' has no (concept, category) pairs to probe")
    questions = [question(ds.concepts[p.concept].label, ds.categories[p.category].label) for p in pairs]
    notes: list[str] = []

    template = chat_template_name(tok)
    chat = None
    if template is None:
        notes.append("this LM's tokenizer has no chat template: only the plain format was asked")
    else:
        prompts = [chat_prompt(tok, q) for q in questions]
        context = chat_prompt(tok, questions[0])
        word_ids = [next_token_id(tok, context, w) for w in CHAT_WORDS]
        report(0.0, "chat format")
        chat = next_token_logprobs(lm, [_encode(tok, p) for p in prompts], word_ids, batch_size,
                                   _span(report, 0.0, 0.45, "chat"))
    plain_ids = [next_token_id(tok, "Answer:", " " + w) for w in PLAIN_WORDS]
    start = list(lm.start_ids)
    plain = next_token_logprobs(lm, [start + _encode(tok, plain_prompt(q)) for q in questions], plain_ids,
                                batch_size, _span(report, 0.45, 0.75, "plain"))
    sentences = [sentence(ds.concepts[p.concept].label, ds.categories[p.category].label) for p in pairs]
    context = start_ids(lm)
    if not context:
        notes.append("no start token: a sentence's first token is not scored")
    sent = sequence_logprobs(lm, [context] * len(pairs), [_encode(tok, s) for s in sentences], batch_size,
                             _span(report, 0.75, 1.0, "sentences"))

    rows = []
    for i, (p, q) in enumerate(zip(pairs, questions)):
        row = {"concept": p.concept, "category": p.category, "answer": p.answer, "question": q,
               "chat_p_yes": None, "chat_pred": None, "chat_mass": None}
        if chat is not None:
            row.update(_decision(chat[i, 0], chat[i, 1], chat[i].exp().sum(), "chat"))
        row.update(_decision(plain[i, 0], plain[i, 1], plain[i].exp().sum(), "plain"))
        row.update(sentence=sentences[i], sentence_logprob=sent[i])
        rows.append(row)
    result = summarize(rows)
    result.update(chat_template=template, notes=notes, n_concepts=len(ds.concepts),
                  n_categories=len({p.category for p in pairs}))
    return rows, result


def _span(report: Progress, lo: float, hi: float, what: str) -> Progress:
    return lambda f, m: report(lo + (hi - lo) * f, f"{what} {m}")


def _decision(logp_yes, logp_no, mass, prefix: str) -> dict:
    """p_yes = P(Yes) / (P(Yes) + P(No)): yes exactly when Yes outranks No."""
    ly, ln = float(logp_yes), float(logp_no)
    p_yes = 1.0 / (1.0 + math.exp(min(ln - ly, 700.0)))
    return {f"{prefix}_p_yes": p_yes, f"{prefix}_pred": ly > ln, f"{prefix}_mass": float(mass)}


def summarize(rows: Sequence[dict]) -> dict:
    """Probe metrics from its rows: per category and averaged over categories (macro-F1 yes/no,
    accuracy, a fair coin's macro-F1), pairwise and sentence shares per true category and pooled."""
    cats = sorted({r["category"] for r in rows})
    has_chat = any(r["chat_pred"] is not None for r in rows)
    by_cat = {k: [r for r in rows if r["category"] == k] for k in cats}
    triples = _triples(rows)
    per_category: dict[str, dict] = {}
    for k in cats:
        sel = by_cat[k]
        answers = [bool(r["answer"]) for r in sel]
        entry: dict = {"n_yes": sum(answers), "n_no": len(answers) - sum(answers),
                       "chance_macro_f1": metrics.chance_macro_f1(answers)}
        for fmt in ("chat", "plain"):
            if fmt == "chat" and not has_chat:
                entry.update(chat_accuracy=None, chat_macro_f1=None)
                continue
            preds = [bool(r[f"{fmt}_pred"]) for r in sel]
            entry[f"{fmt}_accuracy"] = metrics.accuracy(answers, preds)
            entry[f"{fmt}_macro_f1"] = metrics.macro_f1_yes_no(answers, preds)
        mine = [t for t in triples if t[1]["category"] == k]
        entry["n_triples"] = len(mine)
        entry["chat_pairwise"] = None
        for name, better in _comparisons(has_chat).items():
            entry[name] = _share([better(t, w) for _, t, w in mine])
        per_category[k] = entry

    def mean_of(key: str):
        return metrics.mean_defined(e[key] for e in per_category.values())

    answers = [bool(r["answer"]) for r in rows]
    out: dict = {"kind": "probe", "n_pairs": len(rows), "n_yes": sum(answers), "n_triples": len(triples),
                 "chance_macro_f1": mean_of("chance_macro_f1")}
    for fmt in ("chat", "plain"):
        if fmt == "chat" and not has_chat:
            out.update(chat_accuracy=None, chat_macro_f1=None, chat_yes_rate=None, chat_mass=None)
            continue
        preds = [bool(r[f"{fmt}_pred"]) for r in rows]
        out[f"{fmt}_accuracy"] = metrics.accuracy(answers, preds)
        out[f"{fmt}_macro_f1"] = mean_of(f"{fmt}_macro_f1")
        out[f"{fmt}_yes_rate"] = sum(preds) / len(preds)
        out[f"{fmt}_mass"] = sum(float(r[f"{fmt}_mass"]) for r in rows) / len(rows)
    out["chat_pairwise"] = None
    for name, better in _comparisons(has_chat).items():
        out[name] = _share([better(t, w) for _, t, w in triples])
    out["pairwise_format"] = "chat" if has_chat else "plain"
    # categories whose pairs hold one answer alone: no yes/no macro-F1, left out of its mean (and the
    # mark of a summary written since that rule, 2026-12-07; load_summary redoes older ones)
    out["n_one_answer"] = sum(1 for e in per_category.values() if e["chance_macro_f1"] is None)
    out["per_category"] = per_category
    return out


def _comparisons(has_chat: bool) -> dict[str, Callable]:
    """name -> is the true category's score above the wrong one's. `pairwise` is the chat
    comparison where the LM has a template (the paper's format), else the plain one."""
    chat = lambda t, w: t["chat_p_yes"] > w["chat_p_yes"]
    plain = lambda t, w: t["plain_p_yes"] > w["plain_p_yes"]
    found = {"pairwise": chat if has_chat else plain, "plain_pairwise": plain,
             "sentence": lambda t, w: t["sentence_logprob"] > w["sentence_logprob"]}
    if has_chat:
        found["chat_pairwise"] = chat
    return found


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _triples(rows: Sequence[dict]) -> list[tuple[str, dict, dict]]:
    """(concept, true-category row, wrong-category row) for every true × wrong category of a concept."""
    by_concept: dict[str, list[dict]] = {}
    for r in rows:
        by_concept.setdefault(r["concept"], []).append(r)
    out = []
    for concept in sorted(by_concept):
        yes = [r for r in by_concept[concept] if r["answer"]]
        no = [r for r in by_concept[concept] if not r["answer"]]
        out += [(concept, t, w) for t in yes for w in no]
    return out


# ---------------------------------------------------------------- running it

def out_dir(lm_id: str, dataset: str, lm_init: str = "pretrained", seed: int = 0) -> Path:
    """runs/probes/<lm-slug>_<dataset>[_rndlm][_s<seed>]."""
    slug = runs._slug(Path(lm_id).name if ("/" in lm_id and Path(lm_id).exists()) else lm_id)
    name = f"{slug}_{runs._slug(dataset)}" + ("_rndlm" if lm_init == "random" else "") + \
        (f"_s{seed}" if seed else "")
    return paths.runs_dir() / "probes" / name


def check(lm_id: str, dataset: str, lm_init: str = "pretrained", seed: int = 0):
    """Everything about a probe that can be checked without loading the LM (ConfigError otherwise);
    returns the dataset."""
    from core.data import datasets
    from core.models import registry

    registry.check_lm_id(lm_id)
    if lm_init not in ("pretrained", "random"):
        raise ConfigError(f"lm_init must be 'pretrained' or 'random', got {lm_init!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31:
        raise ConfigError(f"seed must be an integer in [0, 2147483647], got {seed!r}")
    try:
        return datasets.load_dataset(dataset)
    except datasets.DatasetError as exc:
        raise ConfigError(str(exc)) from None


def run(lm_id: str, dataset: str = "concepts", lm_init: str = "pretrained", seed: int = 0,
        device: str = "auto", progress: Progress | None = None) -> tuple[Path, dict]:
    """Load the LM, probe it on the dataset, write probe.csv and metrics.json; (folder, metrics)."""
    from core.models import checkpoint, registry

    ds = check(lm_id, dataset, lm_init, seed)
    report = progress or (lambda f, m: None)
    report(0.0, f"loading {lm_id}")
    dev = checkpoint.resolve_device(device)
    started = time.perf_counter()
    lm = registry.create_lm(lm_id, init=lm_init, device=dev, seed=seed)
    rows, result = probe(lm, ds, seed, progress=lambda f, m: report(0.05 + 0.95 * f, m))
    result.update(lm=lm_id, lm_init=lm_init, dataset=ds.name, seed=seed, device=str(dev),
                  seconds=round(time.perf_counter() - started, 1), git_commit=runs.git_commit(),
                  created=runs.now_iso())
    folder = out_dir(lm_id, ds.name, lm_init, seed)
    write(folder, rows, result)
    report(1.0, "done")
    return folder, result


def is_current(summary: dict) -> bool:
    """A probe summary written under today's rule (one-answer categories counted and left out), as
    metrics.is_current is for an evaluation."""
    return "n_one_answer" in summary


def brief(summary: dict | None) -> dict | None:
    """A probe summary without its per-category table: what a job result or a sweep row carries."""
    return {k: v for k, v in summary.items() if k != "per_category"} if isinstance(summary, dict) else None


def load_summary(folder: Path) -> dict | None:
    """A probe folder's metrics.json; one written before n_one_answer existed is summarized again
    from its probe.csv and written back (keeping its time), as results.load_eval does for runs. None
    when there is no readable summary."""
    path = Path(folder) / runs.METRICS_JSON
    try:
        stored = runs.read_json(path) if path.is_file() else None
    except (runs.RunError, OSError):
        return None
    if not isinstance(stored, dict) or stored.get("kind") != "probe" or is_current(stored):
        return stored if isinstance(stored, dict) else None
    try:
        with open(Path(folder) / "probe.csv", newline="") as f:
            rows = [_typed(r) for r in csv.DictReader(f)]
        fresh = {**stored, **summarize(rows)}
    except (OSError, KeyError, ValueError):
        return stored
    runs.rewrite_json_in_place(path, fresh)
    return fresh


def _typed(row: dict) -> dict:
    """A probe.csv row with its values as probe() made them: booleans, floats, None for empty."""
    def flag(v: str):
        return None if v == "" else v == "True"

    def number(v: str):
        return None if v == "" else float(v)

    out = dict(row)
    out["answer"] = row["answer"] == "True"
    for fmt in ("chat", "plain"):
        out[f"{fmt}_pred"], out[f"{fmt}_p_yes"] = flag(row[f"{fmt}_pred"]), number(row[f"{fmt}_p_yes"])
        out[f"{fmt}_mass"] = number(row[f"{fmt}_mass"])
    out["sentence_logprob"] = number(row["sentence_logprob"])
    return out


def write(folder: Path, rows: Sequence[dict], result: dict) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_text(Path(folder) / "probe.csv", buf.getvalue())
    runs.write_json(Path(folder) / runs.METRICS_JSON, result)
