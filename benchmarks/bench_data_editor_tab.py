"""Does Tab (or Enter) commit a typed cell of `st.data_editor`? Loss counts by typing rhythm,
in a real Chromium, on the one-file app `benchmarks/data_editor_tab_app.py` (Streamlit's grid
alone: no other widget, no rerun from the app).

    python -m benchmarks.bench_data_editor_tab [--tries 8] [--guard] [--json PATH]

Each try selects x1, types a number and presses the key; the edit is lost when the page's
`x1=...` never shows the number (5 s). A rhythm is a list of steps: `c` types one digit,
`wN` waits N ms, `T` / `E` press Tab / Enter. Typing a digit on a selected cell opens the
cell's editor. `--guard` adds the app's page-side fix (`pages/_grid_keys.py`'s listener) to
the page first. Results: docs/benchmarks.md ("Table editor") and docs/explorer.md (Home).
"""
from __future__ import annotations

import argparse
import ast
import json
import tempfile
from pathlib import Path

from benchmarks.browser import CHROMIUM_ARGS, IDLE, chromium_path, streamlit_server

HERE = Path(__file__).resolve().parent
RHYTHMS = (
    "c c T", "c c E",            # machine speed (playwright's default typing)
    "c w80 c T", "c w300 c T",   # Tab at once after the 2nd digit, 80 / 300 ms after opening the editor
    "c c w20 T", "c w80 c w20 T", "c w80 c w35 E",  # a fast typist: >= 20 ms between the last digit and the key
    "c w100 c w100 T",           # an ordinary typist
)


def _settle(page) -> None:
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=90_000)
        page.wait_for_timeout(400)


def _type(page, rhythm: str, value: int) -> str:
    """Play `rhythm` with the digits of `value`; returns the digits typed."""
    digits = str(value)[-rhythm.split().count("c"):]
    i = 0
    for step in rhythm.split():
        if step == "c":
            page.keyboard.type(digits[i])
            i += 1
        elif step.startswith("w"):
            page.wait_for_timeout(int(step[1:]))
        else:
            page.keyboard.press({"T": "Tab", "E": "Enter"}[step])
    return digits


def guard_script() -> str:
    """The app's listener (`pages/_grid_keys.py`'s JS module) as a page init script; read
    from the source, since importing the page module would register a component."""
    tree = ast.parse((HERE.parent / "pages" / "_grid_keys.py").read_text())
    js = next(ast.literal_eval(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "JS")
    return "(" + js.replace("export default function", "function", 1).strip() + ")();"


def measure(tries: int, guard: bool = False) -> dict:
    """{rhythm: edits lost of `tries`} on the one-file app (with the app's guard if `guard`)."""
    from playwright.sync_api import sync_playwright

    out = {}
    with tempfile.TemporaryDirectory() as tmp, \
            streamlit_server(HERE / "data_editor_tab_app.py", Path(tmp) / "app.log") as (base, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        if guard:
            page.add_init_script(guard_script())
        page.goto(base)
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for(timeout=90_000)
        _settle(page)
        box = grid.bounding_box()
        x1_cell = (box["x"] + 40, box["y"] + 35 + 17)  # row 0, label (35 px header), then ArrowRight
        page.mouse.click(*x1_cell)  # warm up: the number editor is a lazy chunk
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1000)
        page.keyboard.press("Escape")
        value = 10
        for rhythm in RHYTHMS:
            lost = 0
            for _ in range(tries):
                value += 1  # each try a new number (its last digits differ from the cell's)
                page.mouse.click(*x1_cell)
                page.keyboard.press("ArrowRight")
                page.wait_for_timeout(200)
                typed = _type(page, rhythm, value)
                try:
                    page.get_by_text(f"x1={int(typed)}", exact=True).first.wait_for(timeout=5_000)
                except Exception:
                    lost += 1
                page.keyboard.press("Escape")
                _settle(page)
            out[rhythm] = lost
            print(f"{rhythm!r:20} lost {lost}/{tries}", flush=True)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=8)
    ap.add_argument("--guard", action="store_true", help="with the app's fix (pages/_grid_keys.py)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    lost = measure(args.tries, args.guard)
    if args.json:
        args.json.write_text(json.dumps({"tries": args.tries, "guard": args.guard, "lost": lost,
                                         "load_avg": Path("/proc/loadavg").read_text().split()[:3]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
