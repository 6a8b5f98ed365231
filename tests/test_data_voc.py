"""Tests for ssd/data/voc.py: reading a VOC folder, and a clear DatasetError per bad file."""
import pytest
import torch
from PIL import Image

from ssd.data.common import DatasetError
from ssd.data.procedural import CLASSES, ProceduralDataset, write_voc
from ssd.data.voc import VOC_CLASSES, VOCDataset, parse_annotation

XML = """<annotation><filename>{fn}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJ = "<object><name>{name}</name><difficult>{diff}</difficult>{bb}</object>"
BB = "<bndbox><xmin>{0}</xmin><ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox>"


def make_voc(root, samples, split="train"):
    """samples: {image_id: (xml text or None, image bytes or "png" for a real 64x48 image)}"""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (xml, image) in samples.items():
        if xml is not None:
            (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        path = root / "JPEGImages" / f"{image_id}.jpg"
        if image == "png":
            Image.new("RGB", (64, 48), (10, 200, 30)).save(path, format="JPEG")
        elif image is not None:
            path.write_bytes(image)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(samples) + "\n")
    return root


def xml_for(image_id, objects, w=64, h=48):
    return XML.format(fn=f"{image_id}.jpg", w=w, h=h, objects="".join(objects))


def obj(name="dog", box=(11, 6, 40, 30), diff=0, bndbox=True):
    return OBJ.format(name=name, diff=diff, bb=BB.format(*box) if bndbox else "")


def test_reads_hand_made_sample(tmp_path):
    root = make_voc(tmp_path, {"a": (xml_for("a", [obj("dog", (11, 6, 40, 30)), obj("cat", (1, 1, 64, 48))]), "png")})
    ds = VOCDataset(root, "train", VOC_CLASSES)
    x, t = ds[0]
    assert x.shape == (3, 48, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    # 1-based inclusive VOC pixels -> x1 = xmin - 1, x2 = xmax; normalised by W, H.
    expected = torch.tensor([[10 / 64, 5 / 48, 40 / 64, 30 / 48], [0, 0, 1, 1]])
    assert torch.allclose(t["boxes"], expected)
    assert t["labels"].tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")]


def test_difficult_objects_dropped_unless_kept(tmp_path):
    root = make_voc(tmp_path, {"a": (xml_for("a", [obj("dog"), obj("cat", diff=1)]), "png")})
    assert len(VOCDataset(root, "train")[0][1]["labels"]) == 1
    assert len(VOCDataset(root, "train", keep_difficult=True)[0][1]["labels"]) == 2


def test_round_trip_with_procedural_export(tmp_path):
    write_voc(tmp_path / "voc", 6, seed=9, size=96, val_fraction=0.5)
    ds = VOCDataset(tmp_path / "voc", "val", CLASSES)
    ref = ProceduralDataset(6, seed=9, size=96)
    assert len(ds) == 3
    for i in range(3):
        assert torch.allclose(ds[i][1]["boxes"], ref[i][1]["boxes"], atol=1e-3)
        assert torch.equal(ds[i][1]["labels"], ref[i][1]["labels"])
        assert (ds[i][0] - ref[i][0]).abs().mean() < 0.08  # JPEG


@pytest.mark.parametrize(
    "xml, image, match",
    [
        (xml_for("a", [obj(bndbox=False)]), "png", "missing <bndbox>"),
        (xml_for("a", [obj(box=(40, 6, 30, 30))]), "png", "x2 <= x1"),
        (xml_for("a", [obj(box=(11, 6, 90, 30))]), "png", "outside the 64x48 image"),
        (xml_for("a", [obj(name="unicorn")]), "png", "unknown class 'unicorn'"),
        (xml_for("a", [obj(box=(11, "six", 40, 30))]), "png", "not a number"),
        ("<annotation><filename>a.jpg", "png", "not valid XML"),
        (xml_for("a", [obj()]), b"this is not a jpeg", "unreadable image"),
        (xml_for("a", [obj()]), None, "image file not found"),
        (None, "png", "annotation file not found"),
        (xml_for("a", [obj()], w=100), "png", "says 100x48"),
        ("<annotation><filename>a.jpg</filename></annotation>", "png", "missing <size>"),
    ],
)
def test_bad_sample_raises_naming_file_and_problem(tmp_path, xml, image, match):
    good = {"b": (xml_for("b", [obj()]), "png")}
    root = make_voc(tmp_path, {"a": (xml, image), **good})
    with pytest.raises(DatasetError, match=match) as err:
        VOCDataset(root, "train")
    assert "a.xml" in str(err.value) or "a.jpg" in str(err.value)
    # skip_bad: the bad sample is left out and counted, the good one stays.
    ds = VOCDataset(root, "train", skip_bad=True)
    assert len(ds) == 1 and ds.num_skipped == 1
    assert match.split("'")[0] in ds.skipped[0][1]


@pytest.mark.parametrize("missing, match", [
    ("JPEGImages", "JPEGImages folder not found"),
    ("Annotations", "Annotations folder not found"),
    ("ImageSets/Main/train.txt", "split 'train' file not found"),
])
def test_missing_folders(tmp_path, missing, match):
    root = make_voc(tmp_path, {"a": (xml_for("a", [obj()]), "png")})
    target = root / missing
    if target.is_dir():
        for f in target.iterdir():
            f.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DatasetError, match=match):
        VOCDataset(root, "train")


def test_missing_root_and_all_bad(tmp_path):
    with pytest.raises(DatasetError, match="VOC root folder not found"):
        VOCDataset(tmp_path / "nope")
    root = make_voc(tmp_path / "v", {"a": (xml_for("a", [obj(name="unicorn")]), "png")})
    with pytest.raises(DatasetError, match="no usable samples"):
        VOCDataset(root, "train", skip_bad=True)


def test_parse_annotation_directly(tmp_path):
    p = tmp_path / "x.xml"
    p.write_text(xml_for("x", [obj("car", (1, 1, 10, 20))]))
    fn, w, h, boxes, labels = parse_annotation(p, VOC_CLASSES)
    assert (fn, w, h) == ("x.jpg", 64, 48)
    assert boxes.tolist() == [[0.0, 0.0, 10.0, 20.0]] and labels.tolist() == [VOC_CLASSES.index("car")]
