# Sourced by the entry scripts: create or reuse .venv and install the project into it.
# Usage: source scripts/_venv.sh "<extras>"   (extras like "[test]" or "")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[gbp-audit] creating $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
STAMP="$VENV/.installed$1"
# An install with the test extras also satisfies a plain install.
if [ -z "$1" ] && [ -f "$VENV/.installed[test]" ] && [ ! "$ROOT/setup.py" -nt "$VENV/.installed[test]" ]; then
  STAMP="$VENV/.installed[test]"
fi
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ]; then
  echo "[gbp-audit] installing the project$1 (first run takes a couple of minutes)"
  "$VENV/bin/pip" install --quiet -e "$ROOT$1"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# TF logs C++ noise at INFO level; keep warnings and errors.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$ROOT"
