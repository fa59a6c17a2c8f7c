"""The LM probe with the real SmolLM2-135M-Instruct on six concepts of the default dataset: its chat
template is used, the batched (left-padded, shared-prefix) numbers equal a plain one-prompt forward,
and the LM prefers a concept's true category over a wrong one by sentence log-probability."""
from __future__ import annotations

import copy

import pytest
import torch

from core import probe
from core.data import datasets
from core.models import registry

CONCEPTS = ("dog", "cat", "car", "bus", "apple", "guitar")


@pytest.fixture(scope="module")
def small():
    ds = datasets.load_dataset("concepts")
    keep = [c for c in CONCEPTS if c in ds.concepts]
    assert len(keep) >= 4, keep
    out = copy.copy(ds)
    out.concepts = {c: ds.concepts[c] for c in keep}
    return out


@pytest.fixture(scope="module")
def lm():
    return registry.create_lm("smollm2-135m")


@pytest.mark.integration
def test_smollm2_probe_on_six_concepts(small, lm):
    rows, m = probe.probe(lm, small, seed=0)
    print({k: v for k, v in m.items() if k != "per_category"})
    assert m["chat_template"] == "chat template" and not m["notes"]
    assert len(rows) == len(probe.probe_pairs(small, 0)) == m["n_pairs"]
    assert all(0 < r["chat_mass"] <= 1 and 0 < r["plain_mass"] <= 1 for r in rows)
    # one row recomputed without batching, padding or a shared prefix
    r = rows[-1]
    text = probe.chat_prompt(lm.tokenizer, r["question"])
    assert text.endswith("<|im_start|>assistant\n") and r["question"] in text
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    yes, no = (probe.next_token_id(lm.tokenizer, text, w) for w in ("Yes", "No"))
    with torch.no_grad():
        logp = lm.model(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1)
    assert r["chat_p_yes"] == pytest.approx(float(torch.sigmoid(logp[yes] - logp[no])), abs=1e-3)
    assert lm.tokenizer.decode([yes]) == "Yes" and lm.tokenizer.decode([no]) == "No"
    # what the LM knows: "a dog is an animal" is likelier than "a dog is a vehicle" more often than not
    assert m["n_triples"] > 0 and m["sentence"] > 0.5
