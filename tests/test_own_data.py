"""Your own data without a plugin: the ``image_folder`` scenario (JPEG class folders through the file pipeline)
and the ``arrays`` scenario (``gradlab.run(data=ArrayData(...))`` in Python, an ``.npz`` on the command line)
train with per-class records, show their counts in ``gradlab data``, and refuse bad layouts in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import gradlab
from gradlab.data.sources import load_source, source_classes
from gradlab.errors import ConfigError, DataError
from gradlab.runs.records import load_run

NAMES = ["zero", "one", "two", "three"]


def _gradlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gradlab", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's real 8x8 digits as uint8 0..255, classes 0..3 (train: the first 600 of them)."""
    d = load_digits()
    keep = d.target < 4
    x, y = (d.images[keep] * 16).clip(0, 255).astype(np.uint8), d.target[keep].astype(np.int64)
    return x[:600], y[:600], x[600:], y[600:]


@pytest.fixture(scope="module")
def folder(digits, tmp_path_factory):
    """ROOT/{train,test}/<class name>/*.jpg of the digits, 32x32 RGB JPEGs."""
    root = tmp_path_factory.mktemp("image_folder")
    x_train, y_train, x_test, y_test = digits
    for split, x, y in (("train", x_train, y_train), ("test", x_test[:80], y_test[:80])):
        for i, (image, label) in enumerate(zip(x, y)):
            path = root / split / NAMES[label]
            path.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).resize((32, 32)).convert("RGB").save(path / f"{i:04d}.jpg")
    return root


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------------- image_folder
def test_image_folder_trains_through_the_file_pipeline_with_named_per_class_records(folder, tmp_path):
    source = load_source("image_folder", folder)
    assert source.class_names == tuple(sorted(NAMES)) and source.num_classes == 4
    assert source_classes("image_folder", folder) == 4
    assert type(source.train).__name__ == "FileImageSet" and source.train.paths[0].endswith(".jpg")
    labels = np.bincount(source.train.labels)
    counts = {name: len(list((folder / "train" / name).glob("*.jpg"))) for name in NAMES}
    assert labels.tolist() == [counts[name] for name in sorted(NAMES)]      # label = sorted folder position
    record = gradlab.run(scenario="image_folder", data_root=str(folder), method="dgr", model="small", epochs=3,
                         batch_size=16, lr=0.01, tasks=2, imbalance=10, loader_workers=0, progress=False,
                         out=str(tmp_path / "run"))
    assert record.complete and record.summary["scenario"] == "image_folder"
    assert record.summary["accuracy_per_phase"][0] > 0.75               # the first two classes are learned
    classes = record.classes
    assert set(classes["name"]) == set(NAMES) and classes["train_count"].max() == classes["train_count"].iloc[0]
    assert classes["train_count"].max() / classes["train_count"].min() == pytest.approx(10, rel=0.2)
    per_class = record.metrics[record.metrics["metric"] == "class_acc"]
    assert set(per_class["class"]) == set(range(4)) and per_class["value"].between(0, 1).all()


def test_gradlab_data_shows_an_image_folder_s_counts_and_names(folder):
    out = _gradlab("data", "--scenario", "image_folder", "--data-root", folder, "--tasks", "2", "--imbalance", "1",
                   "--order", "ltio")
    assert out.returncode == 0, out.stderr
    for name in NAMES:
        count = len(list((folder / "train" / name).glob("*.jpg")))
        assert any(name in line and f" {count} " in line for line in out.stdout.splitlines())
    assert "total: train 600, val 0, test 80" in out.stdout


@pytest.mark.parametrize("damage, words", [
    (lambda root: (root / "test" / "two").rename(root / "spare"), "class folder(s) ['two'] of"),
    (lambda root: [p.unlink() for p in (root / "train" / "one").iterdir()], "holds no images"),
    (lambda root: (root / "test").rename(root / "valid"), "test is not a folder"),
])
def test_image_folder_bad_layouts_are_one_line_before_training(folder, tmp_path, damage, words):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    damage(root)
    with pytest.raises(DataError) as err:
        gradlab.run(scenario="image_folder", data_root=str(root), model="small", epochs=1, tasks=2,
                    out=str(tmp_path / "run"), progress=False)
    assert words in _one_line(err) and not (tmp_path / "run").exists()
    out = _gradlab("run", "--scenario", "image_folder", "--data-root", root, "--tasks", "2", "--out", tmp_path / "cli")
    assert out.returncode != 0 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- arrays
