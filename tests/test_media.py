"""pages/_media.py and explorer/media_files.py: figure backgrounds served from the server
process's memory (Streamlit's media store) under names nobody can guess, never from a
folder that other servers share (issue 20 #9), and the data URI outside a runtime."""
import io
import json
import re
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from explorer import media_files
from pages import _media

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def photo():
    return Image.new("RGB", (1600, 900), (30, 140, 90))


def test_file_name_is_a_keyed_hash_not_the_digest():
    a = _media.file_name("a" * 40, None)
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", a)
    assert "a" * 32 not in a
    assert a == _media.file_name("a" * 40, None)
    assert a != _media.file_name("b" * 40, None) != _media.file_name("a" * 40, (300, 300))


def test_jpeg_bytes_are_small_encoded_once_and_stretched_on_request(photo):
    data = media_files.jpeg_bytes("x.jpg", photo, None)
    assert Image.open(io.BytesIO(data)).size == (768, 432) and len(data) < 100_000
    assert media_files.jpeg_bytes("x.jpg", Image.new("RGB", (10, 10)), None) is data  # by name: not again
    assert Image.open(io.BytesIO(media_files.jpeg_bytes("y.jpg", photo, (300, 300)))).size == (300, 300)


def test_outside_a_streamlit_runtime_the_figure_carries_the_image(photo):
    assert _media.image_source("d" * 40, photo).startswith("data:image/jpeg;base64,")


def test_static_serving_is_off_so_no_shared_folder_is_served():
    """`static/` beside app.py is served to anyone by every server started here."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableStaticServing"] is False


def _image_sources(at) -> list[str]:
    out = []
    for node in at.get("plotly_chart"):
        layout = json.loads(node.proto.spec).get("layout", {})
        out += [im["source"] for im in layout.get("images", [])]
    return out


@pytest.mark.usefixtures("app_env")
def test_the_home_figure_background_is_served_from_this_servers_memory(media_stores):
    from streamlit.testing.v1 import AppTest

    static = ROOT / "static"
    before = sorted(static.rglob("*")) if static.exists() else []
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    sources = _image_sources(at)
    # media/<id>.jpg on a server (AppTest's store names its endpoint /mock/media)
    assert sources and all(re.fullmatch(r"(mock/)?media/[0-9a-f]{32}\.jpg", s) for s in sources), sources
    served = media_stores[-1].get_file(sources[0].rsplit("/", 1)[1].removesuffix(".jpg"))
    assert served.mimetype == "image/jpeg" and Image.open(io.BytesIO(served.content)).format == "JPEG"
    assert (sorted(static.rglob("*")) if static.exists() else []) == before  # nothing written to disk
    at.run()  # a rerun keeps it while the page shows it
    media_stores[-1].get_file(sources[0].rsplit("/", 1)[1].removesuffix(".jpg"))
