"""`ssd-explorer`: start the app, with the same flags and safety as `make run`.

    ssd-explorer [--host 127.0.0.1] [--port 8501] [--allowed-hosts "a b"] [--print-command]

`explorer.auth.preflight` refuses an exposed --host without a password (in
$SSD_EXPLORER_PASSWORD or ./.streamlit/secrets.toml) and gives the address and
allowed-hosts flags; the settings of the project's `.streamlit/config.toml` are passed as
flags too, so they hold from any folder. From a source checkout the app runs in place.
Installed (`pip install .`), the app files are copied from the package into
./.ssd-explorer/app (figure files are written beside app.py, in static/, and must not go
into site-packages) and runs go to $SSD_RUNS_DIR, default ./runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tomllib
from pathlib import Path

from explorer import paths
from explorer.auth import AuthConfigError, preflight

_SET_BY_PREFLIGHT = ("server.address", "server.allowedHosts")


def config_flags(config_toml: Path) -> list[str]:
    """The settings of a Streamlit config.toml as `--section.key value` flags (lists as
    repeated flags), leaving out those `preflight` decides."""
    flags = []
    for section, table in tomllib.loads(config_toml.read_text()).items():
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in _SET_BY_PREFLIGHT:
                continue
            for v in value if isinstance(value, list) else [value]:
                flags += [f"--{name}", str(v).lower() if isinstance(v, bool) else str(v)]
    return flags


def app_script(work_dir: Path) -> Path:
    """The app.py to run: the source checkout's, or a fresh copy of the installed one's
    app.py and pages/ in `work_dir` (a user folder)."""
    if not paths.INSTALLED:
        return paths.APP_DIR / "app.py"
    work_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(paths.APP_DIR / "app.py", work_dir / "app.py")
    shutil.copytree(paths.APP_DIR / "pages", work_dir / "pages", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return work_dir / "app.py"


def build_command(host: str, port: int, allowed_hosts: str, work_dir: Path) -> list[str]:
    """The streamlit command line; AuthConfigError when the setup is unsafe."""
    flags = preflight(host, allowed_hosts)
    # `python -m pages._origin run ...` is Streamlit's own command line with the WebSocket
    # Origin check installed before the first connection, as `make run` starts it.
    return [sys.executable, "-m", "pages._origin", "run", str(app_script(work_dir)), "--server.port", str(port),
            *config_flags(paths.APP_DIR / ".streamlit" / "config.toml"), *flags]


def launch_env(cmd: list[str]) -> dict:
    """The environment of the server: the app's folder (where `pages/` lies: the checkout,
    or the user's copy of the installed app) first on PYTHONPATH, so `-m pages._origin`
    and the pages' own imports resolve without changing the working folder (runs/ and
    .streamlit/secrets.toml stay the user's)."""
    app_dir = str(Path(cmd[4]).parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (app_dir, os.environ.get("PYTHONPATH", "")) if p))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ssd-explorer", description="Start SSD Explorer (as `make run`).")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default loopback; another needs a password in $SSD_EXPLORER_PASSWORD "
                        "or ./.streamlit/secrets.toml)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--allowed-hosts", default="", help="host names users type in the address bar")
    p.add_argument("--print-command", action="store_true", help="print the streamlit command and exit")
    args = p.parse_args(argv)
    if paths.INSTALLED:  # runs in the user's folder (a checkout keeps its own runs/, as make run)
        os.environ.setdefault("SSD_RUNS_DIR", str(Path.cwd() / "runs"))
    try:
        cmd = build_command(args.host, args.port, args.allowed_hosts, Path.cwd() / ".ssd-explorer" / "app")
    except AuthConfigError as e:
        print(f"ssd-explorer: refused. {e}", file=sys.stderr)
        return 2
    print(" ".join(cmd), flush=True)
    if args.print_command:
        return 0
    os.execve(sys.executable, cmd, launch_env(cmd))  # streamlit becomes this process, as `exec` in make run


if __name__ == "__main__":
    raise SystemExit(main())
