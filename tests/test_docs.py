"""The project's own documentation: every method and protocol has a page, and every relative link resolves."""
import re
from pathlib import Path

from gradlab.methods import METHODS, list_methods

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md", ROOT / "REPRODUCE.md"]


def test_every_method_and_protocol_has_a_page():
    built_in = {name for name in list_methods() if METHODS[name].__module__.startswith("gradlab.methods.")}
    assert len(built_in) >= 16                                     # (a test's plugin methods need no page)
    assert built_in <= {p.stem for p in (ROOT / "docs" / "methods").glob("*.md")}
    protocols = {p.stem for p in (ROOT / "docs" / "protocols").glob("*.md")}
    assert {"cifar100_lt", "imagenet_subset_lt", "food101_lt", "imagenet1k", "fashion_mnist_lt"} <= protocols


def test_relative_links_resolve_and_nothing_points_outside_the_repository():
    broken = []
    for page in PAGES:
        text = page.read_text()
        assert "specs/" not in text and "DESIGN.md" not in text, page
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                broken.append((page.relative_to(ROOT), target))
    assert not broken
