"""The links between README.md and docs/ resolve: every linked file exists and every #anchor names a heading
of its page (as GitHub makes anchors from headings)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(text: str) -> str:
    """The page without its fenced code blocks: a `# comment` in a shell block is no heading."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)


def test_every_code_fence_is_closed() -> None:
    """An odd number of fence lines renders the rest of the page as code (its headings and links with it)."""
    odd = [p.name for p in PAGES if len(re.findall(r"^```", p.read_text(), re.M)) % 2]
    assert not odd, odd


def test_every_link_between_the_pages_resolves() -> None:
    headings = {p: {anchor(h) for h in re.findall(r"^#+\s+(.*)$", prose(p.read_text()), re.M)} for p in PAGES}
    broken = []
    for page in PAGES:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, frag = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.name}: {link} (no such file)")
            elif frag and target.suffix == ".md" and frag not in headings.get(target, set()):
                broken.append(f"{page.name}: {link} (no such heading)")
    assert not broken, broken
    assert anchor("Faster for real: structured pruning and int8 (`channel` stage)") == (
        "faster-for-real-structured-pruning-and-int8-channel-stage")
