"""Tests for explorer/training_figures.py: loss and mAP curves of a training run."""
import plotly.graph_objects as go

from explorer.jobs.metrics import split_records
from explorer.views.training import loss_figure, map_figure, throughput_figure

RECORDS = [  # as ssd.train writes them (ssd.training.runlog: "kind" train / eval)
    {"kind": "train", "epoch": 0, "step": 1, "loss": 8.0, "conf": 6.0, "loc": 2.0, "lr": 1e-3,
     "images_per_s": 10.0, "time": 100.0},
    {"kind": "train", "epoch": 0, "step": 2, "loss": 4.0, "conf": 3.0, "loc": 1.0, "lr": 1e-3,
     "images_per_s": 12.0, "time": 101.0},
    {"kind": "eval", "epoch": 0, "step": 2, "map": 0.05, "ap50": 0.2, "time": 102.0},
    {"kind": "train", "epoch": 1, "step": 4, "loss": 0.5, "conf": 0.4, "loc": 0.1, "lr": 5e-4,
     "images_per_s": 11.0, "time": 103.0},
    {"kind": "eval", "epoch": 1, "step": 4, "map": 0.10, "ap50": 0.3, "time": 104.0},
]

def test_loss_figure_has_total_conf_loc_per_step():
    log_rows, _ = split_records(RECORDS)
    fig = loss_figure(log_rows)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["total", "confidence (L_conf)", "localisation (L_loc)"]
    total, conf, loc = fig.data
    assert list(total.x) == [1, 2, 4] and list(total.y) == [8.0, 4.0, 0.5]
    assert list(conf.y) == [6.0, 3.0, 0.4] and list(loc.y) == [2.0, 1.0, 0.1]
    # 8.0 / 0.1 spans more than a decade: log axis so the late curve stays readable.
    assert fig.layout.yaxis.type == "log"


def test_loss_figure_linear_axis_for_narrow_range():
    fig = loss_figure([{"step": 1, "loss": 2.0, "conf": 1.5, "loc": 0.5},
                       {"step": 2, "loss": 1.8, "conf": 1.4, "loc": 0.4}])
    assert fig.layout.yaxis.type == "linear"


def test_map_figure_curves_and_range():
    _, eval_rows = split_records(RECORDS)
    fig = map_figure(eval_rows)
    assert [t.name for t in fig.data] == ["mAP@[.5:.95]", "AP50"]
    assert list(fig.data[0].x) == [2, 4] and list(fig.data[0].y) == [0.05, 0.10]
    assert list(fig.data[1].y) == [0.2, 0.3]
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_map_figure_falls_back_to_epoch_axis():
    fig = map_figure([{"epoch": 1, "step": None, "map": 0.1, "ap50": None}])
    assert fig.layout.xaxis.title.text == "epoch"
    assert len(fig.data) == 1


def test_empty_figures_say_so():
    for fig, note in ((loss_figure([]), "no loss logged yet"), (map_figure([]), "no evaluation yet"),
                      (throughput_figure([]), "no throughput logged yet")):
        assert len(fig.data) == 0
        assert fig.layout.annotations[0].text == note


def test_throughput_figure():
    log_rows, _ = split_records(RECORDS)
    fig = throughput_figure(log_rows)
    assert list(fig.data[0].y) == [10.0, 12.0, 11.0]
