"""ssd.images.load_image on real files of every kind a user may upload."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ssd.images import ImageError, is_image_path, load_image, stored_image_hw


def _save(tmp_path, im: Image.Image, name: str, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_rgb_png_path_bytes_and_filelike(tmp_path):
    im = Image.new("RGB", (40, 36), (10, 20, 30))
    p = _save(tmp_path, im, "a.png")
    for src in (p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes())):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (40, 36)
        assert out.getpixel((5, 5)) == (10, 20, 30)


@pytest.mark.parametrize(
    "mode,color,name,expected",
    [
        ("L", 100, "l.png", (100, 100, 100)),
        ("1", 1, "bw.png", (255, 255, 255)),
        ("CMYK", (0, 0, 0, 0), "c.jpg", (255, 255, 255)),
        ("P", 3, "p.png", None),
        ("I;16", 65535, "i16.png", (255, 255, 255)),
    ],
)
def test_modes_to_rgb(tmp_path, mode, color, name, expected):
    im = Image.new(mode, (40, 40), color)
    p = _save(tmp_path, im, name)
    with Image.open(p) as raw:
        assert raw.mode.startswith(mode[:1])  # the file really is in that mode
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (40, 40)
    if expected is not None:
        assert all(abs(a - b) <= 2 for a, b in zip(out.getpixel((20, 20)), expected))


def test_16bit_values_are_rescaled_not_clipped(tmp_path):
    arr = np.full((40, 40), 257 * 100, dtype=np.uint16)  # 100 in 8-bit terms
    p = _save(tmp_path, Image.fromarray(arr), "grey16.png")
    assert load_image(p).getpixel((0, 0)) == (100, 100, 100)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_composited_on_white(tmp_path, mode):
    color = (0, 0, 255, 0) if mode == "RGBA" else (0, 0)
    im = Image.new(mode, (40, 40), color)  # fully transparent
    if mode == "RGBA":
        im.paste((255, 0, 0, 255), (0, 0, 20, 40))  # left half opaque red
    p = _save(tmp_path, im, f"t_{mode}.png")
    out = load_image(p)
    assert out.getpixel((30, 20)) == (255, 255, 255)
    if mode == "RGBA":
        assert out.getpixel((5, 20)) == (255, 0, 0)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (40, 40), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 20, 40))
    p = _save(tmp_path, im, "pt.png", transparency=0)
    out = load_image(p)
    assert out.getpixel((5, 5)) == (255, 0, 0) and out.getpixel((30, 5)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (64, 40), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    p = _save(tmp_path, im, "rot.jpg", exif=exif)
    assert load_image(p).size == (40, 64)


def test_first_frame_of_animation(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = _save(tmp_path, frames[0], "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    with Image.open(p) as raw:
        assert raw.n_frames == 3
    out = load_image(p)
    r, g, b = out.getpixel((20, 20))
    assert r > 200 and g < 50 and b < 50


def test_tiny_image_upscaled(tmp_path):
    p = _save(tmp_path, Image.new("RGB", (1, 1), (9, 8, 7)), "dot.png")
    out = load_image(p)
    assert out.size == (32, 32) and out.getpixel((16, 16)) == (9, 8, 7)
    out = load_image(_save(tmp_path, Image.new("RGB", (4, 16)), "thin.png"), min_side=32)
    assert out.size == (32, 128)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg: empty file"):
        load_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is text, not a PNG\n")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        load_image(p)


@pytest.mark.parametrize("fmt,name", [("JPEG", "cut.jpg"), ("PNG", "cut.png")])
def test_truncated(tmp_path, fmt, name):
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    p = tmp_path / name
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=f"{name}: truncated or corrupt"):
        load_image(p)


def test_missing_file_and_bad_type(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        load_image(42)


def test_pixel_limit(tmp_path):
    p = _save(tmp_path, Image.new("RGB", (100, 100)), "big.png")
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(p, max_pixels=5000)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size (a decompression bomb header) with no real data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


def test_decompression_bomb(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(40000, 40000))  # 1.6 G pixels declared
    with pytest.raises(ImageError, match="bomb.png: too many pixels"):
        load_image(p)


def test_is_image_path():
    assert is_image_path("a/B.JPG") and is_image_path("x.webp") and not is_image_path("notes.txt")


# ---------------------------------------------------------------- the EXIF rule, against torchvision
@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_rule_equals_torchvision_decode_image(peer_data, orientation):
    """Pillow's hopper photo with each EXIF orientation 2..8: `apply_exif=True` (uploads,
    CLI images) equals torchvision's decode with `apply_exif_orientation=True`, and the
    dataset loader (as stored) equals it with False, pixel for pixel."""
    import torch
    from torchvision.io import ImageReadMode, decode_image, read_file

    from ssd.data.common import load_dataset_image

    path = peer_data / "pillow" / f"hopper_orientation_{orientation}.jpg"

    def theirs(apply: bool):
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB, apply_exif_orientation=apply)

    def chw(im: Image.Image):
        return torch.from_numpy(np.array(im)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)

    shown, stored = theirs(True), theirs(False)
    assert not torch.equal(shown, stored)  # the orientation really turns the picture
    assert torch.equal(chw(load_image(path, apply_exif=True)), shown)
    assert torch.equal(chw(load_image(path, apply_exif=False)), stored)
    assert torch.equal(chw(load_dataset_image(path)), stored)  # dataset images: the boxes' stored frame


def test_stored_image_hw_reads_the_header_as_stored(tmp_path):
    im = Image.new("RGB", (64, 40), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned: 40 wide, 64 high
    p = _save(tmp_path, im, "rot.jpg", exif=exif)
    assert stored_image_hw(p) == (40, 64)  # (H, W) as stored
    assert load_image(p).size == (40, 64) and load_image(p, apply_exif=False).size == (64, 40)  # PIL: (W, H)
    with pytest.raises(ImageError, match="does not exist"):
        stored_image_hw(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ImageError, match="junk.png: not an image"):
        stored_image_hw(tmp_path / "junk.png")
