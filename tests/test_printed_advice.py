"""Printed output that helps: advice that works as printed, sweep.md units, no Ray token
warning, and scripts/get_chromium.sh."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gradlab.cli import build_parser
from gradlab.data.sources import check_source, fashion_mnist
from gradlab.errors import DataError
from gradlab.experiments.sweep import expand_sweep, sweep_markdown, sweep_table
from gradlab.runs.records import summarize

ROOT = Path(__file__).resolve().parent.parent
TINY = {"scenario": "digits", "tasks": 2, "epochs": 1, "max_per_class": 20, "imbalance": 10, "memory": 5,
        "batch_size": 32, "method": "finetune", "model": "small"}


def _missing_data_message(scenario: str, root: Path) -> str:
    with pytest.raises(DataError) as info:
        check_source(scenario, root, download=False)
    return str(info.value)


def test_missing_data_advice_names_a_download_flag_that_parses(tmp_path):
    cifar = _missing_data_message("cifar100", tmp_path)
    assert "--download true" in cifar
    for scenario, text in (("cifar100", cifar), ("food101", _missing_data_message("food101", tmp_path)),
                           ("fashion_mnist", fashion_mnist.HOW_TO_GET)):
        values = re.findall(r"--download(?:\s+(\S+))?", text)
        assert values, text
        for value in values:      # the advice as printed, `--download <value>`, is what `gradlab run` takes
            ns = build_parser().parse_args(["run", "--scenario", scenario, "--download", value.rstrip(".,;)")])
            assert ns.download is True


def _tiny_summary(tmp_path: Path) -> dict:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    done = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *flags, "--out", str(tmp_path / "run"),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def test_sweep_markdown_shows_fractions_in_percent_and_counts_in_their_own_units(tmp_path):
    summary = _tiny_summary(tmp_path)
    # what summary.json holds as fractions: the headline numbers of records.summarize (any small input)
    correct = np.array([[8.0, 6.0, np.nan, np.nan], [5.0, 4.0, 9.0, 3.0]])
    fractions = {k for k, v in summarize(correct, [10] * 4, np.array([0, 0, 1, 1]), [200, 50, 10, 10]).items()
                 if not isinstance(v, list)}
    configs, swept = expand_sweep({"base": TINY, "grid": {"seed": [0, 1]}})
    second = {**summary, "threads": summary["threads"] + 2, "wall_time_s": 2 * summary["wall_time_s"]}
    records = {name: SimpleNamespace(status="complete", summary=s) for name, s in zip(configs, (summary, second))}
    table = sweep_table(configs, swept, records, {}, tmp_path)
    lines = sweep_markdown(table, swept, "tiny.yaml").splitlines()
    header = [c.strip() for c in next(l for l in lines if l.startswith("| method |")).strip("|").split("|")]
    row = [c.strip() for c in next(l for l in lines if l.startswith("| finetune |")).strip("|").split("|")]
    cells = dict(zip(header, row))
    assert {"threads", "wall_time_s", "train_images_per_s", "average_incremental_accuracy", "bwt"} <= set(cells)
    for metric in header[2:]:
        values = table[metric].dropna()
        scale = 100 if metric in fractions else 1
        expected = f"{scale * values.mean():.2f} ± {scale * values.std(ddof=1):.2f}" if len(values) else "—"
        assert cells[metric] == expected, metric
    threads = (summary["threads"], summary["threads"] + 2)
    assert cells["threads"].startswith(f"{sum(threads) / 2:.2f} ±")


def test_a_ray_sweep_prints_no_token_warning(tmp_path):
    (tmp_path / "sweep.yaml").write_text(json.dumps({"base": TINY, "grid": {"seed": [0]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)       # no token from an earlier Ray run: Ray starts from scratch
    # ray imported before the sweep starts its local runtime (num_cpus: this machine's cores), as in a notebook
    code = ("import sys, ray; from gradlab.cli import main; "
            f"sys.exit(main(['sweep', {str(tmp_path / 'sweep.yaml')!r}, '--out', {str(tmp_path / 'out')!r}, "
            "'--backend', 'ray']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=400, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Started a local Ray instance" in output
    # nothing about tokens but, on a machine's first run, Ray's one line saying where it saved the new token
    assert not [line for line in output.splitlines()
                if "token" in line.lower() and "Generated new authentication token" not in line], output
    assert json.loads(next((tmp_path / "out" / "runs").glob("*/summary.json")).read_text())["complete"] is True


def _stub(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text("#!/bin/sh\n" + body + "\n")
    (folder / name).chmod(0o755)


def _get_chromium(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "get_chromium.sh")], capture_output=True,
                          text=True, timeout=60, env={"PATH": str(path)})


def test_get_chromium_without_root_or_sudo_says_what_to_run(tmp_path):
    _stub(tmp_path, "id", "echo 1000")
    _stub(tmp_path, "apt-get", f"echo \"$@\" >> {tmp_path}/apt.log")
    done = _get_chromium(tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "sudo apt-get install chromium" in done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_get_chromium_does_nothing_when_chromium_is_on_path(tmp_path):
    _stub(tmp_path, "chromium", "exit 0")
    _stub(tmp_path, "id", f"echo id >> {tmp_path}/calls.log; echo 0")
    _stub(tmp_path, "apt-get", f"echo apt-get >> {tmp_path}/calls.log")
    done = _get_chromium(tmp_path)
    assert done.returncode == 0 and done.stdout == done.stderr == ""
    assert not (tmp_path / "calls.log").exists()


def test_get_chromium_as_root_installs_debians_chromium(tmp_path):
    _stub(tmp_path, "id", "echo 0")
    _stub(tmp_path, "apt-get", f"echo \"$@\" >> {tmp_path}/apt.log; "
                               f"printf '#!/bin/sh\\n' > {tmp_path}/chromium; /bin/chmod +x {tmp_path}/chromium")
    os.symlink(shutil.which("env"), tmp_path / "env")
    done = _get_chromium(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "install -y -q chromium" in (tmp_path / "apt.log").read_text()
