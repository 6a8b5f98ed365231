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
