"""The one confinement rule for every path opened on a user's behalf.

A path typed into the explorer, and every annotation, image and split file a dataset
reader opens for it, must lie inside the allowed data roots once every link is followed;
it must be a regular file (or a folder where one is asked for), opened without blocking
(a FIFO or a device is refused at once, never waited on), and not larger than the limit
the caller gives. A refusal for a path outside the roots reads the same whether that
path exists, is missing or is not a file: it tells nothing about what lies outside.

Which roots apply:
  * an explicit `roots` argument (the explorer passes `explorer.paths.data_roots`);
  * else the roots of `confined_to(roots)` around the call (per thread / context);
  * else `$SSD_JOB_DATA_ROOTS` (os.pathsep-separated; set by the explorer's job
    framework for the training and evaluation processes it starts; "" = no root);
  * else none: the library used on its own (CLI, Python API) reads any path.

No torch import; the callers turn `PathRefused` into their own error type.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from pathlib import Path
from typing import BinaryIO

JOB_ROOTS_ENV = "SSD_JOB_DATA_ROOTS"  # the roots a job's process is confined to (set by explorer.jobs)
_UNSET = object()
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("ssd_data_roots", default=None)


class PathRefused(ValueError):
    """A path that may not be opened; the message names the path as the user gave it."""


def parse_roots(text: str) -> tuple[Path, ...]:
    """os.pathsep-separated folders -> resolved paths (empty entries dropped)."""
    return tuple(Path(p.strip()).expanduser().resolve() for p in str(text).split(os.pathsep) if p.strip())


def active_roots(roots=_UNSET) -> tuple[Path, ...] | None:
    """The roots that apply (see the module docstring); None: no confinement."""
    if roots is not _UNSET:
        return None if roots is None else tuple(Path(r) for r in roots)
    ctx = _ACTIVE.get()
    if ctx is not None:
        return ctx
    env = os.environ.get(JOB_ROOTS_ENV)
    return None if env is None else parse_roots(env)


@contextlib.contextmanager
def confined_to(roots):
    """Every reader called inside this block (this thread or context) is confined to
    `roots` (None: unchanged)."""
    if roots is None:
        yield
        return
    token = _ACTIVE.set(tuple(Path(r).resolve() for r in roots))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _within(real: Path, roots: tuple[Path, ...]) -> bool:
    return any(real == r or r in real.parents for r in roots)


def _refuse_outside(shown: str, what: str, roots: tuple[Path, ...]) -> PathRefused:
    allowed = ", ".join(str(r) for r in roots) or "none on this server"
    return PathRefused(f"{shown}: {what} is outside the allowed data folders ({allowed}); put the data "
                       "there, or have the administrator add its folder to SSD_DATA_ROOTS")


def confine(path, what: str = "file", roots=_UNSET, kind: str = "file", name: str | None = None) -> Path:
    """`path` resolved (every link followed) if it may be opened; else PathRefused.

    kind: "file" (a regular file), "dir" (a folder) or "any" (either, e.g. an output
    location checked only for where it is). With roots in force, a path outside them is
    refused with one message whatever lies there; inside, a missing path or the wrong
    kind is named. A NUL byte or a link loop is refused with its own message. Messages
    start with `name` (default: the path as given), never with the resolved path."""
    shown = str(path) if name is None else name
    if "\x00" in str(path):
        raise PathRefused(f"{what}: the path contains a NUL byte (\\x00); type it again without it")
    roots = active_roots(roots)
    try:
        real = Path(str(path).strip()).expanduser().resolve()
    except (OSError, RuntimeError):  # a link loop, a name too long
        if roots is not None:
            raise _refuse_outside(shown, what, roots) from None
        raise PathRefused(f"{shown}: {what} cannot be resolved (a link loop?)") from None
    if roots is not None and not _within(real, roots):
        raise _refuse_outside(shown, what, roots)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        raise PathRefused(f"{shown}: {what} not found (the path does not exist)") from None
    except OSError as e:
        raise PathRefused(f"{shown}: cannot read the {what} ({e.strerror})") from None
    if kind == "dir" and not stat.S_ISDIR(mode):
        raise PathRefused(f"{shown}: {what} is not a folder")
    if kind == "file" and not stat.S_ISREG(mode):
        raise PathRefused(f"{shown}: {what} is not a regular file (a folder, FIFO or device); refused unread")
    return real


def _opened_path(fd: int, real: Path) -> Path:
    """The real path of the open descriptor (Linux /proc), else the checked one."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return real


def _size_text(num_bytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes} bytes"


def open_nonblocking(path, max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (of at most `max_bytes`),
    not confined: for the files the program writes itself (a run folder's JSON, metrics
    and logs); a path a user typed goes through `open_regular`.

    Opened with O_NONBLOCK and checked with fstat before any read, so a FIFO or device
    planted in a run folder never blocks a reader. Raises OSError (FileNotFoundError
    when missing) with a message naming the file otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise OSError(f"{path}: {st.st_size} bytes, over the {max_bytes} limit")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_regular(path, what: str = "file", max_bytes: int | None = None, roots=_UNSET, name: str | None = None):
    """`path` confined (`confine`) and opened for reading in binary, without blocking:
    O_NONBLOCK, then fstat on the descriptor (a FIFO or device, even one swapped in after
    the check, is refused unread), the size checked against `max_bytes`, and the opened
    file's real path checked against the roots again. Returns a file object (close it)."""
    shown = str(path) if name is None else name
    real = confine(path, what, roots, kind="file", name=name)
    roots = active_roots(roots)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise PathRefused(f"{shown}: cannot open the {what} ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathRefused(f"{shown}: {what} is not a regular file (a FIFO, device or folder); refused unread")
        if st.st_size == 0:  # also /proc files, which report no size however much they hold
            raise PathRefused(f"{shown}: {what} is empty (or a special file that reports no size)")
        if max_bytes is not None and st.st_size > max_bytes:
            raise PathRefused(f"{shown}: {what} is {_size_text(st.st_size)}, over the {_size_text(max_bytes)} "
                              "limit for this file")
        if roots is not None and not _within(_opened_path(fd, real), roots):
            raise _refuse_outside(shown, what, roots)  # a link swapped between the check and the open
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, what: str = "file", max_bytes: int | None = None, roots=_UNSET,
                 name: str | None = None) -> bytes:
    """The bytes of `path` through `open_regular`; at most `max_bytes` (a file that grew
    since the check is refused)."""
    shown = str(path) if name is None else name
    with open_regular(path, what, max_bytes, roots, name) as f:
        try:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except OSError as e:
            raise PathRefused(f"{shown}: cannot read the {what} ({e.strerror})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise PathRefused(f"{shown}: {what} is over the {_size_text(max_bytes)} limit for this file")
    return data
