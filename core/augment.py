"""Augmented views of training images: new renderings the projector trains on, encoded once, ever.

    view(image, key) -> PIL image                 one deterministic augmentation of `image`
    line_drawing(image, key, fill) -> PIL image   its colour regions' borders as thick black strokes
    view_items(items, n, line_art=0) -> [[ViewItem] * (n + line_art) per item]
                                                  written under data/augmented/, cached like images

Why: the projector fits its training images completely (it says yes to their own leaf every time)
but a held-out rendering of the same concept far less often, while a linear probe on the same
features generalises; the features of a few more renderings per image are the cheapest counter to
memorising a rendering. Each view is one random draw of: scale (zoom in or out) and shift, a small
rotation, a horizontal flip, hue / saturation / brightness / contrast jitter, sometimes greyscale
and sometimes a slight blur (the differences between emoji art styles are mostly these). Every
draw is seeded by (recipe, image id, view index), not by the run's seed, so all runs share the
same views and the encoder runs on each once: a view is written as a PNG file and the feature
cache keys it by its bytes like any image.

Line-art views (TrainConfig.line_art_views; line_drawing) are another rendering, not a draw of the
above: the borders between an image's colour regions (and between drawing and paper) as black
strokes 5-9 px thick, on white ("line") or over the image's own colours ("fill"). Why: two of the eleven styles
draw every concept that way (Fluent High Contrast: black strokes on white; OpenMoji: black
outlines round flat colour), and the linear probe on EfficientNet features recognises their test
images far worse than the colour styles' (top-1 0.34 against 0.75-0.86 on seed 0), which is where
the model answers "no" to an image's own leaf; colour jitter and greyscale do not make a drawing
look like an outline.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from core import files, paths
from core.base import Progress
from core.config import MAX_AUGMENT_VIEWS
from core.images import load_image

RECIPE = "v1"          # the draw below; change it when the draw changes, so old views are not reused
MAX_VIEWS = MAX_AUGMENT_VIEWS
LINE_ART_RECIPE = "lineart-v1"     # line_drawing below, as RECIPE is for view
LINE_ART_KINDS = ("line", "fill")  # line_art_views = 1: the first; 2: both


@dataclass(frozen=True)
class ViewItem:
    """One augmented view of a dataset image: what FeatureCache needs (`path`) and an id of its own."""
    id: str              # "<image id>~<view>"
    image_id: str
    index: int           # 1..n, then n + 1.. for line art (0 is the image itself)
    path: Path
    concept: str         # the image's concept (a view shows the same thing)


def view(image: Image.Image, key: str) -> Image.Image:
    """One augmentation of an RGB image, drawn from `key` alone (same key, same pixels)."""
    from torchvision.transforms import functional as TF     # PIL paths only; no torch RNG involved

    draw = random.Random(f"{RECIPE}:{key}")
    out = image.convert("RGB")
    side = max(out.size)
    out = TF.affine(out, angle=draw.uniform(-15, 15),
                    translate=[round(draw.uniform(-0.08, 0.08) * side), round(draw.uniform(-0.08, 0.08) * side)],
                    scale=draw.uniform(0.75, 1.2), shear=[0.0, 0.0],
                    interpolation=TF.InterpolationMode.BILINEAR, fill=[255, 255, 255])
    if draw.random() < 0.5:
        out = TF.hflip(out)
    # Colour changes apply to the drawing only: every image is composited on white, and a grey
    # background is no style of the set. Soft mask: 1 where the pixel is far from white.
    ink = np.asarray(out, dtype=np.float32).min(axis=-1, keepdims=True)
    ink = np.clip((255.0 - ink) / 24.0, 0.0, 1.0)
    out = TF.adjust_hue(out, draw.uniform(-0.08, 0.08))
    out = TF.adjust_saturation(out, draw.uniform(0.6, 1.4))
    out = TF.adjust_brightness(out, draw.uniform(0.85, 1.15))
    out = TF.adjust_contrast(out, draw.uniform(0.75, 1.3))
    if draw.random() < 0.15:
        out = TF.rgb_to_grayscale(out, num_output_channels=3)
    if draw.random() < 0.25:
        out = out.filter(ImageFilter.GaussianBlur(draw.uniform(0.3, 1.2)))
    mixed = ink * np.asarray(out, dtype=np.float32) + (1.0 - ink) * 255.0
    return Image.fromarray(mixed.round().astype(np.uint8), "RGB")


def line_drawing(image: Image.Image, key: str, fill: bool) -> Image.Image:
    """The borders of an RGB-on-white image's colour regions (a median-cut palette of 4, 6 or 8
    colours; paper is near-white, every channel over 235) thickened to a 5, 7 or 9 px stroke,
    drawn from `key` alone: black on white (fill=False) or over the image's colours (fill=True)."""
    draw = random.Random(f"lineart:{key}")
    rgb = image.convert("RGB")
    colours, width = draw.choice([4, 6, 8]), draw.choice([5, 7, 9])
    paper = np.asarray(rgb, dtype=np.int16).min(axis=-1) > 235
    regions = np.where(paper, -1, np.asarray(rgb.quantize(colours, method=Image.Quantize.MEDIANCUT), dtype=np.int16))
    border = np.zeros(regions.shape, bool)
    border[:, 1:] |= regions[:, 1:] != regions[:, :-1]
    border[1:, :] |= regions[1:, :] != regions[:-1, :]
    stroke = Image.fromarray(border.astype(np.uint8) * 255, "L").filter(ImageFilter.MaxFilter(width))
    out = np.asarray(rgb).copy() if fill else np.full((*border.shape, 3), 255, np.uint8)
    out[np.asarray(stroke) > 127] = 0
    return Image.fromarray(out, "RGB")


def view_items(items: Sequence, n: int, root: Path | None = None,
               progress: Progress | None = None, line_art: int = 0) -> list[list[ViewItem]]:
    """For each dataset image (`.id`, `.path`), its views 1..n, then its first `line_art` line-art
    renderings (LINE_ART_KINDS), as files (written when missing)."""
    if not 0 <= n <= MAX_VIEWS:
        raise ValueError(f"augmented views must be between 0 and {MAX_VIEWS}, got {n}")
    if not 0 <= line_art <= len(LINE_ART_KINDS):
        raise ValueError(f"line-art views must be between 0 and {len(LINE_ART_KINDS)}, got {line_art}")
    root = Path(root) if root is not None else paths.augmented_dir()
    report = progress or (lambda fraction, message: None)
    out = []
    for done, item in enumerate(items, 1):
        row, image = [], None
        renderings = [(root / RECIPE / item.id[:2] / item.id / f"{v}.png",
                       lambda im, v=v: view(im, f"{item.id}:{v}")) for v in range(1, n + 1)]
        renderings += [(root / LINE_ART_RECIPE / item.id[:2] / item.id / f"{kind}.png",
                        lambda im, kind=kind: line_drawing(im, f"{item.id}:{kind}", fill=kind == "fill"))
                       for kind in LINE_ART_KINDS[:line_art]]
        for index, (path, render) in enumerate(renderings, 1):
            if not path.is_file():
                if image is None:
                    image = load_image(item.path)
                buf = io.BytesIO()
                render(image).save(buf, format="PNG")
                files.write_atomic(path, buf.getvalue())
            row.append(ViewItem(f"{item.id}~{index}", item.id, index, path, getattr(item, "concept", "")))
        out.append(row)
        if renderings and (done % 50 == 0 or done == len(items)):
            report(done / len(items), f"augmented views: {done}/{len(items)} images")
    return out
