"""Figure backgrounds as JPEG bytes, one per (image, stretch size), named so nobody can
guess the name from the image. No Streamlit here: `pages/_media.py` serves the bytes from
the server process's memory (Streamlit's media store), never from a folder on disk, so
they are private to the process, gone when it exits, and no other server can serve them.

The name is an HMAC of the image's sha1 and size under a secret made when the process
starts: it cannot be guessed from the image, nor reused by a later server.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from explorer.bounded_cache import ByteLRU
from explorer.views.figures import image_jpeg

_SECRET = secrets.token_bytes(32)  # per server process
MAX_JPEGS = 16  # encoded backgrounds kept (each <= 768 px a side: ~100 KB)
_JPEGS = ByteLRU(16 << 20, max_entries=MAX_JPEGS, sizeof=len)


def file_name(digest: str, size: tuple[int, int] | None) -> str:
    """`<32 hex>.jpg`: HMAC-SHA256(process secret, sha1 + size), truncated to 128 bits."""
    msg = f"{digest}:{size}".encode()
    return hmac.new(_SECRET, msg, hashlib.sha256).hexdigest()[:32] + ".jpg"


def jpeg_bytes(name: str, image, size: tuple[int, int] | None) -> bytes:
    """The JPEG of `image` (stretched to `size`, (W, H), if given), encoded once per
    `name` (`file_name`) and kept in a small LRU."""
    def encode() -> bytes:
        return image_jpeg(image if size is None else image.resize(size))

    return _JPEGS.get_or_compute(name, encode)
