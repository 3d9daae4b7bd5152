"""configs/: one YAML per benchmark row of the paper; each validates, its data builds, and it trains one epoch
on format-exact fake data (smaller: fewer images per class, a milder imbalance so that every class keeps one)."""
import math
from pathlib import Path

import numpy as np
import pytest

from gradlab.config import RunConfig
from gradlab.data.fake_trees import write_fake_food101, write_fake_ilsvrc
from gradlab.experiments.reproduce import config_rows, reproduce_table, table_in
from gradlab.runs.runner import build_trainer

ROOT = Path(__file__).resolve().parent.parent
ROWS = {row["name"]: row for row in config_rows(ROOT / "configs")}


def test_every_table_row_has_a_config_and_reproduce_md_lists_them():
    scenarios = {(r["config"].scenario, r["config"].order, r["config"].base, r["config"].tasks) for r in ROWS.values()}
    for order in ("lt", "ltio"):
        for base, tasks in ((5, 20), (None, 5), (50, 6), (50, 11)):
            assert ("cifar100", order, base, tasks) in scenarios
    assert {("imagenet_subset", "lt", 50, 11), ("food101", "ltio", 51, 6), ("imagenet1k", "conv", 100, 11)} <= scenarios
    assert table_in((ROOT / "REPRODUCE.md").read_text()) == reproduce_table(list(ROWS.values()))
    assert ROWS["cifar100_lt_lt_lfs20"]["reported"].startswith("34.35 %")


@pytest.mark.parametrize("name", sorted(ROWS))
def test_config_is_the_official_recipe(name):
    cfg = ROWS[name]["config"]
    assert cfg.method == "dgr" and cfg.memory == 20 and cfg.batch_size == 128 and cfg.lr == 0.1
    assert cfg.holdout_fraction == 0.1 and cfg.holdout == "official" and cfg.augmentation == "resized_crop"
    if cfg.scenario == "cifar100":
        assert (cfg.model, cfg.epochs, cfg.milestones(), cfg.weight_decay) == ("resnet32", 160, [80, 120], 5e-4)
    else:
        assert (cfg.model, cfg.epochs, cfg.milestones(), cfg.weight_decay) == ("resnet18", 90, [30, 60], 1e-4)
    assert ROWS[name]["command"] == f"gradlab run configs/{name}.yaml --device cuda --out runs/{name}"


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory, fake_cifar_root):
    ilsvrc = write_fake_ilsvrc(tmp_path_factory.mktemp("ilsvrc"), train_counts=[3] * 1000)
    food = write_fake_food101(tmp_path_factory.mktemp("food"), train_counts=[3] * 101)
    return {"cifar100": fake_cifar_root, "imagenet_subset": ilsvrc, "imagenet1k": ilsvrc, "food101": food}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_config_trains_one_epoch_on_fake_data(name, fake_roots):
    settings = dict(ROWS[name]["settings"], data_root=str(fake_roots[ROWS[name]["config"].scenario]), device="cpu",
                    progress=False, checkpoints=False, probes=[], loader_workers=2)
    if settings["scenario"] == "cifar100":
        settings.update(max_per_class=40, imbalance=4)          # 40 -> 10 images per class
    elif settings["order"] != "conv":
        settings.update(imbalance=3)                            # 3 -> 1 image per class
    trainer = build_trainer(RunConfig.from_dict(settings))
    first = trainer.ctx.scenario.tasks[0]
    trainer.begin_phase(first)
    loss = trainer.train_epoch(0)
    assert math.isfinite(loss) and loss > 0
    steps = math.ceil(len(first.train_indices) / settings["batch_size"])
    assert trainer.ctx.step == steps - 1
    assert np.all(trainer.ctx.scenario.train_counts >= 1)
