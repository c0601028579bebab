"""One comparison, from two finished runs' output folders to the comparison tables, the
``comparison`` block of a manifest and the report's opening section.

Order: both manifests are checked (``compatibility``) before any work; one Beam pipeline then
joins the runs per example (``join``), writes ``comparison_examples`` to staging, combines the
per-class and per-cluster summaries and re-tests the baseline's findings on the current model
(``occlusion``); its small results come back as one JSON file; the launcher writes
``comparison_classes`` and ``comparison_findings``, publishes the three tables and returns
what the manifest and the report say.
"""

import dataclasses
import json
import time

import apache_beam as beam

from gbp_ops.statistics import AGGREGATED_STATISTICS
from pipeline import paths, tables
from pipeline.compare import compatibility, join, matching, outcome, per_class
from pipeline.outputs import sinks
from pipeline.tables import comparison_classes as classes_table
from pipeline.tables import comparison_examples as examples_table
from pipeline.tables import comparison_findings as findings_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import stats as stats_table

BUCKETS_DIR = "comparison-buckets"
RESULTS_FILE = "comparison-results.json"


@dataclasses.dataclass
class Proof:
    """What re-occlusion needs: the current run's config and model input shape, or why it
    cannot run (``reason``)."""

    config: object = None
    input_shape: tuple = ()
    reason: str = ""


def proof_from_manifest(current):
    """A Proof from a finished run's manifest: its model (unchanged since the run) and its
    source must be reachable from here."""
    from gbp_ops import model_sha256
    from pipeline.config import ConfigError, config_from_dict

    try:
        config = config_from_dict(current["config"])
    except (ConfigError, KeyError) as error:
        return Proof(reason=f"the current run's config is not usable here: {error}")
    model = config.model.path
    if not (paths.is_savedmodel_dir(model) or paths.match(model)):
        return Proof(reason=f"the current model {model} is not reachable")
    if model_sha256(paths.local_copy(model)) != current.get("model_sha256"):
        return Proof(reason=f"the model file {model} has changed since the current run")
    if config.source.kind == "tfrecord" and not paths.match(config.source.pattern):
        return Proof(reason=f"the current run's images {config.source.pattern} are not "
                            "reachable")
    return Proof(config, tuple(current["input_shape"]))


def _saliency_columns(run):
    map_dtype = run["config"]["output"]["map_dtype"]
    # schema version 1 stored float16 maps scaled per row, with their scale
    scaled = map_dtype in saliency_table.SCALED_MAP_DTYPES or (
        map_dtype == "float16" and run.get("schema_version", 1) < 2)
    columns = [saliency_table.EXAMPLE_ID, saliency_table.LABEL, saliency_table.TARGET,
               saliency_table.PREDICTED, saliency_table.CORRECT, saliency_table.SALIENCY_MAP]
    return columns + [saliency_table.SALIENCY_SCALE] * scaled + list(AGGREGATED_STATISTICS)


class WriteResultsDoFn(beam.DoFn):
    """Side inputs (the pipeline's small results) -> one JSON file; yields its path."""

    def __init__(self, path):
        self._path = path

    def process(self, unused, classes, overlaps, ids, reoccluded, staged):
        from pipeline.config import jsonable

        results = {"classes": [[key, figures] for key, figures in classes],
                   "overlaps": [[list(key), count] for key, count in overlaps],
                   "ids": dict(ids), "reoccluded": [[key, value] for key, value in reoccluded],
                   "staged": sorted(staged)}
        paths.write_text(self._path, json.dumps(jsonable(results)))
        yield self._path


