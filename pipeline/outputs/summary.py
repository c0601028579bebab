"""The few lines a finished run prints: counts, speed, where the outputs are, the timing line
(where the wall time went around the batches) and the report's path.

Built from the published manifest (``manifest.json``) plus the launcher's fields (``report``,
``timing``), so the summary cannot say more than the run wrote.
"""

from pipeline.records import (
    ALPHA_DROPPED,
    BATCH_FINISHED_MS,
    BATCH_STARTED_MS,
    COLOUR_TO_GREY,
    CONVERSION_KINDS,
    CONVERTED_PREFIX,
    DOWNSCALED,
    GREY_TO_COLOUR,
    METRICS_NAMESPACE,
    RESIZE_FACTOR,
    UPSCALED,
)

CONVERSION_WORDS = {
    COLOUR_TO_GREY: "colour -> grey",
    GREY_TO_COLOUR: "grey -> colour",
    ALPHA_DROPPED: "alpha dropped",
    UPSCALED: f"upscaled > {RESIZE_FACTOR:g}x",
    DOWNSCALED: f"downscaled > {RESIZE_FACTOR:g}x",
}


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


# The parts of ``timing_fields`` that add up to its ``wall_seconds``.
TIMING_PARTS = ("before_first_batch_seconds", "batch_seconds", "after_last_batch_seconds")


def timing_fields(window, launched, finished):
    """Where a run's wall time went around its batches (seconds, 0.1 s resolution), on one
    clock: from the launcher's start to the first batch step, the batch steps' span, from the
    last step to the end (findings, sanity, small tables, publishing, the report), and the whole
    wall time, from the launcher's start to the end. The parts add up to the whole within the
    rounding (0.15 s).

    Args:
        window: ``(first batch started, last batch finished)``, unix seconds
            (``batch_window``).
        launched, finished: unix seconds of the launcher's start and of the end.
    """
    first, last = window
    return {"before_first_batch_seconds": round(first - launched, 1),
            "batch_seconds": round(last - first, 1),
            "after_last_batch_seconds": round(finished - last, 1),
            "wall_seconds": round(finished - launched, 1)}


def after_last_batch(manifest):
    """The parts of the run that can follow its last batch, and ran: ``sanity`` and
    ``findings`` when enabled, the tables, the comparison with a baseline, and the report when
    one was written."""
    config = manifest.get("config", {})
    ran = [name for name in ("sanity", "findings")
           if config.get(name, {}).get("enabled") or name in manifest]
    compared = config.get("compare", {}).get("baseline") or "comparison" in manifest
    return [*ran, "tables", *(["comparison"] if compared else []),
            *(["report"] if manifest.get("report") else [])]


def conversion_words(counts):
    """The manifest's ``converted_<kind>`` counts in words (``'12 colour -> grey, 3 alpha
    dropped'``): the non-zero ones; ``'none'`` when all are 0; None when the counts have none
    (a run before they were counted)."""
    found = {kind: counts[CONVERTED_PREFIX + kind] for kind in CONVERSION_KINDS
             if CONVERTED_PREFIX + kind in counts}
    if not found:
        return None
    return ", ".join(f"{count:,} {CONVERSION_WORDS[kind]}" for kind, count in found.items()
                     if count) or "none"


def written_tables(manifest):
    """The table folders the run published files into, in ``tables.TABLES`` order."""
    from pipeline import tables  # here, not at the top: ``pipeline.cli`` imports this module
    # before --help is answered, and the tables load pyarrow

    folders = {path.split("/", 1)[0] for path in manifest.get("files", ())}
    return [table for table in tables.TABLES if table in folders]


def summary(manifest):
    """A short human summary of a finished run (the manifest plus ``report`` and ``timing``)."""
    counts = manifest["counts"]
    timing = manifest.get("timing")
    # One clock: with the launcher's timing, the wall time is the one its parts add up to.
    seconds = (timing.get("wall_seconds", sum(timing[part] for part in TIMING_PARTS)) if timing
               else manifest["wall_time_seconds"])
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
    converted = conversion_words(counts)
    if converted:
        lines.append(f"gbp-audit: inputs converted to the model's input: {converted}")
    if not counts.get("reconciled", False):
        lines.append("gbp-audit: WARNING counts do not reconcile: input != saliency + errors")
    if timing:
        lines.append(f"gbp-audit: {timing['before_first_batch_seconds']:.1f} s before the first "
                     f"batch, {timing['batch_seconds']:.1f} s of batches, "
                     f"{timing['after_last_batch_seconds']:.1f} s after the last "
                     f"({', '.join(after_last_batch(manifest))})")
    comparison = manifest.get("comparison")
    if comparison:
        lines += [f"gbp-audit: since the baseline: {sentence}"
                  for sentence in comparison["sentences"][:5]]
    if manifest.get("report"):  # last: the line a user copies
        lines.append(f"gbp-audit: report: {manifest['report']}")
    return "\n".join(lines)
