"""The user's image and ground truth, kept on the server across a browser reload.

A reload opens a new Streamlit session, and session state starts empty. The sidebar
keeps what the user chose (the upload's bytes and name, or the sample's id, and the
GT table in use with its source) in an `InputStore` under an unguessable token
(`new_token`: 192 random bits, URL-safe), and puts the token in the page URL; a new
session that comes with a known token gets the same inputs back. An unknown, expired
or malformed token reads as None, so the app falls back to its default silently.

Memory only, per server process: a server restart forgets every entry (acceptable:
the user uploads again). The store is bounded, least recently used first out, by entry
count, by bytes (upload bytes + GT table) and by idle time, so a shared server cannot
be filled by many users or many reloads. One entry per token: the user's next change
replaces it. Thread-safe: sessions run in their own threads.

Anyone holding the URL (token) on this server gets that entry; the token is as private
as the link.
"""
from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from explorer.inputs.ground_truth import flag

# Query parameter of the page URL that holds the token.
TOKEN_PARAM = "inputs"
# Random bytes per token (secrets.token_urlsafe): 24 -> 32 URL-safe characters, 192 bits.
TOKEN_BYTES = 24
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
# Most GT rows kept per entry (the library's per-image limit, MAX_BOXES_PER_IMAGE).
MAX_GT_ROWS = 1000
# Where the GT rows of an entry came from: the image's own annotation, an annotation
# file (its name follows), boxes drawn on the Home page, edits typed in the table.
GT_SOURCES = ("image", "file", "drawn", "typed")


@dataclass(frozen=True)
class StoreLimits:
    """The bounds of one `InputStore` (per server process)."""

    max_entries: int = 64  # tokens kept; the least recently used goes first
    max_bytes: int = 256 << 20  # upload bytes + GT rows (as JSON), all entries together
    idle_s: float = 24 * 3600.0  # an entry unused this long is forgotten (an expired token)


@dataclass(frozen=True)
class KeptInputs:
    """What one browser tab was using: the image and its ground-truth table."""

    image_name: str  # upload: the file name; sample: the sample id ("procedural:..." or a file in samples/)
    upload: bytes | None  # the uploaded file's bytes; None for a built-in sample
    image_digest: str  # sha1 of the image's encoded bytes (LoadedImage.digest): the GT belongs to it
    gt_rows: tuple[dict, ...]  # GT table rows (label, x1..y2 original pixels, difficult, crowd), `plain_rows`
    gt_source: tuple[str, ...]  # e.g. ("file 000005.xml", "typed"); words from GT_SOURCES
    keep_difficult: bool = False  # the "Difficult objects are ground truth" box

    @property
    def is_upload(self) -> bool:
        return self.upload is not None

    def nbytes(self) -> int:
        """Bytes counted against the store's budget: the upload and the rows as JSON."""
        rows = len(json.dumps(list(self.gt_rows), default=str))
        return len(self.upload or b"") + rows + len(self.image_name) + 64


def new_token() -> str:
    """A fresh unguessable token for the page URL (32 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: object) -> bool:
    """Whether `value` has the shape of a token `new_token` makes (anything else is garbage)."""
    return isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def plain_rows(rows: list[dict]) -> tuple[dict, ...]:
    """GT table rows as plain Python (label text, coordinates float or None, flags bool),
    comparable and small: what the table held, without pandas' NaN and numpy types.

    Rows with no label and no coordinate (just added in the table) are left out.
    """

    out = []
    for row in rows:
        label = row.get("label")
        label = "" if label is None or (isinstance(label, float) and math.isnan(label)) else str(label)
        coords = {k: _number(row.get(k)) for k in ("x1", "y1", "x2", "y2")}
        if not label.strip() and all(v is None for v in coords.values()):
            continue
        out.append({"label": label, **coords, "difficult": flag(row.get("difficult")),
                    "crowd": flag(row.get("crowd"))})
    return tuple(out)


class InputStore:
    """Token -> KeptInputs, bounded (`StoreLimits`), least recently used out first.

    `clock` gives seconds (time.monotonic by default; tests pass their own).
    """

    def __init__(self, limits: StoreLimits = StoreLimits(), clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        # token -> (entry, last use, its bytes); in order of last use, oldest first
        self._entries: OrderedDict[str, tuple[KeptInputs, float, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held, as counted against `limits.max_bytes`."""
        return self._bytes

    def get(self, token: object) -> KeptInputs | None:
        """The entry of `token`, or None when the token is malformed, unknown or expired.
        A hit counts as a use (moves it to the back of the LRU, restarts its idle time)."""
        if not is_token(token):
            return None
        with self._lock:
            self._expire()
            hit = self._entries.get(token)
            if hit is None:
                return None
            self._entries[token] = (hit[0], self._clock(), hit[2])
            self._entries.move_to_end(token)
            return hit[0]

    def put(self, token: str, entry: KeptInputs) -> bool:
        """Keep `entry` under `token`, replacing what it held; evict least recently used
        entries until the bounds hold. Returns False (and keeps nothing for this token)
        when the entry alone is over the byte budget or has over MAX_GT_ROWS rows.
        Raises ValueError for a malformed token."""
        if not is_token(token):
            raise ValueError(f"not a session token: {str(token)[:40]!r} (make one with new_token())")
        with self._lock:
            self._drop(token)
            size = entry.nbytes()
            if size > self.limits.max_bytes or len(entry.gt_rows) > MAX_GT_ROWS:
                return False
            self._entries[token] = (entry, self._clock(), size)
            self._bytes += size
            self._expire()
            while len(self._entries) > self.limits.max_entries or self._bytes > self.limits.max_bytes:
                self._drop(next(iter(self._entries)))
            return True

    def drop(self, token: object) -> None:
        """Forget `token`'s entry (the user went back to the default: nothing to keep)."""
        if is_token(token):
            with self._lock:
                self._drop(token)

    def _drop(self, token: str) -> None:
        old = self._entries.pop(token, None)
        if old is not None:
            self._bytes -= old[2]

    def _expire(self) -> None:
        """Forget entries idle longer than limits.idle_s (oldest use first in the dict)."""
        now = self._clock()
        while self._entries:
            token, (_, used, _) = next(iter(self._entries.items()))
            if now - used <= self.limits.idle_s:
                break
            self._drop(token)


def describe_source(gt_source: tuple[str, ...]) -> str:
    """The GT source words in plain English: ("file a.xml", "typed") ->
    "annotation file a.xml, edited in the table"."""
    words = {"image": "the image's own boxes", "drawn": "boxes drawn on the Home page", "typed": "edited in the table"}
    parts = [f"annotation file {s[5:]}" if s.startswith("file ") else words.get(s, s) for s in gt_source]
    return ", ".join(parts) if parts else "none"
