"""The sidebar's ground-truth editor (`pages/_sidebar.py::_gt_editor`) headless, through
Streamlit's AppTest on a script that draws only it: user text in messages is shown as
plain text, a size mismatch is told, difficult and crowd rows are shown but not matched,
and images sharing a COCO file name are each reachable."""
import json

import pytest

st_testing = pytest.importorskip("streamlit.testing.v1")


def _editor_script():
    import streamlit as st
    from PIL import Image

    from explorer.inputs import samples as samples_mod
    from pages._sidebar import _gt_editor

    img = Image.new("RGB", (512, 288), (90, 120, 200))  # the size of mmdetection's color.jpg
    image = samples_mod.LoadedImage(image=img, data=b"x", name="color.jpg", gt_rows=[], digest="d0")
    gt = _gt_editor(image, ["background", "bus", "car", "chair"])
    st.session_state["_gt_result"] = (gt.names, gt.boxes_xyxy.tolist(), gt.ignored)


def _run():
    at = st_testing.AppTest.from_function(_editor_script, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at, name, data, mime="application/json"):
    at.file_uploader(key="gt_file").set_value((name, data, mime)).run()
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
