"""Soak the explorer server with real browser sessions (issue 14): not a timed test.

    .venv/bin/python -m benchmarks.soak --sessions 6 --minutes 25

Starts `streamlit run app.py` on loopback (the `make run` configuration, plus a short
`server.disconnectedSessionTTL` so closed sessions are reclaimed within the run), then:

1. one browser session runs the action script: open the app, upload its own image and a
   VOC file with its own number of boxes, visit the NMS and Default boxes pages and
   move each of their sliders right then left, for `--rounds` rounds;
2. `--sessions` sessions run the same script at once, each with an image of its own
   size and colour and its own box count;
3. one session uploads `--uploads` distinct images on the NMS page.

After every action the session checks that no exception box is shown and that the
sidebar caption names its own image, size and box count (no session may see another's
image or ground truth). It reports errors, p50/p95 seconds per action (action to idle
page with the expected caption) and the server's RSS (VmRSS from /proc) cold, after the
single session closed (the warm baseline), during and after each phase. Goals (issue
14): no error, p95 under 3x the single-session figure, RSS after the sessions close
within 20% of the warm baseline.

Chromium is Debian's (`/usr/bin/chromium`) driven by Python playwright, one browser with
one context (cookies, session) per simulated user.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ssd.io import atomic_write, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
NMS_SLIDERS = ("Score threshold", "NMS IoU threshold", "Top k detections")
DEFAULT_BOX_SLIDERS = ("Input size S (px)", "s_min", "s_max")
# Records every change of the app's script state with the page's clock.
RUN_OBSERVER_JS = """
window.__stRuns = [];
new MutationObserver(ms => { for (const m of ms) window.__stRuns.push(
    {s: m.target.getAttribute('data-test-script-state'), t: performance.now()}); })
  .observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
