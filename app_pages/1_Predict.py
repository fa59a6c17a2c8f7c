"""Predict page: upload images (or pick dataset images) and see what a trained checkpoint thinks —
top leaf guesses, the hypernym chain from leaf to root with P(yes) per node, and category scores.
Below each image, beyond the training vocabulary: any yes/no question about it, an open-vocabulary
chain (WordNet walked down from a start node -- where the best guess's chain passes, or the root --
streamed as it is scored), and where its image tokens land
in the LM (nearest tokens, logit lens).

Each file is loaded through core.images.load_image on its own, so a broken file gets its own
message while the others are still predicted. Predictions run here (inference only, no training)
and are cached per (checkpoint, image content).
"""
import hashlib
import time

import streamlit as st

from core.images import EXTENSIONS, ImageError, content_notes_of, load_image, notes_of
from ui import common, figures, jobs

UPLOAD_TYPES = list(EXTENSIONS)             # every format core.images decodes
TOP_K = 5
READS_HELP = ("This checkpoint's projector sees the image through its image probe: a linear "
              "classifier on the encoder's pooled feature, giving each training concept a share of "
              "the image (with the projector input features+posterior, beside the feature itself). "
              "These are the largest shares, (part of) the LM's input; the leaf guesses above are its yes/no "
              "answers. Where the two lists differ, the LM reordered what it was given.")


_predictor = common.predictor      # (run_dir, stamp), cached; `make app` starts loading it on the first page


@st.cache_resource(show_spinner="Loading WordNet (once per server)…")
def _wordnet() -> bool:
    """Only the open walk reads WordNet itself: a prediction's chains are remembered from the dataset
    build (core.taxonomy.CHAINS_FILE), so Predict does not wait seconds for WordNet to load."""
    from core import taxonomy

    taxonomy.wn()
    return True


@st.cache_data(show_spinner=False, max_entries=512)
def _predict(run_dir: str, stamp: float, digest: str, _image, full: bool = False) -> tuple[dict, float]:  # noqa: ARG001
    predictor = _predictor(run_dir, stamp)          # loading is timed apart: it happens once
    start = time.perf_counter()
    prediction = predictor.predict(_image, top_k=TOP_K, full=full)
    return prediction.to_dict(), time.perf_counter() - start


def choose_checkpoint():
    """Selectbox of trained runs, opening on common.preselection's (the default-config checkpoint
    best on validation, else the first run's starter, else the newest pretrained-LM run, preferring
    condition none), with a note saying which it is when no default-config checkpoint exists."""
    trained = common.trained_runs()
    if not trained:
        return None
    preselected, why = common.preselection(trained)
    run = common.run_picker("Checkpoint", trained, key="predict_run")
    if run.path != preselected.path:             # the note is about the preselection only
        return run
    if why == "starter":
        st.caption("Preselected: the starter checkpoint of the first run (a small, quick one); the "
                   "full default config can be trained on the Train page.")
    elif why in common.PRESELECTED:
        st.caption(f"No default-config checkpoint yet, so {common.PRESELECTED[why]} is preselected.")
    return run


def _stamp(run) -> str:
    """Checkpoint version: a resumed run writes checkpoint.json again, which must reload it."""
    from core import runs
    return runs.checkpoint_stamp(run.path)


