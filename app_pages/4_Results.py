"""Results page: compare evaluated runs and baselines on the paper's headline — per-category yes/no
macro-F1 on seen vs unseen hypernym pairs, mean ± 95 % t-CI over seeds, beside a fair coin's level —
against the ablation ratio, under label shuffles, per category, and beside what the LM alone knows
(the `probe-lm` numbers per category). Numbers come from core.results; everything can be downloaded
as CSV.
"""
import streamlit as st

from core import results, runs
from ui import common, figures
from ui import paper_figures

HEADLINE_CAPTION = ("Per-category yes/no macro-F1: inside one category the mean of the yes-class and "
                    "no-class F1, then the mean over categories (a category whose questions hold one answer "
                    "alone, as a one-concept category's seen pairs after random ablation, has none and is left "
                    "out; `taxolens results report` counts them per run). Bars: mean over seeds with its 95 % "
                    "t-based CI, clipped to [0, 1] (none with one seed); black ticks: a fair coin's expected score on the "
                    "same questions.")


def _bar_rows(table, metrics: dict[str, str], chance: dict[str, str], conditions=None) -> list[dict]:
    """Aggregated rows for grouped bars: one bar per (condition · model, metric), with the chance
    level of the same questions attached."""
    sel = table[(table["kind"] == "train") & table["metric"].isin(list(metrics))]
    if conditions is not None:
        sel = sel[sel["condition"].isin(conditions)]
    level = {(r["condition"], r["model"], r["metric"]): r["mean"] for r in table.to_dict("records")}
    rows = sorted(sel.to_dict("records"), key=lambda r: (results.condition_order(r["condition"]), r["model"]))
    for r in rows:
        r["bar"] = f"{r['condition']} · {r['model']}"
        r["which"] = metrics[r["metric"]]
        r["chance"] = level.get((r["condition"], r["model"], chance.get(r["metric"])))
        r["ci_low"], r["ci_high"] = results.finite_or_none(r["ci_low"]), results.finite_or_none(r["ci_high"])
    return rows


def seen_unseen(table) -> None:
    st.subheader("Seen vs unseen hypernym pairs: per-category macro-F1")
    rows = _bar_rows(table, {"seen_category_f1": "seen", "unseen_category_f1": "unseen"},
                     {"seen_category_f1": "seen_chance_f1", "unseen_category_f1": "unseen_chance_f1"})
    if not rows:
        st.info("No evaluated training runs in this setting yet.")
        return
    st.plotly_chart(figures.grouped_bars(rows, x="bar", y="mean", group="which", lo="ci_low", hi="ci_high",
                                         y_title="per-category macro-F1 (mean over seeds, 95% CI)",
                                         y_range=(0, 1.1), chance="chance"),
                    width="stretch", key="seen_unseen")
    st.caption(HEADLINE_CAPTION + " Unseen = (concept, category) pairs whose hypernym questions the "
               "condition removed from training; no bar where nothing was removed (or nothing kept).")


def ratio_curve(table, chosen) -> None:
    st.subheader("Against the ablation ratio r (the paper's random ablation)")
    rows = results.ratio_curve_rows(table)
    # ratios with a number on some line (seen has none at r = 1, unseen none at r = 0): one is a dot
    ratios = sorted({r["ratio"] for r in rows if results.finite_or_none(r["mean"]) is not None})
    if len(ratios) < 2:
        st.info(("Only r = 0 (`none`) so far" if ratios == [0.0] else
                 f"Only r = {ratios[0]:g} so far" if ratios else "No runs under `none` / `random:r` conditions yet")
                + " in this setting: the curve needs two ratios or more (the paper sweep trains r = 0, 0.25, "
                  "0.5, 0.75 and 1).")
        return
    same = results.same_removal(chosen)
    if same:
        listed, ratios = common.same_pairs(same)
        st.warning("Some conditions here removed the same pairs and labelled alike at the seeds named, by their "
                   "runs' own records: there, one run trained under several names, so the curve between them "
                   "says nothing about r: " + listed
                   + (". Each category gives up max(1, int(n·r)) of its n members; with one or two members per "
                      "category (a small subset) most r remove the same. More concepts tell them apart."
                      if ratios else "."), icon=":material/warning:")
    levels = results.baseline_levels(table)
    st.plotly_chart(figures.ratio_curves(rows, baselines={f"{k} (hypernym)": v for k, v in levels.items()},
                                         chance=results.chance_curve_rows(table)),
                    width="stretch", key="ratio_curve")
    st.caption("Lines: mean over seeds; bands: 95 % t-based CI, clipped to [0, 1]; dotted: a fair coin on the unseen "
               "questions; dashed: baselines. At r = 1 every hypernym question is removed from training.")


