"""The reference CNN: the binary Conv-BN-ReLU classifier that tests, the demo and the bench use."""

import keras

# (filters, followed_by_maxpool) for each Conv-BN-ReLU block, in order.
REFERENCE_BLOCKS = (
    (32, True),
    (64, True),
    (64, True),
    (128, False),
    (128, True),
    (128, False),
    (128, False),
)


def build_reference_model(input_size=128, num_classes=2, width_divisor=1, seed=None):
    """Builds the reference Conv-BN-ReLU classifier, ending in a softmax.

    Args:
        input_size: S, the square input side; the input is float32 `(S, S, 3)`.
            Needs S divisible by 16 (four 2x max-pools).
        num_classes: units of the final `Dense(..., activation='softmax')`.
        width_divisor: divides every filter/unit count, for small test models (1 = reference).
        seed: optional int for reproducible initial weights.

    Returns:
        An uncompiled functional `keras.Model` mapping `(batch, S, S, 3)` float32 to
        `(batch, num_classes)` probabilities.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for index, (filters, pool) in enumerate(REFERENCE_BLOCKS):
        x = keras.layers.Conv2D(
            max(filters // width_divisor, 1), 3, padding="same", name=f"conv{index}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"relu{index}")(x)
        if pool:
            x = keras.layers.MaxPool2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(max(64 // width_divisor, 1), activation="relu", name="fc1")(x)
    x = keras.layers.BatchNormalization(name="fc1_bn")(x)
    x = keras.layers.Dense(max(32 // width_divisor, 1), activation="relu", name="fc2")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="reference_cnn")
