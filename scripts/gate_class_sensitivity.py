"""How class-sensitive are the gate rule's maps? Measured on small swish and GELU CNNs.

Usage:  .venv/bin/python scripts/gate_class_sensitivity.py [--images 1600] [--epochs 10]
                                                          [--sample 64]

Three CNNs with the same layers and only the hidden activation changed (ReLU, swish, GELU) are
measured untrained (seeded random weights) and trained on the demo's circle/square images at
32x32 (`demo.assets.synthesize_shapes`, no shortcut mark). For each, the class-sensitivity check
of `gbp_ops.class_sensitivity` (the explained class's map against another class's map, on
`--sample` held-out images; max_abs channel reduction) is run with:
  - the network's rule: guided backprop for the ReLU CNN, the gate rule
    (`nonlinearity_rule='gate'`) for the swish and GELU CNNs;
  - plain gradients, for comparison.
A mean Spearman near 1 means the maps barely depend on the class explained.
The last line is one JSON object with every figure.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SIZE = 32
ACTIVATIONS = ("relu", "swish", "gelu")


def build_cnn(activation, seed):
    """Conv-BN-act x2 with pooling, Conv-act, Dense-act, Dense softmax; 32x32x3 -> 2."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((SIZE, SIZE, 3))]
    for filters in (16, 32):
        layers += [keras.layers.Conv2D(filters, 3, padding="same"),
                   keras.layers.BatchNormalization(momentum=0.9),
                   keras.layers.Activation(activation), keras.layers.MaxPool2D(2)]
    layers += [keras.layers.Conv2D(32, 3, padding="same", activation=activation),
               keras.layers.Flatten(), keras.layers.Dense(32, activation=activation),
               keras.layers.Dense(2, activation="softmax")]
    return keras.Sequential(layers, name=f"{activation}_cnn")


class PlainGradients:
    """Plain gradients of the logit, with the interface ``run_class_sensitivity_check`` uses."""

    num_classes = 2

    def __init__(self, model):
        import keras

        head = model.layers[-1]
        linear = keras.layers.Dense.from_config({**head.get_config(), "activation": "linear"})
        self._logits = keras.Sequential([keras.Input((SIZE, SIZE, 3)), *model.layers[:-1],
                                         linear])
        linear.set_weights(head.get_weights())

    def explain_with_outputs(self, images, targets=None, seeds=None):
        import tensorflow as tf

        from gbp_ops import Explanation

        inputs = tf.constant(images, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logits = self._logits(inputs, training=False)
            predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
            chosen = predicted if targets is None else tf.where(
                tf.constant(targets, tf.int32) < 0, predicted, tf.constant(targets, tf.int32))
            scores = tf.gather(logits, chosen, axis=1, batch_dims=1)
            total = tf.reduce_sum(scores)
        maps = tape.gradient(total, inputs).numpy()
        return Explanation(maps, logits.numpy(), None, predicted.numpy().astype(np.int64),
                           chosen.numpy().astype(np.int64), scores.numpy())

    def explain(self, images, targets=None, seeds=None):
        return self.explain_with_outputs(images, targets, seeds).maps


def class_sensitivity(explainer, images):
    """Mean Spearman and SSIM between the explained class's map and the other class's."""
    from gbp_ops.class_sensitivity import run_class_sensitivity_check

    rows = run_class_sensitivity_check(explainer, images, seed=0, reduction="max_abs")
    spearman = np.array([row["spearman"] for row in rows])
    ssim = np.array([row["ssim"] for row in rows])
    return {"spearman_mean": round(float(np.nanmean(spearman)), 3),
            "ssim_mean": round(float(np.nanmean(ssim)), 3),
            "constant_maps": int(np.isnan(spearman).sum()), "count": len(rows)}


def measure(model, images):
    """The network's rule and plain gradients, on ``images``."""
    from gbp_ops import GuidedBackprop

    has_relu = any(getattr(layer, "activation", None) is not None
                   and getattr(layer.activation, "__name__", "") == "relu"
                   for layer in model.layers)
    rule = "guided" if has_relu else "gate"
    explainer = GuidedBackprop(model, batch_size=32,
                               nonlinearity_rule="refuse" if has_relu else "gate")
    return {rule: class_sensitivity(explainer, images),
            "plain": class_sensitivity(PlainGradients(model), images)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1600)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sample", type=int, default=64)
    args = parser.parse_args()

    import keras

    from demo.assets import synthesize_shapes

    arrays = synthesize_shapes(args.images + args.sample, image_size=SIZE, shortcut_fraction=0.0,
                               seed=7)
    x = arrays["images"].astype(np.float32) / 255.0
    y = arrays["labels"]
    train_x, train_y = x[:args.images], y[:args.images]
    held_x, held_y = x[args.images:], y[args.images:]
    results = {}
    for activation in ACTIVATIONS:
        model = build_cnn(activation, seed=3)
        entry = {"untrained": measure(model, held_x)}
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(train_x, train_y, batch_size=32, epochs=args.epochs, verbose=0)
        entry["held_out_accuracy"] = round(float(model.evaluate(held_x, held_y, verbose=0)[1]), 3)
        entry["trained"] = measure(model, held_x)
        results[activation] = entry
        for state in ("untrained", "trained"):
            for rule, figures in entry[state].items():
                print(f"{activation:5s} {state:9s} {rule:6s} Spearman "
                      f"{figures['spearman_mean']:.3f}  SSIM {figures['ssim_mean']:.3f}  "
                      f"constant maps {figures['constant_maps']}/{figures['count']}")
        print(f"{activation:5s} held-out accuracy {entry['held_out_accuracy']:.3f}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
