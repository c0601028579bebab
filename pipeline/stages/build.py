"""The pipeline graph: read -> prepare -> RunInference(GBP) -> rows -> tables -> publish."""

import time

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from pipeline import tables
from pipeline.findings.stage import FindStrategyClusters
from pipeline.launch import progress
from pipeline.outputs import manifest, sinks
from pipeline.stages import rows
from pipeline.stages.aggregate import AggregateStats
from pipeline.stages.counts import CountOutputs
from pipeline.stages.model_handler import GuidedBackpropModelHandler
from pipeline.stages.preprocess import PrepareExamplesDoFn
from pipeline.stages.read import DEAD_LETTERS, ReadTFDS, ReadTFRecordShards
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


class ReadSource(beam.PTransform):
    """The configured source -> {'records': SourceRecord, 'dead_letters': DeadLetter}."""

    def __init__(self, source):
        super().__init__()
        self._source = source

    def expand(self, pbegin):
        if self._source.kind == "tfds":
            return pbegin | "ReadTFDS" >> ReadTFDS(self._source)
        outputs = pbegin | "ReadTFRecord" >> ReadTFRecordShards(
            self._source.pattern, fail_on_corrupt_shard=self._source.on_corrupt_shard == "fail")
        return {"records": outputs.records, DEAD_LETTERS: outputs[DEAD_LETTERS]}


class ExplainExamples(beam.PTransform):
    """SourceRecords -> {'batches': AuditBatch, 'dead_letters': DeadLetter}."""

    def __init__(self, plan):
        super().__init__()
        self._plan = plan

    def expand(self, records):
        plan = self._plan
        prepared = records | "Prepare" >> beam.ParDo(
            PrepareExamplesDoFn(plan.config, plan.input_shape)).with_outputs(
                DEAD_LETTERS, main="examples")
        explained = prepared.examples | "GuidedBackprop" >> RunInference(
            GuidedBackpropModelHandler(plan.config))
        audited = explained | "ToAuditRows" >> beam.ParDo(
            rows.ToAuditBatchDoFn(plan.config, plan.class_names)).with_outputs(
                DEAD_LETTERS, main="batches")
        return {"batches": audited.batches, "examples": prepared.examples,
                "explained": explained,
                "dead_letters": (prepared[DEAD_LETTERS], audited[DEAD_LETTERS])}


def build_pipeline(p, plan, start_time=None, progress_dir=None):
    """Applies the whole audit graph to ``p``.

    Args:
        p: a ``beam.Pipeline`` (or TestPipeline).
        plan: the RunPlan from ``preflight`` (or built by a test).
        start_time: epoch seconds the run started, for the manifest's wall time.
        progress_dir: a local folder for ``pipeline.launch.progress`` counts (local runs), or None.

    Returns:
        dict of PCollections: ``batches`` (AuditBatch), ``stats`` (row dicts),
        ``dead_letters`` (DeadLetter), ``sanity`` (row dicts; empty unless enabled) and
        ``manifest`` (one dict, after publishing).
    """
    config = plan.config
    output_dir = config.output.path
    read = p | "Read" >> ReadSource(config.source)
    explained = read["records"] | "Explain" >> ExplainExamples(plan)
    batches = explained["batches"]
    dead_letters = (
        (read[DEAD_LETTERS], *explained["dead_letters"]) | "AllDeadLetters" >> beam.Flatten()
    )

    batches | "CountDone" >> beam.ParDo(
        progress.CountProgressDoFn(progress.EXAMPLES_DONE, progress_dir))
    dead_letters | "CountDeadLetters" >> beam.ParDo(
        progress.CountProgressDoFn(progress.DEAD_LETTERS_SEEN, progress_dir))

    map_dtype = config.output.map_dtype
    saliency_schema = saliency_table.arrow_schema(
        plan.map_shape, map_dtype, manifest.table_metadata(plan.manifest_base, map_dtype))
    arrow_tables = batches | "ToArrowTables" >> beam.Map(
        saliency_table.encode, saliency_schema, map_dtype)
    stats = batches | "Aggregate" >> AggregateStats(plan.class_names)
    # One empty PCollection stands in for every disabled stage's output (one runner stage).
    nothing = p | "Nothing" >> beam.Create([])
    if config.sanity.enabled:
        sanity = explained["examples"] | "SanityCheck" >> SanityCheck(config)
    else:
        sanity = nothing
    staged = [sinks.write_table(arrow_tables, output_dir, tables.SALIENCY, saliency_schema,
                                num_shards=config.output.saliency_shards,
                                plain_columns=saliency_table.plain_columns(map_dtype))]
    small_tables = {  # one Parquet file each, written in one step (sinks.write_single_file_tables)
        tables.STATS: (stats, stats_table.arrow_schema(plan.map_shape)),
        tables.ERRORS: (dead_letters | "ErrorRows" >> beam.Map(errors_table.encode_row),
                        errors_table.ERRORS_SCHEMA),
    }
    if config.sanity.enabled:
        small_tables[tables.SANITY] = (sanity, sanity_table.SANITY_SCHEMA)
    findings_summary = nothing
    if config.findings.enabled:
        found = explained["explained"] | "Findings" >> FindStrategyClusters(config,
                                                                            plan.class_names)
        findings_summary = found["summary"]
        staged.append(sinks.write_table(found["assignments"], output_dir, tables.ASSIGNMENTS,
                                        assignments_table.ASSIGNMENTS_SCHEMA))
        small_tables[tables.CLUSTERS] = (found["clusters"],
                                         clusters_table.arrow_schema(config.findings.map_size))
        small_tables[tables.EMBEDDING] = (found["embedding"], embedding_table.EMBEDDING_SCHEMA)
    if config.output.report:
        shown = batches | "ReportExamples" >> CollectReportExamples(config.output.report_top_n)
        small_tables[tables.EXAMPLES] = (shown, examples_table.EXAMPLES_SCHEMA)
    staged.append(sinks.write_single_file_tables(p, output_dir, small_tables))

    counts = {"input_records": read["records"], "damaged_shards": read[DEAD_LETTERS],
              "saliency_rows": batches, "errors": dead_letters} | "Counts" >> CountOutputs()
    published = (
        p
        | "PublishTrigger" >> beam.Create([None])
        | "Publish" >> beam.ParDo(
            sinks.PublishDoFn(output_dir, plan.manifest_base, start_time or time.time()),
            staged=beam.pvalue.AsList(tuple(staged) | "StagedFiles" >> beam.Flatten()),
            counts=beam.pvalue.AsDict(counts), sanity=beam.pvalue.AsList(sanity),
            findings=beam.pvalue.AsList(findings_summary))
    )
    return {"batches": batches, "stats": stats, "dead_letters": dead_letters,
            "sanity": sanity, "manifest": published}
