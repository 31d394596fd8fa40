"""The README and docs/ as a user meets them: a short README, links that resolve, and an
architecture page whose module table matches the package."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page.read_text()).splitlines() if line.startswith("#")}


def test_readme_is_a_short_guide_without_history():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    outside = prose(text)
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", outside), "dates belong in docs/results.md or CHANGELOG.md"
    hashes = re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", outside)
    assert not hashes, "commit hashes belong in docs/results.md or CHANGELOG.md"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_architecture_page_names_every_module_and_only_real_ones():
    table = (ROOT / "docs" / "architecture.md").read_text()
    table = table[table.index("| module (in `harness/`)") : table.index("## Where to change what")]
    named = set(re.findall(r"`([\w/]+\.py)`", table))  # paths inside harness/
    package = ROOT / "harness"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py") if p.name != "__init__.py"}
    assert modules - named == set(), "modules missing from docs/architecture.md"
    inits = {p.relative_to(package).as_posix() for p in package.rglob("__init__.py")}
    assert named - modules - inits == set(), "docs/architecture.md names modules that do not exist"
