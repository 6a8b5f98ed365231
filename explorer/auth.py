"""Who may use a running explorer: bind address, Host allow-list and password.

The app starts processes, writes checkpoints and reads paths typed into the Training
page, so a server that others can reach must ask for a password, and a server on
loopback must still refuse pages served under a foreign host name (DNS rebinding:
`http://evil.example:8501` resolved to 127.0.0.1 in the victim's browser).

Plain Python, no Streamlit: `pages/_auth.py` draws the login form from `decide()`, and
`python -m explorer.auth preflight` (run by `make run`) refuses to start an exposed
server with no password and prints the `--server.allowedHosts` flags to pass on.

Words: *address* is what the server binds (`server.address`), *host* is the name in a
request's `Host` header (port ignored), a *pattern* is an allow-list entry: a name, an
IP, `*.example.com`, or `*` (anything).
"""
from __future__ import annotations

import argparse
import enum
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlparse

from explorer.paths import REPO_ROOT, is_exposed  # is_exposed: the bind-address rule, owned by paths

PASSWORD_ENV = "SSD_EXPLORER_PASSWORD"  # environment variable, and the key in secrets.toml
SECRETS_PATH = REPO_ROOT / ".streamlit" / "secrets.toml"  # the project's Streamlit secrets
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")  # names a loopback server answers to
_HOSTNAME_RE = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")


class AuthConfigError(ValueError):
    """The serving setup is unsafe or unreadable; the message names the fix."""


def validate_address(address: str) -> str:
    """`address` stripped, if it is an IP literal or a host name; else AuthConfigError."""
    address = (address or "").strip()
    try:
        ipaddress.ip_address(address.strip("[]"))
        return address
    except ValueError:
        pass
    if _HOSTNAME_RE.match(address) and not address.startswith("*"):
        return address
    raise AuthConfigError(f"HOST={address!r} is not an IP address or a host name "
                          "(examples: 127.0.0.1, 0.0.0.0, my-machine.lan).")


