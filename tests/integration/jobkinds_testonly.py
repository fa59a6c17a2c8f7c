"""TEST-ONLY job kinds for the job-system tests (loaded through TAXOLENS_JOB_PLUGINS; never shipped).

`test-echo` appends "<job id> <pid>" to a marker file (so a test can count executions), optionally
reports progress over `steps` sleeps of `sleep_s` (cancellable at each report), and raises when
`fail` is set. `test-echo-stubborn` ignores cancellation, to exercise the SIGTERM/SIGKILL fallback.
"""
from __future__ import annotations

import os
import signal
import time

from core.jobs import kinds

ALLOWED = {"marker", "sleep_s", "steps", "fail", "ignore_sigterm"}


def _validate(spec: dict) -> dict:
    unknown = set(spec) - ALLOWED
    if unknown or "marker" not in spec:
        raise kinds.JobSpecError(f"test-echo spec needs 'marker' and only {sorted(ALLOWED)}")
    return {"sleep_s": 0.0, "steps": 1, "fail": False, "ignore_sigterm": False, **spec}


def _execute(spec: dict, ctx: kinds.JobContext) -> dict:
    with open(spec["marker"], "a") as f:
        f.write(f"{ctx.job_id} {os.getpid()}\n")
    if spec["ignore_sigterm"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for step in range(spec["steps"]):
        time.sleep(spec["sleep_s"])
        if spec["ignore_sigterm"]:
            print(f"step {step + 1} (not listening for cancel)", flush=True)
        else:
            ctx.progress((step + 1) / spec["steps"], f"step {step + 1}/{spec['steps']}")
    if spec["fail"]:
        raise RuntimeError("test-echo was asked to fail")
    return {"echo": ctx.job_id}


kinds.register(kinds.JobKind("test-echo", _validate, _execute, describe=lambda s: "test echo"))
