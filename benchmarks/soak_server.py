"""The soak's server: `streamlit run` with every script run timed inside the server, and
the soak's side of it (start, stop, RSS and CPU sampling).

    SSD_SOAK_RUNS_LOG=runs.jsonl python -m benchmarks.soak_server run app.py --server.port ...

The same server as `streamlit run` (same config, same app), plus one JSON line per
`ScriptRunner._run_script` call (a full rerun or a fragment run, including the reruns that
interrupt it): the session's User-Agent (the soak gives each browser session its own), the
wall-clock start, the wall seconds and the script thread's CPU seconds (`time.thread_time`:
torch runs on that thread with the app's one intra-op thread). Wall minus CPU is the time
the run waited: for a core, the GIL, a lock, a sleep. The browsers share the machine's
cores with the server, so the browser's time per step says little about the server's own.

With `SSD_SOAK_PROFILE=profile.json` it also samples every thread's stack (`StackSampler`):
where the server's threads spend their wall time, waiting included.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from streamlit.runtime.scriptrunner import script_runner

from benchmarks.browser import wait_healthy

ROOT = Path(__file__).resolve().parent.parent

_LOG_PATH = os.environ.get("SSD_SOAK_RUNS_LOG", "")
_write_lock = threading.Lock()
_original_run_script = script_runner.ScriptRunner._run_script


def _user_agent() -> str:
    try:
        import streamlit as st

        return st.context.headers.get("User-Agent", "")
    except Exception:  # noqa: BLE001: no context (a shutting-down session): no tag
        return ""


def _timed_run_script(self, rerun_data) -> None:
    t0, cpu0 = time.time(), time.thread_time()
    try:
        _original_run_script(self, rerun_data)
    finally:
        record = {"session": self._session_id, "ua": _user_agent(), "t0": t0,
                  "wall_s": round(time.time() - t0, 4), "cpu_s": round(time.thread_time() - cpu0, 4),
                  "fragment": bool(rerun_data.fragment_id_queue)}
        if _LOG_PATH:
            with _write_lock, open(_LOG_PATH, "a") as f:
                f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- where the wall time goes
_PROJECT = (os.sep + "pages" + os.sep, os.sep + "explorer" + os.sep, os.sep + "ssd" + os.sep, "app.py")


def _where(frame) -> tuple[str, str]:
    """(the innermost frame, the innermost frame of the project's own code) as "file:line func"."""
    def name(f) -> str:
        return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} {f.f_code.co_name}"
    leaf, own, f = name(frame), "", frame
    while f is not None and not own:
        if any(part in f.f_code.co_filename for part in _PROJECT) and "site-packages" not in f.f_code.co_filename:
            own = name(f)
        f = f.f_back
    return leaf, own or "(not in the project)"


class StackSampler(threading.Thread):
    """A wall-clock sampling profiler: every `every_s`, where each thread of the server is
    (its innermost frame, and its innermost frame in the project's code), counted per kind
    of thread (script runs, the event loop, other); cumulative counts are written to `path`
    every `write_every_s` (atomically), so the soak can diff them between two moments. A
    thread waiting for a lock, the GIL or a core is counted where it waits."""

    def __init__(self, path: str, every_s: float = 0.02, write_every_s: float = 2.0):
        super().__init__(daemon=True, name="soak-stack-sampler")
        self.path, self.every_s, self.write_every_s = path, every_s, write_every_s
        self.counts: dict[str, dict[str, int]] = {}

    def _kind(self, thread: threading.Thread | None) -> str:
        name = thread.name if thread else "?"
        return "script" if name.startswith("ScriptRunner") else "main" if name == "MainThread" else "other"

    def sample(self) -> None:
        threads = {t.ident: t for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == self.ident:
                continue
            kind = self._kind(threads.get(ident))
            leaf, own = _where(frame)
            c = self.counts.setdefault(kind, {})
            c["#samples"] = c.get("#samples", 0) + 1
            c["leaf " + leaf] = c.get("leaf " + leaf, 0) + 1
            c["own " + own] = c.get("own " + own, 0) + 1

    def run(self) -> None:
        last_write = time.time()
        while True:
            time.sleep(self.every_s)
            self.sample()
            if time.time() - last_write > self.write_every_s:
                last_write = time.time()
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"every_s": self.every_s, "counts": self.counts}, f)
                os.replace(tmp, self.path)


def read_runs(path: str | os.PathLike) -> list[dict]:
    """The records written by a server started with this module (oldest first)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- starting it, watching it (the soak's side)
def start_server(port: int, ttl_s: int, runs_dir: Path, log_path: Path) -> subprocess.Popen:
    """`streamlit run app.py` on 127.0.0.1:port (config.toml as `make run` uses it), through
    `benchmarks.soak_server`, which times every script run into `runs.jsonl` beside `log_path`."""
    argv = [sys.executable, "-m", "benchmarks.soak_server", "run", "app.py", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.disconnectedSessionTTL", str(ttl_s)]
    env = dict(os.environ, SSD_RUNS_DIR=str(runs_dir), SSD_SOAK_RUNS_LOG=str(log_path.with_name("runs.jsonl")),
               SSD_SOAK_PROFILE=str(log_path.with_name("profile.json")))
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log_path, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
    except (RuntimeError, TimeoutError) as e:
        raise type(e)(f"{e}; see {log_path}") from None
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MB (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` used so far, all its threads (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (ticks)


class RssSampler(threading.Thread):
    """Samples the server's RSS every `every_s` into `rec.rss_mb[phase]`, and its CPU
    seconds (all threads: the script runs, the event loop, torch) into `cpu_s[phase]`."""

    def __init__(self, pid: int, rec, every_s: float = 1.0):  # rec: a benchmarks.soak.Recorder
        super().__init__(daemon=True)
        self.pid, self.rec, self.every_s = pid, rec, every_s
        self.phase = "cold"
        self.cpu_s: dict[str, list[float]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.rec.rss_mb.setdefault(self.phase, []).append(round(rss_mb(self.pid), 1))
                self.cpu_s.setdefault(self.phase, []).append(cpu_seconds(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()



if __name__ == "__main__":
    script_runner.ScriptRunner._run_script = _timed_run_script
    if os.environ.get("SSD_SOAK_PROFILE"):
        StackSampler(os.environ["SSD_SOAK_PROFILE"]).start()
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(main())
