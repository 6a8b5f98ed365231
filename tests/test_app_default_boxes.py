"""The Default boxes page under Streamlit's AppTest: presets reproduced exactly by the controls,
each control changing only what it names, the click on a cell as the browser sends it, the
switch from SSD512 to a 6-level preset, and invalid settings explained."""
from pathlib import Path

import pytest

from explorer.text import shown
from tests.app_helpers import ws_of

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


pytestmark = pytest.mark.usefixtures("app_env")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/default_boxes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label: str) -> str:
    return [m for m in at.metric if m.label == label][0].value


def _errors(at) -> list[str]:
    return [shown(e.value) for e in at.error]


def _pick(at, prefix: str) -> None:
    box = at.selectbox(key="db_preset")
    box.set_value([o for o in box.options if o.startswith(prefix)][0]).run()
    assert not at.exception, [e.value for e in at.exception]


def test_presets_are_reproduced_exactly_by_the_controls():
    from ssd.config import ssd300_voc, ssd512_voc

    at = _page()
    assert _metric(at, "Total default boxes") == "8732"  # SSD300 VOC preset
    assert ws_of(at).boxes.config == ssd300_voc()
    assert at.slider(key="db_smin").value == 0.2 and at.slider(key="db_smax").value == 0.88
    assert at.checkbox(key="db_first").value and at.number_input(key="db_sfirst").value == 0.1
    _pick(at, "SSD512")
    assert _metric(at, "Total default boxes") == "24564" and at.slider(key="db_size").value == 512
    assert ws_of(at).boxes.config == ssd512_voc()


def test_editing_one_control_changes_only_what_it_names():
    at = _page()
    before = ws_of(at).boxes.config
    at.slider(key="db_smax").set_value(0.89).run()
    moved = ws_of(at).boxes.config
    assert at.selectbox(key="db_preset").value.startswith("custom")
    assert moved.scales[:2] == before.scales[:2]  # conv4_3's 0.1 and s_min stay: no 60 -> 77 px jump
    assert moved.scales[5] == pytest.approx(0.89)
    assert (moved.feature_maps, moved.steps, moved.aspect_ratios) == (before.feature_maps, before.steps, before.aspect_ratios)
    at.slider(key="db_smax").set_value(0.88).run()  # moving it back restores the preset's boxes
    assert ws_of(at).boxes.config.scales == pytest.approx(before.scales, abs=1e-12)
    at.text_input(key="db_scales").input("0.1, 0.25, 0.37, 0.54, 0.71, 0.88, 1.05").run()
    edited = ws_of(at).boxes.config
    assert edited.scales[1] == 0.25 and edited.scales[2:] == before.scales[2:] and edited.scales[0] == 0.1
    assert _metric(at, "Total default boxes") == "8732"
    at.text_input(key="db_ratio_sets").input("1").run()
    at.checkbox(key="db_extra").set_value(False).run()
    assert _metric(at, "Total default boxes") == str(38**2 + 19**2 + 10**2 + 5**2 + 3**2 + 1)


def test_click_on_a_cell_as_the_browser_sends_it():
    at = _page()
    at.selectbox(key="db_level").set_value(0).run()
    # Streamlit's selection event: customdata arrives as a dict with string keys.
    at.session_state["db_chart"] = {"selection": {"points": [{"curve_number": 1, "point_number": 220,
                                                               "customdata": {"0": 5, "1": 30}}],
                                                   "point_indices": [220], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="db_row").value == 5 and at.number_input(key="db_col").value == 30
    at.number_input(key="db_row").set_value(2).run()  # the same selection again is not a new click
    assert at.number_input(key="db_row").value == 2


def test_switching_from_ssd512_to_a_six_level_preset():
    at = _page()
    _pick(at, "SSD512")
    at.selectbox(key="db_level").set_value(6).run()
    assert _metric(at, "Boxes on level 6") == "4"
    _pick(at, "SSD300 (COCO")
    assert _metric(at, "Total default boxes") == "8732" and at.selectbox(key="db_level").value == 2  # the middle
    # The browser's stale label ("6: 1x1", a str) cannot be sent by AppTest, which re-sends
    # the widget's int; `dbv.valid_level` is tested with the str in test_views_default_boxes.py.
    _pick(at, "the selected model")
    assert not at.exception


def test_invalid_settings_explain_themselves():
    at = _page()
    at.text_input(key="db_maps").input("38, x").run()
    assert any("'x'" in e for e in _errors(at))
    at.text_input(key="db_maps").input("10, 5").run()  # steps, scales and ratio sets follow the maps
    assert not _errors(at) and _metric(at, "Levels") == "2"
    at.text_input(key="db_scales").input("0.2, abc, 0.9").run()
    assert any("scales: 'abc' is not a number" in e for e in _errors(at))
    at.text_input(key="db_scales").input("0.2, 0.5").run()
    assert any("scales must have" in e for e in _errors(at))
    at.text_input(key="db_scales").input("0.2, 0.5, 0.9").run()
    at.text_input(key="db_ratio_sets").input("1, 2; 1; 3").run()
    assert any("3 level sets for 2 feature maps" in e for e in _errors(at))
    at.text_input(key="db_ratio_sets").input("1, 2; 1").run()
    at.text_input(key="db_steps").input("30").run()
    assert any("steps: 1 entries for 2 feature maps" in e for e in _errors(at))
    at.text_input(key="db_steps").input("30, 60").run()
    assert not _errors(at) and not at.exception


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def test_warnings_for_maps_that_do_not_fit_and_clipped_levels():
    """Issue 11: settings that build but draw something odd are explained above the figure."""
    at = _page()
    assert not _warnings(at)  # the paper's SSD300
    at.slider(key="db_size").set_value(512).run()  # steps 8..300 left from the 300 px input
    assert any("do not fit the 512 px input" in w and "38 cells x 8 px = 304 px, 208 px short" in w
               for w in _warnings(at)), _warnings(at)
    at.text_input(key="db_maps").input("64, 32, 16, 8, 4, 2, 1").run()  # steps follow: S / f
    assert not _warnings(at) and at.text_input(key="db_steps").value.startswith("8.0, 16.0")
    at.text_input(key="db_maps").input("16, 32, 8, 4, 2, 1").run()
    assert any("level 1 (32x32) after level 0 (16x16)" in w for w in _warnings(at)), _warnings(at)
    at.text_input(key="db_maps").input("32, 16, 8, 4, 2, 1").run()
    at.text_input(key="db_scales").input("0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.1").run()
    assert any("level 5 (1x1, s_k = 1): ratios 1, 1' are all 512x512 px" in w for w in _warnings(at)), _warnings(at)
    at.checkbox(key="db_clip").set_value(False).run()
    assert not _warnings(at) and not at.exception


def test_a_dense_grid_says_how_it_is_drawn():
    at = _page()
    _pick(at, "SSD512")
    at.selectbox(key="db_level").set_value(0).run()
    caption = " ".join(c.value for c in at.caption)
    assert "64x64 grid of level 0" in caption and "a line every 2 cells" in caption
    at.selectbox(key="db_level").set_value(2).run()  # 16x16: 34 px cells, every line drawn
    assert "a line every" not in " ".join(c.value for c in at.caption)
