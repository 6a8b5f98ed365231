"""A real Streamlit server and a real Chromium, for the browser benchmarks and tests.

`streamlit_server(script)` starts `streamlit run SCRIPT` on a free loopback port and
yields its base URL; `chromium_path()` finds Debian's Chromium; `slider_step_ms(page,
label)` measures one keyboard step on a slider, from key press to the page idle again
and painted, as a user feels it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def chromium_path() -> str | None:
    """Debian's Chromium (`apt-get install -y chromium`), or None."""
    for c in CHROMIUM_CANDIDATES:
        if Path(c).is_file():
            return c
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until `/_stcore/health` answers ok; raises if the server exits or never answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@contextlib.contextmanager
def streamlit_server(script: str | Path, log_path: Path, env: dict | None = None, cwd: Path = ROOT):
    """`streamlit run SCRIPT` on 127.0.0.1 and a free port; yields (base URL, process)."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=cwd, env=dict(os.environ, **(env or {})), stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def settle(page, timeout_ms: int = 90_000) -> None:
    """Until the script is idle (twice, 500 ms apart) and any chart is drawn."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(500)
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    if page.locator(".js-plotly-plot").count():
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=timeout_ms)
    page.wait_for_timeout(300)


# Arms a watcher on the app's script state: resolves with the ms from arming to the first
# "running" -> "notRunning" change, plus two animation frames (the browser has painted).
_ARM = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__stepDone = new Promise(resolve => {
    let running = false;
    const t0 = performance.now();
    const check = (records) => {
      const s = app.getAttribute('data-test-script-state');
      // A fast rerun can go running -> notRunning within one batch of records.
      if (s === 'running' || records.some(r => r.oldValue === 'running')) running = true;
      if (running && s === 'notRunning') {
        obs.disconnect();
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
      }
    };
    const obs = new MutationObserver(check);
    obs.observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  });
}"""


def slider_step_ms(page, label: str, key: str = "ArrowRight", timeout_ms: int = 60_000) -> float:
    """One keyboard step on the slider labelled `label`: ms from the key press to the
    script idle again and the page painted."""
    thumb = page.get_by_role("slider", name=label).first
    thumb.wait_for(timeout=timeout_ms)
    thumb.focus()
    page.evaluate(_ARM)
    thumb.press(key)
    return float(page.evaluate(f"() => Promise.race([window.__stepDone, "
                               f"new Promise((_, no) => setTimeout(() => no('no rerun'), {timeout_ms}))])"))
