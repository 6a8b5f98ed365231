"""The Dataset page under Streamlit's AppTest: procedural scenes with a size range, a VOC folder
and COCO JSON on disk, an uploaded COCO JSON, bad files, the shared tuned configuration and the
optimizer button."""
import json
import re
from pathlib import Path

import pytest
from explorer.text import shown
from tests.app_helpers import ws_of

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


pytestmark = pytest.mark.usefixtures("app_env")


def _page(n_scenes: int = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/dataset.py")
    at.session_state["ds_n"] = n_scenes
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(elements) -> list[str]:
    """What the elements show (user text reaches them escaped: explorer.text.md)."""
    return [re.sub(r"\\(.)", r"\1", e.value).replace("\u2060", "") for e in elements]


def _errors(at) -> list[str]:
    return _shown(at.error)


def _metric(at, label: str) -> str:
    return [m for m in at.metric if m.label == label][0].value


def test_procedural_coverage_with_size_range_and_threshold():
    from ssd.tuning.coverage import coverage_brute
    from ssd.data.gt_boxes import procedural_boxes
    from ssd.models import default_config

    at = _page()
    data = procedural_boxes(60, 1000, 256)
    assert _metric(at, "Boxes") == str(len(data))
    cfg = default_config("compact256")  # the sidebar model's config until Default boxes edits it
    assert _metric(at, "Best possible recall") == f"{coverage_brute(data.boxes_xyxy_norm, cfg).bpr:.3f}"
    at.slider(key="ds_iou").set_value(0.7).run()
    assert _metric(at, "Best possible recall") == f"{coverage_brute(data.boxes_xyxy_norm, cfg, 0.7).bpr:.3f}"
    at.slider(key="ds_size").set_value((0.03, 0.12)).run()
    small = procedural_boxes(60, 1000, 256, (0.03, 0.12))
    assert not at.exception and _metric(at, "Boxes") == str(len(small))


def test_default_boxes_page_config_is_measured_here():
    from ssd.config import ssd300_voc

    at = _page()
    at.switch_page("pages/default_boxes.py").run()
    assert ws_of(at).boxes.config == ssd300_voc()
    at.switch_page("pages/dataset.py").run()
    assert not at.exception
    assert any("ssd300\\_voc" in c.value and "8732 boxes" in c.value for c in at.caption)  # names escaped


def test_the_tuner_tunes_what_the_page_shows_and_replaces_it_only_when_used():
    """Issue 19 item 4: it tuned compact256 while the page measured SSD300 and replaced the
    Default boxes configuration at once, silently, on 15 boxes, with unrounded scales."""
    from ssd.config import ssd300_voc

    at = _page(40)
    at.switch_page("pages/default_boxes.py").run()  # the page shows SSD300 (its first preset)
    at.switch_page("pages/dataset.py").run()
    at.slider(key="ds_size").set_value((0.03, 0.12)).run()
    at.button(key="ds_tune").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ws = ws_of(at)
    assert ws.boxes.config == ssd300_voc()  # not replaced yet
    tuned = ws.proposal.config
    assert tuned.name == "tuned_ssd300_voc" and tuned.feature_maps == ssd300_voc().feature_maps
    assert ws.proposal.before["default_boxes"] == 8732  # compared against what the page shows
    assert all(s == round(s, 3) for s in tuned.scales) and list(tuned.scales) == sorted(tuned.scales)
    assert any("fewer than the" in shown(w.value) for w in at.warning)  # 40 scenes' boxes, said with numbers
    at.button(key="ds_use").click().run()
    assert ws_of(at).boxes.config == tuned and ws_of(at).boxes.origin.startswith("tuned on")
    at.switch_page("pages/default_boxes.py").run()
    assert not at.exception and at.selectbox(key="db_preset").value.startswith("custom")
    assert at.text_input(key="db_scales").value == ", ".join(repr(s) for s in tuned.scales)
    at.switch_page("pages/dataset.py").run()
    at.button(key="ds_undo").click().run()
    assert ws_of(at).boxes.config == ssd300_voc()


def test_voc_folder_and_coco_json_on_disk(peer_data, monkeypatch):
    monkeypatch.setenv("SSD_DATA_ROOTS", str(peer_data))  # typed paths must be inside the data roots
    at = _page()
    at.radio(key="ds_kind").set_value("voc").run()
    at.text_input(key="ds_path_voc").input(str(peer_data / "mmdet" / "VOC2007")).run()
    assert not at.exception and _metric(at, "Boxes") == "15"
    at.radio(key="ds_kind").set_value("coco").run()
    at.text_input(key="ds_path_coco").input(str(peer_data / "mmdet" / "coco_sample.json")).run()
    assert not at.exception and _metric(at, "Boxes") == "3"
    assert any("1 image(s) skipped" in w and "unknown category_id 3" in w for w in _shown(at.warning))


def test_bad_dataset_inputs_show_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("SSD_DATA_ROOTS", str(tmp_path))
    at = _page()
    at.radio(key="ds_kind").set_value("voc").run()
    # Nothing typed yet: what to do, not a red error (issue 19 item 11: "give the path of the VOC folder").
    assert not _errors(at) and any("Type the path of a VOC folder" in i.value for i in at.info)
    at.text_input(key="ds_path_voc").input(str(tmp_path)).run()
    assert any("no VOC annotation XML files" in e for e in _errors(at))
    at.radio(key="ds_kind").set_value("coco upload").run()
    no_sizes = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "x"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]}
    at.file_uploader(key="ds_upload").set_value(("mine.json", json.dumps(no_sizes).encode(), "application/json")).run()
    assert not at.exception
    errs = _errors(at)
    assert any("mine.json" in e and "no integer 'width' and 'height'" in e for e in errs), errs
    good = {**no_sizes, "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}]}
    at.file_uploader(key="ds_upload").set_value(("ok.json", json.dumps(good).encode(), "application/json")).run()
    assert not at.exception and _metric(at, "Boxes") == "1"


def test_typed_paths_are_confined_and_never_block(tmp_path, monkeypatch):
    """Issue 20 items 2, 3, 4, 7: the Dataset page reads only inside SSD_DATA_ROOTS, says the
    same for whatever lies outside, refuses a FIFO annotation and a 1 GiB sparse JSON at
    once, and names a NUL byte instead of failing."""
    import os
    import time

    root = tmp_path / "data"
    (root / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.mkfifo(root / "voc" / "Annotations" / "a.xml")
    with open(root / "big.json", "wb") as f:
        f.truncate(1 << 30)
    monkeypatch.setenv("SSD_DATA_ROOTS", str(root))
    at = _page()
    said = {}
    for kind, path in (("voc", "/etc"), ("voc", str(tmp_path / "outside" / "nope")), ("coco", "/etc/shadow"),
                       ("coco", "/proc/self/environ")):
        at.radio(key="ds_kind").set_value(kind).run()
        at.text_input(key=f"ds_path_{kind}").input(path).run()
        assert not at.exception
        said[path] = [e.replace(path, "P").replace("VOC folder", "W").replace("COCO annotation JSON file", "W") for e in _errors(at)]
    assert all(len(v) == 1 and "outside the allowed data folders" in v[0] for v in said.values()), said
    assert len({v[0].split(":", 1)[1] for v in said.values()}) == 1, said  # one answer for all
    at.radio(key="ds_kind").set_value("voc").run()
    t0 = time.perf_counter()
    at.text_input(key="ds_path_voc").input(str(root / "voc")).run()
    assert time.perf_counter() - t0 < 20 and not at.exception
    assert any("not a regular file" in e for e in _errors(at)), _errors(at)
    at.radio(key="ds_kind").set_value("coco").run()
    at.text_input(key="ds_path_coco").input(str(root / "big.json")).run()
    assert any("over the 512 MiB limit" in e for e in _errors(at)), _errors(at)
    at.text_input(key="ds_path_coco").input(str(root) + "/a\x00b.json").run()
    assert not at.exception and any("NUL byte" in e for e in _errors(at)), _errors(at)
