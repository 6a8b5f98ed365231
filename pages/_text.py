"""The plain-text rule of the pages: a user's or a file's text shown literally.

Its own module so that the sign-in gate (`pages._auth`) and the page helpers
(`pages._ui`, which re-exports `plain`) both use it without importing each other.
"""
from __future__ import annotations

import re
import string

_MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})
_WORD_JOINER = "\u2060"  # invisible; splits what GFM would turn into a link
_AUTOLINK_RE = re.compile(r"(?<=:)|(?<=@)|(?<=www)(?=\.)", re.IGNORECASE)


def plain(text: str) -> str:
    """`text` for a Streamlit markdown element (st.error, st.caption, ...) that shows it
    literally: file names, paths, labels and messages quoting them.

    Every ASCII punctuation character gets a backslash (CommonMark's escape), so `*`,
    `_`, `[..](..)`, `<b>`, `$..$` (math), `:red[..]` (colour) and `:smile:` (emoji) stay
    as typed; line breaks stay line breaks. GFM links bare URLs and e-mail addresses
    after the escapes are read, so an invisible word joiner (U+2060) follows each `:`
    and `@` and splits `www.`: `http://x` shows as typed but is not a link.
    """
    lines = (_AUTOLINK_RE.sub(_WORD_JOINER, line) for line in str(text).split("\n"))
    return "  \n".join(line.translate(_MARKDOWN_ESCAPES) for line in lines)
