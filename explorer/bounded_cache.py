"""A least-recently-used cache bounded by bytes as well as by entries.

Streamlit's caches are bounded only by their number of entries, so one huge image
(a 127 KB PNG of 40 megapixels decodes to 160 MB) multiplied by every cached slider
position fills the server's memory. The per-image results of the explorer pages live
here instead: each entry's size is measured (`nbytes`: tensor storage, numpy arrays,
PIL pixels, bytes and strings, through dataclasses and containers), and the least
recently used entries are dropped until the total is under `max_bytes`. A single
result larger than the whole budget is returned but never kept.

Process-wide and thread-safe (Streamlit serves every session from one process).
No streamlit import.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from typing import Callable, Hashable

_PIL_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I": 4, "F": 4}  # RGB, RGBA, ...: 4 (PIL pads RGB)


def nbytes(obj, _seen: set | None = None) -> int:
    """Bytes `obj` keeps alive, counted once per object: tensor storages (a view counts
    its whole storage), numpy arrays, PIL images (width x height x bytes per pixel),
    bytes/str, and the contents of dataclasses, dicts, lists, tuples and sets; any other
    object counts its `sys.getsizeof`. An estimate from below for exotic objects, exact
    for the buffers that dominate (pixels and tensors)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or obj is None:
        return 0
    seen.add(id(obj))
    kind = type(obj).__module__.split(".", 1)[0]
    if kind == "torch" and hasattr(obj, "untyped_storage"):
        storage = obj.untyped_storage()
        key = ("storage", storage.data_ptr())
        if key in seen:
            return 0
        seen.add(key)
        return int(storage.nbytes())
    if kind == "numpy" and hasattr(obj, "nbytes"):
        return int(obj.nbytes)
    if kind == "PIL" and hasattr(obj, "getbands") and hasattr(obj, "size"):
        w, h = obj.size
        return int(w * h * _PIL_BYTES_PER_PIXEL.get(obj.mode, 4))
    if isinstance(obj, (bytes, bytearray, str)):
        return sys.getsizeof(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sys.getsizeof(obj) + sum(nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(nbytes(k, seen) + nbytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sys.getsizeof(obj) + sum(nbytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sys.getsizeof(obj) + nbytes(vars(obj), seen)
    return sys.getsizeof(obj)


class ByteLRU:
    """LRU cache of at most `max_entries` entries and `max_bytes` measured bytes.

    `get_or_compute(key, compute)` returns the cached value or computes, measures and
    keeps it (evicting least recently used entries). Two sessions asking for the same
    missing key at once may both compute it; the result is the same."""

    def __init__(self, max_bytes: int, max_entries: int, sizeof: Callable[[object], int] = nbytes):
        if max_bytes <= 0 or max_entries <= 0:
            raise ValueError(f"max_bytes and max_entries must be > 0, got {max_bytes}, {max_entries}")
        self.max_bytes = int(max_bytes)  # budget of all entries together
        self.max_entries = int(max_entries)  # most entries kept
        self._sizeof = sizeof
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()  # key -> (value, bytes)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def values(self) -> list:
        with self._lock:
            return [value for value, _ in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_compute(self, key: Hashable, compute: Callable[[], object]):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = compute()
        size = self._sizeof(value)
        if size > self.max_bytes:
            return value  # larger than the whole budget: used once, never kept
        with self._lock:
            self._entries[key] = (value, size)
            self._entries.move_to_end(key)
            total = sum(s for _, s in self._entries.values())
            while self._entries and (total > self.max_bytes or len(self._entries) > self.max_entries):
                _, (_, dropped) = self._entries.popitem(last=False)
                total -= dropped
        return value
