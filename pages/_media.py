"""Figure backgrounds sent to the browser once per page, not once per panel.

A plotly layout image carries its `source` in the figure's JSON: as a data URI, the
Per-scale figure held the same image six times (one per level), and every changed
figure re-sent it. With Streamlit's static serving on (`server.enableStaticServing`,
.streamlit/config.toml), `image_source` writes the JPEG once to `static/img/` beside
app.py and returns its URL; the browser fetches it once and every panel points at it.

The file name is an HMAC of the image's sha1 and size under a secret made when the
server starts (`explorer.media_files`): a name cannot be guessed from the image, nor
reused by a later server. Static files are served without the app's password gate, so
the name is the only key (128 bits). At most `MAX_FILES` files are kept (oldest removed
first). Without static
serving (or where the folder cannot be written) the data URI is used, as before.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from explorer import media_files
from explorer.media_files import file_name
from explorer.views.figures import image_data_uri

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "img"  # served at app/static/img/
URL_PREFIX = "app/static/img/"  # relative: resolves under the app's base URL from any page
MAX_FILES = 64  # JPEGs of at most 768 px a side: a few MB in all


def write_once(folder: Path, name: str, image, size: tuple[int, int] | None, keep: int = MAX_FILES) -> Path:
    """`explorer.media_files.write_once`, keeping `MAX_FILES` by default."""
    return media_files.write_once(folder, name, image, size, keep)


@st.cache_data(show_spinner=False, max_entries=8)
def _data_uri(digest: str, _image, size: tuple[int, int] | None) -> str:
    return image_data_uri(_image if size is None else _image.resize(size))


def image_source(digest: str, image, size: tuple[int, int] | None = None) -> str:
    """A `source` for a plotly layout image: a URL served by Streamlit's static serving,
    or a JPEG data URI when that is off or the folder cannot be written. Keyed by the
    image's sha1 (`digest`) and the stretch `size` ((W, H) pixels) if given.

    Not cached itself: the file is checked on every call (one stat), so a file pruned by
    other sessions is written again rather than left as a broken link."""
    if st.get_option("server.enableStaticServing"):
        try:
            return URL_PREFIX + write_once(STATIC_DIR, file_name(digest, size), image, size).name
        except OSError:
            pass  # a read-only install: the figure carries the image itself
    return _data_uri(digest, image, size)
