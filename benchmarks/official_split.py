"""Side by side: gradlab's CIFAR-100-LT split against the official DGR loader, image for image.

    python benchmarks/official_split.py --official PATH/TO/imbalanced_cil [--data-root ROOT]

PATH is a checkout of https://github.com/JiangpengHe/imbalanced_cil (its ``src/`` is imported, nothing is
copied). ROOT holds ``cifar-100-python``; without it a format-exact fake CIFAR-100 is written to a temporary
folder (gradlab.data.fake_trees), whose images encode their label and per-class number, so "image for
image" is checked exactly. For every order (lt, ltio) and split (LFS 5/20, LFH 50/6 and 50/11) and seeds 0
and 1 it prints the official and gradlab training totals and whether every class's training and validation
images are the same. torchvision's md5 check is switched off for the fake files only.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

from gradlab.data.fake_trees import decode_fake_cifar, write_fake_cifar100
from gradlab.data.sources import load_source
from gradlab.scenario import Scenario

SETTINGS = [("lt", 5, 20), ("ltio", 5, 20), ("lt", 50, 6), ("ltio", 50, 6), ("lt", 50, 11), ("ltio", 50, 11)]


def official_split(official: Path, root: Path, order: str, base: int, tasks: int, seed: int, fake: bool):
    """{(original label, sample number) of every training / validation image} from the official loader."""
    sys.path.insert(0, str(official / "src"))
    import torchvision
    from datasets import memory_dataset
    from datasets.data_loader import IMBALANCECIFAR100
    from datasets.dataset_config import dataset_config

    if fake:
        torchvision.datasets.CIFAR100._check_integrity = lambda self: True
        torchvision.datasets.cifar.check_integrity = lambda *args, **kwargs: True
    class_order = dataset_config[f"cifar100_{order}"]["class_order"]
    random.seed(seed)
    np.random.seed(seed)                                     # seed_everything, as main_incremental does
    trn = IMBALANCECIFAR100(str(root), train=True, download=False)
    tst = torchvision.datasets.CIFAR100(str(root), train=False, download=False)
    data, _, _ = memory_dataset.get_data({"x": trn.data, "y": trn.targets}, {"x": tst.data, "y": tst.targets},
                                         num_tasks=tasks, nc_first_task=base, validation=0.1,
                                         shuffle_classes=False, class_order=class_order)
    out = {}
    for split in ("trn", "val"):
        images = np.concatenate([np.asarray(data[t][split]["x"]).reshape(-1, 32, 32, 3) for t in range(tasks)])
        out[split] = sorted(zip(*(a.tolist() for a in decode_fake_cifar(images))))
    return out


def gradlab_split(root: Path, order: str, base: int, tasks: int, seed: int):
    s = Scenario(load_source("cifar100", root), order=order, imbalance=100, base=base, tasks=tasks,
                 val_fraction=0.1, holdout="official", seed=seed)
    return {"trn": sorted(zip(*(a.tolist() for a in decode_fake_cifar(s.train.images)))),
            "val": sorted(zip(*(a.tolist() for a in decode_fake_cifar(s.val.images))))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, type=Path, help="checkout of JiangpengHe/imbalanced_cil")
    parser.add_argument("--data-root", type=Path, help="folder holding cifar-100-python (default: a fake one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or write_fake_cifar100(Path(tmp))
        same_all = True
        print("order  base/tasks  seed  official train  gradlab train  same train images  same val images")
        for order, base, tasks in SETTINGS:
            for seed in (0, 1):
                ref = official_split(args.official, root, order, base, tasks, seed, fake=args.data_root is None)
                ours = gradlab_split(root, order, base, tasks, seed)
                same_trn, same_val = ref["trn"] == ours["trn"], ref["val"] == ours["val"]
                same_all &= same_trn and same_val
                print(f"{order:5}  {base:>4}/{tasks:<5}  {seed:>4}  {len(ref['trn']):>14}  {len(ours['trn']):>13}  "
                      f"{str(same_trn):>17}  {str(same_val):>15}")
        print("all equal" if same_all else "DIFFERENT")
    return 0 if same_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
