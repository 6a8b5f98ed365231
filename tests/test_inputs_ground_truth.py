"""explorer/inputs/ground_truth.py: VOC/COCO parsing, row validation, drawn boxes."""
import json

import pytest
import torch

from explorer.inputs.ground_truth import (GTFileError, box_from_selection, parse_annotation_file, parse_coco_json,
                                   parse_voc_xml, validate_rows)

NAMES = ["background", "cat", "dog"]

VOC = b"""<annotation><filename>a.png</filename>
<object><name>cat</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>
</annotation>"""


def test_parse_voc():
    rows = parse_voc_xml(VOC).rows
    # VOC pixels are 1-based: xmin 10 is the 10th column, x1 = 9 in 0-based corners.
    assert rows[0] == {"label": "cat", "x1": 9.0, "y1": 19.0, "x2": 50.0, "y2": 60.0, "difficult": False,
                       "crowd": False}
    assert len(rows) == 2


def test_parse_voc_errors():
    with pytest.raises(GTFileError, match="not valid XML"):
        parse_voc_xml(b"<annotation>")
    with pytest.raises(GTFileError, match="<xmax>"):
        parse_voc_xml(b"<a><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>3</ymax>"
                      b"</bndbox></object></a>")
    empty = parse_voc_xml(b"<annotation></annotation>", "e.xml")  # a background image: no boxes, said so
    assert empty.rows == [] and "no <object>" in empty.notes[0]


