"""Geometry page: how images sit in embedding space, and whether categories are visually coherent.

UMAP or PCA maps of the encoder's image embeddings and of a checkpoint's projector outputs, each
coloured by category under the original, cross-shuffled and within-shuffled labelings side by side;
select points (lasso / box) to see their images. Below: visual coherence per category per labeling,
and coherence against a condition's per-category yes/no macro-F1.

Features and coherence come from a `coherence` job (the worker computes the encoder features once
into the feature cache); the maps are then computed here from cached features and cached on disk.
"""
import numpy as np
import streamlit as st

from core import results
from ui import common, figures

LABELINGS = ("original", "cross", "within")
CONDITION_OF = {"original": "none", "cross": "cross", "within": "within"}


def _coherence_cached(ds, encoder: str, seed: int) -> bool:
    from core import geometry
    return (geometry.cache_dir(ds, encoder, seed) / "meta.json").is_file()


@st.cache_data(show_spinner="Reading the coherence table…", max_entries=16)
def _coherence(data_dir: str, dataset: str, fingerprint: str, encoder: str, seed: int):  # noqa: ARG001
    from core import geometry
    return geometry.coherence_table(common.dataset(dataset), encoder, seed)


@st.cache_data(show_spinner="Computing the 2-D map (UMAP takes a little while the first time)…",
               persist="disk", max_entries=32)
def _image_map(data_dir: str, dataset: str, fingerprint: str, encoder: str, method: str,  # noqa: ARG001
               seed: int) -> np.ndarray:
    from core import geometry
    features = geometry.pooled_features(common.dataset(dataset), encoder)
    return geometry.embed_2d(features, method=method, seed=seed)


@st.cache_data(show_spinner="Running the projector over the dataset and mapping it…",
               persist="disk", max_entries=32)
def _projector_map(data_dir: str, dataset: str, fingerprint: str, run_dir: str, stamp: float,  # noqa: ARG001
                   method: str, seed: int) -> np.ndarray:
    from core import geometry
    return geometry.embed_2d(_projector_outputs(dataset, run_dir), method=method, seed=seed)


def _projector_outputs(dataset: str, run_dir: str) -> np.ndarray:
    """(N, H): the projector's image tokens for every dataset image, mean-pooled over tokens."""
    import torch

    from core.features import FeatureCache
    from core.predict import Predictor

    predictor = Predictor.load(run_dir)
    vlm = predictor.vlm
    grid = FeatureCache(vlm.encoder).get(list(common.dataset(dataset).images))
    out = []
    with torch.no_grad():
        for start in range(0, grid.shape[0], 256):
            tokens = vlm.prefix(grid[start:start + 256].to(predictor.device))
            out.append(tokens.float().mean(dim=1).cpu().numpy())
    return np.concatenate(out)


@st.cache_data(show_spinner=False, max_entries=16)
def _labelings(data_dir: str, dataset: str, fingerprint: str, seed: int) -> dict[str, dict[str, str]]:  # noqa: ARG001
    from core.conditions import parse_condition
    ds = common.dataset(dataset)
    out = {"original": {c: c for c in ds.concepts}}
    for name in ("cross", "within"):
        out[name] = parse_condition(name).apply(ds, seed).labeling
    return out


def colour_groups(ds, labeling: dict[str, str], broadest: bool) -> list[str]:
    """Per image: the category label it is shown under (its labelled concept's broadest or most
    specific category)."""
    out = []
    for item in ds.images:
        cats = ds.concepts[labeling[item.concept]].categories
        out.append(ds.categories[cats[0] if broadest else cats[-1]].label if cats else "(none)")
    return out


