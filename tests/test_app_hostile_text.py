"""Issue 20, item 1: user and file text is never markup, on any page.

Hostile text (a Markdown image and link, LaTeX, `:red[]`, an `<a href>`) goes into every
input: the uploaded image's file name, a model's class names and its run folder name, a
VOC `<name>`, COCO category and file names, typed paths and the run name. Every element
Streamlit renders as Markdown (bodies, labels, help, radio options, progress text) and
every plotly figure's JSON is then read back: the hostile text appears only escaped.
"""
import io
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from explorer.text import md
from tests.app_helpers import gt_uploader, ws_of

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest
APP = str(Path(__file__).resolve().parent.parent / "app.py")

IMG = "![x](http://127.0.0.1:1/P1.png)"
HOSTILE = f"{IMG} [l](http://127.0.0.1:1/l) $x^2$ :red[r] <a href='http://127.0.0.1:1/a'>a</a>"
RUN_NAME = "[r](x.png) $y$ :red[q]"  # a folder name: no slash
RAW_MARKDOWN = ("![x](", "[l](", "[r](", "$x^2$", "$y$", ":red[", "<a href")
MARKDOWN_TYPES = {"markdown", "alert", "heading", "metric", "expandable", "tab", "progress", "toast"}
MARKDOWN_FIELDS = ("body", "label", "help", "text", "caption")
PAGES = ["pages/home.py", "pages/architecture.py", "pages/default_boxes.py", "pages/dataset.py",
         "pages/matching.py", "pages/per_scale.py", "pages/nms.py", "pages/trace.py", "pages/augment.py",
         "pages/evaluation.py", "pages/training.py"]


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _markdown_sources(at) -> list[str]:
    """Every string of the page that Streamlit renders as Markdown (st.code, st.text and
    tables excluded: they show text as it is)."""
    out = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None or node.type in ("code", "text", "arrow_data_frame", "json", "plotly_chart"):
            continue
        for field in MARKDOWN_FIELDS:
            if field in getattr(proto, "DESCRIPTOR").fields_by_name:
                out.append(str(getattr(proto, field)))
        if node.type == "radio":
            out += list(proto.options)
    return out


def _figure_texts(at) -> list[str]:
    return [json.dumps(json.loads(node.proto.spec)) for node in _nodes(at._tree)
            if node.type == "plotly_chart" and getattr(node, "proto", None) is not None]


def _assert_plain(at, where: str) -> None:
    assert not at.exception, (where, [e.value for e in at.exception])
    for text in _markdown_sources(at):
        bad = [raw for raw in RAW_MARKDOWN if re.search(r"(?<!\\)" + re.escape(raw), text)]
        assert not bad, (where, bad, text)
    for spec in _figure_texts(at):
        assert "<a href" not in spec and "<img" not in spec, where


@pytest.fixture
def hostile_env(tmp_path, monkeypatch, app_navigation):
    """A runs folder with a run whose folder name and class names are hostile, and the
    data root inside tmp_path."""
    from explorer.evaluation.spec import DatasetSpec, EvalSpec, eval_key
    from ssd.io import write_json_atomic
    from ssd.training import checkpoint, runlog
    from ssd.models import build

    runs = tmp_path / "runs"
    best = runs / RUN_NAME / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    torch.manual_seed(0)
    checkpoint.save(best, build("compact256", num_classes=3).eval(), ["background", HOSTILE, "cat"])
    runlog.update_status(best.parent.parent, state="failed", message=f"Annotations/a.xml: unknown class {HOSTILE}")
    spec = EvalSpec(str(best), DatasetSpec("procedural", seed=1, num_images=2))
    ev = runs / "evaluations" / eval_key(spec)
    write_json_atomic(ev / runlog.SPEC_FILE, {"key": ev.name, "spec": spec.to_dict(), "created_at": 1.0})
    runlog.update_status(ev, state="failed", pid=None, progress=0.0, message=f"no class {HOSTILE}")
    monkeypatch.setenv("SSD_RUNS_DIR", str(runs))
    monkeypatch.setenv("SSD_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")
    (tmp_path / "data").mkdir()
    return best


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), 90).save(buf, format="PNG")
    return buf.getvalue()


def _voc(name: str) -> bytes:
    return (f"<annotation><object><name>{name.replace('<', '&lt;').replace('>', '&gt;')}</name><bndbox>"
            "<xmin>10</xmin><ymin>10</ymin><xmax>60</xmax><ymax>50</ymax></bndbox></object></annotation>").encode()


def _coco(name: str) -> bytes:
    return json.dumps({"images": [{"id": 1, "file_name": f"{name}.jpg", "width": 100, "height": 80}],
                       "categories": [{"id": 1, "name": name}],
                       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 30],
                                        "iscrowd": 0, "area": 1200}]}).encode()


def test_hostile_text_is_plain_on_every_page(hostile_env):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.session_state["model_choice"] = str(hostile_env)
    at.run()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value((f"{IMG}.png", _png(), "image/png")).run()
    gt_uploader(at).set_value((f"{IMG}.xml", _voc(HOSTILE), "text/xml")).run()
    _assert_plain(at, "sidebar")
    assert ws_of(at).gt.rows[0]["label"] == HOSTILE  # the hostile class is in use
    for page in PAGES:
        at.switch_page(page).run()
        _assert_plain(at, page)
        if page in ("pages/home.py", "pages/evaluation.py", "pages/training.py"):  # shown, escaped
            assert any(md(HOSTILE) in t or md(IMG) in t for t in _markdown_sources(at)), page
    at.switch_page("pages/dataset.py").run()
    at.radio(key="ds_kind").set_value("coco upload").run()
    at.file_uploader(key="ds_upload").set_value((f"{IMG}.json", _coco(HOSTILE), "application/json")).run()
    _assert_plain(at, "dataset upload")
    for kind in ("voc", "coco"):
        at.radio(key="ds_kind").set_value(kind).run()
        at.text_input(key=f"ds_path_{kind}").input(f"/tmp/{HOSTILE}").run()
        _assert_plain(at, f"dataset {kind} path")
        assert at.error, kind
    at.switch_page("pages/training.py").run()
    at.radio(key="train_dataset").set_value("voc").run()
    at.text_input(key="train_data_root").input(f"/tmp/{HOSTILE}")
    at.text_input(key="train_name").input(RUN_NAME)
    at.button(key="train_launch_button").click().run()
    _assert_plain(at, "training launch")
    assert any("Not launched" in e.value for e in at.error)
