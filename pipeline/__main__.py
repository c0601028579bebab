"""``python -m pipeline --config configs/demo.yaml [--set k=v] [Beam flags]``."""

import sys

from pipeline.cli import main

sys.exit(main())
