"""core.taxonomy's hypernym chains come out in the same order in an interpreter with other string
hashing: a second Python process loads WordNet 3.0 on its own (seconds), so this runs with the
integration tests rather than the unit tests."""
import json
import os
import subprocess
import sys

import pytest

from core import paths, taxonomy

_CHAIN_NAMES = ["dog.n.01", "cat.n.01", "squirrel.n.01", "apple.n.01", "car.n.01", "salmon.n.01", "paris.n.01"]
_CHAIN_DUMP = f"""
import json
from core import taxonomy
print(json.dumps({{"hash": hash("taxolens"), "chains": {{n: taxonomy.hypernym_chains(n, remembered=False)
                                                        for n in {_CHAIN_NAMES!r}}}}}))
"""


@pytest.mark.integration
def test_chains_do_not_depend_on_hash_seed():
    # This process against one interpreter with other string hashing (one WordNet load, not two).
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    proc = subprocess.run([sys.executable, "-c", _CHAIN_DUMP], cwd=paths.ROOT, text=True, capture_output=True,
                          env={**os.environ, "PYTHONHASHSEED": seed, "TAXOLENS_DATA": str(paths.data_dir())},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    other = json.loads(proc.stdout)
    assert other["hash"] != hash("taxolens")                       # the two really hash differently
    here = {n: taxonomy.hypernym_chains(n, remembered=False) for n in _CHAIN_NAMES}
    assert other["chains"] == json.loads(json.dumps(here))         # (JSON turns tuples into lists)
    assert any(len(chains) > 1 for chains in here.values())       # the order question actually arises
