"""Training speed: examples/s of the real training step (VLM.loss + backward + AdamW on the
projector), and its achieved FLOP/s (counted by torch's FlopCounterMode over one step) as a
fraction of the fp32 matmul peak measured in the same process."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import matmul_peak, timed
from core import features, train


def run(vlm, data, device, batch_size: int = 16, steps: int = 3) -> dict:
    questions = data.training_questions()
    items = data.images("train")
    needed = {q.image_id for q in questions[:batch_size * (steps + 1)]}
    items = [im for im in items if im.id in needed]
    feats, row_of = features.image_features(vlm, items)
    opt = torch.optim.AdamW(vlm.projector.parameters(), lr=1e-4)
    batches = [questions[i * batch_size:(i + 1) * batch_size] for i in range(steps + 1)]

    def step(batch):
        loss = vlm.loss(feats[[row_of[q.image_id] for q in batch]].to(device),
                        [q.text for q in batch], [q.answer for q in batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    vlm.projector.train()
    counter = FlopCounterMode(display=False)
    with counter:                                       # also the warm-up step
        step(batches[0])
    flops_per_step = counter.get_total_flops()
    seconds = [timed(lambda b=b: step(b), device)[1] for b in batches[1:]]
    vlm.projector.eval()
    per_step = sorted(seconds)[len(seconds) // 2]       # median
    peak = matmul_peak(device)
    return {"batch_size": batch_size, "steps": steps, "seconds_per_step": per_step,
            "examples_per_s": batch_size / per_step, "flops_per_step": flops_per_step,
            "achieved_flops": flops_per_step / per_step, "matmul_peak_flops": peak,
            "fraction_of_peak": flops_per_step / per_step / peak}
