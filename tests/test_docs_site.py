"""The documentation site builds with ``mkdocs build --strict`` (what ``make docs`` does), so that a broken link,
a missing page or an API entry that does not resolve fails ``make test``.

The notebooks are executed first into ``build/docs_notebooks`` (``scripts/docs_notebooks.py``: the tiny settings
of test_notebooks.py; a copy is kept until its notebook or the gradlab package changes), then the site is built
into a temp folder. The tests check the built HTML: the API reference renders the docstrings and has an entry for
every module and every name of the ``gradlab`` namespace, and the tutorials are the executed notebooks. A copy
of the docs with one broken link must fail the strict build.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], check=False, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    print(f"mkdocs build: {time.perf_counter() - start:.1f} s")
    return done


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_notebooks.py")], cwd=ROOT, env=ENV, check=True,
                   timeout=1200)
    print(f"notebooks: {time.perf_counter() - start:.1f} s")
    site = tmp_path_factory.mktemp("site")
    done = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr
    return site


def html(site: Path, page: str) -> str:
    path = site / page / "index.html"
    assert path.exists(), f"the site has no page {page}/"
    return path.read_text(encoding="utf-8")


def words(page: str) -> str:
    """The text of an HTML page, tags dropped, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


def first_sentence(doc: str) -> str:
    return " ".join(re.split(r"\.\s", doc)[0].replace("``", "").split())


def gradlab_modules() -> list[str]:
    """Every public module of the package, from its files."""
    names = []
    for path in sorted((ROOT / "gradlab").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(p.startswith("_") for p in parts):
            names.append(".".join(parts))
    return names


def test_every_page_of_the_nav_is_built(site):
    for page in ("getting-started", "concepts", "tutorials", "reproducing", "reproducing/configurations",
                 "reproducing/tables", "extending", "architecture", "api", "methods/dgr", "protocols/cifar100_lt"):
        html(site, page)
    assert (site / "repo" / "configs" / "cifar100_lt_lt_lfs20.yaml").exists(), "REPRODUCE's config links"


def test_api_reference_renders_the_docstrings(site):
    import gradlab
    from gradlab.training.trainer import Trainer

    training = html(site, "api/training")
    assert 'id="gradlab.training.trainer.Trainer"' in training and 'id="gradlab.training.trainer.Callback"' in training
    assert first_sentence(Trainer.fit.__doc__) in words(training)
    pages = {p.parent.relative_to(site).as_posix(): p.read_text(encoding="utf-8")
             for p in (site / "api").rglob("index.html")}
    run_id = f"{gradlab.run.__module__}.{gradlab.run.__qualname__}"
    [page] = [text for text in pages.values() if f'id="{run_id}"' in text]
    assert first_sentence(gradlab.run.__doc__) in words(page), "gradlab.run's docstring is not on its API page"
    everything = "\n".join(pages.values())
    missing = [m for m in gradlab_modules() if f'id="{m}"' not in everything]
    assert not missing, f"modules without an entry in the API reference (docs/api/*.md): {missing}"
    assert not re.search(r":(class|func|meth|mod|attr):<code>", everything), "a Sphinx role is shown as text"
    for name in gradlab.__all__:                   # the namespace table links each name to its entry
        assert re.search(rf'<a [^>]*href="[^"]*#gradlab\.[\w.]+"[^>]*><code>gradlab\.{name}</code></a>', pages["api"]), name


def test_tutorials_are_the_executed_notebooks(site):
    for path in NOTEBOOKS:
        page = html(site, f"tutorials/{path.stem}")
        assert "Rendered for the documentation" in page
        assert "data:image/png;base64," in page, f"{path.name}: no figure in the rendered notebook"
        assert "Traceback" not in page
        nb = nbformat.read(path, as_version=4)     # executing the copies left the committed notebook clean
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code"), path.name
    index = html(site, "tutorials")
    assert all(f'href="{p.stem}/"' in index for p in NOTEBOOKS), "the tutorials page links every notebook"


def test_a_broken_link_fails_the_strict_build(site, tmp_path):
    """The same docs and configuration with one link to a page that does not exist: the build must fail and
    name it (the fixture built the unchanged docs without a warning)."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with open(docs / "getting-started.md", "a", encoding="utf-8") as f:
        f.write("\nSee [the missing page](no-such-page.md).\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["docs_dir"] = str(docs)
    config["hooks"] = [str(ROOT / h) for h in config["hooks"]]
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    done = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0, "a --strict build with a broken link succeeded"
    output = done.stdout + done.stderr
    assert "no-such-page.md" in output and "strict mode" in output, output
