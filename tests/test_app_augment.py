"""The Augmentation page (pages/augment.py) under Streamlit's AppTest, run through app.py
with its navigation and sidebar, as the server runs it."""
import io
from pathlib import Path

import pytest
from PIL import Image

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/augment.py"


pytestmark = pytest.mark.usefixtures("app_env")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page(PAGE).run()
    _ok(at)
    return at


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error] + [e.value for e in at.sidebar.error]
    assert not errors, errors


def _metrics(at) -> dict[str, int]:
    return {m.label: int(m.value) for m in at.metric}


def _table(at, column: str):
    """The first dataframe on the page that has `column`."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with column {column!r}")


def test_augmentation_page_samples_crops_and_matching():
    at = _page()
    titles = [s.value for s in at.subheader]
    assert titles[0].startswith("8 samples") and "Matching, re-run on each sample" in titles
    summary = _table(at, "crops tried")
    assert len(summary) == 8 and list(summary["sample"]) == list(range(8))
    m = _metrics(at)
    assert m["accepted"] + m["whole image"] == 1  # the inspected sample ends with exactly one kept crop
    crops = _table(at, "reason")
    assert len(crops) == sum(m[k] for k in ("whole image", "accepted", "aspect ratio", "empty",
                                            "no centre inside", "IoU below minimum"))
    matching = _table(at, "level before")
    g = len(matching) // 8
    assert g >= 1 and len(matching) == 8 * g
    assert sum(m[k] for k in ("earlier map (finer)", "same map", "later map (coarser)", "dropped")) == 8 * g

    # A new seed draws other samples; fewer samples, fewer rows.
    before = list(_table(at, "crops tried")["crop"])
    at.number_input(key="aug_seed").set_value(7).run()
    _ok(at)
    assert list(_table(at, "crops tried")["crop"]) != before
    at.slider(key="aug_n").set_value(3).run()
    _ok(at)
    assert len(_table(at, "crops tried")) == 3 and len(_table(at, "level before")) == 3 * g
    at.selectbox(key="aug_pick").set_value(2).run()
    _ok(at)


def test_without_zoom_and_crop_no_object_changes_map():
    """Colour and flip alone move no object to another map (the default-box grid is
    left-right symmetric), and the page says the crop is off."""
    at = _page()
    at.checkbox(key="aug_zoom").uncheck().run()
    at.checkbox(key="aug_crop").uncheck().run()
    _ok(at)
    summary = _table(at, "crops tried")
    assert set(summary["zoom out"]) == {"off"} and set(summary["crop"]) == {"off"}
    m = _metrics(at)
    n_rows = len(_table(at, "level before"))
    assert m["same map"] == n_rows and m["dropped"] == 0
    assert any("switched off" in i.value for i in at.info)


def test_augmentation_page_on_an_upload_without_boxes():
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.radio(key="image_source").set_value("Upload").run()
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (90, 140, 200)).save(buf, format="PNG")
    at.file_uploader(key="image_upload").set_value(("plain.png", buf.getvalue(), "image/png")).run()
    at.switch_page(PAGE).run()
    _ok(at)
    assert any("no ground-truth boxes" in i.value for i in at.info)
    assert _metrics(at)["whole image"] == 1 and _metrics(at)["accepted"] == 0
