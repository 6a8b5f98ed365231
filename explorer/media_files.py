"""Figure backgrounds as files: one JPEG per (image, stretch size), named so nobody can
guess the name from the image, in a folder that keeps only the newest. No Streamlit
here: `pages/_media.py` decides where the folder is served from.

The name is an HMAC of the image's sha1 and size under a secret made when the process
starts: it cannot be guessed from the image, nor reused by a later server.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from explorer.paths import keep_newest
from explorer.views.figures import image_jpeg
from ssd.io import atomic_write

_SECRET = secrets.token_bytes(32)  # per server process
_LOCK = threading.Lock()


def file_name(digest: str, size: tuple[int, int] | None) -> str:
    """`<32 hex>.jpg`: HMAC-SHA256(process secret, sha1 + size), truncated to 128 bits."""
    msg = f"{digest}:{size}".encode()
    return hmac.new(_SECRET, msg, hashlib.sha256).hexdigest()[:32] + ".jpg"


def write_once(folder: Path, name: str, image, size: tuple[int, int] | None, keep: int) -> Path:
    """The JPEG of `image` (stretched to `size`, (W, H), if given) at `folder/name`,
    written atomically if absent (`ssd.io.atomic_write`); older files beyond `keep`
    are removed."""
    path = folder / name
    with _LOCK:
        if path.is_file():
            os.utime(path)  # recently used: pruned last
            return path
        img = image if size is None else image.resize(size)
        atomic_write(path, lambda f: f.write(image_jpeg(img)))
        keep_newest(folder, keep, (".jpg",))
    return path