def test_parse_coco_picks_the_image_by_name():
    doc = {
        "images": [{"id": 1, "file_name": "x/a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 17, "name": "cat"}],
        "annotations": [{"image_id": 1, "category_id": 17, "bbox": [10, 20, 30, 40]},
                        {"image_id": 2, "category_id": 17, "bbox": [0, 0, 5, 5]}],
    }
    rows = parse_coco_json(json.dumps(doc).encode(), image_name="a.png").rows
    assert rows == [{"label": "cat", "x1": 10.0, "y1": 20.0, "x2": 40.0, "y2": 60.0, "difficult": False,
                     "crowd": False}]
    with pytest.raises(GTFileError, match="none is named"):
        parse_coco_json(json.dumps(doc).encode(), image_name="zzz.png")
    with pytest.raises(GTFileError, match="not valid JSON"):
        parse_coco_json(b"{")
    with pytest.raises(GTFileError, match="annotations"):
        parse_coco_json(b"{}")


def test_parse_annotation_file_dispatch():
    assert parse_annotation_file("A.XML", VOC).rows[0]["label"] == "cat"
    with pytest.raises(GTFileError, match="unknown annotation format"):
        parse_annotation_file("a.txt", b"")


def test_validate_rows_names_each_bad_row_and_keeps_good_ones():
    rows = [
        {"label": "cat", "x1": 10, "y1": 10, "x2": 50, "y2": 40},
        {"label": "horse", "x1": 0, "y1": 0, "x2": 5, "y2": 5},
        {"label": "dog", "x1": 30, "y1": 0, "x2": 20, "y2": 5},
        {"label": "dog", "x1": None, "y1": 0, "x2": 20, "y2": 5},
        {"label": "dog", "x1": 200, "y1": 200, "x2": 300, "y2": 300},  # nothing of it inside
        {"label": "DOG", "x1": -5, "y1": 90, "x2": 20, "y2": 120},  # clipped to the image
        {"label": "2", "x1": 1, "y1": 1, "x2": 9, "y2": 9},  # class index
        {"label": "cat", "x1": float("nan"), "y1": 1, "x2": 9, "y2": 9},
    ]
    gt = validate_rows(rows, NAMES, (100, 100))
    assert gt.names == ["cat", "dog", "dog"]
    assert gt.labels.tolist() == [1, 2, 2]
    assert torch.equal(gt.boxes_xyxy[1], torch.tensor([0.0, 90.0, 20.0, 100.0]))
    assert len(gt.errors) == 5
    assert gt.errors[0].startswith("row 2:") and "horse" in gt.errors[0]
    assert gt.errors[1].startswith("row 3") and "x2 > x1" in gt.errors[1]
    assert gt.errors[2].startswith("row 4") and "numbers" in gt.errors[2]
    assert gt.errors[3].startswith("row 5") and "outside" in gt.errors[3]
    assert gt.errors[4].startswith("row 8") and "finite" in gt.errors[4]


def test_validate_rows_background_is_not_a_label_and_empty_is_fine():
    gt = validate_rows([{"label": "background", "x1": 0, "y1": 0, "x2": 5, "y2": 5}], NAMES, (10, 10))
    assert len(gt) == 0 and "background" in gt.errors[0]
    empty = validate_rows([], NAMES, (10, 10))
    assert empty.boxes_xyxy.shape == (0, 4) and empty.errors == []


def test_box_from_selection():
    row = box_from_selection({"x": [40.4, 10.2], "y": [5, 30.6], "xref": "x", "yref": "y"}, (50, 100))
    assert row == {"label": "", "x1": 10, "y1": 5, "x2": 40, "y2": 31}
    assert box_from_selection({"x": [10, 10.5], "y": [0, 30]}, (50, 100)) is None
    assert box_from_selection({"x": [-20, 500], "y": [-1, 500]}, (50, 100))["x2"] == 100
    assert box_from_selection({}, (50, 100)) is None


# ------------------------------------------------------------ the app agrees with the library
# Issue 9: every peer VOC/COCO file read through the app's upload path gives the same boxes,
# labels, difficult flags and crowd handling as the library's dataset readers.
import xml.etree.ElementTree as ET  # noqa: E402

from PIL import Image  # noqa: E402
from torchvision.datasets import VOCDetection  # noqa: E402

from ssd.data.coco import COCODataset  # noqa: E402
from ssd.data.voc import VOC_CLASSES, VOCDataset, parse_annotation  # noqa: E402


def _app_gt(path, image_hw, keep_difficult=False, class_names=VOC_CLASSES):
    read = parse_annotation_file(path.name, path.read_bytes(), image_hw=image_hw)
    return read, validate_rows(read.rows, list(class_names), image_hw, keep_difficult=keep_difficult)


@pytest.mark.parametrize("folder", ["VOC2007", "VOC2012", "VOC2012_v3"])
@pytest.mark.parametrize("keep_difficult", [False, True])
def test_peer_voc_same_boxes_in_app_and_library(peer_data, folder, keep_difficult):
    for path in sorted((peer_data / "mmdet" / folder / "Annotations").glob("*.xml")):
        _, w, h, boxes, labels = parse_annotation(path, VOC_CLASSES, keep_difficult)
        read, gt = _app_gt(path, (h, w), keep_difficult)
        assert torch.equal(gt.boxes_xyxy, boxes), path
        assert torch.equal(gt.labels, labels) and not gt.errors
        ref = VOCDetection.parse_voc_xml(ET.parse(path).getroot())["annotation"]["object"]
        assert [r["difficult"] for r in read.rows] == [o.get("difficult") == "1" for o in ref]
        assert len(gt) + len(gt.ignored) == len(ref)


@pytest.mark.parametrize("folder", ["VOC2007", "VOC2012"])
def test_peer_voc_dataset_items_equal_app_boxes(peer_data, folder):
    ds = VOCDataset(peer_data / "mmdet" / folder, "trainval")
    for (img_path, _, _), k in zip(ds.samples, range(len(ds))):
        x, target = ds[k]
        h, w = x.shape[1:]
        _, gt = _app_gt(peer_data / "mmdet" / folder / "Annotations" / f"{img_path.stem}.xml", (h, w))
        assert torch.allclose(target["boxes"] * torch.tensor([w, h, w, h]), gt.boxes_xyxy)
        assert torch.equal(target["labels"], gt.labels)


def _coco_images(peer_data, tmp_path, name):
    """The image folder of a peer COCO file: mmdet/ for color.jpg; for the fake*.jpg of
    mmdetection's samples (never shipped), blank JPEGs of the size the JSON declares."""
    doc = json.loads((peer_data / "mmdet" / name).read_text())
    if name == "coco_sample_color.json":
        return peer_data / "mmdet", doc
    for im in doc["images"]:
        Image.new("RGB", (im["width"], im["height"])).save(tmp_path / im["file_name"])
    return tmp_path, doc


@pytest.mark.parametrize("name", ["coco_sample.json", "coco_sample_v2.json", "coco_sample_color.json"])
def test_peer_coco_same_boxes_in_app_and_library(peer_data, tmp_path, name):
    image_dir, doc = _coco_images(peer_data, tmp_path, name)
    ds = COCODataset(peer_data / "mmdet" / name, image_dir, skip_bad=True)
    data = (peer_data / "mmdet" / name).read_bytes()
    for im in doc["images"]:
        hw = (im["height"], im["width"])
        if im["id"] not in ds.image_ids:  # the library refuses this image: so does the app, same reason
            reason = [r for f, r in ds.skipped if f == im["file_name"]][0]
            with pytest.raises(GTFileError) as err:
                parse_coco_json(data, im["file_name"], name, hw, image_id=im["id"])
            assert str(err.value).split(": ", 1)[1] in reason
            continue
        read = parse_coco_json(data, im["file_name"], name, hw, image_id=im["id"])
        assert read.coco_image_id == im["id"]
        gt = validate_rows(read.rows, list(ds.class_names), hw)
        _, boxes, labels = ds.samples[ds.image_ids.index(im["id"])]
        assert torch.equal(gt.boxes_xyxy, boxes) and torch.equal(gt.labels, labels) and not gt.errors
        crowd = [a for a in doc["annotations"] if a["image_id"] == im["id"] and a.get("iscrowd")]
        assert [r["crowd"] for r in gt.ignored] == [True] * len(crowd)


# ------------------------------------------------------------ issue 9 symptoms, one test each
def test_symptom1_voc_upload_uses_0_based_corners_like_the_library(peer_data):
    path = peer_data / "mmdet" / "VOC2012" / "Annotations" / "2007_000042.xml"  # xmin = 1, xmax = width
    read = parse_voc_xml(path.read_bytes(), path.name)
    _, _, _, boxes, _ = parse_annotation(path, VOC_CLASSES)
    assert read.rows[-1]["x1"] == boxes[-1, 0].item() == 0.0  # <xmin>1: was 1.0, every box 1 px off on x1/y1
    assert read.rows[-1]["y1"] == boxes[-1, 1].item() == 35.0  # <ymin>36


def test_symptom2_difficult_objects_shown_but_not_matched(peer_data):
    path = peer_data / "mmdet" / "VOC2007" / "Annotations" / "000005.xml"
    read, gt = _app_gt(path, (375, 500))
    assert len(read.rows) == 5 and [r["difficult"] for r in read.rows].count(True) == 2
    assert len(gt) == 3 and len(gt.ignored) == 2 and all(r["difficult"] for r in gt.ignored)
    assert len(VOCDataset(peer_data / "mmdet" / "VOC2007", "trainval")[4][1]["labels"]) == 3
    assert any("2 object(s) marked difficult" in n for n in read.notes)
    assert len(gt.rows()) == 5 and [r["difficult"] for r in gt.rows()].count(True) == 2  # the table shows them
    assert len(_app_gt(path, (375, 500), keep_difficult=True)[1]) == 5


def test_symptom3_crowd_regions_are_not_ground_truth(peer_data):
    read = parse_coco_json((peer_data / "mmdet" / "coco_sample.json").read_bytes(), "fake1.jpg", "coco_sample.json")
    gt = validate_rows(read.rows, ["background", "bus", "car"], (800, 800))
    assert gt.names == ["bus"] and [r["label"] for r in gt.ignored] == ["car"] and gt.ignored[0]["crowd"]
    assert any("crowd region" in n for n in read.notes)


def test_symptom4_unknown_category_is_an_error_naming_the_id(peer_data):
    with pytest.raises(GTFileError, match=r"coco_sample.json annotation 6 \(image 1\): unknown category_id 3"):
        parse_coco_json((peer_data / "mmdet" / "coco_sample.json").read_bytes(), "fake2.jpg", "coco_sample.json")


def test_symptom8_size_mismatch_is_told_and_subpixel_boxes_kept(peer_data):
    path = peer_data / "mmdet" / "VOC2007" / "Annotations" / "000001.xml"  # written for 353x500
    read, gt = _app_gt(path, (256, 256))
    note = [n for n in read.notes if "<size> says 353x500 but the image is 256x256" in n]
    assert note and "not rescaled" in note[0] and "clipped" in note[0]
    assert len(gt) + len(gt.errors) == 2
    # mmdetection's 1 x 0.1 px box lies inside the 20x20 image: kept, as the library keeps it
    read = parse_coco_json((peer_data / "mmdet" / "coco_sample.json").read_bytes(), "fake4.jpg", "coco_sample.json",
                           (20, 20))
    gt = validate_rows(read.rows, ["background", "bus", "car"], (20, 20))
    assert not gt.errors and gt.boxes_xyxy.tolist()[1] == pytest.approx([0, 0, 1, 0.1])
    gt = validate_rows([{"label": "cat", "x1": 30, "y1": 5, "x2": 40, "y2": 5.5}], NAMES, (100, 100))
    assert len(gt) == 1 and not gt.errors
    gt = validate_rows([{"label": "cat", "x1": 100, "y1": 5, "x2": 140, "y2": 9}], NAMES, (100, 100))
    assert "box (100, 5, 140, 9) lies outside the 100x100 image" in gt.errors[0]


def test_images_sharing_a_file_name_are_each_reachable(peer_data):
    data = (peer_data / "mmdet" / "coco_sample_color.json").read_bytes()
    first = parse_coco_json(data, "color.jpg", "c.json", (288, 512))
    assert first.coco_image_ids == [0, 1, 2, 3] and first.coco_image_id == 0
    assert any("4 images are named 'color.jpg'" in n for n in first.notes)
    last = parse_coco_json(data, "color.jpg", "c.json", (288, 512), image_id=3)
    assert last.coco_image_id == 3 and [r["y2"] for r in last.rows] == [10.0, 0.1]
    with pytest.raises(GTFileError, match="unknown category_id 3"):
        parse_coco_json(data, "color.jpg", "c.json", image_id=1)


# ------------------------------------------------------------ issue 14: hostile and malformed uploads
from annotation_cases import BAD_COCO, BAD_VOC, BILLION_LAUGHS, EXTERNAL_ENTITY  # noqa: E402


@pytest.mark.parametrize("data, match", BAD_COCO)
def test_malformed_coco_upload_one_clear_error(data, match):
    with pytest.raises(GTFileError, match=match) as err:
        parse_annotation_file("mine.json", data, image_name="a.png")
    assert str(err.value).startswith("mine.json")


@pytest.mark.parametrize("data, match", BAD_VOC)
def test_malformed_voc_upload_one_clear_error(data, match):
    with pytest.raises(GTFileError) as err:
        parse_annotation_file("mine.xml", data)
    assert str(err.value).startswith("mine.xml") and match.split("(")[0].strip() in str(err.value)


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_hostile_xml_refused_quickly(data):
    import time

    t0 = time.perf_counter()
    with pytest.raises(GTFileError, match="refused, the XML declares a DTD"):
        parse_annotation_file("evil.xml", data)
    assert time.perf_counter() - t0 < 0.5


def test_upload_limits_stated_and_enforced():
    from explorer.inputs.ground_truth import MAX_COCO_UPLOAD_BYTES, MAX_VOC_UPLOAD_BYTES

    big = b"<annotation>" + b" " * MAX_VOC_UPLOAD_BYTES + b"</annotation>"
    with pytest.raises(GTFileError, match=r"big.xml: file is 1 MiB, over the 1 MiB limit"):
        parse_annotation_file("big.xml", big)
    big = b'{"images": [' + b" " * MAX_COCO_UPLOAD_BYTES + b"]}"
    with pytest.raises(GTFileError, match=r"big.json: file is 64 MiB, over the 64 MiB limit"):
        parse_annotation_file("big.json", big)
    many = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}] * 1001}
    with pytest.raises(GTFileError, match="1,001 objects for one image, over the limit of 1,000"):
        parse_annotation_file("many.json", json.dumps(many).encode(), image_name="a.png")


