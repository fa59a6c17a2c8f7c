"""Geometry page: how images sit in embedding space, and whether categories are visually coherent.

UMAP or PCA maps of the encoder's image embeddings and of a checkpoint's projector outputs, each
coloured by category under the original, cross-shuffled and within-shuffled labelings side by side;
select points (lasso / box) to see their images. Below: visual coherence per category per labeling
(over each category's training images under the seed's split, as in the paper; or over all its
images), and coherence against a condition's per-category yes/no macro-F1. For a checkpoint: its category and concept
trees (encoder features, projector outputs, answer profiles) beside WordNet's, with tree-agreement
scores per labeling; and where its image tokens land in the LM, per category (core.clusters,
core.lens; computed here on request and cached in the run folder, or by `taxolens clusters` /
`taxolens lens`).

Features and coherence come from a `coherence` job (the worker computes the encoder features once
into the feature cache); the maps are then computed here from cached features and cached on disk.
"""
import json

import numpy as np
import streamlit as st

from core import geometry, results
from core.config import PAPER_SPLIT_PERCENT, SPLIT_PERCENT, ConfigError, canonical_split_percent
from ui import common, figures, jobs

LABELINGS = geometry.LABELINGS
IMAGES_LABELS = {"train": "training images (the paper's)", "all": "all images"}


@st.cache_data(show_spinner="Reading the coherence table…", max_entries=16)
def _coherence(data_dir: str, dataset: str, fingerprint: str, encoder: str, seed: int,  # noqa: ARG001
               images: str = "train", split_percent: str = SPLIT_PERCENT):
    return geometry.coherence_table(common.dataset(dataset), encoder, seed, images=images, split_percent=split_percent)


def images_phrase(images: str, seed: int, split: str = SPLIT_PERCENT, name_split: bool = False) -> str:
    """Which images a coherence number is over, for captions (the paper's definition is the
    training images; the split is named where it is not TaxoLens' default, or always with
    `name_split`: where another chart on the page may show another split)."""
    if images == "train":
        under = f"seed {seed}'s split" if split == SPLIT_PERCENT and not name_split else f"seed {seed}'s {split} split"
        return f"the category's training images ({under}), as the paper defines coherence"
    return "all of the category's images (training, validation and test)"


@st.cache_data(show_spinner="Computing the 2-D map (UMAP takes a little while the first time)…",
               persist="disk", max_entries=32)
def _image_map(data_dir: str, dataset: str, fingerprint: str, encoder: str, method: str,  # noqa: ARG001
               seed: int) -> np.ndarray:
    features = geometry.pooled_features(common.dataset(dataset), encoder)
    return geometry.embed_2d(features, method=method, seed=seed)


@st.cache_data(show_spinner="Running the projector over the dataset and mapping it…",
               persist="disk", max_entries=32)
