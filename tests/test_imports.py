"""The imports between the suite's own modules (read from the source, every import, lazy ones included; those
under `if TYPE_CHECKING:` are for the type checker, not needs, and left out): lower layers never reach up, and no
two modules need each other."""

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The suite's layers, lowest first (README, "Code map"): a package imports only its own layer and those below
LAYERS = ("suite_common", "studies", "study_data", "search_spaces", "runners", "analysis")
PACKAGES = LAYERS
NAME = "lyrics_cifar_search"  # installed, the one import name: the folders above are its subpackages (setup.cfg)


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join([NAME, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def layer(module):
    return module.split(".")[1]  # lyrics_cifar_search.runners.search -> runners


def import_graph():
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}  # module -> the modules it imports
    for name, path in modules.items():
        graph[name] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for_types = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                     for statement in block.body for n in ast.walk(statement)}
        for node in ast.walk(tree):
            targets = []
            if id(node) in for_types:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                while target and target not in modules:  # "<name>.runners.trials_table.finished" -> the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def test_packages_import_only_their_own_layer_and_those_below():
    """Every import, lazy ones included, between packages runs down the layers: no arrow back up, so no two
    packages need each other (runners/search.py once imported analysis, which imports runners)."""
    rank = {package: i for i, package in enumerate(LAYERS)}
    up = [(a, b) for a, targets in import_graph().items() for b in sorted(targets)
          if rank[layer(b)] > rank[layer(a)]]
    assert up == []


def test_no_module_needs_one_that_needs_it():
    # a package's __init__ re-exporting its modules is not a circle of meaning: leave those arrows out
    graph = {a: {b for b in targets if not b.startswith(a + ".")} for a, targets in import_graph().items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"modules that import each other: {' -> '.join(e.args[1])}") from None


def test_every_import_of_the_suite_goes_through_its_one_name():
    """`from runners import ...` would work in a clone with the repo root on sys.path, and break (or pick up a
    user's own runners.py) once installed: the suite, its tests and its benches import lyrics_cifar_search.X."""
    bare = []
    for path in sorted(p for d in (*PACKAGES, "tests", "bench") for p in (ROOT / d).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bare += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] in LAYERS]
    assert bare == []


def test_a_clone_without_an_install_imports_with_its_root_on_the_path(tmp_path):
    """The GPU machines run the benches from a copy of the tree with PYTHONPATH at its root and nothing
    installed: lyrics_cifar_search.runners is the clone's runners/ there too (the editable install's finder is
    taken out here, so only the path can answer)."""
    import os
    import subprocess
    import sys
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
            "from lyrics_cifar_search.runners.keras_search import accelerate\n"
            "from lyrics_cifar_search.search_spaces import get_family\n"
            "print(accelerate.__file__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    # lyrics_cifar_search/runners is a link to runners/ (so that editors and type checkers follow the name)
    assert Path(out.stdout.strip()).resolve() == ROOT / "runners" / "keras_search" / "accelerate.py"


def test_no_file_of_the_suite_is_over_400_lines():
    """Issue 53: files a reader can hold, split along their seams (docs/reference.md, "Code layout")."""
    long = {str(p.relative_to(ROOT)): n for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