def test_flags_from_table_cells():
    from explorer.inputs.ground_truth import flag

    assert [flag(v) for v in (True, 1, "true", "1", " Yes")] == [True] * 5
    assert [flag(v) for v in (False, 0, None, float("nan"), "", "0", "no")] == [False] * 7
    gt = validate_rows([{"label": "cat", "x1": 0, "y1": 0, "x2": 5, "y2": 5, "crowd": True},
                        {"label": "cat", "x1": 0, "y1": 0, "x2": 5, "y2": 5, "difficult": 1.0}], NAMES, (10, 10),
                       keep_difficult=True)
    assert len(gt) == 1 and gt.ignored[0]["crowd"]  # crowd is never ground truth, difficult is when kept


def test_a_blank_row_just_added_is_not_an_error():
    from explorer.inputs.ground_truth import validate_rows

    rows = [{"label": "cat", "x1": 1, "y1": 2, "x2": 30, "y2": 40},
            {"label": None, "x1": float("nan"), "y1": None, "x2": None, "y2": ""}]
    gt = validate_rows(rows, ["background", "cat"], (100, 100))
    assert len(gt) == 1 and gt.errors == []
    half = validate_rows([{"label": "cat", "x1": None, "y1": None, "x2": None, "y2": None}], ["background", "cat"],
                         (100, 100))
    assert half.errors  # a row started but incomplete is still named


