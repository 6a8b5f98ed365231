"""Tests for explorer/jobs/process.py: the one spawner and stopper of background
processes, the pid-reuse guard, and the SIGTERM -> "cancelled" protocol of a job's child."""
import os
import signal
import subprocess
import sys
import time

import pytest

from explorer.jobs.process import pid_alive_since, proc_start_time, spawn, stop_group
from ssd.training.runlog import read_status


def test_proc_start_time_guards_pid_reuse():
    now = time.time()
    start = proc_start_time(os.getpid())
    assert start is not None and now - 86400 * 365 < start <= now + 1
    assert pid_alive_since(os.getpid(), now)  # started before "now": the same process
    # A status written before this process existed cannot be this process's: a reused pid.
    assert not pid_alive_since(os.getpid(), start - 3600)
    assert not pid_alive_since(None, now)


def test_spawn_starts_its_own_process_group_and_stop_group_ends_it(tmp_path):
    pid = spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], tmp_path / "out.log")
    assert os.getpgid(pid) == pid  # its own session and group: the server's signals do not reach it
    assert stop_group(pid)
    deadline = time.monotonic() + 10
    while proc_start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_start_time(pid) is None
    # Exited is not yet reaped: a zombie still holds its group until spawn's reaper
    # thread waits on it (CI once caught that window). Wait for the reap, then nothing is left.
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stop_group(pid)  # gone: nothing signalled
    with pytest.raises(ValueError):
        stop_group(1)


_CHILD = """
import sys, time
from pathlib import Path
from explorer.jobs.process import run_child
def body(d):
    if sys.argv[2] == "fail":
        raise ValueError("spec.json: bad field")
    print("ready", flush=True)
    time.sleep(60)
sys.exit(run_child(Path(sys.argv[1]), body))
"""


def test_run_child_turns_sigterm_into_cancelled_and_errors_into_failed(tmp_path):
    assert subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), "fail"], capture_output=True).returncode == 1
    assert read_status(tmp_path)["state"] == "failed" and read_status(tmp_path)["message"] == "spec.json: bad field"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), "wait"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert read_status(tmp_path)["state"] == "running" and read_status(tmp_path)["pid"] == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert read_status(tmp_path)["state"] == "cancelled"
