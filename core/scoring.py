"""Scored question tables: questions + a VLM → one row per question (the questions.csv format).

The VLM does the arithmetic (VLM.score: log P(" Yes") vs log P(" No") at the answer position,
each image's prefix run once and shared by its questions); this module groups questions by image,
feeds them through in batches of images, and turns the answers into rows that core.metrics
summarizes and evaluation writes out. A question's pair (true concept, category) is "unseen" when
the run's deprivation removed it from training.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from core.base import Progress

ROW_FIELDS = ("image_id", "concept", "labelled_concept", "kind", "target", "text", "answer", "p_yes",
              "pred", "mass", "seen", "split")
IMAGES_PER_CALL = 64          # images whose questions go to one VLM.score call (it sub-batches)


def row(q, deprivation, split: str, p_yes: float, mass: float | None, text: str | None = None) -> dict:
    """One questions.csv row; `text` overrides the question's text."""
    return {"image_id": q.image_id, "concept": q.concept, "labelled_concept": deprivation.labeling[q.concept],
            "kind": q.kind, "target": q.target, "text": q.text if text is None else text,
            "answer": bool(q.answer), "p_yes": float(p_yes), "pred": bool(p_yes > 0.5),
            "mass": None if mass is None else float(mass), "seen": not deprivation.is_unseen(q),
            "split": split}


def score(vlm, feats: torch.Tensor, row_of: dict[str, int], questions: Sequence, deprivation,
          split: str, device=None, progress: Progress | None = None) -> list[dict]:
    """Rows for `questions` (any order); feats[row_of[image_id]] holds each image's features."""
    by_image: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_image.setdefault(q.image_id, []).append(i)
    images = list(by_image)
    out: list[dict | None] = [None] * len(questions)
    done = 0
    for start in range(0, len(images), IMAGES_PER_CALL):
        chunk = images[start:start + IMAGES_PER_CALL]
        batch = feats[[row_of[im] for im in chunk]]
        texts = [[questions[i].text for i in by_image[im]] for im in chunk]
        n_chunk = sum(map(len, texts))

        def within(f: float, message: str = "", before: int = done) -> None:
            # a chunk can hold every image of a small split: report inside it, not only after
            at = before + round(f * n_chunk)
            progress(at / len(questions), f"scored {at}/{len(questions)} {split} questions")

        scored = vlm.score(batch, texts, progress=within if progress is not None else None)
        for im, answers in zip(chunk, scored):
            for i, (p, m) in zip(by_image[im], answers.pairs()):
                out[i] = row(questions[i], deprivation, split, p, m)
            done += len(by_image[im])
        if progress is not None:
            progress(done / len(questions), f"scored {done}/{len(questions)} {split} questions")
    return out


def score_image(vlm, feats: torch.Tensor, texts: Sequence[str],
                progress: Progress | None = None) -> list[tuple[float, float]]:
    """(p_yes, mass) of many questions about one image (feats: (1, N, D)), prefix shared."""
    return vlm.score(feats, [list(texts)], progress=progress)[0].pairs()
