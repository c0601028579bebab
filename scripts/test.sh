#!/usr/bin/env bash
# Create or reuse .venv, install the project with its test extras, and run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/gbp_ops -x
source "$(dirname "$0")/_venv.sh" "[test]"
exec python -m pytest "$@"
