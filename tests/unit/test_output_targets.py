"""Output paths (--out, --csv, --report, --dest, --run-dir) and the data folder: a FIFO is never
replaced by a plain file, a path that cannot be written is one line and exit 2 before any work (never
a traceback, never after a sweep), and TAXOLENS_DATA must name a folder. Also `jobs cancel` with an
unknown id and the Slurm options, which must be refused where they would be ignored.

Non-regular targets are FIFOs made here (os.mkfifo); no device node is ever used as an output."""
from __future__ import annotations

import errno
import json
import os
import pickle
import stat
from pathlib import Path

import pytest

from core import cli, files, paths
from cli_checks import refused, tree


@pytest.fixture
def place(tmp_path):
    """A folder outside the data dir holding a regular file, a FIFO, a folder and a sweep spec."""
    root = tmp_path / "place"
    root.mkdir()
    (root / "afile").write_bytes(b"x")
    os.mkfifo(root / "fifo")
    (root / "adir").mkdir()
    (root / "spec.json").write_text(json.dumps({"kind": "baseline", "baselines": ["majority"],
                                                "conditions": ["none"], "config": {"dataset": "tiny"}}))
    return root


def cannot_create_in_proc() -> bool:
    try:
        Path("/proc/.taxolens-probe").touch()
    except OSError:
        return True
    Path("/proc/.taxolens-probe").unlink()
    return False


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc") or not cannot_create_in_proc(),
                                reason="needs a /proc in which no file can be created")


# ---------------------------------------------------------------- core.files

