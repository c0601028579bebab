"""The scaling check measures the configured scaling first and skips the others only when none
of them could be ``MIN_GAIN`` more accurate (accuracy above ``1 - MIN_GAIN``), so the skip
never changes a decision. A stand-in explainer tells which scaling it was fed by the pixels'
range and answers with a chosen number of right labels for each."""

import numpy as np
import pytest

from pipeline.launch import scaling_check

COUNT = 20  # 17/20 = 0.85 is exactly 1 - MIN_GAIN in float64; 18/20 is above it


class CountingExplainer:
    """``predict`` is right on the first ``right[scaling]`` images of the sample; records the
    scalings it was asked about, in order."""

    input_shape = (4, 4, 1)

    def __init__(self, right, labels):
        self.right, self.labels, self.asked = right, labels, []

    def predict(self, images):
        low, high = float(images.min()), float(images.max())
        scaling = ("raw" if high > 100 else "unit" if low >= 0
                   else "symmetric" if high < 1.5 else "imagenet")
        self.asked.append(scaling)
        predicted = self.labels.copy()
        predicted[self.right[scaling]:] += 1  # wrong from there on
        return predicted


def _sample():
    pixels = np.zeros((COUNT, 4, 4, 1), np.float32)
    pixels[:, 0, 0, 0], pixels[:, 0, 1, 0] = 0.0, 255.0  # every scaling's full range
    return pixels, np.arange(COUNT, dtype=np.int64) % 3


@pytest.mark.parametrize("configured_right, measured_after", [
    (18, ["symmetric"]),  # 0.90: the best other could gain at most 0.10
    (17, ["symmetric", "unit", "imagenet", "raw"]),  # 0.85: another could gain exactly 0.15
])
def test_the_others_are_skipped_only_when_none_can_gain_enough(configured_right, measured_after):
    pixels, labels = _sample()
    right = {"unit": 20, "imagenet": 20, "raw": 0, "symmetric": configured_right}
    explainer = CountingExplainer(right, labels)
    correct = scaling_check.measure(explainer, pixels, labels, configured="symmetric")
    assert explainer.asked == measured_after
    assert list(correct) == measured_after
    assert correct["symmetric"].sum() == configured_right


def test_at_the_boundary_another_scaling_reaches_the_gain_so_it_had_to_be_measured():
    pixels, labels = _sample()
    explainer = CountingExplainer({"unit": 20, "imagenet": 0, "raw": 0, "symmetric": 17},
                                  labels)
    correct = scaling_check.measure(explainer, pixels, labels, configured="symmetric")
    gain = correct["unit"].mean() - correct["symmetric"].mean()
    assert gain >= scaling_check.MIN_GAIN  # 1.00 - 0.85: the rule's gain condition holds


def test_without_a_configured_scaling_every_candidate_is_measured_in_order():
    pixels, labels = _sample()
    explainer = CountingExplainer({"unit": 20, "imagenet": 20, "raw": 20, "symmetric": 20},
                                  labels)
    correct = scaling_check.measure(explainer, pixels, labels)
    assert explainer.asked == ["unit", "symmetric", "imagenet", "raw"] == list(correct)
