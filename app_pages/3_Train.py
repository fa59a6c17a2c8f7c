"""Train page: queue training runs (one job per seed) and the `paper` sweep, and follow every job live.

Nothing trains in the app's process: the forms validate their configs (core.rundata.check,
the same check the job queue runs) and submit jobs that the worker started by `make app` runs.
Invalid choices are explained next to the form before anything is queued.
"""
import dataclasses
import json
import re

import streamlit as st

from core import results, rundata, runs
from core.conditions import OFFERED as CONDITIONS
from core.config import parse_seeds
from core.config import (PAPER_SPLIT_PERCENT, PRECISIONS, PROJECTOR_INPUTS, SHIPPED_COMMAND, SHIPPED_RECIPE,
                         ConfigError, TrainConfig)
from ui import common, jobs

def condition_picker(ds) -> str:
    """The condition spec ("random:0.5", "systematic:mammal+fish", ...). Outside the form so that
    the amount widgets can follow the chosen kind."""
    kind = st.segmented_control("Deprivation condition", list(CONDITIONS), default="none", required=True,
                                key="train_condition", help="\n".join(f"**{k}**: {v}" for k, v in CONDITIONS.items()))
    st.caption(CONDITIONS[kind])
    if kind == "random":
        ratio = st.slider("Ablation ratio r", 0.0, 1.0, 0.5, 0.05, key="train_ratio")
        removal_note(ds, f"random:{ratio:g}", ratio)
        return f"random:{ratio:g}"
    if kind == "systematic":
        how = st.radio("Which categories", ["a number of them, chosen by seed", "these categories"],
                       horizontal=True, key="train_systematic_how")
        if how.startswith("a number"):
            n = st.number_input("Number of categories to drop", min_value=1, value=2, step=1,
                                key="train_systematic_n")
            return f"systematic:{int(n)}"
        names = st.multiselect("Categories to drop", sorted(ds.categories) if ds else [],
                               format_func=lambda k: ds.categories[k].label, key="train_systematic_names")
        return "systematic:" + "+".join(names)
    return kind


LABELS = {  # the form's words for TrainConfig fields: its widgets, and its refusals (form_wording)
    "encoder": "Image encoder",
    "lm": "Language model",
    "lm_init": "LM weights",
    "projector": "Projector",
    "image_tokens": "Image tokens",
    "epochs": "Epochs",
    "lr": "Learning rate",
    "batch_size": "Batch size",
    "prompt": "Prompt",
    "hard_negatives": "Hard negatives",
    "fresh_negatives": "Fresh negatives each epoch",
    "projector_hidden": "Projector hidden width (0 = the LM's)",
    "projector_tokens": "LM tokens per image token",
    "projector_init": "Projector start",
    "projector_input": "Projector input",
    "projector_topk": "Top-k concept tokens",
    "rank_negatives": "Ranking negatives",
    "rank_siblings": "Ranking: share of siblings",
    "name_loss": "Naming loss weight",
    "rank_mined": "Mined ranking negatives",
    "mine_pool": "Mining pool",
    "rank_soft": "Ranking: posterior share",
    "dropout": "Input dropout",
    "grid_crop": "Grid crop (0 = whole image)",
    "concept_mixup": "Concept mixup",
    "augment_views": "Augmented views",
    "line_art_views": "Line-art views",
    "precision": "LM precision in training",
    "max_concepts": "Max concepts (0 = all)",
    "images_per_concept": "Images per concept (0 = all)",
    "split_percent": "Split % (train/val/test)",
    "device": "Device",
    "init_from": "Start from run",
}


def form_wording(message: str) -> str:
    """A ConfigError in the form's words: each snake_case field name (and lr) it quotes becomes
    the label of the widget that sets it (the check speaks TrainConfig, the page speaks labels)."""
    names = "|".join(sorted((f for f in LABELS if "_" in f or f == "lr"), key=len, reverse=True))
    return re.sub(rf"\b({names})\b", lambda m: f"“{LABELS[m.group(1)]}”", message)


