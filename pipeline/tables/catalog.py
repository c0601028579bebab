"""Every table's schema and column descriptions in one place: for the empty tables a run
writes, ``pipeline.load_table``, ``docs/SCHEMA.md`` (``pipeline.outputs.schema_page``) and the
engine-compatibility tests.
"""

from pipeline import tables
from pipeline.tables import (
    assignments,
    clusters,
    comparison_classes,
    comparison_examples,
    comparison_findings,
    embedding,
    errors,
    examples,
    saliency,
    sanity,
    stats,
)

DESCRIPTIONS = {
    tables.SALIENCY: (saliency.SALIENCY_DESCRIPTION, saliency.SALIENCY_COLUMNS),
    tables.STATS: (stats.STATS_DESCRIPTION, stats.STATS_COLUMNS),
    tables.ERRORS: (errors.ERRORS_DESCRIPTION, errors.ERRORS_COLUMNS),
    tables.SANITY: (sanity.SANITY_DESCRIPTION, sanity.SANITY_COLUMNS),
    tables.EXAMPLES: (examples.EXAMPLES_DESCRIPTION, examples.EXAMPLES_COLUMNS),
    tables.CLUSTERS: (clusters.CLUSTERS_DESCRIPTION, clusters.CLUSTERS_COLUMNS),
    tables.ASSIGNMENTS: (assignments.ASSIGNMENTS_DESCRIPTION, assignments.ASSIGNMENTS_COLUMNS),
    tables.EMBEDDING: (embedding.EMBEDDING_DESCRIPTION, embedding.EMBEDDING_COLUMNS),
    tables.COMPARISON_EXAMPLES: (comparison_examples.COMPARISON_EXAMPLES_DESCRIPTION,
                                 comparison_examples.COMPARISON_EXAMPLES_COLUMNS),
    tables.COMPARISON_CLASSES: (comparison_classes.COMPARISON_CLASSES_DESCRIPTION,
                                comparison_classes.COMPARISON_CLASSES_COLUMNS),
    tables.COMPARISON_FINDINGS: (comparison_findings.COMPARISON_FINDINGS_DESCRIPTION,
                                 comparison_findings.COMPARISON_FINDINGS_COLUMNS),
}


def schemas(map_shape, map_dtype, map_size, metadata=None):
    """``{table: pa.Schema}`` of every table.

    Args:
        map_shape: ``(h, w)`` of the stored maps (manifest ``map_shape``).
        map_dtype: ``output.map_dtype``.
        map_size: ``findings.map_size``.
        metadata: the saliency table's gbp_audit metadata dict (default ``{}``).
    """
    return {
        tables.SALIENCY: saliency.arrow_schema(map_shape, map_dtype, metadata or {}),
        tables.STATS: stats.arrow_schema(map_shape),
        tables.ERRORS: errors.ERRORS_SCHEMA,
        tables.SANITY: sanity.SANITY_SCHEMA,
        tables.EXAMPLES: examples.EXAMPLES_SCHEMA,
        tables.CLUSTERS: clusters.arrow_schema(map_size),
        tables.ASSIGNMENTS: assignments.ASSIGNMENTS_SCHEMA,
        tables.EMBEDDING: embedding.EMBEDDING_SCHEMA,
        tables.COMPARISON_EXAMPLES: comparison_examples.COMPARISON_EXAMPLES_SCHEMA,
        tables.COMPARISON_CLASSES: comparison_classes.arrow_schema(map_shape),
        tables.COMPARISON_FINDINGS: comparison_findings.COMPARISON_FINDINGS_SCHEMA,
    }


def enabled_tables(config):
    """The tables a run with ``config`` (a RunConfig) writes, in ``tables.TABLES`` order (the
    comparison tables of ``compare.baseline`` are written after it, by ``pipeline.compare``)."""
    enabled = {tables.SALIENCY, tables.STATS, tables.ERRORS}
    if config.sanity.enabled:
        enabled.add(tables.SANITY)
    if config.output.report:
        enabled.add(tables.EXAMPLES)
    if config.findings.enabled:
        enabled |= {tables.CLUSTERS, tables.ASSIGNMENTS, tables.EMBEDDING}
    return tuple(name for name in tables.TABLES if name in enabled)


def description(table):
    """``(table sentence, {column: (unit, meaning)})`` of one table."""
    return DESCRIPTIONS[table]
