"""The scaling check measures the configured scaling first; the others are skipped when none of
them could be ``MIN_GAIN`` more accurate (accuracy above ``1 - MIN_GAIN``), and each other
scaling is predicted first where the configured one was wrong and left out when even its best
case there is not clearly better. Neither ever changes the decision: it equals the decision on
every scaling measured in full, worked out here from the stand-in's own answer table. A
stand-in explainer recognises which example and which scaling it was fed, and answers from
that table."""

import numpy as np
import pytest

from pipeline.images import scale_pixels
from pipeline.launch import scaling_check

COUNT = 40  # >= MIN_SAMPLE; 34/40 = 0.85 is exactly 1 - MIN_GAIN in float64, 35/40 above it
SCALINGS = ("unit", "symmetric", "imagenet", "raw")  # a 1-channel model's candidates, in order


class TableExplainer:
    """``predict`` answers each example right or wrong as ``right[scaling]`` (bool ``(COUNT,)``)
    says; records how many images it was asked about per scaling, in order."""

    input_shape = (4, 4, 1)

    def __init__(self, pixels, labels, right):
        self.labels, self.right, self.asked = labels, right, []
        self._rows = {(name, row.tobytes()): (name, index) for name in SCALINGS
                      for index, row in enumerate(scale_pixels(pixels, name).astype(np.float32))}

    def predict(self, images):
        found = [self._rows[(name, image.tobytes())] for name in SCALINGS for image in images
                 if (name, image.tobytes()) in self._rows]
        assert len(found) == len(images)
        scaling = found[0][0]
        assert all(name == scaling for name, _ in found)
        self.asked.append((scaling, len(images)))
        indices = np.array([index for _, index in found])
        return np.where(self.right[scaling][indices], self.labels[indices],
                        self.labels[indices] + 1)


def _sample():
    pixels = np.zeros((COUNT, 4, 4, 1), np.float32)
    pixels[:, 0, 0, 0], pixels[:, 0, 1, 0] = 0.0, 255.0  # every scaling's full range
    pixels[:, 1, 1, 0] = np.arange(COUNT)  # each example its own
    return pixels, np.arange(COUNT, dtype=np.int64) % 3


def _first(count):
    right = np.zeros(COUNT, bool)
    right[:count] = True
    return right


def _refused_by(correct, configured):
    """The reference decision: the most accurate other scaling (first on a tie) when it is
    clearly better than ``configured``, else None."""
    others = [name for name in correct if name != configured]
    best = max(others, key=lambda name: correct[name].mean())
    return best if scaling_check.clearly_better(correct, configured, best) else None


@pytest.mark.parametrize("configured_right, asked, kept", [
    # 0.875: the best other could gain at most 0.125, so none is asked
    (35, [("symmetric", 40)], ["symmetric"]),
    # 0.85: another could gain exactly 0.15, so each is asked about the 6 symmetric got wrong;
    # right on all 6, unit's best case has a z of only 6 / sqrt(6) = 2.45, so none is kept
    (34, [("symmetric", 40), ("unit", 6), ("imagenet", 6), ("raw", 6)], ["symmetric"]),
    # 0.70: right on the 12 symmetric got wrong, unit and imagenet could be clearly better
    # (z 3.46), so they are asked about the other 28 too; raw, right on none of them, is not
    (28, [("symmetric", 40), ("unit", 12), ("unit", 28), ("imagenet", 12), ("imagenet", 28),
          ("raw", 12)], ["symmetric", "unit", "imagenet"]),
])
def test_the_others_are_predicted_only_as_far_as_they_could_win(configured_right, asked, kept):
    pixels, labels = _sample()
    right = {"unit": _first(40), "imagenet": _first(40), "raw": _first(0),
             "symmetric": _first(configured_right)}
    explainer = TableExplainer(pixels, labels, right)
    correct = scaling_check.measure(explainer, pixels, labels, configured="symmetric")
    assert explainer.asked == asked
    assert list(correct) == kept
    for name in kept:
        np.testing.assert_array_equal(correct[name], right[name])
    refused = _refused_by(correct, "symmetric") if len(kept) > 1 else None
    assert refused == _refused_by(right, "symmetric") == ("unit" if len(kept) > 1 else None)


def test_a_model_right_by_chance_under_every_scaling_is_predicted_once_and_a_half():
    # The bench's random-init model answers one class whatever the input: right on half.
    pixels, labels = _sample()
    half = labels % 2 == 0
    right = {name: half.copy() for name in SCALINGS}
    explainer = TableExplainer(pixels, labels, right)
    correct = scaling_check.measure(explainer, pixels, labels, configured="symmetric")
    assert list(correct) == ["symmetric"]
    wrong = int(np.sum(~half))
    assert explainer.asked == [("symmetric", COUNT), *((name, wrong) for name in
                                                       ("unit", "imagenet", "raw"))]
    assert _refused_by(right, "symmetric") is None


def test_the_decision_equals_the_one_on_every_scaling_measured_in_full():
    rng = np.random.default_rng(0)
    decisions = set()
    for _ in range(300):
        pixels, labels = _sample()
        configured = SCALINGS[rng.integers(len(SCALINGS))]
        chances = rng.uniform(0.0, 1.0, len(SCALINGS))
        right = {name: rng.random(COUNT) < chance for name, chance in zip(SCALINGS, chances)}
        explainer = TableExplainer(pixels, labels, right)
        correct = scaling_check.measure(explainer, pixels, labels, configured=configured)
        expected = _refused_by(right, configured)
        if correct[configured].mean() > 1 - scaling_check.MIN_GAIN:  # the others skipped
            assert list(correct) == [configured] and expected is None
            continue
        got = _refused_by(correct, configured) if len(correct) > 1 else None
        assert got == expected
        for name, hits in correct.items():  # whatever is kept was measured in full
            np.testing.assert_array_equal(hits, right[name])
        decisions.add(expected is not None)
    assert decisions == {True, False}  # both outcomes were exercised


def test_without_a_configured_scaling_every_candidate_is_measured_in_order():
    pixels, labels = _sample()
    explainer = TableExplainer(pixels, labels, {name: _first(40) for name in SCALINGS})
    correct = scaling_check.measure(explainer, pixels, labels)
    assert [name for name, _ in explainer.asked] == list(SCALINGS) == list(correct)
