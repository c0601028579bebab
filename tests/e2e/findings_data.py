"""A planted-shortcut dataset for the findings tests, unlike the demo's: 32x32 'dots' (class 0)
vs 'stripes' (class 1), where a share of class 1 shows dots only, plus a small red square at
the lower right; those images are right only through the square. A tiny CNN is trained on
it in a few seconds."""

import numpy as np

SIZE = 32
MARK = (26, 26, 30, 30)  # pixel (y0, x0, y1, x1), end-exclusive: lower right
CLASS_NAMES = ("dots", "stripes")


def _dots(rng, image):
    for _ in range(rng.integers(5, 9)):
        y, x = rng.integers(1, SIZE - 3, size=2)
        image[y:y + 2, x:x + 2] = rng.uniform(170, 230)


def _stripes(rng, image):
    period = int(rng.integers(4, 7))
    phase = int(rng.integers(0, period))
    rows = (np.arange(SIZE) + phase) % period < 2
    if rng.random() < 0.5:
        image[rows] = rng.uniform(170, 230)
    else:
        image[:, rows] = rng.uniform(170, 230)


def synthesize(count, marked_share=0.3, seed=0):
    """Dict of ``images`` uint8 (N, 32, 32, 3), ``labels``, ``ids``, ``has_mark`` (bool)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 2).astype(np.int64)
    stripes = np.flatnonzero(labels == 1)
    has_mark = np.zeros(count, bool)
    has_mark[rng.choice(stripes, int(round(marked_share * len(stripes))), replace=False)] = True
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    for index in range(count):
        image = np.full((SIZE, SIZE, 3), rng.uniform(40, 110), np.float64)
        (_stripes if labels[index] == 1 and not has_mark[index] else _dots)(rng, image)
        image += rng.normal(0, 6, size=image.shape)
        if has_mark[index]:
            y0, x0, y1, x1 = MARK
            image[y0:y1, x0:x1] = (255, 0, 0)
        images[index] = np.clip(np.round(image), 0, 255)
    ids = np.array([f"planted-{i:05d}" for i in range(count)])
    return {"images": images, "labels": labels, "ids": ids, "has_mark": has_mark}


def train_model(arrays, path, seed=0, epochs=12):
    """Trains and saves a tiny CNN (float32 inputs in [0, 1], softmax over 2 classes)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPool2D(2),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPool2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(arrays["images"].astype(np.float32) / 255.0, arrays["labels"], epochs=epochs,
              batch_size=32, verbose=0)
    model.save(path)
    return model


def write_shards(arrays, folder):
    """TFRecord PNG shards with no box feature."""
    from demo.assets import write_tfrecord_shards

    unboxed = {**arrays, "has_mark": np.zeros(len(arrays["labels"]), bool),
               "mark_box": np.zeros((len(arrays["labels"]), 4), np.float32)}
    return write_tfrecord_shards(unboxed, folder, num_shards=2)
