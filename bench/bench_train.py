"""Training speed: examples/s of the real training step (VLM.loss + backward + AdamW on the
projector) on batches of whole images, with each image's prompt prefix run once and shared by its
questions (what core.train does) against the same batches with the image repeated for every
question (the straightforward path), and each path's FLOPs per example (torch's FlopCounterMode
over one step) and achieved FLOP/s as a fraction of the fp32 matmul peak measured in the same
process. Both paths see the same batches, one right after the other. Then, where bf16 is native
(CUDA, or a CPU with AMX / AVX512-BF16: core.models.checkpoint.resolve_precision), the shared-prefix
path again with the frozen LM held in bf16 (TrainConfig.precision "auto" there), against the bf16
matmul peak. That last step casts `vlm`'s LM, so it runs last."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import matmul_peak, timed
from core import features, train
from core.models import checkpoint


def timed_path(step, batches, flops: float, batch_size: int, peak: float, device) -> dict:
    """Median seconds of `step` over `batches`, and what follows from it and the FLOPs of a step."""
    seconds = sorted(timed(lambda b=b: step(b), device)[1] for b in batches)
    per_step = seconds[len(seconds) // 2]
    return {"seconds_per_step": per_step, "examples_per_s": batch_size / per_step,
            "flops_per_example": flops / batch_size, "achieved_flops": flops / per_step,
            "fraction_of_peak": flops / per_step / peak}


def run(vlm, data, device, batch_size: int = 16, steps: int = 3) -> dict:
    questions = data.training_questions()
    batches = train.epoch_batches(questions, batch_size, seed=0, epoch=0)[:steps + 1]
    needed = {questions[i].image_id for b in batches for i in b}
    items = [im for im in data.images("train") if im.id in needed]
    feats, row_of = features.image_features(vlm, items)
    opt = torch.optim.AdamW(vlm.projector.parameters(), lr=1e-4)

    def step(batch, shared: bool):
        rows = [row_of[questions[i].image_id] for i in batch]
        texts, answers = [questions[i].text for i in batch], [questions[i].answer for i in batch]
        if shared:
            distinct = sorted(set(rows))
            owner = torch.tensor([distinct.index(r) for r in rows])
            loss = vlm.loss(feats[distinct].to(device), texts, answers, owner=owner)
        else:
            loss = vlm.loss(feats[rows].to(device), texts, answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    vlm.projector.train()
    out = {"batch_size": batch_size, "steps": steps,
           "images_per_batch": sum(len({questions[i].image_id for i in b}) for b in batches) / len(batches)}
    peak = matmul_peak(device)
    for name, shared in (("shared_prefix", True), ("repeated_image", False)):
        counter = FlopCounterMode(display=False)
        with counter:                                   # also the warm-up step
            step(batches[0], shared)
        flops = counter.get_total_flops()
        out[name] = timed_path(lambda b: step(b, shared), batches[1:], flops, batch_size, peak, device)
    if checkpoint.resolve_precision("auto", device) == "bf16":
        vlm.hold_lm_in_bf16()
        bf16_peak = matmul_peak(device, dtype=torch.bfloat16)
        step(batches[0], True)                          # warm-up in the new dtype
        flops = out["shared_prefix"]["flops_per_example"] * batch_size
        out["shared_prefix_bf16"] = timed_path(lambda b: step(b, True), batches[1:], flops, batch_size,
                                               bf16_peak, device)
        out["bf16_matmul_peak_flops"] = bf16_peak
        out["bf16_speedup"] = out["shared_prefix_bf16"]["examples_per_s"] / out["shared_prefix"]["examples_per_s"]
    vlm.projector.eval()
    out["matmul_peak_flops"] = peak
    out["speedup"] = out["shared_prefix"]["examples_per_s"] / out["repeated_image"]["examples_per_s"]
    out["flops_ratio"] = out["repeated_image"]["flops_per_example"] / out["shared_prefix"]["flops_per_example"]
    return out
