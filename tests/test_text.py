"""explorer/text.py: the one plain-text rule (Markdown and plotly labels)."""
import re

import plotly.graph_objects as go

from explorer.text import figure_plain, html, md

HOSTILE = "![x](http://127.0.0.1:1/P1.png) [l](u) $x^2$ :red[r] <a href='http://h/'>a</a> _i_ *b*"


def _unescaped(markdown: str) -> str:
    """What CommonMark shows for backslash-escaped text (the escapes removed)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def test_md_escapes_every_markup_and_shows_the_text_as_typed():
    out = md(HOSTILE)
    for raw in ("![x](", "[l](", "$x^2$", ":red[", "_i_", "*b*", "http://"):
        assert raw not in out
    assert re.search(r"(?<!\\)<", out) is None  # every < escaped (HTML is off, but also as text)
    assert _unescaped(out) == HOSTILE
    assert md("a\nb") == "a  \nb"  # line breaks stay line breaks
    assert md(3.5) == "3\\.5"


def test_html_escapes_tags_and_ampersands():
    assert html("<a href='x'>a</a> & b") == "&lt;a href='x'&gt;a&lt;/a&gt; &amp; b"


def test_figure_plain_escapes_data_text_but_keeps_the_builders_markup():
    fig = go.Figure([go.Scatter(x=[1.0, 2.0], y=[1.0, 2.0], text=["<a href='u'>c</a>", "cat<br>0.9"],
                                name="<b>GT</b> <img src=x>", customdata=["det:1:2", "<a>"],
                                hovertemplate="%{text}<extra></extra>"),
                     go.Bar(x=["<a href=u>dog</a>", "cat"], y=[1, 2])])
    fig.update_layout(title="<a href='u'>t</a>")
    fig.add_annotation(text="<span style='x'>n</span>")
    figure_plain(fig)
    t0, t1 = fig.data
    assert t0.text == ("&lt;a href='u'&gt;c&lt;/a&gt;", "cat<br>0.9")
    assert t0.name == "<b>GT</b> &lt;img src=x&gt;"
    assert list(t0.customdata) == ["det:1:2", "&lt;a&gt;"]
    assert t0.hovertemplate == "%{text}<extra></extra>"  # the builder's own template stays
    assert list(t0.x) == [1.0, 2.0]
    assert t1.x == ("&lt;a href=u&gt;dog&lt;/a&gt;", "cat")
    assert fig.layout.title.text == "&lt;a href='u'&gt;t&lt;/a&gt;"
    assert fig.layout.annotations[0].text == "&lt;span style='x'&gt;n&lt;/span&gt;"
    figure_plain(fig)  # a figure shown twice is escaped once
    assert t1.x[0] == "&lt;a href=u&gt;dog&lt;/a&gt;"
