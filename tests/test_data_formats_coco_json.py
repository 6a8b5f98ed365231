"""ssd/data/formats/coco_json.py: the one COCO JSON reader, against pycocotools on real
COCO files, and refusing malformed files with one clear error (issue 14's list)."""
import time

import pytest
from pycocotools.coco import COCO

from ssd.data.formats import MAX_BOXES_PER_IMAGE, AnnotatedBox, AnnotationError, read_coco_json

from annotation_cases import BAD_COCO, ann, doc


def test_bbox_to_xyxy_crowd_flagged_categories_by_id():
    c = read_coco_json(doc([ann(1), ann(2, cat=3, iscrowd=1, bbox=(0, 0, 1, 0.1))]), "a.json")
    assert c.class_names == ("background", "car", "dog") and c.category_ids == (3, 18)
    assert c.images[0].image_hw == (48, 64) and c.images[0].file_name == "x/a.png"
    assert c.objects(1) == (AnnotatedBox("dog", (10.0, 5.0, 40.0, 30.0), category_id=18),
                            AnnotatedBox("car", (0.0, 0.0, 1.0, 0.1), crowd=True, category_id=3))
    assert c.objects(99) == ()  # an image without annotations
    assert [im.id for im in c.images_named("a.png")] == [1] and c.images_named("C:\\up\\a.png")
    assert c.images_named("b.png") == []


def test_images_sharing_a_file_name_are_each_reachable(peer_data):
    c = read_coco_json(peer_data / "mmdet" / "coco_sample_color.json")
    assert [im.id for im in c.images_named("color.jpg")] == [0, 1, 2, 3]
    assert len(c.objects(0)) == 2 and len(c.objects(3)) == 2 and c.objects(2) == ()


@pytest.mark.parametrize("name", ["coco_sample.json", "coco_sample_v2.json", "coco_sample_color.json"])
def test_every_peer_coco_file_matches_pycocotools(peer_data, name):
    path = peer_data / "mmdet" / name
    c = read_coco_json(path)
    ref = COCO(str(path))
    assert [im.id for im in c.images] == sorted(ref.getImgIds())
    assert list(c.category_ids) == sorted(ref.getCatIds())
    for im in c.images:
        theirs = ref.loadAnns(ref.getAnnIds(imgIds=[im.id]))
        if any(a["category_id"] not in c.category_ids for a in theirs):
            with pytest.raises(AnnotationError, match=r"unknown category_id 3; known: \[1, 2\]"):
                c.objects(im.id)
            continue
        ours = c.objects(im.id)
        assert [o.box_xyxy for o in ours] == [(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                               a["bbox"][1] + a["bbox"][3]) for a in theirs]
        if all("iscrowd" in a for a in theirs):
            not_crowd = ref.getAnnIds(imgIds=[im.id], iscrowd=False)  # pycocotools' ground truth
        else:  # coco_sample_v2 has no iscrowd keys: COCOeval then takes every annotation as ground truth
            not_crowd = [a["id"] for a in theirs]
        assert [a["id"] for a, o in zip(theirs, ours) if not o.crowd] == not_crowd


@pytest.mark.parametrize("data, match", BAD_COCO)
def test_bad_file_one_clear_error_naming_it(data, match):
    t0 = time.perf_counter()
    with pytest.raises(AnnotationError, match=match) as err:
        read_coco_json(data, "upload.json")
    assert str(err.value).startswith("upload.json: ")
    assert time.perf_counter() - t0 < 2.0


# Per-image problems: the file reads, the image with the bad entry raises (so a dataset can skip it).
BAD_IMAGE = [
    (ann(bbox=("1", "2", "3", "4")), r"annotation 1 \(image 1\): bbox must be \[x, y, w, h\] of 4 finite numbers"),
    (ann(bbox=(1, 2, 3)), r"bbox must be \[x, y, w, h\]"),
    (ann(bbox=(1, 2, float("nan"), 4)), "4 finite numbers"),
    (ann(cat=[18]), r"category_id must be an integer, got '\[18\]'"),
    (ann(cat=7), r"unknown category_id 7; known: \[3, 18\]"),
    (ann(iscrowd=2), "iscrowd must be 0 or 1"),
]


@pytest.mark.parametrize("bad, match", BAD_IMAGE)
def test_bad_annotation_raises_for_its_image_only(bad, match):
    c = read_coco_json(doc([bad, ann(2, image_id=2)], images=[{"id": 1, "file_name": "a"}, {"id": 2, "file_name": "b"}]),
                       "upload.json")
    with pytest.raises(AnnotationError, match=match) as err:
        c.objects(1)
    assert str(err.value).startswith("upload.json annotation")
    assert len(c.objects(2)) == 1


def test_box_limit_per_image_and_size_limit():
    many = [ann(i) for i in range(MAX_BOXES_PER_IMAGE + 1)]
    c = read_coco_json(doc(many + [ann(10**6, image_id=2)]), "big.json")
    with pytest.raises(AnnotationError, match=r"big.json image 1: 1,001 objects for one image, over the limit of 1,000"):
        c.objects(1)
    assert len(c.objects(2)) == 1
    data = doc([ann()])
    with pytest.raises(AnnotationError, match=r"file is .* over the 100 bytes limit"):
        read_coco_json(data, "x.json", max_bytes=100)


def test_missing_file_named(tmp_path):
    with pytest.raises(AnnotationError, match="none.json: annotation file not found"):
        read_coco_json(tmp_path / "none.json")
