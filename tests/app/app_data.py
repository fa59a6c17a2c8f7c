"""Test data directories for the app tests (AppTest here, Playwright in tests/e2e).

`build_data_dir(root)` makes a self-contained TAXOLENS_DATA: a small copy of the real `concepts`
dataset (a seeded subset, images copied) and links to the real, read-only WordNet and converted
models, so tests never write into the developer's data/ and never share a job store with it.
`fake_run(...)` writes a run directory the way core.train / core.evaluate lay it out, with answers
made up from a rule, for pages that only read runs.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from pathlib import Path

from core import paths

REAL_DATA = paths.ROOT / "data"
LINKED = ("nltk_data", "models", "sources", "downloads")


@contextlib.contextmanager
def _data_env(path: Path):
    old = os.environ.get("TAXOLENS_DATA")
    os.environ["TAXOLENS_DATA"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TAXOLENS_DATA", None)
        else:
            os.environ["TAXOLENS_DATA"] = old


def pick_concepts(ds, groups: int = 4, per_group: int = 3) -> list[str]:
    """Concepts from the `groups` largest sets of concepts sharing one category set, `per_group`
    each (sorted, so always the same): both label shuffles stay possible on so few concepts."""
    by_categories: dict[tuple, list[str]] = {}
    for name in sorted(ds.concepts):
        by_categories.setdefault(ds.concepts[name].categories, []).append(name)
    largest = sorted(by_categories.values(), key=lambda names: (-len(names), names[0]))[:groups]
    return [name for names in largest for name in names[:per_group]]


def build_data_dir(root: Path, groups: int = 4, per_group: int = 3, images_per_concept: int = 3,
                   seed: int = 0, source: Path = REAL_DATA) -> Path:
    from core.data import datasets

    root.mkdir(parents=True, exist_ok=True)
    with _data_env(source):
        real = datasets.load_dataset("concepts")
    keep = set(pick_concepts(real, groups, per_group))
    small = real.subset(images_per_concept=images_per_concept, seed=seed)
    small.concepts = {n: c for n, c in small.concepts.items() if n in keep}
    small.images = [im for im in small.images if im.concept in keep]
    used = {k for c in small.concepts.values() for k in c.categories}
    small.categories = {k: v for k, v in small.categories.items() if k in used}
    for name in LINKED:
        if (source / name).exists() and not (root / name).exists():
            (root / name).symlink_to((source / name).resolve())
    with _data_env(root), datasets.staging("concepts") as stage:
        rows = []
        for item in small.images:
            relative = item.path.relative_to(real.root)
            (stage / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.path, stage / relative)
            rows.append((item.id, item.concept, item.style, str(relative)))
        datasets.publish(stage, "concepts", f"test subset of {real.info.get('source', 'concepts')}",
                         small.concepts.values(), small.categories.values(), rows,
                         extra={"test_subset": {"concepts": sorted(keep),
                                                "images_per_concept": images_per_concept, "seed": seed}})
    return root


def fake_run(cfg, epoch: int = 1, status: str = "finished", evaluated: bool = True) -> Path:
    """A run directory under the current TAXOLENS_DATA with config, checkpoint.json and (optionally)
    a test evaluation whose answers follow a fixed rule: leaf questions right, hypernym questions
    wrong for every third image. No weights: only for pages that read runs, never load them."""
    from core import conditions, questions, runs
    from core.data import datasets

    run_dir = runs.create_run_dir(cfg)
    installed = datasets.load_dataset(cfg.dataset)      # its version, as a trained run records it
    # The same data steps as core.rundata.prepare, without importing torch for a fake.
    ds = installed.subset(cfg.max_concepts, cfg.images_per_concept, cfg.seed)
    deprivation = conditions.parse_condition(cfg.condition).apply(ds, cfg.seed)
    runs.write_json(runs.checkpoint_json(run_dir), {
        "status": status, "epoch": epoch, "created": runs.now_iso(), "updated": runs.now_iso(),
        "dataset": {"name": cfg.dataset, "table_sha256": datasets.version_sha256(installed)},
        "condition": {"spec": cfg.condition, "report": deprivation.report},       # as core.train records it
        "metrics": [{"epoch": e + 1, "loss": 0.5} for e in range(epoch)]})
    if not evaluated:
        return run_dir
    split = questions.split_images(ds, cfg.seed, cfg.split_fractions)
    test_images = [im for im in ds.images if split[im.id] == "test"]
    position = {im.id: i for i, im in enumerate(test_images)}
    rows = []
    for q in questions.build_questions(ds, test_images, deprivation.labeling, cfg.seed):
        wrong = q.kind == "hypernym" and position[q.image_id] % 3 == 0
        pred = (not q.answer) if wrong else q.answer
        rows.append({"image_id": q.image_id, "concept": q.concept,
                     "labelled_concept": deprivation.labeling[q.concept], "kind": q.kind, "target": q.target,
                     "text": q.text, "answer": q.answer, "p_yes": 0.9 if pred else 0.1, "pred": pred,
                     "mass": 0.95, "seen": not deprivation.is_unseen(q), "split": "test"})
    return write_test_eval(run_dir, rows, cfg)


def write_test_eval(run_dir: Path, rows: list[dict], cfg) -> Path:
    """A run's eval/test/questions.csv and metrics.json from scored rows, as core.evaluate writes them."""
    from core import metrics, runs

    out = runs.eval_dir(run_dir, "test")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_text(out / "questions.csv", buf.getvalue())
    runs.write_json(out / "metrics.json", {**metrics.summarize(rows), "run_id": run_dir.name, "split": "test",
                                           "config": cfg.to_dict()})
    return run_dir


def own_datasets_dir(data_dir, default: bool = True, also: tuple[str, ...] = ()) -> Path:
    """Give a test its own datasets folder (the session's is shared by every app test, so an import
    there would show on other tests' pages), with the session's default dataset linked in unless
    `default` is False, and linked again under each name in `also` (a second dataset of the same
    contents). Returns the session's default dataset folder."""
    shared = (data_dir / "datasets").resolve()
    (data_dir / "datasets").unlink()
    (data_dir / "datasets").mkdir()
    for name in (("concepts",) if default else ()) + tuple(also):
        (data_dir / "datasets" / name).symlink_to(shared / "concepts")
    return shared / "concepts"


def fake_geometry(monkeypatch) -> None:
    """core.geometry without models: random (N, 8) image embeddings, zero projector outputs, and
    maps that are the first two coordinates."""
    import numpy as np

    from core import geometry
    monkeypatch.setattr(geometry, "pooled_features", lambda ds, *args, **kwargs:
                        np.random.default_rng(0).normal(size=(len(ds.images), 8)).astype("float32"))
    monkeypatch.setattr(geometry, "embed_2d", lambda X, method="umap", seed=0: np.asarray(X)[:, :2])
    monkeypatch.setattr(geometry, "projector_outputs", lambda ds, run_dir: np.zeros((len(ds.images), 8)))
