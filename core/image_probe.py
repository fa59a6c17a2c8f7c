"""The image side alone: a linear probe on encoder features, as a baseline with no language model.

    fit(data, encoder) -> ImageProbe        softmax regression from a run's TRAIN images to the concept
                                            each is shown as (its positive leaf question)
    probe.rows(data, split) -> rows         that split's questions answered by the probe
    probe.ranking(data, split) -> dict      top-1 / top-5 / median rank of the true leaf

It answers the question the VLM's leaf numbers cannot: is the encoder good enough? A leaf question
"Is there a dog?" is answered yes when the probe gives "dog" more than a threshold; a hypernym
question "Is there a mammal?" when the concepts TRAINING showed as mammals together get more than
another threshold. Both thresholds are chosen on the validation questions, so test numbers are not
tuned on test. The probe knows only the category memberships training asserted: a concept whose
hypernym questions a condition removed is never a "mammal" to it, so its unseen-pair numbers are
what no taxonomy knowledge at all gives (the LM's is what the VLM adds on top).

Features are the encoder's global pool (the input of a k = 1 image token), standardised on TRAIN.
Measured on the default dataset (385 concepts, about 5 training images each, seed 0): test top-1
0.624, top-5 0.826 (639 images), against every-leaf top-5 0.25 for the shipped VLM (five-style set,
3 training images each: 0.569 / 0.797 against 0.075-0.175).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core import features, questions, scoring

STEPS = 300          # full-batch AdamW updates (test top-1 on the default dataset: flat from ~200)
LR = 1e-3
FOLDS = 5            # out_of_fold's folds


@dataclass
class ImageProbe:
    weight: torch.nn.Linear
    mean: torch.Tensor
    std: torch.Tensor
    concepts: list[str]                     # output classes: the concepts TRAIN images are shown as
    members: dict[str, set[str]]            # category -> concepts TRAIN asserted to be in it
    encoder: object
    thresholds: dict[str, float]            # question kind -> probability above which it says yes
    _by_split: dict = field(default_factory=dict)

    @torch.no_grad()
    def probabilities(self, items: list) -> torch.Tensor:
        """(N, C) softmax over `concepts` for ImageItems."""
        x = features.FeatureCache(self.encoder).get(items, pool=1)[:, 0].float()
        return self.weight((x - self.mean) / self.std).softmax(-1)

    def split_probabilities(self, data, split: str) -> tuple[list, torch.Tensor]:
        """The split's images and their probabilities, read from the feature cache once per split."""
        if split not in self._by_split:
            items = data.images(split)
            probs = self.probabilities(items) if items else torch.zeros(0, len(self.concepts))
            self._by_split[split] = (items, probs)
        return self._by_split[split]

    def question_scores(self, data, split: str) -> tuple[list, list[float]]:
        """The split's questions and the probe's probability for what each asks."""
        items, probs = self.split_probabilities(data, split)
        row = {im.id: i for i, im in enumerate(items)}
        column = {c: j for j, c in enumerate(self.concepts)}
        qs = data.questions[split]
        scores = []
        for q in qs:
            p = probs[row[q.image_id]]
            if q.kind == "leaf":
                scores.append(float(p[column[q.target]]) if q.target in column else 0.0)
            else:
                cols = [column[c] for c in self.members.get(q.target, ()) if c in column]
                scores.append(float(p[cols].sum()) if cols else 0.0)
        return qs, scores

    def rows(self, data, split: str) -> list[dict]:
        """One scoring row per question: p_yes = p / (p + threshold), so p_yes > 0.5 exactly when
        the probability clears its kind's threshold."""
        qs, scores = self.question_scores(data, split)
        out = []
        for q, s in zip(qs, scores):
            t = self.thresholds[q.kind]
            out.append(scoring.row(q, data.deprivation, split, p_yes=s / (s + t) if s + t > 0 else 0.0,
                                   mass=None))
        return out

    def ranking(self, data, split: str) -> dict:
        """Where each image's shown concept ranks among all the probe's concepts."""
        items, probs = self.split_probabilities(data, split)
        if not items:
            return {"images": 0, "top1": None, "top5": None, "median_rank": None}
        column = {c: j for j, c in enumerate(self.concepts)}
        shown = [_shown(data, im) for im in items]
        truth = torch.tensor([column[c] for c in shown])
        rank = (probs > probs.gather(1, truth[:, None])).sum(1) + 1
        return {"images": len(items), "vocabulary": len(self.concepts),
                "top1": float((rank == 1).float().mean()), "top5": float((rank <= 5).float().mean()),
                "median_rank": float(rank.float().median())}