# ---------------------------------------------------------------- downloads
DL_CLASSES = ["background", "cat", "dog"]
DL_ROWS = [{"label": "dog", "x1": 10, "y1": 20.5, "x2": 50, "y2": 60, "difficult": False, "crowd": False},
           {"label": "cat", "x1": -5, "y1": 0, "x2": 30, "y2": 500, "difficult": True},  # clipped to 64x48
           {"label": "cat", "x1": 1, "y1": 1, "x2": 9, "y2": 9, "crowd": True},
           {"label": "bird", "x1": 1, "y1": 1, "x2": 9, "y2": 9},  # not a class: skipped
           {"label": "dog", "x1": 5, "y1": 5, "x2": 2, "y2": 9}]  # x2 < x1: skipped
DL_BACK = [("dog", [10.0, 20.5, 50.0, 60.0]), ("cat", [0.0, 0.0, 30.0, 48.0]), ("cat", [1.0, 1.0, 9.0, 9.0])]


def _boxes(rows):
    return [(r["label"], [r["x1"], r["y1"], r["x2"], r["y2"]]) for r in rows]


def test_voc_download_reads_back_as_the_valid_rows():
    from explorer.inputs.ground_truth import parse_voc_xml, voc_xml_download

    data = voc_xml_download(DL_ROWS, DL_CLASSES, "photo.jpg", (48, 100))
    back = parse_voc_xml(data, "photo.xml", image_hw=(48, 100))
    assert back.notes[0].startswith("photo.xml: 2 object(s) marked difficult")  # <size> matches: no size note
    assert _boxes(back.rows) == [("dog", [10.0, 20.5, 50.0, 48.0])] + DL_BACK[1:]  # clipped to H = 48
    assert [r["difficult"] for r in back.rows] == [False, True, True]  # VOC has no crowd: written difficult


