"""The default checkpoint that ships in the repo (assets/default-checkpoint), with the real models:
it fits the installed dataset, and on 20 held-out TEST images of distinct concepts (images it was
never trained on, in the run's own split) it names the true concept among its top 5 leaves and a
true category among its top 3 categories, each on at least 80 % of them (issue "Models that learn")."""
import pytest

from core import paths, rundata, runs
from core.models import checkpoint
from core.predict import Predictor

N_IMAGES = 20


@pytest.mark.integration
def test_shipped_checkpoint_grounds_held_out_images():
    fits, why = checkpoint.shipped_fit()
    assert fits, why
    assert runs.learning_note(paths.SHIPPED_CHECKPOINT) is None     # its own test evaluation says it learned
    info = runs.load_run(paths.SHIPPED_CHECKPOINT)
    data = rundata.prepare(info.config)
    test_images = sorted(data.images("test"), key=lambda im: (im.concept, im.id))
    by_concept = {}
    for im in test_images:
        by_concept.setdefault(im.concept, im)
    concepts = sorted(by_concept)
    step = len(concepts) / N_IMAGES                                   # spread over the alphabet
    chosen = [by_concept[concepts[int(i * step)]] for i in range(N_IMAGES)]
    assert len({im.concept for im in chosen}) == N_IMAGES

    predictor = Predictor.load(paths.SHIPPED_CHECKPOINT)
    top1 = top5 = cat3 = 0
    rows = []
    for im in chosen:
        pred = predictor.predict(im.path, top_k=5)
        leaves = [leaf["concept"] for leaf in pred.leaves]
        cats = [c["category"] for c in pred.categories[:3]]
        truth = set(data.dataset.concepts[im.concept].categories)
        top1 += leaves[0] == im.concept
        top5 += im.concept in leaves
        cat3 += bool(truth & set(cats))
        rows.append(f"{im.concept:>18} ({im.style}): top-5 {leaves}; top-3 categories {cats}")
    print("\n".join(rows))
    print(f"top-1 leaf {top1}/{N_IMAGES}, top-5 leaf {top5}/{N_IMAGES}, category in top 3 {cat3}/{N_IMAGES}")
    assert top5 >= 0.8 * N_IMAGES
    assert cat3 >= 0.8 * N_IMAGES
