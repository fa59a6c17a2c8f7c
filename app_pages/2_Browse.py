"""Browse page: the dataset as a thumbnail grid, with a chosen evaluation run's answers.

Filters: category, concept, split (the run's own image split), seen/unseen hypernym questions, and
whether the run answered everything about an image correctly. "Questions" on a thumbnail opens that
image's questions and answers.
"""
import pandas as pd
import streamlit as st

from ui import common

PER_PAGE = 24
COLUMNS = 6


@st.cache_data(show_spinner="Reading the run's answers…", max_entries=8)
def _answers(run_dir: str, split: str, stamp: float) -> pd.DataFrame:  # noqa: ARG001 - stamp keys the cache
    from core import runs
    return runs.read_answers(run_dir, split)


ALONE = "none: a dataset's images alone"


def choose_run():
    """(run, split, dataset name) of an evaluated run, or (None, None, name) to browse a dataset
    alone (an imported collection before any run has been trained on it, say)."""
    from core.data.datasets import DEFAULT_NAME, list_datasets

    evaluated = [r for r in common.runs_list() if r.evaluated]
    names = list_datasets() or [DEFAULT_NAME]
    if not evaluated:
        st.info("No evaluated run yet: showing the dataset alone. Runs are evaluated on the test "
                "split when their training job finishes.")
        run = ALONE
    else:
        c1, c2 = st.columns([3, 1])
        run = common.run_picker("Evaluation run", evaluated, key="browse_run", extra=(ALONE,), where=c1)
        if run != ALONE:
            split = c2.selectbox("Evaluated split", run.evaluated, key="browse_eval_split",
                                 index=run.evaluated.index("test") if "test" in run.evaluated else 0)
            return run, split, run.config.dataset
    name = st.selectbox("Dataset", names, key="browse_dataset", index=common.dataset_index(names)) \
        if len(names) > 1 else names[0]
    return None, None, name


def image_summary(answers: pd.DataFrame) -> pd.DataFrame:
    """Per image: questions asked, answered right, and unseen hypernym questions among them."""
    hyper = answers["kind"] == "hypernym"
    return answers.assign(unseen=hyper & ~answers["seen"]).groupby("image_id").agg(
        questions=("correct", "size"), right=("correct", "sum"), unseen=("unseen", "sum"))


def filters(ds, eval_split, split_map, summary) -> list:
    """The filter widgets; returns the matching dataset images (by default those of the evaluated
    split, the ones that have answers). Without a run (split_map None) there is no split to filter by,
    so no Split filter either."""
    c1, c2, c3 = st.columns(3)
    cats = c1.multiselect("Categories", sorted(ds.categories, key=lambda k: ds.categories[k].label),
                          format_func=lambda k: ds.categories[k].label, key="browse_categories")
    pool = sorted({c for k in cats for c in ds.concepts_in(k)} if cats else ds.concepts,
                  key=lambda c: ds.concepts[c].label)
    concepts = c2.multiselect("Concepts", pool, format_func=lambda c: ds.concepts[c].label,
                              key="browse_concepts")
    splits = c3.multiselect("Split", ["train", "val", "test"], key=f"browse_splits_{eval_split}",    # a keyed
                            default=[eval_split],      # multiselect keeps its value when only its default changes
                            help="the run's own split of the images (within each concept)") \
        if split_map is not None else []
    seen_choice = answered = "any"
    if summary is not None:
        c1, c2 = st.columns(2)
        seen_choice = c1.radio("Hypernym questions", ["any", "with unseen", "seen only"], horizontal=True,
                               key="browse_seen",
                               help="unseen = (concept, category) pairs removed from training by the condition")
        answered = c2.radio("Answers", ["any", "all correct", "some wrong"], horizontal=True,
                            key="browse_correct")
    wanted = set(concepts or pool)
    items = []
    for item in ds.images:
        if item.concept not in wanted:
            continue
        if split_map is not None and splits and split_map.get(item.id) not in splits:
            continue
        if summary is not None and (seen_choice != "any" or answered != "any"):
            if item.id not in summary.index:
                continue
            row = summary.loc[item.id]
            if seen_choice == "with unseen" and row["unseen"] == 0:
                continue
            if seen_choice == "seen only" and row["unseen"] > 0:
                continue
            if answered == "all correct" and row["right"] < row["questions"]:
                continue
            if answered == "some wrong" and row["right"] == row["questions"]:
                continue
        items.append(item)
    return items


