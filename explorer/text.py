"""The one plain-text rule: text that comes from a user or a file goes out as text.

File names, dataset labels, class names, typed paths, run names and the messages that
quote them are data, never markup. Streamlit reads Markdown in st.markdown, title,
header, subheader, caption, error, warning, info, success, write, progress text, radio
options and widget labels (images, links, `:red[..]`, `$..$` LaTeX); plotly reads a
small HTML subset in figure text (`<a href>`, `<b>`, `<br>`). Pages pass such text
through `md` before a Markdown element and figure builders through `html` before a
plotly label. No Streamlit import: unit-tested on its own (tests/test_text.py).
"""
from __future__ import annotations

import re
import string

_MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})
_WORD_JOINER = "\u2060"  # invisible; splits what GFM would turn into a link
_AUTOLINK_RE = re.compile(r"(?<=:)|(?<=@)|(?<=www)(?=\.)", re.IGNORECASE)
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def md(text: object) -> str:
    """`text` for a Streamlit Markdown element, shown literally.

    Every ASCII punctuation character gets a backslash (CommonMark's escape), so `*`,
    `_`, `![..](..)`, `[..](..)`, `<b>`, `$..$` (math), `:red[..]` (colour) and
    `:smile:` (emoji) stay as typed; line breaks stay line breaks. GFM links bare URLs
    and e-mail addresses after the escapes are read, so an invisible word joiner
    (U+2060) follows each `:` and `@` and splits `www.`: `http://x` shows as typed but
    is not a link.
    """
    lines = (_AUTOLINK_RE.sub(_WORD_JOINER, line) for line in str(text).split("\n"))
    return "  \n".join(line.translate(_MARKDOWN_ESCAPES) for line in lines)


def html(text: object) -> str:
    """`text` for a plotly label (trace name, hover text, annotation, title, tick text):
    `&`, `<` and `>` as entities, so `<a href=..>`, `<b>` or `<br>` in a class name or
    file name shows as typed instead of becoming a link or markup."""
    return str(text).translate(_HTML_ESCAPES)


def html_all(texts) -> list[str]:
    """`html` of each item (a figure's per-box labels)."""
    return [html(t) for t in texts]


# The markup the project's own figure builders write into data text (hover lines); kept
# after `figure_plain` escaped everything else.
_OWN_FIGURE_TAGS = ("br", "b", "/b", "i", "/i")
_TRACE_TEXT_FIELDS = ("text", "hovertext", "name", "legendgroup", "x", "y", "labels", "customdata")


def _html_keep_own_tags(text: str) -> str:
    out = html(text)
    for tag in _OWN_FIGURE_TAGS:
        out = out.replace(f"&lt;{tag}&gt;", f"<{tag}>")
    return out


def _plain_value(value):
    """Strings escaped, (nested) sequences of strings element-wise, anything else (numbers,
    numeric arrays) as it is."""
    if isinstance(value, str):
        return _html_keep_own_tags(value)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (str, list, tuple)):
        return type(value)(_plain_value(v) for v in value)
    if getattr(value, "dtype", None) is not None and getattr(value.dtype, "kind", "") in "OU":
        return _plain_value(value.tolist())
    return value


def figure_plain(fig):
    """`fig` (a plotly Figure) with the data text escaped as `html`: trace text, hover
    text, names, category values, custom data, annotation, title and tick text.

    The one pass every figure goes through before the page shows it, so a class name,
    GT label or file name such as `<a href=...>` reaches the browser as text wherever a
    builder put it. Hover templates are the builders' own and stay; so do the plain
    tags the builders write in hover lines (`<br>`, `<b>`, `<i>`). Once per figure (a
    cached figure shown again is not escaped twice). Returns `fig`.
    """
    if getattr(fig, "_text_plain", False):
        return fig
    for trace in fig.data:
        for field in _TRACE_TEXT_FIELDS:
            value = getattr(trace, field, None) if field in trace else None
            if value is not None:
                new = _plain_value(value)
                if new is not value:
                    trace[field] = new
    layout = fig.layout
    if layout.title and layout.title.text:
        layout.title.text = _html_keep_own_tags(layout.title.text)
    for ann in layout.annotations or ():
        if ann.text:
            ann.text = _html_keep_own_tags(ann.text)
    for name in layout:
        axis = layout[name]
        if name.startswith(("xaxis", "yaxis")) and axis is not None and axis.ticktext is not None:
            axis.ticktext = _plain_value(list(axis.ticktext))
    fig._text_plain = True
    return fig


def shown(markdown: str) -> str:
    """What a Markdown element shows for `md` text: the escapes and word joiners removed
    (tests and logs compare this with the user's text)."""
    return re.sub(r"\\(.)", r"\1", str(markdown)).replace(_WORD_JOINER, "")
