"""Architecture rules, checked on the source with `ast` (no import of the package, so this runs in
well under a second):

1. Imports run one way. Every module of src/salience sits in a layer (LAYERS, lower = lower) and
   may import only modules of its own or a lower layer; imports inside functions count, and
   `from salience import x` counts as importing the submodule `x`.
2. No function or method is longer than MAX_LINES lines (its `def` line to its last line), unless
   a comment `# long: <why>` stands on the line before the `def` (or before its decorators), on
   its signature or on its first body line.

A second test runs both checks on a small synthetic package with deliberate violations, so neither
check can pass vacuously.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "salience"
MAX_LINES = 60

# The layer map: a module belongs to the longest entry that is the module itself or a package
# above it. "salience" (the package's __init__) matches only itself, so a new top-level module
# must be placed here on purpose. Any module named `cli` or `*_cli` is an entry point (layer 9).
LAYERS = {
    # 0 core, torch-free
    "salience": 0,
    "salience.errors": 0,
    "salience.io": 0,
    "salience.registry": 0,
    "salience.config": 0,
    "salience._tvshim": 0,
    "salience.scores": 0,
    "salience.tracking": 0,
    "salience.tracking_store": 0,
    # 1 torch infrastructure
    "salience.safeload": 1,
    "salience.checkpoint": 1,
    "salience.device": 1,
    # 2 data
    "salience.data": 2,
    # 3 models and CAMs
    "salience.models": 3,
    "salience.cam": 3,
    # 4 methods and their loss terms
    "salience.losses": 4,
    "salience.methods": 4,
    # 5 study plan, inference
    "salience.study": 5,
    "salience.inference": 5,
    # 6 training
    "salience.training": 6,
    # 7 evaluation
    "salience.evaluation": 7,
    # 8 reporting and visualisation
    "salience.reporting": 8,
    "salience.visualize": 8,
    # 9 entry points
    "salience.cli": 9,
    "salience.__main__": 9,
    "salience.doctor": 9,
    "salience.dvcstages": 9,
    "salience.ui": 9,
}
ENTRY_LAYER = 9

LONG_MARK = re.compile(r"#\s*long:\s*\S")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def modules(root: Path) -> list[Module]:
    """Every module under the package folder `root` (named after the folder)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out.append(Module(".".join(parts), path, is_package))
    return out