"""
# True once a run that started after t0 has finished.
RUN_FINISHED_JS = """t0 => { let ran = false;
  for (const e of window.__stRuns) { if (e.t < t0) continue;
    if (e.s === 'running') ran = true; else if (ran && e.s === 'notRunning') return true; }
  return false; }"""


@dataclass(frozen=True)
class SoakConfig:
    sessions: int = 6  # concurrent browser sessions in phase 2
    rounds: int = 2  # times each session repeats the page-and-slider script
    uploads: int = 60  # distinct uploads of phase 3, one session
    minutes: float = 25.0  # wall-clock bound for the whole soak; phases left out say so
    session_ttl_s: int = 15  # server.disconnectedSessionTTL: a closed session is kept this long
    settle_s: float = 10.0  # extra wait after the TTL before reading the "after" RSS
    action_timeout_s: float = 180.0  # one action (upload, page, slider) may take this long
    chromium: str = "/usr/bin/chromium"  # Debian's Chromium
    out: str = "test-artifacts/soak.json"  # the full report, written atomically


@dataclass
class Recorder:
    """Seconds per action kind, errors, and RSS samples (MB) per phase."""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)

    def add(self, action: str, s: float) -> None:
        self.seconds.setdefault(action, []).append(s)

    def summary(self) -> dict:
        return {a: {"n": len(v), "p50_s": _pct(v, 50), "p95_s": _pct(v, 95)} for a, v in sorted(self.seconds.items())}


def _log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


# ---------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, ttl_s: int, runs_dir: Path, log_path: Path) -> subprocess.Popen:
    """`streamlit run app.py` on 127.0.0.1:port (config.toml as `make run` uses it)."""
    argv = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.disconnectedSessionTTL", str(ttl_s)]
    env = dict(os.environ, SSD_RUNS_DIR=str(runs_dir))
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log_path, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on port {port}; see {log_path}")


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


class RssSampler(threading.Thread):
    """Samples the server's RSS every `every_s` into `rec.rss_mb[phase]`."""

    def __init__(self, pid: int, rec: Recorder, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.rec, self.every_s = pid, rec, every_s
        self.phase = "cold"
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.rec.rss_mb.setdefault(self.phase, []).append(round(rss_mb(self.pid), 1))
            except (OSError, RuntimeError):
                return
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()


# ---------------------------------------------------------------- test inputs
@dataclass(frozen=True)
class Upload:
    path: Path  # the file the browser uploads
    name: str  # its file name, as the sidebar caption shows it
    size_wh: tuple[int, int]  # (W, H) pixels
    n_gt: int  # boxes in this session's VOC file (0: no file)


def make_image(path: Path, size_wh: tuple[int, int], seed: int) -> None:
    """A noisy image of its own colour (noise keeps PNG decoding honest)."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    base = rng.integers(0, 256, size=3)
    arr = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)  # (H, W, 3)
    atomic_write(path, lambda f: Image.fromarray(arr).save(f, format="PNG"))


def make_voc(path: Path, n_boxes: int, size_wh: tuple[int, int]) -> None:
    w, h = size_wh
    objs = "".join(
        f"<object><name>cat</name><bndbox><xmin>{4 + 9 * i}</xmin><ymin>{4 + 7 * i}</ymin>"
        f"<xmax>{w // 2 + 9 * i}</xmax><ymax>{h // 2 + 7 * i}</ymax></bndbox></object>" for i in range(n_boxes))
    write_text_atomic(path, f"<annotation><size><width>{w}</width><height>{h}</height></size>{objs}</annotation>")


def session_upload(folder: Path, i: int) -> Upload:
    """Session i's own image (its own size and colour) and VOC file with i+1 boxes."""
    size_wh = (300 + 17 * i, 220 + 11 * i)
    path = folder / f"session{i}.png"
    make_image(path, size_wh, seed=i)
    make_voc(folder / f"session{i}.xml", i + 1, size_wh)
    return Upload(path, path.name, size_wh, i + 1)


# ---------------------------------------------------------------- one browser session
class SessionAborted(Exception):
    """A session stops at its first error (recorded); the other sessions go on."""


class Session:
    """One browser context = one Streamlit session, with its own expected caption."""

    def __init__(self, page, base: str, tag: str, rec: Recorder, cfg: SoakConfig):
        self.page, self.base, self.tag, self.rec, self.cfg = page, base, tag, rec, cfg
        self.expect: str | None = None  # the caption prefix this session must see

    @property
    def sidebar(self):
        return self.page.locator('[data-testid="stSidebar"]')

    async def act(self, action: str, do, wait_for: str | None = None) -> None:
        """Run `do()`, wait for the rerun it causes to finish (or, with `wait_for`, for
        that selector and an idle app), check, record seconds."""
        page, timeout_ms = self.page, self.cfg.action_timeout_s * 1000
        t0_page = await page.evaluate("performance.now()")
        t0 = time.perf_counter()
        try:
            await do()
            if wait_for:
                await page.wait_for_selector(wait_for, state="attached", timeout=timeout_ms)
            else:
                await page.wait_for_function(RUN_FINISHED_JS, arg=t0_page, timeout=timeout_ms)
            await page.wait_for_selector(IDLE, timeout=timeout_ms)
            await self.check(action, timeout_ms)
        except Exception as e:  # noqa: BLE001: every failure is counted and reported
            self.rec.errors.append(f"{self.tag} {action}: {type(e).__name__}: {str(e)[:300]}")
            _log(f"{self.tag} {action}: ERROR {type(e).__name__}: {str(e)[:200]}")
            raise SessionAborted(self.tag) from e  # later checks would only repeat this one
        self.rec.add(action, time.perf_counter() - t0)
        _log(f"{self.tag} {action}: {time.perf_counter() - t0:.2f} s")

    async def check(self, action: str, timeout_ms: float) -> None:
        page = self.page
        if await page.locator('[data-testid="stException"]').count():
            text = await page.locator('[data-testid="stException"]').first.inner_text()
            raise RuntimeError(f"exception shown: {text[:300]}")
        if self.expect is None:
            return
        caption = self.sidebar.get_by_text(" GT boxes; model input", exact=False).first
        deadline = time.perf_counter() + timeout_ms / 1000
        while True:  # the caption may still be the previous run's for a moment
            shown = (await caption.inner_text()).replace("\u2060", "")
            if shown.startswith(self.expect):
                return
            if time.perf_counter() > deadline:
                raise AssertionError(f"ISOLATION: expected {self.expect!r}, saw {shown!r}")
            await asyncio.sleep(0.1)

    async def open(self) -> None:
        await self.act("open", lambda: self.page.goto(self.base))

    async def upload(self, up: Upload) -> None:
        """Upload `up`'s image (and its VOC file when it has boxes)."""
        def uploader(label: str):
            return self.sidebar.locator('[data-testid="stFileUploader"]').filter(has_text=label) \
                .locator('[data-testid="stFileUploaderDropzoneInput"]').first

        if not await uploader("Your image").count():
            radio = self.sidebar.locator('[data-testid="stRadioGroup"]').get_by_text("Upload", exact=True)
            await self.act("switch_to_upload", radio.click, wait_for='[data-testid="stSidebar"] '
                           '[data-testid="stFileUploader"]:has-text("Your image") input')
        w, h = up.size_wh
        self.expect = f"{up.name}: {w}x{h} px, 0 GT boxes"
        await self.act("upload_image", lambda: uploader("Your image").set_input_files(str(up.path)))
        if up.n_gt:
            await self.sidebar.get_by_text("Ground-truth boxes", exact=False).first.click()
            gt_drop = uploader("Annotation file")
            self.expect = f"{up.name}: {w}x{h} px, {up.n_gt} GT boxes"
            await self.act("upload_gt", lambda: gt_drop.set_input_files(str(up.path.with_suffix(".xml"))))

    async def goto_page(self, title: str, action: str) -> None:
        link = self.sidebar.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first
        await self.act(action, link.click)

    async def move_sliders(self, labels: tuple[str, ...], action: str) -> None:
        for label in labels:
            # The live figures' native range inputs (in their shadow roots, which Playwright's
            # role locator pierces) or, when the component is off, Streamlit's slider thumb.
            thumb = self.page.get_by_role("slider", name=label, exact=True).first
            for key in ("ArrowRight", "ArrowLeft"):
                async def press(thumb=thumb, key=key):
                    await thumb.focus()
                    await thumb.press(key)
                await self.act(action, press)


async def action_script(session: Session, up: Upload, rounds: int, deadline: float) -> None:
    """What every session of phases 1 and 2 does (until its first error)."""
    try:
        await _script_steps(session, up, rounds, deadline)
    except SessionAborted:
        pass


async def _script_steps(session: Session, up: Upload, rounds: int, deadline: float) -> None:
    await session.open()
    await session.upload(up)
    for _ in range(rounds):
        if time.time() > deadline:
            session.rec.errors.append(f"{session.tag}: stopped at the --minutes bound")
            return
        await session.goto_page("NMS", "page_nms")
        await session.move_sliders(NMS_SLIDERS, "slider_nms")
        await session.goto_page("Default boxes", "page_default_boxes")
        await session.move_sliders(DEFAULT_BOX_SLIDERS, "slider_default_boxes")
        await session.goto_page("Home", "page_home")


# ---------------------------------------------------------------- phases
async def run_sessions(browser, base: str, uploads: list[Upload], cfg: SoakConfig, rec: Recorder,
                       deadline: float, rounds: int) -> None:
    """One context (one Streamlit session) per upload, all running the script at once."""
    contexts, sessions = [], []
    for i in range(len(uploads)):
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1100})
        ctx.set_default_timeout(cfg.action_timeout_s * 1000)  # clicks and file inputs wait as long
        await ctx.add_init_script(RUN_OBSERVER_JS)
        contexts.append(ctx)
        sessions.append(Session(await ctx.new_page(), base, f"session{i}", rec, cfg))
    try:
        await asyncio.gather(*(action_script(s, up, rounds, deadline) for s, up in zip(sessions, uploads)))
    finally:
        for ctx in contexts:
            await ctx.close()


