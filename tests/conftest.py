"""Shared test setup.

torch's default of one thread per core makes small ops up to ~100x slower when other
processes (a training subprocess, the Streamlit server of the browser test) compete
for this machine's 2 cores; one intra-op thread keeps the suite fast and steady.
"""
import torch

torch.set_num_threads(1)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Other projects' test assets (mmdetection VOC/COCO samples, torchvision and Pillow
# photos, truncated JPEGs). CI has `../shared` beside the clone; a user's fresh clone
# does not, and the tests that read them then skip, saying why.
PEER_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "peer_data"


@pytest.fixture
def peer_data() -> Path:
    """`../shared/peer_data/` beside the project (read only: never copy from it)."""
    if not (PEER_DATA / "SOURCES.md").is_file():
        pytest.skip(f"peer test data not found at {PEER_DATA} (CI has ../shared beside the clone; "
                    "a fresh clone of the project alone does not)")
    return PEER_DATA
