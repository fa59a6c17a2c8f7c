"""Training the projector on yes/no questions, with checkpoints that resume where they stopped.

    train(cfg) -> run_dir
    train_many([cfg, ...]) -> [run_dir, ...]      (runs sharing the frozen LM step together)

One run: load the dataset (optionally a seeded subset), split its images within each concept,
apply the deprivation condition, and train the projector (the only trainable part; encoder and LM
stay frozen) on the answer token of the TRAIN questions that the condition keeps, with the paper's
recipe (TrainConfig: AdamW, 3 % warmup then cosine decay over the planned updates, gradient
clipping). Image features come from the on-disk FeatureCache, so the encoder runs once per image
ever. After each epoch the VAL questions are scored (leaf and hypernym accuracy go to the log and
the progress line, so a run that is not learning shows it while it runs), projector + optimizer +
RNG state are written (safetensors and JSON only, never pickles), and the best epoch so far (by
accuracy on the VAL questions the condition keeps) is kept apart; training stops early after
`patience` epochs without improvement. `train(cfg, run_dir=same)` resumes from the last save,
also from the middle of an epoch when the run was cancelled there.

TrainConfig.precision may hold the frozen LM in bf16 while training (auto: on CUDA and on CPUs with
AMX / AVX512-BF16); the checkpoint records which ("precision"), and evaluation scores in fp32.
TrainConfig.dropout, grid_crop, concept_mixup and augment_views regularise the projector (input
dropout; a random window of the cached encoder grid per image and step; an image's features mixed
with those of another training image of its concept, lam * own + (1 - lam) * other with lam ~ U(0, 1),
drawn from (seed, epoch, step) so a resumed run draws the same: a picture "between" two renderings of
the concept; V augmented renderings per image from core.augment, each epoch showing an image as itself
or one of them in turn).
fresh_negatives asks a new draw of the random "no" leaf questions every epoch; rank_negatives adds a listwise term per image in a batch (its own leaf
question ranked against N random ones, drawn from (seed, image, epoch, step) so a resumed run
draws the same; rank_siblings draws that share of them from the concept's known category-mates;
rank_mined adds the leaves the current projector most says yes to among mine_pool random others;
rank_soft spreads that share of each group's target by the image's probe posterior over the group);
name_loss adds, per image, the LM's loss of naming its (shown) concept after "Is there" (vlm.py).
projector_input = "posterior" fits the projector's concept probe on every TRAIN image before the
first update and trains on each image's out-of-fold posterior instead of its feature
(posterior_inputs; "features+posterior": on the feature with that posterior after it);
validation, like evaluation and Predict, reads features through the probe. With
augment_views the probe is fitted on every view too, and the epochs show the views' out-of-fold
posteriors in turn with the image's own.

train_many trains several runs in one process: those with the same step_key (one encoder and LM,
one prefix length) make each update one LM pass over all their batches (VLM.joint_loss), which fills a GPU
that one run's batch of 16 short questions leaves idle (`taxolens sweep run`, core.jobs.sweep_run).
A run keeps its own data, optimizer, schedule, validation, early stopping and checkpoint, so it is
recorded and resumable on its own, and trains as it would alone -- exactly so without dropout and
grid crops, whose random draws come from the process's one generator and so depend on the other
runs of the group. train(cfg) is train_many([cfg]). Losses are summed on the device and read at
the end of an epoch and every 20th step (for the progress line), not at every step; the pooled
features (small) stay on the device, a whole grid (grid_crop) stays on the host and is copied per
step. Not yet measured on a GPU: the per-step host-to-device copies of question ids and indices, and
rank_mined's pool scoring, which runs its own LM pass per run and reads its answers on the host.

The data comes from core.rundata.prepare and the model from core.models.checkpoint, which
evaluation and prediction use too, so all three see exactly the same data and model.
"""
from __future__ import annotations

import math
import sys
import random
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from core import augment, features, metrics, questions, rundata, runs, scoring
from core.models import checkpoint, registry
from core.models.encoders import crop_grid, pool_tokens
from core.models.vlm import spread_targets
from core.base import RESUME_LATER, ConfigError, Progress
from core.config import TrainConfig


class Cancelled(Exception):
    """should_stop() said stop; the state up to the last step is saved and the run can resume."""

    def __init__(self, run_dir: Path, epoch: int, step: int):
        super().__init__(f"training cancelled at epoch {epoch + 1}, step {step}; "
                         f"resume with train(cfg, run_dir={str(run_dir)!r})")
        self.run_dir, self.epoch, self.step = run_dir, epoch, step


# ---------------------------------------------------------------- checkpoint state

DEVICE_OPTIONS = ("fused", "foreach", "capturable")    # AdamW options chosen by device, not by run


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    # How the update runs (fused kernels, foreach) follows the device it runs on now, not the one
    # the checkpoint was saved on: a run started on a GPU (fused) resumes on the CPU as a CPU run.
    here = [{k: g[k] for k in DEVICE_OPTIONS if k in g} for g in opt.param_groups]
    if len(groups) != len(here):
        raise ValueError(f"the checkpoint's optimizer has {len(groups)} parameter groups, this one {len(here)}")
    groups = [{**{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}, **now}
              for g, now in zip(groups, here)]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------- training

