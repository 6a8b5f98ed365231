"""AppTest of the Training page on a real finished study (the session's `smoke_study`:
a zoomout smoke study launched through the job framework): the study is one entry of the
runs table, and under it each variant run shows its state, progress, loss and mAP curves,
its train.log and a link to its evaluation; the study's own controls stay the only ones.

Runs app.py (navigation mode) so the link can switch to the Evaluation page."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.jobs.study import read_study
from ssd.training.runlog import SPEC_FILE, read_json
from jobs_helpers import kill_live_runs

APP = str(Path(__file__).resolve().parent.parent / "app.py")

pytestmark = pytest.mark.slow  # the shared smoke study trains two runs (once per session)


@pytest.fixture
def study_env(smoke_study, monkeypatch, app_navigation):
    runs, job_dir = smoke_study
    monkeypatch.setenv("SSD_RUNS_DIR", str(runs))
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")
    yield runs, job_dir
    kill_live_runs(runs / "evaluations")  # the evaluation the link launched


def _frame(at: AppTest, column: str):
    """The first table with `column` (AppTest finds dataframes by position only)."""
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def test_training_page_shows_a_studys_variant_runs_read_only(study_env):
    runs, job_dir = study_env
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = _frame(at, "name")
    assert list(table["name"]) == [job_dir.name]  # the study is one entry of the runs table
    assert at.selectbox(key="train_selected").value == job_dir.name
    assert at.button(key="train_cancel").disabled and at.button(key="train_resume").disabled  # finished

    variants = _frame(at, "run")
    assert list(variants["run"]) == ["full-s0", "no_zoom_out-s0"]
    assert list(variants["state"]) == ["finished", "finished"] and list(variants["progress"]) == [1.0, 1.0]
    assert list(variants["step"]) == ["2/2", "2/2"]
    assert at.selectbox(key="train_variant").options == ["full-s0", "no_zoom_out-s0"]
    at.selectbox(key="train_variant").set_value("no_zoom_out-s0").run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Training loss · no_zoom_out-s0" in titles and "Validation mAP · no_zoom_out-s0" in titles, titles
    assert any("finished: 2 steps" in c.value for c in at.code)  # its train.log
    # Read-only: no control acts on a variant run; Cancel/Resume/Delete are the study's.
    assert not [b for b in at.button if str(b.key).startswith("train_variant") and b.key != "train_variant_evaluate"]

    at.button(key="train_variant_evaluate").click().run()  # the link to its evaluation
    assert not at.exception, [e.value for e in at.exception]
    eval_name = at.session_state["eval_a"]
    spec = read_json(runs / "evaluations" / eval_name / SPEC_FILE)["spec"]
    best = read_study(job_dir).runs[1].best_checkpoint
    assert Path(spec["checkpoint"]) == best and spec["dataset"]["num_images"] == 4
    assert at.title[0].value == "Evaluation"  # the page switched
