"""The real server as `make run` starts it (issue 14, exposure): where it listens, what
an exposed start needs, and what a foreign Host header or Origin gets.

The servers here are started by the Makefile's own `run` recipe (`make -o .venv/.installed
run PORT=... HOST=...`: the same command line, minus the install step), on a free port.
Listening sockets are read from /proc/net/tcp{,6}; the WebSocket handshake is sent by
hand on a raw socket, so the Host header is exactly the one a rebinding page would send.
The browser checks use Playwright on Debian's Chromium, with Chromium's own
`--host-resolver-rules` playing the rebinding DNS server (evil.example -> 127.0.0.1).
"""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM_ARGS, IDLE, free_port as _free_port, wait_healthy as _wait_healthy
from explorer import auth

ROOT = Path(__file__).resolve().parent.parent
STAMP = ".venv/.installed"
PW = "a long shared passphrase"
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


# ---------------------------------------------------------------- helpers
def _non_loopback_ipv4() -> str:
    for name in auth.machine_host_names("0.0.0.0"):
        try:
            ip = socket.inet_aton(name) and name
        except OSError:
            continue
        if not ip.startswith("127."):
            return ip
    pytest.skip("this machine has no non-loopback IPv4 address to connect through")


def _hex_to_ip(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:  # IPv4, little-endian
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # IPv6: 4 little-endian words
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_addresses(port: int) -> set[str]:
    """Local IPs with a socket in LISTEN on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            ip_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port and fields[3] == LISTEN:
                found.add(_hex_to_ip(ip_hex))
    return found


def ws_handshake(ip: str, port: int, host: str, origin: str | None = None) -> int:
    """HTTP status of a WebSocket upgrade to /_stcore/stream with these headers
    (101: accepted; 403: refused before the app runs)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /_stcore/stream HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: streamlit"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection((ip, port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def http_get(ip: str, port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    with socket.create_connection((ip, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class Server:
    """`make run` (or `streamlit run` for `cwd`) in its own process group, with its log."""

    def __init__(self, tmp: Path, host: str = "127.0.0.1", env: dict | None = None,
                 argv: list[str] | None = None, cwd: Path = ROOT):
        self.port = _free_port()
        self.log_path = tmp / f"server_{self.port}.log"
        self.log = open(self.log_path, "w")
        argv = argv or ["make", "-s", "-o", STAMP, "run", f"PORT={self.port}", f"HOST={host}"]
        env = dict(os.environ if env is None else env, SSD_RUNS_DIR=str(tmp / "runs"))
        self.proc = subprocess.Popen(argv + ([] if argv[0] == "make" else ["--server.port", str(self.port)]),
                                     cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_healthy(self, ip: str = "127.0.0.1", timeout: float = 120) -> None:
        """`benchmarks.browser.wait_healthy`, with the server's log in the error."""
        try:
            _wait_healthy(f"http://{ip}:{self.port}", self.proc, timeout)
        except (RuntimeError, TimeoutError) as e:
            raise type(e)(f"{e}: {self.text()[-3000:]}") from None

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _env_without_password() -> dict:
    if auth.SECRETS_PATH.is_file():
        pytest.skip(f"{auth.SECRETS_PATH} exists on this machine: the server would use its password")
    env = dict(os.environ)
    env.pop(auth.PASSWORD_ENV, None)
    return env


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    server = Server(tmp_path_factory.mktemp("serve"), env=_env_without_password())
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- browser helpers
def _browser(p):
    chromium = next((c for c in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(c).is_file()), None)
    if chromium is None:
        if os.environ.get("SSD_REQUIRE_BROWSER") == "1":
            pytest.fail("SSD_REQUIRE_BROWSER=1 but no Chromium found")
        pytest.skip("no Chromium found (apt-get install -y chromium)")
    # Chromium's resolver plays the rebinding DNS server: evil.example is 127.0.0.1.
    args = CHROMIUM_ARGS + ["--host-resolver-rules=MAP evil.example 127.0.0.1"]
    return p.chromium.launch(executable_path=chromium, args=args)


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("SSD_REQUIRE_BROWSER") == "1":
            pytest.fail("SSD_REQUIRE_BROWSER=1 but python playwright is not installed")
        pytest.skip("python playwright is not installed")
    return sync_playwright()


def _settle(page, timeout_ms: int = 90_000) -> None:
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(800)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def _sidebar_model_shown(page) -> bool:
    return page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).count() > 0


# ---------------------------------------------------------------- tests
def test_plain_escapes_markdown_and_keeps_line_breaks():
    from pages._ui import plain

    assert plain("a_b *c*") == r"a\_b \*c\*"
    assert plain("x\ny") == "x  \ny"
    assert "\u2060" in plain("http://e.x") and "\u2060" in plain("me@e.x") and "\u2060" in plain("www.e.x")
    assert re.sub(r"\\(.)", r"\1", plain("[l](u) <b> $x$ :red[y]")).replace("\u2060", "") == \
        "[l](u) <b> $x$ :red[y]"


def test_make_run_exposed_without_password_is_refused(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = _free_port()
    done = subprocess.run(["make", "-s", "-o", STAMP, "run", f"PORT={port}", "HOST=0.0.0.0"], cwd=ROOT,
                          env=_env_without_password(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refused" in done.stderr and auth.PASSWORD_ENV in done.stderr, done.stderr
    assert "streamlit run" not in done.stdout  # it never got as far as starting
    assert listening_addresses(port) == set()


@pytest.mark.slow
def test_make_run_listens_on_loopback_only(loopback_server):
    port = loopback_server.port
    assert listening_addresses(port) == {"127.0.0.1"}
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((_non_loopback_ipv4(), port), timeout=5).close()
    assert "--server.address 127.0.0.1" in loopback_server.text()  # the command make printed


@pytest.mark.slow
def test_foreign_host_or_origin_is_refused_on_the_websocket(loopback_server):
    port = loopback_server.port
    assert ws_handshake("127.0.0.1", port, f"localhost:{port}") == 101
    assert ws_handshake("127.0.0.1", port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}") == 101
    assert ws_handshake("127.0.0.1", port, f"evil.example:{port}") == 403  # DNS rebinding
    assert ws_handshake("127.0.0.1", port, f"evil.example:{port}", origin=f"http://evil.example:{port}") == 403
    assert ws_handshake("127.0.0.1", port, f"localhost:{port}", origin="http://evil.example") == 403  # CORS
    # Issue 20 #12: pages of other local servers, ports or schemes (Streamlit lets them in).
    for host, origin in [("127.0.0.1", "http://127.0.0.1:8629"), ("localhost", "https://localhost"),
                         ("localhost", f"https://localhost:{port}"), ("localhost", "http://localhost"),
                         ("127.0.0.1", f"http://localhost:{port}"), ("localhost", "null")]:
        assert ws_handshake("127.0.0.1", port, f"{host}:{port}", origin=origin) == 403, origin
    assert ws_handshake("127.0.0.1", port, f"localhost:{port}", origin=f"http://localhost:{port}") == 101
    # The page itself is static HTML, served to any Host: nothing of the app is in it.
    status, body = http_get("127.0.0.1", port, f"evil.example:{port}")
    assert status == 200 and b"SSD Explorer" not in body and b"Traceback" not in body


@pytest.mark.slow
def test_rebinding_page_gets_nothing_in_a_browser(loopback_server):
    port = loopback_server.port
    with _playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page()
            page.goto(f"http://evil.example:{port}/training")
            page.wait_for_timeout(8000)  # ample time for a run that would have started
            body = page.locator("body").inner_text()
            assert not _sidebar_model_shown(page)
            assert "Launch" not in body and "Sign in" not in body and "Training" not in body
        finally:
            browser.close()
    assert "Rejecting WebSocket connection" in loopback_server.text()


@pytest.mark.slow
def test_user_text_reaches_the_page_as_plain_text(loopback_server, tmp_path):
    """An upload named like markdown, HTML, a link, math, colour and an emoji shows as
    typed, in the sidebar caption and in the error of a file that is not an image."""
    name = "a_b *c* [l](www.e.x) <b>h<_b> $x$ :red[y] :smile: me@e.x.png"
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (123, 77), (200, 40, 40)).save(buf, format="PNG")
    (good / name).write_bytes(buf.getvalue())
    (bad / name).write_bytes(b"not an image at all" * 10)
    with _playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"http://127.0.0.1:{loopback_server.port}/architecture")
            _settle(page)
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.locator('[data-testid="stRadioGroup"]').get_by_text("Upload", exact=True).click()
            # the image uploader by its label: the annotation-file uploader is in the sidebar too
            drop = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Your image") \
                .locator('[data-testid="stFileUploaderDropzoneInput"]').first
            drop.wait_for(state="attached", timeout=90_000)
            drop.set_input_files(str(good / name))
            caption = sidebar.get_by_text("123x77 px", exact=False).first
            caption.wait_for(timeout=90_000)
            _settle(page)
            assert caption.inner_text().replace("\u2060", "").startswith(f"{name}: 123x77 px")
            assert caption.locator("a, b, strong, em, img, .katex").count() == 0
            drop.set_input_files(str(bad / name))
            alert = sidebar.locator('[data-testid="stAlert"]').first
            alert.wait_for(timeout=90_000)
            assert f"Cannot use this upload: {name}: not an image" in alert.inner_text().replace("\u2060", "")
            assert alert.locator("a, b, strong, em, img, .katex").count() == 0
        finally:
            browser.close()


def _sign_in(page, password: str) -> None:
    page.locator('input[type="password"]').fill(password)
    page.get_by_role("button", name="Sign in").click()
    _settle(page)


@pytest.mark.slow
def test_make_run_exposed_with_password_listens_everywhere_and_asks(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ip = _non_loopback_ipv4()
    server = Server(tmp_path, host="0.0.0.0", env=dict(_env_without_password(), **{auth.PASSWORD_ENV: PW}))
    try:
        server.wait_healthy(ip)
        port = server.port
        assert listening_addresses(port) == {"0.0.0.0"}
        assert ws_handshake(ip, port, f"{ip}:{port}") == 101  # this machine's IP is allowed
        assert ws_handshake(ip, port, f"evil.example:{port}") == 403
        assert PW not in server.text()
        with _playwright() as p:
            browser = _browser(p)
            try:
                page = browser.new_page()
                page.goto(f"http://{ip}:{port}/training")
                _settle(page)
                assert page.get_by_role("button", name="Sign in").count() == 1
                assert not _sidebar_model_shown(page)
                _sign_in(page, PW + "!")
                assert page.get_by_text("Wrong password.").count() == 1 and not _sidebar_model_shown(page)
                _sign_in(page, PW)
                page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).wait_for(timeout=90_000)
                assert page.get_by_role("button", name="Sign in").count() == 0
            finally:
                browser.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_script_gate_refuses_a_foreign_host_when_streamlit_does_not(tmp_path):
    """A Streamlit with no Host allow-list (an older version, or the list emptied) still
    accepts the WebSocket of a rebinding page; the gate in the script refuses it."""
    # Streamlit reads the config.toml beside the main script last, so the project runs
    # here through links, beside a config.toml whose allow-list is empty.
    shadow = tmp_path / "project"
    shadow.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".streamlit", ".git", "runs"):
            (shadow / entry.name).symlink_to(entry)
    (shadow / ".streamlit").mkdir()
    (shadow / ".streamlit" / "config.toml").write_text(
        '[server]\nheadless = true\naddress = "127.0.0.1"\nallowedHosts = []\nfileWatcherType = "none"\n'
        '[browser]\ngatherUsageStats = false\n')
    server = Server(tmp_path, env=_env_without_password(), cwd=shadow,
                    argv=[sys.executable, "-m", "streamlit", "run", str(shadow / "app.py")])
    try:
        server.wait_healthy()
        port = server.port
        assert ws_handshake("127.0.0.1", port, f"evil.example:{port}") == 101  # Streamlit lets it in
        with _playwright() as p:
            browser = _browser(p)
            try:
                page = browser.new_page()
                page.goto(f"http://evil.example:{port}/training")
                page.get_by_text("Refused: this page was opened under a host name").wait_for(timeout=90_000)
                _settle(page)
                assert not _sidebar_model_shown(page) and page.get_by_text("Launch").count() == 0
                page.goto(f"http://localhost:{port}/")
                page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).wait_for(timeout=90_000)
            finally:
                browser.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_figure_backgrounds_are_served_by_their_own_server_only(loopback_server, tmp_path):
    """Issue 20 #9: a background a loopback server wrote to static/img/ was served (200,
    no password) by a password-protected server started later. Now it lives in the
    memory of the server that drew it: another server, or a file left in static/, gets 404."""
    port = loopback_server.port
    with _playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            _settle(page)
            image = page.locator('[data-testid="stPlotlyChart"] svg image').first
            image.wait_for(state="attached", timeout=90_000)
            href = image.get_attribute("href")
        finally:
            browser.close()
    assert re.fullmatch(r"media/[0-9a-f]{32}\.jpg", href), href
    status, body = http_get("127.0.0.1", port, f"127.0.0.1:{port}", "/" + href)
    assert status == 200 and Image.open(io.BytesIO(body)).format == "JPEG"
    static = ROOT / "static" / "img"
    leftover = static / ("0" * 32 + ".jpg")  # what an older server left behind
    made = not static.exists()
    static.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(body)
    other = Server(tmp_path, env=dict(_env_without_password(), **{auth.PASSWORD_ENV: PW}))
    try:
        other.wait_healthy()
        assert http_get("127.0.0.1", other.port, f"127.0.0.1:{other.port}", "/" + href)[0] == 404
        # static serving is off: the path falls through to the app's HTML page, not the file
        status, got = http_get("127.0.0.1", other.port, f"127.0.0.1:{other.port}", "/app/static/img/" + leftover.name)
        assert got != body and not got.startswith(b"\xff\xd8"), status
    finally:
        other.stop()
        leftover.unlink()
        if made:
            shutil.rmtree(ROOT / "static", ignore_errors=True)
