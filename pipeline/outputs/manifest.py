"""``manifest.json``: the one builder of every field, and its reader.

Preflight builds the fields known before the run (``base_fields``); the publish step adds what
the run found (``final_fields``). Light: no Beam or TensorFlow at import.
"""

import datetime
import json
import platform

from pipeline import paths
from pipeline.config import jsonable
from pipeline.tables import SCHEMA_VERSION
from pipeline.tables import sanity as sanity_table
from pipeline.tables.saliency import TARGET

MANIFEST = "manifest.json"  # beside the table folders in every output directory


def versions():
    """Versions of the stack, for the manifest."""
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for package in ("gbp-audit", "tensorflow", "keras", "apache-beam", "numpy", "pyarrow",
                    "tensorflow-datasets"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def base_fields(config, explainer, class_names, map_shape, model_sha256, fidelity=None,
                precision_choice=None):
    """Fields known before the run: config, versions, model, explained space and shapes, a
    reduced-precision run's fidelity to float32, and what ``explain.precision: auto`` chose.

    Args:
        config: the RunConfig.
        explainer: the configured explainer (``GuidedBackprop`` interface).
        class_names: tuple of label names (may be empty).
        map_shape: ``(h, w)`` of the stored maps.
        model_sha256: hex digest of the model file.
        fidelity: None (float32), or ``pipeline.launch.fidelity.measure``'s dict, kept as the
            ``fidelity`` field.
        precision_choice: None, or for ``auto``: ``requested``, ``precision`` (the one the
            run computes in), ``reason`` and ``host``; kept as the ``precision_choice`` field.
    """
    method_fields = _method_fields(config, explainer)
    fields = {
        "config": config.to_dict(),
        "versions": versions(),
        "method": method_fields.pop("method"),
        "method_settings": method_fields,
        "model_sha256": model_sha256,
        "guided_sites": [f"{site.layer}: {site.form}" for site in explainer.guided_sites],
        # Activations under explain.nonlinearity_rule 'gate', apart from the guided ReLUs.
        "gated_sites": [f"{site.layer}: {site.form}"
                        for site in getattr(explainer, "gated_sites", ())],
        "unguided_sites": [site.layer for site in explainer.unguided_sites],
        "explained_space": explainer.explained_space,
        "input_shape": list(explainer.input_shape),
        "map_shape": list(map_shape),
        "class_names": list(class_names),
    }
    if fidelity is not None:
        fields["fidelity"] = jsonable(fidelity)
    if precision_choice is not None:
        fields["precision_choice"] = jsonable(precision_choice)
    return fields


def _method_fields(config, explainer):
    """The explainer's ``method_fields()`` (method, SmoothGrad settings, the Grad-CAM layer it
    chose), or the configured ones for an explainer without that method."""
    if hasattr(explainer, "method_fields"):
        return jsonable(explainer.method_fields())
    explain = config.explain
    return {"method": explain.method, "smoothgrad_samples": explain.smoothgrad_samples,
            "smoothgrad_sigma": explain.smoothgrad_sigma,
            "nonlinearity_rule": explain.nonlinearity_rule}


def table_metadata(base, map_dtype):
    """The metadata stored in the saliency table's Parquet schema."""
    return {**base, "map_dtype": map_dtype}


def count_fields(counts):
    """Counts for the manifest; ``reconciled`` says input == saliency rows + errors."""
    counts = {name: int(value) for name, value in sorted(counts.items())}
    inputs = counts.get("input_records", 0) + counts.get("damaged_shards", 0)
    counts["input"] = inputs
    counts["reconciled"] = inputs == counts.get("saliency_rows", 0) + counts.get("errors", 0)
    return counts


# ``status``: what a scheduler reads first.
STATUS_COMPLETE = "complete"  # every input is a saliency row
STATUS_COMPLETE_WITH_ERRORS = "complete_with_errors"  # the rest are dead letters (errors/)
STATUS_INCOMPLETE = "incomplete"  # inputs != saliency rows + dead letters


def run_status(counts):
    """``STATUS_*`` of ``count_fields``."""
    if not counts["reconciled"]:
        return STATUS_INCOMPLETE
    return STATUS_COMPLETE_WITH_ERRORS if counts.get("errors", 0) else STATUS_COMPLETE


def sanity_manifest_fields(sanity_rows, base):
    """The manifest's ``sanity``: ``verdict`` (prose), ``outcome``, ``thresholds``, the bands
    of ``randomization`` and ``class_sensitivity`` (with that check's summary), and
    ``by_depth`` as a list ordered by ``depth``.

    Args:
        sanity_rows: ``sanity`` table rows (``pipeline.tables.sanity.encode_row``).
        base: ``base_fields`` (the method, for the verdict).
    """
    from gbp_ops import sanity

    rows = sanity_table.check_rows(sanity_rows)
    method = sanity.method_description(base.get("method", ""), base.get("method_settings"))
    fields = sanity.sanity_fields(rows, method)
    outcome = sanity.outcome_fields(fields["by_depth"], fields["class_sensitivity"])
    if fields["class_sensitivity"]:
        outcome["class_sensitivity"].update(fields["class_sensitivity"])
    by_depth = [{"depth": depth, **entry} for depth, entry in sorted(fields["by_depth"].items())]
    return jsonable({"verdict": fields["verdict"], **outcome, "by_depth": by_depth})


def final_fields(base, counts, sanity_rows, wall_time_seconds, published_files, findings=(),
                 tables=None, flagged=(), created_at=None):
    """The whole manifest once the run has published.

    Args:
        base: ``base_fields``.
        counts: dict name -> int (see ``count_fields``).
        sanity_rows: ``sanity`` table rows (empty: no sanity check).
        wall_time_seconds: float.
        published_files: ``<table>/<file name>`` strings.
        findings: per-class dicts of ``pipeline.findings.stage.summary`` (empty: findings off):
            sample size, chosen k, Laplacian eigenvalues, assignment agreement.
        tables: ``{table: {rows, files, bytes}}`` of every table the run wrote.
        flagged: ``pipeline.findings.merge.flagged_findings`` of the run's clusters.
        created_at: the publish time, UTC ISO 8601 (default: now).
    """
    manifest = dict(base)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["created_at"] = created_at or datetime.datetime.now(
        datetime.UTC).isoformat(timespec="seconds")
    manifest["counts"] = count_fields(counts)
    manifest["status"] = run_status(manifest["counts"])
    manifest["tables"] = jsonable(dict(tables or {}))
    if sanity_rows:
        manifest["sanity"] = sanity_manifest_fields(sanity_rows, base)
    if findings:
        by_class = sorted(findings, key=lambda entry: entry[TARGET])
        sampled = sum(entry["sample_size"] for entry in by_class)
        manifest["findings"] = {
            "by_class": jsonable(by_class),
            "assignment_agreement": round(sum(
                entry["assignment_agreement"] * entry["sample_size"] for entry in by_class)
                / max(sampled, 1), 6),
            "flagged": jsonable(sorted(flagged, key=lambda entry: (
                entry[TARGET], entry["clusters"])))}
    manifest["wall_time_seconds"] = round(wall_time_seconds, 3)
    manifest["files"] = list(published_files)
    return manifest


def write(output_dir, manifest):
    paths.write_text(paths.join(output_dir, MANIFEST), json.dumps(manifest, indent=2,
                                                                  sort_keys=True))


def read(output_dir):
    """The run's manifest as a dict, or ``{}`` when the run has not published one."""
    try:
        return json.loads(paths.read_text(paths.join(output_dir, MANIFEST)))
    except FileNotFoundError:
        return {}
