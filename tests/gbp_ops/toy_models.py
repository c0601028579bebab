"""Small Keras models for the gbp_ops tests, with weights and BN statistics set at random."""

import keras
import numpy as np
import tensorflow as tf

from gbp_ops.model_graph import strided_pointwise_convs


def randomize_batchnorm(model, rng):
    """Gives every BatchNormalization layer non-trivial gamma/beta/moving statistics."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0.0, 0.2, beta.shape).astype("float32"),
                rng.normal(0.0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])
        elif isinstance(layer, keras.Model):
            randomize_batchnorm(layer, rng)
    return model


def random_cnn(input_size=16):
    """Conv same/valid/strided, BN, every ReLU form the numpy reference knows, pool, dense."""
    model = keras.Sequential([
        keras.Input((input_size, input_size, 3)),
        keras.layers.Conv2D(6, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(8, 3, padding="valid", activation="relu6"),
        keras.layers.MaxPool2D(2),
        keras.layers.Conv2D(8, 3, strides=2, padding="same"),
        keras.layers.ReLU(max_value=6.0),
        keras.layers.Conv2D(8, 1, activation="relu"),
        keras.layers.ReLU(threshold=0.05),
        keras.layers.Flatten(),
        keras.layers.Dense(12, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(5, activation="softmax"),
    ])
    return randomize_batchnorm(model, np.random.default_rng(0))


def random_images(count, size, channels=3, seed=0):
    """float32 ``(count, size, size, channels)`` uniform in [0, 1)."""
    return np.random.default_rng(seed).random((count, size, size, channels)).astype("float32")


def assert_eager_safe(model):
    """Eager GBP/gradient code in the tests calls this first: eager gradients through a 1x1
    strided convolution crashed TF 2.21 with oneDNN (``strided_pointwise_convs``), which would
    take the whole pytest process down instead of failing one test."""
    hazards = strided_pointwise_convs(model)
    assert not hazards, (
        f"eager gradients through the 1x1 strided convolutions {hazards} crashed TF 2.21 with "
        "oneDNN; use the compiled step (tf.function) or a subprocess for this model")


def plain_target_gradients(model, images, targets):
    """Plain (unguided) TF gradients d(sum_i outputs[i, targets[i]]) / d(images), in float32.

    Args:
        model: keras model outputting ``(N, K)``.
        images: float32 ``(N, H, W, C)``.
        targets: int ``(N,)``.

    Returns:
        ``(grads, outputs)``: float32 numpy ``(N, H, W, C)`` and ``(N, K)``.
    """
    assert_eager_safe(model)
    x = tf.constant(images, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = model(x, training=False)
        score = tf.reduce_sum(tf.gather(outputs, tf.constant(targets), batch_dims=1))
    return tape.gradient(score, x).numpy(), outputs.numpy()


def reference_cnn_with_biases(size, seed=0):
    """The reference CNN (1/4 width, ``size`` x ``size`` inputs) with non-trivial biases and
    BN parameters/statistics, so that randomizing or reinitializing any weight tensor changes
    its maps."""
    from demo.reference_model import build_reference_model

    model = build_reference_model(size, width_divisor=4, seed=seed)
    rng = np.random.default_rng(seed)
    randomize_batchnorm(model, rng)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype("float32")])
    return model
