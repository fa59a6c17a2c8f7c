"""What an import refuses, and when: file names that are not UTF-8, a taken name or an unusable CSV
before the slow pass over the images, one problem per line, CSV line numbers as an editor shows
them, synsets that are not nouns; and what a killed import leaves behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_dataset_import import _nothing_written, _png, make_collection

from core import datasets as datasets_cli
from core import paths
from core.data import datasets, things
from core.data.datasets import DatasetError, ImportValidationError


def _no_image_read(monkeypatch):
    """Make reading any image fail the test: the refusal must come before the slow pass."""
    def load_image(path, name=None):
        raise AssertionError(f"read {path} although the import was already refused")
    monkeypatch.setattr(things, "load_image", load_image)


def test_a_file_name_that_is_not_utf8_is_one_problem_found_before_any_image_is_read(tmp_path, data_dir,
                                                                                       capsys, monkeypatch):
    """Reported: b"caf\\xe9.png" in a concept folder ended the CLI on a UnicodeEncodeError in
    images.csv, and the job on one in the job store's progress message."""
    from core.jobs import kinds

    root, csv_path = make_collection(tmp_path)
    _png(tmp_path / "x.png", (1, 200, 3))
    with open(os.path.join(os.fsencode(root / "aardvark"), b"caf\xe9.png"), "wb") as f:
        f.write((tmp_path / "x.png").read_bytes())
    said = f"{root / 'aardvark'}/caf\\xe9.png: the file name is not valid UTF-8; rename it"

    with pytest.raises(ImportValidationError) as err:
        things.check_import(root, csv_path, "mine")               # names only: no image is read
    assert err.value.problems == [said]
    with pytest.raises(kinds.JobSpecError, match="not valid UTF-8"):   # the Data page: "Not queued"
        kinds.validate("import", {"root": str(root), "csv": str(csv_path), "name": "mine"})

    assert datasets_cli.main(["import", str(root), str(csv_path), "--name", "mine"]) == 2
    out = capsys.readouterr().err
    assert f"  - {said}" in out.splitlines() and "Traceback" not in out
    with pytest.raises(ImportValidationError) as err:              # the job's progress: UTF-8 only
        things.import_things(root, csv_path, "mine", progress=lambda f, m: m.encode("utf-8"))
    str(err.value).encode("utf-8")                                 # what the runner stores as the error
    assert _nothing_written(data_dir)


def test_a_taken_or_reserved_name_stops_before_the_images_are_read(tmp_path, data_dir, monkeypatch):
    """Reported: a taken name was said only after every image had been read and normalised, and
    `--name concepts` said both "choose another name" and "replace it with --replace"."""
    root, csv_path = make_collection(tmp_path)
    things.import_things(root, csv_path, "mine")
    (data_dir / "datasets" / "concepts").mkdir()                   # the default set is there
    _no_image_read(monkeypatch)
    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    assert len(err.value.problems) == 1 and "a dataset named 'mine' already exists" in err.value.problems[0]
    for replace in (False, True):
        with pytest.raises(ImportValidationError) as err:
            things.import_things(root, csv_path, "concepts", replace=replace)
        (problem,) = err.value.problems
        assert "'concepts' is the default dataset's name" in problem and "choose another name" in problem
        assert "--replace" not in str(err.value)


@pytest.mark.parametrize("spoil, said", [
    (lambda csv: csv.unlink(), "categories.csv: the CSV file does not exist"),
    (lambda csv: (csv.unlink(), csv.mkdir()), "categories.csv: is a folder; give the CSV file"),
    (lambda csv: csv.write_bytes("concept,categories\naardvark,animal\nbat2,tier\xe4\n".encode("latin-1")),
     "categories.csv: is not UTF-8 text (invalid continuation byte at byte 44); save it as UTF-8"),
    (lambda csv: csv.write_text("name;kinds\naardvark;animal\n"), "the header must name the columns"),
    (lambda csv: csv.write_text("concept,categories\n\n"), "categories.csv: no concept rows"),
])
def test_a_csv_that_cannot_be_used_is_one_problem_said_before_the_images(tmp_path, data_dir, monkeypatch,
                                                                          spoil, said):
    """Reported: a THINGS-sized import with a bad CSV also printed "folder … has no row" for each
    of its 1,854 folders."""
    root, csv_path = make_collection(tmp_path)
    spoil(csv_path)
    _no_image_read(monkeypatch)
    with pytest.raises(ImportValidationError) as err:
        things.import_things(root, csv_path, "mine")
    (problem,) = err.value.problems
    assert said in problem, problem
    assert _nothing_written(data_dir)


def test_folders_of_rows_refused_for_their_name_are_not_also_without_a_row(tmp_path, data_dir):
    root, csv_path = make_collection(tmp_path)
    (root / "apple").rename(root / "Apple")
    csv_path.write_text("concept,categories\naardvark,animal\nbat2,animal\nApple,fruit\n")
    with pytest.raises(ImportValidationError) as err:
        things.check_import(root, csv_path, "mine")
    assert err.value.problems == ["categories.csv line 4: concept 'Apple' must be lowercase letters, digits, "
                                  "'_' or '-'"]


