"""explorer/inputs/samples.py: sample scenes (files or generated) and uploads."""
import io
import json

import pytest
from PIL import Image

from explorer.inputs import samples as sm
from ssd.images import ImageError


def test_generated_samples_when_no_folder(tmp_path):
    samples = sm.list_samples(tmp_path / "missing")
    assert sm.default_sample_id(samples) == "procedural:cat_and_dog"
    img = sm.load_sample("procedural:cat_and_dog", tmp_path / "missing")
    assert img.image.mode == "RGB" and img.image.size == (256, 256)
    assert [r["label"] for r in img.gt_rows] == ["cat", "dog"]
    assert img.digest == sm.load_sample("procedural:cat_and_dog").digest  # deterministic
    with pytest.raises(ValueError, match="unknown"):
        sm.load_sample("procedural:nope")


def test_file_samples_with_annotations(tmp_path):
    Image.new("RGB", (64, 48), "red").save(tmp_path / "b.png")
    Image.new("RGB", (64, 48), "blue").save(tmp_path / "cat_and_dog.png")
    (tmp_path / "annotations.json").write_text(json.dumps(
        {"cat_and_dog.png": {"boxes_xyxy": [[1, 2, 30, 40]], "labels": [2]},
         "b.png": {"boxes_xyxy": [[0, 0, 5, 5], [1, 1, 4, 4]], "labels": [6, 1], "label_names": ["house", "cat"]}}))
    samples = sm.list_samples(tmp_path)
    assert [s.sample_id for s in samples] == ["cat_and_dog.png", "b.png"]  # cat-and-dog first
    img = sm.load_sample("cat_and_dog.png", tmp_path)
    assert img.gt_rows == [{"label": "dog", "x1": 1, "y1": 2, "x2": 30, "y2": 40}]  # index -> name
    assert [r["label"] for r in sm.load_sample("b.png", tmp_path).gt_rows] == ["house", "cat"]


def test_upload_any_mode_and_bad_files():
    buf = io.BytesIO()
    Image.new("P", (50, 40)).save(buf, format="GIF")
    up = sm.load_upload("a.gif", buf.getvalue())
    assert up.image.mode == "RGB" and up.name == "a.gif" and up.gt_rows == []
    with pytest.raises(ImageError):
        sm.load_upload("empty.png", b"")
    with pytest.raises(ImageError):
        sm.load_upload("text.png", b"not an image at all")
    with pytest.raises(ImageError, match="too many pixels"):
        sm.load_upload("big.png", buf.getvalue(), max_pixels=100)


def test_upload_keeps_its_size_and_errors_name_the_file():
    """A 40x30 upload stays 40x30 (GT pixels keep the file's frame), and a bad upload's
    error names the file, not an internal placeholder."""
    import io

    import pytest
    from PIL import Image

    from explorer.inputs.samples import load_upload
    from ssd.images import ImageError

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, format="PNG")
    assert load_upload("tiny.png", buf.getvalue()).image.size == (40, 30)
    with pytest.raises(ImageError) as e:
        load_upload("notes.png", b"hello, I am text" * 10)
    assert str(e.value).startswith("notes.png:") and "<bytes>" not in str(e.value)


# ---------------------------------------------------------------- working copy (issue 20 #15)
@pytest.mark.parametrize("hw,expected", [  # (H, W) in and out
    ((2048, 100), (2048, 100)), ((640, 480), (640, 480)), ((7300, 5466), (2048, 1533)),
    ((5466, 7300), (1533, 2048)), ((100_000, 1), (2048, 1)), ((2049, 2049), (2048, 2048)),
])
def test_work_size_bounds_the_longer_side_and_keeps_the_aspect(hw, expected):
    from explorer.inputs.samples import WORK_MAX_SIDE, work_size

    assert WORK_MAX_SIDE == 2048 and work_size(hw) == expected


def test_work_image_is_the_image_itself_when_small_else_a_shrunk_copy():
    from PIL import Image

    from explorer.inputs.samples import work_image

    small = Image.new("RGB", (300, 200))
    assert work_image(small) is small
    big = Image.new("RGB", (4100, 1000), (10, 20, 30))
    shrunk = work_image(big)
    assert shrunk.size == (2048, 500) and big.size == (4100, 1000) and shrunk.getpixel((5, 5)) == (10, 20, 30)


def test_forward_raw_bounded_keeps_boxes_in_the_full_images_pixels():
    """The network runs on the working copy; boxes and image_hw are the full image's."""
    import torch
    from PIL import Image, ImageDraw

    from explorer import results
    from explorer.inputs import models
    from explorer.inputs.samples import work_image

    model = models.load_model(models.RANDOM_COMPACT).model
    big = Image.new("RGB", (4100, 1000), (90, 120, 150))
    ImageDraw.Draw(big).rectangle((500, 100, 1500, 900), fill=(220, 60, 40))
    raw = results.forward_raw_bounded(model, big)
    ref = results.forward_raw(model, work_image(big))  # the same network input
    assert raw.image is None and raw.image_hw == (1000, 4100) and ref.image_hw == (500, 2048)
    assert torch.equal(raw.scores, ref.scores) and torch.equal(raw.boxes_px_in, ref.boxes_px_in)
    ratio = torch.tensor([4100 / 2048, 1000 / 500] * 2)
    torch.testing.assert_close(raw.boxes_xyxy_px, ref.boxes_xyxy_px * ratio, rtol=1e-3, atol=1e-2)
    small = Image.new("RGB", (320, 240))
    assert results.forward_raw_bounded(model, small).image_hw == (240, 320)
