"""Live job widgets: the first-run status box and the job table with progress, log tail and cancel.

Both are fragments with run_every, so only they refresh every few seconds while the rest of the
page stays still. Each wraps its own body in guard(): a fragment rerun happens outside the page's
own guard.
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from core import jobs as jobs_api
from ui import common

REFRESH_S = 2.0
# Material icons render from Streamlit's own font (emoji depend on the viewer's system fonts).
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/play_circle:",
                "succeeded": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:"}


def _ago(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return dt.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _starter() -> str:
    from core.runs import STARTER_ON_CPU
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in STARTER_ON_CPU.items())


def _worker_note(store) -> None:
    if not store.live_workers():
        st.warning("No job worker is running, so queued jobs wait. `make app` starts one; "
                   "or run `make worker` in another terminal.", icon=":material/engineering:")


def status_label(store, job) -> str:
    """What a job's progress bar says: its message while it runs; while it is queued behind jobs
    that take every slot of the workers here, which one it waits for (a 2-core machine runs one
    job at a time, so a trees job can wait an hour behind a training run)."""
    if job.status != "queued":
        return job.message or "running"
    workers = store.live_workers()
    slots = sum(w.get("concurrency") or 1 for w in workers)
    running = [j for j in store.list(status="running") if j.backend == "local"]
    if workers and len(running) >= slots:
        return (f"waiting for job #{running[-1].id} ({jobs_api.describe(running[-1])}) to finish: the worker "
                f"here runs {slots} job{'s' if slots > 1 else ''} at a time")
    return "waiting for the worker"


def _no_default_dataset(trained: bool) -> None:
    from core.config import TrainConfig
    from core.data.datasets import list_datasets
    from ui.firstrun import INSTALL_DATASET

    here = [n for n in list_datasets() if n != TrainConfig.dataset]
    meanwhile = ("Until then, Predict uses the newest trained run." if trained else
                 f"Meanwhile the Train page trains a projector on the datasets here "
                 f"({', '.join(f'**{n}**' for n in here)})." if here else "")
    st.warning(f"**The default dataset, {TrainConfig.dataset}, is not installed**, so there is no first-run "
               f"model to train. {INSTALL_DATASET} installs it (then reload this page). {meanwhile}",
               icon=":material/dataset:")


@st.fragment(run_every=REFRESH_S)
def first_run_panel(rerun_app_when_ready: bool = True) -> None:
    """Where the default checkpoint stands; reruns the whole page once it becomes ready."""
    with common.guard("The first-run status"):
        from ui import firstrun

        store = common.store()
        state = firstrun.state(store, preferred=common.preferred_checkpoint)
        was_ready = st.session_state.get("_first_run_ready")
        st.session_state["_first_run_ready"] = state.ready
        if state.ready:
            if was_ready is False and rerun_app_when_ready:
                common.refresh_runs()
                st.rerun(scope="app")       # the checkpoint just arrived: rebuild the page around it
            job = state.job
            if job is not None and job.kind != "train" and job.status in ("queued", "running"):
                label = status_label(store, job)
                st.progress(min(1.0, max(0.0, job.progress)),
                            text=f"First run, job #{job.id}: image features and category coherence for "
                                 f"Browse and Geometry — {label} ({job.progress:.0%})")
                _worker_note(store)
            return
        job = state.job
        trained = any(r.epoch >= 1 for r in common.runs_list())
        if not state.dataset_installed:       # a first run can only fail: say how to install it instead
            _no_default_dataset(trained)
            return
        if (job is None or job.done) and state.shipped_installable:
            # `make app` installs it as it starts; an app started another way (`streamlit run app.py`,
            # --no-first-run), or after a first-run job that failed, offers it here rather than a
            # training job it does not need
            _offer_shipped(store, trained)
            return
        if job is None and trained:
            text, button = st.columns([4, 1], vertical_alignment="center")
            text.caption("No default-config checkpoint yet; Predict uses the newest trained run instead.")
            if button.button("Train the first-run model", key="first_run_submit"):
                firstrun.submit_default_job(store)
                st.rerun(scope="fragment")
            return
        with st.container(border=True):
            if trained:
                st.markdown("**The first-run model is being trained.** Until it is ready, Predict uses "
                            "the newest trained run.")
            else:
                st.markdown("**No trained checkpoint yet.** Predicting needs a trained projector; "
                            "TaxoLens trains one on this machine as its first job: the default config "
                            f"on a GPU, a starter on a CPU ({_starter()}).")
                if state.shipped_note:
                    st.caption(f"The checkpoint that ships with TaxoLens is not used: {state.shipped_note}.")
            if job is None:
                if st.button("Train the first-run model now", type="primary", key="first_run_submit"):
                    firstrun.submit_default_job(store)
                    st.rerun(scope="fragment")
                return
            if job.status in ("queued", "running"):
                label = status_label(store, job)
                st.progress(min(1.0, max(0.0, job.progress)),
                            text=f"First-run training job #{job.id}: {label} ({job.progress:.0%})")
                _worker_note(store)
                log = jobs_api.read_log_tail(job.log_path, lines=8)
                if log:
                    st.code(log, language=None)
                st.caption("This page updates by itself; Predict becomes usable when the job finishes.")
            else:
                st.error(state.describe())
                if st.button("Train the first-run model again", key="first_run_retry"):
                    firstrun.submit_default_job(store)
                    st.rerun(scope="fragment")


@st.cache_data(show_spinner=False, max_entries=4)
def _shipped_about(stamp: float) -> str:  # noqa: ARG001 - the shipped checkpoint.json's mtime keys it
    from core import metrics, paths, runs
    run_id = runs.read_json(runs.checkpoint_json(paths.SHIPPED_CHECKPOINT)).get("run_id", "")
    m = runs.load_metrics(paths.SHIPPED_CHECKPOINT, "test")
    leaf = metrics.headline(m)["leaf_accuracy"] if m else None
    return run_id + (f", test leaf accuracy {leaf:.3f}" if leaf is not None else "")


def _offer_shipped(store, trained: bool) -> None:
    from core import paths, runs
    from core.models import checkpoint
    from ui import firstrun

    with st.container(border=True):
        meanwhile = " Meanwhile Predict uses the newest trained run." if trained else ""
        about = _shipped_about(runs.checkpoint_json(paths.SHIPPED_CHECKPOINT).stat().st_mtime)
        st.markdown(f"**No default checkpoint here yet.**{meanwhile} The checkpoint that ships with TaxoLens "
                    f"({about}) fits this dataset: using it copies it into the runs folder and queues one job "
                    "for the features Browse and Geometry show, as `make app` does when it starts; nothing "
                    "is trained.")
        use, train = st.columns(2)
        if use.button("Use the shipped checkpoint", type="primary", key="first_run_install"):
            if checkpoint.install_shipped() is None:          # it stopped fitting since this was drawn
                st.error(f"The shipped checkpoint cannot be used: {checkpoint.shipped_fit()[1]}.")
                return
            firstrun.submit_prepare_job(store)     # installed: the features job (a failed first run's marker goes)
            common.refresh_runs()
            st.rerun(scope="app")
        if train.button("Train the first-run model instead", key="first_run_submit"):
            firstrun.submit_default_job(store)
            st.rerun(scope="fragment")


def job_rows(jobs: list) -> list[dict]:
    from core.jobs.store import worker_gone

    def status(j) -> str:                     # a running job whose worker died says so
        return "worker gone" if worker_gone(j) else j.status

    return [{"id": j.id, "job": jobs_api.describe(j), "status": status(j),
             "progress": float(j.progress),
             "message": (jobs_api.error_parts(j.error)[0] if j.error else j.message or "")[:160],
             "queued at": _ago(j.created), "finished at": _ago(j.finished)} for j in jobs]


def listed_jobs(store, limit: int) -> list:
    """Every queued and running job and the newest `limit` finished ones, newest first. A sweep
    queues dozens of jobs: the newest `limit` alone left out the one running, so it could not be
    cancelled here. Read in the order jobs move (queued, running, finished), so one that moves
    meanwhile is seen at least once."""
    from core.jobs.store import FINISHED

    active = store.list(status="queued") + store.list(status="running")
    finished = sorted((j for s in FINISHED for j in store.list(status=s, limit=limit)),
                      key=lambda j: j.id, reverse=True)[:limit]
    latest = {j.id: j for j in active + finished}          # a job read twice: its later state
    return sorted(latest.values(), key=lambda j: j.id, reverse=True)


def cancel_sweep_control(store, sweep_id: int) -> None:
    """One click cancels the rest of a sweep, once a checkbox confirms it (it cannot be undone)."""
    said_key = f"sweep_cancelled_{sweep_id}"
    remaining = jobs_api.sweep_remaining(sweep_id, store=store)
    if remaining:
        running = sum(j.status == "running" for j in remaining)
        slot = st.empty()
        with slot.container():
            cols = st.columns([3, 1], vertical_alignment="center")
            sure = cols[0].checkbox(
                f"Cancel the rest of sweep #{sweep_id}: its {len(remaining)} unfinished job(s), {running} running "
                f"and {len(remaining) - running} queued", key=f"sweep_cancel_sure_{sweep_id}",
                help="Queued jobs are cancelled at once, running ones asked to stop. The same sweep submitted "
                     "again reuses its finished runs and resumes the stopped ones.")
            clicked = cols[1].button("Cancel the sweep", key=f"sweep_cancel_{sweep_id}", disabled=not sure)
        if clicked and sure:
            cancelled, stopping = jobs_api.cancel_sweep(sweep_id, store=store)
            st.session_state[said_key] = (f"Sweep #{sweep_id}: cancelled {cancelled} job(s)"
                                          + (f"; asked {stopping} running job(s) to stop" if stopping else "") + ".")
            slot.empty()                         # nothing left to cancel: the control goes
    if st.session_state.get(said_key):           # said while the sweep is shown, not for a moment
        st.success(st.session_state[said_key], icon=":material/cancel:")


@st.fragment(run_every=REFRESH_S)
def job_table(limit: int = 25) -> None:
    """Running and queued jobs, then the newest finished ones, with progress bars; pick one for its
    log tail and a cancel button (and, for a sweep's job, one that cancels the rest of the sweep)."""
    with common.guard("The job table"):
        store = common.store()
        jobs = listed_jobs(store, limit)
        if not jobs:
            st.info("No jobs yet. Submit one with the forms above.")
            return
        _worker_note(store)
        counts = store.counts()
        st.caption(" · ".join(f"{STATUS_ICONS[s]} {s}: {n}" for s, n in counts.items() if n)
                   + f" — listed: every running and queued job, and the newest {limit} finished")
        st.dataframe(job_rows(jobs), hide_index=True, width="stretch", column_config={
            "id": st.column_config.NumberColumn("id", width="small"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                        format="percent"),
        })
        names = {j.id: f"#{j.id} {jobs_api.describe(j)}" for j in jobs}   # no status: it changes under the widget
        # a job queued since the last rerun (from this page's form or elsewhere) is the one to follow:
        # the widget would otherwise keep showing the job picked before
        # a sweep's child jobs do not take it over: its last-queued child is not the one running
        newest = max((j.id for j in jobs if j.parent_id is None), default=max(names))
        seen = st.session_state.get("job_detail_newest")
        if seen is not None and newest > seen:
            st.session_state["job_detail_id"] = newest
        st.session_state["job_detail_newest"] = newest
        chosen = st.selectbox("Job details", list(names), key="job_detail_id", format_func=names.get)
        if chosen is None:
            return
        job = store.get(chosen)
        cols = st.columns([3, 1])
        cols[0].markdown(f"**#{job.id}** {STATUS_ICONS.get(job.status, '')} {job.status} — "
                         f"{job.message or ''}")
        if not job.done and cols[1].button("Cancel job", key=f"cancel_{job.id}"):
            st.toast(f"Job #{job.id}: {jobs_api.cancel(job.id, store=store)}")
        sweep_id = jobs_api.sweep_of(job, store=store)
        if sweep_id is not None:
            cancel_sweep_control(store, sweep_id)
        if job.error:
            message, trace = jobs_api.error_parts(job.error)
            st.error(message)
            if trace:
                with st.expander("Traceback"):
                    st.code(trace, language=None)
        log = jobs_api.read_log_tail(job.log_path, lines=30)
        st.code(log or "(no log output yet)", language=None)


# The spec keys of the jobs a page offers (offer_job), and what a job queued without one runs now
# (_coherence_execute reads a spec without images as the training images, the default split).
COHERENCE_DEFAULTS = {"seed": 0, "max_concepts": None, "images_per_concept": None, "images": "train",
                      "split_percent": None}
PROBE_DEFAULTS = {"lm_init": "pretrained", "seed": 0, "device": "auto"}
DEFAULTS = {"coherence": COHERENCE_DEFAULTS, "probe": PROBE_DEFAULTS, "evaluate": {"split": "test"},
            "clusters": {"split": "test"}, "lens": {}}
OFFERED = {"coherence": ("dataset", "encoder"), "probe": ("lm", "dataset"), "evaluate": ("run",),   # required keys
           "clusters": ("run", "sources"), "lens": ("run",)}
WHAT = {"coherence": ("Coherence", "Compute features and coherence"), "probe": ("LM probe", "Run the LM probe"),
        "evaluate": ("Evaluation", "Evaluate it on its test split"), "clusters": ("Trees", "Compute the trees"),
        "lens": ("Logit lens", "Compute")}


def _normal(kind: str, spec: dict) -> dict:
    """A job spec with its defaults filled in, to tell whether a queued job is the one asked for."""
    from core.config import SPLIT_PERCENT, canonical_split_percent
    defaults = DEFAULTS[kind]
    out = {**defaults, **{k: spec.get(k) for k in OFFERED[kind]},
           **{k: v for k, v in spec.items() if k in defaults}}
    if kind == "coherence":
        out["split_percent"] = None if out["images"] == "all" else \
            canonical_split_percent(out["split_percent"] or SPLIT_PERCENT)
    return out


@st.fragment(run_every=REFRESH_S)
def offered_job_status(job_id: int, refresh=None) -> None:
    """Live progress of an offered job; once it is done, `refresh` (the caller's cache clear) and
    the page redraws itself."""
    with common.guard("The job status"):
        store = common.store()
        job = store.get(job_id)
        if job.done:
            if refresh is not None:
                refresh()
            st.rerun(scope="app")        # failed or cancelled: the page shows why and offers a retry
        if job.status == "queued":
            _worker_note(store)                  # a bare `streamlit run` has none: say why it waits
        label = status_label(store, job)
        st.progress(min(1.0, max(0.0, job.progress)),
                    text=f"{WHAT[job.kind][0]} job #{job.id}: {label} ({job.progress:.0%})")


def offer_job(kind: str, spec: dict, intro: str, key: str, refresh=None, button: str | None = None,
              where=None) -> None:
    """What a page lacks, as a job of `kind` (coherence, probe, evaluate, clusters, lens) with `spec`:
    the progress of the same job queued or running, else the reason the last one failed, `intro`
    (none when empty) and a button (`button`, else the kind's label; in `where`, a column say) that
    queues it. A job, not work inside the page: it survives leaving the page or touching a widget.
    `refresh`: clears what the caller cached, so the job's output is read once it is done (once
    more when the page comes back to a job that succeeded meanwhile)."""
    from core.jobs import JobSpecError

    store = common.store()
    wanted = _normal(kind, spec)
    mine = [j for j in store.list(kind=kind) if _normal(kind, j.spec) == wanted]     # newest first
    pending = [j for j in mine if not j.done]
    if pending:
        offered_job_status(pending[-1].id, refresh)
        return
    read = f"offer_read_{mine[0].id}" if mine else ""
    if mine and mine[0].status == "succeeded" and refresh is not None and not st.session_state.get(read):
        st.session_state[read] = True           # once: a result that still does not show is not re-read forever
        refresh()
        st.rerun()
    if mine and mine[0].status == "failed":
        message = jobs_api.error_parts(mine[0].error or mine[0].message or "no reason given")[0]
        st.error(f"The last {WHAT[kind][0].lower()} job (#{mine[0].id}) failed: {message.splitlines()[0]}")
    if intro:
        st.info(intro)
    if (where or st).button(button or WHAT[kind][1], type="primary", key=key):
        try:
            jobs_api.submit(kind, spec, store=store)
        except JobSpecError as exc:
            st.error(f"Not queued: {exc}")
            return
        st.rerun()
