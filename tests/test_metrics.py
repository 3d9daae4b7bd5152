"""Hand-worked checks of gradlab.analysis.metrics (every expected number derived in comments)."""

import math

import numpy as np
import pytest

from gradlab.analysis import metrics

nan = np.nan

# A 3-phase, 3-task task-accuracy matrix in which task 0 drops and then rises again.
ACC_TASK = np.array(
    [
        [0.9, nan, nan],
        [0.6, 0.8, nan],
        [0.7, 0.5, 0.9],
    ]
)

# Class-level case: 5 classes, task 0 = classes {0,1,2}, task 1 = {3}, task 2 = {4};
# 10 test images per class. Classes are first seen in phases 0, 0, 0, 1, 2.
CORRECT = np.array(
    [
        [9, 8, 7, nan, nan],
        [6, 5, 4, 9, nan],
        [7, 3, 4, 5, 10],
    ]
)
TOTAL = np.full(5, 10.0)
CLASS_TASK = np.array([0, 0, 0, 1, 2])


def test_task_forgetting_uses_max_over_earlier_phases():
    f = metrics.forgetting(ACC_TASK)
    # row 0: nothing earlier -> all NaN
    # row 1: f[1,0] = 0.9 - 0.6 = 0.3; task 1 first seen at phase 1 -> NaN; task 2 unseen -> NaN
    # row 2: f[2,0] = max(0.9, 0.6) - 0.7 = 0.2  (the last value 0.6 would give -0.1)
    #        f[2,1] = 0.8 - 0.5 = 0.3; task 2 first seen at phase 2 -> NaN
    expected = np.array([[nan, nan, nan], [0.3, nan, nan], [0.2, 0.3, nan]])
    np.testing.assert_allclose(f, expected, equal_nan=True)
    # average over defined entries: [NaN, 0.3, (0.2 + 0.3) / 2 = 0.25]
    np.testing.assert_allclose(metrics.average_forgetting(f), [nan, 0.3, 0.25], equal_nan=True)


def test_task_mean_and_average_incremental_accuracy():
    # phase 0: 0.9; phase 1: (0.6 + 0.8) / 2 = 0.7; phase 2: (0.7 + 0.5 + 0.9) / 3 = 0.7
    a = metrics.accuracy_task_mean(ACC_TASK)
    np.testing.assert_allclose(a, [0.9, 0.7, 0.7])
    # (0.9 + 0.7 + 0.7) / 3 = 2.3 / 3, base phase included
    assert metrics.average_incremental_accuracy(a) == pytest.approx(2.3 / 3)


def test_backward_transfer():
    # BWT = mean(acc[2,0] - acc[0,0], acc[2,1] - acc[1,1]) = mean(0.7 - 0.9, 0.5 - 0.8) = -0.25
    assert metrics.backward_transfer(ACC_TASK) == pytest.approx(-0.25)
    assert math.isnan(metrics.backward_transfer(np.array([[0.8]])))
    with pytest.raises(ValueError, match="square"):
        metrics.backward_transfer(np.zeros((3, 2)))


def test_class_accuracy():
    acc = metrics.class_accuracy(CORRECT, TOTAL)
    expected = np.array(
        [
            [0.9, 0.8, 0.7, nan, nan],
            [0.6, 0.5, 0.4, 0.9, nan],
            [0.7, 0.3, 0.4, 0.5, 1.0],
        ]
    )
    np.testing.assert_allclose(acc, expected, equal_nan=True)


def test_task_accuracy_from_class_counts():
    acc = metrics.task_accuracy(CORRECT, TOTAL, CLASS_TASK, num_tasks=3)
    # task 0 has 30 test images:
    #   phase 0: (9 + 8 + 7) / 30 = 0.8
    #   phase 1: (6 + 5 + 4) / 30 = 0.5;  task 1: 9 / 10 = 0.9
    #   phase 2: (7 + 3 + 4) / 30 = 14/30; task 1: 5 / 10 = 0.5; task 2: 10 / 10 = 1.0
    expected = np.array([[0.8, nan, nan], [0.5, 0.9, nan], [14 / 30, 0.5, 1.0]])
    np.testing.assert_allclose(acc, expected, equal_nan=True)


def test_task_accuracy_sums_images_not_class_means():
    # one task, two classes with 10 and 30 test images, 10 and 0 correct:
    # task accuracy = (10 + 0) / (10 + 30) = 0.25, while the class mean would be (1.0 + 0.0) / 2 = 0.5
    acc = metrics.task_accuracy(np.array([[10.0, 0.0]]), np.array([10, 30]), np.array([0, 0]), 1)
    np.testing.assert_allclose(acc, [[0.25]])


def test_task_accuracy_nan_for_later_tasks_even_if_filled():
    # a later task is unseen at phase 0 even if the caller passed numbers for it
    acc = metrics.task_accuracy(np.array([[5.0, 5.0]]), np.array([10, 10]), np.array([0, 1]), 2)
    np.testing.assert_allclose(acc, [[0.5, nan]], equal_nan=True)


