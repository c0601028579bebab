#!/usr/bin/env bash
# Create or reuse .venv, install the project, build (or reuse) the offline demo assets, and
# audit them with the embedded default preset. Outputs land in out/demo/.
# Extra arguments go to the pipeline, e.g. ./scripts/demo.sh --set explain.batch_size=64
source "$(dirname "$0")/_venv.sh" ""
python scripts/build_demo_assets.py .cache/demo
exec gbp-audit --config configs/demo.yaml "$@"