def removal_note(ds, spec: str, ratio: float) -> None:
    """What random:r removes on the page's dataset, before anything is queued: the paper's sampling
    takes at least one member of every category, so on a small collection it removes far more than
    r (reported: r = 0.5 left no seen hypernym question on a 10-concept subset)."""
    if ds is None or ratio <= 0:
        return
    from core.conditions import removal_summary
    try:
        gone = removal_summary(ds, spec)
    except ConfigError:
        return                                  # the form's check says why when it is queued
    share = gone["concepts"] / gone["of"]
    more = share > ratio + 0.1
    st.caption(f"On **{ds.name}** (all {gone['of']} concepts, seed 0): {gone['concepts']} concepts ({share:.0%}) "
               "lose all their hypernym questions"
               + (f", more than r = {ratio:g}: each category gives up max(1, int(n·r)) of its n members, so a "
                  "category of one loses its member at any r > 0, and a concept in several categories can be "
                  "drawn by each" if more else "")
               + ". A subset (Max concepts) has smaller categories and loses more; the run's report "
                 "gives its own count.")
    if gone["concepts"] == gone["of"] and ratio < 1:
        st.warning(f"At r = {ratio:g} every concept of {ds.name} loses its hypernym questions: no seen "
                   "hypernym question is left to compare the unseen ones with.", icon=":material/warning:")


FRESH = "none (a fresh projector)"


def trained_runs(listed: list) -> list[str]:
    """Of `listed` (runs.list_runs(), newest first), the runs with a checkpoint: what a second training
    stage can start from."""
    return [r.run_id for r in listed if r.checkpoint]


# Where the form's fields start; what the form does not show (patience, max_steps, ...) comes from
# the same config, so a run queued from either shipped start is the recipe `--leaf-stage` trains.
STARTS = {"the default config": "default", "the shipped recipe, first stage": "first",
          "the shipped recipe, leaf stage": "leaf"}


def form_defaults(start: str) -> TrainConfig:
    """The config the form starts at: the default config (the study's), or the shipped recipe's first
    stage or its leaf stage, split as `taxolens train --leaf-stage` splits them (rank_soft goes to the
    leaf stage); the leaf stage's run to start from is picked in the form."""
    if start == "default":
        return TrainConfig()
    first, leaf_only = TrainConfig(**SHIPPED_RECIPE).split_leaf_only()
    if start == "first":
        return first
    return dataclasses.replace(first.leaf_stage("-", **leaf_only), init_from=None)   # the run: picked below


def shipped_first_stages(listed: list) -> list:
    """Of `listed` (newest first), the finished first stages of the shipped recipe: what its leaf stage
    starts from. follows_recipe alone would also take a leaf stage trained without rank_soft."""
    first = form_defaults("first")
    return [r for r in listed if r.finished and not r.config.init_from and runs.follows_recipe(r.config, [first])]


