"""The README and the guides in docs/: the README stays short enough to finish, says how
to start and test, and no relative link in it or in docs/*.md points to a missing file."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200
# [text](target) and ![alt](target); the target ends at whitespace or ")" (an optional
# "title" after it is ignored).
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that point into the repository (no URL scheme,
    not a bare #anchor), without their #anchor. Fenced code blocks are skipped."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    targets = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_finds_files_and_skips_urls_anchors_and_code():
    text = ("[a](docs/x.md#part) ![b](shots/y.png) [c](https://e.org/z) [d](#top)\n"
            "```\n[e](in/code.md)\n```\n[f](<spaced.md> \"title\")")
    assert relative_links(text) == ["docs/x.md", "shots/y.png", "spaced.md"]


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail into a guide in docs/")


def test_readme_says_how_to_run_and_test():
    text = README.read_text()
    for command in ("make run", "make test"):
        assert command in text, f"README.md never mentions `{command}`"


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_exist(doc):
    missing = [t for t in relative_links(doc.read_text()) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


def test_the_guides_exist():
    names = {p.name for p in DOCS}
    for guide in ("explorer.md", "serving.md", "training.md", "boxes-for-your-data.md",
                  "evaluation.md", "benchmarks.md", "api.md"):
        assert guide in names, f"docs/{guide} is missing"