def test_array_layouts_numpy_and_torch_give_the_same_images(digits):
    x_train, y_train, x_test, y_test = digits
    plain = gradlab.ArrayData(x_train, y_train, x_test, y_test)
    assert plain.x_train.shape == (600, 8, 8, 1) and plain.num_classes == 4
    rgb = np.repeat(x_train[:, None], 3, axis=1)                         # N x C x H x W
    from_torch = gradlab.ArrayData(torch.from_numpy(rgb), torch.from_numpy(y_train),
                                   np.repeat(x_test[..., None], 3, axis=3), y_test)     # N x H x W x C
    assert from_torch.x_train.shape == (600, 8, 8, 3)
    assert np.array_equal(from_torch.x_train[..., 1], plain.x_train[..., 0])
    assert np.array_equal(from_torch.x_test[..., 2], plain.x_test[..., 0])
    floats = gradlab.ArrayData(x_train / 255.0, y_train, x_test.astype(np.float32) / 255, y_test)
    assert np.array_equal(floats.x_train, plain.x_train) and floats.fingerprint() == plain.fingerprint()


@pytest.mark.parametrize("change, words", [
    (lambda x, y, xt, yt: (x, y[:-1], xt, yt), "y_train must hold one label per image of x_train (600)"),
    (lambda x, y, xt, yt: (x, y, xt, np.where(yt == 2, 7, yt)), "y_test has label 7, out of range 0..3"),
    (lambda x, y, xt, yt: (x, y, xt[yt != 3], yt[yt != 3]), "y_test has no image of class(es) [3]"),
    (lambda x, y, xt, yt: (x, np.where(y == 1, 0, y), xt, yt), "y_train has no image of class(es) [1]"),
    (lambda x, y, xt, yt: (x[:, :4], y, xt, yt), "x_test images are (8, 8, 1) (H, W, C), x_train's (4, 8, 1)"),
    (lambda x, y, xt, yt: (x[..., None].repeat(5, axis=3), y, xt, yt), "C = 1 or 3 channels, got shape (600, 8, 8, 5)"),
    (lambda x, y, xt, yt: (x * 2.0, y, xt, yt), "float pixels must lie in [0, 1]"),
    (lambda x, y, xt, yt: (x, y.astype(float), xt, yt), "must hold integer labels 0..C-1, got dtype float64"),
    (lambda x, y, xt, yt: (x.tolist(), y, xt, yt), "x_train must be a numpy array or a torch tensor, got list"),
])
def test_bad_arrays_are_one_line(digits, change, words):
    with pytest.raises(DataError) as err:
        gradlab.ArrayData(*change(*digits))
    assert words in _one_line(err)


def test_class_names_set_the_classes_and_bound_the_labels(digits):
    x, y, xt, yt = digits
    assert gradlab.ArrayData(x, y, xt, yt, class_names=NAMES).class_names == tuple(NAMES)
    with pytest.raises(DataError) as err:                # a fifth name needs images of a class 4
        gradlab.ArrayData(x, y, xt, yt, class_names=NAMES + ["four"])
    assert "y_train has no image of class(es) [4]" in _one_line(err)
    with pytest.raises(DataError) as err:
        gradlab.ArrayData(x, y, xt, yt, class_names=NAMES[:3])
    assert "y_train has label 3, out of range 0..2 (one per class name)" in _one_line(err)
    with pytest.raises(DataError) as err:
        gradlab.ArrayData(x, y, xt, yt, class_names=["a", "a", "b", "c"])
    assert "class_names must be distinct" in _one_line(err)


