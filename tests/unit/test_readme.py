"""The README stays short, and no relative link in it or in docs/ points nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 200

# [text](target) or [text](target "title"); images too. Reference definitions: [id]: target
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def links(markdown: str) -> list[str]:
    """Link targets of ``markdown``, leaving out code blocks and code spans."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return _INLINE.findall(text) + _REFERENCE.findall(text)


def relative(targets: list[str]) -> list[str]:
    """The targets that name a file of this repository (no scheme, not just an anchor)."""
    return [t for t in targets if not _SCHEME.match(t) and not t.startswith("#")]


def anchors(markdown: str) -> set[str]:
    """The ids GitHub gives the headings of ``markdown`` (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    ids: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def test_readme_is_short() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines; move detail to docs/"


def test_readme_links_the_reference_pages() -> None:
    targets = set(relative(links(README.read_text(encoding="utf-8"))))
    for page in ("docs/configuration.md", "docs/transport.md", "docs/performance.md"):
        assert page in targets, f"README.md does not link {page}"


def resolves(page: Path, target: str) -> bool:
    """Whether ``target``, relative to ``page``, names a path of this repository (and, for a
    Markdown file with ``#fragment``, one of its headings)."""
    path_part, _, fragment = target.partition("#")
    path = (page.parent / path_part).resolve()
    if not path.is_relative_to(ROOT) or not path.exists():
        return False
    if fragment and path.suffix == ".md" and path.is_file():
        return fragment in anchors(path.read_text(encoding="utf-8"))
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    targets = relative(links(page.read_text(encoding="utf-8")))
    broken = [target for target in targets if not resolves(page, target)]
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"


def test_link_helpers_see_what_a_reader_sees() -> None:
    sample = (
        "See [a](docs/a.md#part), [b](<docs/b.md>), [web](https://example.org/x),\n"
        "[here](#local) and `[not](code.md)`.\n\n```\n[nor](block.md)\n```\n\n"
        "[ref]: ../up.md\n\n## Audit replay\n\n## `sockethub` commands\n\n## Audit replay\n"
    )
    assert relative(links(sample)) == ["docs/a.md#part", "docs/b.md", "../up.md"]
    assert anchors(sample) == {"audit-replay", "sockethub-commands", "audit-replay-1"}
