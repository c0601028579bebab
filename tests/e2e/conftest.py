"""Every test under tests/e2e is marked ``e2e``, so ``pytest -m "not e2e"`` runs the fast
suite."""

import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(items):
    # Called with the whole session's items, whichever conftest defines it: mark ours only.
    for item in items:
        if os.path.dirname(os.path.abspath(str(item.path))) == _HERE:
            item.add_marker(pytest.mark.e2e)
