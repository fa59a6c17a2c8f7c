"""The Results page's "Paper's figures" section: a thin view over core.paper_figures — pickers for
the model, condition and question block, then each figure with its caption, statistics and three
downloads (its data as CSV, the figure as SVG and PNG, the images rendered only when clicked)."""
from __future__ import annotations

import streamlit as st

from core import paper_figures as pf
from core import results
from core.config import SPLIT_PERCENT
from ui import common

CAPTIONS = {
    "ablation": ("Unseen hypernym per-category macro-F1 against the share of test hypernym questions whose "
                 "(concept, category) pair stayed in training — measured on the evaluation, so random:r "
                 "(circles, solid) and systematic:N (squares, dashed) ablation share one axis. A sampled "
                 "concept loses its questions for every category it is in, so random:r removes more than r "
                 "(random:0.5 sits well below 50 % seen). Blue: "
                 "pretrained LM; red: random-init LM control. Error bars: 95 % t-CI over seeds; grey "
                 "crosses: a fair coin on the same questions."),
    "coherence": ("One point per category: its visual coherence (mean pairwise cosine of pooled encoder "
                  "features of its training images under the table's seed's split, as in the paper, from the "
                  "cached `taxolens coherence` table, under the labels the runs were trained with) against "
                  "the VLM's per-category yes/no macro-F1; dashed: least squares."),
    "probe": ("One point per category: what the LM alone answers about the dataset's (concept, category) "
              "pairs (`taxolens probe-lm`, chat-template macro-F1) against the VLM's per-category macro-F1; "
              "dashed: least squares."),
    "depth": ("The chosen model under every condition: per-category macro-F1 averaged over the categories at each WordNet depth of the category "
              "(edges from entity.n.01 on the longest chain), per run, then mean and 95 % t-CI over seeds."),
    "leaf": ("Leaf questions (\"Is there a dog in the image?\"): the yes/no macro-F1 of the questions about "
             "each concept, mean (and 95 % t-CI) over seeds, concepts sorted best to worst; dashed: the mean "
             "over concepts (the leaf per-concept macro-F1 of tables and reports; Home and Predict lead with leaf "
             "accuracy); dotted: a fair coin. A concept whose test questions hold one answer alone (only its own "
             "images were asked about it, so every answer is yes) has no yes/no macro-F1 and is not drawn. With --max-concepts each seed draws its "
             "own subset, so the concepts are every seed's, each with the seeds that drew it. A concept has few "
             "test questions (its own test images, a fifth of its images at the default 60/20/20 split, asked about it, and about as many "
             "other images asked about it with answer no), so 0 means every one of them wrong in every run that "
             "drew it, and two seeds can give an interval of the whole range (intervals clipped to [0, 1])."),
}
TITLES = pf.TITLES


@st.cache_data(show_spinner="Reading category depths from WordNet…", max_entries=8)
def _depths(data_dir: str, dataset: str, fingerprint: tuple) -> dict:  # noqa: ARG001 - keys the cache
    return pf.category_depths(common.dataset(dataset))


@st.cache_data(show_spinner=False, ttl=60)
def _export_problem() -> str | None:
    return pf.export_problem()


def downloads(name: str, entry: dict, problem: str | None) -> None:
    """CSV of the figure's data, and SVG / PNG of the figure rendered on click."""
    table = entry["table"]
    stem = pf.file_stem(name)
    cols = st.columns([1, 1, 1, 3])
    fig = entry["figure"]
    # without its figure (coherence or probe not computed) the table holds only the F1 side
    cols[0].download_button("Data (CSV)" if fig is not None or name not in ("coherence", "probe") else "F1 only (CSV)",
                            table.to_csv(index=name in ("coherence", "probe")).encode(),
                            f"{stem}.csv", "text/csv", key=f"pf_csv_{name}", icon=":material/table:",
                            on_click="ignore", help=None if fig is not None else entry.get("note"))
    if fig is None:
        return
    for col, fmt, mime in ((cols[1], "svg", "image/svg+xml"), (cols[2], "png", "image/png")):
        col.download_button(f"Figure ({fmt.upper()})", (lambda f=fig, x=fmt: pf.to_image(pf.titled(f, TITLES[name]), x)),
                            f"{stem}.{fmt}", mime, key=f"pf_{fmt}_{name}", icon=":material/image:",
                            on_click="ignore", disabled=problem is not None,
                            help=problem or f"rendered by kaleido when you click (a few seconds)")


def subset_note(meta: dict, setting: dict) -> str:
    """Said under the coherence figure when its table covers other concepts than the setting's runs
    trained on (a seeded subset of max_concepts), and how to make one of their size."""
    n = setting.get("max_concepts")
    if n is None or meta.get("concepts") == n:
        return ""
    return (f" The setting's runs trained on subsets of {n} concepts; this table is over {meta.get('concepts')} "
            f"(`taxolens coherence --dataset {setting.get('dataset')} --max-concepts {n}` makes one of their size).")


