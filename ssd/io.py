"""The one atomic write of the project: every whole-file write (JSON, checkpoints,
annotation files, generated images and split lists, counters) goes through
`atomic_write`: a temp file in the same folder is filled, flushed, fsynced and
`os.replace`d onto the path, so a reader sees the old file or the new one, never half
of one, even if the writer is killed mid-write.

Appends (metrics.jsonl, train.log) are not whole-file writes: their readers skip a
half-written last line. No torch import: the job runner waiting in a queue imports this.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: `write(f)` fills a temp file in the same folder, which
    is flushed, fsynced and `os.replace`d onto `path` (its folder is created). Returns
    `path` as a Path; on any error the temp file is removed and the old file kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` with `atomic_write`. Returns the path."""
    return atomic_write(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` with `atomic_write`. Returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """Write `obj` as JSON (keys sorted, `indent` spaces) to `path` with `atomic_write`;
    Paths, tuples and numpy / torch scalars are written as str, list and number."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True, default=json_default))


def json_default(o):
    """`json.dumps(default=)` for the project's values: Path -> str, tuple -> list,
    numpy / torch scalar -> number; TypeError naming the type otherwise."""
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
