"""Whether two runs' maps can be compared, read from their ``manifest.json`` files (pure).

Maps mean the same thing only under the same method and settings, channel reduction, map and
input shape, explained space, target policy, preprocessing, precision and border band (which
defines ``border_share``). A changed model or changed data is what a comparison is for: it is
reported, never refused.
"""

# Manifest paths (dots into nested dicts) whose values must be equal in both runs.
SAME_MEANING_FIELDS = (
    "method", "method_settings", "config.explain.reduction", "map_shape", "input_shape",
    "explained_space", "config.explain.target", "config.preprocess.scaling",
    "config.preprocess.resize_method", "config.preprocess.scaled_jpeg_decode",
    "config.explain.precision", "config.output.border_band_fraction",
)
# Manifest paths that say which data a run read.
DATA_FIELDS = ("config.source.kind", "config.source.pattern", "config.source.tfds_name",
               "config.source.tfds_dir", "config.source.split")
INCOMPATIBLE = ("cannot compare {current} with baseline {baseline}: the maps mean different "
                "things ({fields})")
NOT_A_RUN = "no manifest.json in {path}: not the output folder of a finished gbp-audit run"


class CompareError(ValueError):
    """A comparison that cannot be made (a user's mistake); the message is one line."""


class IncompatibleRunsError(CompareError):
    """Two runs whose maps cannot be compared; the message names the fields."""


def read_run(folder):
    """A finished run's manifest; raises ``CompareError`` when the folder holds none."""
    from pipeline.outputs import manifest

    found = manifest.read(folder)
    if not found.get("map_shape"):
        raise CompareError(NOT_A_RUN.format(path=folder))
    return found


def _value(manifest, path):
    value = manifest
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _leaves(manifest, path):
    """``{path: value}`` of one field, a dict field split into its keys."""
    value = _value(manifest, path)
    if isinstance(value, dict):
        return {f"{path}.{key}": item for key, item in value.items()}
    return {path: value}


def differences(baseline, current):
    """The ``SAME_MEANING_FIELDS`` (dict fields by key) whose values differ, as
    ``[(field, baseline value, current value)]`` in field order."""
    found = []
    for path in SAME_MEANING_FIELDS:
        old, new = _leaves(baseline, path), _leaves(current, path)
        for leaf in sorted(set(old) | set(new)):
            if old.get(leaf) != new.get(leaf):
                found.append((leaf, old.get(leaf), new.get(leaf)))
    return found


def check(baseline, current, baseline_name="the baseline", current_name="this run"):
    """Raises ``IncompatibleRunsError`` when the runs' maps mean different things.

    Args:
        baseline, current: the two runs' manifests (dicts; the current run's may be its
            ``base_fields`` before it runs).
        baseline_name, current_name: how the message names them (e.g. their folders).
    """
    found = differences(baseline, current)
    if found:
        fields = "; ".join(f"{field}: {old!r} vs {new!r}" for field, old, new in found)
        raise IncompatibleRunsError(INCOMPATIBLE.format(current=current_name,
                                                        baseline=baseline_name, fields=fields))


def changes(baseline, current):
    """What is being compared: ``model_changed`` (model hash), ``data_changed`` (the source
    read), and the model hashes and changed source fields (a JSON-ready dict)."""
    source = [path.rsplit(".", 1)[-1] for path in DATA_FIELDS
              if _value(baseline, path) != _value(current, path)]
    return {"model_changed": baseline.get("model_sha256") != current.get("model_sha256"),
            "baseline_model_sha256": baseline.get("model_sha256"),
            "current_model_sha256": current.get("model_sha256"),
            "data_changed": bool(source), "changed_source_fields": source}


def id_counts(shared, baseline_only, current_only):
    """The manifest's id counts; ``data_changed`` in ``changes`` says whether the source
    differs, these say how the ids did."""
    return {"shared_ids": int(shared), "baseline_only_ids": int(baseline_only),
            "current_only_ids": int(current_only)}