async def run_uploads(browser, base: str, folder: Path, cfg: SoakConfig, rec: Recorder, deadline: float) -> None:
    """One session uploads `cfg.uploads` distinct images on the NMS page."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1100})
    ctx.set_default_timeout(cfg.action_timeout_s * 1000)
    await ctx.add_init_script(RUN_OBSERVER_JS)
    session = Session(await ctx.new_page(), base, "uploader", rec, cfg)
    try:
        await session.open()
        await session.goto_page("NMS", "page_nms")
        await _upload_many(session, folder, cfg, rec, deadline)
    except SessionAborted:
        pass
    finally:
        await ctx.close()


async def _upload_many(session: Session, folder: Path, cfg: SoakConfig, rec: Recorder, deadline: float) -> None:
    for k in range(cfg.uploads):
        if time.time() > deadline:
            rec.errors.append(f"uploader: stopped at the --minutes bound after {k} uploads")
            return
        size_wh = (120 + 5 * k, 100 + 3 * k)
        path = folder / f"upload{k:02d}.png"
        make_image(path, size_wh, seed=1000 + k)
        await session.upload(Upload(path, path.name, size_wh, 0))


async def _wait_reclaimed(sampler: RssSampler, phase: str, cfg: SoakConfig) -> None:
    sampler.phase = phase
    await asyncio.sleep(cfg.session_ttl_s + cfg.settle_s)


async def run_phases(cfg: SoakConfig, base: str, folder: Path, sampler: RssSampler, deadline: float) -> dict:
    """Warm-up, single session, K sessions, uploads; one Recorder per phase."""
    from playwright.async_api import async_playwright

    recs = {"warmup": Recorder(), "single": Recorder(), "concurrent": Recorder(), "uploads": Recorder()}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=cfg.chromium, args=CHROMIUM_ARGS)
        try:
            sampler.phase = "warmup"  # imports torch, loads the model, compiles nothing later
            await run_sessions(browser, base, [session_upload(folder, 90)], cfg, recs["warmup"], deadline, 1)
            await _wait_reclaimed(sampler, "warm_baseline", cfg)
            sampler.phase = "single"
            await run_sessions(browser, base, [session_upload(folder, 91)], cfg, recs["single"], deadline, cfg.rounds)
            await _wait_reclaimed(sampler, "single_closed", cfg)
            sampler.phase = "concurrent"
            ups = [session_upload(folder, i) for i in range(cfg.sessions)]
            await run_sessions(browser, base, ups, cfg, recs["concurrent"], deadline, cfg.rounds)
            await _wait_reclaimed(sampler, "concurrent_closed", cfg)
            sampler.phase = "uploads"
            await run_uploads(browser, base, folder, cfg, recs["uploads"], deadline)
            await _wait_reclaimed(sampler, "uploads_closed", cfg)
        finally:
            await browser.close()
    return recs


# ---------------------------------------------------------------- report
def _rss_summary(samples: dict[str, list[float]]) -> dict:
    return {ph: {"first": v[0], "max": max(v), "last": v[-1], "n": len(v)} for ph, v in samples.items() if v}


def goals(recs: dict[str, Recorder], rss: dict, sessions: int) -> dict:
    """Issue 14's goals, each with the figures it was judged on."""
    single, multi = recs["single"].summary(), recs["concurrent"].summary()
    ratios = {a: round(multi[a]["p95_s"] / single[a]["p95_s"], 2) for a in multi if a in single}
    base = rss.get("single_closed", {}).get("last")
    after = rss.get("concurrent_closed", {}).get("last")
    isolation = [e for r in recs.values() for e in r.errors if "ISOLATION" in e]
    return {
        "no_error": {"ok": not any(r.errors for r in recs.values()),
                     "errors": sum(len(r.errors) for r in recs.values())},
        "sessions": {"ok": sessions >= 6, "value": sessions},
        "p95_under_3x_single": {"ok": bool(ratios) and max(ratios.values()) < 3.0, "ratios": ratios},
        "rss_back_within_20pct": {"ok": bool(base and after) and abs(after - base) <= 0.2 * base,
                                  "baseline_mb": base, "after_mb": after,
                                  "change_pct": round(100 * (after - base) / base, 1) if base and after else None},
        "no_session_sees_another": {"ok": not isolation, "mismatches": isolation[:10]},
    }


