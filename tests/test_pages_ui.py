"""pages/_ui.py: the one place that touches a private Streamlit attribute."""
from streamlit.runtime.pages_manager import PagesManager


def test_streamlit_still_has_the_pages_directory_flag():
    """`require_app_frame` hands a run that started on a page file back to app.py by
    flipping `PagesManager.uses_pages_directory`, a private attribute. If a Streamlit
    upgrade renames it, fail here loudly instead of pages silently losing the sidebar."""
    assert isinstance(PagesManager.uses_pages_directory, (bool, type(None))), (
        "streamlit changed PagesManager.uses_pages_directory: revisit pages/_ui.require_app_frame")


def test_uses_pages_directory_reads_the_flag(monkeypatch):
    from pages import _ui

    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    assert _ui.uses_pages_directory() is True
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    assert _ui.uses_pages_directory() is False
