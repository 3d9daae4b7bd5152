"""MkDocs hooks for the gradlab site (``mkdocs.yml`` → ``hooks:``).

The pages in ``docs/`` are written to be read in the repository too, so they link to the files they talk about
where those files are (``../../REPRODUCE.md``, ``../../notebooks/00_tour.ipynb``, ``../../configs/x.yaml``).
These hooks put such files into the site and point the links at them; every other link is left for MkDocs to
check (``--strict`` fails on a broken one):

- ``MIRRORS``: repository files shown as pages of the site (the README, REPRODUCE.md, the figures' READMEs...);
- the notebooks: the EXECUTED copies that ``scripts/docs_notebooks.py`` writes to
  ``build/docs_notebooks/tutorials/`` become ``tutorials/<name>.ipynb`` (rendered by mkdocs-jupyter, not
  executed again); a missing or stale copy is a warning, and the committed notebook is shown in its place;
- any other existing repository file that a page links to (a config YAML, a figure PNG) is copied into the
  site under ``repo/<path>``; a link to a folder of ``docs/`` goes to its ``index.md``, a link to another
  folder of the repository becomes its name in code;
- ``<!-- include PATH NAME -->`` in a page is replaced by the block between ``<!-- NAME:begin -->`` and
  ``<!-- NAME:end -->`` of the file PATH (relative to the page), e.g. the README's generated verdict tables;
- ``<!-- gradlab-namespace -->`` becomes a table of every name in ``gradlab.__all__``, each linked to its API
  entry (where it is defined) with the first sentence of its docstring;
- on API pages, Sphinx roles left in docstrings (``:class:`~a.X```) are shown as Sphinx shows them (``X``).

A page's links are read as written in the repository's ``docs/`` (even when MkDocs builds a copy of it).
"""
from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_notebooks import DEFAULT_OUT as EXECUTED
from docs_notebooks import META_KEY, notebook_hash

log = logging.getLogger("mkdocs.hooks.gradlab")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
# repository file -> its page in the site
MIRRORS = {
    "README.md": "readme.md",
    "REPRODUCE.md": "reproducing/configurations.md",
    "figures/README.md": "reproducing/figures.md",
    "figures/tables/README.md": "reproducing/tables.md",
    "benchmarks/README.md": "reproducing/speed.md",
    "CONTRIBUTING.md": "contributing.md",
}
STATIC = "repo"                                    # other linked repository files land under this folder
LINK = re.compile(r"(!?\[(?:[^\[\]]|\[[^\[\]]*\])*\])\(\s*<?([^)\s>]+)>?(\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INCLUDE = re.compile(r"<!--\s*include\s+(\S+)\s+([\w-]+)\s*-->")
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):<code>(~?)([^<]*)</code>")

_origin: dict[str, Path] = {}                      # page src_uri -> where its links are relative to


def _site_uri(path: Path) -> str | None:
    """The page of the site that shows the repository file ``path``, if there is one."""
    if not path.is_relative_to(ROOT):
        return None
    rel = path.relative_to(ROOT).as_posix()
    if rel in MIRRORS:
        return MIRRORS[rel]
    if path.parent == NOTEBOOKS and path.suffix == ".ipynb" and path.exists():
        return f"tutorials/{path.name}"
    return None


