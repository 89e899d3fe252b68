"""The documentation stands alone: a short README, links that resolve, nothing outside the repository, each fact said once.

README.md is the way in (what it is, try it, deploy, use the component, the configuration reference);
the reference material lives in docs/. These checks keep it that way.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]

MAX_README_LINES = 350
#: Names of things outside this repository that no tracked file may mention (spelt in two parts, so
#: that this file does not mention them either).
OUTSIDE = ("DESIGN" + ".md", ".." + "/shared")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links and headings in code are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]   # http:, https:, mailto: are not files


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move reference material to docs/"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif not str(resolved).startswith(str(REPO)):
            broken.append(f"{target}: outside the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {rel(resolved)}")
    assert not broken, f"{rel(page)}:\n" + "\n".join(broken)


def test_the_checks_see_links_and_anchors():
    # the link check would pass vacuously if it found nothing
    assert "docs/local.md" in links(README) and "../README.md#configuration-reference" in links(REPO / "docs" / "architecture.md")
    assert "deploying-with-pulumi-up" in anchors(README) and "policy--control-mapping" in anchors(REPO / "docs" / "compliance.md")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_refers_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{rel(path)}: {name}" for name in OUTSIDE if name in text]
    assert not offenders, offenders


def blocks(text: str) -> list[list[str]]:
    """Paragraphs (runs of non-blank lines) as normalised lines, without fence markers and table rules."""
    out: list[list[str]] = [[]]
    for line in text.splitlines():
        norm = " ".join(line.split()).lower()
        if not norm:
            out.append([])
        elif not re.fullmatch(r"(```|~~~).*|[|:\- ]+", norm):
            out[-1].append(norm)
    return [b for b in out if b]


def windows(text: str, size: int = 3) -> dict[tuple[str, ...], int]:
    return {tuple(b[i:i + size]): i for b in blocks(text) for i in range(len(b) - size + 1)}


@pytest.mark.parametrize("page", DOCS, ids=rel)
def test_no_paragraph_is_both_in_the_readme_and_in_a_doc(page):
    shared = set(windows(README.read_text())) & set(windows(page.read_text()))
    assert not shared, f"README.md and {rel(page)} both say:\n" + "\n---\n".join("\n".join(w) for w in sorted(shared))


def test_the_duplicate_check_finds_a_copied_paragraph():
    paragraph = "one line of a paragraph\nanother line of it\n  and a third,   re-wrapped\n"
    assert set(windows("intro\n\n" + paragraph)) & set(windows("Other text.\n" + paragraph.upper() + "\nmore"))
