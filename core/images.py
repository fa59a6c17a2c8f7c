"""Safe image loading: any user-supplied file → an 8-bit RGB PIL image, or one clear ImageError.

Uploads are untrusted, so the checks run in order of cost: bytes read through a cap (regular files
only: a device or a FIFO reports size 0 and never ends), pixel
count from the header before decoding (decompression bombs), then a full decode (truncated or
corrupt data). Odd but valid images are normalised rather than rejected: EXIF rotation applied,
CMYK converted, 16-bit and float greyscale scaled to 8 bits, transparency composited on white,
animations reduced to their first frame. What was changed is recorded as human-readable notes in
`image.info[NOTES_KEY]` so the app can say so next to the picture.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import files

MAX_BYTES = 20 * 1024 * 1024        # matches server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 40_000_000             # ~6300×6300; far more than an encoder ever looks at
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff")   # file names of FORMATS (Predict's uploader)
NOTES_KEY = "taxolens_notes"
CONTENT_KEY = "taxolens_content_notes"
MIN_SIDE = 32                       # below this many pixels a side, a picture gets a note: little to see

ImageSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO]


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and says why."""


def load_image(src: ImageSource, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               name: str | None = None) -> Image.Image:
    """Read `src` (path, bytes or binary file-like such as a Streamlit upload) into an RGB image.

    `name` labels error messages; by default the file name (or "image" for raw bytes)."""
    label = name or _name_of(src)
    data = _read_bytes(src, max_bytes, label)
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes).")
    notes: list[str] = []
    with warnings.catch_warnings():
        # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; treat any bomb as an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise ImageError(f"{label}: not a supported image (expected one of "
                             f"{', '.join(f.lower() for f in FORMATS)}).") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{label}: the image is too large to decode safely (over "
                             f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels).") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{label}: the image header is corrupt ({exc}).") from None
        width, height = image.size
        if image.format == "JPEG" and width * height > max_pixels:
            _decode_reduced(image, max_pixels, notes)
            width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"{label}: the image is {width}×{height} pixels "
                             f"({width * height / 1e6:.0f} megapixels); the limit is "
                             f"{max_pixels / 1e6:.0f} megapixels.")
        if width == 0 or height == 0:
            raise ImageError(f"{label}: the image has no pixels ({width}×{height}).")
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            image.seek(0)
            notes.append(f"animated image with {frames} frames: using the first frame")
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{label}: the image is too large to decode safely.") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if "truncated" in str(exc).lower():
                raise ImageError(f"{label}: the image data is truncated (the file ends before the "
                                 f"picture does).") from None
            raise ImageError(f"{label}: the image data is corrupt ({exc}).") from None
    try:
        rgb = _to_rgb(ImageOps.exif_transpose(image), notes)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{label}: the image could not be converted to RGB ({exc}).") from None
    content = _content_notes(rgb)
    rgb.info[NOTES_KEY] = tuple(notes + content)
    rgb.info[CONTENT_KEY] = tuple(content)
    return rgb


def _decode_reduced(image: Image.Image, max_pixels: int, notes: list[str]) -> None:
    """A JPEG over the pixel limit (a 48-megapixel phone photo) is decoded at 1/2, 1/4 or 1/8 of
    its size, which the JPEG decoder does without ever holding the full picture; the encoder sees
    a few hundred pixels a side either way. Beyond 1/8 it stays too large and is refused."""
    width, height = image.size
    for k in (2, 4, 8):
        if (width * height) / (k * k) <= max_pixels:
            # draft picks its scale as the largest 1/k still at least the size asked for: ask for
            # width // k (rounding up would keep 1/(k/2) for a side k does not divide)
            image.draft("RGB", (max(1, width // k), max(1, height // k)))
            scale = round(width / image.size[0])
            notes.append(f"{width}×{height} photo decoded at 1/{scale} size ({image.size[0]}×{image.size[1]})")
            return


def _content_notes(rgb: Image.Image) -> list[str]:
    """What makes a valid picture a poor question for the model: one flat colour (a blank or fully
    transparent file) or a handful of pixels. The model still answers; the note says not to trust it."""
    notes = []
    width, height = rgb.size
    if all(lo == hi for lo, hi in rgb.getextrema()):
        notes.append("the picture is one flat colour: there is nothing in it to recognise, so any "
                     "answer is a guess")
    if min(width, height) < MIN_SIDE:
        notes.append(f"the picture is only {width}×{height} pixels: the encoder scales it up to its "
                     f"input size, so there is little in it to recognise")
    return notes


def read_image_bytes(path: str | os.PathLike, max_bytes: int = MAX_BYTES, name: str | None = None) -> bytes:
    """The bytes of an image file as load_image reads them (regular file, at most max_bytes), for
    callers that also hash them; ImageError otherwise."""
    return _read_bytes(Path(path), max_bytes, name or _name_of(path))


def notes_of(image: Image.Image) -> tuple[str, ...]:
    """What load_image changed or found about this image (empty for a plain RGB file)."""
    return tuple(image.info.get(NOTES_KEY, ()))


def content_notes_of(image: Image.Image) -> tuple[str, ...]:
    """Those of notes_of that say the picture gives the model little to go on (one flat colour, a
    few pixels): a page shows them as a warning beside the answers, not as a remark."""
    return tuple(image.info.get(CONTENT_KEY, ()))


def _name_of(src: ImageSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return Path(src).name
    return str(getattr(src, "name", "") or "image")


def _read_bytes(src: ImageSource, max_bytes: int, label: str) -> bytes:
    too_big = (f"{label}: the file is larger than the {max_bytes / 2**20:.0f} MB limit "
               f"for one image.")
    if isinstance(src, (bytes, bytearray)):
        if len(src) > max_bytes:
            raise ImageError(too_big)
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:   # regular files only, read through the cap (st_size is 0 for /dev/zero and FIFOs)
            return files.read_bytes(path, max_bytes)
        except files.FileReadError as exc:
            raise ImageError({"missing": f"{label}: no such file ({path}).",
                              "folder": f"{label}: is a folder, not an image file.",
                              "too_big": too_big}.get(exc.kind, f"{label}: {exc.reason}.")) from None
    if hasattr(src, "read"):
        if hasattr(src, "seek"):
            src.seek(0)
        data = src.read(max_bytes + 1)    # one byte more than allowed tells "too big" apart
        if len(data) > max_bytes:
            raise ImageError(too_big)
        return bytes(data)
    raise ImageError(f"{label}: expected a file path, bytes or an open file, "
                     f"got {type(src).__name__}" + (" (a PIL image is taken as it is; an array: "
                                                     "PIL.Image.fromarray(array))." if type(src).__name__ == "ndarray" else "."))


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
        return image.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        notes.append(f"{_bit_depth(mode)} greyscale image scaled to 8 bits")
        return _scale_to_8bit(image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas composited on white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _bit_depth(mode: str) -> str:
    return {"I": "32-bit integer", "F": "floating-point"}.get(mode, "16-bit")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit data spans 0..65535, so divide by 257 (65535 → 255) to keep its real brightness;
    32-bit integer and float data have no fixed range, so stretch them to 0..255."""
    array = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.min() >= 0
                                         and array.max() <= 65535 and array.max() > 255):
        scaled = array / 257.0
    elif image.mode == "I" and array.min() >= 0 and array.max() <= 255:
        scaled = array
    elif image.mode == "F" and array.min() >= 0 and array.max() <= 1:
        scaled = array * 255.0
    else:
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8), "L")
