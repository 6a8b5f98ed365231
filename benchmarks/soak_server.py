"""The soak's server: `streamlit run` with every script run timed inside the server.

    SSD_SOAK_RUNS_LOG=runs.jsonl python -m benchmarks.soak_server run app.py --server.port ...

The same server as `streamlit run` (same config, same app), plus one JSON line per
`ScriptRunner._run_script` call (a full rerun or a fragment run, including the reruns that
interrupt it): the session's User-Agent (the soak gives each browser session its own), the
wall-clock start, the wall seconds and the script thread's CPU seconds (`time.thread_time`:
torch runs on that thread with the app's one intra-op thread). Wall minus CPU is the time
the run waited: for a core, the GIL, a lock, a sleep. The browsers share the machine's
cores with the server, so the browser's time per step says little about the server's own.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

from streamlit.runtime.scriptrunner import script_runner

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


def read_runs(path: str | os.PathLike) -> list[dict]:
    """The records written by a server started with this module (oldest first)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    script_runner.ScriptRunner._run_script = _timed_run_script
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(main())
