"""Where training runs and results live, and how to list and read them.

Layout of one run, `paths.runs_dir()/<run_id>/`:

    config.json                     the TrainConfig, written before anything else
    checkpoint/projector.safetensors  trained projector weights (the only trained part)
    checkpoint/train_state.safetensors  optimizer moments + RNG state, for resuming
    checkpoint/checkpoint.json      provenance, per-epoch metrics, status, file hashes
    eval/<split>/questions.csv      one row per scored question
    eval/<split>/metrics.json       metrics of that table (core.metrics.summarize)
    eval/<split>/ranking.json       every leaf asked of each image: the true leaf's rank (optional;
                                    names the checkpoint save it ranked: runs.checkpoint_version)
    log                             human-readable progress lines

Standalone results that are not runs (baselines) live under `runs_dir()/baselines/<name>/` with the
same eval files. Every file is written to a temporary name and moved into place, so a reader never
sees half a file. This module only reads and writes files; it never loads a model.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import files, paths
from core.data import datasets
from core.base import ConfigError
from core.config import SHIPPED_RECIPE, TrainConfig

_log = logging.getLogger(__name__)     # notes for the user (no handler: Python prints them on stderr)
_noted_unreadable: set[str] = set()     # each unreadable folder is named once per process (the app lists runs every few s)

CONFIG_JSON = "config.json"                   # a run's TrainConfig (a baseline's: + "baseline")
METRICS_JSON = "metrics.json"                 # eval/<split>/: core.metrics.summarize + what was evaluated
QUESTIONS_CSV = "questions.csv"               # eval/<split>/: scored questions (core.scoring.ROW_FIELDS)
CHECKPOINT_DIR = "checkpoint"
PROJECTOR_FILE = "projector.safetensors"
TRAIN_STATE_FILE = "train_state.safetensors"
BEST_FILE = "best.safetensors"               # the projector of the best epoch (what evaluation loads)
# A checkpoint file written but not yet moved into place: a save writes every file as NAME.next,
# then checkpoint.json (which pins each by sha256), then moves them, so a kill at any point leaves
# each pinned file either in place or beside it as NAME.next (load_tensors takes whichever matches).
STAGED_SUFFIX = ".next"
RANKING_FILE = "ranking.json"                 # core.evaluate.leaf_ranking
CHECKPOINT_JSON = "checkpoint.json"
BASELINES_DIR = "baselines"
SPLITS = ("train", "val", "test")


class RunError(ConfigError):
    """A run that does not exist, is unreadable, or does not fit what it is used with."""


# ---------------------------------------------------------------- atomic file writing

def stored_path(run_dir: Path | str) -> str:
    """How a record kept in the data folder (a sweep's manifest) names a run folder: relative to the
    runs folder, so a data folder moved or copied elsewhere keeps its records (a folder that is
    itself a link is named by its place, not its target); absolute only when it is not under it."""
    run_dir = Path(run_dir)
    try:
        return str(run_dir.parent.resolve().relative_to(paths.runs_dir().resolve()) / run_dir.name)
    except ValueError:
        return str(run_dir)


def located_path(stored: str) -> str | None:
    """The folder a stored run path (stored_path's, or an absolute one a job or an older manifest
    kept) names in THIS data folder: a relative one under the runs folder (never outside it,
    whatever a hand edit wrote); an absolute one under the runs folder as it is; another absolute
    one (a data folder copied elsewhere) by its place in the copy, a run or baselines/<name>; None
    when the copy has none, so nothing is ever written into the old data folder."""
    path, root = Path(stored), paths.runs_dir()
    if not path.is_absolute():
        return str(root / path) if (root / path).parent.resolve().is_relative_to(root.resolve()) else None
    if path.parent.resolve().is_relative_to(root.resolve()):
        return str(path)
    for here in (root / path.name, root / path.parent.name / path.name):
        if here.is_dir():
            return str(here)
    return None


def write_json(path: Path, obj: Any) -> None:
    """Pretty JSON, written atomically. NaN/inf are refused (they are not JSON)."""
    files.write_atomic(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def rewrite_json_in_place(path: Path, obj: Any) -> bool:
    """Replace a record derived again from its own data (a metrics summary under today's rule) and
    keep the file's time: what compares it with a checkpoint's (evaluation_is_current) must not see it
    as new. False when the folder cannot be written: the caller derives it again next time."""
    try:
        kept = path.stat()
        write_json(path, obj)
        os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    except OSError:
        return False
    return True


def write_text(path: Path, text: str) -> None:
    files.write_atomic(path, text.encode())


MAX_JSON_BYTES = 64 << 20        # run JSON files are kilobytes; anything bigger is not ours
MAX_TENSOR_BYTES = 4 << 30       # a projector is megabytes; the cap only stops runaway reads


def read_json(path: Path) -> Any:
    path = Path(path)
    try:   # regular files only, through a cap: a run folder may come from anywhere
        return files.read_json(path, MAX_JSON_BYTES)
    except files.FileReadError as exc:
        if exc.kind == "missing":
            raise RunError(f"missing file {path}") from None
        raise RunError(f"{path} is not valid JSON ({exc.reason})") from None


def save_tensors(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> str:
    """safetensors file written atomically; returns its sha256 so the JSON can pin it."""
    from safetensors.torch import save  # lazy: listing runs needs no torch

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    files.write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def tensor_metadata(cfg: TrainConfig) -> dict[str, str]:
    """What a projector file says of the model it belongs to, for anyone who opens the file alone
    (loading reads config.json): the parts, the prompt and the projector's shape."""
    return {"encoder": cfg.encoder, "lm": cfg.lm, "projector": cfg.projector, "prompt": cfg.prompt,
            "image_tokens": str(cfg.image_tokens), "projector_tokens": str(cfg.projector_tokens),
            "projector_hidden": str(cfg.projector_hidden) if cfg.projector_hidden else "the LM's hidden size"}


def load_tensors(path: Path, sha256: str | None = None) -> dict:
    """Tensors of a safetensors file (CPU); with sha256, checks the file is the one recorded."""
    from safetensors.torch import load

    path = Path(path)
    # Where a save stopped between checkpoint.json and moving its files into place, the pinned file
    # is still staged; the final name is read again last, as a running save may move it meanwhile.
    found = False
    for candidate in (path, staged_path(path), path) if sha256 is not None else (path,):
        data = _read_tensor_file(candidate)
        if data is not None and (sha256 is None or hashlib.sha256(data).hexdigest() == sha256):
            found = True
            break
    if not found:
        if not path.exists():
            raise RunError(f"missing checkpoint file {path}")
        raise RunError(f"{path} does not match its checkpoint.json (interrupted write or edited file)")
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise RunError(f"{path} is not a readable safetensors file ({exc})") from None


def staged_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + STAGED_SUFFIX)


def save_checkpoint(run_dir: Path, state: dict, written: dict[str, tuple[dict, dict | None]]) -> None:
    """Write checkpoint.json `state` with the tensor files `written` ({name: (tensors, metadata)}) so
    that a kill at any point leaves a record whose every file can be found: what a killed save left
    is settled first, the files are staged (NAME.next), checkpoint.json pins them by sha256, then they
    move into place. state["files"] (name -> sha256, earlier saves' files kept) is updated in place."""
    ckdir = checkpoint_dir(run_dir)
    files = state.setdefault("files", {})
    _settle_staged(ckdir, files)           # first, or our staging would overwrite a pinned file's only copy
    for name, (tensors, metadata) in written.items():
        files[name] = save_tensors(staged_path(ckdir / name), tensors, metadata)
    write_json(checkpoint_json(run_dir), state)
    for name in written:
        os.replace(staged_path(ckdir / name), ckdir / name)


def _settle_staged(ckdir: Path, pinned: dict[str, str]) -> None:
    """Finish what a killed save left: a staged file that checkpoint.json pins goes into place, any
    other staged file (written before a JSON that never came) goes."""
    for staged in Path(ckdir).glob("*" + STAGED_SUFFIX):
        name = staged.name[: -len(STAGED_SUFFIX)]
        data = _read_tensor_file(staged)
        if data is not None and name in pinned and hashlib.sha256(data).hexdigest() == pinned[name]:
            os.replace(staged, Path(ckdir) / name)
        else:
            staged.unlink(missing_ok=True)


def _read_tensor_file(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return files.read_bytes(path, MAX_TENSOR_BYTES)
    except files.FileReadError as exc:
        if exc.kind == "missing":
            return None
        raise RunError(f"checkpoint file {exc}") from None


def append_log(run_dir: Path, line: str) -> None:
    """One timestamped line in run_dir/log (append-only, so no temp file needed)."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with open(Path(run_dir) / "log", "a") as f:
        f.write(f"{stamp} {line}\n")


# ---------------------------------------------------------------- layout

def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_json(run_dir: Path) -> Path:
    return checkpoint_dir(run_dir) / CHECKPOINT_JSON


def resumable(ck: dict) -> bool:
    """Whether a checkpoint record holds what resuming reads (the projector, optimizer and RNG
    state): a run brought back from a GPU machine (bench.gpu_slot) holds its best projector only."""
    files = ck.get("files") or {}
    return PROJECTOR_FILE in files and TRAIN_STATE_FILE in files and "optimizer_groups" in ck


def has_started(run_dir: str | Path | None) -> bool:
    """A run directory whose training has saved a checkpoint: resuming it needs nothing else (not
    the run its projector started from)."""
    return run_dir is not None and checkpoint_json(Path(run_dir)).is_file()


def eval_dir(run_dir: Path, split: str) -> Path:
    if split not in SPLITS:
        raise RunError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return Path(run_dir) / "eval" / split


def baselines_dir() -> Path:
    return paths.runs_dir() / BASELINES_DIR


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return paths.slug(text)


def condition_slug(spec: str) -> str:
    """'random:0.5' -> 'random0.5', 'systematic:mammal+fish' -> 'systematic-mammal+fish'."""
    return _slug(spec.replace("random:", "random", 1))


def baseline_folders() -> list[tuple[Path, dict]]:
    """(folder, its config.json) of every baseline folder on disk with a readable config naming a
    known baseline, whether or not it has been evaluated yet."""
    from core.config import BASELINES

    root = baselines_dir()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            config = read_json(folder / CONFIG_JSON)
        except (RunError, OSError):
            continue
        if isinstance(config, dict) and config.get("baseline") in BASELINES:
            found.append((folder, config))
    return found


def baseline_dir(kind: str, cfg: TrainConfig, tag: str) -> Path:
    """The one naming scheme of baseline folders: baselines/<kind>_<dataset>_<condition>_s<seed>_<tag>."""
    return baselines_dir() / f"{_slug(kind)}_{_slug(cfg.dataset)}_{condition_slug(cfg.condition)}_s{cfg.seed}_{tag}"


def new_baseline_dir(kind: str, cfg: TrainConfig) -> Path:
    """A new, uniquely tagged baseline folder (created, with its config.json): runs of the same
    baseline in a sweep repeat (kind, dataset, condition, seed). PermissionError when the runs folder
    is not writable."""
    paths.ensure_writable(baselines_dir())
    while True:
        folder = baseline_dir(kind, cfg, secrets.token_hex(2))
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        write_json(folder / CONFIG_JSON, {"baseline": kind, **cfg.to_dict()})
        return folder


def new_run_id(cfg: TrainConfig, when: dt.datetime | None = None) -> str:
    """Readable and unique: <yyyymmdd-hhmm>_<condition>_s<seed>_<4 hex>, e.g.
    20261126-2231_random0.5_s0_ab12 (random-init LM runs get an `_rndlm` tag)."""
    when = when or dt.datetime.now()
    cond = condition_slug(cfg.condition)
    tag = "_rndlm" if cfg.lm_init == "random" else ""
    return f"{when:%Y%m%d-%H%M}_{cond}{tag}_s{cfg.seed}_{secrets.token_hex(2)}"


def create_run_dir(cfg: TrainConfig) -> Path:
    """A fresh run directory holding config.json (never reuses an existing id)."""
    root = paths.ensure_writable(paths.runs_dir())
    for _ in range(100):
        run_dir = root / new_run_id(cfg)
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        write_json(run_dir / CONFIG_JSON, cfg.to_dict())
        return run_dir
    raise RunError(f"could not find a free run id under {root}")


def discard_unstarted(run_dir: Path) -> bool:
    """Remove a run folder that never saved a checkpoint (what a failed or cancelled start leaves:
    config.json, a log, maybe unreferenced tensors), so it does not list as a "new" run forever.
    Only those files go; a folder holding anything else is kept. Returns whether it is gone."""
    run_dir = Path(run_dir)
    if checkpoint_json(run_dir).exists():
        return False
    ckdir = checkpoint_dir(run_dir)
    tensors = [ckdir / name for name in (PROJECTOR_FILE, TRAIN_STATE_FILE, BEST_FILE)]
    for path in [run_dir / CONFIG_JSON, run_dir / "log"] + tensors + [staged_path(p) for p in tensors]:
        path.unlink(missing_ok=True)
    for folder in (ckdir, run_dir):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:                    # not empty: something we did not write
            return False
    return True


# ---------------------------------------------------------------- reading runs

@dataclass
class RunInfo:
    run_id: str
    path: Path
    config: TrainConfig
    status: str                      # "new" (no epoch saved yet) | "partial" | "cancelled" | "finished"
    epoch: int                       # completed epochs
    created: str | None = None
    updated: str | None = None
    git_commit: str | None = None
    epoch_metrics: list[dict] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)   # splits with eval/<split>/metrics.json
    checkpoint: dict = field(default_factory=dict)       # the whole checkpoint.json

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        d["config"] = self.config.to_dict()
        return d


def is_finished(run_dir: str | Path) -> bool:
    """The run's checkpoint says it finished (cheaper than load_run: one small JSON read)."""
    ck_path = checkpoint_json(Path(run_dir))
    return ck_path.is_file() and read_json(ck_path).get("status") == "finished"


def resolve_run_dir(run_id_or_path: str | Path) -> Path:
    """A run id (under runs_dir) or a path to a run directory → the directory, checked."""
    p = Path(run_id_or_path)
    # Only a plain name is looked up under the runs directory: "../x" is a path, never an id.
    as_id = not p.exists() and paths.is_plain_name(str(run_id_or_path))
    candidates = [paths.child(paths.runs_dir(), str(run_id_or_path), "run id")] if as_id else [p]
    for c in candidates:
        if (c / CONFIG_JSON).is_file():
            return c.resolve()
    hint = f"`taxolens runs` lists the runs in {paths.runs_dir()}"
    if not as_id and paths.is_plain_name(p.name) and (paths.runs_dir() / p.name / CONFIG_JSON).is_file():
        hint = f"the runs folder here is {paths.runs_dir()}, which holds it: pass its id {p.name}"   # TAXOLENS_DATA elsewhere
    raise RunError(f"no run {str(run_id_or_path)!r} (looked for config.json in {candidates[0]}; {hint})")


def load_run(run_id_or_path: str | Path) -> RunInfo:
    run_dir = resolve_run_dir(run_id_or_path)
    try:   # a config that does not validate (e.g. "projector_hidden": "abc") cannot be this run's
        cfg = TrainConfig.from_stored(read_json(run_dir / CONFIG_JSON)).validate()
    except RunError:
        raise
    except (TypeError, ConfigError) as exc:   # e.g. a run written by a newer TaxoLens, with more options
        raise RunError(f"{run_dir / 'config.json'} is not a training config ({exc})") from None
    ck_path = checkpoint_json(run_dir)
    saved = ck_path.is_file()            # once: a first save may write it between two looks
    ck = read_json(ck_path) if saved else {}
    # every save records the epoch, so a file without one is damaged, not a run that has not started
    epoch = (ck.get("epoch") if saved else 0) if isinstance(ck, dict) else None
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and isinstance(ck.get("metrics", []), list)):
        raise RunError(f"{ck_path} is not a checkpoint record (a JSON object with an integer epoch)")
    evaluated = [s for s in SPLITS if (eval_dir(run_dir, s) / METRICS_JSON).is_file()]
    created = ck.get("created") or dt.datetime.fromtimestamp(
        (run_dir / CONFIG_JSON).stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    return RunInfo(run_id=run_dir.name, path=run_dir, config=cfg, status=ck.get("status", "new"),
                   epoch=epoch, created=created, updated=ck.get("updated"),
                   git_commit=ck.get("git_commit"), epoch_metrics=list(ck.get("metrics", [])),
                   evaluated=evaluated, checkpoint=ck)


# What a run that starts from another run's projector (TrainConfig.init_from) must share with it:
# the models the projector fits, and the data: the same subset, split and condition, so the first
# stage's TRAIN images are this run's (none of its test images were trained on) and it saw no
# hypernym question this run's condition withholds.
INIT_MUST_MATCH = ("dataset", "encoder", "lm", "lm_init", "projector", "image_tokens", "projector_hidden",
                   "projector_tokens", "projector_input", "projector_topk", "prompt", "condition", "seed",
                   "max_concepts", "images_per_concept", "split_percent")


def init_source(cfg: TrainConfig) -> RunInfo:
    """The run cfg.init_from names, with a checkpoint and the models, data and condition of `cfg`
    (ConfigError saying what differs otherwise)."""
    try:
        src = load_run(cfg.init_from)
    except RunError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    if not src.checkpoint:
        raise ConfigError(f"init_from: run {src.run_id} has no checkpoint yet (no epoch finished)")
    differ = [f"{k} ({there!r} there, {here!r} here)"       # as recorded: 80 on 6 concepts is all
              for k, there, here in config_differences(src.config, cfg, INIT_MUST_MATCH)]
    if differ:
        raise ConfigError(f"init_from: run {src.run_id} differs in {', '.join(differ)}; a projector continues "
                          f"only on the same models, data and condition")
    return src


def list_runs(unreadable: list[tuple[Path, str]] | None = None) -> list[RunInfo]:
    """Every readable run, newest first; baselines are not runs, nor folders without a config.json.
    A run folder that cannot be read (its config.json or checkpoint.json is not valid JSON, or not a
    config or checkpoint record) is left out: appended to `unreadable` as (folder, reason) when that
    list is given, else named in one note on stderr (log `core.runs`) per folder and process."""
    root = paths.runs_dir()
    if not root.is_dir():
        return []
    runs = []
    for d in sorted(root.iterdir()):
        if d.name == BASELINES_DIR or not (d / CONFIG_JSON).is_file():
            continue
        try:
            runs.append(load_run(d))
        except RunError as exc:
            if unreadable is not None:
                unreadable.append((d, str(exc)))
            elif str(d) not in _noted_unreadable:
                _noted_unreadable.add(str(d))
                _log.warning("taxolens: note: run folder %s is left out, it cannot be read: %s", d.name, exc)
    return sorted(runs, key=lambda r: (r.created or "", r.run_id), reverse=True)


class ReusableRuns:
    """The runs a sweep takes instead of training a config again, indexed once: finished runs, and
    runs stopped with status "cancelled" (a job cancelled, a `sweep run` interrupted: nothing trains
    them now) to resume, on the installed version of their dataset, whoever trained them (`sweep run`,
    `sweep submit`, `taxolens train`). Runs are matched by their config as a new run would record it
    (DatasetVersions.as_recorded: a subset limit the data does not reach is no limit; a run from
    before random:<r> meant concept ablation is the pairs:<r> it trained), the device aside. A
    "partial" run is never taken: it may be training right now."""

    def __init__(self, versions: "DatasetVersions | None" = None):
        from core.conditions import legacy_spec
        self.versions = versions or DatasetVersions()
        self._found: dict[str, list[tuple[bool, str, Path]]] = {}
        root = paths.runs_dir()
        for d in sorted(root.iterdir()) if root.is_dir() else ():
            try:
                if d.name == BASELINES_DIR or not checkpoint_json(d).is_file():
                    continue
                ck = read_json(checkpoint_json(d))
                if not isinstance(ck, dict) or ck.get("status") not in ("finished", "cancelled"):
                    continue
                if ck.get("status") == "cancelled" and not resumable(ck):
                    continue                # stopped, and nothing to resume it from
                cfg = TrainConfig.from_stored(read_json(d / CONFIG_JSON)).validate()   # as load_run
                if not self.versions.checkpoint_is_current(ck, cfg.dataset):
                    continue
                report = (ck.get("condition") or {}).get("report") if isinstance(ck.get("condition"), dict) else None
                cfg = dataclasses.replace(cfg, condition=legacy_spec(cfg.condition, report))
                self._found.setdefault(self.key(cfg), []).append(
                    (ck.get("status") == "finished", str(ck.get("updated") or ""), d))
            except (RunError, OSError, TypeError, ConfigError):
                continue                    # unreadable: not a run to reuse

    def key(self, cfg: TrainConfig) -> str:
        d = self.versions.as_recorded(cfg).to_dict()
        d.pop("device", None)
        return json.dumps(d, sort_keys=True)

    def _candidates(self, cfg: TrainConfig) -> list[tuple[bool, str, Path]]:
        """(finished, updated, run dir) of cfg's runs: finished first, newest first."""
        return sorted(self._found.get(self.key(cfg), []), reverse=True)

    def peek(self, cfg: TrainConfig) -> tuple[Path, bool] | None:
        """(the run take() would give, whether it is finished), claiming nothing: for a plan."""
        candidates = self._candidates(cfg)
        return (candidates[0][2], candidates[0][0]) if candidates else None

    def take(self, cfg: TrainConfig, resume: bool = True) -> Path | None:
        """The newest finished run of `cfg`, else (with `resume`) the newest cancelled one, claimed:
        its record is set to "partial" under a lock shared by every process here, so no second job
        or sweep takes it, and a run that then fails to resume is not taken again."""
        candidates = self._candidates(cfg)
        finished = [d for done, _, d in candidates if done]
        if finished or not resume:
            return finished[0] if finished else None
        with _claim_lock():
            for _, _, d in candidates:          # re-read under the lock: another process may have claimed it
                if _switch_status(d, "cancelled", "partial", "claimed to resume"):
                    return d
        return None


@contextmanager
def _claim_lock():
    """The lock every process here takes to change who may resume a run (its checkpoint status)."""
    import fcntl
    root = paths.ensure_writable(paths.runs_dir())
    with open(root / ".resume.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _switch_status(run_dir: Path, old: str, new: str, why: str) -> bool:
    """Under _claim_lock: set checkpoint.json's status from `old` to `new` (logged); False when it
    is not `old` or cannot be read."""
    try:
        ck = read_json(checkpoint_json(run_dir))
    except (RunError, OSError):
        return False
    if not isinstance(ck, dict) or ck.get("status") != old:
        return False
    write_json(checkpoint_json(run_dir), {**ck, "status": new})
    append_log(run_dir, f"{why} (status {old} -> {new})")
    return True


def release_partial(run_dir: str | Path | None, why: str) -> bool:
    """A run saved as "partial" for its job to resume (core.base.RESUME_LATER) whose job will not
    resume it (cancelled while queued, or cancelled as it stopped): mark it "cancelled", as a
    cancel mid-run leaves it, so a later job of the same config may resume it (ReusableRuns). True
    when it changed."""
    if run_dir is None or not Path(run_dir).is_dir():
        return False
    with _claim_lock():
        return _switch_status(Path(run_dir), "partial", "cancelled", why)


def _older_than_checkpoint(path: Path, run_dir: str | Path) -> bool:
    """A result file written before the run's checkpoint was last saved (a resumed run's)."""
    ck_path = checkpoint_json(Path(run_dir))
    return ck_path.is_file() and path.is_file() and path.stat().st_mtime < ck_path.stat().st_mtime


def _record_is_current(run_dir: str | Path, record: dict, path: Path) -> bool:
    """A result derived from a run's checkpoint (an evaluation, a ranking) is of that checkpoint as
    it is now: by the version it records (version_of), which survives copying and re-shipping, or,
    in a record from before versions were recorded, by not being older than checkpoint.json. A
    resumed or retrained run's earlier results are not."""
    recorded = record.get("checkpoint")
    if recorded is not None:
        return recorded == checkpoint_version(run_dir)
    return not _older_than_checkpoint(path, run_dir)


def evaluation_is_current(run_dir: str | Path, split: str) -> bool:
    """The run's evaluation on `split` is there and of its checkpoint as it is (_record_is_current)."""
    metrics = eval_dir(Path(run_dir), split) / METRICS_JSON
    try:
        record = read_json(metrics) if metrics.is_file() else None
    except (RunError, OSError):
        record = {}
    return record is not None and _record_is_current(run_dir, record if isinstance(record, dict) else {}, metrics)


def load_metrics(run_dir: str | Path, split: str = "test") -> dict | None:
    """metrics.json of an evaluation (run dir, run id, or baseline dir); None if not evaluated yet."""
    return _eval_record(run_dir, split, METRICS_JSON, "an evaluation")


def _run_folder(run_dir: str | Path) -> Path:
    """A run (or baseline) folder as given, else a run id resolved under the runs folder."""
    p = Path(run_dir)
    return p if p.is_dir() else resolve_run_dir(run_dir)


def _eval_record(run_dir: str | Path, split: str, name: str, what: str) -> dict | None:
    """A JSON object under the run's eval/<split>/; None when the file is not there."""
    f = eval_dir(_run_folder(run_dir), split) / name
    if not f.is_file():
        return None
    record = read_json(f)
    if not isinstance(record, dict):
        raise RunError(f"{f} is not {what} (a JSON object)")
    return record


def config_differences(old: TrainConfig, new: TrainConfig, keys=None,
                       versions: "DatasetVersions | None" = None) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for each field (of `keys`; default all but the device, which says
    where a run trains, not what) in which a stored config and a new one differ as recorded (a subset
    limit the data does not reach is no limit; condition spellings canonical): how resuming a run
    folder and continuing from a first stage decide "the same config"."""
    from core.conditions import legacy_spec
    versions = versions or DatasetVersions()
    a, b = versions.as_recorded(old).to_dict(), versions.as_recorded(new).to_dict()
    a["condition"], b["condition"] = legacy_spec(a["condition"], None), legacy_spec(b["condition"], None)
    keys = keys or [k for k in b if k != "device"]
    return [(k, getattr(old, k), getattr(new, k)) for k in keys if a.get(k) != b.get(k)]


def as_recorded_on(cfg: TrainConfig, ds) -> TrainConfig:
    """`cfg` as a new run of it on dataset `ds` records it: a subset limit the dataset does not reach
    is None (all). A sweep's `cpu` scale (max_concepts 80) on a 6-concept dataset trains exactly what
    no limit trains, so it is recorded, reused and reported as that same setting."""
    limits = ds.effective_limits(cfg.max_concepts, cfg.images_per_concept)
    if limits == (cfg.max_concepts, cfg.images_per_concept):
        return cfg
    return dataclasses.replace(cfg, max_concepts=limits[0], images_per_concept=limits[1])


class DatasetVersions:
    """Which version of each dataset is installed, by datasets.version_sha256, read once per name. A run or
    baseline computed on another version (the default set gained six art styles on 2026-12-02) used
    other images and splits: it must not be averaged with, or reused for, runs on this one. Also what
    a config records on the installed data (as_recorded)."""

    def __init__(self):
        self._sha: dict[str, str | None] = {}
        self._datasets: dict[str, "datasets.Dataset | None"] = {}

    def dataset(self, name: str) -> "datasets.Dataset | None":
        """The installed dataset of that name, loaded once; None when there is none."""
        if name not in self._datasets:
            try:
                self._datasets[name] = datasets.load_dataset(name)
            except datasets.DatasetError:
                self._datasets[name] = None
        return self._datasets[name]

    def installed(self, name: str) -> str | None:
        """The installed dataset's hash; None when no dataset of that name is installed."""
        if name not in self._sha:
            ds = self.dataset(name)
            self._sha[name] = datasets.version_sha256(ds) if ds is not None else None
        return self._sha[name]

    def current(self, name: str | None, recorded: str | None) -> bool:
        """Whether something that records dataset `name` at hash `recorded` belongs with the
        installed data: the hashes agree, or nothing of that name is installed to compare with.
        Nothing recorded (a baseline written before baselines recorded it) is not current."""
        installed = self.installed(name or datasets.DEFAULT_NAME)
        return installed is None or recorded == installed

    def as_recorded(self, cfg: TrainConfig) -> TrainConfig:
        """`cfg` as a new run of it records it: a subset limit its dataset does not reach is None
        (all), so `--max-concepts 80` on a 6-concept dataset is the same setting as no limit. cfg
        itself when the dataset is not installed."""
        if cfg.max_concepts is None and cfg.images_per_concept is None:
            return cfg
        ds = self.dataset(cfg.dataset)
        return cfg if ds is None else as_recorded_on(cfg, ds)

    def checkpoint_is_current(self, ck: dict, name: str | None = None) -> bool:
        """current() for a run's checkpoint.json contents (its dataset's name, else `name`)."""
        recorded = ck.get("dataset") or {}
        return self.current(recorded.get("name") or name, recorded.get("table_sha256"))


def follows_recipe(config: TrainConfig, bases: list[TrainConfig] | None = None) -> bool:
    """Whether `config` is one of `bases` (default: the default config and the shipped recipe,
    config.SHIPPED_RECIPE) or one's leaf stage (`taxolens train --leaf-stage`), whatever its seed and
    device: what the app offers by default, and how the shipped checkpoint must have been trained."""
    bases = bases or [TrainConfig(), TrainConfig(**SHIPPED_RECIPE)]
    # as `--leaf-stage` trains a base: its LEAF_ONLY options in the leaf stage, not the first
    stages = [b.split_leaf_only() for b in bases]
    recipes = [first for first, _ in stages] + (
        [first.leaf_stage(config.init_from, **leaf_only) for first, leaf_only in stages] if config.init_from else [])
    have = config.to_dict()
    return any(all(have[k] == v for k, v in r.to_dict().items() if k not in ("seed", "device")) for r in recipes)


def default_checkpoint(config: TrainConfig | None = None) -> Path | None:
    """The finished run that follows_recipe (of `config` when given, else of the default config or the
    shipped recipe) and scored best on its validation questions (the score early stopping keeps its
    best epoch by), the newest among equals; seeds differ by as much as recipes do, so the newest run is
    not the one to show first. A first stage whose leaf stage is there is not offered: the leaf
    stage is the recipe's finished product, and their validation scores do not rank them (the score
    is mostly hypernym questions, which the leaf stage trades a little of for leaf ranking). Only
    runs trained on the installed version of their dataset count: scores on another version's
    validation images do not compare, nor do its splits."""
    bases = [config] if config else None
    versions = DatasetVersions()
    matching = [run for run in list_runs() if run.finished and follows_recipe(run.config, bases)
                and versions.checkpoint_is_current(run.checkpoint or {}, run.config.dataset)]
    if not matching:
        return None
    superseded = {Path(run.config.init_from).name for run in matching if run.config.init_from}
    matching = [run for run in matching if run.run_id not in superseded]

    def validation(run: RunInfo) -> float:
        score = ((run.checkpoint or {}).get("best") or {}).get("score")
        return score if isinstance(score, (int, float)) else float("-inf")

    return max(matching, key=validation).path     # max keeps the first (newest) of equals


# Only when the shipped checkpoint does not fit: the full default config needs thousands of updates
# through the 135M-parameter LM (hours on a 2-core CPU), so without a GPU the first run trains a
# starter checkpoint on 60 concepts instead (500 updates: leaf accuracy ~0.8 in ~15 minutes); the
# full default can be trained from the Train page, or on a GPU / Slurm.
STARTER_ON_CPU = {"max_concepts": 60, "epochs": 8, "max_steps": 500}


def first_run_config() -> TrainConfig:
    """What the first run trains: the default config on a GPU, the starter config on a CPU."""
    import torch  # lazy: the app's home page imports this module and need not load torch for it

    return TrainConfig() if torch.cuda.is_available() else TrainConfig(**STARTER_ON_CPU)


def preferred_checkpoint() -> tuple[Path | None, str | None]:
    """The checkpoint the app offers first, and why: the finished default-config run best on validation
    ("default"), else the best finished run of the first run's config ("starter": on a CPU the
    smaller starter), else (None, None)."""
    default = default_checkpoint()
    if default is not None:
        return default, "default"
    starter = default_checkpoint(first_run_config())
    return (starter, "starter") if starter is not None else (None, None)


def read_answers(run_dir: str | Path, split: str = "test"):
    """A run's scored questions on a split (eval/<split>/questions.csv) as a pandas DataFrame, with
    answer / pred / seen as booleans and `correct` = answer == pred. run_dir: a run folder or id."""
    import pandas as pd

    folder = _run_folder(run_dir)
    path = eval_dir(folder, split) / QUESTIONS_CSV
    if not path.is_file():
        raise RunError(f"run {folder.name} has no {split} evaluation (no {path}); "
                       f"`taxolens evaluate {folder.name} --split {split}` makes one")
    table = pd.read_csv(path)
    for column in ("answer", "pred", "seen"):
        if column in table and table[column].dtype != bool:
            table[column] = table[column].astype(str).str.lower().isin(("true", "1", "yes"))
    table["correct"] = table["answer"] == table["pred"]
    return table


def checkpoint_stamp(run_dir: str | Path) -> str:
    """The version of a run's checkpoint (checkpoint.json's mtime in ns; "0" without one): results
    computed from a checkpoint are stored with it and recomputed when it changes (a resumed run)."""
    try:
        return str(checkpoint_json(Path(run_dir)).stat().st_mtime_ns)
    except OSError:
        return "0"


def read_cached_result(path: Path, fmt: int, run_dir: str | Path) -> dict | None:
    """A JSON result stored beside a run, or None when it is missing, unreadable, of another format
    or computed from another version of the run's checkpoint."""
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(result, dict) or result.get("format") != fmt or \
            result.get("checkpoint_stamp") != checkpoint_stamp(run_dir):
        return None
    return result


LEARNED_LEAF_ACCURACY = 0.8   # below this on its own test split, a checkpoint has not learned
YES_RATE_LIMIT = 0.8          # a model saying yes to more than this share of questions is biased, not grounded
LEARNED_TOP5 = 0.5            # every leaf asked: the right one in the top 5 for at least half the images


def learning_note(run_dir: str | Path) -> str | None:
    """Why a run's answers should not be trusted, or None when its own test evaluation shows it
    learned: leaf accuracy >= 0.8, "yes" to at most 80 % of the questions and, when every leaf was
    ranked (ranking.json), the right leaf in the top 5 for at least half of the images. Both must
    be of the checkpoint as it is: after the run trained further, its earlier evaluation speaks for
    an earlier checkpoint (note: evaluate it again), and its earlier ranking is left out."""
    run_dir = _run_folder(run_dir)
    m = load_metrics(run_dir, "test")
    if m is not None and not _record_is_current(run_dir, m, eval_dir(run_dir, "test") / METRICS_JSON):
        return ("this checkpoint trained further after its test evaluation, so that evaluation is of an earlier "
                "checkpoint; evaluate it again (Predict's “Evaluate it on its test split” once it has finished, or `taxolens evaluate`) before reading its answers")
    return learning_note_of(m, load_ranking(run_dir, "test"))


def version_of(ck: dict | None) -> str | None:
    """Which save of a run's checkpoint a checkpoint.json record is (its `updated`, epoch and step);
    None without one. A result derived from the checkpoint records it: unlike checkpoint_stamp (the
    file's mtime) it survives copying (a shipped checkpoint's copies, a copied data folder)."""
    if not isinstance(ck, dict) or not ck.get("updated"):
        return None
    return f"{ck['updated']} epoch {ck.get('epoch')} step {ck.get('step')}"


def checkpoint_version(run_dir: str | Path) -> str | None:
    """version_of the run's checkpoint.json as it is on disk now."""
    try:
        return version_of(read_json(checkpoint_json(Path(run_dir))))
    except (RunError, OSError):
        return None


def ranking_is_current(run_dir: str | Path, record: dict, split: str = "test") -> bool:
    """A leaf ranking was made from the run's checkpoint as it is now (_record_is_current)."""
    return _record_is_current(run_dir, record, eval_dir(Path(run_dir), split) / RANKING_FILE)


def answer_warning(run_dir: str | Path) -> str | None:
    """learning_note for showing beside a run's answers: a damaged evaluation is not an error there
    (the answers stand), it is a reason not to trust them."""
    try:
        return learning_note(run_dir)
    except RunError as exc:
        return f"its test evaluation cannot be read, so nothing shows it has learned ({exc})"


def load_ranking(run_dir: str | Path, split: str = "test", stale: bool = False) -> dict | None:
    """ranking.json of a run's split (core.evaluate.leaf_ranking); None if never ranked, or if it was
    ranked from an earlier save of the checkpoint (unless `stale`: then the record as it is)."""
    run_dir = _run_folder(run_dir)
    record = _eval_record(run_dir, split, RANKING_FILE, "a leaf ranking")
    if record is None or stale or ranking_is_current(run_dir, record, split):
        return record
    return None


def ranking_summary(run_dir: str | Path, split: str = "test") -> dict | None:
    """load_ranking's numbers without its per-image rows, for headlines (top1, top5, median_rank,
    images, vocabulary, ...); None when the split was never ranked, was ranked from an earlier save
    of the checkpoint, or its record cannot be read."""
    try:
        ranking = load_ranking(run_dir, split)
    except RunError:
        return None
    if not ranking or ranking.get("top1") is None:
        return None
    return {k: v for k, v in ranking.items() if k != "rows"}


# What the two leaf numbers measure, for every page that shows them side by side.
LEAF_NUMBERS_MEAN = ("Yes/no leaf accuracy asks each test image about its own leaf and about one random other "
                     "leaf; the every-leaf ranking asks about all {vocabulary} leaves, as Predict does, and "
                     "counts where the image's own leaf lands: first (top-1) or among the first five (top-5).")


def learning_note_of(m: dict | None, ranking: dict | None = None) -> str | None:
    """learning_note for a test evaluation's metrics dict (None: not evaluated) and, optionally,
    its leaf ranking (core.evaluate.leaf_ranking)."""
    if m is None or "leaf" not in m:
        return ("this checkpoint has not been evaluated on its test split, so nothing shows it has "
                "learned; evaluate it (Predict's “Evaluate it on its test split” once it has finished, or `taxolens evaluate`) before reading its answers")
    leaf, overall = m["leaf"].get("accuracy"), m.get("confusion", {})
    n = sum(overall.values()) if overall else 0
    yes_rate = (overall.get("tp", 0) + overall.get("fp", 0)) / n if n else None
    problems = []
    if leaf is None or leaf < LEARNED_LEAF_ACCURACY:
        problems.append(f"its test leaf accuracy is {leaf:.2f} (< {LEARNED_LEAF_ACCURACY})" if leaf is not None
                        else "it has no leaf test questions")
    if yes_rate is not None and yes_rate > YES_RATE_LIMIT:
        problems.append(f"it answers yes to {yes_rate:.0%} of its test questions")
    top5 = (ranking or {}).get("top5")
    if top5 is not None and top5 < LEARNED_TOP5:
        problems.append(f"asked about every leaf, it puts the right one in its top 5 for only {top5:.0%} "
                        f"of {ranking.get('images')} test images")
    if not problems:
        return None
    return "this checkpoint has not learned enough: " + " and ".join(problems) + "; treat its answers as unreliable"


def check_compatible(run_dir: str | Path, encoder: str, lm: str) -> None:
    """ConfigError unless the run's checkpoint was trained with this encoder and LM."""
    run = load_run(run_dir)
    if run.config.encoder != encoder or run.config.lm != lm:
        raise RunError(f"checkpoint {run.run_id} was trained with encoder {run.config.encoder} / "
                       f"LM {run.config.lm}; it cannot be used with encoder {encoder} / LM {lm}")


def git_commit(where: str | Path | None = None) -> str:
    """The HEAD commit of the checkout (this one, or the one `where` is in), with "-dirty" appended
    (as `git describe --dirty` does) when tracked files differ from it: a run trained on uncommitted
    code does not claim a commit that cannot reproduce it. "unknown" outside a git checkout."""
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout.strip():
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = changed.returncode == 0 and changed.stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
