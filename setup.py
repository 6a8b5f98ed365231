"""Build step that pyproject.toml cannot say: copy the app files into the wheel.

app.py, pages/, .streamlit/config.toml, checkpoints/*.pt and samples/* live at the
project root (where `make run` uses them); a wheel carries them as package data in
explorer/_app, where `explorer.paths.APP_DIR` finds them once installed.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# pages/**: every page and its in-page assets (pages/live/*.js, *.css), not caches.
APP_FILES = ["app.py", ".streamlit/config.toml", "pages/**/*.py", "pages/**/*.js", "pages/**/*.css",
             "checkpoints/*.pt", "samples/*"]


class BuildPyWithApp(build_py):
    """build_py, then the app files into <build>/explorer/_app."""

    def run(self):
        super().run()
        dest = Path(self.build_lib) / "explorer" / "_app"
        for pattern in APP_FILES:
            files = sorted(f for f in ROOT.glob(pattern) if "__pycache__" not in f.parts)
            if not files:
                raise FileNotFoundError(f"setup.py: no {pattern} under {ROOT}: the app would ship incomplete")
            for f in files:
                target = dest / f.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)


setup(cmdclass={"build_py": BuildPyWithApp})
