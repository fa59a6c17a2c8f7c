"""Predict page: upload images (or pick dataset images) and see what a trained checkpoint thinks —
top leaf guesses, the hypernym chain from leaf to root with P(yes) per node, and category scores.

Each file is loaded through core.images.load_image on its own, so a broken file gets its own
message while the others are still predicted. Predictions run here (inference only, no training)
and are cached per (checkpoint, image content).
"""
import hashlib
import time

import streamlit as st

from core.images import ImageError, load_image, notes_of
from ui import common, figures, jobs

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp"]
TOP_K = 5


@st.cache_resource(show_spinner="Loading the checkpoint (encoder, language model, projector)…",
                   max_entries=2)
def _predictor(run_dir: str, stamp: float):  # noqa: ARG001 - stamp keys the cache to the checkpoint
    from core import taxonomy
    from core.predict import Predictor

    predictor = Predictor.load(run_dir)
    taxonomy.synset("entity.n.01")   # WordNet loads on first use (seconds): here, not in a prediction
    return predictor


@st.cache_data(show_spinner=False, max_entries=512)
def _predict(run_dir: str, stamp: float, digest: str, _image) -> tuple[dict, float]:  # noqa: ARG001
    predictor = _predictor(run_dir, stamp)          # loading is timed apart: it happens once
    start = time.perf_counter()
    prediction = predictor.predict(_image, top_k=TOP_K)
    return prediction.to_dict(), time.perf_counter() - start


def choose_checkpoint():
    """Selectbox of trained runs, defaulting to the newest default-config checkpoint."""
    from core import runs

    from core import firstrun

    trained = [r for r in common.runs_list() if r.epoch >= 1]
    if not trained:
        return None
    default = runs.default_checkpoint()
    # without a full default checkpoint, the first run's one (the starter on a CPU), else the newest
    starter = None if default is not None else runs.default_checkpoint(firstrun.default_config())
    preferred = default or starter
    index = next((i for i, r in enumerate(trained) if preferred is not None and r.path == preferred), 0)

    def label(r) -> str:
        tag = " · default" if default is not None and r.path == default else \
            " · first-run starter" if starter is not None and r.path == starter else ""
        state = "" if r.finished else f" · {r.status}, {r.epoch} epoch(s)"
        return f"{r.run_id} — {r.config.condition}, seed {r.config.seed}, {r.config.encoder} + {r.config.lm}{state}{tag}"

    run = st.selectbox("Checkpoint", trained, index=index, format_func=label, key="predict_run")
    if default is None and starter is not None and run.path == starter:
        st.caption("Preselected: the starter checkpoint of the first run (a small, quick one); the "
                   "full default config can be trained on the Train page.")
    elif default is None:
        st.caption("No default-config checkpoint yet, so the newest trained run is preselected.")
    return run


def _stamp(run) -> float:
    """Checkpoint version: a resumed run writes checkpoint.json again, which must reload it."""
    from core import runs

    ck = runs.checkpoint_json(run.path)
    return ck.stat().st_mtime if ck.exists() else 0.0


def show_prediction(run, name: str, image, digest: str, truth: str | None = None, slot: str = "") -> None:
    """One image's results. `slot` tells apart charts of the same image shown twice on a page."""
    with st.spinner(f"Predicting {name}…"):
        pred, seconds = _predict(str(run.path), _stamp(run), digest, image)
    best = pred["leaves"][0]
    with st.container(border=True):
        left, middle, right = st.columns([1, 2.4, 1.6])
        with left:
            st.image(image, caption=name, width="stretch")
            for note in notes_of(image):
                st.caption(f":material/info: {note}")
            if truth:
                st.caption(f"Dataset label: **{truth}**")
            st.markdown(f"**Best guess:** {best['label']}  \nP(yes) {best['p_yes']:.2f}")
            st.caption(f"Predicted in {seconds:.2f} s.")
            note = _learning_note(run)
            if note:
                st.warning(note[0].upper() + note[1:] + ".", icon=":material/warning:")
        with middle:
            st.markdown(f"**Hypernym chain of _{best['label']}_**")
            st.caption("Leaf at the bottom, root at the top; ◆ = a dataset category; colour = P(yes) "
                       "from red (0) through yellow to green (1).")
            if pred["chains"]:
                st.plotly_chart(figures.chain_figure(pred["chains"]), width="stretch",
                                key=f"chain_{slot}_{digest}", config={"displayModeBar": False})
            for note in pred.get("notes", []):
                st.info(note)
        with right:
            st.markdown("**Top leaf guesses**")
            st.dataframe([{"concept": leaf["label"], "P(yes)": leaf["p_yes"]} for leaf in pred["leaves"]],
                         hide_index=True, width="stretch", column_config={
                             "P(yes)": st.column_config.ProgressColumn("P(yes)", min_value=0.0, max_value=1.0,
                                                                       format="%.2f")})
            st.markdown("**Category scores**")
            st.plotly_chart(figures.category_bars(pred["categories"]), width="stretch",
                            key=f"cats_{slot}_{digest}", config={"displayModeBar": False})


