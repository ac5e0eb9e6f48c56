"""The package's layers: every import points down, nothing imports build/, no cycles, light imports."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tutorial_sae"
# Bottom to top; a module may import its own layer and the layers before it.
LAYERS = ("base", "core", "data", "models", "training", "analysis", "plots", "exercises", "build")
BASE_MODULES = {"tutorial_sae.utils", "tutorial_sae.paths", "tutorial_sae.errors"}
# Extra limits on top of the order: core is pure SAE maths; figures never train.
FORBIDDEN = {"core": {"data", "models", "training", "analysis", "plots", "exercises"}}
FORBIDDEN["plots"] = {"training"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer of a tutorial_sae module, "facade" for the package itself, None for others."""
    if module == "tutorial_sae":
        return "facade"
    if not module.startswith("tutorial_sae."):
        return None
    if module in BASE_MODULES:
        return "base"
    sub = module.split(".")[1]
    if sub not in LAYERS:
        raise AssertionError(f"{module} is in no layer: put it in one of {LAYERS[1:]}")
    return sub


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file, lazy ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from tutorial_sae.data import corpus` imports the module tutorial_sae.data.corpus.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file()
                found.append(
                    (candidate if is_module else target, node.lineno, id(node) in top_level)
                )
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_sits_in_a_layer():
    for path in MODULES:
        if path.name != "__init__.py" or path.parent != PACKAGE:
            assert layer_of(module_name(path)) is not None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    me = module_name(path)
    mine = layer_of(me)
    if mine == "facade":
        return
    for target, line, _ in imports_of(path):
        theirs = layer_of(target)
        if theirs is None:
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        assert theirs != "facade", f"{where}: import the module itself, not the package facade"
        if mine == "build":
            continue
        assert theirs != "build", f"{where}: only build/ scripts may import build/"
        assert LAYERS.index(theirs) <= LAYERS.index(mine), (
            f"{where}: layer {mine!r} may not import the higher layer {theirs!r}"
        )
        assert theirs not in FORBIDDEN.get(mine, ()), f"{where}: {mine!r} may not import {theirs!r}"


def test_no_import_cycles():
    graph = {module_name(p): set() for p in MODULES}
    for path in MODULES:
        for target, _, _ in imports_of(path):
            if target in graph and target != module_name(path) and target != "tutorial_sae":
                graph[module_name(path)].add(target)
    # Sub-package __init__ files are empty, so a cycle is a real one between modules.
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    # A fake core module that reaches up into plots must be reported.
    fake = PACKAGE / "core" / "_layer_probe.py"
    monkeypatch.setattr(sys.modules[__name__], "MODULES", [fake])
    try:
        fake.write_text("from tutorial_sae.plots import training\n")
        with pytest.raises(AssertionError, match="may not import the higher layer 'plots'"):
            test_imports_point_down(fake)
        fake.write_text("def f():\n    from tutorial_sae.build import saes\n")
        with pytest.raises(AssertionError, match="only build/ scripts may import build/"):
            test_imports_point_down(fake)
    finally:
        fake.unlink(missing_ok=True)


LIGHT = (
    "tutorial_sae",
    "tutorial_sae.core.sae",
    "tutorial_sae.data.activations",
    "tutorial_sae.models.loading",
    "tutorial_sae.training.trainer",
    "tutorial_sae.analysis.evaluation",
    "tutorial_sae.analysis.interventions",
    "tutorial_sae.exercises",
)


def test_importing_the_package_loads_no_model_library():
    code = (
        "import sys, importlib\n"
        f"for name in {LIGHT!r}: importlib.import_module(name)\n"
        "import tutorial_sae\n"
        "tutorial_sae.SAE, tutorial_sae.evaluate_sae, tutorial_sae.load_model\n"
        "print(sorted(m for m in ('transformer_lens', 'transformers', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_name_the_package_exports_resolves():
    import tutorial_sae

    missing = []
    for name in tutorial_sae.__all__:
        try:
            getattr(tutorial_sae, name)
        except (AttributeError, ImportError) as err:
            missing.append(f"{name}: {err}")
    assert not missing, missing


def test_glue_returns_the_number_without_echoing_it():
    from tutorial_sae.plots.glue import glue, glue_all

    x = glue("x_test", 0.25)
    n = glue("n_test", 7)
    assert x == 0.25 and f"{x:.0%}" == "25%" and n + 1 == 8 and isinstance(n, int)
    assert x._ipython_display_() is None
    values = glue_all({"a": 1.5, "b": "skipped"}, prefix="t_")
    assert dict(values) == {"t_a": 1.5} and values._ipython_display_() is None
    with pytest.raises(ValueError, match="single number to glue"):
        glue("bad", "3")
