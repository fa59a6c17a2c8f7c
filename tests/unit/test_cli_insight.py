"""`taxolens clusters`, `taxolens lens` and `taxolens predict --ask/--open/--lens`: help, and bad
arguments -> one stderr line, exit 2, nothing written (the runs themselves: tests/integration)."""
from __future__ import annotations

import pytest
from PIL import Image

from core import cli, paths
from test_cli import fails_cleanly


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    wordnet = paths.nltk_dir()
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    monkeypatch.setattr(paths, "nltk_dir", lambda: wordnet)
    Image.new("RGB", (8, 8)).save(tmp_path / "roo.png")
    return tmp_path


@pytest.mark.parametrize("command, words", [("clusters", "Fowlkes-Mallows"), ("lens", "write"),
                                            ("predict", "--open-budget")])
def test_help(command, words, capsys):
    assert cli.main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"usage: taxolens {command}" in out and words in out


@pytest.mark.parametrize("argv, fragment", [
    (["clusters", "no-such-run"], "no run 'no-such-run'"),
    (["clusters", "x", "--split", "dev"], "invalid choice"),
    (["clusters", "x", "--sources", "encoder,pixels"], "--sources must be drawn from"),
    (["clusters", "x", "--permutations", "-1"], "--permutations"),
    (["lens", "no-such-run"], "no run 'no-such-run'"),
    (["lens", "x", "--top", "0"], "--top must be >= 1"),
    (["predict", "{img}", "--ask", "  "], "--ask: the question is empty"),
    (["predict", "{img}", "--open", "--open-threshold", "1.5"], "--open-threshold must be in [0, 1]"),
    (["predict", "{img}", "--open", "--open-beam", "0"], "--open-beam must be >= 1"),
    (["predict", "{img}", "--open", "--open-from", "roo.n.99"], "unknown WordNet synset"),
    (["predict", "{img}", "--open-from", "organism.n.01"], "--open-from sets the open walk: add --open"),
    (["predict", "{img}", "--open-beam", "3", "--open-budget", "9"], "--open-beam, --open-budget set the open"),
    (["predict", "{img}", "--ask", "marsupial", "--run", "nope"], "no run 'nope'"),
])
def test_bad_arguments(argv, fragment, data_dir, capsys):
    argv = [a.replace("{img}", str(data_dir / "roo.png")) for a in argv]
    fails_cleanly(argv, capsys, data_dir, fragment)
