"""core.images: every kind of bad or odd file gives RGB or a clear, per-file ImageError."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.images import ImageError, content_notes_of, load_image, notes_of


def _encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height but carries no pixel data (bomb-shaped)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _dotted(mode: str, size: tuple[int, int], color, dot) -> Image.Image:
    """A picture of one colour with one pixel of another: not blank, so no flat-colour note."""
    image = Image.new(mode, size, color)
    image.putpixel((size[0] - 1, size[1] - 1), dot)
    return image


def test_plain_rgb_from_path_bytes_and_filelike(tmp_path):
    data = _encode(_dotted("RGB", (48, 36), (10, 20, 30), (200, 0, 0)))
    path = tmp_path / "plain.png"
    path.write_bytes(data)
    for src in (path, str(path), data, io.BytesIO(data)):
        image = load_image(src)
        assert image.mode == "RGB" and image.size == (48, 36)
        assert image.getpixel((0, 0)) == (10, 20, 30)
        assert notes_of(image) == ()


def test_filelike_is_read_from_start_even_if_already_consumed():
    stream = io.BytesIO(_encode(Image.new("RGB", (4, 4), "red")))
    stream.read()
    assert load_image(stream).getpixel((1, 1)) == (255, 0, 0)


def test_zero_byte_file_names_the_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty\.png: the file is empty"):
        load_image(path)


def test_non_image_file_is_rejected_with_supported_formats(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(ImageError, match=r"notes\.png: not a supported image .*png, jpeg, webp"):
        load_image(path)


def test_svg_is_not_accepted():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    with pytest.raises(ImageError, match="not a supported image"):
        load_image(svg, name="drawing.svg")


def test_truncated_png_is_reported_as_truncated():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = _encode(noise)
    with pytest.raises(ImageError, match=r"cut\.png: the image data is (truncated|corrupt)"):
        load_image(data[: len(data) // 2], name="cut.png")


def test_truncated_jpeg_is_rejected():
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = _encode(noise, "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"cut\.jpg: the image data is (truncated|corrupt)"):
        load_image(data[: len(data) // 2], name="cut.jpg")


def test_corrupt_png_body_is_rejected():
    data = bytearray(_encode(Image.new("RGB", (32, 32), "blue")))
    data[60:80] = b"\x00" * 20      # inside the IDAT chunk: CRC / zlib stream broken
    with pytest.raises(ImageError, match=r"bad\.png: .*(corrupt|truncated)"):
        load_image(bytes(data), name="bad.png")


def test_file_over_byte_limit_is_rejected_before_decoding(tmp_path):
    data = _encode(Image.new("RGB", (16, 16)))
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for src in (path, data, io.BytesIO(data)):
        with pytest.raises(ImageError, match="larger than the .* MB limit"):
            load_image(src, max_bytes=len(data) - 1)
    assert load_image(data, max_bytes=len(data)).size == (16, 16)


def test_pixel_limit_rejects_large_dimensions():
    data = _encode(Image.new("L", (100, 100)))
    with pytest.raises(ImageError, match=r"100×100 pixels"):
        load_image(data, max_pixels=5_000)


def test_decompression_bomb_header_is_rejected_without_decoding():
    # Above Pillow's own limit (error beyond 2×MAX_IMAGE_PIXELS, warning beyond 1×) and below it
    # but above ours: all three refused from the header alone.
    for side in (100_000, 10_000):
        with pytest.raises(ImageError, match="bomb.png: the image is too large to decode safely"):
            load_image(_png_header_only(side, side), name="bomb.png")
    with pytest.raises(ImageError, match="bomb.png: the image is 8000×8000 pixels .* limit is 40"):
        load_image(_png_header_only(8_000, 8_000), name="bomb.png")


def test_cmyk_jpeg_and_tiff_are_converted():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))   # pure red in CMYK
    for fmt in ("JPEG", "TIFF"):
        image = load_image(_encode(cmyk, fmt))
        assert image.mode == "RGB"
        r, g, b = image.getpixel((4, 4))
        assert r > 200 and g < 60 and b < 60, (fmt, (r, g, b))
        assert "CMYK image converted to RGB" in notes_of(image)


def test_16bit_greyscale_is_scaled_to_8bit():
    array = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    image = load_image(_encode(Image.fromarray(array)))
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 4]
    assert any("16-bit" in n or "32-bit" in n for n in notes_of(image))


def test_float_image_is_stretched_to_8bit():
    array = np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)
    image = load_image(_encode(Image.fromarray(array, "F"), "TIFF"))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    rgba.putpixel((2, 2), (0, 0, 0, 128))
    image = load_image(_encode(rgba))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 1)) == (255, 0, 0)
    assert 120 <= image.getpixel((2, 2))[0] <= 135
    assert "transparent areas composited on white" in notes_of(image)


def test_greyscale_alpha_and_palette_transparency_are_composited_on_white():
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(_encode(la)).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.putpixel((3, 3), 1)
    image = load_image(_encode(palette, transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((3, 3)) == (255, 0, 0)


def test_opaque_rgba_gets_no_transparency_note():
    image = load_image(_encode(_dotted("RGBA", (40, 40), (1, 2, 3, 255), (9, 9, 9, 255))))
    assert image.getpixel((0, 0)) == (1, 2, 3) and notes_of(image) == ()


def test_animated_gif_and_webp_use_first_frame_with_a_note():
    frames = [_dotted("RGB", (40, 40), c, (255, 255, 255)) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    for fmt, kw in (("GIF", {}), ("WEBP", {"lossless": True})):
        data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **kw)
        image = load_image(data)
        r, g, b = image.getpixel((4, 4))
        assert r > 200 and g < 40 and b < 40, (fmt, (r, g, b))
        assert notes_of(image) == ("animated image with 3 frames: using the first frame",)


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (20, 10), "white")
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90° clockwise to display"
    image = load_image(_encode(wide, "JPEG", exif=exif.tobytes()))
    assert image.size == (10, 20)


def test_missing_path_and_folder_and_wrong_type(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="expected a file path, bytes or an open file, got int"):
        load_image(42)


def test_upload_name_attribute_labels_errors():
    class Upload(io.BytesIO):
        name = "holiday.webp"
    with pytest.raises(ImageError, match=r"^holiday\.webp: "):
        load_image(Upload(b"garbage bytes"))


def test_the_upload_extensions_are_the_decodable_formats():
    """Reported: Predict's uploader refused .gif/.bmp/.tiff that the loader (and its own error message) accepts."""
    from PIL import Image as PILImage
    from core import images
    assert {PILImage.registered_extensions()[f".{e}"] for e in images.EXTENSIONS} == set(images.FORMATS)


