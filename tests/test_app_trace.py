"""pages/trace.py under Streamlit's AppTest: the selector, the verdicts on the cat-and-dog
sample with the shipped model, a miss made by the score threshold, the "Trace this object"
rows of the NMS and Per-scale pages, and the selection persisting across pages."""
import pytest

from explorer.text import shown

from tests.test_app_pages import _app, _errors, _metric
from tests.app_helpers import traced, ws_of

pytest.importorskip("streamlit.testing.v1")
pytestmark = pytest.mark.usefixtures("app_env")


def _verdicts(at) -> list[str]:
    return [shown(s.value) for s in at.success] + [shown(w.value) for w in at.warning]


def test_trace_page_follows_each_gt_and_detection():
    at = _app()
    at.switch_page("pages/trace.py").run()
    assert not at.exception and not _errors(at), _errors(at)
    pick = at.selectbox(key="_trace_pick")
    texts = list(pick.options)  # AppTest gives the formatted texts
    assert texts[:2] == ["GT 0: cat", "GT 1: dog"] and len(texts) == 4  # 2 GT + 2 detections at 0.3
    assert any("Detected" in s and "level 2 (8x8)" in s for s in _verdicts(at))  # the cat, first by default
    assert int(_metric(at, "Matched default boxes")) >= 1
    assert traced(at)["kind"] == "gt" and traced(at)["index"] == 0
    at.selectbox(key="_trace_pick").set_value("gt:1").run()
    assert any("Detected" in s and "level 3 (4x4)" in s for s in _verdicts(at))  # the dog
    det = next(o for o in texts if o.startswith("detection 1: dog"))
    at.selectbox(key="_trace_pick").select(det).run()  # a detection
    assert not at.exception
    assert any(s.startswith("True positive") for s in _verdicts(at))
    assert traced(at)["kind"] == "detection"


def test_a_high_score_threshold_makes_a_miss_with_its_cause():
    at = _app()
    at.switch_page("pages/trace.py").run()
    at.slider(key="trace_score_thresh").set_value(0.95).run()
    assert not at.exception
    assert any("Missed, low score" in shown(w.value) for w in at.warning)
    # the dog's detection, traced earlier, is no longer final: it stays selectable and says why
    at.slider(key="trace_score_thresh").set_value(0.3).run()
    cat = next(o for o in at.selectbox(key="_trace_pick").options if o.startswith("detection 2: cat"))
    at.selectbox(key="_trace_pick").select(cat).run()
    assert any(s.startswith("True positive") for s in _verdicts(at))
    at.slider(key="trace_detections_per_img").set_value(1).run()  # the dog takes the one place
    pick = at.selectbox(key="_trace_pick")
    assert "not a final detection now" in pick.options[pick.index]
    assert any("Not a final detection: kept by NMS, then cut by the top-k" in w for w in _verdicts(at))


def test_nms_page_sends_an_object_and_the_pick_persists():
    at = _app()
    at.switch_page("pages/nms.py").run()
    at.slider(key="nms_score_thresh").set_value(0.5).run()
    row = at.selectbox(key="nms_trace_pick")
    at.selectbox(key="nms_trace_pick").select("GT 1: dog").run()
    at.button(key="nms_trace_go").click().run()
    assert not at.exception
    assert traced(at)["index"] == 1
    assert ws_of(at).thresholds.score_thresh == 0.5
    assert [t.value for t in at.title] == ["Trace one object"]  # st.switch_page opened the Trace page
    assert at.selectbox(key="_trace_pick").value == "gt:1"
    assert at.slider(key="trace_score_thresh").value == 0.5  # the NMS page's thresholds came along
    assert any("level 3 (4x4)" in s for s in _verdicts(at))
    # leave and come back: the pick is kept
    at.switch_page("pages/architecture.py").run()
    at.switch_page("pages/trace.py").run()
    assert at.selectbox(key="_trace_pick").value == "gt:1" and at.slider(key="trace_score_thresh").value == 0.5


