"""Walking and cloning Keras models, nested models included: shared by the guided rewrite and
the sanity check's randomization, so both name layers the same way."""

import keras


def walk_layers(model, prefix=""):
    """Yields ``(path, layer)`` for every layer, depth first, nested models included (the
    nested model itself first, then its layers). Paths look like ``outer/inner/layer``."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer, prefix=f"{path}/")


def leaf_layers(model):
    """Yields ``(path, layer)`` for every layer that is not itself a model, in graph order."""
    return ((path, layer) for path, layer in walk_layers(model)
            if not isinstance(layer, keras.Model))


def copy_layer(layer):
    """A fresh layer built from ``layer``'s config (no weights yet)."""
    return layer.__class__.from_config(layer.get_config())


def clone_with_weights(model, clone_layer=None):
    """A clone of ``model`` (nested models cloned too) carrying a copy of its weights.

    Args:
        model: a Functional or Sequential ``keras.Model``.
        clone_layer: optional ``layer -> new layer``; defaults to a copy from the layer's
            config. A replacement must hold the same weights as the layer it replaces.

    Returns:
        The new ``keras.Model``; ``model`` is not modified.
    """
    clone = keras.models.clone_model(model, clone_function=clone_layer or copy_layer,
                                     recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def assign_layer_weights(model, weights_by_path):
    """Sets the weights of the named layers of ``model`` in place (its variables keep their
    identity, so a traced function that reads them sees the new values).

    Args:
        model: a ``keras.Model``.
        weights_by_path: dict layer path (as ``leaf_layers`` names it) -> list of numpy arrays
            in the layer's ``get_weights`` order.

    Raises:
        ValueError: a path ``model`` does not have, or weights that do not fit the layer.
    """
    layers = dict(leaf_layers(model))
    missing = sorted(path for path in weights_by_path if path not in layers)
    if missing:
        raise ValueError(f"model '{model.name}' has no layers {missing}")
    for path, values in weights_by_path.items():
        layers[path].set_weights(values)


def strided_pointwise_convs(model):
    """Paths of the convolutions (nested models too) with a 1x1 kernel and a stride above 1.

    Eager gradients through such a layer crashed the process in TF 2.21 with oneDNN (a 1x1,
    stride-2, SAME Conv2D on a (2, 60, 60, 8) input; issue 26). In eager mode TF's Conv2D
    gradient always computes the filter gradient (``Conv2DBackpropFilter``) beside the input
    gradient; a compiled step prunes it, and was unaffected. Eager GBP code in the tests and
    the bench checks models with this first.
    """
    return [path for path, layer in leaf_layers(model)
            if hasattr(layer, "kernel_size") and hasattr(layer, "strides")
            and all(int(size) == 1 for size in layer.kernel_size)
            and any(int(stride) > 1 for stride in layer.strides)]
