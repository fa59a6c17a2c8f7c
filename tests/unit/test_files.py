"""No unbounded reads: every file a user points at (an image, an imported folder's files and CSV, a
config or job spec) is read only if it is a regular file, and through a cap (issue 12, case 2).
/dev/zero reports st_size 0 and never ends; a FIFO blocks its reader until a writer comes."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core import cli, files
from core.data import datasets, things
from core.data.datasets import ImportValidationError
from core.images import ImageError, load_image

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 4 << 30      # what a regression may allocate before MemoryError, instead of all RAM


def run_capped(argv: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    """`python -m core ...` with its address space capped, so reading /dev/zero to the end fails
    fast with MemoryError in a regression instead of eating the machine's memory."""
    env = dict(os.environ, TAXOLENS_DATA=str(data_dir), PYTHONPATH=str(ROOT))
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))  # noqa: E731
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=cap)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def test_read_bytes_takes_regular_files_up_to_the_cap(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100)
    assert files.read_bytes(f, 100) == b"x" * 100
    with pytest.raises(files.FileReadError, match="larger than the 99 bytes limit") as info:
        files.read_bytes(f, 99)
    assert info.value.kind == "too_big"
    link = tmp_path / "link"
    link.symlink_to(f)
    assert files.read_bytes(link, 100) == b"x" * 100          # a symlink to a regular file is fine
    with pytest.raises(files.FileReadError) as info:
        files.read_bytes(tmp_path, 100)
    assert info.value.kind == "folder"
    with pytest.raises(files.FileReadError) as info:
        files.read_bytes(tmp_path / "nope", 100)
    assert info.value.kind == "missing"


@pytest.mark.timeout(120)
def test_devices_fifos_and_links_to_them_are_refused(tmp_path, fifo):
    zero_link = tmp_path / "zero.png"
    zero_link.symlink_to("/dev/zero")
    for path, what in (("/dev/zero", "character device"), (zero_link, "character device"),
                       (fifo, "named pipe")):
        with pytest.raises(files.FileReadError, match=what) as info:
            files.read_bytes(path, 1 << 20)
        assert info.value.kind == "special"
        with pytest.raises(ImageError, match=f"{Path(path).name}: is a {what}"):
            load_image(path)


@pytest.mark.timeout(300)
def test_predict_refuses_dev_zero_and_a_fifo_with_one_line(data_dir, fifo):
    """Reported: `taxolens predict /dev/zero` died with MemoryError; a FIFO hung forever."""
    for image, what in (("/dev/zero", "character device"), (str(fifo), "named pipe")):
        proc = run_capped(["core", "predict", image], data_dir)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.count("\n") == 1 and what in proc.stderr and proc.stdout == ""
    assert list(data_dir.iterdir()) == []


@pytest.mark.timeout(300)
def test_config_and_job_spec_files_are_read_through_the_cap(data_dir, fifo, capsys):
    proc = run_capped(["core", "train", "--config", "/dev/zero"], data_dir)
    assert proc.returncode == 2 and "character device" in proc.stderr, proc.stderr[-2000:]
    assert cli.main(["train", "--config", str(fifo)]) == 2
    assert "named pipe" in capsys.readouterr().err
    assert cli.main(["jobs", "submit", "train", "--spec", str(fifo)]) == 2
    assert "named pipe" in capsys.readouterr().err
    assert list(data_dir.iterdir()) == []


def _collection(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "things"
    for concept, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        for i in range(2):
            (root / concept).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (colour[0], colour[1], 40 * i)).save(root / concept / f"{i}.png")
    table = tmp_path / "t.csv"
    table.write_text("concept,categories\ncat,animal\ndog,animal\n")
    return root, table


@pytest.mark.timeout(300)
def test_import_refuses_a_link_to_dev_zero_and_a_fifo_among_the_images(data_dir, tmp_path):
    """Reported: a symlink to /dev/zero inside a concept folder took the import down (MemoryError)."""
    root, table = _collection(tmp_path)
    (root / "dog" / "z.png").symlink_to("/dev/zero")
    proc = run_capped(["core.datasets", "import", str(root), str(table), "--name", "t"], data_dir)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dog/z.png: is a character device" in proc.stderr
    (root / "dog" / "z.png").unlink()
    os.mkfifo(root / "dog" / "z.png")
    with pytest.raises(ImportValidationError, match="dog/z.png: is a named pipe"):
        things.import_things(root, table, "t")
    os.mkfifo(tmp_path / "table.csv")
    with pytest.raises(ImportValidationError, match="table.csv: cannot be read .*named pipe"):
        things.import_things(root, tmp_path / "table.csv", "t")
    assert datasets.list_datasets() == []
