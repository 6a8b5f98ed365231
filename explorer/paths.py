"""Where the explorer's files live: the project root and the runs folder.

One owner: the model picker and the training-job manager both call `runs_dir()`, so
`SSD_RUNS_DIR` means the same folder to both (`~` expanded, resolved).
"""
from __future__ import annotations

import ipaddress
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


def is_exposed(address: str | None) -> bool:
    """Whether a server bound to `address` (Streamlit's `server.address`) is reachable
    from other machines.

    None or "" is exposed: Streamlit then binds every interface ("::" or 0.0.0.0).
    Loopback IPs, "localhost" and `unix://` sockets are not; any other name or IP is.
    """
    if not address or not address.strip():
        return True
    address = address.strip()
    if address.startswith("unix://") or address.lower().rstrip(".") == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name other than localhost: reachable through that name


def server_is_exposed(address: str | None) -> bool:
    """`is_exposed` of the server's `server.address` (the name the pages call)."""
    return is_exposed(address)


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


# ----------------------------------------------------------------------------- confinement
# The rule itself lives in the library (`ssd.data.paths`): the dataset readers of a
# training or evaluation process apply it to every file they open. The explorer passes
# its data roots explicitly, or through `$SSD_JOB_DATA_ROOTS` to the processes it starts.
from ssd.data.paths import JOB_ROOTS_ENV, PathRefused, confine, confined_to, read_regular  # noqa: E402,F401

MAX_TYPED_JSON_BYTES = 512 << 20  # a COCO JSON typed on a page (COCO 2017 train: 448 MB)


def job_env(roots: tuple[Path, ...]) -> dict:
    """The environment entry that confines a started process's dataset readers to `roots`."""
    return {JOB_ROOTS_ENV: os.pathsep.join(str(r) for r in roots)}
