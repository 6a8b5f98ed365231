"""A real Streamlit server and a real Chromium, for the browser benchmarks and tests.

`streamlit_server(script)` starts `streamlit run SCRIPT` on a free loopback port and
yields its base URL; `chromium_path()` finds Debian's Chromium; `slider_step(page,
label)` measures one keyboard step on a slider, from key press to the page painted after
the rerun's last message, as a user feels it (`instrument(page)` first).
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
# Health checks go straight to the loopback server, never through a proxy. Not
# `urllib.request.urlopen`: its global opener reads *_proxy from the environment once, at
# its first use, and keeps it, so a proxy set at that moment (a user's, or a test's
# monkeypatched dead one) would hide every later server (found when a test that points
# HTTPS_PROXY at a closed port happened to make the process's first request).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
    """Until `/_stcore/health` answers ok (asked directly, never through a proxy); raises
    if the server exits or never answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with _DIRECT.open(url + "/_stcore/health", timeout=2) as r:
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


# Counts the app's WebSocket messages (Streamlit's ForwardMsgs) and when the browser
# painted after the newest one; `sends` keeps when the page sent its latest messages (its
# BackMsgs: a widget's new value, a rerun request), as wall-clock ms since the epoch.
# Install with `instrument(page)` before the first goto.
WS_PROBE = """(() => {
  const Native = window.WebSocket;
  const w = window.__ssdWs = {n: 0, last: 0, bytes: 0, paint: 0, sends: []};
  function Probed(...args) {
    const sock = new Native(...args);
    const send = sock.send.bind(sock);
    sock.send = (data) => {
      w.sends.push(performance.timeOrigin + performance.now());
      if (w.sends.length > 50) w.sends.shift();
      return send(data);
    };
    sock.addEventListener('message', (e) => {
      w.n += 1; w.last = performance.now();
      w.bytes += e.data.byteLength || e.data.size || e.data.length || 0;
      const n = w.n;
      requestAnimationFrame(() => requestAnimationFrame(() => { if (w.n === n) w.paint = performance.now(); }));
    });
    return sock;
  }
  Probed.prototype = Native.prototype;
  Object.assign(Probed, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Probed;
})()"""

STEP_MARK_JS = """() => { const w = window.__ssdWs;
  window.__ssdStep = {t0: performance.now(), n0: w.n, b0: w.bytes}; return true; }"""

# Resolves once the step is over (null after `timeout` ms): at least one message since the mark, the script idle,
# the page painted after the newest message, and `quiet` ms with no message (a rerun's
# messages arrive in bursts). Why not the script-state attribute alone: React may batch a
# fast rerun's running -> notRunning into one render, so the DOM never shows "running".
STEP_DONE_JS = """async ([quiet, timeout]) => {
  const w = window.__ssdWs, m = window.__ssdStep;
  const idle = () => document.querySelector('[data-testid="stApp"]')
      ?.getAttribute('data-test-script-state') === 'notRunning';
  for (;;) {
    await new Promise(r => setTimeout(r, 25));
    const now = performance.now();
    if (w.n > m.n0 && idle() && w.paint >= w.last && now - w.last > quiet) break;
    if (now - m.t0 > timeout) return null;
  }
  return {ms: w.paint - m.t0, server_ms: w.last - m.t0, messages: w.n - m.n0, bytes: w.bytes - m.b0};
}"""


def instrument(page) -> None:
    """Count the app's WebSocket messages on `page` (call before its first `goto`)."""
    page.add_init_script(WS_PROBE)


def step(page, action, quiet_ms: int = 400, timeout_ms: int = 60_000) -> dict:
    """Run `action()` (a key press, a click) and wait until the rerun it causes is over.

    Returns {"ms": key press -> the page painted after the rerun's last message,
    "server_ms": -> that last message arrived, "messages", "bytes": what the rerun sent}.
    Needs `instrument(page)`. Raises if nothing arrives within `timeout_ms` (the action
    did not rerun the script).
    """
    page.evaluate(STEP_MARK_JS)
    action()
    out = page.evaluate(STEP_DONE_JS, [quiet_ms, timeout_ms])
    if out is None:
        raise TimeoutError(f"no rerun within {timeout_ms} ms of the action")
    return out


