"""The pipeline graph: read -> prepare -> RunInference(GBP) -> rows -> tables -> publish.

``build_pipeline`` applies it in named steps: read and explain, count progress, the audit
tables (saliency, stats, errors), the optional sanity, findings and report-examples tables,
the one-file tables in one write, then the publish step with the manifest.
"""

import time

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from pipeline import tables
from pipeline.findings.stage import FindStrategyClusters
from pipeline.outputs import manifest, sinks
from pipeline.records import CONVERSIONS, DEAD_LETTERS, DEAD_LETTERS_SEEN, EXAMPLES_DONE
from pipeline.stages.aggregate import AggregateStats
from pipeline.stages.counts import CountOutputs
from pipeline.stages.model_handler import GuidedBackpropModelHandler
from pipeline.stages.preprocess import PrepareExamplesDoFn
from pipeline.stages.progress import CountProgressDoFn
from pipeline.stages.read import ReadSource
from pipeline.stages.rows import ToAuditBatchDoFn
from pipeline.stages.sanity import SanityCheck
from pipeline.stages.top_examples import CollectReportExamples
from pipeline.tables import assignments as assignments_table
from pipeline.tables import clusters as clusters_table
from pipeline.tables import embedding as embedding_table
from pipeline.tables import errors as errors_table
from pipeline.tables import examples as examples_table
from pipeline.tables import saliency as saliency_table
from pipeline.tables import sanity as sanity_table
from pipeline.tables import stats as stats_table


class ExplainExamples(beam.PTransform):
    """SourceRecords -> ``{'batches': AuditBatch, 'examples': PreparedExample, 'explained':
    ExplainedBatch, 'conversions': conversion kinds (str, one per conversion),
    'dead_letters': (DeadLetter PCollections of preparing and of the rows)}``.

    ``examples`` feeds the sanity check, ``explained`` (RunInference's output, before rows) the
    findings stage.
    """

    def __init__(self, plan):
        super().__init__()
        self._plan = plan

    def expand(self, records):
        plan = self._plan
        prepared = records | "Prepare" >> beam.ParDo(
            PrepareExamplesDoFn(plan.config, plan.input_shape)).with_outputs(
                DEAD_LETTERS, CONVERSIONS, main="examples")
        explained = prepared.examples | "GuidedBackprop" >> RunInference(
            GuidedBackpropModelHandler(plan.config))
        audited = explained | "ToAuditRows" >> beam.ParDo(
            ToAuditBatchDoFn(plan.config, plan.class_names)).with_outputs(
                DEAD_LETTERS, main="batches")
        return {"batches": audited.batches, "examples": prepared.examples,
                "explained": explained, CONVERSIONS: prepared[CONVERSIONS],
                DEAD_LETTERS: (prepared[DEAD_LETTERS], audited[DEAD_LETTERS])}


