"""What the CLI tests check of a refused command: exit code 2, one line on stderr, no file written."""
from __future__ import annotations

from pathlib import Path

from core import cli


def tree(root: Path) -> list[str]:
    """Every path under `root`, relative and sorted: compared before and after a command."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def refused(argv, capsys, root: Path, fragment: str) -> str:
    """Exit code 2, one line on stderr holding `fragment`, and no file or folder created under root."""
    before = tree(root)
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err[-3000:])
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert tree(root) == before, "a refused command wrote files"
    return err.strip()
