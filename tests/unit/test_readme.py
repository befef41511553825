"""The README and docs/ are the contract's documentation: they must not drift from the code.

The README is the front door (what it is, the two commands, what you see, where to go next) and stays short;
the depth lives in docs/*.md. Settings are documented in docs/operations.md, commands anywhere in either.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.cli import SUBCOMMANDS
from shared.settings import variables

REPO = Path(__file__).resolve().parents[2]
README_PATH = REPO / "README.md"
DOCS = REPO / "docs"
README = README_PATH.read_text()
OPERATIONS = (DOCS / "operations.md").read_text()
PAGES = [README_PATH, *sorted(DOCS.glob("*.md"))]
EVERYTHING = "\n".join(page.read_text() for page in PAGES)

README_MAX_LINES = 250
# Docs pages written on another branch of the same change: checked once they exist.
PAGES_WRITTEN_ELSEWHERE = {DOCS / "producer.md"}
# [text](target): a target without a scheme is a link into the repository.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_setting_is_documented() -> None:
    documented = README + OPERATIONS
    assert [name for name in variables() if f"`{name}`" not in documented] == []


def test_every_command_is_documented() -> None:
    assert [name for name in SUBCOMMANDS if f"`portfolio {name}" not in EVERYTHING] == []


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    commands = [
        line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.split("#")[0].strip()
    ]
    assert commands == ["make run", "make test"]


def test_readme_fits_on_a_screen() -> None:
    assert len(README.splitlines()) <= README_MAX_LINES


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _doc_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link, target page, anchor) of every link in ``page`` to a docs page, the README or an anchor."""
    links = []
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if resolved == README_PATH or (resolved.parent == DOCS and resolved.suffix == ".md"):
            links.append((target, resolved, anchor))
    return links


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_link_to_a_docs_page_resolves(page: Path) -> None:
    broken = []
    for target, resolved, anchor in _doc_links(page):
        if not resolved.is_file():
            if resolved not in PAGES_WRITTEN_ELSEWHERE:
                broken.append(target)
        elif anchor and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


def test_the_readme_links_to_every_docs_page() -> None:
    linked = {resolved for _, resolved, _ in _doc_links(README_PATH)}
    assert [page.name for page in DOCS.glob("*.md") if page not in linked] == []
