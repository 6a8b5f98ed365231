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
image or ground truth). It reports errors, p50/p95 seconds per action (action to the page
painted after the rerun's last message, with the expected caption) and the server's RSS
(VmRSS from /proc) cold, after the single session closed (the warm baseline), during and
after each phase. Goals (issues 14 and 20): no error, p95 under 3x the single-session
figure (the browser's and the server's own), RSS after the sessions close within 20% of
the warm baseline.

The server is `benchmarks.soak_server` (the same `streamlit run app.py`, plus a log of
every script run's wall and CPU seconds, and a stack sampler). Each step is split into
Playwright's action, the page sending its message, the server's queue and the server's
runs (`benchmarks.soak_report.PARTS`): the browsers share the machine's cores, so the
browser's seconds alone do not say where the time goes. A failed action leaves a
screenshot and the page's state (script state, status widget, the runs the page saw) in
`--diag-dir`.

Chromium is Debian's (`/usr/bin/chromium`) driven by Python playwright, one browser with
one context (cookies, session) per simulated user.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.browser import CHROMIUM_ARGS, IDLE, STEP_DONE_JS, STEP_MARK_JS, WS_PROBE, free_port
from benchmarks.soak_report import (PhaseProfiles, capture_failure, goals, pct, print_report, rss_summary,
                                    server_steps, server_summary)
from benchmarks.soak_server import RssSampler, read_runs, start_server, stop_server
from ssd.io import atomic_write, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
QUIET_MS = 400  # a rerun is over once no message came for this long (its messages come in bursts)
CAPTION = '[data-testid="stSidebar"] >> text=/GT boxes; model input/'  # the sidebar's image caption
NMS_SLIDERS = ("Score threshold", "NMS IoU threshold", "Top k detections")
DEFAULT_BOX_SLIDERS = ("Input size S (px)", "s_min", "s_max")
# Records every change of the app's script state with the page's clock (for the page
# state of a failed action: which runs the page saw).
RUN_OBSERVER_JS = """
window.__stRuns = [];
new MutationObserver(ms => { for (const m of ms) window.__stRuns.push(
    {s: m.target.getAttribute('data-test-script-state'), t: performance.now()}); })
  .observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
"""


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
    port: int = 0  # the server's port (0: a free one)
    diag_dir: str = "/tmp/ssd_soak_diag"  # a failed action's screenshot and page state


@dataclass
class Recorder:
    """Seconds per action kind, errors, and RSS samples (MB) per phase."""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)  # {tag, action, t0, t1} (wall clock), per action

    def add(self, action: str, s: float, tag: str = "", t0: float = 0.0, **extra: float | None) -> None:
        self.seconds.setdefault(action, []).append(s)
        self.steps.append({"tag": tag, "action": action, "t0": t0, "t1": t0 + s, **extra})

    def summary(self) -> dict:
        return {a: {"n": len(v), "p50_s": pct(v, 50), "p95_s": pct(v, 95)} for a, v in sorted(self.seconds.items())}


def _log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
        """Run `do()`, wait for the rerun it causes to be over (or, with `wait_for`, for that
        selector and an idle app), check, record seconds.

        The rerun is over when the page got a WebSocket message after the action, the app
        is idle and no message came for `QUIET_MS` (`benchmarks.browser.STEP_DONE_JS`); the
        seconds run from the action to the page painted after the last message, plus any
        wait for the caption. Not the script-state attribute alone: React batches a fast
        rerun's running -> notRunning into one render (a 20 ms fragment rerun, or any rerun
        whose messages a busy browser handles in one task), and then the DOM never shows
        "running" (the cause of the soak's 180 s timeouts before)."""
        page, timeout_ms = self.page, self.cfg.action_timeout_s * 1000
        if not wait_for:
            await page.evaluate(STEP_MARK_JS)
        t0, t0_wall = time.perf_counter(), time.time()
        try:
            await do()
            do_s = time.perf_counter() - t0  # Playwright's part: actionability checks, input events
            if wait_for:
                await page.wait_for_selector(wait_for, state="attached", timeout=timeout_ms)
                step_s = messages = None
            else:
                out = await page.evaluate(STEP_DONE_JS, [QUIET_MS, timeout_ms])
                if out is None:
                    raise TimeoutError(f"no rerun was over within {timeout_ms / 1000:.0f} s of the action")
                step_s, messages = out["ms"] / 1000, out["messages"]
            await page.wait_for_selector(IDLE, timeout=timeout_ms)
            waited = await self.check(action, timeout_ms)
        except Exception as e:  # noqa: BLE001: every failure is counted and reported
            self.rec.errors.append(f"{self.tag} {action}: {type(e).__name__}: {str(e)[:300]}")
            _log(f"{self.tag} {action}: ERROR {type(e).__name__}: {str(e)[:200]}")
            await capture_failure(page, f"{self.tag}_{action}", t0_wall, self.cfg.diag_dir)
            raise SessionAborted(self.tag) from e  # later checks would only repeat this one
        # The caption came after the messages waited for (an upload: its file-URL reply, then
        # the upload, then the rerun): the step ended when the caption was right.
        seconds = time.perf_counter() - t0 if step_s is None or waited else step_s
        sends = [t / 1000 for t in await page.evaluate("() => window.__ssdWs ? window.__ssdWs.sends : []")]
        first_send = min((t for t in sends if t >= t0_wall), default=None)
        self.rec.add(action, seconds, self.tag, t0_wall, t_end=time.time(), do_s=round(do_s, 4), messages=messages,
                     send_s=None if first_send is None else round(first_send - t0_wall, 4))
        _log(f"{self.tag} {action}: {seconds:.2f} s")

    async def check(self, action: str, timeout_ms: float) -> bool:
        """No exception box, and the sidebar caption names this session's own image, size and
        box count (within `timeout_ms`); True when the caption had to be waited for."""
        page = self.page
        if await page.locator('[data-testid="stException"]').count():
            text = await page.locator('[data-testid="stException"]').first.inner_text()
            raise RuntimeError(f"exception shown: {text[:300]}")
        if self.expect is None:
            return False
        caption = self.sidebar.get_by_text(" GT boxes; model input", exact=False).first
        deadline = time.perf_counter() + timeout_ms / 1000
        for polls in itertools.count():  # the caption may still be the previous run's for a moment
            shown = (await caption.inner_text()).replace("\u2060", "")
            if shown.startswith(self.expect):
                return polls > 0
            if time.perf_counter() > deadline:
                raise AssertionError(f"ISOLATION: expected {self.expect!r}, saw {shown!r}")
            await asyncio.sleep(0.1)

    async def open(self) -> None:
        """Load the app: over when the sidebar's caption is drawn and the app is idle."""
        await self.act("open", lambda: self.page.goto(self.base), wait_for=CAPTION)

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
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1100}, user_agent=f"ssd-soak session{i}")
        ctx.set_default_timeout(cfg.action_timeout_s * 1000)  # clicks and file inputs wait as long
        await ctx.add_init_script(RUN_OBSERVER_JS)
        await ctx.add_init_script(WS_PROBE)
        contexts.append(ctx)
        sessions.append(Session(await ctx.new_page(), base, f"session{i}", rec, cfg))
    try:
        await asyncio.gather(*(action_script(s, up, rounds, deadline) for s, up in zip(sessions, uploads)))
    finally:
        for ctx in contexts:
            await ctx.close()


