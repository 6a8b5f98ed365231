"""Tests for explorer/views/paper_lab.py: the page's tables and the curves figure."""
from pathlib import Path

from explorer.jobs.study import StudyInfo, VariantRun
from explorer.views import paper_lab as views


def _info(results=None) -> StudyInfo:
    runs = [VariantRun("full-s0", "full", 0, Path("a"), "finished", 2, 2, Path("a/best.pt")),
            VariantRun("no_zoom_out-s0", "no_zoom_out", 0, Path("b"), "running", 1, 4, None)]
    return StudyInfo("s", Path("."), "zoomout", "smoke", [0], "running", True, 0.5, "run 2/2", runs, results)


def test_grid_and_run_rows():
    grid = views.grid_rows("zoomout")
    assert grid[1]["options"] == "--augment-steps photometric,iou_crop,flip" and grid[1]["paper diff"] == "-2.9"
    assert grid[0]["options"] == "(full recipe)"
    rows = views.run_rows(_info())
    assert [r["progress"] for r in rows] == [1.0, 0.25] and rows[1]["step"] == "1/4"
    assert [r.name for r in views.evaluable_runs(_info())] == ["full-s0"]
    assert "table2" in views.study_label("table2") and "200 steps" in views.scale_text("cpu")
    assert "400 steps" in views.scale_text("cpu", "boxes")  # the boxes study trains twice as long


def test_result_rows_before_and_after_results():
    assert [r["verdict"] for r in views.result_rows(_info())] == ["reference", "no result yet"]
    res = {"runs": {"full-s0": {"variant": "full", "seed": 0, "AP": 0.1, "AP50": 0.2, "AP_small": 0.05}}}
    assert views.result_rows(_info(res))[0]["AP50"] == "20.0"


def test_curves_figure_one_line_per_run_with_logs():
    logs = {Path("a"): [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 3.0}], Path("b"): []}
    fig = views.curves_figure(_info(), lambda d: logs[d])
    assert [t.name for t in fig.data] == ["full-s0"] and list(fig.data[0].y) == [5.0, 3.0]
