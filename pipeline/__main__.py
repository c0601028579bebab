"""``python -m pipeline``, the same as the ``gbp-audit`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
