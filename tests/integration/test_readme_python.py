"""The README's "From Python" block, run as written with the real models: `Predictor.load()` with
no run installs the shipped checkpoint into a fresh data folder (as `taxolens predict` does on a
fresh clone) and answers; the results tables read the run it installed."""
import contextlib
import io
import json
import re

import pytest

from core import paths


def readme_python_block() -> str:
    text = (paths.ROOT / "README.md").read_text()
    start = text.index("From Python (a notebook, a script)")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.integration
def test_the_readme_python_block_runs_as_written(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("datasets", "models", "nltk_data"):
        source = paths.ROOT / "data" / name
        if not source.is_dir():
            pytest.skip(f"needs {source} (run `make dataset`)")
        (data / name).symlink_to(source)
    monkeypatch.setenv("TAXOLENS_DATA", str(data))
    monkeypatch.chdir(paths.ROOT)                      # the block's image path is relative to the repo
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(readme_python_block(), "README.md", "exec"), namespace)
    printed = out.getvalue()
    print(printed)
    pred, p = namespace["pred"], namespace["p"]
    assert p.info.path.parent == data / "runs"          # the shipped checkpoint, installed here
    shipped = json.loads((paths.SHIPPED_CHECKPOINT / "checkpoint" / "checkpoint.json").read_text())
    assert p.info.run_id == shipped["run_id"]
    assert p.note is None and "its test evaluation shows it learned" in printed   # its evaluation is its own
    assert len(pred.leaves) == 5 and pred.chains[0][-1].label == "entity"
    assert "Is there a mammal in the image?" in printed and "Is there a vehicle in the image?" in printed
    assert p.info.run_id in printed                       # per_run_table lists the installed run
    table = namespace["table"]                             # the installed run's own test numbers
    seen = table[table["metric"] == "seen_category_f1"]
    assert len(seen) == 1 and int(seen["n_seeds"].iloc[0]) == 1
    recorded = json.loads((p.info.path / "eval" / "test" / "metrics.json").read_text())
    assert seen["mean"].iloc[0] == pytest.approx(recorded["hypernym"]["seen"]["category_macro_f1"])