def test_coco_download_reads_back_with_our_reader_and_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    from explorer.inputs.ground_truth import coco_json_download, parse_coco_json

    data = coco_json_download(DL_ROWS, DL_CLASSES, "photo.jpg", (48, 100))
    back = parse_coco_json(data, image_name="photo.jpg", image_hw=(48, 100))
    assert _boxes(back.rows) == [("dog", [10.0, 20.5, 50.0, 48.0])] + DL_BACK[1:]
    assert [r["crowd"] for r in back.rows] == [False, True, True]  # difficult written iscrowd (mmdetection)
    (tmp_path / "gt.json").write_bytes(data)
    ref = COCO(str(tmp_path / "gt.json"))
    assert [c["name"] for c in ref.loadCats(ref.getCatIds())] == ["cat", "dog"]
    assert [a["bbox"] for a in ref.loadAnns(ref.getAnnIds(imgIds=[1]))] == [
        [10.0, 20.5, 40.0, 27.5], [0.0, 0.0, 30.0, 48.0], [1.0, 1.0, 8.0, 8.0]]


def test_download_file_name():
    from explorer.inputs.ground_truth import download_file_name

    assert download_file_name("cat_and_dog") == "cat_and_dog.png"  # a generated sample
    assert download_file_name("C:\\up\\photo.jpg") == "photo.jpg" and download_file_name("a/b.JPG") == "b.JPG"
    assert download_file_name("") == "image.png" and download_file_name(".hidden") == ".hidden.png"


def test_coco_download_with_torchvision_coco_names_keeps_label_ids():
    """torchvision's 91 COCO names repeat "N/A": the download must not fail (it did, with a
    COCO model in the sidebar), and a box of label 18 ("dog") keeps category id 18."""
    import json

    from ssd.models import coco_class_names

    names = coco_class_names("ssd300_vgg16")
    assert names.count("N/A") > 1 and names[18] == "dog"
    rows = [{"label": "dog", "x1": 10, "y1": 20, "x2": 110, "y2": 220, "difficult": False, "crowd": False}]
    from explorer.inputs.ground_truth import coco_json_download

    doc = json.loads(coco_json_download(rows, names, "street.jpg", (300, 400)))
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    assert cats[18] == "dog" and cats[12] == "N/A (12)" and len(set(cats.values())) == len(cats) == 90
    assert [a["category_id"] for a in doc["annotations"]] == [18]


def test_pasted_table_is_capped_like_files():
    """Issue 20 item 10: 3,000 pasted rows were all matched (23 s, +640 MB); files stop at 1,000."""
    from explorer.inputs.ground_truth import validate_rows
    from ssd.data.formats import MAX_BOXES_PER_IMAGE

    rows = [{"label": "cat", "x1": 1, "y1": 1, "x2": 9, "y2": 9}] * 3000
    gt = validate_rows(rows, ["background", "cat"], (100, 100))
    assert len(gt) == MAX_BOXES_PER_IMAGE == 1000
    assert any("over the limit of 1,000 boxes" in e for e in gt.errors)
