"""Tests for ssd/io.py: the one atomic write replaces the file whole, keeps the old file
when the writer fails, and a reader never sees half a file of a writer killed mid-write."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssd.io import atomic_write, write_json_atomic, write_text_atomic
from ssd.training.runlog import read_json

ROOT = Path(__file__).resolve().parents[1]


def _dot_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    assert atomic_write(path, lambda f: f.write(b"one")) == path
    atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two" and _dot_files(path.parent) == []


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.json"
    write_json_atomic(path, {"a": 1})

    def broken(f):
        f.write(b'{"a": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert read_json(path) == {"a": 1} and _dot_files(tmp_path) == []


def test_reader_never_sees_half_a_file_while_a_process_is_killed_mid_writes(tmp_path):
    """A writer SIGKILLed at a random moment of a stream of big atomic writes leaves
    either the old or a new complete file, never a partial one."""
    path = tmp_path / "status.json"
    code = ("import sys; from ssd.io import write_json_atomic\n"
            "i = 0\n"
            "while True:\n"
            "    write_json_atomic(sys.argv[1], {'i': i, 'pad': 'x' * 200_000}); i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT)
    deadline = time.time() + 30
    while not path.exists() and time.time() < deadline:
        time.sleep(0.01)
    for _ in range(20):
        assert len(read_json(path)["pad"]) == 200_000
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_json(path)["pad"]) == 200_000


def test_write_text_and_json_round_trip_with_project_values(tmp_path):
    assert write_text_atomic(tmp_path / "a.txt", "x\ny\n").read_text() == "x\ny\n"
    path = write_json_atomic(tmp_path / "a.json", {"p": Path("/a/b"), "t": (1, 2)}, indent=None)
    assert json.loads(path.read_text()) == {"p": "/a/b", "t": [1, 2]}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json_atomic(tmp_path / "b.json", {"o": object()})
    assert not (tmp_path / "b.json").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