def _links(lines: list[str], origin: Path):
    """(line index, match, resolved path, anchor) of every relative link outside fenced code."""
    fenced = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        if fenced:
            continue
        for m in LINK.finditer(line):
            url = m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:|^[#/]", url):
                continue                           # external, absolute or same-page
            path, _, anchor = url.partition("#")
            yield i, m, Path(os.path.normpath(origin.parent / path)), anchor


def _is_static(target: Path) -> bool:
    """A repository file outside docs/ that the site copies as it is."""
    return (target.is_file() and target.is_relative_to(ROOT) and not target.is_relative_to(DOCS)
            and target.suffix != ".md" and _site_uri(target) is None)


def _notebook_file(config, nb: Path) -> File:
    """``tutorials/<name>.ipynb``: the executed copy in ``EXECUTED/tutorials/`` (mkdocs-jupyter needs a file
    under a source folder); without a copy, the committed notebook copied there, and a warning."""
    copy = EXECUTED / "tutorials" / nb.name
    meta = json.loads(copy.read_text()).get("metadata", {}).get(META_KEY) if copy.exists() else None
    if meta is None:
        log.warning(f"no executed copy of notebooks/{nb.name} in {copy.parent}: run `make docs` "
                    "(scripts/docs_notebooks.py); showing the notebook without outputs")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(nb, copy)
    elif meta.get("notebook_sha256") != notebook_hash(nb):
        log.warning(f"the executed copy {copy} was made from another version of notebooks/{nb.name}: "
                    "run `make docs`")
    return File(f"tutorials/{nb.name}", src_dir=str(EXECUTED), dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls)


@event_priority(100)                               # before mkdocs-jupyter wraps the notebooks
def on_files(files, config):
    _origin.clear()
    sources = {}
    for f in files.documentation_pages():
        _origin[f.src_uri] = DOCS / f.src_uri
        sources[f.src_uri] = f.content_string
    for rel, uri in MIRRORS.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / rel)))
        _origin[uri] = ROOT / rel
        sources[uri] = (ROOT / rel).read_text(encoding="utf-8")
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(_notebook_file(config, nb))
    for uri, text in sources.items():
        for _, _, target, _ in _links(text.splitlines(), _origin[uri]):
            static = f"{STATIC}/{target.relative_to(ROOT).as_posix()}" if _is_static(target) else None
            if static and files.get_file_from_path(static) is None:
                files.append(File.generated(config, static, abs_src_path=str(target)))
    return files


def _rewrite(markdown: str, page_uri: str) -> str:
    origin = _origin.get(page_uri)
    if origin is None:
        return markdown
    here = posixpath.dirname(page_uri) or "."
    lines = markdown.splitlines(keepends=True)
    edits = []                                     # (line index, match, replacement)
    for i, m, target, anchor in _links(lines, origin):
        uri = _site_uri(target)
        if uri is None and target.is_relative_to(DOCS):          # (MkDocs checks that it exists)
            uri = (target / "index.md" if target.is_dir() else target).relative_to(DOCS).as_posix()
        elif uri is None and _is_static(target):
            uri = f"{STATIC}/{target.relative_to(ROOT).as_posix()}"
        elif uri is None and target.is_dir() and target.is_relative_to(ROOT):
            text, name = m.group(1)[1:-1], target.relative_to(ROOT).as_posix() + "/"
            edits.append((i, m, text if name.rstrip("/") in text else f"{text} (`{name}`)"))
            continue
        if uri is None:
            continue                               # not in the site: MkDocs reports it
        new = posixpath.relpath(uri, here) + (f"#{anchor}" if anchor else "")
        edits.append((i, m, f"{m.group(1)}({new}{m.group(3) or ''})"))
    for i, m, new in sorted(edits, key=lambda e: (e[0], -e[1].start())):
        lines[i] = lines[i][:m.start()] + new + lines[i][m.end():]
    return "".join(lines)


def _include(markdown: str, page_uri: str) -> str:
    def block(m: re.Match) -> str:
        path = Path(os.path.normpath(_origin[page_uri].parent / m.group(1)))
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        found = re.search(rf"<!--\s*{m.group(2)}:begin\s*-->\n?(.*?)<!--\s*{m.group(2)}:end\s*-->", text, re.DOTALL)
        if found is None:
            log.warning(f"{page_uri}: no block {m.group(2)!r} in {path} for {m.group(0)}")
            return ""
        return found.group(1)

    return INCLUDE.sub(block, markdown) if page_uri in _origin else markdown


def _namespace_table() -> str:
    """| name | what | for every public name of ``gradlab``; the link goes to the entry of the object itself."""
    import inspect

    import gradlab

    rows = ["| name | what |", "|---|---|"]
    for name in gradlab.__all__:
        obj = getattr(gradlab, name)
        doc = " ".join((inspect.getdoc(obj) or "").split())
        first = re.split(r"(?<=\.)\s", doc)[0].rstrip(".").replace("|", "\\|")
        rows.append(f"| [`gradlab.{name}`][{obj.__module__}.{obj.__qualname__}] | {first} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown, page, config, files):
    if "<!-- gradlab-namespace -->" in markdown:
        markdown = markdown.replace("<!-- gradlab-namespace -->", _namespace_table())
    return _rewrite(_include(markdown, page.file.src_uri), page.file.src_uri)


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith("api/"):       # :class:`~a.b.C` -> C, :func:`a.f` -> a.f, as Sphinx shows them
        html = ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)
    return html
