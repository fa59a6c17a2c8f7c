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
    class Item:
        def __init__(self, id, path):
            self.id, self.path, self.concept = id, path, "dog"

    src = tmp_path / "dog.png"
    src.write_bytes(_png(_icon()))
    items = [Item("ab12cd34ef56ab78", src)]
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
