"""Package-level rules: the public surface, and no runtime use of torch.fx / dynamo / export."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fxkit

PACKAGE = Path(fxkit.__file__).resolve().parent
FORBIDDEN = ("torch.fx", "torch._dynamo", "torch.export")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    """Imports that run when the module loads: everything outside function bodies."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside_functions = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    return [
        (line, name)
        for line, name in _imported_modules(path)
        if not any(
            id(node) in inside_functions
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno == line
        )
    ]


def _is_banned(name: str) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_file_imports_torch_fx_dynamo_or_export(path: Path) -> None:
    # fxkit/interop.py is the one bridge: it may import them, but only lazily, inside functions.
    imports = _top_level_imports(path) if path.name == "interop.py" else _imported_modules(path)
    offending = [f"{path.name}:{line} imports {name}" for line, name in imports if _is_banned(name)]
    assert not offending


def test_the_interop_bridge_does_import_torch_fx_lazily() -> None:
    """The exemption above is used, so a refactor that loses the lazy imports is noticed."""
    assert any(_is_banned(name) for _, name in _imported_modules(PACKAGE / "interop.py"))


def test_using_fxkit_loads_no_torch_fx_module_beyond_what_torch_itself_loads() -> None:
    script = """
import sys, torch
before = set(sys.modules)
import fxkit
from fxkit.passes.shape_prop import ShapeProp
from fxkit import zoo
model = zoo.get_model("mlp")
traced = fxkit.symbolic_trace(model)
ShapeProp(traced).propagate(*zoo.example_inputs("mlp"))
fxkit.capture(model, zoo.example_inputs("mlp"))
fxkit.Interpreter(traced).run(*zoo.example_inputs("mlp"))
added = sorted(m for m in sys.modules if m not in before and m.startswith(("torch.fx", "torch._dynamo", "torch.export")))
print(added)
"""
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_public_names_match_torch_fx_top_level() -> None:
    expected = {
        "Graph",
        "GraphModule",
        "Node",
        "Tracer",
        "Proxy",
        "Interpreter",
        "Transformer",
        "symbolic_trace",
        "wrap",
        "replace_pattern",
        "map_arg",
        "has_side_effect",
        "CodeGen",
        "PH",
    }
    assert expected <= set(fxkit.__all__)
    for name in (
        "node",
        "graph",
        "graph_module",
        "proxy",
        "interpreter",
        "subgraph_rewriter",
        "passes",
        "experimental",
    ):
        assert hasattr(fxkit, name), name
