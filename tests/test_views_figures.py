"""explorer/figures.py: boxes as traces, image figures, CSV export."""
import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

import plotly.graph_objects as go

from explorer.views.figures import (box_traces, class_color, gt_figure, image_data_uri, image_figure, level_color,
                              records_to_csv, rect_lines)


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())


def test_rect_lines_closed_rectangles_with_gaps():
    xs, ys = rect_lines(np.array([[1, 2, 3, 4], [10, 20, 30, 40]]))
    nan = np.nan
    np.testing.assert_array_equal(xs, [1, 3, 3, 1, 1, nan, 10, 30, 30, 10, 10, nan])
    np.testing.assert_array_equal(ys, [2, 2, 4, 4, 2, nan, 20, 20, 40, 40, 20, nan])
    assert rect_lines(np.zeros((0, 4)))[0].shape == (0,)


def test_image_data_uri_shrinks_and_decodes():
    img = Image.new("RGB", (2000, 1000), (255, 0, 0))
    uri = image_data_uri(img, max_side=500)
    assert uri.startswith("data:image/jpeg;base64,")
    back = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert back.size == (500, 250)


def test_image_figure_frame_is_pixels_y_down():
    fig = image_figure("data:image/png;base64,AAAA", 640, 480)
    valid(fig)
    assert list(fig.layout.xaxis.range) == [0, 640]
    assert list(fig.layout.yaxis.range) == [480, 0]  # y down
    assert fig.layout.images[0].sizex == 640 and fig.layout.images[0].sizey == 480


def test_box_traces_one_line_trace_and_one_hover_trace():
    traces = box_traces(np.array([[0, 0, 10, 10], [20, 20, 60, 40]]), "#f00", "b", hover=["a", "b"],
                        customdata=[7, 8], axes=("x2", "y2"))
    assert len(traces) == 2
    centres = traces[1]
    assert list(centres["x"]) == [5, 40] and list(centres["y"]) == [5, 30]
    assert centres["text"] == ["a", "b"] and list(centres["customdata"]) == [7, 8]
    assert traces[0]["xaxis"] == "x2" and traces[1]["yaxis"] == "y2"
    assert len(box_traces(np.array([[0, 0, 1, 1]]), "#f00", "b")) == 1  # no hover -> no markers
    valid(image_figure(None, 100, 100, traces=box_traces(np.array([[0, 0, 1, 1]]), "#f00", "b", hover=["x"])))


def test_gt_figure_selects_boxes_by_drag():
    fig = gt_figure("data:image/png;base64,AAAA", (40, 50), np.array([[1, 2, 30, 20]]), ["cat"])
    valid(fig)
    assert fig.layout.dragmode == "select"
    assert "cat" in fig.data[-1].text[0]


def test_colours_cycle():
    assert level_color(0) == level_color(10)
    assert class_color(0) != class_color(1)


def test_records_to_csv_union_of_keys():
    text = records_to_csv([{"a": 1, "b": 0.123456789}, {"c": [1, 2]}])
    lines = text.strip().splitlines()
    assert lines[0] == "a,b,c"
    assert lines[1] == "1,0.123457,"
    assert lines[2] == ",,1 2"


@pytest.mark.parametrize("values, expected", [
    ([3, 40, 700], ["2", "5", "10", "20", "50", "100", "200", "500", "1,000"]),
    ([[0.3, 0.9], [4.0]], ["0.2", "0.5", "1", "2", "5"]),  # one list per trace
    ([2, 3, 4], ["2", "3", "4"]),  # under a decade: every digit, not only "2, 5"
    ([0, -1, None, 12, 90], ["10", "20", "50", "100"]),  # <= 0 and None ignored (log)
])
def test_log_axes_label_every_tick_in_full(values, expected):
    """Issue 19 item 11: Plotly's log ticks read "2, 5" between unlabelled decades."""
    from explorer.views.figures import log_axis

    axis = log_axis(values, "boxes")
    assert axis["type"] == "log" and axis["ticktext"] == expected and axis["title"] == {"text": "boxes"}
    assert axis["range"][0] <= math.log10(axis["tickvals"][0]) and axis["range"][1] >= math.log10(axis["tickvals"][-1])
    assert log_axis([]) == {"type": "log"}
