"""Results page: compare evaluated runs and baselines — seen vs unseen hypernym F1, F1 against the
ablation ratio (mean ± 95% bootstrap CI over seeds), label shuffles against the original labels,
per-category F1 — with the majority, LM-only and random-init-LM baselines on the same axes.
Everything shown can be downloaded as CSV.
"""
import streamlit as st

from ui import common, figures
from ui import results_data as rd

METRIC_LABELS = {"seen_f1": "seen F1", "unseen_f1": "unseen F1", "hypernym_f1": "hypernym F1",
                 "leaf_f1": "leaf F1", "accuracy": "accuracy"}


@st.cache_data(show_spinner="Reading results…", ttl=10)
def _collect(data_dir: str) -> list[dict]:  # noqa: ARG001 - keys the cache
    return rd.collect()


def condition_order(condition: str) -> tuple:
    r = rd.ratio_of(condition)
    return (0, r, "") if r is not None else (1, 0, condition)


def seen_unseen(table) -> None:
    st.subheader("Seen vs unseen hypernym F1")
    sel = table[table["metric"].isin(["seen_f1", "unseen_f1"]) & (table["kind"] == "train")]
    if sel.empty:
        st.info("No evaluated training runs in this setting yet.")
        return
    rows = sorted(sel.to_dict("records"), key=lambda r: (condition_order(r["condition"]), r["model"]))
    for r in rows:
        r["bar"] = f"{r['condition']} · {r['model']}"
        r["which"] = METRIC_LABELS[r["metric"]]
    st.plotly_chart(figures.grouped_bars(rows, x="bar", y="mean", group="which", lo="ci_low", hi="ci_high",
                                         y_title="F1 (mean over seeds, 95% CI)", y_range=(0, 1.1),
                                         colors={"seen F1": "#1f77b4", "unseen F1": "#ff7f0e"}),
                    width="stretch", key="seen_unseen")
    st.caption("Unseen = (concept, category) pairs whose hypernym questions were removed from training; "
               "undefined (no bar) where nothing was removed.")


def ratio_curve(table) -> None:
    st.subheader("F1 against the ablation ratio")
    rows = rd.ratio_curve_rows(table)
    if not rows:
        st.info("No runs under `none` / `random:r` conditions in this setting yet.")
        return
    levels = rd.baseline_levels(table)
    st.plotly_chart(figures.ratio_curves(rows, baselines={f"{k} (hypernym F1)": v for k, v in levels.items()}),
                    width="stretch", key="ratio_curve")
    st.caption("Lines: mean over seeds; bands: 95% bootstrap CI; dashed: baselines' hypernym F1.")


def shuffles(table) -> None:
    st.subheader("Label shuffles vs original labels")
    wanted = ["none", "cross", "within"]
    sel = table[table["condition"].isin(wanted) & table["metric"].isin(["hypernym_f1", "leaf_f1"])]
    base = table[(table["kind"] == "baseline") & (table["metric"] == "hypernym_f1")]
    if sel[sel["kind"] == "train"].empty:
        st.info("No runs under `none`, `cross` or `within` in this setting yet.")
        return
    rows = [dict(r, bar=f"{r['model']} · {r['condition'] if r['kind'] == 'train' else 'baseline'}",
                 which=METRIC_LABELS[r["metric"]])
            for r in sel[sel["kind"] == "train"].to_dict("records") + base.to_dict("records")]
    rows.sort(key=lambda r: (r["model"], wanted.index(r["condition"]) if r["condition"] in wanted else 9))
    st.plotly_chart(figures.grouped_bars(rows, x="bar", y="mean", group="which", lo="ci_low", hi="ci_high",
                                         y_title="F1 (mean over seeds, 95% CI)", y_range=(0, 1.1)),
                    width="stretch", key="shuffles")


def categories(rows) -> None:
    st.subheader("Per-category hypernym F1")
    block = st.segmented_control("Questions", ["unseen", "seen", "all"], default="all", required=True,
                                 key="results_category_block")
    table = rd.per_category(rows, block)
    if table.empty:
        st.info(f"No {block} hypernym questions in these runs.")
        return
    labels = _category_labels(rows)
    shown = table.rename(index=lambda k: labels.get(k, k)).sort_index()
    st.plotly_chart(figures.heatmap(shown), width="stretch", key="per_category")
    st.download_button("Per-category F1 (CSV)", table.to_csv().encode(), "taxolens_per_category_f1.csv",
                       "text/csv", key="dl_per_category")


def _category_labels(rows) -> dict[str, str]:
    """Category name → label from the runs' dataset ({} if it cannot be loaded)."""
    from core.datasets import DatasetError
    try:
        ds = common.dataset(rows[0].get("dataset", "concepts")) if rows else None
    except DatasetError:
        return {}
    return {k: c.label for k, c in ds.categories.items()} if ds else {}


def main() -> None:
    st.title(":material/bar_chart: Results")
    everything = _collect(common.data_key())
    rows = [r for r in everything if rd.readable(r["metrics"])]
    stale = [r["name"] for r in everything if not rd.readable(r["metrics"])]
    if stale:
        st.warning(f"{len(stale)} evaluation(s) were written by an older TaxoLens and are left out: "
                   f"{', '.join(stale[:5])}{' …' if len(stale) > 5 else ''}. Evaluate those runs again "
                   "(CLI: `taxolens evaluate <run>`) to include them.", icon=":material/history:")
    if not rows:
        st.info("No evaluated runs yet. Queue training runs or the `paper` sweep on the Train page; "
                "each training job evaluates its run on the test split when it finishes.")
        return
    options = rd.settings(rows)
    if not options:
        st.info("Only baselines are evaluated so far; train a run to compare against them.")
        options = []
    key = st.selectbox("Setting (runs are only compared with runs trained the same way)", options,
                       format_func=rd.describe_setting, key="results_setting") if options else None
    chosen = rd.in_setting(rows, key) if key is not None else rows
    table = rd.aggregated(chosen)
    n_train = sum(r["kind"] == "train" for r in chosen)
    st.caption(f"{n_train} training run(s) and {len(chosen) - n_train} baseline(s) in this setting.")
    seen_unseen(table)
    ratio_curve(table)
    shuffles(table)
    categories(chosen)
    st.subheader("Tables")
    per_run = rd.per_run_table(chosen)
    st.dataframe(per_run, hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    c1.download_button("Per-run metrics (CSV)", per_run.to_csv(index=False).encode(), "taxolens_runs.csv",
                       "text/csv", key="dl_runs")
    c2.download_button("Mean ± CI over seeds (CSV)", table.to_csv(index=False).encode(),
                       "taxolens_aggregated.csv", "text/csv", key="dl_aggregated")


with common.guard("The Results page"):
    main()
