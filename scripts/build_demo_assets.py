"""Builds (or reuses) the demo dataset and model under .cache/demo; see demo/assets.py."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.launch import quiet  # noqa: E402

quiet.import_tensorflow_quietly()

from demo.assets import build_demo_assets  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[gbp-audit] %(message)s")
    cache_dir = sys.argv[1] if len(sys.argv) > 1 else ".cache/demo"
    assets = build_demo_assets(cache_dir)
    print(f"[gbp-audit] demo data: {assets.tfrecord_pattern}\n[gbp-audit] demo model: "
          f"{assets.model_path}")