SHUFFLES = ["none", "cross", "within", "cross+random:0.5", "within+random:0.5"]


def shuffles(table) -> None:
    st.subheader("Label shuffles vs the original labels")
    present = [c for c in SHUFFLES if c in set(table["condition"])]
    rows = _bar_rows(table, {"seen_category_f1": "seen", "unseen_category_f1": "unseen",
                             "leaf_concept_f1": "leaf per concept"},
                     {"seen_category_f1": "seen_chance_f1", "unseen_category_f1": "unseen_chance_f1",
                      "leaf_concept_f1": "leaf_chance_f1"}, conditions=present)
    if not [r for r in rows if r["condition"] != "none"]:
        st.info("No runs under `cross`, `within` or their combinations with an ablation in this setting yet.")
        return
    st.plotly_chart(figures.grouped_bars(rows, x="bar", y="mean", group="which", lo="ci_low", hi="ci_high",
                                         y_title="macro-F1 (mean over seeds, 95% CI)", y_range=(0, 1.1),
                                         chance="chance"),
                    width="stretch", key="shuffles")
    st.caption("Under a shuffle the questions follow the shuffled labels; with `+random:0.5` the "
               "unseen pairs are those the ablation removed under the shuffled labels.")


def categories(rows) -> None:
    st.subheader("Per-category hypernym macro-F1")
    block = st.segmented_control("Questions", ["unseen", "seen", "all"], default="all", required=True,
                                 key="results_category_block")
    table = results.per_category(rows, block)
    if table.empty:
        st.info(f"No {block} hypernym questions in these runs.")
        return
    labels = _category_labels(rows)
    shown = table.rename(index=lambda k: labels.get(k, k)).sort_index()
    st.plotly_chart(figures.heatmap(shown, z_title="macro-F1"), width="stretch", key="per_category")
    st.download_button("Per-category macro-F1 (CSV)", table.to_csv().encode(), "taxolens_per_category_f1.csv",
                       "text/csv", key="dl_per_category")


