"""``python -m pipeline``, the same as the ``gbp-audit`` command."""

from pipeline.cli import console_main

console_main()
