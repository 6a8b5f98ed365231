"""Tests for ssd/data/coco.py: reading COCO JSON + images, DatasetError per bad entry."""
import json

import pytest
import torch
from PIL import Image

from ssd.data.coco import COCODataset
from ssd.data.common import DatasetError
from ssd.data.procedural import CLASSES, ProceduralDataset, write_coco

CATS = [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]  # ids out of order on purpose


def make_coco(tmp_path, annotations, images=None, cats=CATS, files=None):
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    files = files if files is not None else {"a.png": "png", "b.png": "png"}
    for name, content in files.items():
        if content == "png":
            Image.new("RGB", (64, 48), (30, 40, 200)).save(img_dir / name)
        else:
            (img_dir / name).write_bytes(content)
    if images is None:
        images = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                  {"id": 2, "file_name": "b.png", "width": 64, "height": 48}]
    js = tmp_path / "instances.json"
    js.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return js, img_dir


def ann(aid, image_id=1, cat=18, bbox=(10, 5, 30, 25), **kw):
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": list(bbox), "iscrowd": 0, **kw}


GOOD_B = ann(99, image_id=2, cat=3, bbox=(0, 0, 64, 48))


def test_reads_hand_made_sample(tmp_path):
    js, d = make_coco(tmp_path, [ann(1), ann(2, cat=3, bbox=(0, 0, 64, 48)), ann(3, iscrowd=1), GOOD_B])
    ds = COCODataset(js, d)
    assert ds.class_names == ("background", "car", "dog")  # sorted by category id: car=3, dog=18
    assert ds.category_ids == [3, 18]
    x, t = ds[0]
    assert x.shape == (3, 48, 64)
    assert torch.allclose(t["boxes"], torch.tensor([[10 / 64, 5 / 48, 40 / 64, 30 / 48], [0, 0, 1, 1]]))
    assert t["labels"].tolist() == [2, 1]  # crowd annotation ignored
    assert ds.image_ids == [1, 2]


def test_round_trip_with_procedural_export(tmp_path):
    write_coco(tmp_path / "a.json", tmp_path / "img", 4, seed=2, size=96)
    ds = COCODataset(tmp_path / "a.json", tmp_path / "img")
    ref = ProceduralDataset(4, seed=2, size=96)
    assert ds.class_names == CLASSES
    for i in range(4):
        assert torch.equal(ds[i][0], ref[i][0])  # PNG: lossless
        assert torch.allclose(ds[i][1]["boxes"], ref[i][1]["boxes"], atol=1e-5)
        assert torch.equal(ds[i][1]["labels"], ref[i][1]["labels"])


@pytest.mark.parametrize(
    "bad, files, match",
    [
        (ann(1, bbox=(10, 5, 0, 25)), None, "x2 <= x1"),
        (ann(1, bbox=(10, 5, 30, -2)), None, "x2 <= x1 or y2 <= y1"),
        (ann(1, bbox=(50, 5, 30, 25)), None, "outside the 64x48 image"),
        (ann(1, cat=7), None, "unknown category_id 7"),
        (ann(1, bbox=(1, 2, 3)), None, r"bbox must be \[x, y, w, h\]"),
        (ann(1), {"a.png": b"garbage", "b.png": "png"}, "unreadable image"),
        (ann(1), {"b.png": "png"}, "image file not found"),
    ],
)
def test_bad_entry_raises_and_skip_bad_counts(tmp_path, bad, files, match):
    js, d = make_coco(tmp_path, [bad, GOOD_B], files=files)
    with pytest.raises(DatasetError, match=match) as err:
        COCODataset(js, d)
    assert "instances.json" in str(err.value) or "a.png" in str(err.value)
    ds = COCODataset(js, d, skip_bad=True)
    assert len(ds) == 1 and ds.num_skipped == 1 and ds.image_ids == [2]


def test_annotation_for_unknown_image(tmp_path):
    js, d = make_coco(tmp_path, [ann(1, image_id=42), GOOD_B])
    with pytest.raises(DatasetError, match="image_id 42"):
        COCODataset(js, d)
    assert COCODataset(js, d, skip_bad=True).num_skipped == 1


def test_size_mismatch(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 640, "height": 48}]
    js, d = make_coco(tmp_path, [ann(1)], images=images)
    with pytest.raises(DatasetError, match="says 640x48"):
        COCODataset(js, d)


def test_missing_files_and_bad_json(tmp_path):
    with pytest.raises(DatasetError, match="COCO annotation JSON file not found"):
        COCODataset(tmp_path / "none.json", tmp_path)
    js, d = make_coco(tmp_path, [ann(1)])
    with pytest.raises(DatasetError, match="COCO image folder not found"):
        COCODataset(js, tmp_path / "nope")
    js.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        COCODataset(js, d)
    js.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DatasetError, match="missing list 'annotations'"):
        COCODataset(js, d)


def test_empty_images_kept_or_dropped(tmp_path):
    js, d = make_coco(tmp_path, [ann(1)])
    assert len(COCODataset(js, d)) == 2
    assert len(COCODataset(js, d, keep_empty=False)) == 1
    assert COCODataset(js, d)[1][1]["boxes"].shape == (0, 4)


# ------------------------------------------------------------ real COCO files from other projects
def test_peer_color_sample_images_sharing_a_name_crowd_and_unknown_category(peer_data):
    path = peer_data / "mmdet" / "coco_sample_color.json"
    with pytest.raises(DatasetError, match=r"annotation 6 \(image 1\): unknown category_id 3; known: \[1, 2\]"):
        COCODataset(path, peer_data / "mmdet")
    ds = COCODataset(path, peer_data / "mmdet", skip_bad=True)
    assert ds.image_ids == [0, 2, 3] and ds.num_skipped == 1  # four entries share color.jpg: each is a sample
    assert ds.samples[0][2].tolist() == [1]  # image 0: the crowd 'car' region is not ground truth
    assert ds.samples[2][1].tolist() == [[0, 0, 10, 10], [0, 0, 1, pytest.approx(0.1)]]  # sub-pixel box kept


def test_truncated_image_skipped_when_decoded(peer_data, tmp_path):
    js, d = make_coco(tmp_path, [ann(1), GOOD_B], files={"b.png": "png"},
                      images=[{"id": 1, "file_name": "a.jpg", "width": 353, "height": 500},
                              {"id": 2, "file_name": "b.png", "width": 64, "height": 48}])
    (d / "a.jpg").write_bytes((peer_data / "truncated" / "000001.jpg").read_bytes())
    with pytest.raises(DatasetError, match="a.jpg: unreadable image"):
        COCODataset(js, d)[0]
    ds = COCODataset(js, d, skip_bad=True)
    assert ds.num_skipped == 0
    assert ds[0][0].shape == (3, 48, 64) and ds.num_skipped == 1  # b.png stands in for a.jpg


def test_malformed_json_refused_whole(tmp_path):
    js, d = make_coco(tmp_path, [ann(1), "not an object"])
    with pytest.raises(DatasetError, match=r"instances.json: annotations\[1\] must be an object"):
        COCODataset(js, d, skip_bad=True)