@st.dialog("Questions and answers", width="large")
def show_questions(ds, item, answers: pd.DataFrame | None, split: str | None) -> None:
    c1, c2 = st.columns([1, 2])
    c1.image(str(item.path), width="stretch")
    concept = ds.concepts[item.concept]
    c2.markdown(f"**{concept.label}** ({item.style})  \nWordNet: `{concept.synset or '—'}`  \n"
                f"Categories: {', '.join(ds.categories[k].label for k in concept.categories) or '—'}  \n"
                f"Image id `{item.id}`")
    if answers is None:
        c2.caption("Pick an evaluation run to see its answers.")
        return
    mine = answers[answers["image_id"] == item.id]
    if mine.empty:
        c2.caption(f"This image is not in the evaluated {split} split.")
        return
    columns = [c for c in ("text", "kind", "answer", "pred", "p_yes", "seen", "correct") if c in mine]
    if "labelled_concept" in mine and (mine["labelled_concept"] != mine["concept"]).any():
        shown_as = ds.concepts[mine["labelled_concept"].iloc[0]].label
        c2.markdown(f"Labelled as **{shown_as}** under this run's condition (a label shuffle).")
    st.dataframe(mine[columns], hide_index=True, width="stretch", column_config={
        "p_yes": st.column_config.ProgressColumn("P(yes)", min_value=0.0, max_value=1.0, format="%.2f"),
        "answer": st.column_config.CheckboxColumn("true answer"),
        "pred": st.column_config.CheckboxColumn("model says yes"),
        "seen": st.column_config.CheckboxColumn("pair not withheld",
                                                help="the condition did not remove this (concept, category) pair "
                                                     "from training (hypernym questions; leaf questions are "
                                                     "always ticked); not whether this image was trained on"),
        "correct": st.column_config.CheckboxColumn("correct"),
    })


