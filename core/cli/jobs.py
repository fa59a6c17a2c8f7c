"""`jobs` and `sweep` commands of `taxolens` (core/cli/__init__.py calls register(subparsers)).

    jobs submit train --condition random:0.5 --seed 1 [--epochs 2 ...] [--spec file.json] [--slurm ...]
    jobs submit evaluate <run id or dir> [--split test]      (or --run <run>)
    jobs submit baseline majority|image-probe [training options]   (or --baseline majority)
    jobs submit probe [--lm smollm2-135m --dataset concepts --lm-init pretrained --seed 0]
    jobs submit coherence [--dataset concepts --encoder ... --seed 0 --images train|all]
    jobs submit clusters <run> [--split test|all|train|val --sources encoder,projector,answers]
    jobs submit lens <run>
    jobs list [--status running] | jobs show <id> | jobs cancel [--sweep] <id>... | jobs logs <id> [--follow]
    jobs worker [--concurrency N] | jobs worker --status | jobs worker --stop
    sweep submit <spec.json | paper | lms> [--scale cpu|full|smoke] [--dry-run] [--one-job [--together N]] [--slurm ...]
    sweep show <sweep job id | spec.json | paper | lms | name of a sweep run here> [--scale S] [--csv out.csv]
    sweep run <spec.json | paper | lms> [--scale cpu|full|smoke] [--together N] [--report docs/results.md]

Every handler returns the process exit code: 0 ok, 1 a job that failed; bad input (ConfigError, an
unknown job id) and an unreadable store are raised to core.cli.main, the one error policy (one line,
exit 2 / exit 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.base import ConfigError
from core.cli.common import (add_train_options, check_output, output_path, read_json_object, train_overrides,
                             train_setting)
from core.config import TrainConfig, number_arg
from core.jobs import kinds, sweeps
from core.jobs.store import FINISHED, STATUSES, Job, JobStore, JobStoreError, read_log_tail, worker_gone

# The Slurm-only options: (flag, dest, SlurmConfig field). Their defaults are None, so a flag given
# without --slurm can be told from one left out (and refused instead of silently ignored); the
# values used when left out are SlurmConfig's.
SLURM_ONLY = (("--partition", "partition", "partition"), ("--account", "account", "account"),
              ("--gpus", "gpus", "gpus_per_node"), ("--cpus", "cpus", "cpus_per_task"),
              ("--mem-gb", "mem_gb", "mem_gb"), ("--time", "time", "timeout_min"),
              ("--slurm-arg", "slurm_arg", None), ("--cluster", "cluster", "cluster"))


def _add_slurm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Slurm (via submitit; default is the local worker); the options "
                                      "after --slurm need it")
    group.add_argument("--slurm", action="store_true", help="submit to Slurm instead of the local queue")
    group.add_argument("--partition")
    group.add_argument("--account")
    group.add_argument("--gpus", type=number_arg(int, 0, 64), help="GPUs per node (default 1)")
    group.add_argument("--cpus", type=number_arg(int, 1, 4096), help="CPUs per task (default 8)")
    group.add_argument("--mem-gb", type=number_arg(int, 1, 1 << 20), help="memory per node in GB (default 32)")
    group.add_argument("--time", type=number_arg(int, 1, 525600), metavar="MINUTES",
                       help="time limit (default 240)")
    group.add_argument("--slurm-arg", action="append", metavar="KEY=VALUE",
                       help="extra sbatch option, e.g. constraint=a100 (repeatable)")
    group.add_argument("--cluster", choices=("slurm", "local", "debug"),
                       help="submitit backend (default slurm); 'local' runs through the same path on this machine")


def _slurm_options(args: argparse.Namespace):
    """The SlurmConfig of --slurm and its options, validated (also for --dry-run, which must refuse
    what a real submit refuses); None without --slurm, where any Slurm-only option is a ConfigError
    (it would be ignored: the job would quietly run on the local queue)."""
    if not getattr(args, "slurm", False):
        given = [flag for flag, dest, _ in SLURM_ONLY if getattr(args, dest, None) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --slurm "
                              f"(without it the job goes to the local queue)")
        return None
    from core.jobs.slurm import SlurmConfig
    extra = {}
    for item in args.slurm_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--slurm-arg takes KEY=VALUE, got {item!r}")
        extra[key] = value
    fields = {field: getattr(args, dest) for _, dest, field in SLURM_ONLY
              if field is not None and getattr(args, dest) is not None}
    return SlurmConfig(**fields, additional=extra).validate()


def register(subparsers) -> None:
    """Add the `jobs` and `sweep` command groups to an argparse subparsers object."""
    jobs = subparsers.add_parser("jobs", help="queue, inspect and cancel background jobs",
                                 description="Background jobs: train, evaluate, baseline, probe, coherence, clusters, lens, import.")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    submit = jsub.add_parser("submit", help="queue a job")
    ksub = submit.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, help_text in (("train", "train a projector, then evaluate it on the test split"),
                            ("evaluate", "evaluate an existing run on a split"),
                            ("baseline", "a baseline: majority or image-probe"),
                            ("probe", "what the LM alone knows about the dataset's categories (probe-lm)"),
                            ("coherence", "visual coherence table of the dataset's categories"),
                            ("clusters", "a run's category trees against WordNet (what `taxolens clusters` does)"),
                            ("lens", "where a run's images land in the LM (what `taxolens lens` does)"),
                            ("import", "import a folder in THINGS layout as a dataset (what `taxolens data "
                                       "import` does, as a background job)")):
        p = ksub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--spec", type=Path, help="job spec JSON file (flags given as well override it)")
        p.add_argument("--start-worker", action="store_true", help="start a background worker if none runs")
        p.add_argument("--json", action="store_true", help="print the submitted job as JSON")
        if name in ("train", "baseline"):
            add_train_options(p, config_file=False)
        if name == "train":
            p.add_argument("--eval-splits", nargs="*", choices=("train", "val", "test"), default=argparse.SUPPRESS,
                           help="splits evaluated after training (default test)")
        if name == "baseline":          # positional as in `taxolens baseline majority`, or --baseline
            p.add_argument("which", nargs="?", choices=kinds.BASELINES, metavar="BASELINE",
                           help=f"{' or '.join(kinds.BASELINES)} (or --baseline)")
            p.add_argument("--baseline", choices=kinds.BASELINES, default=argparse.SUPPRESS)
        if name in ("evaluate", "clusters", "lens"):     # positional as in `taxolens evaluate RUN`, or --run
            p.add_argument("run_arg", nargs="?", metavar="RUN", help="run id or run directory (or --run)")
            p.add_argument("--run", default=argparse.SUPPRESS, help="run id or run directory")
        if name == "evaluate":
            p.add_argument("--split", choices=("train", "val", "test"), default=argparse.SUPPRESS)
        if name == "clusters":
            p.add_argument("--split", choices=("train", "val", "test", "all"), default=argparse.SUPPRESS,
                           help="the images whose trees are drawn (default test)")
            p.add_argument("--sources", default=argparse.SUPPRESS,
                           help="comma-separated, from encoder, projector, answers (default all three)")
        if name == "probe":
            for flag, typ in (("lm", str), ("dataset", str), ("seed", int)):
                p.add_argument(f"--{flag}", type=typ, default=argparse.SUPPRESS)
            p.add_argument("--lm-init", choices=("pretrained", "random"), default=argparse.SUPPRESS)
            p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=argparse.SUPPRESS)
        if name == "import":            # as `taxolens data import ROOT CSV --name NAME`
            p.add_argument("root", nargs="?", default=argparse.SUPPRESS,
                           help="folder with one sub-folder of images per concept")
            p.add_argument("csv", nargs="?", default=argparse.SUPPRESS,
                           help="CSV with columns concept,categories[,synset]; categories ';'-separated")
            p.add_argument("--name", default=argparse.SUPPRESS, help="name of the new dataset")
            p.add_argument("--replace", action="store_true", default=argparse.SUPPRESS,
                           help="replace an existing dataset of that name")
            p.add_argument("--style", default=argparse.SUPPRESS,
                           help="how the pictures were made, shown beside each image (default: photo)")
        if name == "coherence":
            for flag, typ in (("dataset", str), ("encoder", str), ("seed", int), ("max-concepts", int),
                              ("images-per-concept", int)):
                p.add_argument(f"--{flag}", type=typ, default=argparse.SUPPRESS)
            p.add_argument("--split-percent", default=argparse.SUPPRESS, metavar="TRAIN/VAL/TEST",
                           help="with --images train: the split whose training images count (default 60/20/20)")
            p.add_argument("--images", default=argparse.SUPPRESS, metavar="{train,all}",
                           help="train: each category's training images under the seed's split, as in the "
                                "paper (default); all: all its images")
        _add_slurm_options(p)
        p.set_defaults(func=_cmd_submit)

    lst = jsub.add_parser("list", help="list jobs, newest first")
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--kind")
    lst.add_argument("--limit", type=number_arg(int, 1, 10**9), default=30)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_list)

    show = jsub.add_parser("show", help="everything about one job")
    show.add_argument("job_id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_cmd_show)

    cancel = jsub.add_parser("cancel", help="cancel queued or running jobs")
    cancel.add_argument("job_ids", type=int, nargs="+")
    cancel.add_argument("--sweep", action="store_true",
                        help="each id is a sweep job: cancel it and every unfinished job it queued")
    cancel.set_defaults(func=_cmd_cancel)

    logs = jsub.add_parser("logs", help="a job's log")
    logs.add_argument("job_id", type=int)
    logs.add_argument("--tail", type=number_arg(int, 1, 10**9), default=40, help="last N lines (default 40)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(func=_cmd_logs)

    worker = jsub.add_parser("worker", help="run a worker in the foreground (same as python -m core.jobs.worker); "
                                            "--status / --stop for the ones running")
    worker.add_argument("--concurrency", type=number_arg(int, 1, 256))
    worker.add_argument("--idle-exit", type=number_arg(float, 0, 1e9), metavar="SECONDS",
                        help="exit after this long with nothing to do (default: run until stopped)")
    action = worker.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="list the workers running on this machine")
    action.add_argument("--stop", action="store_true",
                        help="stop the workers running on this machine (`make app`'s, --start-worker's); "
                             "their running jobs are requeued and resume when a worker starts again")
    worker.set_defaults(func=_cmd_worker)

    sweep = subparsers.add_parser("sweep", help="grids of runs: submit, and aggregate across seeds")
    ssub = sweep.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    ssubmit = ssub.add_parser("submit", help="expand a sweep (preset or JSON spec) into jobs")
    ssubmit.add_argument("spec", help=f"a JSON spec file or a preset ({', '.join(sweeps.PRESETS)})")
    ssubmit.add_argument("--scale", choices=sorted(sweeps.SCALES),
                         help=f"subset size and epochs (default {sweeps.DEFAULT_SCALE}; 'full' is for a GPU)")
    _add_sweep_base_options(ssubmit)
    ssubmit.add_argument("--dry-run", action="store_true", help="list the jobs without submitting")
    ssubmit.add_argument("--start-worker", action="store_true", help="start a background worker if none runs")
    ssubmit.add_argument("--one-job", action="store_true",
                         help="queue the whole sweep as one job that trains the runs sharing the LM together "
                              "(what `sweep run` does here), instead of one job per run")
    ssubmit.add_argument("--together", type=number_arg(int, 1, 10_000), metavar="N",
                         help="with --one-job: at most N runs per shared LM pass (default: all of a group)")
    _add_slurm_options(ssubmit)
    ssubmit.set_defaults(func=_cmd_sweep_submit)

    srun = ssub.add_parser("run", help="run a whole sweep here, in this process (runs sharing the LM train "
                                       "together), then regenerate the results report",
                           description="Train every run of the sweep with the runs that share the frozen LM "
                                       "stepping together (one LM pass per update), evaluate them, run the "
                                       "baselines and LM probes, and write the results report. Run it again "
                                       "to resume: finished work is skipped.")
    srun.add_argument("spec", help=f"a JSON spec file or a preset ({', '.join(sweeps.PRESETS)})")
    srun.add_argument("--scale", choices=sorted(sweeps.SCALES),
                      help=f"subset size and epochs (default {sweeps.DEFAULT_SCALE})")
    _add_sweep_base_options(srun)
    srun.add_argument("--together", type=number_arg(int, 1, 10_000), metavar="N",
                      help="at most N runs per shared LM pass (default: every run of a group; lower it "
                           "when memory runs short)")
    srun.add_argument("--report", type=output_path, default=None,
                      help="results report to write (default: docs/results.md, or results.md in the data folder "
                           "when TAXOLENS_DATA points elsewhere); --no-report to skip")
    srun.add_argument("--no-report", action="store_true", help="do not write the results report")
    srun.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    srun.set_defaults(func=_cmd_sweep_run)

    sshow = ssub.add_parser("show", help="progress and aggregated results (mean, 95%% t-CI over seeds)",
                            description="A submitted sweep by its job id, or a sweep that `sweep run` ran here "
                                        "by its spec (a JSON file or a preset, with the --scale it ran at).")
    sshow.add_argument("sweep", metavar="SWEEP",
                       help=f"a sweep job id, or the spec `sweep run` was given ({', '.join(sweeps.PRESETS)} or a JSON file)")
    sshow.add_argument("--scale", choices=sorted(sweeps.SCALES),
                       help=f"with a spec: the scale it ran at (default {sweeps.DEFAULT_SCALE})")
    _add_sweep_base_options(sshow, "with a spec: ")
    sshow.add_argument("--csv", type=output_path, help="also write the aggregate table to this CSV")
    sshow.set_defaults(func=_cmd_sweep_show)


def _add_sweep_base_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--dataset", metavar="NAME",
                   help=f"{prefix}run the sweep on this dataset (default: the spec's, else concepts); the "
                        "sweep's name then ends in it, e.g. paper-full-things")
    p.add_argument("--set", dest="settings", action="append", type=train_setting, default=[],
                   metavar="FIELD=VALUE",
                   help=f"{prefix}a training option for every run of the sweep, over the spec's and the "
                        "scale's (repeatable; e.g. --set epochs=8)")


def _sweep_base(args: argparse.Namespace) -> dict:
    """The training options `--dataset` and `--set` put under every run of a sweep."""
    base = dict(args.settings)
    if args.dataset is not None:
        if base.get("dataset", args.dataset) != args.dataset:
            raise ConfigError(f"--dataset {args.dataset} and --set dataset={base['dataset']} disagree")
        base["dataset"] = args.dataset
    return base


# -- helpers -------------------------------------------------------------------------------------

def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _duration(job: Job) -> str:
    if not job.started:
        return "-"
    seconds = int((job.finished or time.time()) - job.started)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _describe(job: Job) -> str:
    from core.jobs import describe
    return describe(job)


GONE = "worker gone"


def _status(job: Job) -> str:
    """The status to show: a running job whose worker died says so (a new worker requeues it)."""
    return GONE if worker_gone(job) else job.status


def _gone_note(job: Job) -> str:
    beat = f", last heartbeat {_when(job.heartbeat)}" if job.heartbeat else ""
    return (f"its worker (pid {job.worker_pid} on {job.worker_host}{beat}) is gone; starting a worker "
            f"(`taxolens jobs worker`) requeues it")


def _sync_slurm(store: JobStore) -> None:
    if store.list(status="running", backend="slurm", limit=1):
        from core.jobs import slurm
        slurm.sync(store)


def _run(handler, args: argparse.Namespace) -> int:
    """Run a handler; an unknown job id (KeyError from the store) is bad input like any ConfigError."""
    try:
        return handler(args)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0] if exc.args else exc)) from None


def _existing_store() -> JobStore | None:
    """The job store, or None when no job was ever submitted: a command that only reads or changes
    existing jobs must not create the database (nothing written)."""
    from core import paths
    return JobStore() if paths.db_path().exists() else None


def _store_or_no_job(job_id: int) -> JobStore:
    store = _existing_store()
    if store is None:
        raise KeyError(f"no job with id {job_id}")
    return store


def _worker_hint(store: JobStore, start: bool) -> None:
    from core.jobs.worker import ensure_worker
    # on stderr: stdout is the submitted job(s), JSON with --json
    if start:
        print(f"worker pid {ensure_worker(store=store)}", file=sys.stderr)
    elif not store.live_workers():
        print("no worker is running: start one with `python -m core.jobs.worker` (or pass --start-worker)",
              file=sys.stderr)


# -- handlers ------------------------------------------------------------------------------------

def _spec_from_args(args: argparse.Namespace) -> dict:
    spec: dict[str, Any] = {}
    if args.spec is not None:
        spec = read_json_object(args.spec, "job spec")
    given = vars(args)
    config = train_overrides(args)
    if config:
        spec["config"] = {**spec.get("config", {}), **config}
    elif args.kind in ("train", "baseline"):
        spec.setdefault("config", {})
    for key in ("eval_splits", "baseline", "run", "split"):
        if key in given:
            spec[key] = given[key]
    if given.get("run_arg"):
        if spec.get("run", given["run_arg"]) != given["run_arg"]:
            raise ConfigError(f"two runs given: {given['run_arg']} and --run {spec['run']}")
        spec["run"] = given["run_arg"]
    if given.get("which"):
        if spec.get("baseline", given["which"]) != given["which"]:
            raise ConfigError(f"two baselines given: {given['which']} and --baseline {spec['baseline']}")
        spec["baseline"] = given["which"]
    if args.kind == "coherence":
        for key in ("dataset", "encoder", "seed", "max_concepts", "images_per_concept", "images", "split_percent"):
            if key in given:
                spec[key] = given[key]
    if args.kind == "clusters" and "sources" in given:
        spec["sources"] = [s.strip() for s in given["sources"].split(",") if s.strip()]
    if args.kind == "probe":
        for key in ("lm", "dataset", "lm_init", "seed", "device"):
            if key in given:
                spec[key] = given[key]
    if args.kind == "import":
        for key in ("root", "csv", "name", "replace", "style"):
            if key in given:
                spec[key] = given[key]
    return spec


def _cmd_submit(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        slurm_cfg = _slurm_options(args)
        spec = _spec_from_args(args)
        # validated before the store is opened: a refused job leaves no trace, not even the database
        if args.slurm:
            from core.jobs import slurm
            job_id = slurm.submit(args.kind, spec, slurm_cfg)
        else:
            from core.jobs import submit
            job_id = submit(args.kind, spec)
        store = JobStore()
        job = store.get(job_id)
        if args.json:
            print(json.dumps(dataclasses.asdict(job), indent=2))
        else:
            where = {"slurm": " (Slurm)", "local": " (submitit, on this machine)", "debug": " (submitit debug executor)"}
            print(f"job {job_id} queued: {_describe(job)}" + (where[slurm_cfg.cluster] if args.slurm else ""))
        if not args.slurm:
            _worker_hint(store, args.start_worker)
        return 0
    return _run(handle, args)


def _cmd_list(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        store = _existing_store()
        if store is None:
            print("[]" if args.json else "no jobs")
            return 0
        _sync_slurm(store)
        jobs = store.list(status=args.status, kind=args.kind, limit=args.limit)
        if args.json:
            print(json.dumps([dataclasses.asdict(j) for j in jobs], indent=2))
            return 0
        if not jobs:
            print("no jobs")
            return 0
        print(f"{'id':>5}  {'status':<11} {'progress':>8}  {'time':>8}  {'kind':<9} description / message")
        for j in jobs:
            status = _status(j)
            note = (_gone_note(j) if status == GONE else j.message if j.status == "running"
                    else (j.error or "").split("\n")[0][:60])
            backend = " [slurm]" if j.backend == "slurm" else ""
            parent = f" (sweep {j.parent_id})" if j.parent_id else ""
            print(f"{j.id:>5}  {status:<11} {100 * j.progress:>7.0f}%  {_duration(j):>8}  {j.kind:<9} "
                  f"{_describe(j)}{parent}{backend}" + (f" — {note}" if note else ""))
        return 0
    return _run(handle, args)


def _cmd_show(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        store = _store_or_no_job(args.job_id)
        _sync_slurm(store)
        job = store.get(args.job_id)
        if args.json:
            print(json.dumps(dataclasses.asdict(job), indent=2))
            return 0
        print(f"job {job.id}: {_describe(job)}")
        status = f"running, but {_gone_note(job)}" if _status(job) == GONE else job.status
        for label, value in (("status", status), ("progress", f"{100 * job.progress:.0f}% {job.message}"),
                             ("created", _when(job.created)), ("started", _when(job.started)),
                             ("finished", _when(job.finished)),
                             ("elapsed", _duration(job) + (f" (since the first of {job.attempts} attempts, "
                                                           f"time between them included)"
                                                           if job.attempts > 1 and job.backend != "slurm" else "")),
                             # a Slurm job's attempts and log are the scheduler's, not the local worker's
                             ("attempts", job.attempts if job.backend != "slurm" else "- (Slurm's own)"),
                             ("backend", job.backend),
                             ("worker", f"{job.worker_pid} on {job.worker_host}" if job.worker_pid else "-"),
                             ("output", job.run_dir or "-"), ("log", _log_path(job) or "-"),
                             ("sweep", job.parent_id or "-")):
            print(f"  {label:<9} {value}")
        print("  spec     " + json.dumps(job.spec, indent=2).replace("\n", "\n           "))
        if job.result:
            shown = {k: v for k, v in job.result.items() if k != "register"}
            print("  result   " + json.dumps(shown, indent=2).replace("\n", "\n           "))
        if job.error:
            print("  error\n" + job.error)
        return 0
    return _run(handle, args)


def _cmd_cancel(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        from core.jobs import cancel
        store = _store_or_no_job(args.job_ids[0])
        # every id first: one unknown id (a typo) cancels nothing, rather than the ones before it
        unknown = []
        for job_id in dict.fromkeys(args.job_ids):
            try:
                store.get(job_id)
            except KeyError:
                unknown.append(str(job_id))
        if unknown:
            raise ConfigError(f"no job with id {', '.join(unknown)}; nothing cancelled")
        if args.sweep:
            return _cancel_sweeps(store, list(dict.fromkeys(args.job_ids)))
        for job_id in args.job_ids:
            before = store.get(job_id).status
            status = before if before in FINISHED else cancel(job_id, store=store)
            if status == "running":
                print(f"job {job_id}: cancellation requested; it stops within seconds")
            elif status == "cancelled" and before != "cancelled":
                print(f"job {job_id}: cancelled")
            else:
                print(f"job {job_id}: already {status}, nothing to cancel")
        return 0
    return _run(handle, args)


def _cancel_sweeps(store, sweep_ids: list[int]) -> int:
    from core.jobs import cancel_sweep
    not_sweeps = [f"#{i} ({store.get(i).kind})" for i in sweep_ids if store.get(i).kind != "sweep"]
    if not_sweeps:
        raise ConfigError(f"--sweep takes sweep jobs; {', '.join(not_sweeps)} is not one; nothing cancelled "
                          "(`taxolens jobs list` shows each job's kind)")
    for sweep_id in sweep_ids:
        cancelled, stopping = cancel_sweep(sweep_id, store=store)
        print(f"sweep {sweep_id}: cancelled {cancelled} job(s)"
              + (f"; asked {stopping} running job(s) to stop (they stop within seconds)" if stopping else "")
              + ("" if cancelled or stopping else "; nothing left to cancel"))
    return 0


def _log_path(job: Job) -> str | None:
    if job.backend == "slurm":
        from core.jobs import slurm
        path = slurm.log_path(job)
        return str(path) if path else None
    return job.log_path


def _cmd_logs(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        store = _store_or_no_job(args.job_id)
        job = store.get(args.job_id)
        path = _log_path(job)
        if not path:
            print(f"job {job.id} is {job.status} and has no log yet")
            return 0
        if not args.follow:
            print(read_log_tail(path, lines=args.tail))
            return 0
        log = None
        try:
            while True:
                if log is None and Path(path).exists():
                    log = open(path, "rb")
                chunk = log.read() if log is not None else b""
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
                job = store.get(args.job_id)
                if job.done and not chunk:
                    sys.stdout.write(f"\n[job {job.id} {job.status}]\n")
                    return 0
                time.sleep(1.0)
        finally:
            if log is not None:
                log.close()
    return _run(handle, args)


def _cmd_worker(args: argparse.Namespace) -> int:
    from core.jobs.worker import main, stop_workers
    if args.status or args.stop:
        if args.concurrency is not None or args.idle_exit is not None:
            raise ConfigError("--concurrency and --idle-exit are for starting a worker, not with --status/--stop")
        store = JobStore()
        if args.status:
            live = store.live_workers()
            running = store.list(status="running", backend="local")
            for w in live:
                mine = [j.id for j in running if j.worker_pid == w["pid"]]
                print(f"worker pid {w['pid']} on {w['host']}, concurrency {w['concurrency']}, running "
                      + (f"job(s) {', '.join(map(str, mine))}" if mine else "nothing"))
            if not live:
                print("no worker is running on this machine")
            return 0
        stopped = stop_workers(store)
        print(f"stopped worker(s) {', '.join(map(str, stopped))}" if stopped else "no worker was running")
        return 0
    argv = []
    if args.concurrency is not None:
        argv += ["--concurrency", str(args.concurrency)]
    if args.idle_exit is not None:
        argv += ["--idle-exit", str(args.idle_exit)]
    return main(argv)


def _cmd_sweep_submit(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        slurm_cfg = _slurm_options(args)       # before --dry-run: it refuses what a real submit refuses
        if args.together is not None and getattr(args, "one_job", None) is False:   # `sweep run` has no --one-job
            raise ConfigError("--together applies to --one-job sweeps (and `sweep run`)")
        spec = sweeps.resolve(args.spec, scale=args.scale, base=_sweep_base(args))
        if args.dry_run:
            try:
                normalized = sweeps.normalize(spec)
            except kinds.JobSpecError as exc:       # the plan still lists; what this machine lacks is said
                normalized = sweeps.normalize(spec, here=False)
                print(f"taxolens sweep: note: not runnable on this machine as it is: {exc}", file=sys.stderr)
            jobs = normalized["jobs"]
            for note in sweeps.same_data_notes(jobs):
                print(f"taxolens sweep: note: {note}", file=sys.stderr)
            from core import runs
            reusable = runs.ReusableRuns()
            plan = []
            for job in jobs:                 # what each train job would find done or stopped here
                found = reusable.peek(TrainConfig.from_dict(job["spec"]["config"])) if job["kind"] == "train" else None
                plan.append("" if found is None else
                            f"  (reuses {found[0].name})" if found[1] else f"  (resumes {found[0].name})")
            reused = sum(p.startswith("  (reuses") for p in plan)
            print(f"sweep {normalized['name']}: {len(jobs)} jobs (a dry run: nothing queued or trained)"
                  + (f"; {reused} of its runs {'is' if reused == 1 else 'are'} finished here and would be "
                     f"reused" if reused else ""))
            for i, (job, note) in enumerate(zip(jobs, plan), 1):
                print(f"{i:>4}  {kinds.get(job['kind']).describe(job['spec'])}{note}")
            return 0
        if args.one_job:
            return _submit_one_job_sweep(args, spec, slurm_cfg)
        if args.slurm:
            from core.jobs import slurm
            sweep_id = slurm.submit("sweep", spec, slurm_cfg)
            n = len(JobStore().list(parent_id=sweep_id))
            print(f"sweep {sweep_id} submitted to Slurm as {n} jobs; `sweep show {sweep_id}` for progress")
            return 0
        from core.jobs import submit
        sweep_id = submit("sweep", spec)     # validated before the store is opened
        store = JobStore()
        jobs = store.get(sweep_id).spec["jobs"]
        for note in sweeps.same_data_notes(jobs):
            print(f"taxolens sweep: note: {note}", file=sys.stderr)
        print(f"sweep {sweep_id} queued ({len(jobs)} jobs once a worker expands it); `sweep show {sweep_id}` for progress")
        _worker_hint(store, args.start_worker)
        return 0
    return _run(handle, args)


def _submit_one_job_sweep(args: argparse.Namespace, spec: dict, slurm_cfg) -> int:
    job_spec = {"source": spec, "together": args.together}
    if args.slurm:
        from core.jobs import slurm
        job_id = slurm.submit("sweep-run", job_spec, slurm_cfg)
        print(f"sweep submitted to Slurm as one job ({job_id}); `sweep show {job_id}` for results")
        return 0
    from core.jobs import submit
    job_id = submit("sweep-run", job_spec)      # validated (every run of the grid) before it is queued
    print(f"sweep queued as one job ({job_id}); `jobs logs {job_id}` for progress, `sweep show {job_id}` for results")
    _worker_hint(JobStore(), args.start_worker)
    return 0


def _cmd_sweep_run(args: argparse.Namespace) -> int:
    from core import paths, results, runs
    from core.cli.common import emit
    from core.jobs import sweep_run

    if args.dry_run:                         # writes nothing, so no report path to check
        return _cmd_sweep_submit(args)
    out = args.report or paths.default_report()
    if not args.no_report:
        check_output(out, "--report")        # before the sweep's hours, not after
    done = sweep_run.run_sweep(args.spec, scale=args.scale, together=args.together, base=_sweep_base(args))
    if not args.no_report:
        left_out: list[str] = []
        repeated: list[str] = []
        rows = results.collect(left_out, repeated)
        runs.write_text(out, results.report_markdown(rows, commit=runs.git_commit(), left_out=left_out,
                                                     repeated=repeated))
        done["report"] = str(out)
    emit({k: v for k, v in done.items() if k != "runs"} | {"runs": len(done["runs"]),
                                                           "show": f"taxolens sweep show {done['name']}"})
    return 0


def _cmd_sweep_show(args: argparse.Namespace) -> int:
    def handle(args: argparse.Namespace) -> int:
        from core.jobs import sweep_run
        if args.csv is not None:
            check_output(args.csv, "--csv")        # before reading the sweep, and written or not
        if not args.sweep.isdigit():          # a sweep `sweep run` ran here: its runs, named by its manifest
            source = sweep_run.source_of(args.sweep, args.scale, _sweep_base(args))
            rows, total = sweep_run.results_rows(source), len(sweeps.expand(source))
            title, pending = f"sweep {sweeps.sweep_name(source)}", "nothing run yet"
        else:
            if args.scale or args.dataset or args.settings:
                raise ConfigError("--scale, --dataset and --set go with a spec; a sweep job knows its own")
            sweep_id = int(args.sweep)
            store = _store_or_no_job(sweep_id)
            _sync_slurm(store)
            sweep = store.get(sweep_id)
            if sweep.kind not in ("sweep", "sweep-run"):
                raise ConfigError(f"job {sweep.id} is a {sweep.kind} job, not a sweep")
            if sweep.kind == "sweep-run":        # one job: its runs are on disk, named by the manifest
                rows = sweep_run.results_rows(sweep.spec["source"])
                total = sweep.spec["jobs"]
            else:
                rows = sweeps.sweep_results(store, sweep.id)
                total = len(sweep.spec["jobs"])
            title, pending = f"sweep {sweep.id} {sweep.spec['name']}", f"not expanded yet ({sweep.status})"
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(f"{title}: {total} job{'s' if total != 1 else ''}; " +
              (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if rows else pending))
        from core import results
        # one table per setting: a custom sweep's grids may differ in more than what a group names
        done = [r for r in rows if r.get("metrics")]
        keys = results.settings(done)
        parts = [(results.describe_setting(k), results.in_setting(done, k)) for k in keys] if len(keys) > 1 else \
            [(None, [r for r in done if r["kind"] != "probe"])]
        tables = [(title, results.aggregate(part)) for title, part in parts]
        probe_table = results.aggregate([r for r in done if r["kind"] == "probe"])
        import pandas as pd
        table = pd.concat([t.assign(setting=title) if title else t for title, t in tables] + [probe_table],
                          ignore_index=True)
        if table.empty:
            print("no finished results yet")
            return 0
        with pd.option_context("display.max_rows", 500, "display.width", 250, "display.max_colwidth", 30):
            for title, part in tables:
                main = results.wide(part[part["kind"] != "probe"]) if not part.empty else part
                if not main.empty:
                    print((f"\n{title}\n" if title else "") +
                          "per-category yes/no macro-F1 (seen / unseen hypernym pairs), a fair coin's level, leaf "
                          "accuracy and per-concept macro-F1: mean [95% t-CI] over n seeds")
                    print(main.to_string(index=False, na_rep="–"))
            probes = results.wide(probe_table, metrics=results.PROBE_METRICS)
            if not probes.empty:
                print("\nLM probes (the LM alone on the dataset's (concept, category) pairs)")
                print(probes.to_string(index=False, na_rep="–"))
        if args.csv:
            from core import files
            files.write_atomic(args.csv, table.to_csv(index=False))   # never into a FIFO or device
            print(f"wrote {args.csv} (every metric, mean and 95% t-CI over seeds)")
        return 0
    return _run(handle, args)
