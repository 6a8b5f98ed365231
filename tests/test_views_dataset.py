"""Tests for explorer/views/dataset.py and explorer/inputs/datasets.py: the Dataset page's
numbers equal brute force, its figures are valid Plotly, uploads and bad paths name the file."""
import json

import plotly.graph_objects as go
import pytest

from explorer.inputs import datasets
from explorer.views import dataset as dsv
from ssd.config import compact256, ssd300_voc
from ssd.data.common import DatasetError
from ssd.tuning.coverage import coverage_brute


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())


@pytest.fixture(scope="module")
def scenes():
    return datasets.load(datasets.DatasetChoice("procedural", 80, 3, (0.05, 0.9)))


def test_measure_equals_brute_force(scenes):
    cfg = compact256()
    cov, s = dsv.measure(scenes, cfg, 0.5)
    assert s["bpr"] == round(coverage_brute(scenes.boxes_xyxy_norm, cfg).bpr, 4)
    assert s["num_boxes"] == len(scenes) and "80 scenes of seed 3" in s["dataset"]
    assert {r["class"] for r in s["per_class"]} <= set(scenes.class_names[1:])
    assert all(r["image"].startswith("scene ") for r in s["uncovered"])


def test_figures_show_every_box_and_every_level(scenes):
    cfg = ssd300_voc()
    cov, s = dsv.measure(scenes, cfg, 0.5)
    raw = dsv.size_figure(scenes, cfg, cov)
    fig = valid(raw)
    gt_traces = [t for t in raw.data if t.name.startswith("ground truth")]
    assert sum(len(t.x) for t in gt_traces) == len(scenes)
    assert gt_traces[1].name == f"ground truth, not covered ({int((cov.best_iou < 0.5).sum())})"
    assert [t.name for t in fig.data if t.name.startswith("default boxes")][-1] == "default boxes, level 5 (1x1)"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    own = valid(dsv.ownership_figure(s))
    assert list(own.data[0].y) == [r["owned_boxes"] for r in s["per_level"]]
    hist = valid(dsv.histogram_figure(s))
    assert sum(hist.data[0].y) == len(scenes) and hist.data[0].x[0] == "0"


def test_size_figure_subsamples_large_datasets(monkeypatch, scenes):
    monkeypatch.setattr(dsv, "MAX_POINTS", 50)
    cov, _ = dsv.measure(scenes, compact256())
    fig = dsv.size_figure(scenes, compact256(), cov)
    assert sum(len(t.x) for t in fig.data if t.name.startswith("ground truth")) == 50


def test_tune_keeps_the_model_geometry(scenes):
    res = dsv.tune(scenes, compact256(), 6132, max_evals=20)
    assert res.cfg.feature_maps == compact256().feature_maps and res.after["bpr"] >= res.before["bpr"]


def test_upload_errors_name_the_upload_not_a_temp_file():
    no_sizes = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "x"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]}
    with pytest.raises(DatasetError, match="mine.json") as e:
        datasets.load_upload("mine.json", json.dumps(no_sizes).encode())
    assert "/tmp" not in str(e.value) and "width" in str(e.value)
    with pytest.raises(DatasetError, match="up.json: not valid JSON"):
        datasets.load_upload("up.json", b"{oops")
    good = {**no_sizes, "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}]}
    data = datasets.load_upload("ok.json", json.dumps(good).encode())
    assert data.source == "uploaded COCO JSON ok.json" and data.boxes_xyxy_norm.tolist() == [[0.125, 0.125, 0.625, 0.625]]


def test_paths_must_be_given_and_exist(tmp_path):
    with pytest.raises(DatasetError, match="give the path of the VOC folder"):
        datasets.load(datasets.DatasetChoice("voc", path=" "))
    with pytest.raises(DatasetError, match="COCO annotation JSON file not found"):
        datasets.load(datasets.DatasetChoice("coco", path=str(tmp_path / "x.json")))
    with pytest.raises(ValueError, match="0 < min <= max <= 1"):
        datasets.load(datasets.DatasetChoice("procedural", 3, 0, (0.5, 0.2)))


def test_progress_is_reported():
    seen = []
    datasets.load(datasets.DatasetChoice("procedural", 1200, 0), lambda done, total: seen.append((done, total)))
    assert seen[0] == (1, 1200) and seen[-1] == (1200, 1200) and len(seen) >= 3