def print_report(report: dict) -> None:
    for phase in ("single", "concurrent", "uploads"):
        print(f"\n{phase}: {report['errors_count'][phase]} errors")
        for action, s in report["actions"][phase].items():
            print(f"  {action:22s} n={s['n']:4d}  p50 {s['p50_s']:7.2f} s  p95 {s['p95_s']:7.2f} s")
    print("\nserver RSS (MB): " + ", ".join(f"{ph} last {v['last']:.0f} (max {v['max']:.0f})"
                                         for ph, v in report["rss_mb"].items()))
    print("\ngoals:")
    for name, g in report["goals"].items():
        print(f"  {'PASS' if g['ok'] else 'FAIL'} {name}: " + json.dumps({k: v for k, v in g.items() if k != 'ok'}))
    for phase, errs in report["errors"].items():
        for e in errs[:20]:
            print(f"  error [{phase}] {e}")


def run(cfg: SoakConfig) -> dict:
    """Start the server, run every phase, stop it; the report as a dict."""
    folder = Path(tempfile.mkdtemp(prefix="ssd_soak_"))
    port = _free_port()
    t_start = time.time()
    proc = start_server(port, cfg.session_ttl_s, folder / "runs", folder / "streamlit.log")
    rss_rec = Recorder()
    sampler = RssSampler(proc.pid, rss_rec)
    sampler.start()
    try:
        recs = asyncio.run(run_phases(cfg, f"http://127.0.0.1:{port}", folder, sampler,
                                      deadline=t_start + 60 * cfg.minutes))
    finally:
        sampler.stop()
        stop_server(proc)
    rss = _rss_summary(rss_rec.rss_mb)
    return {
        "config": asdict(cfg), "wall_s": round(time.time() - t_start, 1), "cpu_count": os.cpu_count(),
        "load_avg_end": os.getloadavg(), "server_log": str(folder / "streamlit.log"),
        "actions": {ph: r.summary() for ph, r in recs.items()},
        "errors": {ph: r.errors for ph, r in recs.items()},
        "errors_count": {ph: len(r.errors) for ph, r in recs.items()},
        "rss_mb": rss, "goals": goals(recs, rss, cfg.sessions),
    }