def show_prediction(run, name: str, image, digest: str, truth: str | None = None, slot: str = "",
                    concept: str | None = None) -> None:
    """One image's results. `slot` tells apart charts of the same image shown twice on a page."""
    full_key = f"full_{slot}_{digest}"
    with st.spinner(f"Predicting {name}…"):
        pred, seconds = _predict(str(run.path), _stamp(run), digest, image, st.session_state.get(full_key, False))
    best = pred["leaves"][0]
    with st.container(border=True):
        left, middle, right = st.columns([1, 2.4, 1.6])
        with left:
            st.image(image, caption=name, width="stretch")
            warned = content_notes_of(image)        # blank or tiny: the answers beside it mean little
            for note in notes_of(image):
                if note in warned:
                    st.warning(note[0].upper() + note[1:] + ".", icon=":material/visibility_off:")
                else:
                    st.caption(f":material/info: {note}")
            if truth:
                st.caption(f"Dataset label: **{truth}**")
            st.markdown(f"**Best guess:** {best['label']}  \nP(yes) {best['p_yes']:.2f}")
            close = [leaf for leaf in pred["leaves"][1:] if leaf["concept"] in pred.get("close_to_best", [])]
            if close:
                from core.predict import CLOSE_CALL      # loaded with the model by now
                st.caption(":material/balance: A close call: " + ", ".join(f"{c['label']} {c['p_yes']:.2f}" for c in close)
                           + f" {'is' if len(close) == 1 else 'are'} within {CLOSE_CALL:.2f} of it; the chain is drawn "
                           f"for the best guess only.")
            st.caption(f"Predicted in {seconds:.2f} s"
                       + ("." if pred.get("shortlist") or st.session_state.get(full_key) else
                          ", every leaf scored in full" + (
                              " (its vocabulary is no larger than the bf16 leaf shortlist)."
                              if _predictor(str(run.path), _stamp(run)).shortlist else
                              " (the bf16 leaf shortlist and its \"Score every leaf in fp32\" switch exist only "
                              "on CPUs with native bf16; docs/speed.md).")))
            if pred.get("shortlist") or st.session_state.get(full_key):
                st.toggle("Score every leaf in fp32", key=full_key,
                          help=f"By default a bf16 copy of the LM ranks every leaf and only its top "
                               f"{pred.get('shortlist') or 'few'} are scored in fp32 and shown: the same top "
                               f"leaves as scoring all of them in fp32 on every test image measured, in "
                               f"less time (docs/speed.md: the leaf shortlist)")
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
            if pred.get("reads"):
                st.markdown("**What the LM reads**", help=READS_HELP)
                st.dataframe([{"concept": c["label"], "share": c["share"]} for c in pred["reads"]],
                             hide_index=True, width="stretch", column_config={
                                 "share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0,
                                                                          format="%.2f")})
            cats = pred["categories"]          # highest first; the best leaf's own ones outlined
            top = [c for i, c in enumerate(cats) if i < TOP_CATEGORIES or c["of_best"]]
            extra = len(top) - min(TOP_CATEGORIES, len(cats))       # the best guess's own, below the top
            st.markdown("**Category scores**" + (f" (top {TOP_CATEGORIES} of {len(cats)}"
                                                 + (", and the best guess's own" if extra else "") + ")"
                                                 if len(top) < len(cats) else ""))
            st.plotly_chart(figures.category_bars(top), width="stretch",
                            key=f"cats_{slot}_{digest}", config={"displayModeBar": False})
            if len(top) < len(cats):
                with st.expander(f"All {len(cats)} categories"):
                    st.dataframe([{"category": c["label"], "P(yes)": c["p_yes"]} for c in cats], hide_index=True,
                                 width="stretch", height=min(600, 35 * len(cats) + 38), column_config={
                                     "P(yes)": st.column_config.ProgressColumn("P(yes)", min_value=0.0, max_value=1.0,
                                                                               format="%.2f")})
        above = {node["synset"] for chain in pred["chains"] for node in chain}
        beyond_vocabulary(run, image, digest, best["concept"], concept=concept, slot=slot, above=above)


