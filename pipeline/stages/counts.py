"""The run's counts for the manifest, summed in one ``CombinePerKey``.

One keyed sum instead of a global combine per count: every global combine is several runner
stages plus a default-value side input, which adds up to seconds of fixed start-up locally.
"""

import apache_beam as beam

from pipeline.records import CONVERSION_KINDS, CONVERTED_PREFIX

# Counts the manifest always has, 0 when nothing was seen.
ALWAYS_COUNTED = ("input_records", "damaged_shards", "saliency_rows", "errors",
                  *(CONVERTED_PREFIX + kind for kind in CONVERSION_KINDS))


class CountOutputs(beam.PTransform):
    """``{'input_records': records, 'damaged_shards': ..., 'saliency_rows': AuditBatches,
    'errors': DeadLetters, 'conversions': conversion kinds}`` -> PCollection of
    ``(name, int)``, one per name (``converted_<kind>`` for conversions), plus
    ``errors_<stage>`` per dead-letter stage seen."""

    def expand(self, pcolls):
        weighed = [
            pcolls["input_records"] | "WeighInputs" >> beam.Map(lambda _: ("input_records", 1)),
            pcolls["damaged_shards"] | "WeighDamaged" >> beam.Map(
                lambda _: ("damaged_shards", 1)),
            pcolls["saliency_rows"] | "WeighRows" >> beam.Map(
                lambda batch: ("saliency_rows", len(batch))),
            pcolls["errors"] | "WeighErrors" >> beam.FlatMap(
                lambda letter: [("errors", 1), (f"errors_{letter.stage}", 1)]),
            pcolls["conversions"] | "WeighConversions" >> beam.Map(
                lambda kind: (CONVERTED_PREFIX + kind, 1)),
            pcolls["input_records"].pipeline | "Zeros" >> beam.Create(  # a few tiny elements:
                [(name, 0) for name in ALWAYS_COUNTED], reshuffle=False),  # no reshuffle stage
        ]
        return tuple(weighed) | "AllCounts" >> beam.Flatten() | "SumPerName" >> beam.CombinePerKey(
            sum)
