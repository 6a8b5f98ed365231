"""Tests for ssd/tuning/coverage.py, ssd/tuning/coverage_summary.py and ssd/data/gt_boxes.py: coverage equals
brute force (`torchvision.ops.box_iou` against every default box) on random and real boxes."""
import json

import pytest
import torch
from torchvision.ops import box_iou

from ssd.config import compact256, preset, ssd300_voc, ssd_linear
from ssd.data import gt_boxes
from ssd.data.common import DatasetError
from ssd.priors import default_boxes
from ssd.tuning import coverage as cov_mod
from ssd.tuning.coverage import check_boxes, coverage, coverage_brute
from ssd.tuning.coverage_summary import summarize


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    """Boxes of every size (0.7% to 135% of the side), shape and place, some past the border."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 1.2 - 0.1
    s = torch.exp(torch.empty(n).uniform_(-5, 0.3, generator=g))
    ar = torch.exp(torch.empty(n).uniform_(-1.5, 1.5, generator=g))
    wh = torch.stack([s * ar.sqrt(), s / ar.sqrt()], 1)
    return torch.cat([c - wh / 2, c + wh / 2], 1)


def assert_equal_to_brute(gt, cfg, t, min_unique: int = 100):
    fast, brute = coverage(gt, cfg, t), coverage_brute(gt, cfg, t)
    assert torch.allclose(fast.best_iou, brute.best_iou, atol=1e-6, rtol=0)
    assert torch.equal(fast.num_positive, brute.num_positive)
    assert torch.equal(fast.positives_per_level, brute.positives_per_level)
    assert fast.bpr == pytest.approx(brute.bpr, abs=1.0 / len(gt))  # equal up to float ties at t
    # The index: equal wherever the best default box is unique.
    iou = box_iou(gt, default_boxes(cfg).xyxy)
    top2 = iou.topk(2, dim=1).values
    no_tie = (top2[:, 0] - top2[:, 1]) > 1e-6
    assert no_tie.sum() >= min_unique  # big boxes holding several equal default boxes tie
    assert torch.equal(fast.best_index[no_tie], brute.best_index[no_tie])
    assert torch.equal(fast.best_level[no_tie], brute.best_level[no_tie])
    # best_iou is the IoU of the box it names.
    assert torch.allclose(iou.gather(1, fast.best_index[:, None])[:, 0], fast.best_iou, atol=1e-7, rtol=0)
    return fast


@pytest.mark.parametrize("name", ["ssd300_voc", "ssd300_coco", "ssd512_voc", "compact256"])
@pytest.mark.parametrize("t", [0.3, 0.5, 0.7])
def test_equal_to_brute_force_on_random_boxes(name, t):
    assert_equal_to_brute(random_boxes(1500, seed=len(name) + int(10 * t)), preset(name), t, min_unique=500)


def test_equal_to_brute_force_on_odd_configs():
    gt = random_boxes(1500, seed=5)
    # No clipping, no extra box, big boxes on a fine grid (wide windows), steps not S / f.
    cfg = ssd_linear(0.3, 1.2, image_size=300, feature_maps=(19, 10, 5), aspect_ratios=(1.0, 3.0, 1 / 3),
                     extra_box=False, clip=False)
    assert_equal_to_brute(gt, cfg, 0.5)
    assert_equal_to_brute(gt, ssd300_voc(), 0.1)  # low threshold: wide windows
    assert_equal_to_brute(gt, ssd300_voc(), 1.0)  # nothing but exact copies


def test_equal_to_brute_force_on_real_voc_and_coco_boxes(peer_data):
    voc = gt_boxes.voc_boxes(peer_data / "mmdet" / "VOC2007")
    voc12 = gt_boxes.voc_boxes(peer_data / "mmdet" / "VOC2012")
    coco = gt_boxes.coco_boxes(peer_data / "mmdet" / "coco_sample_v2.json")
    real = torch.cat([voc.boxes_xyxy_norm, voc12.boxes_xyxy_norm, coco.boxes_xyxy_norm])
    assert len(real) >= 25
    for name in ("ssd300_voc", "ssd512_voc", "compact256"):
        for t in (0.4, 0.5, 0.6):
            fast, brute = coverage(real, preset(name), t), coverage_brute(real, preset(name), t)
            assert torch.allclose(fast.best_iou, brute.best_iou, atol=1e-6, rtol=0)
            assert torch.equal(fast.num_positive, brute.num_positive)


def test_hand_checked_box_on_a_default_box():
    cfg = ssd300_voc()
    db = default_boxes(cfg)
    a = db.flat_index(2, 4, 6, 0)  # level 2 (10x10), cell (4, 6), ratio 1: 111 px square
    gt = db.xyxy[a:a + 1].clone()
    cov = coverage(gt, cfg)
    assert cov.best_iou.item() == 1.0 and cov.best_index.item() == a and cov.best_level.item() == 2
    assert cov.bpr == 1.0 and len(cov) == 1
    # Half the box (the left half) overlaps it with IoU 0.5 exactly.
    half = gt.clone()
    half[0, 2] = (gt[0, 0] + gt[0, 2]) / 2
    assert coverage(half, cfg).best_iou.item() >= 0.5 - 1e-6


def test_box_whose_upper_bound_reaches_t_but_no_cell_does():
    # A 4 x 4 px box in the corner of a 100 x 50 image: compact256's smallest boxes could
    # reach IoU 0.5 if centred on it, but no cell centre is near enough.
    gt = torch.tensor([[0.01, 0.02, 0.05, 0.10]])
    fast, brute = coverage(gt, compact256()), coverage_brute(gt, compact256())
    assert fast.num_positive.item() == brute.num_positive.item() == 0
    assert fast.best_iou.item() == pytest.approx(brute.best_iou.item(), abs=1e-6)


def test_empty_and_bad_boxes_name_the_problem():
    empty = coverage(torch.zeros(0, 4), compact256())
    assert len(empty) == 0 and empty.bpr == 0.0
    with pytest.raises(ValueError, match="box 1 has a NaN"):
        coverage(torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.1, float("nan"), 0.2, 0.2]]), compact256())
    with pytest.raises(ValueError, match="box 0 has zero or negative size"):
        coverage(torch.tensor([[0.1, 0.1, 0.1, 0.2]]), compact256())
    with pytest.raises(ValueError, match=r"expected \(G, 4\)"):
        check_boxes(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="iou_threshold"):
        coverage(torch.tensor([[0.1, 0.1, 0.2, 0.2]]), compact256(), 0.0)


def test_summary_aggregates_add_up():
    gt = random_boxes(4000, seed=2).clamp(0, 1)
    gt = gt[(gt[:, 2] > gt[:, 0] + 1e-3) & (gt[:, 3] > gt[:, 1] + 1e-3)]
    labels = torch.randint(1, 4, (len(gt),), generator=torch.Generator().manual_seed(0))
    cfg = ssd300_voc()
    cov = coverage(gt, cfg)
    s = summarize(cov, gt, cfg, labels, ("background", "a", "b", "c"), torch.arange(len(gt)),
                  [f"img{i}" for i in range(len(gt))])
    json.dumps(s)  # JSON-ready
    n = len(gt)
    assert s["num_boxes"] == n and s["num_default_boxes"] == 8732
    assert sum(r["owned_boxes"] for r in s["per_level"]) == n
    assert sum(r["positives"] for r in s["per_level"]) == int(cov.num_positive.sum())
    assert sum(r["boxes"] for r in s["per_size"]) == n
    assert sum(r["boxes"] for r in s["per_class"]) == n and [r["class"] for r in s["per_class"]] == ["a", "b", "c"]
    assert sum(r["boxes"] for r in s["positives_histogram"]) == n
    assert s["positives_histogram"][0]["boxes"] == s["forced_only"] == int((cov.num_positive == 0).sum())
    uncovered = int((cov.best_iou < 0.5).sum())
    assert len(s["uncovered"]) == min(200, uncovered)
    assert s["uncovered"][0]["best_iou"] == round(float(cov.best_iou.min()), 4)
    assert s["bpr"] == round(1 - uncovered / n, 4)
    # SSD300's smallest default box is 30 px (ratio 1 of conv4_3): 21 x 42 px boxes of ratio 1/2.
    side = (default_boxes(cfg).wh_per_level[0].prod(dim=1).min().sqrt() * 300).item()
    sizes = ((gt[:, 2:] - gt[:, :2]) * 300).prod(dim=1).sqrt()
    assert s["smaller_than_smallest_default"] == int((sizes < side).sum())


def test_cli_text_and_json(capsys):
    assert cov_mod.main(["--dataset", "procedural", "--num-images", "40", "--object-size", "0.03,0.12",
                         "--preset", "compact256", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["config"] == "compact256" and 0 < s["bpr"] < 1 and "objects 0.03-0.12" in s["dataset"]
    assert {"per_level", "per_class", "per_size", "positives_histogram", "uncovered"} <= set(s)
    data = gt_boxes.procedural_boxes(40, 1000, 256, (0.03, 0.12))
    assert s["num_boxes"] == len(data)
    assert s["bpr"] == round(coverage_brute(data.boxes_xyxy_norm, compact256()).bpr, 4)
    assert cov_mod.main(["--num-images", "5", "--iou", "0.6"]) == 0
    assert "BPR at IoU 0.6" in capsys.readouterr().out


def test_cli_bad_input_is_a_message(tmp_path, capsys):
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({**compact256().to_dict(), "colour": "red"}))
    assert cov_mod.main(["--box-config", str(bad), "--num-images", "3"]) == 2
    assert "cfg.json: unknown field(s) ['colour']" in capsys.readouterr().err
    assert cov_mod.main(["--dataset", "voc", "--data-root", str(tmp_path)]) == 2
    assert "no VOC annotation XML files" in capsys.readouterr().err
    assert cov_mod.main(["--dataset", "coco"]) == 2
    assert "--coco-json" in capsys.readouterr().err
    assert cov_mod.main(["--object-size", "0.5,0.1"]) == 2
    assert "0 < min <= max <= 1" in capsys.readouterr().err


def test_datasets_read_real_files(peer_data):
    voc = gt_boxes.voc_boxes(peer_data / "mmdet" / "VOC2007")
    assert voc.image_names[0] == "000001.jpg" and voc.class_names[8] == "cat"
    assert (voc.boxes_xyxy_norm >= 0).all() and (voc.boxes_xyxy_norm <= 1).all()
    assert len(gt_boxes.voc_boxes(peer_data / "mmdet" / "VOC2007" / "Annotations")) == len(voc)
    coco = gt_boxes.coco_boxes(peer_data / "mmdet" / "coco_sample_v2.json")
    assert coco.class_names == ("background", "bus", "car") and len(coco) == 3
    # mmdetection's sample: image 1 holds an unknown category 3 (and a zero-width box);
    # the one COCO reader names the file, the annotation and the image.
    with pytest.raises(DatasetError, match=r"coco_sample.json annotation 6 \(image 1\): unknown category_id 3"):
        gt_boxes.coco_boxes(peer_data / "mmdet" / "coco_sample.json")
    skipping = gt_boxes.coco_boxes(peer_data / "mmdet" / "coco_sample.json", skip_bad=True)
    assert len(skipping.skipped) == 1 and "unknown category_id 3" in skipping.skipped[0][1]


def test_datasets_bad_files_name_the_file(tmp_path):
    no_sizes = tmp_path / "no_sizes.json"
    no_sizes.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "x"}],
                                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]}))
    with pytest.raises(DatasetError, match="no_sizes.json: image 1 has no integer 'width' and 'height'"):
        gt_boxes.coco_boxes(no_sizes)
    nan_box = tmp_path / "nan.json"
    nan_box.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}], "categories": [{"id": 1, "name": "x"}],
                                   "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, "x", 5, 5]}]}))
    with pytest.raises(DatasetError, match=r"nan.json annotation 7 \(image 1\): bbox must be \[x, y, w, h\] of 4 finite"):
        gt_boxes.coco_boxes(nan_box)
    with pytest.raises(DatasetError, match="VOC folder not found"):
        gt_boxes.voc_boxes(tmp_path / "nowhere")
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(DatasetError, match="no VOC annotation XML files"):
        gt_boxes.voc_boxes(tmp_path)
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>10</width><height>10</height></size>"
        "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
        "</annotation>")
    with pytest.raises(DatasetError, match=r"a.xml object 0 \('cat'\): box has x2 <= x1"):
        gt_boxes.voc_boxes(tmp_path)
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>10</width><height>10</height></size>"
        "<object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>4</ymax></bndbox>"
        "</object></annotation>")
    with pytest.raises(DatasetError, match="unknown class 'unicorn'"):
        gt_boxes.voc_boxes(tmp_path)


def test_procedural_voc_export_reads_with_shape_classes(tmp_path):
    from ssd.data.procedural import write_voc

    write_voc(tmp_path / "voc", 6, seed=4)
    voc = gt_boxes.voc_boxes(tmp_path / "voc")
    direct = gt_boxes.procedural_boxes(6, seed=4)
    assert voc.class_names[1] == "cat" and torch.equal(voc.labels, direct.labels)
    # VOC's 1-based pixels written with one decimal: within 0.05 px / 256.
    assert torch.allclose(voc.boxes_xyxy_norm, direct.boxes_xyxy_norm, atol=0.06 / 256)