def train_form(ds) -> None:
    start = STARTS[st.radio(
        "Start the form at", list(STARTS), horizontal=True, key="train_start",
        help="the default config is the study's (the paper's feature input); the shipped recipe is how "
             "Predict's shipped checkpoint was trained: its first stage, then its leaf stage started "
             "from that run (Start from run)")]
    defaults = form_defaults(start)
    listed = runs.list_runs()                          # one scan of the runs folder per rerun
    firsts = shipped_first_stages(listed) if start == "leaf" else []
    # the leaf stage must share its first stage's seed: start at the preselected one's
    first_seed = firsts[0].config.seed if firsts else defaults.seed
    if start == "leaf" and not firsts:
        st.info("No finished first stage of the shipped recipe here yet: queue one from “the shipped recipe, "
                "first stage”, then start this stage from it (Start from run).", icon=":material/info:")
    encoders = common.model_ids("image encoder") or [defaults.encoder]
    lms = common.model_ids("language model") or [defaults.lm]
    condition = condition_picker(ds)
    st.caption("The form starts at the default config, the study's recipe, or at the shipped recipe (above); "
               "a second stage is a run with Start from run set. Predict's shipped checkpoint is two stages, "
               "the probe-posterior input with two augmented views and two line-art views, then a leaf stage "
               "with its own learning rate, epochs and ranking options (core.config.LEAF_STAGE), trained, "
               f"evaluated and installed by one command: `{SHIPPED_COMMAND}` (README, \"The shipped default "
               "checkpoint\").")
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        encoder = c1.selectbox(LABELS["encoder"], encoders, index=_index(encoders, defaults.encoder))
        lm = c2.selectbox(LABELS["lm"], lms, index=_index(lms, defaults.lm))
        lm_init = c3.selectbox(LABELS["lm_init"], ["pretrained", "random"],
                               help="random = the random-init control: same architecture, no knowledge")
        c1, c2, c3 = st.columns(3)
        projector = c1.selectbox(LABELS["projector"], ["gelu-mlp", "gelu-mlp-norm", "linear"],
                                 index=["gelu-mlp", "gelu-mlp-norm", "linear"].index(defaults.projector),
                                 help="gelu-mlp-norm keeps every image token at the norm of the LM's words")
        image_tokens = c2.number_input(LABELS["image_tokens"], 1, 256, defaults.image_tokens)
        seeds_text = c3.text_input("Seeds", str(first_seed), help="one job per seed: 0, 1, 2 or 0-4")
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input(LABELS["epochs"], 1, 1000, defaults.epochs)
        lr = c2.number_input(LABELS["lr"], min_value=0.0, max_value=1.0, value=defaults.lr,
                             format="%.5f", step=1e-4)
        batch_size = c3.number_input(LABELS["batch_size"], 1, 4096, defaults.batch_size)
        c1, c2, c3 = st.columns(3)
        prompt = c1.selectbox(LABELS["prompt"], ["plain", "chat"], index=["plain", "chat"].index(defaults.prompt),
                              help="plain: 'Image: … Question: … Answer:'; chat: the LM's chat template")
        hard_negatives = c2.number_input(
            LABELS["hard_negatives"], 0, 100, defaults.hard_negatives,
            help="extra 'no' leaf questions per training image about concepts of its own category "
                 "(0 = one random negative only, as in the paper); validation and test questions "
                 "are the same either way")
        fresh_negatives = c3.checkbox(
            LABELS["fresh_negatives"], defaults.fresh_negatives,
            help="ask a new random draw of 'no' leaf questions every epoch (the same number of "
                 "questions), so the projector cannot memorise one wrong concept per image")
        with st.expander("Projector size, augmentation, ranking loss, subset, device"):
            c1, c2, c3 = st.columns(3)
            projector_hidden = c1.number_input(
                LABELS["projector_hidden"], 0, 65536, defaults.projector_hidden or 0, step=64,
                help="inner width of the gelu-mlp projector (a linear one has none); 0 = the LM's hidden size")
            projector_tokens = c2.number_input(
                LABELS["projector_tokens"], 1, 64, defaults.projector_tokens,
                help="the projector makes this many LM tokens from each pooled image token, so the LM "
                     "sees image tokens x this many (1 = one token each, as in the paper)")
            projector_init = c3.selectbox(
                LABELS["projector_init"], ["random", "probe"],
                help="probe: the first layer starts as a concept classifier fitted to the training images "
                     "(leaf labels only); random: the default initialisation, as in the paper")
            c1, c2 = st.columns([3, 1])
            projector_input = c1.selectbox(
                LABELS["projector_input"], list(PROJECTOR_INPUTS), index=list(PROJECTOR_INPUTS).index(defaults.projector_input),
                help="features: the encoder's pooled feature, as in the paper; posterior: a linear concept "
                     "probe's posterior of it (fitted on the training images' leaf labels, stored with the "
                     "projector; training sees out-of-fold posteriors; augmented views join the probe's fit); "
                     "features+posterior: the two side by side. "
                     "Needs 1 image token, no grid crop and a random projector start. The shipped checkpoint: "
                     "posterior with 2 augmented views and 2 line-art views, then the leaf stage")
            projector_topk = c2.number_input(
                LABELS["projector_topk"], 0, 64, defaults.projector_topk,
                help="with a posterior Projector input: one more LM token for each of the posterior's k most "
                     "likely concepts, in rank order (a trained row per concept, started at its name's word "
                     "embedding, plus its share); 0 = none")
            c1, c2, c3 = st.columns(3)
            rank_negatives = c1.number_input(
                LABELS["rank_negatives"], 0, 100, defaults.rank_negatives,
                help="per training image in a batch, a listwise loss that ranks its own leaf question "
                     "above N random ones (added to the yes/no loss; 0 = off, as in the paper)")
            rank_siblings = c2.number_input(
                LABELS["rank_siblings"], 0.0, 1.0, defaults.rank_siblings, step=0.25,
                help="share of the ranking negatives drawn from concepts that share a category with the "
                     "image's, as far as the run's own kept hypernym questions tell (0 = all random)")
            name_loss = c3.number_input(
                LABELS["name_loss"], 0.0, 10.0, defaults.name_loss, step=0.25,
                help="weight of a loss that trains the LM to continue 'Is there' with the name of each "
                     "training image's concept (added to the yes/no loss; 0 = off, as in the paper)")
            c1, c2, c3 = st.columns(3)
            rank_mined = c1.number_input(
                LABELS["rank_mined"], 0, 100, defaults.rank_mined,
                help="per training image in a batch, add to its ranking the N leaves the projector, as it "
                     "is at that step, most says yes to among a random pool (scored without gradient; "
                     "about 2.4x the step time with 4 of 24; 0 = off)")
            mine_pool = c2.number_input(
                LABELS["mine_pool"], 1, 1000, defaults.mine_pool,
                help="random other leaves scored per image and step to mine the negatives from")
            rank_soft = c3.number_input(
                LABELS["rank_soft"], 0.0, 1.0, defaults.rank_soft, step=0.25,
                help="share of each ranking target spread over the ranked leaves by the image's probe "
                     "posterior, the rest on its own leaf (needs a posterior Projector input; 0 = all on "
                     "its own leaf)")
            c1, c2, c3, c4, c5 = st.columns(5)
            dropout = c1.number_input(LABELS["dropout"], 0.0, 0.9, defaults.dropout, step=0.1,
                                      help="dropout on the projector's input features while training")
            grid_crop = c2.number_input(LABELS["grid_crop"], 0, 64, defaults.grid_crop,
                                        help="train on a random N x N window of each image's encoder "
                                             "grid (9 x 9 for EfficientNet-Lite2): a crop without re-encoding")
            concept_mixup = c3.number_input(
                LABELS["concept_mixup"], 0.0, 1.0, defaults.concept_mixup, step=0.25,
                help="share of a batch's training images whose encoder features are mixed with those of "
                     "another training image of the same concept, in a random proportion (0 = none)")
            augment_views = c4.number_input(
                LABELS["augment_views"], 0, 16, defaults.augment_views,
                help="augmented renderings of each training image (crop, rotation, flip, colour), encoded "
                     "once and cached; each epoch shows an image as itself or one of them (0 = none)")
            line_art_views = c5.number_input(
                LABELS["line_art_views"], 0, 2, defaults.line_art_views,
                help="line drawings of each training image, shown as augmented views are: 1, its colour "
                     "regions' borders as thick black strokes on white; 2, also those strokes over its "
                     "colours (0 = none)")
            c1, c2, c3, c4, c5 = st.columns(5)
            precision = c1.selectbox(LABELS["precision"], list(PRECISIONS),
                                     index=list(PRECISIONS).index(defaults.precision),
                                     help="auto: bf16 on a GPU and on CPUs with AMX / AVX512-BF16 "
                                          "(about 2x faster), fp32 elsewhere; evaluation is fp32 either way")
            max_concepts = c2.number_input(LABELS["max_concepts"], 0, 10**6, 0,
                                           help="a seeded subset for quick runs; keeps every category when it can")
            images_per_concept = c3.number_input(LABELS["images_per_concept"], 0, 10**6, 0)
            split_percent = c4.text_input(
                LABELS["split_percent"], defaults.split_percent,
                help="how each concept's images are split; the default suits the bundled set's 5-11 images "
                     f"per concept, the paper's {PAPER_SPLIT_PERCENT} suits collections of ~14 or more")
            device = c5.selectbox(LABELS["device"], ["auto", "cpu", "cuda"])
            starts = [FRESH] + trained_runs(listed)
            init_from = st.selectbox(
                LABELS["init_from"], starts, index=starts.index(firsts[0].run_id) if firsts else 0,
                help="a second training stage: start the projector from this run's best checkpoint "
                     "(same models, data, condition and seed) instead of a fresh one, e.g. to add "
                     "ranking negatives once categories are grounded")
        submitted = st.form_submit_button("Queue training", type="primary")
    if not submitted:
        return
    try:
        if start == "leaf" and init_from == FRESH:
            raise ConfigError("the shipped recipe's leaf stage starts from its first stage: pick that run "
                              "under “Start from run” (queue the first stage first if there is none)")
        seeds = parse_seeds(seeds_text)
        chosen = dict(encoder=encoder, lm=lm, lm_init=lm_init, projector=projector, image_tokens=int(image_tokens),
                      prompt=prompt, projector_hidden=int(projector_hidden) or None,
                      projector_tokens=int(projector_tokens), projector_init=projector_init,
                      projector_input=projector_input, projector_topk=int(projector_topk),
                      hard_negatives=int(hard_negatives), fresh_negatives=bool(fresh_negatives),
                      rank_negatives=int(rank_negatives), rank_siblings=float(rank_siblings),
                      rank_mined=int(rank_mined), rank_soft=float(rank_soft), mine_pool=int(mine_pool),
                      name_loss=float(name_loss), dropout=float(dropout), concept_mixup=float(concept_mixup),
                      augment_views=int(augment_views), line_art_views=int(line_art_views), grid_crop=int(grid_crop),
                      precision=precision, condition=condition, epochs=int(epochs), lr=float(lr),
                      batch_size=int(batch_size), max_concepts=int(max_concepts) or None,
                      images_per_concept=int(images_per_concept) or None, split_percent=split_percent, device=device,
                      dataset=ds.name if ds else defaults.dataset,
                      init_from=None if init_from == FRESH else init_from)
        configs = [dataclasses.replace(defaults, seed=seed, **chosen) for seed in seeds]
        rundata.check(configs[0])               # ids, dataset, condition: the same for every seed
        for cfg in configs[1:]:
            rundata.check(cfg) if cfg.init_from else cfg.validate()   # the first stage's seed must match
        missing = [r for r in common.model_rows() if r["model"] in (encoder, lm) and not r["weights present"]]
        if missing:
            raise ConfigError(f"the weights of {missing[0]['model']} are not on this machine "
                              f"({missing[0]['note']})")
        from core import jobs as jobs_api     # the job's own checks too (device, chat template, data): all seeds or none
        ids = jobs_api.submit_all("train", [{"config": cfg.to_dict()} for cfg in configs], store=common.store())
    except ConfigError as exc:
        st.error(f"Not queued: {form_wording(str(exc))}", icon=":material/block:")
        return
    st.success(f"Queued {len(ids)} training job(s): " + ", ".join(f"#{i}" for i in ids)
               + f" ({configs[0].dataset}, {condition}, seeds {', '.join(map(str, seeds))}).", icon=":material/schedule:")