def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate of update `step` (0-based) of `total`: linear warmup over the first
    `cfg.warmup` share, then cosine decay to 0 (the paper's schedule)."""
    warm = max(1, round(cfg.warmup * total)) if cfg.warmup > 0 else 0
    if step < warm:
        return cfg.lr * (step + 1) / warm
    span = max(1, total - warm)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))


def epoch_batches(questions: list, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Question indices of each update of one epoch. Images come in an order drawn from (seed,
    epoch) and each image's questions stay together, so a batch holds few distinct images and
    their prompt prefixes run once (VLM.loss shares them). Cut into exact batch_size chunks, so
    the number of updates per epoch is ceil(n / batch_size) and an interrupted epoch replays."""
    by_image: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_image.setdefault(q.image_id, []).append(i)
    images = sorted(by_image)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    flat = [i for j in order.tolist() for i in by_image[images[j]]]
    return [flat[k:k + batch_size] for k in range(0, len(flat), batch_size)]


def selection_score(val: dict) -> float | None:
    """What early stopping maximises: accuracy on the VAL questions the condition keeps (leaf
    questions and seen hypernym pairs), never on unseen pairs, which are what the study tests."""
    leaf, seen = val["leaf"], val["hypernym"]["seen"]
    n = (leaf["n"] or 0) + (seen["n"] or 0)
    if not n:
        return None
    return ((leaf["accuracy"] or 0) * leaf["n"] + (seen["accuracy"] or 0) * seen["n"]) / n


def train(cfg: TrainConfig, run_dir: Path | None = None, progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) a run; returns its directory. See the module docstring."""
    return train_many([cfg], [run_dir], progress=progress, should_stop=should_stop, log=log)[0]


def share_key(cfg: TrainConfig) -> tuple:
    """Runs with the same key can train together in one LM pass (train_many): one encoder, one
    frozen LM (a random-init LM is seeded by the run's seed), one prompt, one number of image tokens."""
    return (cfg.encoder, cfg.lm, cfg.lm_init, cfg.seed if cfg.lm_init == "random" else None,
            cfg.prompt, cfg.image_tokens, cfg.device, cfg.precision)


def step_key(cfg: TrainConfig) -> tuple:
    """Runs with the same key step together in one LM pass (vlm.joint_loss): share_key, plus what
    sets the prefix length besides image_tokens -- the projector's LM tokens per image token and the
    top-k concept tokens (projector_topk; 0 without them)."""
    return (*share_key(cfg), cfg.projector_tokens, cfg.projector_topk)


def train_many(cfgs: list[TrainConfig], run_dirs: list[Path | None] | None = None,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               together: int | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Train (or resume) several runs in one process; returns their directories, in order.

    Runs with the same step_key() share one copy of the encoder and LM, and every update of the
    group is one LM pass over all their batches (vlm.joint_loss): each run still draws its own batches,
    keeps its own optimizer, schedule, validation, early stopping and checkpoint, and resumes on its
    own (with train() or train_many()), so it is recorded exactly as if trained alone. Groups run
    one after the other, in chunks of at most `together` runs (None: a whole group at once; each
    run's batch adds its activations to the shared pass). Each run's train_seconds is its share (by
    questions) of the shared steps. Each epoch's line (loss, validation leaf and hypernym accuracy)
    goes to `log`; without it, to stderr when there is no `progress` callback (which gets it too)."""
    if together is not None and (isinstance(together, bool) or not isinstance(together, int) or together < 1):
        raise ConfigError(f"together must be a positive number of runs, got {together!r}")
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * len(cfgs)
    if len(run_dirs) != len(cfgs):
        raise ValueError(f"{len(cfgs)} configs but {len(run_dirs)} run directories")
    for cfg, run_dir in zip(cfgs, run_dirs):
        rundata.check(cfg, started=runs.has_started(run_dir))
    by_key: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        by_key.setdefault(step_key(cfg), []).append(i)
    size = together or len(cfgs)
    groups = [members[k:k + size] for members in by_key.values() for k in range(0, len(members), size)]
    out: list[Path | None] = [None] * len(cfgs)
    report = progress or (lambda f, m: None)
    if log is None and progress is None:
        def log(line: str) -> None:
            tqdm.write(line, file=sys.stderr)      # stdout is for the commands' JSON
    for g, members in enumerate(groups):
        lo, hi = g / len(groups), (g + 1) / len(groups)
        dirs = _train_group([cfgs[i] for i in members], [run_dirs[i] for i in members],
                            lambda f, m: report(lo + (hi - lo) * f, m), should_stop, quiet=progress is not None,
                            log=log)
        for i, d in zip(members, dirs):
            out[i] = d
    return out


def _concept_mates(train_row: dict[str, int], items: dict, labeling: dict[str, str]) -> dict[int, list[int]]:
    """Feature row -> the rows of the other TRAIN images shown as the same concept (concept_mixup)."""
    shown = {row: questions.shown_concept(items[image_id].concept, labeling) for image_id, row in train_row.items()}
    rows_of: dict[str, list[int]] = {}
    for row, concept in shown.items():
        rows_of.setdefault(concept, []).append(row)
    return {row: [r for r in rows_of[concept] if r != row] for row, concept in shown.items()}


class _Run:
    """One run's training state inside a (possibly shared) training loop: its data, projector and
    optimizer, the step it is at, its validation, early stopping and checkpoint files."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None, vlm, device, precision: str, features_of,
                 report: Progress | None = None):
        self.cfg, self.vlm, self.device, self.dir = cfg, vlm, device, run_dir   # run_dir: _open_run_dir's
        ck_path = runs.checkpoint_json(self.dir)
        ck = self.ck = runs.read_json(ck_path) if ck_path.is_file() else None
        self.finished = False
        if ck and ck.get("format") != checkpoint.CHECKPOINT_FORMAT:
            raise runs.RunError(f"{self.dir} holds a checkpoint of an older TaxoLens format; start a new run")
        if ck and ck.get("status") != "finished" and not runs.resumable(ck):
            kept = runs.BEST_FILE in (ck.get("files") or {})
            raise runs.RunError(f"run {self.dir.name} cannot resume: its checkpoint holds "
                                f"{'its best projector only' if kept else 'no projector'}, not the optimizer state "
                                f"resuming needs (a run brought back from a GPU machine); "
                                f"{'evaluate it as it is, or ' if kept else ''}start a new run")
        data = self.data = rundata.prepare(cfg)
        if ck and ck.get("dataset", {}).get("table_sha256") != data.table_sha256:
            raise runs.RunError(f"dataset '{cfg.dataset}' changed since run {self.dir.name} started; "
                                f"start a new run instead of resuming")
        self.posteriors = cfg.reads_posterior
        if self.posteriors:        # the projector's size depends on the run's concepts
            registry.use_posterior_input(vlm, cfg, len(data.dataset.concepts))
        self.params = [p for p in vlm.projector.parameters() if p.requires_grad]
        if not self.params:
            raise ConfigError("the projector has no trainable parameters")
        # Fused on CUDA: one kernel per update instead of several per tensor (a sweep steps dozens).
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=device.type == "cuda")

        self.train_q, self.val_q = data.training_questions(), data.questions["val"]
        self.steps_per_epoch = math.ceil(len(self.train_q) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)

        # Pooled features (1,155 x 1,280 floats for the default set) stay on the training device for
        # the whole run; a whole grid (grid_crop: 81 times that, per run of a group) stays on the host.
        self.train_feats, self.train_row = features_of(vlm, data.images("train"), bool(cfg.grid_crop))
        if not cfg.grid_crop:
            self.train_feats = self.train_feats.to(device)
        if cfg.grid_crop:
            try:    # crop_grid's own check, before the first step rather than at it
                crop_grid(self.train_feats[:1], cfg.grid_crop)
            except ValueError as exc:
                raise ConfigError(f"grid_crop does not fit encoder {cfg.encoder}: {exc}") from None
        self.views, self.view_offset = None, None
        if cfg.augment_views or cfg.line_art_views:
            self._load_views(data.images("train"), features_of, report)
        if self.posteriors:
            self.train_feats, self.views, self.posterior_fit = posterior_inputs(
                cfg, vlm, data, self.train_feats, self.views, fit_probe=not ck and not cfg.init_from)
        self.val_feats, self.val_row = features_of(vlm, data.images("val"), False)
        self.train_item = {im.id: im for im in data.images("train")}
        self.mates = (_concept_mates(self.train_row, self.train_item, data.deprivation.labeling)
                      if cfg.concept_mixup else None)
        self.known = questions.known_categories(data.dataset, data.deprivation) if cfg.rank_siblings else None
        # rank_soft: a leaf question's text -> the posterior columns it asks about
        self.text_columns: dict[str, list[int]] = {}
        for c, j in (rundata.posterior_columns(data.dataset).items() if cfg.rank_soft else ()):
            self.text_columns.setdefault(questions.question_text(data.dataset.concepts[c].label), []).append(j)

        now, commit = runs.now_iso(), runs.git_commit()     # a resume keeps the first commit, records this one
        self.state = state = {
            "format": checkpoint.CHECKPOINT_FORMAT, "status": "partial", "epoch": 0, "step": 0,
            "partial_loss": [0.0, 0], "partial_seconds": 0.0, "epochs": cfg.epochs,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "encoder": cfg.encoder, "lm": cfg.lm, "lm_init": cfg.lm_init, "prompt": cfg.prompt,
            "dataset": {"name": cfg.dataset, "table_sha256": data.table_sha256,
                        "summary": _jsonable(data.dataset.summary())},
            "condition": {"spec": cfg.condition, "report": _jsonable(data.deprivation.report)},
            "seed": cfg.seed, "config": cfg.to_dict(), "git_commit": commit,
            "questions": {**{s: len(q) for s, q in data.questions.items()}, "train_kept": len(self.train_q)},
            "frozen_checksum": checkpoint.frozen_checksum(vlm), "metrics": [], "best": None,
            "stopped": None, "created": now, "updated": now, "finished": None, "device": str(device),
            "precision": precision,
        }
        if ck:
            state.update({k: ck[k] for k in ("epoch", "step", "partial_loss", "partial_seconds", "metrics",
                                             "created", "git_commit", "best", "init_from", "projector_init",
                                             "projector_input") if k in ck})
            state["resumed"] = ck.get("resumed", []) + [{"at": now, "epoch": ck["epoch"], "step": ck["step"],
                                                          "git_commit": commit}]
            ckdir = runs.checkpoint_dir(self.dir)
            checkpoint.load_projector(vlm, runs.load_tensors(ckdir / runs.PROJECTOR_FILE,
                                                             ck["files"][runs.PROJECTOR_FILE]), self.dir)
            extra = runs.load_tensors(ckdir / runs.TRAIN_STATE_FILE, ck["files"][runs.TRAIN_STATE_FILE])
            _restore_optimizer(self.opt, extra, ck["optimizer_groups"])   # moves moments to the params' device
            # The RNG state of the process (what grid crops and dropout draw from): with several
            # runs in one process the last one resumed sets it, so only a lone run replays it exactly.
            torch.set_rng_state(extra["rng.torch"])
            if device.type == "cuda" and "rng.cuda" in extra:
                torch.cuda.set_rng_state(extra["rng.cuda"])
            checkpoint.check_frozen_checksum(vlm, ck.get("frozen_checksum"), self.dir)
            runs.append_log(self.dir, f"resuming at epoch {state['epoch'] + 1}, step {state['step']}")
        else:
            if cfg.init_from:
                state["init_from"] = init_projector(cfg, vlm, data.table_sha256)
            if self.posteriors:
                state["projector_input"] = self.posterior_fit
                runs.append_log(self.dir, f"projector reads concept posteriors: {self.posterior_fit}")
            if cfg.projector_init == "probe":
                state["projector_init"] = probe_init_projector(cfg, vlm, data, self.train_feats, self.train_row)
                runs.append_log(self.dir, f"projector's first layer fitted as a concept probe: {state['projector_init']}")
            runs.append_log(self.dir, f"training {cfg.to_dict()} on {device}; questions "
                                      f"{state['questions']}; {self.total_steps} updates planned"
                            + (f"; projector from run {state['init_from']['run_id']}" if cfg.init_from else ""))
        self.meta = runs.tensor_metadata(cfg)
        self.done = state["epoch"] * self.steps_per_epoch + state["step"]
        self.in_epoch = False
        self.loss_sum = torch.zeros((), device=device)    # read at saves only: no host sync per step
        self.last_loss: torch.Tensor | None = None

    # -- steps

    def has_step(self) -> bool:
        """Whether the run takes another update in its current epoch (starting one when due)."""
        if self.finished:
            return False
        if not self.in_epoch:
            if self.state["epoch"] >= self.cfg.epochs or self.done >= self.total_steps:
                self.finished = True       # nothing left to train (the last save already said so)
                return False
            epoch = self.state["epoch"]
            if self.cfg.fresh_negatives:
                self.train_q = self.data.training_questions(epoch)
            self.batches = epoch_batches(self.train_q, self.cfg.batch_size, self.cfg.seed, epoch)
            self.vlm.projector.train()
            self.in_epoch = True
        return self.state["step"] < self.steps_per_epoch and self.done < self.total_steps

    def batch(self):
        """The inputs of the next update (a vlm.LossBatch), with the learning rate set for it."""
        from core.models.vlm import LossBatch
        cfg, epoch, step = self.cfg, self.state["epoch"], self.state["step"]
        batch = self.batches[step]
        self.batch_size = len(batch)
        q = self.train_q
        rows = [self.train_row[q[i].image_id] for i in batch]
        distinct = sorted(set(rows))
        slot = {r: j for j, r in enumerate(distinct)}
        if self.views is None:
            feats = self.train_feats[distinct]
        else:                          # each image as itself or one of its views: epoch + its offset
            rows_t = torch.tensor(distinct)
            which = ((epoch + self.view_offset[rows_t]) % self.views.shape[1]).to(self.views.device)
            feats = self.views[rows_t.to(self.views.device), which]
        if cfg.concept_mixup:
            feats = self._mix_concepts(feats, distinct, epoch, step)
        if cfg.grid_crop:
            feats = crop_grid(feats, cfg.grid_crop).to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.done, self.total_steps, cfg)
        image_ids = list(dict.fromkeys(q[i].image_id for i in batch))
        ranked = []
        for image_id in image_ids if cfg.rank_negatives or cfg.rank_mined else ():
            draw = random.Random(f"{cfg.seed}:{image_id}:rank:{epoch}:{step}")   # resumes draw the same
            ranked.append((slot[self.train_row[image_id]], questions.ranked_leaf_texts(
                self.data.dataset, self.train_item[image_id], self.data.deprivation.labeling,
                cfg.rank_negatives, draw, self.known, cfg.rank_siblings)))
        if cfg.rank_mined:
            ranked = self._mine(ranked, image_ids, feats, epoch, step)
        named = [(slot[self.train_row[image_id]], questions.naming_text(
                     self.data.dataset, self.train_item[image_id], self.data.deprivation.labeling))
                 for image_id in image_ids] if cfg.name_loss else []
        return LossBatch(feats, [q[i].text for i in batch], [q[i].answer for i in batch],
                         torch.tensor([slot[r] for r in rows]), ranked, named, cfg.name_loss, self.posteriors,
                         self._rank_targets(ranked, feats) if cfg.rank_soft else ())

    def _rank_targets(self, ranked: list, feats: torch.Tensor) -> list[torch.Tensor]:
        """rank_soft: each ranking group's target, (1 - s) on the image's own leaf plus s spread over
        the group by the posterior the projector reads for that image (out of fold for a training
        image, so as unsure as a held-out one), renormalised over the group. A hard target asks the
        own leaf to beat a sibling the image is genuinely hard to tell from; this one asks the
        answers to keep the posterior's order among them. Gathered on feats' device (no host sync);
        a text asked twice in a group shares its columns' mass, and a group whose posterior mass
        underflows to 0 keeps the hard target."""
        s, device = self.cfg.rank_soft, feats.device
        sizes = [len(group) for _, group in ranked]
        width = max(sizes)
        at, image, column, weight = [], [], [], []
        for g, (row, group) in enumerate(ranked):
            copies = {t: group.count(t) for t in group}
            for i, text in enumerate(group):
                for j in self.text_columns[text]:
                    at.append(g * width + i)
                    image.append(row)
                    column.append(j)
                    weight.append(1.0 / copies[text])
        share = torch.zeros(len(ranked) * width, device=device)
        # the posterior is the inputs' last columns (after the feature with features+posterior)
        offset = feats.shape[-1] - len(self.data.dataset.concepts)
        picked = feats[torch.tensor(image, device=device), 0, torch.tensor(column, device=device) + offset].float()
        share.index_add_(0, torch.tensor(at, device=device), picked * torch.tensor(weight, device=device))
        target = spread_targets(share.view(len(ranked), width), s)
        return [t[:n] for t, n in zip(target, sizes)]

    def _mine(self, ranked: list, image_ids: list, feats: torch.Tensor, epoch: int, step: int) -> list:
        """rank_mined: each image's ranking group gains the rank_mined leaves that the projector, as
        it is at this step, most says yes to among mine_pool random other leaves (scored without
        gradient, like evaluation). Random and sibling negatives rarely meet the unrelated leaves a
        model wrongly says yes to ("briefs" for a dog); these are the ones that push the true leaf
        out of the top five. The pool is drawn from (seed, image, epoch, step) and the projector is
        restored on resume, so a resumed run mines the same."""
        cfg, ds = self.cfg, self.data.dataset
        pools = []
        for (_, group), image_id in zip(ranked, image_ids):
            draw = random.Random(f"{cfg.seed}:{image_id}:mine:{epoch}:{step}")
            pool = questions.ranked_leaf_texts(ds, self.train_item[image_id], self.data.deprivation.labeling,
                                               cfg.mine_pool, draw)[1:]
            pools.append([t for t in pool if t not in group])
        training = self.vlm.projector.training
        self.vlm.projector.eval()                  # no dropout: mine what the model answers
        scores = self.vlm.score(feats[[row for row, _ in ranked]], pools, posteriors=self.posteriors)
        self.vlm.projector.train(training)
        mined = []
        for (row, group), pool, answer in zip(ranked, pools, scores):
            top = answer.p_yes.argsort(descending=True, stable=True)[:cfg.rank_mined].tolist()
            mined.append((row, [*group, *(pool[i] for i in top)]))
        return [(row, group) for row, group in mined if len(group) > 1]   # a dataset of one label has none

    def _load_views(self, items: list, features_of, report: Progress | None) -> None:
        """augment_views and line_art_views: the features of every TRAIN image's views beside its
        own, (N, 1 + V, k, D) on the training device, and per image the view its first epoch shows
        (seeded by the run's seed and the image, so a resumed run shows the same). A posterior-input
        run then replaces them by their out-of-fold posteriors (posterior_inputs)."""
        n = self.cfg.augment_views + self.cfg.line_art_views
        per_image = augment.view_items(items, self.cfg.augment_views, line_art=self.cfg.line_art_views,
                                       progress=report and (lambda f, m: report(0.0, m)))
        flat = [v for row in per_image for v in row]
        feats, _ = features_of(self.vlm, flat, False)
        feats = feats.view(len(items), n, *feats.shape[1:]).to(self.train_feats.device)
        self.views = torch.cat([self.train_feats[:, None], feats], dim=1)
        self.view_offset = torch.tensor([random.Random(f"{self.cfg.seed}:{im.id}:view").randrange(n + 1)
                                         for im in items])

    def _mix_concepts(self, feats: torch.Tensor, rows: list[int], epoch: int, step: int) -> torch.Tensor:
        """concept_mixup: each image (train_feats row) of the batch, with that probability, becomes
        lam * itself + (1 - lam) * another training image of the concept it is shown as."""
        draw = random.Random(f"{self.cfg.seed}:mix:{epoch}:{step}")
        mixed = feats.clone()
        for j, row in enumerate(rows):
            mates = self.mates[row]
            if mates and draw.random() < self.cfg.concept_mixup:
                lam = draw.random()
                mixed[j] = lam * feats[j] + (1 - lam) * self.train_feats[draw.choice(mates)].to(feats.device, feats.dtype)
        return mixed

    def step(self, loss: torch.Tensor) -> None:
        """Clip, update, and count one step whose backward has run (the caller adds its seconds)."""
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        self.loss_sum += loss.detach().float() * self.batch_size
        self.last_loss = loss.detach()
        self.state["partial_loss"][1] += self.batch_size
        self.state["step"] += 1
        self.done += 1

    def _flush_loss(self) -> None:
        self.state["partial_loss"][0] += float(self.loss_sum)
        self.loss_sum.zero_()

    # -- epochs, saves

    def end_epoch(self) -> str:
        """Validate, keep the best, decide on stopping, save; returns the epoch's log line."""
        cfg, state, vlm = self.cfg, self.state, self.vlm
        epoch = state["epoch"]
        self._flush_loss()
        train_seconds = state["partial_seconds"]
        t_val = time.perf_counter()
        vlm.projector.eval()
        val = metrics.summarize(scoring.score(vlm, self.val_feats, self.val_row, self.val_q, self.data.deprivation,
                                              split="val")) if self.val_q else None
        loss_sum, n = state["partial_loss"]
        score = selection_score(val) if val else None
        best = state["best"]
        if score is None or best is None or best["score"] is None or score > best["score"]:
            # nothing to select on (no val questions): the latest epoch counts as the best
            best = state["best"] = {"epoch": epoch + 1, "score": score}
        entry = {"epoch": epoch + 1, "train_loss": _finite(loss_sum / max(n, 1)),
                 "updates": self.done, "lr": _finite(lr_at(max(self.done - 1, 0), self.total_steps, cfg)),
                 "val": _jsonable(metrics.headline(val)) if val else None,
                 "val_leaf_accuracy": _finite(val["leaf"]["accuracy"]) if val and val["leaf"]["n"] else None,
                 "val_hypernym_accuracy": _finite(val["hypernym"]["accuracy"]) if val and val["hypernym"]["n"] else None,
                 "val_selection": _finite(score) if score is not None else None,
                 "train_seconds": round(train_seconds, 2),
                 "val_seconds": round(time.perf_counter() - t_val, 2),
                 "examples_per_s": round(n / max(train_seconds, 1e-9), 3)}
        state["metrics"].append(entry)
        state.update(epoch=epoch + 1, step=0, partial_loss=[0.0, 0], partial_seconds=0.0)
        self.in_epoch = False
        stale = epoch + 1 - best["epoch"]
        if self.done >= self.total_steps or epoch + 1 == cfg.epochs:
            state["stopped"] = "planned updates done"
        elif cfg.patience and stale >= cfg.patience:
            state["stopped"] = f"early: no validation improvement for {stale} epochs"
        self.save("finished" if state["stopped"] else "partial", best_now=best["epoch"] == epoch + 1)
        line = (f"epoch {epoch + 1}: loss {entry['train_loss']:.4f}, val leaf acc "
                f"{_fmt(entry['val_leaf_accuracy'])}, hypernym acc {_fmt(entry['val_hypernym_accuracy'])}, "
                f"best epoch {best['epoch']}")
        runs.append_log(self.dir, f"{line}; {entry}")
        if state["stopped"]:
            runs.append_log(self.dir, f"stopped: {state['stopped']}")
            self.finished = True
        return line

    def cancel(self, to_resume: bool = False) -> None:
        """Save where the run stands and stop: "cancelled" (a run anyone may resume), or "partial"
        when the job that trains it is requeued and resumes it itself (core.base.RESUME_LATER)."""
        self._flush_loss()
        self.save("partial" if to_resume else "cancelled")
        what = "stopped, to be resumed by its job," if to_resume else "cancelled"
        runs.append_log(self.dir, f"{what} at epoch {self.state['epoch'] + 1}, step {self.state['step']}")

    def save(self, status: str, best_now: bool = False) -> None:
        state = self.state
        state["status"], state["updated"] = status, runs.now_iso()
        if status == "finished":
            state["finished"] = state["updated"]
        opt_tensors, groups = _optimizer_tensors(self.opt)
        opt_tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            opt_tensors["rng.cuda"] = torch.cuda.get_rng_state()
        written = {runs.PROJECTOR_FILE: (self.vlm.projector_state(), self.meta), runs.TRAIN_STATE_FILE: (opt_tensors, None)}
        if best_now:
            written[runs.BEST_FILE] = (self.vlm.projector_state(), self.meta)
        state["files"] = dict(self.ck.get("files", {}) if self.ck else {}, **state.get("files", {}))
        state["optimizer_groups"] = groups
        runs.save_checkpoint(self.dir, state, written)    # loadable and resumable whenever it is killed


