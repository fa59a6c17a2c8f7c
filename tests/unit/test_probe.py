"""core.probe with a tiny random Llama / Gemma3 (tests/unit/test_models.py) and the tiny dataset:
the pairs asked, the wording, batched LM calls against one-sequence-at-a-time references, the
metrics by hand, chat templates present / missing / Gemma-style, files and the CLI."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from core import probe
from core.config import ConfigError
from core.models.lms import LanguageModel, common_prefix_length
from test_models import tiny_causal_lm, tiny_tokenizer
from tiny_concepts import CONCEPTS, tiny_dataset

TEMPLATE = ("{% for m in messages %}System: you answer questions about things.\nUser: {{ m['content'] }}\n"
            "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
GEMMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>user\n{{ m['content'] }}<end_of_turn>\n"
                  "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def lm_with(template: str | None, arch: str = "llama") -> LanguageModel:
    tok = copy.deepcopy(tiny_tokenizer(bos=(arch == "gemma3")))
    tok.chat_template = template
    return LanguageModel(f"tiny-{arch}", tiny_causal_lm(arch, len(tok)), tok)


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


# ---------------------------------------------------------------- pairs and wording

def test_pairs_are_every_category_yes_and_as_many_others_no(ds):
    pairs = probe.probe_pairs(ds, seed=0)
    for concept, cats in CONCEPTS.items():
        yes = [p.category for p in pairs if p.concept == concept and p.answer]
        no = [p.category for p in pairs if p.concept == concept and not p.answer]
        assert sorted(yes) == sorted(cats)
        assert len(no) == len(cats) and not set(no) & set(cats) and len(set(no)) == len(no)
    assert pairs == probe.probe_pairs(ds, seed=0)
    assert any(probe.probe_pairs(ds, seed=s) != pairs for s in range(1, 5))


def test_wording():
    assert probe.question("dog", "animal") == "Is a dog a kind of animal?"
    assert probe.question("apple", "fruit") == "Is an apple a kind of fruit?"
    assert probe.sentence("dog", "animal") == "a dog is an animal"
    assert probe.sentence("shirt", "clothing") == "a shirt is an item of clothing"
    assert probe.plain_prompt("Is a dog a kind of animal?") == "Question: Is a dog a kind of animal?\nAnswer:"


# ---------------------------------------------------------------- batched LM calls

def reference_next(lm, seq, token_ids):
    logits = lm.model(input_ids=torch.tensor([seq])).logits[0, -1]
    return logits.log_softmax(-1)[token_ids]


def test_batched_next_token_logprobs_equal_one_sequence_at_a_time():
    lm = lm_with(None)
    base = lm.tokens("Question: Is there a dog in the image? Answer: Yes and")   # >= 8 shared tokens
    seqs = [base + lm.tokens(t) for t in (" no", " a kind of animal", " yes", " Is a dog a kind")]
    assert common_prefix_length(seqs) == len(base) >= probe.MIN_SHARED    # the shared-cache path
    token_ids = [lm.yes_id, lm.no_id, 5]
    for batch in (seqs, seqs + [lm.tokens("Answer: no")]):                     # ... and nothing shared
        for share in (True, False):
            got = probe.next_token_logprobs(lm, batch, token_ids, batch_size=3, share_prefix=share)
            for i, s in enumerate(batch):
                assert torch.allclose(got[i], reference_next(lm, s, token_ids), atol=1e-4), (share, i)
    assert common_prefix_length([[1, 2], [1, 2]]) == 1      # each keeps one token of its own


def test_sequence_logprobs_sum_the_continuation_tokens():
    lm = lm_with(None)
    contexts = [[1], [1], [1, 2, 3]]
    conts = [lm.tokens("a dog is an animal"), lm.tokens("a dog is a tool"), lm.tokens("yes")]
    contexts.append([])                                   # no context: the first token is not scored
    conts.append(lm.tokens("a dog is a tool"))
    got = probe.sequence_logprobs(lm, contexts, conts, batch_size=2)
    for i, (c, t) in enumerate(zip(contexts, conts)):
        logp = lm.model(input_ids=torch.tensor([c + t])).logits[0].log_softmax(-1)
        want = sum(float(logp[len(c) + j - 1, tok]) for j, tok in enumerate(t) if len(c) + j > 0)
        assert got[i] == pytest.approx(want, abs=1e-3), i


# ---------------------------------------------------------------- metrics by hand

def row(concept, category, answer, chat, plain, sent):
    return {"concept": concept, "category": category, "answer": answer, "question": "",
            "chat_p_yes": chat, "chat_pred": None if chat is None else chat > 0.5, "chat_mass": 0.5,
            "plain_p_yes": plain, "plain_pred": plain > 0.5, "plain_mass": 0.25,
            "sentence": "", "sentence_logprob": sent}


def test_summary_by_hand():
    rows = [row("dog", "animal", True, 0.9, 0.4, -5.0), row("dog", "vehicle", False, 0.6, 0.3, -7.0),
            row("car", "vehicle", True, 0.7, 0.2, -9.0), row("car", "animal", False, 0.2, 0.1, -8.0)]
    m = probe.summarize(rows)
    # chat preds: T T T F -> animal (dog T/T, car F/F) perfect; vehicle (dog F/T, car T/T): yes F1 2/3, no F1 0
    assert m["per_category"]["animal"]["chat_macro_f1"] == 1.0
    assert m["per_category"]["vehicle"]["chat_macro_f1"] == pytest.approx(1 / 3)
    assert m["chat_macro_f1"] == pytest.approx(2 / 3) and m["chat_accuracy"] == pytest.approx(3 / 4)
    # plain says no everywhere: accuracy 1/2; per category yes F1 0, no F1 2/3 -> 1/3
    assert m["plain_accuracy"] == 0.5 and m["plain_macro_f1"] == pytest.approx(1 / 3)
    assert m["plain_yes_rate"] == 0.0 and m["chat_yes_rate"] == 0.75
    # triples: (dog, animal > vehicle): chat 0.9 > 0.6 yes, plain 0.4 > 0.3 yes, sentence -5 > -7 yes;
    #          (car, vehicle > animal): chat 0.7 > 0.2 yes, plain 0.2 > 0.1 yes, sentence -9 > -8 no
    assert m["n_triples"] == 2 and m["pairwise"] == 1.0 and m["chat_pairwise"] == 1.0
    assert m["plain_pairwise"] == 1.0 and m["sentence"] == 0.5 and m["pairwise_format"] == "chat"
    assert m["per_category"]["vehicle"]["sentence"] == 0.0 and m["per_category"]["animal"]["sentence"] == 1.0
    assert m["chance_macro_f1"] == pytest.approx(0.5)
    assert m["chat_mass"] == 0.5 and m["n_pairs"] == 4 and m["n_yes"] == 2


def test_summary_without_chat_uses_plain_for_pairwise():
    rows = [row("dog", "animal", True, None, 0.4, -5.0), row("dog", "vehicle", False, None, 0.6, -7.0)]
    m = probe.summarize(rows)
    assert m["chat_accuracy"] is None and m["chat_macro_f1"] is None and m["chat_pairwise"] is None
    assert m["pairwise"] == 0.0 == m["plain_pairwise"] and m["pairwise_format"] == "plain"


# ---------------------------------------------------------------- the whole probe

@pytest.mark.parametrize("template", [TEMPLATE, None])
def test_probe_end_to_end(ds, template):
    lm = lm_with(template)
    seen = []
    rows, m = probe.probe(lm, ds, seed=0, progress=lambda f, msg: seen.append(f))
    assert len(rows) == len(probe.probe_pairs(ds, 0)) == m["n_pairs"]
    assert json.loads(json.dumps(m)) == m
    assert set(m["per_category"]) == {k for cats in CONCEPTS.values() for k in cats}
    assert 0 <= m["plain_accuracy"] <= 1 and 0 <= m["sentence"] <= 1
    assert seen and max(seen) <= 1.0 and seen == sorted(seen)
    if template is None:
        assert m["chat_template"] is None and m["chat_accuracy"] is None
        assert any("no chat template" in n for n in m["notes"])
        assert all(r["chat_p_yes"] is None for r in rows)
    else:
        assert m["chat_template"] == "chat template" and 0 <= m["chat_accuracy"] <= 1
        # the chat numbers are the next token after the templated question, read by hand for one row
        r = rows[0]
        text = probe.chat_prompt(lm.tokenizer, r["question"])
        ids = [probe.next_token_id(lm.tokenizer, text, w) for w in probe.CHAT_WORDS]
        ref = reference_next(lm, lm.tokenizer.encode(text, add_special_tokens=False), ids)
        assert r["chat_p_yes"] == pytest.approx(float(torch.sigmoid(ref[0] - ref[1])), abs=1e-4)
        assert r["chat_pred"] == bool(ref[0] > ref[1])


def test_gemma_style_template_has_one_bos(ds):
    lm = lm_with(GEMMA_TEMPLATE, arch="gemma3")
    bos = lm.tokenizer.bos_token_id
    text = probe.chat_prompt(lm.tokenizer, "Is a dog a kind of animal?")
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    assert ids[0] == bos and ids.count(bos) == 1
    assert probe.start_ids(lm) == [bos]                      # sentences are conditioned on <bos>
    rows, m = probe.probe(lm, ds)
    assert m["chat_accuracy"] is not None and not m["notes"]


def test_run_writes_csv_and_metrics(ds, data_dir, monkeypatch):
    from core import runs
    from core.data import datasets
    from core.models import registry

    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": tiny_dataset(name=name))
    monkeypatch.setattr(registry, "create_lm", lambda lm_id, init="pretrained", device="cpu", seed=0: lm_with(TEMPLATE))
    folder, m = probe.run("smollm2-135m", "tiny", device="cpu")
    assert folder == data_dir / "runs" / "probes" / "smollm2-135m_tiny"
    assert runs.read_json(folder / "metrics.json") == m
    assert m["lm"] == "smollm2-135m" and m["dataset"] == "tiny" and m["kind"] == "probe"
    lines = (folder / "probe.csv").read_text().splitlines()
    assert lines[0].split(",") == list(probe.CSV_FIELDS) and len(lines) == m["n_pairs"] + 1
    assert probe.out_dir("smollm2-135m", "tiny", "random", 2).name == "smollm2-135m_tiny_rndlm_s2"


def test_a_summary_written_before_one_answer_categories_were_left_out_is_redone_from_its_csv(
        ds, data_dir, monkeypatch):
    import json
    import os

    from core import runs
    from core.data import datasets
    from core.models import registry

    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": tiny_dataset(name=name))
    monkeypatch.setattr(registry, "create_lm", lambda lm_id, init="pretrained", device="cpu", seed=0: lm_with(TEMPLATE))
    folder, m = probe.run("smollm2-135m", "tiny", device="cpu")
    assert probe.load_summary(folder) == m and m["n_one_answer"] == 1       # one tiny category: one answer alone
    old = {k: v for k, v in m.items() if k != "n_one_answer"}
    old["plain_macro_f1"] = 0.123                                          # as an older rule scored it
    path = folder / runs.METRICS_JSON
    path.write_text(json.dumps(old))
    os.utime(path, ns=(10**18, 10**18))
    again = probe.load_summary(folder)
    assert again == json.loads(json.dumps(m))                              # the CSV's rows summarized anew
    assert runs.read_json(path) == again and path.stat().st_mtime_ns == 10**18     # written back, old time
    (folder / "probe.csv").unlink()
    path.write_text(json.dumps(old))
    assert probe.load_summary(folder) == old                               # nothing to redo it from


def test_check_rejects_bad_input(data_dir):
    with pytest.raises(ConfigError, match="unknown LM"):
        probe.check("no-such-lm", "concepts")
    with pytest.raises(ConfigError, match="lm_init"):
        probe.check("smollm2-135m", "concepts", lm_init="warm")
    with pytest.raises(ConfigError, match="not found"):
        probe.check("smollm2-135m", "nope")


def test_cli_probe_lm_prints_a_summary_and_writes_files(ds, data_dir, monkeypatch, capsys):
    from core import cli
    from core.data import datasets
    from core.models import registry

    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": tiny_dataset(name=name))
    monkeypatch.setattr(registry, "create_lm", lambda lm_id, init="pretrained", device="cpu", seed=0: lm_with(None))
    assert cli.main(["probe-lm", "--dataset", "tiny", "--device", "cpu", "--lm-init", "random"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["lm_init"] == "random" and summary["chat_accuracy"] is None and "per_category" not in summary
    assert "no chat template" in summary["notes"][0]
    assert summary["out_dir"].endswith("probes/smollm2-135m_tiny_rndlm")
    assert "mammal" in err                                    # the per-category table
    assert (data_dir / "runs" / "probes" / "smollm2-135m_tiny_rndlm" / "probe.csv").is_file()


def test_probe_job_kind_validates_and_runs(ds, data_dir, monkeypatch):
    from core.data import datasets
    from core.jobs import kinds
    from core.models import registry

    monkeypatch.setattr(datasets, "load_dataset", lambda name="concepts": tiny_dataset(name=name))
    monkeypatch.setattr(registry, "create_lm", lambda lm_id, init="pretrained", device="cpu", seed=0: lm_with(TEMPLATE))
    spec = kinds.validate("probe", {"dataset": "tiny"})
    assert spec == {"lm": "smollm2-135m", "dataset": "tiny", "lm_init": "pretrained", "seed": 0, "device": "auto"}
    for bad, fragment in (({"lm": "gpt-17"}, "gpt-17"), ({"dataset": "tiny", "colour": 1}, "unknown field"),
                          ({"dataset": "tiny", "device": "tpu"}, "device")):
        with pytest.raises(kinds.JobSpecError, match=fragment):
            kinds.validate("probe", bad)
    seen = []
    ctx = kinds.JobContext(job_id=1, progress=lambda f, m: seen.append(f), should_stop=lambda: False)
    result = kinds.get("probe").execute({**spec, "device": "cpu"}, ctx)
    assert result["metrics"]["probe"]["kind"] == "probe" and "per_category" not in result["metrics"]["probe"]
    assert Path(result["run_dir"]).name == "smollm2-135m_tiny" and seen[-1] == 1.0
    stop = kinds.JobContext(job_id=2, progress=lambda f, m: None, should_stop=lambda: True)
    with pytest.raises(kinds.JobCancelled):
        kinds.get("probe").execute({**spec, "device": "cpu"}, stop)
