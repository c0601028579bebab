"""Building a ``RunConfig`` from YAML presets, nested dicts and ``--set key=value``
overrides, with every value type-checked and validated."""

import dataclasses
import types
import typing

import yaml

from pipeline.config.sections import ConfigError, RunConfig
from pipeline.config.validation import validate

# Fields that describe a preset's own data: a user who points the preset at other data (sets
# one of ``SOURCE_DATA_FIELDS`` to another value) does not inherit them; they fall back to
# their defaults, with a note, unless the overrides set them too.
SOURCE_DATA_FIELDS = (("source", "kind"), ("source", "pattern"), ("source", "tfds_name"),
               ("source", "tfds_dir"))
DATASET_BOUND_FIELDS = (("source", "class_names"), ("source", "box_key"))
DROPPED_NOTE = (
    "config: {anchors} overridden, so the preset's {dropped} (its own data's) {verb} dropped; "
    "set {them} again with --set if the new data has {them} too"
)


def _coerce(field_path, annotation, value):
    """Converts a YAML value to the annotated type, or raises ConfigError naming the field."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(arg for arg in args if arg is not type(None))
    if annotation is tuple:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{field_path}': expected a list, got {value!r}")
        return tuple(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config field '{field_path}': expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config field '{field_path}': expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config field '{field_path}': expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config field '{field_path}': expected a string, got {value!r}")
    raise AssertionError(f"unhandled config type {annotation} for {field_path}")


def _section_from_dict(section_name, section_type, values):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section_name}': expected a mapping, got {values!r}")
    hints = typing.get_type_hints(section_type)
    known = {field.name for field in dataclasses.fields(section_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"config field '{section_name}.{unknown[0]}' is not a known field; "
            f"'{section_name}' has: {', '.join(sorted(known))}"
        )
    kwargs = {
        name: _coerce(f"{section_name}.{name}", hints[name], value)
        for name, value in values.items()
    }
    return section_type(**kwargs)


def config_from_dict(data):
    """Builds and validates a RunConfig from a nested dict.

    Raises:
        ConfigError: an unknown section or field, a wrong type, or an invalid value.
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    sections = {field.name: field.type for field in dataclasses.fields(RunConfig)}
    hints = typing.get_type_hints(RunConfig)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(
            f"config section '{unknown[0]}' is not known; sections are: {', '.join(sections)}"
        )
    config = RunConfig(**{
        name: _section_from_dict(name, hints[name], data.get(name)) for name in sections
    })
    validate(config)
    return config


def compare_config_from_dict(values):
    """A validated CompareConfig from a dict: ``gbp-audit compare``'s only section."""
    from pipeline.config.sections import CompareConfig
    from pipeline.config.validation import validate_compare

    settings = _section_from_dict("compare", CompareConfig, values)
    validate_compare(settings)
    return settings


def parse_override(text):
    """``'explain.batch_size=64'`` -> ``('explain', 'batch_size', 64)``; values parse as YAML."""
    key, sep, raw_value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override '{text}' must look like section.field=value")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override '{text}': value is not valid YAML ({error})") from error
    return parts[0], parts[1], value


def load_config(path=None, overrides=(), base=None, notes=None):
    """Loads a YAML preset (local or remote path), applies overrides, validates.

    The preset's ``DATASET_BOUND_FIELDS`` are dropped when the overrides point it at other
    data (``drop_dataset_bound``).

    Args:
        path: YAML file path or None for defaults only.
        overrides: iterable of ``section.field=value`` strings.
        base: optional dict applied before the file (used by tests to shrink presets).
        notes: optional list; a one-line note is appended for every field dropped.

    Returns:
        A validated RunConfig.

    Raises:
        ConfigError: unreadable YAML or any invalid field.
    """
    preset = dict(base or {})
    if path:
        preset = _merge(preset, _read_yaml(path))
    data = _merge(preset, {})
    changed = {}
    for text in overrides:
        section, field, value = parse_override(text)
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"config section '{section}': expected a mapping")
        data[section][field] = value
        changed[(section, field)] = value
    note = drop_dataset_bound(preset, data, changed)
    if note and notes is not None:
        notes.append(note)
    return config_from_dict(data)


def _preset_value(preset, section, field):
    values = preset.get(section)
    return values.get(field) if isinstance(values, dict) else None


def drop_dataset_bound(preset, data, changed):
    """Removes from ``data`` (in place) the preset's ``DATASET_BOUND_FIELDS`` that ``changed``
    (the overrides, ``{(section, field): value}``) does not set, when ``changed`` gives one of
    ``SOURCE_DATA_FIELDS`` a value other than the preset's.

    Returns:
        The note saying what was dropped and why, or None.
    """
    anchors = [f"{section}.{field}" for section, field in SOURCE_DATA_FIELDS
               if (section, field) in changed
               and changed[(section, field)] != _preset_value(preset, section, field)]
    dropped = [(section, field) for section, field in DATASET_BOUND_FIELDS
               if (section, field) not in changed
               and _preset_value(preset, section, field) not in (None, "", [], ())]
    if not anchors or not dropped:
        return None
    for section, field in dropped:
        del data[section][field]
    return DROPPED_NOTE.format(
        anchors=" and ".join(anchors) + (" was" if len(anchors) == 1 else " were"),
        dropped=" and ".join(f"{section}.{field} {_preset_value(preset, section, field)!r}"
                             for section, field in dropped),
        verb="is" if len(dropped) == 1 else "are",
        them="it" if len(dropped) == 1 else "them")


def _merge(base, update):
    merged = {key: dict(value) if isinstance(value, dict) else value
              for key, value in base.items()}
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path):
    from pipeline import paths

    try:
        text = paths.read_text(path)
    except FileNotFoundError as error:
        raise ConfigError(f"config file not found: {path}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data or {}