def init_projector(cfg: TrainConfig, vlm, table_sha256: str) -> dict:
    """Load the best projector of run cfg.init_from into `vlm`; returns what checkpoint.json records."""
    src = runs.init_source(cfg)
    ck = src.checkpoint
    if ck.get("format") != checkpoint.CHECKPOINT_FORMAT:
        raise ConfigError(f"init_from: run {src.run_id} was trained by an older TaxoLens (checkpoint format "
                          f"{ck.get('format')}, now {checkpoint.CHECKPOINT_FORMAT})")
    if ck.get("dataset", {}).get("table_sha256") != table_sha256:
        raise ConfigError(f"init_from: dataset '{cfg.dataset}' changed since run {src.run_id} was trained")
    files = ck.get("files", {})
    name = runs.BEST_FILE if runs.BEST_FILE in files else runs.PROJECTOR_FILE
    state = checkpoint.unpacked_state(runs.load_tensors(runs.checkpoint_dir(src.path) / name, files.get(name)))
    checkpoint.load_projector(vlm, {k: v.float() for k, v in state.items()}, src.path)   # fp16 when shipped
    checkpoint.check_frozen_checksum(vlm, ck.get("frozen_checksum"), src.path)
    best = ck.get("best") or {}
    # a shipped checkpoint's folder is not named by its run: the id it carries says which run it was
    return {"run_id": ck.get("run_id") or src.run_id, "path": str(src.path), "file": name, "sha256": files.get(name),
            "epoch": best.get("epoch", ck.get("epoch")), "git_commit": ck.get("git_commit")}


