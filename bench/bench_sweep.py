"""Many runs on one machine: examples/s of N runs' training steps taken together, one LM pass over
all their batches per update (VLM.joint_loss, what core.train.train_many and `taxolens sweep run`
do), against the same N runs stepped one after the other (N separate VLM.loss calls, what N
separate processes or jobs would do, minus their N copies of the models). Each run has its own
projector (seed r) and its own batches (epoch_batches seeded by r), as in a sweep; both paths see
the same batches, one right after the other, in whatever precision the LM is held at the time
(bench.run_all runs this after bench_train, which leaves it in bf16 where that is native)."""
from __future__ import annotations

import torch

from bench.common import timed
from core import features, train
from core.config import TrainConfig
from core.models import registry
from core.models.vlm import VLM, LossBatch


def run(vlm, data, device, runs: int = 8, batch_size: int = 16, steps: int = 3) -> dict:
    questions = data.training_questions()
    per_run = [train.epoch_batches(questions, batch_size, seed=r, epoch=0)[:steps + 1] for r in range(runs)]
    needed = {questions[i].image_id for batches in per_run for b in batches for i in b}
    items = [im for im in data.images("train") if im.id in needed]
    feats, row_of = features.image_features(vlm, items)
    feats = feats.to(device)
    vlms = [vlm] + [registry.vlm_sharing_frozen(TrainConfig(seed=r), vlm) for r in range(1, runs)]
    opts = [torch.optim.AdamW(v.projector.parameters(), lr=1e-4) for v in vlms]

    def batch(r: int, k: int) -> LossBatch:
        b = per_run[r][k]
        rows = [row_of[questions[i].image_id] for i in b]
        distinct = sorted(set(rows))
        return LossBatch(feats[distinct], [questions[i].text for i in b], [questions[i].answer for i in b],
                         torch.tensor([distinct.index(x) for x in rows]))

    def together(k: int) -> None:
        losses = VLM.joint_loss(vlms, [batch(r, k) for r in range(runs)])
        for o in opts:
            o.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        for o in opts:
            o.step()

    def one_by_one(k: int) -> None:
        for r, (v, o) in enumerate(zip(vlms, opts)):
            b = batch(r, k)
            loss = v.loss(b.features, b.texts, b.answers, owner=b.owner)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

    for v in vlms:
        v.projector.train()
    out = {"runs": runs, "batch_size": batch_size, "steps": steps,
           "lm_dtype": str(next(vlm.lm.parameters()).dtype).replace("torch.", "")}
    examples = runs * batch_size
    for name, step in (("together", together), ("one_by_one", one_by_one)):
        step(0)                                                   # warm-up
        seconds = sorted(timed(lambda k=k: step(k), device)[1] for k in range(1, steps + 1))
        per_round = seconds[len(seconds) // 2]
        out[name] = {"seconds_per_update_of_all_runs": per_round, "examples_per_s": examples / per_round}
    for v in vlms:
        v.projector.eval()
    out["speedup"] = out["together"]["examples_per_s"] / out["one_by_one"]["examples_per_s"]
    return out


def lines(out: dict) -> list[str]:
    t, s = out["together"], out["one_by_one"]
    return [f"many runs, {out['runs']} runs x batch {out['batch_size']} (LM in {out['lm_dtype']}), median of "
            f"{out['steps']} updates:",
            f"  one LM pass        {t['examples_per_s']:8.2f} examples/s ({t['seconds_per_update_of_all_runs']:.2f} s "
            f"per update of all runs; train_many, `sweep run`)",
            f"  one run at a time  {s['examples_per_s']:8.2f} examples/s ({s['seconds_per_update_of_all_runs']:.2f} s)",
            f"  ratio              {out['speedup']:8.2f}x"]
