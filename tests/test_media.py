"""pages/_media.py: figure backgrounds written once and served by Streamlit, with
names nobody can guess, a bounded folder, and the data URI where serving is off."""
import io
import re

import pytest
from PIL import Image
from streamlit import config

from pages import _media


@pytest.fixture
def photo():
    return Image.new("RGB", (1600, 900), (30, 140, 90))


def test_file_name_is_a_keyed_hash_not_the_digest():
    a = _media.file_name("a" * 40, None)
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", a)
    assert "a" * 8 not in a
    assert a == _media.file_name("a" * 40, None)
    assert a != _media.file_name("b" * 40, None) != _media.file_name("a" * 40, (300, 300))


def test_write_once_writes_a_small_jpeg_once(tmp_path, photo):
    path = _media.write_once(tmp_path, "x.jpg", photo, None)
    img = Image.open(io.BytesIO(path.read_bytes()))
    assert img.format == "JPEG" and max(img.size) == 768  # shrunk, aspect kept
    assert img.size == (768, 432)
    stat = path.stat()
    again = _media.write_once(tmp_path, "x.jpg", Image.new("RGB", (10, 10)), None)
    assert again == path and path.stat().st_size == stat.st_size  # not re-encoded
    stretched = _media.write_once(tmp_path, "y.jpg", photo, (300, 300))
    assert Image.open(stretched).size == (300, 300)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_folder_keeps_the_newest_files(tmp_path, photo):
    import os
    for n in range(5):
        p = _media.write_once(tmp_path, f"{n}.jpg", photo, (20, 20), keep=3)
        os.utime(p, (n, n))  # distinct mtimes: 0 oldest
    _media.write_once(tmp_path, "new.jpg", photo, (20, 20), keep=3)
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == ["3.jpg", "4.jpg", "new.jpg"]


def test_image_source_is_a_url_with_static_serving_and_a_data_uri_without(tmp_path, monkeypatch, photo):
    monkeypatch.setattr(_media, "STATIC_DIR", tmp_path / "img")
    before = config.get_option("server.enableStaticServing")
    try:
        config.set_option("server.enableStaticServing", True)
        url = _media.image_source("c" * 40, photo)
        assert url.startswith("app/static/img/") and len(url) < 60
        assert (tmp_path / "img" / url.rsplit("/", 1)[1]).is_file()
        (tmp_path / "img" / url.rsplit("/", 1)[1]).unlink()  # pruned by another session
        assert _media.image_source("c" * 40, photo) == url and (tmp_path / "img" / url.rsplit("/", 1)[1]).is_file()
        config.set_option("server.enableStaticServing", False)
        assert _media.image_source("c" * 40, photo).startswith("data:image/jpeg;base64,")
    finally:
        config.set_option("server.enableStaticServing", before)


def test_a_folder_that_cannot_be_written_falls_back_to_the_data_uri(tmp_path, monkeypatch, photo):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(_media, "STATIC_DIR", blocker / "img")
    before = config.get_option("server.enableStaticServing")
    try:
        config.set_option("server.enableStaticServing", True)
        assert _media.image_source("d" * 40, photo).startswith("data:image/jpeg;base64,")
    finally:
        config.set_option("server.enableStaticServing", before)


def test_the_shipped_config_serves_static_files():
    text = (_media.STATIC_DIR.parent.parent / ".streamlit" / "config.toml").read_text()
    assert re.search(r"^enableStaticServing = true$", text, re.M)
