"""ImageNetSubset-LT, ImageNet-1k and Food101-LT on format-exact fake trees: subsets, counts, orders, lists."""
import numpy as np
import pytest
from test_profiles import ICARL_ORDER

from gradlab.cli import main
from gradlab.config import RunConfig
from gradlab.data.fake_trees import food101_class_names, write_fake_food101, write_fake_ilsvrc
from gradlab.data.profiles import long_tail_counts
from gradlab.data.sources import Source, load_source
from gradlab.data.sources.files import FileImageSet, read_list
from gradlab.errors import DataError
from gradlab.scenario import Scenario

# LT-CIL's ImageNetSubset list (label 0..99 -> wnid), as positions in the sorted 1 000 ILSVRC-2012 wnids
SUBSET_POSITIONS = [54, 7, 894, 512, 126, 337, 988, 11, 284, 493, 133, 783, 192, 979, 622, 215, 240, 548, 238, 419,
                    274, 108, 928, 856, 494, 836, 473, 650, 85, 262, 508, 590, 390, 174, 637, 288, 658, 219, 912, 142,
                    852, 160, 704, 289, 123, 323, 600, 542, 999, 634, 391, 761, 490, 842, 127, 850, 665, 990, 597,
                    722, 748, 14, 77, 437, 394, 859, 279, 539, 75, 466, 886, 312, 303, 62, 966, 413, 959, 782, 509,
                    400, 471, 632, 275, 730, 105, 523, 224, 186, 478, 507, 470, 906, 699, 989, 324, 812, 260, 911,
                    446, 44]
# the official loader's imagenet_subset_lt counts by position for seed 0 and 1 300 images per class
SUBSET_LT_SEED0 = [387, 23, 1184, 100, 39, 17, 617, 43, 105, 15, 110, 18, 34, 710, 938, 322, 467, 425, 280, 896, 175,
                   72, 1130, 47, 160, 139, 983, 13, 28, 37, 79, 31, 19, 54, 121, 370, 562, 96, 69, 41, 1240, 76, 184,
                   193, 1079, 647, 589, 202, 221, 1030, 18, 83, 1300, 267, 353, 127, 779, 255, 445, 115, 816, 307, 60,
                   91, 32, 24, 293, 26, 677, 20, 537, 337, 133, 14, 13, 52, 512, 16, 45, 36, 406, 232, 30, 152, 211,
                   63, 87, 743, 21, 50, 22, 243, 489, 27, 855, 14, 57, 66, 146, 167]


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    """1 000 fake wnid folders; the 100 subset classes get 3 train images, the others 1; val sorted in folders."""
    counts = [1] * 1000
    for position in SUBSET_POSITIONS:
        counts[position] = 3
    return write_fake_ilsvrc(tmp_path_factory.mktemp("ilsvrc"), train_counts=counts)


def paper_sized(num_classes, per_class, name="imagenet_subset", **facts):
    """A file source with ``per_class`` entries per class (paths never read), for count checks at full size."""
    labels = np.repeat(np.arange(num_classes), per_class)
    paths = np.array([f"/x/{label}/{i}.JPEG" for i, label in enumerate(labels)], dtype=object)
    defaults = dict(counts_by="position", class_order="icarl", ltio_identity=False, holdout_quirk=False)
    defaults.update(facts)
    return Source(name, num_classes, (224, 224, 3), FileImageSet(paths, labels), FileImageSet(paths[:num_classes],
                  np.arange(num_classes)), mean=(0.5,) * 3, std=(0.5,) * 3, flip=True, pad=0, **defaults)


def test_subset_is_lt_cils_choice_from_the_sorted_wnids(ilsvrc):
    source = load_source("imagenet_subset", ilsvrc)
    wnid_of_label = [source.train.paths[source.train.labels == label][0].split("/")[-2] for label in range(100)]
    assert wnid_of_label == [f"n{p:08d}" for p in SUBSET_POSITIONS]
    assert np.bincount(source.train.labels).tolist() == [3] * 100
    assert np.bincount(source.test.labels).tolist() == [1] * 100
    first = source.train.paths[source.train.labels == 0].tolist()
    assert first == sorted(first)                                               # file-name order within a class


def test_subset_lt_counts_follow_position_shuffled_with_the_seed():
    source = paper_sized(100, 1300)
    lt = Scenario(source, order="lt", imbalance=100, base=50, tasks=11, seed=0)
    assert lt.train_counts.tolist() == SUBSET_LT_SEED0
    assert lt.original_label.tolist() == ICARL_ORDER
    ltio = Scenario(source, order="ltio", imbalance=100, base=50, tasks=11, seed=0)
    assert ltio.train_counts.tolist() == long_tail_counts(1300, 100, 100).tolist()   # head first
    assert ltio.original_label.tolist() == ICARL_ORDER                               # official: icarl order too
    # the first n images of each class (file order) are kept
    label = ltio.original_label[5]
    kept = np.sort(ltio.train.ids[ltio.train.labels == 5])
    assert kept.tolist() == np.flatnonzero(source.train.labels == label)[: ltio.train_counts[5]].tolist()
    assert Scenario(source, order="lt", imbalance=100, seed=1).train_counts.tolist() != SUBSET_LT_SEED0
    # the hold-out of the list loaders has no index-0 quirk: a class that rounds to 0 keeps everything
    held = Scenario(source, order="ltio", imbalance=100, base=50, tasks=11, val_fraction=0.1, seed=0)
    assert (held.val_counts == np.round(0.1 * ltio.train_counts)).all()


