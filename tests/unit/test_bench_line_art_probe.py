"""bench.line_art_probe's arms: a rendering that shows the training images the way a held-out style
draws them lifts the probe on that style, and the arms fit on the views plus exactly the named
renderings."""
import torch

from bench import line_art_probe


def _clusters(seed=0, classes=6, dim=16, per_class=8):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dim, generator=g)
    shift = 4 * torch.randn(dim, generator=g)              # how the held-out "style" draws every class
    y = torch.arange(classes).repeat_interleave(per_class)

    def noisy(base):
        return base + torch.randn(base.shape, generator=g)
    x = noisy(centres[y])
    extra = {"views": noisy(centres[y])[:, None], "line": noisy(centres[y] + shift), "fill": noisy(centres[y])}
    test = (noisy(centres[y] + 1.2 * shift), y)
    return x, y, extra, test, classes


def test_a_rendering_like_the_held_out_style_lifts_the_probe_on_it():
    x, y, extra, test, classes = _clusters()
    top1 = {}
    for name, arm in line_art_probe.ARMS.items():
        got = line_art_probe.arm_ranks(x, y, extra, arm, {"test": test}, classes, seed=0)
        assert got["test"].shape == (len(y),) and got["test"].min() >= 1 and got["test"].max() <= classes
        top1[name] = float((got["test"] == 1).float().mean())
    assert top1["views+line"] > top1["views"] + 0.2
    assert top1["views+fill"] < top1["views+line"]          # the arm without the shifted rendering


def test_ranks_put_the_true_class_first_when_it_scores_highest():
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 2))
    x = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])
    r = line_art_probe.ranks(head, torch.zeros(2), torch.ones(2), x, torch.tensor([0, 1, 0]))
    assert r.tolist() == [1, 1, 2]