# ---------------------------------------------------------------- password
def read_password(env: Mapping[str, str] | None = None, secrets_path: Path | None = None) -> str | None:
    """The configured password, or None when none is set.

    Read from `$SSD_EXPLORER_PASSWORD` first, else from the top-level key
    `SSD_EXPLORER_PASSWORD` of `secrets_path` (default `SECRETS_PATH`, the project's
    `.streamlit/secrets.toml`, read wherever the server was started from).
    Raises AuthConfigError, naming the file or variable, when the secrets file cannot be
    read or parsed, or when the value is not a non-empty string.
    """
    env = os.environ if env is None else env
    secrets_path = SECRETS_PATH if secrets_path is None else secrets_path
    if PASSWORD_ENV in env:
        value = env[PASSWORD_ENV]
        if not value.strip():
            raise AuthConfigError(f"${PASSWORD_ENV} is set but empty: give it a password, or unset it.")
        return value
    if not secrets_path.is_file():
        return None
    try:
        secrets = _parse_toml(secrets_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AuthConfigError(f"{secrets_path}: cannot read it as TOML ({type(e).__name__}: {e}).") from None
    if PASSWORD_ENV not in secrets:
        return None
    value = secrets[PASSWORD_ENV]
    if not isinstance(value, str) or not value.strip():
        raise AuthConfigError(f"{secrets_path}: {PASSWORD_ENV} must be a non-empty string, "
                              f'for example {PASSWORD_ENV} = "a long passphrase".')
    return value


def _parse_toml(text: str) -> dict:
    try:
        import tomllib  # Python >= 3.11
        return tomllib.loads(text)  # raises tomllib.TOMLDecodeError, a ValueError
    except ImportError:  # Python 3.10: the `toml` package Streamlit depends on
        import toml
        try:
            return toml.loads(text)
        except toml.TomlDecodeError as e:
            raise ValueError(str(e)) from None


def fingerprint(password: str) -> bytes:
    """SHA-256 of the password: what a signed-in session keeps (not the password)."""
    return hashlib.sha256(password.encode("utf-8")).digest()


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison. Both sides are hashed first, so neither the time nor
    the comparison depends on where they differ or on the password's length."""
    return hmac.compare_digest(fingerprint(given), fingerprint(expected))


# ---------------------------------------------------------------- Host header
def host_allowed(host_header: str | None, patterns: tuple[str, ...] | None) -> bool:
    """Whether a request's `Host` header names this server.

    The same rules as Streamlit's `server.allowedHosts`: the port is ignored, a trailing
    dot and case do not matter, `*.example.com` matches any subdomain, `*` matches
    anything, and `patterns=None` (no allow-list) accepts every host. A missing or
    malformed header (credentials, a path) is refused when a list is set.
    """
    if patterns is None:
        return True
    if not host_header:
        return False
    try:
        parsed = urlparse(f"//{host_header}")
        hostname = parsed.hostname
        _ = parsed.port  # a non-numeric or out-of-range port raises ValueError
    except ValueError:
        return False
    if (hostname is None or parsed.username is not None or parsed.password is not None
            or parsed.path or parsed.query or parsed.fragment):
        return False
    hostname = hostname.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern == "*":
            return True
        if pattern.startswith("*.") and hostname.endswith(pattern[1:]):
            return True
        if hostname == pattern:
            return True
    return False


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_allowed(origin: str | None, host_header: str | None, patterns: tuple[str, ...] | None,
                   server_port: int | None = None, tls: bool = False) -> bool:
    """Whether a WebSocket's `Origin` is a page of this very server.

    The origin's host must be on the allow-list (`host_allowed`) and be the host the
    browser connected to (the `Host` header), on the same port (a missing port is the
    scheme's default), with scheme http or https. When the Host names the server's own
    port (`server_port`: a direct connection, no proxy in front) the scheme must be the
    server's own: https with TLS (`tls`), else http. So `http://127.0.0.1:8629` (another
    local server) and `https://localhost` are refused for a server on 127.0.0.1:8501.
    No Origin at all (not a browser: browsers always send one) is accepted, as Streamlit
    does; such a client could send any Origin anyway.
    """
    if origin is None:
        return True
    try:
        o, h = urlparse(origin), urlparse(f"//{host_header or ''}")
        o_port, h_port = o.port, h.port
    except ValueError:
        return False
    if (o.scheme not in _DEFAULT_PORTS or not o.hostname or o.path or o.query or o.username
            or not h.hostname or not host_allowed(o.netloc, patterns)):
        return False
    if o.hostname.lower().rstrip(".") != h.hostname.lower().rstrip("."):
        return False
    if (o_port or _DEFAULT_PORTS[o.scheme]) != (h_port or _DEFAULT_PORTS[o.scheme]):
        return False
    return not (server_port is not None and h_port == server_port and o.scheme != ("https" if tls else "http"))


def effective_allowed_hosts(option: list[str] | tuple[str, ...] | None, exposed: bool) -> tuple[str, ...] | None:
    """The allow-list the gate enforces: Streamlit's `server.allowedHosts` when set.

    When it is empty a loopback server still accepts only the loopback names (the
    DNS-rebinding guard does not depend on the Streamlit version); an exposed one,
    which needs a password anyway, accepts any host (None).
    """
    cleaned = tuple(p.strip() for p in (option or ()) if p and p.strip())
    if cleaned:
        return cleaned
    return None if exposed else LOOPBACK_HOSTS


# ---------------------------------------------------------------- the decision
class Decision(enum.Enum):
    ALLOW = "allow"  # show the app
    REFUSE_HOST = "refuse_host"  # the Host header is not on the allow-list, or the Origin is another site
    REFUSE_NO_PASSWORD = "refuse_no_password"  # exposed, and no password is configured
    ASK_PASSWORD = "ask_password"  # a password is configured and this session has not given it


@dataclass(frozen=True)
class ServePolicy:
    exposed: bool  # the server binds an address other machines can reach
    allowed_hosts: tuple[str, ...] | None  # Host allow-list; None accepts any host
    password: str | None = field(default=None, repr=False)  # None: no password configured
    server_port: int | None = None  # the port the server listens on (`origin_allowed`)
    tls: bool = False  # the server itself serves HTTPS (server.sslCertFile)


def policy_from(address: str | None, allowed_hosts_option, password: str | None,
                server_port: int | None = None, tls: bool = False) -> ServePolicy:
    """The policy for a server bound to `address` with this allow-list and password."""
    exposed = is_exposed(address)
    return ServePolicy(exposed, effective_allowed_hosts(allowed_hosts_option, exposed), password, server_port, tls)


def decide(policy: ServePolicy, headers: Mapping[str, str] | None, session_fingerprint: bytes | None) -> Decision:
    """What a script run may show.

    `headers` are the session's HTTP request headers (empty when no request stands
    behind the run, as under AppTest); `session_fingerprint` is what the session stored
    when it signed in (None if it has not). The Host and Origin checks come first, so a
    rebinding page or another local site gets nothing, not even the login form.
    """
    if headers:
        host = headers.get("Host") or headers.get("host")
        if not host_allowed(host, policy.allowed_hosts) or not origin_allowed(
                headers.get("Origin") or headers.get("origin"), host, policy.allowed_hosts,
                policy.server_port, policy.tls):
            return Decision.REFUSE_HOST
    if policy.password is None:
        return Decision.REFUSE_NO_PASSWORD if policy.exposed else Decision.ALLOW
    if session_fingerprint is not None and hmac.compare_digest(session_fingerprint, fingerprint(policy.password)):
        return Decision.ALLOW
    return Decision.ASK_PASSWORD


class FailureLimiter:
    """At most `max_failures` wrong passwords per `window_s` (a sliding window): one
    counter, the building block of `LoginLimiter`. Thread-safe (each Streamlit session
    runs its script in its own thread)."""

    def __init__(self, max_failures: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError(f"max_failures must be >= 1 and window_s > 0, got {max_failures}, {window_s}")
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: list[float] = []
        self._lock = threading.Lock()

    def _recent(self) -> list[float]:
        now = self._clock()
        self._failures = [t for t in self._failures if now - t < self.window_s]
        return self._failures

    def count(self) -> int:
        """Failures inside the window now."""
        with self._lock:
            return len(self._recent())

    def wait_s(self) -> float:
        """Seconds until another try is allowed (0.0: now)."""
        with self._lock:
            recent = self._recent()
            if len(recent) < self.max_failures:
                return 0.0
            return self.window_s - (self._clock() - recent[-self.max_failures])

    def record_failure(self) -> None:
        with self._lock:
            self._failures.append(self._clock())


@dataclass(frozen=True)
class LoginLimits:
    """Wrong passwords allowed per window, from the narrowest client key to the server."""
    per_session: int = 5  # one browser session (a reload starts a new one)
    per_address: int = 20  # one remote address: its sessions together (NAT, a proxy)
    server: int = 100  # all clients together: the last resort, see `LoginLimiter`
    window_s: float = 60.0  # sliding window, seconds


class LoginLimiter:
    """Sign-in limits per client before any server-wide one.

    A client is a (remote address, session id) pair. A try is refused while its
    session has `per_session` failures in the window, or its address `per_address`.
    The server-wide limit (`server` failures in the window, all clients together) is a
    last resort against many addresses: while it holds, only clients with a failure of
    their own in the window (session or address) are refused, so a client that has not
    failed can always sign in, the right password included. Keys without failures in
    the window are forgotten, and at most `max_keys` are kept (oldest dropped first).
    Thread-safe.
    """

    def __init__(self, limits: LoginLimits = LoginLimits(), clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        for name in ("per_session", "per_address", "server"):
            if getattr(limits, name) < 1:
                raise ValueError(f"LoginLimits.{name} must be >= 1, got {getattr(limits, name)}")
        self.limits, self._clock, self._max_keys = limits, clock, max_keys
        self._server = FailureLimiter(limits.server, limits.window_s, clock)
        self._keys: dict[tuple[str, str], FailureLimiter] = {}  # ("session"|"address", id) -> window
        self._lock = threading.Lock()

    def _window(self, kind: str, key: str, create: bool) -> FailureLimiter | None:
        with self._lock:
            lim = self._keys.get((kind, key))
            if lim is None and create:
                if len(self._keys) >= self._max_keys:
                    for k in [k for k, v in self._keys.items() if v.count() == 0] or list(self._keys)[:1]:
                        del self._keys[k]
                n = self.limits.per_session if kind == "session" else self.limits.per_address
                lim = self._keys[(kind, key)] = FailureLimiter(n, self.limits.window_s, self._clock)
            return lim

    def wait_s(self, address: str | None, session_id: str) -> float:
        """Seconds until this client may try again (0.0: now). `address` is the remote
        address (None on loopback: all loopback clients share one key)."""
        windows = [self._window("session", session_id, False), self._window("address", str(address), False)]
        windows = [w for w in windows if w is not None]
        waits = [w.wait_s() for w in windows]
        if any(w.count() for w in windows):  # this client has failed: the server limit applies too
            waits.append(self._server.wait_s())
        return max(waits, default=0.0)

    def record_failure(self, address: str | None, session_id: str) -> None:
        self._window("session", session_id, True).record_failure()
        self._window("address", str(address), True).record_failure()
        self._server.record_failure()


LOGIN_LIMITER = LoginLimiter()  # the one limiter of this server process


# ---------------------------------------------------------------- make run
def machine_host_names(address: str) -> list[str]:
    """Names and IPs under which other machines may reach a server bound to `address`:
    the loopback names, the machine's host name and FQDN, and its IPs."""
    names = list(LOOPBACK_HOSTS)
    if address not in ("0.0.0.0", "::", "[::]"):
        names.append(address.strip("[]"))
    hostname = socket.gethostname()
    names += [hostname, socket.getfqdn()]
    try:
        names += [info[4][0] for info in socket.getaddrinfo(hostname, None)]
    except OSError:
        pass
    try:  # the IP of the default route's interface (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            names.append(s.getsockname()[0])
    except OSError:
        pass
    return list(dict.fromkeys(n for n in names if n))


def preflight(address: str, allowed_hosts: str = "", env: Mapping[str, str] | None = None,
              secrets_path: Path | None = None) -> list[str]:
    """The Streamlit flags for `make run HOST=address`, or AuthConfigError.

    Refuses an exposed address with no password. `allowed_hosts` (space or comma
    separated) are the names users type in the address bar; empty means loopback names
    on loopback, and this machine's names (`machine_host_names`) when exposed.
    """
    address = validate_address(address)
    exposed = is_exposed(address)
    password = read_password(env, secrets_path)
    if exposed and password is None:
        raise AuthConfigError(
            f"HOST={address} serves the explorer to every machine that can reach this one, and no "
            f"password is set. Set one, then run again: `export {PASSWORD_ENV}='a long passphrase'` "
            f"(not on the make command line: other users see command lines in `ps`), or "
            f'{PASSWORD_ENV} = "..." in {secrets_path or SECRETS_PATH}.')
    names = [n for n in re.split(r"[\s,]+", allowed_hosts or "") if n]
    for n in names:
        if n != "*" and not _is_ip(n) and not _HOSTNAME_RE.match(n):
            raise AuthConfigError(f"ALLOWED_HOSTS: {n!r} is not a host name, an IP, '*.domain' or '*'.")
    if not names:
        names = machine_host_names(address) if exposed else list(LOOPBACK_HOSTS)
    flags = ["--server.address", address]
    for n in names:
        flags += ["--server.allowedHosts", n]
    return flags


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer.auth preflight --address HOST [--allowed-hosts "a b"]`: prints
    the Streamlit flags on stdout, or the reason it refuses on stderr (exit status 2)."""
    parser = argparse.ArgumentParser(prog="python -m explorer.auth", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preflight", help="check the serving setup and print Streamlit flags")
    pre.add_argument("--address", required=True, help="the bind address (make run HOST=...)")
    pre.add_argument("--allowed-hosts", default="", help="names users type in the address bar")
    args = parser.parse_args(argv)
    try:
        flags = preflight(args.address, args.allowed_hosts)
    except AuthConfigError as e:
        print(f"make run: refused. {e}", file=sys.stderr)
        return 2
    if is_exposed(args.address):
        print(f"make run: serving to other machines, password required; allowed hosts: "
              f"{' '.join(flags[3::2])}. No TLS: put a reverse proxy with HTTPS in front "
              "for anything beyond a trusted network.", file=sys.stderr)
    print(" ".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
