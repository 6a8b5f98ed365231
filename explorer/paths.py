"""Where the explorer's files live: the project root and the runs folder.

One owner: the model picker and the training-job manager both call `runs_dir()`, so
`SSD_RUNS_DIR` means the same folder to both (`~` expanded, resolved).
"""
from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
# A source checkout has app.py beside explorer/. An installed wheel (`pip install .`)
# ships app.py, pages/, the shipped checkpoint and the sample scenes as package data in
# explorer/_app (read only), and the user's files (runs/, data/, .streamlit/secrets.toml)
# live in the folder the app was started from, never in site-packages.
INSTALLED = not (_SOURCE_ROOT / "app.py").is_file()
APP_DIR = Path(__file__).resolve().parent / "_app" if INSTALLED else _SOURCE_ROOT  # app.py, pages/, shipped files
REPO_ROOT = Path.cwd().resolve() if INSTALLED else _SOURCE_ROOT  # the project (the user's folder when installed)
CHECKPOINTS_DIR = APP_DIR / "checkpoints"
SAMPLES_DIR = APP_DIR / "samples"


def runs_dir() -> Path:
    """`$SSD_RUNS_DIR` when set (``~`` expanded, resolved), else `runs/` in the project."""
    env = os.environ.get("SSD_RUNS_DIR", "").strip()
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "runs"


# ----------------------------------------------------------------------------- data roots
DATA_ROOTS_ENV = "SSD_DATA_ROOTS"  # os.pathsep-separated folders the Training page may read datasets from
DATA_DIR = REPO_ROOT / "data"  # the project's own data folder (a default data root when local)
LOOPBACK_ADDRESSES = ("localhost", "127.0.0.1", "::1")


def server_is_exposed(address: str | None) -> bool:
    """Whether a Streamlit server bound to `address` (`server.address`) is reachable from
    other machines. `explorer.auth.is_exposed` decides where it exists (one owner of the
    rule); otherwise the same rule here: None/"" (every interface) and any non-loopback
    address are exposed."""
    try:
        from explorer.auth import is_exposed  # type: ignore[import-not-found]
    except ImportError:
        address = (address or "").strip().strip("[]").lower().rstrip(".")
        return address not in LOOPBACK_ADDRESSES and not address.startswith("unix://")
    return bool(is_exposed(address))


def data_roots(exposed: bool, environ: dict | None = None) -> tuple[Path, ...]:
    """Folders the Training page may read datasets (and init checkpoints) from, resolved.

    `$SSD_DATA_ROOTS` (os.pathsep-separated) when set; otherwise, on a local (loopback)
    server, the project's `data/` and the user's home folder; on an exposed server,
    none (every dataset path is refused until an administrator lists the roots)."""
    environ = os.environ if environ is None else environ
    env = str(environ.get(DATA_ROOTS_ENV, "")).strip()
    if env:
        return tuple(Path(p.strip()).expanduser().resolve() for p in env.split(os.pathsep) if p.strip())
    return () if exposed else (DATA_DIR.resolve(), Path.home().resolve())


# ----------------------------------------------------------------------------- bounded folders
def keep_newest(folder: Path, keep: int, suffixes: tuple[str, ...]) -> None:
    """Remove the files of `folder` with one of `suffixes`, oldest modification first,
    until at most `keep` remain (the bound of the app's scratch folders: figure
    backgrounds, uploaded weights)."""
    files = sorted((p for p in folder.iterdir() if p.suffix in suffixes and p.is_file()),
                   key=lambda p: p.stat().st_mtime)
    for old in files[:max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)
