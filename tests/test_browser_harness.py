"""benchmarks/browser.py, the harness every browser test and benchmark starts servers with."""
import subprocess
import sys
import urllib.request

import pytest

from benchmarks.browser import free_port, wait_healthy


@pytest.fixture
def health_server(tmp_path):
    """A real HTTP server process on loopback whose /_stcore/health says ok."""
    (tmp_path / "_stcore").mkdir()
    (tmp_path / "_stcore" / "health").write_text("ok")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}", proc
    proc.kill()
    proc.wait()


def test_health_check_ignores_a_proxy_in_the_environment(health_server, monkeypatch):
    """urllib's global opener keeps the *_proxy variables it saw at its first use: a test
    that once pointed HTTPS_PROXY at a closed port made every later server of that
    process look dead (under pytest-xdist, where test order per process differs). The
    harness asks loopback directly."""
    url, proc = health_server
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens on port 9
    urllib.request.install_opener(None)  # the next urlopen builds its opener from this environment
    try:
        wait_healthy(url, proc, timeout=20)
    finally:
        monkeypatch.undo()
        urllib.request.install_opener(None)  # and the one after this test, from the clean one


def test_a_server_that_exits_is_named(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_healthy(f"http://127.0.0.1:{free_port()}", proc, timeout=5)
