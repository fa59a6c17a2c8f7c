"""core.augment: deterministic views that keep the white background, written once and cached."""
import io

import numpy as np
import pytest
from PIL import Image

from core import augment


def _icon(color=(200, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    image.paste(Image.new("RGB", (24, 24), color), (20, 20))
    return image


class _Item:
    """A dataset image as view_items reads it."""
    def __init__(self, id, path):
        self.id, self.path, self.concept = id, path, "dog"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_a_view_is_a_function_of_its_key():
    icon = _icon()
    assert _png(augment.view(icon, "a:1")) == _png(augment.view(icon, "a:1"))
    assert len({_png(augment.view(icon, f"a:{v}")) for v in range(1, 6)}) == 5
    assert augment.view(icon, "a:1").size == icon.size and augment.view(icon, "a:1").mode == "RGB"


def test_colour_changes_leave_the_white_background_white():
    icon = _icon()
    for v in range(1, 21):
        out = np.asarray(augment.view(icon, f"bg:{v}"))
        assert (out[:4, :4] == 255).all() and (out[-4:, -4:] == 255).all(), v   # corners: background
        assert (out < 250).any(axis=-1).sum() > 100, v                           # the drawing is still there


def test_view_items_write_each_view_once(tmp_path):
    src = tmp_path / "dog.png"
    src.write_bytes(_png(_icon()))
    items = [_Item("ab12cd34ef56ab78", src)]
    (row,) = augment.view_items(items, 3, root=tmp_path / "views")
    assert [v.index for v in row] == [1, 2, 3] and [v.id for v in row] == [f"ab12cd34ef56ab78~{i}" for i in (1, 2, 3)]
    assert all(v.path.is_file() and v.image_id == "ab12cd34ef56ab78" and v.concept == "dog" for v in row)
    assert Image.open(row[0].path).tobytes() == augment.view(Image.open(src).convert("RGB"), "ab12cd34ef56ab78:1").tobytes()
    stamps = [v.path.stat().st_mtime_ns for v in row]
    src.write_bytes(_png(_icon((0, 0, 200))))              # cached: not drawn again
    (again,) = augment.view_items(items, 3, root=tmp_path / "views")
    assert [v.path.stat().st_mtime_ns for v in again] == stamps
    assert augment.view_items(items, 0, root=tmp_path / "views") == [[]]
    for bad in (-1, augment.MAX_VIEWS + 1):
        with pytest.raises(ValueError, match="augmented views must be between 0 and"):
            augment.view_items(items, bad, root=tmp_path / "views")


def _two_colour_icon() -> Image.Image:
    image = _icon((200, 40, 40))
    image.paste(Image.new("RGB", (10, 10), (40, 40, 200)), (27, 27))     # a blue patch inside the red
    return image


def test_a_line_drawing_strokes_the_borders_black_on_white_or_over_the_colours():
    icon = _two_colour_icon()
    line = augment.line_drawing(icon, "dog:line", fill=False)
    assert line.size == icon.size and line.mode == "RGB"
    assert _png(line) == _png(augment.line_drawing(icon, "dog:line", fill=False))   # a function of its key
    px = np.asarray(line)
    black, white = (px == 0).all(-1), (px == 255).all(-1)
    assert (black | white).all() and black.sum() > 100                    # strokes only, no colour
    assert white[:4, :4].all() and white[-4:, -4:].all()                  # the paper stays paper
    assert black[20, 32] and black[27, 32]                                # the outline and the inner border
    assert white[23, 32] and white[32, 32]                                # regions stay white inside
    filled = np.asarray(augment.line_drawing(icon, "dog:line", fill=True))
    assert (filled[black] == 0).all()                                      # the same strokes (same key) ...
    assert ((filled == (200, 40, 40)).all(-1) & ~black).any()             # ... over the drawing's colours
    assert ((filled == (40, 40, 200)).all(-1) & ~black).any()


def test_view_items_add_line_drawings_after_the_views(tmp_path):
    src = tmp_path / "dog.png"
    src.write_bytes(_png(_two_colour_icon()))
    items = [_Item("ab12cd34ef56ab78", src)]
    (row,) = augment.view_items(items, 2, root=tmp_path / "views", line_art=2)
    assert [v.index for v in row] == [1, 2, 3, 4] and row[3].id == "ab12cd34ef56ab78~4"
    assert [v.path.parent.parent.parent.name for v in row] == [augment.RECIPE] * 2 + [augment.LINE_ART_RECIPE] * 2
    image = Image.open(src).convert("RGB")
    assert Image.open(row[2].path).tobytes() == augment.line_drawing(image, "ab12cd34ef56ab78:line", False).tobytes()
    assert Image.open(row[3].path).tobytes() == augment.line_drawing(image, "ab12cd34ef56ab78:fill", True).tobytes()
    (one,) = augment.view_items(items, 0, root=tmp_path / "views", line_art=1)
    assert [v.path for v in one] == [row[2].path] and one[0].index == 1
    for bad in (-1, len(augment.LINE_ART_KINDS) + 1):
        with pytest.raises(ValueError, match="line-art views must be between 0 and 2"):
            augment.view_items(items, 0, root=tmp_path / "views", line_art=bad)
