"""The plain-text rule of the pages: a user's or a file's text shown literally.

Its own module so that the sign-in gate (`pages._auth`) and the page helpers
(`pages._ui`, which re-exports `plain`) both use it without importing each other. The
escaping itself is `explorer.text.md` (unit-tested without Streamlit).
"""
from explorer.text import md as plain  # noqa: F401 (the one plain-text rule)