def test_a_blank_or_tiny_picture_is_answered_with_a_note_saying_so():
    """Reported: a fully transparent PNG came back "pig, P(yes) 1.00" and a 1×1 image "whale 0.99",
    with no word that there was nothing to see."""
    blank = load_image(_encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0))))
    assert notes_of(blank) == ("transparent areas composited on white",
                               "the picture is one flat colour: there is nothing in it to recognise, so any "
                               "answer is a guess")
    strip = load_image(_encode(_dotted("RGB", (400, 3), (10, 20, 30), (0, 0, 0))))
    assert notes_of(strip) == ("the picture is only 400×3 pixels: the encoder scales it up to its input size, "
                               "so there is little in it to recognise",)
    assert len(notes_of(load_image(_encode(Image.new("RGB", (1, 1), (5, 5, 5)))))) == 2
    assert content_notes_of(blank) == ("the picture is one flat colour: there is nothing in it to recognise, so "
                                       "any answer is a guess",)
    assert content_notes_of(strip) == ("the picture is only 400×3 pixels: the encoder scales it up to its input "
                                       "size, so there is little in it to recognise",)


def test_a_phone_photo_over_the_pixel_limit_is_decoded_at_a_fraction_of_its_size():
    """Reported: an 8000×8000 image was refused, and so would be every 48-megapixel phone photo."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8))
    image = load_image(_encode(photo, "JPEG", quality=80), max_pixels=200_000, name="phone.jpg")
    assert image.size == (400, 300) and image.mode == "RGB"
    assert notes_of(image) == ("800×600 photo decoded at 1/2 size (400×300)",)
    quarter = load_image(_encode(photo, "JPEG", quality=80), max_pixels=40_000)
    assert quarter.size == (200, 150) and "decoded at 1/4 size" in notes_of(quarter)[0]
    odd = Image.fromarray(rng.integers(0, 255, (901, 1201, 3), dtype=np.uint8))   # sides 4 does not divide
    reduced = load_image(_encode(odd, "JPEG"), max_pixels=70_000)
    assert reduced.size == (301, 226) and notes_of(reduced) == ("1201×901 photo decoded at 1/4 size (301×226)",)
    with pytest.raises(ImageError, match=r"800×600 pixels"):       # a PNG cannot be decoded smaller
        load_image(_encode(photo, "PNG"), max_pixels=200_000)
    with pytest.raises(ImageError, match=r"800×600 pixels"):      # beyond 1/8: still refused, at full size
        load_image(_encode(photo, "JPEG"), max_pixels=1_000)
