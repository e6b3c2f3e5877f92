"""Every relative link in README.md and docs/**/*.md resolves: to an existing file and, with a
`#anchor`, to a heading of that file by GitHub's anchor rule. Every docs page is reachable from
the README and links back to it, and the README stays a front door."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 300
FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else str(page)


def prose(text: str) -> str:
    """The text without fenced blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCED.sub("", text))


def github_anchor(heading: str) -> str:
    """GitHub's rule: the heading's rendered text, lower-cased, everything but letters, digits,
    `_`, `-` and spaces dropped, spaces turned into hyphens (runs of hyphens are kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page; a repeated one gets -1, -2, ... as GitHub numbers them."""
    seen: Counter[str] = Counter()
    found = set()
    for _, heading in HEADING.findall(FENCED.sub("", page.read_text())):
        slug = github_anchor(heading)
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def relative_links(page: Path) -> list[str]:
    return [target for _, target in LINK.findall(prose(page.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)]


def broken(page: Path, target: str) -> str | None:
    """Why a relative link of `page` does not resolve, or None."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"{target}: no such file {page_id(file)}"
    if anchor and anchor not in anchors(file):
        return f"{target}: no heading with anchor #{anchor} in {page_id(file)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    problems = [p for target in relative_links(page) if (p := broken(page, target))]
    assert not problems, f"{page_id(page)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES[1:], ids=page_id)
def test_docs_page_links_back_to_the_readme(page):
    readme = [t for t in relative_links(page) if (page.parent / t.partition("#")[0]).resolve() == ROOT / "README.md"]
    assert readme, f"{page_id(page)} does not link back to README.md"


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in relative_links(page):
            path = target.partition("#")[0]
            file = (page.parent / path).resolve() if path else page
            if file.suffix == ".md" and file.is_file():
                todo.append(file)
    assert [page_id(p) for p in PAGES if p not in reached] == []


def test_docs_pages_named_in_code_exist():
    """Help texts, error messages and comments point at docs pages by path; a renamed page breaks them."""
    sources = [ROOT / "pyproject.toml", ROOT / "Makefile",
               *(f for d in ("ssdconvert", "preprocess", "postprocess", "stageio", "benchmarks", "tests")
                 for f in (ROOT / d).rglob("*.py"))]
    named = {(f.relative_to(ROOT).as_posix(), m) for f in sources
             for m in re.findall(r"\bdocs/[\w/.-]+?\.md\b", f.read_text())}
    assert len(named) >= 5
    assert sorted(n for n in named if not (ROOT / n[1]).is_file()) == []


def test_readme_is_a_front_door():
    """Details go to docs/; the README keeps what it is, set-up, the two commands, the tour, the maps."""
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details into docs/"


def test_github_anchor_rule():
    assert github_anchor("Past one machine: `--cluster` (Ray)") == "past-one-machine---cluster-ray"
    assert github_anchor("`ssdconvert synth` — embedded default data") == "ssdconvert-synth--embedded-default-data"
    assert github_anchor("`ssdconvert preprocess --val_annotation A`") == "ssdconvert-preprocess---val_annotation-a"
    assert github_anchor("Walkthrough: [Ascend](x.md) 310P") == "walkthrough-ascend-310p"


def test_link_check_can_fail(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## Twice\n\n## Twice\n\n```bash\n# not a heading\n```\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#twice-1) [gone](missing.md) [bad](a.md#not-a-heading) `[code](nope.md)`\n"
                    "[web](https://example.com/x.md) [self](#here)\n\n## Here\n")
    assert relative_links(page) == ["a.md#twice-1", "missing.md", "a.md#not-a-heading", "#here"]
    assert [t for t in relative_links(page) if broken(page, t)] == ["missing.md", "a.md#not-a-heading"]