def test_write_atomic_refuses_a_fifo_and_leaves_it_a_fifo(tmp_path):
    fifo = tmp_path / "out.md"
    os.mkfifo(fifo)
    with pytest.raises(files.FileWriteError, match="is a named pipe") as info:
        files.write_atomic(fifo, "report")
    assert isinstance(info.value, OSError) and info.value.filename == str(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "link.md"                    # a symlink to it: followed, refused the same
    link.symlink_to(fifo)
    with pytest.raises(files.FileWriteError, match="is a named pipe"):
        files.write_atomic(link, "report")
    with pytest.raises(files.FileWriteError, match="is a folder"):
        files.write_atomic(tmp_path, "report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.md", "out.md"]   # no temp file left
    regular = tmp_path / "real.md"
    regular.write_text("old")
    to_regular = tmp_path / "to-real.md"
    to_regular.symlink_to(regular)
    files.write_atomic(to_regular, "new")          # a symlink to a regular file is fine
    assert to_regular.read_text() == "new"
    error = pickle.loads(pickle.dumps(info.value))  # it may cross a process boundary
    assert str(error) == str(info.value)


def test_write_atomic_names_the_target_not_its_temp_file(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(files.FileWriteError) as info:
        files.write_atomic(tmp_path / "afile" / "x.md", "report")
    assert str(info.value).startswith(f"{tmp_path / 'afile' / 'x.md'}: cannot be written")
    assert ".tmp" not in str(info.value)


def test_check_output_target(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    check = files.check_output_target
    assert check(tmp_path / "new" / "deeper" / "x.md") == tmp_path / "new" / "deeper" / "x.md"
    assert check(tmp_path / "afile") == tmp_path / "afile"             # replaced: fine
    assert check(tmp_path, folder=True) == tmp_path
    for target, folder, fragment in ((tmp_path / "fifo", False, "is a named pipe (FIFO), not a regular file"),
                                     (tmp_path / "fifo", True, "is a named pipe (FIFO); give a folder"),
                                     (tmp_path / "afile", True, "is a file; give a folder"),
                                     (tmp_path, False, "is a directory"),
                                     (tmp_path / "afile" / "x.md", False, "afile is a file, so nothing"),
                                     (tmp_path / "afile" / "sub", True, "afile is a file, so nothing"),
                                     ("", False, "an empty path")):
        with pytest.raises(files.FileWriteError) as info:
            check(target, folder=folder)
        assert fragment in str(info.value), (target, str(info.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "fifo"]   # the write test left nothing
    assert not (tmp_path / "new").exists()


@needs_proc
def test_check_output_target_tries_where_access_says_yes_to_root():
    with pytest.raises(files.FileWriteError, match="no file can be created in /proc"):
        files.check_output_target("/proc/x.md")
    with pytest.raises(files.FileWriteError, match="no file can be created in /proc"):
        files.check_output_target("/proc/nope/figs", folder=True)


# ---------------------------------------------------------------- the commands

@pytest.mark.parametrize("argv, fragment", [
    (["results", "report", "--out", "{p}/fifo"], "--out {p}/fifo: is a named pipe"),
    (["sweep", "show", "{p}/spec.json", "--csv", "{p}/fifo"], "--csv {p}/fifo: is a named pipe"),
    (["sweep", "run", "{p}/spec.json", "--report", "{p}/fifo"], "--report {p}/fifo: is a named pipe"),
    (["sweep", "show", "{p}/spec.json", "--csv", "{p}/afile/x.csv"], "afile is a file, so nothing"),
    (["sweep", "show", "{p}/spec.json", "--csv", "{p}/adir"], "is a directory"),
    (["train", "--dataset", "tiny", "--run-dir", "{p}/afile/sub"], "afile is a file, so nothing"),
    (["results", "report", "--out", ""], "argument --out: an empty path"),
    (["results", "figures", "--out", ""], "argument --out: an empty path"),
    (["sweep", "show", "{p}/spec.json", "--csv", ""], "argument --csv: an empty path"),
    (["sweep", "run", "{p}/spec.json", "--report", ""], "argument --report: an empty path"),
    (["train", "--run-dir", ""], "argument --run-dir: an empty path"),
    (["ship", "somerun", "--dest", ""], "argument --dest: an empty path"),
])
def test_output_options_refuse_what_cannot_be_written(argv, fragment, tiny, place, capsys, monkeypatch):
    """Reported: a FIFO given to --out/--csv/--report became a plain file (exit 0); a parent that is
    a file or a folder given as --csv ended in a traceback; `--out ''` wrote the default report."""
    from core.jobs import sweep_run
    monkeypatch.setattr(sweep_run, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran first"))
    argv = [a.format(p=place) for a in argv]
    refused(argv, capsys, tiny, fragment.format(p=place), also=(place,))
    assert stat.S_ISFIFO(os.lstat(place / "fifo").st_mode)
    assert not (tiny / "results.md").exists()


@needs_proc
@pytest.mark.parametrize("argv", [
    ["results", "report", "--out", "/proc/x.md"],
    ["results", "figures", "--out", "/proc/figs", "--csv-only"],
    ["sweep", "show", "{p}/spec.json", "--csv", "/proc/x.csv"],
    ["sweep", "run", "{p}/spec.json", "--report", "/proc/x.md"],
    ["train", "--dataset", "tiny", "--run-dir", "/proc/nope"],
])
def test_output_options_refuse_a_folder_where_nothing_can_be_created(argv, tiny, place, capsys, monkeypatch):
    """Reported: tracebacks for /proc targets, `sweep run --report /proc/x.md` after the whole sweep."""
    from core.jobs import sweep_run
    monkeypatch.setattr(sweep_run, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran first"))
    refused([a.format(p=place) for a in argv], capsys, tiny, "no file can be created in /proc", also=(place,))


def test_ship_refuses_a_dest_under_a_file_before_any_work(tmp_path):
    from core import runs
    from core.models import checkpoint
    (tmp_path / "afile").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(runs.RunError, match="afile is a file, so nothing can be written under it"):
        checkpoint.check_ship_dest(tmp_path / "afile" / "x", tmp_path / "run")
    with pytest.raises(runs.RunError, match="is a named pipe"):
        checkpoint.check_ship_dest(tmp_path / "fifo", tmp_path / "run")
    checkpoint.check_ship_dest(tmp_path / "new" / "dest", tmp_path / "run")      # fine: nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "fifo"]


def test_an_oserror_that_gets_past_the_checks_is_one_line_naming_the_path(tiny, tmp_path, capsys, monkeypatch):
    """The safety net: a write that fails after the checks passed is one line, and exit 1, not the
    2 of a refused argument: work may have been written by then."""
    from core import runs
    out = tmp_path / "report.md"

    def refuse(path, text):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(runs, "write_text", refuse)
    monkeypatch.delenv("TAXOLENS_TRACEBACK", raising=False)
    assert cli.main(["results", "report", "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"taxolens results: error: {out}: Permission denied (TAXOLENS_TRACEBACK=1 shows where)"]
    monkeypatch.setenv("TAXOLENS_TRACEBACK", "false")
    assert cli.main(["results", "report", "--out", str(out)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("TAXOLENS_TRACEBACK", "1")          # one of ours to debug: where it came from
    with pytest.raises(PermissionError):
        cli.main(["results", "report", "--out", str(out)])


def test_a_failed_start_under_a_bad_run_dir_says_the_first_error_not_the_cleanups(tiny, tmp_path, monkeypatch):
    """Reported: `train --run-dir afile/sub` printed a second traceback from runs.discard_unstarted."""
    from core import runs, train
    from core.cli import study
    from core.config import TrainConfig

    def fail_training(*a, **k):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "afile" / "sub"))

    def fail_cleanup(*a, **k):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "afile" / "sub"))
    monkeypatch.setattr(train, "train", fail_training)
    monkeypatch.setattr(runs, "discard_unstarted", fail_cleanup)
    with pytest.raises(NotADirectoryError):          # the cause, which main() turns into one line
        study._train_and_evaluate(TrainConfig(dataset="tiny"), tmp_path / "afile" / "sub", True, "train")


# ---------------------------------------------------------------- the data folder

@pytest.mark.parametrize("argv", [["runs"], ["jobs", "list"], ["results", "report"],
                                  ["data", "import", "root", "table.csv", "--name", "x"]])
@pytest.mark.parametrize("value, fragment", [("FILE", "is not a folder"), ("", "TAXOLENS_DATA is set but empty")])
def test_taxolens_data_must_name_a_folder(argv, value, fragment, tmp_path, monkeypatch, capsys):
    """Reported: TAXOLENS_DATA=<a file> printed "no runs under <file>/runs" / "no jobs" (exit 0), and
    `data import` a PermissionError traceback; TAXOLENS_DATA="" silently used the current folder."""
    a_file = tmp_path / "afile"
    a_file.write_bytes(b"x")
    monkeypatch.setenv("TAXOLENS_DATA", str(a_file) if value == "FILE" else value)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert out == "" and tree(tmp_path) == before


def test_data_dir_refuses_a_file_and_an_empty_value(tmp_path, monkeypatch):
    (tmp_path / "afile").write_bytes(b"x")
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "afile"))
    with pytest.raises(paths.DataDirError, match="is not a folder"):
        paths.data_dir()
    monkeypatch.setenv("TAXOLENS_DATA", "")
    with pytest.raises(paths.DataDirError, match="set but empty"):
        paths.runs_dir()
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "not-yet"))       # created when first written
    assert paths.data_dir() == (tmp_path / "not-yet").resolve()
    monkeypatch.delenv("TAXOLENS_DATA")
    assert paths.data_dir() == (paths.ROOT / "data").resolve()


# ---------------------------------------------------------------- jobs cancel, Slurm options

def test_cancel_checks_every_id_before_cancelling_any(data_dir, capsys):
    """Reported: `jobs cancel 1 999` cancelled job 1, then said "no job with id 999" (exit 2)."""
    from core.jobs import JobStore
    store = JobStore()
    try:
        first, second = store.submit("train", {"config": {}}), store.submit("train", {"config": {}})
        assert cli.main(["jobs", "cancel", str(first), "999", str(second), "998"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.strip() == "taxolens jobs: error: no job with id 999, 998; nothing cancelled"
        assert [store.get(i).status for i in (first, second)] == ["queued", "queued"]
        assert cli.main(["jobs", "cancel", str(first), str(second)]) == 0
        assert [store.get(i).status for i in (first, second)] == ["cancelled", "cancelled"]
    finally:
        store.close()


@pytest.mark.parametrize("argv, fragment", [
    (["sweep", "submit", "paper", "--slurm", "--slurm-arg", "bad", "--dry-run"], "--slurm-arg takes KEY=VALUE"),
    (["sweep", "submit", "paper", "--slurm", "--cluster", "local", "--slurm-arg", "=x", "--dry-run"],
     "--slurm-arg takes KEY=VALUE"),
    (["sweep", "submit", "paper", "--slurm-arg", "constraint=a100"], "--slurm-arg needs --slurm"),
    (["sweep", "submit", "paper", "--partition", "gpu", "--time", "60", "--dry-run"], "--partition, --time need --slurm"),
    (["sweep", "submit", "paper", "--one-job", "--gpus", "2"], "--gpus needs --slurm"),
    (["jobs", "submit", "train", "--cluster", "local"], "--cluster needs --slurm"),
    (["jobs", "submit", "probe", "--mem-gb", "8"], "--mem-gb needs --slurm"),
])
def test_slurm_options_are_checked_in_a_dry_run_and_refused_without_slurm(argv, fragment, data_dir, capsys):
    """Reported: `sweep submit paper --slurm --slurm-arg bad --dry-run` exited 0 (the real submit
    refuses it), and `--slurm-arg` without --slurm queued the paper sweep on the local queue."""
    refused(argv, capsys, data_dir, fragment)
    assert not paths.db_path().exists()


def test_a_dry_run_with_good_slurm_options_still_lists_the_plan(tiny, place, capsys):
    assert cli.main(["sweep", "submit", str(place / "spec.json"), "--slurm", "--partition", "gpu",
                     "--slurm-arg", "constraint=a100", "--dry-run"]) == 0
    assert "(a dry run: nothing queued or trained)" in capsys.readouterr().out
    assert not paths.db_path().exists()


def test_together_without_one_job_is_refused_in_a_dry_run_too(data_dir, capsys):
    """Left over from the audit: `sweep submit --together 4 --dry-run` listed the plan, a real submit refused."""
    for extra in ([], ["--dry-run"]):
        assert cli.main(["sweep", "submit", "paper", "--together", "4", *extra]) == 2
        assert "--together applies to --one-job sweeps" in capsys.readouterr().err
