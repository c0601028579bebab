"""The pipeline graph: read -> prepare -> RunInference(GBP) -> rows -> three tables + manifest."""

import time

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from pipeline import rows, schema, sinks
from pipeline.aggregate import (
    AGGREGATED_STATISTICS,
    HISTOGRAM_BINS,
    HISTOGRAM_STATISTICS,
    AggregateStats,
)
from pipeline.model_handler import GuidedBackpropModelHandler
from pipeline.preprocess import PrepareExamplesDoFn
from pipeline.read import DEAD_LETTERS, ReadTFDS, ReadTFRecordShards
from pipeline.sanity_stage import SanityCheck
from pipeline.top_examples import CollectReportImages


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
                "dead_letters": (prepared[DEAD_LETTERS], audited[DEAD_LETTERS])}


def build_pipeline(p, plan, start_time=None):
    """Applies the whole audit graph to ``p``.

    Args:
        p: a ``beam.Pipeline`` (or TestPipeline).
        plan: the RunPlan from ``preflight`` (or built by a test).
        start_time: epoch seconds the run started, for the manifest's wall time.

    Returns:
        dict of PCollections: ``batches`` (AuditBatch), ``stats`` (row dicts),
        ``dead_letters`` (DeadLetter), ``sanity`` (row dicts; empty unless enabled) and
        ``manifest`` (one dict, after publishing).
    """
    config = plan.config
    output_dir = config.output.path
    height, width = plan.map_shape
    read = p | "Read" >> ReadSource(config.source)
    explained = read["records"] | "Explain" >> ExplainExamples(plan)
    batches = explained["batches"]
    dead_letters = (
        (read[DEAD_LETTERS], *explained["dead_letters"]) | "AllDeadLetters" >> beam.Flatten()
    )

    saliency_schema = schema.saliency_schema(height, width, config.output.map_dtype,
                                             {**plan.manifest_base, "map_dtype":
                                              config.output.map_dtype})
    tables = batches | "ToArrowTables" >> beam.Map(
        rows.to_arrow_table, saliency_schema, config.output.map_dtype)
    stats = batches | "Aggregate" >> AggregateStats(plan.class_names)
    stats_schema = schema.stats_schema(height, width, AGGREGATED_STATISTICS,
                                       HISTOGRAM_STATISTICS, HISTOGRAM_BINS)
    if config.sanity.enabled:
        sanity = explained["examples"] | "SanityCheck" >> SanityCheck(config)
    else:
        sanity = p | "NoSanityCheck" >> beam.Create([])
    images = (batches | "ReportImages" >> CollectReportImages(config.output.report_top_n)
              if config.output.report else p | "NoReportImages" >> beam.Create([]))
    staged = (
        sinks.write_table(tables, output_dir, "saliency", saliency_schema, batched=True,
                          num_shards=config.output.saliency_shards,
                          # uint8 codes compress better with the dictionary left on
                          plain_columns=(schema.SALIENCY,) if config.output.map_dtype != "uint8"
                          else ()),
        *([sinks.write_table(sanity, output_dir, "sanity", schema.SANITY_SCHEMA,
                             batched=False, num_shards=1)] if config.sanity.enabled else []),
        sinks.write_table(stats, output_dir, "stats", stats_schema, batched=False, num_shards=1),
        sinks.write_table(dead_letters | "ErrorRows" >> beam.Map(lambda d: d.as_row()),
                          output_dir, "errors", schema.ERRORS_SCHEMA, batched=False,
                          num_shards=1),
    ) | "StagedFiles" >> beam.Flatten()

    counts = (
        sinks.count_into(read["records"], "input_records"),
        sinks.count_into(read[DEAD_LETTERS], "damaged_shards"),
        sinks.count_into(batches, "saliency_rows", weight=len),
        sinks.count_into(dead_letters, "errors"),
        dead_letters | "ErrorStage" >> beam.Map(lambda d: f"errors_{d.stage}")
        | "CountPerStage" >> beam.combiners.Count.PerElement(),
    ) | "AllCounts" >> beam.Flatten()
    manifest = (
        p
        | "PublishTrigger" >> beam.Create([None])
        | "Publish" >> beam.ParDo(
            sinks.PublishDoFn(output_dir, plan.manifest_base, start_time or time.time(),
                              config.output.report_top_n if config.output.report else None),
            staged=beam.pvalue.AsList(staged), counts=beam.pvalue.AsDict(counts),
            images=beam.pvalue.AsDict(images), sanity=beam.pvalue.AsList(sanity))
    )
    return {"batches": batches, "stats": stats, "dead_letters": dead_letters,
            "sanity": sanity, "manifest": manifest}
