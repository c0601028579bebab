"""The few lines a finished run prints: counts, speed, where the outputs are, the timing line
(where the wall time went around the batches) and the report's path.

Built from the published manifest (``manifest.json``) plus the launcher's fields (``report``,
``timing``), so the summary cannot say more than the run wrote.
"""

from pipeline.records import BATCH_FINISHED_MS, BATCH_STARTED_MS, METRICS_NAMESPACE


def batch_window(result):
    """When the run's batch steps ran, from a finished run's committed metrics (the
    distributions ``pipeline.stages.model_handler`` updates around every batch step).

    Args:
        result: a Beam ``PipelineResult`` whose metrics can be queried (a finished run).

    Returns:
        ``(first started, last finished)``, unix seconds as floats, or None when no batch ran
        or the runner gives no committed distributions.
    """
    from apache_beam.metrics.metric import MetricsFilter

    def committed(name):
        query = MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name)
        return [entry.committed for entry in result.metrics().query(query)["distributions"]
                if entry.committed is not None and entry.committed.count]

    try:
        starts, ends = committed(BATCH_STARTED_MS), committed(BATCH_FINISHED_MS)
    except Exception:  # noqa: BLE001 - a runner without metrics: no window, not an error
        return None
    if not starts or not ends:
        return None
    return (min(found.min for found in starts) / 1000.0,
            max(found.max for found in ends) / 1000.0)


def timing_fields(window, launched, finished):
    """Where a run's wall time went around its batches (seconds, 0.1 s resolution): from the
    launcher's start to the first batch step, the batch steps' span, and from the last step to
    the end (findings, small tables, publishing, the report).

    Args:
        window: ``(first batch started, last batch finished)``, unix seconds
            (``batch_window``).
        launched, finished: unix seconds of the launcher's start and of the end.
    """
    first, last = window
    return {"before_first_batch_seconds": round(first - launched, 1),
            "batch_seconds": round(last - first, 1),
            "after_last_batch_seconds": round(finished - last, 1)}


def written_tables(manifest):
    """The table folders the run published files into, in ``tables.TABLES`` order."""
    from pipeline import tables  # here, not at the top: ``pipeline.cli`` imports this module
    # before --help is answered, and the tables load pyarrow

    folders = {path.split("/", 1)[0] for path in manifest.get("files", ())}
    return [table for table in tables.TABLES if table in folders]


def summary(manifest):
    """A short human summary of a finished run (the manifest plus ``report`` and ``timing``)."""
    counts = manifest["counts"]
    seconds = manifest["wall_time_seconds"]
    rate = counts.get("saliency_rows", 0) / seconds if seconds else 0.0
    stages = ", ".join(f"{key[len('errors_'):]}={value}" for key, value in counts.items()
                       if key.startswith("errors_"))
    outputs = [f"{table}/" for table in written_tables(manifest)] + ["manifest.json"]
    lines = [
        f"gbp-audit: {counts['input']} inputs -> {counts.get('saliency_rows', 0)} saliency rows"
        f" + {counts.get('errors', 0)} dead letters" + (f" ({stages})" if stages else ""),
        f"gbp-audit: {seconds:.1f} s wall, {rate:.1f} examples/s; explained "
        f"{manifest['explained_space']} space",
        f"gbp-audit: outputs in {manifest['config']['output']['path']} "
        f"({', '.join(outputs)})",
    ]
    if not counts.get("reconciled", False):
        lines.append("gbp-audit: WARNING counts do not reconcile: input != saliency + errors")
    timing = manifest.get("timing")
    if timing:
        lines.append(f"gbp-audit: {timing['before_first_batch_seconds']:.1f} s before the first "
                     f"batch, {timing['batch_seconds']:.1f} s of batches, "
                     f"{timing['after_last_batch_seconds']:.1f} s after the last (findings, "
                     "tables, report)")
    comparison = manifest.get("comparison")
    if comparison:
        lines += [f"gbp-audit: since the baseline: {sentence}"
                  for sentence in comparison["sentences"][:5]]
    if manifest.get("report"):  # last: the line a user copies
        lines.append(f"gbp-audit: report: {manifest['report']}")
    return "\n".join(lines)