def lm_knowledge(rows, everything, key) -> None:
    st.subheader("What the LM alone knows, per category, beside the VLM")
    setting = dict(key) if key is not None else {}
    probes = results.probes_for(everything, setting.get("lm"), setting.get("dataset"))
    if not probes:
        from ui.paper_figures import queue_probe
        queue_probe(setting, f"No LM probe of {setting.get('lm', 'this LM')} on {setting.get('dataset', 'this dataset')} "
                             f"yet: `taxolens probe-lm --lm {setting.get('lm', '<id>')} --dataset "
                             f"{setting.get('dataset', '<name>')}` or the `probe` job the paper sweep queues (a few "
                             "minutes: the LM alone answers the dataset's (concept, category) questions in four "
                             "ways).", key="results_probe_queue", refresh=common.refresh_results)
        return
    train = [r for r in rows if r["kind"] == "train"]
    if not train:
        st.info("No training runs in this setting to compare with.")
        return
    probe = probes[0]
    m = probe["metrics"]
    cols = st.columns(4)
    for col, (label, value) in zip(cols, (("chat macro-F1", m.get("chat_macro_f1")),
                                          ("plain macro-F1", m.get("plain_macro_f1")),
                                          ("pairwise true > wrong", m.get("pairwise")),
                                          ("sentence true > wrong", m.get("sentence")))):
        col.metric(label, "–" if value is None else f"{value:.3f}")
    if m.get("notes"):
        st.caption(" · ".join(m["notes"]))
    c1, c2, c3 = st.columns(3)
    condition = c1.selectbox("VLM runs under condition", sorted({r["condition"] for r in train},
                                                                key=results.condition_order),
                             key="results_probe_condition")
    block = c2.segmented_control("VLM questions", ["unseen", "seen", "all"], default="unseen", required=True,
                                 key="results_probe_block")
    columns = [c for c in ("chat_macro_f1", "plain_macro_f1", "pairwise", "sentence", "chat_accuracy",
                           "plain_accuracy") if m.get(c) is not None]
    probe_col = c3.selectbox("Probe number", columns, key="results_probe_column")
    chosen = [r for r in train if r["condition"] == condition]
    table = results.probe_vs_vlm(chosen, m, block)
    if table.empty or table["vlm_macro_f1"].isna().all():
        st.info(f"The runs under {condition} have no {block} hypernym questions.")
        return
    labels = _category_labels(rows)
    stats = results.correlations(table[probe_col].tolist(), table["vlm_macro_f1"].tolist())
    title = (f"Spearman ρ = {stats['spearman']:.2f} (p = {stats['spearman_p']:.2g}), Pearson r = "
             f"{stats['pearson']:.2f} (p = {stats['pearson_p']:.2g}), n = {stats['n']} categories"
             if stats["spearman"] is not None else f"correlation undefined (n = {stats['n']} categories)")
    points = [{"x": float(row[probe_col]), "y": float(row["vlm_macro_f1"]), "label": labels.get(cat, cat)}
              for cat, row in table.iterrows() if row[probe_col] == row[probe_col]
              and row["vlm_macro_f1"] == row["vlm_macro_f1"]]
    st.plotly_chart(figures.scatter_with_labels(points, f"LM probe: {probe_col}",
                                                f"VLM {block} macro-F1 ({condition}, {len(chosen)} run(s))",
                                                title=title, y_range=(-0.05, 1.05), x_range=(-0.05, 1.05),
                                                annotate=False),
                    width="stretch", key="probe_scatter")
    st.dataframe(table.rename(index=lambda k: labels.get(k, k)), width="stretch")
    st.download_button("Probe vs VLM per category (CSV)", table.to_csv().encode(), "taxolens_probe_vs_vlm.csv",
                       "text/csv", key="dl_probe_vs_vlm")


def lm_choice(rows, key) -> None:
    """The lms preset's comparison, when this setting was also trained with another LM or prompt format."""
    if key is None:
        return
    base = tuple(kv for kv in key if kv[0] not in results.LM_CHOICE_FIELDS)
    for group, entries in results.lm_choice(rows):
        if group == base:
            import pandas as pd

            st.subheader("Which LM and prompt format")
            st.caption(results.LM_CHOICE_NOTE + " This setting trained with each LM and prompt format "
                       "(`taxolens sweep run lms`); the table of the report's section of the same name.")
            st.dataframe(pd.DataFrame(results.lm_choice_records(entries)), hide_index=True, width="stretch")


def _category_labels(rows) -> dict[str, str]:
    """Category name → label from the runs' dataset ({} if it cannot be loaded)."""
    from core.data.datasets import DatasetError
    try:
        ds = common.dataset(rows[0].get("dataset", "concepts")) if rows else None
    except DatasetError:
        return {}
    return {k: c.label for k, c in ds.categories.items()} if ds else {}


