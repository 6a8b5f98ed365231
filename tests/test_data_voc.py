"""Tests for ssd/data/voc.py: reading a VOC folder, and a clear DatasetError per bad file."""
import pytest
import torch
from PIL import Image

from ssd.data.common import DatasetError
from ssd.data.procedural import CLASSES, ProceduralDataset, write_voc
from ssd.data.voc import VOC_CLASSES, VOCDataset, parse_annotation, read_split, split_ids, split_path

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


# ------------------------------------------------------------ real VOC files from other projects
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from torch.utils.data import DataLoader  # noqa: E402

from ssd.data.common import collate  # noqa: E402
from ssd.data.transforms import eval_transform  # noqa: E402
from ssd.images import ImageError, load_image  # noqa: E402


def peer_voc_copy(peer_data, dst, folder="VOC2007", ids=None, truncated=None):
    """A VOC folder in `dst` made at test time from a peer folder: its annotations and
    JPEGs, with `truncated` ({id: peer truncated file}) replacing some images; the ids
    split 4:1 into train/val."""
    src = peer_data / "mmdet" / folder
    ids = ids or sorted(p.stem for p in (src / "Annotations").glob("*.xml"))
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        shutil.copy(src / "Annotations" / f"{i}.xml", dst / "Annotations")
        shutil.copy((truncated or {}).get(i, src / "JPEGImages" / f"{i}.jpg"), dst / "JPEGImages" / f"{i}.jpg")
    n_val = max(1, len(ids) // 5)
    (dst / "ImageSets/Main/train.txt").write_text("\n".join(ids[n_val:]) + "\n")
    (dst / "ImageSets/Main/val.txt").write_text("\n".join(ids[:n_val]) + "\n")
    return dst


def test_symptom2_peer_difficult_objects_dropped_unless_kept(peer_data):
    ds = VOCDataset(peer_data / "mmdet" / "VOC2007", "trainval")
    assert [len(s[2]) for s in ds.samples][4] == 3  # 000005.xml: 5 chairs, 2 of them difficult
    assert len(VOCDataset(peer_data / "mmdet" / "VOC2007", "trainval", keep_difficult=True).samples[4][2]) == 5


def test_symptom5_image_is_jpegimages_id_jpg_not_filename(peer_data, tmp_path):
    # mmdetection 3.x: Annotations/000001.xml says <filename>000002.jpg</filename>; the image is 000001.jpg.
    root = peer_voc_copy(peer_data, tmp_path, "VOC2012_v3", ids=["000001"])
    (root / "ImageSets/Main/train.txt").write_text("000001\n")
    ds = VOCDataset(root, "train")
    assert ds.samples[0][0] == root / "JPEGImages" / "000001.jpg"
    assert ds[0][0].shape == (3, 500, 335) and ds[0][1]["labels"].tolist() == [VOC_CLASSES.index("train")]


def test_peer_photos_and_truncated_files_through_load_image(peer_data):
    for path in sorted((peer_data / "mmdet" / "VOC2007" / "JPEGImages").glob("*.jpg")):
        assert load_image(path).mode == "RGB"
    for path in sorted((peer_data / "truncated").glob("*.jpg")):
        with pytest.raises(ImageError, match=f"{path.name}: truncated or corrupt image data"):
            load_image(path)


def test_symptom6_truncated_image_skipped_when_decoded(peer_data, tmp_path):
    # The header is whole (and says 353x500, as the XML), so the dataset builds; the data ends after 8192 bytes.
    root = peer_voc_copy(peer_data, tmp_path, truncated={"000001": peer_data / "truncated" / "000001.jpg"})
    (root / "ImageSets/Main/train.txt").write_text("000001\n000002\n")
    strict = VOCDataset(root, "train")
    assert strict.num_skipped == 0
    with pytest.raises(DatasetError, match="000001.jpg: unreadable image .*truncated"):
        strict[0]  # without skip_bad: the error names the file
    ds = VOCDataset(root, "train", skip_bad=True)
    x, t = ds[0]  # falls back to the next good sample
    assert torch.equal(x, strict[1][0]) and torch.equal(t["boxes"], strict[1][1]["boxes"])
    assert ds.num_skipped == 1 and ds.load_skipped[0][0].endswith("000001.jpg")
    assert "truncated" in ds.load_skipped[0][1]
    ds[0]
    assert ds.num_skipped == 1  # known bad: not decoded again, not counted twice
    (root / "JPEGImages" / "000002.jpg").write_bytes((peer_data / "truncated" / "000001.jpg").read_bytes()[:4000])
    with pytest.raises(DatasetError, match="no image of the 2 sample"):
        ds[1]


def test_symptom6_skip_counted_once_across_dataloader_workers(peer_data, tmp_path):
    root = peer_voc_copy(peer_data, tmp_path, truncated={"000001": peer_data / "truncated" / "000001.jpg"})
    (root / "ImageSets/Main/train.txt").write_text("000002\n000001\n000003\n000004\n")
    ds = VOCDataset(root, "train", transform=eval_transform(64), skip_bad=True)
    assert ds.num_skipped == 0  # the header of the truncated copy reads fine
    for epoch in range(2):
        loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
        n = sum(images.shape[0] for images, _ in loader)
        assert n == 4  # every item still comes back: 000001 replaced by 000003
    assert ds.num_skipped == 1 and ds.num_skipped_on_load == 1  # counted once, over workers and epochs
    with pytest.raises(DatasetError, match="000001.jpg"):
        VOCDataset(root, "train")[1]


@pytest.mark.slow
def test_train_skip_bad_skips_truncated_jpeg_and_logs_it(peer_data, tmp_path):
    """Issue 9 symptom 6 end to end: `python -m ssd.train --skip-bad` on a VOC folder whose
    000001.jpg is cut after its header finishes, and its log reports the skip; without
    --skip-bad the run fails naming the file."""
    root = peer_voc_copy(peer_data, tmp_path / "voc", truncated={"000001": peer_data / "truncated" / "000001.jpg"})
    (root / "ImageSets/Main/train.txt").write_text("000001\n000002\n000003\n000004\n")
    (root / "ImageSets/Main/val.txt").write_text("000005\n")
    args = ["--dataset", "voc", "--data-root", str(root), "--model", "compact256", "--epochs", "1",
            "--batch-size", "2", "--threads", "1", "--device", "cpu", "--log-every", "1"]
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "ssd.train", *args, "--skip-bad", "--out", str(tmp_path / "run")],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "skipped 1 bad sample(s) (--skip-bad), 1 found while decoding images" in log
    assert "finished: 2 steps" in log
    strict = subprocess.run([sys.executable, "-m", "ssd.train", *args, "--out", str(tmp_path / "strict")],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert strict.returncode != 0 and "000001.jpg: unreadable image" in strict.stderr


def test_split_reader_takes_the_first_word_of_each_line_and_names_a_missing_file(tmp_path):
    assert split_ids("a\n\n b 1\nc  -1\n") == ["a", "b", "c"]  # "id" and the per-class "id flag" lines
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    split_path(tmp_path, "val").write_text("x\ny\n")
    assert read_split(tmp_path, "val") == ["x", "y"]
    with pytest.raises(DatasetError, match="train"):
        read_split(tmp_path, "train")