def slider_step(page, label: str, key: str = "ArrowRight", timeout_ms: int = 60_000) -> dict:
    """One keyboard step on the slider labelled `label` (see `step`)."""
    thumb = page.get_by_role("slider", name=label).first
    thumb.wait_for(timeout=timeout_ms)
    thumb.focus()
    return step(page, lambda: thumb.press(key), timeout_ms=timeout_ms)


# Key press -> the figure's first change: a signature of the figure (the live figure's
# canvas pixels, found in its component's shadow root, or an element's text for the floor
# app) is read on every animation frame from the mark on; the first frame that shows a
# different signature is the first change, timed from the keydown event (the live figure: its canvas and its caption,
# which the same handler redraws; a step that moves no box changes the caption's counts). `watch_figure(page, kind)` arms it; read
# `window.__ssdFirst.t1 - window.__ssdFirst.t0` after the step.
_ARM_FIRST = """(kind) => {
  const canvas = () => {
    if (!window.__ssdCanvas || !window.__ssdCanvas.isConnected) {
      const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot && e.shadowRoot.querySelector('canvas.ssd-canvas'));
      window.__ssdCanvas = host ? host.shadowRoot.querySelector('canvas.ssd-canvas') : null;
    }
    return window.__ssdCanvas;
  };
  const sig = kind === 'canvas' ? () => {
      const c = canvas(); if (!c) return '';
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let h = 0; for (let i = 0; i < d.length; i += 5) h = (h * 31 + d[i]) | 0;
      return String(h) + (c.parentElement.querySelector('.ssd-summary')?.textContent || ''); }
    : () => [...document.querySelectorAll('[data-testid="stMarkdown"]')].map(e => e.innerText).join('|');
  const w = window.__ssdFirst = {t0: performance.now(), armed: performance.now(), sig0: sig(), t1: null};
  // The key press as the page sees it (keyboard events cross shadow roots to the window).
  window.addEventListener('keydown', (e) => { w.t0 = e.timeStamp; }, {capture: true, once: true});
  const tick = () => { if (w !== window.__ssdFirst) return;
    if (sig() !== w.sig0) { w.t1 = performance.now(); return; }
    if (performance.now() - w.armed < 60000) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  return true; }"""


def figure_step(page, label: str, kind: str, key: str = "ArrowRight", timeout_ms: int = 60_000) -> dict:
    """One keyboard step on the slider labelled `label` (exact name): {"first_ms": key press
    -> the figure's first change (`kind` "canvas": the live figure's pixels and caption; "text": the
    page's markdown elements, not the widgets' own labels and values), "ms": -> the page painted after the rerun's last message (the
    value synced to Python, the rest of the page), "server_ms", "messages", "bytes"}."""
    # The live figures' inputs are named exactly by their labels; Streamlit's thumbs are not.
    thumb = page.get_by_role("slider", name=label, exact=kind == "canvas").first
    thumb.wait_for(timeout=timeout_ms)
    thumb.focus()
    page.evaluate(_ARM_FIRST, kind)
    out = step(page, lambda: thumb.press(key), timeout_ms=timeout_ms)
    first = page.evaluate("() => window.__ssdFirst.t1 === null ? null : window.__ssdFirst.t1 - window.__ssdFirst.t0")
    if first is None:
        raise TimeoutError(f"the figure did not change after a step on {label!r}")
    # The step's mark (`step`) came after arming: express both from the arming time.
    lag = page.evaluate("() => window.__ssdStep.t0 - window.__ssdFirst.t0")
    return {**out, "first_ms": first, "ms": max(out["ms"] + lag, first)}
