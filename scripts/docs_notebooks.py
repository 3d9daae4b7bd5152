"""Executed copies of the notebooks for the documentation site (``make docs``, ``tests/test_docs_site.py``).

Each notebook in ``notebooks/`` runs top to bottom with the tiny settings that ``tests/test_notebooks.py`` uses
(its ``TINY`` table: the ``digits`` scenario, one epoch, one or two seeds, one worker), in a fresh kernel whose
working folder is ``build/docs_notebooks/work/<name>/`` (its runs and caches land there). The executed copy is
written to ``build/docs_notebooks/tutorials/<name>.ipynb`` with a note on top that says how it was made; mkdocs-jupyter
renders these copies without executing them again (``mkdocs.yml``). The committed notebooks are only read, so
they stay without outputs, and nothing is written outside ``build/`` (git-ignored).

A copy made from the same notebook and the same gradlab sources with the same settings is kept (``--force``
executes it again). The copy records the notebook's SHA-256, and the docs build warns (so ``--strict`` fails)
when a copy is missing or was made from another version of its notebook.

    .venv/bin/python scripts/docs_notebooks.py [--out build/docs_notebooks] [--force] [NAME.ipynb ...]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "build" / "docs_notebooks"
META_KEY = "gradlab_docs"          # notebook metadata written into each executed copy


def tiny_settings() -> dict:
    """tests/test_notebooks.py's TINY table (imported on use: the docs hook imports this module only for
    ``notebook_hash``)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from test_notebooks import TINY
    return TINY


NOTE = """\
> **Rendered for the documentation.** This page is `notebooks/{name}` executed with tiny settings (the
> `digits` scenario, one epoch per task; the last lines of the first code cell) so that the site builds in
> minutes on a CPU. Its numbers, statements and verdicts describe those toy runs, not results: run the notebook
> yourself (`.venv/bin/jupyter lab notebooks/`) to get them on Fashion-MNIST-LT.
"""


def notebook_hash(notebook: Path) -> str:
    return hashlib.sha256(notebook.read_bytes()).hexdigest()


def fingerprint(notebook: Path) -> str:
    """SHA-256 of the notebook and of the gradlab package's sources: a copy made before either changed is stale."""
    digest = hashlib.sha256(notebook.read_bytes())
    for path in sorted((ROOT / "gradlab").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def settings_for(name: str, folder: Path) -> dict:
    """The notebook's TINY settings, with paths into the repository made relative to its working folder."""
    settings = dict(tiny_settings()[name])
    if "tables_dir" in settings:
        settings["tables_dir"] = os.path.relpath(settings["tables_dir"], folder)
    return settings


def is_current(copy: Path, source: Path, settings: dict) -> bool:
    if not copy.exists():
        return False
    try:
        meta = json.loads(copy.read_text()).get("metadata", {}).get(META_KEY, {})
    except ValueError:
        return False
    return meta.get("fingerprint") == fingerprint(source) and meta.get("settings") == settings


def execute(name: str, out: Path, force: bool = False) -> bool:
    """Execute ``notebooks/<name>`` into ``out/tutorials/<name>``; False when an up-to-date copy was kept."""
    import nbformat
    from test_notebooks import notebook_client, with_parameters  # (tiny_settings put tests/ on the path)

    source = NOTEBOOK_DIR / name
    folder = out / "work" / name.removesuffix(".ipynb")
    settings = settings_for(name, folder)
    target = out / "tutorials" / name
    if not force and is_current(target, source, settings):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    nb = with_parameters(nbformat.read(source, as_version=4), settings)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.source = cell.source.replace("# tiny settings for the test", "# tiny settings for the documentation build")
    notebook_client(nb, folder).execute()   # raises CellExecutionError, with the cell and traceback, on an error
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(NOTE.format(name=name)))
    nb.metadata[META_KEY] = {"notebook_sha256": notebook_hash(source), "fingerprint": fingerprint(source),
                             "settings": settings}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(target)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: every notebook in notebooks/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the executed copies")
    parser.add_argument("--force", action="store_true", help="execute even when an up-to-date copy exists")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    tiny = tiny_settings()
    unknown = sorted(set(names) - set(tiny))
    if unknown:
        parser.error(f"no tiny settings for {unknown}; tests/test_notebooks.py's TINY has {sorted(tiny)}")
    out = args.out.resolve()
    for name in names:
        start = time.perf_counter()
        done = execute(name, out, args.force)
        print(f"{name}: {'executed' if done else 'up to date'} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
