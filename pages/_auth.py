"""The gate every script run passes before the sidebar and the page.

`app.py` calls `gate()` after `st.navigation` and before the sidebar and `nav.run()`;
a page file run on its own reaches it through `_ui.require_app_frame()`. The decision
is `explorer.auth.decide`: a Host header off the allow-list is refused before anything
renders, an exposed server with no password shows nothing but how to set one, and a
configured password is asked for once per browser session.
"""
from __future__ import annotations

import math
import secrets

import streamlit as st

from explorer import auth
from pages import _origin
from pages._text import plain

SIGNED_IN_KEY = "_auth_fingerprint"  # session state: SHA-256 of the password signed in with
CLIENT_KEY = "_auth_client"  # session state: this session's random id for the sign-in limiter


def _option(name: str):
    try:
        return st.get_option(name)
    except RuntimeError:  # an option this Streamlit version does not have
        return None


def _headers() -> dict[str, str]:
    """The session's HTTP request headers; empty when no request stands behind the run."""
    try:
        return dict(st.context.headers)
    except (AttributeError, RuntimeError):
        return {}


def _policy() -> auth.ServePolicy:
    """From the address the server really binds and its allow-list (`--server.*` flags,
    config.toml or STREAMLIT_SERVER_* variables all land in these options)."""
    return auth.policy_from(_option("server.address"), _option("server.allowedHosts"), auth.read_password(),
                            _option("server.port"), bool(_option("server.sslCertFile")))


def signed_in() -> bool:
    """Whether this run may show the app (no widget drawn)."""
    try:
        return auth.decide(_policy(), _headers(), st.session_state.get(SIGNED_IN_KEY)) is auth.Decision.ALLOW
    except auth.AuthConfigError:
        return False


def gate() -> None:
    """Return if this session may see the app; otherwise draw why not (or the login
    form) and stop the run."""
    try:
        policy = _policy()
    except auth.AuthConfigError as e:
        st.error("The server's password setting cannot be used: " + plain(str(e)))
        st.stop()
    _origin.install()  # later WebSockets are checked at the handshake too (`make run` does it at start)
    decision = auth.decide(policy, _headers(), st.session_state.get(SIGNED_IN_KEY))
    if decision is auth.Decision.ALLOW:
        return
    if decision is auth.Decision.REFUSE_HOST:
        st.error("Refused: this page was opened under a host name this server does not serve "
                 "(server.allowedHosts), or by a page of another site or port. Open the address "
                 "the server printed when it started.")
    elif decision is auth.Decision.REFUSE_NO_PASSWORD:
        st.error("This server can be reached from other machines and has no password, so it shows "
                 f"nothing. Set `{auth.PASSWORD_ENV}` (environment) or `{auth.PASSWORD_ENV}` in "
                 "`.streamlit/secrets.toml` and restart it, or serve on 127.0.0.1 (`make run`).")
    else:
        _login_form(policy.password)
    st.stop()


def _login_form(password: str) -> None:
    st.title("SSD Explorer")
    st.write("This explorer is password protected. The password is in the server's "
             f"`{auth.PASSWORD_ENV}` or `.streamlit/secrets.toml`.")
    with st.form("_auth_login", clear_on_submit=True):
        given = st.text_input("Password", type="password", key="_auth_password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    client = _client()
    wait_s = auth.LOGIN_LIMITER.wait_s(*client)
    if wait_s > 0:
        st.error(f"Too many wrong passwords from this browser: try again in {math.ceil(wait_s)} s.")
        return
    if auth.password_matches(given or "", password):
        st.session_state[SIGNED_IN_KEY] = auth.fingerprint(password)
        st.rerun()
    auth.LOGIN_LIMITER.record_failure(*client)
    st.error("Wrong password.")


def _client() -> tuple[str | None, str]:
    """(remote address, session id) for the sign-in limiter: the address of the
    WebSocket (None on loopback) and a random id kept in this session's state."""
    try:
        address = st.context.ip_address
    except (AttributeError, RuntimeError):
        address = None
    if not isinstance(address, str):  # AppTest hands out a mock object here
        address = None
    session_id = st.session_state.setdefault(CLIENT_KEY, secrets.token_hex(16))
    return address, session_id
