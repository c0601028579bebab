"""The launcher: flags and Beam options, preflight (with the fidelity check), start-up work
(quiet imports, tracing ahead), the job itself, and the local progress line. Imports every
other part of ``pipeline``; nothing but ``pipeline.cli`` and ``pipeline.run`` imports it."""