def map_row(ds, xy, labelings, broadest: bool, key: str) -> None:
    groups = {name: colour_groups(ds, labelings[name], broadest) for name in LABELINGS}
    colors = figures.category_colors(g for gs in groups.values() for g in gs)
    cols = st.columns(3)
    selected: list[int] = []
    for col, name in zip(cols, LABELINGS):
        hover = [[ds.concepts[it.concept].label, it.style, ds.concepts[labelings[name][it.concept]].label, i]
                 for i, it in enumerate(ds.images)]
        with col:
            event = st.plotly_chart(
                figures.embedding_map(xy, groups[name], hover, colors, title=f"{name} labels"),
                width="stretch", key=f"{key}_{name}", on_select="rerun", selection_mode=("points", "box", "lasso"),
                config={"displayModeBar": False})
            points = (event or {}).get("selection", {}).get("points", []) if event else []
            selected += [int(p["customdata"][3]) for p in points if p.get("customdata")]
    st.html(figures.legend_html(colors))
    if selected:
        chosen = list(dict.fromkeys(selected))[:24]
        st.caption(f"{len(set(selected))} selected point(s); first {len(chosen)}:")
        thumbs = st.columns(8)
        for j, i in enumerate(chosen):
            item = ds.images[i]
            thumbs[j % 8].image(str(item.path), caption=f"{ds.concepts[item.concept].label} ({item.style})",
                                width="stretch")
    else:
        st.caption("Hover a point for its concept; draw a lasso around points to see their images.")


def coherence_section(table) -> None:
    st.subheader("Visual coherence per category")
    st.caption("Mean pairwise cosine similarity of the image embeddings within each category, under "
               "each labeling. Shuffling across categories should destroy coherence; shuffling within "
               "keeps it.")
    order = table.drop(index="all", errors="ignore").sort_values("original", ascending=False)
    rows = [{"category": cat, "labeling": lab, "coherence": float(order.loc[cat, lab])}
            for cat in order.index for lab in LABELINGS if lab in order.columns and np.isfinite(order.loc[cat, lab])]
    st.plotly_chart(figures.grouped_bars(rows, x="category", y="coherence", group="labeling",
                                         y_title="mean pairwise cosine", colors=figures.LABELING_COLORS,
                                         values=False),
                    width="stretch", key="coherence_bars")
    if "all" in table.index:
        a, b, c = st.columns(3)
        for col, lab in zip((a, b, c), LABELINGS):
            col.metric(f"Macro mean, {lab}", f"{table.loc['all', lab]:.3f}")
    st.download_button("Coherence table (CSV)", table.to_csv().encode(), "taxolens_coherence.csv", "text/csv",
                       key="dl_coherence")


def coherence_vs_f1(ds, table, encoder: str) -> None:
    st.subheader("Coherence vs per-category macro-F1")
    from core.conditions import parse_condition

    rows = [r for r in results.collect() if r["kind"] == "train" and r.get("encoder") == encoder
            and r.get("dataset") == ds.name and results.readable(r["metrics"])]
    conditions = sorted({r["condition"] for r in rows}, key=results.condition_order)
    if not conditions:
        st.info(f"No evaluated runs with encoder {encoder} on {ds.name} yet.")
        return
    condition = st.selectbox("Runs under condition", conditions, key="geometry_condition")
    # coherence under the labels the runs were trained with (cross+random:0.5 -> cross)
    labeling = {"cross": "cross", "within": "within"}.get(parse_condition(condition).shuffle_kind, "original")
    chosen = [r for r in rows if r["condition"] == condition]
    block = "unseen" if any(r["metrics"]["hypernym"]["unseen"]["n"] for r in chosen) else "all"
    per_cat = results.per_category(chosen, block)
    if per_cat.empty:
        st.info("These runs have no per-category scores.")
        return
    f1 = per_cat.mean(axis=1)
    points = [{"x": float(table.loc[c, labeling]), "y": float(f1[c]), "label": ds.categories[c].label if c in ds.categories else c}
              for c in f1.index if c in table.index and np.isfinite(table.loc[c, labeling])]
    st.plotly_chart(figures.scatter_with_labels(points, f"coherence ({labeling} labels)",
                                                f"{block} hypernym macro-F1 (mean over {len(chosen)} run(s))",
                                                y_range=(-0.05, 1.05)),
                    width="stretch", key="coherence_vs_f1")


