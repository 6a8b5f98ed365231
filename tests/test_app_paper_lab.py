"""AppTest of pages/paper_lab.py: the grid before launching, and a smoke study launched
from the page, watched to its end and read in the paper's form.

`run_every` fragments do not tick in AppTest, so the test reruns the page itself.
The runs dir is a temp folder given through SSD_RUNS_DIR (the `runs_dir` fixture)."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.text import shown
from jobs_helpers import kill_live_runs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "paper_lab.py")


def _frame(at: AppTest, column: str):
    """The first table with `column` (AppTest finds dataframes by position only)."""
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_page_shows_the_grid_before_any_study(runs_dir):
    at = _page()
    assert at.title[0].value == "Paper lab"
    assert any("No studies yet" in shown(i.value) for i in at.info)
    at.selectbox(key="lab_study").set_value("table3").run()
    grid = _frame(at, "options")
    assert list(grid["variant"])[:2] == ["full", "no_level5"] and list(grid["paper diff"])[1] == "+0.3"


@pytest.mark.slow
def test_smoke_study_end_to_end_from_the_page(runs_dir):
    at = _page()
    try:
        at.selectbox(key="lab_study").set_value("zoomout")
        at.button(key="lab_launch").click().run()
        assert not at.exception, at.exception
        deadline = time.monotonic() + 240
        while True:
            at.run()
            assert not at.exception, at.exception
            runs, table = _frame(at, "run"), _frame(at, "verdict")
            if runs is not None and list(runs["state"]) == ["finished", "finished"] and \
                    "no result yet" not in list(table["verdict"]):
                break
            assert time.monotonic() < deadline, f"study did not finish: {runs}"
            time.sleep(1.0)
        assert list(table["variant"]) == ["full", "no_zoom_out"]
        assert list(table["verdict"]) == ["reference", "one seed: no interval"]
        assert list(table["paper diff"]) == ["+0.0", "-2.9"]
        assert at.selectbox(key="lab_eval_pick").options == ["full-s0", "no_zoom_out-s0"]
    finally:
        kill_live_runs(runs_dir)
