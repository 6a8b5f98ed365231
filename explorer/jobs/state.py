"""What the job manager adds to a run directory, and the locks that say who is alive.

The run directory's own format (status.json, its states and fields, config.json,
metrics.jsonl, train.log, checkpoints, the atomic write) belongs to `ssd.training.runlog`;
this module names only the manager's additions. Everything a run is lives on disk;
nothing is held in memory, so a restarted server finds every run again. No
streamlit, no torch import here (the runner waiting in a queue should stay light).

Files the manager adds to a run directory (`RUN = runs/<name>/`):
- `job.json`    what the manager launched: training argv, device class, seq, ...
- `stdout.log`  what the runner and the trainer print
- `.run.lock`   flock held by the run's process tree for its whole life
- `cancel_requested` marker: the user asked to cancel (so a run killed by the
  SIGTERM before it could say so still shows `cancelled`)

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

from ssd.io import atomic_write

JOB_FILE = "job.json"  # the manager's launch record (argv, device class, seq, attempts)
STDOUT_FILE = "stdout.log"  # everything the runner and the trainer print (tracebacks too)
RUN_LOCK = ".run.lock"  # flock held by the run's process tree for its whole life
CANCEL_MARK = "cancel_requested"  # marker: the user asked to cancel
CONTROL_LOCK = ".control.lock"  # flock taken (never waited for) by cancel / resume / delete
LOCKS_DIR = ".locks"  # under the runs dir: device locks, the seq counter, the queue index
QUEUE_DIR = "queue-{device}"  # under LOCKS_DIR: one entry "<seq>-<run name>" per live run of a device


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


def queue_dir(runs_dir: Path, device: str) -> Path:
    """The queue index of one device class: `runs/.locks/queue-<device>/`."""
    return Path(runs_dir) / LOCKS_DIR / QUEUE_DIR.format(device=device)


def enqueue(run_dir: Path, device: str, seq: int) -> None:
    """Enter the run in its device's queue index (dropping its older entries).

    The index is what the queued runners and the launch cap read: listing a folder of a
    few live entries instead of every run folder's files on every poll."""
    qdir = queue_dir(run_dir.parent, device)
    qdir.mkdir(parents=True, exist_ok=True)
    for old in qdir.glob(f"*-{run_dir.name}"):
        if old.name.split("-", 1)[1] == run_dir.name:
            old.unlink(missing_ok=True)
    (qdir / f"{seq:012d}-{run_dir.name}").touch()


def live_queue(runs_dir: Path, device: str) -> list[tuple[int, Path]]:
    """(seq, run dir) of the device's live runs (queued or running), by seq. Entries of
    runs whose process tree is gone are removed on the way (their lock is free)."""
    qdir = queue_dir(runs_dir, device)
    try:
        names = sorted(os.listdir(qdir))
    except OSError:
        return []
    live = []
    for entry in names:
        seq_text, _, name = entry.partition("-")
        run_dir = Path(runs_dir) / name
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


def proc_start_time(pid: int) -> float | None:
    """Unix time a process started (from /proc/<pid>/stat field 22), None if gone.

    Used for runs launched outside the manager (no `.run.lock`): a live pid that
    started *after* the run did is a reused pid, not the trainer."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        # comm (field 2) may hold spaces: split after the closing parenthesis.
        fields_after_comm = stat.rsplit(")", 1)[1].split()
        start_ticks = int(fields_after_comm[19])  # field 22 overall = index 19 after comm+state
        btime = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    if Path(f"/proc/{int(pid)}/status").exists():
        try:
            for line in Path(f"/proc/{int(pid)}/status").read_text().splitlines():
                if line.startswith("State:") and "Z" in line.split()[1]:
                    return None  # a zombie has exited; only its parent has not reaped it
        except OSError:
            return None
    return btime + start_ticks / os.sysconf("SC_CLK_TCK")


def pid_alive_since(pid: int | None, started_at: float | None) -> bool:
    """True when `pid` is a live process that started no later than `started_at`
    (+2 s for clock tick rounding): the same process that wrote the status."""
    if not pid:
        return False
    start = proc_start_time(pid)
    if start is None:
        return False
    return started_at is None or start <= float(started_at) + 2.0
