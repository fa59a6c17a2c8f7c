"""Fake run grids for the paper's figures (tests/app and the screenshot script): runs under several
conditions, LM inits and seeds whose answers get worse the less hypernym evidence training kept, so
the figures have a shape to look at. Like app_data.fake_run, no weights: only for reading."""
from __future__ import annotations

import random

from app_data import fake_run, write_test_eval
from core.config import TrainConfig

GRID = ("none", "random:0.25", "random:0.5", "random:1", "systematic:1", "systematic:2", "cross")


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"max_concepts": 8, "images_per_concept": 3, "epochs": 1, **kw})


def fake_graded_run(config: TrainConfig, unseen_error: float, seen_error: float = 0.1, leaf_error: float = 0.1):
    """fake_run, then its answers redrawn: each unseen hypernym question wrong with probability
    `unseen_error`, seen ones with `seen_error`, leaf ones with `leaf_error` (seeded by the run's
    seed), and metrics.json summarized again from them."""
    from core import runs

    run_dir = fake_run(config)
    out = runs.eval_dir(run_dir, "test")
    from core.results import read_question_rows
    rows = read_question_rows(out / "questions.csv")
    rng = random.Random(f"{config.condition}:{config.lm_init}:{config.seed}")
    for r in rows:
        p = leaf_error if r["kind"] == "leaf" else seen_error if r["seen"] else unseen_error
        r["pred"] = (not r["answer"]) if rng.random() < p else r["answer"]
        r["p_yes"] = 0.9 if r["pred"] else 0.1
    return write_test_eval(run_dir, rows, config)


def fake_grid(conditions=GRID, seeds=(0, 1, 2), lm_inits=("pretrained", "random"), **config) -> list:
    """The grid under the current TAXOLENS_DATA: the random-init LM answers unseen questions near a
    coin flip, the pretrained one better the more it saw. `config`: other TrainConfig fields."""
    made = []
    for condition in conditions:
        for init in lm_inits:
            for seed in seeds:
                base = 0.15 + 0.1 * ("systematic" in condition) + 0.1 * ("1" == condition.split(":")[-1])
                unseen = 0.45 if init == "random" else base
                made.append(fake_graded_run(cfg(condition=condition, lm_init=init, seed=seed, **config), unseen))
    return made


def fake_coherence(ds, encoder: str = "efficientnet-lite2", seed: int = 0) -> None:
    """A cached coherence table (core.geometry layout, over the training images) with made-up values
    per category."""
    import pandas as pd

    from core import geometry

    cats = sorted(ds.categories)
    table = pd.DataFrame({"original": [0.2 + 0.5 * i / max(1, len(cats) - 1) for i in range(len(cats))],
                          "cross": [0.1] * len(cats), "within": [0.2 + 0.5 * i / max(1, len(cats) - 1)
                                                                 for i in range(len(cats))]}, index=cats)
    table.index.name = "category"
    table.loc["all"] = table.mean(axis=0)
    chosen = geometry.image_indices(ds, seed, "train")
    geometry._save(geometry.cache_dir(ds, encoder, seed, "train"), table,
                   {"dataset": ds.name, "encoder": encoder, "seed": seed,
                    "fingerprint": geometry.dataset_fingerprint(ds), "image_set": "train",
                    "images": len(chosen), "images_fingerprint": geometry.images_fingerprint(ds, chosen),
                    "dataset_images": len(ds.images)})