def queue_coherence(setting: dict, intro: str) -> None:
    """The coherence table the setting's runs call for (their dataset, encoder, split and subset
    size; seed 0), offered as a job beside what the figure lacks."""
    from ui import jobs
    jobs.offer_job("coherence", {"dataset": setting.get("dataset") or "concepts", "encoder": setting.get("encoder"),
                                 "seed": 0, "max_concepts": setting.get("max_concepts"), "images": "train",
                                 "split_percent": setting.get("split_percent") or SPLIT_PERCENT},
                   intro, key="pf_coherence_queue")


def queue_probe(setting: dict, intro: str, key: str, refresh=None) -> None:
    """The LM probe of the setting's LM on its dataset (`taxolens probe-lm`), offered as a job where
    the setting names both (a baseline's setting names no LM: then `intro` alone)."""
    from ui import jobs
    if not (setting.get("lm") and setting.get("dataset")):
        st.info(intro)
        return
    jobs.offer_job("probe", {"lm": setting["lm"], "dataset": setting["dataset"]}, intro, key=key, refresh=refresh)


def show(chosen: list[dict], everything: list[dict], key: tuple | None) -> None:
    st.header("The paper's figures", divider="gray")
    train = [r for r in chosen if r["kind"] == "train"]
    setting = dict(key) if key is not None else {}
    ds_name = setting.get("dataset") or "concepts"
    from core.data.datasets import DatasetError
    try:
        ds, missing = common.dataset(ds_name), None      # cached: not read from disk on every rerun
    except DatasetError as exc:
        ds, missing = None, exc
    if not train:
        st.info("No training runs in this setting: " + pf.sweep_hint(setting.get("dataset"), setting, ds) + ".")
        return
    if missing is not None:
        st.warning(f"Dataset {ds_name} cannot be loaded ({missing}); categories are shown by name, without depths.")
    depths = _depths(common.data_key(), ds_name, tuple(sorted((k, c.synset) for k, c in ds.categories.items()))) \
        if ds is not None else {}

    models = sorted({pf.model_of(r) for r in train})
    c1, c2, c3 = st.columns([1, 1, 1])
    model = c1.selectbox("Model (per-category and depth figures)", models, key="pf_model") \
        if len(models) > 1 else models[0]
    mine = [r for r in train if pf.model_of(r) == model]
    conditions = sorted({r["condition"] for r in mine}, key=results.condition_order)
    has_unseen = {c: any(pf._per_category(r["metrics"], "unseen") for r in mine if r["condition"] == c)
                  for c in conditions}
    block_default = "unseen" if any(has_unseen.values()) else "all"
    block = c3.segmented_control("Questions", list(pf.BLOCKS), default=block_default, required=True,
                                 key="pf_block")
    first = pf.default_condition(mine, block) or conditions[0]
    condition = c2.selectbox("Condition (per-category figures)", conditions, index=conditions.index(first),
                             key="pf_condition")
    if block == "unseen" and not has_unseen[condition]:
        st.caption(f"Nothing is unseen under {condition} (it removes no hypernym question): choose "
                   "**all** or **seen**, or a condition that ablates.")

    leaf_names = None
    figs = pf.setting_figures(chosen, everything, key, condition=condition, block=block, model=model, ds=ds,
                              depths=depths)
    figs.pop("_choice", None)
    leaf_table = figs["leaf"]["table"]
    if not leaf_table.empty:
        leaf_names = pf.leaf_series(leaf_table)
    problem = _export_problem()
    if problem:
        st.caption(f":material/info: {problem}")
    for name in pf.FIGURE_NAMES:
        entry = figs[name]
        st.subheader(TITLES[name])
        if name == "leaf" and leaf_names and len(leaf_names) > 1:
            series = st.selectbox("Runs", leaf_names, key="pf_leaf_series")
            entry = {**entry, "figure": pf.leaf_figure(leaf_table, series)}
        if entry["figure"] is None:
            if name == "coherence" and not entry.get("meta"):      # no table yet: offer the job
                queue_coherence(setting, entry["note"])
            else:
                st.info(entry["note"])
        else:
            st.plotly_chart(entry["figure"], width="stretch", key=f"pf_fig_{name}")
            other_size = subset_note(entry["meta"], setting) if entry.get("meta") else ""
            st.caption(CAPTIONS[name] + (f" Coherence table: {entry['meta']['path']} ({entry['meta'].get('images')} "
                                         f"training images, seed {entry['meta'].get('seed')}'s split)."
                                         + other_size if entry.get("meta") else ""))
            if other_size:
                queue_coherence(setting, f"A table over subsets of {setting['max_concepts']} concepts, as the "
                                         "setting's runs trained on, can be computed here.")
        if entry["figure"] is not None or not entry["table"].empty:
            downloads(name, entry, problem)
