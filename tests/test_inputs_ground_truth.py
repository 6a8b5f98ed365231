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
    rows = parse_voc_xml(VOC)
    assert rows[0] == {"label": "cat", "x1": 10.0, "y1": 20.0, "x2": 50.0, "y2": 60.0}
    assert len(rows) == 2


def test_parse_voc_errors():
    with pytest.raises(GTFileError, match="not valid XML"):
        parse_voc_xml(b"<annotation>")
    with pytest.raises(GTFileError, match="no <object>"):
        parse_voc_xml(b"<annotation></annotation>")
    with pytest.raises(GTFileError, match="<xmax>"):
        parse_voc_xml(b"<a><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>3</ymax>"
                      b"</bndbox></object></a>")


def test_parse_coco_picks_the_image_by_name():
    doc = {
        "images": [{"id": 1, "file_name": "x/a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 17, "name": "cat"}],
        "annotations": [{"image_id": 1, "category_id": 17, "bbox": [10, 20, 30, 40]},
                        {"image_id": 2, "category_id": 17, "bbox": [0, 0, 5, 5]}],
    }
    rows = parse_coco_json(json.dumps(doc).encode(), image_name="a.png")
    assert rows == [{"label": "cat", "x1": 10.0, "y1": 20.0, "x2": 40.0, "y2": 60.0}]
    with pytest.raises(GTFileError, match="none is named"):
        parse_coco_json(json.dumps(doc).encode(), image_name="zzz.png")
    with pytest.raises(GTFileError, match="not valid JSON"):
        parse_coco_json(b"{")
    with pytest.raises(GTFileError, match="annotations"):
        parse_coco_json(b"{}")


def test_parse_annotation_file_dispatch():
    assert parse_annotation_file("A.XML", VOC)[0]["label"] == "cat"
    with pytest.raises(GTFileError, match="unknown annotation format"):
        parse_annotation_file("a.txt", b"")


def test_validate_rows_names_each_bad_row_and_keeps_good_ones():
    rows = [
        {"label": "cat", "x1": 10, "y1": 10, "x2": 50, "y2": 40},
        {"label": "horse", "x1": 0, "y1": 0, "x2": 5, "y2": 5},
        {"label": "dog", "x1": 30, "y1": 0, "x2": 20, "y2": 5},
        {"label": "dog", "x1": None, "y1": 0, "x2": 20, "y2": 5},
        {"label": "dog", "x1": 200, "y1": 200, "x2": 300, "y2": 300},
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
    row = box_from_selection({"x": [40.4, 10.2], "y": [5, 30.6], "xref": "x", "yref": "y"}, (100, 50))
    assert row == {"label": "", "x1": 10, "y1": 5, "x2": 40, "y2": 31}
    assert box_from_selection({"x": [10, 10.5], "y": [0, 30]}, (100, 50)) is None
    assert box_from_selection({"x": [-20, 500], "y": [-1, 500]}, (100, 50))["x2"] == 100
    assert box_from_selection({}, (100, 50)) is None