PRESET_TEXT = {
    "paper": "The **paper** preset: the paper's random ablation at r ∈ {0, .25, .5, .75, 1}, "
             "systematic ablation of a quarter and half of the categories (10 and 20 of the default set's 40), "
             "cross and within shuffles alone and with r = .5, "
             "each × 3 seeds; the random-init LM at every r; the majority and image-probe baselines (the "
             "image side alone: a linear probe on the encoder's features); and the LM "
             "probe (what the LM alone knows about the dataset's categories).",
    "lms": "The **lms** preset: which LM and prompt format to use. Each bundled LM with each prompt "
           "format it has (the plain format; the chat template where the LM has one), trained with all "
           "hypernym evidence (r = 0: leaf accuracy, seen macro-F1) and with none (r = 1: unseen "
           "macro-F1), × 3 seeds; and each LM's probe. Its SmolLM2-plain runs are the paper preset's: "
           "once finished in one sweep run as one job, the other reuses them.",
}


@st.cache_data(show_spinner=False, ttl=10)
def _estimate(source_json: str, data_dir: str) -> dict:  # noqa: ARG001 - keys the cache
    """sweeps.time_estimate for a preset sweep (it reads every run's records: not on every rerun)."""
    from core.jobs import sweeps
    return sweeps.time_estimate(sweeps.resolve(json.loads(source_json)), common.runs_list(),
                                common.store().list(kind="train", status="succeeded"))


