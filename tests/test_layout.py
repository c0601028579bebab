"""Layout rules of the runtime packages (pipeline/, gbp_ops/): one home per constant, small
modules, and no demo or bench code on the runtime path."""

import ast
import os

from tests.e2e.helpers import REPO

RUNTIME_PACKAGES = ("pipeline", "gbp_ops")
MAX_MODULE_LINES = 400


def _runtime_modules():
    for package in RUNTIME_PACKAGES:
        for folder, _, names in os.walk(os.path.join(REPO, package)):
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), REPO)


def _module_constants(path):
    """UPPER_CASE names assigned at a module's top level (leading underscores kept)."""
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id.lstrip("_").isupper():
                    names.add(leaf.id)
    return names


def test_no_constant_is_assigned_in_two_runtime_modules():
    homes = {}
    for path in _runtime_modules():
        for name in _module_constants(path):
            homes.setdefault(name, []).append(path)
    repeated = {name: paths for name, paths in homes.items() if len(paths) > 1}
    assert not repeated, f"constants defined in several modules: {repeated}"


def test_runtime_modules_stay_small():
    sizes = {}
    for path in _runtime_modules():
        with open(os.path.join(REPO, path), encoding="utf-8") as handle:
            sizes[path] = sum(1 for _ in handle)
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_runtime_packages_never_import_the_demo_assets():
    for path in _runtime_modules():
        with open(os.path.join(REPO, path), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("demo"), path
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("demo") for alias in node.names), path