def upload_tab(run) -> None:
    files = st.file_uploader("Images (PNG, JPEG, WebP, GIF, BMP or TIFF; several at once are fine)", type=UPLOAD_TYPES,
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
    ds = common.dataset(run.config.dataset)         # main() checked it is there
    trained_on = _predictor_vocabulary(run)
    c1, c2, c3 = st.columns([2, 2, 1.2], vertical_alignment="bottom")
    own = c3.toggle("Trained concepts only", value=True, key="gallery_own",
                    help="only the concepts this checkpoint was trained on (their images are marked train, val or "
                         "test: the checkpoint's own split); switch off to try the others too")
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
    # which of the checkpoint's splits each image is in: a training image says little about grounding
    split = common.image_split(run) if concept in trained_on else {}
    role = lambda it: f"{it.style} · {split[it.id]}" if it.id in split else it.style
    st.image([str(item.path) for item in items], caption=[role(item) for item in items], width=120)
    item = st.radio("Image to predict", items, format_func=role, horizontal=True,
                    key=f"gallery_pick_{concept}")
    try:
        image = load_image(item.path)
    except ImageError as exc:
        st.error(str(exc))
        return
    in_vocab = concept in trained_on
    truth = ds.concepts[concept].label + (f" (a {split[item.id]} image of this checkpoint)" if item.id in split else
                                          "" if in_vocab else " (not in this checkpoint's training concepts)")
    show_prediction(run, f"{ds.concepts[concept].label} ({item.style})", image, item.id, truth=truth,
                    slot="gallery", concept=concept)


# --- beyond the training vocabulary ------------------------------------------------------------

INSIGHT_TABS = ["Ask a question", "Open-vocabulary chain", "Where the image lands in the LM"]
TOP_CATEGORIES = 12      # category bars shown beside a prediction (plus the best leaf's own); the rest in a table

OPEN_STARTS = {"entity.n.01": "the root (entity)", "physical_entity.n.01": "physical entity",
               "organism.n.01": "organism", "artifact.n.01": "artifact", "food.n.01": "food or drink (nutrient)",
               "food.n.02": "food (solid)"}


@st.cache_data(show_spinner=False, max_entries=2048)
def _ask(run_dir: str, stamp: float, digest: str, question: str, _image) -> dict:  # noqa: ARG001
    return _predictor(run_dir, stamp).ask(_image, [question])[0].to_dict()


@st.cache_data(show_spinner="Looking at where the image tokens land in the LM…", max_entries=256)
def _lens(run_dir: str, stamp: float, digest: str, _image) -> dict:  # noqa: ARG001
    return _predictor(run_dir, stamp).lens(_image)


def beyond_vocabulary(run, image, digest: str, best: str, concept: str | None = None, slot: str = "",
                      above: set[str] = frozenset()) -> None:
    """Tabs under one prediction: ask anything, walk WordNet, the logit lens (only the open tab runs).
    `above`: the synsets of the best guess's hypernym chain."""
    ask, walk, lens = st.tabs(INSIGHT_TABS, key=f"insight_{slot}_{digest}", on_change="rerun")
    if ask.open:
        with ask, common.guard("Asking"):
            ask_panel(run, image, digest, slot)
    if walk.open:
        with walk, common.guard("The open-vocabulary chain"):
            open_panel(run, image, digest, slot, above)
    if lens.open:
        with lens, common.guard("The logit lens"):
            lens_panel(run, image, digest, best, concept, slot)


def ask_panel(run, image, digest: str, slot: str) -> None:
    from core.predict import MAX_QUESTION_CHARS, as_question

    history = st.session_state.setdefault(f"asked_{slot}_{digest}", [])
    with st.form(key=f"ask_form_{slot}_{digest}", clear_on_submit=True, border=False):
        c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
        text = c1.text_input("Any yes/no question about this image", key=f"ask_text_{slot}_{digest}",
                             placeholder="Is there a marsupial in the image?   (or just: marsupial)",
                             max_chars=MAX_QUESTION_CHARS)
        submitted = c2.form_submit_button("Ask", width="stretch")
    if submitted and text.strip():
        try:
            question = as_question(text)
        except ValueError as exc:
            st.warning(str(exc))
        else:
            if question in history:
                history.remove(question)
            history.insert(0, question)
    if not history:
        st.caption("Ask about anything, in or out of the training vocabulary: *Is there a marsupial in the "
                   "image?*, *Is there something to eat?*; a bare noun is asked the way training asks. Answers "
                   "are P(yes) against P(no) at the answer position; the candidate mass is how much of the "
                   "LM's next-token probability the four answer tokens hold (below 0.5 it is not really "
                   "answering yes or no).")
        return
    table = st.empty()
    answers = []
    for question in history:                      # streams: each answer appears as it is scored
        answers.append(_ask(str(run.path), _stamp(run), digest, question, image))
        table.dataframe(_answer_rows(answers), hide_index=True, width="stretch", column_config={
            "P(yes)": st.column_config.ProgressColumn("P(yes)", min_value=0.0, max_value=1.0, format="%.3f"),
            "candidate mass": st.column_config.NumberColumn(format="%.2f")})
    if any(a["undecided"] for a in answers):
        st.caption(":material/warning: Undecided: a candidate mass below 0.5 means the LM would rather "
                   "say something other than yes or no.")


def _answer_rows(answers: list[dict]) -> list[dict]:
    undecided = any(a["undecided"] for a in answers)
    # an undecided answer (the LM would rather say neither) is not a yes or a no, whatever P(yes) reads
    return [{"question": a["question"], "P(yes)": a["p_yes"],
             "answer": "undecided" if a["undecided"] else "yes" if a["p_yes"] > 0.5 else "no",
             "candidate mass": a["mass"], **({"note": "undecided" if a["undecided"] else ""} if undecided else {})}
            for a in answers]


def open_panel(run, image, digest: str, slot: str, above: set[str] = frozenset()) -> None:
    stamp = _stamp(run)
    c1, c2, c3, c4 = st.columns([1.6, 1.2, 1, 1])
    # start where the best guess's chain passes, the most specific of the starts (organism for a
    # kangaroo): from the root a checkpoint trained on the dataset's categories stops at once (README)
    starts = list(OPEN_STARTS)
    first = next((s for s in ("food.n.02", "food.n.01", "organism.n.01", "artifact.n.01", "physical_entity.n.01")
                  if s in above), "entity.n.01")
    start = c1.selectbox("Start at", starts, index=starts.index(first), format_func=OPEN_STARTS.get,
                         key=f"open_start_{slot}_{digest}",
                         help="preselected where the best guess's hypernym chain passes")
    threshold = c2.slider("Confident at P(yes) ≥", 0.5, 0.95, 0.5, 0.05, key=f"open_threshold_{slot}_{digest}")
    beam = int(c3.number_input("Beam", 1, 5, 2, key=f"open_beam_{slot}_{digest}",
                               help="confident nodes expanded per level"))
    budget = int(c4.number_input("Questions", 20, 2000, 300, step=20, key=f"open_budget_{slot}_{digest}",
                                 help="the walk stops after asking this many"))
    params = (str(run.path), stamp, start, threshold, beam, budget)
    done = st.session_state.setdefault(f"open_{slot}_{digest}", {})
    clicked = st.button(f"Walk WordNet from {OPEN_STARTS[start]}", key=f"open_go_{slot}_{digest}",
                        icon=":material/account_tree:")
    st.caption("Each step asks about every hyponym of the nodes the image is confident about (P(yes) at or "
               "above the threshold *and* above what a blank white image gets for the same question: an LM "
               "says yes to some words whatever it sees). The beam keeps the nodes the image lifts most. "
               "Results appear as they are scored.")
    if clicked:
        predictor = _predictor(str(run.path), stamp)
        _wordnet()
        area = st.empty()
        walk = None
        for step, walk in enumerate(predictor.open_chain_steps(image, threshold=threshold, beam=beam,
                                                               budget=budget, start=start)):
            with area.container():
                render_walk(walk.to_dict(), key=f"open_fig_{slot}_{digest}_{step}")
        done[params] = walk.to_dict()
        return
    if params in done:
        render_walk(done[params], key=f"open_fig_{slot}_{digest}_done")


def render_walk(walk: dict, key: str) -> None:
    nodes = walk["nodes"]
    asked = [n for n in nodes.values() if n["p_yes"] is not None]
    status = walk["stopped"] if walk["done"] else "walking…"
    st.progress(min(1.0, walk["questions"] / walk["budget"]),
                text=f"{walk['questions']} of at most {walk['budget']} questions asked · {status}")
    if walk["chains"]:
        deepest = walk["chains"][0]
        st.markdown("**Open-vocabulary chain:** " + " → ".join(f"{n['label']} ({n['p_yes']:.2f})" for n in deepest))
        st.plotly_chart(figures.chain_figure(walk["chains"]), width="stretch", key=key,
                        config={"displayModeBar": False})
    for note in walk.get("notes", []):
        st.info(note)
    confident = sorted((n for n in asked if n["confident"]), key=lambda n: (-n["depth"], -n["p_yes"]))
    if asked:
        with st.expander(f"{len(asked)} WordNet nodes asked about, {len(confident)} confident"):
            rows = sorted(asked, key=lambda n: (not n["confident"], n["depth"], -n["p_yes"]))
            st.dataframe([{"node": n["label"], "synset": n["synset"], "depth": n["depth"],
                           "parent": nodes[n["parent"]]["label"] if n["parent"] in nodes else "",
                           "P(yes)": n["p_yes"], "blank image": n["p_blank"], "confident": n["confident"],
                           "category": n["category"] or ""} for n in rows],
                         hide_index=True, width="stretch", column_config={
                             "P(yes)": st.column_config.ProgressColumn("P(yes)", min_value=0.0, max_value=1.0,
                                                                       format="%.3f"),
                             "blank image": st.column_config.NumberColumn(format="%.3f")})


def lens_panel(run, image, digest: str, best: str, concept: str | None, slot: str) -> None:
    from core.lens import WordTargets

    view = _lens(str(run.path), _stamp(run), digest, image)
    predictor = _predictor(str(run.path), _stamp(run))
    highlight: dict[int, str] = {}
    words_of = []
    for name, ds in ((best, predictor.dataset), (concept, _full_dataset(run))):
        if name and ds is not None and name in ds.concepts:
            names, hypers = WordTargets(predictor.vlm.lm, ds)(name)
            for i in hypers:
                highlight.setdefault(i, "hypernym")
            for i in names:
                highlight[i] = "name"
            words_of.append(ds.concepts[name].label)
    tokens = view["image_tokens"]
    ratio = sum(t["norm_ratio"] for t in tokens) / len(tokens)
    best_cos = max(t["nearest"][0]["score"] for t in tokens)
    far = (f" The closest word is at cosine {best_cos:.2f}: the image token sits far from every word, so it "
           f"speaks to the LM through directions no single token has.") if best_cos < 0.3 else ""
    shown_ids = {n["id"] for tok in tokens for n in tok["nearest"]} | {n["id"] for n in view["next"]} \
        | {n["id"] for n in view["baseline_next"]} | {n["id"] for n in view["lifted"]}
    hits = "" if shown_ids & set(highlight) else " None of the tokens below is one of them: every bar is grey."
    st.caption(f"Image tokens are {ratio:.1f}× as long as a typical text token (median input-embedding norm "
               f"{view['token_norm']:.2f}).{far} Green = the first token of "
               f"{' / '.join(dict.fromkeys(words_of)) or 'the concept'}'s name, blue = of a hypernym.{hits}")
    left, right = st.columns(2)
    with left:
        st.markdown("**Nearest tokens of the image token" + ("s" if len(tokens) > 1 else "") + "** (cosine, "
                    "input embeddings)")
        for t in tokens:
            st.plotly_chart(figures.token_bars(t["nearest"], value="score", x_title="cosine",
                                               title=f"image token {t['index'] + 1}" if len(tokens) > 1 else None,
                                               highlight=highlight),
                            width="stretch", key=f"lens_near_{slot}_{digest}_{t['index']}",
                            config={"displayModeBar": False})
    with right:
        st.markdown("**Logit lens:** the next token after the image")
        st.plotly_chart(figures.token_bars(view["next"], highlight=highlight), width="stretch",
                        key=f"lens_next_{slot}_{digest}", config={"displayModeBar": False})
        st.markdown("…after the start text alone (no image)")
        st.plotly_chart(figures.token_bars(view["baseline_next"], highlight=highlight), width="stretch",
                        key=f"lens_base_{slot}_{digest}", config={"displayModeBar": False})
        if view["lifted"]:
            st.markdown("**Made likelier by the image** (log ratio to the start text alone)")
            st.dataframe([{"token": t["shown"], "P after image": t["score"], "P without": t["baseline"],
                           "log ratio": t["log_ratio"], "marked": highlight.get(t["id"], "")} for t in view["lifted"]],
                         hide_index=True, width="stretch", column_config={
                             "P after image": st.column_config.NumberColumn(format="%.4f"),
                             "P without": st.column_config.NumberColumn(format="%.5f"),
                             "log ratio": st.column_config.NumberColumn(format="%.2f")})


def _full_dataset(run):
    from core.data.datasets import DatasetError
    try:
        return common.dataset(run.config.dataset)
    except DatasetError:
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def _learning_note_cached(run_dir: str, stamp: tuple) -> str | None:  # noqa: ARG001
    from core import runs
    return runs.answer_warning(run_dir)      # a damaged evaluation: a reason, not an error


def _learning_note(run) -> str | None:
    """Why this checkpoint's answers should not be trusted (None when its test evaluation shows it
    learned): shown beside every prediction."""
    return _learning_note_cached(str(run.path), common.test_stamp(run))


def test_scores(run) -> None:
    """Under the checkpoint picker: its yes/no leaf accuracy beside its every-leaf ranking (top-1,
    top-5 of N test images, from eval/test/ranking.json), with what each measures: the first is
    one own-vs-random-other question per image, the second the ranking this page shows. Nothing when
    the run was never evaluated (the learning note says so beside each answer)."""
    from core import runs
    head, ranking = common.test_numbers(run)
    leaf = head and head.get("leaf_accuracy")
    if leaf is None and ranking is None:
        return
    parts = [f"yes/no leaf accuracy **{leaf:.3f}**"] if leaf is not None else []
    if ranking:
        median, top5 = ranking.get("median_rank"), ranking.get("top5")
        parts.append(f"every leaf asked of {ranking.get('images')} test images: top-1 **{ranking['top1']:.3f}**"
                     + (f", top-5 **{top5:.3f}**" if top5 is not None else "")
                     + (f", median rank {median} of {ranking.get('vocabulary')}" if median is not None else ""))
        vocabulary = ranking.get("vocabulary") or "the"
    else:
        parts.append("every-leaf ranking not measured (`taxolens evaluate RUN --leaf-ranking N`)")
        vocabulary = "the"
    st.caption(":material/leaderboard: This checkpoint on its test images: " + "; ".join(parts) + ".  \n"
               + runs.LEAF_NUMBERS_MEAN.format(vocabulary=vocabulary))


def evaluation_offer(run) -> None:
    """A finished (or stopped) checkpoint without a test evaluation of itself as it is: the evaluate
    job, one click away (what `taxolens evaluate RUN` runs), with its progress while it runs. Not
    for a run still training: its next epoch would outdate the evaluation."""
    from core import runs
    if run.status not in ("finished", "cancelled") or runs.evaluation_is_current(run.path, "test"):
        return
    # a train job marks its run finished, then evaluates it (a sweep-run job, its runs, later)
    training = [j for j in common.store().list(status="running")
                if (j.kind == "train" and j.run_dir == str(run.path)) or j.kind == "sweep-run"]
    if training:
        st.caption(f"Its test evaluation comes from job #{training[0].id} ({training[0].kind}), still running.")
        return
    jobs.offer_job("evaluate", {"run": str(run.path), "split": "test"},
                   "Nothing shows yet whether this checkpoint has learned: it has no test evaluation of "
                   "itself as it is. Evaluating it scores its test images' questions (minutes at the "
                   "default size on a CPU), as `taxolens evaluate RUN` does.",
                   key=f"predict_evaluate_{run.run_id}", refresh=common.refresh_runs)


def _predictor_vocabulary(run) -> set[str]:
    return set(_predictor(str(run.path), _stamp(run)).concepts)


def main() -> None:
    st.title(":material/image_search: Predict")
    run = choose_checkpoint()
    if run is None:
        jobs.first_run_panel()
        return
    from core.data.datasets import DatasetError
    try:          # a checkpoint answers in its dataset's names: without the dataset, say so before an upload
        common.dataset(run.config.dataset)
    except DatasetError as exc:
        st.warning(str(exc))
        return
    test_scores(run)
    evaluation_offer(run)
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