def main(argv: list[str] | None = None) -> int:
    d = SoakConfig()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=d.sessions, help="concurrent sessions (phase 2)")
    ap.add_argument("--rounds", type=int, default=d.rounds, help="page-and-slider rounds per session")
    ap.add_argument("--uploads", type=int, default=d.uploads, help="distinct uploads in phase 3")
    ap.add_argument("--minutes", type=float, default=d.minutes, help="wall-clock bound for the whole soak")
    ap.add_argument("--session-ttl", type=int, default=d.session_ttl_s, help="server.disconnectedSessionTTL (s)")
    ap.add_argument("--chromium", default=d.chromium)
    ap.add_argument("--out", default=d.out, help="JSON report path (written atomically)")
    a = ap.parse_args(argv)
    if a.sessions < 1 or a.rounds < 1 or a.uploads < 0 or a.minutes <= 0:
        ap.error("--sessions and --rounds must be >= 1, --uploads >= 0, --minutes > 0")
    if not Path(a.chromium).is_file():
        ap.error(f"--chromium {a.chromium}: no such file (apt-get install -y chromium)")
    cfg = SoakConfig(sessions=a.sessions, rounds=a.rounds, uploads=a.uploads, minutes=a.minutes,
                     session_ttl_s=a.session_ttl, chromium=a.chromium, out=a.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the server (finally)
    report = run(cfg)
    out = Path(cfg.out) if Path(cfg.out).is_absolute() else ROOT / cfg.out
    write_text_atomic(out, json.dumps(report, indent=1, default=str))
    print_report(report)
    print(f"\nreport: {out}")
    return 0 if all(g["ok"] for g in report["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