def upload_tab(run) -> None:
    files = st.file_uploader("Images (PNG, JPEG or WebP; several at once are fine)", type=UPLOAD_TYPES,
                             accept_multiple_files=True, key="uploads")
    if not files:
        st.caption("Drop pictures here. Each file is checked on its own: a broken one is reported "
                   "and the rest are still predicted.")
        return
    for i, upload in enumerate(files):
        data = upload.getvalue()
        try:
            image = load_image(data, name=upload.name)
        except ImageError as exc:
            st.error(str(exc), icon=":material/broken_image:")
            continue
        with common.guard(f"Predicting {upload.name}"):
            show_prediction(run, upload.name, image, hashlib.sha256(data).hexdigest(), slot=f"upload{i}")


def gallery_tab(run) -> None:
    from core.datasets import DatasetError

    try:
        ds = common.dataset(run.config.dataset)
    except DatasetError as exc:
        st.warning(str(exc))
        return
    trained_on = _predictor_vocabulary(run)
    c1, c2, c3 = st.columns([2, 2, 1.2], vertical_alignment="bottom")
    own = c3.toggle("Only its training concepts", value=True, key="gallery_own",
                    help="concepts this checkpoint was trained on; switch off to try the others too")
    pool = sorted(c for c in ds.concepts if not own or c in trained_on)
    categories = sorted({k for c in pool for k in ds.concepts[c].categories}, key=lambda k: ds.categories[k].label)
    category = c1.selectbox("Category", [None] + categories, key="gallery_category",
                            format_func=lambda k: "all categories" if k is None else ds.categories[k].label)
    concepts = sorted((c for c in pool if category is None or category in ds.concepts[c].categories),
                      key=lambda c: ds.concepts[c].label)
    concept = c2.selectbox("Concept", concepts, key="gallery_concept",
                           format_func=lambda c: ds.concepts[c].label)
    items = ds.images_of(concept) if concept else []
    if not items:
        st.info("No images to pick from.")
        return
    st.image([str(item.path) for item in items], caption=[item.style for item in items], width=120)
    item = st.radio("Image to predict", items, format_func=lambda it: it.style, horizontal=True,
                    key=f"gallery_pick_{concept}")
    try:
        image = load_image(item.path)
    except ImageError as exc:
        st.error(str(exc))
        return
    in_vocab = concept in trained_on
    truth = ds.concepts[concept].label + ("" if in_vocab else " (not in this checkpoint's training concepts)")
    show_prediction(run, f"{ds.concepts[concept].label} ({item.style})", image, item.id, truth=truth,
                    slot="gallery")


@st.cache_data(show_spinner=False, max_entries=64)
def _learning_note_cached(run_dir: str, stamp: float) -> str | None:  # noqa: ARG001
    from core import runs
    return runs.learning_note(run_dir)


def _learning_note(run) -> str | None:
    """Why this checkpoint's answers should not be trusted (None when its test evaluation shows it
    learned): shown beside every prediction."""
    from core import runs
    metrics = runs.eval_dir(run.path, "test") / "metrics.json"
    return _learning_note_cached(str(run.path), metrics.stat().st_mtime if metrics.exists() else 0.0)


def _predictor_vocabulary(run) -> set[str]:
    return set(_predictor(str(run.path), _stamp(run)).concepts)


def main() -> None:
    st.title(":material/image_search: Predict")
    run = choose_checkpoint()
    if run is None:
        jobs.first_run_panel()
        return
    # Lazy tabs: only the open one runs, so the gallery costs nothing while uploading.
    upload, gallery = st.tabs(["Upload images", "Pick from the dataset"], key="predict_tab",
                              on_change="rerun")
    if upload.open:
        with upload:
            upload_tab(run)
    if gallery.open:
        with gallery:
            gallery_tab(run)


with common.guard("The Predict page"):
    main()
