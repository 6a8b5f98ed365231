"""pages/_workspace.py under AppTest: values survive a page change, every page shows the
one threshold set, and the URL carries the view to a new session (issue 19 items 3, URL)."""
import pytest

from explorer.text import shown
from tests.app_helpers import ws_of
from tests.test_app_ground_truth import _app

pytest.importorskip("streamlit.testing.v1")
pytestmark = pytest.mark.usefixtures("app_env")


def test_thresholds_survive_a_page_change_and_are_the_same_on_every_page():
    """Failed before: NMS score 0.33 -> Home -> NMS showed 0.30; Trace kept its own 0.2 / 0.3."""
    at = _app()
    at.switch_page("pages/nms.py").run()
    at.slider(key="nms_score_thresh").set_value(0.33).run()
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/nms.py").run()
    assert not at.exception and at.slider(key="nms_score_thresh").value == 0.33
    at.switch_page("pages/trace.py").run()
    assert at.slider(key="trace_score_thresh").value == 0.33
    at.switch_page("pages/per_scale.py").run()
    assert at.slider(key="ps_level_score_thresh").value == 0.33
    at.switch_page("pages/matching.py").run()
    at.slider(key="match_iou").set_value(0.6).run()
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/matching.py").run()
    assert at.slider(key="match_iou").value == 0.6
    assert ws_of(at).thresholds.score_thresh == 0.33


def test_the_url_opens_the_same_view_in_a_new_session():
    at = _app()
    at.switch_page("pages/nms.py").run()
    at.slider(key="nms_score_thresh").set_value(0.42).run()
    at.slider(key="nms_detections_per_img").set_value(50).run()
    q = dict(at.query_params)
    assert q["score_thresh"] in ("0.42", ["0.42"]) and "inputs" not in q  # the default sample: nothing kept
    other = _app({k: (v[0] if isinstance(v, list) else v) for k, v in q.items()})
    other.switch_page("pages/nms.py").run()
    assert other.slider(key="nms_score_thresh").value == 0.42
    assert other.slider(key="nms_detections_per_img").value == 50


def test_a_bad_link_value_says_so_and_keeps_the_default():
    at = _app({"score_thresh": "7", "nms_thresh": "0.5"})
    assert any("score_thresh: 7 is outside" in shown(w.value) for w in at.sidebar.warning)
    t = ws_of(at).thresholds
    assert (t.score_thresh, t.nms_thresh) == (0.3, 0.5)


def test_a_links_model_outside_the_allowed_folders_is_never_opened(tmp_path, monkeypatch):
    """A model id arrives in links: before, `?model=/any/file.pt` loaded any checkpoint on the
    server and a missing path fell back silently (an existence probe). Now a file outside the
    data roots, runs and shipped checkpoints gets the same warning as a missing one, and a
    checkpoint inside the roots is offered."""
    import shutil

    from tests.test_shipped_checkpoint import CKPT

    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    monkeypatch.setenv("SSD_DATA_ROOTS", str(data))
    shutil.copy(CKPT, outside / "theirs.pt")
    shutil.copy(CKPT, data / "mine.pt")
    warnings = []
    for model in (outside / "theirs.pt", outside / "missing.pt"):
        at = _app({"model": str(model)})
        assert ws_of(at).model_id != str(model)
        warnings.append([shown(w.value) for w in at.sidebar.warning if "model" in shown(w.value)])
    assert warnings[0] and warnings[0] == warnings[1]  # the same words: nothing said about what exists
    at = _app({"model": str(data / "mine.pt")})
    assert ws_of(at).model_id == str(data / "mine.pt") and not at.sidebar.warning