def test_run_with_arrays_trains_records_and_saves_them_once(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = gradlab.ArrayData(*digits, class_names=NAMES)
    settings = dict(method="dgr", model="small", epochs=3, batch_size=32, tasks=2, imbalance=10, progress=False)
    record = gradlab.run(data=data, out="run", **settings)
    saved = Path("data") / "arrays" / f"arrays-{data.fingerprint()}.npz"
    assert saved.is_file() and record.config.scenario == "arrays" and record.config.data_root == str(saved)
    assert record.summary["accuracy_per_phase"][0] > 0.8                 # 2 classes: chance is 0.5
    assert set(record.classes["name"]) == set(NAMES)
    assert record.classes["train_count"].max() / record.classes["train_count"].min() == pytest.approx(10, rel=0.2)
    stamp = saved.stat().st_mtime_ns
    again = gradlab.run(data=data, out="again", **settings)            # same arrays: same file, same numbers
    assert saved.stat().st_mtime_ns == stamp and len(list(saved.parent.iterdir())) == 1
    assert again.summary["accuracy_per_phase"] == record.summary["accuracy_per_phase"]
    loaded = gradlab.ArrayData.load(saved)
    assert loaded.fingerprint() == data.fingerprint() and loaded.class_names == tuple(NAMES)
    with pytest.raises(ConfigError) as err:
        gradlab.run(data=data, scenario="digits", out="x")
    assert "data and scenario 'digits' contradict each other" in _one_line(err)
    Path("cifar.yaml").write_text("scenario: cifar100\nepochs: 1\n")
    with pytest.raises(ConfigError) as err:
        gradlab.run("cifar.yaml", data=data, out="x")
    assert "data and scenario 'cifar100' contradict each other" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        gradlab.run(data=digits[0], out="x")
    assert "data must be a gradlab.ArrayData" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        gradlab.run(data=data, tasks=5, out="x")
    assert "tasks: 5 tasks cannot be made from the 4 classes of 'arrays'" in _one_line(err)


def test_an_npz_trains_from_the_command_line_and_in_compare_workers(digits, tmp_path):
    path = gradlab.ArrayData(*digits).save(tmp_path / "my_digits.npz")
    data = _gradlab("data", "--scenario", "arrays", "--data-root", path, "--tasks", "2", "--imbalance", "1")
    assert data.returncode == 0, data.stderr
    assert "total: train 600, val 0, test" in data.stdout
    common = ["--scenario", "arrays", "--data-root", path, "--model", "small", "--epochs", "3", "--tasks", "2",
              "--batch-size", "32", "--quiet"]
    run = _gradlab("run", *common, "--method", "dgr", "--out", tmp_path / "run")
    assert run.returncode == 0, run.stderr
    assert load_run(tmp_path / "run").summary["final_accuracy"] > 0.4             # 4 classes: chance 0.25
    compare = _gradlab("compare", *common, "--methods", "finetune,dgr", "--workers", "2",
                       "--out", tmp_path / "compare", "--cache", tmp_path / "cache")
    assert compare.returncode == 0, compare.stderr
    assert "dgr" in (tmp_path / "compare" / "comparison.md").read_text()


@pytest.mark.parametrize("write, words", [
    (lambda path, d: np.savez(path, x_train=d[0], y_train=d[1], x_test=d[2]), "missing array(s) y_test"),
    (lambda path, d: path.write_bytes(b"not a zip file"), "not a readable .npz file"),
    (lambda path, d: np.savez(path, x_train=d[0], y_train=d[1], x_test=d[2], y_test=d[3] + 5), "out of range"),
    (lambda path, d: path.mkdir(), "is a folder; the arrays scenario reads one file"),
    (lambda path, d: None, "not found; the arrays scenario reads one file"),
])
def test_bad_npz_files_are_one_line_naming_the_file(digits, tmp_path, write, words):
    path = tmp_path / "data.npz"
    write(path, digits)
    with pytest.raises(DataError) as err:
        gradlab.run(scenario="arrays", data_root=str(path), out=str(tmp_path / "run"), progress=False)
    assert words in _one_line(err) and str(path) in str(err.value) and not (tmp_path / "run").exists()
    out = _gradlab("data", "--scenario", "arrays", "--data-root", path)
    assert out.returncode != 0 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_the_own_data_commands_of_docs_extending_run(tmp_path):
    """docs/extending.md's arrays and image-folder commands, run as printed in a fresh folder (the training
    commands with ``--epochs 1`` appended, which argparse lets win): they make the data, count it and train."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "extending.md").read_text()
    section = page[page.index("## Your own data"):page.index("**A data source of your own.**")]
    lines = [line for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S) for line in block.splitlines()]
    assert len(lines) == 6 and sum("--scenario arrays" in line for line in lines) == 2
    (tmp_path / "runs").mkdir()
    for line in lines:
        words = shlex.split(line)
        program = {".venv/bin/python": [sys.executable], ".venv/bin/gradlab": [sys.executable, "-m", "gradlab"]}
        args = words[1:] + (["--epochs", "1", "--quiet"] if words[1] == "run" else [])
        done = subprocess.run(program[words[0]] + args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        if words[1] == "data":
            assert "per class (in learning order)" in done.stdout
    for out in ("arrays-dgr", "folders-dgr"):
        record = load_run(tmp_path / "runs" / out)
        assert record.complete and len(record.classes) == 10
