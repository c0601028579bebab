"""The contract between the config, the model and the data, checked in preflight before any
Beam work: each broken clause is one line naming both sides (``ContractError``); a clause that
may legitimately not hold (boxes are sparse) is a warning instead."""

import itertools

# Records whose features are looked at (the first ones, in the pipeline's read order).
KEY_SAMPLE = 64
MODEL_CHANNELS = (1, 3)  # what preprocessing makes of grey, RGB and RGBA images

CLASS_NAME_COUNT = (
    "{names_from} has {names} class names but the model '{model}' has {outputs} outputs; give "
    "{outputs} names, or none (classes are then named 'class 0', 'class 1', ...)"
)
KEY_MISSING = (
    "source.{field}='{key}' is in none of the first {records} records (their features: "
    "{features}); {remedy}"
)
KEY_REMEDIES = {
    "image_key": "set source.image_key to the image feature",
    "label_key": "set source.label_key to the label feature, or source.label_key=null for "
                 "data without labels",
    "id_key": "set source.id_key to the id feature, or source.id_key=null to name examples "
              "by their position",
}
BOX_KEY_MISSING = (
    "WARNING source.box_key='{key}' is in none of the first {records} records, so their "
    "box_share is empty; set source.box_key=null if the data has no boxes"
)
MODEL_CHANNELS_UNSUPPORTED = (
    "model '{model}' takes {channels} channels (input {shape}), but gbp-audit feeds images as "
    "1 (grey) or 3 (RGB) channels"
)
RAW_CHANNELS_UNSUPPORTED = (
    "source.raw_shape {raw_shape} has {channels} channels; preprocessing converts 1 (grey), 3 "
    "(RGB) or 4 (RGBA) channels to the model's {model_channels}"
)


class ContractError(ValueError):
    """The config, the model and the data disagree; the message names both sides."""


def check_class_names(config, class_names, explainer):
    """Refuses class names whose count is not the model's output width (not checked when a
    layer, not the output, is explained)."""
    if not class_names or config.model.layer_name is not None:
        return
    if len(class_names) != explainer.num_classes:
        names_from = ("source.class_names" if config.source.class_names
                      else "the TFDS label feature")
        raise ContractError(CLASS_NAME_COUNT.format(
            names_from=names_from, names=len(class_names), model=config.model.path,
            outputs=explainer.num_classes))


def check_channels(config, input_shape):
    """Refuses a model input, or raw source images, that preprocessing cannot produce or read."""
    channels = input_shape[-1]
    if channels not in MODEL_CHANNELS:
        raise ContractError(MODEL_CHANNELS_UNSUPPORTED.format(
            model=config.model.path, channels=channels, shape=tuple(input_shape)))
    source = config.source
    if source.image_encoding == "raw" and source.raw_shape:
        raw_channels = source.raw_shape[-1] if len(source.raw_shape) == 3 else 1
        if raw_channels not in (1, 3, 4):
            raise ContractError(RAW_CHANNELS_UNSUPPORTED.format(
                raw_shape=list(source.raw_shape), channels=raw_channels,
                model_channels=channels))


def _feature_keys(record):
    """The feature names of one SourceRecord, or None when its payload is no
    ``tf.train.Example`` with features (it becomes a dead letter in the run)."""
    if isinstance(record.payload, dict):
        return set(record.payload) or None
    import tensorflow as tf

    try:
        # Stray bytes can parse as an Example without features: not a record to judge keys by.
        return set(tf.train.Example.FromString(record.payload).features.feature) or None
    except Exception:  # noqa: BLE001 - protobuf's DecodeError is private
        return None


def check_keys(config, records):
    """Refuses an image, label or id key that none of the first records carries.

    Args:
        config: the RunConfig.
        records: iterable of SourceRecords in read order (the first ``KEY_SAMPLE`` are read).

    Returns:
        Warning lines (a box key no record carries); empty when all is well or no record parses.
    """
    parsed = [keys for keys in (_feature_keys(record)
                                for record in itertools.islice(records, KEY_SAMPLE))
              if keys is not None]
    if not parsed:
        return []
    seen = set().union(*parsed)
    source = config.source
    for field in KEY_REMEDIES:
        key = getattr(source, field)
        if key and key not in seen:
            raise ContractError(KEY_MISSING.format(
                field=field, key=key, records=len(parsed),
                features=", ".join(sorted(seen)) or "none", remedy=KEY_REMEDIES[field]))
    if source.box_key and source.box_key not in seen:
        return [BOX_KEY_MISSING.format(key=source.box_key, records=len(parsed))]
    return []
