"""Shared test setup.

torch's default of one thread per core makes small ops up to ~100x slower when other
processes (a training subprocess, the Streamlit server of the browser test) compete
for this machine's 2 cores; one intra-op thread keeps the suite fast and steady.
"""
import torch

torch.set_num_threads(1)

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Other projects' test assets (mmdetection VOC/COCO samples, torchvision and Pillow
# photos, truncated JPEGs). CI has `../shared` beside the clone; a user's fresh clone
# does not, and the tests that read them then skip, saying why.
# SSD_PEER_DATA points elsewhere (a git worktree whose ../shared is not beside it).
PEER_DATA = Path(os.environ.get("SSD_PEER_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "peer_data")


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first, each file's tests kept together and in order. `make
    test` hands whole files to two xdist workers in this order, so the long files (the
    browser walk, the job processes) start at once instead of one of them running alone
    at the end (longest first keeps the two workers' finishing times close)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: files and tests keep their order


@pytest.fixture
def peer_data() -> Path:
    """`../shared/peer_data/` beside the project (read only: never copy from it)."""
    if not (PEER_DATA / "SOURCES.md").is_file():
        pytest.skip(f"peer test data not found at {PEER_DATA} (CI has ../shared beside the clone; "
                    "a fresh clone of the project alone does not)")
    return PEER_DATA


@pytest.fixture
def app_navigation(monkeypatch):
    """Run app.py on every AppTest run, as the server does.

    A `pages/` folder next to app.py puts Streamlit in its old folder-based multipage
    mode until the first `st.navigation` call turns that off for the whole server
    process. AppTest resets the flag before each run, so from the second run on it would
    run a page file alone, without app.py and its sidebar. Set the flag as the server
    has it after its first run.
    """
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)


@pytest.fixture
def app_env(monkeypatch, tmp_path, app_navigation):
    """AppTest of app.py: navigation mode, no training runs of this machine in the model
    picker (a fresh runs folder), and the suite's one torch thread (app.py sets it)."""
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """A fresh runs folder for the Training page (and data roots inside tmp_path); any
    training process a test started is killed afterwards."""
    import json
    import os
    import signal

    from explorer.jobs import manager as jobs

    runs = tmp_path / "runs"
    monkeypatch.setenv("SSD_RUNS_DIR", str(runs))
    monkeypatch.setenv("SSD_DATA_ROOTS", str(tmp_path / "data"))
    yield runs
    for info in jobs.list_runs(runs):  # never leave a training process behind
        if info.alive and (info.run_dir / "job.json").is_file():
            job = json.loads((info.run_dir / "job.json").read_text())
            try:
                os.killpg(job["attempts"][-1]["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def voc_with_truncated_jpeg(peer_data, tmp_path) -> Path:
    """mmdetection's 5-image VOC2007 sample in a tmp folder, with 000001.jpg replaced by
    its real truncated upload (8192-byte prefix): the header reads, decoding fails."""
    import shutil

    root = tmp_path / "voc"
    src = peer_data / "mmdet" / "VOC2007"
    shutil.copytree(src / "Annotations", root / "Annotations")
    shutil.copytree(src / "JPEGImages", root / "JPEGImages")
    shutil.copy(peer_data / "truncated" / "000001.jpg", root / "JPEGImages" / "000001.jpg")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n000003\n000004\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000005\n")
    return root


@pytest.fixture
def chromium_and_playwright():
    """(Debian's Chromium path, playwright's `sync_playwright`) for the browser tests.

    Skipped when either is missing, unless SSD_REQUIRE_BROWSER=1 (set by CI), which turns
    the skip into a failure."""
    from benchmarks.browser import chromium_path

    def skip_or_fail(why: str):
        if os.environ.get("SSD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SSD_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)

    chromium = chromium_path()
    if chromium is None:
        skip_or_fail("no Chromium found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("python playwright is not installed")
    return chromium, sync_playwright


@pytest.fixture
def media_stores(monkeypatch):
    """The media stores of AppTest runs, newest last: what the app serves from memory
    (figure backgrounds, download buttons)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    stores = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    return stores


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """One `zoomout` smoke study, launched once per session through the job framework (a
    study job: its two variants are real `python -m ssd.train` runs) and run to its end:
    (runs folder, the study's job folder). Shared by the tests that read a finished study
    (the job's files, the Training page's variant runs) so the suite pays for one study;
    its users may add evaluations but never change the study's own files."""
    from explorer.jobs.study import launch_study
    from jobs_helpers import CPU, ended, kill_live_runs, wait_for

    runs = tmp_path_factory.mktemp("smoke_study") / "runs"
    try:
        job_dir = launch_study(runs, "zoomout", "smoke", devices=CPU)
        info = wait_for(job_dir, lambda i: ended(i) and not i.alive, timeout=300, what="the smoke study to end")
        assert info.state == "finished", info.message
        yield runs, job_dir
    finally:
        kill_live_runs(runs)
        kill_live_runs(runs / "evaluations")
