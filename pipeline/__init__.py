"""gbp-audit's Beam pipeline: read -> preprocess -> batched guided backprop -> Parquet.

``import pipeline`` and the loaders stay light (no TensorFlow, Keras or Beam for local outputs);
the pipeline itself is imported on first use of ``build_pipeline`` or ``run``.
"""

from pipeline.loader import load_errors, load_saliency, load_stats

__all__ = ["build_pipeline", "load_errors", "load_saliency", "load_stats", "run"]


def build_pipeline(p, plan, start_time=None, progress_dir=None):
    """See ``pipeline.build.build_pipeline``."""
    from pipeline.build import build_pipeline as build

    return build(p, plan, start_time, progress_dir)


def run(argv=None):
    """See ``pipeline.cli.run``."""
    from pipeline.cli import run as run_cli

    return run_cli(argv)
