"""Layout rules of the runtime packages (pipeline/, gbp_ops/): one home per constant, small
modules, no demo or bench code on the runtime path, and the import graph: gbp_ops imports no
Beam and nothing of pipeline/; no import circles (module-level and function-level imports
alike); each part of pipeline/ imports only the parts ``MAY_IMPORT`` lists (so stages import no
launcher); and no module outside pipeline/stages/ borrows a helper from a stage module."""

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


# ---- The import graph -------------------------------------------------------------------
# Every import counts: module level and inside functions (a lazy import still ties two
# modules together). Targets are resolved to modules of pipeline/ and gbp_ops/: ``from P import
# n`` is an import of ``P.n`` when that is a module, else of ``P``.

# Base classes of the parts of a stage module that other packages may use: the PTransforms,
# DoFns, CombineFns and the RunInference model handler they put in (or run like) the graph.
STAGE_PART_BASES = {"PTransform", "DoFn", "CombineFn", "ModelHandler"}
GRAPH_ENTRY = ("pipeline.stages.build", "build_pipeline")
# What each part of pipeline/ may import from pipeline/ (gbp_ops is open to all of them).
SHARED = ("pipeline.records", "pipeline.images", "pipeline.paths", "pipeline.rankings",
          "pipeline.explainers", "pipeline.config", "pipeline.tables")
MAY_IMPORT = {
    "pipeline.records": (),
    "pipeline.images": (),
    "pipeline.rankings": (),
    "pipeline.paths": (),
    "pipeline.config": ("pipeline.config", "pipeline.paths"),
    "pipeline.tables": ("pipeline.tables", "pipeline.records"),
    "pipeline.explainers": ("pipeline.paths",),
    "pipeline.outputs": (*SHARED, "pipeline.outputs"),
    "pipeline.findings": (*SHARED, "pipeline.findings"),
    "pipeline.stages": (*SHARED, "pipeline.findings", "pipeline.outputs", "pipeline.stages"),
    "pipeline.report": (*SHARED, "pipeline.findings", "pipeline.outputs", "pipeline.report",
                        "pipeline.compare"),
    # Run comparison: its own Beam graph (stages' transforms), findings' occlusion, the
    # report's page parts, and the launcher's options and start-up for its subcommand.
    "pipeline.compare": (*SHARED, "pipeline.findings", "pipeline.outputs", "pipeline.stages",
                         "pipeline.report", "pipeline.launch", "pipeline.compare"),
    "pipeline.launch": (*SHARED, "pipeline.findings", "pipeline.outputs", "pipeline.stages",
                        "pipeline.report", "pipeline.launch", "pipeline.compare"),
    "pipeline.cli": ("pipeline.launch", "pipeline.outputs", "pipeline.config",
                     "pipeline.compare"),
    "pipeline.__main__": ("pipeline.cli",),
    "pipeline": ("pipeline.outputs", "pipeline.stages", "pipeline.launch"),
}


def _module_name(path):
    name = path[:-3].replace(os.sep, ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _runtime_module_paths():
    return {_module_name(path): os.path.join(REPO, path) for path in _runtime_modules()}


def _parse(path):
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read())


def _imports(module, tree, modules):
    """``(target module or external name, imported name or None, line)`` for every import."""
    package = module if module in modules and modules[module].endswith("__init__.py") else (
        module.rpartition(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:
                    yield full, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def _import_graph(modules=None, trees=None):
    modules = modules or _runtime_module_paths()
    trees = trees or {name: _parse(path) for name, path in modules.items()}
    return {name: {target for target, _, _ in _imports(name, trees[name], modules)
                   if target in modules and target != name}
            for name in modules}


def _circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _part(module):
    """The key of ``MAY_IMPORT`` a pipeline module belongs to (its folder, or itself)."""
    for key in sorted(MAY_IMPORT, key=len, reverse=True):
        if module == key or module.startswith(key + "."):
            return key
    raise AssertionError(f"{module} belongs to no part of MAY_IMPORT")


def _stage_parts(modules, trees):
    """``{stage module: names other packages may import from it}``."""
    parts = {}
    for name in modules:
        if not name.startswith("pipeline.stages."):
            continue
        parts[name] = {node.name for node in trees[name].body if isinstance(node, ast.ClassDef)
                       and any((base.attr if isinstance(base, ast.Attribute) else
                                getattr(base, "id", None)) in STAGE_PART_BASES
                               for base in node.bases)}
    parts[GRAPH_ENTRY[0]].add(GRAPH_ENTRY[1])
    return parts


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return inner and f"{inner}.{node.attr}"
    return None


def borrowed_stage_helpers(modules=None, trees=None):
    """Names a module outside pipeline/stages/ takes from a stage module that are not one of
    its PTransforms, DoFns, CombineFns or model handler (or ``build.build_pipeline``):
    ``from pipeline.stages.X import name``, or ``X.name`` after importing the module X."""
    modules = modules or _runtime_module_paths()
    trees = trees or {name: _parse(path) for name, path in modules.items()}
    allowed = _stage_parts(modules, trees)
    found = []
    for name, tree in trees.items():
        if name.startswith("pipeline.stages"):
            continue
        bound = {}  # local dotted name -> stage module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for target, imported, line in _imports(name, ast.Module([node], []), modules):
                    alias = next(a for a in node.names
                                 if a.name in (imported, target.rpartition(".")[2]))
                    if imported is not None and target in allowed and (
                            imported not in allowed[target]):
                        found.append(f"{name}:{line} takes {imported} from {target}")
                    elif imported is None and target in allowed:
                        bound[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in allowed:
                        bound[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _dotted(node.value) in bound:
                target = bound[_dotted(node.value)]
                if node.attr not in allowed[target]:
                    found.append(f"{name}:{node.lineno} takes {node.attr} from {target}")
    return sorted(found)


def test_gbp_ops_imports_neither_beam_nor_pipeline():
    modules = _runtime_module_paths()
    wrong = [f"{name}:{line} imports {target}"
             for name, path in modules.items() if name.startswith("gbp_ops")
             for target, _, line in _imports(name, _parse(path), modules)
             if target.split(".")[0] in ("apache_beam", "pipeline", "demo")]
    assert wrong == []


def test_no_import_circles():
    assert _circles(_import_graph()) == []


def test_each_part_of_pipeline_imports_only_what_it_may():
    """Stages import no launcher, outputs no stage, the report no stage or launcher, and so
    on (``MAY_IMPORT``; docs/ARCHITECTURE.md says the same per folder)."""
    wrong = []
    for name, targets in _import_graph().items():
        if not name.startswith("pipeline"):
            continue
        part = _part(name)
        wrong += [f"{name} imports {target}" for target in sorted(targets)
                  if target.startswith("pipeline") and _part(target) != part
                  and _part(target) not in MAY_IMPORT[part]]
    assert wrong == []


def test_no_helper_is_borrowed_from_a_stage_module():
    assert borrowed_stage_helpers() == []
