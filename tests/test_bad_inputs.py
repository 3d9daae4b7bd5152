"""Bad inputs, table-driven: CLI flags, YAML files, data files, the Python API and run folders.

Every case asserts a clean failure before any training: the exit code (CLI) or the exception type (API),
a one-line message that names the field or file, no traceback, and that no run folder was written.
"""
from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradlab
from gradlab.cli import main
from gradlab.errors import ConfigError, RunFolderWarning
from gradlab.runs.records import load_run

DIGITS = ["run", "--scenario", "digits", "--tasks", "3", "--epochs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _refuse_training(no_training):
    """Every case here is refused before training (the ``no_training`` fixture of conftest)."""


def _cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:          # argparse's own errors (a flag of the wrong type)
        code = exit_.code
    return code, capsys.readouterr().err


# ----------------------------------------------------------------------------------------- CLI flags
FLAG_CASES = [
    (["--lr", "inf"], "lr"), (["--lr", "nan"], "lr"), (["--lr", "-1"], "lr"), (["--lr", "0"], "lr"),
    (["--weight-decay", "inf"], "weight_decay"), (["--weight-decay", "-1"], "weight_decay"),
    (["--imbalance", "nan"], "imbalance"), (["--imbalance", "0.5"], "imbalance"), (["--imbalance", "inf"], "imbalance"),
    (["--val-fraction", "1"], "val_fraction"), (["--val-fraction", "nan"], "val_fraction"),
    (["--lr-min", "inf"], "lr_min"),
    (["--method", "dgr", "--method-arg", "eta=.nan"], "method_args.eta"),
    (["--method", "dgr", "--method-arg", "temperature=.inf"], "method_args.temperature"),
    (["--method-arg", "x=!!python/object/apply:os.system ['true']"], "--method-arg x"),
    (["--method-arg", "=3"], "KEY"), (["--method-arg", "eta"], "KEY=VALUE"),
    (["--split", "lfs", "--base", "3", "--tasks", "2"], "split 'lfs'"),
    (["--split", "lfs", "--tasks", "2"], "tasks: 2 contradicts split"),
    (["--split", "lfh", "--tasks", "5"], "tasks: 5 contradicts split"),
    (["--tasks", "1", "--base", "3"], "base: 3 contradicts tasks 1"),
    (["--tasks", "0"], "tasks"), (["--tasks", "11"], "tasks"), (["--base", "10"], "base"),
    (["--out", ""], "out"), (["--scenario", "nope"], "scenario"), (["--method", "nope"], "method"),
    (["--order", "nope"], "order"), (["--epochs", "0"], "epochs"), (["--batch-size", "0"], "batch_size"),
    (["--memory", "-1"], "memory"), (["--memory-total", "-5"], "memory_total"), (["--seed", "-1"], "seed"),
    (["--device", "tpu"], "device"), (["--precision", "fp8"], "precision"), (["--probes", "nope"], "probes"),
    (["--lr-schedule", "patience", "--val-fraction", "0"], "lr_schedule"), (["--lr-schedule", "nope"], "lr_schedule"),
    (["--selection", "nope"], "selection"), (["--preset", "nope"], "preset"), (["--model", "nope"], "model"),
    (["--augment", "nope"], "augment"), (["--profile", "nope"], "profile"), (["--loader-workers", "-1"], "loader_workers"),
    (["--holdout", "nope"], "holdout"), (["--max-per-class", "0"], "max_per_class"),
    (["--lr", "abc"], "--lr"), (["--epochs", "1.5"], "--epochs"), (["--checkpoints", "maybe"], "--checkpoints"),
    (["--scenario", "cifar100", "--data-root", "no/such/folder"], "cifar-100-python"),
]


@pytest.mark.parametrize("flags, names", FLAG_CASES, ids=[" ".join(f) for f, _ in FLAG_CASES])
def test_bad_flag_is_one_clean_line(flags, names, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _cli([*DIGITS, "--out", str(out), *flags], capsys)
    assert code == 2
    assert names in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("gradlab")
    assert not out.exists()


# ------------------------------------------------------------------------------------- YAML files
YAML_CASES = [
    (b"lerning_rate: 0.1\n", "unknown key"),
    (b"method: finetune\n# caf\xe9 in latin-1\nseed: 1\n", "UTF-8"),
    (b"lr: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    (b"- 1\n- 2\n", "mapping"),
    (b"lr: [0.1\n", "not valid YAML"),
    (b"lr: .nan\n", "lr"),
    (b"momentum: .inf\n", "momentum"),
    (b"tasks: three\n", "tasks"),
    (b"method_args: 5\n", "method_args"),
    (b"presets: [nope]\n", "preset"),
    (b"method: dgr\nmethod_args: {eta: .nan}\n", "method_args.eta"),
    (b"split: lfs\nbase: 3\n", "split 'lfs'"),
]


@pytest.mark.parametrize("content, names", YAML_CASES, ids=[n for _, n in YAML_CASES])
def test_bad_yaml_file_is_one_clean_line(content, names, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_bytes(b"scenario: digits\ntasks: 3\n" + content)
    out = tmp_path / "run"
    code, err = _cli(["run", str(config), "--out", str(out), "--quiet"], capsys)
    assert code == 2 and names in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_missing_yaml_file(tmp_path, capsys):
    code, err = _cli(["run", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and "none.yaml" in err and "does not exist" in err


# ------------------------------------------------------------------------------------- data files
def _cifar_root(tmp_path, fake_cifar_root, **files) -> str:
    folder = tmp_path / "data" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test", "meta"):
        if name in files:
            (folder / name).write_bytes(files[name])
        else:
            shutil.copy(fake_cifar_root / "cifar-100-python" / name, folder / name)
    return str(tmp_path / "data")


class _RunsCode:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/gradlab-pwned"],))


def _test_without_class_7(fake_cifar_root) -> bytes:
    with open(fake_cifar_root / "cifar-100-python" / "test", "rb") as f:
        content = pickle.load(f, encoding="bytes")
    labels = np.asarray(content[b"fine_labels"])
    keep = labels != 7
    return pickle.dumps({b"data": content[b"data"][keep], b"fine_labels": labels[keep].tolist()}, protocol=2)


DATA_CASES = [
    ("train", lambda root: pickle.dumps({b"data": _RunsCode(), b"fine_labels": [0]}), "not allowed"),
    ("test", _test_without_class_7, "no image of class(es) [7]"),
    ("train", lambda root: (root / "cifar-100-python" / "train").read_bytes()[:5000], "could not unpickle"),
    ("train", lambda root: b"", "could not unpickle"),
    ("train", lambda root: pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [0, 1, 200]}),
     "0..99"),
]


@pytest.mark.parametrize("name, make, message", DATA_CASES, ids=[m for _, _, m in DATA_CASES])
def test_bad_cifar_file_is_refused_before_training(name, make, message, tmp_path, fake_cifar_root, capsys):
    root = _cifar_root(tmp_path, fake_cifar_root, **{name: make(fake_cifar_root)})
    out = tmp_path / "run"
    code, err = _cli(["run", "--scenario", "cifar100", "--data-root", root, "--epochs", "1", "--out", str(out)], capsys)
    assert code == 2 and message in err and f"cifar-100-python/{name}" in err and "Traceback" not in err
    assert not out.exists()
    assert not (tmp_path / "gradlab-pwned").exists() and not __import__("os").path.exists("/tmp/gradlab-pwned")


# ------------------------------------------------------------------------------------- Python API
API_CASES = [
    (lambda out: gradlab.run("digits"), "not a YAML file"),
    (lambda out: gradlab.run(3), "cfg must be"),
    (lambda out: gradlab.run(scenario="digits", out=12345), "out"),
    (lambda out: gradlab.run(scenario="digits", out=out, callbacks=[42]), "callbacks[0]"),
    (lambda out: gradlab.run(scenario="digits", out=out, callbacks=42), "callbacks"),
    (lambda out: gradlab.run(scenario="digits", out=out, overwrite="yes"), "overwrite"),
    (lambda out: gradlab.run(scenario="digits", out=out, momentum=float("inf")), "momentum"),
    (lambda out: gradlab.run(scenario="digits", out=out, weight_decay=float("inf")), "weight_decay"),
    (lambda out: gradlab.run(scenario="digits", out=out, method="dgr", method_args={"eta": float("nan")}),
     "method_args.eta"),
    (lambda out: gradlab.run(scenario="digits", out=out, method="dgr", method_args={"temperature": float("inf")}),
     "method_args.temperature"),
    (lambda out: gradlab.run(scenario="digits", out=out, bogus=1), "bogus"),
    (lambda out: gradlab.run(scenario="digits", out=out, split="lfs", tasks=2), "split 'lfs'"),
]


@pytest.mark.parametrize("call, names", API_CASES, ids=[n for _, n in API_CASES])
def test_bad_api_argument_raises_config_error(call, names, tmp_path):
    with pytest.raises(ConfigError) as err:
        call(str(tmp_path / "run"))
    assert names in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- run folders
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    gradlab.run(scenario="digits", tasks=2, epochs=1, out=str(out), progress=False, probes=[])
    return out


def _corrupt(name: str, content: bytes):
    def make(folder):
        (folder / name).write_bytes(content)
    return make


def _keep_only(*names: str):
    def make(folder):
        for path in folder.iterdir():
            if path.name not in names:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return make


FOLDER_CASES = [
    (_corrupt("summary.json", b'{"status": "compl'), "summary.json"),
    (_corrupt("summary.json", b"[1, 2]"), "summary.json"),
    (_corrupt("metrics.parquet", b"PAR1 truncated"), "metrics.parquet"),
    (_corrupt("classes.parquet", b""), "classes.parquet"),
    (_corrupt("config.yaml", b"lr: [\n"), "config.yaml"),
    (_corrupt("config.yaml", b"learning: 1\n"), "config.yaml"),
    (_keep_only("summary.json", "metrics.parquet"), "config.yaml"),
]


@pytest.mark.parametrize("damage, names", FOLDER_CASES, ids=[n + str(i) for i, (_, n) in enumerate(FOLDER_CASES)])
def test_damaged_run_folder_names_the_file(damage, names, finished_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    damage(folder)
    with pytest.raises(ConfigError) as err:
        load_run(folder)
    assert names in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("path, names", [(12345, "path"), ("", "path"), ("no/such/run", "not a folder")])
def test_load_run_checks_its_argument(path, names):
    with pytest.raises(ConfigError, match=names):
        load_run(path)


def test_a_folder_killed_in_phase_0_loads_as_incomplete(finished_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    _keep_only("config.yaml", "classes.parquet")(folder)
    with pytest.warns(RunFolderWarning, match="unfinished run .* 0 phase"):
        record = load_run(folder)
    assert record.status == "incomplete" and not record.complete and "--resume" in record.explain()


@pytest.mark.parametrize("content, phase, names", [
    (b"not a checkpoint at all", 0, "phase_0.pt"),
    (None, 7, "no checkpoint for phase 7"),
    (None, "0", "no checkpoint for phase '0'"),
])
def test_bad_checkpoint_gives_gradlabs_message(content, phase, names, finished_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    if content is not None:
        (folder / "checkpoints" / "phase_0.pt").write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = load_run(folder)
    with pytest.raises(ConfigError) as err:
        record.checkpoint(phase)
    assert names in str(err.value) and "weights_only" not in str(err.value)


def test_existing_file_non_empty_and_locked_out_folders(finished_run, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _cli([*DIGITS, "--out", str(tmp_path / "file")], capsys)
    assert code == 2 and "is not a folder" in err
    code, err = _cli([*DIGITS, "--out", str(finished_run)], capsys)
    assert code == 2 and "already holds a finished run" in err and "--overwrite" in err and "--resume" in err
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / ".lock").write_text('{"pid": %d, "host": "elsewhere", "started": 0}' % 1)
    code, err = _cli([*DIGITS, "--out", str(locked)], capsys)
    assert code == 2 and "in use by another gradlab run" in err and "elsewhere" in err


# ------------------------------------------------------------------------------------- real processes
@pytest.mark.parametrize("argv, names", [
    (["run", "--scenario", "digits", "--method-arg", "x=!!python/name:os.system"], "--method-arg x"),
    (["run", "--scenario", "digits", "--tasks", "1", "--base", "3"], "base: 3"),
])
def test_cli_process_prints_no_traceback(argv, names, tmp_path):
    result = subprocess.run([sys.executable, "-m", "gradlab.cli", *argv, "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and names in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("gradlab: error:")
