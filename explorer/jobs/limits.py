"""What one launch may ask of a shared machine, and which files it may read.

A training page that others can reach must not let one click fill the disk, the memory
or the queue, nor read any file of the server's user. Every check here runs *before*
anything is launched and raises `JobError` with a message naming the field or file,
the limit and what to do.

- `JobLimits`: the defaults (stated in the README, "Training page: background jobs").
- `inside_roots`: a user path, resolved after following links, must lie in a data root
  (`explorer.paths.data_roots`).
- `read_regular`: bytes of a regular file, size-checked first; FIFOs, devices, folders
  and `/proc` files (size 0) are refused without blocking (opened O_NONBLOCK, checked
  with fstat on the open descriptor, so a file swapped after the check changes nothing).
- `check_budget`: images x epochs and batch size x model.
- `check_disk`: free space on the disk holding the runs folder.
No streamlit, no torch import.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ssd.data.paths import PathRefused, confine
from ssd.data.paths import read_regular as ssd_read_regular


# Most images per step one process may ask for, per model (host memory: SSD300-VGG16 at
# batch 64, or compact256 at batch 1024, each passed 9.8 GB when probed).
def size_text(num_bytes: int) -> str:
    """Bytes as a short human string: 2147483648 -> '2 GiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes} bytes"


class JobError(ValueError):
    """A job cannot be launched/controlled; the message says what is wrong."""


DEFAULT_MAX_BATCH = (("compact256", 256), ("ssdlite320_mobilenet_v3_large", 64), ("ssd300_vgg16", 32))


@dataclass(frozen=True)
class JobLimits:
    """Resource limits of the job manager on a shared machine (all checked at launch)."""

    max_jobs_per_device: int = 4  # queued + running LONG jobs (training, studies) per device class; later refused
    max_short_jobs_per_device: int = 8  # queued + running SHORT jobs (evaluations, exports) per device class
    min_free_bytes: int = 2 << 30  # refuse a launch when the runs folder's disk has less free space
    max_image_passes: int = 5_000_000  # images x epochs of one launch (the paper's SSD300 VOC: ~1.9 M)
    max_batch: tuple = field(default=DEFAULT_MAX_BATCH)  # (model, most images per step per process)
    max_coco_json_bytes: int = 512 << 20  # COCO annotation file checked at launch (COCO 2017 train: 448 MB)
    max_list_bytes: int = 64 << 20  # a VOC ImageSets/Main/<split>.txt

    def lane_limit(self, lane: str) -> int:
        """Most queued + running jobs of `lane` ("long" or "short") per device class: the
        lanes are counted apart, so evaluations never use up the training slots."""
        return self.max_short_jobs_per_device if lane == "short" else self.max_jobs_per_device

    def batch_limit(self, model: str) -> int:
        """Most images per step for `model` (the smallest listed for a model not listed)."""
        table = dict(self.max_batch)
        return table.get(model, min(table.values()))


def inside_roots(path_text: str, roots: tuple[Path, ...] | None, what: str) -> Path:
    """`path_text` as an absolute path with every link followed, if it lies inside one
    of `roots` (None: no confinement, the library's own use). The roots check comes
    before any existence check, so a refusal says nothing about files outside.

    Raises JobError naming `what` and the path: outside the roots, or not existing."""
    try:  # the one rule: ssd.data.paths (NUL bytes, links, the same refusal outside the roots)
        return confine(path_text, what, roots, kind="any")
    except PathRefused as exc:
        raise JobError(str(exc)) from None


def read_regular(path: Path, what: str, max_bytes: int) -> bytes:
    """The bytes of `path` if it is a non-empty regular file of at most `max_bytes`.

    Opened with O_NONBLOCK (a FIFO never blocks the open) and checked with fstat on the
    descriptor before a single byte is read (`ssd.data.paths.read_regular`). Raises
    JobError naming `what` and the path."""
    try:
        data = ssd_read_regular(path, what, max_bytes, roots=None)
    except PathRefused as exc:
        raise JobError(str(exc)) from None
    if not data:
        raise JobError(f"{path}: {what} is empty (or a special file that reports no size)")
    return data


def check_budget(opts, nproc: int, num_images: int | None, limits: JobLimits) -> None:
    """Refuse a launch that asks too much: batch size x model over `limits.batch_limit`,
    or images x epochs (capped by max_steps x batch when set) over `max_image_passes`.

    opts: validated `TrainOptions`. num_images: training images (None: unknown)."""
    most = limits.batch_limit(opts.model)
    if opts.batch_size > most:
        raise JobError(f"batch size {opts.batch_size} is over the limit of {most} images per step for "
                       f"{opts.model} on this shared machine (memory); lower the batch size")
    if num_images is None:
        return
    passes = num_images * opts.epochs
    if opts.max_steps:
        passes = min(passes, opts.max_steps * opts.batch_size * max(nproc, 1))
    if passes > limits.max_image_passes:
        raise JobError(f"{num_images:,} images x {opts.epochs} epochs = {passes:,} image passes, over the "
                       f"limit of {limits.max_image_passes:,} per launch; use fewer epochs or set "
                       "'Stop after N steps'")


def check_disk(runs_dir: Path, limits: JobLimits) -> None:
    """Refuse a launch when the disk holding `runs_dir` has less than `min_free_bytes` free."""
    probe = Path(runs_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < limits.min_free_bytes:
        raise JobError(f"only {size_text(free)} free on the disk holding {runs_dir}; a launch needs at least "
                       f"{size_text(limits.min_free_bytes)} (delete old runs)")
