"""The [-1, 1] model of tests/pipeline/launch/test_contract.py and what its scaling-check test
measures on it, in one place, so that scripts/check_trained_test_margins.py measures the same
quantities over training seeds and kernels.

The data are 8x8 grey images, dark (label 0, pixels 0-90) or bright (label 1, 165-255); the
model is a small CNN trained on them scaled to [-1, 1] (``preprocess.scaling: symmetric``).
"""

import math

import numpy as np

SIZE = 8
MODEL_SEED = 0  # the suite's training seed
TRAIN_DATA_SEED, CHECK_DATA_SEED = 1, 2


def tf_example(image, label=None, example_id=None, box=None):
    """A serialized ``tf.train.Example`` with a PNG ``image/encoded`` and the optional keys."""
    import tensorflow as tf

    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[tf.io.encode_png(image).numpy()]))}
    if label is not None:
        feature["image/class/label"] = tf.train.Feature(int64_list=tf.train.Int64List(
            value=[int(label)]))
    if example_id is not None:
        feature["image/id"] = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[example_id.encode()]))
    if box is not None:
        feature["image/mark_box"] = tf.train.Feature(float_list=tf.train.FloatList(value=box))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, images, labels=None, ids=True):
    """One TFRecord file of ``images`` (uint8 ``(N, H, W, C)``); returns its path."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for index, image in enumerate(images):
            writer.write(tf_example(image, None if labels is None else labels[index],
                                    f"ex-{index}" if ids else None))
    return str(path)


def dark_bright(count, seed, channels=1):
    """uint8 ``(count, SIZE, SIZE, channels)`` images, label 0 dark (0-90), 1 bright
    (165-255), alternating; int64 ``(count,)`` labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    low = np.where(labels == 1, 165, 0)[:, None, None, None]
    images = low + rng.integers(0, 91, (count, SIZE, SIZE, channels))
    return images.astype(np.uint8), labels


def trained_model(path, seed=MODEL_SEED, scale=lambda pixels: pixels / 127.5 - 1.0, epochs=30):
    """A small CNN trained on ``scale(pixels)`` (default [-1, 1]) to tell dark from bright
    images, with Keras's random seed ``seed``; saved to ``path``. ``epochs=0`` leaves it
    untrained (a negative control)."""
    import keras

    keras.utils.set_random_seed(seed)
    images, labels = dark_bright(256, seed=TRAIN_DATA_SEED)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    if epochs:
        model.fit(scale(images.astype(np.float64)), labels, epochs=epochs, batch_size=64,
                  verbose=0)
    model.save(str(path))
    return model


def accuracies(model, images, labels):
    """Accuracy per scaling of the first 64 examples, scaled here with numpy and predicted by
    Keras (independent of the pipeline's preprocessing and explainer)."""
    return {name: float(np.mean(correct)) for name, correct in hits(model, images, labels).items()}


def hits(model, images, labels):
    """``{scaling: bool (64,)}``: whether Keras predicts each of the first 64 labels right on
    the pixels scaled here with numpy."""
    from pipeline.launch import scaling_check

    pixels = images[:scaling_check.SAMPLE_SIZE].astype(np.float64)
    truth = labels[:scaling_check.SAMPLE_SIZE]
    scaled = {"unit": pixels / 255, "symmetric": pixels / 127.5 - 1,
              "imagenet": (pixels / 255 - 0.485) / 0.229, "raw": pixels}
    return {name: np.argmax(model.predict(x, verbose=0), axis=1) == truth
            for name, x in scaled.items()}


def run_config(model_path, pattern, output, *overrides):
    """The RunConfig the scaling tests give preflight: symmetric scaling, no sanity check nor
    findings, ``overrides`` (``--set`` strings) on top."""
    from pipeline.config import load_config

    base = {"source": {"pattern": pattern}, "output": {"path": str(output)},
            "model": {"path": str(model_path)}, "preprocess": {"scaling": "symmetric"},
            "sanity": {"enabled": False}, "findings": {"enabled": False}}
    return load_config(overrides=overrides, base=base)


def best_other(measured, scaling):
    """The most accurate scaling other than ``scaling`` (the first in ``measured``'s order on
    a tie)."""
    return max((name for name in measured if name != scaling), key=measured.get)


def scaling_figures(model, model_path, images, labels, pattern, output):
    """What test_the_wrong_scaling_fails_with_both_accuracies_and_the_right_one_passes needs of
    the model, on the labelled ``images`` written at ``pattern``:

    - ``symmetric_accuracy`` / ``unit_accuracy``: Keras on numpy-scaled pixels (``accuracies``);
    - ``unit_refused``: 1 when preflight refuses ``preprocess.scaling=unit`` with the message
      naming the most accurate other scaling and its accuracy, else 0;
    - ``symmetric_accepted``: 1 when preflight accepts ``symmetric`` with the accuracies the
      test measured (to 1e-4; symmetric's alone when it is above ``1 - MIN_GAIN``), else 0;
    - ``unit_gain`` / ``unit_z`` (informative): how far ``unit``'s refusal is from the rule's
      ``MIN_GAIN`` and ``MIN_Z`` (``scaling_check.clearly_better``) against the best other
      scaling, from the test's own accuracies and per-example hits.
    """
    from pipeline.launch import preflight, scaling_check

    correct = hits(model, images, labels)
    measured = {name: float(np.mean(right)) for name, right in correct.items()}
    best = best_other(measured, "unit")
    expected = (f"preprocess.scaling={best} {measured[best]:.0%} "
                f"({round(measured[best] * 64)}/64)")
    try:
        preflight.preflight(run_config(model_path, pattern, output, "preprocess.scaling=unit"))
        refused = 0.0
    except preflight.PreflightError as error:
        refused = float(expected in str(error))
    try:
        plan = preflight.preflight(run_config(model_path, pattern, output))
        field = plan.manifest_base["input_scaling"]
        # the check measures the others only when symmetric could lose, and keeps those whose
        # best case (right wherever symmetric was) is clearly better (scaling_check.measure)
        expected_names = {"symmetric"} if measured["symmetric"] > 1 - scaling_check.MIN_GAIN \
            else {"symmetric"} | {name for name in measured if scaling_check.clearly_better(
                {"symmetric": correct["symmetric"],
                 name: correct[name] | correct["symmetric"]}, "symmetric", name)}
        accepted = float(field["scaling"] == "symmetric"
                         and set(field["accuracy"]) == expected_names and all(
                             math.isclose(field["accuracy"][name], measured[name],
                                          abs_tol=1e-4) for name in expected_names))
    except preflight.PreflightError:
        accepted = 0.0
    only_best = int(np.sum(correct[best] & ~correct["unit"]))
    only_unit = int(np.sum(correct["unit"] & ~correct[best]))
    z = (only_best - only_unit) / math.sqrt(only_best + only_unit) if only_best + only_unit else 0.0
    return {"symmetric_accuracy": measured["symmetric"], "unit_accuracy": measured["unit"],
            "unit_refused": refused, "symmetric_accepted": accepted,
            "unit_gain": measured[best] - measured["unit"], "unit_z": float(z)}

