"""explorer.launch (`ssd-explorer`): make run's command, from any folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer import paths
from explorer.auth import SECRETS_PATH
from explorer.launch import build_command, config_flags, launch_env, main

ROOT = Path(__file__).resolve().parent.parent


def test_config_flags_carry_the_project_settings_but_not_the_preflight_ones():
    flags = config_flags(ROOT / ".streamlit" / "config.toml")
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["--server.fileWatcherType"] == "none" and pairs["--server.enableStaticServing"] == "false"
    assert pairs["--browser.gatherUsageStats"] == "false" and pairs["--server.headless"] == "true"
    assert "--server.address" not in flags and "--server.allowedHosts" not in flags


def test_checkout_runs_its_own_app_on_loopback(tmp_path):
    assert not paths.INSTALLED and paths.APP_DIR == ROOT
    cmd = build_command("127.0.0.1", 8502, "", tmp_path / "work")
    assert cmd[1:5] == ["-m", "pages._origin", "run", str(ROOT / "app.py")]  # the Origin check, as make run
    assert cmd[-8:] == ["--server.address", "127.0.0.1", "--server.allowedHosts", "localhost",
                        "--server.allowedHosts", "127.0.0.1", "--server.allowedHosts", "::1"]
    assert not (tmp_path / "work").exists()  # nothing copied from a checkout


def test_exposed_host_without_password_is_refused(monkeypatch, capsys):
    if SECRETS_PATH.is_file():
        pytest.skip(f"{SECRETS_PATH} sets a password on this machine")
    monkeypatch.delenv("SSD_EXPLORER_PASSWORD", raising=False)
    assert main(["--host", "0.0.0.0", "--print-command"]) == 2
    assert "ssd-explorer: refused" in capsys.readouterr().err
    assert main(["--print-command"]) == 0
    assert "--server.address 127.0.0.1" in capsys.readouterr().out


def test_the_origin_wrapper_imports_from_any_folder(tmp_path):
    """The server starts as `python -m pages._origin` from the user's folder (runs/ and
    secrets stay there): launch_env makes the app's pages importable."""
    import subprocess
    import sys

    cmd = build_command("127.0.0.1", 8502, "", tmp_path / "work")
    env = launch_env(cmd)
    res = subprocess.run([sys.executable, "-c", "import pages._origin as o; print(o.install.__name__)"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "install", res.stderr
