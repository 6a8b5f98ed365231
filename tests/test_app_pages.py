"""Every page of the app, headless, through Streamlit's AppTest: default sample, an
uploaded image, moved sliders, bad uploads. The model is the compact one (the shipped
checkpoint when present, else compact256 with random weights); SSD300 appears only
where no weights are needed (architecture table, default-box presets)."""
import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
MODEL_PAGES = ["pages/matching.py", "pages/per_scale.py", "pages/nms.py"]
ALL_PAGES = ["pages/home.py", "pages/architecture.py", "pages/default_boxes.py"] + MODEL_PAGES


@pytest.fixture(autouse=True)
def _no_user_runs(monkeypatch, tmp_path):
    # Training runs on this machine must not change what the picker offers.
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))
    # app.py sets torch's thread count; keep the suite's one thread (tests/conftest.py).
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")


@pytest.fixture(autouse=True)
def _navigation_mode(monkeypatch):
    """Run app.py on every AppTest run, as the server does.

    A `pages/` folder next to app.py puts Streamlit in its old folder-based multipage
    mode until the first `st.navigation` call turns that off for the whole server
    process. AppTest resets the flag before each run, so from the second run on it would
    run a page file alone, without app.py and its sidebar. Set the flag as the server
    has it after its first run.
    """
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(markdown: str) -> str:
    """The text a markdown element shows: user text reaches it escaped (`_ui.plain`)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def _errors(at) -> list[str]:
    return [_shown(e.value) for e in at.error] + [_shown(e.value) for e in at.sidebar.error]


def _metric(at, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return m.value
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def _png(size=(320, 240), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def test_every_page_runs_on_the_default_sample():
    at = _app()
    assert at.session_state["model_choice"]
    for page in ALL_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not _errors(at), (page, _errors(at))


def test_architecture_shows_8732_for_ssd300():
    at = _app()
    at.switch_page("pages/architecture.py").run()
    compact_total = _metric(at, "Default boxes in all")
    at.radio(key="arch_which").set_value(at.radio(key="arch_which").options[1]).run()
    assert not at.exception
    assert _metric(at, "Default boxes in all") == "8732"
    assert compact_total != "8732"


def test_default_boxes_presets_sliders_and_bad_settings():
    at = _app()
    at.switch_page("pages/default_boxes.py").run()
    assert _metric(at, "Total default boxes") == "8732"  # SSD300 VOC preset
    preset = at.selectbox(key="db_preset")
    at.selectbox(key="db_preset").set_value([o for o in preset.options if o.startswith("SSD512")][0]).run()
    assert _metric(at, "Total default boxes") == "24564"
    assert at.slider(key="db_size").value == 512  # the sliders follow the preset
    # Moving a slider switches to the paper's linear rule on the shown settings.
    at.slider(key="db_smin").set_value(0.2).run()
    assert not at.exception
    assert at.selectbox(key="db_preset").value.startswith("custom")
    assert _metric(at, "Total default boxes") == "24564"  # same maps and ratios
    at.multiselect(key="db_ratios").set_value(["1"]).run()
    at.checkbox(key="db_extra").set_value(False).run()
    assert _metric(at, "Total default boxes") == str(64**2 + 32**2 + 16**2 + 8**2 + 4**2 + 2**2 + 1)
    at.selectbox(key="db_level").set_value(6).run()
    assert not at.exception and _metric(at, "Boxes on level 6") == "1"
    # Invalid settings explain themselves and the page survives.
    at.slider(key="db_smin").set_value(0.95).run()
    at.slider(key="db_smax").set_value(0.5).run()
    assert not at.exception
    assert any("s_min < s_max" in e for e in _errors(at))
    at.slider(key="db_smax").set_value(1.2).run()
    at.text_input(key="db_maps").input("38, x").run()
    assert any("'x'" in e for e in _errors(at))
    at.text_input(key="db_maps").input("10, 5").run()
    assert not _errors(at)
    at.number_input(key="db_row").set_value(2).run()
    assert not at.exception


def test_matching_sliders_change_positives_and_loss():
    at = _app()
    at.switch_page("pages/matching.py").run()
    assert not at.exception
    n_gt = int(_metric(at, "Ground-truth boxes"))
    assert n_gt >= 2  # the cat-and-dog scene
    pos_05 = int(_metric(at, "Positive default boxes"))
    assert pos_05 >= n_gt
    n = int(_metric(at, "N (positives)"))
    assert n == pos_05 and int(_metric(at, "hard negatives")) == 3 * n
    at.slider(key="match_iou").set_value(0.3).run()
    at.slider(key="match_ratio").set_value(1.0).run()
    assert not at.exception
    assert int(_metric(at, "Positive default boxes")) > pos_05
    assert int(_metric(at, "hard negatives")) == int(_metric(at, "N (positives)"))


def test_per_scale_and_nms_controls():
    at = _app()
    at.switch_page("pages/per_scale.py").run()
    cls = at.selectbox(key="ps_class")
    at.selectbox(key="ps_class").set_value(cls.options[2]).run()
    assert not at.exception
    at.switch_page("pages/nms.py").run()
    at.slider(key="nms_score").set_value(0.05).run()
    before = int(_metric(at, "Candidates before NMS"))
    kept = int(_metric(at, "Kept by NMS"))
    assert kept <= before
    at.slider(key="nms_iou").set_value(0.9).run()
    assert int(_metric(at, "Kept by NMS")) >= kept  # a looser overlap limit keeps more
    at.slider(key="nms_topk").set_value(1).run()
    assert not at.exception
    assert int(_metric(at, "Final detections (after top k)")) <= 1


def test_every_page_runs_on_an_uploaded_image():
    at = _app()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value(("wide.png", _png((400, 200), "L"), "image/png")).run()
    assert not at.exception
    assert any("wide.png: 400x200" in _shown(c.value) for c in at.sidebar.caption)
    for page in ALL_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not _errors(at), (page, _errors(at))
    # no GT on an upload: the matching page says so instead of failing
    at.switch_page("pages/matching.py").run()
    assert any("no ground-truth" in i.value for i in at.info)


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("empty.png", b"", "empty"),
        ("notes.png", b"hello, I am text" * 10, "image"),
        ("cut.png", _png()[:200], ""),
    ],
)
def test_bad_uploads_show_an_error_and_the_app_stays_usable(name, data, reason):
    at = _app()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    errs = _errors(at)
    assert any(name in e and reason.lower() in e.lower() for e in errs), errs
    at.switch_page("pages/default_boxes.py").run()
    assert not at.exception


def test_gt_annotation_file_with_a_bad_row_is_named(tmp_path):
    at = _app()
    voc = (b"<annotation><object><name>cat</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>60</xmax>"
           b"<ymax>70</ymax></bndbox></object><object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
           b"<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    at.file_uploader(key="gt_file").set_value(("a.xml", voc, "text/xml")).run()
    assert not at.exception
    assert any("row 2" in e and "unicorn" in e for e in _errors(at))
    at.switch_page("pages/matching.py").run()
    assert _metric(at, "Ground-truth boxes") == "1"
    at.file_uploader(key="gt_file").set_value(("b.json", b"{oops", "application/json")).run()
    assert any("b.json" in e and "JSON" in e for e in _errors(at))


def test_model_choice_from_session_state_and_offline_torchvision(monkeypatch, tmp_path):
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights

    # A junk file where torch hub caches the weights: torchvision reads it instead of
    # downloading, fails, and the app must say so and keep working.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints" / os.path.basename(SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.url)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"junk")
    at = _app()
    at.session_state["model_choice"] = "random:compact256"  # as the training page's "use in explorer"
    at.run()
    assert at.selectbox(key="_model_picker").value == "random:compact256"
    at.switch_page("pages/architecture.py").run()
    assert any("random" in w.value for w in at.warning)  # every page says the model is untrained
    at.selectbox(key="_model_picker").set_value("torchvision:ssdlite320_mobilenet_v3_large").run()
    assert not at.exception
    assert any("SSDlite320" in e for e in _errors(at))
    assert not at.exception
    assert at.session_state["model_choice"] == "torchvision:ssdlite320_mobilenet_v3_large"
