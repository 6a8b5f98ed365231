"""explorer/auth.py: bind address, password sources, constant-time compare, the Host
allow-list (checked against Streamlit's own `is_host_allowed`), the gate's decision,
the wrong-password limiter and `make run`'s preflight."""
import threading

import pytest

from explorer import auth
from explorer.auth import AuthConfigError, Decision

PW = "correct horse battery staple"


# ---------------------------------------------------------------- bind address
@pytest.mark.parametrize("address,exposed", [
    (None, True), ("", True), ("  ", True), ("0.0.0.0", True), ("::", True), ("[::]", True),
    ("192.168.1.4", True), ("fd00::2", True), ("my-machine.lan", True),
    ("127.0.0.1", False), ("127.0.0.5", False), ("::1", False), ("[::1]", False),
    ("localhost", False), ("LOCALHOST.", False), ("unix:///tmp/explorer.sock", False),
])
def test_is_exposed(address, exposed):
    assert auth.is_exposed(address) is exposed


@pytest.mark.parametrize("bad", ["", "a b", "*", "*.example.com", "0.0.0.0; rm -rf /", "host/path", "-x"])
def test_validate_address_refuses_what_is_not_an_ip_or_name(bad):
    with pytest.raises(AuthConfigError, match="not an IP address or a host name"):
        auth.validate_address(bad)


@pytest.mark.parametrize("good", ["127.0.0.1", "0.0.0.0", "::", "my-machine.lan", "localhost"])
def test_validate_address_keeps_ips_and_names(good):
    assert auth.validate_address(f" {good} ") == good


# ---------------------------------------------------------------- password
def test_password_from_env_wins_over_secrets(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'{auth.PASSWORD_ENV} = "from-file"\n')
    assert auth.read_password({auth.PASSWORD_ENV: "from-env"}, secrets) == "from-env"
    assert auth.read_password({}, secrets) == "from-file"


def test_no_password_anywhere_is_none(tmp_path):
    assert auth.read_password({}, tmp_path / "absent.toml") is None
    other = tmp_path / "secrets.toml"
    other.write_text('[connections]\nurl = "x"\n')
    assert auth.read_password({}, other) is None


def test_empty_env_password_is_refused(tmp_path):
    with pytest.raises(AuthConfigError, match=f"{auth.PASSWORD_ENV} is set but empty"):
        auth.read_password({auth.PASSWORD_ENV: "  "}, tmp_path / "absent.toml")


@pytest.mark.parametrize("content,match", [
    (f'{auth.PASSWORD_ENV} = "unterminated\n', "cannot read it as TOML"),
    (f"{auth.PASSWORD_ENV} = 1234\n", "must be a non-empty string"),
    (f'{auth.PASSWORD_ENV} = ""\n', "must be a non-empty string"),
    (f"{auth.PASSWORD_ENV} = [\"a\"]\n", "must be a non-empty string"),
])
def test_bad_secrets_file_names_the_file(tmp_path, content, match):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(content)
    with pytest.raises(AuthConfigError, match=match) as e:
        auth.read_password({}, secrets)
    assert str(secrets) in str(e.value)


