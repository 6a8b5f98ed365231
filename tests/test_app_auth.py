"""The login gate under Streamlit's AppTest (pages/_auth.py): what a run shows before
and after the password, on app.py and on a page file run on its own, for a password in
the environment or in secrets.toml, and for an exposed server with none."""
from pathlib import Path

import pytest

from explorer import auth

st_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = st_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PW = "s3cret: *not* [markdown]"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No password from this machine, a fresh limiter, the suite's runs and threads."""
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    monkeypatch.setattr(auth, "SECRETS_PATH", tmp_path / "secrets.toml")
    monkeypatch.setattr(auth, "LOGIN_LIMITER", auth.LoginLimiter(auth.LoginLimits(3, 6, 10)))
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SSD_TORCH_THREADS", "1")


pytestmark = pytest.mark.usefixtures("app_navigation")


@pytest.fixture
def exposed():
    """The server's `server.address` as `make run HOST=0.0.0.0` sets it."""
    from streamlit import config

    saved = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", saved)


def _run(script: str = APP) -> AppTest:
    at = AppTest.from_file(script, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _gated(at) -> bool:
    """The login form is shown and nothing of the app: no sidebar widget, no page."""
    return (len(at.text_input) == 1 and at.text_input[0].label == "Password"
            and not at.sidebar.selectbox and not at.sidebar.radio and not at.get("plotly_chart"))


def _sign_in(at, password: str) -> AppTest:
    at.text_input[0].input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_loopback_without_password_shows_the_app():
    at = _run()
    assert not at.text_input or at.text_input[0].label != "Password"
    assert at.sidebar.selectbox(key="_model_picker").value


def test_wrong_password_is_refused_and_the_right_one_gets_in(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    at = _run()
    assert _gated(at)
    _sign_in(at, PW + "x")
    assert _gated(at) and any("Wrong password" in e.value for e in at.error)
    _sign_in(at, "")
    assert _gated(at)
    _sign_in(at, PW)
    assert not at.error
    assert at.sidebar.selectbox(key="_model_picker").value  # the sidebar, then the page
    assert at.title[0].value == "SSD Explorer"
    at.switch_page("pages/default_boxes.py").run()
    assert not at.exception and at.slider  # every page after sign-in
    state = at.session_state.to_dict()
    assert state["_auth_fingerprint"] == auth.fingerprint(PW)
    assert not any(v == PW for v in state.values())  # the session keeps a hash, not the password


def test_password_from_secrets_toml(monkeypatch):
    auth.SECRETS_PATH.write_text(f'{auth.PASSWORD_ENV} = "from the file"\n')
    at = _run()
    assert _gated(at)
    _sign_in(at, "from the file")
    assert not _gated(at) and at.sidebar.selectbox(key="_model_picker").value


def test_a_changed_password_signs_the_session_out(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    at = _sign_in(_run(), PW)
    assert not _gated(at)
    monkeypatch.setenv(auth.PASSWORD_ENV, "a new password")
    at.run()
    assert _gated(at)


def test_too_many_wrong_passwords_block_that_session_not_another_one(monkeypatch):
    """Issue 20 #13: the limit is per client (session, then address) before the server."""
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    at = _run()
    for _ in range(3):  # the limiter of this test allows 3 per session a minute
        _sign_in(at, "guess")
    _sign_in(at, PW)  # even the right password: this session has used its tries
    assert _gated(at) and any("Too many wrong passwords" in e.value for e in at.error)
    other = _sign_in(_run(), PW)  # another session (same loopback address) signs in
    assert not _gated(other)
    third = _run()
    for _ in range(3):  # a third session's failures fill the address's 6
        _sign_in(third, "guess")
    fourth = _sign_in(_run(), PW)  # new sessions buy no tries past the address limit
    assert _gated(fourth) and any("Too many wrong passwords" in e.value for e in fourth.error)


@pytest.mark.parametrize("page", ["pages/training.py", "pages/home.py", "pages/nms.py"])
def test_a_page_file_run_on_its_own_is_gated(monkeypatch, page):
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    at = _run(str(ROOT / page))
    assert _gated(at)
    assert not at.button or [b.label for b in at.button] == ["Sign in"]  # no Launch, no Cancel


@pytest.mark.usefixtures("exposed")
def test_exposed_without_password_shows_only_how_to_set_one():
    at = _run()
    assert not at.text_input and not at.sidebar.selectbox and not at.sidebar.radio
    assert any(auth.PASSWORD_ENV in e.value and "other machines" in e.value for e in at.error)
    at = _run(str(ROOT / "pages" / "training.py"))
    assert not at.button and any(auth.PASSWORD_ENV in e.value for e in at.error)


@pytest.mark.usefixtures("exposed")
def test_exposed_with_password_asks_for_it(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_ENV, PW)
    at = _run()
    assert _gated(at)
    assert not _gated(_sign_in(at, PW))


def test_unreadable_secrets_file_shows_the_file_and_nothing_else():
    auth.SECRETS_PATH.write_text(f"{auth.PASSWORD_ENV} = 42\n")
    at = _run()
    assert not at.sidebar.selectbox and not at.text_input
    assert any("secrets" in e.value and "non\\-empty string" in e.value for e in at.error)