def main() -> None:
    st.title(":material/bar_chart: Results")
    everything, other_version, unevaluated = common.collected()
    if unevaluated:
        st.info(f"{len(unevaluated)} finished run(s) have no test evaluation (stopped while it ran, say) and are "
                f"not counted: {results.left_out_names(unevaluated)}. `taxolens evaluate <run>` evaluates one; "
                "the same sweep submitted again evaluates its runs.", icon=":material/pending:")
    if other_version:
        st.info(f"{len(other_version)} run(s) and baseline(s) were measured on another version of their dataset "
                f"than the one installed (other images and splits) and are left out: "
                f"{results.left_out_names(other_version)}.",
                icon=":material/history:")
    scored = [r for r in everything if r["kind"] != "probe"]
    rows = [r for r in scored if results.readable(r["metrics"])]
    stale = [r["name"] for r in scored if not results.readable(r["metrics"])]
    redone = [r["name"] for r in rows if r["metrics"].get("recomputed")]
    if stale:
        st.warning(f"{len(stale)} evaluation(s) were written by an older TaxoLens without their questions "
                   f"table and are left out: {results.left_out_names(stale)}. Evaluate "
                   "those runs again (CLI: `taxolens evaluate <run>`) to include them.", icon=":material/history:")
    if not rows:
        st.info("No evaluated runs yet. Queue training runs or the `paper` sweep on the Train page; "
                "each training job evaluates its run on the test split when it finishes.")
        return
    options = results.settings(rows)
    if not options:
        st.info("Only baselines are evaluated so far; train a run to compare against them.")
    key = st.selectbox("Setting (runs are only compared with runs trained the same way)", options,
                       format_func=results.describe_setting, key="results_setting") if options else None
    if key is not None:                          # the box cuts a long setting; here it is whole
        st.caption(results.describe_setting(key))
    chosen = results.in_setting(rows, key) if key is not None else rows
    table = results.aggregated(chosen)
    n_train = sum(r["kind"] == "train" for r in chosen)
    unlearned = [r["name"] for r in chosen if r["kind"] == "train" and runs.learning_note_of(r["metrics"])]
    if unlearned:
        st.warning(f"{len(unlearned)} of the {n_train} training run(s) here have not learned enough (test leaf "
                   f"accuracy below {runs.LEARNED_LEAF_ACCURACY} or \"yes\" to more than "
                   f"{runs.YES_RATE_LIMIT:.0%} of questions): while leaf questions are near chance, their seen / "
                   f"unseen hypernym numbers say little: {results.left_out_names(unlearned)}.",
                   icon=":material/warning:")
    st.caption(f"{n_train} training run(s) and {len(chosen) - n_train} baseline(s) in this setting."
               + (f" {len(redone)} older evaluation(s) were summarized again from their questions table."
                  if redone else ""))
    seen_unseen(table)
    ratio_curve(table, chosen)
    shuffles(table)
    categories(chosen)
    lm_knowledge(chosen, everything, key)
    lm_choice(rows + [r for r in everything if r["kind"] == "probe"], key)
    paper_figures.show(chosen, everything, key)
    st.subheader("Tables")
    st.caption("The headline columns are `*_category_f1` (per-category yes/no macro-F1) and `leaf_concept_f1` "
               "(per-concept yes/no macro-F1), beside `*_chance_f1`, a fair coin's. Yes-class F1 (`leaf_f1`, "
               "`hypernym_f1`, `seen_f1`, `unseen_f1`, and its per-category means `*_macro_f1`) is kept for "
               "comparison; it rewards answering yes and is never the headline.")
    per_run = results.per_run_table(chosen)
    st.dataframe(per_run, hide_index=True, width="stretch")
    c1, c2, _ = st.columns([1, 1, 2])            # side by side, at the left
    c1.download_button("Per-run metrics (CSV)", per_run.to_csv(index=False).encode(), "taxolens_runs.csv",
                       "text/csv", key="dl_runs")
    c2.download_button("Mean ± CI over seeds (CSV)", table.to_csv(index=False).encode(),
                       "taxolens_aggregated.csv", "text/csv", key="dl_aggregated")


with common.guard("The Results page"):
    main()