def build_pipeline(p, plan, start_time=None, progress_dir=None):
    """Applies the whole audit graph to ``p``.

    Args:
        p: a ``beam.Pipeline`` (or TestPipeline).
        plan: the RunPlan from ``preflight`` (or built by a test).
        start_time: epoch seconds the run started, for the manifest's wall time.
        progress_dir: a local folder for ``pipeline.stages.progress`` counts (local runs), or
            None.

    Returns:
        dict of PCollections: ``batches`` (AuditBatch), ``stats`` (row dicts),
        ``dead_letters`` (DeadLetter), ``sanity`` (row dicts; empty unless enabled) and
        ``manifest`` (one dict, after publishing).
    """
    config = plan.config
    read = p | "Read" >> ReadSource(config.source)
    explained = read["records"] | "Explain" >> ExplainExamples(plan)
    batches = explained["batches"]
    dead_letters = (
        (read[DEAD_LETTERS], *explained[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()
    )
    _count_progress(batches, dead_letters, progress_dir)
    # One empty PCollection stands in for every disabled stage's output (one runner stage).
    nothing = p | "Nothing" >> beam.Create([])
    staged, small_tables, stats = _audit_tables(batches, dead_letters, plan)
    sanity = _sanity_table(explained["examples"], config, small_tables, nothing)
    findings_summary, flagged = _findings_tables(explained["explained"], plan, staged,
                                                 small_tables, nothing)
    _report_examples_table(batches, config, small_tables)
    staged.append(sinks.write_single_file_tables(p, config.output.path, small_tables))
    counts = {"input_records": read["records"], "damaged_shards": read[DEAD_LETTERS],
              "saliency_rows": batches, "errors": dead_letters,
              "conversions": explained[CONVERSIONS]} | "Counts" >> CountOutputs()
    schemas = {name: schema for name, (_, schema) in small_tables.items()}
    schemas.update(_sharded_schemas(plan))
    published = _publish(p, plan, staged, counts, sanity, (findings_summary, flagged),
                         {name: schemas[name] for name in tables.TABLES if name in schemas},
                         start_time)
    return {"batches": batches, "stats": stats, "dead_letters": dead_letters,
            "sanity": sanity, "manifest": published}


def _count_progress(batches, dead_letters, progress_dir):
    """Done examples and dead letters counted as they pass (the progress line)."""
    batches | "CountDone" >> beam.ParDo(CountProgressDoFn(EXAMPLES_DONE, progress_dir))
    dead_letters | "CountDeadLetters" >> beam.ParDo(
        CountProgressDoFn(DEAD_LETTERS_SEEN, progress_dir))


def _saliency_schema(plan):
    map_dtype = plan.config.output.map_dtype
    return saliency_table.arrow_schema(
        plan.map_shape, map_dtype, manifest.table_metadata(plan.manifest_base, map_dtype))


def _sharded_schemas(plan):
    """The schemas of the tables written through Beam's file sink (the others are in the
    ``small_tables`` of the steps)."""
    found = {tables.SALIENCY: _saliency_schema(plan)}
    if plan.config.findings.enabled:
        found[tables.ASSIGNMENTS] = assignments_table.ASSIGNMENTS_SCHEMA
    return found


def _audit_tables(batches, dead_letters, plan):
    """The tables every run writes: ``saliency`` (sharded, through Beam's file sink), and
    ``stats`` and ``errors`` (one file each, written with the other small tables).

    Returns:
        ``(staged, small_tables, stats)``: a list holding the saliency write's staged paths,
        ``{table: (rows, schema)}`` for ``sinks.write_single_file_tables``, and the stats rows.
    """
    config = plan.config
    map_dtype = config.output.map_dtype
    saliency_schema = _saliency_schema(plan)
    arrow_tables = batches | "ToArrowTables" >> beam.Map(
        saliency_table.encode, saliency_schema, map_dtype)
    stats = batches | "Aggregate" >> AggregateStats(plan.class_names)
    staged = [sinks.write_table(arrow_tables, config.output.path, tables.SALIENCY,
                                saliency_schema, num_shards=config.output.saliency_shards,
                                plain_columns=saliency_table.plain_columns(map_dtype))]
    small_tables = {
        tables.STATS: (stats, stats_table.arrow_schema(plan.map_shape)),
        tables.ERRORS: (dead_letters | "ErrorRows" >> beam.Map(errors_table.encode_row),
                        errors_table.ERRORS_SCHEMA),
    }
    return staged, small_tables, stats


def _sanity_table(examples, config, small_tables, nothing):
    """The ``sanity`` rows (``sanity.enabled``; else ``nothing``), added to ``small_tables``."""
    if not config.sanity.enabled:
        return nothing
    sanity = examples | "SanityCheck" >> SanityCheck(config)
    small_tables[tables.SANITY] = (sanity, sanity_table.SANITY_SCHEMA)
    return sanity


def _findings_tables(explained, plan, staged, small_tables, nothing):
    """With ``findings.enabled``: ``assignments`` (sharded, added to ``staged``), ``clusters``
    and ``embedding`` (added to ``small_tables``). Returns the per-class manifest summaries
    and the merged flagged findings (``nothing`` twice when findings are off)."""
    config = plan.config
    if not config.findings.enabled:
        return nothing, nothing
    found = explained | "Findings" >> FindStrategyClusters(config, plan.class_names)
    staged.append(sinks.write_table(found["assignments"], config.output.path,
                                    tables.ASSIGNMENTS, assignments_table.ASSIGNMENTS_SCHEMA))
    small_tables[tables.CLUSTERS] = (found["clusters"],
                                     clusters_table.arrow_schema(config.findings.map_size))
    small_tables[tables.EMBEDDING] = (found["embedding"], embedding_table.EMBEDDING_SCHEMA)
    return found["summary"], found["flagged"]


def _report_examples_table(batches, config, small_tables):
    """With ``output.report``: the ``examples`` table (the report's example images)."""
    if config.output.report:
        shown = batches | "ReportExamples" >> CollectReportExamples(config.output.report_top_n)
        small_tables[tables.EXAMPLES] = (shown, examples_table.EXAMPLES_SCHEMA)


def _publish(p, plan, staged, counts, sanity, findings, schemas, start_time):
    """Once every table is staged: move them into place (an empty file for an enabled table
    with none; ``schemas``: every enabled table's) and write ``manifest.json``.

    Args:
        findings: ``(per-class summaries, merged flagged findings)`` PCollections.
    """
    summaries, flagged = findings
    return (
        p
        | "PublishTrigger" >> beam.Create([None])
        | "Publish" >> beam.ParDo(
            sinks.PublishDoFn(plan.config.output.path, plan.manifest_base,
                              start_time or time.time(), schemas),
            staged=beam.pvalue.AsList(tuple(staged) | "StagedFiles" >> beam.Flatten()),
            counts=beam.pvalue.AsDict(counts), sanity=beam.pvalue.AsList(sanity),
            findings=beam.pvalue.AsList(summaries), flagged=beam.pvalue.AsList(flagged))
    )
