"""The sidebar's ground-truth editor (`pages/_ground_truth.py::sidebar_editor`) headless, through
Streamlit's AppTest on a script that draws only it: user text in messages is shown as
plain text, a size mismatch is told, difficult and crowd rows are shown but not matched,
images sharing a COCO file name are each reachable, and the VOC XML / COCO JSON downloads
read back as the same boxes.

Then the whole app (`app.py`): the image and GT survive a reload (a fresh AppTest with the
same `?inputs=` token), a page change that drops the URL's query gets the token back, the
user's next change replaces the kept entry, and a bad token is ignored."""
import hashlib
import json
from pathlib import Path

import pytest
from tests.app_helpers import gt_uploader, ws_of

st_testing = pytest.importorskip("streamlit.testing.v1")


def _editor_script():
    import streamlit as st
    from PIL import Image

    from explorer.inputs import samples as samples_mod
    from pages._ground_truth import sidebar_editor

    img = Image.new("RGB", (512, 288), (90, 120, 200))  # the size of mmdetection's color.jpg
    image = samples_mod.LoadedImage(image=img, data=b"x", name="color.jpg", gt_rows=[], digest="d0")
    gt = sidebar_editor(image, ["background", "bus", "car", "chair"])
    st.session_state["_gt_result"] = (gt.names, gt.boxes_xyxy.tolist(), gt.ignored)


