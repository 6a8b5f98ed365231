"""Where the explorer's files live: the project root and the runs folder.

One owner: the model picker and the training-job manager both call `runs_dir()`, so
`SSD_RUNS_DIR` means the same folder to both (`~` expanded, resolved).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the project: `-m ssd.train` imports from here
CHECKPOINTS_DIR = REPO_ROOT / "checkpoints"
SAMPLES_DIR = REPO_ROOT / "samples"


def runs_dir() -> Path:
    """`$SSD_RUNS_DIR` when set (``~`` expanded, resolved), else `runs/` in the project."""
    env = os.environ.get("SSD_RUNS_DIR", "").strip()
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "runs"