def probe_init_projector(cfg: TrainConfig, vlm, data, feats: torch.Tensor, row_of: dict[str, int]) -> dict:
    """projector_init = "probe": fit the projector's first layer to the concept each TRAIN image is
    shown as (its pooled tokens, as the projector will see them); returns what checkpoint.json records."""
    items = data.images("train")
    shown = [questions.shown_concept(im.concept, data.deprivation.labeling) for im in items]
    column = {c: j for j, c in enumerate(sorted(set(shown)))}
    x = pool_tokens(feats[torch.tensor([row_of[im.id] for im in items], device=feats.device)].float(),
                    vlm.n_tokens)
    y = torch.tensor([column[c] for c in shown]).repeat_interleave(x.shape[1])
    try:
        acc = vlm.projector.init_as_probe(x.reshape(-1, x.shape[-1]), y, len(column), seed=cfg.seed)
    except ValueError as exc:
        raise ConfigError(f"projector_init 'probe': {exc}") from None
    return {"kind": "probe", "classes": len(column), "images": len(items), "train_accuracy": round(acc, 4)}


def posterior_inputs(cfg: TrainConfig, vlm, data, feats: torch.Tensor, views: torch.Tensor | None = None,
                     fit_probe: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """projector_input = "posterior": what the projector trains on instead of the TRAIN features
    (N, 1, D), rows in data.images("train") order as features_of gives them -- each image's
    out-of-fold concept posterior (N, 1, C), on feats' device -- then the same for `views` (the
    image and its augmented views, (N, 1 + V, 1, D), or None), and what checkpoint.json records.
    "features+posterior": each row's feature with its out-of-fold posterior after it (N, 1, D + C).
    fit_probe: also fit the projector's own probe on every TRAIN image and its views, and start any
    top-k concept rows at the names' word embeddings (a resumed or init_from run loads both with
    the projector instead). Labels are the concepts the images are shown as (leaf evidence only:
    no category is a class). Views widen what the probe learns a
    concept's renderings look like, and give training the posteriors of renderings it did not fit."""
    from core import image_probe

    items = data.images("train")
    column = rundata.posterior_columns(data.dataset)
    x = feats[:, 0].float().cpu()
    y = torch.tensor([column[questions.shown_concept(im.concept, data.deprivation.labeling)] for im in items])
    extra = None if views is None else views[:, 1:, 0].float().cpu()          # (N, V, D): the views alone
    if fit_probe:
        head, mean, std = image_probe.fit_softmax(*image_probe.with_views(x, y, extra), len(column), cfg.seed)
        vlm.projector.posterior.set(head, mean, std)
        if vlm.projector.topk:          # each concept's token starts as its name's word embedding
            labels = [data.dataset.concepts[c].label for c in sorted(column, key=column.get)]
            vlm.projector.set_concept_rows(vlm.lm.name_embeddings(labels).to(vlm.device))
    oof = image_probe.out_of_fold(x, y, len(column), seed=cfg.seed, views=extra)
    if extra is None:
        oof = oof[:, None]                                                      # (N, 1, C)
    fit = {"kind": cfg.projector_input, "classes": len(column), "images": len(items), "folds": image_probe.FOLDS,
           "out_of_fold_top1": round(float((oof[:, 0].argmax(-1) == y).float().mean()), 4)}
    if extra is not None:
        fit["views"] = extra.shape[1]
        fit["views_out_of_fold_top1"] = round(float((oof[:, 1:].argmax(-1) == y[:, None]).float().mean()), 4)
    posteriors = oof[:, :1].to(feats.device)                                    # (N, 1, C)
    view_posteriors = None if extra is None else oof[:, :, None].to(feats.device)   # (N, 1 + V, 1, C)
    if cfg.projector_input == "features+posterior":
        posteriors = torch.cat([feats.float(), posteriors], dim=-1)
        if views is not None:
            view_posteriors = torch.cat([views.float(), view_posteriors], dim=-1)
    return posteriors, view_posteriors, fit


def _feature_memo(report: Progress | None = None):
    """features.image_features, remembered within one train_many call: the runs of a sweep use the
    same images, and reading (and hashing) every cached grid again per run costs seconds each.
    Encoding (images seen for the first time, augmented views) is reported as messages at 0."""
    memo: dict = {}
    say = report or (lambda fraction, message: None)

    def features_of(vlm, items, whole_grid: bool):
        key_base = (vlm.encoder.id, getattr(vlm.encoder, "transform_id", None), whole_grid, vlm.n_tokens)
        missing = [im for im in items if (key_base, im.id) not in memo]
        if missing:
            feats, row = features.image_features(vlm, missing, whole_grid=whole_grid,
                                                 progress=lambda f, m: say(0.0, m))
            for im in missing:
                memo[key_base, im.id] = feats[row[im.id]]
        if not items:
            return features.image_features(vlm, items, whole_grid=whole_grid)
        return torch.stack([memo[key_base, im.id] for im in items]), {im.id: i for i, im in enumerate(items)}

    return features_of


def _train_group(cfgs: list[TrainConfig], run_dirs: list, report: Progress,
                 should_stop: Callable[[], bool] | None, quiet: bool,
                 log: Callable[[str], None] | None = None) -> list[Path]:
    """train_many for runs of one step_key: one encoder and LM, one LM pass per update."""
    dirs = [_open_run_dir(cfg, d) for cfg, d in zip(cfgs, run_dirs)]
    todo = [i for i, d in enumerate(dirs) if not runs.is_finished(d)]
    if not todo:      # every run already finished: nothing to load
        return dirs
    device = checkpoint.resolve_device(cfgs[0].device)
    precision = checkpoint.resolve_precision(cfgs[0].precision, device)
    report(0.0, "encoding images")
    features_of = _feature_memo(report)
    first = checkpoint.build_vlm(cfgs[todo[0]], device)
    group: list[_Run] = []
    for i in todo:
        vlm = first if not group else registry.vlm_sharing_frozen(cfgs[i], first)
        vlm.eval()
        group.append(_Run(cfgs[i], dirs[i], vlm, device, precision, features_of, report))
    if precision == "bf16":
        first.hold_lm_in_bf16()    # after the frozen checksums, which evaluation's fp32 LM must match
    total = sum(r.total_steps for r in group) or 1
    start_done = sum(r.done for r in group)
    bar = tqdm(total=total, initial=start_done, desc="train" if len(group) == 1 else f"train {len(group)} runs",
               unit="step", disable=quiet, leave=False)
    lone = len(group) == 1

    def who(r: _Run) -> str:              # progress lines name the run when several train together
        return "" if lone else f"{r.dir.name}: "

    def where(r: _Run) -> str:
        # max_steps can end training inside an epoch: count to where it stops, not to a full epoch
        epoch = r.state["epoch"]
        epochs = min(r.cfg.epochs, math.ceil(r.total_steps / r.steps_per_epoch))
        steps = min(r.steps_per_epoch, r.total_steps - epoch * r.steps_per_epoch)
        return f"{who(r)}epoch {epoch + 1}/{epochs} step {r.state['step']}/{steps}"

    def tell(message: str) -> None:
        # A job's progress callback raises when the job is cancelled: save every run where it stands
        # first (as should_stop does), so the job resumes from there, not from its last epoch.
        try:
            report(_fraction(group, total), message)
        except BaseException:
            to_resume = should_stop is not None and should_stop() == RESUME_LATER
            for r in group:
                if r.in_epoch and not r.finished:
                    r.cancel(to_resume)
            raise

    loss_text = ""
    try:
        while True:
            t0 = time.perf_counter()          # an update's time: everything but validation
            validating = 0.0
            stepping = []
            for r in group:
                while not r.finished and not r.has_step():
                    tell(f"{who(r)}epoch {r.state['epoch'] + 1}: validating")
                    t_val = time.perf_counter()
                    line = who(r) + r.end_epoch()
                    validating += time.perf_counter() - t_val
                    tell(line)
                    if log is not None:
                        log(line)
                if not r.finished:
                    stepping.append(r)
            if not stepping:
                break
            stop = should_stop() if should_stop is not None else False
            if stop:
                for r in stepping:
                    r.cancel(stop == RESUME_LATER)
                raise Cancelled(stepping[0].dir, stepping[0].state["epoch"], stepping[0].state["step"])
            batches = [r.batch() for r in stepping]
            losses = type(first).joint_loss([r.vlm for r in stepping], batches)
            for r in stepping:
                r.opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            for r, loss in zip(stepping, losses):
                r.step(loss)
            bar.update(len(stepping))
            r0 = stepping[0]
            if bar.n % 20 < len(stepping):      # reading a loss waits for the GPU: every 20th step
                value = float(r0.last_loss)
                bar.set_postfix(loss=f"{value:.4f}", epoch=r0.state["epoch"] + 1)
                loss_text = f" loss {value:.4f}"
            # Each run's share of the update's time, by its questions (ranked ones included).
            sizes = [len(b.texts) + sum(len(g) for _, g in b.ranked) + len(b.named) for b in batches]
            seconds = time.perf_counter() - t0 - validating
            for r, size in zip(stepping, sizes):
                r.state["partial_seconds"] += seconds * size / sum(sizes)
            tell(f"{where(r0)}{loss_text}")
    finally:
        bar.close()
    report(1.0, "done")
    return dirs


def _fraction(group: list[_Run], total: int) -> float:
    return 0.97 * sum(r.done for r in group) / total


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _open_run_dir(cfg: TrainConfig, run_dir: Path | None) -> Path:
    """A new run dir, or `run_dir` (created, or checked to hold this same config)."""
    if run_dir is None:
        return runs.create_run_dir(cfg)
    run_dir = Path(run_dir)
    cfg_path = run_dir / runs.CONFIG_JSON
    if cfg_path.is_file():
        diff = [f"{k}: {was!r} -> {now!r}"
                for k, was, now in runs.config_differences(TrainConfig.from_stored(runs.read_json(cfg_path)), cfg)]
        if diff:
            raise ConfigError(f"{run_dir} holds a run with a different config ({'; '.join(diff)}); "
                              f"use a new run directory")
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(cfg_path, cfg.to_dict())
    return run_dir


def _jsonable(obj):
    """Dataset summaries and condition reports as plain JSON (tuples/sets → sorted lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_jsonable(v) for v in obj)
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
