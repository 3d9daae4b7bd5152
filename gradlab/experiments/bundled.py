"""The repository's ``configs/`` (the paper's benchmarks, one YAML per table row) and ``sweeps/`` folders,
wherever gradlab runs.

An installed wheel carries copies of both as ``gradlab/_bundled/{configs,sweeps}`` (setup.py puts them
there); a checkout (or an editable install) reads the folders at its root. So ``gradlab run
configs/cifar100_lt_lt_lfh11.yaml`` and ``gradlab sweep sweeps/fig5_five_seeds.yaml`` work as printed in
README and docs from any folder: a path that exists is read as given, and one that does not but names a
bundled file (``configs/NAME.yaml``, ``NAME.yaml`` or ``NAME``) is read from the bundled copy.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("configs", "sweeps")


def bundled_folder(kind: str) -> Path | None:
    """The folder of bundled ``kind`` files (``configs`` or ``sweeps``): the wheel's copy, else the checkout's
    folder; None when neither is there."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    package = Path(str(files("gradlab")))
    shipped, checkout = package / "_bundled" / kind, package.parent
    if shipped.is_dir():
        return shipped
    if (checkout / "pyproject.toml").is_file() and (checkout / kind).is_dir():
        return checkout / kind
    return None


def bundled_names(kind: str) -> list[str]:
    """The names (file stems) of the bundled ``kind`` files, sorted."""
    folder = bundled_folder(kind)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder else []


def resolve(path: str | Path, kind: str) -> Path:
    """``path`` as given when it exists; else the bundled ``kind`` file it names (``KIND/NAME.yaml``,
    ``NAME.yaml`` or ``NAME``); else ``path`` unchanged (so that the reader's own error names it)."""
    given = Path(path)
    if given.exists() or given.parent not in (Path("."), Path(kind)):
        return given
    folder = bundled_folder(kind)
    name = given.name if given.suffix in (".yaml", ".yml") else given.name + ".yaml"
    if folder is not None and (folder / name).is_file():
        return folder / name
    return given
