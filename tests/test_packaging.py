"""`pip install .`: a wheel built from the project, installed into a fresh virtual
environment (reusing the project's installed dependencies through a .pth file), gives
`ssd` and `explorer` only, the five commands, and an app that runs outside the source
folder with the shipped checkpoint and sample scenes as package data."""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, timeout=300) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel path) of a fresh venv with the project's wheel installed."""
    tmp = tmp_path_factory.mktemp("pkg")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    src = tmp / "src"  # a clean copy: the build writes build/ and *.egg-info beside its sources
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src], tmp)
    wheel = next((tmp / "dist").glob("ssd_explorer-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp)
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (venv / "lib" / pyver / "site-packages" / "project_deps.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if Path(p).is_dir()) + "\n")  # torch & co, not re-installed
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel], tmp)
    return venv / "bin", wheel


@pytest.mark.slow
def test_wheel_holds_ssd_and_explorer_with_the_app_as_data(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"ssd", "explorer", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    for data in ("app.py", ".streamlit/config.toml", "pages/home.py", "checkpoints/compact256_shapes.pt",
                 "samples/scene_1.png", "samples/annotations.json"):
        assert f"explorer/_app/{data}" in names
    pages = subprocess.run(["git", "ls-files", "pages"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if pages:  # a git checkout: every tracked page file and asset ships (pages/live/*.js included)
        assert not [p for p in pages if f"explorer/_app/{p}" not in names]
    assert "ssd/export/onnx_graph.py" in names
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for cmd in ("ssd-explorer", "ssd-train", "ssd-evaluate", "ssd-detect", "ssd-export"):
        assert f"{cmd} =" in entry


@pytest.mark.slow
def test_installed_commands_run_outside_the_source_folder(installed, tmp_path):
    bin_dir, _ = installed
    where = _run([bin_dir / "python", "-c", "import ssd, explorer.paths as p; print(ssd.__file__); "
                  "print(p.CHECKPOINTS_DIR); print(p.SAMPLES_DIR); print(p.runs_dir())"], tmp_path).stdout.split()
    assert all("site-packages" in w for w in where[:3]) and str(ROOT) not in " ".join(where[:3])
    assert Path(where[3]) == tmp_path / "runs"  # the user's folder, not site-packages
    res = subprocess.run([bin_dir / "python", "-c", "import pages"], cwd=tmp_path, capture_output=True)
    assert res.returncode != 0  # only ssd and explorer are importable
    assert "--host" in _run([bin_dir / "ssd-explorer", "--help"], tmp_path).stdout
    cmd = _run([bin_dir / "ssd-explorer", "--print-command"], tmp_path).stdout
    assert f"-m pages._origin run {tmp_path}/.ssd-explorer/app/app.py" in cmd and "--server.address 127.0.0.1" in cmd
    assert (tmp_path / ".ssd-explorer" / "app" / "pages" / "home.py").is_file()
    refused = subprocess.run([bin_dir / "ssd-explorer", "--host", "0.0.0.0", "--print-command"], cwd=tmp_path,
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode == 2 and "no password is set" in refused.stderr
    out = _run([bin_dir / "ssd-detect", "--checkpoint", Path(where[1]) / "compact256_shapes.pt",
                Path(where[2]) / "scene_1.png"], tmp_path).stdout
    assert "scene_1.png (256x256): 4 detection(s)" in out and "house" in out
    for cmd in ("ssd-export", "ssd-train", "ssd-evaluate"):
        assert "usage:" in _run([bin_dir / cmd, "--help"], tmp_path).stdout
