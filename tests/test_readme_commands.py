"""Every command the README and the docs print in ```bash blocks runs as printed on a fresh clone after the
set-up commands: it names a program that is there, parses, names existing files and flags, and builds valid
settings (the long ones are not trained). The README's quick start is run and must learn."""
import json
import re
import shlex
from pathlib import Path

import pytest

from gradlab.checks import parse_method_args
from gradlab.cli.commands import _run_config, build_parser
from gradlab.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "REPRODUCE.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_SETTINGS = ("overwrite", "quiet", "resume", "csv", "write_lists")


def bash_commands(text: str) -> list[str]:
    """The command lines of a page's ```bash blocks (continuations joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


ALL = [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in bash_commands(page.read_text())]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def check_gradlab(args: list[str]) -> None:
    """Parse with gradlab's own parser; files it names exist; the settings validate."""
    from gradlab.experiments.compare import comparison_configs
    from gradlab.experiments.paper_figures import FIGURES
    from gradlab.experiments.paper_tables import TABLES
    from gradlab.experiments.sweep import load_sweep

    try:
        ns = build_parser().parse_args(args)
    except SystemExit:
        raise AssertionError(f"does not parse: gradlab {' '.join(args)}") from None
    for name in ("config", "file"):
        path = getattr(ns, name, None)
        assert path is None or (ROOT / path).is_file(), f"names a missing file: {path}"
    if ns.command in ("run", "data"):
        _run_config(ns, NOT_SETTINGS)
    elif ns.command == "compare":
        skip = {"command", "config", "methods", "method_args", "out", "cache", "quiet", "seeds", "backend", "address",
                "workers", "yes"}
        values = {k: v for k, v in vars(ns).items() if k not in skip}
        settings = (RunConfig.from_yaml(ROOT / ns.config, values) if ns.config else RunConfig.from_dict(values)).to_dict()
        args = {}
        for item in ns.method_args:
            method, _, pair = item.partition(":")
            args.setdefault(method, {}).update(parse_method_args([pair]))
        comparison_configs(ns.methods, args, **{k: v for k, v in settings.items() if k not in ("method", "method_args")})
    elif ns.command == "figures":
        assert set(ns.only or FIGURES) <= set(TABLES if ns.tables else FIGURES)
    elif ns.command == "sweep":
        load_sweep(ROOT / ns.file)


@pytest.mark.parametrize("page, line", ALL, ids=[f"{page}: {line[:60]}" for page, line in ALL])
def test_printed_command_runs_as_printed(page, line, monkeypatch):
    monkeypatch.chdir(ROOT)
    words = shlex.split(line)
    program, args = words[0], words[1:]
    if program == "make":
        assert set(args) <= make_targets(), f"{page}: make target missing: {line}"
    elif program == ".venv/bin/gradlab":
        check_gradlab(args)
    elif program == ".venv/bin/python":
        if args[0] == "-c":
            compile(args[1], "<command>", "exec")
        elif args[:2] == ["-m", "pytest"]:
            tests = [a for a in args[2:] if not a.startswith("-")]
            assert all((ROOT / a.split("::")[0]).exists() for a in tests), f"{page}: names a missing test: {line}"
        else:
            assert (ROOT / args[0]).is_file(), f"{page}: names a missing script: {line}"
    elif program == ".venv/bin/lint-imports":
        assert (ROOT / program).is_file() and "lint-imports" in (ROOT / "Makefile").read_text(), line
    elif program == ".venv/bin/tensorboard":
        assert (ROOT / program).is_file() and args[0] == "--logdir", line
    elif program == ".venv/bin/jupyter":
        assert args[0] == "lab" and all((ROOT / a).exists() for a in args[1:]), line
    else:
        assert program in ("ray", "conda", "bash"), f"{page}: prints a command that is not there on a fresh clone: {line}"


def test_the_pages_print_commands_and_the_launcher_is_there():
    readme = [line for page, line in ALL if page == "README.md"]
    assert readme[:2] == ["make figures", "make test"]             # the two set-up commands come first
    assert any(line.startswith(".venv/bin/gradlab compare") for line in readme)
    assert len(ALL) > 40
    launcher = ROOT / ".venv" / "bin" / "gradlab"                   # what `make test` / `make figures` install
    assert launcher.is_file() and launcher.stat().st_mode & 0o111


def test_a_broken_command_is_caught():
    with pytest.raises(AssertionError, match="does not parse"):
        check_gradlab(["run", "--scenario", "digits", "--no-such-flag"])
    with pytest.raises(AssertionError, match="missing file"):
        check_gradlab(["sweep", "sweeps/no_such_sweep.yaml"])
    with pytest.raises(Exception, match="scenario"):
        check_gradlab(["run", "--method", "dgr"])


def test_readme_quick_start_learns_and_says_where_its_record_is(tmp_path, monkeypatch, capsys):
    """The first command a newcomer runs, exactly as printed but for the folder: DGR learns (well above the
    22.8 % that guessing among the classes seen so far averages) and the output names the record."""
    from gradlab.cli import main

    readme = (ROOT / "README.md").read_text()
    quick = bash_commands(readme[readme.index("## Quick start"):])[0]
    args = shlex.split(quick)
    assert args[0] == ".venv/bin/gradlab" and args[1] == "run"
    args = args[1:]
    args[args.index("--out") + 1] = str(tmp_path / "demo")
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0
    out = capsys.readouterr()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["method"] == "dgr" and summary["scenario"] == "fashion_mnist"
    assert summary["average_incremental_accuracy"] >= 0.5
    assert summary["final_accuracy"] >= 0.4
    assert f"record: {tmp_path / 'demo'}" in out.out
    assert "small CNN, 20 epochs per task of batch 32" in out.err           # the recipe line
