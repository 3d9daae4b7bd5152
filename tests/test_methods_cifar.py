"""Every registered method end to end on CIFAR-100-LT files (issue 5, "Done when").

The files are the session's fake CIFAR-100 in the real pickle format (``conftest.fake_cifar_root``): the
loader, the long-tailed profile, the iCaRL class order, the 50-class base task and every method's extra
stages run exactly as on the real data, only smaller (head classes cut to 12 images, a small CNN, 1 epoch,
extra stages shortened through their method args).
"""
import json

import numpy as np
import pytest

import gradlab
from gradlab.cli import main
from gradlab.methods import METHODS, list_methods, method_options

# 12 -> 3 images per class: the official hold-out's quirk would empty some classes, hence the stratified one
CIFAR_LT = dict(scenario="cifar100", order="lt", imbalance=4, max_per_class=12, base=50, tasks=3, memory=2,
                holdout="stratified",
                model="small", epochs=1, batch_size=64, progress=False, checkpoints=False, probes=[])
# the extra stages, shortened (their defaults: BiC 200 epochs, LWS 30, EEIL fine-tuning 40)
SHORT_STAGES = {"bic": {"bias_epochs": 2}, "eeil": {"finetune_epochs": 1},
                "eeil-2stage": {"finetune_epochs": 1, "stage2_epochs": 1},
                "lucir-2stage": {"stage2_epochs": 1}, "podnet-2stage": {"stage2_epochs": 1}}
# what each method must report in its phase log after an incremental phase
LOGGED = {"wa": "wa", "bic": "bic", "lucir": "lucir", "podnet": "podnet", "sir": "sir", "eeil": "eeil_finetune",
          "dgr": "dgr", "lucir-2stage": "lws", "podnet-2stage": "lws", "eeil-2stage": "lws"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_end_to_end_on_cifar100_lt_files(method, tmp_path, fake_cifar_root):
    record = gradlab.run(method=method, method_args=SHORT_STAGES.get(method, {}), data_root=str(fake_cifar_root),
                         out=str(tmp_path / method), **CIFAR_LT)
    s = record.summary
    assert s["complete"] and s["method"] == method and s["task_sizes"] == [50, 25, 25]
    # CIFAR-100-LT: exp profile over the iCaRL order, head class first (68), 12 -> 3 images, of which the
    # 10 % hold-out (the cifar100 default fraction) moves some to validation
    classes = record.classes
    kept = classes.train_count + classes.val_count
    assert classes.original_label.iloc[0] == 68 and kept.max() == 12 and kept.min() == 3
    assert classes.val_count.sum() > 0 and record.config.val_fraction is None and record.config.holdout_fraction == 0.1
    assert np.isfinite(record.class_accuracy_matrix()[-1]).all()          # every class evaluated at the end
    assert record.accuracy_matrix().shape == (3, 3)
    assert 0 <= s["final_accuracy"] <= 1 and 0 <= s["average_incremental_accuracy"] <= 1
    assert [entry["phase"] for entry in record.phase_log] == [0, 1, 2]
    if method in LOGGED:
        assert LOGGED[method] in record.phase_log[-1], record.phase_log[-1]


def test_cli_runs_a_baseline_on_cifar100_lt_files(tmp_path, fake_cifar_root, capsys):
    out = tmp_path / "wa"
    args = ["run", "--scenario", "cifar100", "--data-root", str(fake_cifar_root), "--method", "wa",
            "--order", "lt", "--imbalance", "4", "--max-per-class", "12", "--base", "50", "--tasks", "3",
            "--memory", "2", "--model", "small", "--epochs", "1", "--checkpoints", "false", "--probes", "",
            "--val-fraction", "0",
            "--method-arg", "clip=false", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "wa" and summary["complete"]
    gammas = [entry["wa"]["gamma"] for entry in summary["phase_log"] if "wa" in entry]
    assert len(gammas) == 2 and all(g > 0 for g in gammas)                # aligned after phases 1 and 2 only
    assert "average incremental accuracy" in capsys.readouterr().out


def test_info_lists_every_method(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = lines[lines.index("methods:") + 1:]
    listed = {line.split()[0] for line in rows if line.startswith("  ") and not line.startswith("    ")}
    assert listed == set(list_methods()) == set(METHODS)
    assert {"lucir", "sir", "icarl", "eeil", "bic", "wa", "podnet", "lucir-2stage", "dgr"} <= listed
    args = [line.strip() for line in rows if line.startswith("    ")]            # every declared argument, once per method
    assert sum(len(method_options(name)) for name in METHODS) == len(args)
    assert "temperature=2.0: a number > 0" in args and "stage2_draw=4: an integer >= 1" in args
