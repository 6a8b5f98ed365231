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


def test_every_page_with_a_typed_path_calls_the_one_confinement_helper():
    """Issue 19 item 7: Dataset and Evaluation read folders Training refused. Every page that
    takes a typed path gets its roots from `pages._ui.data_roots` (explorer.paths' rule);
    none computes them itself."""
    from pathlib import Path

    pages = Path(__file__).resolve().parent.parent / "pages"
    typed = {}
    for p in sorted(pages.glob("*.py")):
        src = p.read_text()
        assert p.name == "_ui.py" or "paths.data_roots(" not in src, f"{p.name} computes its own data roots"
        if "text_input(" in src and any(w in src for w in ("folder", "path", "JSON")):
            typed[p.name] = "_ui.data_roots()" in src
    assert {"dataset.py", "evaluation.py", "training.py"} <= set(typed), typed
    assert all(typed.values()), typed
