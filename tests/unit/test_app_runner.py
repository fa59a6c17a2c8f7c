"""ui.app_runner: Streamlit and the job worker start together and stop together — on Ctrl-C, on
SIGTERM, when Streamlit exits, and when the launcher itself is killed. The real commands are
replaced by small sleeper processes that record their pid."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core import paths
from ui import app_runner
from core.jobs.store import pid_alive

SLEEPER = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
           "time.sleep(float(sys.argv[2]))")
STUBBORN = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _pid(path: Path) -> int:
    assert _wait_for(lambda: path.exists() and path.read_text().strip()), f"{path} never written"
    return int(path.read_text())


def _launcher(tmp_path: Path, app_seconds: float, extra_args=()) -> subprocess.Popen:
    """main() in a subprocess with both commands replaced by sleepers."""
    script = textwrap.dedent(f"""
        import sys
        from ui import app_runner as a
        a.streamlit_command = lambda host, port: [sys.executable, "-c", {SLEEPER!r}, {str(tmp_path / 'app.pid')!r}, "{app_seconds}"]
        a.worker_command = lambda: [sys.executable, "-c", {SLEEPER!r}, {str(tmp_path / 'worker.pid')!r}, "60"]
        sys.exit(a.main(["--no-first-run", *{list(extra_args)!r}]))
    """)
    env = dict(os.environ, TAXOLENS_DATA=str(tmp_path / "data"))
    return subprocess.Popen([sys.executable, "-c", script], cwd=paths.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_streamlit_and_worker(tmp_path, sig):
    launcher = _launcher(tmp_path, app_seconds=60)
    app_pid, worker_pid = _pid(tmp_path / "app.pid"), _pid(tmp_path / "worker.pid")
    assert pid_alive(app_pid) and pid_alive(worker_pid)
    launcher.send_signal(sig)
    out, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, out
    assert f"{signal.Signals(sig).name} received" in out
    assert not pid_alive(app_pid) and not pid_alive(worker_pid)


def test_streamlit_exiting_stops_the_worker(tmp_path):
    launcher = _launcher(tmp_path, app_seconds=1)
    worker_pid = _pid(tmp_path / "worker.pid")
    out, _ = launcher.communicate(timeout=30)
    assert "Streamlit exited with code 0" in out
    assert not pid_alive(worker_pid)


def test_no_worker_flag_starts_only_streamlit(tmp_path):
    launcher = _launcher(tmp_path, app_seconds=1, extra_args=["--no-worker"])
    out, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, out
    assert not (tmp_path / "worker.pid").exists()


def test_children_die_with_a_killed_launcher(tmp_path):
    launcher = _launcher(tmp_path, app_seconds=60)
    app_pid, worker_pid = _pid(tmp_path / "app.pid"), _pid(tmp_path / "worker.pid")
    launcher.kill()                 # SIGKILL: no cleanup code runs; the kernel's death signal must
    launcher.wait()
    assert _wait_for(lambda: not pid_alive(app_pid) and not pid_alive(worker_pid))


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(app_runner, "STOP_GRACE_S", 0.5)
    child = app_runner._start([sys.executable, "-c", STUBBORN, str(tmp_path / "s.pid")], "stubborn")
    pid = _pid(tmp_path / "s.pid")
    app_runner._stop(child, "stubborn")
    assert child.returncode == -signal.SIGKILL
    assert not pid_alive(pid)


def test_commands_run_streamlit_on_app_py_and_the_job_worker():
    cmd = app_runner.streamlit_command("127.0.0.1", 8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app.py")
    assert ["--server.port", "8765"] == cmd[cmd.index("--server.port"):cmd.index("--server.port") + 2]
    assert app_runner.worker_command()[1:] == ["-m", "core.jobs.worker"]


def test_only_the_app_is_told_to_preload_predicts_checkpoint(tmp_path):
    tell = ("import os, sys, time; open(sys.argv[1], 'w').write(os.environ.get('TAXOLENS_PRELOAD', '-')); "
            "time.sleep(float(sys.argv[2]))")
    script = textwrap.dedent(f"""
        import sys
        from ui import app_runner as a
        a.streamlit_command = lambda host, port: [sys.executable, "-c", {tell!r}, {str(tmp_path / 'app.env')!r}, "1"]
        a.worker_command = lambda: [sys.executable, "-c", {tell!r}, {str(tmp_path / 'worker.env')!r}, "60"]
        sys.exit(a.main(["--no-first-run"]))
    """)
    env = {k: v for k, v in os.environ.items() if k != app_runner.PRELOAD_ENV}
    proc = subprocess.run([sys.executable, "-c", script], cwd=paths.ROOT, timeout=60,
                          env={**env, "TAXOLENS_DATA": str(tmp_path / "data")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "app.env").read_text() == "1"
    assert (tmp_path / "worker.env").read_text() == "-"


def test_the_worker_gives_its_jobs_less_time_to_save_than_the_launcher_gives_the_worker():
    """On Ctrl-C the launcher SIGTERMs the worker's group and SIGKILLs it after STOP_GRACE_S; a job
    stopping at its next step must be saved, and requeued by its worker, before that."""
    from core.jobs import worker
    from ui import app_runner
    assert worker.KILL_GRACE_S + 1.0 < app_runner.STOP_GRACE_S
