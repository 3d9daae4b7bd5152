"""Builds gradlab (``python -m build``, ``pip install .``). The metadata is in pyproject.toml; this file only
ships the repository's ``configs/`` (the paper's benchmarks) and ``sweeps/`` inside the package, as
``gradlab/_bundled/{configs,sweeps}/*.yaml``, so that an installed ``gradlab`` finds them without a checkout
(:mod:`gradlab.experiments.bundled`). The folders themselves stay at the root, where README and docs name them."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("configs", "sweeps")


class BuildWithBundledFiles(build_py):
    """build_py, plus configs/*.yaml and sweeps/*.yaml copied to gradlab/_bundled/ (not in an editable
    install: there the checkout's own folders are read)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in BUNDLED:
            target = Path(self.build_lib, "gradlab", "_bundled", folder)
            self.mkpath(str(target))
            for path in sorted(Path(__file__).parent.joinpath(folder).glob("*.yaml")):
                self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildWithBundledFiles})
