"""The soak's report (`benchmarks.soak`): goals, the server's own time per step, a failed
action's page state, printing.

The browser's seconds per action (`Recorder.seconds`) include the browsers' own work on
the same cores as the server. `server_steps` joins each recorded step with the script
runs the server did for that session during it (`benchmarks.soak_server`'s runs log,
matched by the session's User-Agent and the step's wall-clock window): per step the
runs' wall seconds (`server_s`), their CPU seconds (`cpu_s`) and how long after the
action the first run started (`start_s`: the browser sending it plus the server's queue).
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ssd.io import write_text_atomic

SOAK_UA = "ssd-soak "  # + the session's tag: the User-Agent each soak browser session sends


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of `values`, rounded to ms (nan when empty)."""
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def rss_summary(samples: dict[str, list[float]]) -> dict:
    """First, max and last RSS sample (MB) per phase."""
    return {ph: {"first": v[0], "max": max(v), "last": v[-1], "n": len(v)} for ph, v in samples.items() if v}


def server_steps(steps: list[dict], runs: list[dict]) -> list[dict]:
    """Each step ({tag, action, t0, t_end, do_s, send_s}) with the server's runs for its
    session that started inside it: `server_s` (their wall seconds), `cpu_s`, `n_runs`, `start_s`."""
    by_ua: dict[str, list[dict]] = {}
    for r in runs:
        by_ua.setdefault(r.get("ua", ""), []).append(r)
    out = []
    for st in steps:
        end = st.get("t_end", st["t1"])  # the wall clock when the step's checks were over
        mine = [r for r in by_ua.get(SOAK_UA + st["tag"], []) if st["t0"] <= r["t0"] <= end]
        start = round(min(r["t0"] for r in mine) - st["t0"], 4) if mine else None
        send = st.get("send_s")
        out.append({**st, "n_runs": len(mine), "server_s": round(sum(r["wall_s"] for r in mine), 4),
                    "cpu_s": round(sum(r["cpu_s"] for r in mine), 4), "start_s": start,
                    "queue_s": round(start - send, 4) if start is not None and send is not None else None})
    return out


# Where a step's time goes, in order (each a key of `server_steps`' records, seconds):
PARTS = {
    "do_s": "Playwright's action (actionability checks, input events)",
    "send_s": "the action -> the page's first WebSocket message",
    "queue_s": "that message -> the server starts the session's script run",
    "server_s": "the server's script runs (wall)",
    "cpu_s": "their CPU (the script thread)",
    "messages": "WebSocket messages the page received (one per element the rerun drew, and more)",
}


def server_summary(joined: list[dict]) -> dict:
    """Per action: n, and p50/p95 of each of `PARTS` over the steps that caused a server
    run (steps that caused none are counted apart, `no_run`)."""
    out: dict[str, dict] = {}
    for action in sorted({s["action"] for s in joined}):
        ran = [s for s in joined if s["action"] == action and s["n_runs"]]
        row = {"n": len(ran), "no_run": sum(1 for s in joined if s["action"] == action) - len(ran)}
        for part in ("start_s", *PARTS):
            values = [s[part] for s in ran if s.get(part) is not None]
            name, unit = (part[:-2], "_s") if part.endswith("_s") else (part, "")  # server_s -> server_p50_s
            row[f"{name}_p50{unit}"], row[f"{name}_p95{unit}"] = pct(values, 50), pct(values, 95)
        out[action] = row
    return out


def _ratios(single: dict, multi: dict, key: str) -> dict:
    return {a: round(multi[a][key] / single[a][key], 2) for a in multi
            if a in single and single[a][key] and single[a][key] == single[a][key]}  # not 0, not nan


def goals(actions: dict, server: dict, errors: dict, rss: dict, sessions: int) -> dict:
    """The soak's goals (issues 14 and 20), each with the figures it was judged on."""
    ratios = _ratios(actions["single"], actions["concurrent"], "p95_s")
    server_ratios = _ratios(server.get("single", {}), server.get("concurrent", {}), "server_p95_s")
    base = rss.get("single_closed", {}).get("last")
    after = rss.get("concurrent_closed", {}).get("last")
    isolation = [e for errs in errors.values() for e in errs if "ISOLATION" in e]
    return {
        "no_error": {"ok": not any(errors.values()), "errors": sum(len(e) for e in errors.values())},
        "sessions": {"ok": sessions >= 6, "value": sessions},
        "p95_under_3x_single": {"ok": bool(ratios) and max(ratios.values()) < 3.0, "ratios": ratios},
        "server_p95_under_3x_single": {"ok": bool(server_ratios) and max(server_ratios.values()) < 3.0,
                                       "ratios": server_ratios},
        "rss_back_within_20pct": {"ok": bool(base and after) and abs(after - base) <= 0.2 * base,
                                  "baseline_mb": base, "after_mb": after,
                                  "change_pct": round(100 * (after - base) / base, 1) if base and after else None},
        "no_session_sees_another": {"ok": not isolation, "mismatches": isolation[:10]},
    }


