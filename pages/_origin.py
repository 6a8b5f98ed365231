"""WebSocket origins: only pages served by this server may open its WebSocket.

Streamlit accepts a WebSocket whose `Origin` is any localhost page, on any port and
scheme (`http://127.0.0.1:8629`, `https://localhost`): a page of another local web
server could drive the app. `install()` puts `explorer.auth.origin_allowed` (allowed
host, the Host's own host and port, the server's scheme) in front of Streamlit's own
check in its WebSocket handler, so such a handshake is refused (HTTP 403) before a
session exists.

`make run` starts the server through `python -m pages._origin run app.py ...`, which
installs the check before the first connection; a server started another way
(`streamlit run app.py`) gets it from the gate at its first script run, and the gate
refuses a foreign Origin in the script as well (`explorer.auth.decide`).
"""
from __future__ import annotations

import sys

from explorer import auth


def _option(name: str):
    from streamlit import config

    try:
        return config.get_option(name)
    except RuntimeError:  # an option this Streamlit version does not have
        return None


def origin_ok(origin: str | None, host: str | None) -> bool:
    """`explorer.auth.origin_allowed` under this server's options."""
    patterns = auth.effective_allowed_hosts(_option("server.allowedHosts"), auth.is_exposed(_option("server.address")))
    return auth.origin_allowed(origin, host, patterns, _option("server.port"), bool(_option("server.sslCertFile")))


def install() -> bool:
    """Wrap Streamlit's WebSocket origin check (once per process); False where this
    Streamlit version has no such check to wrap (the script gate still refuses)."""
    try:
        from streamlit.web.server.starlette import starlette_websocket as ws
    except ImportError:
        return False
    original = getattr(ws, "_is_origin_allowed", None)
    if original is None:
        return False
    if getattr(original, "ssd_origin_guard", False):
        return True

    def guarded(origin: str | None, host: str | None) -> bool:
        return bool(original(origin, host)) and origin_ok(origin, host)

    guarded.ssd_origin_guard = True
    ws._is_origin_allowed = guarded
    return True


def main() -> None:
    """`python -m pages._origin run app.py [flags]`: Streamlit's command line, with the
    origin check installed first."""
    install()
    from streamlit.web import cli

    sys.exit(cli.main(prog_name="streamlit"))


if __name__ == "__main__":
    main()