def grid(ds, items: list, summary, answers, split) -> None:
    pages = max(1, -(-len(items) // PER_PAGE))
    c1, c2 = st.columns([1, 4])
    page = c1.number_input("Page", 1, pages, 1, key="browse_page") if pages > 1 else 1
    c2.caption(f"{len(items)} image(s) · page {page} of {pages}")
    shown = items[(page - 1) * PER_PAGE: page * PER_PAGE]
    for start in range(0, len(shown), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, item in zip(cols, shown[start:start + COLUMNS]):
            with col:
                st.image(str(item.path), width="stretch")
                score = ""
                if summary is not None and item.id in summary.index:
                    row = summary.loc[item.id]
                    mark = ":green[:material/check_circle:]" if row["right"] == row["questions"] \
                        else ":red[:material/cancel:]"
                    score = f" · {mark} {int(row['right'])}/{int(row['questions'])}"
                st.caption(f"{ds.concepts[item.concept].label} · {item.style}{score}")
                if st.button("Questions", key=f"q_{item.id}", width="stretch"):
                    show_questions(ds, item, answers, split)


def main() -> None:
    from core import runs
    from core.data.datasets import DatasetError

    st.title(":material/photo_library: Browse")
    run, split, dataset = choose_run()
    try:
        ds = common.dataset(dataset)
    except DatasetError as exc:
        st.warning(str(exc))
        return
    answers = summary = split_map = None
    if run is not None:
        csv_path = runs.eval_dir(run.path, split) / runs.QUESTIONS_CSV
        try:        # metrics.json without its questions.csv (an older version's evaluation): say so
            answers = _answers(str(run.path), split, csv_path.stat().st_mtime if csv_path.is_file() else 0.0)
        except runs.RunError as exc:
            st.warning(f"{exc}. Showing the dataset's images alone.")
            run = None
    if run is not None:
        summary = image_summary(answers)
        split_map = common.image_split(run)
        if not split_map:         # trained on another version of its dataset: its split is not these images'
            split_map = None
            st.caption(f"This run was trained on another version of dataset {run.config.dataset} than the one "
                       "installed, so its split of the images cannot be rebuilt here: no Split filter.")
        from core import metrics, results
        recorded = results.load_eval(run.path, split) or {}
        head = metrics.headline(recorded)
        coin = lambda key: f"A fair coin on the same questions: {_fmt(head[key])}"
        a, b, c, d = st.columns(4)
        a.metric("Leaf accuracy", _fmt(head["leaf_accuracy"]),
                 help="Yes/no: each image asked about its own leaf and about one random other leaf. "
                      "Predict ranks every leaf, a harder task: see the every-leaf ranking.")
        b.metric("Leaf macro-F1 per concept", _fmt(head["leaf_concept_f1"]), help=coin("leaf_chance_f1"))
        for col, block, what in ((c, "seen", "Per-category yes/no macro-F1, averaged over categories. "),
                                 (d, "unseen", "Per-category yes/no macro-F1 on pairs removed from training. ")):
            value = head[f"{block}_category_f1"]          # "—" says why beneath it
            why = None if value is not None else _no_score(recorded, block, run, split)
            col.metric(f"{block.capitalize()} hypernym macro-F1", _fmt(value),
                       help=what + (why or coin(f"{block}_chance_f1")))
            if why:
                col.caption(why)
        ranking = runs.ranking_summary(run.path, split)      # eval/<split>/ranking.json: every leaf asked
        if ranking:
            n, vocabulary = ranking.get("images"), ranking.get("vocabulary")
            median = ranking.get("median_rank")
            a, b, c, d = st.columns(4)
            a.metric("Every-leaf top-1", _fmt(ranking["top1"]),
                     help=f"Share of the {n} ranked images whose own leaf is first among all {vocabulary}"
                          + (f" (chance {ranking['chance_top1']:.3f})" if ranking.get("chance_top1") else ""))
            b.metric("Every-leaf top-5", _fmt(ranking.get("top5")),
                     help=f"Share of the {n} ranked images whose own leaf is among the first five of {vocabulary}"
                          + (f" (chance {ranking['chance_top5']:.3f})" if ranking.get("chance_top5") else ""))
            c.metric("Median rank", "—" if median is None else f"{median} of {vocabulary}")
            d.metric(f"{split.capitalize()} images ranked", f"{n}" + (f" of {ranking['of_images']}"
                                                                     if ranking.get("of_images") else ""))
            st.caption(runs.LEAF_NUMBERS_MEAN.format(vocabulary=vocabulary) + f" Ranked: {n} {split} images.")
    items = filters(ds, split, split_map, summary)
    if not items and summary is not None and st.session_state.get("browse_seen") == "with unseen" \
            and int(summary["unseen"].sum()) == 0:
        st.info(f"No question of the {split} split is about a (concept, category) pair this run's condition "
                f"({run.config.condition}) removed from training.")
    grid(ds, items, summary, answers, split)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _no_score(recorded: dict, block: str, run, split: str) -> str:
    """Why a run has no seen / unseen hypernym macro-F1 ("—"), from the question counts its metrics
    record and what its condition's report says it removed: a condition can leave one side without
    a single question, and a small split can miss the pairs it did remove (or keep)."""
    hyper = recorded.get("hypernym") or {}
    if not recorded:
        return f"No readable metrics for this run's {split} evaluation."
    if not hyper.get("n"):
        return f"No hypernym question in this run's {split} split."
    if (hyper.get(block) or {}).get("n") != 0:
        return ("Not defined on this run's questions: every category's questions here hold one answer "
                "alone (all yes or all no), and a yes/no macro-F1 needs both.")
    condition = run.config.condition
    report = ((run.checkpoint or {}).get("condition") or {}).get("report") or {}
    removed = report.get("removed_pairs")
    if block == "seen":
        if report.get("removed_concept_share") == 1.0:
            return (f"No seen hypernym question in this run's {split} split: its condition ({condition}) removed "
                    f"every concept's hypernym questions.")
        return (f"No seen hypernym question in this run's {split} split: none of the (concept, category) pairs "
                f"its condition ({condition}) kept is asked about there.")
    if not removed:
        return (f"No unseen hypernym question in this run's {split} split: its condition ({condition}) removed "
                f"no (concept, category) pair from training.")
    return (f"No unseen hypernym question in this run's {split} split: its condition ({condition}) removed "
            f"{removed} (concept, category) pairs, none of them asked about there.")


with common.guard("The Browse page"):
    main()