# ---------------------------------------------------------------- a failed action
# What the page shows when an action fails: is a run stuck ("running"), is the WebSocket
# gone (the status widget's "Connecting"), which runs did the page see, what is on it.
PAGE_STATE_JS = """() => { const q = s => document.querySelector(s);
  const txt = s => [...document.querySelectorAll(s)].map(e => e.innerText.slice(0, 300));
  return {url: location.href, now: performance.now(),
    script_state: q('[data-testid="stApp"]')?.getAttribute('data-test-script-state'),
    status_widget: txt('[data-testid="stStatusWidget"]'),
    connection: txt('[data-testid="stConnectionStatus"], [data-testid="stAppConnectionStatus"]'),
    runs_tail: (window.__stRuns || []).slice(-12),
    exceptions: txt('[data-testid="stException"]'), spinners: txt('[data-testid="stSpinner"]'),
    skeletons: document.querySelectorAll('[data-testid="stSkeleton"]').length,
    stale: document.querySelectorAll('[data-stale="true"]').length,
    uploaders: txt('[data-testid="stSidebar"] [data-testid="stFileUploader"]'),
    sidebar: (q('[data-testid="stSidebar"]')?.innerText || '').slice(0, 1500),
    main: (q('[data-testid="stMain"]')?.innerText || '').slice(0, 1500)}; }"""


async def capture_failure(page, name: str, t0_wall: float, folder: str) -> None:
    """A screenshot and the page's state (PAGE_STATE_JS) of a failed action, into `folder`."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        await page.screenshot(path=str(out / f"{name}.png"), full_page=True, timeout=30_000)
        state = await page.evaluate(PAGE_STATE_JS)
    except Exception as e:  # noqa: BLE001: a page that cannot be read says so
        state = {"unreadable": f"{type(e).__name__}: {e}"}
    state.update(action_started=t0_wall, failed_at=time.time())
    write_text_atomic(out / f"{name}.json", json.dumps(state, indent=1))
    print(f"[soak {time.strftime('%H:%M:%S')}] {name}: page state in {out / name}.json: script "
          f"{state.get('script_state')}, status {state.get('status_widget')}, runs {state.get('runs_tail', [])[-3:]}",
          file=sys.stderr, flush=True)


class PhaseProfiles:
    """The server's stack samples (`benchmarks.soak_server.StackSampler`, cumulative counts
    in `path`) taken during a phase: `with profiles.phase(name):` diffs them."""

    def __init__(self, path: Path, settle_s: float = 2.5):
        self.path, self.settle_s, self.phases = Path(path), settle_s, {}  # the sampler writes every 2 s

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())["counts"]
        except (OSError, ValueError, KeyError):
            return {}

    @contextlib.contextmanager
    def phase(self, name: str):
        before = self._read()
        try:
            yield
        finally:
            time.sleep(self.settle_s)
            after = self._read()
            self.phases[name] = {kind: {k: n - before.get(kind, {}).get(k, 0) for k, n in c.items()}
                                 for kind, c in after.items()}

    def top(self, n: int = 12) -> dict:
        """Per phase and kind of thread: the sample count and the `n` commonest innermost
        frames ("leaf") and innermost project frames ("own"), as shares of the samples."""
        out = {}
        for name, kinds in self.phases.items():
            out[name] = {}
            for kind, c in kinds.items():
                total = c.get("#samples", 0)
                if not total:
                    continue
                row = {"samples": total}
                for prefix in ("own ", "leaf "):
                    items = sorted(((k[len(prefix):], v) for k, v in c.items() if k.startswith(prefix) and v > 0),
                                   key=lambda kv: -kv[1])[:n]
                    row[prefix.strip()] = [[k, round(v / total, 3)] for k, v in items]
                out[name][kind] = row
        return out


def print_report(report: dict) -> None:
    """The report's figures as lines of text (stdout)."""
    print("per action: browser p50/p95 s | server p50/p95 s, cpu p95 | p95 of: do (Playwright's action), "
          "send (action -> first message sent), queue (sent -> the server's run starts)")
    for phase in ("single", "concurrent", "uploads"):
        print(f"\n{phase}: {report['errors_count'][phase]} errors")
        server = report["server"].get(phase, {})
        for action, s in report["actions"][phase].items():
            v = server.get(action)
            srv = (f" | server {v['server_p50_s']:5.2f}/{v['server_p95_s']:5.2f} cpu {v['cpu_p95_s']:4.2f} | do "
                   f"{v['do_p95_s']:5.2f} send {v['send_p95_s']:5.2f} queue {v['queue_p95_s']:5.2f} msgs {v['messages_p50']:.0f}") if v and v["n"] else ""
            print(f"  {action:20s} n={s['n']:3d} p50/p95 {s['p50_s']:6.2f}/{s['p95_s']:6.2f} s{srv}")
    print("\nserver RSS (MB): " + ", ".join(f"{ph} last {v['last']:.0f} (max {v['max']:.0f})"
                                         for ph, v in report["rss_mb"].items()))
    print("server CPU s per phase (process, of which in the soak's steps' script runs): " + ", ".join(
        f"{ph} {v['process']} ({v['script_runs']})" for ph, v in report["server_process_cpu_s"].items()))
    for phase, kinds in report.get("server_profile", {}).items():
        script = kinds.get("script")
        if script:
            print(f"server script threads, {phase} ({script['samples']} samples), where they are: "
                  + "; ".join(f"{k} {v:.0%}" for k, v in script["leaf"][:6]))
    print(f"load average at the start: {report['load_avg_start']}, at the end: {report['load_avg_end']}")
    print("\ngoals:")
    for name, g in report["goals"].items():
        print(f"  {'PASS' if g['ok'] else 'FAIL'} {name}: " + json.dumps({k: v for k, v in g.items() if k != 'ok'}))
    for phase, errs in report["errors"].items():
        for e in errs[:20]:
            print(f"  error [{phase}] {e}")