def build_comparison(p, runs, dirs, output_dir, settings, baseline_findings, proof):
    """Applies the comparison graph to ``p``; the results land in ``results_path``.

    Args:
        runs, dirs: ``(baseline, current)`` manifests and output folders.
        baseline_findings: ``matching.run_findings`` of the baseline.
        proof: a Proof (``config`` None: no re-occlusion).
    """
    staging = paths.join(output_dir, sinks.STAGING_DIR)
    rows = max(int(run.get("counts", {}).get("saliency_rows", 0)) for run in runs)
    buckets = join.bucket_count(rows, runs[1]["map_shape"])
    parts = []
    for side, run, folder in zip(examples_table.SIDES, runs, dirs):
        parts.append(join.read_and_partition(
            p, side, tables.SALIENCY, paths.join(folder, tables.SALIENCY, "*.parquet"),
            paths.join(staging, BUCKETS_DIR), buckets, _saliency_columns(run)))
        if paths.match(paths.join(folder, tables.ASSIGNMENTS, "*.parquet")):
            parts.append(join.read_and_partition(
                p, side, tables.ASSIGNMENTS, paths.join(folder, tables.ASSIGNMENTS,
                                                        "*.parquet"),
                paths.join(staging, BUCKETS_DIR), buckets))
    flagged = {(found.class_index, cluster) for found in baseline_findings
               for cluster in found.clusters}
    joined = (tuple(parts) | "AllParts" >> beam.Flatten() | "ByBucket" >> beam.GroupByKey()
              | "JoinBuckets" >> beam.ParDo(join.JoinBucketDoFn(
                  runs, flagged, settings.sample_per_class)).with_outputs(
                      *join.TAGS, main="tables"))
    staged = sinks.write_table(joined.tables, output_dir, tables.COMPARISON_EXAMPLES,
                               examples_table.COMPARISON_EXAMPLES_SCHEMA)
    classes = joined[join.TAG_CLASSES] | "PerClass" >> beam.CombinePerKey(
        join.ClassComparisonFn(settings.sample_per_class))
    overlaps = joined[join.TAG_OVERLAPS] | "SumOverlaps" >> beam.CombinePerKey(sum)
    ids = joined[join.TAG_IDS] | "SumIds" >> beam.CombinePerKey(sum)
    if proof.config is not None and baseline_findings:
        from pipeline.compare.occlusion import ReOcclude

        settings_b = runs[0]["config"]["findings"]
        reoccluded = joined[join.TAG_MEMBERS] | "ReOcclude" >> ReOcclude(
            proof.config, proof.input_shape, baseline_findings,
            settings_b["occlusion_samples"], settings_b["occlusion_fill"])
    else:
        reoccluded = p | "NoReOcclusion" >> beam.Create([])
    return (p | "ResultsTrigger" >> beam.Create([None])
            | "WriteResults" >> beam.ParDo(
                WriteResultsDoFn(paths.join(staging, RESULTS_FILE)),
                classes=beam.pvalue.AsList(classes), overlaps=beam.pvalue.AsList(overlaps),
                ids=beam.pvalue.AsList(ids), reoccluded=beam.pvalue.AsList(reoccluded),
                staged=beam.pvalue.AsList(staged)))


def _optional_table(folder, table):
    from pipeline.outputs import loader

    try:
        return loader.load_table(folder, table)
    except FileNotFoundError:
        return None


def _class_names(runs):
    return [list(run.get("class_names") or []) for run in runs]


def _mean_maps(folder):
    """class -> float32 ``(h, w)`` mean map of a run's ``stats`` table."""
    from pipeline.outputs import loader

    stats = loader.load_stats(folder)
    rows = stats[stats[stats_table.GROUP] == stats_table.GROUP_CLASS]
    return {int(row[stats_table.CLASS]): row[stats_table.MEAN_MAP] for _, row in rows.iterrows()}


def class_rows(results, runs, dirs, settings):
    """The ``comparison_classes`` rows, class order, with names, drift and map differences."""
    names = _class_names(runs)
    maps = [_mean_maps(folder) for folder in dirs]
    rows = []
    for class_index, figures in sorted(results["classes"], key=lambda item: item[0]):
        name = next((n[class_index] for n in names[::-1] if 0 <= class_index < len(n)), None)
        old, new = (found.get(class_index) for found in maps)
        difference = None if old is None or new is None else (new - old).reshape(-1).tolist()
        rows.append({**figures, stats_table.CLASS: class_index, stats_table.CLASS_NAME: name,
                     classes_table.MEAN_MAP_DIFFERENCE: difference})
    for row, drifted in zip(rows, per_class.drifted(rows, settings.drift_alpha,
                                                    settings.drift_min_effect)):
        row[classes_table.DRIFTED] = drifted
    return rows