def test_the_cli_prints_one_problem_per_line(tmp_path, data_dir, capsys):
    """Reported: the refusal was one long line, its problems joined with " - "."""
    from core import cli

    root, csv_path = make_collection(tmp_path)
    (root / "extra").mkdir()
    (root / "bat2" / "bat2_00.jpg").write_bytes(b"not a picture")
    assert datasets_cli.main(["import", str(root), str(csv_path), "--name", "mine"]) == 2
    lines = capsys.readouterr().err.splitlines()
    start = lines.index("taxolens data import: import of 'mine' refused, 2 problem(s):")
    assert lines[start + 1] == f"  - folder {root / 'extra'} has no row in categories.csv"
    assert lines[start + 2].startswith("  - unreadable or non-image file bat2/bat2_00.jpg")
    assert cli.main(["jobs", "submit", "import", str(root), str(csv_path), "--name", "mine"]) == 2
    assert capsys.readouterr().err.splitlines() == [         # what the job is refused for: the names alone
        "taxolens jobs: error: import of 'mine' refused, 1 problem(s):",
        f"  - folder {root / 'extra'} has no row in categories.csv"]


def test_csv_line_numbers_count_blank_lines_and_multi_line_fields(tmp_path, data_dir):
    """Reported: the line numbers were row numbers + 1, wrong after a blank line or a quoted field
    that spans lines; a row is named by the line it starts on."""
    rows = ("concept,categories,synset\n"      # 1
            "\n"                               # 2
            "aardvark,\"animal;\n"             # 3: one row on two lines
            "mammal\",\n"                      # 4
            "\n"                               # 5
            "bat2,,\n"                         # 6: no categories
            "apple,fruit,\n"                   # 7
            "aardvark,animal,\n")              # 8: a duplicate of line 3's
    root, csv_path = make_collection(tmp_path, rows)
    with pytest.raises(ImportValidationError) as err:
        things.check_import(root, csv_path, "mine")
    assert sorted(err.value.problems) == ["categories.csv line 6: concept 'bat2' has no categories",
                                          "categories.csv line 8: duplicate concept 'aardvark' (first on line 3)"]


def test_a_synset_that_is_not_a_noun_is_refused(tmp_path, data_dir):
    """Reported: `run.v.01` was imported with a soft note; a concept's synset is a WordNet noun."""
    rows = "concept,categories,synset\naardvark,animal,aardvark.n.01\nbat2,animal,run.v.01\napple,fruit,red.a.01\n"
    root, csv_path = make_collection(tmp_path, rows)
    with pytest.raises(ImportValidationError) as err:
        things.check_import(root, csv_path, "mine")
    verb, adjective = err.value.problems
    assert verb.startswith("categories.csv line 3: concept 'bat2': synset 'run.v.01' is a verb; a concept's "
                           "synset must be a WordNet 3.0 noun, e.g. run.n.01"), verb
    assert adjective.startswith("categories.csv line 4: concept 'apple': synset 'red.a.01' is an adjective")


_SLOW_IMPORT = """
import pathlib, sys, time
from core.data import things
def load_image(path, name=None):           # the import is reading images: say so, then take long
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(120)
things.load_image = load_image
from core import datasets
sys.exit(datasets.main(["import", *sys.argv[2:]]))
"""


def test_sigterm_during_an_import_leaves_nothing_behind(tmp_path, data_dir):
    """Reported: SIGTERM to `python -m core.datasets import` left datasets/.staging-NAME-xxxx/ and
    datasets/.NAME.lock behind."""
    root, csv_path = make_collection(tmp_path, "concept,categories\naardvark,animal\nbat2,animal\napple,fruit\n")
    reading = tmp_path / "reading"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT, str(reading), str(root), str(csv_path),
                             "--name", "mine"], cwd=paths.ROOT, env={**os.environ, "TAXOLENS_DATA": str(data_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not reading.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reading.exists(), proc.communicate(timeout=5)
        assert any(p.name.startswith(".staging-mine-") for p in (data_dir / "datasets").iterdir())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == datasets_cli.EXIT_INTERRUPTED, err
    assert "taxolens data import: interrupted" in err and "Traceback" not in err
    assert _nothing_written(data_dir)


def test_a_killed_imports_leftovers_go_with_the_next_import_but_a_live_ones_stay(tmp_path, data_dir):
    """What a killed import (kill -9, a killed job runner) leaves is cleared by the next writer of
    that name once it holds the lock; another name's, or a live writer's, are not touched."""
    root, csv_path = make_collection(tmp_path)
    folder = data_dir / "datasets"
    folder.mkdir()
    for stale in (".staging-mine-0123abcd", ".staging-mine-2-0123abcd", ".old-mine-89abcdef"):
        (folder / stale / "images").mkdir(parents=True)
    (folder / ".mine.lock").write_text("")                          # nobody holds it
    things.import_things(root, csv_path, "mine")
    # the .old- copy stays while there was no dataset 'mine' beside it: it was the only copy
    assert sorted(p.name for p in folder.iterdir()) == [".old-mine-89abcdef", ".staging-mine-2-0123abcd", "mine"]
    (folder / ".staging-mine-fedcba98").mkdir()
    things.import_things(root, csv_path, "mine", replace=True)
    assert sorted(p.name for p in folder.iterdir()) == [".staging-mine-2-0123abcd", "mine"]

    with datasets.build_lock("mine"), datasets.staging("mine") as live:       # another import, running
        with pytest.raises(DatasetError, match="being written by another process"):
            things.import_things(root, csv_path, "mine", replace=True)
        assert live.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == [".staging-mine-2-0123abcd", "mine"]
