"""gradlab is a package: `python -m build` makes a wheel and an sdist holding the code, the paper's configs and
the sweep files, and the `gradlab` command; the wheel, installed into a fresh virtual environment, runs
`gradlab --version`, `gradlab info` and a tiny run from a folder outside the checkout.

The fresh environment reuses the heavy dependencies already installed here (torch, ...) through a .pth file
that lists this environment's site-packages; that adds the folder to sys.path without running its own .pth
files, so the editable install of the checkout (__editable__.gradlab-*.pth) is not picked up there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import gradlab
from gradlab.cli import main
from gradlab.experiments.bundled import bundled_names, resolve

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
SWEEPS = sorted(p.name for p in (ROOT / "sweeps").glob("*.yaml"))


def _run(args, cwd, timeout=300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel `python -m build` makes (no isolation: the build tools of this environment)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=out)
    wheels, sdists = sorted(out.glob("gradlab-*.whl")), sorted(out.glob("gradlab-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"gradlab {gradlab.__version__}"


def test_configs_and_sweeps_named_as_in_the_readme_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("sweeps/fig5_five_seeds.yaml", "sweeps") == ROOT / "sweeps" / "fig5_five_seeds.yaml"
    assert resolve("fig5_five_seeds", "sweeps") == ROOT / "sweeps" / "fig5_five_seeds.yaml"
    assert resolve(f"configs/{CONFIGS[0]}", "configs") == ROOT / "configs" / CONFIGS[0]
    assert bundled_names("configs") == [Path(n).stem for n in CONFIGS]
    assert resolve("configs/no_such.yaml", "configs") == Path("configs/no_such.yaml")      # the reader names it
    assert resolve("elsewhere/fig5_five_seeds.yaml", "sweeps") == Path("elsewhere/fig5_five_seeds.yaml")
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "fig5_five_seeds.yaml").write_text("base: {}\n")             # a file here wins
    assert resolve("sweeps/fig5_five_seeds.yaml", "sweeps") == Path("sweeps/fig5_five_seeds.yaml")


def test_the_wheel_holds_the_package_its_data_and_the_command(dists):
    assert dists["wheel"].name == f"gradlab-{gradlab.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gradlab").rglob("*.py")}
    assert package <= names, sorted(package - names)[:10]
    assert {f"gradlab/_bundled/configs/{n}" for n in CONFIGS} <= names and CONFIGS
    assert {f"gradlab/_bundled/sweeps/{n}" for n in SWEEPS} <= names and SWEEPS
    assert not any("__pycache__" in n for n in names)
    info = f"gradlab-{gradlab.__version__}.dist-info"
    entry_points = zipfile.ZipFile(dists["wheel"]).read(f"{info}/entry_points.txt").decode()
    assert "[console_scripts]" in entry_points and "gradlab = gradlab.cli:main" in entry_points
    metadata = zipfile.ZipFile(dists["wheel"]).read(f"{info}/METADATA").decode()
    assert f"Version: {gradlab.__version__}" in metadata and "Requires-Dist: torch" in metadata


def test_the_sdist_holds_the_package_its_data_and_the_build_files(dists):
    top = f"gradlab-{gradlab.__version__}"
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.removeprefix(top + "/") for n in tar.getnames()}
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "gradlab/__init__.py",
            "gradlab/cli/commands.py"} <= names
    assert {f"configs/{n}" for n in CONFIGS} | {f"sweeps/{n}" for n in SWEEPS} <= names


def test_the_installed_wheel_runs_outside_the_checkout(dists, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python, gradlab_command = venv / "bin" / "python", venv / "bin" / "gradlab"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index",
          dists["wheel"]], cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "reused_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert ROOT not in work.parents
    check = ("import gradlab, json; from gradlab.experiments.bundled import bundled_folder, resolve; "
             "from gradlab.experiments.reproduce import config_rows; "
             "print(json.dumps([gradlab.__file__, str(bundled_folder('configs')), "
             "str(resolve('sweeps/fig5_five_seeds.yaml', 'sweeps')), len(config_rows())]))")
    module, configs, sweep, rows = json.loads(_run([python, "-c", check], cwd=work).stdout)
    assert venv in Path(module).parents, f"gradlab imported from {module}, not from the installed wheel"
    assert venv in Path(configs).parents and Path(configs).name == "configs"
    assert venv in Path(sweep).parents and Path(sweep).name == "fig5_five_seeds.yaml"
    assert rows == len(CONFIGS)

    assert _run([gradlab_command, "--version"], cwd=work).stdout.strip() == f"gradlab {gradlab.__version__}"
    info = _run([gradlab_command, "info"], cwd=work).stdout
    assert "scenarios:" in info and "digits" in info and "methods:" in info and "dgr" in info

    _run([gradlab_command, "run", "--scenario", "digits", "--method", "dgr", "--tasks", "2", "--epochs", "1",
          "--model", "small", "--out", "r", "--quiet"], cwd=work)
    summary = json.loads((work / "r" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["method"] == "dgr" and summary["scenario"] == "digits"
    assert summary["gradlab_version"] == gradlab.__version__