def layer_of(name: str) -> int | None:
    """The layer of module `name`, or None when LAYERS does not place it."""
    if name.rsplit(".", 1)[-1] in ("cli",) or name.endswith("_cli"):
        return ENTRY_LAYER
    if name in LAYERS:
        return LAYERS[name]
    parts = name.split(".")
    for n in range(len(parts) - 1, 1, -1):  # longest package above it; never bare "salience"
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def imported_modules(mod: Module, known: set[str]) -> set[str]:
    """Modules of the package that `mod` imports anywhere in its file (module or function level).
    `from a import b` names the submodule a.b when there is one, else a."""
    top = next(iter(known)).split(".")[0]
    tree = ast.parse(mod.path.read_text(), filename=str(mod.path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == top:
                    found.add(_nearest_known(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, mod)
            if base.split(".")[0] != top:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else _nearest_known(base, known))
    found.discard(mod.name)
    return found


def imported_names(mod: Module) -> set[str]:
    """Every module name `mod` imports anywhere in its file, inside the package or not."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(mod.path.read_text(), filename=str(mod.path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return names


def _absolute(node: ast.ImportFrom, mod: Module) -> str:
    if not node.level:
        return node.module or ""
    package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _nearest_known(name: str, known: set[str]) -> str:
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts) or name


def import_violations(root: Path) -> tuple[set[tuple[str, str, str]], list[str]]:
    """({("import", module, imported)} for every upward import, [modules LAYERS does not place])."""
    mods = modules(root)
    known = {m.name for m in mods}
    unplaced = sorted(m.name for m in mods if layer_of(m.name) is None)
    bad = set()
    for mod in mods:
        own = layer_of(mod.name)
        for target in imported_modules(mod, known):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                bad.add(("import", mod.name, target))
    return bad, unplaced


def long_functions(root: Path) -> dict[tuple[str, str, str], int]:
    """{("long", module, qualname): lines} for every function past MAX_LINES without `# long:`."""
    out = {}
    for mod in modules(root):
        source = mod.path.read_text()
        lines = source.splitlines()
        for qualname, node in _functions(ast.parse(source), ""):
            n = node.end_lineno - node.lineno + 1
            if n <= MAX_LINES:
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            marked = range(first - 1, node.body[0].lineno + 1)  # 1-based line numbers
            if not any(LONG_MARK.search(lines[i - 1]) for i in marked if 1 <= i <= len(lines)):
                out[("long", mod.name, qualname)] = n
    return out


def _functions(node: ast.AST, prefix: str):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{child.name}"
            yield name, child
            yield from _functions(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def test_imports_run_one_way():
    bad, unplaced = import_violations(PACKAGE)
    assert not unplaced, f"place these modules in LAYERS (tests/test_architecture.py): {unplaced}"
    assert len(modules(PACKAGE)) > 50  # the walk found the package
    assert not bad, f"imports that run upward (move the code down a layer): {sorted(bad)}"


def test_functions_are_short():
    found = long_functions(PACKAGE)
    assert not found, f"functions over {MAX_LINES} lines without a '# long: why' comment: {found}"


def test_the_core_layer_never_imports_torch():
    """Layer 0 (configuration, planning support, scores, tracking) stays torch-free, so planning
    a study does not pay torch's import (docs/decisions.md, "torch-free configuration layer")."""
    heavy = ("torch", "torchvision")
    # the torchvision shim imports torch inside install(), which runs only when torchvision itself
    # is being imported (its sys.meta_path hook); that is its whole job
    shim = "salience._tvshim"
    found = sorted(
        (m.name, imp)
        for m in modules(PACKAGE)
        if layer_of(m.name) == 0 and m.name != shim
        for imp in imported_names(m)
        if imp.split(".")[0] in heavy
    )
    assert not found, f"layer-0 modules importing torch: {found}"


def test_checks_catch_violations_in_a_synthetic_package(tmp_path):
    pkg = tmp_path / "salience"

    def write(rel: str, text: str) -> None:
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))  # + def line = MAX_LINES
    method_body = body.replace("    ", "        ")
    for rel in ("__init__.py", "data/__init__.py", "training/__init__.py"):
        write(rel, "")
    write("evaluation/__init__.py", "")
    write("evaluation/metrics.py", "def auroc():\n    return 0.5\n")
    # upward at function level (0 -> 6), through `from salience import x` (0 -> 7), relative (2 -> 7)
    write("errors.py", "def f():\n    from salience.training import loop\n    return loop\n")
    write("io.py", "from salience import evaluation\n")
    write("data/loader.py", "from ..evaluation.metrics import auroc\nfrom . import prepared\n")
    write("data/prepared.py", "import salience.errors\n")
    write("mystery.py", "")
    write(
        "training/loop.py",
        "from salience.data import loader\nfrom salience.evaluation import cli\n\n\n"
        f"def fits():\n{body}\n\n"
        f"def too_long():\n{body}    x = 1\n\n\n"
        f"# long: a table of constants\ndef allowed():\n{body}    x = 1\n\n\n"
        f"class Loop:\n    @staticmethod\n    def run():  # long: one recipe\n{method_body}        x = 1\n\n"
        f"    def step(self):\n{method_body}        x = 1\n",
    )
    write("evaluation/cli.py", "from salience.training import loop\n")

    bad, unplaced = import_violations(pkg)
    assert bad == {
        ("import", "salience.errors", "salience.training.loop"),
        ("import", "salience.io", "salience.evaluation"),
        ("import", "salience.data.loader", "salience.evaluation.metrics"),
        ("import", "salience.training.loop", "salience.evaluation.cli"),  # an entry point
    }
    assert unplaced == ["salience.mystery"]
    assert long_functions(pkg) == {
        ("long", "salience.training.loop", "too_long"): MAX_LINES + 1,
        ("long", "salience.training.loop", "Loop.step"): MAX_LINES + 1,
    }
