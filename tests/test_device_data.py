"""Batched augmentation on device tensors: shapes, exactness of crops/flips, reproducibility."""
import numpy as np
import pytest
import torch

from gradlab.data.device_data import DeviceImages


def make_images(n=6, h=8, w=8, c=3):
    # pixel value encodes (row, col) so a crop/flip can be read back exactly
    rows = np.arange(h)[:, None] * w + np.arange(w)[None, :]
    img = np.repeat(rows[None, :, :, None], c, axis=3) + np.arange(n)[:, None, None, None] * 0
    return img.astype(np.uint8), np.arange(n) % 3


def identity_data(images, labels, **kw):
    return DeviceImages(images, labels, mean=(0.0,) * images.shape[3], std=(1 / 255,) * images.shape[3], **kw)


def test_eval_batches_are_plain_and_ordered():
    images, labels = make_images()
    data = identity_data(images, labels, augment="none")
    batches = list(data.eval_batches(np.array([4, 1, 2]), batch_size=2))
    assert [b.idx.tolist() for b in batches] == [[4, 1], [2]]
    x = torch.cat([b.x for b in batches])
    assert x.shape == (3, 3, 8, 8)
    assert torch.allclose(x[0, 0], torch.as_tensor(images[4, :, :, 0], dtype=torch.float32), atol=1e-4)


def test_crop_flip_is_a_shifted_or_mirrored_window_of_the_padded_image():
    images, labels = make_images(n=64)
    data = identity_data(images, labels, augment="crop_flip", pad=2, flip=True)
    g = torch.Generator().manual_seed(0)
    batch = next(data.train_batches(np.arange(64), 64, g))
    padded = np.pad(images[:, :, :, 0].astype(np.float32), ((0, 0), (2, 2), (2, 2)))
    found_flip = False
    for x in batch.x[:, 0].numpy().round():
        windows = [padded[0, i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
        plain = any(np.array_equal(x, wdw) for wdw in windows)
        mirrored = any(np.array_equal(x, wdw[:, ::-1]) for wdw in windows)
        assert plain or mirrored
        found_flip |= mirrored and not plain
    assert found_flip


def test_no_flip_for_sources_that_forbid_it():
    images, labels = make_images(n=32)
    data = identity_data(images, labels, augment="crop_flip", pad=0, flip=False)
    batch = next(data.train_batches(np.arange(32), 32, torch.Generator().manual_seed(1)))
    expected = torch.as_tensor(images[batch.idx.numpy(), :, :, 0], dtype=torch.float32)
    assert torch.allclose(batch.x[:, 0], expected, atol=1e-4)


@pytest.mark.parametrize("augment", ["crop_flip", "resized_crop"])
def test_same_generator_seed_same_batches(augment):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
    data = DeviceImages(images, np.arange(50) % 5, (0.5,) * 3, (0.25,) * 3, augment=augment)
    a = list(data.train_batches(np.arange(50), 16, torch.Generator().manual_seed(7)))
    b = list(data.train_batches(np.arange(50), 16, torch.Generator().manual_seed(7)))
    c = list(data.train_batches(np.arange(50), 16, torch.Generator().manual_seed(8)))
    assert all(torch.equal(x.x, y.x) and torch.equal(x.idx, y.idx) for x, y in zip(a, b))
    assert not torch.equal(a[0].x, c[0].x)
    assert sorted(torch.cat([x.idx for x in a]).tolist()) == list(range(50))
    assert a[0].x.shape == (16, 3, 32, 32) and torch.isfinite(a[0].x).all()
    assert torch.equal(a[0].y, data.labels[a[0].idx])


def test_resized_crop_of_a_constant_image_keeps_the_constant_inside():
    images = np.full((8, 32, 32, 3), 200, dtype=np.uint8)
    data = DeviceImages(images, np.zeros(8), (0.0,) * 3, (1.0,) * 3, augment="resized_crop", pad=0)
    batch = next(data.train_batches(np.arange(8), 8, torch.Generator().manual_seed(0)))
    assert torch.allclose(batch.x, torch.full_like(batch.x, 200 / 255), atol=1e-5)


def test_unknown_augmentation():
    with pytest.raises(ValueError, match="augment"):
        identity_data(*make_images(), augment="mixup")


def test_batched_crop_boxes_follow_torchvisions_statistics():
    """The batched RandomResizedCrop draws its boxes as torchvision's get_params does (on the 40x40 padded image)."""
    from torchvision.transforms import RandomResizedCrop

    from gradlab.data.device_data import batch_crop_boxes

    top, left, h, w = (t.numpy() for t in batch_crop_boxes(4000, 40, 40, torch.Generator().manual_seed(0)))
    assert (top + h <= 40).all() and (left + w <= 40).all() and (top >= 0).all() and (left >= 0).all()
    torch.manual_seed(0)
    ref = np.array([RandomResizedCrop.get_params(torch.zeros(3, 40, 40), [0.08, 1.0], [3 / 4, 4 / 3])
                    for _ in range(4000)], dtype=float)
    for ours, theirs in ((h * w / 1600, ref[:, 2] * ref[:, 3] / 1600), (np.log(w / h), np.log(ref[:, 3] / ref[:, 2])),
                         (top, ref[:, 0])):
        assert abs(ours.mean() - theirs.mean()) < 0.03 * max(1.0, abs(theirs.mean()))
        assert abs(ours.std() - theirs.std()) < 0.03 * max(1.0, theirs.std())
