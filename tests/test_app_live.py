"""The live figures' Streamlit side (pages/_live.py), headless through AppTest, which runs
no JavaScript: a browser in which the component never loads. Every live page then still
shows its server figure and sliders (the fallback), and with SSD_LIVE_FIGURES=0 the pages
mount no component at all. Once the browser has run a component (`_live_ready_*`), the page
drops the server figure and its sliders and reads the values the live figure committed."""
import json
from pathlib import Path

import pytest

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest
APP = str(Path(__file__).resolve().parent.parent / "app.py")
LIVE_PAGES = {"pages/default_boxes.py": ("default_boxes", "s_max"), "pages/matching.py": ("matching", "IoU threshold"),
              "pages/nms.py": ("nms", "Score threshold")}

pytestmark = pytest.mark.usefixtures("app_env")


def _components(at) -> list:
    return list(at.get("bidi_component"))


def _plotly_count(at) -> int:
    return len(list(at.get("plotly_chart")))


def _run_page(at, page: str):
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", sorted(LIVE_PAGES))
def test_without_the_component_the_page_shows_its_server_figure(page, monkeypatch):
    monkeypatch.setenv("SSD_LIVE_FIGURES", "0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _run_page(at, page)
    assert _components(at) == []
    assert _plotly_count(at) >= 1
    label = LIVE_PAGES[page][1]
    assert any(s.label == label for s in at.slider), [s.label for s in at.slider]


@pytest.mark.parametrize("page", sorted(LIVE_PAGES))
def test_until_the_browser_runs_it_the_server_figure_stays(page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _run_page(at, page)
    assert len(_components(at)) == 1  # mounted: the browser may run it
    (component,) = _components(at)  # its JS: the small loader; the module is fetched from `module_url`
    assert len(component.proto.js_content) < 1000 and _component_data(at)["module_url"]
    assert _plotly_count(at) >= 1  # and the server figure is there until it does
    name, label = LIVE_PAGES[page]
    assert any(s.label == label for s in at.slider)
    # The browser ran it (the component's `ready`): the server figure and slider go.
    at.session_state[f"_live_ready_{name}"] = True
    _run_page(at, page)
    assert len(_components(at)) == 1
    assert not any(s.label == label for s in at.slider)


def _component_data(at) -> dict:
    (component,) = _components(at)
    return json.loads(component.proto.json)


def test_a_committed_value_reaches_python_and_the_live_nms_page():
    """What the live NMS figure's callback writes (the workspace's thresholds) is what the
    page sends the figure; the counts and tables are then the figure's (computed in the
    page), not the server's, and the candidates it sends do not depend on the threshold."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.session_state["_live_ready_nms"] = True
    at.session_state["_workspace"].set_thresholds(score_thresh=0.9)  # what the commit callback does
    _run_page(at, "pages/nms.py")
    high = _component_data(at)
    assert high["score_thresh"] == 0.9
    assert not any(m.label == "Candidates before NMS" for m in at.metric) and not list(at.dataframe)
    # The trace row lists the ground truth (no threshold changes it); a detection: a click on its box.
    options = at.selectbox(key="nms_trace_pick").options
    assert options and all(o.startswith("GT ") for o in options), options
    at.session_state["_workspace"].set_thresholds(score_thresh=0.05)
    _run_page(at, "pages/nms.py")
    low = _component_data(at)
    assert low["score_thresh"] == 0.05
    assert low["scores"] == high["scores"] and low["labels"] == high["labels"] and len(low["labels"]) > 0
    assert len(low["row"]) == len(low["col"]) == len(low["labels"]) and low["num_levels"] == 6


def test_live_default_boxes_scales_follow_the_rule_and_bad_scales_say_why():
    """With the live figure in charge (no server s_max slider), the Scales field is drawn
    under the figure, in the release's fragment: it shows the scales the rule fills for a
    committed s_max (as `_live_commit` leaves them), and the figure's data carries them;
    scales that make no valid SSD get the page's message, the field stays there to fix them."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.session_state["_live_ready_default_boxes"] = True
    _run_page(at, "pages/default_boxes.py")
    assert not any(s.label == "s_max" for s in at.slider)
    assert at.metric[0].value == "8732"  # SSD300 (the first preset)
    # What the live figure's commit callback does on a release (`_live_commit`).
    from explorer.views import default_boxes as dbv

    at.session_state["db_smax"] = 0.89
    controls = {**dbv.controls_from_config(at.session_state["_db_built"]), "s_max": 0.89}
    want = dbv.scales_text_from_rule(controls, 6)
    at.session_state["db_scales"] = want
    at.session_state["db_preset"] = "custom (your settings)"
    _run_page(at, "pages/default_boxes.py")
    assert at.text_input(key="db_scales").value == want and want.split(", ")[5] == "0.89"
    assert _component_data(at)["config"]["scales"][5] == 0.89
    at.text_input(key="db_scales").set_value("0.1, 0.2, oops").run()
    assert not at.exception
    assert any("do not make a valid SSD" in e.value for e in at.error), [e.value for e in at.error]
    assert at.text_input(key="db_scales").value == "0.1, 0.2, oops" and _components(at) == []
    at.text_input(key="db_scales").set_value(want).run()
    assert not at.exception and len(_components(at)) == 1 and not list(at.error)


def test_a_committed_value_reaches_python_and_the_live_matching_page():
    """With the live Matching figure in charge, the workspace's matching settings (what its
    commit callback writes) are what the page sends; the numbers and tables are the page's
    (none drawn by the server), its per-box losses do not depend on the threshold, and the
    box encoding's picker (drawn by the server, in the release's fragment) follows it."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.session_state["_live_ready_matching"] = True
    ws = at.session_state["_workspace"]
    ws.set_matching(iou_thresh=0.3, neg_pos_ratio=1.0)
    _run_page(at, "pages/matching.py")
    low = _component_data(at)
    assert (low["iou_thresh"], low["neg_pos_ratio"], low["section"]) == (0.3, 1.0, "positives")
    assert not list(at.metric) and not list(at.dataframe) and not any(s.label == "IoU threshold" for s in at.slider)
    at.radio(key="match_section").set_value("Box encoding").run()
    options_low = at.selectbox(key="enc_pick").options
    assert _component_data(at)["section"] == "encoding"
    ws.set_matching(iou_thresh=0.7)
    _run_page(at, "pages/matching.py")
    high = _component_data(at)
    assert high["iou_thresh"] == 0.7
    for field in ("conf_loss", "pos_conf_loss", "pos_loc_loss", "p_background", "top_class", "forced_pairs"):
        assert field not in high or high[field] == low[field], field  # sent once (held), the same
    assert len(at.selectbox(key="enc_pick").options) < len(options_low)
    at.radio(key="match_section").set_value("Hard negatives & loss").run()
    assert _component_data(at)["section"] == "loss" and not list(at.dataframe) and len(at.latex) == 1