def _projector_map(data_dir: str, dataset: str, fingerprint: str, run_dir: str, stamp: float,  # noqa: ARG001
                   method: str, seed: int) -> np.ndarray:
    return geometry.embed_2d(geometry.projector_outputs(common.dataset(dataset), run_dir), method=method, seed=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def _labelings(data_dir: str, dataset: str, fingerprint: str,  # noqa: ARG001
               seed: int) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    return geometry.labelings(common.dataset(dataset), seed)


def map_row(ds, xy, labelings, broadest: bool, key: str) -> None:
    """One map per labeling, coloured by the category each image is shown under; a shuffle the
    dataset cannot have (labelings[1]: its reason) gets the reason in its column instead."""
    shown, impossible = labelings
    groups = {name: geometry.shown_categories(ds, lab, broadest) for name, lab in shown.items()}
    colors = figures.category_colors(g for gs in groups.values() for g in gs)
    cols = st.columns(3)
    selected: list[int] = []
    for col, name in zip(cols, LABELINGS):
        if name not in shown:
            col.info(f"No {name} labels on this dataset: {impossible[name]}.")
            continue
        hover = [[ds.concepts[it.concept].label, it.style, ds.concepts[shown[name][it.concept]].label, i]
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


def coherence_section(ds, key: tuple, encoder: str, seed: int):
    """The coherence bars over the images the radio picks; returns (table, images) for the scatter."""
    st.subheader("Visual coherence per category")
    images = st.radio("Over", geometry.IMAGE_SETS, format_func=IMAGES_LABELS.get, horizontal=True,
                      key="geometry_coherence_images",
                      help="The paper's coherence is over each category's training images; all images "
                           "adds the held-out ones (computed here from the cached features when first asked)")
    split = SPLIT_PERCENT
    if images == "train":
        split = st.text_input("Split % (train/val/test)", SPLIT_PERCENT, key="geometry_coherence_split",
                              help="which share of each concept's images is its training set, as a run's "
                                   f"Split % sets it: {SPLIT_PERCENT} (TaxoLens' default), {PAPER_SPLIT_PERCENT} "
                                   "(the paper's), or another")
        try:
            split = canonical_split_percent(split)
        except ConfigError as exc:
            st.error(f"{exc}; showing the {SPLIT_PERCENT} split.")
            split = SPLIT_PERCENT
    table = _coherence(*key, encoder, seed, images, split)
    st.caption(f"Mean pairwise cosine similarity of the image embeddings among {images_phrase(images, seed, split)}"
               + ", under each labeling; in brackets each category's number of concepts. Shuffling across "
               "categories is expected to lower coherence (each category is shown the images of as many other "
               "concepts, drawn from anywhere), shuffling within keeps it. A category of one or two concepts is "
               "shown one or two others' images, so its cross bar can land on either side of the original one by "
               "chance: the macro means below say what holds overall.")
    order = table.drop(index="all", errors="ignore").sort_values("original", ascending=False)
    members = {k: len(ds.concepts_in(k)) for k in ds.categories}
    label = {k: f"{c.label} ({members[k]})" for k, c in ds.categories.items()}      # as the questions word them
    rows = [{"category": label.get(cat, cat), "labeling": lab, "coherence": float(order.loc[cat, lab])}
            for cat in order.index for lab in LABELINGS if lab in order.columns and np.isfinite(order.loc[cat, lab])]
    st.plotly_chart(figures.grouped_bars(rows, x="category", y="coherence", group="labeling",
                                         y_title="mean pairwise cosine", colors=figures.LABELING_COLORS,
                                         values=False),
                    width="stretch", key="coherence_bars")
    if "all" in table.index:
        a, b, c = st.columns(3)
        for col, lab in zip((a, b, c), LABELINGS):
            value = geometry.finite_or_none(float(table.loc["all", lab]))
            col.metric(f"Macro mean, {lab}", "—" if value is None else f"{value:.3f}")
    name = f"taxolens_coherence_{images}" + (f"_{split.replace('/', '-')}" if split != SPLIT_PERCENT else "")
    st.download_button("Coherence table (CSV)", table.to_csv().encode(), f"{name}.csv", "text/csv",
                       key="dl_coherence")
    return table, images


def coherence_vs_f1(ds, key: tuple, table, encoder: str, images: str, seed: int) -> None:
    """Per category, coherence against the macro-F1 of one setting's runs of one model (the
    pretrained LM and its random-init control are never averaged together) under one condition;
    for a setting of another split, coherence over that split's training images."""
    st.subheader("Coherence vs per-category macro-F1")
    from core.paper_figures import labeling_of, model_of

    everything, other_version, _ = common.collected()
    rows = [r for r in everything if r["kind"] == "train" and r.get("encoder") == encoder
            and r.get("dataset") == ds.name and results.readable(r["metrics"])]
    if other_version:
        st.caption(f"Not shown: {len(other_version)} run(s) and baseline(s) measured on another version of "
                   f"their dataset ({results.left_out_names(other_version)}).")
    settings = results.settings(rows)
    if not settings:
        st.info(f"No evaluated runs with encoder {encoder} on {ds.name} yet.")
        return
    c1, c2, c3 = st.columns([3, 1, 1])
    setting = c1.selectbox("Runs of the setting", settings, format_func=results.describe_setting,
                           key="geometry_setting") if len(settings) > 1 else settings[0]
    rows = [r for r in rows if results.setting_key(r) == setting]
    models = sorted({model_of(r) for r in rows})        # "pretrained LM" before "random-init LM"
    model = c2.radio("Model", models, key="geometry_model") if len(models) > 1 else models[0]
    rows = [r for r in rows if model_of(r) == model]
    conditions = sorted({r["condition"] for r in rows}, key=results.condition_order)
    condition = c3.selectbox("Condition", conditions, key="geometry_condition")
    # coherence under the labels the runs were trained with (cross+random:0.5 -> cross)
    labeling = labeling_of(condition)
    chosen = [r for r in rows if r["condition"] == condition]
    split = dict(setting).get("split_percent") or SPLIT_PERCENT
    if images == "train":       # the runs' own training images, whichever split the bars above show
        table = _coherence(*key, encoder, seed, images, split)
    # the bars above may show another split (their Split % field): name this one's, always
    st.caption(f"Coherence among {images_phrase(images, seed, split, name_split=True)}"
               + (" (the runs' own split)" if images == "train" else "")
               + f"; macro-F1 of the {model}'s {len(chosen)} run(s) under {condition} "
               f"({results.describe_setting(setting)})."
               # the table covers the whole dataset; the runs may have trained on a subset of it
               + (f" The coherence here is over all {len(ds.concepts)} concepts of {ds.name}; the runs trained "
                  f"on subsets of {dict(setting)['max_concepts']} (Results' coherence figure can use a table "
                  "of their size)."
                  if (dict(setting).get("max_concepts") or len(ds.concepts)) < len(ds.concepts) else ""))
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
    hyper = [r["metrics"]["hypernym"] for r in chosen]
    trained = {k for h in hyper for k in (h if block == "all" else h.get(block, {})).get("per_category", {})}
    if len(points) < len(trained):      # say which categories the correlation is not over, and why
        st.caption(f"{len(points)} of the {len(trained)} categories these runs were asked about are drawn: the "
                   f"others' {'' if block == 'all' else block + ' '}questions hold one answer alone in every run "
                   "(no yes/no macro-F1) or have no coherence value under these labels.")


def queue_coherence(ds, encoder: str, seed: int) -> None:
    """The coherence table over the training images, as a job (ui.jobs.offer_job)."""
    jobs.offer_job("coherence", {"dataset": ds.name, "encoder": encoder, "seed": seed, "images": "train"},
                   f"The coherence table of encoder **{encoder}** on **{ds.name}** (seed {seed}, over each "
                   "category's training images) is not computed yet. It runs as a job: image features "
                   "already in the feature cache are read, the encoder looks at the rest once.", key="geometry_queue")


# --- a checkpoint's trees against WordNet, and its image tokens in the LM -------------------------

SOURCE_NAMES = {"encoder": "encoder features", "projector": "projector outputs", "answers": "answer profiles",
                "membership": "membership only (random vectors)"}
LEVEL_NAMES = {"category": "categories", "concept": "concepts"}


def _stamp_of(run) -> str:
    from core import runs
    return runs.checkpoint_stamp(run.path)


@st.cache_data(show_spinner=False, max_entries=64)
def _clusters_result(run_dir: str, stamp: float, split: str):  # noqa: ARG001 - stamp keys the cache
    from core import clusters
    return clusters.load_cached(run_dir, split)


@st.cache_data(show_spinner=False, max_entries=64)
def _question_count(run_dir: str, stamp: float, split: str) -> tuple[int, int, int]:  # noqa: ARG001
    from core import clusters
    return clusters.question_count(run_dir, split)


@st.cache_data(show_spinner=False, max_entries=64)
def _lens_result(run_dir: str, stamp: float):  # noqa: ARG001
    from core import lens
    return lens.load_cached(run_dir)


@st.cache_data(show_spinner=False, max_entries=64)
def _image_count(run_dir: str, stamp: float) -> int:  # noqa: ARG001
    from core import rundata, runs
    return len(rundata.load_subset(runs.load_run(run_dir).config)[0].images)


def choose_run(trained, key: str):
    """Checkpoint picker, opening on and naming runs as Predict's does."""
    return common.run_picker("Checkpoint", trained, key=key)


@st.cache_data(show_spinner=False, max_entries=64)
def _synset_leaves(run_dir: str, stamp: str) -> dict[str, tuple[int, int]]:  # noqa: ARG001
    """clusters.drawable_leaves over the run's own (sub)set of concepts."""
    from core import clusters, rundata, runs
    return clusters.drawable_leaves(rundata.load_subset(runs.load_run(run_dir).config)[0])


def trees_section(ds, run, trained) -> None:
    import torch

    from core import clusters

    st.subheader("Category clustering as trees, against WordNet")
    st.caption("Hierarchical clustering (average linkage, cosine distance of centred means) of the categories "
               "(or concepts) from three views of the same images: the encoder's features, the projector's "
               "image tokens and the trained model's answer profiles (P(yes) of every category question). "
               "Beside each, WordNet's tree of the same leaves. Agreement: the cophenetic correlation of the "
               "model tree with WordNet path distances, and the Fowlkes–Mallows index of both trees cut into "
               "the same number of clusters (mean over all cuts); *null* = the same tree with its leaves "
               "shuffled. Categories overlap (every mammal is an animal), so *membership only* scores random "
               "vectors grouped the same way: what overlap alone explains.")
    note = _learning_note(run)
    if note:
        st.warning(note, icon=":material/school:")
    split = st.radio("Images", ["test", "all"], horizontal=True, key="trees_split",
                     format_func=lambda s: {"test": "test split (held out)", "all": "all images of the run"}[s])
    stamp = _stamp_of(run)
    counts = _synset_leaves(str(run.path), stamp)     # said before anything is computed
    drawable = clusters.drawable_levels(counts)
    if not drawable:
        st.info("Too few categories or concepts with a WordNet synset to draw trees ("
                + ", ".join(f"{kept} of {n} {LEVEL_NAMES[level]}" for level, (kept, n) in counts.items())
                + " have one).")
        return
    result = _clusters_result(str(run.path), stamp, split)
    if "category" not in drawable and result is None:        # once computed, the result's notes say it
        kept, n = counts["category"]
        st.info(f"Only {kept} of this run's {n} categories have a WordNet synset (an imported dataset's "
                "categories have none), too few for a category tree: the trees are of concepts.")
    if result is None or "answers" not in result["sources"]:
        n_images, n_categories, n_questions = _question_count(str(run.path), stamp, split)
        cheap = n_questions <= 3000 or torch.cuda.is_available()
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        answers = c1.checkbox(f"With answer profiles: {n_images} images × {n_categories} category questions = "
                              f"{n_questions:,} LM questions", value=cheap, key="trees_answers",
                              help="about 0.1–0.25 s per question on a 2-core CPU, much less on a GPU; "
                                   "encoder and projector trees take seconds")
        sources = list(clusters.SOURCES) if answers else ["encoder", "projector"]
        jobs.offer_job("clusters", {"run": str(run.path), "split": split, "sources": sources}, "",
                       key="trees_go", refresh=_clusters_result.clear, where=c2,
                       button="Compute the trees" if result is None else "Add answer profiles")
        st.caption(f"Or in a shell (writes JSON + Newick into the run folder): "
                   f"`taxolens clusters {run.path} --split {split}`")
        if result is None:
            return
    show_trees(result, trained, split, run.config.dataset)


def show_trees(result: dict, trained, split: str, dataset: str) -> None:
    import pandas as pd

    from core import clusters

    notes = list(result.get("notes", []))
    # a result computed before it noted missing trees: said here, as a new one says it
    notes += [n for n in clusters.missing_tree_notes(dataset, result["levels"]) if n not in notes]
    for note in notes:
        st.info(note)
    c1, c2, c3 = st.columns([1.2, 1.2, 1.6])
    # the levels this result has trees of (an imported dataset's categories have no synsets)
    levels = [lv for lv in clusters.LEVELS if result["levels"][lv]["labelings"]] or list(clusters.LEVELS)
    level = c1.radio("Leaves", levels, horizontal=True, key="trees_level", format_func=LEVEL_NAMES.get)
    entry = result["levels"][level]
    if not entry["labelings"]:
        st.info(f"Too few {LEVEL_NAMES[level]} with a WordNet synset to draw trees.")
        return
    rows = [r for r in clusters.score_table(result) if r["level"] == level]
    for r in rows:
        r["view"] = SOURCE_NAMES.get(r["source"], r["source"])
    chart_rows = [r for r in rows if r["cophenetic"] is not None]
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figures.grouped_bars(chart_rows, x="view", y="cophenetic", group="labeling",
                                             colors=figures.LABELING_COLORS, y_range=(-0.3, 1.0),
                                             y_title="cophenetic r with WordNet",
                                             title="Cophenetic correlation"),
                        width="stretch", key=f"trees_coph_{level}")
    with right:
        st.plotly_chart(figures.grouped_bars([r for r in rows if r["fm_mean"] is not None], x="view", y="fm_mean",
                                             group="labeling", colors=figures.LABELING_COLORS, y_range=(0, 1.0),
                                             y_title="mean Fowlkes–Mallows", title="Fowlkes–Mallows at matched cuts"),
                        width="stretch", key=f"trees_fm_{level}")
    table = pd.DataFrame([{"labeling": r["labeling"], "view": r["view"], "leaves": r["leaves"],
                           "cophenetic r": r["cophenetic"], "null r (mean)": r["null_cophenetic"],
                           "p": r["p_cophenetic"], "Spearman": r["cophenetic_spearman"],
                           "FM mean": r["fm_mean"], "null FM": r["null_fm"]} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("cophenetic r", "null r (mean)", "p", "Spearman", "FM mean", "null FM")})
    if level == "category" and "within" in entry["labelings"]:
        st.caption("Within-shuffles swap concepts only inside groups with the same category set, so every "
                   "category keeps exactly its images: category-level *within* equals *original* by "
                   "construction. Look at concept leaves for what a within-shuffle changes.")

    labelings = list(entry["labelings"])
    sources = [s for s in result["sources"]]
    labeling = c2.selectbox("Tree under labels", labelings, key="trees_labeling")
    source = c3.selectbox("Tree from", sources, key="trees_source", format_func=SOURCE_NAMES.get)
    wordnet = entry["wordnet"]
    tree = entry["labelings"][labeling]["trees"][source]
    n = len(wordnet["leaves"])
    k = min(8, max(2, n - 1))
    colors = figures.leaf_colors_from_cut(wordnet["leaves"], clusters.cuts(np.asarray(wordnet["linkage"]))[k]) \
        if n > 2 else {}
    score = entry["labelings"][labeling]["scores"][source]
    a, b = st.columns(2)
    with a:
        coph = "–" if score["cophenetic"] is None else f"{score['cophenetic']:.2f}"
        st.plotly_chart(figures.dendrogram(tree, title=f"{SOURCE_NAMES[source]}, {labeling} labels (r = {coph})",
                                           leaf_colors=colors, x_title="cosine distance"),
                        width="stretch", key=f"trees_model_{level}_{labeling}_{source}")
    with b:
        st.plotly_chart(figures.dendrogram(wordnet, title="WordNet", leaf_colors=colors,
                                           x_title="path distance (edges)", internal_prefix="≈ "),
                        width="stretch", key=f"trees_wordnet_{level}")
    st.caption(f"Leaf colours: WordNet's tree cut into {k} groups, the same on both sides: a model tree that "
               "follows WordNet keeps each colour together. Hover a merge for its members (and, on WordNet's "
               "side, their lowest common hypernym).")
    d1, d2, d3 = st.columns(3)
    d1.download_button("Scores (CSV)", table.to_csv(index=False).encode(), f"taxolens_trees_{result['run_id']}_{level}.csv",
                       "text/csv", key="trees_dl_csv")
    d2.download_button("These two trees (Newick)", f"{tree['newick']}\n{wordnet['newick']}\n".encode(),
                       f"taxolens_trees_{result['run_id']}_{level}_{labeling}_{source}.nwk", "text/plain",
                       key="trees_dl_nwk")
    d3.download_button("Everything (JSON)", json.dumps(result).encode(), f"taxolens_clusters_{result['run_id']}.json",
                       "application/json", key="trees_dl_json")
    compare_runs(trained, split, level)


def compare_runs(trained, split: str, level: str) -> None:
    rows = []
    for r in trained:
        res = _clusters_result(str(r.path), _stamp_of(r), split)
        if res is None:
            continue
        from core import clusters
        for row in clusters.score_table(res):
            if row["level"] == level and row["source"] != "membership":
                rows.append({"checkpoint": r.run_id, "trained on": r.config.condition, "labeling": row["labeling"],
                             "view": SOURCE_NAMES[row["source"]], "cophenetic r": row["cophenetic"],
                             "FM mean": row["fm_mean"]})
    if len({r["checkpoint"] for r in rows}) < 2:
        return
    st.markdown(f"**Checkpoints side by side** ({LEVEL_NAMES[level]}, {split} images; those with trees computed)")
    import pandas as pd
    wide = pd.DataFrame(rows).pivot_table(index=["checkpoint", "trained on", "view"], columns="labeling",
                                          values="cophenetic r").reset_index()
    st.dataframe(wide, hide_index=True, width="stretch")


def lens_section(ds, run) -> None:
    from core import clusters

    st.subheader("Where the images land in the LM")
    st.caption("Does the projector write the word? For every image of the run: the LM input tokens nearest "
               "(cosine) to its image token(s), and the LM's top next tokens after the start text and the "
               "image (a logit lens). An image hits when these include the first token of its concept's "
               "name or of one of its hypernyms (WordNet ancestors below the most general levels, and its "
               "dataset categories); *chance* asks the same of another concept's words.")
    note = _learning_note(run)
    stamp = _stamp_of(run)
    result = _lens_result(str(run.path), stamp)
    if result is None:
        n = _image_count(str(run.path), stamp)
        jobs.offer_job("lens", {"run": str(run.path)}, "", key="lens_go", refresh=_lens_result.clear,
                       button=f"Compute ({n} images, one short LM pass each)")
        st.caption(f"Or in a shell: `taxolens lens {run.path}`")
        return
    if note:
        st.warning(note, icon=":material/school:")
    c1, c2 = st.columns([1.4, 2])
    view = c1.radio("Tokens", ["nearest", "next"], horizontal=True, key="lens_view",
                    format_func={"nearest": "nearest to the image tokens", "next": "next after the image"}.get)
    who = "true"
    if result["shuffled"]:
        who = c2.radio("Words of", ["true", "labelled"], horizontal=True, key="lens_who",
                       format_func={"true": "the image's true concept",
                                    "labelled": "the concept it was labelled as in training"}.get)
    overall = result["categories"][0]
    m = st.columns(5)
    m[0].metric("Images", overall["n"])
    m[1].metric("Name", f"{overall[f'{view}_{who}_name']:.0%}")
    m[2].metric("Hypernym", f"{overall[f'{view}_{who}_hypernym']:.0%}")
    m[3].metric("Either", f"{overall[f'{view}_{who}_any']:.0%}")
    m[4].metric("Chance (either)", f"{overall[f'{view}_chance_any']:.0%}")
    common_tokens = result.get("common") or []
    shared = ", ".join(f"{t['shown']} ({t['share']:.0%})" for t in common_tokens[:3])
    collapsed = bool(common_tokens) and common_tokens[0]["share"] >= 0.9
    st.caption(f"Image tokens are on average {result['image_token_norm'] / result['token_norm']:.1f}× as long as a "
               "typical text token (cosine ignores length, the LM does not)."
               + (f" Nearest tokens shared by the most images: {shared}." if shared else "")
               + (" Nearly every image lands near the same words: the projector's outputs point one way, and "
                  "what tells images apart is a small part of them." if collapsed else ""))
    rows = []
    for entry in result["categories"][1:]:
        for kind, col in (("name", f"{view}_{who}_name"), ("hypernym", f"{view}_{who}_hypernym"),
                          ("chance (either)", f"{view}_chance_any")):
            rows.append({"category": entry["label"], "hit": kind, "share": entry[col]})
    order = sorted(result["categories"][1:], key=lambda e: -e[f"{view}_{who}_any"])
    rank = {e["label"]: i for i, e in enumerate(order)}
    rows.sort(key=lambda r: rank[r["category"]])
    st.plotly_chart(figures.grouped_bars(rows, x="category", y="share", group="hit", y_range=(0, 1),
                                         y_title="share of the category's images",
                                         colors={"name": "#2ca02c", "hypernym": "#1f77b4",
                                                 "chance (either)": "#bbbbbb"}, values=False),
                    width="stretch", key=f"lens_bars_{view}_{who}")
    with st.expander("The most frequent nearest tokens per concept"):
        st.dataframe([{"concept": ds.concepts[c].label if c in ds.concepts else c, "nearest tokens": ", ".join(t)}
                      for c, t in result["examples"].items()], hide_index=True, width="stretch")


def checkpoint_sections(ds, dataset: str, encoder: str, run=None) -> None:
    """Trees and the logit lens of one checkpoint (the projector map's, or one chosen here)."""
    trained = [r for r in common.runs_list() if r.epoch >= 1 and r.config.encoder == encoder
               and r.config.dataset == dataset]
    if not trained:
        return
    if run is None:
        st.subheader("A checkpoint's view")
        run = choose_run(trained, "geometry_insight_run")
    else:
        st.caption(f"Below: checkpoint **{run.run_id}** ({run.config.condition}, seed {run.config.seed}), "
                   "chosen above for the projector map.")
    with common.guard("The category trees"):
        trees_section(ds, run, trained)
    with common.guard("The logit lens per category"):
        lens_section(ds, run)


def main() -> None:
    from core.data.datasets import DatasetError, list_datasets

    st.title(":material/scatter_plot: Geometry")
    names = list_datasets() or ["concepts"]
    c1, c2, c3, c4, c5 = st.columns([1.2, 1.4, 0.8, 1, 1.4])
    dataset = c1.selectbox("Dataset", names, key="geometry_dataset", index=common.dataset_index(names))
    try:
        ds = common.dataset(dataset)
    except DatasetError as exc:
        st.warning(str(exc))
        return
    encoders = common.model_ids("image encoder")
    encoder = c2.selectbox("Image encoder", encoders, key="geometry_encoder")
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key="geometry_seed",
                               help="for the shuffled labelings, the train / held-out split of the "
                                    "images (coherence is over the training ones) and the UMAP layout"))
    method = c4.radio("Map", ["umap", "pca"], horizontal=True, key="geometry_method",
                      format_func=str.upper)
    broadest = c5.radio("Colour by", ["broadest category", "most specific category"], horizontal=True,
                        key="geometry_colour") == "broadest category"
    if not geometry.is_cached(ds, encoder, seed):
        queue_coherence(ds, encoder, seed)
        checkpoint_sections(ds, dataset, encoder)
        return
    fingerprint = geometry.dataset_fingerprint(ds)
    key = (common.data_key(), dataset, fingerprint)
    labelings = _labelings(*key, seed)

    st.subheader(f"Image embeddings ({encoder})")
    map_row(ds, _image_map(*key, encoder, method, seed), labelings, broadest, "image_map")

    st.subheader("Projector outputs")
    trained = [r for r in common.runs_list() if r.epoch >= 1 and r.config.encoder == encoder
               and r.config.dataset == dataset]
    run = None
    if not trained:
        st.info(f"No trained checkpoint with encoder {encoder} on {dataset} yet.")
    else:
        run = choose_run(trained, "geometry_run")
        map_row(ds, _projector_map(*key, str(run.path), _stamp_of(run), method, seed), labelings, broadest,
                "projector_map")

    table, images = coherence_section(ds, key, encoder, seed)
    coherence_vs_f1(ds, key, table, encoder, images, seed)
    if run is not None:
        checkpoint_sections(ds, dataset, encoder, run)



def _learning_note(run) -> str | None:
    """The app's one "has it learned" rule (runs.learning_note, on the run's test evaluation):
    trees and tokens of such a checkpoint show an untrained projector, not what a model learned."""
    from core import runs
    note = runs.answer_warning(run.path)         # a damaged evaluation: a reason, not an error
    if note is None:
        return None
    # a run that trained further after its evaluation is not untrained: its numbers are of an earlier one
    tail = "" if "trained further" in note else "; what follows may show an untrained projector"
    return note[0].upper() + note[1:] + tail + "."

with common.guard("The Geometry page"):
    main()
