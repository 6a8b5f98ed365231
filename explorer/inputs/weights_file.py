"""A model from a weights file the user has: a path on the server, or an upload.

For a user with torchvision's COCO weights on disk but no network (the download fails
offline), or a project checkpoint outside `checkpoints/` and the runs folder. Returns
model ids for `explorer.inputs.models.load_model`; nothing here loads the weights.

A path must lie inside the data roots (`explorer.paths.data_roots`: none on an exposed
server until an administrator lists them), checked after following links and before
any existence check. An upload is written once, under its sha1, to a private folder
(`upload_dir`), keeping the `MAX_UPLOADED` newest.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from explorer.inputs.models import WEIGHTS_FILE_ARCHS, WEIGHTS_FILE_PREFIX, ModelLoadError, weights_file_id
from explorer.jobs.limits import JobError, inside_roots
from explorer.paths import keep_newest
from ssd.io import atomic_write

CHECKPOINT = "checkpoint"  # `arch` for an ssd-explorer checkpoint (.pt): it records its own architecture
MAX_UPLOADED = 2  # uploaded weights files kept (each <= Streamlit's maxUploadSize, 50 MB)
_UPLOAD_DIR: Path | None = None
_UPLOAD_NAMES: dict[str, str] = {}  # stored file name (<sha1>.<suffix>) -> the name it was uploaded as


def upload_dir() -> Path:
    """A folder private to this server process (mode 0700), made on first use."""
    global _UPLOAD_DIR
    if _UPLOAD_DIR is None:
        _UPLOAD_DIR = Path(tempfile.mkdtemp(prefix="ssd_weights_"))
    return _UPLOAD_DIR


def _check_arch(arch: str) -> None:
    if arch != CHECKPOINT and arch not in WEIGHTS_FILE_ARCHS:
        raise ModelLoadError(f"unknown architecture {arch!r}: one of {sorted(WEIGHTS_FILE_ARCHS) + [CHECKPOINT]}")


def _model_id(arch: str, path: Path) -> str:
    if arch == CHECKPOINT:
        return str(path)  # a checkpoint's id is its path (models.load_model)
    return weights_file_id(arch, path)


def from_path(arch: str, path_text: str, roots: tuple[Path, ...]) -> str:
    """The model id of the weights file at `path_text` (`arch`: a key of
    `WEIGHTS_FILE_ARCHS`, or `CHECKPOINT`). Raises ModelLoadError naming the path when
    it is empty, outside `roots`, missing or not a regular file."""
    _check_arch(arch)
    if not str(path_text).strip():
        raise ModelLoadError("give the path of a weights file (.pth or .pt)")
    try:
        real = inside_roots(path_text, roots, "weights file")
    except JobError as e:
        raise ModelLoadError(str(e)) from None
    if not real.is_file():
        raise ModelLoadError(f"weights file: {path_text} is not a regular file")
    return _model_id(arch, real)


def from_upload(arch: str, name: str, data: bytes, folder: Path | None = None) -> str:
    """The model id of uploaded weights: written (atomically, once) to
    `folder/<sha1>.<suffix>`; older uploads beyond `MAX_UPLOADED` are removed."""
    _check_arch(arch)
    if not data:
        raise ModelLoadError(f"{name}: the uploaded file is empty")
    folder = upload_dir() if folder is None else folder
    suffix = ".pt" if arch == CHECKPOINT else ".pth"
    path = folder / (hashlib.sha1(data).hexdigest() + suffix)
    if path.is_file():
        os.utime(path)  # recently used: pruned last
    else:
        atomic_write(path, lambda f: f.write(data))
    keep_newest(folder, MAX_UPLOADED, (".pt", ".pth"))
    _UPLOAD_NAMES.pop(path.name, None)
    _UPLOAD_NAMES[path.name] = name
    while len(_UPLOAD_NAMES) > 16 * MAX_UPLOADED:  # names of pruned uploads: forget the oldest
        del _UPLOAD_NAMES[next(iter(_UPLOAD_NAMES))]
    return _model_id(arch, path)


def shown_name(model_id: str) -> str | None:
    """The name a stored upload was uploaded as (what its errors call it), or None when
    `model_id` is not an upload of this server process."""
    if model_id.startswith(WEIGHTS_FILE_PREFIX):
        model_id = model_id[len(WEIGHTS_FILE_PREFIX):].partition(":")[2]
    return _UPLOAD_NAMES.get(Path(model_id).name)  # <sha1>.<suffix>: names the content
