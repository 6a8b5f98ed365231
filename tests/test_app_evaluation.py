"""The Evaluation page under Streamlit's AppTest: a cached evaluation's figures and
tables, the threshold tuner and its hand-off to the NMS page, a gallery image sent to the
explorer, two evaluations compared, a failed evaluation with its reason, and bad input."""
from pathlib import Path

import pytest

from explorer.text import shown
from ssd.training.runlog import SPEC_FILE, update_status
from tests.app_helpers import ws_of
from tests.eval_helpers import SHIPPED, make_eval

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest
APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/evaluation.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = make_eval(root / "evaluations", num_images=8)
    b = make_eval(root / "evaluations", num_images=8, nms_thresh=0.3)
    return root, a, b


@pytest.fixture(autouse=True)
def _env(monkeypatch, runs, app_navigation):
    monkeypatch.setenv("SSD_RUNS_DIR", str(runs[0]))
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_results_tuner_and_hand_off(runs):
    at = _page()
    assert not at.error, [shown(e.value) for e in at.error]
    assert at.selectbox(key="eval_a").value in (runs[1].name, runs[2].name)
    at.selectbox(key="eval_a").set_value(runs[1].name).run()
    ap_eval = _metric(at, "AP@[.5:.95]")
    at.slider(key="evt_score_thresh").set_value(0.6).run()
    assert not at.exception
    assert _metric(at, "AP@[.5:.95]") != ap_eval  # thresholds re-run post-processing and AP
    at.button(key="evt_use").click().run()
    assert not at.exception
    t = ws_of(at).thresholds  # the one threshold set of Per-scale, NMS and Trace
    assert (t.score_thresh, t.nms_thresh, t.detections_per_img) == (0.6, 0.45, 200)
    assert any("--score-thresh 0.6 --nms-thresh 0.45 --detections-per-img 200" in c.value for c in at.code)
    at.switch_page("pages/nms.py").run()
    assert not at.exception
    assert at.slider(key="nms_score_thresh").value == 0.6
    at.switch_page("pages/trace.py").run()
    assert at.slider(key="trace_score_thresh").value == 0.6


def test_gallery_sends_a_scene_to_the_explorer():
    at = _page()
    at.selectbox(key="evg_kind").set_value("Bkg").run()
    assert not at.exception
    # Each thumbnail's label is body text (it was the image's small caption: issue 19 item 11).
    labels = [shown(m.value) for m in at.markdown if shown(m.value).startswith("**image ")]
    assert labels and all(" x Bkg, " in t and t.endswith(" GT") for t in labels), labels
    at.button(key="evg_ps_0").click().run()  # one run: the page switches at once (issue 19 item 2)
    assert not at.exception, [e.value for e in at.exception]
    ws = ws_of(at)
    sid = ws.sample_id
    assert sid.startswith("procedural:scene_10000000") and ws.source == "sample"
    assert at.sidebar.selectbox(key="sample_id").value == sid
    assert ws.model_id == SHIPPED and at.session_state["_explorer_ctx"].image.name == sid.split(":", 1)[1]
    assert [t.value for t in at.title] == ["Per-scale detections"]  # failed before: Evaluation stayed


def test_two_evaluations_side_by_side(runs):
    at = _page()
    at.selectbox(key="eval_a").set_value(runs[1].name).run()
    at.selectbox(key="eval_b").set_value(runs[2].name).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Differences (B - A)" in shown(s.value) for s in at.subheader)


def test_failed_evaluation_shows_the_reason(runs):
    d = runs[0] / "evaluations" / "deadbeefdeadbeef"
    d.mkdir()
    (d / SPEC_FILE).write_text((runs[1] / SPEC_FILE).read_text())
    update_status(d, state="failed", message="checkpoint x.pt is truncated or corrupt")
    try:
        at = _page()
        assert any("failed: checkpoint x.pt is truncated or corrupt" in shown(e.value) for e in at.error)
    finally:
        import shutil

        shutil.rmtree(d)


def test_bad_checkpoint_file_is_refused_with_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SSD_DATA_ROOTS", str(tmp_path))
    cut = tmp_path / "cut.pt"
    data = Path(SHIPPED).read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    at = _page()
    at.selectbox(key="ev_ckpt").set_value("__other__").run()
    at.text_input(key="ev_ckpt_path").set_value(str(cut)).run()
    at.button(key="ev_go").click().run()
    assert not at.exception
    assert any("Cannot evaluate" in shown(e.value) for e in at.error)
    assert any("cut.pt is truncated or corrupt" in c.value for c in at.code)


def test_paths_outside_the_data_roots_are_refused_unread(tmp_path, monkeypatch):
    """Issue 20 item 2: the Evaluation page evaluated a checkpoint and read datasets outside
    SSD_DATA_ROOTS, and told existing from missing paths there."""
    monkeypatch.setenv("SSD_DATA_ROOTS", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    outside = tmp_path / "outside.pt"
    outside.write_bytes(Path(SHIPPED).read_bytes())
    from explorer.evaluation import jobs

    before = len(jobs.list_evals())
    at = _page()
    said = []
    for ckpt in (str(outside), str(tmp_path / "missing.pt"), "/etc/shadow"):
        at.selectbox(key="ev_ckpt").set_value("__other__").run()
        at.text_input(key="ev_ckpt_path").set_value(ckpt).run()
        at.button(key="ev_go").click().run()
        assert not at.exception
        said += [c.value.replace(ckpt, "P") for c in at.code if "outside the allowed data folders" in c.value]
    assert len(said) == 3 and len(set(said)) == 1, said
    at.selectbox(key="ev_ckpt").set_value(SHIPPED).run()
    at.radio(key="ev_kind").set_value("voc").run()
    at.text_input(key="ev_voc_root").set_value("/etc").run()
    at.button(key="ev_go").click().run()
    assert any("/etc: VOC folder is outside the allowed data folders" in c.value for c in at.code)
    assert len(jobs.list_evals()) == before  # nothing launched


def test_evaluate_button_runs_in_the_background(tmp_path, monkeypatch):
    import time

    from explorer.evaluation import jobs

    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))
    at = _page()
    at.number_input(key="ev_n").set_value(4).run()
    at.button(key="ev_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (info,) = jobs.list_evals()
    assert info.spec.dataset.num_images == 4 and info.spec.checkpoint == SHIPPED
    t0 = time.time()
    while jobs.read_eval(info.eval_dir).live and time.time() - t0 < 180:
        time.sleep(0.5)
    assert jobs.read_eval(info.eval_dir).state == "finished", jobs.log_tail(info.eval_dir)
    at.run()  # what the polling fragment's rerun shows
    assert not at.exception
    assert at.selectbox(key="eval_a").value == info.key
    assert _metric(at, "AP@[.5:.95]")