def _run():
    at = st_testing.AppTest.from_function(_editor_script, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at, name, data, mime="application/json"):
    gt_uploader(at).set_value((name, data, mime)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown_texts(at) -> list[str]:
    """What the page renders as markdown (errors, warnings, captions, markdown)."""
    kinds = (at.sidebar.error, at.sidebar.warning, at.sidebar.caption, at.sidebar.markdown, at.error, at.markdown)
    return [e.value for kind in kinds for e in kind]


def test_label_with_markdown_image_is_shown_as_plain_text():
    label = "![x](http://127.0.0.1:1/pixel.png?leak=1)"
    voc = (f"<annotation><object><name>{label}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
           f"<ymax>9</ymax></bndbox></object></annotation>").encode()
    at = _upload(_run(), "evil.xml", voc, "text/xml")
    plain = [c.value for c in at.sidebar.code]
    assert any("row 1" in c and label in c for c in plain)  # the reason, with the label as typed
    assert not any("pixel.png" in m for m in _markdown_texts(at))  # never given to markdown


def test_refused_file_shown_as_plain_text():
    name = "![y](http://127.0.0.1:1/p.png).json"
    at = _upload(_run(), name, b"[" * 100_000 + b"]" * 100_000)
    assert any(name in c and "nested too deeply" in c for c in [c.value for c in at.sidebar.code])
    assert any("refused" in e.value for e in at.sidebar.error)
    assert not any("p.png" in m for m in _markdown_texts(at))


def test_size_mismatch_told_and_difficult_not_matched(peer_data):
    xml = (peer_data / "mmdet" / "VOC2007" / "Annotations" / "000005.xml").read_bytes()  # 500x375, 5 chairs
    at = _upload(_run(), "000005.xml", xml, "text/xml")
    notes = "\n".join(c.value for c in at.sidebar.code)
    assert "<size> says 500x375 but the image is 512x288" in notes and "not rescaled" in notes
    assert "2 object(s) marked difficult" in notes
    assert "4 box(es) sticking out are clipped to the image and 0 outside it are skipped" in notes
    names, boxes, ignored = at.session_state["_gt_result"]
    assert len(names) == 3 and max(b[3] for b in boxes) == 288  # clipped to the image, as the note says
    assert len(ignored) == 2 and all(r["difficult"] for r in ignored)
    at.checkbox(key="gt_keep_difficult").check().run()
    names2, _, ignored2 = at.session_state["_gt_result"]
    assert len(names2) == len(names) + len(ignored) and ignored2 == []


def test_coco_images_sharing_a_file_name_are_picked(peer_data):
    data = (peer_data / "mmdet" / "coco_sample_color.json").read_bytes()
    at = _upload(_run(), "coco_sample_color.json", data)
    names, _, ignored = at.session_state["_gt_result"]
    assert names == ["bus"] and ignored[0]["crowd"] and ignored[0]["label"] == "car"  # image 0: crowd greyed out
    pick = at.sidebar.selectbox[[s.label for s in at.sidebar.selectbox].index("COCO image id")]
    assert pick.options == ["0", "1", "2", "3"]
    pick.set_value(3).run()
    names, boxes, _ = at.session_state["_gt_result"]
    assert names == ["bus", "bus"] and boxes[1] == pytest.approx([0, 0, 1, 0.1])
    at.sidebar.selectbox[[s.label for s in at.sidebar.selectbox].index("COCO image id")].set_value(1).run()
    assert not at.exception
    refused = "\n".join(c.value for c in at.sidebar.code)
    assert "unknown category_id 3" in refused


def test_many_boxes_refused_with_the_limit():
    doc = {"images": [{"id": 1, "file_name": "color.jpg"}], "categories": [{"id": 1, "name": "bus"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}] * 5_000}
    at = _upload(_run(), "many.json", json.dumps(doc).encode())
    assert any("5,000 objects for one image, over the limit of 1,000" in c.value for c in at.sidebar.code)


# ---------------------------------------------------------------- downloads
def _download(at, stores, label: str) -> bytes:
    """The bytes the download button `label` serves after the last run."""
    button = next(b for b in at.sidebar.download_button if b.label == label)
    return stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content


def test_gt_downloads_read_back_as_the_same_boxes(peer_data, media_stores, tmp_path):
    from pycocotools.coco import COCO

    from explorer.inputs.ground_truth import parse_coco_json, parse_voc_xml

    xml = (peer_data / "mmdet" / "VOC2007" / "Annotations" / "000005.xml").read_bytes()  # 500x375, 5 chairs
    at = _upload(_run(), "000005.xml", xml, "text/xml")
    names, boxes, ignored = at.session_state["_gt_result"]
    shown = sorted([(n, b) for n, b in zip(names, boxes)] +
                   [(r["label"], [r["x1"], r["y1"], r["x2"], r["y2"]]) for r in ignored])
    voc = _download(at, media_stores, "Ground truth (VOC XML)")
    back = parse_voc_xml(voc, "gt.xml", image_hw=(288, 512)).rows
    assert sorted((r["label"], [r["x1"], r["y1"], r["x2"], r["y2"]]) for r in back) == shown
    assert sum(r["difficult"] for r in back) == 2  # the two difficult chairs stay difficult
    coco = _download(at, media_stores, "Ground truth (COCO JSON)")
    back = parse_coco_json(coco, image_name="color.jpg").rows
    assert sorted((r["label"], [r["x1"], r["y1"], r["x2"], r["y2"]]) for r in back) == shown
    (tmp_path / "gt.json").write_bytes(coco)
    ref = COCO(str(tmp_path / "gt.json"))
    assert ref.imgs[1]["file_name"] == "color.jpg" and (ref.imgs[1]["height"], ref.imgs[1]["width"]) == (288, 512)
    theirs = sorted((ref.cats[a["category_id"]]["name"], [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                     a["bbox"][1] + a["bbox"][3]]) for a in ref.loadAnns(ref.getAnnIds(imgIds=[1])))
    assert theirs == shown
    assert sum(a["iscrowd"] for a in ref.loadAnns(ref.getAnnIds())) == 2  # difficult -> iscrowd, pycocotools ignores


# ---------------------------------------------------------------- kept across a reload
APP = str(Path(__file__).resolve().parent.parent / "app.py")
VOC_GT = (b"<annotation><size><width>640</width><height>427</height><depth>3</depth></size>"
          b"<object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>200</xmax>"
          b"<ymax>300</ymax></bndbox></object><object><name>car</name><difficult>1</difficult><bndbox><xmin>301"
          b"</xmin><ymin>101</ymin><xmax>600</xmax><ymax>400</ymax></bndbox></object></annotation>")


def _app(query: dict | None = None):
    at = st_testing.AppTest.from_file(APP, default_timeout=120)
    at.query_params = dict(query or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ctx(at):
    from pages._ui import CTX_KEY

    return at.session_state[CTX_KEY]


def _photo_with_gt(peer_data):
    """The app after the user uploaded mmdetection's demo.jpg and a VOC file for it."""
    at = _app()
    at.radio(key="image_source").set_value("Upload").run()
    data = (peer_data / "mmdet" / "demo.jpg").read_bytes()
    at.file_uploader(key="image_upload").set_value(("demo.jpg", data, "image/jpeg")).run()
    _upload(at, "demo_gt.xml", VOC_GT, "text/xml")
    return at, data


@pytest.mark.usefixtures("app_env")
def test_reload_keeps_the_upload_and_its_gt(peer_data):
    from pages import _sidebar

    at, data = _photo_with_gt(peer_data)
    token = at.query_params.get("inputs")
    assert token and len(token) == 32 and _sidebar.KEPT.get(token).image_name == "demo.jpg"
    before = _ctx(at)
    assert before.gt.names == ["dog"] and before.gt.ignored[0]["label"] == "car"  # difficult: shown, not matched

    again = _app({"inputs": token})  # a reload: a new session, the same URL
    ctx = _ctx(again)
    assert ctx.image.name == "demo.jpg" and ctx.image.digest == hashlib.sha1(data).hexdigest()
    assert ctx.gt.names == ["dog"] and ctx.gt.boxes_xyxy.tolist() == before.gt.boxes_xyxy.tolist() == \
        [[10.0, 20.0, 200.0, 300.0]]
    assert ctx.gt.ignored == before.gt.ignored
    assert again.radio(key="image_source").value == "Upload"
    captions = " ".join(c.value for c in again.sidebar.caption).replace("\\", "").replace("\u2060", "")
    assert "Kept from before the reload: demo.jpg" in captions and "annotation file demo_gt.xml" in captions
    assert again.query_params.get("inputs") == token  # the URL keeps the same token
    again.checkbox(key="gt_keep_difficult").check().run()  # a change in the new session is kept too,
    mine = again.query_params.get("inputs")  # under its own token: the link it came with stays a snapshot
    assert mine != token and _ctx(_app({"inputs": mine})).gt.names == ["dog", "car"]
    assert _ctx(_app({"inputs": token})).gt.names == ["dog"]  # issue 20 item 8


@pytest.mark.usefixtures("app_env")
def test_page_change_that_drops_the_query_gets_the_token_back(peer_data):
    at, _ = _photo_with_gt(peer_data)
    token = at.query_params["inputs"]
    at.query_params = {}  # the navigation menu opens the next page without the URL's query
    at.switch_page("pages/architecture.py").run()
    assert not at.exception and at.query_params.get("inputs") == token
    assert _ctx(at).image.name == "demo.jpg"


def _other_sample() -> str:
    from explorer.inputs import samples as samples_mod

    return next(s.sample_id for s in samples_mod.list_samples() if s.sample_id != "cat_and_dog.png")


@pytest.mark.usefixtures("app_env")
def test_gt_follows_the_image_sample_then_back_to_the_upload(peer_data):
    """Issue 19 item 1: the upload's annotation file never applies to a sample; back on the
    upload, its boxes (and its file) are back. Failed before: the sample showed the file's box."""
    from pages import _sidebar

    at, data = _photo_with_gt(peer_data)
    token = at.query_params["inputs"]
    at.radio(key="image_source").set_value("Sample scene").run()
    at.sidebar.selectbox(key="sample_id").set_value(_other_sample()).run()
    shown = _ctx(at)
    own = shown.image.gt_rows
    assert shown.image.name == _other_sample() and len(shown.gt) == len(own)  # the sample's own boxes
    assert ws_of(at).gt.source == (("image",) if own else ())
    # Its own boxes need nothing kept: the link names the sample; the upload's entry is untouched.
    assert "inputs" not in at.query_params and at.query_params["sample"] == _other_sample()
    assert _sidebar.KEPT.get(token).image_name == "demo.jpg"
    at.radio(key="image_source").set_value("Upload").run()
    back = _ctx(at)
    assert back.image.digest == hashlib.sha1(data).hexdigest() and back.gt.names == ["dog"]
    reloaded = _ctx(_app({"sample": _other_sample()}))  # a sample link works on any server
    assert reloaded.image.name == _other_sample()


@pytest.mark.usefixtures("app_env")
def test_default_sample_keeps_nothing_and_a_cleared_gt_is_kept():
    from pages import _sidebar

    at = _app()
    assert "inputs" not in at.query_params  # the default sample with its own boxes: nothing to keep
    at.button(key="gt_clear").click().run()  # its boxes cleared: kept, under a token
    token = at.query_params["inputs"]
    assert _sidebar.KEPT.get(token).gt_rows == () and _sidebar.KEPT.get(token).image_name == "cat_and_dog.png"
    reloaded = _ctx(_app({"inputs": token}))
    assert reloaded.image.name == "cat_and_dog.png" and len(reloaded.gt) == 0
    at.sidebar.selectbox(key="sample_id").set_value(_other_sample()).run()  # another sample, its own boxes
    assert "inputs" not in at.query_params and _sidebar.KEPT.get(token).gt_rows == ()  # a link made before works
    _sidebar.KEPT.drop(token)
    expired = _app({"inputs": token})  # an expired token says so and shows the sample
    assert _ctx(expired).image.name == "cat_and_dog.png"
    assert any("no longer kept" in w.value for w in expired.sidebar.warning)


@pytest.mark.usefixtures("app_env")
@pytest.mark.parametrize("token", ["unknown", "expired", "garbage", "long", "empty"])
def test_unknown_expired_or_garbage_token_shows_the_default_sample(token, monkeypatch):
    from explorer.inputs import session_store as keep_mod
    from pages import _sidebar

    now = [0.0]
    store = keep_mod.InputStore(keep_mod.StoreLimits(idle_s=60), clock=lambda: now[0])
    monkeypatch.setattr(_sidebar, "KEPT", store)
    value = {"unknown": keep_mod.new_token(), "expired": keep_mod.new_token(), "garbage": "../../etc/passwd<b>",
             "long": "A" * 5000, "empty": ""}[token]
    if token == "expired":  # kept once, then idle for longer than the store keeps it
        store.put(value, keep_mod.KeptInputs("x.png", b"\x89PNG", "d", ({"label": "dog", "x1": 1.0, "y1": 1.0,
                  "x2": 5.0, "y2": 5.0, "difficult": False, "crowd": False},), ("typed",)))
        now[0] = 61.0
    at = _app({"inputs": value})
    ctx = _ctx(at)
    assert ctx.image.name == "cat_and_dog.png" and ctx.gt.names == ["cat", "dog"]
    assert not at.sidebar.error and "inputs" not in at.query_params and len(store) == 0


def test_a_refused_file_never_leaves_the_previous_files_rows_in_use():
    """Issue 20 item 14: after a good file, a refused one left the good file's rows in use, silently."""
    good = (b"<annotation><object><name>car</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>60</xmax>"
            b"<ymax>70</ymax></bndbox></object></annotation>")
    at = _upload(_run(), "good.xml", good, "text/xml")
    assert at.session_state["_gt_result"][0] == ["car"]
    at = _upload(at, "bad.xml", b"<annotation><object>", "text/xml")
    assert at.session_state["_gt_result"][0] == []  # the image's own GT (none), not good.xml's car
    assert any("bad.xml" in c.value and "no longer used" in c.value for c in at.code)
