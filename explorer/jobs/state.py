"""The locks that say who is alive, the per-lane device queues and the launch counter.

Every file name of a job folder (status.json, job.json, stdout.log, .run.lock, the cancel
mark, ...) and the status format belong to `ssd.runlog`; this module holds the locks
and queues of the job framework. Everything a job is lives on disk;
nothing is held in memory, so a restarted server finds every run again. No
streamlit, no torch import here (the runner waiting in a queue should stay light).

Files the framework adds to a job folder (names in `ssd.runlog`): JOB_FILE (what was
launched), STDOUT_FILE (what its processes print), RUN_LOCK (held by its process tree),
CONTROL_LOCK, CANCEL_MARK (the user asked to cancel, so a job killed by the SIGTERM
before it could say so still shows `cancelled`).

Liveness: the manager opens `.run.lock` and hands the locked file description to
the runner (`pass_fds`); the runner keeps it through `os.execv` into the
training process. The kernel releases an flock only when the last descriptor
of that open file closes, i.e. when the whole process tree is gone (exit,
crash, SIGKILL, reboot). So "lock can be taken" == "nobody is alive", with no
pid-reuse trap.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from explorer.jobs.kinds import LONG, SHORT
from ssd.training.runlog import RUN_LOCK
from ssd.io import atomic_write

LOCKS_DIR = ".locks"  # under the runs dir: device locks, the seq counter, the queue index
QUEUE_DIRS = {LONG: "queue-{device}", SHORT: "queue-{device}-short"}  # under LOCKS_DIR, per lane and device:
# one entry "<seq>-<job name>" per live job, a link to the job's folder (a plain file: runs_dir/<name>)


def open_lock(path: Path) -> int:
    """Open (creating) a lock file; returns a non-inheritable fd. In a folder made
    read-only an existing lock file is opened read-only (flock needs no write access);
    OSError when it is missing and cannot be created."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except (PermissionError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def try_flock(fd: int, shared: bool = False) -> bool:
    """Take an exclusive (or shared) flock on `fd` without waiting; True when taken."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def try_flock_briefly(fd: int, shared: bool = False, within_s: float = 0.25) -> bool:
    """`try_flock`, retried for at most `within_s`: a probe of another tab holds a free
    run lock for a millisecond, a live run holds it for its whole life."""
    deadline = time.monotonic() + within_s
    while not try_flock(fd, shared):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def flock_wait(fd: int, timeout_s: float = 10.0) -> None:
    """Take an exclusive flock on `fd`, waiting up to `timeout_s` (probes by other
    processes hold a free lock only for a moment)."""
    deadline = time.monotonic() + timeout_s
    while not try_flock(fd):
        if time.monotonic() > deadline:
            raise TimeoutError(f"lock still held after {timeout_s:.0f} s")
        time.sleep(0.02)


@contextlib.contextmanager
def probe_run_lock(run_dir: Path) -> Iterator[bool]:
    """Yield True when the run's process tree is alive (someone holds `.run.lock`).

    When it yields False the caller holds a shared lock for the duration of the
    `with`, so no runner of this run can start meanwhile (a launch takes it
    exclusively): safe to rewrite status.json. Shared, so that two probes at the
    same moment (two browser tabs, a queued runner) never mistake each other for
    the run. A lock file that is missing and cannot be created (a read-only folder) is
    held by nobody: every launched run has one from its first moment."""
    try:
        fd = open_lock(Path(run_dir) / RUN_LOCK)
    except FileNotFoundError:
        yield False
        return
    try:
        got = try_flock(fd, shared=True)
        yield not got
    finally:
        os.close(fd)  # closing releases the flock if we took it


def is_alive(run_dir: Path) -> bool:
    """True while the run's runner/training process tree is alive."""
    with probe_run_lock(run_dir) as alive:
        return alive


def queue_dir(runs_dir: Path, device: str, lane: str = LONG) -> Path:
    """The queue index of one lane of one device class: `runs/.locks/queue-<device>[-short]/`."""
    return Path(runs_dir) / LOCKS_DIR / QUEUE_DIRS[lane].format(device=device)


def _entry_target(runs_dir: Path, qdir: Path, entry: str) -> Path:
    """The job folder a queue entry names: the link's target, or runs_dir/<name>."""
    path = qdir / entry
    if path.is_symlink():
        return Path(os.readlink(path))
    return Path(runs_dir) / entry.partition("-")[2]


def enqueue(run_dir: Path, device: str, seq: int, lane: str = LONG, runs_dir: Path | None = None) -> None:
    """Enter the job in its lane's queue index of `device` (dropping its older entries).

    runs_dir: the folder whose `.locks` holds the queues (default: the job's parent).
    The index is what the queued runners and the launch cap read: listing a folder of a
    few live entries instead of every job folder's files on every poll."""
    run_dir = Path(run_dir).resolve()
    runs_dir = run_dir.parent if runs_dir is None else Path(runs_dir)
    qdir = queue_dir(runs_dir, device, lane)
    qdir.mkdir(parents=True, exist_ok=True)
    for old in qdir.glob(f"*-{run_dir.name}"):
        if _entry_target(runs_dir, qdir, old.name) == run_dir:
            old.unlink(missing_ok=True)
    (qdir / f"{seq:012d}-{run_dir.name}").symlink_to(run_dir)


def live_queue(runs_dir: Path, device: str, lane: str = LONG) -> list[tuple[int, Path]]:
    """(seq, job folder) of the live jobs (queued or running) of one lane of `device`,
    by seq. Entries of jobs whose process tree is gone are removed on the way."""
    qdir = queue_dir(runs_dir, device, lane)
    try:
        names = sorted(os.listdir(qdir))
    except OSError:
        return []
    live = []
    for entry in names:
        seq_text, _, name = entry.partition("-")
        run_dir = _entry_target(runs_dir, qdir, entry)
        if seq_text.isdigit() and name and run_dir.is_dir() and is_alive(run_dir):
            live.append((int(seq_text), run_dir))
        else:
            with contextlib.suppress(OSError):
                (qdir / entry).unlink()
    return live


def next_seq(runs_dir: Path) -> int:
    """Next launch sequence number (1, 2, ...) for `runs_dir`; race-free across
    processes (counter file under an flock). Orders the per-device queues."""
    locks = Path(runs_dir) / LOCKS_DIR
    fd = open_lock(locks / "seq.lock")
    try:
        flock_wait(fd)
        counter = locks / "seq"
        try:
            last = int(counter.read_text().strip() or 0)
        except (OSError, ValueError):
            last = 0
        seq = last + 1
        atomic_write(counter, lambda f: f.write(str(seq).encode()))
        return seq
    finally:
        os.close(fd)
