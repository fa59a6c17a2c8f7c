"""What the CLI tests check of a refused command: exit code 2, one line on stderr, no file written."""
from __future__ import annotations

from pathlib import Path

from core import cli


def tree(root: Path) -> list[str]:
    """Every path under `root`, relative and sorted: compared before and after a command."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def refused(argv, capsys, root: Path, fragment: str, also: tuple[Path, ...] = ()) -> str:
    """Exit code 2, nothing on stdout, one "taxolens ... error: ..." line on stderr holding
    `fragment`, and no file or folder created under root (or any folder in `also`)."""
    roots = (root, *also)
    before = [tree(r) for r in roots]
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err[-3000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taxolens") and "error:" in lines[0], err
    assert fragment in lines[0], lines[0]
    assert out == ""
    assert [tree(r) for r in roots] == before, "a refused command wrote files"
    return lines[0]