@st.cache_data(show_spinner=False, ttl=600)
def _same_data(source_json: str, data_dir: str) -> dict[tuple, list[int]]:  # noqa: ARG001 - keys the cache
    """sweeps.same_data_seeds of a preset sweep (it applies every condition to every seed's data)."""
    from core.jobs import sweeps
    return sweeps.same_data_seeds(sweeps.expand(sweeps.resolve(json.loads(source_json))))


def sweep_source(preset: str, scale: str, dataset: str | None) -> dict:
    """The sweep the form queues: the preset at the scale, on the page's dataset (the default one
    keeps the preset's own name, so its runs and manifest stay those of the CLI's `paper`)."""
    source: dict = {"preset": preset, "scale": scale}
    if dataset and dataset != TrainConfig.dataset:
        source["base"] = {"dataset": dataset}
    return source


def sweep_form(ds) -> None:
    from core.jobs import sweeps

    name = st.selectbox("Preset", list(sweeps.PRESETS), key="sweep_preset")
    st.markdown(PRESET_TEXT[name])
    # no st.form: the job count and the time estimate follow the scale as it is chosen
    scale = st.selectbox("Scale", list(sweeps.SCALES), index=list(sweeps.SCALES).index(sweeps.DEFAULT_SCALE),
                         format_func=sweeps.describe_scale, key="sweep_scale",
                         help="smoke = seconds per job, a pipeline check; cpu = sized for this "
                              "machine overnight; full = the whole dataset (GPU)")
    one_job = st.checkbox("As one job: runs that share the LM train together", False, key="sweep_one_job",
                          help="one job trains every run of the sweep, each update one LM pass over all "
                               "their batches (one copy of the models; far faster on a GPU); each run is "
                               "still recorded, validated and resumable on its own")
    if ds is None:
        return          # main() said why the dataset cannot be read
    source = sweep_source(name, scale, ds.name)
    grid = sweeps.resolve(source)
    expanded = sweeps.expand(grid)
    n_jobs = len(expanded)
    removed = sorted({j["spec"]["config"]["condition"] for j in expanded if j["kind"] == "train"
                      and j["spec"]["config"]["condition"].startswith("systematic:")},
                     key=results.condition_order)
    took = _estimate(json.dumps(source, sort_keys=True), common.data_key())
    same = _same_data(json.dumps(source, sort_keys=True), common.data_key())
    if same:
        listed, ratios = common.same_pairs(same)
        st.warning("On this scale's data some conditions remove the same pairs and label alike at the seeds "
                   "named, so there their runs are one run trained under several names: " + listed
                   + (". Each category gives up max(1, int(n·r)) of its n members, and at this scale most "
                      "categories have one or two; a larger scale tells them apart." if ratios else "."),
                   icon=":material/warning:")
    todo = f"{took['to_train']} of its {took['train_runs']} training runs still to train"
    if not took["to_train"]:
        when = "every one is finished here and is reused"
    elif took["minutes"] is None:
        when = "no run of this size and these models has finished here yet to time them by"
    else:
        hours = took["to_train"] * took["minutes"] / 60
        each = f"{took['minutes']:.1f} min" if took["minutes"] >= 1 else f"{took['minutes'] * 60:.0f} s"
        total = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
        what = ("whole jobs: loading, training, validation and test evaluation" if took["whole_jobs"]
                else "training and validation; loading the models and the test evaluation add more")
        when = (f"runs of this size and these models took {each} each here (median of "
                f"{took['of']} finished; {what}), so about {total} one run at a time"
                + (" (as one job, runs that share the LM train together: less)" if one_job else ""))
    st.caption(f"{n_jobs} jobs in the {name} preset at scale {scale} on dataset **{ds.name}** (sweep "
               f"`{sweeps.sweep_name(grid)}`"
               + (f"; whole categories removed: {', '.join(removed)}" if removed else "")
               + f"); {todo}: {when}. Runs already finished are reused, not trained again.")
    submitted = st.button("Queue the sweep", key="sweep_queue")
    if submitted:
        from core import jobs as jobs_api
        try:
            if one_job:
                job_id = jobs_api.submit("sweep-run", {"source": source, "together": None}, store=common.store())
            else:
                job_id = jobs_api.submit("sweep", source, store=common.store())
        except ConfigError as exc:
            st.error(f"Not queued: {exc}", icon=":material/block:")
            return
        if one_job:
            st.success(f"Queued sweep job #{job_id}: its {n_jobs} runs and jobs in one job.")
        else:
            st.success(f"Queued sweep job #{job_id}; it adds its {n_jobs} jobs to the queue when it runs.")


def _index(options: list, value) -> int:
    return options.index(value) if value in options else 0


def main() -> None:
    from core.data.datasets import DatasetError, list_datasets

    st.title(":material/model_training: Train")
    names = list_datasets()
    if len(names) > 1:
        name = st.selectbox("Dataset", names, key="train_dataset",
                            index=common.dataset_index(names))
    else:      # the one dataset here, imported or built (none: the default's name, whose absence is said)
        name = names[0] if names else TrainConfig.dataset
    try:
        ds = common.dataset(name)
    except DatasetError as exc:
        st.warning(str(exc))
        ds = None
    single, sweep = st.tabs(["Training run", "Sweep"])
    with single:
        train_form(ds)
    with sweep:
        sweep_form(ds)
    st.subheader("Jobs")
    jobs.job_table()


with common.guard("The Train page"):
    main()
