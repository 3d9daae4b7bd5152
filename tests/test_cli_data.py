"""`gradlab data`: a configuration's counts and class order, printed and as CSV, without training."""
import numpy as np
import pandas as pd

from gradlab.cli import main
from gradlab.data.profiles import long_tail_counts


def test_data_prints_tasks_classes_and_writes_the_csv(tmp_path, capsys):
    csv = tmp_path / "classes.csv"
    code = main(["data", "--scenario", "fashion_mnist", "--order", "lt", "--imbalance", "100", "--max-per-class",
                 "1000", "--tasks", "5", "--val-fraction", "0.1", "--csv", str(csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert "class order (original labels): 4 2 7 6 0 3 5 8 9 1" in out
    assert "per task:" in out and "per class (in learning order):" in out
    table = pd.read_csv(csv)
    assert list(table.columns)[:6] == ["class", "original_label", "task", "train_count", "val_count", "test_count"]
    assert table["class"].tolist() == list(range(10)) and table.task.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    kept = long_tail_counts(1000, 10, 100.0)[table.original_label]             # by original label
    held = np.round(0.1 * kept).astype(int)
    assert (table.val_count == held).all() and (table.train_count == kept - held).all()
    assert (table.test_count == 1000).all()
    assert f"total: train {int(table.train_count.sum())}, val {int(held.sum())}, test 10000" in out
    assert not list(tmp_path.glob("*.tmp*"))


def test_data_rejects_bad_settings_before_building(tmp_path, capsys):
    assert main(["data", "--scenario", "digits", "--tasks", "30"]) == 2
    assert "tasks: 30 tasks cannot be made" in capsys.readouterr().err
    assert main(["data", "--scenario", "digits", "--csv", str(tmp_path / "no" / "x.csv")]) == 2
    assert "--csv: folder" in capsys.readouterr().err
    assert main(["data", "--scenario", "digits", "--imbalance", "1000", "--max-per-class", "100"]) == 2
    assert "without images" in capsys.readouterr().err


def test_output_piped_into_head_ends_quietly():
    import subprocess
    import sys

    result = subprocess.run(f"{sys.executable} -m gradlab.cli data --scenario digits --tasks 3 | head -n 1",
                            shell=True, capture_output=True, text=True, check=False)
    assert result.stdout.startswith("Scenario(digits") and "Traceback" not in result.stderr


def test_data_paper_preset_gives_the_official_cifar100_lt_counts(fake_cifar_root, tmp_path, capsys):
    """The official loader keeps 9 755 training images for lt LFS and 9 754 for ltio LFS (checked image for
    image by benchmarks/official_split.py); `gradlab data --preset paper` reports the same, class by class."""
    from test_profiles import CIFAR100_LT, CIFAR100_LT_AFTER_VAL

    tables = {}
    for order in ("lt", "ltio"):
        csv = tmp_path / f"{order}.csv"
        assert main(["data", "--scenario", "cifar100", "--data-root", str(fake_cifar_root), "--preset", "paper",
                     "--split", "lfs", "--order", order, "--csv", str(csv)]) == 0
        tables[order] = table = pd.read_csv(csv)
        assert table.task.tolist() == [0] * 5 + list(np.repeat(np.arange(1, 20), 5))
        assert (table.train_count + table.val_count == np.array(CIFAR100_LT)[table.original_label]).all()
        assert (table.test_count == 100).all()
    out = capsys.readouterr().out
    assert "total: train 9755," in out and "total: train 9754," in out
    lt, ltio = tables["lt"], tables["ltio"]
    differ = lt[lt.train_count != np.array(CIFAR100_LT_AFTER_VAL)[lt.original_label]]
    assert differ[["original_label", "train_count"]].values.tolist() == [[14, 233], [2, 408], [0, 449]]
    differ = ltio[ltio.train_count != np.array(CIFAR100_LT_AFTER_VAL)[ltio.original_label]]
    assert differ[["original_label", "train_count", "val_count"]].values.tolist() == [[95, 1, 5]]
