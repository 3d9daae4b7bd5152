"""The JPEG pipeline: torchvision's crop statistics, seeds independent of the worker count, a whole run."""
import numpy as np
import pytest
import torch

import gradlab
from gradlab.data.fake_trees import write_fake_ilsvrc
from gradlab.data.file_data import FileImages, crop_box
from gradlab.data.sources import load_source


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    root = write_fake_ilsvrc(tmp_path_factory.mktemp("ilsvrc"), train_counts=[4] * 1000)
    return root, load_source("imagenet_subset", root)


def test_crop_boxes_follow_torchvisions_random_resized_crop():
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    h, w = 300, 400
    ours = np.array([crop_box(h, w, g) for _ in range(4000)], dtype=float)
    image = torch.zeros(3, h, w)
    ref = np.array([RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)], dtype=float)
    for boxes in (ours, ref):
        assert (boxes[:, 0] + boxes[:, 2] <= h).all() and (boxes[:, 1] + boxes[:, 3] <= w).all()
    area = lambda b: b[:, 2] * b[:, 3] / (h * w)
    ratio = lambda b: np.log(b[:, 3] / b[:, 2])
    for stat in (area, ratio):
        a, b = stat(ours), stat(ref)
        assert abs(a.mean() - b.mean()) < 0.02 and abs(a.std() - b.std()) < 0.02
        assert abs(np.median(a) - np.median(b)) < 0.03


def test_same_seed_same_batches_whatever_the_worker_count(subset):
    _, source = subset
    ids = np.arange(40)
    batches = {}
    for workers in (0, 2):
        data = FileImages(source.train.paths[ids], source.train.labels[ids], source.mean, source.std,
                          workers=workers)
        g = torch.Generator().manual_seed(3)
        batches[workers] = list(data.train_batches(np.arange(40), 16, g))
    assert [len(b.y) for b in batches[0]] == [16, 16, 8]
    for a, b in zip(batches[0], batches[2]):
        assert torch.equal(a.idx, b.idx) and torch.equal(a.x, b.x)
    assert batches[0][0].x.shape == (16, 3, 224, 224) and batches[0][0].x.dtype == torch.float32
    other = list(FileImages(source.train.paths[ids], source.train.labels[ids], source.mean, source.std,
                            workers=0).train_batches(np.arange(40), 16, torch.Generator().manual_seed(4)))
    assert not torch.equal(other[0].x, batches[0][0].x)


def test_decoding_on_the_device_gives_the_same_batches(subset):
    """The CUDA path (workers read bytes, decode_jpeg decodes the batch on the device), run on the CPU."""
    _, source = subset
    ids = np.arange(24)
    out = {}
    for decode_on in ("workers", "device"):
        data = FileImages(source.train.paths[ids], source.train.labels[ids], source.mean, source.std, workers=2,
                          decode_on=decode_on)
        out[decode_on] = list(data.train_batches(ids, 10, torch.Generator().manual_seed(5)))
        out[decode_on] += list(data.eval_batches(ids, 10))
    for a, b in zip(out["workers"], out["device"]):
        assert torch.equal(a.idx, b.idx) and torch.allclose(a.x, b.x, atol=1e-6)


def test_eval_batches_are_the_centre_crop_in_order(subset):
    _, source = subset
    data = FileImages(source.test.paths, source.test.labels, source.mean, source.std, workers=0)
    batch = next(data.eval_batches(np.arange(5), batch_size=5))
    assert batch.idx.tolist() == [0, 1, 2, 3, 4]
    expected = torch.as_tensor(source.test.images(np.arange(5))).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(source.mean).view(1, 3, 1, 1), torch.tensor(source.std).view(1, 3, 1, 1)
    assert torch.allclose(batch.x, (expected - mean) / std, atol=1e-5)


def test_a_whole_run_on_jpeg_files_keeps_exemplars_as_file_indices(subset, tmp_path):
    root, source = subset
    record = gradlab.run(scenario="imagenet_subset", data_root=str(root), order="ltio", imbalance=4, base=50,
                         tasks=2, epochs=1, batch_size=64, memory=2, model="small", method="dgr", loader_workers=2,
                         progress=False, checkpoints=True, out=str(tmp_path / "run"))
    s = record.summary
    assert s["complete"] and s["task_sizes"] == [50, 50]
    classes = record.classes
    assert (classes.train_count + classes.val_count).tolist() == [int(4 * 0.25 ** (i / 99)) for i in range(100)]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "phase_1.pt", weights_only=True)
    memory = checkpoint["memory"]
    assert memory["classes"] == list(range(100))
    ids = [i for per_class in memory["indices"] for i in per_class]
    assert all(isinstance(i, int) and 0 <= i < len(source.train) for i in ids)   # indices into the training file list
