"""CPU cost of one queued run's poll of the queue (issue 14: 80 queued runs spent 127%
of a core just polling).

    .venv/bin/python -m benchmarks.bench_queue_poll [--ended 200] [--queued 4]

A runs folder with `--ended` finished runs and `--queued` live queued runs (real
processes holding their run locks, entered in the queue index). Peer: the poll as it
was, re-stated here (scan every run folder: job.json, status.json, a lock probe each).
Now: `explorer.jobs.runner.runs_ahead` (the device's queue index). Both in one run; the
projected load is per-poll CPU x queued runs / poll interval (old: 80 runs at 0.5 s;
now: at most JobLimits.max_jobs_per_device runs at runner.POLL_S).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from explorer.jobs.limits import JobLimits
from explorer.jobs.runner import POLL_S, runs_ahead
from explorer.jobs.state import enqueue, is_alive, open_lock, try_flock
from ssd.training.runlog import JOB_FILE, RUN_LOCK, read_json_or_none, read_status
from ssd.io import write_json_atomic


def old_runs_ahead(run_dir: Path, device: str, seq: int) -> list[str]:
    """The poll before the queue index: every run folder's files, every poll."""
    ahead = []
    for other in sorted(run_dir.parent.iterdir()):
        if other == run_dir or not other.is_dir():
            continue
        job = read_json_or_none(other / JOB_FILE)
        if not job or job.get("device") != device or int(job.get("seq", 1 << 62)) >= seq:
            continue
        if (read_status(other) or {}).get("state") == "queued" and is_alive(other):
            ahead.append(other.name)
    return ahead


def _run(runs: Path, name: str, state: str, seq: int) -> Path:
    d = runs / name
    d.mkdir()
    write_json_atomic(d / JOB_FILE, {"name": name, "device": "cpu", "seq": seq, "attempts": []})
    write_json_atomic(d / "status.json", {"state": state})
    return d


def _cpu_per_call(fn, *args, repeat: int = 50) -> float:
    t0 = time.process_time()
    for _ in range(repeat):
        fn(*args)
    return (time.process_time() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ended", type=int, default=200)
    ap.add_argument("--queued", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for i in range(args.ended):
            _run(runs, f"done{i}", "finished", i + 1)
        holders, queued = [], []
        for i in range(args.queued):
            d = _run(runs, f"q{i}", "queued", 10_000 + i)
            enqueue(d, "cpu", 10_000 + i)
            fd = open_lock(d / RUN_LOCK)
            assert try_flock(fd)
            holders.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                            pass_fds=(fd,), start_new_session=True))
            os.close(fd)
            queued.append(d)
        me = queued[-1]
        try:
            assert sorted(old_runs_ahead(me, "cpu", 10_000 + args.queued - 1)) == \
                sorted(runs_ahead(me, "cpu", 10_000 + args.queued - 1))
            old = _cpu_per_call(old_runs_ahead, me, "cpu", 10_000 + args.queued - 1)
            new = _cpu_per_call(runs_ahead, me, "cpu", 10_000 + args.queued - 1)
        finally:
            for p in holders:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    cap = JobLimits().max_jobs_per_device
    print(f"{args.ended} ended + {args.queued} queued runs; CPU per poll: peer {old * 1e3:.2f} ms, "
          f"now {new * 1e3:.3f} ms, ratio {old / new:.0f}x")
    print(f"projected polling load: peer 80 queued at 0.5 s = {80 * old / 0.5:.0%} of a core; now at most {cap} "
          f"queued at {POLL_S:g} s = {cap * new / POLL_S:.2%} of a core")


if __name__ == "__main__":
    main()