def test_imagenet1k_conv_100_base_10_tasks_keeps_every_image():
    source = paper_sized(1000, 3, name="imagenet1k", class_order="seeded")
    s = Scenario(source, order="conv", imbalance=1, base=100, tasks=11, seed=0)
    assert s.task_sizes == [100] + [90] * 10
    assert s.train_counts.tolist() == [3] * 1000
    labels = list(range(1000))
    np.random.RandomState(0).shuffle(labels)                      # official: np.random.shuffle after seeding
    assert s.original_label.tolist() == labels
    cfg = RunConfig(scenario="imagenet1k", order="conv", base=100, tasks=11).validate()
    assert cfg.split_base_tasks(1000) == (100, 11)


def test_food101_lt_and_ltio_differ_and_the_official_behaviour_is_a_switch():
    source = paper_sized(101, 750, name="food101", class_order="seeded")
    lt = Scenario(source, order="lt", imbalance=100, base=51, tasks=6, seed=0)
    ltio = Scenario(source, order="ltio", imbalance=100, base=51, tasks=6, seed=0)
    counts = long_tail_counts(750, 101, 100)
    assert counts[0] == 750 and counts[-1] == 7
    assert ltio.train_counts.tolist() == counts.tolist()
    assert sorted(lt.train_counts.tolist()) == sorted(counts.tolist()) and lt.train_counts.tolist() != counts.tolist()
    assert lt.original_label.tolist() == ltio.original_label.tolist()          # the seeded class order
    per_task = [int(ltio.train_counts[t.classes].sum()) for t in ltio.tasks]
    assert per_task[1:] == sorted(per_task[1:], reverse=True)
    # the official code: lists already long-tailed, classes shuffled with the seed, nothing cut
    given = Scenario(source, order="seeded", imbalance=1, base=51, tasks=6, seed=0)
    assert given.train_counts.tolist() == [750] * 101


def test_food101_torchvision_layout_and_write_lists_round_trip(tmp_path, capsys):
    root = write_fake_food101(tmp_path / "data", train_counts=[4] * 101)
    source = load_source("food101", root)
    assert len(source.train) == 404 and len(source.test) == 101
    assert source.train.paths[source.train.labels == 3][0].split("/")[-2] == food101_class_names()[3]
    lists = tmp_path / "lists"
    lists.mkdir()
    assert main(["data", "--scenario", "food101", "--data-root", str(root), "--order", "ltio", "--imbalance", "4",
                 "--write-lists", str(lists)]) == 0
    assert "written:" in capsys.readouterr().out
    # the official reader: np.loadtxt(dtype=str), relative paths joined with the list's folder
    rows = np.loadtxt(lists / "train.txt", dtype=str)
    assert rows.shape == (404, 2) and (rows[:, 1].astype(int) == source.train.labels).all()
    paths, labels = read_list(lists / "train_ltio.txt", 101)
    assert np.bincount(labels, minlength=101).max() == 4 and np.bincount(labels, minlength=101).min() == 1
    # the lists, placed where the list-file loader looks, give the same source
    (root / "Food101").mkdir()
    for name in ("train.txt", "test.txt"):
        text = (lists / name).read_text().replace("../data/", "../")
        (root / "Food101" / name).write_text(text)
    again = load_source("food101", root)
    assert [p.split("/")[-1] for p in again.train.paths] == [p.split("/")[-1] for p in source.train.paths]
    assert (again.train.labels == source.train.labels).all()


def test_flat_validation_folder_with_the_kaggle_solution_file(tmp_path):
    root = write_fake_ilsvrc(tmp_path, train_counts=[1] * 1000, val_per_class=2, flat_val=True)
    source = load_source("imagenet_subset", root)
    assert np.bincount(source.test.labels).tolist() == [2] * 100
    assert source.test.images(np.arange(2)).shape == (2, 224, 224, 3)


@pytest.mark.parametrize("line, message", [
    ("a.JPEG", "line 2: expected '<image path> <label>'"),
    ("a.JPEG x", "line 2: label 'x' is not an integer"),
    ("a.JPEG 100", r"line 2: label 100 out of range \(allowed: 0..99\)"),
    ("missing.JPEG 1", "line 2: image .*missing.JPEG not found"),
])
def test_bad_list_lines_name_the_file_and_line(tmp_path, line, message):
    folder = tmp_path / "ImageNetSubset"
    folder.mkdir()
    (folder / "a.JPEG").write_bytes(b"")
    (folder / "train.txt").write_text(f"a.JPEG 0\n{line}\n")
    (folder / "test.txt").write_text("a.JPEG 0\n")
    with pytest.raises(DataError, match=r"train.txt, " + message):
        load_source("imagenet_subset", tmp_path)


def test_bad_trees_fail_with_one_clear_line(tmp_path):
    few = write_fake_ilsvrc(tmp_path / "few", wnids=[f"n{i:08d}" for i in range(40)])
    with pytest.raises(DataError, match="found only 40 class folder"):
        load_source("imagenet_subset", few)
    (tmp_path / "odd" / "ILSVRC2012" / "train" / "cats").mkdir(parents=True)
    (tmp_path / "odd" / "ILSVRC2012" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="one folder per class named by its wnid"):
        load_source("imagenet_subset", tmp_path / "odd")
    with pytest.raises(DataError, match="found neither list files nor an ILSVRC-2012 folder"):
        load_source("imagenet1k", tmp_path / "nothing")
    food = write_fake_food101(tmp_path / "food")
    (food / "food-101" / "meta" / "test.json").write_text("{not json")
    with pytest.raises(DataError, match="test.json is not valid JSON"):
        load_source("food101", food)
    assert main(["data", "--scenario", "food101", "--data-root", str(tmp_path / "none")]) == 2
