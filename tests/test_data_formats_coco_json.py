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


# ---------------------------------------------------------------- the writer
def _written(tmp_path):
    from ssd.data.formats import COCOImage, write_coco_json

    objects = [AnnotatedBox("dog", (10.0, 5.0, 40.0, 30.0)), AnnotatedBox("cat", (0.0, 0.0, 64.0, 48.0)),
               AnnotatedBox("cat", (1.25, 2.5, 3.75, 9.0), difficult=True),
               AnnotatedBox("dog", (0.0, 0.0, 1.0, 0.1), crowd=True)]
    images = [(COCOImage(7, "a.jpg", (48, 64)), objects), (COCOImage(8, "b.png", None), [])]
    return write_coco_json(tmp_path / "gt.json", images, ["cat", "dog"]), objects


def test_write_then_read_round_trip_with_our_reader(tmp_path):
    path, objects = _written(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    c = read_coco_json(path)
    assert c.class_names == ("background", "cat", "dog") and c.category_ids == (1, 2)  # label k <-> id k
    assert [(im.id, im.file_name, im.image_hw) for im in c.images] == [(7, "a.jpg", (48, 64)), (8, "b.png", None)]
    back = c.objects(7)
    assert [(o.name, o.box_xyxy) for o in back] == [(o.name, pytest.approx(o.box_xyxy)) for o in objects]
    # COCO has no "difficult": written iscrowd=1 (mmdetection's converter), read back as crowd.
    assert [o.crowd for o in back] == [False, False, True, True] and c.objects(8) == ()


def test_written_file_read_by_pycocotools_and_gt_scores_ap_1(tmp_path):
    from pycocotools.cocoeval import COCOeval

    path, objects = _written(tmp_path)
    ref = COCO(str(path))
    anns = ref.loadAnns(ref.getAnnIds(imgIds=[7]))
    assert [a["bbox"] for a in anns] == [pytest.approx([x1, y1, x2 - x1, y2 - y1])
                                         for x1, y1, x2, y2 in (o.box_xyxy for o in objects)]
    assert [a["area"] for a in anns] == pytest.approx([750.0, 3072.0, 16.25, 0.1])
    assert [ref.loadCats(a["category_id"])[0]["name"] for a in anns] == ["dog", "cat", "cat", "dog"]
    # The ground truth as detections: pycocotools matches every counted box, AP 1.
    dets = ref.loadRes([{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                         "score": 1.0} for a in anns if not a["iscrowd"]])
    ev = COCOeval(ref, dets, "bbox")
    ev.params.imgIds = [7]
    ev.evaluate(), ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # (R, K) at IoU 0.5, all areas, 100 detections
    assert precision.shape[1] == 2 and precision.min() == pytest.approx(1.0)  # both categories, every recall


@pytest.mark.parametrize("images, names, match", [
    ([], ["cat", "cat"], "category names must be distinct"),
    ([], ["cat", ""], "category names must be distinct, non-empty"),
    ("two images id 1", ["cat"], r"image ids must be distinct integers, got '\[1, 1\]'"),
    ("image id text", ["cat"], "image ids must be distinct integers"),
    ([("a.jpg", AnnotatedBox("bird", (0, 0, 1, 1)))], ["cat"], r"image 1 \('a.jpg'\) object 'bird': not one of"),
    ([("a.jpg", AnnotatedBox("cat", (5, 0, 1, 1)))], ["cat"], "x2 >= x1 and y2 >= y1"),
    ([("a.jpg", AnnotatedBox("cat", (0, 0, float("nan"), 1)))], ["cat"], "must be finite"),
])
def test_writer_refuses_bad_input_naming_it(images, names, match):
    from ssd.data.formats import COCOImage, coco_json_bytes

    if images == "two images id 1":
        images = [(COCOImage(1, "a.jpg", None), []), (COCOImage(1, "b.jpg", None), [])]
    elif images == "image id text":
        images = [(COCOImage("1", "a.jpg", None), [])]
    else:
        images = [(COCOImage(1, name, (4, 4)), [obj]) for name, obj in images]
    with pytest.raises(AnnotationError, match=match):
        coco_json_bytes(images, names)
