"""ECE and reliability bins against hand-computed values."""

import numpy as np
import pytest

from kiln.evaluate.calibration import calibration_summary, expected_calibration_error, reliability_bins

# top-class confidence / correct:  .9 ok, .8 wrong, .6 ok, .7 wrong, .55 ok, .5 ok (tie -> class 0)
PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.45, 0.55], [0.5, 0.5]])
Y = np.array([0, 1, 1, 0, 1, 0])


def test_bins_by_hand_two_bins():
    bins = reliability_bins(Y, PROBS, n_bins=2)
    assert [b["count"] for b in bins] == [1, 5]  # 0.5 belongs to (0, 0.5]
    assert bins[0]["confidence"] == pytest.approx(0.5) and bins[0]["accuracy"] == pytest.approx(1.0)
    assert bins[1]["confidence"] == pytest.approx(3.55 / 5) and bins[1]["accuracy"] == pytest.approx(0.6)
    # ECE = 1/6 * |1 - .5| + 5/6 * |.6 - .71|
    assert expected_calibration_error(Y, PROBS, n_bins=2) == pytest.approx(1 / 6 * 0.5 + 5 / 6 * 0.11)


def test_bins_by_hand_four_bins():
    bins = reliability_bins(Y, PROBS, n_bins=4)
    assert [b["count"] for b in bins] == [0, 1, 3, 2]
    assert bins[0]["accuracy"] is None and bins[0]["confidence"] is None
    assert bins[2]["accuracy"] == pytest.approx(2 / 3) and bins[2]["confidence"] == pytest.approx(1.85 / 3)
    assert bins[3]["accuracy"] == pytest.approx(0.5) and bins[3]["confidence"] == pytest.approx(0.85)
    assert [b["upper"] for b in bins] == [0.25, 0.5, 0.75, 1.0]
    # (1 * .5 + 3 * |2/3 - 1.85/3| + 2 * .35) / 6 = 1.35 / 6
    assert expected_calibration_error(Y, PROBS, n_bins=4) == pytest.approx(1.35 / 6)
    s = calibration_summary(Y, PROBS, n_bins=4)
    assert s["mce"] == pytest.approx(0.5) and s["accuracy"] == pytest.approx(4 / 6)
    assert s["mean_confidence"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.7 + 0.55 + 0.5) / 6)


def test_perfect_and_worst_cases():
    onehot = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error([0, 1, 2, 1], onehot) == 0.0
    assert expected_calibration_error([1, 2, 0, 0], onehot) == pytest.approx(1.0)  # always sure, always wrong


def test_predicted_overrides_argmax():
    # a binary threshold of 0.3 predicts class 1 for [.6, .4]: its confidence is then .4, and it is correct
    bins = reliability_bins([1], np.array([[0.6, 0.4]]), n_bins=2, predicted=[1])
    assert bins[0]["count"] == 1 and bins[0]["confidence"] == pytest.approx(0.4) and bins[0]["accuracy"] == 1.0