def publish(output_dir, staged, small_tables):
    """Replaces the comparison tables of ``output_dir`` with the staged ones and the small
    tables (``{table: (schema, rows)}``), then removes the staging folder."""
    from apache_beam.io.filesystems import FileSystems

    old = [path for table in tables.COMPARISON_TABLES
           for path in paths.match(paths.join(output_dir, table, "*.parquet"))]
    paths.delete(old)
    for table in tables.COMPARISON_TABLES:
        paths.make_dirs(paths.join(output_dir, table))
    final = [paths.join(output_dir, tables.COMPARISON_EXAMPLES, paths.basename(path))
             for path in staged]
    if staged:
        FileSystems.rename(list(staged), final)
    for table, (schema, rows) in small_tables.items():
        sinks.write_rows(paths.join(output_dir, table, f"{table}-00000-of-00001.parquet"),
                         schema, rows)
    paths.delete([paths.join(output_dir, sinks.STAGING_DIR)])


def compare_runs(baseline_dir, current_dir, output_dir, settings, options, proof=None):
    """Compares two finished runs; writes the comparison tables into ``output_dir``.

    Args:
        settings: the CompareConfig (``fail_on``, drift thresholds, sample size).
        options: Beam PipelineOptions for the comparison pipeline.
        proof: a Proof; None reads it from the current run's manifest.

    Returns:
        The manifest's ``comparison`` block (dict; ``failed`` lists the fail_on conditions
        that hold, ``seconds`` the comparison's wall time, its pipeline included).

    Raises:
        compatibility.CompareError: not a run, or runs whose maps mean different things.
    """
    started = time.time()
    runs = (compatibility.read_run(baseline_dir), compatibility.read_run(current_dir))
    compatibility.check(*runs, baseline_dir, current_dir)
    proof = proof or proof_from_manifest(runs[1])
    clusters = [_optional_table(folder, tables.CLUSTERS) for folder in (baseline_dir,
                                                                         current_dir)]
    found = [matching.run_findings(frame) for frame in clusters]
    dirs = (baseline_dir, current_dir)
    with beam.Pipeline(options=options) as p:
        build_comparison(p, runs, dirs, output_dir, settings, found[0], proof)
    results = json.loads(paths.read_text(paths.join(output_dir, sinks.STAGING_DIR,
                                                    RESULTS_FILE)))
    rows = class_rows(results, runs, dirs, settings)
    overlaps = {tuple(key): count for key, count in results["overlaps"]}
    reoccluded = {int(key): value for key, value in results["reoccluded"]}
    finding_rows = matching.compare_findings(found[0], found[1], overlaps, reoccluded,
                                             runs[0]["config"]["findings"], proof.reason)
    publish(output_dir, results["staged"], {
        tables.COMPARISON_CLASSES: (classes_table.arrow_schema(runs[1]["map_shape"]), rows),
        tables.COMPARISON_FINDINGS: (findings_table.COMPARISON_FINDINGS_SCHEMA, finding_rows)})
    counts = compatibility.id_counts(*(results["ids"].get(name, 0)
                                       for name in examples_table.PRESENCES))
    sentences = ([row[findings_table.SENTENCE] for row in finding_rows]
                 + outcome.class_sentences(rows))
    sentences = sentences or [outcome.no_change_sentence(rows, counts)]
    failed = outcome.failed_conditions(settings.fail_on, finding_rows, rows)
    block = outcome.comparison_block(baseline_dir, current_dir,
                                     compatibility.changes(*runs), counts, finding_rows, rows,
                                     settings, proof.reason, sentences, failed)
    return {**block, "seconds": round(time.time() - started, 1)}


def compare_with_baseline(config, input_shape, options):
    """The ``compare.baseline`` of a run that has just published: its comparison written into
    its own output folder, and the ``comparison`` block added to its ``manifest.json``.

    Returns:
        The run's manifest, with ``comparison``.
    """
    from pipeline.outputs import manifest

    output = config.output.path
    comparison = compare_runs(config.compare.baseline, output, output, config.compare, options,
                              Proof(config, tuple(input_shape)))
    published = {**manifest.read(output), "comparison": comparison}
    published["files"] = sorted(set(published.get("files", [])) | {
        f"{table}/{paths.basename(path)}" for table in tables.COMPARISON_TABLES
        for path in paths.match(paths.join(output, table, "*.parquet"))})
    manifest.write(output, published)
    return published
