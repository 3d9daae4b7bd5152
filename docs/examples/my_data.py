"""Your own data as a gradlab scenario: arrays in DATA_ROOT/my_data.npz (x_train, y_train, x_test, y_test; uint8
images N x H x W or N x H x W x C, integer labels 0..C-1)."""
from pathlib import Path

import numpy as np

import gradlab

FILE = "my_data.npz"
INFO = gradlab.SourceInfo(
    name="my-data", num_classes=10, image_shape=(8, 8, 1), needs_root=True,
    description="my own 8x8 grey images, 10 classes, from DATA_ROOT/my_data.npz", layout=f"DATA_ROOT/{FILE}",
    model="small", recipe={"epochs": 10, "batch_size": 32})


def check(root, download):
    if not (Path(root) / FILE).is_file():
        raise gradlab.DataError(f"my-data: {Path(root) / FILE} is missing; expected {INFO.layout}")


def load(root, download):
    check(root, download)
    data = np.load(Path(root) / FILE)
    x_train, x_test = (data[k] if data[k].ndim == 4 else data[k][..., None] for k in ("x_train", "x_test"))
    pixels = x_train.astype(np.float32) / 255
    return gradlab.Source(INFO.name, INFO.num_classes, INFO.image_shape,
                          gradlab.ArrayImageSet(x_train, data["y_train"]), gradlab.ArrayImageSet(x_test, data["y_test"]),
                          mean=(float(pixels.mean()),), std=(float(pixels.std()),), flip=False, pad=1)


gradlab.register_scenario(INFO, load, check)
