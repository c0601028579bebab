"""Comparison of two audit runs: what changed since the baseline (issue 25).

- ``compatibility``: whether two runs' maps mean the same thing (refused otherwise, before any
  work) and what changed (model, data).
- ``join``: the Beam part: both runs' ``saliency`` and ``assignments`` tables joined on
  ``example_id`` by a partitioned hash join (memory bounded on every runner), each shared
  example's two maps compared, and the small per-class and per-cluster results.
- ``per_class``: the per-class shifts, their confidence intervals and tests.
- ``matching``: findings of both runs matched, and their status.
- ``occlusion``: the baseline findings re-tested on the current model (Beam).
- ``outcome``: the ``comparison`` block of the manifest and the ``compare.fail_on`` verdict.
- ``run``: one comparison from two output folders to the tables, manifest and report.
- ``command``: ``gbp-audit compare BASELINE CURRENT --output DIR``.
- ``report``: the report's "Since the baseline" section.

Light at import: numpy only; Beam, scipy and pandas load where they are used.
"""
