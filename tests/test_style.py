"""The tree stays ruff-clean (ruff.toml: line length 100, pyflakes, pycodestyle, isort, bugbear)."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_check_passes():
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the [test] extras)")
    result = subprocess.run([ruff, "check", REPO], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