def test_secrets_file_that_is_not_utf8_names_the_file(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_bytes(b'SSD_EXPLORER_PASSWORD = "\xff\xfe"\n')
    with pytest.raises(AuthConfigError, match="cannot read it as TOML") as e:
        auth.read_password({}, secrets)
    assert str(secrets) in str(e.value)


@pytest.mark.parametrize("given,expected", [
    (PW, PW), ("", PW), (PW[:-1], PW), (PW + " ", PW), ("Correct horse battery staple", PW),
    ("ü-pässwörd", "ü-pässwörd"), ("ü-pässwörd", "u-passwo"), ("a" * 10_000, "a" * 10_000),
])
def test_password_matches_equals_plain_comparison(given, expected):
    assert auth.password_matches(given, expected) is (given == expected)


def test_fingerprint_is_sha256_not_the_password():
    import hashlib

    assert auth.fingerprint(PW) == hashlib.sha256(PW.encode()).digest()
    assert PW.encode() not in auth.fingerprint(PW)


# ---------------------------------------------------------------- Host header
PATTERN_SETS = [
    ["localhost", "127.0.0.1", "::1"],
    ["app.example.com", "*.example.org"],
    ["*"],
    ["LocalHost.", " 10.0.0.7 "],
]
HOSTS = [
    "localhost", "localhost:8501", "LOCALHOST:8501", "localhost.", "127.0.0.1:1", "[::1]:8501",
    "[::1]", "evil.example", "evil.example:8501", "localhost.evil.example", "evil.localhost",
    "user@localhost", "user:pw@localhost:8501", "localhost/path", "localhost?q", "localhost#f",
    "localhost:99999", "localhost:abc", "app.example.com:443", "x.app.example.com",
    "a.example.org", "example.org", "deep.a.example.org:1", "10.0.0.7:8501", "", None,
]


@pytest.mark.parametrize("patterns", PATTERN_SETS)
def test_host_allowed_agrees_with_streamlit(patterns):
    """The script's check and Streamlit's WebSocket check accept the same hosts."""
    from streamlit import config
    from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

    saved = config.get_option("server.allowedHosts")
    config.set_option("server.allowedHosts", patterns)
    try:
        for host in HOSTS:
            assert auth.host_allowed(host, tuple(patterns)) is is_host_allowed(host), (host, patterns)
    finally:
        config.set_option("server.allowedHosts", saved)


def test_host_allowed_loopback_list_by_hand():
    loop = auth.LOOPBACK_HOSTS
    assert auth.host_allowed("localhost:8501", loop)
    assert auth.host_allowed("[::1]:8501", loop)
    assert not auth.host_allowed("evil.example:8501", loop)
    assert not auth.host_allowed(None, loop)
    assert auth.host_allowed("evil.example", None)  # no list: anything


def test_effective_allowed_hosts():
    assert auth.effective_allowed_hosts(["a.example", " "], exposed=True) == ("a.example",)
    assert auth.effective_allowed_hosts([], exposed=False) == auth.LOOPBACK_HOSTS
    assert auth.effective_allowed_hosts(None, exposed=False) == auth.LOOPBACK_HOSTS
    assert auth.effective_allowed_hosts([], exposed=True) is None


# ---------------------------------------------------------------- decision
GOOD = {"Host": "localhost:8501"}
EVIL = {"Host": "evil.example:8501"}


@pytest.mark.parametrize("address,password,headers,signed,expected", [
    ("127.0.0.1", None, GOOD, None, Decision.ALLOW),
    ("127.0.0.1", None, {}, None, Decision.ALLOW),  # no request behind the run (AppTest)
    ("127.0.0.1", None, EVIL, None, Decision.REFUSE_HOST),
    ("127.0.0.1", PW, EVIL, auth.fingerprint(PW), Decision.REFUSE_HOST),  # host first
    ("127.0.0.1", PW, GOOD, None, Decision.ASK_PASSWORD),
    ("127.0.0.1", PW, GOOD, auth.fingerprint(PW), Decision.ALLOW),
    ("127.0.0.1", PW, GOOD, auth.fingerprint("old password"), Decision.ASK_PASSWORD),
    ("0.0.0.0", None, GOOD, None, Decision.REFUSE_NO_PASSWORD),
    ("0.0.0.0", None, {}, None, Decision.REFUSE_NO_PASSWORD),
    (None, None, GOOD, None, Decision.REFUSE_NO_PASSWORD),  # config.toml not read: every interface
    ("0.0.0.0", PW, EVIL, None, Decision.ASK_PASSWORD),  # exposed, no list: any host, password
    ("0.0.0.0", PW, {"host": "x"}, auth.fingerprint(PW), Decision.ALLOW),
])
def test_decide(address, password, headers, signed, expected):
    policy = auth.policy_from(address, [], password)
    assert auth.decide(policy, headers, signed) is expected


def test_decide_with_an_explicit_list_on_an_exposed_server():
    policy = auth.policy_from("0.0.0.0", ["my-machine.lan"], PW)
    assert auth.decide(policy, EVIL, auth.fingerprint(PW)) is Decision.REFUSE_HOST
    assert auth.decide(policy, {"Host": "my-machine.lan:8501"}, auth.fingerprint(PW)) is Decision.ALLOW


def test_policy_repr_does_not_show_the_password():
    assert PW not in repr(auth.policy_from("0.0.0.0", [], PW))


# ---------------------------------------------------------------- WebSocket Origin
LOOP = auth.LOOPBACK_HOSTS


@pytest.mark.parametrize("origin,host", [
    ("http://127.0.0.1:8629", "127.0.0.1:8501"),  # another local server (issue 20 #12)
    ("https://localhost", "localhost:8501"),  # another scheme and port
    ("https://localhost:8501", "localhost:8501"),  # the server's port, not its scheme
    ("http://localhost:8501", "127.0.0.1:8501"),  # another host name than the one connected to
    ("http://evil.example:8501", "evil.example:8501"),  # rebinding: not on the allow-list
    ("null", "localhost:8501"), ("file://", "localhost:8501"), ("http://u@localhost:8501", "localhost:8501"),
    ("http://localhost:8501/x", "localhost:8501"), ("http://localhost:99999", "localhost:8501"),
    ("http://localhost:8501", None),
])
def test_foreign_websocket_origins_are_refused(origin, host):
    assert not auth.origin_allowed(origin, host, LOOP, server_port=8501)
    policy = auth.policy_from("127.0.0.1", [], None, server_port=8501)
    assert auth.decide(policy, {"Host": host or "", "Origin": origin}, None) is auth.Decision.REFUSE_HOST


@pytest.mark.parametrize("origin,host,tls", [
    ("http://localhost:8501", "localhost:8501", False), ("http://127.0.0.1:8501", "127.0.0.1:8501", False),
    ("http://[::1]:8501", "[::1]:8501", False), ("https://localhost:8501", "localhost:8501", True),
    ("https://localhost", "localhost", False),  # behind an HTTPS proxy on 443 (Host has no port)
    (None, "localhost:8501", False),  # not a browser
])
def test_the_servers_own_origin_is_accepted(origin, host, tls):
    assert auth.origin_allowed(origin, host, LOOP, server_port=8501, tls=tls)
    policy = auth.policy_from("127.0.0.1", [], None, server_port=8501, tls=tls)
    assert auth.decide(policy, {"Host": host, **({"Origin": origin} if origin else {})}, None) is auth.Decision.ALLOW


# ---------------------------------------------------------------- limiter
class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_limiter_blocks_after_max_failures_then_forgets_them():
    clock = _Clock()
    lim = auth.FailureLimiter(max_failures=3, window_s=60, clock=clock)
    for _ in range(3):
        assert lim.wait_s() == 0.0
        lim.record_failure()
        clock.now += 1
    assert lim.wait_s() == pytest.approx(57.0)  # the first failure leaves the window at t+60
    clock.now += 57
    assert lim.wait_s() == 0.0


def test_limiter_counts_failures_from_many_threads():
    lim = auth.FailureLimiter(max_failures=400, window_s=3600)
    threads = [threading.Thread(target=lambda: [lim.record_failure() for _ in range(50)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.wait_s() > 0  # 400 failures recorded, none lost


def _login_limiter(clock, **kw):
    return auth.LoginLimiter(auth.LoginLimits(**{"per_session": 3, "per_address": 6, "server": 10, **kw}),
                             clock=clock)


def test_login_limit_is_per_session_then_per_address_not_server_wide():
    """Issue 20 #13: wrong passwords from one client no longer lock out everyone."""
    clock = _Clock()
    lim = _login_limiter(clock)
    for _ in range(3):
        assert lim.wait_s("10.0.0.1", "s1") == 0.0
        lim.record_failure("10.0.0.1", "s1")
    assert lim.wait_s("10.0.0.1", "s1") == pytest.approx(60.0)  # this session: blocked
    assert lim.wait_s("10.0.0.1", "s2") == 0.0  # a new session on the same address: its own tries
    assert lim.wait_s("10.0.0.2", "s3") == 0.0  # another client: untouched
    assert lim.wait_s(None, "s4") == 0.0  # loopback: untouched
    for session in ("s2", "s2", "s2b"):  # the address's sessions add up: 6 per address
        lim.record_failure("10.0.0.1", session)
    assert lim.wait_s("10.0.0.1", "s-fresh") > 0  # new sessions buy no new tries past the address limit
    assert lim.wait_s("10.0.0.2", "s3") == 0.0
    clock.now += 60
    assert lim.wait_s("10.0.0.1", "s1") == 0.0 and lim.wait_s("10.0.0.1", "s-fresh") == 0.0


def test_server_wide_limit_spares_clients_that_have_not_failed():
    clock = _Clock()
    lim = _login_limiter(clock)
    for i in range(10):  # ten addresses, one failure each: the server limit (10) holds
        lim.record_failure(f"10.0.1.{i}", f"s{i}")
    assert lim.wait_s("10.0.1.0", "s0") > 0  # a client that failed waits for the server window
    assert lim.wait_s("10.0.1.0", "s-new") > 0  # also from a new session on its address
    assert lim.wait_s("10.0.9.9", "t") == 0.0  # a client with no failure may still sign in
    clock.now += 60
    assert lim.wait_s("10.0.1.0", "s0") == 0.0


def test_login_limiter_forgets_old_keys_beyond_its_cap():
    clock = _Clock()
    lim = auth.LoginLimiter(auth.LoginLimits(per_session=1, per_address=1, server=10_000), clock=clock, max_keys=4)
    for i in range(10):
        lim.record_failure(f"a{i}", f"s{i}")
    assert len(lim._keys) <= 4 and lim.wait_s("a9", "s9") > 0  # the newest kept


def test_login_limits_refuse_zero():
    with pytest.raises(ValueError, match="per_address must be >= 1"):
        auth.LoginLimiter(auth.LoginLimits(per_address=0))


@pytest.mark.parametrize("max_failures,window_s", [(0, 60), (3, 0), (3, -1)])
def test_limiter_refuses_bad_settings(max_failures, window_s):
    with pytest.raises(ValueError, match="max_failures must be >= 1"):
        auth.FailureLimiter(max_failures, window_s)


# ---------------------------------------------------------------- make run preflight
def _flags_hosts(flags):
    assert flags[0] == "--server.address"
    assert flags[2::2] == ["--server.allowedHosts"] * len(flags[3::2])
    return flags[1], flags[3::2]


def test_preflight_loopback_needs_no_password(tmp_path):
    address, hosts = _flags_hosts(auth.preflight("127.0.0.1", "", {}, tmp_path / "absent.toml"))
    assert address == "127.0.0.1" and hosts == list(auth.LOOPBACK_HOSTS)


def test_preflight_refuses_exposed_without_password(tmp_path):
    with pytest.raises(AuthConfigError, match="no password is set") as e:
        auth.preflight("0.0.0.0", "", {}, tmp_path / "absent.toml")
    assert auth.PASSWORD_ENV in str(e.value) and "ps" in str(e.value)


def test_preflight_exposed_with_password_allows_this_machine(tmp_path):
    address, hosts = _flags_hosts(auth.preflight("0.0.0.0", "", {auth.PASSWORD_ENV: PW}, tmp_path / "a.toml"))
    assert address == "0.0.0.0"
    import socket

    assert socket.gethostname() in hosts and "localhost" in hosts and "0.0.0.0" not in hosts


def test_preflight_takes_the_given_host_names(tmp_path):
    flags = auth.preflight("0.0.0.0", "explorer.lab.example, *.lab.example 10.1.2.3",
                           {auth.PASSWORD_ENV: PW}, tmp_path / "a.toml")
    assert _flags_hosts(flags)[1] == ["explorer.lab.example", "*.lab.example", "10.1.2.3"]


@pytest.mark.parametrize("bad", ["evil/path", "a b$c", "user@host"])
def test_preflight_refuses_bad_host_names(tmp_path, bad):
    with pytest.raises(AuthConfigError, match="ALLOWED_HOSTS"):
        auth.preflight("127.0.0.1", bad, {}, tmp_path / "a.toml")


def test_main_exit_status_and_messages(monkeypatch, capsys):
    if auth.SECRETS_PATH.is_file():
        pytest.skip(f"{auth.SECRETS_PATH} exists on this machine: its password would be used")
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    assert auth.main(["preflight", "--address", "0.0.0.0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "refused" in err and auth.PASSWORD_ENV in err
    assert auth.main(["preflight", "--address", "127.0.0.1"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["--server.address", "127.0.0.1"]
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    assert auth.main(["preflight", "--address", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert out.split()[:2] == ["--server.address", "0.0.0.0"] and "No TLS" in err and PW not in out + err