def test_per_scale_page_has_a_trace_row():
    at = _app()
    at.switch_page("pages/per_scale.py").run()
    row = at.selectbox(key="ps_trace_pick")
    assert row.options[0] == "GT 0: cat"
    at.button(key="ps_trace_go").click().run()
    assert not at.exception and traced(at)["kind"] == "gt"
    assert [t.value for t in at.title] == ["Trace one object"]
    assert any("level 2 (8x8)" in s for s in _verdicts(at))


def test_no_gt_and_no_detection_says_so():
    at = _app()
    at.button(key="gt_clear").click().run()
    at.switch_page("pages/trace.py").run()
    at.slider(key="trace_score_thresh").set_value(0.95).run()
    assert not at.exception
    pick = [s for s in at.selectbox if s.key == "_trace_pick"]
    if pick:  # the model may still find something at 0.95
        assert all(o.startswith("detection") for o in pick[0].options)
    else:
        assert any("Nothing to trace" in i.value for i in at.info)


def test_a_pick_from_another_image_is_not_applied_to_this_one():
    at = _app()
    at.switch_page("pages/trace.py").run()
    at.selectbox(key="_trace_pick").set_value("gt:1").run()
    digest = traced(at)["image"]
    at.selectbox(key="sample_id").select("scene 1").run()
    assert not at.exception
    assert at.selectbox(key="_trace_pick").value == "gt:0"  # the new image's first object instead
    assert traced(at)["image"] != digest


def _click(at, chart_key: str, customdata) -> None:
    """A click on a marker, as Streamlit's plotly selection event stores it."""
    at.session_state[chart_key] = {"selection": {"points": [{"curve_number": 3, "point_number": 0,
                                                              "customdata": customdata}],
                                                  "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_a_click_on_the_nms_figure_picks_a_suppressed_candidate_for_the_trace_page():
    at = _app()
    at.switch_page("pages/nms.py").run()
    assert any("Click a box's centre marker" in c for c in _captions(at))
    assert "Trace the picked object" not in [p.label for p in at.get("page_link")]  # nothing picked yet
    at.slider(key="nms_score_thresh").set_value(0.2).run()
    # a suppressed candidate of the cat-and-dog scene (its key as the figure's marker carries it)
    rows = at.dataframe[2].value  # "Every candidate"
    sup = rows[~rows["kept"]].iloc[0]
    key = f"det:{int(sup['default_index'])}:{int(sup['label'])}"
    _click(at, "nms_chart", key)
    target = traced(at)
    assert (target["kind"], target["default_index"], target["label"]) == ("detection", int(sup["default_index"]),
                                                                          int(sup["label"]))
    assert ws_of(at).thresholds.score_thresh == 0.2
    assert any("Picked" in c and "not a final detection" in c for c in _captions(at))
    assert at.selectbox(key="nms_trace_pick").value == key  # the row's selector follows the click
    assert "Trace the picked object" in [p.label for p in at.get("page_link")]
    at.switch_page("pages/trace.py").run()
    assert at.selectbox(key="_trace_pick").value == key and at.slider(key="trace_score_thresh").value == 0.2
    assert any("suppressed by NMS" in m.value for m in at.markdown)


def test_a_click_on_a_per_scale_ring_picks_its_ground_truth_and_stays():
    at = _app()
    at.switch_page("pages/per_scale.py").run()
    _click(at, "ps_chart", "gt:1")
    assert traced(at)["kind"] == "gt" and traced(at)["index"] == 1
    assert at.selectbox(key="ps_trace_pick").value == "gt:1"
    at.run()  # the same selection again is not a new click: the selector may move freely
    at.selectbox(key="ps_trace_pick").set_value("gt:0").run()
    assert traced(at)["index"] == 1  # only the button or a click stores a pick
    at.switch_page("pages/nms.py").run()
    assert at.selectbox(key="nms_trace_pick").value == "gt:1"  # the pick persists across pages


def test_clicks_that_name_no_object_or_a_stale_one():
    at = _app()
    at.switch_page("pages/per_scale.py").run()
    _click(at, "ps_chart", "cell (3, 4): cat")  # a heatmap cell
    assert ws_of(at).traced is None
    _click(at, "ps_chart", "gt:7")  # drawn before the ground truth changed
    assert any("Cannot trace that click" in shown(w.value) and "GT box 7" in shown(w.value) for w in at.warning)
    assert ws_of(at).traced is None
