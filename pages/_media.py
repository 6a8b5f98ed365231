"""Figure backgrounds sent to the browser once per page, not once per panel.

A plotly layout image carries its `source` in the figure's JSON: as a data URI, the
Per-scale figure held the same image six times (one per level), and every changed
figure re-sent it. `image_source` puts the JPEG in Streamlit's media store (the one
`st.image` uses: memory of this server process, served at `media/<id>.jpg`) and returns
its URL; the browser fetches it once and every panel points at it.

Why not `static/` (`server.enableStaticServing`): that folder is shared by every server
started from this checkout and outlives them, and Streamlit serves any file in it to
anyone, password or not (issue 20 #9: a file written by a loopback server was served by
a password-protected exposed one started later). The media store is private to the
process: a file exists only while a session of this server shows it (Streamlit drops
files no session refers to after each full run, and a session's files when it ends),
and nothing is left when the process exits. The id is a hash of the JPEG and its name,
an HMAC under a per-process secret (`explorer.media_files.file_name`), so it cannot be
guessed from the image. Without a Streamlit runtime the data URI is used, as before.
"""
from __future__ import annotations

import base64

from explorer import media_files
from explorer.media_files import file_name

MIME = "image/jpeg"
COORDINATES = "ssd-figure-background:"  # + file name: one media-store slot per background and session


def _media_manager():
    """This server's media file manager, or None outside a Streamlit runtime."""
    from streamlit import runtime

    return runtime.get_instance().media_file_mgr if runtime.exists() else None


def image_source(digest: str, image, size: tuple[int, int] | None = None) -> str:
    """A `source` for a plotly layout image: `media/<id>.jpg` (relative: it resolves
    under the app's base URL from any page), served from this process's memory, or a
    JPEG data URI outside a Streamlit runtime. Keyed by the image's sha1 (`digest`) and
    the stretch `size` ((W, H) pixels) if given.

    Not cached itself: each run registers the file for its session again, so the store
    keeps it exactly as long as a session shows it."""
    name = file_name(digest, size)
    data = media_files.jpeg_bytes(name, image, size)
    manager = _media_manager()
    if manager is None:
        return f"data:{MIME};base64," + base64.b64encode(data).decode("ascii")
    return manager.add(data, MIME, COORDINATES + name, file_name=name).lstrip("/")