async def run_uploads(browser, base: str, folder: Path, cfg: SoakConfig, rec: Recorder, deadline: float) -> None:
    """One session uploads `cfg.uploads` distinct images on the NMS page."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1100}, user_agent="ssd-soak uploader")
    ctx.set_default_timeout(cfg.action_timeout_s * 1000)
    await ctx.add_init_script(RUN_OBSERVER_JS)
    await ctx.add_init_script(WS_PROBE)
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


async def run_phases(cfg: SoakConfig, base: str, folder: Path, sampler: RssSampler, deadline: float,
                     profiles: PhaseProfiles) -> dict:
    """Warm-up, single session, K sessions, uploads; one Recorder per phase; the server's
    stack samples of the single and concurrent phases into `profiles`."""
    from playwright.async_api import async_playwright

    recs = {"warmup": Recorder(), "single": Recorder(), "concurrent": Recorder(), "uploads": Recorder()}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=cfg.chromium, args=CHROMIUM_ARGS)
        try:
            sampler.phase = "warmup"  # imports torch, loads the model, compiles nothing later
            await run_sessions(browser, base, [session_upload(folder, 90)], cfg, recs["warmup"], deadline, 1)
            await _wait_reclaimed(sampler, "warm_baseline", cfg)
            sampler.phase = "single"
            with profiles.phase("single"):
                await run_sessions(browser, base, [session_upload(folder, 91)], cfg, recs["single"], deadline,
                                   cfg.rounds)
            await _wait_reclaimed(sampler, "single_closed", cfg)
            sampler.phase = "concurrent"
            ups = [session_upload(folder, i) for i in range(cfg.sessions)]
            with profiles.phase("concurrent"):
                await run_sessions(browser, base, ups, cfg, recs["concurrent"], deadline, cfg.rounds)
            await _wait_reclaimed(sampler, "concurrent_closed", cfg)
            sampler.phase = "uploads"
            await run_uploads(browser, base, folder, cfg, recs["uploads"], deadline)
            await _wait_reclaimed(sampler, "uploads_closed", cfg)
        finally:
            await browser.close()
    return recs


def run(cfg: SoakConfig) -> dict:
    """Start the server, run every phase, stop it; the report as a dict."""
    folder = Path(tempfile.mkdtemp(prefix="ssd_soak_"))
    port = cfg.port or free_port()
    t_start, load_start = time.time(), os.getloadavg()
    proc = start_server(port, cfg.session_ttl_s, folder / "runs", folder / "streamlit.log")
    rss_rec = Recorder()
    sampler = RssSampler(proc.pid, rss_rec)
    sampler.start()
    try:
        profiles = PhaseProfiles(folder / "profile.json")
        recs = asyncio.run(run_phases(cfg, f"http://127.0.0.1:{port}", folder, sampler,
                                      deadline=t_start + 60 * cfg.minutes, profiles=profiles))
    finally:
        sampler.stop()
        stop_server(proc)
    rss = rss_summary(rss_rec.rss_mb)
    runs = read_runs(folder / "runs.jsonl")
    joined = {ph: server_steps(r.steps, runs) for ph, r in recs.items()}
    actions = {ph: r.summary() for ph, r in recs.items()}
    server = {ph: server_summary(j) for ph, j in joined.items()}
    errors = {ph: r.errors for ph, r in recs.items()}
    return {
        "config": asdict(cfg), "wall_s": round(time.time() - t_start, 1), "cpu_count": os.cpu_count(),
        "load_avg_start": load_start, "load_avg_end": os.getloadavg(), "server_log": str(folder / "streamlit.log"),
        "actions": actions, "server": server, "errors": errors,
        "errors_count": {ph: len(e) for ph, e in errors.items()},
        "rss_mb": rss, "server_process_cpu_s": {ph: {"process": round(v[-1] - v[0], 2),
                                                     "script_runs": round(sum(st["cpu_s"] for st in joined.get(ph, [])), 2)}
                                                for ph, v in sampler.cpu_s.items()},
        "server_profile": profiles.top(), "goals": goals(actions, server, errors, rss, cfg.sessions), "steps": joined,
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
    ap.add_argument("--port", type=int, default=d.port, help="the server's port (default: a free one)")
    ap.add_argument("--diag-dir", default=d.diag_dir, help="where a failed action's screenshot and page state go")
    ap.add_argument("--out", default=d.out, help="JSON report path (written atomically)")
    a = ap.parse_args(argv)
    if a.sessions < 1 or a.rounds < 1 or a.uploads < 0 or a.minutes <= 0:
        ap.error("--sessions and --rounds must be >= 1, --uploads >= 0, --minutes > 0")
    if not Path(a.chromium).is_file():
        ap.error(f"--chromium {a.chromium}: no such file (apt-get install -y chromium)")
    cfg = SoakConfig(sessions=a.sessions, rounds=a.rounds, uploads=a.uploads, minutes=a.minutes,
                     session_ttl_s=a.session_ttl, chromium=a.chromium, out=a.out, port=a.port, diag_dir=a.diag_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the server (finally)
    report = run(cfg)
    out = Path(cfg.out) if Path(cfg.out).is_absolute() else ROOT / cfg.out
    write_text_atomic(out, json.dumps(report, indent=1, default=str))
    print_report(report)
    print(f"\nreport: {out}")
    return 0 if all(g["ok"] for g in report["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
