"""ssd/data/formats/voc_xml.py: the one VOC XML reader/writer, against torchvision's
parser on real VOC files, and refusing hostile or malformed files with one clear error."""
import time
import xml.etree.ElementTree as ET

import pytest
from torchvision.datasets import VOCDetection

from annotation_cases import BAD_VOC, OBJ, voc
from ssd.data.formats import MAX_VOC_XML_BYTES, AnnotatedBox, AnnotationError, read_voc_xml, write_voc_xml


def test_one_based_pixels_converted_once_and_difficult_flagged():
    ann = read_voc_xml(voc(OBJ.format(1, 1, 64, 48, name="dog", diff=0) + OBJ.format(11, 6, 40, 30, name="cat", diff=1)),
                       "a.xml")
    assert ann.filename == "a.jpg" and ann.image_hw == (48, 64) and ann.source == "a.xml"
    # Column 1 of VOC is the first pixel: x1 = xmin - 1 = 0; xmax = W covers the last column.
    assert ann.objects[0] == AnnotatedBox("dog", (0.0, 0.0, 64.0, 48.0), difficult=False)
    assert ann.objects[1] == AnnotatedBox("cat", (10.0, 5.0, 40.0, 30.0), difficult=True)


def test_no_size_and_no_objects_are_allowed():
    ann = read_voc_xml(voc(size=""))
    assert ann.image_hw is None and ann.objects == ()


def test_write_then_read_round_trip(tmp_path):
    objects = [AnnotatedBox("dog", (0.0, 0.0, 64.0, 48.0)), AnnotatedBox("cat", (10.5, 5.0, 40.0, 30.0), difficult=True)]
    path = write_voc_xml(tmp_path / "a.xml", "a.jpg", (48, 64), objects)
    ann = read_voc_xml(path)
    assert ann.objects == tuple(objects) and ann.image_hw == (48, 64) and ann.filename == "a.jpg"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    raw = ET.parse(path).getroot()  # the file is VOC's 1-based pixels
    assert raw.find("object/bndbox/xmin").text == "1.0" and raw.find("object/bndbox/xmax").text == "64.0"


@pytest.mark.parametrize("folder", ["VOC2007", "VOC2012", "VOC2012_v3"])
def test_every_peer_voc_file_matches_torchvision(peer_data, folder):
    files = sorted((peer_data / "mmdet" / folder / "Annotations").glob("*.xml"))
    assert files
    for path in files:
        ann = read_voc_xml(path)
        ref = VOCDetection.parse_voc_xml(ET.parse(path).getroot())["annotation"]
        ref_objects = ref["object"]
        assert len(ann.objects) == len(ref_objects), path
        for ours, theirs in zip(ann.objects, ref_objects):
            bb = theirs["bndbox"]
            raw = tuple(float(bb[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert ours.name == theirs["name"]
            assert ours.box_xyxy == (raw[0] - 1, raw[1] - 1, raw[2], raw[3])
            assert ours.difficult == (theirs.get("difficult", "0") == "1")
        assert ann.image_hw == (int(ref["size"]["height"]), int(ref["size"]["width"]))
        assert ann.filename == ref["filename"]


def test_parts_are_not_objects(peer_data):
    # 2007_000027.xml: a person with <part> boxes (head, hands, feet); one part lies outside it.
    ann = read_voc_xml(peer_data / "mmdet" / "VOC2012" / "Annotations" / "2007_000027.xml")
    assert [o.name for o in ann.objects] == ["person"]
    assert ann.objects[0].box_xyxy == (173.0, 100.0, 349.0, 351.0)


@pytest.mark.parametrize("data, match", BAD_VOC)
def test_bad_file_one_clear_error_naming_it(data, match):
    t0 = time.perf_counter()
    with pytest.raises(AnnotationError, match=match.replace("(", r"\(").replace(")", r"\)")) as err:
        read_voc_xml(data, "upload.xml")
    assert str(err.value).startswith("upload.xml")  # the file first, then the object and the problem
    assert time.perf_counter() - t0 < 1.0  # refused before any expansion


def test_huge_file_refused_by_size_before_parsing(tmp_path):
    # Issue 14: a 40 MB VOC XML with 371,892 boxes was accepted whole.
    obj = OBJ.format(1, 1, 9, 9, name="dog", diff=0).encode()
    data = b"<annotation>" + obj * 371_892 + b"</annotation>"
    assert len(data) > 40e6
    t0 = time.perf_counter()
    with pytest.raises(AnnotationError, match=r"big.xml: file is .* over the 1 MiB limit"):
        read_voc_xml(data, "big.xml")
    path = tmp_path / "big.xml"
    path.write_bytes(data)
    with pytest.raises(AnnotationError, match="over the 1 MiB limit"):
        read_voc_xml(path)
    assert time.perf_counter() - t0 < 2.0
    assert MAX_VOC_XML_BYTES == 1 << 20


def test_missing_file_named(tmp_path):
    with pytest.raises(AnnotationError, match="nope.xml: annotation file not found"):
        read_voc_xml(tmp_path / "nope.xml")


def test_voc_xml_bytes_is_what_write_voc_xml_writes(tmp_path):
    from ssd.data.formats import voc_xml_bytes

    objects = [AnnotatedBox("dog", (0.0, 0.0, 64.0, 48.0)), AnnotatedBox("cät", (10.5, 5.0, 40.0, 30.0))]
    data = voc_xml_bytes("a.jpg", (48, 64), objects)
    assert data == write_voc_xml(tmp_path / "a.xml", "a.jpg", (48, 64), objects).read_bytes()
    assert read_voc_xml(data).objects == tuple(objects)  # non-ASCII names survive (character references)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_non_finite_coordinates_are_refused(value):
    """Issue 20 item 14: the VOC reader took nan/inf/1e400 (the COCO reader refuses NaN)."""
    xml = (f"<annotation><object><name>cat</name><bndbox><xmin>{value}</xmin><ymin>1</ymin><xmax>9</xmax>"
           "<ymax>9</ymax></bndbox></object></annotation>").encode()
    with pytest.raises(AnnotationError, match=f"<xmin> must be a finite number, got '{value}'"):
        read_voc_xml(xml, "a.xml")