def fit(data, encoder, seed: int = 0, progress=None) -> ImageProbe:
    """Train the probe on `data`'s TRAIN images and pick its thresholds on VAL (see module doc)."""
    report = progress or (lambda f, m: None)
    items = data.images("train")
    concepts = sorted(data.dataset.concepts)
    column = {c: j for j, c in enumerate(concepts)}
    report(0.05, f"features of {len(items)} training images")
    x = features.FeatureCache(encoder).get(items, pool=1)[:, 0].float()
    y = torch.tensor([column[_shown(data, im)] for im in items])
    weight, mean, std = fit_softmax(x, y, len(concepts), seed,
                                    lambda step: report(0.1 + 0.7 * step / STEPS, f"fitting the probe: step {step}/{STEPS}"))
    members: dict[str, set[str]] = {}
    for q in data.training_questions():
        if q.kind == "hypernym" and q.answer:
            members.setdefault(q.target, set()).add(_shown(data, q))
    probe = ImageProbe(weight, mean, std, concepts, members, encoder, {"leaf": 0.5, "hypernym": 0.5})
    report(0.85, "choosing thresholds on the validation questions")
    qs, scores = probe.question_scores(data, "val")
    for kind in ("leaf", "hypernym"):
        pairs = [(s, q.answer) for q, s in zip(qs, scores) if q.kind == kind and data.deprivation.keeps(q)]
        probe.thresholds[kind] = best_threshold(pairs)
    return probe


def fit_softmax(x: torch.Tensor, y: torch.Tensor, classes: int, seed: int = 0,
                on_step=None) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    """The probe's fit: a softmax regression from features x (N, D), standardised on x, to labels y in
    [0, classes), STEPS full-batch AdamW updates. Returns (linear layer, mean, std); on_step(step)
    is called every 50 steps."""
    mean, std = x.mean(0), x.std(0, unbiased=False) + 1e-6
    torch.manual_seed(seed)
    weight = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.AdamW(weight.parameters(), lr=LR, weight_decay=0.0)
    z = (x - mean) / std
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(weight(z), y).backward()
        opt.step()
        if on_step is not None and step % 50 == 0:
            on_step(step)
    return weight, mean, std


def with_views(x: torch.Tensor, y: torch.Tensor, views: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A probe's fit set: the rows x (N, D) with labels y, then their augmented views (N, V, D), each
    labelled as its image (image-major: image 0's views first). No views: x and y as they are."""
    if views is None or not views.shape[1]:
        return x, y
    return torch.cat([x, views.flatten(0, 1)]), torch.cat([y, y.repeat_interleave(views.shape[1])])


def out_of_fold(x: torch.Tensor, y: torch.Tensor, classes: int, folds: int = FOLDS, seed: int = 0,
                views: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C) posteriors of features x (N, D), each row from a probe (fit_softmax) fitted without it:
    row i is held out in fold i % folds. What a posterior-input projector trains on, so training
    sees inputs as unsure as held-out images give (its own probe is near-certain on its TRAIN set).
    views (N, V, D): augmented renderings of each row's image. They join the fit beside their image
    and are held out with it (a probe that saw one rendering of an image is not unsure of another);
    the result is then (N, 1 + V, C), column 0 the image itself, column v its view v."""
    fold = torch.arange(len(x)) % folds
    n_views = 0 if views is None else views.shape[1]
    if views is not None and (views.dim() != 3 or len(views) != len(x)):
        raise ValueError(f"views must be (N, V, D) for {len(x)} rows, got shape {tuple(views.shape)}")
    out = torch.zeros(len(x), 1 + n_views, classes)
    for k in range(folds):
        held = fold == k
        if held.any():
            fit_x, fit_y = with_views(x[~held], y[~held], views[~held] if n_views else None)
            head, mean, std = fit_softmax(fit_x, fit_y, classes, seed)
            shown = x[held] if not n_views else torch.cat([x[held][:, None], views[held]], dim=1).flatten(0, 1)
            with torch.no_grad():
                out[held] = head((shown - mean) / std).softmax(-1).view(-1, 1 + n_views, classes)
    return out if views is not None else out[:, 0]


def best_threshold(pairs: list[tuple[float, bool]]) -> float:
    """The threshold t (say yes when score > t) with the highest accuracy on (score, answer) pairs,
    among midpoints between consecutive distinct scores and the two ends; ties go to the smaller t.
    0.5 without pairs."""
    if not pairs:
        return 0.5
    pairs = sorted(pairs)
    yes_total = sum(a for _, a in pairs)
    # threshold below everything: every "yes" right, every "no" wrong
    best_t, best_correct = pairs[0][0] / 2, yes_total
    yes_below = no_below = 0
    for i, (score, answer) in enumerate(pairs):
        yes_below += answer
        no_below += not answer
        if i + 1 < len(pairs) and pairs[i + 1][0] == score:
            continue                       # a threshold cannot split equal scores
        t = (score + pairs[i + 1][0]) / 2 if i + 1 < len(pairs) else score + 1e-9
        correct = no_below + (yes_total - yes_below)
        if correct > best_correct:
            best_t, best_correct = t, correct
    return best_t


def _shown(data, item) -> str:
    """The concept an image (or a question about it) is shown as under the run's labeling."""
    return questions.shown_concept(item.concept, data.deprivation.labeling)
