"""The Beam stages of the audit graph, one module each (read, decode, preprocess, the
RunInference model handler, rows, aggregate, top examples, sanity, counts, progress counts) and
``build``, which applies them. Other packages import a stage module only for its PTransforms,
DoFns and model handler (and ``build.build_pipeline``), never for a helper: shared helpers live
in ``pipeline.records``, ``pipeline.images`` and the other top-level modules."""