@st.fragment(run_every=2.0)
def coherence_job_status(job_id: int) -> None:
    """Live progress of the coherence job; the page redraws itself with the maps once it is done."""
    with common.guard("The coherence job status"):
        job = common.store().get(job_id)
        if job.done:
            st.rerun(scope="app")        # failed or cancelled: the page shows why and offers a retry
        label = "waiting for the worker" if job.status == "queued" else job.message or "running"
        st.progress(min(1.0, max(0.0, job.progress)), text=f"Coherence job #{job.id}: {label} ({job.progress:.0%})")


def queue_coherence(ds, encoder: str, seed: int) -> None:
    from core import jobs as jobs_api

    store = common.store()
    mine = [j for j in store.list(kind="coherence") if j.spec.get("encoder") == encoder
            and j.spec.get("dataset") == ds.name and j.spec.get("seed") == seed]   # newest first
    pending = [j for j in mine if not j.done]
    if pending:
        coherence_job_status(pending[-1].id)
        return
    if mine and mine[0].status == "failed":
        reason = (mine[0].error or mine[0].message or "").strip().splitlines()
        st.error(f"The last coherence job (#{mine[0].id}) failed: {reason[0] if reason else 'no reason given'}")
    st.info(f"The features of encoder **{encoder}** on **{ds.name}** and the coherence table are not "
            "computed yet. This runs as a job (the encoder looks at every image once).")
    if st.button("Compute features and coherence", type="primary", key="geometry_queue"):
        jobs_api.submit("coherence", {"dataset": ds.name, "encoder": encoder, "seed": seed}, store=store)
        st.rerun()


def main() -> None:
    from core import geometry
    from core.datasets import DatasetError, list_datasets

    st.title(":material/scatter_plot: Geometry")
    names = list_datasets() or ["concepts"]
    c1, c2, c3, c4, c5 = st.columns([1.2, 1.4, 0.8, 1, 1.4])
    dataset = c1.selectbox("Dataset", names, key="geometry_dataset")
    try:
        ds = common.dataset(dataset)
    except DatasetError as exc:
        st.warning(str(exc))
        return
    encoders = common.model_ids("image encoder")
    encoder = c2.selectbox("Image encoder", encoders, key="geometry_encoder")
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key="geometry_seed",
                               help="for the shuffled labelings and the UMAP layout"))
    method = c4.radio("Map", ["umap", "pca"], horizontal=True, key="geometry_method",
                      format_func=str.upper)
    broadest = c5.radio("Colour by", ["broadest category", "most specific category"], horizontal=True,
                        key="geometry_colour") == "broadest category"
    if not _coherence_cached(ds, encoder, seed):
        queue_coherence(ds, encoder, seed)
        return
    fingerprint = geometry.dataset_fingerprint(ds)
    key = (common.data_key(), dataset, fingerprint)
    table = _coherence(*key, encoder, seed)
    labelings = _labelings(*key, seed)

    st.subheader(f"Image embeddings ({encoder})")
    map_row(ds, _image_map(*key, encoder, method, seed), labelings, broadest, "image_map")

    st.subheader("Projector outputs")
    trained = [r for r in common.runs_list() if r.epoch >= 1 and r.config.encoder == encoder
               and r.config.dataset == dataset]
    if not trained:
        st.info(f"No trained checkpoint with encoder {encoder} on {dataset} yet.")
    else:
        run = st.selectbox("Checkpoint", trained, key="geometry_run",
                           format_func=lambda r: f"{r.run_id} — {r.config.condition}, seed {r.config.seed}")
        from core import runs
        ck = runs.checkpoint_json(run.path)
        stamp = ck.stat().st_mtime if ck.exists() else 0.0
        map_row(ds, _projector_map(*key, str(run.path), stamp, method, seed), labelings, broadest,
                "projector_map")

    coherence_section(table)
    coherence_vs_f1(ds, table, encoder)


with common.guard("The Geometry page"):
    main()
