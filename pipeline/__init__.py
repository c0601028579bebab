"""gbp-audit's Beam pipeline: read -> preprocess -> batched guided backprop -> Parquet.

``import pipeline`` imports nothing heavy: the loaders (pandas, pyarrow) on first use of a
``load_*`` function (``load_table(out, name)`` reads any table; still no TensorFlow, Keras or
Beam for local outputs), the pipeline itself on first use of ``build_pipeline`` or ``run``.

The package: ``cli`` (the command), ``launch/`` (the launcher), ``stages/`` (the Beam stages
and the graph), ``outputs/`` (sinks, manifest, loaders, run summary), ``findings/``,
``report/``, ``tables/``, ``config/``, and the shared modules ``records`` (the vocabulary),
``images``, ``paths``, ``explainers`` and ``rankings``.
"""

_LOADERS = ("load_assignments", "load_clusters", "load_embedding", "load_errors",
            "load_examples", "load_saliency", "load_sanity", "load_stats", "load_table")
__all__ = ["build_pipeline", *_LOADERS, "run"]


def __getattr__(name):
    if name in _LOADERS:
        from pipeline.outputs import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'pipeline' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LOADERS))


def build_pipeline(p, plan, start_time=None, progress_dir=None):
    """See ``pipeline.stages.build.build_pipeline``."""
    from pipeline.stages.build import build_pipeline as build

    return build(p, plan, start_time, progress_dir)


def run(argv=None):
    """See ``pipeline.launch.job.run``."""
    from pipeline.launch.job import run as run_job

    return run_job(argv)
