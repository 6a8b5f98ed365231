"""Tab and Enter commit a typed cell of an `st.data_editor`, however soon they follow the typing.

The bug (Streamlit 1.67's table, glide-data-grid's `DataGridOverlayEditor.onKeyDown`; open
upstream as glideapps/glide-data-grid PR #1201): the cell editor schedules a zero-delay
timer on *every* key. A timer left by an ordinary key that fires after Tab or Enter has set
the move finishes the edit *without saving it*; Tab/Enter's own timer then finds the edit
finished. The typed value is dropped and the cell keeps its old one. Chromium runs a waiting
key press before a due timer, so this happens when Tab/Enter follows the last character
within a few milliseconds (a test's typing, key rollover, a busy page), in a one-file app
too: `benchmarks/bench_data_editor_tab.py` measures it (about half the edits lost at
machine speed; docs/benchmarks.md, "Table editor").

The guard, page-side: a window capture listener keeps printable keys typed inside an open
cell editor away from the page's key handlers. The browser still types the character and
the editor takes its value from the input event, so nothing changes for the user, but the
grid schedules no timer for those keys. Tab, Enter, Escape, Backspace, arrows, shortcuts
and space (the label selectbox opens on it) pass unchanged. It is registered once, at
import, and does nothing where the table is absent; tests/test_browser_workspace.py
(`test_tab_commits_gt_cells`) fails without it. Not covered: keys typed on into the next
cells very fast while the page repaints after a commit (docs/benchmarks.md).
"""
from __future__ import annotations

import streamlit as st

JS = """
export default function () {
  if (window.__ssdGridKeys) return;  // Streamlit calls the module again on every rerun
  window.__ssdGridKeys = true;
  window.addEventListener("keydown", (e) => {
    if (!e.isTrusted || e.isComposing || e.key.length !== 1 || e.key === " " || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target instanceof Element && e.target.closest(".gdg-clip-region")) e.stopPropagation();
  }, true);
}
"""


def _register():
    try:
        return st.components.v2.component("ssd_grid_keys", js=JS)
    except Exception:  # an older Streamlit: the table works, with the grid's own race
        return None


COMPONENT = _register()


def guard() -> None:
    """Mount the guard on this page (before its `st.data_editor`)."""
    if COMPONENT is not None:
        COMPONENT(key="ssd_grid_keys")