def test_weighted_and_unweighted_accuracy_differ_with_unequal_tasks():
    weighted = metrics.accuracy_all_seen(CORRECT, TOTAL)
    # phase 0: 24 / 30 = 0.8
    # phase 1: (15 + 9) / 40 = 0.6
    # phase 2: (14 + 5 + 10) / 50 = 0.58
    np.testing.assert_allclose(weighted, [0.8, 0.6, 0.58])
    # the same as weighting task accuracies by classes per task (wavg_accs_tag), phase 1:
    # (3 * 0.5 + 1 * 0.9) / 4 = 0.6
    unweighted = metrics.accuracy_task_mean(metrics.task_accuracy(CORRECT, TOTAL, CLASS_TASK, 3))
    # phase 0: 0.8; phase 1: (0.5 + 0.9) / 2 = 0.7; phase 2: (14/30 + 0.5 + 1.0) / 3 = 59/90
    np.testing.assert_allclose(unweighted, [0.8, 0.7, 59 / 90])
    assert unweighted[1] != pytest.approx(weighted[1])
    # mean over phases: (0.8 + 0.6 + 0.58) / 3 = 0.66
    assert metrics.average_incremental_accuracy(weighted) == pytest.approx(0.66)


def test_class_level_forgetting_with_classes_seen_in_different_phases():
    f = metrics.forgetting(metrics.class_accuracy(CORRECT, TOTAL))
    # row 1: classes 0,1,2: 0.9-0.6, 0.8-0.5, 0.7-0.4 = 0.3 each; class 3 first seen -> NaN; class 4 unseen
    # row 2: class 0: max(0.9, 0.6) - 0.7 = 0.2; class 1: 0.8 - 0.3 = 0.5; class 2: 0.7 - 0.4 = 0.3;
    #        class 3: 0.9 - 0.5 = 0.4; class 4 first seen -> NaN
    expected = np.array(
        [
            [nan] * 5,
            [0.3, 0.3, 0.3, nan, nan],
            [0.2, 0.5, 0.3, 0.4, nan],
        ]
    )
    np.testing.assert_allclose(f, expected, equal_nan=True)
    # averages: [NaN, 0.3, (0.2 + 0.5 + 0.3 + 0.4) / 4 = 0.35]
    np.testing.assert_allclose(metrics.average_forgetting(f), [nan, 0.3, 0.35], equal_nan=True)


def test_forgetting_single_phase_and_negative_values():
    assert np.isnan(metrics.forgetting(np.array([[0.5, 0.4]]))).all()
    # accuracy that only goes up gives negative forgetting: 0.5 - 0.7 = -0.2
    np.testing.assert_allclose(metrics.forgetting(np.array([[0.5], [0.7]])), [[nan], [-0.2]], equal_nan=True)


def test_shot_groups_boundaries():
    counts = np.array([500, 101, 100, 50, 20, 19, 0])
    # > 100 many; < 20 few; 20..100 (both ends included) medium
    groups = metrics.shot_groups(counts)
    assert groups.tolist() == ["many", "many", "medium", "medium", "medium", "few", "few"]
    assert metrics.shot_groups(np.array([10, 11, 5]), many=10, few=6).tolist() == ["medium", "many", "few"]
    with pytest.raises(ValueError, match="few"):
        metrics.shot_groups(counts, many=10, few=20)


def test_group_accuracy():
    row = np.array([0.9, 0.8, 0.5, nan, 0.2])
    groups = np.array(["many", "many", "medium", "medium", "few"], dtype=object)
    # many: (0.9 + 0.8) / 2 = 0.85; medium: only class 2 defined -> 0.5; few: 0.2
    g = metrics.group_accuracy(row, groups)
    assert g == pytest.approx({"many": 0.85, "medium": 0.5, "few": 0.2})
    # no few-shot class -> NaN
    g = metrics.group_accuracy(np.array([0.4, 0.6]), np.array(["many", "medium"]))
    assert g["many"] == pytest.approx(0.4) and g["medium"] == pytest.approx(0.6)
    assert math.isnan(g["few"])
    with pytest.raises(ValueError, match="allowed"):
        metrics.group_accuracy(np.array([0.4]), np.array(["head"]))


def test_shape_validation():
    with pytest.raises(ValueError, match="total"):
        metrics.class_accuracy(np.zeros((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="correct"):
        metrics.accuracy_all_seen(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="class_task"):
        metrics.task_accuracy(np.zeros((1, 3)), np.ones(3), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="class_task"):
        metrics.task_accuracy(np.zeros((1, 2)), np.ones(2), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="acc"):
        metrics.forgetting(np.zeros(3))
    with pytest.raises(ValueError, match="groups"):
        metrics.group_accuracy(np.zeros(3), np.array(["many"]))
    with pytest.raises(ValueError, match="acc_per_phase"):
        metrics.average_incremental_accuracy(np.array([]))
