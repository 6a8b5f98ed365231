"""Figure backgrounds sent to the browser once per page, not once per panel.

A plotly layout image carries its `source` in the figure's JSON: as a data URI, the
Per-scale figure held the same image six times (one per level), and every changed
figure re-sent it. With Streamlit's static serving on (`server.enableStaticServing`,
.streamlit/config.toml), `image_source` writes the JPEG once to `static/img/` beside
app.py and returns its URL; the browser fetches it once and every panel points at it.

The file name is an HMAC of the image's sha1 and size under a secret made when the
server starts: a name cannot be guessed from the image, nor reused by a later server.
Static files are served without the app's password gate, so the name is the only key
(128 bits). At most `MAX_FILES` files are kept (oldest removed first). Without static
serving (or where the folder cannot be written) the data URI is used, as before.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

import streamlit as st

from explorer.views.figures import image_data_uri, image_jpeg

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "img"  # served at app/static/img/
URL_PREFIX = "app/static/img/"  # relative: resolves under the app's base URL from any page
MAX_FILES = 64  # JPEGs of at most 768 px a side: a few MB in all
_SECRET = secrets.token_bytes(32)  # per server process
_LOCK = threading.Lock()


def file_name(digest: str, size: tuple[int, int] | None) -> str:
    """`<32 hex>.jpg`: HMAC-SHA256(server secret, sha1 + size), truncated to 128 bits."""
    msg = f"{digest}:{size}".encode()
    return hmac.new(_SECRET, msg, hashlib.sha256).hexdigest()[:32] + ".jpg"


def _prune(folder: Path, keep: int) -> None:
    files = sorted(folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
    for old in files[:max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)


def write_once(folder: Path, name: str, image, size: tuple[int, int] | None, keep: int = MAX_FILES) -> Path:
    """The JPEG of `image` (stretched to `size`) at `folder/name`, written atomically if
    absent; older files beyond `keep` are removed."""
    path = folder / name
    with _LOCK:
        if path.is_file():
            os.utime(path)  # recently used: pruned last
            return path
        folder.mkdir(parents=True, exist_ok=True)
        img = image if size is None else image.resize(size)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(image_jpeg(img))
        os.replace(tmp, path)
        _prune(folder, keep)
    return path


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
